"""Stage 3, scaling: the tree-ordered, padded matrix divided by the size of its entries.

The factors are learned for ``A' / s`` where ``A'`` is the pivoted matrix in
the tree numbering (identity on the padding slots) and ``s`` its mean
absolute diagonal (or a norm estimate), so that learning rates and
tolerances mean the same for every matrix; the operator divides by ``s``
again when it applies ``M``.
"""

import math

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .. import _blocks
from .._convert import randn, to_numpy, to_torch

__all__ = ["ScaledSystem"]


class ScaledSystem:
    """``A' / scale`` in the tree numbering: what every later stage works on.

    Parameters
    ----------
    A : csr_array, ndarray or LinearOperator
        The pivoted matrix ``A'`` (user numbering).
    tree : TreeOrdering
    generator : torch.Generator
        For the norm estimate when A has no positive diagonal.

    Attributes
    ----------
    tree : TreeOrdering
    size : int
        ``N = M P``, padding included.
    scale : float
    is_operator : bool
        A is a LinearOperator: only products are available.
    """

    def __init__(self, A, tree, generator):
        self.tree = tree
        self.size = tree.n_slots
        self.is_operator = isinstance(A, LinearOperator)
        if self.is_operator:
            def apply_raw(Z):
                return tree.to_slots(A @ tree.from_slots(Z)) + _padding_rows(tree, Z)

            def apply_raw_t(Z):
                return tree.to_slots(A.rmatvec(tree.from_slots(Z)) if Z.ndim == 1 else
                                     A.H @ tree.from_slots(Z)) + _padding_rows(tree, Z)
            self._Ap = None
        else:
            Ap = tree.permute_matrix(A)
            ApT = Ap.T.tocsr() if sp.issparse(Ap) else Ap.T

            def apply_raw(Z):
                return Ap @ Z

            def apply_raw_t(Z):
                return ApT @ Z
            self._Ap = Ap
        self._apply_raw, self._apply_raw_t = apply_raw, apply_raw_t
        self.scale = _scale_estimate(self._Ap, apply_raw, self.size, generator)
        if not self.scale > 0:
            raise ValueError("A is zero; there is nothing to precondition.")
        if not math.isfinite(self.scale):
            raise ValueError(
                "products with A overflow float64 (its entries are too large for "
                "A @ x to be finite); scale the system down, e.g. solve (c A) x = c b "
                "with c = 2.0**-64.")
        self._blocks = None

    # -- products ---------------------------------------------------------------
    def apply(self, Z):
        """``(A' / scale) Z`` for numpy ``Z`` (N,) or (N, k)."""
        return self._apply_raw(Z) / self.scale

    def apply_t(self, Z):
        """``(A' / scale)^T Z``."""
        return self._apply_raw_t(Z) / self.scale

    def torch_products(self, *, dtype, device):
        """``(Z -> A Z, Z -> A^T Z)`` on torch tensors, for training."""
        def apply_A(Z):
            return to_torch(self._apply_raw(to_numpy(Z)) / self.scale, dtype=dtype,
                            device=device)

        def apply_At(Z):
            return to_torch(self._apply_raw_t(to_numpy(Z)) / self.scale, dtype=dtype,
                            device=device)
        return apply_A, apply_At

    # -- entries ------------------------------------------------------------------
    def entries(self):
        """``A' / scale`` as a matrix (sparse or dense); not for a LinearOperator."""
        if self._Ap is None:
            raise TypeError("a LinearOperator has no entries")
        return self._Ap / self.scale

    def block_tridiagonal(self):
        """``(diag, sub, sup)`` leaf blocks of ``A' / scale`` (probed for an operator)."""
        if self._blocks is None:
            M, P = self.tree.n_leaves, self.tree.block_size
            if self.is_operator:
                blocks = _blocks.probe_block_tridiagonal(self._apply_raw, M, P)
            else:
                blocks = _blocks.block_tridiagonal(self._Ap, M, P)
            self._blocks = tuple(b / self.scale for b in blocks)
        return self._blocks


def _padding_rows(tree, Z):
    # The padded operator is the identity on padding slots.
    out = np.zeros_like(Z)
    pad = tree.slots < 0
    out[pad] = Z[pad]
    return out


def _scale_estimate(Ap, apply_raw, N, generator):
    """A scalar of the size of A's entries: the mean |diagonal| or a norm estimate."""
    # Both are taken relative to the largest entry first: a plain mean (or
    # norm) of entries near 1e307 overflows, and one near 1e-160 underflows.
    if Ap is not None:
        d = np.abs(Ap.diagonal())
        top = float(d.max(initial=0.0))
        if top > 0:
            return top * float(np.mean(d[d > 0] / top))
    z = randn(generator, N, 4)
    Az = apply_raw(z)
    top = float(np.max(np.abs(Az), initial=0.0))
    if not (top > 0 and math.isfinite(top)):
        return top
    return top * float(np.linalg.norm(Az / top) / np.linalg.norm(z))
