"""``init='block_tridiagonal'``: the exact block LU of A's block tridiagonal part.

``S_0 = A_00``, ``S_i = A_ii - A_(i,i-1) S_(i-1)^-1 A_(i-1,i)``; ``L`` gets
identity diagonal blocks and ``E_i = A_(i,i-1) S_(i-1)^-1``, ``U`` gets ``S_i``
and ``A_(i,i+1)``. Exact for block tridiagonal A (1-D problems, banded A
whose bandwidth is at most the block size); the far field starts at zero.
For a LinearOperator the three block diagonals are probed with ``3 P``
products (``_blocks.probe_block_tridiagonal``).
"""

from ... import _blocks
from ._build import BlockStart

__all__ = ["start"]


def start(system, layout, generator):
    """The :class:`BlockStart` of the block tridiagonal LU of ``system``."""
    diag, sub, sup = system.block_tridiagonal()
    S, L_sub, ok = _blocks.block_tridiagonal_lu(diag, sub, sup)
    notes = [] if ok else ["block tridiagonal LU met a singular Schur complement; "
                           "coupling dropped there"]
    return BlockStart("block_tridiagonal", S, L_sub, sup, notes=notes)
