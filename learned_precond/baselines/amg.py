"""One pyamg algebraic multigrid cycle per application (registry name ``'amg'``)."""

import contextlib
import warnings

import numpy as np
import scipy.sparse as sp

from .._base import Preconditioner
from .._format import format_bytes, format_indices
from .._structure import is_symmetric, sparse_nbytes
from .._validation import check_structure
from ..exceptions import PreconditionerSetupError
from ._setup import Timer, as_float_csr

__all__ = ["AMG"]


@contextlib.contextmanager
def _seeded_global_rng(seed):
    """Seed numpy's global RNG for the block, then restore the caller's state.

    pyamg draws the start vectors of its spectral radius estimates from
    ``np.random``; seeding it makes a fit reproducible without changing the
    random stream the caller sees.
    """
    state = np.random.get_state()  # noqa: NPY002 - pyamg reads the legacy global RNG
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


_AMG_METHODS = ("auto", "sa", "nsa", "rs", "air")


def _is_hermitian(A, rtol=1e-12):
    """``A == A^H`` up to ``rtol * max |a_ij|`` (sparse complex ``A``)."""
    scale = float(abs(A).max()) if A.nnz else 0.0
    diff = A - A.conj().T
    return (float(abs(diff).max()) if diff.nnz else 0.0) <= rtol * scale


class AMG(Preconditioner):
    """One algebraic multigrid V-cycle (pyamg) per application.

    ``method='auto'`` picks smoothed aggregation (``'sa'``) for symmetric
    ``A`` and nonsymmetric smoothed aggregation (``'nsa'``, pyamg's
    ``symmetry='nonsymmetric'``) otherwise. On upwind convection-diffusion
    (n=64..128, diffusion 1e-1..1e-3, random right-hand side) GMRES(50)
    needed 5-8 iterations with ``'nsa'``, 4-12 with ``'air'`` (which is
    weakest when diffusion dominates), and up to 21 with the symmetric
    ``'sa'``, so ``'nsa'`` is the robust default.

    The cycle is a symmetric operator (so ``rmatvec`` is available, and CG
    and MINRES may be used) only for ``'sa'`` and ``'rs'`` on symmetric
    ``A``: restriction is ``P^T`` and the pre- and post-smoothers are
    symmetric Gauss-Seidel sweeps. The instance attributes ``has_adjoint``
    and ``symmetric`` say whether that holds for the fitted hierarchy.
    """

    name = "amg"
    symmetric = True
    supports_complex = True

    def __init__(self, ml, *, method, cycle, has_adjoint):
        super().__init__(ml.levels[0].A.shape, dtype=ml.levels[0].A.dtype)
        self.ml = ml
        self.method = method
        self.cycle = cycle
        self.has_adjoint = has_adjoint
        self.symmetric = has_adjoint  # M = M^T exactly when the cycle is symmetric
        self._precond = ml.aspreconditioner(cycle=cycle)
        coarse = ml.levels[-1].A.shape[0]
        # pyamg's default 'pinv' coarse solver stores a dense pseudo-inverse.
        self._nbytes = (
            sum(
                sparse_nbytes(
                    getattr(lvl, "A", None), getattr(lvl, "P", None), getattr(lvl, "R", None)
                )
                for lvl in ml.levels
            )
            + coarse * coarse * 8
        )

    @classmethod
    def fit(cls, A, *, method="auto", cycle="V", max_levels=10, max_coarse=10, seed=0):
        """Build a pyamg hierarchy for ``A``.

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix, real or complex (complex: ``sa`` or ``nsa`` only).
        method : {'auto', 'sa', 'nsa', 'rs', 'air'}, optional
            ``'sa'`` smoothed aggregation, ``'nsa'`` nonsymmetric smoothed
            aggregation, ``'rs'`` classical Ruge-Stuben, ``'air'`` approximate
            ideal restriction; ``'auto'`` is ``'sa'`` for symmetric ``A`` and
            ``'nsa'`` otherwise.
        cycle : {'V', 'W', 'F'}, optional
            Multigrid cycle applied once per preconditioner application.
        max_levels : int, optional
            Maximum number of levels.
        max_coarse : int, optional
            Coarsening stops at this many unknowns (solved with a pseudo-inverse).
        seed : int, optional
            Seed for pyamg's random start vectors (spectral radius estimates),
            so that a fit is reproducible.

        Returns
        -------
        AMG

        Raises
        ------
        StructurallySingularError
            ``A`` has an empty row or column.
        PreconditionerSetupError
            A zero diagonal entry (the smoothers divide by it), or pyamg could
            not build a finite hierarchy.
        """
        import pyamg

        if method not in _AMG_METHODS:
            raise ValueError(f"unknown AMG method {method!r}; choose from {_AMG_METHODS}.")
        if cycle not in ("V", "W", "F"):
            raise ValueError(f"cycle must be 'V', 'W' or 'F', got {cycle!r}.")
        with Timer() as t:
            A = as_float_csr(A, allow_complex=True)
            complex_A = np.iscomplexobj(A)
            if complex_A and method in ("rs", "air"):
                raise NotImplementedError(
                    f"AMG method {method!r} is for real matrices; for complex A use "
                    f"method='sa' or 'nsa' (smoothed aggregation, complex arithmetic)."
                )
            # pyamg builds a hierarchy for a singular A without complaint (its
            # coarse pseudo-inverse hides the null space); refuse it here.
            check_structure(A)
            zero = np.flatnonzero(A.diagonal() == 0)
            if zero.size:
                # Every pyamg smoother (Jacobi, Gauss-Seidel) and the SA prolongation
                # smoother divide by diag(A): the hierarchy would be NaN.
                raise PreconditionerSetupError(
                    f"AMG needs a nonzero diagonal (its smoothers divide by it), but "
                    f"A[i, i] == 0 for {zero.size} row(s): {format_indices(zero)}. Apply static "
                    f"pivoting first (learned_precond.pivoting.pivoted('amg', A)) or use "
                    f"'ilut'."
                )
            symmetric = is_symmetric(A)
            # Complex A: 'sa' for A = A^T needs pyamg's 'symmetric' (complex
            # symmetric) mode unless A is Hermitian, pyamg's default there.
            hermitian = symmetric if not complex_A else _is_hermitian(A)
            if method == "auto":
                method = "sa" if symmetric else "nsa"
            A_in = sp.csr_matrix(A)  # pyamg's setup is written for the matrix classes
            opts = {"max_levels": max_levels, "max_coarse": max_coarse}
            try:
                with warnings.catch_warnings(), _seeded_global_rng(seed):
                    # pyamg warns about implicit format conversions; not the user's problem
                    warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)
                    if method == "sa":
                        sym = "hermitian" if hermitian or not complex_A else "symmetric"
                        ml = pyamg.smoothed_aggregation_solver(A_in, symmetry=sym, **opts)
                    elif method == "nsa":
                        ml = pyamg.smoothed_aggregation_solver(
                            A_in, symmetry="nonsymmetric", **opts
                        )
                    elif method == "rs":
                        ml = pyamg.ruge_stuben_solver(A_in, **opts)
                    else:
                        ml = pyamg.air_solver(A_in, **opts)
            except (ValueError, RuntimeError, ZeroDivisionError, np.linalg.LinAlgError) as err:
                raise PreconditionerSetupError(
                    f"pyamg could not build a {method!r} hierarchy for A ({err}). "
                    f"Try another method ('sa', 'nsa', 'rs', 'air'), or 'ilut'."
                ) from err
            # M^H = M for the symmetric cycle of a real symmetric or Hermitian A.
            self = cls(
                ml, method=method, cycle=cycle, has_adjoint=(method in ("sa", "rs") and hermitian)
            )
            # One cycle now builds the lazily computed coarse pseudo-inverse, so
            # that setup cost lands in setup_time and never in the first apply.
            # It also catches a hierarchy that is not finite (tiny diagonals).
            try:
                with np.errstate(all="ignore"):
                    probe = self._precond.matvec(np.ones(self.shape[0]))
                finite = bool(np.all(np.isfinite(probe)))
            except (ValueError, np.linalg.LinAlgError):  # pinv of a non-finite coarse A
                finite = False
            if not finite:
                raise PreconditionerSetupError(
                    f"pyamg's {method!r} V-cycle for A produces non-finite values (a "
                    f"diagonal entry of A, or of a coarse level, is tiny). Try static "
                    f"pivoting (learned_precond.pivoting.pivoted('amg', A)), another "
                    f"method ('sa', 'nsa', 'rs', 'air'), or 'ilut'."
                )
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        # pyamg's cycle (its smoothers are compiled for one vector) takes one
        # right-hand side at a time: k columns cost k cycles.
        out = np.empty_like(X)
        for c in range(X.shape[1]):
            out[:, c] = self._precond.matvec(X[:, c])
        return out

    def _apply_adjoint(self, X):
        if not self.has_adjoint:
            return super()._apply_adjoint(X)
        return self._apply(X)  # symmetric V-cycle: M^T = M

    @property
    def nbytes(self):
        """Bytes of A, P, R on every level plus the dense coarse pseudo-inverse."""
        return self._nbytes

    @property
    def operator_complexity(self):
        """Total nonzeros of all level matrices divided by ``nnz(A)``."""
        return float(self.ml.operator_complexity())

    def __repr__(self):
        sizes = "/".join(str(lvl.A.shape[0]) for lvl in self.ml.levels)
        return (
            f"<AMG method={self.method!r}, cycle={self.cycle!r}, "
            f"levels={len(self.ml.levels)} ({sizes}), "
            f"operator complexity={self.operator_complexity:.2f}, "
            f"memory={format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )
