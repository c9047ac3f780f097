"""The two computations behind :func:`learned_precond.pivoting.static_pivoting`.

:func:`mc64`: the maximum-product matching of HSL MC64 (job 5) and its dual
scaling, on scipy's LAPJVsp matching and a vectorized Bellman-Ford (the
derivation is in ``static_pivoting``'s Notes). :func:`ruiz_scaling`: Ruiz
equilibration of the row and column maxima. Both take a canonical float64
``csr_array`` without stored zeros and return plain arrays; the public
object they become is :class:`~learned_precond.pivoting.StaticPivoting`.
"""

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching, structural_rank

from ._structure import is_symmetric
from .exceptions import StructurallySingularError

__all__ = ["mc64", "ruiz_scaling"]

# Ruiz equilibration stops when every row and column maximum is within this
# factor of 1 (or after _RUIZ_MAXITER sweeps); it halves the log-deviation per sweep.
_RUIZ_TOL = 0.05
_RUIZ_MAXITER = 30

def mc64(A):
    """Maximum-product matching and its dual scaling (see :func:`static_pivoting`)."""
    n = A.shape[0]
    absA = abs(A)
    col_max = np.zeros(n)
    np.maximum.at(col_max, absA.indices, absA.data)
    log_col_max = np.log(col_max)
    cost = sp.csr_array((log_col_max[absA.indices] - np.log(absA.data), absA.indices,
                         absA.indptr), shape=A.shape)
    shifted = sp.csr_array((cost.data + 1.0, cost.indices, cost.indptr), shape=A.shape)
    try:
        rows, cols = min_weight_full_bipartite_matching(shifted)
    except ValueError:
        rank = int(structural_rank(sp.csr_matrix(absA)))
        raise StructurallySingularError(
            f"A is structurally singular: its structural rank is {rank} < N = {n} (no "
            f"row permutation puts nonzeros on the whole diagonal), so A has no inverse "
            f"for a preconditioner to approximate. Check the assembly for dependent "
            f"equations or unknowns that no equation constrains."
        ) from None
    # Row rows[k] is matched to column cols[k]; new row j = old row matched to column j.
    row_perm = np.empty(n, dtype=np.int64)
    row_perm[cols] = rows
    # Keep the diagonal when it is itself a maximum-product matching (ties are
    # common: +-1 entries, symmetric matrices): a permutation would buy nothing
    # and would destroy symmetry.
    diag_cost = _diagonal_of(cost)
    if diag_cost is not None:
        best = float(np.sum(_diagonal_of(sp.csr_array(cost[row_perm]))))
        tol = 1e-12 * n * max(1.0, float(np.max(cost.data, initial=0.0)))
        if float(np.sum(diag_cost)) <= best + tol:
            row_perm = np.arange(n, dtype=np.int64)

    # Duals on the permuted cost matrix C' (matching on its diagonal).
    cost_p = sp.csr_array(cost[row_perm])
    cost_p.sort_indices()
    diag_cost = _diagonal_of(cost_p)
    # Constraint u_i <= u_j + w with w = c'_ij - c'_jj, for each stored (i, j).
    weights = cost_p.data - diag_cost[cost_p.indices]
    u = _shortest_path_potentials(cost_p.indptr, cost_p.indices, weights, n)
    v = diag_cost - u
    log_r = u
    log_s = v - log_col_max
    if np.array_equal(row_perm, np.arange(n)) and is_symmetric(A, rtol=1e-12):
        # Symmetric A, diagonal kept: D = sqrt(D_r D_c) on both sides keeps A'
        # symmetric, and still |a'_ii| = 1, |a'_ij| <= 1, because
        # |a'_ij|^2 = (|a_ij| r_i s_j)(|a_ji| r_j s_i) <= 1 when a_ij = a_ji.
        log_d = 0.5 * (log_r + log_s)
        return row_perm, np.exp(log_d), np.exp(log_d)
    shift = 0.5 * (np.mean(log_s) - np.mean(log_r))
    return row_perm, np.exp(log_r + shift), np.exp(log_s - shift)


def _diagonal_of(C):  # noqa: N803 - C is the cost matrix
    """Return the stored diagonal of csr ``C`` densely, or None if one is missing."""
    n = C.shape[0]
    rows = np.repeat(np.arange(n), np.diff(C.indptr))
    on_diag = C.indices == rows
    if np.count_nonzero(on_diag) != n:
        return None
    diag = np.empty(n)
    diag[rows[on_diag]] = C.data[on_diag]
    return diag


def _shortest_path_potentials(indptr, indices, weights, n):
    """Largest ``d <= 0`` with ``d_i <= d_j + w_ij`` for every stored ``(i, j)``.

    Vectorized Bellman-Ford from a virtual source joined to every node by a
    zero-weight edge: each sweep relaxes all edges at once. At most ``n``
    sweeps when there is no negative cycle; usually a handful. A relaxation
    must gain more than a rounding-level tolerance, so that a cycle of total
    weight ``-1e-16`` (rounding in the matching) cannot keep it running.
    """
    d = np.zeros(n)
    starts = indptr[:-1]
    tol = 64 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(weights), initial=0.0)))
    for _ in range(n + 1):
        candidates = d[indices] + weights
        best = np.minimum.reduceat(candidates, starts)  # every row holds its diagonal
        improved = best < d - tol
        if not improved.any():
            break
        d = np.where(improved, best, d)
    return d


def ruiz_scaling(A):
    """Ruiz equilibration: ``r, c`` with every row and column max of ``|D_r A D_c|`` ~ 1.

    Each sweep divides rows and columns by the square roots of their current
    maxima; for symmetric ``A`` the row and column maxima are the same
    numbers, so ``r == c`` exactly and ``D A D`` stays symmetric.
    """
    n = A.shape[0]
    absA = abs(A)
    rows = np.repeat(np.arange(n), np.diff(absA.indptr))
    r = np.ones(n)
    c = np.ones(n)
    for _ in range(_RUIZ_MAXITER):
        # r_i * c_j before the product with a_ij: for symmetric A (r == c) the
        # entries (i, j) and (j, i) then round identically.
        vals = absA.data * (r[rows] * c[absA.indices])
        row_max = np.zeros(n)
        col_max = np.zeros(n)
        np.maximum.at(row_max, rows, vals)
        np.maximum.at(col_max, absA.indices, vals)
        if max(np.max(np.abs(np.log(row_max))), np.max(np.abs(np.log(col_max)))) <= np.log1p(
            _RUIZ_TOL
        ):
            break
        r = r / np.sqrt(row_max)
        c = c / np.sqrt(col_max)
    return r, c
