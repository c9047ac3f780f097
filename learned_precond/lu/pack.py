"""Stage 6, packing: the fitted factors as numpy arrays, packed for the compiled apply.

:class:`LUFactors` is what a fit produces and what a saved file holds: the
GFMM parameters of ``L`` (unit block lower) and of ``U`` (block upper), or,
for the symmetric factorization ``U = S L^T``, the SPD diagonal blocks ``S``,
named as :meth:`learned_precond.gfmm.GFMMBlock.parameter_shapes` names them.
:class:`PackedFactors` inverts ``U``'s diagonal blocks once and lays both
factors out for the numba substitution (``learned_precond._substitution``),
in float64 or float32 (``factor_dtype``).
"""

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .._convert import to_numpy
from .._substitution import PackedBlockDiagonal, pack_lower, solve_lower
from ..gfmm import GFMMBlock, full_params, transpose_params

__all__ = ["FACTOR_DTYPES", "LUFactors", "PackedFactors", "auto_factor_dtype",
           "invert_blocks", "spd_root"]

#: Storage precisions of the packed factors.
FACTOR_DTYPES = ("float64", "float32")
#: ``factor_dtype='auto'`` stores factors in float32 from this many unknowns on...
FLOAT32_MIN_N = 16384
#: ...when no diagonal block's condition number exceeds this.
FLOAT32_MAX_COND = 1e4
#: Diagonal blocks of U with a larger condition number are regularized.
MAX_BLOCK_COND = 1e10


@dataclass(frozen=True, eq=False)
class LUFactors:
    """The fitted factors ``L U ~ A' / scale`` in the tree numbering, as numpy arrays.

    Attributes
    ----------
    layout : GFMMLayout
    symmetric : bool
        ``U = S L^T`` with SPD ``S`` (then ``U`` is None), else ``U`` is a
        general block upper GFMM factor (then ``S`` is None).
    L : dict of ndarray
        Stored parameters of ``L`` (unit diagonal: no ``D``).
    U : dict of ndarray or None
        Stored parameters of ``U`` (a lower block in reversed leaf order).
    S : ndarray (M, P, P) or None
        Diagonal blocks of ``U = S L^T``.
    """

    layout: object
    symmetric: bool
    L: dict
    U: dict | None = None
    S: np.ndarray | None = None

    # -- names and shapes ---------------------------------------------------------
    @staticmethod
    def shapes(layout, symmetric):
        """``{'L/E': shape, ..., 'U/D': ... or 'S': ...}``: every array of the factors."""
        out = {f"L/{k}": v for k, v in
               GFMMBlock.parameter_shapes(layout, "lower", unit_diagonal=True).items()}
        if symmetric:
            out["S"] = (layout.n_leaves, layout.block_size, layout.block_size)
        else:
            out.update({f"U/{k}": v for k, v in
                        GFMMBlock.parameter_shapes(layout, "upper").items()})
        return out

    def arrays(self):
        """The flat ``{name: array}`` of :meth:`shapes` (for saving)."""
        out = {f"L/{k}": v for k, v in self.L.items()}
        if self.symmetric:
            out["S"] = self.S
        else:
            out.update({f"U/{k}": v for k, v in self.U.items()})
        return out

    @classmethod
    def from_arrays(cls, layout, symmetric, arrays):
        """Inverse of :meth:`arrays` (names and shapes as :meth:`shapes`, checked by caller)."""
        L = {k[2:]: v for k, v in arrays.items() if k.startswith("L/")}
        if symmetric:
            return cls(layout, True, L, S=arrays["S"])
        U = {k[2:]: v for k, v in arrays.items() if k.startswith("U/")}
        return cls(layout, False, L, U=U)

    # -- from and to the torch model ------------------------------------------------------
    @classmethod
    def from_model(cls, model):
        """The factors of a :class:`~learned_precond.lu.train.LUModel`, in float64.

        The inverse is :meth:`LUModel.from_factors <learned_precond.lu.train.LUModel.
        from_factors>`.
        """
        with torch.no_grad():
            L = to_numpy(model.L.stored())
            if model.symmetric:
                return cls(model.layout, True, L, S=to_numpy(model.diagonal_blocks()))
            return cls(model.layout, False, L, U=to_numpy(model.U.stored()))

    # -- views ----------------------------------------------------------------------------
    def diagonal_blocks(self):
        """Diagonal blocks of ``U`` in leaf order, (M, P, P)."""
        return self.S if self.symmetric else np.ascontiguousarray(self.U["D"][::-1])

    def lower_params(self):
        """``L``'s full-length parameter dict (as ``GFMMBlock.params``)."""
        return full_params(self.L, "lower")

    def upper_params(self):
        """``U``'s full-length parameter dict (a lower block in reversed leaf order)."""
        return full_params(self.U, "upper")

    @property
    def n_parameters(self):
        """Number of scalars."""
        return int(sum(v.size for v in self.arrays().values()))


class PackedFactors:
    """``U^-1 L^-1`` ready for the compiled substitution.

    Parameters
    ----------
    factors : LUFactors
    factor_dtype : {'float64', 'float32'}
        Storage precision (the kernel accumulates in double either way).
    check : bool
        Regularize numerically singular diagonal blocks of ``U`` (and say so
        in ``notes``); False (inside training) inverts them as they are.

    Attributes
    ----------
    packs : dict
        ``'L'``, ``'U'`` (``PackedLower``), ``'S_inv'`` for ``U = S L^T``, and
        once an adjoint was applied ``'Ut'``, ``'Lt'``.
    notes : list of str
    """

    def __init__(self, factors, *, factor_dtype="float64", check=True):
        self.factors = factors
        self.factor_dtype = factor_dtype
        self._lock = threading.Lock()
        M, P = factors.layout.n_leaves, factors.layout.block_size
        S = factors.diagonal_blocks()
        S_inv, self.notes = invert_blocks(S) if check else (np.linalg.inv(S), [])
        pL = factors.lower_params()
        packs = {"L": pack_lower(pL, M, P)}
        if factors.symmetric:
            # U = S L^T, so U^-1 = L^-T S^-1 with L^T = rev . lower(T pL) . rev
            # (unit diagonal): a block diagonal product, then a unit solve. An
            # apply reads S^-1 once and L's sparse near field twice (folding S
            # into L^T's rows instead would make its near field dense).
            packs["S_inv"] = PackedBlockDiagonal(S_inv)
            packs["U"] = pack_lower(transpose_params(pL), M, P)
        else:
            # U is stored as a lower block in reversed leaf order.
            packs["U"] = pack_lower(factors.upper_params(), M, P, Dinv=S_inv[::-1].copy())
        if factor_dtype != "float64":
            for pk in packs.values():
                pk.astype(factor_dtype)
        self.packs = packs

    def solve(self, Y):
        """``U^-1 L^-1 Y`` for ``Y`` (M, P, k) in slot numbering.

        ``U`` is packed as a lower block in reversed leaf order; for ``U = S L^T``
        the pack is ``L^T`` alone and ``S^-1`` is applied first.
        """
        packs = self.packs
        Y = solve_lower(packs["L"], Y)
        if "S_inv" in packs:
            Y = packs["S_inv"].apply(Y)
        return solve_lower(packs["U"], Y, reverse=True)

    def solve_adjoint(self, Y):
        """``L^-T U^-T Y`` (``= solve`` for ``U = S L^T``)."""
        if self.factors.symmetric:
            return self.solve(Y)
        Ut, Lt = self._transposed()
        # M'^T = L^-T U^-T; U^T = lower(T pU), L^T = rev . lower(T pL) . rev.
        Y = solve_lower(Ut, Y)
        return solve_lower(Lt, Y, reverse=True)

    def _transposed(self):
        # Built on first use (rmatvec is rare); the lock keeps concurrent callers
        # from packing twice, and the packs are never mutated afterwards.
        with self._lock:
            if "Ut" not in self.packs:
                f = self.factors
                M, P = f.layout.n_leaves, f.layout.block_size
                S_inv, _ = invert_blocks(f.diagonal_blocks())
                Ut = pack_lower(transpose_params(f.upper_params()), M, P,
                                Dinv=np.ascontiguousarray(np.swapaxes(S_inv, 1, 2)))
                Lt = pack_lower(transpose_params(f.lower_params()), M, P)
                for pk in (Ut, Lt):
                    pk.astype(self.factor_dtype)
                self.packs["Lt"] = Lt
                self.packs["Ut"] = Ut
        return self.packs["Ut"], self.packs["Lt"]

    @property
    def nbytes(self):
        """Bytes held by the packed arrays."""
        return int(sum(pk.nbytes for pk in list(self.packs.values())))


def auto_factor_dtype(factors):
    """``'float32'`` when single precision storage cannot matter, else ``'float64'``.

    Single precision halves the memory traffic of an apply (which is bound by
    it for large N) and perturbs M by about ``1e-7 * cond`` of the diagonal
    blocks relative; it is used from ``FLOAT32_MIN_N`` unknowns on, when every
    diagonal block has condition number at most ``FLOAT32_MAX_COND``.
    """
    if factors.layout.size < FLOAT32_MIN_N:
        return "float64"
    conds = np.linalg.cond(factors.diagonal_blocks())
    if not np.all(np.isfinite(conds)) or conds.max() > FLOAT32_MAX_COND:
        return "float64"
    return "float32"


def invert_blocks(S):
    """Inverses of the diagonal blocks, regularizing numerically singular ones.

    Returns ``(S_inv, notes)``.
    """
    notes = []
    conds = np.linalg.cond(S)
    bad = ~np.isfinite(conds) | (conds > MAX_BLOCK_COND)
    if np.any(bad):
        S = S.copy()
        for i in np.flatnonzero(bad):
            norm = np.linalg.norm(S[i], 2)
            norm = norm if norm > 0 else 1.0
            S[i] = S[i] + norm * math.sqrt(1.0 / MAX_BLOCK_COND) * np.eye(S.shape[1])
        notes.append(f"{int(bad.sum())} diagonal block(s) of U were numerically singular "
                     f"and were shifted to condition <= ~{MAX_BLOCK_COND:.0e}")
    return np.linalg.inv(S), notes


def spd_root(S):
    """A square root ``C`` of SPD blocks, ``S = C C^T`` (Cholesky; else clipped eigenvalues)."""
    sym = 0.5 * (S + np.swapaxes(S, 1, 2))
    try:
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        w, Q = np.linalg.eigh(sym)
        floor = np.finfo(np.float64).eps * np.maximum(np.abs(w).max(axis=1, keepdims=True),
                                                     np.finfo(np.float64).tiny)
        return Q * np.sqrt(np.maximum(w, floor))[:, None, :]
