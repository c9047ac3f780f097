"""Many right-hand sides, complex matrices and vectors, solve_many (issue 18)."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from learned_precond import LearnedLU, get_preconditioner, problems
from learned_precond.krylov import solve, solve_many
from learned_precond.problems import helmholtz_2d

REAL = ("jacobi", "ilu0", "ilut", "amg", "exact", "none")
COMPLEX = ("jacobi", "ilu0", "ilut", "amg", "exact", "none")


def _laplace(n=12):
    return sp.csr_array(problems.get("laplace_2d", n=n))


@pytest.mark.parametrize("name", REAL)
def test_block_apply_equals_column_by_column(name):
    A = _laplace()
    M = get_preconditioner(name).fit(A)
    X = np.random.default_rng(0).standard_normal((A.shape[0], 7))
    Y = M @ X
    for c in range(X.shape[1]):
        np.testing.assert_allclose(Y[:, c], M @ X[:, c], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout", [{}, {"init": "gfmm", "max_steps": 2}])
def test_learned_lu_block_apply_equals_column_by_column(layout):
    A = _laplace(16)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = LearnedLU.fit(A, seed=0, **layout)
    X = np.random.default_rng(1).standard_normal((A.shape[0], 9))
    Y = M @ X
    for c in range(X.shape[1]):
        np.testing.assert_allclose(Y[:, c], M @ X[:, c], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["jacobi", "ilu0", "exact"])
def test_real_preconditioner_on_complex_vectors_is_linear(name):
    # M (x + i y) = M x + i M y: never the real part alone.
    A = _laplace()
    M = get_preconditioner(name).fit(A)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, A.shape[0]))
    z = M @ (x + 1j * y)
    assert np.iscomplexobj(z)
    np.testing.assert_allclose(z, M @ x + 1j * (M @ y), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(M @ (1j * x), 1j * (M @ x), rtol=1e-12, atol=1e-14)


def test_learned_lu_on_complex_vectors_is_linear():
    A = _laplace(16)
    M = LearnedLU.fit(A, seed=0)
    x = np.random.default_rng(3).standard_normal(A.shape[0])
    np.testing.assert_allclose(M @ (1j * x), 1j * (M @ x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", COMPLEX)
def test_complex_matrix_fits_in_complex_arithmetic(name):
    A = helmholtz_2d(10, wavenumber=6.0, damping=0.5)
    M = get_preconditioner(name).fit(A)
    assert np.issubdtype(M.dtype, np.complexfloating)
    rng = np.random.default_rng(4)
    b = rng.standard_normal(A.shape[0]) + 1j * rng.standard_normal(A.shape[0])
    r = solve(A, b, M, method="gmres", rtol=1e-10)
    assert r.converged and np.iscomplexobj(r.x)
    x_ref = np.linalg.solve(A.toarray(), b)
    assert np.linalg.norm(r.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    if name == "exact":
        np.testing.assert_allclose(M @ b, x_ref, rtol=1e-10)


@pytest.mark.parametrize("name", ["ict"])
def test_real_only_preconditioner_refuses_complex(name):
    A = helmholtz_2d(6)
    with pytest.raises(NotImplementedError, match="real"):
        get_preconditioner(name).fit(A)


@pytest.mark.parametrize("layout", [{}, {"init": "gfmm", "max_steps": 2}])
def test_learned_lu_complex_against_dense_solve(layout):
    # complex symmetric Helmholtz: LU on the real form, GMRES, the dense complex answer
    import warnings

    A = helmholtz_2d(12, wavenumber=6.0, damping=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = LearnedLU.fit(A, seed=0, **layout)
    assert np.issubdtype(M.dtype, np.complexfloating) and M.shape == A.shape
    rng = np.random.default_rng(7)
    n = A.shape[0]
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    x_ref = np.linalg.solve(A.toarray(), b)
    r = solve(A, b, M, method="gmres", rtol=1e-10)
    assert r.converged and np.iscomplexobj(r.x)
    assert np.linalg.norm(r.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    plain = solve(A, b, None, method="gmres", rtol=1e-10)
    assert r.iterations < plain.iterations
    # complex-linear exactly, and the adjoint is M^H
    x, y = rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))
    np.testing.assert_allclose(M @ (1j * x), 1j * (M @ x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(M @ (x + 2 * y), M @ x + 2 * (M @ y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.vdot(y, M @ x), np.vdot(M.rmatvec(y), x), rtol=1e-10)
    X = np.stack([x, y], axis=1)
    np.testing.assert_allclose(M @ X, np.stack([M @ x, M @ y], axis=1), rtol=1e-12,
                               atol=1e-14)


def test_learned_lu_hermitian_positive_definite_is_valid_for_cg():
    A = _laplace(14)
    n = A.shape[0]
    S = sp.random(n, n, density=3 / n, random_state=0)
    H = sp.csr_array(A + 0.002j * (S - S.T))  # Hermitian, still positive definite
    assert np.linalg.eigvalsh(H.toarray()).min() > 0
    M = LearnedLU.fit(H, seed=0)
    assert M.symmetric
    D = M @ np.eye(n)
    np.testing.assert_allclose(D, D.conj().T, atol=1e-10 * abs(D).max())
    assert np.linalg.eigvalsh((D + D.conj().T) / 2).min() > 0
    b = np.random.default_rng(8).standard_normal(n) * (1 + 1j)
    r = solve(H, b, M, method="cg", rtol=1e-10)
    assert r.converged
    x_ref = np.linalg.solve(H.toarray(), b)
    assert np.linalg.norm(r.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)


def test_learned_lu_complex_errors_are_clear(tmp_path):
    A = helmholtz_2d(6)
    with pytest.raises(ValueError, match="grid_shape"):
        LearnedLU.fit(A, grid_shape=(6, 6))
    with pytest.raises(ValueError, match="max_steps"):
        LearnedLU.fit(A, max_steps=-1)
    with pytest.raises(NotImplementedError, match="complex LinearOperator"):
        LearnedLU.fit(spla.aslinearoperator(A))
    M = LearnedLU.fit(A, seed=0)
    with pytest.raises(NotImplementedError, match="real_operator"):
        M.save(tmp_path / "m.npz")
    from learned_precond.lu.complex_form import ComplexLearnedLU

    M.real_operator.save(tmp_path / "real.npz")
    again = ComplexLearnedLU(LearnedLU.load(tmp_path / "real.npz"))
    b = np.ones(A.shape[0]) * (1 + 1j)
    np.testing.assert_array_equal(again @ b, M @ b)
    # a warm start from a complex fit, and coords doubled for the real form
    xy = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0), indexing="ij"), -1)
    M2 = LearnedLU.fit(A * 1.01, init=M, coords=xy.reshape(-1, 2), seed=0)
    assert M2.shape == A.shape


def test_helmholtz_is_complex_symmetric():
    A = helmholtz_2d(8, wavenumber=3.0, damping=0.2)
    D = A.toarray()
    assert D.dtype == np.complex128 and np.array_equal(D, D.T)
    assert not np.allclose(D, D.conj().T)
    with pytest.raises(ValueError, match="wavenumber"):
        helmholtz_2d(4, wavenumber=0.0)
    with pytest.raises(ValueError, match="damping"):
        helmholtz_2d(4, damping=-1.0)


@pytest.mark.parametrize("method", ["cg", "gmres"])
def test_solve_many_agrees_with_single_solves(method):
    A = _laplace(16)
    M = get_preconditioner("ilu0").fit(A)
    if method == "cg":
        M = get_preconditioner("jacobi").fit(A)
    B = np.random.default_rng(5).standard_normal((A.shape[0], 4))
    many = solve_many(A, B, M, method=method, rtol=1e-10)
    single = solve_many(A, B, M, method=method, rtol=1e-10, lockstep=False)
    for a, s, c in zip(many, single, range(4)):
        assert a.converged and s.converged
        assert np.linalg.norm(B[:, c] - A @ a.x) <= 1e-10 * np.linalg.norm(B[:, c]) * 1.01
        np.testing.assert_allclose(a.x, s.x, rtol=1e-6, atol=1e-8)
        if method == "cg":
            assert a.iterations == s.iterations
        else:
            assert abs(a.iterations - s.iterations) <= 3


def test_solve_many_complex_against_dense():
    A = helmholtz_2d(10, wavenumber=6.0, damping=0.5)
    M = get_preconditioner("ilu0").fit(A)
    rng = np.random.default_rng(6)
    B = rng.standard_normal((A.shape[0], 3)) + 1j * rng.standard_normal((A.shape[0], 3))
    X_ref = np.linalg.solve(A.toarray(), B)
    for c, r in enumerate(solve_many(A, B, M, method="gmres", rtol=1e-10)):
        assert r.converged
        assert np.linalg.norm(r.x - X_ref[:, c]) <= 1e-7 * np.linalg.norm(X_ref[:, c])


def test_solve_many_bad_input():
    A = _laplace(4)
    with pytest.raises(ValueError, match="shape"):
        solve_many(A, np.ones((5, 2)))
    with pytest.raises(ValueError, match="columns"):
        solve_many(A, np.ones((16, 2)), X0=np.ones((16, 3)))
    with pytest.raises(ValueError, match="NaN"):
        solve_many(A, np.full((16, 2), np.nan))
    with pytest.raises(ValueError, match="Krylov method"):
        solve_many(A, np.ones((16, 2)), method="lsqr")


def test_scipy_accepts_the_complex_preconditioner():
    A = helmholtz_2d(10, wavenumber=6.0, damping=0.5)
    b = np.ones(A.shape[0], dtype=complex)
    M = get_preconditioner("ilut").fit(A)
    x, info = spla.gmres(A, b, M=M, rtol=1e-10)
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b)
