"""The surface every preconditioner shares: a fitted scipy ``LinearOperator``.

``Name.fit(A, **options)`` does all the work once and returns an instance;
applying it (``M @ x``, ``M.matvec``, ``M.matmat``, ``M.rmatvec``) never
refits anything. Subclasses implement ``_apply(X)`` (and ``_apply_adjoint``
where the method has a transpose) on 2-D blocks of right-hand sides, all
columns at once (``M @ X`` with ``X`` of shape (N, k) is one blocked
application); this class does the shape and dtype bookkeeping in one place.

Complex numbers: a preconditioner fitted to a complex ``A`` (classes with
``supports_complex``) has a complex dtype and gets complex128 blocks; a real
``M`` applied to a complex ``x`` acts on its real and imaginary parts
exactly, ``M (x + i y) = M x + i M y``, as one application to ``2k``
columns. Nothing is ever truncated to its real part.
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
    #: True when ``fit`` accepts a complex ``A`` and then applies ``M`` in
    #: complex arithmetic (``_apply_adjoint`` then applies ``M^H``).
    supports_complex = False

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
        """``X`` as a C-contiguous float64 (complex128) block, and the dtype to return."""
        X = np.asarray(X)
        complex_out = np.iscomplexobj(X) or np.issubdtype(self.dtype, np.complexfloating)
        if np.iscomplexobj(X) or np.issubdtype(X.dtype, np.floating):
            # the caller's precision; complex when M is
            out_dtype = np.result_type(X.dtype, np.complex64) if complex_out else X.dtype
        else:
            out_dtype = self.dtype
        work = np.complex128 if complex_out else np.float64
        return np.ascontiguousarray(X, dtype=work), out_dtype

    def _run(self, apply, X):
        """``apply(X)`` on the prepared block, a real M split over real and imaginary parts."""
        X, out_dtype = self._prepare(X)
        if np.iscomplexobj(X) and not np.issubdtype(self.dtype, np.complexfloating):
            # A real M is a real linear map: both parts go through one blocked apply.
            k = X.shape[1]
            Y = apply(np.ascontiguousarray(np.hstack([X.real, X.imag])))
            Y = Y[:, :k] + 1j * Y[:, k:]
        else:
            Y = apply(X)
        return Y.astype(out_dtype, copy=False)

    def _matvec(self, x):
        return self._run(self._apply, np.reshape(x, (-1, 1))).reshape(np.shape(x))

    def _matmat(self, X):
        return self._run(self._apply, X)

    def _rmatvec(self, x):
        return self._run(self._apply_adjoint, np.reshape(x, (-1, 1))).reshape(np.shape(x))

    def _rmatmat(self, X):
        return self._run(self._apply_adjoint, X)

    def __repr__(self):
        n = self.shape[0]
        return (
            f"<{type(self).__name__} N={n}, dtype={self.dtype}, "
            f"memory={format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )
