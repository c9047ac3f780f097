"""learned_precond: learned LU preconditioners for scipy's Krylov solvers.

Quick use::

    from scipy.sparse.linalg import gmres
    from learned_precond import LearnedLU
    x, info = gmres(A, b, M=LearnedLU.fit(A))

API map
-------
LearnedLU
    Block lower/upper factors with GFMM (hierarchical, FMM-like) structure,
    learned by gradient descent; applied by O(N) blocked substitution.
Identity, Jacobi, ILU0, ILUT, AMG, ExactLU, IncompleteCholesky
    Classical baselines with the same ``fit -> LinearOperator`` surface.
SPAI, ClassicalSPAI
    Sparse approximate inverses: learned by gradient descent on
    ``||I - R^T A R||_F`` (seed 003), Grote-Huckle least squares, FSAI.
MatrixFamily, SPAIGenerator, GeneratedSPAI
    PDE matrix families and the graph-conditioned generator that outputs a
    SPAI for an unseen matrix of the family in one forward pass.
solve
    Krylov harness: gmres/cg/bicgstab/bicg/minres with honest iteration
    counts and true residuals.
problems
    Gallery of test matrices (seed examples, PDE families, kernels, real
    matrices).
compare
    Side-by-side tables and convergence plots (the ``learned-precond``
    command line that prints them is :mod:`learned_precond.cli`).
PreconditionerSetupError, StructurallySingularError, FitConvergenceWarning,
IllConditionedWarning, ModelFileError
    What goes wrong, and how to fix it.
"""

from importlib import import_module as _import_module

from ._registry import get_preconditioner, preconditioner_names
from .exceptions import (
    FitConvergenceWarning,
    IllConditionedWarning,
    ModelFileError,
    PreconditionerSetupError,
    StructurallySingularError,
)

__version__ = "0.1.0"

_LAZY = {
    "LearnedLU": "learned_precond.lu",
    "Identity": "learned_precond.baselines",
    "Jacobi": "learned_precond.baselines",
    "ILU0": "learned_precond.baselines",
    "ILUT": "learned_precond.baselines",
    "AMG": "learned_precond.baselines",
    "ExactLU": "learned_precond.baselines",
    "IncompleteCholesky": "learned_precond.baselines",
    "SPAI": "learned_precond.spai",
    "ClassicalSPAI": "learned_precond.spai",
    "MatrixFamily": "learned_precond.problems.family",
    "SPAIGenerator": "learned_precond.spai",
    "GeneratedSPAI": "learned_precond.spai",
    "solve": "learned_precond.krylov",
    "SolveResult": "learned_precond.krylov",
    "problems": "learned_precond.problems",
    "compare": "learned_precond.compare",
}

__all__ = [
    *_LAZY,
    "FitConvergenceWarning",
    "IllConditionedWarning",
    "ModelFileError",
    "PreconditionerSetupError",
    "StructurallySingularError",
    "get_preconditioner",
    "preconditioner_names",
]


def __getattr__(name):
    # Lazy imports keep `import learned_precond` fast (torch loads only when
    # LearnedLU is used) and avoid import cycles between the modules.
    if name in _LAZY:
        module = _import_module(_LAZY[name])
        value = module if module.__name__.endswith("." + name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'learned_precond' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
