"""Every case of issue 16, each in its own process, classified; writes docs/robustness.md's table.

Each case runs in a subprocess with a wall-clock timeout and an address-space
limit, and reports its peak RSS (and, for the model files, the tracemalloc
peak of ``load``). The outcome is ``clear error``, ``unclear error``,
``handled``, ``silent wrong``, ``crash`` or ``hang``
(:mod:`_robustness.runner` says exactly when). The cases live in
``benchmarks/_robustness/`` (``files``, ``options``, ``numerics``,
``limits``); model-file cases cover both layouts, ``gfmm`` (``init='gfmm'``)
and ``nested`` (the default for sparse A).

    python benchmarks/robustness_cases.py            # every case, writes the page
    python benchmarks/robustness_cases.py --quick    # the cheap cases, prints only
    python benchmarks/robustness_cases.py --case complex_x --case bomb_gfmm
    python benchmarks/robustness_cases.py --list

The goal (issue 16): 0 silent wrong, 0 crash, 0 hang, 0 unclear error. The
exit status is 1 when any case has one of those outcomes.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO  # noqa: E402
from _robustness import CASES  # noqa: E402
from _robustness.page import short, totals_line, write_page  # noqa: E402
from _robustness.runner import GOOD, child, counts, run_case  # noqa: E402

PAGE = REPO / "docs" / "robustness.md"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="only the cheap cases; no page")
    p.add_argument("--case", action="append", help="run only this case (repeatable)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="do not write the page")
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    if args.list:
        for name, spec in CASES.items():
            print(f"{name:<32} {'quick' if spec['quick'] else 'full '}  {spec['description']}")
        return 0
    names = args.case or [n for n, s in CASES.items() if s["quick"] or not args.quick]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; see --list")
    results = []
    for name in names:
        r = run_case(name, Path(__file__).resolve(), REPO)
        results.append(r)
        print(f"{r['outcome']:>13}  {name:<30} {r['seconds']:6.1f} s  {short(r['detail'], 150)}",
              flush=True)
    print("\n" + totals_line(results))
    if not (args.quick or args.case or args.no_write):
        write_page(PAGE, results, sys.argv if argv is None else [sys.argv[0], *argv])
        print(f"wrote {PAGE.relative_to(REPO)}")
    bad = sum(v for k, v in counts(results).items() if k not in GOOD)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
