"""The surface every preconditioner shares: a fitted scipy ``LinearOperator``.

``Name.fit(A, **options)`` does all the work once and returns an instance;
applying it (``M @ x``, ``M.matvec``, ``M.matmat``, ``M.rmatvec``) never
refits anything. Subclasses implement ``_apply(X)`` (and ``_apply_adjoint``
where the method has a transpose) on 2-D float64 blocks of right-hand sides;
this class does the shape and dtype bookkeeping in one place.
"""

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ._format import format_bytes
from ._format import format_bytes as _format_bytes  # noqa: F401 - kept for pivoting.py until it moves

__all__ = ["Preconditioner"]


class Preconditioner(LinearOperator):
    """Base class of fitted preconditioners ``M ~ A^-1``.

    Attributes
    ----------
    name : str
        Registry key used by the CLI and benchmarks (``'jacobi'``, ``'ilu0'``...).
    setup_time : float
        Seconds spent in ``fit``.
    nbytes : int
        Bytes of the arrays the fitted preconditioner holds.
    """

    name = "preconditioner"
    #: True when ``_apply_adjoint`` is implemented (rmatvec available).
    has_adjoint = True
    #: True when M is symmetric positive definite for SPD A (valid for CG).
    symmetric = False

    def __init__(self, shape, *, dtype=np.float64):
        super().__init__(dtype=np.dtype(dtype), shape=shape)
        self.setup_time = 0.0

    # -- to be provided by subclasses ---------------------------------------
    @classmethod
    def fit(cls, A, **options):  # pragma: no cover - abstract
        """Build the preconditioner for ``A`` and return the fitted instance."""
        raise NotImplementedError

    def _apply(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_adjoint(self, X):
        raise NotImplementedError(
            f"{type(self).__name__} has no transpose apply; use a Krylov method "
            f"that does not call M.rmatvec (gmres, bicgstab, cg)."
        )

    @property
    def nbytes(self):  # pragma: no cover - abstract
        """Bytes held by the fitted preconditioner's arrays."""
        raise NotImplementedError

    # -- LinearOperator plumbing --------------------------------------------
    def _prepare(self, X):
        X = np.asarray(X)
        out_dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else self.dtype
        return np.ascontiguousarray(X, dtype=np.float64), out_dtype

    def _matvec(self, x):
        X, out_dtype = self._prepare(np.reshape(x, (-1, 1)))
        return self._apply(X).astype(out_dtype, copy=False).reshape(np.shape(x))

    def _matmat(self, X):
        X, out_dtype = self._prepare(X)
        return self._apply(X).astype(out_dtype, copy=False)

    def _rmatvec(self, x):
        X, out_dtype = self._prepare(np.reshape(x, (-1, 1)))
        return self._apply_adjoint(X).astype(out_dtype, copy=False).reshape(np.shape(x))

    def _rmatmat(self, X):
        X, out_dtype = self._prepare(X)
        return self._apply_adjoint(X).astype(out_dtype, copy=False)

    def __repr__(self):
        n = self.shape[0]
        return (
            f"<{type(self).__name__} N={n}, dtype={self.dtype}, "
            f"memory={format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )
