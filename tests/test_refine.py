"""The nested layout's training (lu.refine) and its place as LearnedLU's default."""

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from contract import PreconditionerContract
from scipy.sparse.linalg import LinearOperator, aslinearoperator, cg, gmres

from learned_precond import FitConvergenceWarning, LearnedLU, problems
from learned_precond._hierarchical import hierarchical_factorization, nested_dissection
from learned_precond.krylov import solve
from learned_precond.lu import nested_fit, refine
from learned_precond.lu.nested import NestedLearnedLU


def _laplace(n):
    return sp.csr_array(problems.get("laplace_2d", n=n))


def _convdiff(n):
    return sp.csr_array(problems.get("convection_diffusion_2d", n=n, eps=1e-2,
                                     velocity="vortex"))


@pytest.fixture
def compress_every_coupling(monkeypatch):
    """These problems are small: without this, every coupling would be stored
    dense (:data:`DENSE_ENTRIES`), the start exact, and training idle."""
    from learned_precond._hierarchical import factorization

    monkeypatch.setattr(factorization, "DENSE_ENTRIES", 0)


class TestNestedLearnedLUContract(PreconditionerContract):
    """The default ``LearnedLU.fit(A)`` (nested layout for sparse A) keeps the contract."""

    preconditioner = "learned_lu"
    fit_options = {"seed": 0}
    cases = ("laplace2d-32", "convdiff2d-32")
    accepts_operator = True  # an operator falls back to the GFMM layout


@pytest.mark.parametrize("symmetric", [True, False])
def test_probes_make_the_factorization_exact_on_them(symmetric):
    A = _laplace(24) if symmetric else _convdiff(24)
    tree = nested_dissection(A, leaf_size=16)
    T = np.random.default_rng(0).standard_normal((A.shape[0], 5))
    f, _ = hierarchical_factorization(A, tree, tol=0.3, symmetric=symmetric, probes=T,
                                      dense_entries=0)
    f0, _ = hierarchical_factorization(A, tree, tol=0.3, symmetric=symmetric, dense_entries=0)
    # M A t = t on every probe (given in A's numbering; the factors are in the tree's)
    Ap = A[tree.perm][:, tree.perm]
    Tp = T[tree.perm]
    err = np.linalg.norm(f.solve(Ap @ Tp) - Tp) / np.linalg.norm(Tp)
    err0 = np.linalg.norm(f0.solve(Ap @ Tp) - Tp) / np.linalg.norm(Tp)
    assert err < 1e-10 < 1e-3 < err0


@pytest.mark.parametrize("make, method", [(_laplace, cg), (_convdiff, gmres)])
def test_training_lowers_the_iterations_of_a_coarse_start(make, method):
    A = make(48)
    M0 = LearnedLU.fit(A, rank_tol=0.3, seed=0, max_steps=0)
    M = LearnedLU.fit(A, rank_tol=0.3, seed=0, solves=math.inf)
    assert isinstance(M, NestedLearnedLU)
    rep = M.report
    assert rep.steps >= 1 and rep.best_step >= 1 and M.probes is not None
    assert rep.iterations <= 0.7 * rep.start_iterations
    # the merit is a Krylov count: a fixed rhs agrees with it
    b = np.ones(A.shape[0])
    its = {}
    for name, P in (("start", M0), ("trained", M)):
        count = []
        x, info = method(A, b, M=P, rtol=1e-8, maxiter=500, callback=lambda _: count.append(1),
                         **({"callback_type": "pr_norm"} if method is gmres else {}))
        assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-7 * np.linalg.norm(b)
        its[name] = len(count)
    assert its["trained"] < its["start"]
    # the split of the fit's time is recorded
    assert rep.start_seconds > 0 and rep.train_seconds > 0
    assert rep.start_seconds + rep.train_seconds <= rep.fit_time + 1e-9
    assert rep.hierarchical["probes"] == M.probes.shape[1]


@pytest.mark.parametrize("make", [_laplace, _convdiff])
def test_a_pass_that_cannot_pay_for_one_solve_is_not_tried(make):
    # The coarse start above: at best a pass saves (merit - 3) iterations of
    # one solve, less than a refactorization costs in the same count (the
    # tree's flops, FLOPS_PER_ENTRY to an entry read): the default (one
    # solve) keeps the start, deterministically; many solves train it.
    A = make(48)
    M = LearnedLU.fit(A, rank_tol=0.3, seed=0)
    rep = M.report
    assert rep.steps == 0 and M.probes is None
    assert "more than it could save over one solve" in rep.stop_reason
    assert "solves= raises that" in rep.stop_reason
    again = LearnedLU.fit(A, rank_tol=0.3, seed=0)
    assert again.report.stop_reason == rep.stop_reason  # counted, not timed
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    np.testing.assert_array_equal(again @ x, M @ x)
    many = LearnedLU.fit(A, rank_tol=0.3, seed=0, solves=1000)
    assert many.report.steps >= 1 and many.report.iterations < rep.iterations


def test_a_start_that_cannot_pay_stops_its_run_after_early_check_iterations(monkeypatch):
    # 2-D Poisson at rank_tol 1e-2: 3 iterations extrapolate to far fewer
    # than a pass would need to pay for one solve, so the start's run (most
    # of what training costs) ends there, its merit extrapolated
    A = _laplace(64)
    monkeypatch.setattr(refine, "EARLY_GAIN", -1.0)  # the Ritz test never stops it
    M = LearnedLU.fit(A, seed=0)
    rep = M.report
    assert rep.steps == 0 and "could save over one solve" in rep.stop_reason
    assert rep.start_iterations != round(rep.start_iterations)  # extrapolated from 3
    full = LearnedLU.fit(A, seed=0, solves=math.inf).report
    assert full.start_iterations == round(full.start_iterations) > refine.EARLY_CHECK
    stats = M.report.hierarchical
    assert stats["work"] > 0


def test_solves_must_be_a_real_at_least_one():
    A = _laplace(8)
    with pytest.raises(ValueError, match="solves must be >= 1"):
        LearnedLU.fit(A, solves=0.5)
    with pytest.raises(TypeError, match="solves must be a number"):
        LearnedLU.fit(A, solves="many")
    with pytest.raises(ValueError, match="solves must be positive"):
        LearnedLU.fit(A, solves=-1)
    assert LearnedLU.fit(A, solves=math.inf, seed=0).report.converged


def test_trained_cholesky_stays_spd(compress_every_coupling):
    A = _laplace(24)
    M = LearnedLU.fit(A, rank_tol=0.3, seed=0, solves=math.inf)
    assert M.symmetric and M.report.best_step >= 1
    D = M @ np.eye(A.shape[0])
    assert np.allclose(D, D.T, atol=1e-12 * np.abs(D).max())
    assert np.linalg.eigvalsh((D + D.T) / 2).min() > 0


def test_a_strong_start_is_not_trained():
    # rank_tol=0 is the exact factorization: nothing to gain, and training stops
    # before any refactorization (so it costs a small share of the fit).
    A = _laplace(32)
    M = LearnedLU.fit(A, rank_tol=0.0, seed=0)
    rep = M.report
    assert rep.steps == 0 and M.probes is None
    assert rep.iterations <= refine.FEW_ITERATIONS
    assert "nothing to gain" in rep.stop_reason


def test_max_steps_zero_is_the_start():
    A = _laplace(32)
    M = LearnedLU.fit(A, rank_tol=0.3, seed=0, max_steps=0)
    assert M.report.steps == 0 and M.report.stop_reason == "max_steps=0"
    assert M.probes is None and M.report.train_seconds < 0.5 * M.report.fit_time + 0.05


def test_a_pass_that_gains_too_little_is_not_kept():
    # A fake refactorization that returns the start again: no gain, start kept.
    A = _laplace(24)
    tree = nested_dissection(A, leaf_size=16)
    Ap = sp.csr_array(A[tree.perm][:, tree.perm])
    start = hierarchical_factorization(A, tree, tol=0.5, symmetric=True, dense_entries=0)
    calls = []

    def factorize(probes):
        calls.append(probes.shape)
        return start

    result = refine.train_nested(Ap, factorize, lambda f: f.solve, *start, symmetric=True,
                                 time_limit=30.0, max_passes=3, seed=0)
    assert len(calls) == 1 and result.passes == 1 and result.kept_passes == 0
    assert result.factors is start[0] and result.probes is None
    assert "saved less than 10%" in result.stop_reason
    assert result.merit == result.start_merit


def test_a_pass_is_kept_by_solve_work_not_iterations_alone():
    # A pass that converges in fewer iterations but reads far more factor
    # entries per iteration costs the user more per solve: not kept.
    A = _laplace(24)
    tree = nested_dissection(A, leaf_size=16)
    Ap = sp.csr_array(A[tree.perm][:, tree.perm])
    # factors of A in the tree's numbering: they act on Ap's vectors
    start = hierarchical_factorization(A, tree, tol=0.5, symmetric=True, dense_entries=0)
    exact, stats = hierarchical_factorization(A, tree, tol=0.0, symmetric=True)
    heavy = dict(stats, floats_per_unknown=1e4)
    for pass_stats, kept in ((stats, 1), (heavy, 0)):
        result = refine.train_nested(Ap, lambda probes: (exact, pass_stats), lambda f: f.solve,
                                     *start, symmetric=True, time_limit=30.0, max_passes=1,
                                     seed=0)
        assert result.passes == 1 and result.kept_passes == kept, result.stop_reason
        assert result.merit_history[1] < 0.5 * result.start_merit  # fewer iterations either way
    assert "the work" in result.stop_reason


def test_the_start_run_stops_at_its_cap(monkeypatch):
    # A slow start's Krylov run stops after START_RUN_CAP iterations; its
    # merit is extrapolated from the residual reached (more than the cap), and
    # the slow modes of those iterations still give a pass that gains.
    monkeypatch.setattr(refine, "START_RUN_CAP", 6)
    A = _laplace(32)
    tree = nested_dissection(A, leaf_size=16)
    Ap = sp.csr_array(A[tree.perm][:, tree.perm])
    start = hierarchical_factorization(A, tree, tol=0.5, symmetric=True, dense_entries=0)
    applied = {}

    def apply_of(f):
        def apply(x):
            applied[id(f)] = applied.get(id(f), 0) + 1
            return f.solve(x)
        return apply

    def factorize(probes):
        return hierarchical_factorization(A, tree, tol=0.5, symmetric=True, probes=probes,
                                          dense_entries=0)

    result = refine.train_nested(Ap, factorize, apply_of, *start, symmetric=True,
                                 time_limit=30.0, max_passes=1, seed=0)
    assert applied[id(start[0])] <= refine.START_RUN_CAP + 1
    assert result.start_merit > refine.START_RUN_CAP
    assert result.kept_passes == 1 and result.merit < result.start_merit


def test_a_start_with_nothing_to_gain_is_measured_in_early_check_iterations(
        compress_every_coupling, monkeypatch):
    # Its Ritz values after EARLY_CHECK iterations already predict no gain:
    # the run stops there (merit extrapolated, not counted) and training ends
    # as the full run would have ended it, without a refactorization.
    # (solves=inf: with the default, a pass that cannot pay for one solve
    # stops it first, see test_a_pass_that_cannot_pay_for_one_solve_is_not_tried)
    A = _laplace(48)
    M = LearnedLU.fit(A, rank_tol=0.03, seed=0, solves=math.inf)
    rep = M.report
    assert rep.steps == 0 and "predict less than a 10% gain" in rep.stop_reason
    assert rep.start_iterations != round(rep.start_iterations)  # extrapolated
    check = refine.EARLY_CHECK
    monkeypatch.setattr(refine, "EARLY_CHECK", 10**6)  # no early check
    full = LearnedLU.fit(A, rank_tol=0.03, seed=0, solves=math.inf).report
    assert full.steps == 0 and full.stop_reason == rep.stop_reason
    assert full.start_iterations == round(full.start_iterations) > check


def test_time_limit_zero_keeps_the_start():
    A = _laplace(24)
    tree = nested_dissection(A, leaf_size=16)
    Ap = sp.csr_array(A[tree.perm][:, tree.perm])
    start = hierarchical_factorization(A, tree, tol=0.5, symmetric=True)
    result = refine.train_nested(Ap, lambda p: pytest.fail("refactored"), lambda f: f.solve,
                                 *start, symmetric=True, time_limit=0.0, max_passes=3)
    assert result.passes == 0 and result.factors is start[0]


def test_warm_start_reuses_the_tree_and_the_probes(compress_every_coupling):
    A = _laplace(40)
    M = LearnedLU.fit(A, rank_tol=0.3, seed=0, solves=math.inf)
    assert M.probes is not None
    A2 = sp.csr_array(A + sp.diags_array(np.linspace(0.0, 0.5, A.shape[0])))
    W = LearnedLU.fit(A2, init=M, rank_tol=0.3, seed=0, solves=math.inf)
    assert W.report.init == "warm_start" and W.tree is M.tree
    assert W.report.ordering == "nested_dissection (warm start)"
    assert W.report.start_iterations <= M.report.start_iterations
    r = solve(A2, A2 @ np.ones(A2.shape[0]), W, method="cg")
    assert r.converged
    # a matrix whose graph the old tree does not separate is ordered afresh
    rng = np.random.default_rng(0)
    i, j = rng.choice(A.shape[0], size=2, replace=False)
    bridge = sp.coo_array(([-0.1, -0.1], ([i, j], [j, i])), shape=A.shape)
    A3 = sp.csr_array(A + bridge)
    W3 = LearnedLU.fit(A3, init=M, rank_tol=0.3, seed=0)
    assert W3.tree is not M.tree and any("ordered afresh" in n for n in W3.report.notes)


def test_default_layout_rule():
    A = _laplace(16)
    assert isinstance(LearnedLU.fit(A, seed=0), NestedLearnedLU)
    assert LearnedLU.fit(A, seed=0).report.init == "hierarchical"
    # GFMM-only options, a LinearOperator, dense input, init='gfmm': the GFMM layout
    assert isinstance(LearnedLU.fit(A, seed=0, grid_shape=(16, 16)), NestedLearnedLU)
    for options in ({"ordering": "bisection"}, {"ordering": "geometric", "grid_shape": (16, 16)},
                    {"init": "gfmm"},
                    {"loss": "preconditioned"}, {"lr": 1e-3}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitConvergenceWarning)  # max_steps=2 on purpose
            M = LearnedLU.fit(A, seed=0, max_steps=2, **options)
        assert not isinstance(M, NestedLearnedLU), options
    assert not isinstance(LearnedLU.fit(aslinearoperator(A), seed=0, max_steps=2),
                          NestedLearnedLU)
    assert not isinstance(LearnedLU.fit(A.toarray(), seed=0, max_steps=2), NestedLearnedLU)
    from learned_precond.lu.options import FitOptions

    assert nested_fit.prefers_nested(A, FitOptions())
    assert not nested_fit.prefers_nested(sp.csr_array(np.ones((100, 100))), FitOptions())


def test_an_operator_cannot_ask_for_the_nested_layout():
    A = _laplace(8)
    op = LinearOperator(A.shape, matvec=lambda x: A @ x, dtype=np.float64)
    with pytest.raises(ValueError, match="entries"):
        LearnedLU.fit(op, init="hierarchical")


def test_a_warm_start_factors_once_and_orders_nothing(compress_every_coupling, monkeypatch):
    # The work a warm start saves, counted (not timed): no nested dissection,
    # and one factorization (on the inherited probes) before training.
    A = _laplace(40)
    M = LearnedLU.fit(A, rank_tol=0.3, seed=0, max_steps=0)
    M.probes = M.probes if M.probes is not None else \
        np.random.default_rng(0).standard_normal((A.shape[0], 4))
    calls = {"order": 0, "factor": []}
    real_nd, real_factor = nested_fit.nested_dissection, nested_fit._factorize

    def count_nd(*args, **kwargs):
        calls["order"] += 1
        return real_nd(*args, **kwargs)

    def count_factor(*args, **kwargs):
        calls["factor"].append(None if len(args) < 6 else args[5].shape[1])
        return real_factor(*args, **kwargs)

    monkeypatch.setattr(nested_fit, "nested_dissection", count_nd)
    monkeypatch.setattr(nested_fit, "_factorize", count_factor)
    A2 = sp.csr_array(A + sp.diags_array(np.linspace(0.0, 0.2, A.shape[0])))
    W = LearnedLU.fit(A2, init=M, rank_tol=0.3, seed=0, max_steps=0)
    assert calls["order"] == 0 and calls["factor"] == [M.probes.shape[1]]
    cold = LearnedLU.fit(A2, rank_tol=0.3, seed=0, max_steps=0)
    assert calls["order"] == 1
    b = A2 @ np.ones(A2.shape[0])
    its_warm = solve(A2, b, W, method="cg").iterations
    its_cold = solve(A2, b, cold, method="cg").iterations
    assert its_warm <= its_cold + 1


def test_warm_probes_give_way_to_new_modes_beyond_the_limit():
    A = _laplace(24)
    tree = nested_dissection(A, leaf_size=16)
    Ap = sp.csr_array(A[tree.perm][:, tree.perm])
    start = hierarchical_factorization(A, tree, tol=0.5, symmetric=True, dense_entries=0)
    old = np.random.default_rng(1).standard_normal((A.shape[0], refine.MAX_PROBES))
    seen = []

    def factorize(probes):
        seen.append(probes)
        return start

    refine.train_nested(Ap, factorize, lambda f: f.solve, *start, symmetric=True,
                        time_limit=30.0, max_passes=1, seed=0, probes=old)
    assert len(seen) == 1 and seen[0].shape[1] == refine.MAX_PROBES
    # the oldest columns went first: the newest inherited probe is kept, the oldest not
    cols = [tuple(c) for c in seen[0].T]
    assert tuple(old[:, -1]) in cols and tuple(old[:, 0]) not in cols


def test_progress_prints_each_stage_only_when_asked(capsys):
    A = _laplace(16)
    LearnedLU.fit(A, seed=0)
    assert capsys.readouterr().err == ""
    LearnedLU.fit(A, seed=0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    stages = [line.split("] ", 1)[1].split(":", 1)[0] for line in lines]
    assert stages[0] == "pivot" and stages[1] == "order" and stages[2] == "start"
    assert "train" in stages and stages[-1] == "done"
    assert all(line.startswith("LearnedLU.fit [") and " s] " in line for line in lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        LearnedLU.fit(A, seed=0, progress=True, init="gfmm", max_steps=2)
    stages = [line.split("] ", 1)[1].split(":", 1)[0]
              for line in capsys.readouterr().err.splitlines()]
    assert stages == ["pivot", "order", "start", "train", "done"]
    with pytest.raises(TypeError, match="progress"):
        LearnedLU.fit(A, progress="yes")


def test_the_ordering_obeys_the_time_budget():
    from learned_precond.exceptions import PreconditionerSetupError

    A = _laplace(40)
    with pytest.raises(TimeoutError, match="nested dissection"):
        nested_dissection(A, leaf_size=16, time_limit=0.0)
    with pytest.raises(PreconditionerSetupError, match="time_budget spent in the ordering"):
        LearnedLU.fit(A, time_budget=1e-9)
    tree = nested_dissection(A, leaf_size=16, time_limit=60.0)
    assert np.array_equal(tree.perm, nested_dissection(A, leaf_size=16).perm)
