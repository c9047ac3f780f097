"""What every classical baseline's ``fit`` shares: float64 (complex128) input, a timer, setup errors."""

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._validation import as_matrix, structure_problem
from ..exceptions import PreconditionerSetupError, StructurallySingularError

__all__ = ["Timer", "as_float_csr", "as_float_matrix", "refuse_complex", "setup_error",
           "work_dtype"]

#: What to use instead of a preconditioner that cannot take complex A.
COMPLEX_ALTERNATIVES = ("'ilut', 'ilu0', 'jacobi', 'exact' or 'amg' (which fit and apply in "
                        "complex arithmetic)")


def work_dtype(A):
    """complex128 for complex ``A``, else float64: the arithmetic of a baseline's factors."""
    return np.dtype(np.complex128 if np.iscomplexobj(A) else np.float64)


def as_float_matrix(A, *, allow_operator=False, allow_complex=False):
    """Validate ``A`` and return it in float64, or complex128 when allowed and complex."""
    A = as_matrix(A, allow_operator=allow_operator, allow_complex=allow_complex)
    if isinstance(A, spla.LinearOperator):
        return A
    return A.astype(work_dtype(A), copy=False)


def as_float_csr(A, *, allow_complex=False):
    """Validate ``A`` and return it as a float64 (complex128) canonical csr_array."""
    A = as_float_matrix(A, allow_complex=allow_complex)
    return A if sp.issparse(A) else sp.csr_array(A)


def refuse_complex(A, method, why):
    """Raise ``NotImplementedError`` naming ``method`` when ``A`` has complex entries.

    Called before any conversion, so a complex ``A`` is refused, never
    truncated to its real part.
    """
    if np.iscomplexobj(A) if not sp.issparse(A) else np.issubdtype(A.dtype, np.complexfloating):
        raise NotImplementedError(
            f"{method} supports real matrices only ({why}), but A is complex "
            f"({np.dtype(A.dtype)}); use {COMPLEX_ALTERNATIVES}, or LearnedLU with "
            f"init='hierarchical'."
        )


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
