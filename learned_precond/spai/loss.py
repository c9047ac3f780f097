r"""Sparse products on fixed patterns, as index plans that torch can differentiate.

A product ``C = X @ Y`` of two sparse matrices with *fixed* sparsity patterns
is a fixed list of multiply-adds: ``C.data[out[t]] += X.data[left[t]] *
Y.data[right[t]]`` for every pair ``t`` of a stored ``X[i, k]`` and a stored
``Y[k, j]``. :func:`product_plan` computes that list once (numpy, vectorized);
:func:`apply_plan` then evaluates the product in torch with one gather, one
multiply and one ``index_add``, so gradients with respect to both value
arrays come for free and a batch of matrices with the same pattern is a
``(batch, nnz)`` tensor.

This is how the SPAI losses are computed exactly (not estimated with probe
vectors) in ``O(nnz)`` work:

.. math::
    \|I - R^T A R\|_F^2 = \sum_{(i,j)\in\mathcal{P}(C)} c_{ij}^2
                          - 2\sum_i c_{ii} + N,\qquad C = R^T (A R),

where :math:`\mathcal{P}(C)` is the pattern of ``C``, outside of which
``C`` is zero, and the diagonal lies inside it.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "ProductPlan",
    "SPAILossPlan",
    "apply_plan",
    "loss_plan",
    "product_plan",
    "spai_loss",
    "transpose_permutation",
]


@dataclass(frozen=True)
class ProductPlan:
    """The multiply-adds of ``C = X @ Y`` for fixed patterns of ``X`` and ``Y``.

    Attributes
    ----------
    left, right, out : ndarray of int64
        ``C.data[out[t]] += X.data[left[t]] * Y.data[right[t]]``.
    indptr, indices : ndarray of int64
        CSR pattern of ``C`` (sorted column indices).
    shape : tuple of int
    """

    left: np.ndarray
    right: np.ndarray
    out: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    shape: tuple

    @property
    def nnz(self):
        """Stored entries of ``C``."""
        return int(self.indices.size)

    def diagonal_positions(self):
        """Positions of ``C``'s diagonal entries in ``C.data`` (-1 where absent)."""
        n = min(self.shape)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        pos = np.full(n, -1, dtype=np.int64)
        on = rows == self.indices
        pos[rows[on]] = np.flatnonzero(on)
        return pos


def _csr_pattern(X):
    X = sp.csr_array(X)
    X.sort_indices()
    return X.indptr.astype(np.int64), X.indices.astype(np.int64), X.shape


def product_plan(X, Y):
    """Return the :class:`ProductPlan` of ``X @ Y`` (patterns only; values ignored).

    ``X`` and ``Y`` must be canonical CSR (no duplicates, sorted indices);
    ``X.data[p]`` is addressed by ``p`` in CSR storage order.
    """
    x_ptr, x_idx, (m, k) = _csr_pattern(X)
    y_ptr, y_idx, (k2, n) = _csr_pattern(Y)
    if k != k2:
        raise ValueError(f"inner sizes differ: {k} and {k2}")
    x_rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(x_ptr))
    counts = (y_ptr[1:] - y_ptr[:-1])[x_idx]  # entries of Y's row k for each X[i, k]
    total = int(counts.sum())
    left = np.repeat(np.arange(x_idx.size, dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    right = np.repeat(y_ptr[x_idx], counts) + (
        np.arange(total, dtype=np.int64) - np.repeat(offsets, counts)
    )
    key = np.repeat(x_rows, counts) * n + y_idx[right]
    unique, out = np.unique(key, return_inverse=True)
    rows, cols = np.divmod(unique, n)
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    return ProductPlan(
        left=left,
        right=right,
        out=out.astype(np.int64).ravel(),
        indptr=np.cumsum(indptr),
        indices=cols.astype(np.int64),
        shape=(m, n),
    )


def transpose_permutation(indptr, indices, shape):
    """Return ``(perm, t_indptr, t_indices)`` with ``X.T.data == X.data[perm]`` in CSR order."""
    nnz = indices.size
    X = sp.csr_array(
        (np.arange(1, nnz + 1, dtype=np.float64), indices, indptr), shape=shape
    )
    T = sp.csr_array(X.T)
    T.sort_indices()
    return (
        T.data.astype(np.int64) - 1,
        T.indptr.astype(np.int64),
        T.indices.astype(np.int64),
    )


def apply_plan(x_data, y_data, left, right, out, nnz_out):
    """Values of ``X @ Y`` (torch, differentiable); data may carry a leading batch axis."""
    prod = x_data[..., left] * y_data[..., right]
    result = prod.new_zeros(prod.shape[:-1] + (nnz_out,))
    return result.index_add_(-1, out, prod)


@dataclass(frozen=True)
class SPAILossPlan:
    """Index tensors for the exact SPAI loss of one pattern pair (``A``, ``R``).

    ``symmetric``: the seed's ``||I - R^T A R||_F^2`` (``C = R^T B``,
    ``B = A R``); otherwise ``||I - A R||_F^2`` (``C = B``).
    """

    symmetric: bool
    n: int
    ar: tuple  # (left into A, right into R, out into B, nnz(B))
    rtb: tuple | None  # (left into R via transpose, right into B, out into C, nnz(C))
    diag: torch.Tensor  # positions of C's diagonal

    def to(self, device):
        """Return the plan with its index tensors on ``device``."""
        move = lambda t: tuple(v.to(device) if torch.is_tensor(v) else v for v in t)  # noqa: E731
        return SPAILossPlan(
            self.symmetric, self.n, move(self.ar),
            None if self.rtb is None else move(self.rtb), self.diag.to(device),
        )


def loss_plan(A_pattern, R_pattern, *, symmetric):
    """Build the :class:`SPAILossPlan` for csr patterns of ``A`` and ``R`` (same size)."""
    n = A_pattern.shape[0]
    ab = product_plan(A_pattern, R_pattern)
    B = sp.csr_array((np.ones(ab.nnz), ab.indices, ab.indptr), shape=ab.shape)
    ar = tuple(torch.from_numpy(v) for v in (ab.left, ab.right, ab.out)) + (ab.nnz,)
    if not symmetric:
        diag = ab.diagonal_positions()
        return SPAILossPlan(False, n, ar, None, torch.from_numpy(diag[diag >= 0]))
    R = sp.csr_array(R_pattern)
    R.sort_indices()
    perm, t_ptr, t_idx = transpose_permutation(
        R.indptr.astype(np.int64), R.indices.astype(np.int64), R.shape
    )
    RT = sp.csr_array((np.ones(t_idx.size), t_idx, t_ptr), shape=R.shape[::-1])
    cb = product_plan(RT, B)
    diag = cb.diagonal_positions()
    rtb = (
        torch.from_numpy(perm[cb.left]),  # R^T.data[p] == R.data[perm[p]]
        torch.from_numpy(cb.right),
        torch.from_numpy(cb.out),
        cb.nnz,
    )
    return SPAILossPlan(True, n, ar, rtb, torch.from_numpy(diag[diag >= 0]))


def spai_loss(a_data, r_data, plan):
    """Exact ``||I - R^T A R||_F^2`` (symmetric plan) or ``||I - A R||_F^2``.

    ``a_data``, ``r_data``: torch value arrays in CSR order of the patterns
    the plan was built from (optionally with a leading batch axis; the
    result then has that axis).
    """
    left, right, out, nnz_b = plan.ar
    C = apply_plan(a_data, r_data, left, right, out, nnz_b)
    if plan.symmetric:
        left, right, out, nnz_c = plan.rtb
        C = apply_plan(r_data, C, left, right, out, nnz_c)
    return (C * C).sum(-1) - 2.0 * C[..., plan.diag].sum(-1) + plan.n
