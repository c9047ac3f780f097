"""The nested-dissection tree: level-set or METIS vertex separators, post-order.

The unknowns are split recursively by vertex separators of A's graph
(level sets of a breadth-first sweep on mesh-like graphs, METIS bisections
otherwise; :func:`nested_dissection` says which): the leaves of the tree are subdomain interiors of at most
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

#: The splitters :func:`nested_dissection` knows.
METHODS = ("auto", "level_set", "metis")
#: ``method='auto'`` tries level sets only on graphs of at least this many
#: vertices: below it METIS costs little (< 0.05 s) and on the small irregular
#: real matrices its trees are the better ones.
LEVEL_SET_MIN = 16384


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
    method: str = "metis"

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


def nested_dissection(A, *, leaf_size=32, seed=0, time_limit=None, method="auto"):
    """Nested-dissection tree of the graph of ``A`` (sparse, square).

    ``method`` picks the splitter:

    - ``'level_set'``: every split is a level-set bisection (breadth-first
      levels from a pseudo-peripheral vertex, the separator one level), the
      whole tree in one compiled call (:func:`_level_dissection`), ``O(N)``
      per tree level. On meshes its separators are as small as METIS's or
      smaller (a level of a grid is a straight or diagonal cut) at a tenth of
      the time; on irregular graphs (small diameter, wide levels) they can
      be much larger.
    - ``'metis'``: every split is a METIS edge bisection; the separator is
      the smaller of the two vertex sets along the cut.
    - ``'auto'`` (default): on graphs of at least :data:`LEVEL_SET_MIN`
      vertices, the level-set tree when its root separator is not empty (a
      connected graph) and no larger than the separator of one METIS
      bisection of the whole graph (the graph is mesh-like); else the METIS
      tree.

    Parts of at most ``leaf_size`` unknowns (or that cannot be split) become
    leaves. With ``time_limit`` (seconds), ``TimeoutError`` once a bisection
    would start after it.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t_start = time.perf_counter()
    G = adjacency_pattern(A)
    n = G.shape[0]
    g_ptr, g_idx = G.indptr.astype(np.int64), G.indices.astype(np.int64)
    if method == "level_set" or (method == "auto" and n >= LEVEL_SET_MIN):
        perm, sizes, parent, depth = _level_dissection(g_ptr, g_idx, max(int(leaf_size), 1))
        tree = NestedDissection(perm=perm, ptr=np.concatenate([[0], np.cumsum(sizes)]),
                                parent=parent, depth=depth, method="level_set")
        if time_limit is not None and time.perf_counter() - t_start > time_limit:
            raise TimeoutError(f"nested dissection passed {time_limit:.2g} s")
        if method == "level_set" or n <= leaf_size:
            return tree
        side = _bisect(g_ptr, g_idx, n, seed)
        if 0 < sizes[-1] and (side is None
                              or sizes[-1] <= np.count_nonzero(_separator(g_ptr, g_idx, side))):
            return tree
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
                            depth=np.asarray(depths, dtype=np.int64), method="metis")


def subtree_starts(parent):
    """``first[t]``: the first node of ``t``'s subtree, for a tree in post-order
    (``parent[t] > t``, -1 at roots), whose subtree of ``t`` is then the
    contiguous node range ``first[t]..t``."""
    parent = np.asarray(parent)
    first = np.arange(parent.size)
    for t, p in enumerate(parent.tolist()):  # children before parents
        if p >= 0 and first[t] < first[p]:
            first[p] = first[t]
    return first


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
    first = subtree_starts(tree.parent)
    C = sp.coo_array(A)
    keep = C.data != 0  # stored zeros are not edges (as in adjacency_pattern)
    a, b = owner[C.row[keep]], owner[C.col[keep]]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return bool(np.all(first[hi] <= lo))


# -- level-set dissection of small subgraphs (compiled) -------------------------


@numba.njit(cache=True)
def _bfs(ptr, idx, mark, stamp, root, level, queue):
    """Breadth-first levels from ``root`` over the vertices with ``mark == stamp``.

    Fills ``queue[:count]`` in visiting order and ``level`` for each of them
    and leaves their marks as they were; returns ``(count, last level)``.
    """
    queue[0] = root
    level[root] = 0
    mark[root] = -stamp
    head, tail = 0, 1
    while head < tail:
        v = queue[head]
        head += 1
        for p in range(ptr[v], ptr[v + 1]):
            w = idx[p]
            if mark[w] == stamp:
                mark[w] = -stamp
                level[w] = level[v] + 1
                queue[tail] = w
                tail += 1
    for i in range(tail):
        mark[queue[i]] = stamp
    return tail, level[queue[tail - 1]]


@numba.njit(cache=True)
def _split_segment(ptr, idx, seg, lo, hi, mark, stamp, level, queue, counts):
    """Reorder ``seg[lo:hi]`` as [part 1 | part 2 | separator]; returns the two cuts.

    A level-set bisection: breadth-first levels from a pseudo-peripheral root
    (sweeps to a farthest vertex of least degree while the depth grows), and
    as separator the smallest level whose two sides each hold at least 30% of
    the rest (the median level when none does). Each level separates the
    levels before it from those after it. A disconnected segment splits into
    the component the sweep reaches and the rest, with an empty separator.
    """
    m = hi - lo
    for i in range(lo, hi):
        mark[seg[i]] = stamp
    root = seg[lo]
    count, depth = _bfs(ptr, idx, mark, stamp, root, level, queue)
    if count < m:
        for i in range(count):
            mark[queue[i]] = -stamp
        k = count
        for i in range(lo, hi):
            if mark[seg[i]] == stamp:
                queue[k] = seg[i]
                k += 1
        for i in range(m):
            seg[lo + i] = queue[i]
        return lo + count, hi
    for _ in range(4):
        pick = queue[count - 1]
        for i in range(count - 1, -1, -1):
            v = queue[i]
            if level[v] != depth:
                break
            if ptr[v + 1] - ptr[v] < ptr[pick + 1] - ptr[pick]:
                pick = v
        _, d2 = _bfs(ptr, idx, mark, stamp, pick, level, queue)
        if d2 <= depth:
            # the levels now hold pick's sweep: sweep from the root again
            count, depth = _bfs(ptr, idx, mark, stamp, root, level, queue)
            break
        root, depth = pick, d2
    for d in range(depth + 1):
        counts[d] = 0
    for i in range(count):
        counts[level[queue[i]]] += 1
    below = 0
    sep = -1
    median = -1
    best = m + 1
    for d in range(depth + 1):
        above = m - below - counts[d]
        if median < 0 and below + counts[d] >= m // 2:
            median = d
        if min(below, above) >= 0.3 * (m - counts[d]) and counts[d] < best:
            best = counts[d]
            sep = d
        below += counts[d]
    if sep < 0:
        sep = median
    k = lo
    for i in range(count):
        if level[queue[i]] < sep:
            seg[k] = queue[i]
            k += 1
    cut1 = k
    for i in range(count):
        if level[queue[i]] > sep:
            seg[k] = queue[i]
            k += 1
    cut2 = k
    for i in range(count):
        if level[queue[i]] == sep:
            seg[k] = queue[i]
            k += 1
    return cut1, cut2


@numba.njit(cache=True)
def _level_dissection(ptr, idx, leaf_size):
    """Nested dissection of a CSR graph by level-set bisections, in post-order.

    Returns ``(perm, sizes, parent, depth)`` in the graph's local numbering:
    the layout of :class:`NestedDissection` (``parent`` -1 at the root).
    Segments are split in place as [part 1 | part 2 | separator], so ``perm``
    is already in post-order; nodes are sorted into it by (end of their
    subtree's segment, subtree size).
    """
    m = ptr.size - 1
    seg = np.arange(m)
    mark = np.zeros(m, dtype=np.int64)
    level = np.zeros(m, dtype=np.int64)
    queue = np.empty(m, dtype=np.int64)
    counts = np.empty(m + 1, dtype=np.int64)
    cap = 2 * (m // max(leaf_size // 2, 1)) + 8
    n_lo = np.empty(cap, dtype=np.int64)   # subtree segment
    n_hi = np.empty(cap, dtype=np.int64)
    n_own = np.empty(cap, dtype=np.int64)  # start of the node's own unknowns
    n_par = np.empty(cap, dtype=np.int64)
    n_dep = np.empty(cap, dtype=np.int64)
    stack = np.empty((cap, 4), dtype=np.int64)
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, m, -1, 0
    top = 1
    t = 0
    while top > 0:
        top -= 1
        lo, hi, par, dep = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        if t == n_lo.size:  # grow (a tree with many tiny parts)
            n_lo = np.concatenate((n_lo, np.empty_like(n_lo)))
            n_hi = np.concatenate((n_hi, np.empty_like(n_hi)))
            n_own = np.concatenate((n_own, np.empty_like(n_own)))
            n_par = np.concatenate((n_par, np.empty_like(n_par)))
            n_dep = np.concatenate((n_dep, np.empty_like(n_dep)))
        n_lo[t], n_hi[t], n_par[t], n_dep[t] = lo, hi, par, dep
        if hi - lo <= leaf_size:
            n_own[t] = lo
        else:
            c1, c2 = _split_segment(ptr, idx, seg, lo, hi, mark, t + 1, level, queue, counts)
            n_own[t] = c2
            for a, b in ((lo, c1), (c1, c2)):
                if b > a:
                    if top == stack.shape[0]:
                        stack = np.concatenate((stack, np.empty_like(stack)))
                    stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = a, b, t, dep + 1
                    top += 1
        t += 1
    key = n_hi[:t] * (m + 1) + (n_hi[:t] - n_lo[:t])
    order = np.argsort(key, kind="mergesort")
    rank = np.empty(t, dtype=np.int64)
    for i in range(t):
        rank[order[i]] = i
    sizes = np.empty(t, dtype=np.int64)
    parent = np.empty(t, dtype=np.int64)
    depth = np.empty(t, dtype=np.int64)
    for i in range(t):
        u = order[i]
        sizes[i] = n_hi[u] - n_own[u]
        parent[i] = -1 if n_par[u] < 0 else rank[n_par[u]]
        depth[i] = n_dep[u]
    return seg, sizes, parent, depth
