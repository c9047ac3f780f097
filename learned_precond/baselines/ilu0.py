"""ILU(0): incomplete LU without fill, on A's own pattern (registry name ``'ilu0'``).

The factorization and the triangular solves are the numba kernels of
:mod:`learned_precond.baselines._ilu_kernels`.
"""

import numpy as np
import scipy.sparse as sp

from .._base import Preconditioner
from .._format import format_bytes, format_indices
from . import _ilu_kernels as kernels
from ._setup import Timer, as_float_csr, setup_error, work_dtype

__all__ = ["ILU0"]

# A pivot smaller than this times the largest |a_ij| of its row is treated as
# zero: its reciprocal would amplify rounding errors by more than 1/(1000 eps).
_PIVOT_RTOL = 1000 * np.finfo(np.float64).eps


class ILU0(Preconditioner):
    """Incomplete LU with zero fill-in: ``L U = A`` on the pattern of ``A``.

    The factors live on exactly ``A``'s sparsity pattern (``nnz(L) + nnz(U)
    = nnz(A) + N``). This is *not* ``scipy.sparse.linalg.spilu(A,
    fill_factor=1)``: spilu is a threshold ILU with column pivoting whose
    fill budget is spent on different entries, and it needs about three times
    as many GMRES iterations on the 2-D Poisson matrix. Factorization and the
    forward/back substitutions are compiled numba kernels
    (:mod:`learned_precond.baselines._ilu_kernels`).

    Attributes
    ----------
    indptr, indices : ndarray
        CSR structure of ``A`` (and of the factors).
    data : ndarray
        ``L`` (unit lower, diagonal not stored) strictly below the diagonal,
        ``U`` on and above it.
    diag : ndarray
        Position of the diagonal entry of each row in ``data``.
    inv_pivots : ndarray
        ``1 / u_ii``, so the back substitution multiplies instead of dividing.
    """

    name = "ilu0"
    supports_complex = True

    def __init__(self, indptr, indices, data, diag):
        n = indptr.size - 1
        super().__init__((n, n), dtype=data.dtype)
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.diag = diag
        self.inv_pivots = 1.0 / data[diag]
        self._complex = np.iscomplexobj(data)

    @classmethod
    def fit(cls, A):
        """Factor ``A`` by ILU(0).

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix, real or complex; a dense array is factored
            on its nonzero pattern.

        Returns
        -------
        ILU0

        Raises
        ------
        PreconditionerSetupError
            A diagonal entry is missing from the pattern, or a pivot is zero or
            tiny (``|u_ii| <= 1000 eps max_j |a_ij|``) or not finite.
        """
        with Timer() as t:
            A = as_float_csr(A, allow_complex=True)
            indptr = A.indptr.astype(np.int64)
            indices = A.indices.astype(np.int64)
            data = np.array(A.data, dtype=work_dtype(A))  # complex A: complex factors
            diag = kernels.diagonal_positions(indptr, indices)
            missing = np.flatnonzero(diag < 0)
            if missing.size:
                raise setup_error(
                    f"ILU(0) needs a nonzero diagonal, but A[i, i] is not stored for "
                    f"{missing.size} row(s): {format_indices(missing)}. Try 'ilut', static "
                    f"pivoting (LearnedLU permutes large entries onto the diagonal) "
                    f"or 'amg'.",
                    A,
                )
            row_max = np.zeros(A.shape[0])
            np.maximum.at(row_max, np.repeat(np.arange(A.shape[0]), np.diff(indptr)), np.abs(data))
            bad = kernels.ilu0_factor(indptr, indices, data, diag, _PIVOT_RTOL * row_max)
            if bad >= 0:
                raise setup_error(
                    f"ILU(0) broke down at row {bad}: pivot u[{bad}, {bad}] = "
                    f"{data[diag[bad]]:.3g} is zero or tiny relative to the row "
                    f"(ILU(0) needs nonzero pivots, which a nonzero diagonal in A "
                    f"does not guarantee). Try 'ilut', static pivoting (LearnedLU "
                    f"permutes large entries onto the diagonal) or 'amg'.",
                    A,
                )
            self = cls(indptr, indices, data, diag)
        self.setup_time = t.elapsed
        return self

    @property
    def L(self):
        """Unit lower factor as a csr_array (built on demand)."""
        n = self.shape[0]
        rows = np.repeat(np.arange(n), np.diff(self.indptr))
        lower = self.indices < rows
        L = sp.csr_array((self.data[lower], (rows[lower], self.indices[lower])), shape=(n, n))
        return (L + sp.eye_array(n, format="csr")).tocsr()

    @property
    def U(self):
        """Upper factor as a csr_array (built on demand)."""
        n = self.shape[0]
        rows = np.repeat(np.arange(n), np.diff(self.indptr))
        upper = self.indices >= rows
        return sp.csr_array((self.data[upper], (rows[upper], self.indices[upper])), shape=(n, n))

    def _apply(self, X):
        Y = np.array(X, dtype=self.dtype, order="C")
        kernels.lower_unit_solve(self.indptr, self.indices, self.data, self.diag, Y)
        kernels.upper_solve(self.indptr, self.indices, self.data, self.diag, self.inv_pivots, Y)
        return Y

    def _apply_adjoint(self, X):
        # M^T = (L U)^-T = L^-T U^-T: solve with U^T first, then L^T. For
        # complex factors M^H x = conj(M^T conj(x)).
        Y = np.array(np.conj(X) if self._complex else X, dtype=self.dtype, order="C")
        kernels.upper_transpose_solve(
            self.indptr, self.indices, self.data, self.diag, self.inv_pivots, Y
        )
        kernels.lower_unit_transpose_solve(self.indptr, self.indices, self.data, self.diag, Y)
        return np.conj(Y, out=Y) if self._complex else Y

    @property
    def nbytes(self):
        """Bytes of the factor arrays (pattern, values, diagonal positions, 1/pivots)."""
        return sum(
            a.nbytes for a in (self.indptr, self.indices, self.data, self.diag, self.inv_pivots)
        )

    def __repr__(self):
        return (
            f"<ILU0 N={self.shape[0]}, nnz(L+U)={self.data.size}, "
            f"memory={format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )
