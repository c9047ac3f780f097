"""``M = diag(A)^-1``: point Jacobi scaling (registry name ``'jacobi'``)."""

import numpy as np

from .._base import Preconditioner
from .._format import format_indices
from ._setup import Timer, as_float_matrix, setup_error, work_dtype

__all__ = ["Jacobi"]


class Jacobi(Preconditioner):
    """``M = diag(A)^-1``, diagonal (point Jacobi) scaling.

    SPD for SPD ``A`` (whose diagonal is positive), so valid for CG/MINRES.
    """

    name = "jacobi"
    symmetric = True
    supports_complex = True

    def __init__(self, inv_diag):
        super().__init__((inv_diag.size, inv_diag.size), dtype=inv_diag.dtype)
        self.inv_diag = inv_diag

    @classmethod
    def fit(cls, A):
        """Invert the diagonal of ``A``.

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix, real or complex.

        Returns
        -------
        Jacobi

        Raises
        ------
        PreconditionerSetupError
            Some diagonal entries are zero.
        """
        with Timer() as t:
            A = as_float_matrix(A, allow_complex=True)
            d = np.asarray(A.diagonal(), dtype=work_dtype(A))
            zero = np.flatnonzero(d == 0)
            if zero.size:
                raise setup_error(
                    f"Jacobi needs a nonzero diagonal, but A[i, i] == 0 for "
                    f"{zero.size} row(s): {format_indices(zero)}. Permute large entries "
                    f"onto the diagonal first (static pivoting, e.g. a maximum "
                    f"matching), or use 'ilut' or 'amg' instead.",
                    A,
                )
            self = cls(1.0 / d)
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        return X * self.inv_diag[:, None]

    def _apply_adjoint(self, X):
        return X * np.conj(self.inv_diag)[:, None]

    @property
    def nbytes(self):
        """Bytes of the inverted diagonal."""
        return self.inv_diag.nbytes
