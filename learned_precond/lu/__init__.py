"""LearnedLU: learned GFMM-block LU factors applied as a scipy LinearOperator.

``LearnedLU.fit(A)`` runs one stage per module, in the order the data flows:

==============  ===========================================================
``options``     :class:`FitOptions`: every fit option, its default, its checks
``pivot``       static pivoting and scaling ``A' = D_r P A D_c``
``order``       the tree ordering of the unknowns and the GFMM layout
``scale``       :class:`~learned_precond.lu.scale.ScaledSystem`: ``A'`` ordered,
                padded and divided by the size of its entries
``initialize``  the start (one module per start, registry ``STARTS``)
``train``       the factor model, the losses and the optimizer loop
``pack``        :class:`~learned_precond.lu.pack.LUFactors` and their packing
                for the compiled substitution (factor dtype)
``operator``    :class:`LearnedLU`: apply, adjoint, save/load, repr
``nested``      ``init='hierarchical'``: the nested-dissection layout
                (compressed multifrontal start, :class:`NestedLearnedLU`)
``dense``       ``init='hodlr'``: the dense layout (HODLR factors of a dense
                A with ``coords``, :class:`DenseLearnedLU`)
``nested_io``   its safe file format (``NestedLearnedLU.save``, read back by
                ``LearnedLU.load``)
==============  ===========================================================

``budget`` holds the time limits (``time_budget=``), ``report`` the
:class:`FitReport`. Applying ``M = U^-1 L^-1`` costs ``O(N (block_size +
rank))`` per vector; nothing ``N x N`` is ever formed.

Examples
--------
>>> import numpy as np
>>> from scipy.sparse.linalg import gmres
>>> from learned_precond import LearnedLU, problems
>>> A = problems.get("laplace_2d", n=32)
>>> b = np.ones(A.shape[0])
>>> M = LearnedLU.fit(A, block_size=16, rank=4, max_steps=50, seed=0)
>>> x, info = gmres(A, b, M=M, rtol=1e-8)
>>> bool(np.linalg.norm(b - A @ x) <= 1e-7 * np.linalg.norm(b))
True
"""

import functools

from . import dense, nested, nested_fit, nested_io
from .initialize import STARTS
from .operator import LAYOUTS, LOADERS, PREFERRED, LearnedLU
from .options import FitOptions
from .report import FitReport

LAYOUTS["hierarchical"] = nested_fit.fit_nested
PREFERRED["hierarchical"] = nested_fit.prefers_nested
LAYOUTS["hodlr"] = dense.fit_dense
PREFERRED["hodlr"] = dense.prefers_dense
LOADERS[nested_io.LAYOUT] = functools.partial(nested_io.load_nested, nested.NestedLearnedLU)

__all__ = ["LearnedLU", "FitOptions", "FitReport", "STARTS"]
