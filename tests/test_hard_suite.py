"""The hard suite (issue 15): its rows at tiny scale, its new matrices, and the benchmark machinery."""

import doctest
import pathlib
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from learned_precond import problems
from learned_precond.problems import hard

_BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))

TINY = 1 / 1024


def dense(A):
    return A.toarray() if sp.issparse(A) else np.asarray(A)


# -- the rows ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", problems.HARD_SUITE)
def test_every_row_builds_at_tiny_scale(name):
    row = problems.hard_case(name, scale=TINY)
    N = row.N
    assert row.name == name and name in repr(row)
    assert row.A.shape == (N, N) and 8 <= N <= 300
    assert row.A.dtype == np.float64 and np.all(np.isfinite(dense(row.A)))
    assert row.b.shape == (N,) and np.all(np.isfinite(row.b)) and np.linalg.norm(row.b) > 0
    assert row.coords.shape[0] == N and row.coords.ndim == 2
    if row.grid_shape is not None:
        assert int(np.prod(row.grid_shape)) == N
        assert row.coords.shape[1] == len(row.grid_shape)
    if name == "kernel_2d":
        assert type(row.A) is np.ndarray
    else:
        assert type(row.A) is sp.csr_array and row.A.has_canonical_format


@pytest.mark.parametrize("name", problems.HARD_SUITE)
def test_claimed_symmetry_and_definiteness(name):
    row = problems.hard_case(name, scale=TINY)
    D = dense(row.A)
    assert np.array_equal(D, D.T) == row.symmetric
    if row.spd:
        w = np.linalg.eigvalsh(D)
        assert w[0] > 1e-10 * w[-1], f"{name}: smallest eigenvalue {w[0]:.3g}"
    else:
        assert not row.symmetric
        assert np.linalg.matrix_rank(D) == row.N  # nonsingular


def test_suite_order_sizes_and_scale():
    tiny = list(problems.hard_suite(scale=TINY))
    assert [r.name for r in tiny] == list(problems.HARD_SUITE) and len(tiny) == 9
    quick = {r.name: r.N for r in tiny}
    assert quick["poisson_3d"] == 6**3 and quick["elasticity_2d"] == 2 * 5 * 6
    assert problems.hard_case("poisson_2d", scale=1 / 16).N == 4096
    assert hard._elasticity_n(1.0) == 180 and 2 * 180 * 181 == 65160
    with pytest.raises(ValueError, match="scale"):
        problems.hard_case("poisson_2d", scale=0)
    with pytest.raises(ValueError, match="scale <= 4"):
        problems.hard_case("poisson_2d", scale=10)
    with pytest.raises(ValueError, match="poisson_2d"):
        problems.hard_case("poisson", scale=TINY)


def test_rows_use_the_issue_parameters():
    rows = {r.name: r for r in problems.hard_suite(scale=TINY)}
    assert rows["checkerboard_2d"].params["contrast"] == 1e6
    assert rows["anisotropic_2d"].params["epsilon"] == 1e-3
    assert rows["anisotropic_2d"].params["theta"] == pytest.approx(np.pi / 6)
    assert rows["convdiff_vortex_2d"].params == {"n": 8, "eps": 1e-3, "velocity": "vortex"}
    k = dense(problems.diffusion_2d(8, coefficient="jumps", contrast=1e6))
    assert np.ptp(np.log10(np.abs(k[k != 0]))) > 5  # the 1e6 contrast reaches the matrix


# -- elasticity --------------------------------------------------------------------------


def _rigid_motions(n):
    """Translations in x and y and the rotation, on all (n+1)^2 nodes, interleaved dofs."""
    node = np.arange((n + 1) ** 2)
    x, y = (node % (n + 1)) / n, (node // (n + 1)) / n
    modes = np.zeros((2 * node.size, 3))
    modes[0::2, 0] = 1.0
    modes[1::2, 1] = 1.0
    modes[0::2, 2], modes[1::2, 2] = -y, x
    return modes


def test_elasticity_free_operator_has_exactly_the_rigid_motions_as_null_space():
    n = 4
    K = hard._q1_stiffness(n, 1.0, 0.3)
    assert abs(K - K.T).max() < 1e-14
    assert np.abs(K @ _rigid_motions(n)).max() < 1e-12
    w = np.linalg.eigvalsh(K.toarray())
    assert np.all(np.abs(w[:3]) < 1e-12) and w[3] > 1e-3  # three zero modes, no more


def test_elasticity_clamped_is_spd_and_matches_its_coordinates():
    n = 4
    A = problems.elasticity_2d(n)
    assert A.shape == (2 * n * (n + 1),) * 2
    w = np.linalg.eigvalsh(A.toarray())
    assert w[0] > 1e-3  # the clamp removed the null space
    xy = problems.elasticity_2d_coords(n)
    assert xy.shape == (A.shape[0], 2)
    assert np.all(xy[:, 0] > 0)  # no clamped (x = 0) node is left
    assert np.array_equal(xy[0::2], xy[1::2])  # both dofs of a node share its point
    # A patch test: a uniform stretch u = (x, 0) has zero interior forces.
    K = hard._q1_stiffness(n, 1.0, 0.3)
    node = np.arange((n + 1) ** 2)
    u = np.zeros(2 * node.size)
    u[0::2] = (node % (n + 1)) / n
    f = (K @ u).reshape(-1, 2)
    i, j = node % (n + 1), node // (n + 1)
    interior = (i > 0) & (i < n) & (j > 0) & (j < n)
    assert np.abs(f[interior]).max() < 1e-12


def test_elasticity_rejects_bad_parameters():
    with pytest.raises(ValueError, match="nu"):
        problems.elasticity_2d(4, nu=0.5)
    with pytest.raises(ValueError, match="E"):
        problems.elasticity_2d(4, E=-1.0)
    with pytest.raises((ValueError, TypeError), match="n"):
        problems.elasticity_2d(0)


# -- the kernel --------------------------------------------------------------------------


def test_kernel_2d_is_the_exponential_kernel_of_its_points():
    A = problems.exponential_kernel_2d(40, length_scale=0.2, seed=3)
    X = problems.kernel_points_2d(40, seed=3)
    i, j = 5, 17
    assert A[i, j] == pytest.approx(np.exp(-np.linalg.norm(X[i] - X[j]) / 0.2))
    assert np.array_equal(A, A.T) and np.all(np.diag(A) == 1.0)
    assert np.linalg.eigvalsh(A)[0] > 0
    assert not np.array_equal(X, problems.kernel_points_2d(40, seed=4))
    with pytest.raises(ValueError, match="length_scale"):
        problems.exponential_kernel_2d(10, length_scale=0.0)


def test_docstring_examples_of_the_hard_module():
    result = doctest.testmod(hard, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -- the benchmark machinery --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_records():
    pytest.importorskip("torch")
    from _hard_suite.measure import METHODS, run_case

    records = []
    for method in METHODS:
        records += run_case("biharmonic_2d", method, TINY, warm=False)
    return records


def test_one_tiny_row_measures_every_method(tiny_records):
    from _hard_suite.measure import METHODS, RTOL

    by = {r["method"]: r for r in tiny_records}
    assert set(by) == set(METHODS) | {"learned_lu (start)", "learned_lu (solves=inf)"}
    A = problems.hard_case("biharmonic_2d", scale=TINY).A
    for name, r in by.items():
        assert "error" not in r and "skipped" not in r, r
        assert r["N"] == A.shape[0] and r["converged"] and r["residual"] <= 10 * RTOL
        assert r["total"] == pytest.approx(r["setup"] + r["solve"])
        assert r["factor_bytes"] > 0
    assert by["ict"]["solver"] == "cg" and by["ilut"]["solver"] == "gmres"
    assert by["direct"]["solver"] == "splu" and by["direct"]["its"] == 0
    t = by["learned_lu"]
    assert t["start_seconds"] + t["train_seconds"] <= t["setup"]
    assert by["learned_lu (start)"]["its"] >= 0
    many = by["learned_lu (solves=inf)"]
    # fitted again only where the default stopped at a pass it could not pay for
    assert many["fit_again"] == ("solves= raises that" in t["stop_reason"])
    if not many["fit_again"]:
        assert (many["its"], many["setup"]) == (t["its"], t["setup"])


def test_goals_and_page_follow_the_records(tiny_records, tmp_path):
    from _hard_suite.goals import evaluate
    from _hard_suite.page import write_page

    goals = write_page(tmp_path / "hard_suite.md", tiny_records, ["biharmonic_2d"],
                       quick=True, scale=TINY, seconds=1.0, timeout=60.0,
                       argv=["benchmarks/hard_suite.py", "--quick"])
    text = (tmp_path / "hard_suite.md").read_text()
    assert "Quick run" in text and "(best)**" in text and text.count("biharmonic_2d") >= 7
    by = {g.statement: g for g in goals}
    conv = next(g for s, g in by.items() if s.startswith("LearnedLU converges"))
    assert conv.met  # the tiny row converged (asserted above)
    for g in goals:
        assert f"**{g.verdict}**: {g.statement}" in text
    # The verdicts follow the numbers: make LearnedLU fail and its goals flip.
    broken = [dict(r, converged=False) if r["method"] == "learned_lu" else r
              for r in tiny_records]
    flipped = {g.statement: g for g in evaluate(broken, ["biharmonic_2d"])}
    assert not flipped[conv.statement].met
    amg = next(s for s in flipped if "AMG" in s)
    assert not flipped[amg].met


def test_goal_counts_on_crafted_records():
    from _hard_suite.goals import evaluate

    def rec(row, method, its, total, nbytes=100, **extra):
        return {"row": row, "method": method, "N": 10, "spd": True, "solver": "cg",
                "its": its, "converged": True, "setup": total / 2, "solve": total / 2,
                "total": total, "residual": 1e-9, "factor_bytes": nbytes, **extra}

    records = []
    for row, (start, trained) in {"a": (10, 5), "b": (10, 10)}.items():
        records += [rec(row, "learned_lu", trained, 1.0, start_seconds=0.2,
                        train_seconds=0.6, steps=3, best_step=1, stop_reason="x"),
                    rec(row, "learned_lu (start)", start, 0.5),
                    rec(row, "ict", 8, 3.0), rec(row, "direct", 0, 0.9)]
    training, idle, conv, incomplete, _, within, best = evaluate(records, ["a", "b"])
    assert training.met and "a: start 10, trained 5 (-50%): >= 30% fewer" in training.lines
    # 'b' gained nothing and its training took 0.6 s of a 0.5 s setup: over 20%.
    assert not idle.met and idle.summary.startswith("1 rows") and "b" in idle.summary
    assert conv.met
    assert incomplete.summary.startswith("1 of 2")  # 'a' beats ICT's 8, 'b' (10) does not
    assert within.met and not best.met  # direct (0.9 s) is the best total on both rows
    worse = [dict(r, its=12) if r["method"] == "learned_lu" and r["row"] == "b" else r
             for r in records]
    assert not evaluate(worse, ["a", "b"])[0].met  # more iterations than the start
    # the training goal reads the solves=inf fit where there is one (training
    # allowed on every row), the other goals the default fit
    many = [rec(row, "learned_lu (solves=inf)", 5, 9.0, start_seconds=0.2, train_seconds=8.0,
                steps=1, best_step=1, stop_reason="x") for row in ("a", "b")]
    training, _, _, _, _, within, _ = evaluate(records + many, ["a", "b"])
    assert training.met and "b: start 10, trained 5 (-50%): >= 30% fewer" in training.lines
    assert within.met  # judged on the default fits' totals, not the 9 s ones


def test_a_case_that_runs_too_long_is_reported_as_timed_out():
    from _hard_suite.measure import run_subprocess

    out = run_subprocess("poisson_2d", "ilu0", TINY, timeout=0.01)
    assert out == [{"row": "poisson_2d", "scale": TINY, "method": "ilu0",
                    "error": "timed out (0.01 s)", "timed_out": True}]


def test_learned_options_reach_the_fit_through_the_subprocess():
    from _hard_suite.measure import run_subprocess

    out = run_subprocess("poisson_2d", "learned_lu", TINY, timeout=120,
                         learned_options={"rank_tol": 0.3})
    trained = next(r for r in out if r["method"] == "learned_lu")
    assert trained["rank_tol"] == 0.3
    from learned_precond.lu.options import FitOptions

    default = run_subprocess("poisson_2d", "learned_lu", TINY, timeout=120)
    assert (next(r for r in default if r["method"] == "learned_lu")["rank_tol"]
            == FitOptions.rank_tol)


def test_learned_options_must_be_a_json_object():
    import hard_suite

    with pytest.raises(SystemExit):
        hard_suite.main(["--learned-options", "[1, 2]", "--rows", "poisson_2d"])
    with pytest.raises(SystemExit):
        hard_suite.main(["--learned-options", "rank_tol=1e-3", "--rows", "poisson_2d"])


def test_merit_table_and_rank_correlation(tiny_records):
    from _hard_suite.page import merit_correlation, merit_rows

    t = next(r for r in tiny_records if r["method"] == "learned_lu")
    assert t["merit_start"] >= 0 and t["merit"] >= 0  # the nested layout records them
    rows = merit_rows(tiny_records, ["biharmonic_2d"])
    assert rows[0][0] == "biharmonic_2d" and rows[0][2] == str(
        next(r for r in tiny_records if r["method"] == "learned_lu (start)")["its"])
    assert "Too few pairs (2)" in merit_correlation(tiny_records, ["biharmonic_2d"])
    # three rows whose merit orders the fits as the iterations do: rho = 1
    fake = []
    for k, row in enumerate(["a", "b", "c"]):
        fake += [dict(t, row=row, merit_start=10.0 + k, merit=5.0 + k, its=5 + k),
                 {"row": row, "method": "learned_lu (start)", "its": 10 + k,
                  "converged": True, "solver": "cg"}]
    assert "**1.00**" in merit_correlation(fake, ["a", "b", "c"])
    reversed_ = [dict(r, its=20 - r["its"]) for r in fake]
    assert "**-1.00**" in merit_correlation(reversed_, ["a", "b", "c"])
