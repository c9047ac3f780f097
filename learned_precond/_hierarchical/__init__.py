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
With ``tol >= 1e-3``, fronts owning at least 256 unknowns (the 3-D
separators) are factored, and their fill formed and truncated, in single
precision when LAPACK's condition estimate of the single factor allows
(``FLOAT32_MIN_*`` in ``factorization``): about twice as fast per call, far
below the truncation's own error; the stored factors and the updates passed
up stay double, and a front failing after single ones were used redoes the
whole factorization in double.
The dense separator blocks grow with the separators (sqrt(N) in 2-D), the
compressed couplings with the ranks; see ``docs/results/hierarchical.md``.

Applying ``M``: forward elimination in post-order, back substitution in
reverse, one compiled loop (numba) over the packed per-node arrays;
:func:`solve_reference` is the plain loop it is tested against.

Modules: ``tree`` (:func:`nested_dissection`, :class:`NestedDissection`,
:func:`separates`: may a tree be reused for a new matrix),
``factorization`` (:func:`hierarchical_factorization`,
:class:`HierarchicalFactors`, :func:`factorization_plan`: what a
refactorization of the same matrix reuses), ``fronts`` (compiled symbolic pass, front
assembly and small-front elimination), ``kernels`` (the compiled substitution),
``reference`` (:func:`solve_reference`).
"""

from .factorization import (
    BLOCK_WIDTH,
    FactorizationPlan,
    HierarchicalFactors,
    factorization_plan,
    hierarchical_factorization,
)
from .reference import solve_reference
from .tree import NestedDissection, nested_dissection, separates

__all__ = ["BLOCK_WIDTH", "FactorizationPlan", "HierarchicalFactors", "NestedDissection",
           "factorization_plan", "hierarchical_factorization", "nested_dissection",
           "separates", "solve_reference"]
