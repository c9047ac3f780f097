"""A start's block factors -> the :class:`~learned_precond.lu.train.LUModel` to train.

Every start (one module each in this package) returns a :class:`BlockStart`:
the near field of an exact or approximate block LU of the scaled matrix
``A' = L U``, in leaf order, and optionally the far field of both factors as
sparse matrices to compress into the GFMM bases. :func:`build_model` turns
it into the torch model, choosing the symmetric factorization ``U = S L^T``
where the start allows it.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..._compress import compress_lower
from ..._convert import to_torch
from ...exceptions import PreconditionerSetupError
from ..train import LUModel

__all__ = ["BlockStart", "StartUnavailable", "build_model"]


class StartUnavailable(Exception):
    """A start cannot be computed for this matrix; the message says why."""


@dataclass
class BlockStart:
    """The block factors a start provides, in leaf order (``M`` leaves of size ``P``).

    Attributes
    ----------
    name : str
        The start's name (``report.init``).
    S : ndarray (M, P, P)
        Diagonal blocks of ``U``.
    L_sub : ndarray (M-1, P, P)
        Sub-diagonal blocks of ``L`` (``L`` has identity diagonal blocks).
    U_sup : ndarray (M-1, P, P)
        Super-diagonal blocks of ``U``.
    far_field : callable, optional
        ``() -> (F_L, F_U_reversed)``: the parts of ``L`` and of ``U`` (leaf
        order reversed, so block lower) that the GFMM bridges carry, as
        sparse matrices (``_compress.far_part``); called only when the layout
        has a far field. None: the far field starts at zero.
    notes : list of str
        What the report should say about this start.
    """

    name: str
    S: np.ndarray
    L_sub: np.ndarray
    U_sup: np.ndarray
    far_field: object = None
    notes: list = field(default_factory=list)


def build_model(start, layout, *, symmetric, symmetric_option, dtype, generator):
    """The LUModel holding ``start``'s factors; returns ``(model, notes)``.

    ``symmetric``: A' is symmetric, so ``U = S L^T`` with SPD ``S = C C^T`` is
    used when the start's diagonal blocks are positive definite
    (``symmetric_option=True`` makes it an error when they are not).
    """
    notes = []
    S, L_sub, U_sup = start.S, start.L_sub, start.U_sup
    if symmetric:
        chol = _block_cholesky(S)
        if chol is None:
            if symmetric_option is True:
                raise PreconditionerSetupError(
                    "symmetric=True needs a positive definite initialization, but a "
                    "diagonal block of the block LDL^T of A is not positive definite "
                    "(A is indefinite?). Use symmetric=False (then use gmres, not cg).")
            notes.append("A is symmetric but not positive definite in its block "
                         "LDL^T: using the nonsymmetric factorization")
            symmetric = False
    M = layout.n_leaves
    model = LUModel(layout, symmetric=symmetric, dtype=dtype)
    with torch.no_grad():
        if M > 1:
            model.L.E.copy_(to_torch(L_sub, dtype=dtype))
        if symmetric:
            model.C.copy_(to_torch(chol, dtype=dtype))
        else:
            model.U.D.copy_(to_torch(S[::-1], dtype=dtype))
            if M > 1:
                model.U.E.copy_(to_torch(U_sup[::-1], dtype=dtype))
        model.L.init_far_field(generator)
        if model.U is not None:
            model.U.init_far_field(generator)
    if start.far_field is not None and layout.has_far_field:
        F_L, F_U_reversed = start.far_field()
        _set_far_field(model.L, F_L, L_sub)
        if model.U is not None:
            _set_far_field(model.U, F_U_reversed, U_sup[::-1])
        notes.append(f"far field compressed from the exact block factors to rank "
                     f"{layout.rank} (nested bases)")
    return model, notes


def _set_far_field(block, F, E):
    """Far field of ``block`` compressed from ``F``; near field ``E`` less its overlap."""
    layout = block.layout
    p = compress_lower(F, layout.n_leaves, layout.block_size, layout.rank)
    block.set_far_field(p)
    with torch.no_grad():
        block.E.copy_(to_torch(E - p["E_far"], dtype=block.E.dtype, device=block.E.device))


def _block_cholesky(S):
    try:
        sym = 0.5 * (S + np.swapaxes(S, 1, 2))
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        return None
