"""The dense layout (HODLR factors of a dense A with coordinates, issue 15's kernel row)."""

import numpy as np
import pytest
import scipy.sparse as sp

from learned_precond import LearnedLU
from learned_precond._hodlr import (_keeps_definite, coordinate_tree, gather,
                                    gather_reference, hodlr_factorization)
from learned_precond.exceptions import PreconditionerSetupError
from learned_precond.krylov import solve
from learned_precond.lu.dense import DENSE_MIN_N, DenseLearnedLU
from learned_precond.problems.hard import exponential_kernel_2d, kernel_points_2d


@pytest.fixture(scope="module")
def kernel():
    return exponential_kernel_2d(1024), kernel_points_2d(1024)


def test_gather_matches_reference():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 50))
    I, J = rng.integers(0, 50, 17), rng.integers(0, 50, 23)
    np.testing.assert_array_equal(gather(A, I, J), gather_reference(A, I, J))
    F = np.asfortranarray(A)  # the numpy path
    np.testing.assert_array_equal(gather(F, I, J), gather_reference(A, I, J))


def test_coordinate_tree_is_a_balanced_permutation():
    X = np.random.default_rng(1).random((1000, 2))
    perm, splits = coordinate_tree(X, 100)
    assert np.array_equal(np.sort(perm), np.arange(1000))
    for (lo, hi), mid in splits.items():
        assert abs((mid - lo) - (hi - mid)) <= 1
        assert mid - lo > 0 and hi - mid > 0


@pytest.mark.parametrize("symmetric", [True, False])
def test_exact_tolerance_is_the_inverse(kernel, symmetric):
    A, X = kernel
    if not symmetric:
        A = A + np.triu(A, 1) * 0.3  # nonsymmetric, still well posed
    perm, f = hodlr_factorization(A, X, leaf_size=64, tol=0.0, symmetric=symmetric)
    Ap = A[np.ix_(perm, perm)]
    B = np.random.default_rng(2).standard_normal((A.shape[0], 3))
    np.testing.assert_allclose(Ap @ f.solve(B), B, atol=1e-8)
    np.testing.assert_allclose(Ap.T @ f.solve_transposed(B), B, atol=1e-8)
    assert f.stats["max_rank"] > 0 and f.stats["n_leaves"] == 16


def test_schur_test_flags_an_indefinite_coupling():
    # [[1, c], [c, 1]] is SPD iff |c| < 1: G = P^T A1^-1 P = c^2, H = 1
    one = np.ones((1, 1))
    assert _keeps_definite(0.9 * one, 0.9 * one, one, one)
    assert not _keeps_definite(1.1 * one, 1.1 * one, one, one)


def test_an_spd_rebuild_is_the_whole_tree_at_the_tighter_tolerance(kernel):
    # At tol 0.1 a node of this kernel loses definiteness: the whole tree is
    # rebuilt at 0.01, so the result is the direct build at 0.01 (same
    # seeded sketches, the exact leaves reused), not a tree whose subtrees
    # that passed stay at 0.1.
    A, X = kernel
    perm, f = hodlr_factorization(A, X, leaf_size=64, tol=0.1, symmetric=True)
    perm0, f0 = hodlr_factorization(A, X, leaf_size=64, tol=0.01, symmetric=True)
    assert f.stats["spd_retries"] == 1 and f.stats["tol"] == pytest.approx(0.01)
    assert f0.stats["spd_retries"] == 0
    assert f.stats["n_nodes"] > f0.stats["n_nodes"]  # the first attempt's nodes count
    np.testing.assert_array_equal(perm, perm0)
    assert f.stats["ranks_by_level"] == f0.stats["ranks_by_level"]
    B = np.random.default_rng(3).standard_normal((A.shape[0], 2))
    np.testing.assert_array_equal(f.solve(B), f0.solve(B))


def test_spd_kernel_gives_an_spd_preconditioner_for_cg(kernel):
    A, X = kernel
    M = LearnedLU.fit(A, init="hodlr", coords=X, seed=0)
    assert isinstance(M, DenseLearnedLU) and M.symmetric and M.factors.symmetric
    D = M @ np.eye(A.shape[0])
    np.testing.assert_allclose(D, D.T, atol=1e-10 * abs(D).max())
    assert np.linalg.eigvalsh((D + D.T) / 2).min() > 0
    b = np.ones(A.shape[0])
    r = solve(A, b, M, method="cg", rtol=1e-8)
    plain = solve(A, b, None, method="cg", rtol=1e-8, maxiter=2000)
    assert r.converged and r.iterations * 5 < plain.iterations
    rep = M.report
    assert rep.init == "hodlr" and rep.start_seconds > 0 and rep.fit_time >= rep.start_seconds
    assert M.nbytes < A.nbytes / 2  # compressed (ranks 18 and 9 at this size)
    assert "HODLR" in repr(M)


def test_auto_uses_the_dense_layout_from_its_size():
    A, X = exponential_kernel_2d(DENSE_MIN_N), kernel_points_2d(DENSE_MIN_N)
    M = LearnedLU.fit(A, coords=X, seed=0, max_steps=0)
    assert isinstance(M, DenseLearnedLU)
    assert M.report.stop_reason == "max_steps=0"
    small = exponential_kernel_2d(64)
    assert not isinstance(LearnedLU.fit(small, coords=kernel_points_2d(64), seed=0,
                                        max_steps=2), DenseLearnedLU)


def test_nonsymmetric_dense_uses_lu_and_gmres(kernel):
    A, X = kernel
    A = A + 0.2 * np.triu(A, 1)
    # max_steps=0: the start alone (whether a training pass runs depends on timings)
    M = LearnedLU.fit(A, init="hodlr", coords=X, seed=0, max_steps=0)
    assert not M.symmetric
    b = np.ones(A.shape[0])
    r = solve(A, b, M, method="gmres", rtol=1e-8)
    plain = solve(A, b, None, method="gmres", rtol=1e-8, maxiter=500)
    assert r.converged and not plain.converged and r.iterations < 150
    tight = LearnedLU.fit(A, init="hodlr", coords=X, seed=0, rank_tol=1e-4, max_steps=0)
    assert solve(A, b, tight, method="gmres", rtol=1e-8).iterations * 3 < r.iterations
    x, y = np.random.default_rng(3).standard_normal((2, A.shape[0]))
    assert np.isclose(y @ (M @ x), M.rmatvec(y) @ x, rtol=1e-8)


def test_without_coords_orders_by_index_and_says_so(kernel):
    A, _ = kernel
    M = LearnedLU.fit(A, init="hodlr", seed=0, max_steps=0)
    assert M.report.ordering == "index_bisection"
    assert any("coords" in note for note in M.report.notes)
    assert np.all(np.isfinite(M @ np.ones(A.shape[0])))


def test_dense_layout_errors_are_clear(kernel, tmp_path):
    A, X = kernel
    with pytest.raises(ValueError, match="dense ndarray"):
        LearnedLU.fit(sp.csr_array(A), init="hodlr")
    M = LearnedLU.fit(A, init="hodlr", coords=X, seed=0, max_steps=0)
    with pytest.raises(NotImplementedError, match="dense"):
        M.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="cannot warm-start"):
        LearnedLU.fit(A, init=M)
    with pytest.raises(PreconditionerSetupError, match="time_budget"):
        LearnedLU.fit(A, init="hodlr", coords=X, rank_tol=0.0, time_budget=1e-3)


@pytest.mark.parametrize("decay", ["fast", "slow"])
def test_range_finder_skips_its_power_step_only_when_the_sample_misses_little(decay):
    # A block with singular values 0.5^i (fast) needs no power step; one with
    # 1/(i+1) (slow) has a tail beyond any sample that a power step reduces.
    # Either way the compression is close to the optimal truncation.
    from learned_precond._hodlr import _Builder

    rng = np.random.default_rng(7)
    n = 300
    U = np.linalg.qr(rng.standard_normal((n, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    i = np.arange(n)
    sv = 0.5 ** i if decay == "fast" else 1.0 / (i + 1)
    A = np.zeros((2 * n, 2 * n))
    A[:n, n:] = (U * sv) @ V.T
    idx = np.arange(2 * n)
    tol = 1e-2
    builder = _Builder(A, idx, {}, tol, None, False, None, 0, {})
    P, Q = builder.compress(idx[:n], idx[n:], 0, tol)
    assert (builder.power_steps == 0) == (decay == "fast")
    r = int(np.count_nonzero(sv > tol * sv[0]))
    assert abs(P.shape[1] - r) <= 0.1 * r  # (1/(i+1): 94 of 99 with the power step)
    err = np.linalg.norm(A[:n, n:] - P @ Q.T, 2)
    assert err <= 3 * tol * sv[0]


@pytest.mark.parametrize("pass_cost", [1e9, 0.0])
def test_training_stops_after_a_few_iterations_when_no_pass_can_pay(kernel, monkeypatch,
                                                                    pass_cost):
    # A tighter pass costs about a factorization (its stats' seconds, set
    # here so the decision does not depend on the clock): when the solve that
    # the first EARLY_ITERATIONS extrapolate to is cheaper, the run ends
    # there; otherwise the whole run is counted and a pass is tried.
    import learned_precond.lu.dense as dense

    def timed(*args, **kwargs):
        perm, factors = hodlr_factorization(*args, **kwargs)
        factors.stats["seconds"] = pass_cost
        return perm, factors

    monkeypatch.setattr(dense, "hodlr_factorization", timed)
    A, X = kernel
    M = LearnedLU.fit(A, init="hodlr", coords=X, seed=0)
    rep = M.report
    full, its, _ = dense._measure(A, M.perm, M.factors, True, 0, float("inf"))
    assert its > dense.EARLY_ITERATIONS
    if pass_cost:
        assert rep.steps == 0 and len(rep.val_history) == 1
        assert f"extrapolated from {dense.EARLY_ITERATIONS} iterations" in rep.stop_reason
        # the extrapolated merit is of the order of the counted one
        assert 0.5 * full <= rep.start_iterations <= 2 * full
    else:
        assert rep.steps >= 1 and "extrapolated" not in rep.stop_reason
        # the start's merit counted, not extrapolated
        assert rep.start_iterations == int(rep.start_iterations) > dense.EARLY_ITERATIONS
