"""Name -> class registry of preconditioners, used by the CLI, tests and benchmarks.

Classes are imported lazily so ``import learned_precond`` stays cheap and a
missing optional dependency only matters when its preconditioner is used.
"""

import importlib

__all__ = ["PRECONDITIONERS", "get_preconditioner", "preconditioner_names"]

PRECONDITIONERS = {
    "none": "learned_precond.baselines:Identity",
    "jacobi": "learned_precond.baselines:Jacobi",
    "ilu0": "learned_precond.baselines:ILU0",
    "ilut": "learned_precond.baselines:ILUT",
    "amg": "learned_precond.baselines:AMG",
    "exact": "learned_precond.baselines:ExactLU",
    "learned_lu": "learned_precond.lu:LearnedLU",
}


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
