"""The Krylov harness: iteration counts, residual histories, convergence and validation."""

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
from contract import convection_diffusion_2d, laplace_2d, rhs
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from learned_precond.baselines import AMG, ILU0, ExactLU, Jacobi
from learned_precond.krylov import METHODS, SolveResult, solve


class Counting(LinearOperator):
    """Wraps an operator and counts vector applications (a block of k counts k)."""

    def __init__(self, op):
        self.op = aslinearoperator(op)
        self.count = 0
        super().__init__(dtype=np.float64, shape=self.op.shape)

    def _matvec(self, x):
        self.count += 1
        return self.op.matvec(x)

    def _rmatvec(self, x):
        self.count += 1
        return self.op.rmatvec(x)


SPD_METHODS = ("gmres", "cg", "bicgstab", "bicg", "minres")


@pytest.fixture(scope="module")
def poisson():
    return laplace_2d(16)


# -- iteration counts -----------------------------------------------------------------


@pytest.mark.parametrize("m_kind", ["none", "jacobi", "amg"])
def test_cg_iterations_equal_preconditioner_applications(poisson, m_kind):
    # CG applies M exactly once per iteration, and the harness never applies M
    # for CG, so counting M applications is an independent iteration count.
    inner = {
        "none": aslinearoperator(sp.eye_array(poisson.shape[0])),
        "jacobi": Jacobi.fit(poisson),
        "amg": AMG.fit(poisson),
    }[m_kind]
    M = Counting(inner)
    result = solve(poisson, rhs(poisson.shape[0]), M, method="cg", rtol=1e-10)
    assert result.converged
    assert result.iterations == M.count
    assert result.iterations > 3


def test_bicgstab_iterations_match_preconditioner_applications(poisson):
    # a BiCGStab step applies M twice; a final half step (early exit) once
    M = Counting(ILU0.fit(poisson))
    result = solve(poisson, rhs(poisson.shape[0]), M, method="bicgstab", rtol=1e-10)
    assert result.converged
    assert M.count in (2 * result.iterations, 2 * result.iterations - 1)


def test_bicgstab_final_half_step_is_counted(poisson):
    # With the exact inverse, BiCGStab meets the target after the first half
    # step and returns without calling back; that step is still an iteration.
    M = Counting(ExactLU.fit(poisson))
    result = solve(poisson, rhs(poisson.shape[0]), M, method="bicgstab")
    assert result.converged
    assert result.iterations == 1 == M.count
    assert result.residuals.shape == (2,)
    assert result.residuals[1] < 1e-12


def test_gmres_without_restart_iterations_match_matvecs(poisson):
    # One cycle: scipy applies A once per inner iteration plus once for the true
    # residual at the end of the cycle; the harness once more for its own check.
    A = Counting(poisson)
    n = poisson.shape[0]
    result = solve(A, rhs(n), Jacobi.fit(poisson), method="gmres", restart=n, rtol=1e-10)
    assert result.converged
    assert A.count == result.iterations + 2


def test_gmres_iteration_count_is_the_smallest_that_converges(poisson):
    # Full GMRES converging in m steps means GMRES(m) with one cycle converges
    # and GMRES(m - 1) with one cycle does not: an independent check of the count.
    b = rhs(poisson.shape[0])
    full = solve(poisson, b, method="gmres", restart=poisson.shape[0])
    m = full.iterations
    assert full.converged and 10 < m < 200
    assert solve(poisson, b, method="gmres", restart=m, maxiter=m).converged
    short = solve(poisson, b, method="gmres", restart=m - 1, maxiter=m - 1)
    assert not short.converged
    assert short.iterations == m - 1


def test_gmres_maxiter_counts_inner_iterations_in_whole_cycles(poisson):
    b = rhs(poisson.shape[0])
    result = solve(poisson, b, method="gmres", restart=5, maxiter=7)
    assert not result.converged
    assert result.iterations == 5 * math.ceil(7 / 5)
    assert result.info > 0
    assert solve(poisson, b, method="gmres", restart=5, maxiter=10).iterations == 10


@pytest.mark.parametrize("method", ["cg", "bicgstab", "bicg", "minres"])
def test_maxiter_is_respected(poisson, method):
    result = solve(poisson, rhs(poisson.shape[0]), method=method, maxiter=4)
    assert not result.converged
    assert result.iterations == 4
    assert len(result.residuals) == 5


# -- residual history and result ---------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_history_starts_at_one_and_matches_iterations(poisson, method):
    M = AMG.fit(poisson)
    result = solve(poisson, rhs(poisson.shape[0]), M, method=method, rtol=1e-9)
    assert isinstance(result, SolveResult)
    assert result.converged and result.info == 0
    assert result.method == method
    assert result.residuals.shape == (result.iterations + 1,)
    assert result.residuals[0] == 1.0
    assert result.residuals[-1] <= 1e-7
    assert result.relative_residual <= 1e-8
    true = np.linalg.norm(rhs(poisson.shape[0]) - poisson @ result.x)
    assert result.relative_residual == pytest.approx(true / np.linalg.norm(rhs(256)), rel=1e-12)
    assert result.solve_time >= 0.0


@pytest.mark.parametrize("method", ["cg", "bicgstab", "bicg", "minres"])
def test_history_holds_true_residuals(method):
    A = convection_diffusion_2d(12) if method in ("bicgstab", "bicg") else laplace_2d(12)
    b = rhs(A.shape[0])
    result = solve(A, b, method=method, rtol=1e-10)
    assert result.converged
    # the last entry is the residual of the returned x (same iterate)
    assert result.residuals[-1] == pytest.approx(result.relative_residual, rel=1e-10)


def test_history_with_initial_guess(poisson):
    b = rhs(poisson.shape[0])
    x0 = np.ones(poisson.shape[0])
    for method in ("gmres", "cg"):
        result = solve(poisson, b, method=method, x0=x0)
        expected = np.linalg.norm(b - poisson @ x0) / np.linalg.norm(b)
        assert result.residuals[0] == pytest.approx(expected, rel=1e-12)
        assert result.converged


def test_exact_solution_as_initial_guess_needs_no_iterations(poisson):
    x = rhs(poisson.shape[0], seed=3)
    result = solve(poisson, poisson @ x, method="cg", x0=x)
    assert result.iterations == 0 and result.converged


@pytest.mark.parametrize("method", METHODS)
def test_zero_rhs_gives_zero_solution(poisson, method):
    result = solve(poisson, np.zeros(poisson.shape[0]), method=method)
    assert result.converged and result.iterations == 0
    assert not result.x.any()


def test_nonconvergence_is_reported_not_raised(poisson):
    result = solve(poisson, rhs(poisson.shape[0]), method="cg", maxiter=3)
    assert not result.converged
    assert result.info == 3
    assert "NOT converged" in repr(result)


def test_converged_follows_the_true_residual():
    # minres' own stopping test is ||r|| / (||A|| ||x||); the harness holds it
    # to ||r|| <= rtol ||b|| like every other method.
    A = laplace_2d(24)
    b = rhs(A.shape[0])
    for rtol in (1e-4, 1e-8):
        result = solve(A, b, method="minres", rtol=rtol)
        assert result.converged
        assert result.relative_residual <= rtol


def test_atol_is_used(poisson):
    b = rhs(poisson.shape[0])
    loose = solve(poisson, b, method="cg", rtol=0.0, atol=1e-2 * np.linalg.norm(b))
    tight = solve(poisson, b, method="cg", rtol=1e-10)
    assert loose.converged and tight.converged
    assert loose.iterations < tight.iterations
    assert loose.relative_residual <= 1e-2


def test_result_is_frozen(poisson):
    result = solve(poisson, rhs(poisson.shape[0]), method="cg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.converged = False


def test_exact_lu_converges_in_at_most_two_iterations():
    A = convection_diffusion_2d(20)
    for method in ("gmres", "bicgstab", "bicg"):
        result = solve(A, rhs(A.shape[0]), ExactLU.fit(A), method=method, rtol=1e-10)
        assert result.converged and result.iterations <= 2


# -- inputs ------------------------------------------------------------------------------


def test_linear_operator_A_is_accepted(poisson):
    op = aslinearoperator(poisson)
    result = solve(op, rhs(poisson.shape[0]), Jacobi.fit(poisson), method="gmres")
    assert result.converged


def test_dense_and_float32_A_are_accepted(poisson):
    b = rhs(poisson.shape[0])
    assert solve(poisson.toarray(), b, method="cg").converged
    result = solve(poisson.astype(np.float32), b, method="gmres", rtol=1e-5)
    assert result.converged


def test_rhs_shape_n_by_one_is_accepted(poisson):
    b = rhs(poisson.shape[0])[:, None]
    result = solve(poisson, b, method="cg")
    assert result.converged and result.x.shape == (poisson.shape[0],)


@pytest.mark.parametrize(
    ("A", "error"),
    [
        (sp.csr_array(np.ones((4, 3))), ValueError),
        (sp.csr_array((0, 0)), ValueError),
        (np.full((3, 3), np.nan), ValueError),
        (np.eye(3, dtype=np.int64), TypeError),
        ("matrix", TypeError),
    ],
    ids=["nonsquare", "empty", "nan", "int", "string"],
)
def test_bad_matrix_raises(A, error):
    with pytest.raises(error):
        solve(A, np.ones(3))


@pytest.mark.parametrize(
    ("b", "error"),
    [
        (np.ones(5), ValueError),
        (np.ones((4, 2)), ValueError),
        (np.array([1.0, np.nan, 0.0, 0.0]), ValueError),
        (np.array(["a"] * 4), TypeError),
    ],
    ids=["wrong-length", "two-columns", "nan", "strings"],
)
def test_bad_rhs_raises(b, error):
    with pytest.raises(error):
        solve(laplace_2d(2), b)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"method": "lgmres"}, ValueError, "unknown Krylov method"),
        ({"rtol": -1.0}, ValueError, "rtol"),
        ({"atol": np.inf}, ValueError, "atol"),
        ({"rtol": "tight"}, TypeError, "rtol"),
        ({"maxiter": 0}, ValueError, "maxiter"),
        ({"restart": 2.5}, TypeError, "restart"),
        ({"x0": np.ones(3)}, ValueError, "x0"),
        ({"M": np.eye(3)}, ValueError, "shape"),
        ({"M": "ilu0"}, TypeError, "M must be"),
    ],
    ids=["method", "rtol", "atol", "rtol-type", "maxiter", "restart", "x0", "M-shape", "M-type"],
)
def test_bad_options_raise(options, error, match):
    with pytest.raises(error, match=match):
        solve(laplace_2d(2), np.ones(4), **options)


def test_bicg_needs_a_transpose():
    A = convection_diffusion_2d(8)
    M = AMG.fit(A)  # nonsymmetric smoothed aggregation: no transpose
    with pytest.raises(ValueError, match="bicg applies M"):
        solve(A, rhs(A.shape[0]), M, method="bicg")
    assert solve(A, rhs(A.shape[0]), M, method="bicgstab").converged


def test_cg_with_nonsymmetric_preconditioner_warns(poisson):
    with pytest.warns(UserWarning, match="symmetric positive definite M"):
        solve(poisson, rhs(poisson.shape[0]), ILU0.fit(poisson), method="cg")


@pytest.mark.parametrize("factor", [1e-300, 1e307, 1e-160, 1e160])
@pytest.mark.parametrize("method", ["cg", "gmres", "bicgstab", "minres"])
def test_extreme_scalings_are_solved_not_mistaken_for_zero(factor, method):
    # ||b|| under- or overflows at these scales: solve rescales the system
    # (the same x) instead of reporting b = 0 (x = 0, 'converged') or NaN.
    import scipy.sparse as sp

    A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(60, 60)) * factor
    x = np.random.default_rng(0).standard_normal(60)
    b = A @ x
    r = solve(A, b, method=method, rtol=1e-10)
    assert r.converged and np.isfinite(r.relative_residual) and r.iterations > 0
    assert np.linalg.norm(r.x - x) / np.linalg.norm(x) < 1e-6
    assert np.all(np.isfinite(r.residuals))
