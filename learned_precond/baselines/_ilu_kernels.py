"""Numba kernels for ILU(0): factorization and triangular solves on CSR arrays.

ILU(0) keeps exactly the sparsity pattern of ``A``: ``L`` (unit lower) and
``U`` (upper) share one CSR array ``data`` laid out on ``A``'s pattern, the
strictly lower entries holding ``L`` and the diagonal and upper entries
holding ``U``. ``diag[i]`` is the position of ``(i, i)`` in row ``i``.

The factorization is the IKJ ("row-by-row", Saad, *Iterative Methods for
Sparse Linear Systems*, 2nd ed., Algorithm 10.4) variant: row ``i`` is
eliminated by the already final rows ``k < i`` in increasing ``k``, and every
update ``a_ij -= l_ik u_kj`` is kept only when ``(i, j)`` is in the pattern.

:func:`ilu0_reference` is the same factorization in plain Python, written in
the KIJ ("right-looking") order instead, so the tests compare two
independently written loops. It is for tests and small matrices only.

All kernels expect sorted CSR indices (``_validation.as_matrix`` guarantees
them) and right-hand sides as C-contiguous float64 ``(n, k)`` blocks.
"""

import numba
import numpy as np

__all__ = [
    "diagonal_positions",
    "ilu0_factor",
    "ilu0_reference",
    "lower_unit_solve",
    "upper_solve",
    "upper_transpose_solve",
    "lower_unit_transpose_solve",
]

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def diagonal_positions(indptr, indices):
    """Return the position of ``(i, i)`` in each CSR row, ``-1`` where absent."""
    n = indptr.shape[0] - 1
    diag = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            if indices[p] == i:
                diag[i] = p
                break
            if indices[p] > i:  # sorted indices: the diagonal is not stored
                break
    return diag


@_jit
def ilu0_factor(indptr, indices, data, diag, pivot_floor):
    """Overwrite ``data`` with the ILU(0) factors of the CSR matrix, in place.

    Parameters
    ----------
    indptr, indices : int arrays
        Sorted CSR structure of ``A`` (every row has its diagonal entry).
    data : float64 array
        Entries of ``A``; on return, ``L`` below and ``U`` on/above the diagonal.
    diag : int64 array
        Diagonal positions from :func:`diagonal_positions`.
    pivot_floor : float64 array
        A pivot ``|u_ii| <= pivot_floor[i]`` (or not finite) stops the factorization.

    Returns
    -------
    int
        ``-1`` on success, else the row whose pivot failed.
    """
    n = indptr.shape[0] - 1
    # position of column j in the current row i, -1 when (i, j) is not in
    # the pattern; reset after each row so the work stays O(nnz * fill of U).
    where = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        start, end = indptr[i], indptr[i + 1]
        for p in range(start, end):
            where[indices[p]] = p
        for p in range(start, diag[i]):  # columns k < i in increasing order
            k = indices[p]
            lik = data[p] / data[diag[k]]
            data[p] = lik
            for q in range(diag[k] + 1, indptr[k + 1]):  # u_kj, j > k
                pos = where[indices[q]]
                if pos != -1:
                    data[pos] -= lik * data[q]
        for p in range(start, end):
            where[indices[p]] = -1
        pivot = data[diag[i]]
        if not np.isfinite(pivot) or abs(pivot) <= pivot_floor[i]:
            return i
    return -1


@_jit
def lower_unit_solve(indptr, indices, data, diag, X):
    """Solve ``L Y = X`` in place (``L`` unit lower, strictly lower part of ``data``)."""
    n, k = X.shape
    if k == 1:  # one vector: accumulate in a register (the common Krylov case)
        for i in range(n):
            s = X[i, 0]
            for p in range(indptr[i], diag[i]):
                s -= data[p] * X[indices[p], 0]
            X[i, 0] = s
        return
    for i in range(n):
        for p in range(indptr[i], diag[i]):
            lij = data[p]
            j = indices[p]
            for c in range(k):
                X[i, c] -= lij * X[j, c]


@_jit
def upper_solve(indptr, indices, data, diag, inv_pivots, X):
    """Solve ``U Y = X`` in place (``U`` = diagonal and upper part of ``data``).

    ``inv_pivots[i] = 1 / u_ii``: a multiply instead of a division keeps the
    (latency-bound) recurrence short.
    """
    n, k = X.shape
    if k == 1:
        for i in range(n - 1, -1, -1):
            s = X[i, 0]
            for p in range(diag[i] + 1, indptr[i + 1]):
                s -= data[p] * X[indices[p], 0]
            X[i, 0] = s * inv_pivots[i]
        return
    for i in range(n - 1, -1, -1):
        for p in range(diag[i] + 1, indptr[i + 1]):
            uij = data[p]
            j = indices[p]
            for c in range(k):
                X[i, c] -= uij * X[j, c]
        inv = inv_pivots[i]
        for c in range(k):
            X[i, c] *= inv


@_jit
def upper_transpose_solve(indptr, indices, data, diag, inv_pivots, X):
    """Solve ``U^T Y = X`` in place, sweeping the rows of ``U`` as columns of ``U^T``."""
    n, k = X.shape
    for i in range(n):
        inv = inv_pivots[i]
        for c in range(k):
            X[i, c] *= inv
        for p in range(diag[i] + 1, indptr[i + 1]):
            uij = data[p]
            j = indices[p]
            for c in range(k):
                X[j, c] -= uij * X[i, c]


@_jit
def lower_unit_transpose_solve(indptr, indices, data, diag, X):
    """Solve ``L^T Y = X`` in place (``L`` unit lower)."""
    n, k = X.shape
    for i in range(n - 1, -1, -1):
        for p in range(indptr[i], diag[i]):
            lij = data[p]
            j = indices[p]
            for c in range(k):
                X[j, c] -= lij * X[i, c]


def ilu0_reference(indptr, indices, data):
    """ILU(0) in plain Python (KIJ order), for tests and small matrices.

    Parameters
    ----------
    indptr, indices, data : arrays
        Sorted CSR arrays of a square matrix whose rows all store their
        diagonal entry.

    Returns
    -------
    ndarray
        Factor entries on the pattern of ``A``, laid out like ``data``
        (``L`` strictly below the diagonal, ``U`` on and above it).

    Raises
    ------
    ZeroDivisionError
        A zero pivot.
    """
    n = len(indptr) - 1
    rows = [
        {int(indices[p]): float(data[p]) for p in range(indptr[i], indptr[i + 1])}
        for i in range(n)
    ]
    # rows i > k holding column k, in increasing order (the pattern is static)
    below = [[] for _ in range(n)]
    for i in range(n):
        for j in rows[i]:
            if j < i:
                below[j].append(i)
    for k in range(n):
        pivot = rows[k][k]
        if pivot == 0.0:
            raise ZeroDivisionError(f"zero pivot in row {k}")
        upper_k = [(j, v) for j, v in rows[k].items() if j > k]
        for i in below[k]:
            row_i = rows[i]
            lik = row_i[k] / pivot
            row_i[k] = lik
            for j, ukj in upper_k:
                if j in row_i:
                    row_i[j] -= lik * ukj
    out = np.empty(len(data), dtype=np.float64)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            out[p] = rows[i][int(indices[p])]
    return out
