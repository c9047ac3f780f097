"""``M = I``: the unpreconditioned reference (registry name ``'none'``)."""

import numpy as np

from .._base import Preconditioner
from ._setup import Timer, as_float_matrix

__all__ = ["Identity"]


class Identity(Preconditioner):
    """``M = I``: no preconditioning, the reference every method must beat.

    ``A`` is only used for its shape, so a ``LinearOperator`` is accepted.
    """

    name = "none"
    symmetric = True
    supports_complex = True

    @classmethod
    def fit(cls, A):
        """Return the identity of ``A``'s size.

        Parameters
        ----------
        A : sparse array, ndarray or LinearOperator
            Square system matrix (only its shape is used).

        Returns
        -------
        Identity
        """
        with Timer() as t:
            A = as_float_matrix(A, allow_operator=True, allow_complex=True)
            self = cls(A.shape, dtype=np.result_type(A.dtype, np.float64))
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        return X.copy()

    def _apply_adjoint(self, X):
        return X.copy()

    @property
    def nbytes(self):
        """Bytes held: nothing."""
        return 0
