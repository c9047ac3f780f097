"""Why a SPAI factor ``R`` is nonsingular, so that ``M = R R^T`` is SPD."""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["spd_certificate"]


def spd_certificate(R):
    """Return why the square sparse ``R`` is nonsingular (so ``R R^T`` is SPD), or None.

    Strict diagonal dominance by rows or by columns (Gershgorin) is checked
    in ``O(nnz)``; otherwise a sparse LU of ``R`` must succeed with every
    pivot above ``1e3 eps`` times the largest entry of ``R``.
    """
    R = sp.csr_array(R)
    d = np.abs(R.diagonal())
    A = abs(R)
    off_rows = np.asarray(A.sum(axis=1)).ravel() - d
    off_cols = np.asarray(A.sum(axis=0)).ravel() - d
    if np.all(d > off_rows):
        return "R is strictly diagonally dominant by rows"
    if np.all(d > off_cols):
        return "R is strictly diagonally dominant by columns"
    try:
        lu = spla.splu(sp.csc_array(R))
    except RuntimeError:
        return None
    pivots = np.abs(lu.U.diagonal())
    if pivots.min() > 1e3 * np.finfo(np.float64).eps * np.max(np.abs(R.data)):
        return "sparse LU of R has no tiny pivot"
    return None
