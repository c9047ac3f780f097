"""Static pivoting and scaling (MC64-style matching, Ruiz equilibration)."""

import dataclasses
import itertools

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from contract import PreconditionerContract, convection_diffusion_2d, laplace_2d
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from learned_precond import (
    PreconditionerSetupError,
    StructurallySingularError,
    get_preconditioner,
    problems,
)
from learned_precond._validation import check_structure, diagonal_report
from learned_precond.krylov import solve
from learned_precond.pivoting import (
    PivotedPreconditioner,
    StaticPivoting,
    needs_pivoting,
    pivoted,
    static_pivoting,
)


def random_sparse(n, density, seed, *, zero_diagonal=False):
    """Random nonsymmetric matrix with a perfect matching and a wide range of magnitudes."""
    rng = np.random.default_rng(seed)
    A = sp.random_array((n, n), density=density, rng=rng, format="lil")
    # a perfect matching off the diagonal (a random cyclic shift of the rows)
    # that survives zero_diagonal
    perm = (np.arange(n) + rng.integers(1, n)) % n
    A[perm, np.arange(n)] = rng.uniform(0.5, 2.0, n)
    A = sp.csr_array(A)
    A.data *= np.exp(rng.uniform(-6, 6, A.nnz)) * rng.choice([-1.0, 1.0], A.nnz)
    if zero_diagonal:
        A.setdiag(0.0)
        A.eliminate_zeros()
    return A


def brute_force_max_product(A):
    """Largest prod_i |a_i,sigma(i)| over all permutations (small dense A)."""
    A = np.abs(np.asarray(A))
    n = A.shape[0]
    return max(np.prod(A[list(p), np.arange(n)]) for p in itertools.permutations(range(n)))


# -- the matching and the scaling ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_mc64_maximizes_the_diagonal_product(seed):
    A = random_sparse(6, 0.4, seed).toarray()
    piv = static_pivoting(A, method="mc64")
    product = np.prod(np.abs(A[piv.row_perm, np.arange(6)]))
    np.testing.assert_allclose(product, brute_force_max_product(A), rtol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_mc64_matches_dense_assignment(seed):
    A = random_sparse(60, 0.05, seed, zero_diagonal=True)
    piv = static_pivoting(A, method="mc64")
    dense = np.abs(A.toarray())
    with np.errstate(divide="ignore"):
        cost = np.where(dense > 0, -np.log(dense), np.inf)
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    best = -cost[rows, cols].sum()
    ours = np.log(dense[piv.row_perm, np.arange(60)]).sum()
    np.testing.assert_allclose(ours, best, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_mc64_scaling_gives_unit_diagonal_and_bounded_entries(seed):
    A = random_sparse(80, 0.06, seed, zero_diagonal=seed % 2 == 0)
    piv = static_pivoting(A, method="mc64")
    Ap = piv.apply(A)
    np.testing.assert_allclose(np.abs(Ap.diagonal()), 1.0, rtol=1e-12)
    assert np.max(np.abs(Ap.data)) <= 1.0 + 1e-12
    assert piv.method == "mc64"


def test_apply_is_Dr_P_A_Dc_for_sparse_and_dense():
    A = random_sparse(30, 0.1, 7, zero_diagonal=True)
    piv = static_pivoting(A, method="mc64")
    dense = A.toarray()
    P = np.eye(30)[piv.row_perm]
    expected = np.diag(piv.row_scale) @ P @ dense @ np.diag(piv.col_scale)
    Ap = piv.apply(A)
    assert isinstance(Ap, sp.csr_array)
    np.testing.assert_allclose(Ap.toarray(), expected, rtol=1e-14, atol=0)
    Ap_dense = piv.apply(dense)
    assert isinstance(Ap_dense, np.ndarray)
    np.testing.assert_allclose(Ap_dense, expected, rtol=1e-14, atol=0)


def test_dense_and_sparse_input_give_the_same_pivoting():
    A = random_sparse(40, 0.08, 3, zero_diagonal=True)
    a, b = static_pivoting(A, method="mc64"), static_pivoting(A.toarray(), method="mc64")
    np.testing.assert_array_equal(a.row_perm, b.row_perm)
    np.testing.assert_allclose(a.row_scale, b.row_scale, rtol=1e-13)
    np.testing.assert_allclose(a.col_scale, b.col_scale, rtol=1e-13)


@pytest.mark.parametrize("method", ["mc64", "scale", "none"])
def test_wrapped_exact_inverse_is_the_inverse_of_A(method):
    """M = D_c A'^-1 D_r P equals A^-1; M^T = P^T D_r A'^-T D_c equals A^-T."""
    A = random_sparse(25, 0.15, 11, zero_diagonal=method == "mc64")
    if method != "mc64":
        A = A + sp.eye_array(25) * 1e3
    piv = static_pivoting(A, method=method)
    Ap = piv.apply(A).toarray()
    X = np.random.default_rng(0).standard_normal((25, 3))
    Ainv_X = np.linalg.solve(A.toarray(), X)
    got = piv.wrap_solve(X, lambda V: np.linalg.solve(Ap, V))
    np.testing.assert_allclose(got, Ainv_X, rtol=1e-8, atol=1e-10 * np.abs(Ainv_X).max())
    got_vec = piv.wrap_solve(X[:, 0], lambda v: np.linalg.solve(Ap, v))
    np.testing.assert_allclose(got_vec, got[:, 0], rtol=1e-13)
    AinvT_X = np.linalg.solve(A.toarray().T, X)
    got_t = piv.wrap_solve_adjoint(X, lambda V: np.linalg.solve(Ap.T, V))
    np.testing.assert_allclose(got_t, AinvT_X, rtol=1e-8, atol=1e-10 * np.abs(AinvT_X).max())


def test_to_and_from_prime_are_the_documented_maps():
    piv = StaticPivoting(np.array([2, 0, 1]), np.array([1.0, 2.0, 4.0]), np.array([3.0, 5.0, 7.0]))
    x = np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(piv.to_prime(x), [30.0, 20.0, 80.0])  # D_r P x
    np.testing.assert_array_equal(piv.from_prime(x), [30.0, 100.0, 210.0])  # D_c y
    np.testing.assert_array_equal(piv.to_prime_adjoint(x), [30.0, 100.0, 210.0])
    # P^T D_r y: y scaled to [10, 40, 120], then row i goes back to old row row_perm[i]
    np.testing.assert_array_equal(piv.from_prime_adjoint(x), [40.0, 120.0, 10.0])
    np.testing.assert_array_equal(piv.inverse_perm, [1, 2, 0])
    with pytest.raises(ValueError, match="length 3"):
        piv.to_prime(np.ones(4))


def test_mc64_keeps_an_optimal_diagonal_and_symmetry():
    A = convection_diffusion_2d(8) + convection_diffusion_2d(8).T  # symmetric, strong diagonal
    piv = static_pivoting(A, method="mc64")
    np.testing.assert_array_equal(piv.row_perm, np.arange(A.shape[0]))
    assert piv.preserves_symmetry
    Ap = piv.apply(A)
    assert abs(Ap - Ap.T).max() == 0.0
    np.testing.assert_allclose(np.abs(Ap.diagonal()), 1.0, rtol=1e-12)
    assert np.max(np.abs(Ap.data)) <= 1.0 + 1e-12


def test_mc64_prefers_the_identity_on_ties():
    # every permutation of an all-ones-magnitude matrix has the same product
    A = np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0], [-1.0, 1.0, 1.0]])
    piv = static_pivoting(A, method="mc64")
    np.testing.assert_array_equal(piv.row_perm, [0, 1, 2])


def test_ruiz_scaling_equilibrates_and_keeps_symmetry():
    rng = np.random.default_rng(5)
    d = np.exp(rng.uniform(-8, 8, 64))
    A = sp.csr_array(sp.diags_array(d) @ laplace_2d(8) @ sp.diags_array(d))
    piv = static_pivoting(A, method="scale")
    np.testing.assert_array_equal(piv.row_perm, np.arange(64))
    np.testing.assert_array_equal(piv.row_scale, piv.col_scale)
    assert piv.preserves_symmetry
    Ap = piv.apply(A)
    assert abs(Ap - Ap.T).max() == 0.0
    row_max = abs(Ap).max(axis=1).toarray()
    col_max = abs(Ap).max(axis=0).toarray()
    assert np.all(np.abs(np.log(row_max)) <= np.log(1.05) + 1e-12)
    assert np.all(np.abs(np.log(col_max)) <= np.log(1.05) + 1e-12)
    # the scaled matrix is well scaled although A spans 1e-7 .. 1e7
    assert np.max(np.abs(Ap.data)) / np.min(np.abs(Ap.data)) < 10


def test_none_is_the_identity():
    A = laplace_2d(4)
    piv = static_pivoting(A, method="none")
    assert piv.is_identity and piv.method == "none"
    np.testing.assert_array_equal(piv.apply(A).toarray(), A.toarray())


# -- deciding: needs_pivoting and method='auto' -----------------------------------------------


def test_needs_pivoting_zero_diagonal_names_the_first_row():
    A = laplace_2d(4).tolil()
    A[5, 5] = 0.0
    needed, reason = needs_pivoting(sp.csr_array(A))
    assert needed
    assert "1 of 16 diagonal entries are zero" in reason and "row 5" in reason


def test_needs_pivoting_weak_diagonal_fraction():
    A = laplace_2d(10).tolil()  # N = 100
    A[3, 3] = 1e-5  # one weak row: 1% is tolerated
    needed, reason = needs_pivoting(sp.csr_array(A))
    assert not needed and "weak in 1 of 100" in reason
    A[7, 7] = 1e-5
    needed, reason = needs_pivoting(sp.csr_array(A))
    assert needed and "2 of 100" in reason
    assert not needs_pivoting(laplace_2d(10))[0]


def test_auto_picks_mc64_only_when_needed():
    assert static_pivoting(laplace_2d(6)).method == "none"
    A = random_sparse(40, 0.1, 2, zero_diagonal=True)
    piv = static_pivoting(A)
    assert piv.method == "mc64" and piv.reason.startswith("auto:")


def test_diagonal_report_counts_missing_stored_zero_and_weak():
    # [[0, 1, 0], [1, 1e-6, 0], [0, 0, 2]] with a *stored* zero at (0, 0)
    A = sp.csr_array(
        (np.array([0.0, 1.0, 1.0, 1e-6, 2.0]), np.array([0, 1, 0, 1, 2]), np.array([0, 2, 4, 5])),
        shape=(3, 3),
    )
    report = diagonal_report(A)
    assert (report.missing, report.explicit_zero, report.weak) == (0, 1, 1)
    assert report.zero == 1 and report.first_zero == 0
    B = sp.csr_array(np.array([[0.0, 1.0], [1.0, 1.0]]))
    assert diagonal_report(B).missing == 1
    assert diagonal_report(B.toarray()).explicit_zero == 1


# -- errors --------------------------------------------------------------------------------------


def test_empty_row_is_structurally_singular():
    A = laplace_2d(4).tolil()
    A[6, :] = 0.0
    A = sp.csr_array(A)
    with pytest.raises(StructurallySingularError, match="row 6 has no nonzero"):
        static_pivoting(A, method="mc64")
    with pytest.raises(ValueError, match="row 6"):
        check_structure(A)


def test_empty_column_counts_explicit_zeros_as_empty():
    A = laplace_2d(4)
    A = A.copy()
    A.data[A.indices == 2] = 0.0  # stored, but all zero
    with pytest.raises(StructurallySingularError, match="column 2 has no nonzero"):
        static_pivoting(A, method="mc64")


def test_no_perfect_matching_is_structurally_singular():
    # no empty row or column, but rows 0 and 1 only reach column 0
    A = sp.csr_array(np.array([[1.0, 0, 0], [2.0, 0, 0], [3.0, 4.0, 5.0]]))
    with pytest.raises(StructurallySingularError, match="structural rank is 2 < N = 3"):
        static_pivoting(A, method="mc64")


def test_bad_method_and_operator():
    with pytest.raises(ValueError, match="unknown pivoting method 'mc65'"):
        static_pivoting(laplace_2d(3), method="mc65")
    op = aslinearoperator(laplace_2d(3))
    with pytest.raises(ValueError, match="LinearOperator"):
        static_pivoting(op, method="mc64")
    assert static_pivoting(op, method="auto").is_identity


def test_static_pivoting_is_frozen_and_validated():
    piv = static_pivoting(random_sparse(10, 0.3, 1, zero_diagonal=True), method="mc64")
    with pytest.raises(dataclasses.FrozenInstanceError):
        piv.row_perm = np.arange(10)
    with pytest.raises(ValueError, match="read-only"):
        piv.row_scale[0] = 2.0
    again = StaticPivoting.from_arrays(piv.as_arrays())
    np.testing.assert_array_equal(again.row_perm, piv.row_perm)
    np.testing.assert_array_equal(again.col_scale, piv.col_scale)
    with pytest.raises(ValueError, match="not a permutation"):
        StaticPivoting(np.array([0, 0, 1]), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        StaticPivoting(np.arange(3), np.array([1.0, 0.0, 1.0]), np.ones(3))
    with pytest.raises(ValueError, match="computed for a 10x10"):
        piv.apply(laplace_2d(3))
    assert "mc64" in repr(piv) and "N=10" in repr(piv)


# -- the shared real matrices ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["west0479", "tumorAntiAngiogenesis_2"])
def test_pivoting_makes_ilu0_possible_on_real_matrices(name):
    A = problems.get(name)
    n = A.shape[0]
    assert needs_pivoting(A)[0]
    with pytest.raises(PreconditionerSetupError, match="diagonal|pivot"):
        get_preconditioner("ilu0").fit(A)
    piv = static_pivoting(A)
    assert piv.method == "mc64"
    Ap = piv.apply(A)
    assert np.all(Ap.diagonal() != 0)
    get_preconditioner("ilu0").fit(Ap)  # builds now
    b = A @ np.ones(n)
    result = solve(A, b, pivoted("ilu0", A), rtol=1e-8, maxiter=2000)
    assert result.converged, result
    assert result.iterations <= 150  # measured: 76 (west0479), 12 (tumorAntiAngiogenesis_2)
    assert result.relative_residual <= 1e-8
    assert not solve(A, b, None, rtol=1e-8, maxiter=2000).converged


def test_steam2_is_only_rescaled():
    # 25% of its diagonal entries are below 1e-3 of their row maximum, but the
    # diagonal is the largest entry of each column: no row moves.
    A = problems.get("steam2")
    piv = static_pivoting(A)
    assert piv.method == "mc64"
    np.testing.assert_array_equal(piv.row_perm, np.arange(A.shape[0]))
    result = solve(A, A @ np.ones(A.shape[0]), pivoted("ilu0", A), rtol=1e-8, maxiter=2000)
    assert result.converged and result.iterations <= 5


# -- the wrapper passes the preconditioner contract --------------------------------------------


class _PivotedILU0:
    name = "ilu0+pivoting"

    @classmethod
    def fit(cls, A, **options):
        return pivoted("ilu0", A, pivoting="mc64", **options)


class TestPivotedILU0(PreconditionerContract):
    preconditioner = _PivotedILU0
    cases = ("vardiff2d-32", "convdiff2d-32")


class _ScaledJacobi:
    name = "jacobi+scale"

    @classmethod
    def fit(cls, A, **options):
        return pivoted(get_preconditioner("jacobi"), A, pivoting="scale", **options)


class TestScaledJacobi(PreconditionerContract):
    preconditioner = _ScaledJacobi
    cases = ("vardiff2d-32",)


def test_pivoted_wrapper_attributes():
    A = random_sparse(50, 0.08, 4, zero_diagonal=True)
    M = pivoted("ilut", A, drop_tol=0.0, fill_factor=30)
    assert isinstance(M, PivotedPreconditioner) and isinstance(M, LinearOperator)
    assert M.pivoting.method == "mc64"
    assert M.nbytes == M.inner.nbytes + M.pivoting.nbytes
    assert M.setup_time >= M.inner.setup_time
    assert not M.symmetric  # rows were permuted
    x = np.random.default_rng(1).standard_normal(50)
    # no dropping: ILUT is exact, so M = A^-1 up to cond(A) * eps
    np.testing.assert_allclose(M @ (A @ x), x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(M.rmatvec(A.T @ x), x, rtol=1e-6, atol=1e-8)
    assert "PivotedPreconditioner ILUT" in repr(M)
    S = pivoted("amg", laplace_2d(8), pivoting="scale")
    assert S.symmetric and S.has_adjoint  # D M' D with SPD M'
    given = static_pivoting(A, method="mc64")
    assert pivoted("ilu0", A, pivoting=given).pivoting is given
