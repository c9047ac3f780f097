"""Accuracy metrics checked against dense numpy on small matrices."""

import numpy as np
import pytest
import scipy.sparse as sp
from contract import convection_diffusion_2d, laplace_2d
from scipy.sparse.linalg import aslinearoperator

from learned_precond.baselines import ILU0, ExactLU, Jacobi
from learned_precond.metrics import backward_error, condest, operator_error, relative_forward_error


def dense_forward_error(m_dense, A_dense, n_samples, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, A_dense.shape[0])).T
    R = m_dense @ (A_dense @ X) - X
    return np.mean(np.linalg.norm(R, axis=0) / np.linalg.norm(X, axis=0))


# -- operator_error ------------------------------------------------------------------


def test_operator_error_of_ilu0_against_dense():
    A = convection_diffusion_2d(6)
    M = ILU0.fit(A)
    LU = (M.L @ M.U).toarray()
    expected = np.linalg.norm(A.toarray() - LU) / np.linalg.norm(A.toarray())
    assert expected > 1e-3  # ILU(0) is not exact here
    assert operator_error(A, M.L @ M.U) == pytest.approx(expected, rel=1e-12)
    assert operator_error(A.toarray(), LU) == pytest.approx(expected, rel=1e-12)
    assert operator_error(A, aslinearoperator(M.L @ M.U)) == pytest.approx(expected, rel=1e-12)
    assert operator_error(A, A) == 0.0


def test_operator_error_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        operator_error(laplace_2d(3), np.eye(4))


# -- relative_forward_error ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jacobi", "ilu0"])
def test_forward_error_against_dense(kind):
    A = convection_diffusion_2d(7)
    M = {"jacobi": Jacobi, "ilu0": ILU0}[kind].fit(A)
    m_dense = M.matmat(np.eye(A.shape[0]))
    # 150 samples: more than one block of 64, so the blocking is exercised
    expected = dense_forward_error(m_dense, A.toarray(), 150, seed=4)
    got = relative_forward_error(M, A, n_samples=150, seed=4)
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0 < got < 1


def test_forward_error_limits():
    A = laplace_2d(5)
    assert relative_forward_error(ExactLU.fit(A), A, n_samples=20) < 1e-13
    assert relative_forward_error(np.zeros((25, 25)), A, n_samples=20) == pytest.approx(1.0)


def test_forward_error_is_seeded():
    A = laplace_2d(5)
    M = Jacobi.fit(A)
    assert relative_forward_error(M, A, n_samples=10, seed=1) == relative_forward_error(
        M, A, n_samples=10, seed=1
    )
    assert relative_forward_error(M, A, n_samples=10, seed=1) != relative_forward_error(
        M, A, n_samples=10, seed=2
    )


def test_forward_error_rejects_bad_arguments():
    A = laplace_2d(3)
    with pytest.raises(ValueError, match="shape"):
        relative_forward_error(np.eye(4), A)
    with pytest.raises(ValueError, match="n_samples"):
        relative_forward_error(np.eye(9), A, n_samples=0)


# -- backward_error --------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 15], ids=["dense-norm", "svds"])
def test_backward_error_against_dense(n, monkeypatch):
    import learned_precond.metrics as metrics

    if n == 15:  # force the svds path for a small matrix
        monkeypatch.setattr(metrics, "_DENSE_LIMIT", 10)
    A = convection_diffusion_2d(n)
    rng = np.random.default_rng(5)
    x_hat = rng.standard_normal(A.shape[0])
    b = rng.standard_normal(A.shape[0])
    D = A.toarray()
    expected = np.linalg.norm(D @ x_hat - b) / (
        np.linalg.norm(D, 2) * np.linalg.norm(x_hat) + np.linalg.norm(b)
    )
    assert backward_error(A, x_hat, b) == pytest.approx(expected, rel=1e-8)
    assert backward_error(D, x_hat, b) == pytest.approx(expected, rel=1e-12)


def test_backward_error_of_a_direct_solve_is_tiny():
    A = laplace_2d(10)
    b = np.random.default_rng(6).standard_normal(A.shape[0])
    x = np.linalg.solve(A.toarray(), b)
    assert backward_error(A, x, b) < 1e-14
    assert backward_error(A, x + 1e-3, b) > 1e-6


def test_backward_error_uses_given_norm():
    A = np.diag([1.0, 2.0])
    assert backward_error(A, np.ones(2), np.zeros(2), norm_A=4.0) == pytest.approx(
        np.sqrt(5.0) / (4.0 * np.sqrt(2.0))
    )


# -- condest -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 12], ids=["small", "medium"])
def test_condest_dense_exact(n):
    A = convection_diffusion_2d(n)
    expected = np.linalg.cond(A.toarray(), 1)
    assert condest(A) == pytest.approx(expected, rel=1e-10)
    assert condest(A.toarray()) == pytest.approx(expected, rel=1e-10)


def test_condest_estimate_for_large_sparse(monkeypatch):
    import learned_precond.metrics as metrics

    monkeypatch.setattr(metrics, "_DENSE_LIMIT", 10)
    A = convection_diffusion_2d(12)
    exact = np.linalg.cond(A.toarray(), 1)
    est = condest(A)
    assert exact / 3 <= est <= exact * (1 + 1e-10)


@pytest.mark.parametrize("sparse_path", [False, True], ids=["dense", "splu"])
def test_condest_singular_is_inf(sparse_path, monkeypatch):
    import learned_precond.metrics as metrics

    if sparse_path:
        monkeypatch.setattr(metrics, "_DENSE_LIMIT", 1)
    A = sp.csr_array(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]]))
    assert condest(A) == np.inf


def test_condest_rejects_operator():
    with pytest.raises(TypeError, match="LinearOperator"):
        condest(aslinearoperator(np.eye(3)))
