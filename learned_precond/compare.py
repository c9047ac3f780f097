"""Preconditioners side by side: comparison rows, tables, convergence plots.

:func:`compare` fits every requested preconditioner on one matrix, runs the
same Krylov solve with each, and returns one :class:`ComparisonRow` per
preconditioner. A preconditioner that cannot be built (``ILU0`` on a zero
diagonal, ``learned_lu`` without torch) becomes a row with an ``error``
instead of an exception, so one failure never hides the other results.
:func:`format_table`, :func:`format_markdown` and :func:`plot_convergence`
present the rows. The ``learned-precond`` command line that prints them is
:mod:`learned_precond.cli`.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from learned_precond.compare import compare
>>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(50, 50)).tocsr()
>>> rows = compare(A, preconditioners=("none", "exact"))
>>> [(row.name, row.converged) for row in rows]
[('none', True), ('exact', True)]
>>> rows[1].iterations <= 2
True
"""

import inspect
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._format import format_bytes, one_line
from ._registry import DEFAULT_NAMES, get_preconditioner, preconditioner_names
from ._structure import asymmetry, is_symmetric
from ._validation import as_matrix, check_positive_int, check_rhs, check_structure
from .exceptions import PreconditionerSetupError
from .krylov import METHODS, solve

__all__ = [
    "DEMO_PROBLEM",
    "ComparisonRow",
    "compare",
    "format_markdown",
    "format_table",
    "main",  # noqa: F822 - resolved by __getattr__ below
    "plot_convergence",
]

#: The matrix ``learned-precond demo`` (:mod:`learned_precond.cli`) runs on (a
#: SuiteSparse matrix shipped with the package: sherman1, oil reservoir simulation
#: on a 10 x 10 x 10 grid, N = 1000, symmetric negative definite).
DEMO_PROBLEM = "sherman1"

#: Every registered preconditioner, the default of :func:`compare` and the CLI.
DEFAULT_PRECONDITIONERS = DEFAULT_NAMES

# Krylov methods whose theory needs a symmetric A and a symmetric positive
# definite M (CG's and MINRES's short recurrences assume M = M^T > 0), and
# methods that apply M^T (bicg calls M.rmatvec).
_NEEDS_SYMMETRIC = ("cg", "minres")
_NEEDS_ADJOINT = ("bicg",)


@dataclass(frozen=True, eq=False)
class ComparisonRow:
    """One preconditioner's result in a :func:`compare` run.

    Attributes
    ----------
    name : str
        Registry name of the preconditioner (``'ilu0'``, ``'learned_lu'``...).
    iterations : int or None
        Krylov iterations (GMRES: inner iterations summed over restarts);
        ``None`` when the solve did not run.
    converged : bool
        The solver reached ``rtol``.
    setup_time : float or None
        Seconds spent in ``fit``; ``None`` when ``fit`` did not finish.
    solve_time : float or None
        Seconds spent in the Krylov solve.
    nbytes : int or None
        Bytes held by the fitted preconditioner.
    relative_residual : float or None
        True relative residual ``||b - A x|| / ||b||`` of the returned ``x``
        (recomputed, not the solver's own estimate).
    residuals : ndarray or None
        Relative residual history, starting at 1.0.
    error : str or None
        ``None`` when the solve ran; otherwise why not, starting with
        ``'setup failed: '``, ``'unavailable: '``, ``'skipped: '`` or
        ``'solve failed: '``.
    """

    name: str
    iterations: int | None
    converged: bool
    setup_time: float | None
    solve_time: float | None
    nbytes: int | None
    relative_residual: float | None
    residuals: np.ndarray | None
    error: str | None = None

    @property
    def ok(self):
        """True when the solve ran (converged or not)."""
        return self.error is None


def compare(
    A,
    b=None,
    *,
    preconditioners=DEFAULT_PRECONDITIONERS,
    method="gmres",
    rtol=1e-8,
    maxiter=None,
    restart=50,
    fit_options=None,
    seed=0,
    grid_shape=None,
):
    """Fit each preconditioner on ``A`` and solve ``A x = b`` with each of them.

    Parameters
    ----------
    A : sparse array/matrix or ndarray, shape (N, N)
        The system matrix (real, square).
    b : array_like, shape (N,), optional
        Right-hand side. Default ``A @ ones(N)``, so the exact solution is
        the vector of ones (the convention of the matrix collections'
        published iteration counts). Deterministic: no randomness involved.
    preconditioners : sequence of str
        Registry names, in table order; default all of
        :func:`learned_precond.preconditioner_names`.
    method : str
        Krylov method passed to :func:`learned_precond.krylov.solve`
        (``'gmres'``, ``'cg'``, ``'bicgstab'``...). For ``'cg'`` and
        ``'minres'``, A must be symmetric, and a preconditioner that is not
        symmetric positive definite is skipped (its row says why).
    rtol : float
        Relative residual tolerance of every solve.
    maxiter : int, optional
        Iteration cap (the solver's default when ``None``).
    restart : int
        GMRES restart length.
    fit_options : dict of str to dict, optional
        Options for ``fit``, per preconditioner name, e.g.
        ``{'learned_lu': {'max_steps': 200}, 'ilut': {'drop_tol': 1e-3}}``.
    seed : int
        Passed as ``seed=`` to every ``fit`` that accepts it (the learned
        preconditioner's training) unless ``fit_options`` sets it, so a
        comparison is reproducible.
    grid_shape : tuple of int, optional
        Structured-grid shape of the unknowns (``Problem.grid_shape``), passed
        as ``grid_shape=`` to every ``fit`` that accepts it unless
        ``fit_options`` sets it: ``LearnedLU`` then orders the unknowns
        geometrically instead of by graph bisection.

    Returns
    -------
    list of ComparisonRow
        One row per name in ``preconditioners``, in the same order. Setup
        failures, unavailable preconditioners and skipped combinations are
        rows with ``error`` set, never exceptions.

    Raises
    ------
    ValueError
        Unknown preconditioner name, ``fit_options`` for a preconditioner
        that is not compared, a bad ``b``, ``method='cg'``/``'minres'``
        with a nonsymmetric ``A``, or a structurally singular ``A`` (an
        empty row or column: :class:`~learned_precond.StructurallySingularError`).
    """
    A = as_matrix(A)
    check_structure(A)  # would fail every row alike; say it once
    n = A.shape[0]
    b = A @ np.ones(n) if b is None else check_rhs(b, n)
    names = _check_names(preconditioners)
    fit_options = _check_fit_options(fit_options, names)
    # Checked once here: a bad setting would otherwise fail every row alike.
    if method not in METHODS:
        raise ValueError(f"unknown Krylov method {method!r}; choose from {', '.join(METHODS)}.")
    if not (isinstance(rtol, numbers.Real) and math.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a positive finite number, got {rtol!r}.")
    if maxiter is not None:
        check_positive_int(maxiter, "maxiter")
    check_positive_int(restart, "restart")
    if grid_shape is not None and math.prod(grid_shape) != n:
        raise ValueError(
            f"grid_shape {tuple(grid_shape)} has {math.prod(grid_shape)} points but A has "
            f"{n} rows; pass the shape of the grid A was discretized on, or None."
        )
    if method in _NEEDS_SYMMETRIC and not is_symmetric(A):
        raise ValueError(
            f"method={method!r} needs a symmetric A, but A is not symmetric "
            f"(max |A - A^T| = {asymmetry(A):.3g}); use method='gmres' or 'bicgstab'."
        )
    shared = {"seed": seed} if grid_shape is None else {"seed": seed, "grid_shape": grid_shape}
    return [
        _run_one(name, A, b, method=method, rtol=rtol, maxiter=maxiter, restart=restart,
                 options=fit_options.get(name, {}), shared=shared)
        for name in names
    ]


def _run_one(name, A, b, *, method, rtol, maxiter, restart, options, shared):
    """Fit one preconditioner and solve with it; failures become the row's error."""

    def failed(error, M=None):
        return ComparisonRow(
            name=name, iterations=None, converged=False,
            setup_time=None if M is None else M.setup_time,
            solve_time=None,
            nbytes=None if M is None else M.nbytes,
            relative_residual=None, residuals=None, error=error,
        )

    try:
        cls = get_preconditioner(name)
    except (ImportError, AttributeError) as exc:
        # An optional part missing (torch, or a module not installed) makes
        # this one row unavailable; the other rows still run.
        return failed(f"unavailable: {one_line(exc)}")

    kwargs = dict(options)
    for key, value in shared.items():
        if key not in kwargs and _accepts(cls.fit, key):
            kwargs[key] = value
    try:
        M = cls.fit(A, **kwargs)
    except PreconditionerSetupError as exc:
        return failed(f"setup failed: {one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - one broken fit must not hide the others
        return failed(f"setup failed: {type(exc).__name__}: {one_line(exc)}")

    if method in _NEEDS_SYMMETRIC and not getattr(M, "symmetric", False):
        return failed(
            f"skipped: {method.upper()} needs a symmetric positive definite M and "
            f"{name} is not symmetric; compare it with method='gmres'",
            M,
        )
    if method in _NEEDS_ADJOINT and not getattr(M, "has_adjoint", True):
        return failed(
            f"skipped: {method} applies M^T and {name} has no transpose apply; "
            f"use method='gmres' or 'bicgstab'",
            M,
        )

    try:
        result = solve(A, b, M, method=method, rtol=rtol, maxiter=maxiter, restart=restart)
    except Exception as exc:  # noqa: BLE001 - report in the row, keep comparing
        return failed(f"solve failed: {type(exc).__name__}: {one_line(exc)}", M)
    return ComparisonRow(
        name=name,
        iterations=int(result.iterations),
        converged=bool(result.converged),
        setup_time=float(M.setup_time),
        solve_time=float(result.solve_time),
        nbytes=int(M.nbytes),
        relative_residual=float(result.relative_residual),
        residuals=np.asarray(result.residuals, dtype=np.float64),
    )


def _check_names(preconditioners):
    if isinstance(preconditioners, str):
        preconditioners = [preconditioners]
    names = [str(name).strip() for name in preconditioners]
    known = preconditioner_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"unknown preconditioner(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(known)}."
        )
    if not names:
        raise ValueError(f"no preconditioners to compare; choose from {', '.join(known)}.")
    return names


def _check_fit_options(fit_options, names):
    if fit_options is None:
        return {}
    extra = [key for key in fit_options if key not in names]
    if extra:
        raise ValueError(
            f"fit_options has options for {', '.join(map(repr, extra))}, which "
            f"{'is' if len(extra) == 1 else 'are'} not among the compared "
            f"preconditioners ({', '.join(names)}); add it to preconditioners or "
            f"drop its options."
        )
    return {key: dict(value) for key, value in fit_options.items()}


def _accepts(func, keyword):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signature
        return False
    return keyword in params


# -- presentation -------------------------------------------------------------

_COLUMNS = (
    "preconditioner", "iterations", "converged", "setup s", "solve s", "memory",
    "true residual",
)


def _cells(row):
    """Table cells of one row; failed rows keep only name and error."""
    return (
        row.name,
        "-" if row.iterations is None else str(row.iterations),
        "yes" if row.converged else "no",
        _format_seconds(row.setup_time),
        _format_seconds(row.solve_time),
        "-" if row.nbytes is None else format_bytes(row.nbytes),
        "-" if row.relative_residual is None else f"{row.relative_residual:.2e}",
    )


def _format_seconds(seconds):
    # Fixed point keeps the column comparable by eye; below 0.1 ms only the
    # order of magnitude matters.
    if seconds is None:
        return "-"
    if seconds == 0 or not math.isfinite(seconds):
        return f"{seconds:g}"
    if seconds < 1e-4:
        return f"{seconds:.0e}"
    return f"{seconds:.4f}" if seconds < 10 else f"{seconds:.1f}"


def format_table(rows, *, title=None):
    """Format comparison rows as an aligned plain-text table.

    Parameters
    ----------
    rows : sequence of ComparisonRow
        Output of :func:`compare`.
    title : str, optional
        First line of the table.

    Returns
    -------
    str
        Columns preconditioner, iterations, converged, setup s, solve s,
        memory (KiB/MiB) and true residual. A row whose solve did not run
        shows its name followed by the reason.
    """
    cells = [_cells(row) for row in rows if row.ok]
    widths = [len(col) for col in _COLUMNS]
    for line in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, line, strict=True)]
    widths[0] = max([widths[0], *(len(row.name) for row in rows)])

    def join(items):
        first = items[0].ljust(widths[0])
        rest = [item.rjust(width) for item, width in zip(items[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    lines = [] if title is None else [str(title)]
    header = join(_COLUMNS)
    lines += [header, "-" * len(header)]
    for row in rows:
        if row.ok:
            lines.append(join(_cells(row)))
        else:
            lines.append(f"{row.name.ljust(widths[0])}  {row.error}")
    return "\n".join(lines)


def format_markdown(rows):
    """Format comparison rows as a Markdown table (for docs and reports).

    A row whose solve did not run carries its reason in the *converged*
    column and ``-`` elsewhere.
    """
    lines = [
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(_COLUMNS) - 1)) + "|",
    ]
    for row in rows:
        cells = list(_cells(row))
        if not row.ok:
            cells[2] = row.error
        cells = [cell.replace("|", "\\|") for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_LINESTYLES = ("-", "--", "-.", ":")


def plot_convergence(rows, path, *, title=None, rtol=None):
    """Plot relative residual against iteration, one line per row, to a PNG.

    Parameters
    ----------
    rows : sequence of ComparisonRow
        Output of :func:`compare`; rows without a residual history are left
        out. The histories are the solver's (for GMRES, its preconditioned
        residual estimate, see :class:`learned_precond.krylov.SolveResult`).
    path : str or path-like
        Where to write the plot (parent folders must exist). The suffix picks
        the format: PNG for ``.png``, also ``.svg`` or ``.pdf``.
    title : str, optional
        Plot title.
    rtol : float, optional
        Draw the tolerance as a dashed horizontal line.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    # The object-oriented API with an explicit Agg canvas: no display, no
    # pyplot global state, nothing changes for a caller who uses pyplot.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plotted = 0
    for row in rows:
        if row.residuals is None or len(row.residuals) == 0:
            continue
        res = np.asarray(row.residuals, dtype=np.float64)
        # An exact solve reaches residual 0, which a log axis cannot show.
        res = np.where(res > 0, res, np.nan)
        label = f"{row.name} ({row.iterations} it{'' if row.converged else ', not converged'})"
        # Cycling line styles keeps identical histories (none and Jacobi on
        # a constant diagonal) visible on top of each other.
        ax.plot(np.arange(len(res)), res, label=label, linewidth=1.5,
                linestyle=_LINESTYLES[plotted % len(_LINESTYLES)])
        plotted += 1
    if plotted:
        ax.set_yscale("log")
        if rtol is not None:
            ax.axhline(rtol, color="0.4", linestyle="--", linewidth=1, label=f"rtol = {rtol:g}")
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no preconditioner produced a residual history",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative residual")
    ax.grid(True, which="major", alpha=0.3)
    if title is not None:
        ax.set_title(title)
    fig.savefig(path, dpi=120)
    return path


def __getattr__(name):
    # ``learned_precond.compare.main`` is public (tests/test_robustness.py imports it);
    # the command line itself lives in learned_precond.cli, which imports this module,
    # so the alias is resolved on first use instead of at import.
    if name == "main":
        from .cli import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
