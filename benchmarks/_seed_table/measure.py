"""One measurement: fit LearnedLU on a matrix and measure E_A, e_x, e_b, cond and iterations."""

import dataclasses
import math
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from learned_precond import get_preconditioner
from learned_precond.krylov import solve
from learned_precond.metrics import backward_error, condest, relative_forward_error

from .cases import BASELINES, BLOCK_SIZE, DENSE_MAX, N_SAMPLES, RESTART, RTOL, SEED


# The learned A_hat = L U in the user's numbering. This is the ONE place that
# reaches inside LearnedLU (until it has a public to_dense()).
def learned_a_hat(M):
    """Return ``A_hat = L U`` of a fitted LearnedLU as a LinearOperator (user numbering).

    Uses ``M.to_dense()`` when the library provides it (for the dense form,
    see :func:`learned_a_hat_dense`); otherwise applies the model's product
    ``L U`` (in the permuted, padded, scaled numbering) through
    ``M.ordering`` and ``M.scale``.
    """
    import torch

    n = M.shape[0]
    order = M.ordering
    model = M._model  # private: see the module note above

    def product(X, transpose):
        X = np.asarray(X, dtype=np.float64)
        Z = torch.from_numpy(np.ascontiguousarray(order.to_slots(X.reshape(n, -1))))
        with torch.no_grad():
            Y = model.product_t(Z) if transpose else model.product(Z)
        Y = order.from_slots(Y.double().numpy()) * M.scale
        return Y.reshape(X.shape)

    return spla.LinearOperator(
        (n, n), matvec=lambda x: product(x, False), rmatvec=lambda x: product(x, True),
        matmat=lambda X: product(X, False), rmatmat=lambda X: product(X, True),
        dtype=np.float64)


def learned_a_hat_dense(M):
    """Dense ``A_hat = L U`` (user numbering) of a fitted LearnedLU."""
    if hasattr(M, "to_dense"):
        return np.asarray(M.to_dense(), dtype=np.float64)
    return learned_a_hat(M).matmat(np.eye(M.shape[0]))


@dataclasses.dataclass
class Measurement:
    """Everything measured for one matrix and one set of LearnedLU options.

    Norms are 2-norms. ``E_A`` is ``||A_hat - A||_2`` when ``dense`` (exact),
    else NaN and ``E_A_probe`` holds ``||(A_hat - A) Z||_F / ||A Z||_F`` on
    Gaussian probes. ``e_x``/``e_b``: means over ``n_samples`` of the relative
    forward error and the normwise backward error with ``b = A x``.
    ``iterations`` maps a preconditioner name to ``(iterations, converged)``
    or to an error string.
    """

    N: int
    dense: bool
    fit_options: dict
    fit_error: str = ""
    norm_A: float = math.nan
    E_A: float = math.nan
    E_A_rel: float = math.nan
    E_A_probe: float = math.nan
    e_x: float = math.nan
    e_b: float = math.nan
    e_x_solver: float = math.nan
    e_b_solver: float = math.nan
    solver: str = ""
    cond_A: float = math.nan
    cond_A_hat: float = math.nan
    cond_kind: str = ""
    iterations: dict = dataclasses.field(default_factory=dict)
    method: str = "gmres"
    fit_time: float = math.nan
    steps: int = 0
    best_step: int = 0
    rank: int = 0
    init: str = ""
    ordering: str = ""
    symmetric: bool = False
    stop_reason: str = ""
    report_relative_error: float = math.nan
    report_init_relative_error: float = math.nan
    report_cond_A_hat: float = math.nan
    nbytes: int = 0
    n_parameters: int = 0
    warnings: list = dataclasses.field(default_factory=list)
    error_matrix: object = None

    @property
    def learned_iterations(self):
        return self.iterations.get("learned_lu")


def short(exc):
    """The first line of ``exc`` with its type, at most 90 characters."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 90 else text[:87] + "..."


def as_dense(A):
    """``A`` as a dense float64 ndarray."""
    return A.toarray() if sp.issparse(A) else np.asarray(A, dtype=np.float64)


def sample_errors(M, A, *, n_samples, seed, norm_A):
    """Mean relative forward error and mean backward error of ``x_hat = M (A x)``.

    ``x ~ N(0, I)``: sample ``j`` is row ``j`` of
    ``default_rng(seed).standard_normal((n_samples, N))``, the stream of
    :func:`learned_precond.metrics.relative_forward_error`, whose value is
    returned as ``e_x``.
    """
    n = A.shape[0]
    with np.errstate(all="ignore"):
        e_x = relative_forward_error(M, A, n_samples=n_samples, seed=seed)
        rng = np.random.default_rng(seed)
        total, block = 0.0, 64
        for start in range(0, n_samples, block):
            k = min(block, n_samples - start)
            X = rng.standard_normal((k, n)).T
            B = np.asarray(A @ X)
            sols = np.asarray(M.matmat(B))
            for j in range(k):
                total += backward_error(A, sols[:, j], B[:, j], norm_A=norm_A)
    e_b = total / n_samples
    return (float(e_x) if np.isfinite(e_x) else math.inf,
            float(e_b) if np.isfinite(e_b) else math.inf)


def _svd_max(op, seed):
    v0 = np.random.default_rng(seed).standard_normal(op.shape[0])
    # 1e-3 relative accuracy is plenty for a condition number.
    s = spla.svds(op, k=1, return_singular_vectors=False, tol=1e-3, v0=v0, maxiter=3000)
    return float(s[0])


def krylov_iterations(A, M, b, *, method, rtol, restart, maxiter):
    """``(iterations, converged)`` of one preconditioned solve, or an error string."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = solve(A, b, M, method=method, rtol=rtol, restart=restart, maxiter=maxiter)
    except Exception as exc:  # a failing solve is a result, not a crash
        return short(exc)
    return (int(res.iterations), bool(res.converged))


def fit_baselines(A, names=BASELINES):
    """Fit each baseline; a failure is recorded as its error string."""
    out = {}
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[name] = get_preconditioner(name).fit(A)
        except Exception as exc:  # e.g. ILU0 with a zero pivot
            out[name] = short(exc)
    return out


def measure(A, *, fit_options, n_samples=N_SAMPLES, seed=SEED, baselines=BASELINES,
            method="gmres", rtol=RTOL, restart=RESTART, maxiter=None, dense=None,
            keep_error_matrix=False, fitted_baselines=None, solver=None,
            baseline_results=None):
    """Fit LearnedLU on ``A`` and measure it (see :class:`Measurement`).

    Parameters
    ----------
    A : sparse array or ndarray
    fit_options : dict
        Keyword arguments of ``LearnedLU.fit`` (``block_size`` defaults to 32,
        ``seed`` to ``seed``, ``init`` to ``'gfmm'``: the seed's architecture,
        whose ``E_A`` needs the GFMM factors).
    n_samples : int
        Samples for ``e_x`` and ``e_b``.
    baselines : tuple of str
        Registry names whose Krylov iterations are reported beside LearnedLU's.
    method : {'gmres', 'cg'}
    dense : bool, optional
        Exact dense 2-norms and LAPACK float64 as the reference solver (default
        when ``N <= 1024``); otherwise probe/ARPACK estimates and SuperLU.
    keep_error_matrix : bool
        Keep ``|A_hat - A|`` (dense only) for the heat maps.
    fitted_baselines : dict, optional
        Already fitted baselines (name -> preconditioner or error string).
    solver : Preconditioner, optional
        Already fitted exact solver (``ExactLU``) for the reference columns.
    baseline_results : dict, optional
        Iteration results of the baselines on this ``A`` (same ``b``), reused
        instead of solving again.

    Returns
    -------
    Measurement
    """
    from learned_precond import LearnedLU

    n = A.shape[0]
    dense = n <= DENSE_MAX if dense is None else bool(dense)
    options = {"block_size": BLOCK_SIZE, "seed": seed, "init": "gfmm", **fit_options}
    out = Measurement(N=n, dense=dense, fit_options=dict(fit_options), method=method)
    maxiter = maxiter if maxiter is not None else min(10 * n, 5000)
    b = np.random.default_rng(seed + 1).standard_normal(n)
    A_dense = as_dense(A) if dense else None
    out.norm_A = (float(np.linalg.norm(A_dense, 2)) if dense
                  else _svd_max(spla.aslinearoperator(A), seed))

    # Baselines and the exact reference solver.
    if baseline_results is not None:
        out.iterations.update({name: baseline_results[name] for name in baselines})
    else:
        if fitted_baselines is None:
            fitted_baselines = fit_baselines(A, baselines)
        for name in baselines:
            P = fitted_baselines[name]
            out.iterations[name] = P if isinstance(P, str) else krylov_iterations(
                A, P, b, method=method, rtol=rtol, restart=restart, maxiter=maxiter)
    if solver is None:
        # dense: LAPACK getrf in float64; sparse: SuperLU.
        solver = get_preconditioner("exact").fit(A_dense if dense else sp.csc_array(A))
    out.solver = "LAPACK LU, float64" if dense else "SuperLU, float64"
    out.e_x_solver, out.e_b_solver = sample_errors(solver, A, n_samples=n_samples, seed=seed,
                                                   norm_A=out.norm_A)

    # LearnedLU.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            M = LearnedLU.fit(A, **options)
        except Exception as exc:
            out.fit_error = short(exc)
            M = None
    out.warnings = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
                           for w in caught})
    if dense:
        with np.errstate(all="ignore"):
            out.cond_A = float(np.linalg.cond(A_dense))
        out.cond_kind = "2-norm, dense SVD"
    else:
        out.cond_kind = "2-norm, ARPACK estimate"
        try:
            out.cond_A = out.norm_A * _svd_max(solver, seed)
        except Exception:  # ARPACK did not converge: fall back to the 1-norm
            out.cond_A = condest(A)
            out.cond_kind = "cond(A): 1-norm estimate; cond(A_hat): 2-norm ARPACK"
    if M is None:
        out.iterations["learned_lu"] = f"fit failed ({out.fit_error})"
        return out

    rep = M.report
    out.fit_time = float(rep.fit_time)
    out.steps = int(rep.steps)
    out.best_step = int(getattr(rep, "best_step", 0))
    out.rank = int(getattr(getattr(M, "layout", None), "rank", 0))
    out.init = str(rep.init)
    out.ordering = str(rep.ordering)
    out.symmetric = bool(getattr(M, "symmetric", False))
    out.stop_reason = str(rep.stop_reason)
    out.report_relative_error = float(rep.relative_error)
    out.report_init_relative_error = float(rep.init_relative_error)
    out.report_cond_A_hat = float(rep.cond_A_hat)
    out.nbytes = int(M.nbytes)
    out.n_parameters = int(M.n_parameters)
    out.iterations["learned_lu"] = krylov_iterations(
        A, M, b, method=method, rtol=rtol, restart=restart, maxiter=maxiter)
    out.e_x, out.e_b = sample_errors(M, A, n_samples=n_samples, seed=seed, norm_A=out.norm_A)

    A_hat = learned_a_hat(M)
    Z = np.random.default_rng(seed + 2).standard_normal((n, 32))
    AZ = np.asarray(A @ Z)
    out.E_A_probe = float(np.linalg.norm(A_hat.matmat(Z) - AZ) / np.linalg.norm(AZ))
    if dense:
        A_hat_dense = learned_a_hat_dense(M)
        E = A_hat_dense - A_dense
        with np.errstate(all="ignore"):
            out.E_A = float(np.linalg.norm(E, 2))
            out.cond_A_hat = (float(np.linalg.cond(A_hat_dense))
                              if np.all(np.isfinite(A_hat_dense)) else math.inf)
        out.E_A_rel = out.E_A / out.norm_A
        if keep_error_matrix:
            out.error_matrix = np.abs(E)
    else:
        try:
            out.cond_A_hat = _svd_max(A_hat, seed) * _svd_max(M, seed)
        except Exception:
            out.cond_A_hat = float(rep.cond_A_hat)
    return out
