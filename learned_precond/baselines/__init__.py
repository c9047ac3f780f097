"""Classical preconditioners with the same ``fit -> LinearOperator`` surface.

Every class here is registered in :mod:`learned_precond._registry`; build one
with ``Name.fit(A, **options)`` (or ``get_preconditioner(name).fit(...)``)
and pass it to a Krylov solver as ``M``. One module per method:

=========  ===================  ============================  =========================
name       class                M ~ A^-1                      module
=========  ===================  ============================  =========================
``none``   Identity             ``I`` (the unpreconditioned   ``identity``
                                reference)
``jacobi`` Jacobi               ``diag(A)^-1``                ``jacobi``
``ilu0``   ILU0                 ``(L U)^-1``, true ILU(0): no ``ilu0`` (numba kernels in
                                fill outside A's pattern      ``_ilu_kernels``)
``ilut``   ILUT                 threshold ILU from SuperLU    ``ilut``
                                (``scipy spilu``)
``ict``    IncompleteCholesky   threshold ``(L D L^T)^-1``    ``incomplete_cholesky``
                                (SPD ``A``)
``amg``    AMG                  one pyamg V-cycle             ``amg``
``exact``  ExactLU              ``A^-1`` by sparse (SuperLU)  ``exact``
                                or dense (LAPACK) LU
=========  ===================  ============================  =========================

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from scipy.sparse.linalg import gmres
>>> from learned_precond.baselines import ILU0
>>> T = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(30, 30))
>>> A = sp.kronsum(T, T, format="csr")
>>> M = ILU0.fit(A)
>>> b = A @ np.ones(A.shape[0])
>>> x, info = gmres(A, b, M=M, rtol=1e-10)
>>> bool(np.allclose(x, 1.0))
True
"""

from .amg import AMG
from .exact import ExactLU
from .identity import Identity
from .ilu0 import ILU0
from .ilut import ILUT
from .incomplete_cholesky import IncompleteCholesky
from .jacobi import Jacobi

__all__ = ["Identity", "Jacobi", "ILU0", "ILUT", "AMG", "ExactLU", "IncompleteCholesky"]
