"""Preconditioners side by side: comparison rows, tables, convergence plots, the CLI.

:func:`compare` fits every requested preconditioner on one matrix, runs the
same Krylov solve with each, and returns one :class:`ComparisonRow` per
preconditioner. A preconditioner that cannot be built (``ILU0`` on a zero
diagonal, ``learned_lu`` without torch) becomes a row with an ``error``
instead of an exception, so one failure never hides the other results.
:func:`format_table`, :func:`format_markdown` and :func:`plot_convergence`
present the rows; :func:`main` is the ``learned-precond`` command line.

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

import argparse
import inspect
import math
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ._format import format_bytes
from ._registry import DEFAULT_NAMES, get_preconditioner, preconditioner_names
from ._structure import asymmetry, is_symmetric
from ._validation import as_matrix, check_positive_int, check_rhs, check_structure
from .exceptions import ModelFileError, PreconditionerSetupError
from .krylov import METHODS, solve

__all__ = [
    "DEMO_PROBLEM",
    "ComparisonRow",
    "compare",
    "format_markdown",
    "format_table",
    "main",
    "plot_convergence",
]

#: The matrix ``learned-precond demo`` runs on (a SuiteSparse matrix shipped
#: with the package: sherman1, oil reservoir simulation on a 10 x 10 x 10 grid,
#: N = 1000, symmetric negative definite).
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
        return failed(f"unavailable: {_one_line(exc)}")

    kwargs = dict(options)
    for key, value in shared.items():
        if key not in kwargs and _accepts(cls.fit, key):
            kwargs[key] = value
    try:
        M = cls.fit(A, **kwargs)
    except PreconditionerSetupError as exc:
        return failed(f"setup failed: {_one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - one broken fit must not hide the others
        return failed(f"setup failed: {type(exc).__name__}: {_one_line(exc)}")

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
        return failed(f"solve failed: {type(exc).__name__}: {_one_line(exc)}", M)
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


def _one_line(exc):
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


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


# -- command line -------------------------------------------------------------

class _UsageError(ValueError):
    """Bad command line input: reported in one line, exit status 2."""


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="learned-precond",
        description="Compare preconditioners for scipy's Krylov solvers on test "
        "problems or your own Matrix Market files.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    lst = sub.add_parser("list", help="list the test problems and their parameters")
    lst.add_argument("-v", "--verbose", action="store_true",
                     help="also print each problem's description")

    cmp_ = sub.add_parser(
        "compare",
        # Problem parameters arrive as unknown --key value pairs; without
        # abbreviations --n cannot be mistaken for --no-plot.
        allow_abbrev=False,
        help="compare preconditioners on one problem",
        usage="learned-precond compare (PROBLEM [--param value ...] | --matrix FILE) "
        "[options]",
        description="Fit each preconditioner, solve A x = A @ ones with each, print a "
        "table and write a convergence plot. Problem parameters follow the "
        "problem name as --key value (see `learned-precond list`).",
    )
    cmp_.add_argument("problem", nargs="?", metavar="PROBLEM",
                      help="problem name from `learned-precond list`")
    cmp_.add_argument("--matrix", metavar="FILE",
                      help="a Matrix Market (.mtx) file to use instead of PROBLEM")
    _add_solve_options(cmp_)

    demo = sub.add_parser(
        "demo", allow_abbrev=False,
        help=f"LearnedLU against the baselines on {DEMO_PROBLEM}",
        description=f"Compare every preconditioner, LearnedLU included, with "
        f"GMRES(50) on the SuiteSparse matrix {DEMO_PROBLEM}.",
    )
    demo.add_argument("--plot", metavar="FILE", default="demo_convergence.png",
                      help="convergence plot path (default: demo_convergence.png)")
    demo.add_argument("--no-plot", action="store_true", help="do not write a plot")
    demo.add_argument("--seed", type=int, default=0, help="seed of the learned fit")
    return parser


def _add_solve_options(parser):
    names = ",".join(DEFAULT_PRECONDITIONERS)
    parser.add_argument("--precond", default=names, metavar="NAMES",
                        help=f"comma-separated preconditioners (default: {names})")
    parser.add_argument("--method", default="gmres", choices=METHODS,
                        help="Krylov method (default: gmres)")
    parser.add_argument("--rtol", type=float, default=1e-8, help="default: 1e-8")
    parser.add_argument("--maxiter", type=int, default=None,
                        help="iteration cap (default: the solver's)")
    parser.add_argument("--restart", type=int, default=50, help="GMRES restart (default 50)")
    parser.add_argument("--fit", action="append", default=[], metavar="[NAME:]KEY=VALUE",
                        help="fit option, repeatable; without NAME: for learned_lu "
                        "(e.g. --fit max_steps=200, --fit ilut:drop_tol=1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the learned fit")
    parser.add_argument("--plot", metavar="FILE", default=None,
                        help="convergence plot path (default: <problem>_convergence.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write a plot")


def main(argv=None):
    """Run the ``learned-precond`` command line; return the exit status.

    Subcommands: ``list``, ``compare PROBLEM [--param value ...] | --matrix
    FILE`` and ``demo``. Input errors (unknown problem or parameter, missing
    or non-square matrix file) print one line on stderr and return 2.
    """
    parser = _build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the error
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command != "compare" and extras:
            raise _UsageError(f"unrecognized arguments: {' '.join(extras)}")
        if args.command == "list":
            return _cmd_list(verbose=args.verbose)
        if args.command == "compare":
            return _cmd_compare(args, extras)
        return _cmd_demo(args)
    except (_UsageError, ValueError, TypeError, NotImplementedError, KeyError, OSError,
            ModelFileError) as exc:
        print(f"learned-precond: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _cmd_list(*, verbose=False):
    from . import problems

    header = ("problem", "kind", "symmetric", "definite", "parameters (defaults)")
    rows, descriptions = [], []
    for name in problems.names():
        info = problems.info(name)
        rows.append((
            name,
            info.kind,
            "yes" if info.symmetric else "no",
            info.definite,
            " ".join(f"--{key} {value}" for key, value in info.defaults.items()) or "-",
        ))
        descriptions.append(info.description)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def join(line):
        return "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()

    print(join(header))
    for line, description in zip(rows, descriptions, strict=True):
        print(join(line))
        if verbose:
            print(f"    {description}")
    print("\nUse: learned-precond compare PROBLEM [--param value ...]"
          + ("" if verbose else "  (list -v: descriptions)"))
    return 0


def _cmd_compare(args, extras):
    from . import problems

    params = _problem_params(extras)
    if (args.problem is None) == (args.matrix is None):
        raise _UsageError(
            "give either a PROBLEM name (see `learned-precond list`) or --matrix FILE.mtx"
        )
    if args.matrix is not None:
        if params:
            raise _UsageError(
                f"problem parameters ({', '.join('--' + k for k in params)}) apply to "
                f"named problems, not to --matrix"
            )
        path = Path(args.matrix)
        if not path.is_file():
            raise _UsageError(f"matrix file {str(path)!r} not found")
        A = problems.load_matrix(path)
        label, stem, grid_shape = path.name, path.stem, None
    else:
        problem = problems.get_problem(args.problem, **params)
        A, stem, grid_shape = problem.A, problem.name, problem.grid_shape
        shown = ", ".join(f"{k}={v}" for k, v in problem.params.items())
        label = f"{problem.name} ({shown})" if shown else problem.name
    plot = None if args.no_plot else (args.plot or f"{stem}_convergence.png")
    return _run_and_report(
        A, label, plot, precond=args.precond, fit=args.fit, method=args.method,
        rtol=args.rtol, maxiter=args.maxiter, restart=args.restart, seed=args.seed,
        grid_shape=grid_shape,
    )


def _cmd_demo(args):
    from . import problems

    problem = problems.get_problem(DEMO_PROBLEM)
    print(f"learned-precond demo: LearnedLU against classical preconditioners on the "
          f"SuiteSparse matrix {DEMO_PROBLEM}.")
    return _run_and_report(
        problem.A, problem.name, None if args.no_plot else args.plot,
        precond=",".join(DEFAULT_PRECONDITIONERS), fit=[], method="gmres", rtol=1e-8,
        maxiter=None, restart=50, seed=args.seed, grid_shape=problem.grid_shape,
    )


def _run_and_report(A, label, plot, *, precond, fit, **options):
    """Run :func:`compare` with CLI inputs, print the table, write the plot."""
    A = as_matrix(A)
    if plot is not None and not Path(plot).parent.is_dir():
        # Checked before the (possibly long) run rather than failing after it.
        raise _UsageError(
            f"cannot write the plot to {plot}: folder {str(Path(plot).parent)!r} does not "
            f"exist; create it or pass another --plot path"
        )
    names = [name.strip() for name in precond.split(",") if name.strip()]
    rows = compare(A, preconditioners=names, fit_options=_fit_options(fit, names), **options)
    method, rtol = options["method"], options["rtol"]
    solver = f"GMRES({options['restart']})" if method == "gmres" else method.upper()
    nnz = A.nnz if sp.issparse(A) else int(np.count_nonzero(A))
    title = (f"{label}: N={A.shape[0]}, nnz={nnz}, "
             f"{'symmetric' if is_symmetric(A) else 'nonsymmetric'}; "
             f"{solver} to rtol {rtol:g}, b = A @ ones")
    print(format_table(rows, title=title))
    if plot is not None:
        written = plot_convergence(rows, plot, title=f"{label}, {solver}", rtol=rtol)
        print(f"\nconvergence plot written to {written}")
    return 0


def _problem_params(extras):
    """Turn unknown ``--key value`` / ``--key=value`` tokens into a dict of strings."""
    params = {}
    tokens = list(extras)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("--") or len(token) == 2:
            raise _UsageError(
                f"unexpected argument {token!r}; problem parameters are given as "
                f"--key value after the problem name"
            )
        key, eq, value = token[2:].partition("=")
        if not eq:
            if not tokens or (tokens[0].startswith("--") and len(tokens[0]) > 2):
                raise _UsageError(f"problem parameter --{key} needs a value (--{key} VALUE)")
            value = tokens.pop(0)
        params[key.replace("-", "_")] = value
    return params


def _fit_options(items, names):
    """Parse ``[NAME:]KEY=VALUE`` items (NAME defaults to learned_lu)."""
    options = {}
    for item in items:
        target, colon, rest = item.partition(":")
        if not colon or "=" in target:
            target, rest = "learned_lu", item
        key, eq, value = rest.partition("=")
        if not eq or not key:
            raise _UsageError(f"--fit expects KEY=VALUE or NAME:KEY=VALUE, got {item!r}")
        if target not in names:
            raise _UsageError(
                f"--fit {item} sets an option of {target}, which is not in --precond "
                f"({', '.join(names)})"
            )
        options.setdefault(target, {})[key.strip().replace("-", "_")] = _coerce(value)
    return options


def _coerce(text):
    """Interpret a --fit value as bool, None, int, float or (otherwise) str."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
