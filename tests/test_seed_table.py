"""Smoke tests of benchmarks/seed_table.py and its pieces: structure and finiteness."""

import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from learned_precond import problems

pytest.importorskip("torch")

_BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))

from _seed_table.blog import goal_status  # noqa: E402
from _seed_table.cases import DIFFUSION_PRECONDITIONERS, MAIN_CASES, config  # noqa: E402
from _seed_table.document import (  # noqa: E402
    section_ablation,
    section_diffusion,
    section_hierarchy,
    section_main,
)
from _seed_table.experiments import ablation_configs  # noqa: E402
from _seed_table.figures import plot_diffusion, plot_heatmaps  # noqa: E402
from _seed_table.measure import learned_a_hat, learned_a_hat_dense, measure  # noqa: E402
from _seed_table.prose import section_prose  # noqa: E402
from _seed_table.text import fmt, fmt_iterations  # noqa: E402


def test_script_command_line():
    # The documented command (`python benchmarks/seed_table.py [--quick]`) still parses.
    out = subprocess.run([sys.executable, str(_BENCHMARKS / "seed_table.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--only" in out.stdout


@pytest.fixture(scope="module")
def small_matrix():
    return problems.get("seed_laplace_1d", n=64)


@pytest.fixture(scope="module")
def dense_measurement(small_matrix):
    return measure(
        small_matrix, fit_options=dict(block_size=16, max_steps=2), n_samples=8,
        baselines=("none", "jacobi"), keep_error_matrix=True)


def _check_iterations(entry):
    assert isinstance(entry, tuple), entry
    its, converged = entry
    assert isinstance(its, int) and its >= 0
    assert isinstance(converged, bool)


def test_measure_dense_structure(dense_measurement):
    m = dense_measurement
    assert m.N == 64 and m.dense and not m.fit_error
    for name in ("E_A", "E_A_rel", "E_A_probe", "e_x", "e_b", "e_x_solver", "e_b_solver",
                 "cond_A", "cond_A_hat", "norm_A", "fit_time"):
        value = getattr(m, name)
        assert math.isfinite(value) and value >= 0, (name, value)
    assert set(m.iterations) == {"none", "jacobi", "learned_lu"}
    for entry in m.iterations.values():
        _check_iterations(entry)
    assert m.error_matrix.shape == (64, 64)
    assert np.all(m.error_matrix >= 0)
    assert m.init and m.ordering and m.nbytes > 0 and m.n_parameters > 0


@pytest.mark.filterwarnings("ignore::learned_precond.FitConvergenceWarning")
def test_dense_a_hat_helper_agrees_with_preconditioner(small_matrix):
    # A_hat = L U is the inverse of M = U^-1 L^-1: M A_hat = I.
    from learned_precond import LearnedLU

    M = LearnedLU.fit(small_matrix, block_size=16, init="random", max_steps=2, seed=1)
    A_hat = learned_a_hat_dense(M)
    assert A_hat.shape == (64, 64)
    np.testing.assert_allclose(M.matmat(A_hat), np.eye(64), atol=1e-6)
    x = np.random.default_rng(0).standard_normal(64)
    np.testing.assert_allclose(learned_a_hat(M).rmatvec(x), A_hat.T @ x, atol=1e-10)


def test_measure_sparse_path(small_matrix):
    m = measure(small_matrix, fit_options=dict(block_size=16, max_steps=2),
                n_samples=4, baselines=("none",), dense=False)
    assert not m.dense and math.isnan(m.E_A)
    assert math.isfinite(m.E_A_probe) and math.isfinite(m.cond_A_hat) and m.cond_A > 1
    _check_iterations(m.iterations["learned_lu"])
    assert m.solver.startswith("SuperLU")


def test_goal_status(dense_measurement):
    m = dense_measurement
    blog = dict(E_A=1e30)
    met, reasons = goal_status(m, blog)
    assert met == (not reasons)
    tiny = dict(E_A=m.E_A)  # our E_A equal to the blog's: not a tenth of it
    met, reasons = goal_status(m, tiny)
    assert not met and any("blog/10" in r for r in reasons)


def test_document_sections_render(dense_measurement, tmp_path):
    # Every section and the generated prose render from (reused) measurements.
    m = dense_measurement
    cfg = config(True)
    main = {case.key: m for case in MAIN_CASES}
    text = section_main(main, cfg)
    assert text.count("\n| ") >= len(MAIN_CASES)
    assert "goal met?" in text
    ablations = [(problem, "tricks/init/loss", opts, m)
                 for problem in ("seed_laplace_1d", "seed_rbf_kernel")
                 for opts in ablation_configs(cfg)]
    ablations += [("seed_laplace_2d", "ordering", dict(ordering=o), m)
                  for o in ("natural", "bisection")]
    assert "ordering" in section_ablation(ablations, cfg)
    hierarchy = [("laplace_2d", 8, m), ("laplace_2d", 16, m)]
    assert "laplace_2d" in section_hierarchy(hierarchy, ["a cap"], cfg)
    entry = dict(iterations=3, converged=True, nbytes=100, count=10, count_kind="nonzeros",
                 symmetric=True, setup=0.1)
    diffusion = [dict(n=8, N=64, entries={name: dict(entry)
                                           for name in DIFFUSION_PRECONDITIONERS})]
    capped = {name: dict(entry) for name in DIFFUSION_PRECONDITIONERS}
    capped["none"] = {"skipped": "not converged at n = 8"}
    capped["learned_lu"] = None
    diffusion.append(dict(n=16, N=256, entries=capped))
    text = section_diffusion(diffusion, "a cap", cfg)
    assert "| 8 | 64 |" in text and "skipped (not converged at n = 8)" in text
    assert "skipped (size cap)" in text and "Size cap: a cap." in text
    prose = section_prose(main, ablations, hierarchy, diffusion)
    for heading in ("**Operator error.**", "**Conditioning.**", "**GMRES.**",
                    "**The blog's tricks, 1-D Laplacian**", "**Ordering, seed_laplace_2d:**",
                    "**Where the hierarchy matters**", "**Seed 003's comparison**"):
        assert heading in prose
    paths = plot_heatmaps(main, ablations, tmp_path)
    paths += plot_diffusion(diffusion, tmp_path)
    assert len(paths) == 4
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_fmt():
    assert fmt(math.inf) == "inf"
    assert fmt(None) == "—"
    assert fmt(float("nan")) == "—"
    assert fmt(1.5e-7) == "1.50e-07"
    assert fmt_iterations((12, False)) == "12 (not converged)"
