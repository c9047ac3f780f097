r"""Static pivoting and scaling: put large entries on the diagonal before factoring.

Incomplete and learned LU factorizations work on the diagonal blocks of
``A`` and break down (or produce useless factors) when the diagonal is zero
or tiny, as in KKT systems (``tumorAntiAngiogenesis_2``: 122 zero diagonal
entries) and chemical process models (``west0479``: 471 of 479). The cure is
the one sparse direct solvers use: before factoring, permute the rows and
scale rows and columns once,

.. math:: A' = D_r P A D_c,

and factor ``A'`` instead. If ``M' ~ A'^-1`` then

.. math:: M = D_c M' D_r P \approx D_c A'^{-1} D_r P = A^{-1},

since ``A^-1 = D_c A'^-1 D_r P``. The transpose is ``M^T = P^T D_r M'^T D_c``.

Methods
-------
``'mc64'``
    Maximum product matching, the "job 5" of HSL MC64 (Duff and Koster,
    SIAM J. Matrix Anal. Appl. 22(4), 2001), rebuilt on scipy: the row
    permutation maximizes ``prod_i |a'_ii|``, and the scaling comes from the
    dual variables of that assignment problem, so that ``|a'_ii| = 1`` and
    every ``|a'_ij| <= 1``. See :func:`static_pivoting` for the derivation.
``'scale'``
    Ruiz equilibration (no permutation): rows and columns scaled until the
    largest entry of each is about 1. Symmetric ``A`` stays symmetric.
``'none'``
    The identity transformation.
``'auto'``
    ``'mc64'`` when :func:`needs_pivoting` says the diagonal is zero or weak,
    else ``'none'``.

Examples
--------
>>> import numpy as np
>>> from learned_precond import problems, get_preconditioner
>>> from learned_precond.pivoting import needs_pivoting, static_pivoting, pivoted
>>> from learned_precond.krylov import solve
>>> A = problems.get("west0479")            # 471 of 479 diagonal entries are zero
>>> needs_pivoting(A)[0]
True
>>> piv = static_pivoting(A)
>>> bool(np.allclose(np.abs(piv.apply(A).diagonal()), 1.0))   # |a'_ii| = 1
True
>>> float(abs(piv.apply(A)).max()) <= 1 + 1e-12                # |a'_ij| <= 1
True
>>> M = pivoted("ilu0", A)                  # ILU(0) of A', applied to the original A
>>> result = solve(A, A @ np.ones(479), M, rtol=1e-8, maxiter=2000)
>>> result.converged
True
"""

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from ._base import Preconditioner
from ._equilibration import mc64, ruiz_scaling
from ._format import format_bytes
from ._validation import as_matrix, check_structure, dense_abs_maxima, diagonal_report

__all__ = [
    "PIVOTING_METHODS",
    "StaticPivoting",
    "PivotedPreconditioner",
    "needs_pivoting",
    "pivoted",
    "static_pivoting",
]

#: Values accepted by ``method=`` of :func:`static_pivoting`.
PIVOTING_METHODS = ("auto", "mc64", "scale", "none")

#: A nonzero diagonal entry is weak when ``|a_ii| < WEAK_RTOL * max_j |a_ij|``.
WEAK_RTOL = 1e-3
#: ``'auto'`` pivots when more than this fraction of the rows have a weak diagonal.
WEAK_FRACTION = 0.01
#: ``'auto'`` also pivots (MC64 scales to a unit diagonal) when the largest row
#: or column maximum is more than this many times the smallest: badly scaled rows
#: or columns (1e-150..1e150) that leave the diagonal strong relative to its row.
SCALE_SPREAD = 1e8


@dataclass(frozen=True, eq=False)
class StaticPivoting:
    r"""A row permutation and row/column scaling: ``A' = D_r P A D_c``.

    Build one with :func:`static_pivoting`. Row ``i`` of ``A'`` is row
    ``row_perm[i]`` of ``A``, multiplied by ``row_scale[i]``; column ``j`` is
    multiplied by ``col_scale[j]``. With ``M' ~ A'^-1`` (fitted on
    :meth:`apply`\\ ``(A)``), ``M = D_c M' D_r P ~ A^-1``:
    ``M x = from_prime(M' to_prime(x))``.

    Attributes
    ----------
    row_perm : ndarray of int64, shape (N,)
        New row ``i`` is old row ``row_perm[i]``.
    row_scale, col_scale : ndarray of float64, shape (N,)
        Positive diagonals of ``D_r`` and ``D_c``.
    method : str
        ``'mc64'``, ``'scale'`` or ``'none'``: what was applied.
    reason : str
        Why this method was chosen (for ``method='auto'``) or that it was requested.
    """

    row_perm: np.ndarray
    row_scale: np.ndarray
    col_scale: np.ndarray
    method: str = "none"
    reason: str = field(default="requested")

    def __post_init__(self):
        perm = np.asarray(self.row_perm)
        n = perm.shape[0] if perm.ndim == 1 else -1
        if perm.ndim != 1 or not np.issubdtype(perm.dtype, np.integer):
            raise ValueError("row_perm must be a 1-D integer array.")
        if not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError(f"row_perm is not a permutation of 0..{n - 1}.")
        scales = {}
        for name in ("row_scale", "col_scale"):
            s = np.asarray(getattr(self, name), dtype=np.float64)
            if s.shape != (n,):
                raise ValueError(f"{name} has shape {s.shape}, expected ({n},).")
            if not (np.all(np.isfinite(s)) and np.all(s > 0)):
                raise ValueError(f"{name} must be finite and positive.")
            scales[name] = s
        if self.method not in ("mc64", "scale", "none"):
            raise ValueError(f"method must be 'mc64', 'scale' or 'none', got {self.method!r}.")
        # Frozen: set the normalized arrays once, read-only, so that a shared
        # instance can never be changed under a fitted preconditioner.
        for name, value in (("row_perm", perm.astype(np.int64)), *scales.items()):
            value = np.array(value, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        inv = np.empty(n, dtype=np.int64)
        inv[self.row_perm] = np.arange(n)
        inv.setflags(write=False)
        object.__setattr__(self, "_inverse_perm", inv)

    # -- construction helpers -----------------------------------------------------
    @classmethod
    def identity(cls, n, *, reason="requested"):
        """Return the transformation that changes nothing, for an ``n x n`` matrix."""
        return cls(np.arange(n), np.ones(n), np.ones(n), method="none", reason=reason)

    def as_arrays(self):
        """Return ``{'row_perm', 'row_scale', 'col_scale'}`` arrays (for saving)."""
        return {
            "row_perm": np.array(self.row_perm),
            "row_scale": np.array(self.row_scale),
            "col_scale": np.array(self.col_scale),
        }

    @classmethod
    def from_arrays(cls, arrays, *, method="mc64", reason="loaded"):
        """Rebuild from :meth:`as_arrays` output; the arrays are validated."""
        return cls(
            np.asarray(arrays["row_perm"]),
            np.asarray(arrays["row_scale"]),
            np.asarray(arrays["col_scale"]),
            method=method,
            reason=reason,
        )

    # -- properties -----------------------------------------------------------------
    @property
    def n(self):
        """Matrix size."""
        return self.row_perm.shape[0]

    @property
    def inverse_perm(self):
        """``inverse_perm[row_perm[i]] == i``: where each old row went."""
        return self._inverse_perm

    @property
    def is_identity(self):
        """True when ``A' == A`` (no permutation, unit scales)."""
        return bool(
            np.array_equal(self.row_perm, np.arange(self.n))
            and np.all(self.row_scale == 1.0)
            and np.all(self.col_scale == 1.0)
        )

    @property
    def preserves_symmetry(self):
        """True when ``A' = D A D`` (no permutation, equal scales): symmetric stays symmetric.

        Then an SPD ``M'`` gives an SPD ``M = D M' D``, valid for CG.
        """
        return bool(
            np.array_equal(self.row_perm, np.arange(self.n))
            and np.array_equal(self.row_scale, self.col_scale)
        )

    @property
    def nbytes(self):
        """Bytes of the permutation and the two scale vectors."""
        return int(
            self.row_perm.nbytes + self._inverse_perm.nbytes
            + self.row_scale.nbytes + self.col_scale.nbytes
        )

    # -- the transformation ------------------------------------------------------------
    def apply(self, A):
        """Return ``A' = D_r P A D_c``, the matrix to factor.

        Parameters
        ----------
        A : sparse array/matrix or ndarray, shape (N, N)

        Returns
        -------
        csr_array or ndarray
            ``csr_array`` for sparse ``A`` (same pattern, rows permuted),
            a dense ``ndarray`` for dense ``A``.
        """
        A = as_matrix(A)
        self._check_size(A.shape[0], "A")
        if sp.issparse(A):
            B = A[self.row_perm]
            B = sp.csr_array(B, copy=True)
            rows = np.repeat(np.arange(self.n), np.diff(B.indptr))
            B.data = B.data * (self.row_scale[rows] * self.col_scale[B.indices])
            return B
        return np.asarray(A, dtype=np.float64)[self.row_perm] * np.outer(
            self.row_scale, self.col_scale
        )

    def to_prime(self, x):
        """``D_r P x``: a right-hand side of ``A x = b`` as one of ``A' y = b'``.

        ``x`` has shape (N,) or (N, k).
        """
        x = self._as_block(x)
        return _scale_rows(x[self.row_perm], self.row_scale)

    def from_prime(self, y):
        """``D_c y``: a solution of ``A' y = b'`` back to ``x`` with ``A x = b``."""
        return _scale_rows(self._as_block(y), self.col_scale)

    def to_prime_adjoint(self, x):
        """``D_c x``: first step of ``M^T = P^T D_r M'^T D_c``."""
        return _scale_rows(self._as_block(x), self.col_scale)

    def from_prime_adjoint(self, y):
        """``P^T D_r y``: last step of ``M^T = P^T D_r M'^T D_c``."""
        y = _scale_rows(self._as_block(y), self.row_scale)
        out = np.empty_like(y)
        out[self.row_perm] = y
        return out

    def wrap_solve(self, x, solve_prime):
        """``M x = D_c M'(D_r P x)`` where ``solve_prime(v) = M' v``."""
        return self.from_prime(solve_prime(self.to_prime(x)))

    def wrap_solve_adjoint(self, x, solve_prime_adjoint):
        """``M^T x = P^T D_r M'^T(D_c x)`` where ``solve_prime_adjoint(v) = M'^T v``."""
        return self.from_prime_adjoint(solve_prime_adjoint(self.to_prime_adjoint(x)))

    def _as_block(self, x):
        x = np.asarray(x)
        if x.ndim not in (1, 2) or x.shape[0] != self.n:
            raise ValueError(
                f"expected a vector of length {self.n} or an array of shape ({self.n}, k), "
                f"got shape {x.shape}."
            )
        return x

    def _check_size(self, n, name):
        if n != self.n:
            raise ValueError(
                f"{name} is {n}x{n} but this pivoting was computed for a {self.n}x{self.n} "
                f"matrix; compute static_pivoting(A) for this A."
            )

    def __repr__(self):
        moved = int(np.count_nonzero(self.row_perm != np.arange(self.n)))
        return (
            f"<StaticPivoting method={self.method!r}, N={self.n}, rows moved={moved}, "
            f"row scale {_range_text(self.row_scale)}, col scale "
            f"{_range_text(self.col_scale)}; {self.reason}>"
        )


def _range_text(s):
    if s.size == 0:
        return "[]"
    return f"[{s.min():.3g}, {s.max():.3g}]"


def _scale_rows(x, s):
    return x * s if x.ndim == 1 else x * s[:, None]


# -- deciding -----------------------------------------------------------------------


def needs_pivoting(A, *, rtol=WEAK_RTOL, max_weak_fraction=WEAK_FRACTION,
                   max_spread=SCALE_SPREAD, _validated=False):
    """Decide whether ``A``'s diagonal is too weak, or ``A`` too badly scaled, to factor as is.

    Parameters
    ----------
    A : sparse array/matrix or ndarray
        Square real matrix.
    rtol : float
        A nonzero ``a_ii`` is weak when ``|a_ii| < rtol * max_j |a_ij|``.
    max_weak_fraction : float
        Largest tolerated fraction of weak diagonal entries.
    max_spread : float
        Largest tolerated ratio between the largest and the smallest row
        maximum ``max_j |a_ij|`` (and column maximum).

    Returns
    -------
    needed : bool
        True when any diagonal entry is zero (stored or not), more than
        ``max_weak_fraction`` of them are weak, or the row or column maxima
        spread over more than ``max_spread``.
    reason : str
        One sentence saying which (with the counts).

    Notes
    -----
    A single zero diagonal entry is a zero pivot of ILU(0) and of a block
    factorization whose diagonal block is singular, so it always triggers
    pivoting. Weak entries are tolerated up to 1% of the rows by default:
    ``steam2`` has 25% of its diagonal entries below ``1e-3`` of their row
    maximum (badly scaled rows, not a weak diagonal in the column sense), and
    ILU(0) needs 2 GMRES iterations on it without pivoting, so the threshold
    is not a proof of trouble; see ``docs/robustness.md`` for the measured
    effect on the bundled real matrices.

    The weak-diagonal rule compares each diagonal entry with its own row, so
    it cannot see rows scaled by very different factors (``diag(d) A`` with
    ``d`` from 1e-150 to 1e150): such a matrix has a strong diagonal, but its
    factors, residuals and products span 300 orders of magnitude, and the
    largest rows hide the others. The spread rule catches it; MC64 then moves
    no row (the diagonal is already a maximum-product matching) and only
    scales, to ``|a'_ii| = 1``. On the bundled matrices the largest spread
    without a weak diagonal is 3e4 (``1138_bus``).
    """
    if not _validated:  # static_pivoting has checked A already
        A = as_matrix(A)
    # a dense A's row and column maxima once, for both rules (one pass)
    maxima = None if sp.issparse(A) else dense_abs_maxima(np.asarray(A))
    report = diagonal_report(A, rtol=rtol, _row_max=None if maxima is None else maxima[0])
    if report.zero:
        return True, (
            f"{report.zero} of {report.n} diagonal entries are zero (first: row "
            f"{report.first_zero}); ILU and block LU need nonzero pivots"
        )
    if report.weak > max_weak_fraction * report.n:
        return True, (
            f"{report.weak} of {report.n} diagonal entries are below {rtol:g} times "
            f"the largest entry of their row (more than {max_weak_fraction:.0%})"
        )
    spread = _max_spread(A, maxima)
    if spread > max_spread:
        return True, (
            f"the row or column maxima of |A| spread over a factor {spread:.3g} (more "
            f"than {max_spread:.3g}): A is badly scaled and is equilibrated first"
        )
    return False, (
        f"the diagonal is nonzero and weak in {report.weak} of {report.n} rows "
        f"(at most {max_weak_fraction:.0%} allowed), and the row and column maxima "
        f"spread over a factor {spread:.3g} (at most {max_spread:.3g})"
    )


def _max_spread(A, maxima=None):
    """Largest ratio max/min of the nonzero row maxima, or of the column maxima, of |A|."""
    if maxima is None and sp.issparse(A):
        absA = abs(sp.csr_array(A))
        maxima = [np.ravel(absA.max(axis=axis).toarray()) for axis in (0, 1)]
    elif maxima is None:
        maxima = dense_abs_maxima(np.asarray(A))  # by row chunks, no |A| temporary
    spread = 1.0
    for top in maxima:
        top = np.asarray(top, dtype=np.float64)
        top = top[top > 0]
        if top.size:  # in logs: 1e300 / 1e-300 overflows
            log_ratio = float(np.log(top.max()) - np.log(top.min()))
            spread = max(spread, float(np.exp(min(log_ratio, 709.0))))
    return spread


# -- computing ------------------------------------------------------------------------


def static_pivoting(A, *, method="auto", _validated=False):
    """Compute the row permutation and scalings ``A' = D_r P A D_c`` for ``A``.

    Parameters
    ----------
    A : sparse array/matrix, ndarray or LinearOperator
        Square real matrix. A ``LinearOperator`` has no entries to pivot on:
        it is accepted only with ``method='auto'`` or ``'none'`` (identity).
    method : {'auto', 'mc64', 'scale', 'none'}
        See the module docstring. ``'auto'`` is ``'mc64'`` when
        :func:`needs_pivoting` is true, else ``'none'``.

    Returns
    -------
    StaticPivoting

    Raises
    ------
    StructurallySingularError
        (a ``ValueError``) ``A`` has an empty row or column, or no perfect
        matching: no row permutation gives a zero-free diagonal.
    ValueError
        Unknown ``method``; ``'mc64'``/``'scale'`` asked for a ``LinearOperator``.

    Notes
    -----
    **Matching.** With ``a_j = max_k |a_kj|`` the largest entry of column
    ``j``, give every nonzero ``a_ij`` the cost ``c_ij = log a_j - log|a_ij|
    >= 0``. A perfect matching ``sigma`` (row ``i`` to column ``sigma(i)``)
    costs ``sum_i c_i,sigma(i) = sum_j log a_j - log prod_i |a_i,sigma(i)|``,
    so the minimum-cost matching (``scipy.sparse.csgraph.
    min_weight_full_bipartite_matching``, the LAPJVsp algorithm) maximizes
    the product of the matched magnitudes. Costs are shifted by +1 before the
    call (scipy treats a zero weight as a missing edge; every perfect matching
    has N edges, so the shift changes no comparison).

    **Scaling.** Optimality of the assignment means there are duals ``u_i``
    (rows) and ``v_j`` (columns) with ``c_ij - u_i - v_j >= 0`` for every
    nonzero and ``= 0`` on the matching. scipy does not return them, so they
    are recovered: after the row permutation the matching is the diagonal,
    ``v_j = c_jj - u_j``, and the remaining condition ``u_i - u_j <= c_ij -
    c_jj`` is a system of difference constraints, solved by shortest paths
    (Bellman-Ford; the matching is optimal exactly when there is no
    negative cycle). Then ``r_i = exp(u_i)`` and ``s_j = exp(v_j) / a_j``
    give ``|a_ij| r_i s_j = exp(-(c_ij - u_i - v_j))``: 1 on the diagonal,
    at most 1 elsewhere. The free constant ``u + t, v - t`` is chosen so that
    the log row and column scales have the same mean.
    """
    if method not in PIVOTING_METHODS:
        raise ValueError(
            f"unknown pivoting method {method!r}; choose from {', '.join(PIVOTING_METHODS)}."
        )
    if isinstance(A, LinearOperator) and not sp.issparse(A):
        A = as_matrix(A, allow_operator=True)
        if method in ("mc64", "scale"):
            raise ValueError(
                f"pivoting={method!r} needs the entries of A, but A is a LinearOperator; "
                f"pass a sparse or dense matrix, or use pivoting='none'."
            )
        return StaticPivoting.identity(
            A.shape[0], reason="A is a LinearOperator: no entries to pivot on"
        )
    if not _validated:  # LearnedLU.fit's pivot stage passes an A as_matrix returned
        A = as_matrix(A)
    n = A.shape[0]
    reason = f"pivoting={method!r} requested"
    if method == "auto":
        needed, why = needs_pivoting(A, _validated=True)
        method = "mc64" if needed else "none"
        reason = f"auto: {why}"
    if method == "none":
        return StaticPivoting.identity(n, reason=reason)
    check_structure(A)
    A = sp.csr_array(A) if not sp.issparse(A) else A.copy()
    A = A.astype(np.float64, copy=False)
    A.eliminate_zeros()
    if method == "scale":
        r, c = ruiz_scaling(A)
        return StaticPivoting(np.arange(n), r, c, method="scale", reason=reason)
    row_perm, r, c = mc64(A)
    return StaticPivoting(row_perm, r, c, method="mc64", reason=reason)


# -- a pivoted preconditioner ------------------------------------------------------------


class PivotedPreconditioner(Preconditioner):
    """``M = D_c M' D_r P``: a preconditioner fitted on ``A' = D_r P A D_c``, for ``A``.

    Build it with :func:`pivoted`.

    Attributes
    ----------
    inner : Preconditioner
        ``M'``, fitted on the pivoted matrix.
    pivoting : StaticPivoting
        The transformation.
    """

    def __init__(self, inner, pivoting):
        super().__init__(inner.shape)
        self.inner = inner
        self.pivoting = pivoting
        self.name = f"{getattr(inner, 'name', type(inner).__name__)}+pivoting"
        self.has_adjoint = bool(getattr(inner, "has_adjoint", True))
        # D M' D is SPD when M' is, but only without a permutation.
        self.symmetric = bool(getattr(inner, "symmetric", False)) and pivoting.preserves_symmetry

    def _apply(self, X):
        return self.pivoting.wrap_solve(X, self.inner.matmat)

    def _apply_adjoint(self, X):
        if not self.has_adjoint:
            return super()._apply_adjoint(X)
        return self.pivoting.wrap_solve_adjoint(X, self.inner.rmatmat)

    @property
    def nbytes(self):
        """Bytes of the inner preconditioner plus the permutation and scales."""
        return int(self.inner.nbytes) + self.pivoting.nbytes

    def __repr__(self):
        return (
            f"<PivotedPreconditioner {type(self.inner).__name__} N={self.shape[0]}, "
            f"pivoting={self.pivoting.method!r}, memory={format_bytes(self.nbytes)}, "
            f"setup={self.setup_time:.3g} s>"
        )


def pivoted(precond_class, A, *, pivoting="auto", **options):
    """Fit ``precond_class`` on the statically pivoted ``A`` and wrap it for ``A``.

    Parameters
    ----------
    precond_class : str or Preconditioner subclass
        A registry name (``'ilu0'``, ``'jacobi'``, ...) or a class with ``fit``.
    A : sparse array/matrix or ndarray, shape (N, N)
        The original system matrix.
    pivoting : {'auto', 'mc64', 'scale', 'none'} or StaticPivoting
        Passed to :func:`static_pivoting` as ``method``, or a precomputed one.
    **options
        Keyword options for ``precond_class.fit``.

    Returns
    -------
    PivotedPreconditioner
        ``M ~ A^-1`` for the *original* ``A``, to be passed as ``M`` to a
        Krylov solve of ``A x = b``. ``setup_time`` includes the pivoting.
    """
    if isinstance(precond_class, str):
        from ._registry import get_preconditioner

        precond_class = get_preconditioner(precond_class)
    start = time.perf_counter()
    A = as_matrix(A)
    if isinstance(pivoting, StaticPivoting):
        piv = pivoting
        piv._check_size(A.shape[0], "A")
    else:
        piv = static_pivoting(A, method=pivoting)
    inner = precond_class.fit(piv.apply(A), **options)
    self = PivotedPreconditioner(inner, piv)
    self.setup_time = time.perf_counter() - start
    return self
