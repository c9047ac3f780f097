"""Hierarchical orderings of the unknowns for the learned (GFMM) LU.

The learned LU factorizes a symmetrically permuted and padded matrix whose
``M * P`` slots are grouped into ``M = 2**K`` leaf blocks of ``P =
block_size`` slots each, the leaves of a complete binary tree: node ``a`` at
level ``l`` covers leaves ``a * 2**(K-l) .. (a+1) * 2**(K-l) - 1``. The
far-field blocks between tree nodes are stored with rank ``r``, so they must
be numerically low rank, and they are only when every tree node holds a
compact, connected piece of the graph of ``A`` (a subdomain). In natural
order a node of a 2-D grid is a thin strip; with a hierarchical ordering it
is a square, its interface with its sibling is short, and the coupling
through that interface has small rank. Measured (design notes, section 5):
rank-8 compressed exact LU of 2-D Poisson, N = 1024, needs 12 GMRES
iterations in Z-order against 23 in natural order.

:func:`tree_ordering` builds such an ordering and returns a
:class:`TreeOrdering`, which maps vectors and matrices between the original
numbering and the padded slot numbering.

Methods
-------
``'natural'``
    Slot ``s`` holds unknown ``s``; the padding sits in the last leaves.
``'geometric'`` (alias ``'zorder'``)
    Recursive coordinate bisection on ``coords`` or on the points of a
    regular grid (``grid_shape``), exactly balanced to the tree. On a
    ``2**k x 2**k`` grid with ``P`` a power of two the leaves are squares or
    2:1 rectangles visited in Z (Morton) order.
``'bisection'``
    Recursive graph bisection of the pattern of ``|A| + |A|^T`` with METIS
    (:mod:`pymetis`), each cut rebalanced to exact half sizes.
``'auto'``
    ``'geometric'`` when coordinates are given, ``'bisection'`` for sparse
    ``A`` with more than ``block_size`` unknowns, ``'natural'`` otherwise.

Every method splits a node holding ``m`` unknowns into children holding
``ceil(m/2)`` and ``floor(m/2)``, so a node at level ``l`` never holds more
than ``ceil(n / 2**l)`` unknowns, which fits its capacity ``2**(K-l) * P``.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from ._graph_bisection import graph_bisection
from ._structure import adjacency_pattern
from ._validation import check_positive_int, check_square

__all__ = ["TreeOrdering", "tree_ordering", "offdiagonal_ranks"]

_METHODS = ("auto", "natural", "geometric", "zorder", "bisection")


@dataclass(frozen=True, eq=False)
class TreeOrdering:
    """A padded, hierarchical numbering of the unknowns of ``A``.

    Built by :func:`tree_ordering`; the arrays are read-only.

    Attributes
    ----------
    n : int
        Number of unknowns of ``A``.
    block_size : int
        Slots per leaf block, ``P``.
    n_leaves : int
        Number of leaf blocks ``M``, the smallest power of two with
        ``M * P >= n`` (at least 1).
    n_levels : int
        ``K = log2(M)``; levels run from 0 (root) to ``K`` (leaves).
    slots : ndarray of int64, shape (M * P,)
        ``slots[s]`` is the original index of the unknown in slot ``s``, or
        -1 for a padding slot. Leaf ``i`` owns slots ``i*P .. (i+1)*P - 1``,
        its real unknowns first, its padding after them.
    positions : ndarray of int64, shape (n,)
        ``positions[j]`` is the slot of original unknown ``j``;
        ``slots[positions] == arange(n)``.
    method : str
        The method that built the ordering (``'natural'``, ``'geometric'``,
        ``'zorder'`` or ``'bisection'``; never ``'auto'``).
    """

    n: int
    block_size: int
    n_leaves: int
    n_levels: int
    slots: np.ndarray
    positions: np.ndarray
    method: str

    def __post_init__(self):
        N = self.n_leaves * self.block_size
        if self.n_leaves != 2**self.n_levels:
            raise ValueError(
                f"n_leaves ({self.n_leaves}) must equal 2**n_levels (2**{self.n_levels})."
            )
        if self.slots.shape != (N,) or self.positions.shape != (self.n,):
            raise ValueError(
                f"slots must have shape ({N},) and positions shape ({self.n},), got "
                f"{self.slots.shape} and {self.positions.shape}."
            )
        if self.n > N:
            raise ValueError(
                f"{self.n} unknowns do not fit in {self.n_leaves} leaves of "
                f"{self.block_size} slots."
            )
        for arr in (self.slots, self.positions):
            arr.setflags(write=False)

    @property
    def n_slots(self):
        """Size ``M * P`` of the padded, permuted system."""
        return self.n_leaves * self.block_size

    @property
    def leaf_sizes(self):
        """Number of real (non-padding) unknowns in each leaf, shape (M,)."""
        return np.count_nonzero(self.slots.reshape(self.n_leaves, self.block_size) >= 0, axis=1)

    def __repr__(self):
        return (
            f"TreeOrdering(n={self.n}, block_size={self.block_size}, "
            f"n_leaves={self.n_leaves}, n_levels={self.n_levels}, "
            f"padding={self.n_slots - self.n}, method={self.method!r})"
        )

    def to_slots(self, X):
        """Scatter ``X`` from the original numbering into the padded slots.

        Parameters
        ----------
        X : array_like, shape (n,) or (n, k)

        Returns
        -------
        ndarray, shape (M*P,) or (M*P, k)
            ``Y[positions[j]] = X[j]``, zeros in the padding slots; the
            dtype of ``X`` is kept.
        """
        X = np.asarray(X)
        if X.ndim not in (1, 2) or X.shape[0] != self.n:
            raise ValueError(
                f"to_slots expects an array of shape ({self.n},) or ({self.n}, k) in the "
                f"original numbering, got shape {X.shape}."
            )
        Y = np.zeros((self.n_slots,) + X.shape[1:], dtype=X.dtype)
        Y[self.positions] = X
        return Y

    def from_slots(self, Y):
        """Gather the real unknowns from the padded slots (inverse of :meth:`to_slots`).

        Parameters
        ----------
        Y : array_like, shape (M*P,) or (M*P, k)

        Returns
        -------
        ndarray, shape (n,) or (n, k)
            ``X[j] = Y[positions[j]]``; padding slots are dropped.
        """
        Y = np.asarray(Y)
        if Y.ndim not in (1, 2) or Y.shape[0] != self.n_slots:
            raise ValueError(
                f"from_slots expects an array of shape ({self.n_slots},) or "
                f"({self.n_slots}, k) in slot numbering, got shape {Y.shape}."
            )
        return Y[self.positions]

    def permute_matrix(self, A):
        """Return the padded, permuted matrix ``P A P^T`` of size ``M*P``.

        Entry ``(positions[i], positions[j])`` of the result is ``A[i, j]``;
        padding slots get 1 on the diagonal and are otherwise decoupled, so
        the padded system is nonsingular whenever ``A`` is.

        Parameters
        ----------
        A : sparse array/matrix or ndarray, shape (n, n)

        Returns
        -------
        csr_array or ndarray, shape (M*P, M*P)
            ``csr_array`` (sorted indices) for sparse ``A``, a dense array
            for dense ``A``; the dtype of ``A`` is kept.
        """
        if isinstance(A, LinearOperator) and not sp.issparse(A):
            raise TypeError(
                "permute_matrix needs the entries of A; pass a sparse array or a dense "
                "ndarray, not a LinearOperator."
            )
        if A.shape != (self.n, self.n):
            raise ValueError(
                f"A has shape {A.shape} but this ordering is for {self.n} unknowns; "
                f"build the ordering from the same matrix."
            )
        pad = np.flatnonzero(self.slots < 0)
        if sp.issparse(A):
            coo = sp.coo_array(A)
            rows = np.concatenate([self.positions[coo.row], pad])
            cols = np.concatenate([self.positions[coo.col], pad])
            data = np.concatenate([coo.data, np.ones(pad.size, dtype=coo.data.dtype)])
            out = sp.csr_array((data, (rows, cols)), shape=(self.n_slots, self.n_slots))
            out.sum_duplicates()
            return out
        A = np.asarray(A)
        out = np.zeros((self.n_slots, self.n_slots), dtype=A.dtype)
        out[np.ix_(self.positions, self.positions)] = A
        out[pad, pad] = 1
        return out


def tree_ordering(A, block_size, *, method="auto", coords=None, grid_shape=None, seed=0):
    """Order and pad the unknowns of ``A`` into the leaves of a binary tree.

    Parameters
    ----------
    A : sparse array/matrix, ndarray or LinearOperator, shape (n, n)
        The system matrix. Only its size is used by ``'natural'`` and
        ``'geometric'``; ``'bisection'`` uses the pattern of
        ``|A| + |A|^T`` (explicit zeros are ignored).
    block_size : int
        Slots per leaf block ``P``.
    method : {'auto', 'natural', 'geometric', 'zorder', 'bisection'}
        How to order; see the module docstring. ``'zorder'`` is another name
        for ``'geometric'``.
    coords : array_like, shape (n, d), optional
        Coordinates of the unknowns, for ``'geometric'``.
    grid_shape : tuple of int, optional
        ``(nx, ny)`` or ``(nx, ny, nz)`` for unknowns on a regular grid in
        lexicographic order with the **last axis fastest**, i.e. unknown
        ``i * ny + j`` sits at grid point ``(i, j)``. This is the numbering
        of ``kron(L1, I) + kron(I, L1)`` and of ``np.ravel`` (C order).
        Used by ``'geometric'`` instead of ``coords``.
    seed : int
        Seed of METIS's random choices for ``'bisection'``; the same seed
        gives the same ordering.

    Returns
    -------
    TreeOrdering

    Raises
    ------
    ValueError
        Unknown ``method``, ``block_size < 1``, ``grid_shape`` whose product
        is not ``n``, ``coords`` of the wrong shape, or ``'geometric'``
        without coordinates.
    TypeError
        ``'bisection'`` for a ``LinearOperator`` (it has no graph).

    Notes
    -----
    Geometric ordering: a node holding the point set ``S`` is split along
    the axis of its longest extent (``max - min``; ties go to the lowest
    axis) at the median: the ``ceil(|S|/2)`` points with the smallest
    coordinate (ties broken by original index) form the first child.

    Bisection: each node's induced subgraph is cut in two by METIS; the
    larger side then hands its vertices closest (in graph distance) to the
    smaller side over until the halves hold exactly ``ceil(m/2)`` and
    ``floor(m/2)`` vertices. Subgraphs without edges, or on which METIS
    fails, are split in Cuthill-McKee (breadth-first) order. Of the two
    halves, the one more strongly coupled to the previous node of the same
    level (and less to the next one) is placed first, so consecutive leaves
    tend to be neighbours, which the block bidiagonal near field of the LU
    exploits; ties put the half holding the smallest original index first.
    Within each leaf, unknowns keep their original relative order.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> L1 = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(8, 8))
    >>> A = sp.kron(L1, sp.eye_array(8)) + sp.kron(sp.eye_array(8), L1)
    >>> order = tree_ordering(A, 16, grid_shape=(8, 8))
    >>> order
    TreeOrdering(n=64, block_size=16, n_leaves=4, n_levels=2, padding=0, method='geometric')
    >>> order.slots[:16].reshape(4, 4)  # leaf 0 is the 4 x 4 corner of the grid
    array([[ 0,  1,  2,  3],
           [ 8,  9, 10, 11],
           [16, 17, 18, 19],
           [24, 25, 26, 27]])
    >>> b = np.arange(64.0)
    >>> np.array_equal(order.from_slots(order.to_slots(b)), b)
    True
    """
    block_size = check_positive_int(block_size, "block_size")
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(
            f"unknown ordering method {method!r}; choose one of {', '.join(map(repr, _METHODS))}."
        )
    if not (sp.issparse(A) or isinstance(A, LinearOperator)):
        A = np.asarray(A)
        if A.ndim != 2:
            raise ValueError(f"A must be a 2-D matrix, got an array of shape {A.shape}.")
    check_square(A.shape, "A")
    n = int(A.shape[0])
    if coords is not None and grid_shape is not None:
        raise ValueError("pass either coords or grid_shape, not both.")
    points = None
    if coords is not None:
        points = _check_coords(coords, n)
    elif grid_shape is not None:
        points = _grid_points(grid_shape, n)

    if method == "auto":
        if points is not None:
            method = "geometric"
        elif sp.issparse(A) and n > block_size:
            method = "bisection"
        else:
            method = "natural"

    n_leaves = 1
    while n_leaves * block_size < n:
        n_leaves *= 2
    n_levels = n_leaves.bit_length() - 1

    if method == "natural":
        order = np.arange(n, dtype=np.int64)
        sizes = np.clip(n - block_size * np.arange(n_leaves), 0, block_size)
    elif method in ("geometric", "zorder"):
        if points is None:
            raise ValueError(
                f"method={method!r} needs the positions of the unknowns: pass "
                f"grid_shape=(nx, ny[, nz]) or coords (an (n, d) array), or use "
                f"method='bisection' for a sparse A."
            )
        order, sizes = _coordinate_bisection(points, n_levels, block_size)
    else:
        if isinstance(A, LinearOperator) and not sp.issparse(A):
            raise TypeError(
                "method='bisection' needs the sparsity pattern of A, but A is a "
                "LinearOperator; pass a sparse matrix, or coords/grid_shape for "
                "method='geometric'."
            )
        order, sizes = graph_bisection(adjacency_pattern(A), n_levels, seed)

    slots, positions = _place_in_leaves(order, sizes, n_leaves, block_size)
    return TreeOrdering(
        n=n,
        block_size=block_size,
        n_leaves=n_leaves,
        n_levels=n_levels,
        slots=slots,
        positions=positions,
        method=method,
    )


# -- input checks ---------------------------------------------------------------


def _check_coords(coords, n):
    pts = np.asarray(coords, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[0] != n or pts.shape[1] == 0:
        raise ValueError(
            f"coords must have shape (n, d) = ({n}, d), one row of coordinates per "
            f"unknown of A, got shape {np.shape(coords)}."
        )
    if not np.all(np.isfinite(pts)):
        raise ValueError("coords has NaN or Inf entries; every unknown needs a finite position.")
    return pts


def _grid_points(grid_shape, n):
    try:
        shape = tuple(int(s) for s in grid_shape)
        ok = len(shape) >= 1 and all(s == t for s, t in zip(shape, grid_shape, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok or any(s < 1 for s in shape):
        raise ValueError(
            f"grid_shape must be a tuple of positive integers such as (nx, ny) or "
            f"(nx, ny, nz), got {grid_shape!r}."
        )
    if int(np.prod(shape)) != n:
        raise ValueError(
            f"grid_shape {shape} has {int(np.prod(shape))} points but A has {n} unknowns; "
            f"the product of grid_shape must equal n."
        )
    # C order: the last axis varies fastest, as in np.ravel and kron(L1, I) + kron(I, L1).
    return np.stack(np.unravel_index(np.arange(n), shape), axis=1).astype(np.float64)


# -- shared tree bookkeeping ---------------------------------------------------------


def _place_in_leaves(order, sizes, n_leaves, block_size):
    """Turn leaf segments of ``order`` into the padded ``slots`` / ``positions`` arrays."""
    n = order.size
    leaf = np.repeat(np.arange(n_leaves, dtype=np.int64), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    # Original relative order inside each leaf (a stable, predictable choice:
    # the LU treats the leaf block as dense, so it does not matter for ranks).
    order = order[np.lexsort((order, leaf))]
    slot = leaf * block_size + (np.arange(n, dtype=np.int64) - starts[leaf])
    slots = np.full(n_leaves * block_size, -1, dtype=np.int64)
    slots[slot] = order
    positions = np.empty(n, dtype=np.int64)
    positions[order] = slot
    return slots, positions


# -- geometric: recursive coordinate bisection -------------------------------------------


def _coordinate_bisection(points, n_levels, block_size):
    """Recursive coordinate bisection that fills leaves; returns (order, leaf sizes).

    Each node's first child takes as many unknowns as its subtree holds
    (``block_size * 2**levels_below``) and the second child the rest, so every
    occupied leaf but the last is full and padding collects in whole empty
    leaves. Halving instead spreads the padding: with ``n`` just above a power
    of two times ``block_size`` every leaf would be about half empty, which is
    a block LU with half the block size (2-D Poisson, P = 32, initialization
    only, GMRES(50) iterations halving -> filling: 33 x 64 grid 79 -> 56,
    65 x 128 160 -> 122, 100 x 100 152 -> 131; 32 x 64, where both agree, 42).
    """
    n, d = points.shape
    order = np.arange(n, dtype=np.int64)
    sizes = np.array([n], dtype=np.int64)
    for level in range(n_levels):
        node = np.repeat(np.arange(sizes.size), sizes)
        pts = points[order]
        # Longest extent of each non-empty node; reduceat needs valid, non-empty starts.
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        nonempty = sizes > 0
        axis = np.zeros(sizes.size, dtype=np.int64)
        if n > 0:
            idx = starts[nonempty]
            extent = np.maximum.reduceat(pts, idx, axis=0) - np.minimum.reduceat(pts, idx, axis=0)
            axis[nonempty] = np.argmax(extent, axis=1)  # argmax: ties -> lowest axis
        key = pts[np.arange(n), axis[node]]
        order = order[np.lexsort((order, key, node))]
        sizes = _fill_first(sizes, block_size << (n_levels - level - 1))
    return order, sizes


def _fill_first(sizes, capacity):
    """Child sizes of each node: up to ``capacity`` first, the rest second, interleaved."""
    out = np.empty(2 * sizes.size, dtype=np.int64)
    out[0::2] = np.minimum(sizes, capacity)
    out[1::2] = sizes - out[0::2]
    return out


# -- diagnostic ------------------------------------------------------------------------


def offdiagonal_ranks(A, ordering, level, *, tol=1e-8, which="inverse"):
    """Numerical ranks of the sibling off-diagonal blocks at one tree level.

    A dense diagnostic for small problems (at most 4096 slots): it shows how
    well an ordering suits the low-rank far field of the learned LU.

    Parameters
    ----------
    A : sparse array/matrix or ndarray, shape (n, n)
    ordering : TreeOrdering
        Ordering built for ``A``.
    level : int
        Tree level, ``1 <= level <= ordering.n_levels``. Level ``K`` (leaves)
        is the near field, which the LU stores densely.
    tol : float
        A singular value counts if it exceeds ``tol`` times the largest
        singular value of its block.
    which : {'inverse', 'lower'}
        ``'inverse'``: blocks of ``(P A P^T)^-1``. ``'lower'``: blocks of
        the unit lower triangular factor of the LU without pivoting of
        ``P A P^T`` (which must exist, e.g. for SPD ``A``).

    Returns
    -------
    ndarray of int, shape (2**(level-1),)
        Entry ``b`` is the rank of the block with the rows of node
        ``2b + 1`` and the columns of node ``2b`` (its left sibling); for the
        upper blocks of a nonsymmetric inverse, call with ``A.T``.
    """
    if which not in ("inverse", "lower"):
        raise ValueError(f"which must be 'inverse' or 'lower', got {which!r}.")
    n_levels = ordering.n_levels
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, np.integer))
        or not 1 <= level <= n_levels
    ):
        raise ValueError(f"level must be an integer in 1..{n_levels} (n_levels), got {level!r}.")
    if ordering.n_slots > 4096:
        raise ValueError(
            f"offdiagonal_ranks forms dense {ordering.n_slots} x {ordering.n_slots} "
            f"matrices; use it on problems with at most 4096 slots."
        )
    Ap = ordering.permute_matrix(A)
    Ap = Ap.toarray() if sp.issparse(Ap) else np.asarray(Ap, dtype=np.float64)
    if which == "inverse":
        factor = np.linalg.inv(Ap)
    else:
        factor = _unit_lower_factor(Ap)
    width = 2 ** (n_levels - level) * ordering.block_size
    ranks = np.empty(2 ** (level - 1), dtype=np.int64)
    for b in range(ranks.size):
        blk = factor[
            (2 * b + 1) * width : (2 * b + 2) * width, 2 * b * width : (2 * b + 1) * width
        ]
        sv = np.linalg.svd(blk, compute_uv=False)
        ranks[b] = 0 if sv.size == 0 or sv[0] == 0 else int(np.count_nonzero(sv > tol * sv[0]))
    return ranks


def _unit_lower_factor(Ap):
    """Return the unit lower triangular L of ``Ap = L U`` without pivoting (dense)."""
    if np.allclose(Ap, Ap.T):
        try:
            chol = np.linalg.cholesky(Ap)
            return chol / np.diag(chol)
        except np.linalg.LinAlgError:
            pass
    U = Ap.astype(np.float64, copy=True)
    n = U.shape[0]
    L = np.eye(n)
    for k in range(n - 1):
        if U[k, k] == 0:
            raise ValueError(
                f"LU without pivoting hits a zero pivot at slot {k}; use which='inverse'."
            )
        L[k + 1 :, k] = U[k + 1 :, k] / U[k, k]
        U[k + 1 :, k:] -= np.outer(L[k + 1 :, k], U[k, k:])
    return L
