"""The one numpy <-> torch boundary of the LearnedLU core.

Training runs in torch (autograd, Adam, optionally on a GPU); everything else
(the matrix, the orderings, the packed factors, the compiled substitution,
the saved files) is numpy. Every crossing goes through these functions, so
that a dtype, a device or a forgotten ``detach`` is decided in one place.
"""

import numpy as np
import torch

__all__ = ["to_numpy", "to_torch", "randn"]


def to_numpy(t, dtype=np.float64):
    """A C-contiguous numpy array of ``t`` in ``dtype``, detached and on the CPU.

    ``t`` may be a tensor, a numpy array, None (returned as is), or a list,
    tuple or dict of those (converted element by element, as the per-level
    parameter lists of a GFMM block are).
    """
    if t is None:
        return None
    if isinstance(t, dict):
        return {k: to_numpy(v, dtype) for k, v in t.items()}
    if isinstance(t, (list, tuple)):
        return [to_numpy(v, dtype) for v in t]
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.numpy()
    return np.ascontiguousarray(t, dtype=dtype)


def to_torch(a, *, dtype=torch.float64, device="cpu"):
    """A tensor of ``a`` (numpy array or tensor) in ``dtype`` on ``device``.

    Shares memory with ``a`` when no conversion or copy is needed.
    """
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype)
    a = np.ascontiguousarray(a)
    if any(stride < 0 for stride in a.strides):  # an empty reversed array stays a view
        a = a.copy()
    return torch.from_numpy(a).to(device=device, dtype=dtype)


def randn(generator, *shape):
    """Standard normal float64 numbers from a torch ``generator``, as numpy.

    The fit draws every random number (probes, test right-hand sides,
    random starts) from one torch generator, so that ``seed=`` fixes all of
    them; the numpy side gets its share through this function.
    """
    return torch.randn(*shape, generator=generator, dtype=torch.float64).numpy()
