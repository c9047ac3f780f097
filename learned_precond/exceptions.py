"""Errors and warnings raised by learned_precond.

Every message says what is wrong with the input and how to fix it.
"""

__all__ = [
    "PreconditionerSetupError",
    "StructurallySingularError",
    "FitConvergenceWarning",
    "IllConditionedWarning",
    "ModelFileError",
]


class PreconditionerSetupError(RuntimeError):
    """A preconditioner could not be built for this matrix.

    Raised for zero pivots, numerically singular factors and similar
    properties of ``A``. The message names the property and what to try.
    Where a fit report exists, it is attached as ``report``.
    """

    def __init__(self, message, *, report=None):
        super().__init__(message)
        self.report = report


class StructurallySingularError(PreconditionerSetupError, ValueError):
    """``A`` is singular whatever its values are: an empty row or column.

    Also raised when no row permutation gives a zero-free diagonal. Both a :class:`PreconditionerSetupError` (no preconditioner can be built:
    :func:`~learned_precond.compare.compare` reports it as a failed setup) and a
    ``ValueError`` (the input is invalid: :func:`~learned_precond.krylov.solve`
    and the CLI reject it). The message names the first empty row or column.
    """


class FitConvergenceWarning(UserWarning):
    """Training stopped at ``max_steps`` before meeting its tolerance."""


class IllConditionedWarning(UserWarning):
    """``A`` (or the learned ``A_hat = L U``) is so ill conditioned that the
    learned factors cannot be trusted as an approximate inverse."""


class ModelFileError(ValueError):
    """A saved model file is corrupt, unsafe, or belongs to another matrix."""
