"""The asv suite and the benchmark scripts cannot rot: they import and run.

Each benchmark class's ``setup`` and ``track_*``/``time_*``/``peakmem_*``
methods run here on tiny matrices (8 x 8 grids and pyamg's 225-unknown
``recirc_flow``; ``LearnedLU`` with two training steps), called the way asv
calls them: ``setup_cache`` once in a scratch directory, its return value
passed to ``setup`` and the benchmark. ``scaling.py`` and ``amortized.py``
run end to end on 8 x 8 and 16 x 16 grids and must write their pages. No
timing is asserted; the tracked numbers and the pages' contents are.
"""

import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS_DIR) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS_DIR))

import _common  # noqa: E402  (benchmarks/_common.py, the scripts' helpers)
import amortized  # noqa: E402
import scaling  # noqa: E402

from benchmarks import common, preconditioners  # noqa: E402

TINY_PROBLEMS = {
    "laplace_2d": ("laplace_2d", {}, {"small": 8}),
    "convection_diffusion_2d_vortex": ("convection_diffusion_2d", {"velocity": "vortex"},
                                       {"small": 8}),
    "recirc_flow": ("recirc_flow", {}, None),
}


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    """The suite on tiny problems, and the setup cache asv would pass to ``setup``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "PROBLEMS", TINY_PROBLEMS)
        mp.setattr(common, "GRID_PROBLEMS", tuple(TINY_PROBLEMS))
        mp.setattr(common, "SIZES", ("small", "medium"))
        mp.setattr(common, "LEARNED_LU_OPTIONS", {"seed": 0, "max_steps": 2})
        common.build_problem.cache_clear()
        common._fitted.cache_clear()
        # asv runs setup_cache once, in a scratch directory.
        mp.chdir(tmp_path_factory.mktemp("asv_cache"))
        yield preconditioners.Solve().setup_cache()
    common.build_problem.cache_clear()
    common._fitted.cache_clear()


def test_grid_matches_the_issue():
    assert set(common.PROBLEMS) == {
        "laplace_2d", "convection_diffusion_2d_vortex", "biharmonic_2d", "diffusion_2d",
        "rbf_kernel", "recirc_flow", "airfoil",
    }
    assert common.PRECONDITIONERS == (
        "none", "jacobi", "ilu0", "ilut", "amg", "exact", "learned_lu")
    assert common.METHODS == ("gmres", "cg", "bicgstab")
    for cls in (preconditioners.Fit, preconditioners.Apply, preconditioners.Solve):
        assert len(cls.params) == len(cls.param_names)
    # asv's key for a shared setup cache is the module and line of setup_cache.
    assert preconditioners.Apply.setup_cache is preconditioners.Solve.setup_cache
    assert preconditioners.Solve.track_iterations.unit == "iterations"
    assert preconditioners.Apply.track_memory_bytes.unit == "bytes"


def test_quick_and_full_switch():
    assert not common.full_grid_requested({})
    assert not common.full_grid_requested({"LP_BENCH_FULL": "0"})
    assert common.full_grid_requested({"LP_BENCH_FULL": "1"})


def test_problem_selection():
    assert common.selected_problems({}) == tuple(common.PROBLEMS)
    assert common.selected_problems({"LP_BENCH_PROBLEMS": "airfoil, laplace_2d"}) == (
        "airfoil", "laplace_2d")
    with pytest.raises(ValueError, match="unknown problem.*'poisson'.*choose from"):
        common.selected_problems({"LP_BENCH_PROBLEMS": "poisson"})


def test_grid_skips_missing_sizes(tiny_suite):
    assert set(common.grid()) == {
        ("laplace_2d", "small"), ("convection_diffusion_2d_vortex", "small"),
        ("recirc_flow", "small"),
    }
    assert set(tiny_suite) == {f"{label}/{size}" for label, size in common.grid()}
    assert all(pathlib.Path(entry["path"]).is_file() for entry in tiny_suite.values())


@pytest.mark.parametrize("name", ["none", "jacobi", "ilu0", "ilut", "amg", "exact",
                                  "learned_lu"])
def test_solve_tracks_iterations(tiny_suite, name):
    bench = preconditioners.Solve()
    bench.setup(tiny_suite, "laplace_2d", "small", name, "gmres")
    iterations = bench.track_iterations(tiny_suite, "laplace_2d", "small", name, "gmres")
    assert bench.track_converged(tiny_suite, "laplace_2d", "small", name, "gmres") == 1
    # GMRES on 64 unknowns converges within 64 iterations in exact arithmetic.
    assert 1 <= iterations <= 64
    if name == "exact":
        assert iterations <= 2
    bench.time_solve(tiny_suite, "laplace_2d", "small", name, "gmres")


def test_solve_bicgstab_and_cg(tiny_suite):
    bench = preconditioners.Solve()
    args = (tiny_suite, "convection_diffusion_2d_vortex", "small", "learned_lu", "bicgstab")
    bench.setup(*args)
    assert bench.track_converged(*args) == 1
    for name in ("amg", "learned_lu"):  # both symmetric positive definite on SPD A
        args = (tiny_suite, "laplace_2d", "small", name, "cg")
        bench.setup(*args)
        assert bench.track_converged(*args) == 1
        assert 1 <= bench.track_iterations(*args) <= 64


@pytest.mark.parametrize(
    "problem, size, name, method, reason",
    [
        ("convection_diffusion_2d_vortex", "small", "jacobi", "cg", "symmetric A"),
        ("laplace_2d", "small", "ilu0", "cg", "symmetric positive definite M"),
        ("recirc_flow", "medium", "none", "gmres", "fixed-size"),
    ],
)
def test_meaningless_combinations_raise_not_implemented(tiny_suite, problem, size, name,
                                                        method, reason):
    with pytest.raises(NotImplementedError, match=reason):
        preconditioners.Solve().setup(tiny_suite, problem, size, name, method)


def test_apply_and_memory(tiny_suite):
    bench = preconditioners.Apply()
    for name in ("ilu0", "learned_lu"):
        bench.setup(tiny_suite, "laplace_2d", "small", name)
        assert bench.track_memory_bytes(tiny_suite, "laplace_2d", "small", name) > 0
        assert bench.time_apply(tiny_suite, "laplace_2d", "small", name) is None
    # The model loaded from the setup cache is the one fitted there.
    M = bench.M
    assert M.shape == (64, 64)
    assert np.all(np.isfinite(M @ np.ones(64)))


def test_fit_benchmarks_fit(tiny_suite, monkeypatch):
    # time_setup and peakmem_setup must each run one whole fit of the named
    # preconditioner on the benchmark's matrix, and what they fit must precondition it.
    from learned_precond import get_preconditioner

    fits = []
    real_fit = preconditioners.fit

    def recording_fit(name, problem):
        M = real_fit(name, problem)
        fits.append((name, problem, M))
        return M

    monkeypatch.setattr(preconditioners, "fit", recording_fit)
    bench = preconditioners.Fit()
    args = ("convection_diffusion_2d_vortex", "small")
    for name in ("amg", "learned_lu"):
        bench.setup(*args, name)
        assert bench.problem.A.shape == (64, 64)
        assert bench.time_setup(*args, name) is None  # asv times the call, not a value
        bench.peakmem_setup(*args, name)
    assert [name for name, _, _ in fits] == ["amg", "amg", "learned_lu", "learned_lu"]
    A = fits[0][1].A
    b = common.rhs(A)
    unpreconditioned = common.run_solve(A, b, None, "gmres").iterations
    for name, problem, M in fits:
        assert problem.A is A  # the benchmark's own matrix, built once in setup
        assert isinstance(M, get_preconditioner(name)) and M.shape == A.shape
        result = common.run_solve(A, b, M, "gmres")
        assert result.converged and result.iterations < unpreconditioned, (name, result)


def test_failed_learned_lu_fit_fails_only_its_combination(tiny_suite):
    cache = dict(tiny_suite)
    cache["recirc_flow/small"] = {"error": "LearnedLU.fit failed on recirc_flow/small: boom"}
    with pytest.raises(RuntimeError, match="boom"):
        preconditioners.Solve().setup(cache, "recirc_flow", "small", "learned_lu", "gmres")
    preconditioners.Solve().setup(cache, "recirc_flow", "small", "ilu0", "gmres")


# -- the scripts behind docs/results/scaling.md and amortized.md -------------------


def test_loglog_slope_recovers_the_exponent():
    xs = np.array([1024.0, 4096.0, 16384.0, 65536.0])
    assert _common.loglog_slope(xs, 3e-6 * xs**1.5) == pytest.approx(1.5)
    # Missing and non-positive values are left out; one point has no slope.
    assert _common.loglog_slope(xs, [2.0, None, 8.0, float("nan")]) == pytest.approx(0.5)
    assert np.isnan(_common.loglog_slope(xs[:1], [1.0]))


def test_budget_projects_from_the_observed_slope():
    budget = _common.Budget(1000, cell_cap_s=50)
    assert budget.project([], 4096, default_exponent=1.5) == 0.0
    assert budget.project([(1024, 2.0)], 4096, default_exponent=1.5) == pytest.approx(16.0)
    # A steeper observed slope between the last two sizes overrides the default...
    assert budget.project([(1024, 1.0), (4096, 16.0)], 16384,
                          default_exponent=1) == pytest.approx(256.0)
    # ...a flatter one does not (fixed costs flatten slopes at small N).
    assert budget.project([(1024, 1.0), (4096, 1.0)], 16384,
                          default_exponent=1.5) == pytest.approx(8.0)
    assert budget.refuses(10.0) is None
    assert "per-measurement cap" in budget.refuses(60.0)
    assert "left" in budget.refuses(40.0, limit_s=30.0)


def test_parse_fit_options():
    assert _common.parse_fit_options(["max_steps=20", "lr=1e-2", "symmetric=false",
                                      "init=block_jacobi"]) == {
        "max_steps": 20, "lr": 0.01, "symmetric": False, "init": "block_jacobi"}
    with pytest.raises(SystemExit, match="key=value"):
        _common.parse_fit_options(["max_steps"])


def test_scaling_script_writes_its_page(tmp_path, monkeypatch):
    tiny = scaling.ScalingProblem("poisson", "2-D Poisson", "laplace_2d", {}, (8, 16), False)
    monkeypatch.setattr(scaling, "PROBLEMS", (tiny,))
    scaling.main(["--out", str(tmp_path), "--fit", "max_steps=1", "--budget", "600"])
    page = (tmp_path / "scaling.md").read_text()
    for png in ("scaling_time.png", "scaling_iterations.png", "scaling_memory.png"):
        assert (tmp_path / png).stat().st_size > 0
    assert "max_steps=1" in page
    rows = [line for line in page.splitlines() if line.startswith(("| 64 |", "| 256 |"))]
    # Every preconditioner at both sizes, in the table and in the ratio table.
    assert len(rows) == 2 * 2 * len(scaling.SHOW_ORDER)
    assert any("| direct |" in r and "| direct |" in r.split("|", 3)[-1] for r in rows)
    assert "| poisson | ilu0 |" in page  # the slope table


def test_amortized_script_writes_its_page(tmp_path):
    amortized.main(["--n", "8", "--rhs", "3", "--steps", "2", "--out", str(tmp_path),
                    "--fit", "max_steps=1"])
    page = (tmp_path / "amortized.md").read_text()
    assert "total, 1 rhs" in page and "break-even" in page
    assert "| learned_lu warm |" in page and "| learned_lu cold |" in page
    assert (tmp_path / "amortized_rhs.png").stat().st_size > 0
    assert (tmp_path / "amortized_drift.png").stat().st_size > 0
