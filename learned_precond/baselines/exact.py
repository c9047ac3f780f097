"""``M = A^-1`` by a complete sparse (SuperLU) or dense (LAPACK) LU (registry name ``'exact'``)."""

import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._base import Preconditioner
from .._format import format_bytes, format_indices
from .._structure import sparse_nbytes
from ._setup import Timer, as_float_matrix, setup_error

__all__ = ["ExactLU"]


class ExactLU(Preconditioner):
    """``M = A^-1`` through a complete LU factorization.

    Sparse ``A`` is factored by SuperLU (``splu``, fill-reducing column
    ordering ``permc_spec``), dense ``A`` by LAPACK ``getrf``. GMRES with it
    converges in one or two iterations: the lower bound every preconditioner
    is measured against, at the cost of the fill-in.
    """

    name = "exact"
    symmetric = True
    supports_complex = True

    def __init__(self, lu, n, *, sparse, dtype=np.float64):
        super().__init__((n, n), dtype=dtype)
        self.lu = lu
        self.sparse = sparse
        if sparse:
            self._nbytes = sparse_nbytes(lu.L, lu.U, lu.perm_r, lu.perm_c)
            self.nnz = int(lu.nnz)
        else:
            self._nbytes = lu[0].nbytes + lu[1].nbytes
            self.nnz = n * n

    @classmethod
    def fit(cls, A, *, permc_spec="COLAMD"):
        """Factor ``A`` exactly.

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix, real or complex.
        permc_spec : {'COLAMD', 'NATURAL', 'MMD_ATA', 'MMD_AT_PLUS_A'}, optional
            Column ordering for the sparse factorization (ignored for dense ``A``).

        Returns
        -------
        ExactLU

        Raises
        ------
        PreconditionerSetupError
            ``A`` is exactly singular.
        """
        with Timer() as t:
            A = as_float_matrix(A, allow_complex=True)
            n = A.shape[0]
            if sp.issparse(A):
                try:
                    lu = spla.splu(A.tocsc(), permc_spec=permc_spec)
                except RuntimeError as err:
                    reason = " ".join(str(err).split())
                    raise setup_error(
                        f"A is singular ({reason}); it has no inverse to apply. Check for "
                        f"empty or repeated rows/columns, or remove the null space "
                        f"(e.g. fix one value of a pure Neumann problem).",
                        A,
                    ) from err
                self = cls(lu, n, sparse=True, dtype=A.dtype)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                    lu, piv = scipy.linalg.lu_factor(A)
                zero = np.flatnonzero(np.diag(lu) == 0)
                if zero.size:
                    raise setup_error(
                        f"A is singular: U[i, i] == 0 at position(s) {format_indices(zero)} "
                        f"of its LU factorization; it has no inverse to apply. Remove "
                        f"the null space or regularize A.",
                        A,
                    )
                self = cls((lu, piv), n, sparse=False, dtype=A.dtype)
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        if self.sparse:
            return self.lu.solve(X)
        return scipy.linalg.lu_solve(self.lu, X, check_finite=False)

    def _apply_adjoint(self, X):
        if self.sparse:
            return self.lu.solve(X, trans="H")  # M^H (M^T for real A)
        return scipy.linalg.lu_solve(self.lu, X, trans=2, check_finite=False)

    @property
    def nbytes(self):
        """Bytes of the factors and permutations."""
        return self._nbytes

    def __repr__(self):
        kind = "sparse SuperLU" if self.sparse else "dense LAPACK"
        return (
            f"<ExactLU {kind}, N={self.shape[0]}, nnz(L+U)={self.nnz}, "
            f"memory={format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )
