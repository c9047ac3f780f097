"""``init='block_jacobi'``: the diagonal blocks of A only (no coupling between leaves)."""

import numpy as np

from ._build import BlockStart

__all__ = ["start"]


def start(system, layout, generator):
    """The :class:`BlockStart` with ``U``'s diagonal blocks ``A_ii`` and nothing else."""
    diag, sub, sup = system.block_tridiagonal()
    return BlockStart("block_jacobi", diag.copy(), np.zeros_like(sub), np.zeros_like(sup))
