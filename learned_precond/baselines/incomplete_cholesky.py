"""Threshold incomplete Cholesky ``A ~ P^T L D L^T P`` from SuperLU's symmetric mode.

The learned-SPAI paper compares against SuperLU's ILU "using its symmetric
mode to obtain IC preconditioning". This is that baseline, made exactly
symmetric: SuperLU's ``spilu`` runs with ``SymmetricMode``, a symmetric
fill-reducing ordering (``MMD_AT_PLUS_A``) and no off-diagonal pivoting
(``diag_pivot_thresh=0``), so ``P A P^T ~ L U`` with the same permutation on
both sides; its ``U`` is ``D L^T`` up to the dropping of entries, so we keep
``L`` and ``D = diag(U)`` and apply ``M = P^T (L D L^T)^-1 P``, which is SPD
whenever ``D > 0``. Triangular solves are the compiled kernels of ILU(0).
"""

import time
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._base import Preconditioner
from .._format import format_bytes
from .._structure import is_symmetric
from .._validation import as_matrix, check_structure
from ..exceptions import PreconditionerSetupError
from . import _ilu_kernels as kernels
from ._setup import refuse_complex

__all__ = ["IncompleteCholesky"]


class IncompleteCholesky(Preconditioner):
    """Threshold incomplete Cholesky (LDL^T) for SPD ``A``; SPD, so valid for CG.

    Attributes
    ----------
    drop_tol : float
    nnz : int
        Stored entries of the factor (``L`` strictly lower plus ``D``); the
        operator uses ``L``, ``D`` and ``L^T``.
    """

    name = "ict"
    symmetric = True

    def __init__(self, indptr, indices, data, diag, perm, *, drop_tol, fill_factor):
        n = indptr.size - 1
        super().__init__((n, n))
        self.indptr, self.indices, self.data, self.diag = indptr, indices, data, diag
        self.inv_d = 1.0 / data[diag]
        self.perm = perm  # row i of P A P^T is row perm[i] of A
        self.drop_tol = drop_tol
        self.fill_factor = fill_factor

    @classmethod
    def fit(cls, A, *, drop_tol=1e-3, fill_factor=20.0):
        """Compute the threshold IC of an SPD ``A``.

        Parameters
        ----------
        A : sparse array or ndarray
            SPD matrix.
        drop_tol : float
            SuperLU's drop tolerance in ``[0, 1]`` (smaller: more fill, fewer iterations).
        fill_factor : float
            Bound on ``nnz(L + U) / nnz(A)``.

        Raises
        ------
        ValueError
            Bad input or options.
        PreconditionerSetupError
            ``A`` is not symmetric, SuperLU fails, or a pivot of ``D`` is not positive.
        """
        drop_tol, fill_factor = float(drop_tol), float(fill_factor)
        if not 0.0 <= drop_tol <= 1.0:
            raise ValueError(f"drop_tol must be in [0, 1], got {drop_tol}.")
        if not fill_factor >= 1.0:
            raise ValueError(f"fill_factor must be >= 1, got {fill_factor}.")
        start = time.perf_counter()
        refuse_complex(A, "incomplete Cholesky ('ict')",
                       "it factors real SPD matrices as L D L^T")
        A = as_matrix(A)
        A = sp.csc_array(A, dtype=np.float64)
        check_structure(A)
        if not is_symmetric(A):
            raise PreconditionerSetupError(
                "incomplete Cholesky needs a symmetric A (it is for SPD systems and CG); "
                "use 'ilut' or 'ilu0' with GMRES."
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)
                ilu = spla.spilu(
                    A, drop_tol=drop_tol, fill_factor=fill_factor,
                    permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                    options={"SymmetricMode": True},
                )
        except RuntimeError as err:
            raise PreconditionerSetupError(
                f"incomplete Cholesky failed ({' '.join(str(err).split())}); lower drop_tol "
                f"or use 'amg'."
            ) from err
        if not np.array_equal(ilu.perm_r, ilu.perm_c):
            raise PreconditionerSetupError(
                "SuperLU pivoted off the diagonal, so its factors are not a symmetric "
                "L D L^T; A is probably not SPD. Use 'ilut' with GMRES."
            )
        n = A.shape[0]
        L = sp.csr_array(ilu.L)
        d = np.asarray(ilu.U.diagonal(), dtype=np.float64)
        if not np.all(d > 0) or not np.all(np.isfinite(L.data)):
            raise PreconditionerSetupError(
                "incomplete Cholesky produced a non-positive pivot (A is not SPD or the "
                "dropping is too aggressive); lower drop_tol or use 'amg'."
            )
        F = sp.csr_array(sp.tril(L, k=-1) + sp.diags_array(d))
        F.sort_indices()
        indptr, indices = F.indptr.astype(np.int64), F.indices.astype(np.int64)
        diag = kernels.diagonal_positions(indptr, indices)
        # Pr A Pc = L U with Pr[perm_r[i], i] = 1: (P x)[perm_r[i]] = x[i].
        perm = np.empty(n, dtype=np.int64)
        perm[ilu.perm_r] = np.arange(n)
        self = cls(indptr, indices, np.array(F.data, dtype=np.float64), diag, perm,
                   drop_tol=drop_tol, fill_factor=fill_factor)
        self.setup_time = time.perf_counter() - start
        return self

    def _apply(self, X):
        Y = np.ascontiguousarray(X[self.perm], dtype=np.float64)
        kernels.lower_unit_solve(self.indptr, self.indices, self.data, self.diag, Y)
        Y *= self.inv_d[:, None]
        kernels.lower_unit_transpose_solve(self.indptr, self.indices, self.data, self.diag, Y)
        out = np.empty_like(Y)
        out[self.perm] = Y
        return out

    def _apply_adjoint(self, X):
        return self._apply(X)  # M is symmetric

    @property
    def nnz(self):
        """Stored entries of the factor (strictly lower ``L`` plus ``D``)."""
        return int(self.data.size)

    @property
    def nbytes(self):
        """Bytes of the factor, its pattern and the permutation."""
        return int(sum(a.nbytes for a in (self.indptr, self.indices, self.data, self.diag,
                                          self.inv_d, self.perm)))

    def __repr__(self):
        return (
            f"<IncompleteCholesky N={self.shape[0]}, drop_tol={self.drop_tol:g}, "
            f"nnz(L+D)={self.nnz}, memory={format_bytes(self.nbytes)}, "
            f"setup={self.setup_time:.3g} s>"
        )
