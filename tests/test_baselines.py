"""Classical baselines: the shared contract, plus what is specific to each method."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from contract import PreconditionerContract, convection_diffusion_2d, laplace_2d, rhs
from scipy.sparse.linalg import LinearOperator, spilu, splu

from learned_precond import PreconditionerSetupError
from learned_precond.baselines._ilu_kernels import ilu0_reference
from learned_precond.baselines import AMG, ILU0, ILUT, ExactLU, Identity, Jacobi
from learned_precond.krylov import solve

# -- the contract, once per baseline ------------------------------------------------


class TestIdentity(PreconditionerContract):
    preconditioner = "none"
    compare_with_none = False
    holds_memory = False
    accepts_operator = True


class TestJacobi(PreconditionerContract):
    preconditioner = "jacobi"
    # constant diagonal: Jacobi is a scaled identity on the plain Laplacian
    no_gain_cases = ("laplace2d-32",)


class TestILU0(PreconditionerContract):
    preconditioner = "ilu0"
    cases = ("laplace2d-32", "vardiff2d-32", "convdiff2d-32")
    max_iterations = {("laplace2d-32", "gmres"): 40}


class TestILUT(PreconditionerContract):
    preconditioner = "ilut"
    cases = ("laplace2d-32", "convdiff2d-32")
    max_iterations = {("laplace2d-32", "gmres"): 10}


class TestILUTBasicDropRule(PreconditionerContract):
    preconditioner = "ilut"
    fit_options = {"drop_tol": 1e-3, "fill_factor": 5, "drop_rule": "basic"}
    cases = ("laplace2d-32",)


class TestAMG(PreconditionerContract):
    preconditioner = "amg"
    cases = ("laplace2d-32", "vardiff2d-32")
    max_iterations = {("laplace2d-32", "gmres"): 12, ("laplace2d-32", "cg"): 12}


class TestAMGNonsymmetric(PreconditionerContract):
    preconditioner = "amg"
    cases = ("convdiff2d-32", "laplace2d-32")
    max_iterations = {("convdiff2d-32", "gmres"): 15}


class TestAMGRugeStuben(PreconditionerContract):
    preconditioner = "amg"
    fit_options = {"method": "rs"}
    cases = ("laplace2d-32",)


class TestExactLU(PreconditionerContract):
    preconditioner = "exact"
    cases = ("laplace2d-32", "convdiff2d-32")
    exact_inverse = True
    max_iterations = {(c, m): 2 for c in cases for m in ("gmres", "bicgstab", "cg")}


class TestExactLUDense(PreconditionerContract):
    preconditioner = ExactLU
    cases = ("laplace2d-16",)
    dense_input = True
    exact_inverse = True
    max_iterations = {("laplace2d-16", m): 2 for m in ("gmres", "bicgstab", "cg")}


# -- helpers ---------------------------------------------------------------------------


def random_sparse(n, density, seed, *, dominance=1.0):
    """Random nonsymmetric sparse matrix with a full diagonal (sorted CSR)."""
    rng = np.random.default_rng(seed)
    R = sp.random_array((n, n), density=density, rng=rng, format="csr")
    R.data = rng.standard_normal(R.data.size)
    row_sums = np.abs(R).sum(axis=1)
    A = sp.csr_array(R + sp.diags_array(dominance * row_sums + 1.0))
    A.sort_indices()
    return A


def ilu0_dense(A):
    """Dense textbook ILU(0): Gaussian elimination that drops fill outside nnz(A)."""
    W = A.toarray()
    pattern = W != 0
    n = W.shape[0]
    for k in range(n - 1):
        for i in range(k + 1, n):
            if pattern[i, k]:
                W[i, k] /= W[k, k]
                for j in range(k + 1, n):
                    if pattern[i, j]:
                        W[i, j] -= W[i, k] * W[k, j]
    return np.tril(W, -1) + np.eye(n), np.triu(W)


# -- ILU(0) ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ilu0_matches_python_reference(seed):
    A = random_sparse(300, 0.02, seed, dominance=0.3)
    M = ILU0.fit(A)
    reference = ilu0_reference(A.indptr, A.indices, A.data)
    np.testing.assert_allclose(M.data, reference, rtol=1e-12, atol=1e-12 * np.abs(A.data).max())


def test_ilu0_matches_dense_textbook_elimination():
    A = random_sparse(40, 0.1, 3, dominance=0.2)
    L, U = ilu0_dense(A)
    M = ILU0.fit(A)
    np.testing.assert_allclose(M.L.toarray(), L, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(M.U.toarray(), U, rtol=1e-12, atol=1e-12)


def test_ilu0_product_matches_A_on_its_pattern():
    A = laplace_2d(12)
    M = ILU0.fit(A)
    LU = (M.L @ M.U).toarray()
    dense = A.toarray()
    on = dense != 0
    np.testing.assert_allclose(LU[on], dense[on], rtol=1e-13, atol=1e-13)
    # and the product does fill outside the pattern (so this is not exact LU)
    assert np.abs(LU[~on]).max() > 1e-3
    assert M.data.size == A.nnz  # no fill-in stored


def test_ilu0_of_tridiagonal_is_exact_lu():
    n = 50
    rng = np.random.default_rng(7)
    A = sp.diags_array(
        [rng.uniform(-1, 0, n - 1), rng.uniform(3, 4, n), rng.uniform(-1, 1, n - 1)],
        offsets=[-1, 0, 1],
        format="csr",
    )
    M = ILU0.fit(A)
    np.testing.assert_allclose((M.L @ M.U).toarray(), A.toarray(), rtol=1e-13, atol=1e-13)
    b = rng.standard_normal(n)
    np.testing.assert_allclose(M.matvec(b), scipy.linalg.solve(A.toarray(), b), rtol=1e-11)
    assert solve(A, b, M, method="gmres").iterations == 1


def test_ilu0_apply_and_transpose_are_triangular_solves():
    A = random_sparse(200, 0.03, 4, dominance=0.5)
    M = ILU0.fit(A)
    LU = (M.L @ M.U).toarray()
    X = np.random.default_rng(8).standard_normal((200, 4))
    np.testing.assert_allclose(M.matmat(X), np.linalg.solve(LU, X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(M.rmatmat(X), np.linalg.solve(LU.T, X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        M.rmatvec(X[:, 0]), np.linalg.solve(LU.T, X[:, 0]), rtol=1e-10, atol=1e-12
    )


def test_ilu0_dense_input_uses_nonzero_pattern():
    A = laplace_2d(6)
    np.testing.assert_allclose(ILU0.fit(A.toarray()).data, ILU0.fit(A).data, rtol=0, atol=0)


def test_ilu0_is_not_spilu_with_fill_factor_one():
    # scipy's spilu(fill_factor=1) is a thresholded, pivoted ILU, not ILU(0);
    # true ILU(0) needs several times fewer iterations on Poisson.
    A = laplace_2d(32)
    b = rhs(A.shape[0])
    ilu = spilu(A.tocsc(), fill_factor=1)
    spilu_op = LinearOperator(A.shape, matvec=ilu.solve, dtype=np.float64)
    its_spilu = solve(A, b, spilu_op, method="gmres").iterations
    its_ilu0 = solve(A, b, ILU0.fit(A), method="gmres").iterations
    assert 2 * its_ilu0 < its_spilu


def test_ilu0_cross_check_with_ilupp():
    ilupp = pytest.importorskip("ilupp")
    A = random_sparse(150, 0.04, 9, dominance=0.5)
    ours = ILU0.fit(A)
    theirs = ilupp.ILU0Preconditioner(sp.csr_matrix(A))
    x = np.random.default_rng(10).standard_normal(150)
    np.testing.assert_allclose(ours.matvec(x), theirs @ x, rtol=1e-10, atol=1e-12)


def test_ilu0_missing_diagonal_names_rows():
    A = laplace_2d(4).tolil()
    A[2, 2] = 0
    A[9, 9] = 0
    A = sp.csr_array(A)
    A.eliminate_zeros()
    with pytest.raises(PreconditionerSetupError, match=r"2, 9.*ilut.*static pivoting.*amg"):
        ILU0.fit(A)


def test_ilu0_zero_pivot_during_elimination_names_row():
    # u_11 = 1 - 1 * 1 = 0 although the diagonal of A is nonzero
    A = sp.csr_array(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 2.0]]))
    with pytest.raises(PreconditionerSetupError, match=r"row 1.*nonzero pivots.*ilut"):
        ILU0.fit(A)


def test_ilu0_stored_zero_diagonal_is_a_zero_pivot():
    A = sp.csr_array(
        (np.array([0.0, 1.0, 1.0, 1.0]), np.array([0, 1, 0, 1]), np.array([0, 2, 4])), shape=(2, 2)
    )
    with pytest.raises(PreconditionerSetupError, match="row 0"):
        ILU0.fit(A)


# -- Jacobi ------------------------------------------------------------------------------


def test_jacobi_is_inverse_diagonal():
    A = convection_diffusion_2d(8)
    x = np.random.default_rng(11).standard_normal(A.shape[0])
    np.testing.assert_allclose(Jacobi.fit(A).matvec(x), x / A.diagonal(), rtol=1e-15)


def test_jacobi_zero_diagonal_names_rows_and_fixes():
    A = np.diag([1.0, 0.0, 2.0, 0.0]) + np.eye(4, k=1)
    with pytest.raises(
        PreconditionerSetupError, match=r"2 row\(s\): 1, 3.*static pivoting.*'ilut' or 'amg'"
    ):
        Jacobi.fit(A)


def test_identity_returns_a_copy():
    M = Identity.fit(laplace_2d(3))
    x = np.arange(9.0)
    y = M.matvec(x)
    np.testing.assert_array_equal(y, x)
    y[0] = 42.0
    assert x[0] == 0.0


# -- ILUT --------------------------------------------------------------------------------


def test_ilut_with_no_dropping_is_exact():
    A = convection_diffusion_2d(10)
    M = ILUT.fit(A, drop_tol=0.0, fill_factor=50)
    x = np.random.default_rng(12).standard_normal(A.shape[0])
    np.testing.assert_allclose(M.matvec(A @ x), x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(M.rmatvec(A.T @ x), x, rtol=1e-10, atol=1e-10)


def test_ilut_singular_matrix_raises_setup_error():
    A = sp.csr_array(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(PreconditionerSetupError, match="ILUT failed.*drop_tol"):
        ILUT.fit(A)


@pytest.mark.parametrize("options", [{"drop_tol": -1.0}, {"drop_tol": 2.0}, {"fill_factor": 0.5}])
def test_ilut_rejects_bad_options(options):
    with pytest.raises(ValueError):
        ILUT.fit(laplace_2d(4), **options)


# -- AMG ---------------------------------------------------------------------------------


def test_amg_auto_picks_sa_for_symmetric_and_nsa_otherwise():
    sym = AMG.fit(laplace_2d(32))
    nonsym = AMG.fit(convection_diffusion_2d(32))
    assert sym.method == "sa" and sym.has_adjoint
    assert nonsym.method == "nsa" and not nonsym.has_adjoint
    assert "levels=" in repr(sym) and "'sa'" in repr(sym)


@pytest.mark.parametrize(
    ("method", "symmetric"), [("sa", True), ("rs", True), ("nsa", False), ("air", False)]
)
def test_amg_symmetry_of_the_cycle(method, symmetric):
    A = laplace_2d(12)
    M = AMG.fit(A, method=method)
    assert M.has_adjoint is symmetric and M.symmetric is symmetric
    dense = M.matmat(np.eye(A.shape[0]))
    asymmetry = np.abs(dense - dense.T).max() / np.abs(dense).max()
    assert bool(asymmetry < 1e-12) == symmetric


def test_amg_forced_sa_on_nonsymmetric_has_no_adjoint():
    M = AMG.fit(convection_diffusion_2d(16), method="sa")
    assert not M.has_adjoint
    with pytest.raises(NotImplementedError):
        M.rmatvec(np.ones(M.shape[0]))


def test_amg_beats_none_on_convection_diffusion():
    A = convection_diffusion_2d(32)
    b = rhs(A.shape[0])
    for method in ("nsa", "air", "rs"):
        result = solve(A, b, AMG.fit(A, method=method), method="gmres")
        assert result.converged and result.iterations <= 20, (method, result)


def test_amg_nbytes_counts_the_hierarchy():
    A = laplace_2d(32)
    M = AMG.fit(A)
    fine = A.data.nbytes + A.indices.nbytes + A.indptr.nbytes
    assert M.nbytes > fine
    assert M.operator_complexity > 1.0


@pytest.mark.parametrize("options", [{"method": "magic"}, {"cycle": "Z"}])
def test_amg_rejects_bad_options(options):
    with pytest.raises(ValueError):
        AMG.fit(laplace_2d(4), **options)


# -- exact LU ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gmres", "bicgstab", "bicg"])
def test_exact_lu_converges_in_at_most_two_iterations(method):
    A = convection_diffusion_2d(24)
    result = solve(A, rhs(A.shape[0]), ExactLU.fit(A), method=method, rtol=1e-10)
    assert result.converged and result.iterations <= 2


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_exact_lu_singular_raises(dense):
    A = sp.csr_array(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(PreconditionerSetupError, match="singular"):
        ExactLU.fit(A.toarray() if dense else A)


def test_exact_lu_natural_ordering_fills_more_than_colamd():
    A = laplace_2d(24)
    natural = ExactLU.fit(A, permc_spec="NATURAL")
    colamd = ExactLU.fit(A)
    assert natural.nnz > colamd.nnz
    assert natural.nnz == splu(A.tocsc(), permc_spec="NATURAL").nnz
    assert "SuperLU" in repr(colamd)


def test_exact_lu_dense_transpose():
    A = convection_diffusion_2d(6).toarray()
    M = ExactLU.fit(A)
    x = np.random.default_rng(13).standard_normal(A.shape[0])
    np.testing.assert_allclose(M.rmatvec(x), np.linalg.solve(A.T, x), rtol=1e-10)
    assert "LAPACK" in repr(M)


# -- every baseline, through the registry ----------------------------------------------------


@pytest.mark.parametrize("name", ["jacobi", "ilu0", "ilut", "amg", "exact"])
def test_float32_matrix_is_accepted(name):
    from learned_precond import get_preconditioner

    A = laplace_2d(8)
    m32 = get_preconditioner(name).fit(A.astype(np.float32))
    m64 = get_preconditioner(name).fit(A)
    x = np.random.default_rng(14).standard_normal(A.shape[0])
    np.testing.assert_allclose(m32.matvec(x), m64.matvec(x), rtol=1e-5)
    assert m32.dtype == np.float64


def test_amg_fit_is_reproducible_and_leaves_global_rng_alone():
    # pyamg draws from numpy's legacy global RNG; AMG.fit seeds it and restores it
    A = laplace_2d(16)
    np.random.seed(123)  # noqa: NPY002
    expected = np.random.rand()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    m1 = AMG.fit(A)
    assert np.random.rand() == expected  # noqa: NPY002
    m2 = AMG.fit(A)
    x = rhs(A.shape[0])
    np.testing.assert_array_equal(m1.matvec(x), m2.matvec(x))
