"""Building blocks the gallery's generators share: a Toeplitz tridiagonal, parameter checks."""

import numpy as np
import scipy.sparse as sp

__all__ = ["check_choice", "check_float", "tridiag"]


def tridiag(n, lower, diag, upper):
    """Return the n x n Toeplitz tridiagonal ``csr_array`` (lower, diag, upper)."""
    return sp.diags_array(
        [np.full(n - 1, float(lower)), np.full(n, float(diag)), np.full(n - 1, float(upper))],
        offsets=[-1, 0, 1],
        shape=(n, n),
        format="csr",
    )


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``, else raise ValueError naming them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value


def check_float(value, name, *, positive=False, nonnegative=False):
    """Return ``value`` as a finite float (optionally > 0 or >= 0), else raise ValueError."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")
    return value
