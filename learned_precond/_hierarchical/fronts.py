"""Compiled (numba) front assembly and small-front elimination.

The multifrontal loop of :func:`~learned_precond._hierarchical.factorization.
hierarchical_factorization` spends, written in numpy, most of its time on the
thousands of small fronts near the leaves (index bookkeeping, scatters,
calls into LAPACK for 30 x 30 blocks). Three kernels take that over:

- :func:`symbolic`: every node's boundary (sorted) and where its update
  ``S_B`` lives on the contribution stack, from A's pattern alone. The tree
  is in post-order, so when node ``t`` is eliminated its children's updates
  are the top of the stack, and ``S_t`` replaces them.
- :func:`assemble`: the front ``F`` of one node: A's entries of its rows and
  columns plus the extend-add of its children's updates.
- :func:`copy_upper`: a symmetric update onto the stack, its upper triangle
  only (the stack holds no more of a symmetric update: every reader reads
  the upper triangle, see :func:`assemble`).
- :func:`eliminate_small`: a run of consecutive small fronts, each assembled,
  eliminated (Cholesky or LU with partial pivoting inside ``I``, right-looking
  on the whole front, so that the fill ``G_L``, ``G_U`` and the update ``S_B``
  come out of the same loop), and written to the packed outputs. Small
  fronts keep their couplings dense (no truncation), which is what the numpy
  path does with them too.

The numpy/LAPACK path of the factorization (``compiled=False``) is the
reference these kernels are tested against (``tests/test_hierarchical.py``).
"""

import numba
import numpy as np

__all__ = ["assemble", "copy_upper", "eliminate_small", "symbolic"]


@numba.njit(cache=True, nogil=True)
def _sort(x, lo, hi):
    # x[lo:hi] in place; insertion sort for the short boundaries of most nodes
    if hi - lo > 64:
        x[lo:hi] = np.sort(x[lo:hi])
        return
    for i in range(lo + 1, hi):
        v = x[i]
        j = i - 1
        while j >= lo and x[j] > v:
            x[j + 1] = x[j]
            j -= 1
        x[j + 1] = v


@numba.njit(cache=True, nogil=True)
def _append(buf, pos, value):
    # buf[pos] = value, buf doubled first when full; returns buf (maybe new)
    if pos == buf.size:
        grown = np.empty(2 * buf.size, dtype=buf.dtype)
        grown[:pos] = buf[:pos]
        buf = grown
    buf[pos] = value
    return buf


@numba.njit(cache=True, nogil=True)
def symbolic(ptr, parent, a_ptr, a_idx, t_ptr, t_idx):
    """Boundaries and contribution-stack offsets of every node.

    ``a_*`` is the CSR pattern of ``A`` in tree numbering, ``t_*`` that of
    ``A^T``. Returns ``(boff, bidx, cptr, cidx, soff, peak, status)``: node
    ``t``'s boundary ``bidx[boff[t]:boff[t+1]]`` (sorted), its children
    ``cidx[cptr[t]:cptr[t+1]]`` (increasing), the stack offset ``soff[t]`` of
    its ``b x b`` update, the stack's largest extent ``peak``, and a status:
    0, or 1 when the tree is not in post-order (a child's update would not be
    on top of the stack), or 2 when it does not separate A's graph (an entry
    joins two nodes neither of which is the other's ancestor).
    """
    T = ptr.size - 1
    n = ptr[T]
    cptr = np.zeros(T + 1, dtype=np.int64)
    for t in range(T):
        if parent[t] >= 0:
            cptr[parent[t] + 1] += 1
    for t in range(T):
        cptr[t + 1] += cptr[t]
    cidx = np.empty(cptr[T], dtype=np.int64)
    fill = cptr[:T].copy()
    for t in range(T):
        p = parent[t]
        if p >= 0:
            cidx[fill[p]] = t
            fill[p] += 1
    mark = np.full(n, -1, dtype=np.int64)
    boff = np.zeros(T + 1, dtype=np.int64)
    bidx = np.empty(max(16, 2 * n), dtype=np.int64)
    soff = np.zeros(T, dtype=np.int64)
    stack = np.empty(T, dtype=np.int64)
    first = np.arange(T)  # first node of each subtree (post-order: contiguous)
    for t in range(T):
        if parent[t] >= 0 and first[t] < first[parent[t]]:
            first[parent[t]] = first[t]
    depth = 0
    top = 0
    peak = 0
    in_order = True
    separated = True
    pos = 0
    for t in range(T):
        i0, i1 = ptr[t], ptr[t + 1]
        lo = ptr[first[t]]
        start = pos
        for k in range(2):
            ip = a_ptr if k == 0 else t_ptr
            ix = a_idx if k == 0 else t_idx
            for r in range(i0, i1):
                for p in range(ip[r], ip[r + 1]):
                    j = ix[p]
                    if j < lo:
                        separated = False
                    if j >= i1 and mark[j] != t:
                        mark[j] = t
                        bidx = _append(bidx, pos, j)
                        pos += 1
        for q in range(cptr[t], cptr[t + 1]):
            c = cidx[q]
            for p in range(boff[c], boff[c + 1]):
                j = bidx[p]
                if j < i0:
                    separated = False
                if j >= i1 and mark[j] != t:
                    mark[j] = t
                    bidx = _append(bidx, pos, j)
                    pos += 1
        _sort(bidx, start, pos)
        boff[t + 1] = pos
        # The children's updates must be the top of the stack, in order.
        nc = cptr[t + 1] - cptr[t]
        if nc > depth:
            in_order = False
            nc = depth
        for q in range(nc):
            if stack[depth - nc + q] != cidx[cptr[t] + q]:
                in_order = False
        if nc > 0:
            top = soff[stack[depth - nc]]
        depth -= nc
        b = pos - start
        soff[t] = top
        top += b * b
        peak = max(peak, top)
        stack[depth] = t
        depth += 1
    status = 0 if in_order and separated else (1 if not in_order else 2)
    return boff, bidx[:pos].copy(), cptr, cidx, soff, peak, status


@numba.njit(cache=True, nogil=True)
def assemble(t, F, ptr, boff, bidx, cptr, cidx, soff, stk, a_ptr, a_idx, a_val,
             t_ptr, t_idx, t_val, loc, upper=False):
    """Front of node ``t`` into ``F`` ((s + b) x (s + b), overwritten).

    A's entries of the rows of ``I`` (columns in ``I`` or later) and of the
    columns of ``I`` (rows later than ``I``), plus every child's update
    ``S_c`` (on the stack ``stk``) added at its boundary's positions.
    ``loc`` is a scratch map of ``-1`` (restored).

    With ``upper`` only the upper triangle (diagonal included) is assembled,
    and the strict lower triangle is left as it was (not read): for a
    symmetric front, whose factorization reads no more, at about half the
    work. Positions in ``F``
    increase with the unknowns' numbers (own unknowns come first, the
    boundary is sorted and numbered after them), so a child's update, whose
    boundary is sorted too, lands on ``F``'s upper triangle from its own.
    """
    i0, i1 = ptr[t], ptr[t + 1]
    s = i1 - i0
    b0, b1 = boff[t], boff[t + 1]
    m = F.shape[0]
    if upper:
        for i in range(m):
            F[i, i:] = 0.0
    else:
        F[:, :] = 0.0
    for k in range(s):
        loc[i0 + k] = k
    for k in range(b1 - b0):
        loc[bidx[b0 + k]] = s + k
    for r in range(i0, i1):
        for p in range(a_ptr[r], a_ptr[r + 1]):
            j = a_idx[p]
            if j >= (r if upper else i0):
                F[r - i0, loc[j]] += a_val[p]
        if not upper:
            for p in range(t_ptr[r], t_ptr[r + 1]):
                j = t_idx[p]
                if j >= i1:
                    F[loc[j], r - i0] += t_val[p]
    width = 0
    for q in range(cptr[t], cptr[t + 1]):
        c = cidx[q]
        width = max(width, boff[c + 1] - boff[c])
    pos = np.empty(width, dtype=np.int64)
    for q in range(cptr[t], cptr[t + 1]):
        c = cidx[q]
        c0 = boff[c]
        bc = boff[c + 1] - c0
        base = soff[c]
        for u in range(bc):
            pos[u] = loc[bidx[c0 + u]]
        for u in range(bc):
            Fu = F[pos[u]]
            row = base + u * bc
            for v in range(u if upper else 0, bc):
                Fu[pos[v]] += stk[row + v]
    for k in range(s):
        loc[i0 + k] = -1
    for k in range(b1 - b0):
        loc[bidx[b0 + k]] = -1


@numba.njit(cache=True, nogil=True)
def copy_upper(src, dst):
    """``dst``'s upper triangle (diagonal included) from ``src``'s, row by row.

    A symmetric update lives on the contribution stack as its upper triangle
    only: every reader (:func:`assemble` with ``upper``) reads no more, so the
    lower triangle is neither copied nor mirrored.
    """
    b = src.shape[0]
    for i in range(b):
        dst[i, i:] = src[i, i:]


@numba.njit(cache=True, nogil=True, fastmath=False)
def _cholesky_front(F, s, m):
    # Upper form F = U^T U on the first s pivots, right-looking on the whole
    # front: F[:s, :s] -> U, F[:s, s:] -> U^-T F_IB, F[s:, s:] -> S (upper).
    for k in range(s):
        d = F[k, k]
        if not d > 0.0 or not np.isfinite(d):
            return False
        d = np.sqrt(d)
        F[k, k] = d
        inv = 1.0 / d
        for j in range(k + 1, m):
            F[k, j] *= inv
        for i in range(k + 1, m):
            u = F[k, i]
            if u != 0.0:
                for j in range(i, m):
                    F[i, j] -= u * F[k, j]
    return True


@numba.njit(cache=True, nogil=True, fastmath=False)
def _lu_front(F, s, m, piv):
    # Partial pivoting among the first s rows, right-looking on the whole
    # front: F[:s, :s] -> L\U, F[:s, s:] -> L^-1 P F_IB, F[s:, :s] -> F_BI U^-1,
    # F[s:, s:] -> S.
    for k in range(s):
        p = k
        best = abs(F[k, k])
        for i in range(k + 1, s):
            a = abs(F[i, k])
            if a > best:
                best, p = a, i
        piv[k] = p
        if p != k:
            for j in range(m):
                F[k, j], F[p, j] = F[p, j], F[k, j]
        d = F[k, k]
        if d == 0.0 or not np.isfinite(d):
            return False
        inv = 1.0 / d
        for i in range(k + 1, m):
            l = F[i, k] * inv
            F[i, k] = l
            if l != 0.0:
                for j in range(k + 1, m):
                    F[i, j] -= l * F[k, j]
    for i in range(s):
        for j in range(s):
            if not np.isfinite(F[i, j]):
                return False
    return True


@numba.njit(cache=True, nogil=True)
def eliminate_small(t0, t1, symmetric, buf, ptr, boff, bidx, cptr, cidx, soff, stk,
                    a_ptr, a_idx, a_val, t_ptr, t_idx, t_val, loc,
                    doff, diag, piv, qoff, QL, QU):
    """Eliminate the consecutive small nodes ``t0 <= t < t1``.

    Outputs (offsets relative to the run, from the fronts' sizes): ``diag``
    (``s x s``: Cholesky factor C, lower, or L\\U), ``piv`` (``s`` per node,
    LAPACK's 0-based interchanges; the identity for Cholesky), ``QL`` (the
    dense ``b x s`` coupling ``G_L``) and, for LU, ``QU`` (the dense
    ``s x b`` ``G_U``); ``qoff`` indexes both. Each node's update is written
    to the stack at ``soff[t]`` (for ``symmetric``, its upper triangle: the
    front is assembled and eliminated on its upper triangle only). Returns -1, or the first node whose front
    is singular (not positive definite for ``symmetric``).
    """
    p0 = ptr[t0]
    for t in range(t0, t1):
        i0, i1 = ptr[t], ptr[t + 1]
        s = i1 - i0
        b = boff[t + 1] - boff[t]
        m = s + b
        F = buf[:m * m].reshape(m, m)
        assemble(t, F, ptr, boff, bidx, cptr, cidx, soff, stk, a_ptr, a_idx, a_val,
                 t_ptr, t_idx, t_val, loc, symmetric)
        pv = piv[i0 - p0:i1 - p0]
        if symmetric:
            if not _cholesky_front(F, s, m):
                return t
            for k in range(s):
                pv[k] = k
        elif not _lu_front(F, s, m, pv):
            return t
        d0 = doff[t - t0]
        q0 = qoff[t - t0]
        for i in range(s):
            for j in range(s):
                if symmetric:  # C = U^T, lower
                    diag[d0 + i * s + j] = F[j, i] if j <= i else 0.0
                else:
                    diag[d0 + i * s + j] = F[i, j]
        if s > 0:
            for a in range(b):
                for i in range(s):  # G_L (b x s): C^-1 F_IB transposed, or F_BI U^-1
                    QL[q0 + a * s + i] = F[i, s + a] if symmetric else F[s + a, i]
            if not symmetric:
                for i in range(s):
                    for a in range(b):
                        QU[q0 + i * b + a] = F[i, s + a]
        base = soff[t]
        for a in range(b):  # a symmetric update: its upper triangle only
            for c in range(a if symmetric else 0, b):
                stk[base + a * b + c] = F[s + a, s + c]
    return -1
