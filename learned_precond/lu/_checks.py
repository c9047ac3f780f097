"""The checks at the end of a fit: finite output, condition estimates, warnings."""

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import LinearOperator

from .._convert import randn, to_numpy
from ..exceptions import IllConditionedWarning

__all__ = ["cond_estimate", "cond_estimate_hat", "nonfinite_output", "warn_conditioning"]

# Sizes up to which fit estimates cond(A) with a sparse/dense factorization.
COND_MAX_SPARSE = 20000
COND_MAX_DENSE = 4096
# Condition numbers beyond which the fit warns (seed 002: near the singular
# set no learned approximate inverse can be trusted).
COND_WARN = 1e10


def nonfinite_output(operator, generator):
    """True when ``operator`` maps two random vectors to something non-finite."""
    z = randn(generator, operator.shape[0], 2)
    with np.errstate(all="ignore"):
        return not np.all(np.isfinite(operator._apply(z)))


def cond_estimate_hat(model, packed, generator, *, iters=20, deadline=None):
    """Power-iteration estimate of cond(A_hat) = ||A_hat|| ||A_hat^-1|| (2-norm).

    ``A_hat = L U`` of ``model``; ``A_hat^-1`` through ``packed``. Stops after
    fewer iterations when ``deadline`` passes (the estimate is then rougher).
    Returns ``(estimate, iterations)``.
    """
    N = model.layout.size
    M, P = model.layout.n_leaves, model.layout.block_size
    x = torch.randn(N, 1, generator=generator, dtype=torch.float64)
    y = to_numpy(x.clone())
    done = 0
    with torch.no_grad():
        big = small = 0.0
        for _ in range(iters):
            x = x / x.norm()
            x = model.product_t(model.product(x))
            big = math.sqrt(float(x.norm()))
            y = y / np.linalg.norm(y)
            w = packed.solve(y.reshape(M, P, 1)).reshape(N, 1)
            w = packed.solve_adjoint(w.reshape(M, P, 1)).reshape(N, 1)
            small = math.sqrt(float(np.linalg.norm(w)))
            y = w
            done += 1
            if deadline is not None and deadline.passed():
                break
    estimate = big * small
    return (estimate if math.isfinite(estimate) else float("inf")), done


def cond_estimate(A):
    """cond_1(A) when a factorization is affordable, else NaN (see report)."""
    from ..metrics import condest

    if isinstance(A, LinearOperator):
        return float("nan")
    n = A.shape[0]
    if n > (COND_MAX_SPARSE if sp.issparse(A) else COND_MAX_DENSE):
        return float("nan")
    try:
        return float(condest(A))
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return float("inf")


def warn_conditioning(report, stacklevel):
    """Warn when A, or the learned L U, is too ill conditioned to trust (seed 002)."""
    cA, cH = report.cond_A, report.cond_A_hat
    if cA > COND_WARN:  # NaN compares False: no estimate, no warning
        what = "numerically singular" if not math.isfinite(cA) else f"ill conditioned " \
            f"(cond(A) ~ {cA:.2g})"
        warnings.warn(
            f"A is {what}: near the singular set a learned approximate inverse cannot be "
            f"trusted (docs/robustness.md). Check the true residual of your solves; "
            f"consider ExactLU or ILUT, or fix the model that produced A.",
            IllConditionedWarning, stacklevel=stacklevel)
    elif cH > COND_WARN:
        warnings.warn(
            f"the learned factors are ill conditioned (cond(L U) ~ {cH:.2g}"
            + (f", while cond(A) ~ {cA:.2g}" if math.isfinite(cA) else "")
            + "): a diagonal block is nearly singular. Try pivoting='mc64', "
              "init='block_jacobi' or a different block_size.",
            IllConditionedWarning, stacklevel=stacklevel)

