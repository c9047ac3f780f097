"""Blocked forward substitution through a lower GFMM block in O(N (P + r)).

Solving ``L x = b`` walks the leaves in order. Everything ``f^K_i`` needs
comes from nodes left of leaf i's ancestors, all of whose leaves are already
solved (see ``docs/learned_lu.md`` and ``gfmm`` for the notation)::

    for i in 0..M-1:
        for each ancestor a of i at levels 1..K-1 whose leftmost leaf is i:
            f^l_a = B^l_a g^l_(a-1) + R^l_a f^(l-1)_parent(a)   (once per node)
        f^K_i = R^K_i f^(K-1)_parent(i)
        x_i = D_i^-1 (b_i - E_i x_(i-1) - U_i f^K_i)
        g^K_i = V_i^T x_i
        for each ancestor p whose last leaf is i: g^(l-1)_p += W_c^T g^l_c

Every node's ``f`` and ``g`` is computed exactly once. Two implementations:

* :func:`solve_lower_torch`, a plain loop over torch tensors: the reference
  the compiled kernel is tested against, and differentiable (autograd), which
  the preconditioner-quality loss uses on small problems.
* :func:`solve_lower`, the same loop compiled with numba on a packed
  representation (:class:`PackedLower`): per-node arrays in heap order, node
  ``a`` of level ``l`` at index ``2**l + a``.

Block upper solves and transposed solves reuse this loop through the
identities in :mod:`learned_precond.gfmm` (``upper = rev . lower . rev``,
``lower^T = rev . lower(transpose_params) . rev``).
"""

import math

import numba
import numpy as np
import torch

from ._convert import to_numpy

__all__ = ["PackedBlockDiagonal", "PackedLower", "pack_lower", "solve_lower",
           "solve_lower_torch"]


class PackedLower:
    """Numpy arrays of one lower block in the layout the kernel reads.

    Attributes
    ----------
    Dinv : ndarray (M, P, P)
        Inverses of the diagonal blocks (identity-free: ``unit`` says whether
        they are used at all).
    unit : bool
        Diagonal blocks are the identity.
    E : ndarray (sum of E_nr * E_nc,)
        The near-field blocks ``E_i`` (leaf i-1 -> i), compacted: only the rows
        ``E_rows[i, :E_nr[i]]`` and columns ``E_cols[i, :E_nc[i]]`` of ``E_i``
        that hold a nonzero are kept, row-major, flat from ``E[E_off[i]]``.
        The initialization's ``E_i = A_(i,i-1) S_(i-1)^-1`` has nonzero rows
        only where leaf i touches leaf i-1 (an eighth of them on a 2-D grid
        with P = 32), and the transposed factor nonzero columns only there:
        the kernel then reads and multiplies only those entries, contiguously.
    E_rows, E_cols : ndarray (M, P) of int32
    E_nr, E_nc : ndarray (M,) of int32
    E_off : ndarray (M + 1,) of int64
    V : ndarray (M, r, P)
        Leaf in-bases, transposed (``V[i] = V_i^T``) so that the encode
        ``V_i^T x_i`` is a unit-stride reduction.
    U : ndarray (M, P, r)
    W, R, B : ndarray (2M, r, r)
        Per-node arrays in heap order (``W[2**l + a]``); ``W`` transposed
        (``W[n] = W_n^T``) for the same reason.
    n_levels : int
    """

    __slots__ = ("Dinv", "unit", "E", "E_rows", "E_cols", "E_nr", "E_nc", "E_off", "V", "U",
                 "W", "R", "B", "n_levels")

    def __init__(self, Dinv, unit, E, V, U, W, R, B, n_levels):
        self.Dinv, self.unit = Dinv, unit
        self.E, self.E_rows, self.E_cols, self.E_nr, self.E_nc, self.E_off = _compact(E)
        self.V, self.U, self.W, self.R, self.B = V, U, W, R, B
        self.n_levels = n_levels

    def astype(self, dtype):
        """Store the arrays in ``dtype`` (in place; the kernel accumulates in double)."""
        for name in ("Dinv", "E", "V", "U", "W", "R", "B"):  # not the index arrays
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        return self

    @property
    def nbytes(self):
        """Bytes held by the arrays."""
        arrays = [self.E, self.E_rows, self.E_cols, self.E_nr, self.E_nc, self.E_off,
                  self.V, self.U, self.W, self.R, self.B]
        if not self.unit:
            arrays.append(self.Dinv)
        return int(sum(a.nbytes for a in arrays))


class PackedBlockDiagonal:
    """A block diagonal matrix (blocks of shape (M, P, P)) applied by a compiled loop.

    Stored in float64 or float32 (:meth:`astype`); products accumulate in
    double without converting the stored blocks.
    """

    __slots__ = ("blocks",)

    def __init__(self, blocks):
        self.blocks = np.ascontiguousarray(blocks, dtype=np.float64)

    def astype(self, dtype):
        """Store the blocks in ``dtype`` (in place)."""
        self.blocks = np.ascontiguousarray(self.blocks, dtype=dtype)
        return self

    @property
    def nbytes(self):
        """Bytes held by the blocks."""
        return int(self.blocks.nbytes)

    def apply(self, Y):
        """``blocks[i] @ Y[i]`` for ``Y`` of shape (M, P, k) (float64)."""
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        if Y.shape[2] > 1:
            # Several columns: one batched BLAS product (``dtype`` makes numpy
            # accumulate float32 blocks in double), 2-4x faster per column
            # than the compiled loop at k >= 8.
            return np.matmul(self.blocks, Y, dtype=np.float64)
        out = np.empty(Y.shape)
        _block_diagonal_apply(self.blocks, Y, out)
        return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _block_diagonal_apply(blocks, Y, out):
    M, P, k = Y.shape
    for i in range(M):
        for c in range(k):
            for p_ in range(P):
                acc = 0.0
                for q in range(P):
                    acc += blocks[i, p_, q] * Y[i, q, c]
                out[i, p_, c] = acc


def _compact(E):
    """Keep each ``E[i]``'s nonzero rows and columns, flat and row-major.

    A stable argsort of the "row is zero" flags lists the nonzero rows first,
    in order; gathering rows then columns in that order puts the kept
    ``E_nr[i] x E_nc[i]`` corner first, which is then flattened.
    """
    nz = E != 0
    row_nz, col_nz = nz.any(axis=2), nz.any(axis=1)
    rows = np.argsort(~row_nz, axis=1, kind="stable").astype(np.int32)
    cols = np.argsort(~col_nz, axis=1, kind="stable").astype(np.int32)
    out = np.take_along_axis(E, rows[:, :, None], axis=1)
    out = np.take_along_axis(out, cols[:, None, :], axis=2)
    nr = row_nz.sum(axis=1).astype(np.int32)
    nc = col_nz.sum(axis=1).astype(np.int32)
    off = np.zeros(E.shape[0] + 1, dtype=np.int64)
    np.cumsum(nr.astype(np.int64) * nc, out=off[1:])
    # Boolean indexing reads in row-major order: leaf by leaf, row by row.
    corner = (np.arange(E.shape[1])[None, :, None] < nr[:, None, None]) & \
        (np.arange(E.shape[2])[None, None, :] < nc[:, None, None])
    return out[corner], rows, cols, nr, nc, off


def pack_lower(p, M, P, Dinv=None):
    """Pack a lower-block parameter dict (full-length arrays) for the kernel.

    Parameters
    ----------
    p : dict
        As returned by ``GFMMBlock.params()`` or ``transpose_params`` (torch),
        or the same arrays in numpy.
    M, P : int
        Leaves and block size.
    Dinv : ndarray (M, P, P), optional
        Inverses of the diagonal blocks; None for a unit diagonal.
    """
    np64 = to_numpy
    K = int(round(math.log2(M)))
    E = np.zeros((M, P, P))
    if M > 1:
        E[1:] = np64(p["E"])
    if p["V"] is not None:
        r = p["V"].shape[2]
        V, U = np64(p["V"]), np64(p["U"])
        W = np.zeros((2 * M, r, r))
        R = np.zeros((2 * M, r, r))
        B = np.zeros((2 * M, r, r))
        for lev in range(2, K + 1):
            W[2**lev: 2**(lev + 1)] = np64(p["W"][lev - 2])
            R[2**lev: 2**(lev + 1)] = np64(p["R"][lev - 2])
        for lev in range(1, K):
            B[2**lev + 1: 2**(lev + 1)] = np64(p["B"][lev - 1])
    else:
        V = U = np.zeros((M, P, 0))
        W = R = B = np.zeros((2 * M, 0, 0))
    if not (np.any(B) and np.any(V) and np.any(U)):
        # All bridges (or all bases) zero: the far field is exactly zero, as in
        # the block tridiagonal start, so the kernel need not sweep the tree.
        V = U = np.zeros((M, P, 0))
        W = R = B = np.zeros((2 * M, 0, 0))
    V = np.ascontiguousarray(np.swapaxes(V, 1, 2))
    W = np.ascontiguousarray(np.swapaxes(W, 1, 2))
    unit = Dinv is None
    Dinv = np.zeros((1, 1, 1)) if unit else np.ascontiguousarray(Dinv, dtype=np.float64)
    return PackedLower(Dinv, unit, E, V, U, W, R, B, K)


def solve_lower(packed, Bk, *, reverse=False):
    """Solve ``L X = Bk`` for ``Bk`` of shape (M, P, k) (numpy, float64).

    ``reverse=True`` solves for the leaves in reversed order, i.e. returns
    ``solve_lower(packed, Bk[::-1])[::-1]`` (how upper blocks are applied)
    without copying the reversed arrays for several columns.

    One column goes through the vector kernel (its per-leaf loops are
    unit-stride dot products that vectorize). Several columns go through the
    blocked kernel, which walks the tree once for all of them: every stored
    entry is read once and applied to the k contiguous values of a row, so
    the factors' memory traffic and the loop overhead are shared by the
    columns (``benchmarks/ecosystem_many_rhs.py`` measures the gain).
    """
    M, P, k = Bk.shape
    pk = packed
    near = (pk.E, pk.E_rows, pk.E_cols, pk.E_nr, pk.E_nc, pk.E_off)
    if k == 1:
        b = np.asarray(Bk, dtype=np.float64)[:, :, 0]
        b = np.ascontiguousarray(b[::-1] if reverse else b)
        x = np.empty_like(b)
        _solve_lower_vector(pk.Dinv, pk.unit, near, pk.V, pk.U, pk.W, pk.R, pk.B,
                            pk.n_levels, b, x)
        return (x[::-1] if reverse else x)[:, :, None]
    b = np.ascontiguousarray(Bk, dtype=np.float64)
    x = np.empty_like(b)
    _solve_lower_block(pk.Dinv, pk.unit, near, pk.V, pk.U, pk.W, pk.R, pk.B,
                       pk.n_levels, b, x, reverse)
    return x


@numba.njit(cache=True, fastmath=True, nogil=True)
def _solve_lower_block(Dinv, unit, near, V, U, W, R, B, K, b, x, reverse):
    # The loop of _solve_lower_vector with a column index c innermost: each
    # factor entry is loaded once per apply, not once per column, and the c
    # loops are unit-stride axpys over the k columns of a row. Leaf i of the
    # factor reads and writes row ``li`` of b and x (``M-1-i`` when reversed).
    E, E_rows, E_cols, E_nr, E_nc, E_off = near
    M, P, k = b.shape
    r = V.shape[1]
    far = K >= 2 and r > 0
    g = np.zeros((2 * M, r, k))
    f = np.zeros((2 * M, r, k))
    fl = np.empty((r, k))
    t = np.empty((P, k))
    for i in range(M):
        li = M - 1 - i if reverse else i
        lp = li + 1 if reverse else li - 1
        for p_ in range(P):
            for c in range(k):
                t[p_, c] = b[li, p_, c]
        if far:
            for lev in range(1, K):
                s = K - lev
                a = i >> s
                if (a << s) != i:
                    continue
                node = (1 << lev) + a
                par = (1 << (lev - 1)) + (a >> 1)
                for q in range(r):
                    for c in range(k):
                        f[node, q, c] = 0.0
                    for u in range(r):
                        if a >= 1:
                            coef = B[node, q, u]
                            for c in range(k):
                                f[node, q, c] += coef * g[node - 1, u, c]
                        if lev >= 2:
                            coef = R[node, q, u]
                            for c in range(k):
                                f[node, q, c] += coef * f[par, u, c]
            leaf = (1 << K) + i
            par = (1 << (K - 1)) + (i >> 1)
            for q in range(r):
                for c in range(k):
                    fl[q, c] = 0.0
                for u in range(r):
                    coef = R[leaf, q, u]
                    for c in range(k):
                        fl[q, c] += coef * f[par, u, c]
            for p_ in range(P):
                for q in range(r):
                    coef = U[i, p_, q]
                    for c in range(k):
                        t[p_, c] -= coef * fl[q, c]
        if i >= 1:
            nc = E_nc[i]
            base = E_off[i]
            for a_ in range(E_nr[i]):
                row = E_rows[i, a_]
                for q in range(nc):
                    coef = E[base + a_ * nc + q]
                    col = E_cols[i, q]
                    for c in range(k):
                        t[row, c] -= coef * x[lp, col, c]
        if unit:
            for p_ in range(P):
                for c in range(k):
                    x[li, p_, c] = t[p_, c]
        else:
            for p_ in range(P):
                for c in range(k):
                    x[li, p_, c] = 0.0
                for q in range(P):
                    coef = Dinv[i, p_, q]
                    for c in range(k):
                        x[li, p_, c] += coef * t[q, c]
        if far:
            leaf = (1 << K) + i
            for q in range(r):
                for p_ in range(P):
                    coef = V[i, q, p_]
                    for c in range(k):
                        g[leaf, q, c] += coef * x[li, p_, c]
            for lev in range(K, 1, -1):
                s = K - lev
                if ((i + 1) >> s) << s != i + 1:
                    break
                node = (1 << lev) + (i >> s)
                par = (1 << (lev - 1)) + (i >> (s + 1))
                for q in range(r):
                    for u in range(r):
                        coef = W[node, q, u]
                        for c in range(k):
                            g[par, q, c] += coef * g[node, u, c]


@numba.njit(cache=True, fastmath=True, nogil=True)
def _solve_lower_vector(Dinv, unit, near, V, U, W, R, B, K, b, x):
    # One pass over the leaves; every product is a small dense loop over the
    # leaf's P entries and the rank r.
    E, E_rows, E_cols, E_nr, E_nc, E_off = near
    M, P = b.shape
    xs = np.empty(P)
    r = V.shape[1]
    far = K >= 2 and r > 0
    g = np.zeros((2 * M, r))
    f = np.zeros((2 * M, r))
    fl = np.zeros(r)
    t = np.empty(P)
    for i in range(M):
        for p_ in range(P):
            t[p_] = b[i, p_]
        if far:
            # f of the ancestors whose leftmost leaf is i, top-down.
            for lev in range(1, K):
                s = K - lev
                a = i >> s
                if (a << s) != i:
                    continue
                node = (1 << lev) + a
                par = (1 << (lev - 1)) + (a >> 1)
                for q in range(r):
                    acc = 0.0
                    if a >= 1:
                        for u in range(r):
                            acc += B[node, q, u] * g[node - 1, u]
                    if lev >= 2:
                        for u in range(r):
                            acc += R[node, q, u] * f[par, u]
                    f[node, q] = acc
            leaf = (1 << K) + i
            par = (1 << (K - 1)) + (i >> 1)
            for q in range(r):
                acc = 0.0
                for u in range(r):
                    acc += R[leaf, q, u] * f[par, u]
                fl[q] = acc
            for p_ in range(P):
                acc = 0.0
                for q in range(r):
                    acc += U[i, p_, q] * fl[q]
                t[p_] -= acc
        if i >= 1:
            nc = E_nc[i]
            for q in range(nc):
                xs[q] = x[i - 1, E_cols[i, q]]
            base = E_off[i]
            for a_ in range(E_nr[i]):
                acc = 0.0
                for q in range(nc):
                    acc += E[base + a_ * nc + q] * xs[q]
                t[E_rows[i, a_]] -= acc
        if unit:
            for p_ in range(P):
                x[i, p_] = t[p_]
        else:
            for p_ in range(P):
                acc = 0.0
                for q in range(P):
                    acc += Dinv[i, p_, q] * t[q]
                x[i, p_] = acc
        if far:
            leaf = (1 << K) + i
            # Scalar accumulators: a store into g inside the inner loop would
            # be reloaded every iteration (LLVM cannot rule out aliasing).
            for q in range(r):
                acc = 0.0
                for p_ in range(P):
                    acc += V[i, q, p_] * x[i, p_]
                g[leaf, q] = acc
            # Up-sweep: every ancestor whose last leaf is i is now complete.
            for lev in range(K, 1, -1):
                s = K - lev
                if ((i + 1) >> s) << s != i + 1:
                    break
                node = (1 << lev) + (i >> s)
                par = (1 << (lev - 1)) + (i >> (s + 1))
                for q in range(r):
                    acc = 0.0
                    for u in range(r):
                        acc += W[node, q, u] * g[node, u]
                    g[par, q] += acc


def solve_lower_torch(p, Bk, D_solve=None):
    """Reference (and differentiable) solve of ``L X = Bk``, ``Bk`` (M, P, k) torch.

    Parameters
    ----------
    p : dict
        Lower-block parameters (full-length per-node arrays).
    Bk : tensor (M, P, k)
    D_solve : callable, optional
        ``D_solve(i, t)`` returns ``D_i^-1 t``; default: ``torch.linalg.solve``
        with ``p['D']``, or the identity when ``p['D']`` is None.
    """
    M, P, k = Bk.shape
    K = int(round(math.log2(M)))
    far = p["V"] is not None
    if D_solve is None:
        if p["D"] is None:
            def D_solve(i, t):
                return t
        else:
            def D_solve(i, t):
                return torch.linalg.solve(p["D"][i], t)
    g = {}
    f = {}
    xs = []
    for i in range(M):
        t = Bk[i]
        if far:
            for lev in range(1, K):
                s = K - lev
                a = i >> s
                if (a << s) != i:
                    continue
                acc = torch.zeros(p["V"].shape[2], k, dtype=Bk.dtype, device=Bk.device)
                if a >= 1:
                    acc = acc + p["B"][lev - 1][a - 1] @ g[(lev, a - 1)]
                if lev >= 2:
                    acc = acc + p["R"][lev - 2][a] @ f[(lev - 1, a >> 1)]
                f[(lev, a)] = acc
            fl = p["R"][K - 2][i] @ f[(K - 1, i >> 1)]
            t = t - p["U"][i] @ fl
        if i >= 1:
            t = t - p["E"][i - 1] @ xs[i - 1]
        x = D_solve(i, t)
        xs.append(x)
        if far:
            g[(K, i)] = p["V"][i].T @ x
            for lev in range(K, 1, -1):
                s = K - lev
                if ((i + 1) >> s) << s != i + 1:
                    break
                c = i >> s
                contrib = p["W"][lev - 2][c].T @ g[(lev, c)]
                key = (lev - 1, c >> 1)
                g[key] = g[key] + contrib if key in g else contrib
    return torch.stack(xs)
