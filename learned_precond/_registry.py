"""Name -> class registry of preconditioners, used by the CLI, tests and benchmarks.

Classes are imported lazily so ``import learned_precond`` stays cheap and a
missing optional dependency only matters when its preconditioner is used.
"""

import importlib

__all__ = ["DEFAULT_NAMES", "PRECONDITIONERS", "get_preconditioner", "preconditioner_names"]

PRECONDITIONERS = {
    "none": "learned_precond.baselines.identity:Identity",
    "jacobi": "learned_precond.baselines.jacobi:Jacobi",
    "ilu0": "learned_precond.baselines.ilu0:ILU0",
    "ilut": "learned_precond.baselines.ilut:ILUT",
    "amg": "learned_precond.baselines.amg:AMG",
    "exact": "learned_precond.baselines.exact:ExactLU",
    "learned_lu": "learned_precond.lu:LearnedLU",
    "ict": "learned_precond.baselines.incomplete_cholesky:IncompleteCholesky",
    "spai": "learned_precond.spai.operator:ClassicalSPAI",
    "learned_spai": "learned_precond.spai.operator:SPAI",
    "spai_generator": "learned_precond.spai.generator:GeneratedSPAI",
}

#: The preconditioners compared by default (CLI ``compare``/``demo``, asv): the
#: classical baselines and LearnedLU. The sparse approximate inverses and the
#: incomplete Cholesky are selected by name; ``spai_generator`` needs a trained
#: generator (``--fit spai_generator:model=gen.npz``).
DEFAULT_NAMES = ("none", "jacobi", "ilu0", "ilut", "amg", "exact", "learned_lu")


def preconditioner_names():
    """Names accepted by :func:`get_preconditioner`, in display order."""
    return list(PRECONDITIONERS)


def get_preconditioner(name):
    """Return the preconditioner class registered as ``name``."""
    try:
        target = PRECONDITIONERS[name]
    except KeyError:
        raise ValueError(
            f"unknown preconditioner {name!r}; choose from {', '.join(PRECONDITIONERS)}."
        ) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
