"""``init=<fitted LearnedLU>``: a warm start from another fit's factors.

The previous operator's factors (and its ordering and pivoting, which the
earlier stages reuse) on a matrix of the same size, rescaled when the new
matrix has another size of entries. Time stepping and Newton iterations
refit this way on a nearby matrix.
"""

import math

import torch

__all__ = ["start"]


def start(warm, system, dtype):
    """The model of ``warm``'s factors, rescaled to ``system``'s scale.

    The trained model of an operator fitted in this session continues as it
    was; a loaded operator's is rebuilt from its factors
    (:meth:`~learned_precond.lu.pack.LUFactors.to_model`).
    """
    from ..train import LUModel

    source = warm._model
    model = LUModel(source.layout, symmetric=source.symmetric, dtype=dtype)
    model.load_state_dict(source.state_dict())
    if warm.scale != system.scale:
        _rescale_model(model, system.scale / warm.scale)
    return model


def _rescale_model(model, factor):
    """Multiply ``U`` (so ``L U``) by ``factor``: a warm start on a rescaled matrix."""
    with torch.no_grad():
        if model.symmetric:
            model.C.mul_(math.sqrt(factor))
            return
        # D, E and the out-bases enter U linearly, each once.
        for p in (model.U.D, model.U.E, model.U.U):
            if p is not None:
                p.mul_(factor)
