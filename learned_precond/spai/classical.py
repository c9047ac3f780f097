"""The classical SPAIs: Grote-Huckle least squares (``R``) and FSAI (``G^T G``, SPD).

Both are direct: one small dense system per column (or row) of the
pattern, all of them solved in one batched ``numpy.linalg.solve``.
"""

import numpy as np
import scipy.sparse as sp

from ..exceptions import PreconditionerSetupError
from .pattern import csr_entries

__all__ = ["fit_fsai", "fit_lstsq"]


def _padded_rows(P):
    """Column indices of each CSR row of ``P`` padded to a rectangle with -1."""
    counts = np.diff(P.indptr)
    width = int(counts.max())
    J = np.full((P.shape[0], width), -1, dtype=np.int64)
    slot = np.arange(P.nnz) - np.repeat(P.indptr[:-1], counts)
    J[np.repeat(np.arange(P.shape[0]), counts), slot] = P.indices
    return J


def _batched_blocks(M, J):
    """Dense ``M[J_k, J_k]`` for every padded index row ``J_k`` (identity on padding)."""
    n_rows, m = J.shape
    a = np.repeat(J, m, axis=1)
    b = np.tile(J, (1, m))
    valid = (a >= 0) & (b >= 0)
    vals = np.zeros(a.shape)
    vals[valid] = csr_entries(M, a[valid], b[valid])
    blocks = vals.reshape(n_rows, m, m)
    pad = J < 0
    blocks[pad] = 0.0
    blocks.transpose(0, 2, 1)[pad] = 0.0
    idx = np.nonzero(pad)
    blocks[idx[0], idx[1], idx[1]] = 1.0
    return blocks


def fit_lstsq(A, P):
    """Grote-Huckle SPAI: ``min ||A r_k - e_k||`` over column ``k``'s pattern, all k.

    With ``J`` the rows allowed in column ``k``, the normal equations are
    ``(A^T A)[J, J] m = A[k, J]^T``: the Gram matrix restricted to ``J``
    (nonsingular for nonsingular ``A``). Columns are scaled by ``diag(A)``
    first (the solution is unchanged, the small systems better conditioned).
    """
    n = A.shape[0]
    d = A.diagonal()
    Ac = sp.csr_array(A @ sp.diags_array(1.0 / d))
    Ac.sort_indices()
    G = sp.csr_array(Ac.T @ Ac)
    G.sort_indices()
    Pc = sp.csr_array(P.T)  # rows of P^T = columns of P
    Pc.sort_indices()
    J = _padded_rows(Pc)
    blocks = _batched_blocks(G, J)
    k = np.repeat(np.arange(n)[:, None], J.shape[1], axis=1)
    rhs = np.where(J >= 0, csr_entries(Ac, k, np.maximum(J, 0)), 0.0)
    try:
        m = np.linalg.solve(blocks, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError as err:
        raise PreconditionerSetupError(
            f"SPAI least-squares systems are singular ({err}); A is (numerically) "
            f"singular on some column's pattern. Use a larger pattern or 'ilut'."
        ) from err
    valid = J >= 0
    cols = np.repeat(np.arange(n)[:, None], J.shape[1], axis=1)[valid]
    Rc = sp.csr_array((m[valid], (J[valid], cols)), shape=(n, n))
    return sp.csr_array(sp.diags_array(1.0 / d) @ Rc)


def fit_fsai(A, P):
    """Factorized SPAI (Kolotilina-Yeremin): ``G`` lower triangular, ``M = G^T G``.

    For row ``i`` with allowed columns ``J`` (``i`` last), solve
    ``A[J, J] y = e_i`` and set ``G[i, J] = y / sqrt(y_i)``; then
    ``diag(G A G^T) = 1`` and ``G`` minimizes ``||I - G L||_F`` over the
    pattern, ``L`` the Cholesky factor of ``A``. ``R = G^T``.
    """
    n = A.shape[0]
    L = sp.csr_array(sp.tril(P, format="csr"))
    L.sort_indices()
    J = _padded_rows(L)
    blocks = _batched_blocks(A, J)
    last = np.diff(L.indptr) - 1  # the diagonal is the last (largest) index of each row
    rhs = np.zeros(J.shape)
    rhs[np.arange(n), last] = 1.0
    try:
        y = np.linalg.solve(blocks, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError as err:
        raise PreconditionerSetupError(
            f"FSAI systems A[J, J] are singular ({err}); A is not positive definite."
        ) from err
    yi = y[np.arange(n), last]
    if not np.all(yi > 0):
        bad = int(np.flatnonzero(~(yi > 0))[0])
        raise PreconditionerSetupError(
            f"FSAI found A[J, J] not positive definite at row {bad}; A is not SPD. "
            f"Use symmetric=False with method='lstsq' (GMRES)."
        )
    g = y / np.sqrt(yi)[:, None]
    valid = J >= 0
    rows = np.repeat(np.arange(n)[:, None], J.shape[1], axis=1)[valid]
    G = sp.csr_array((g[valid], (rows, J[valid])), shape=(n, n))
    return sp.csr_array(G.T)
