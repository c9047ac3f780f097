r"""The sparsity pattern a SPAI factor ``R`` lives on, and entries of a CSR matrix.

Patterns (``pattern=``): ``'A'`` (the pattern of ``A``), ``'A2'`` (that of
``A^2``), or a boolean ``(N, N)`` mask; the diagonal is always included.
``extra_fill=f`` adds ``round(f * nnz(pattern))`` further entries (in
symmetric pairs), those of the next power of the pattern with the largest
weight ``(|A_s| P)_ij + (|A_s| P)_ji``, where ``A_s`` is ``A`` scaled to a
unit diagonal and ``P`` the 0/1 base pattern; the paper allows 20% extra
entries for its harder (biharmonic) family.
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["PATTERNS", "csr_entries", "sparsity_pattern", "unit_pattern"]

PATTERNS = ("A", "A2")


def unit_pattern(X):
    """Return the 0/1 canonical csr pattern of ``X`` (stored entries become 1.0)."""
    P = sp.csr_array(X, dtype=np.float64, copy=True)
    P.data[:] = 1.0
    P.sum_duplicates()
    P.sort_indices()
    return P


def sparsity_pattern(A, pattern="A", *, extra_fill=0.0):
    """Return the 0/1 pattern (csr_array, diagonal included) a SPAI of ``A`` lives on.

    Parameters
    ----------
    A : sparse array or ndarray, shape (N, N)
    pattern : {'A', 'A2'} or boolean array/sparse matrix of shape (N, N)
        Base pattern: that of ``A``, of ``A^2``, or an explicit mask.
    extra_fill : float
        Add ``round(extra_fill * nnz(base))`` entries of the pattern of
        ``|A| base`` outside the base, largest weight first (see the module
        docstring), in symmetric pairs.

    Returns
    -------
    scipy.sparse.csr_array
        Canonical, values 1.0.
    """
    A = sp.csr_array(A, dtype=np.float64)
    n = A.shape[0]
    if isinstance(pattern, str):
        if pattern not in PATTERNS:
            raise ValueError(
                f"pattern must be 'A', 'A2' or a boolean (N, N) mask, got {pattern!r}."
            )
        P = unit_pattern(A)
        if pattern == "A2":
            P = unit_pattern(P @ P)
    else:
        mask = pattern
        if not sp.issparse(mask):
            mask = np.asarray(mask)
            if mask.shape != (n, n):
                raise ValueError(
                    f"pattern mask has shape {mask.shape}, but A is {n} x {n}; pass an "
                    f"(N, N) boolean array."
                )
            mask = sp.csr_array(mask != 0)
        elif mask.shape != (n, n):
            raise ValueError(
                f"pattern mask has shape {mask.shape}, but A is {n} x {n}; pass an "
                f"(N, N) boolean array."
            )
        mask = sp.csr_array(mask)
        mask.eliminate_zeros()
        P = unit_pattern(mask)
    P = unit_pattern(P + sp.eye_array(n, format="csr"))
    extra_fill = float(extra_fill)
    if not (np.isfinite(extra_fill) and extra_fill >= 0):
        raise ValueError(f"extra_fill must be a finite fraction >= 0, got {extra_fill}.")
    if extra_fill > 0:
        P = _add_fill(A, P, extra_fill)
    return P


def _add_fill(A, P, extra_fill):
    n = A.shape[0]
    d = np.abs(A.diagonal())
    d[d == 0] = 1.0
    s = sp.diags_array(1.0 / np.sqrt(d))
    S = sp.csr_array(abs(s @ A @ s) @ P)
    S = sp.csr_array(S + S.T).tocoo()
    rows, cols, w = S.row, S.col, S.data
    upper = rows < cols
    rows, cols, w = rows[upper], cols[upper], w[upper]
    present = P[rows, cols] != 0
    rows, cols, w = rows[~present], cols[~present], w[~present]
    budget = int(round(extra_fill * P.nnz / 2))  # pairs
    if budget <= 0 or rows.size == 0:
        return P
    order = np.lexsort((cols, rows, -w))[:budget]
    r, c = rows[order], cols[order]
    F = sp.csr_array(
        (np.ones(2 * r.size), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n)
    )
    return unit_pattern(P + F)


def csr_entries(M, rows, cols):
    """Entries ``M[rows, cols]`` of canonical csr ``M`` (0 where not stored), vectorized."""
    n = M.shape[1]
    keys = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr)) * n + M.indices
    want = rows.astype(np.int64) * n + cols.astype(np.int64)
    pos = np.searchsorted(keys, want)
    pos = np.minimum(pos, keys.size - 1)
    found = keys[pos] == want
    return np.where(found, M.data[pos], 0.0)
