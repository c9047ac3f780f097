"""``init='exact_compressed'``: the exact LU of A with its far field compressed.

The exact pointwise LU of the scaled, tree-ordered matrix without pivoting
(SuperLU with diagonal pivots for sparse A, a blocked elimination for dense
A: ``_blocks.exact_block_factors``), its near field taken as is and the rest
of both factors compressed into the GFMM far field at the layout's rank
(nested bases, truncated eigendecompositions: ``learned_precond._compress``).
Needs the entries of A, and a full LU first, so it is affordable only for
moderate N (``init='auto'`` tries it up to ``EXACT_START_MAX_N`` unknowns).
"""

from ... import _blocks
from ._build import BlockStart, StartUnavailable

__all__ = ["start"]


def start(system, layout, generator):
    """The :class:`BlockStart` of the exact block factors, or :class:`StartUnavailable`."""
    if system.is_operator:
        raise StartUnavailable("init='exact_compressed' needs the entries of A, not a "
                               "LinearOperator")
    teacher = _blocks.exact_block_factors(system.entries(), layout.n_leaves,
                                          layout.block_size)
    if teacher is None:
        raise StartUnavailable("the exact LU without pivoting failed (zero pivot)")
    return BlockStart("exact_compressed", teacher.S, teacher.L_sub, teacher.U_sup,
                      far_field=lambda: (teacher.far_L(), teacher.far_U_reversed()))
