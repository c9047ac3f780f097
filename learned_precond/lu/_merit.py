"""The figure of merit that chooses the start and keeps the best trained factors.

GMRES iterations on a few fixed right-hand sides with the factors packed as
the fitted operator would pack them: exactly what a Krylov user feels.
"""

import math
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, gmres

from .._convert import randn, to_numpy, to_torch
from .pack import LUFactors, PackedFactors, auto_factor_dtype

__all__ = ["GmresMerit", "fast_solve"]


class GmresMerit:
    """``model -> float``: GMRES(restart) iterations to ``rtol``, summed over right-hand sides.

    The fractional part (final residual over target, < 1 when converged)
    breaks ties; an unconverged run scores ``cap`` plus the number of
    decades still missing. The factors are packed as the fitted operator
    would pack them (float32 from N = 16384 when that is safe): the
    evaluations are most of a large fit's time.

    Parameters
    ----------
    system : ScaledSystem
    generator : torch.Generator
        Draws the right-hand sides (once, here).

    Attributes
    ----------
    seconds : float
        The longest time one evaluation took.
    pack_seconds : float
        The longest time packing the factors took in one evaluation.
    last_work : float
        Bytes one iteration of the last evaluated factors reads: the packed
        factors, A's entries (12 bytes each; 0 for an operator, the same for
        every candidate) and six vectors. ``merit * last_work`` is the
        expected cost of a solve (:func:`solve_cost`).
    """

    def __init__(self, system, generator, *, rtol=1e-8, restart=50, cap=200):
        self.system = system
        self.rhs = _merit_rhs(system.apply, system.size, generator)
        self.rtol, self.restart, self.cap = rtol, restart, cap
        self.seconds = self.pack_seconds = 0.0
        self.last_work = math.nan

    def __call__(self, model):
        t0 = time.perf_counter()
        try:
            return self._evaluate(model, t0)
        finally:
            self.seconds = max(self.seconds, time.perf_counter() - t0)

    def _evaluate(self, model, t0):
        factors = LUFactors.from_model(model)
        try:
            packed = PackedFactors(factors, factor_dtype=auto_factor_dtype(factors),
                                   check=False)
        except np.linalg.LinAlgError:
            return math.inf
        self.pack_seconds = max(self.pack_seconds, time.perf_counter() - t0)
        M, P = factors.layout.n_leaves, factors.layout.block_size
        N = M * P
        Ap = getattr(self.system, "_Ap", None)
        a_bytes = 12 * Ap.nnz if sp.issparse(Ap) else (0 if Ap is None else 8 * N * N)
        self.last_work = float(packed.nbytes + a_bytes + 48 * N)
        apply_A = self.system.apply

        def m_apply(v):
            return packed.solve(v.reshape(M, P, -1)).reshape(v.shape)

        Mop = LinearOperator((N, N), matvec=m_apply, dtype=np.float64)
        Aop = LinearOperator((N, N), matvec=apply_A, dtype=np.float64)
        rtol, restart, cap = self.rtol, self.restart, self.cap
        total = 0.0
        for b in self.rhs.T:
            count = [0]

            def callback(_, count=count):
                count[0] += 1

            with np.errstate(all="ignore"):
                x, _ = gmres(Aop, b, M=Mop, restart=restart, maxiter=-(-cap // restart),
                             rtol=rtol, atol=0.0, callback=callback,
                             callback_type="pr_norm")
                res = np.linalg.norm(b - apply_A(x)) / np.linalg.norm(b)
            if not np.isfinite(res):
                return math.inf
            if res <= rtol:
                total += count[0] + res / rtol
            else:
                total += max(count[0], cap) + math.log10(res / rtol)
        return total


def _merit_rhs(apply_slots, N, generator, sweeps=10):
    """Rough, smooth and constant-solution right-hand sides for the figure of merit.

    The smooth one is ``A x`` for ``x`` a Gaussian vector after ``sweeps``
    Richardson steps ``x <- x - A x / ||A||`` (``||A||`` by power iteration):
    they damp the components of large eigenvalue and keep the smooth ones,
    which a Krylov method resolves last. Needs only products with A.
    """
    z = randn(generator, N, 2)
    x = z[:, 1].copy()
    v = z[:, 0].copy()
    for _ in range(10):
        v = apply_slots(v)
        v /= np.linalg.norm(v)
    lam = np.linalg.norm(apply_slots(v))
    for _ in range(sweeps):
        x = x - (apply_slots(x) / lam)
    rough = z[:, 0]
    # The constant solution, the classical test right-hand side: a
    # preconditioner that is poor on it is poor in practice.
    ones = apply_slots(np.ones(N))
    return np.column_stack([rough, apply_slots(x), ones])


def fast_solve(model, W):
    """``U^-1 L^-1 W`` for a torch ``W`` (N, k), through the compiled kernel."""
    factors = LUFactors.from_model(model)
    M, P = factors.layout.n_leaves, factors.layout.block_size
    packed = PackedFactors(factors, check=False)
    Z = packed.solve(to_numpy(W).reshape(M, P, -1)).reshape(W.shape)
    return to_torch(Z, dtype=W.dtype, device=W.device)
