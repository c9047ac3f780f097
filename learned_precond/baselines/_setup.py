"""What every classical baseline's ``fit`` shares: float64 input, a timer, setup errors."""

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._validation import as_matrix, structure_problem
from ..exceptions import PreconditionerSetupError, StructurallySingularError

__all__ = ["Timer", "as_float_csr", "as_float_matrix", "setup_error"]


def as_float_matrix(A, *, allow_operator=False):
    """Validate ``A`` and return it in float64 (csr_array, ndarray or operator)."""
    A = as_matrix(A, allow_operator=allow_operator)
    if isinstance(A, spla.LinearOperator):
        return A
    return A.astype(np.float64, copy=False)


def as_float_csr(A):
    """Validate ``A`` and return it as a float64 canonical csr_array (dense input too)."""
    A = as_float_matrix(A)
    return A if sp.issparse(A) else sp.csr_array(A)


def setup_error(message, A):
    """Return the error for a failed setup, saying so when A's structure is the cause.

    A structurally singular ``A`` (an empty row or column) is reported as a
    :class:`StructurallySingularError` (also a ``ValueError``) whose message
    adds the first empty row/column to the method's own message.
    """
    problem = structure_problem(A)
    if problem is None:
        return PreconditionerSetupError(message)
    return StructurallySingularError(f"{message} Cause: {problem}")


class Timer:
    """``with Timer() as t: ...`` then ``t.elapsed`` seconds (``time.perf_counter``)."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.start
        return False
