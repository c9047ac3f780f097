"""The nested-dissection tree: METIS vertex separators, post-order.

The unknowns are split recursively by vertex separators (METIS bisections of
A's graph): the leaves of the tree are subdomain interiors of at most
``leaf_size`` unknowns, every other node owns the separator that splits its
two children.
"""

import time
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from .._structure import adjacency_pattern

__all__ = ["NestedDissection", "nested_dissection", "separates"]


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


@numba.njit(cache=True)
def _separator(ptr, idx, side):
    """Vertex separator of an edge cut: the cut's endpoints on the smaller side.

    ``side`` is the bisection (boolean per vertex); the vertices of side
    ``s`` with a neighbour on the other side form that side's boundary, and
    the smaller boundary (side True on a tie) separates the two parts.
    """
    m = side.size
    on_cut = np.zeros(m, dtype=np.bool_)
    count_true = 0
    count_false = 0
    for i in range(m):
        for p in range(ptr[i], ptr[i + 1]):
            if side[idx[p]] != side[i]:
                on_cut[i] = True
                if side[i]:
                    count_true += 1
                else:
                    count_false += 1
                break
    keep_true = count_true <= count_false
    for i in range(m):
        if on_cut[i] and side[i] != keep_true:
            on_cut[i] = False
    return on_cut


def nested_dissection(A, *, leaf_size=32, seed=0, time_limit=None):
    """Nested-dissection tree of the graph of ``A`` (sparse, square).

    Each split is a METIS edge bisection; the separator is the smaller of the
    two vertex sets along the cut. Parts of at most ``leaf_size`` unknowns
    (or that cannot be split) become leaves. With ``time_limit`` (seconds),
    ``TimeoutError`` once a bisection would start after it.
    """
    t_start = time.perf_counter()
    G = adjacency_pattern(A)
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
        if time_limit is not None and time.perf_counter() - t_start > time_limit:
            raise TimeoutError(f"nested dissection passed {time_limit:.2g} s")
        ptr, idx = _subgraph(g_ptr, g_idx, verts, local)
        side = _bisect(ptr, idx, m, seed)
        if side is None:
            return emit(verts, depth, [])
        in_sep = _separator(ptr, idx, side)
        children = [build(verts[part], depth + 1)
                    for part in (side & ~in_sep, ~side & ~in_sep) if part.any()]
        return emit(verts[in_sep], depth, children)

    build(np.arange(n, dtype=np.int64), 0)
    perm = np.concatenate(perm_parts).astype(np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return NestedDissection(perm=perm, ptr=ptr, parent=np.asarray(parents, dtype=np.int64),
                            depth=np.asarray(depths, dtype=np.int64))


def separates(A, tree):
    """Whether ``tree`` is a nested dissection of the graph of ``A``.

    True when ``A`` is ``N x N`` for the tree's ``N`` and every entry
    ``a_ij != 0`` (structural) joins a node and one of its ancestors: then the
    factorization on ``tree`` is exact up to its truncations, whatever the
    values. This is what a warm start checks before it reuses a previous fit's
    tree for a new matrix (same pattern, or a pattern inside the old one's
    separator structure); ``O(nnz)``.
    """
    n = tree.perm.size
    if A.shape != (n, n):
        return False
    T = tree.n_nodes
    owner = np.empty(n, dtype=np.int64)
    owner[tree.perm] = np.repeat(np.arange(T), tree.sizes)
    # Post-order: the subtree of t is the contiguous node range first[t]..t.
    first = np.arange(T)
    for t in range(T):
        p = tree.parent[t]
        if p >= 0 and first[t] < first[p]:
            first[p] = first[t]
    C = sp.coo_array(A)
    a, b = owner[C.row], owner[C.col]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return bool(np.all(first[hi] <= lo))
