"""Algebraic compression of a block lower triangular matrix into GFMM far-field form.

Given the exact block factors of ``A`` (``_blocks.ExactBlockFactors``), the
off-diagonal part of a factor is compressed into the nested bases, transfers
and bridges of a lower GFMM block (see ``gfmm``'s module doc) by truncated
eigendecompositions, HSS style:

* the bridge of level ``l`` from node ``b - 1`` to node ``b`` carries the whole
  block ``F[b, b-1]`` when ``b - 1, b`` are siblings (``b`` odd); bridges between
  cousins stay zero, so every leaf pair below the diagonal is represented by
  one bridge (at the level where its ancestors first differ), except a
  sub-diagonal pair of sibling leaves, which is near field only; the near
  field ``E`` then holds the exact sub-diagonal blocks minus what the bridges
  add there;
* the receiving (row) basis of a node spans its block row to the left of the
  node, ``F[I_a, :start(a)]``; bases are nested: a parent's basis is built from
  its children's projected block rows, which gives the transfers ``R``;
* the sending (column) bases and transfers ``W`` mirror this on ``F^T``.

Truncation keeps the ``r`` dominant eigenvectors of ``X X^T`` at each node, so a
far field that is exactly of GFMM form with rank ``r`` is reproduced exactly.
The cost per tree level is ``O(nnz(F) r)`` for the projections, ``O(c (2r)^2)``
for the Gram matrices (``c`` columns of F in use, at most N) and batched small
eigenproblems; nothing dense of size N x N is formed. ``init='auto'`` runs it
only up to ``lu.initialize.EXACT_START_MAX_N`` unknowns, because the exact LU it
compresses grows faster than N.
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["compress_lower", "far_part", "reverse_leaves"]


def far_part(F, P):
    """Return the part of ``F`` (sparse, ``N x N``) that the GFMM bridges carry.

    Every leaf pair ``(i, j)`` with ``j < i - 1``, and the sub-diagonal pairs
    ``(i, i - 1)`` with ``i`` even: those straddle two sibling nodes of a
    coarser level, whose bridge covers the whole block. The leaf diagonal and
    the sub-diagonal pairs within a leaf pair of siblings (``i`` odd) are the
    near field alone.
    """
    F = sp.coo_array(F)
    d = (F.row // P) - (F.col // P)
    keep = (d >= 2) | ((d == 1) & ((F.row // P) % 2 == 0))
    return sp.csr_array((F.data[keep], (F.row[keep], F.col[keep])), shape=F.shape)


def _dominant_gram(G, r):
    """``r`` orthonormal dominant eigenvectors of each Gram matrix ``G[i] = X X^T``.

    They are the dominant left singular vectors of ``X``; ``G`` is (m, n, n),
    decomposed in one batched call.
    """
    _, Q = np.linalg.eigh(G)
    return np.ascontiguousarray(Q[:, :, ::-1][:, :, :r])


def _bases(F, M, P, r):
    """Nested receiving bases of ``F``'s block rows against the columns on their left.

    Returns ``(leaf, transfers, explicit)``: ``leaf`` (M, P, r), ``transfers[l]``
    (2**l, r, r) for child level ``l = 2..K`` (``T`` with basis_child @ T =
    parent's basis restricted to the child), and ``explicit[l]`` (N, r): the
    explicit bases of the nodes of level ``l``, stacked in node order.
    """
    K = int(round(np.log2(M)))
    N = M * P
    # F is block lower with nothing on the leaf diagonal, so leaf i's block row
    # lies left of the leaf: its Gram matrix is the i-th diagonal block of F F^T.
    grams = np.zeros((M, P, P))
    for i in range(1, M):
        X = F[i * P:(i + 1) * P]
        grams[i] = (X @ X.T).toarray()
    leaf = _dominant_gram(grams, r)
    explicit = {K: leaf.reshape(N, r)}
    transfers = {}
    for lev in range(K - 1, 0, -1):
        size = P * 2 ** (K - lev)
        half = size // 2
        child = explicit[lev + 1]
        grams = np.zeros((2 ** lev, 2 * r, 2 * r))
        for a in range(1, 2 ** lev):
            start = a * size
            # Y = [Q_c1^T F[I_c1, :start]; Q_c2^T F[I_c2, :start]], transposed and
            # restricted to the columns where F has entries: sparse-times-dense
            # products, no dense block of F.
            Fa = F[start:start + size, :start]
            used = np.zeros(start, dtype=bool)
            used[Fa.indices] = True
            Fa = Fa[:, np.flatnonzero(used)]
            Yt = np.hstack([Fa[:half].T @ child[start:start + half],
                            Fa[half:].T @ child[start + half:start + size]])
            grams[a] = Yt.T @ Yt
        T = _dominant_gram(grams, r)
        T_lev = T.reshape(2 ** lev, 2, r, r).reshape(2 ** (lev + 1), r, r)
        transfers[lev + 1] = T_lev
        explicit[lev] = np.matmul(child.reshape(2 ** (lev + 1), half, r),
                                  T_lev).reshape(N, r)
    return leaf, transfers, explicit


def reverse_leaves(F, M, P):
    """``rev F rev``: ``F`` (sparse) with its leaf blocks in reversed order.

    The entries inside a leaf keep their order, as in ``gfmm.reverse_blocks``.
    """
    J = np.arange(M * P).reshape(M, P)[::-1].ravel()
    return sp.csr_array(F)[J][:, J]


def _column_basis(explicit_rev, lev, a, size, P):
    """Explicit sending basis of node ``a`` of level ``lev`` from the reversed tree's.

    Node ``a`` is node ``2**lev - 1 - a`` of the reversed tree, whose rows are
    the leaves of ``a`` in reversed leaf order.
    """
    a_rev = 2 ** lev - 1 - a
    Q = explicit_rev[a_rev * size:(a_rev + 1) * size]
    return Q.reshape(-1, P, Q.shape[1])[::-1].reshape(-1, Q.shape[1])


def compress_lower(F, M, P, r):
    """GFMM far-field parameters (lower block, full-length per-node arrays).

    Parameters
    ----------
    F : sparse (N, N)
        Block lower matrix holding only what the bridges carry (see
        :func:`far_part`).
    M, P, r : int
        Leaves (a power of two, >= 4), block size, rank.

    Returns
    -------
    dict with ``V``, ``U`` (M, P, r), ``W``, ``R`` (lists over levels 2..K of
    (2**l, r, r)) and ``B`` (list over levels 1..K-1 of (2**l - 1, r, r)), as
    :meth:`gfmm.GFMMBlock.params` lays them out, and ``E_far`` (M-1, P, P):
    the bridges' contribution to the sub-diagonal blocks, to be subtracted
    from the near field ``E``.
    """
    K = int(round(np.log2(M)))
    F = sp.csr_array(F)
    U, R, rows = _bases(F, M, P, r)
    # Sending bases of F are the receiving bases of rev F^T rev, node order reversed.
    V_rev, W_rev, cols_rev = _bases(reverse_leaves(F.T, M, P), M, P, r)
    V = V_rev[::-1].copy()
    W = {lev: T[::-1].copy() for lev, T in W_rev.items()}
    B = []
    for lev in range(1, K):
        size = P * 2 ** (K - lev)
        B_lev = np.zeros((2 ** lev - 1, r, r))
        for b in range(1, 2 ** lev, 2):
            Qr = rows[lev][b * size:(b + 1) * size]
            Qc = _column_basis(cols_rev[lev], lev, b - 1, size, P)
            X = F[b * size:(b + 1) * size, (b - 1) * size:b * size]
            B_lev[b - 1] = (X.T @ Qr).T @ Qc
        B.append(B_lev)
    # What the bridges add to the sub-diagonal blocks (i, i-1), i even: the
    # near field must subtract it.
    E_far = np.zeros((M - 1, P, P))
    for i in range(2, M, 2):
        lev = K - (i ^ (i - 1)).bit_length() + 1  # level where i-1, i first differ
        b = i >> (K - lev)
        size = P * 2 ** (K - lev)
        Qr = rows[lev][i * P:(i + 1) * P]
        Qc = _column_basis(cols_rev[lev], lev, b - 1, size, P)[-P:]
        E_far[i - 1] = Qr @ B[lev - 1][b - 1] @ Qc.T
    return {"V": V, "U": U, "W": [W[lev] for lev in range(2, K + 1)],
            "R": [R[lev] for lev in range(2, K + 1)], "B": B, "E_far": E_far}
