"""Hierarchical start: a compressed multifrontal LU on the nested-dissection tree.

The unknowns are split recursively by vertex separators (METIS bisections of
A's graph): the leaves of the tree are subdomain interiors of at most
``leaf_size`` unknowns, every other node owns the separator that splits its
two children. Nodes are eliminated children first (post-order). Node ``t``
owns unknowns ``I`` and couples, after its subtree has been eliminated, only
to unknowns ``B`` of its ancestors' separators (its *boundary*). Its front ::

    F = [F_II  F_IB]  =  A's entries of the rows and columns of I
        [F_BI  F_BB]     + the updates its children left on I and B

is factored as ``F_II = P^T L_t U_t`` (dense LU with partial pivoting inside
the block; Cholesky ``C C^T`` for SPD A), and elimination leaves the update ::

    S_B = F_BB - G_L G_U,   G_L = F_BI U_t^-1 (|B| x |I|),  G_U = L_t^-1 P F_IB

on the boundary for the parent. ``G_L`` and ``G_U`` are the fill the
elimination puts on the separators: their singular values decay quickly for
elliptic problems, so each is truncated, as soon as it is formed, to the
singular values above ``tol * sigma_1`` (at most ``rank``), and stored as a
rank-``k`` product ``Q X``. The update passed up is formed from the truncated
factors, so the whole factorization never holds the exact fill: it is the
exact LU of a nearby matrix. For SPD A the truncation keeps the left singular
vectors (``G_L G_L^T - G~ G~^T`` is positive semidefinite), so every Schur
complement stays SPD and ``M = (L~ L~^T)^-1`` is SPD: valid for CG.

With ``tol = 0`` it is an exact multifrontal LU (``M = A^-1`` to rounding).
The dense separator blocks grow with the separators (sqrt(N) in 2-D), the
compressed couplings with the ranks; see ``docs/results/hierarchical.md``.

Applying ``M``: forward elimination in post-order, back substitution in
reverse, one compiled loop (numba) over the packed per-node arrays;
:func:`solve_reference` is the plain loop it is tested against.
"""

import math
import time
from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["HierarchicalFactors", "NestedDissection", "hierarchical_factorization",
           "nested_dissection", "solve_reference"]


# -- the tree ----------------------------------------------------------------------------


@dataclass
class NestedDissection:
    """A nested-dissection tree in post-order.

    Attributes
    ----------
    perm : ndarray (N,)
        ``perm[j]`` is the original index of the unknown in tree position ``j``;
        node ``t`` owns positions ``ptr[t]:ptr[t+1]``.
    ptr : ndarray (T + 1,)
    parent : ndarray (T,)
        Parent node (``-1`` for roots; a disconnected graph has several).
    depth : ndarray (T,)
        Level of each node (roots 0).
    """

    perm: np.ndarray
    ptr: np.ndarray
    parent: np.ndarray
    depth: np.ndarray

    @property
    def n_nodes(self):
        return self.parent.size

    @property
    def sizes(self):
        return np.diff(self.ptr)


def _adjacency(A):
    """Symmetric pattern of ``A + A^T`` without the diagonal, CSR int32 indices."""
    G = sp.csr_array(A, copy=True)
    G.data = np.ones_like(G.data, dtype=np.int8)
    G = sp.csr_array(G + G.T)
    G.setdiag(0)
    G.eliminate_zeros()
    G.sort_indices()
    return G


def _bisect(ptr, idx, m, seed):
    """Boolean side of a METIS bisection of a CSR graph (None when it cannot split)."""
    import pymetis

    if idx.size == 0:
        side = np.zeros(m, dtype=bool)
        side[: m // 2] = True
        return side
    try:
        _, part = pymetis.part_graph(2, pymetis.CSRAdjacency(ptr, idx),
                                     options=pymetis.Options(seed=seed))
    except Exception:  # METIS refuses some degenerate graphs
        return None
    side = np.asarray(part, dtype=bool)
    if side.all() or not side.any():
        return None
    return side


@numba.njit(cache=True)
def _subgraph(indptr, indices, verts, local):
    """CSR of the subgraph induced by ``verts``; ``local`` is a -1 scratch map."""
    m = verts.size
    for i in range(m):
        local[verts[i]] = i
    ptr = np.empty(m + 1, dtype=np.int64)
    ptr[0] = 0
    cnt = 0
    for i in range(m):
        v = verts[i]
        for p in range(indptr[v], indptr[v + 1]):
            if local[indices[p]] >= 0:
                cnt += 1
        ptr[i + 1] = cnt
    idx = np.empty(cnt, dtype=np.int64)
    cnt = 0
    for i in range(m):
        v = verts[i]
        for p in range(indptr[v], indptr[v + 1]):
            j = local[indices[p]]
            if j >= 0:
                idx[cnt] = j
                cnt += 1
    for i in range(m):
        local[verts[i]] = -1
    return ptr, idx


def nested_dissection(A, *, leaf_size=32, seed=0):
    """Nested-dissection tree of the graph of ``A`` (sparse, square).

    Each split is a METIS edge bisection; the separator is the smaller of the
    two vertex sets along the cut. Parts of at most ``leaf_size`` unknowns
    (or that cannot be split) become leaves.
    """
    G = _adjacency(A)
    n = G.shape[0]
    g_ptr, g_idx = G.indptr.astype(np.int64), G.indices.astype(np.int64)
    local = np.full(n, -1, dtype=np.int64)
    perm_parts, sizes, parents, depths = [], [], [], []

    def emit(verts, depth, children):
        t = len(sizes)
        perm_parts.append(verts)
        sizes.append(verts.size)
        parents.append(-1)
        depths.append(depth)
        for c in children:
            parents[c] = t
        return t

    def build(verts, depth):
        # Post-order: the children's subtrees, then this node's separator.
        m = verts.size
        if m <= leaf_size:
            return emit(verts, depth, [])
        ptr, idx = _subgraph(g_ptr, g_idx, verts, local)
        side = _bisect(ptr, idx, m, seed)
        if side is None:
            return emit(verts, depth, [])
        rows = np.repeat(np.arange(m), np.diff(ptr))
        cut = side[rows] != side[idx]
        b0 = np.unique(rows[cut & side[rows]])
        b1 = np.unique(rows[cut & ~side[rows]])
        sep = b0 if b0.size <= b1.size else b1
        in_sep = np.zeros(m, dtype=bool)
        in_sep[sep] = True
        children = [build(verts[part], depth + 1)
                    for part in (side & ~in_sep, ~side & ~in_sep) if part.any()]
        return emit(verts[sep], depth, children)

    build(np.arange(n, dtype=np.int64), 0)
    perm = np.concatenate(perm_parts).astype(np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return NestedDissection(perm=perm, ptr=ptr, parent=np.asarray(parents, dtype=np.int64),
                            depth=np.asarray(depths, dtype=np.int64))


# -- the factorization -------------------------------------------------------------------


@dataclass
class HierarchicalFactors:
    """Packed compressed multifrontal factors (tree numbering).

    Per node ``t`` (post-order): ``s_t = ptr[t+1] - ptr[t]`` own unknowns,
    ``b_t`` boundary unknowns ``bidx[boff[t]:boff[t+1]]``, ranks ``kL_t``,
    ``kU_t``. Flat float arrays, row-major per node:

    - ``diag[doff[t]:]``: the ``s x s`` LU of ``F_II`` (unit L below, U on and
      above the diagonal; for ``symmetric``: the Cholesky factor C, lower);
      ``piv`` the row interchanges inside the block (LAPACK order, 0-based).
    - ``QL`` (``b x kL``), ``XL`` (``kL x s``): ``G_L ~ QL XL``.
    - ``XU`` (``s x kU``), ``QU`` (``kU x b``): ``G_U ~ XU QU`` (absent when
      ``symmetric``: ``G_U = G_L^T``).
    """

    n: int
    symmetric: bool
    ptr: np.ndarray
    boff: np.ndarray
    bidx: np.ndarray
    doff: np.ndarray
    diag: np.ndarray
    piv: np.ndarray
    kL: np.ndarray
    qloff: np.ndarray
    QL: np.ndarray
    xloff: np.ndarray
    XL: np.ndarray
    kU: np.ndarray
    xuoff: np.ndarray
    XU: np.ndarray
    quoff: np.ndarray
    QU: np.ndarray

    _FIELDS = ("ptr", "boff", "bidx", "doff", "diag", "piv", "kL", "qloff", "QL", "xloff",
               "XL", "kU", "xuoff", "XU", "quoff", "QU")

    @property
    def n_nodes(self):
        return self.ptr.size - 1

    @property
    def nbytes(self):
        return int(sum(getattr(self, f).nbytes for f in self._FIELDS))

    @property
    def factor_entries(self):
        """Stored floating-point entries (dense blocks counted in full)."""
        return int(self.diag.size + self.QL.size + self.XL.size + self.XU.size
                   + self.QU.size)

    def ranks(self):
        """Per node: (own size, boundary size, rank of G_L, rank of G_U)."""
        s = np.diff(self.ptr)
        b = np.diff(self.boff)
        return s, b, self.kL.copy(), (self.kL if self.symmetric else self.kU).copy()

    def _arrays(self):
        return tuple(getattr(self, f) for f in self._FIELDS)

    def solve(self, Y):
        """``M Y`` for ``Y`` of shape (N,) or (N, k), tree numbering."""
        Y = np.asarray(Y, dtype=np.float64)
        vec = Y.ndim == 1
        X = np.array(Y.reshape(self.n, -1), dtype=np.float64, order="F")
        _solve(self.symmetric, False, *self._arrays(), X)
        return X[:, 0] if vec else X

    def solve_transposed(self, Y):
        """``M^T Y``: the same loops on the transposed factors."""
        if self.symmetric:
            return self.solve(Y)
        Y = np.asarray(Y, dtype=np.float64)
        vec = Y.ndim == 1
        X = np.array(Y.reshape(self.n, -1), dtype=np.float64, order="F")
        _solve(False, True, *self._arrays(), X)
        return X[:, 0] if vec else X


# Couplings with fewer entries are stored dense: a truncation cannot save
# enough there to pay for its SVD.
_DENSE_ENTRIES = 256


def _truncate(G, tol, max_rank):
    """``G`` (b x s) as ``Q X``: truncated SVD, singular values > tol * sigma_1.

    Returns ``(Q, X)``, or ``(G, None)`` (``X`` = identity) when the
    low-rank form would not be smaller than ``G`` itself.
    """
    m, n = G.shape
    if m == 0 or n == 0:
        return np.zeros((m, 0)), None
    if (tol <= 0 and max_rank >= min(m, n)) or m * n <= _DENSE_ENTRIES:
        return G, None
    try:
        Q, sv, Vt = sla.svd(G, full_matrices=False, check_finite=False,
                            lapack_driver="gesdd")
    except np.linalg.LinAlgError:
        Q, sv, Vt = sla.svd(G, full_matrices=False, check_finite=False,
                            lapack_driver="gesvd")
    if sv.size == 0 or sv[0] == 0:
        return np.zeros((m, 0)), np.zeros((0, n))
    k = int(np.count_nonzero(sv > tol * sv[0]))
    k = max(1, min(k, max_rank))
    if k * (m + n) >= m * n:
        return G, None
    return Q[:, :k], sv[:k, None] * Vt[:k]


_potrf, _trtrs, _getrf = sla.get_lapack_funcs(("potrf", "trtrs", "getrf"),
                                              (np.zeros(1),))


def _row_permutation(piv):
    """Rows of ``P X`` for LAPACK's interchanges ``piv`` (0-based, sequential)."""
    order = np.arange(piv.size)
    for i, p in enumerate(piv):
        if p != i:
            order[i], order[p] = order[p], order[i]
    return order


class _Front:
    __slots__ = ("bnd", "S")

    def __init__(self, bnd, S):
        self.bnd, self.S = bnd, S


def hierarchical_factorization(A, tree, *, tol=1e-2, rank=None, symmetric=False,
                               time_limit=None):
    """Compressed multifrontal LU of sparse ``A`` (original numbering) on ``tree``.

    Parameters
    ----------
    A : sparse array, shape (N, N)
        Real; for ``symmetric`` SPD.
    tree : NestedDissection
    tol : float
        Relative singular-value threshold of the fill compression (0: exact).
    rank : int, optional
        Largest rank per coupling (default: no bound beyond ``tol``).
    symmetric : bool
        Cholesky of every front (``A`` must be SPD; ``M`` is then SPD).
    time_limit : float, optional
        Seconds; exceeding it raises ``TimeoutError`` (the caller falls back).

    Returns
    -------
    HierarchicalFactors, dict
        The factors in tree numbering and statistics (seconds, ranks, shifts).

    Raises
    ------
    np.linalg.LinAlgError
        A front cannot be factored (singular, or not positive definite for
        ``symmetric``).
    """
    t_start = time.perf_counter()
    n = A.shape[0]
    inv = np.empty(n, dtype=np.int64)
    inv[tree.perm] = np.arange(n)
    Ap = sp.csr_array(A)[tree.perm][:, tree.perm]
    Ap.sort_indices()
    ApT = sp.csr_array(Ap.T)
    ApT.sort_indices()
    T = tree.n_nodes
    ptr = tree.ptr
    max_rank = np.iinfo(np.int64).max if rank is None else int(rank)
    children = [[] for _ in range(T)]
    for t in range(T):
        if tree.parent[t] >= 0:
            children[tree.parent[t]].append(t)

    loc = np.full(n, -1, dtype=np.int64)
    fronts = [None] * T
    bidx_l, diag_l, piv_l = [], [], []
    kL_l, QL_l, XL_l, kU_l, XU_l, QU_l = [], [], [], [], [], []
    n_trunc = 0
    for t in range(T):
        if time_limit is not None and time.perf_counter() - t_start > time_limit:
            raise TimeoutError(f"hierarchical factorization passed {time_limit:.1f} s "
                               f"at node {t} of {T}")
        i0, i1 = ptr[t], ptr[t + 1]
        s = i1 - i0
        # Boundary: later unknowns coupled to I in A, and the children's boundaries.
        rows = Ap.indices[Ap.indptr[i0]:Ap.indptr[i1]]
        cols = ApT.indices[ApT.indptr[i0]:ApT.indptr[i1]]
        parts = [rows[rows >= i1], cols[cols >= i1]]
        for c in children[t]:
            bc = fronts[c].bnd
            parts.append(bc[bc >= i1])
        bnd = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        b = bnd.size
        loc[i0:i1] = np.arange(s)
        loc[bnd] = s + np.arange(b)
        F = np.zeros((s + b, s + b))
        # A's entries in the rows of I (columns in I or later) and in the
        # columns of I (rows later than I).
        for M_, lo, transpose in ((Ap, i0, False), (ApT, i1, True)):
            a0, a1 = M_.indptr[i0], M_.indptr[i1]
            cols, vals = M_.indices[a0:a1], M_.data[a0:a1]
            r = np.repeat(np.arange(s), np.diff(M_.indptr[i0:i1 + 1]))
            keep = cols >= lo
            if transpose:
                F[loc[cols[keep]], r[keep]] += vals[keep]
            else:
                F[r[keep], loc[cols[keep]]] += vals[keep]
        for c in children[t]:
            fr = fronts[c]
            li = loc[fr.bnd]
            F[np.ix_(li, li)] += fr.S
            fronts[c] = None
        loc[i0:i1] = -1
        loc[bnd] = -1

        FII, FBB = F[:s, :s], F[s:, s:]
        if s == 0:  # an empty separator (disconnected parts): pass the updates on
            diag_l.append(np.zeros(0))
            piv_l.append(np.zeros(0, dtype=np.int64))
            kL_l.append(0)
            QL_l.append(np.zeros(0))
            XL_l.append(np.zeros(0))
            if not symmetric:
                kU_l.append(0)
                XU_l.append(np.zeros(0))
                QU_l.append(np.zeros(0))
            bidx_l.append(bnd)
            fronts[t] = _Front(bnd, FBB)
            continue
        FIB, FBI = np.asfortranarray(F[:s, s:]), np.asfortranarray(F[s:, :s].T)
        if symmetric:
            C, info = _potrf(FII, lower=1, clean=1)
            if info != 0:
                raise np.linalg.LinAlgError(
                    f"front {t} ({s} unknowns) is not positive definite")
            # G_L = F_BI C^-T  <=>  G_L^T = C^-1 F_IB
            GLt = _trtrs(C, FIB, lower=1)[0] if b else np.zeros((s, 0))
            QL, XL = _truncate(GLt.T, tol, max_rank)
            diag_l.append(C.ravel())
            piv_l.append(np.arange(s, dtype=np.int64))
            if not b:
                S = FBB
            elif XL is None:
                S = FBB - QL @ QL.T
            else:
                S = FBB - QL @ ((XL @ XL.T) @ QL.T)
        else:
            lu, piv, info = _getrf(FII)
            if info != 0 or not np.all(np.isfinite(lu)):
                raise np.linalg.LinAlgError(f"front {t} ({s} unknowns) is singular")
            # G_L = F_BI U^-1  <=>  U^T G_L^T = F_BI^T;  G_U = L^-1 P F_IB
            if b:
                GLt = _trtrs(lu, FBI, lower=0, trans=1)[0]
                GU = _trtrs(lu, FIB[_row_permutation(piv)], lower=1, unitdiag=1)[0]
            else:
                GLt = GU = np.zeros((s, 0))
            QL, XL = _truncate(GLt.T, tol, max_rank)
            QUt, XUt = _truncate(GU.T, tol, max_rank)
            QU = QUt.T
            diag_l.append(lu.ravel())
            piv_l.append(np.asarray(piv, dtype=np.int64))
            kU_l.append(QU.shape[0])
            XU_l.append(np.zeros(0) if XUt is None else np.ascontiguousarray(XUt.T).ravel())
            QU_l.append(np.ascontiguousarray(QU).ravel())
            if not b:
                S = FBB
            else:
                left = QL if XL is None else QL @ XL          # b x s
                S = FBB - (left if XUt is None else left @ XUt.T) @ QU
        n_trunc += XL is not None
        kL_l.append(QL.shape[1])
        QL_l.append(np.ascontiguousarray(QL).ravel())
        XL_l.append(np.zeros(0) if XL is None else np.ascontiguousarray(XL).ravel())
        bidx_l.append(bnd)
        fronts[t] = _Front(bnd, S)

    def flat(parts):
        return np.concatenate(parts) if parts else np.zeros(0)

    def offsets(parts):
        return np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)

    if symmetric:
        kU_l = [0] * T
        XU_l = QU_l = [np.zeros(0)] * T
    factors = HierarchicalFactors(
        n=n, symmetric=bool(symmetric), ptr=ptr.astype(np.int64),
        boff=offsets(bidx_l), bidx=flat(bidx_l).astype(np.int64),
        doff=offsets(diag_l), diag=flat(diag_l), piv=flat(piv_l).astype(np.int64),
        kL=np.asarray(kL_l, dtype=np.int64), qloff=offsets(QL_l), QL=flat(QL_l),
        xloff=offsets(XL_l), XL=flat(XL_l),
        kU=np.asarray(kU_l, dtype=np.int64), xuoff=offsets(XU_l), XU=flat(XU_l),
        quoff=offsets(QU_l), QU=flat(QU_l))
    kL = factors.kL
    s_all = np.diff(ptr)
    b_all = np.diff(factors.boff)
    stats = {
        "seconds": time.perf_counter() - t_start,
        "n_nodes": T,
        "max_front": int((s_all + b_all).max()) if T else 0,
        "max_separator": int(s_all.max()) if T else 0,
        "max_rank": int(kL.max()) if T else 0,
        "truncated_nodes": int(n_trunc),
        "floats_per_unknown": factors.factor_entries / max(n, 1),
    }
    return factors, stats


# -- applying M ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, parallel=True)
def _solve(symmetric, transposed, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff,
           XL, kU, xuoff, XU, quoff, QU, X):
    """In place, every column of X: ``x <- M x`` (``M^T x`` when ``transposed``)."""
    T = ptr.size - 1
    kmax = 1
    for t in range(T):
        kmax = max(kmax, kL[t], kU[t])
    for col in numba.prange(X.shape[1]):
        tmp = np.empty(kmax)
        if transposed:
            _transposed_column(ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL,
                               kU, xuoff, XU, quoff, QU, X[:, col], tmp)
        else:
            _column(symmetric, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL,
                    kU, xuoff, XU, quoff, QU, X[:, col], tmp)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _encode_add(Xf, x0, k, s, x, i0, tmp, ident):
    # tmp[c] = sum_i Xf[x0 + c*s + i] x[i0 + i]   (row-major k x s; identity: tmp = x_I)
    if ident:
        for c in range(k):
            tmp[c] = x[i0 + c]
        return
    for c in range(k):
        acc = 0.0
        r = x0 + c * s
        for i in range(s):
            acc += Xf[r + i] * x[i0 + i]
        tmp[c] = acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scatter_sub_rows(Q, q0, b, k, bidx, b0, x, tmp):
    # x[bidx[j]] -= sum_c Q[q0 + j*k + c] tmp[c]   (row-major b x k)
    for j in range(b):
        acc = 0.0
        r = q0 + j * k
        for c in range(k):
            acc += Q[r + c] * tmp[c]
        x[bidx[b0 + j]] -= acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather_rows(Q, q0, b, k, bidx, b0, x, tmp):
    # tmp[c] = sum_j Q[q0 + j*k + c] x[bidx[j]]   (Q^T x_B, Q row-major b x k)
    for c in range(k):
        tmp[c] = 0.0
    for j in range(b):
        v = x[bidx[b0 + j]]
        r = q0 + j * k
        for c in range(k):
            tmp[c] += Q[r + c] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _decode_sub_cols(Xf, x0, k, s, x, i0, tmp, ident):
    # x[i0 + i] -= sum_c Xf[x0 + c*s + i] tmp[c]   (Xf^T tmp, Xf row-major k x s)
    if ident:
        for c in range(k):
            x[i0 + c] -= tmp[c]
        return
    for c in range(k):
        v = tmp[c]
        r = x0 + c * s
        for i in range(s):
            x[i0 + i] -= Xf[r + i] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _decode_sub_rows(Xf, x0, s, k, x, i0, tmp, ident):
    # x[i0 + i] -= sum_c Xf[x0 + i*k + c] tmp[c]   (Xf row-major s x k)
    if ident:
        for c in range(k):
            x[i0 + c] -= tmp[c]
        return
    for i in range(s):
        acc = 0.0
        r = x0 + i * k
        for c in range(k):
            acc += Xf[r + c] * tmp[c]
        x[i0 + i] -= acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather_cols(Q, q0, k, b, bidx, b0, x, tmp):
    # tmp[c] = sum_j Q[q0 + c*b + j] x[bidx[j]]   (Q row-major k x b)
    for c in range(k):
        acc = 0.0
        r = q0 + c * b
        for j in range(b):
            acc += Q[r + j] * x[bidx[b0 + j]]
        tmp[c] = acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _encode_cols(Xf, x0, s, k, x, i0, tmp, ident):
    # tmp[c] = sum_i Xf[x0 + i*k + c] x[i0 + i]   (Xf^T x_I, Xf row-major s x k)
    if ident:
        for c in range(k):
            tmp[c] = x[i0 + c]
        return
    for c in range(k):
        tmp[c] = 0.0
    for i in range(s):
        v = x[i0 + i]
        r = x0 + i * k
        for c in range(k):
            tmp[c] += Xf[r + c] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scatter_sub_cols(Q, q0, k, b, bidx, b0, x, tmp):
    # x[bidx[j]] -= sum_c Q[q0 + c*b + j] tmp[c]   (Q^T tmp, Q row-major k x b)
    for c in range(k):
        v = tmp[c]
        r = q0 + c * b
        for j in range(b):
            x[bidx[b0 + j]] -= Q[r + j] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lower_solve(D, d0, s, x, i0, unit):
    # rows of the lower triangle, row-major
    for i in range(s):
        acc = x[i0 + i]
        r = d0 + i * s
        for j in range(i):
            acc -= D[r + j] * x[i0 + j]
        x[i0 + i] = acc if unit else acc / D[r + i]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _upper_solve(D, d0, s, x, i0):
    for i in range(s - 1, -1, -1):
        r = d0 + i * s
        acc = x[i0 + i]
        for j in range(i + 1, s):
            acc -= D[r + j] * x[i0 + j]
        x[i0 + i] = acc / D[r + i]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _upper_transposed_solve(D, d0, s, x, i0):
    # (upper triangle)^T x = b, lower: by rows of the upper triangle
    for j in range(s):
        r = d0 + j * s
        v = x[i0 + j] / D[r + j]
        x[i0 + j] = v
        for i in range(j + 1, s):
            x[i0 + i] -= D[r + i] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lower_transposed_solve(D, d0, s, x, i0, unit):
    # (lower triangle)^T x = b, upper: by rows of the lower triangle
    for j in range(s - 1, -1, -1):
        r = d0 + j * s
        v = x[i0 + j] if unit else x[i0 + j] / D[r + j]
        x[i0 + j] = v
        for i in range(j):
            x[i0 + i] -= D[r + i] * v


@numba.njit(cache=True, nogil=True)
def _column(symmetric, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL, kU,
            xuoff, XU, quoff, QU, x, tmp):
    T = ptr.size - 1
    for t in range(T):  # forward: y_I = L_t^-1 P y_I;  y_B -= QL XL y_I
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        if symmetric:
            _lower_solve(diag, doff[t], s, x, i0, False)
        else:
            for i in range(s):
                p = piv[i0 + i]
                if p != i:
                    v = x[i0 + i]
                    x[i0 + i] = x[i0 + p]
                    x[i0 + p] = v
            _lower_solve(diag, doff[t], s, x, i0, True)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kL[t]
        if b and k:
            _encode_add(XL, xloff[t], k, s, x, i0, tmp, xloff[t + 1] == xloff[t])
            _scatter_sub_rows(QL, qloff[t], b, k, bidx, b0, x, tmp)
    for t in range(T - 1, -1, -1):  # backward: x_I = U_t^-1 (y_I - G_U x_B)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        b0 = boff[t]
        b = boff[t + 1] - b0
        if symmetric:
            k = kL[t]
            if b and k:
                _gather_rows(QL, qloff[t], b, k, bidx, b0, x, tmp)
                _decode_sub_cols(XL, xloff[t], k, s, x, i0, tmp, xloff[t + 1] == xloff[t])
            _lower_transposed_solve(diag, doff[t], s, x, i0, False)
        else:
            k = kU[t]
            if b and k:
                _gather_cols(QU, quoff[t], k, b, bidx, b0, x, tmp)
                _decode_sub_rows(XU, xuoff[t], s, k, x, i0, tmp, xuoff[t + 1] == xuoff[t])
            _upper_solve(diag, doff[t], s, x, i0)


@numba.njit(cache=True, nogil=True)
def _transposed_column(ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL, kU,
                       xuoff, XU, quoff, QU, x, tmp):
    T = ptr.size - 1
    for t in range(T):  # U^T w = x: w_I = U_t^-T x_I;  x_B -= G_U^T w_I
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        _upper_transposed_solve(diag, doff[t], s, x, i0)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kU[t]
        if b and k:
            _encode_cols(XU, xuoff[t], s, k, x, i0, tmp, xuoff[t + 1] == xuoff[t])
            _scatter_sub_cols(QU, quoff[t], k, b, bidx, b0, x, tmp)
    for t in range(T - 1, -1, -1):  # L^T v = w: v_I = P^T L_t^-T (w_I - G_L^T v_B)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kL[t]
        if b and k:
            _gather_rows(QL, qloff[t], b, k, bidx, b0, x, tmp)
            _decode_sub_cols(XL, xloff[t], k, s, x, i0, tmp, xloff[t + 1] == xloff[t])
        _lower_transposed_solve(diag, doff[t], s, x, i0, True)
        for i in range(s - 1, -1, -1):
            p = piv[i0 + i]
            if p != i:
                v = x[i0 + i]
                x[i0 + i] = x[i0 + p]
                x[i0 + p] = v


def solve_reference(factors, y, *, transposed=False):
    """Plain numpy loop over the nodes: ``M y`` (or ``M^T y``), tree numbering.

    The reference the compiled kernel is tested against.
    """
    f = factors
    x = np.array(y, dtype=np.float64)
    T = f.n_nodes

    def blocks(t):
        i0, i1 = f.ptr[t], f.ptr[t + 1]
        s = i1 - i0
        bnd = f.bidx[f.boff[t]:f.boff[t + 1]]
        b, kl, ku = bnd.size, f.kL[t], f.kU[t]
        D = f.diag[f.doff[t]:f.doff[t + 1]].reshape(s, s)
        XL = f.XL[f.xloff[t]:f.xloff[t + 1]]
        XL = np.eye(s) if XL.size == 0 and kl else XL.reshape(kl, s)
        GL = f.QL[f.qloff[t]:f.qloff[t + 1]].reshape(b, kl) @ XL
        if f.symmetric:
            GU = GL.T
        else:
            XU = f.XU[f.xuoff[t]:f.xuoff[t + 1]]
            XU = np.eye(s) if XU.size == 0 and ku else XU.reshape(s, ku)
            GU = XU @ f.QU[f.quoff[t]:f.quoff[t + 1]].reshape(ku, b)
        Pm = np.eye(s)
        for i, p in enumerate(f.piv[i0:i1]):
            Pm[[i, p]] = Pm[[p, i]]
        if f.symmetric:
            Lt, Ut = D, D.T
        else:
            Lt = np.tril(D, -1) + np.eye(s)
            Ut = np.triu(D)
        return slice(i0, i1), bnd, Lt, Ut, Pm, GL, GU

    if not transposed:
        for t in range(T):
            I, bnd, Lt, _, Pm, GL, _ = blocks(t)
            x[I] = np.linalg.solve(Lt, Pm @ x[I])
            x[bnd] -= GL @ x[I]
        for t in range(T - 1, -1, -1):
            I, bnd, _, Ut, _, _, GU = blocks(t)
            x[I] = np.linalg.solve(Ut, x[I] - GU @ x[bnd])
    else:
        for t in range(T):
            I, bnd, _, Ut, _, _, GU = blocks(t)
            x[I] = np.linalg.solve(Ut.T, x[I])
            x[bnd] -= GU.T @ x[I]
        for t in range(T - 1, -1, -1):
            I, bnd, Lt, _, Pm, GL, _ = blocks(t)
            x[I] = Pm.T @ np.linalg.solve(Lt.T, x[I] - GL.T @ x[bnd])
    return x
