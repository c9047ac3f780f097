"""The hard suite of issue 15: LearnedLU beside ILU0, ILUT, ICT, AMG and a direct solver.

Nine generated rows (``learned_precond.problems.hard_suite``: 2-D Poisson,
lognormal and checkerboard diffusion, rotated anisotropic diffusion,
vortex convection-diffusion, biharmonic, 3-D Poisson, plane-strain
elasticity, a dense exponential kernel with coordinates), each at N ~ 65536
(3-D at 64^3, the kernel at 16384). Every (row, method) runs in its own
subprocess with a timeout (``--timeout``), so its peak memory is its own and
one stuck fit is reported as timed out instead of hanging the run. Then the
goals of the issue are computed from the measured numbers and printed.

Run from the repository root::

    python benchmarks/hard_suite.py            # full run, writes docs/results/hard_suite.md
    python benchmarks/hard_suite.py --quick    # scale 1/16 (~4096 per row), a few minutes
    python benchmarks/hard_suite.py --rows poisson_2d,kernel_2d --scale 0.01 --out /tmp

The pieces live in ``benchmarks/_hard_suite/`` (``measure``, ``goals``, ``page``).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT  # noqa: E402
from _hard_suite.measure import METHODS, run_case, run_subprocess  # noqa: E402
from _hard_suite.page import write_page  # noqa: E402

QUICK_SCALE = 1 / 16
#: Seconds one (row, method) case may take before it is killed.
TIMEOUT = {"full": 1800.0, "quick": 150.0}


def _rows(text):
    from learned_precond.problems import HARD_SUITE

    if text is None:
        return list(HARD_SUITE)
    rows = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in rows if r not in HARD_SUITE]
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(HARD_SUITE)}.")
    return rows


def _options(text):
    """``--learned-options``: a JSON object of LearnedLU.fit keyword arguments."""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}); e.g. '{{\"rank_tol\": 1e-3}}'")
    if not isinstance(options, dict):
        raise argparse.ArgumentTypeError("a JSON object of fit options, e.g. "
                                         "'{\"rank_tol\": 1e-3}'")
    return options


def run(rows, methods, scale, *, timeout, log=print, learned_options=None):
    """Every (row, method) in its own subprocess; returns the list of records."""
    records = []
    for row in rows:
        for method in methods:
            for r in run_subprocess(row, method, scale, timeout=timeout,
                                    learned_options=learned_options):
                log(json.dumps(r))
                records.append(r)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=3, metavar=("ROW", "METHOD", "SCALE"),
                        help=argparse.SUPPRESS)  # one subprocess's measurement
    parser.add_argument("--quick", action="store_true",
                        help=f"scale {QUICK_SCALE:g} (about 4096 unknowns a row)")
    parser.add_argument("--scale", type=float, default=None,
                        help="fraction of the full N (default 1, or the quick scale)")
    parser.add_argument("--rows", default=None, help="comma-separated rows (default all)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated, from {', '.join(METHODS)} (default all)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per (row, method) case (default 1800, quick 150)")
    parser.add_argument("--learned-options", type=_options, default=None,
                        help='LearnedLU.fit options as JSON, e.g. \'{"rank_tol": 1e-3}\' '
                             "(default: the library defaults)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder of hard_suite.md (default docs/results)")
    args = parser.parse_args(argv)
    if args.case:
        row, method, scale = args.case
        print(json.dumps(run_case(row, method, float(scale),
                                  learned_options=args.learned_options)))
        return 0
    rows = _rows(args.rows)
    methods = list(METHODS) if args.methods is None else args.methods.split(",")
    if any(m not in METHODS for m in methods):
        parser.error(f"--methods: choose from {', '.join(METHODS)}")
    scale = args.scale if args.scale is not None else (QUICK_SCALE if args.quick else 1.0)
    timeout = args.timeout or TIMEOUT["quick" if args.quick else "full"]
    start = time.perf_counter()
    records = run(rows, methods, scale, timeout=timeout,
                  learned_options=args.learned_options)
    path = args.out / "hard_suite.md"
    goals = write_page(path, records, rows, quick=args.quick or scale < 1, scale=scale,
                       seconds=time.perf_counter() - start, timeout=timeout,
                       argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    for g in goals:
        print(f"{g.verdict:>8}: {g.statement}: {g.summary}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
