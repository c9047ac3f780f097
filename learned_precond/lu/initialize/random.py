"""``init='random'``: the seed's start, identity plus 10% Gaussian noise."""

import numpy as np

from ..._convert import randn
from ._build import BlockStart

__all__ = ["start"]


def start(system, layout, generator):
    """A random :class:`BlockStart` (drawn from ``generator``)."""
    M, P = layout.n_leaves, layout.block_size
    n_sub = max(M - 1, 0)
    S = np.eye(P)[None].repeat(M, 0) + 0.1 * randn(generator, M, P, P)
    L_sub = 0.1 * randn(generator, n_sub, P, P)
    U_sup = 0.1 * randn(generator, n_sub, P, P)
    return BlockStart("random", S, L_sub, U_sup)
