"""The command lines: ``learned-precond`` (list, compare, demo) and the generator trainer.

``learned-precond`` (and ``python -m learned_precond``) runs :func:`main`;
``python -m learned_precond.family`` runs :func:`train_generator`. Both parse
arguments here and leave the work to the library: the comparison itself
(fits, solves, tables, plots) is :mod:`learned_precond.compare`, the test
problems :mod:`learned_precond.problems`.

Input errors (unknown problem or parameter, missing or non-square matrix
file) print one line on stderr and exit with status 2.
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import compare as comparison
from ._format import one_line
from ._structure import is_symmetric
from ._validation import as_matrix
from .exceptions import ModelFileError
from .krylov import METHODS

__all__ = ["main", "parse_value", "train_generator"]

log = logging.getLogger("learned_precond.family")


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
        help=f"LearnedLU against the baselines on {comparison.DEMO_PROBLEM}",
        description=f"Compare every preconditioner, LearnedLU included, with "
        f"GMRES(50) on the SuiteSparse matrix {comparison.DEMO_PROBLEM}.",
    )
    demo.add_argument("--plot", metavar="FILE", default="demo_convergence.png",
                      help="convergence plot path (default: demo_convergence.png)")
    demo.add_argument("--no-plot", action="store_true", help="do not write a plot")
    demo.add_argument("--seed", type=int, default=0, help="seed of the learned fit")
    return parser


def _add_solve_options(parser):
    names = ",".join(comparison.DEFAULT_PRECONDITIONERS)
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
        print(f"learned-precond: error: {one_line(exc)}", file=sys.stderr)
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

    problem = problems.get_problem(comparison.DEMO_PROBLEM)
    print(f"learned-precond demo: LearnedLU against classical preconditioners on the "
          f"SuiteSparse matrix {comparison.DEMO_PROBLEM}.")
    return _run_and_report(
        problem.A, problem.name, None if args.no_plot else args.plot,
        precond=",".join(comparison.DEFAULT_PRECONDITIONERS), fit=[], method="gmres", rtol=1e-8,
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
    rows = comparison.compare(A, preconditioners=names, fit_options=_fit_options(fit, names),
                              **options)
    method, rtol = options["method"], options["rtol"]
    solver = f"GMRES({options['restart']})" if method == "gmres" else method.upper()
    nnz = A.nnz if sp.issparse(A) else int(np.count_nonzero(A))
    title = (f"{label}: N={A.shape[0]}, nnz={nnz}, "
             f"{'symmetric' if is_symmetric(A) else 'nonsymmetric'}; "
             f"{solver} to rtol {rtol:g}, b = A @ ones")
    print(comparison.format_table(rows, title=title))
    if plot is not None:
        written = comparison.plot_convergence(rows, plot, title=f"{label}, {solver}", rtol=rtol)
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
        options.setdefault(target, {})[key.strip().replace("-", "_")] = parse_value(value)
    for target, given in options.items():
        _check_fit_options(target, given)
    return options


def _check_fit_options(target, options):
    """Refuse misspelt or invalid ``--fit`` options before any fit runs (exit status 2).

    Names are checked against the signature of ``target``'s ``fit``; the
    values of LearnedLU's options by :class:`~learned_precond.lu.FitOptions`,
    which needs no matrix. Other values are checked by the fit itself.
    """
    import difflib
    import inspect

    try:
        # the lookup compare itself uses, so the check and the fit see one class
        cls = comparison.get_preconditioner(target)
        fit = cls.fit
    except (KeyError, ValueError, ImportError, AttributeError):
        return  # an unknown or unavailable name: compare reports it in its row
    params = inspect.signature(fit).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [name for name, p in params.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY]
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise _UsageError(
                    f"--fit {key}=...: {target} has no option {key!r}; {hint}its options "
                    f"are: {', '.join(known) or 'none'}")
    from .lu import LearnedLU

    if cls is LearnedLU:
        from .lu.options import FitOptions

        try:
            FitOptions.from_kwargs(options)
        except (TypeError, ValueError) as exc:
            raise _UsageError(f"--fit (learned_lu): {one_line(exc)}") from None


def parse_value(text):
    """Interpret a ``--fit`` value as bool, None, int, float or (otherwise) str.

    Examples
    --------
    >>> [parse_value(t) for t in ("true", "None", "200", "1e-3", " zorder ")]
    [True, None, 200, 0.001, 'zorder']
    """
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


# -- python -m learned_precond.family -------------------------------------------------


def train_generator(argv=None):
    """``python -m learned_precond.family --kind diffusion --n 12 --out gen.npz``.

    Trains a generator on a family's training split and saves it, for
    ``learned-precond compare ... --precond spai_generator
    --fit spai_generator:model=gen.npz``.
    """
    from .problems.family import FAMILIES, MatrixFamily
    from .spai.generator import SPAIGenerator

    p = argparse.ArgumentParser(
        prog="python -m learned_precond.family",
        description="Train an SPAI generator on a PDE matrix family and save it (.npz).")
    p.add_argument("--kind", choices=FAMILIES, default="diffusion")
    p.add_argument("--n", type=int, default=12, help="training grid points per side")
    p.add_argument("--variant", choices=("cvae", "deterministic"), default="cvae")
    p.add_argument("--extra-fill", type=float, default=0.0)
    p.add_argument("--n-train", type=int, default=None, help="training matrices (default 1600)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output .npz file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    gen = SPAIGenerator.train(
        MatrixFamily(args.kind, n=args.n), variant=args.variant, extra_fill=args.extra_fill,
        epochs=args.epochs, n_train=args.n_train,
        seed=args.seed, verbose=True)
    gen.save(args.out)
    log.info("%r saved to %s", gen, args.out)
    return 0
