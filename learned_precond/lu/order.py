"""Stage 2, ordering: the unknowns in the leaves of a binary tree, and the layout.

``ordering='auto'`` bisects the graph of sparse A with METIS, uses
``coords``/``grid_shape`` when given, and keeps the natural order when A is
block tridiagonal in it already (bandwidth at most ``block_size``: the block
tridiagonal start is then the exact factorization, which no reordering can
beat). A warm start keeps the previous tree (and its block size and rank),
so that its factors line up; a LinearOperator has no graph and gets the
natural order.
"""

import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from ..gfmm import GFMMLayout
from ..ordering import tree_ordering
from .initialize import default_rank

__all__ = ["order", "bandwidth"]


def order(A, options, report):
    """Return ``(tree, layout)`` for the pivoted matrix ``A``."""
    t0 = time.perf_counter()
    warm = options.warm_start
    is_operator = isinstance(A, LinearOperator)
    block_size, rank = options.block_size, options.rank
    if warm is not None:
        tree = warm.ordering
        block_size, rank = warm.layout.block_size, warm.layout.rank
    elif is_operator:
        tree = tree_ordering(sp.eye_array(A.shape[0], format="csr"), block_size,
                             method="natural")
    else:
        method = options.ordering
        if method == "auto" and options.coords is None and options.grid_shape is None \
                and bandwidth(A) <= block_size:
            method = "natural"
        tree = tree_ordering(A, block_size, method=method, coords=options.coords,
                             grid_shape=options.grid_shape,
                             seed=0 if options.seed is None else int(options.seed))
    report.ordering = tree.method
    report.ordering_time = time.perf_counter() - t0
    M, P = tree.n_leaves, tree.block_size
    if rank is None:
        rank = default_rank(options.init, M * P, is_operator)
    return tree, GFMMLayout(M, P, min(rank, P))


def bandwidth(A):
    """Largest |i - j| over the nonzeros of A (dense: over entries != 0)."""
    if sp.issparse(A):
        C = sp.coo_array(A)
        return int(np.abs(C.row - C.col).max()) if C.nnz else 0
    i, j = np.nonzero(A)
    return int(np.abs(i - j).max()) if i.size else 0
