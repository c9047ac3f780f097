"""Classical preconditioners with the same ``fit -> LinearOperator`` surface.

Every class here is registered in :mod:`learned_precond._registry`; build one
with ``Name.fit(A, **options)`` (or ``get_preconditioner(name).fit(...)``)
and pass it to a Krylov solver as ``M``.

=========  ===========  ====================================================
name       class        M ~ A^-1
=========  ===========  ====================================================
``none``   Identity     ``I`` (the unpreconditioned reference)
``jacobi`` Jacobi       ``diag(A)^-1``
``ilu0``   ILU0         ``(L U)^-1``, true ILU(0): no fill outside A's pattern
``ilut``   ILUT         threshold ILU from SuperLU (``scipy spilu``)
``amg``    AMG          one pyamg V-cycle
``exact``  ExactLU      ``A^-1`` by sparse (SuperLU) or dense (LAPACK) LU
=========  ===========  ====================================================

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from scipy.sparse.linalg import gmres
>>> from learned_precond.baselines import ILU0
>>> T = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(30, 30))
>>> A = sp.kronsum(T, T, format="csr")
>>> M = ILU0.fit(A)
>>> b = A @ np.ones(A.shape[0])
>>> x, info = gmres(A, b, M=M, rtol=1e-10)
>>> bool(np.allclose(x, 1.0))
True
"""

import contextlib
import time
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _ilu_kernels as kernels
from ._base import Preconditioner, _format_bytes
from ._validation import as_matrix, check_structure, structure_problem
from .exceptions import PreconditionerSetupError, StructurallySingularError

__all__ = ["Identity", "Jacobi", "ILU0", "ILUT", "AMG", "ExactLU"]

# A pivot smaller than this times the largest |a_ij| of its row is treated as
# zero: its reciprocal would amplify rounding errors by more than 1/(1000 eps).
_PIVOT_RTOL = 1000 * np.finfo(np.float64).eps


def _as_float_matrix(A, *, allow_operator=False):
    """Validate ``A`` and return it in float64 (csr_array, ndarray or operator)."""
    A = as_matrix(A, allow_operator=allow_operator)
    if isinstance(A, spla.LinearOperator):
        return A
    return A.astype(np.float64, copy=False)


def _setup_error(message, A):
    """Return the error for a failed setup, saying so when A's structure is the cause.

    A structurally singular ``A`` (an empty row or column) is reported as a
    :class:`StructurallySingularError` (also a ``ValueError``) whose message
    adds the first empty row/column to the method's own message.
    """
    problem = structure_problem(A)
    if problem is None:
        return PreconditionerSetupError(message)
    return StructurallySingularError(f"{message} Cause: {problem}")


def _as_csr(A):
    """Return the validated float64 ``A`` as a canonical csr_array."""
    return A if sp.issparse(A) else sp.csr_array(A)


def _sparse_nbytes(*mats):
    """Return the bytes of the arrays behind sparse matrices and ndarrays (None skipped)."""
    total = 0
    for m in mats:
        if m is None:
            continue
        if sp.issparse(m):
            if m.format not in ("csr", "csc", "bsr"):
                m = m.tocsr()
            total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        else:
            total += np.asarray(m).nbytes
    return total


def _rows_text(rows, limit=5):
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    return shown + more


def _is_symmetric(A, *, rtol=1e-12):
    """Return whether csr_array ``A`` equals its transpose up to ``rtol * max|a_ij|``."""
    if A.nnz == 0:
        return True
    diff = (A - A.T).tocsr()
    if diff.nnz == 0:
        return True
    return bool(np.max(np.abs(diff.data)) <= rtol * np.max(np.abs(A.data)))


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


class _Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.start
        return False


class Identity(Preconditioner):
    """``M = I``: no preconditioning, the reference every method must beat.

    ``A`` is only used for its shape, so a ``LinearOperator`` is accepted.
    """

    name = "none"
    symmetric = True

    @classmethod
    def fit(cls, A):
        """Return the identity of ``A``'s size.

        Parameters
        ----------
        A : sparse array, ndarray or LinearOperator
            Square system matrix (only its shape is used).

        Returns
        -------
        Identity
        """
        with _Timer() as t:
            A = _as_float_matrix(A, allow_operator=True)
            self = cls(A.shape)
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        return X.copy()

    def _apply_adjoint(self, X):
        return X.copy()

    @property
    def nbytes(self):
        """Bytes held: nothing."""
        return 0


class Jacobi(Preconditioner):
    """``M = diag(A)^-1``, diagonal (point Jacobi) scaling.

    SPD for SPD ``A`` (whose diagonal is positive), so valid for CG/MINRES.
    """

    name = "jacobi"
    symmetric = True

    def __init__(self, inv_diag):
        super().__init__((inv_diag.size, inv_diag.size))
        self.inv_diag = inv_diag

    @classmethod
    def fit(cls, A):
        """Invert the diagonal of ``A``.

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix.

        Returns
        -------
        Jacobi

        Raises
        ------
        PreconditionerSetupError
            Some diagonal entries are zero.
        """
        with _Timer() as t:
            A = _as_float_matrix(A)
            d = np.asarray(A.diagonal(), dtype=np.float64)
            zero = np.flatnonzero(d == 0)
            if zero.size:
                raise _setup_error(
                    f"Jacobi needs a nonzero diagonal, but A[i, i] == 0 for "
                    f"{zero.size} row(s): {_rows_text(zero)}. Permute large entries "
                    f"onto the diagonal first (static pivoting, e.g. a maximum "
                    f"matching), or use 'ilut' or 'amg' instead.",
                    A,
                )
            self = cls(1.0 / d)
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        return X * self.inv_diag[:, None]

    def _apply_adjoint(self, X):
        return self._apply(X)

    @property
    def nbytes(self):
        """Bytes of the inverted diagonal."""
        return self.inv_diag.nbytes


class ILU0(Preconditioner):
    """Incomplete LU with zero fill-in: ``L U = A`` on the pattern of ``A``.

    The factors live on exactly ``A``'s sparsity pattern (``nnz(L) + nnz(U)
    = nnz(A) + N``). This is *not* ``scipy.sparse.linalg.spilu(A,
    fill_factor=1)``: spilu is a threshold ILU with column pivoting whose
    fill budget is spent on different entries, and it needs about three times
    as many GMRES iterations on the 2-D Poisson matrix. Factorization and the
    forward/back substitutions are compiled numba kernels
    (:mod:`learned_precond._ilu_kernels`).

    Attributes
    ----------
    indptr, indices : ndarray
        CSR structure of ``A`` (and of the factors).
    data : ndarray
        ``L`` (unit lower, diagonal not stored) strictly below the diagonal,
        ``U`` on and above it.
    diag : ndarray
        Position of the diagonal entry of each row in ``data``.
    inv_pivots : ndarray
        ``1 / u_ii``, so the back substitution multiplies instead of dividing.
    """

    name = "ilu0"

    def __init__(self, indptr, indices, data, diag):
        n = indptr.size - 1
        super().__init__((n, n))
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.diag = diag
        self.inv_pivots = 1.0 / data[diag]

    @classmethod
    def fit(cls, A):
        """Factor ``A`` by ILU(0).

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix; a dense array is factored on its nonzero pattern.

        Returns
        -------
        ILU0

        Raises
        ------
        PreconditionerSetupError
            A diagonal entry is missing from the pattern, or a pivot is zero or
            tiny (``|u_ii| <= 1000 eps max_j |a_ij|``) or not finite.
        """
        with _Timer() as t:
            A = _as_csr(_as_float_matrix(A))
            indptr = A.indptr.astype(np.int64)
            indices = A.indices.astype(np.int64)
            data = np.array(A.data, dtype=np.float64)
            diag = kernels.diagonal_positions(indptr, indices)
            missing = np.flatnonzero(diag < 0)
            if missing.size:
                raise _setup_error(
                    f"ILU(0) needs a nonzero diagonal, but A[i, i] is not stored for "
                    f"{missing.size} row(s): {_rows_text(missing)}. Try 'ilut', static "
                    f"pivoting (LearnedLU permutes large entries onto the diagonal) "
                    f"or 'amg'.",
                    A,
                )
            row_max = np.zeros(A.shape[0])
            np.maximum.at(row_max, np.repeat(np.arange(A.shape[0]), np.diff(indptr)), np.abs(data))
            bad = kernels.ilu0_factor(indptr, indices, data, diag, _PIVOT_RTOL * row_max)
            if bad >= 0:
                raise _setup_error(
                    f"ILU(0) broke down at row {bad}: pivot u[{bad}, {bad}] = "
                    f"{data[diag[bad]]:.3g} is zero or tiny relative to the row "
                    f"(ILU(0) needs nonzero pivots, which a nonzero diagonal in A "
                    f"does not guarantee). Try 'ilut', static pivoting (LearnedLU "
                    f"permutes large entries onto the diagonal) or 'amg'.",
                    A,
                )
            self = cls(indptr, indices, data, diag)
        self.setup_time = t.elapsed
        return self

    @property
    def L(self):
        """Unit lower factor as a csr_array (built on demand)."""
        n = self.shape[0]
        rows = np.repeat(np.arange(n), np.diff(self.indptr))
        lower = self.indices < rows
        L = sp.csr_array((self.data[lower], (rows[lower], self.indices[lower])), shape=(n, n))
        return (L + sp.eye_array(n, format="csr")).tocsr()

    @property
    def U(self):
        """Upper factor as a csr_array (built on demand)."""
        n = self.shape[0]
        rows = np.repeat(np.arange(n), np.diff(self.indptr))
        upper = self.indices >= rows
        return sp.csr_array((self.data[upper], (rows[upper], self.indices[upper])), shape=(n, n))

    def _apply(self, X):
        Y = np.array(X, dtype=np.float64, order="C")
        kernels.lower_unit_solve(self.indptr, self.indices, self.data, self.diag, Y)
        kernels.upper_solve(self.indptr, self.indices, self.data, self.diag, self.inv_pivots, Y)
        return Y

    def _apply_adjoint(self, X):
        # M^T = (L U)^-T = L^-T U^-T: solve with U^T first, then L^T.
        Y = np.array(X, dtype=np.float64, order="C")
        kernels.upper_transpose_solve(
            self.indptr, self.indices, self.data, self.diag, self.inv_pivots, Y
        )
        kernels.lower_unit_transpose_solve(self.indptr, self.indices, self.data, self.diag, Y)
        return Y

    @property
    def nbytes(self):
        """Bytes of the factor arrays (pattern, values, diagonal positions, 1/pivots)."""
        return sum(
            a.nbytes for a in (self.indptr, self.indices, self.data, self.diag, self.inv_pivots)
        )

    def __repr__(self):
        return (
            f"<ILU0 N={self.shape[0]}, nnz(L+U)={self.data.size}, "
            f"memory={_format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )


class ILUT(Preconditioner):
    """Threshold incomplete LU from SuperLU (``scipy.sparse.linalg.spilu``).

    Entries smaller than ``drop_tol`` (relative to their column) are dropped
    and the fill is limited to about ``fill_factor * nnz(A)`` entries; SuperLU
    also permutes columns (COLAMD) and pivots rows for stability.

    SuperLU's default ``drop_rule`` (``'basic,area'``) enforces the fill limit
    by dropping extra entries once the budget is reached, which can make a
    *smaller* ``drop_tol`` worse: on the 2-D Poisson matrix (n=64) GMRES(50)
    takes 45 iterations with ``drop_tol=1e-4`` and 31 with ``1e-3``, but 4
    with ``drop_tol=1e-4, drop_rule='basic'`` (at about 1.2x the memory).
    """

    name = "ilut"

    def __init__(self, ilu, *, drop_tol, fill_factor, drop_rule):
        super().__init__(ilu.shape)
        self.ilu = ilu
        self.drop_tol = drop_tol
        self.fill_factor = fill_factor
        self.drop_rule = drop_rule
        self._nbytes = _sparse_nbytes(ilu.L, ilu.U, ilu.perm_r, ilu.perm_c)
        self.nnz = int(ilu.nnz)

    @classmethod
    def fit(cls, A, *, drop_tol=1e-4, fill_factor=10.0, drop_rule=None):
        """Compute the threshold ILU of ``A``.

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix.
        drop_tol : float, optional
            Drop tolerance in ``[0, 1]``; ``0`` keeps everything (exact LU).
        fill_factor : float, optional
            Target bound on the fill ratio ``nnz(L + U) / nnz(A)``, ``>= 1``.
        drop_rule : str, optional
            SuperLU's comma-separated dropping rules (``'basic'``, ``'area'``,
            ``'secondary'``, ``'dynamic'``, ``'interp'``, ...); ``None`` uses
            SuperLU's default ``'basic,area'``.

        Returns
        -------
        ILUT

        Raises
        ------
        PreconditionerSetupError
            SuperLU found an exactly singular factor.
        """
        drop_tol = float(drop_tol)
        fill_factor = float(fill_factor)
        if not 0.0 <= drop_tol <= 1.0:
            raise ValueError(f"drop_tol must be in [0, 1], got {drop_tol}.")
        if not fill_factor >= 1.0:
            raise ValueError(f"fill_factor must be >= 1, got {fill_factor}.")
        with _Timer() as t:
            A = _as_csr(_as_float_matrix(A)).tocsc()
            try:
                ilu = spla.spilu(
                    A, drop_tol=drop_tol, fill_factor=fill_factor, drop_rule=drop_rule
                )
            except RuntimeError as err:
                reason = " ".join(str(err).split())
                raise _setup_error(
                    f"ILUT failed ({reason}): the incomplete factors of A are singular "
                    f"with drop_tol={drop_tol:g}, fill_factor={fill_factor:g}. Lower "
                    f"drop_tol or raise fill_factor, check A for empty rows/columns "
                    f"(a singular A has no useful ILU), "
                    f"or use 'amg'.",
                    A,
                ) from err
            self = cls(ilu, drop_tol=drop_tol, fill_factor=fill_factor, drop_rule=drop_rule)
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        return self.ilu.solve(X)

    def _apply_adjoint(self, X):
        return self.ilu.solve(X, trans="T")

    @property
    def nbytes(self):
        """Bytes of the L and U factors and the two permutations."""
        return self._nbytes

    def __repr__(self):
        return (
            f"<ILUT N={self.shape[0]}, drop_tol={self.drop_tol:g}, "
            f"fill_factor={self.fill_factor:g}, drop_rule={self.drop_rule!r}, "
            f"nnz(L+U)={self.nnz}, "
            f"memory={_format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )


_AMG_METHODS = ("auto", "sa", "nsa", "rs", "air")


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

    def __init__(self, ml, *, method, cycle, has_adjoint):
        super().__init__(ml.levels[0].A.shape)
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
                _sparse_nbytes(
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
            Square system matrix.
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
        with _Timer() as t:
            A = _as_csr(_as_float_matrix(A))
            # pyamg builds a hierarchy for a singular A without complaint (its
            # coarse pseudo-inverse hides the null space); refuse it here.
            check_structure(A)
            zero = np.flatnonzero(A.diagonal() == 0)
            if zero.size:
                # Every pyamg smoother (Jacobi, Gauss-Seidel) and the SA prolongation
                # smoother divide by diag(A): the hierarchy would be NaN.
                raise PreconditionerSetupError(
                    f"AMG needs a nonzero diagonal (its smoothers divide by it), but "
                    f"A[i, i] == 0 for {zero.size} row(s): {_rows_text(zero)}. Apply static "
                    f"pivoting first (learned_precond.pivoting.pivoted('amg', A)) or use "
                    f"'ilut'."
                )
            symmetric = _is_symmetric(A)
            if method == "auto":
                method = "sa" if symmetric else "nsa"
            A_in = sp.csr_matrix(A)  # pyamg's setup is written for the matrix classes
            opts = {"max_levels": max_levels, "max_coarse": max_coarse}
            try:
                with warnings.catch_warnings(), _seeded_global_rng(seed):
                    # pyamg warns about implicit format conversions; not the user's problem
                    warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)
                    if method == "sa":
                        ml = pyamg.smoothed_aggregation_solver(A_in, **opts)
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
            self = cls(
                ml, method=method, cycle=cycle, has_adjoint=(method in ("sa", "rs") and symmetric)
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
            f"memory={_format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )


class ExactLU(Preconditioner):
    """``M = A^-1`` through a complete LU factorization.

    Sparse ``A`` is factored by SuperLU (``splu``, fill-reducing column
    ordering ``permc_spec``), dense ``A`` by LAPACK ``getrf``. GMRES with it
    converges in one or two iterations: the lower bound every preconditioner
    is measured against, at the cost of the fill-in.
    """

    name = "exact"
    symmetric = True

    def __init__(self, lu, n, *, sparse):
        super().__init__((n, n))
        self.lu = lu
        self.sparse = sparse
        if sparse:
            self._nbytes = _sparse_nbytes(lu.L, lu.U, lu.perm_r, lu.perm_c)
            self.nnz = int(lu.nnz)
        else:
            self._nbytes = lu[0].nbytes + lu[1].nbytes
            self.nnz = n * n

    @classmethod
    def fit(cls, A, *, permc_spec="COLAMD"):
        """Factor ``A`` exactly.

        Parameters
        ----------
        A : sparse array or ndarray
            Square system matrix.
        permc_spec : {'COLAMD', 'NATURAL', 'MMD_ATA', 'MMD_AT_PLUS_A'}, optional
            Column ordering for the sparse factorization (ignored for dense ``A``).

        Returns
        -------
        ExactLU

        Raises
        ------
        PreconditionerSetupError
            ``A`` is exactly singular.
        """
        with _Timer() as t:
            A = _as_float_matrix(A)
            n = A.shape[0]
            if sp.issparse(A):
                try:
                    lu = spla.splu(A.tocsc(), permc_spec=permc_spec)
                except RuntimeError as err:
                    reason = " ".join(str(err).split())
                    raise _setup_error(
                        f"A is singular ({reason}); it has no inverse to apply. Check for "
                        f"empty or repeated rows/columns, or remove the null space "
                        f"(e.g. fix one value of a pure Neumann problem).",
                        A,
                    ) from err
                self = cls(lu, n, sparse=True)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                    lu, piv = scipy.linalg.lu_factor(A)
                zero = np.flatnonzero(np.diag(lu) == 0)
                if zero.size:
                    raise _setup_error(
                        f"A is singular: U[i, i] == 0 at position(s) {_rows_text(zero)} "
                        f"of its LU factorization; it has no inverse to apply. Remove "
                        f"the null space or regularize A.",
                        A,
                    )
                self = cls((lu, piv), n, sparse=False)
        self.setup_time = t.elapsed
        return self

    def _apply(self, X):
        if self.sparse:
            return self.lu.solve(X)
        return scipy.linalg.lu_solve(self.lu, X, check_finite=False)

    def _apply_adjoint(self, X):
        if self.sparse:
            return self.lu.solve(X, trans="T")
        return scipy.linalg.lu_solve(self.lu, X, trans=1, check_finite=False)

    @property
    def nbytes(self):
        """Bytes of the factors and permutations."""
        return self._nbytes

    def __repr__(self):
        kind = "sparse SuperLU" if self.sparse else "dense LAPACK"
        return (
            f"<ExactLU {kind}, N={self.shape[0]}, nnz(L+U)={self.nnz}, "
            f"memory={_format_bytes(self.nbytes)}, setup={self.setup_time:.3g} s>"
        )
