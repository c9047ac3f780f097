"""Krylov harness: scipy's solvers with honest iteration counts and residuals.

:func:`solve` runs one of scipy's ``gmres``, ``cg``, ``bicgstab``, ``bicg``
or ``minres`` and returns a :class:`SolveResult` whose numbers mean the same
thing for every method:

* ``iterations`` counts Krylov iterations (one new search direction each):
  GMRES *inner* iterations (a restart cycle of 50 counts 50), one per
  CG/BiCG/BiCGStab/MINRES step. A BiCGStab step costs two products with
  ``A`` and two applications of ``M``; the other methods one of each.
* ``relative_residual`` is always the *true* ``||b - A x|| / ||b||`` of the
  returned ``x``, recomputed after the solver returns.
* ``converged`` is judged on that true residual (see :func:`solve`), not on
  a solver's internal estimate.

:func:`solve_many` solves for k right-hand sides at once: its CG and GMRES
run the k iterations in lockstep, so every product with ``A`` and every
application of ``M`` is one blocked ``(N, k)`` product (``M @ X`` goes through
each preconditioner's blocked apply); it returns one :class:`SolveResult`
per column. Complex ``A``, ``b`` and ``M`` are solved in complex arithmetic.

The harness is for measuring preconditioners, not for speed: GMRES applies
``M`` once more to scale its residual history, and CG/BiCG/BiCGStab/MINRES
compute the true residual of every iterate (one extra product with ``A`` per
iteration). ``solve_time`` includes that work.
"""

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla

from ._validation import as_matrix, check_positive_int, check_rhs, check_structure

__all__ = ["solve", "solve_many", "SolveResult", "METHODS"]

#: Krylov methods accepted by :func:`solve`.
METHODS = ("gmres", "cg", "bicgstab", "bicg", "minres")

#: A result whose solver reports success (info == 0) still counts as converged
#: when its true residual is up to this factor above the target: CG/BiCG/
#: BiCGStab stop on a recursively updated residual, which drifts from the true
#: one by rounding errors once rtol approaches machine precision.
CONVERGENCE_SLACK = 10.0


@dataclass(frozen=True)
class SolveResult:
    """Outcome of :func:`solve`.

    Attributes
    ----------
    x : ndarray
        Approximate solution, shape ``(N,)``.
    converged : bool
        True when the true residual met the target (see :func:`solve`).
    iterations : int
        Krylov iterations performed (GMRES: inner iterations).
    residuals : ndarray
        Relative residual history, ``iterations + 1`` entries; entry 0 is
        ``||b - A x0|| / ||b||`` (1.0 for ``x0 = 0``). CG/BiCG/BiCGStab/MINRES:
        the true relative residual of each iterate. GMRES: scipy's
        preconditioned-residual estimate (``callback_type='pr_norm'``), scaled
        as ``residuals[0] * ||M r_k|| / ||M r_0||``; it is an estimate of
        how the *preconditioned* residual decreases and can differ from the
        true residual by the conditioning of ``M``.
    solve_time : float
        Wall-clock seconds of the solver call (including the harness's
        per-iteration residual computation).
    relative_residual : float
        True ``||b - A x|| / ||b||`` of ``x`` (absolute ``||b - A x||`` when ``b = 0``).
    method : str
        Krylov method used.
    info : int
        scipy's exit code: 0 success, > 0 iteration limit, < 0 breakdown.
    """

    x: np.ndarray
    converged: bool
    iterations: int
    residuals: np.ndarray
    solve_time: float
    relative_residual: float
    method: str
    info: int

    def __repr__(self):
        status = "converged" if self.converged else "NOT converged"
        return (
            f"SolveResult({self.method}: {status} in {self.iterations} iterations, "
            f"relative residual {self.relative_residual:.3g}, info={self.info}, "
            f"{self.solve_time:.3g} s)"
        )


class _TargetReachedError(Exception):
    """Raised from a callback to stop MINRES once the true residual is small enough."""


def solve(A, b, M=None, *, method="gmres", rtol=1e-8, atol=0.0, maxiter=None, restart=50, x0=None):
    """Solve ``A x = b`` with a preconditioned Krylov method and report how it went.

    Parameters
    ----------
    A : sparse array, ndarray or LinearOperator
        Square system matrix, real or complex (``bicg`` also needs ``A.rmatvec``).
    b : array_like
        Right-hand side, shape ``(N,)`` or ``(N, 1)``, real or complex.
    M : LinearOperator, sparse array or ndarray, optional
        Preconditioner ``M ~ A^-1`` (e.g. a fitted
        :class:`~learned_precond._base.Preconditioner`); ``None`` for none.
        ``cg`` and ``minres`` need a symmetric positive definite ``M``;
        ``bicg`` needs ``M.rmatvec``.
    method : {'gmres', 'cg', 'bicgstab', 'bicg', 'minres'}, optional
        Krylov method.
    rtol, atol : float, optional
        Target: ``||b - A x|| <= max(rtol * ||b||, atol)``.
    maxiter : int, optional
        Iteration limit; default ``10 * N``. For GMRES it limits the total
        number of inner iterations, passed to scipy as
        ``ceil(maxiter / restart)`` restart cycles, so GMRES may run up to
        ``restart - 1`` iterations past ``maxiter`` to finish its last cycle.
    restart : int, optional
        GMRES restart length (ignored by the other methods).
    x0 : array_like, optional
        Initial guess; default zeros.

    Returns
    -------
    SolveResult

    Raises
    ------
    StructurallySingularError
        (a ``ValueError``) ``A`` has an empty row or column.

    Notes
    -----
    With ``target = max(rtol * ||b||, atol)`` and ``r = b - A x`` computed
    afresh for the returned ``x``, ``converged`` is True when

    * ``||r|| <= target``, or
    * scipy reported success (``info == 0``) and ``||r|| <= 10 * target``
      (:data:`CONVERGENCE_SLACK`).

    Non-convergence is reported in the result, never raised. scipy's GMRES is
    left preconditioned and stops its inner cycle on ``||M r||``, but accepts
    a cycle only when the true residual meets the target. scipy's MINRES stops
    on ``||r|| / (||A|| ||x||) <= rtol``, a looser test than the other
    methods use; the harness instead stops MINRES (from its callback) when the
    true residual of an iterate meets the target, so every method is held to
    the same standard.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from learned_precond.krylov import solve
    >>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
    >>> b = A @ np.ones(100)
    >>> result = solve(A, b, method="cg", rtol=1e-10)
    >>> result.converged, result.iterations
    (True, 50)
    >>> bool(np.allclose(result.x, 1.0))
    True
    """
    if method not in METHODS:
        raise ValueError(f"unknown Krylov method {method!r}; choose from {', '.join(METHODS)}.")
    A = as_matrix(A, allow_operator=True, allow_complex=True)
    check_structure(A)  # an empty row/column: no solution to converge to
    n = A.shape[0]
    b = check_rhs(b, n, allow_complex=True)
    x0 = None if x0 is None else check_rhs(x0, n, name="x0", allow_complex=True)
    rtol, atol, maxiter, restart, precond = _check_options(A, M, method, rtol, atol,
                                                           maxiter, restart)
    dtype = _work_dtype(A, b, precond, x0)
    b = b.astype(dtype, copy=False)
    x0 = None if x0 is None else x0.astype(dtype, copy=False)

    A_op = spla.aslinearoperator(A)
    a = _system_scale(b)
    if a != 1.0:
        # b's entries are so small or large that its norm under- or overflows:
        # solve (A/a) x = b/a, the same x, with M a for (A/a)^-1 (every
        # reported quantity is relative, so nothing else changes)
        A_op, b, atol = A_op * (1.0 / a), b / a, atol / a
        if precond is not None:
            precond = precond * a
    bnorm = float(np.linalg.norm(b))
    scale = bnorm if bnorm > 0 else 1.0
    target = max(rtol * bnorm, atol)

    r0 = b if x0 is None else b - A_op.matvec(x0)
    res0 = float(np.linalg.norm(r0)) / scale
    history = [res0]
    last_x = [None if x0 is None else x0.copy()]

    def record_iterate(xk):
        # scipy passes its working array: copy before it is updated in place.
        last_x[0] = np.array(xk, dtype=dtype, copy=True)
        history.append(float(np.linalg.norm(b - A_op.matvec(last_x[0]))) / scale)

    start = time.perf_counter()
    if method == "gmres":
        restart_eff = min(restart, n)
        mr0_norm = float(np.linalg.norm(r0 if precond is None else precond.matvec(r0)))
        pr_scale = res0 * bnorm / mr0_norm if mr0_norm > 0 else 0.0

        def record_pr_norm(pr_norm):
            # scipy passes ||M r_k|| / ||b||; rescale to start at residuals[0].
            history.append(float(pr_norm) * pr_scale)

        x, info = spla.gmres(
            A_op,
            b,
            x0=x0,
            rtol=rtol,
            atol=atol,
            restart=restart_eff,
            maxiter=math.ceil(maxiter / restart_eff),
            M=precond,
            callback=record_pr_norm,
            callback_type="pr_norm",
        )
    elif method == "minres":

        def record_and_stop(xk):
            record_iterate(xk)
            if history[-1] * scale <= target:
                raise _TargetReachedError

        try:
            # scipy's own (looser) test is disabled by an unreachable rtol;
            # the callback stops on the true residual instead.
            x, info = spla.minres(
                A_op,
                b,
                x0=x0,
                rtol=np.finfo(np.float64).eps ** 2,
                maxiter=maxiter,
                M=precond,
                callback=record_and_stop,
            )
        except _TargetReachedError:
            x, info = last_x[0], 0
    else:
        solver = {"cg": spla.cg, "bicgstab": spla.bicgstab, "bicg": spla.bicg}[method]
        x, info = solver(
            A_op,
            b,
            x0=x0,
            rtol=rtol,
            atol=atol,
            maxiter=maxiter,
            M=precond,
            callback=record_iterate,
        )
    solve_time = time.perf_counter() - start

    x = np.asarray(x, dtype=dtype).reshape(n)
    true_res = float(np.linalg.norm(b - A_op.matvec(x)))
    if method != "gmres":
        # BiCGStab can return after a half step without calling back; count
        # that step and record its residual so history and count agree.
        moved = x.any() if last_x[0] is None else not np.array_equal(x, last_x[0])
        if moved:
            history.append(true_res / scale)
    info = int(info)
    converged = bool(true_res <= target or (info == 0 and true_res <= CONVERGENCE_SLACK * target))
    residuals = np.asarray(history, dtype=np.float64)
    return SolveResult(
        x=x,
        converged=converged,
        iterations=len(residuals) - 1,
        residuals=residuals,
        solve_time=solve_time,
        relative_residual=true_res / scale,
        method=method,
        info=info,
    )


#: solve_many's GMRES keeps ``restart + 1`` basis blocks of ``N x k``; columns
#: are solved in groups that keep that basis under this many bytes.
MANY_BASIS_BYTES = 256 * 2**20


def solve_many(A, B, M=None, *, method="gmres", rtol=1e-8, atol=0.0, maxiter=None,
               restart=50, X0=None, lockstep=True):
    """Solve ``A X = B`` for the k columns of ``B``; one :class:`SolveResult` per column.

    Parameters
    ----------
    A : sparse array, ndarray or LinearOperator
        Square system matrix, real or complex.
    B : array_like, shape (N, k) or (N,)
        Right-hand sides, real or complex.
    M : LinearOperator, sparse array or ndarray, optional
        Preconditioner, applied to all active columns at once (``M @ X``).
    method : {'gmres', 'cg', 'bicgstab', 'bicg', 'minres'}, optional
        ``'gmres'`` and ``'cg'`` run in lockstep (see Notes); the other
        methods solve the columns one after another with :func:`solve`.
    rtol, atol, maxiter, restart
        As for :func:`solve`, for every column.
    X0 : array_like, shape (N, k), optional
        Initial guesses; default zeros.
    lockstep : bool, optional
        False: solve the columns one after another with :func:`solve` (the
        reference the lockstep result is tested against).

    Returns
    -------
    list of SolveResult
        Column ``c``'s result; ``solve_time`` is the whole call's time divided
        by k (the columns share every product).

    Notes
    -----
    In lockstep every column runs its own Krylov iteration and they share
    the products with ``A`` and ``M`` (module :mod:`learned_precond._lockstep`):
    CG is the same iteration as scipy's; GMRES is *right* preconditioned
    (scipy's is left preconditioned), so its residual history is the true
    residual's (in exact arithmetic) and its iteration count can differ from
    :func:`solve`'s by a few. ``converged`` is judged on the true residual of
    the returned column, as in :func:`solve`.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from learned_precond.krylov import solve_many
    >>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
    >>> B = A @ np.ones((100, 3))
    >>> results = solve_many(A, B, method="cg", rtol=1e-10)
    >>> [r.iterations for r in results], all(np.allclose(r.x, 1.0) for r in results)
    ([50, 50, 50], True)
    """
    from ._lockstep import lockstep_cg, lockstep_gmres

    if method not in METHODS:
        raise ValueError(f"unknown Krylov method {method!r}; choose from {', '.join(METHODS)}.")
    A = as_matrix(A, allow_operator=True, allow_complex=True)
    check_structure(A)
    n = A.shape[0]
    B = _check_block(B, n, "B")
    k = B.shape[1]
    X0 = None if X0 is None else _check_block(X0, n, "X0", columns=k)
    if not lockstep or method not in ("gmres", "cg"):
        return [solve(A, B[:, c], M, method=method, rtol=rtol, atol=atol, maxiter=maxiter,
                      restart=restart, x0=None if X0 is None else X0[:, c])
                for c in range(k)]
    rtol, atol, maxiter, restart, precond = _check_options(A, M, method, rtol, atol,
                                                           maxiter, restart)
    dtype = _work_dtype(A, B, precond, X0)
    B = B.astype(dtype, copy=False)
    X = np.zeros((n, k), dtype=dtype) if X0 is None else X0.astype(dtype, copy=True)
    A_op = spla.aslinearoperator(A)
    bnorm = np.linalg.norm(B, axis=0)
    scale = np.where(bnorm > 0, bnorm, 1.0)
    target = np.maximum(rtol * bnorm, atol)
    start = time.perf_counter()
    if method == "cg":
        X, iterations, histories, info = lockstep_cg(A_op, B, precond, X, target, scale,
                                                     maxiter)
    else:
        group = max(1, MANY_BASIS_BYTES // ((min(restart, n) + 1) * n * dtype.itemsize))
        iterations, histories, info = np.zeros(k, dtype=int), [None] * k, np.zeros(k, int)
        for lo in range(0, k, group):
            sl = slice(lo, min(k, lo + group))
            X[:, sl], iterations[sl], hist, info[sl] = lockstep_gmres(
                A_op, B[:, sl], precond, X[:, sl], target[sl], scale[sl], maxiter, restart)
            histories[sl] = hist
    elapsed = (time.perf_counter() - start) / k
    true_res = np.linalg.norm(B - A_op.matmat(X), axis=0)
    results = []
    for c in range(k):
        converged = bool(true_res[c] <= target[c]
                         or (info[c] == 0 and true_res[c] <= CONVERGENCE_SLACK * target[c]))
        results.append(SolveResult(
            x=X[:, c].copy(), converged=converged, iterations=int(iterations[c]),
            residuals=np.asarray(histories[c], dtype=np.float64), solve_time=elapsed,
            relative_residual=float(true_res[c] / scale[c]), method=method,
            info=int(info[c])))
    return results


def _check_block(B, n, name, *, columns=None):
    """``B`` as an (n, k) float or complex array with finite entries, or raise."""
    B = np.asarray(B)
    if B.dtype == object or not np.issubdtype(B.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {B.dtype}.")
    if B.ndim == 1:
        B = B[:, None]
    if B.ndim != 2 or B.shape[0] != n or B.shape[1] == 0:
        raise ValueError(f"{name} has shape {B.shape} but A has {n} rows; pass an array "
                         f"of shape ({n}, k) with k >= 1.")
    if columns is not None and B.shape[1] != columns:
        raise ValueError(f"{name} has {B.shape[1]} columns but B has {columns}.")
    if not np.all(np.isfinite(B)):
        raise ValueError(f"{name} has NaN or Inf entries; fix the right-hand sides.")
    return B.astype(np.result_type(B.dtype, np.float64), copy=False)


def _work_dtype(*arrays):
    """complex128 when any of ``arrays`` (or operators) is complex, else float64."""
    cplx = any(a is not None and np.issubdtype(np.dtype(a.dtype), np.complexfloating)
               for a in arrays)
    return np.dtype(np.complex128 if cplx else np.float64)


#: ``solve`` rescales a system whose right-hand side's largest entry lies
#: outside ``[1 / _SCALE_LIMIT, _SCALE_LIMIT]`` (its 2-norm would under- or
#: overflow, and with it every residual scipy's solvers compute).
_SCALE_LIMIT = 1e150


def _system_scale(b):
    """1.0, or a power of two near ``max |b|`` when that is extreme (see ``solve``)."""
    big = float(np.max(np.abs(b))) if b.size else 0.0
    if big == 0.0 or 1.0 / _SCALE_LIMIT <= big <= _SCALE_LIMIT:
        return 1.0
    return math.ldexp(1.0, math.frexp(big)[1] - 1)  # <= big; exact, no bits lost


def _check_options(A, M, method, rtol, atol, maxiter, restart):
    """``(rtol, atol, maxiter, restart, M as an operator)``, checked as solve and solve_many take them."""
    return (_check_tolerance(rtol, "rtol"), _check_tolerance(atol, "atol"),
            10 * A.shape[0] if maxiter is None else check_positive_int(maxiter, "maxiter"),
            check_positive_int(restart, "restart"), _check_preconditioner(M, A.shape, method))


def _check_tolerance(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}.") from None
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return value


def _check_preconditioner(M, shape, method):
    if M is None:
        return None
    try:
        precond = spla.aslinearoperator(M)
    except TypeError:
        raise TypeError(
            f"M must be a LinearOperator (e.g. a fitted preconditioner), a sparse array "
            f"or an ndarray, got {type(M).__name__}."
        ) from None
    if precond.shape != tuple(shape):
        raise ValueError(
            f"M has shape {precond.shape} but A has shape {tuple(shape)}; fit the "
            f"preconditioner on this A."
        )
    if method == "bicg" and getattr(M, "has_adjoint", True) is False:
        raise ValueError(
            f"bicg applies M^T, which {type(M).__name__} does not provide; use gmres "
            f"or bicgstab with this preconditioner."
        )
    if method in ("cg", "minres") and getattr(M, "symmetric", True) is False:
        warnings.warn(
            f"{method} assumes a symmetric positive definite M, but "
            f"{type(M).__name__} is not symmetric; convergence is not guaranteed. "
            f"Use gmres or bicgstab, or a symmetric preconditioner.",
            UserWarning,
            stacklevel=4,  # the caller of solve / solve_many (via _check_options)
        )
    return precond
