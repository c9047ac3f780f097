"""GMRES(50) on the eleven bundled SuiteSparse matrices with every preconditioner.

Run from the repository root::

    python benchmarks/real_matrices.py                 # writes docs/results/real_matrices.md
    python benchmarks/real_matrices.py --only west0479,steam2 --output /tmp/x.md

Settings: GMRES(50) from ``x0 = 0``, ``b = A @ ones(N)``, rtol 1e-8 on the
true residual (:func:`learned_precond.krylov.solve`), at most 2000 inner
iterations. Preconditioners: ``none``, ``jacobi``, ``ilu0``, ``ilut``
(spilu, drop_tol 1e-4, fill_factor 10), ``amg`` (pyamg: smoothed aggregation
for symmetric A, nonsymmetric SA otherwise), ``learned_lu`` (default
options, seed 0, the nested-dissection layout; ``pivoting='auto'``),
``learned_lu/nopiv`` (``pivoting='none'``), and with static pivoting
(:mod:`learned_precond.pivoting`) forced on every matrix, so that its effect
is visible where ``'auto'`` would not pivot: ``ilu0+mc64`` (the wrapper
:func:`learned_precond.pivoting.pivoted`) and ``learned_lu+mc64``
(``LearnedLU.fit(A, pivoting='mc64')``).

A preconditioner that cannot be built is reported as ``setup fails`` (the
reason is listed under the table); a solve that stops without meeting the
tolerance as ``no conv.`` (with its final relative residual in the notes).
"""

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyamg
import scipy
import torch

from learned_precond import (
    FitConvergenceWarning,
    IllConditionedWarning,
    LearnedLU,
    PreconditionerSetupError,
    get_preconditioner,
    problems,
)
from learned_precond.krylov import solve
from learned_precond.pivoting import needs_pivoting, pivoted

MATRICES = (
    "nos4",
    "gr_30_30",
    "1138_bus",
    "tumorAntiAngiogenesis_2",
    "sherman1",
    "west0479",
    "steam2",
    "cdde1",
    "jpwh_991",
    "orsirr_1",
    "add32",
)
PRECONDITIONERS = (
    "none", "jacobi", "ilu0", "ilut", "amg", "learned_lu", "learned_lu/nopiv",
    "ilu0+mc64", "learned_lu+mc64",
)
RTOL = 1e-8
RESTART = 50
MAXITER = 2000
SEED = 0
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "real_matrices.md"



def build(name, problem):
    """Fit preconditioner ``name`` on ``problem.A``; return (M, warnings caught)."""
    A = problem.A
    learned = {"seed": SEED}
    if problem.grid_shape is not None:
        learned["grid_shape"] = problem.grid_shape
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitConvergenceWarning)
        warnings.simplefilter("always", IllConditionedWarning)
        if name == "learned_lu":
            M = LearnedLU.fit(A, **learned)
        elif name == "learned_lu/nopiv":
            M = LearnedLU.fit(A, pivoting="none", **learned)
        elif name == "learned_lu+mc64":
            M = LearnedLU.fit(A, pivoting="mc64", **learned)
        elif name == "ilu0+mc64":
            M = pivoted("ilu0", A, pivoting="mc64")
        else:
            M = get_preconditioner(name).fit(A)
    notes = sorted({f"{w.category.__name__}: {_first_sentence(w.message)}" for w in caught
                    if issubclass(w.category, (FitConvergenceWarning, IllConditionedWarning))})
    return M, notes


def _first_sentence(message):
    """The warning's message up to its first ': ' or '. ' (no final period)."""
    text = " ".join(str(message).split())
    cut = text.find(": ")
    cut = text.find(". ") if cut < 0 else cut
    return (text if cut < 0 else text[:cut]).rstrip(".")


def run_one(name, problem):
    """One cell: a dict with status, iterations, times and notes."""
    A = problem.A
    n = A.shape[0]
    b = A @ np.ones(n)
    start = time.perf_counter()
    try:
        M, notes = build(name, problem)
    except PreconditionerSetupError as exc:
        return {"status": "setup fails", "reason": _one_line(exc)}
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
        return {"status": "setup fails", "reason": f"{type(exc).__name__}: {_one_line(exc)}"}
    setup = time.perf_counter() - start
    result = solve(A, b, M, method="gmres", restart=RESTART, rtol=RTOL, maxiter=MAXITER)
    status = "ok" if result.converged else "no conv."
    return {
        "status": status,
        "iterations": result.iterations,
        "relative_residual": result.relative_residual,
        "info": result.info,
        "setup_time": setup,
        "solve_time": result.solve_time,
        "nbytes": int(M.nbytes),
        "notes": notes,
    }


def _one_line(exc, limit=220):
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cell_iterations(cell):
    if cell["status"] == "ok":
        return str(cell["iterations"])
    return cell["status"]


def cell_time(cell):
    if cell["status"] == "setup fails":
        return "-"
    return f"{cell['setup_time']:.2g} / {cell['solve_time']:.2g}"


def write_report(results, matrices, names, path, elapsed):
    lines = []
    add = lines.append
    add("# GMRES(50) on the bundled real matrices")
    add("")
    add("Produced by `python benchmarks/real_matrices.py` "
        f"({datetime.date.today().isoformat()}, {elapsed / 60:.1f} min). "
        f"GMRES({RESTART}), x0 = 0, b = A @ ones(N), rtol {RTOL:g} on the true residual "
        f"`||b - A x|| / ||b||`, at most {MAXITER} inner iterations "
        "(`learned_precond.krylov.solve`).")
    add("")
    add(f"Software: Python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, pyamg {pyamg.__version__}, torch {torch.__version__}; "
        f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}.")
    add("")
    add("Preconditioners: `none`; `jacobi`; `ilu0` (true ILU(0)); `ilut` (scipy spilu, "
        "drop_tol 1e-4, fill_factor 10); `amg` (pyamg, SA for symmetric A, nonsymmetric SA "
        "otherwise); `learned_lu` (`LearnedLU.fit` defaults, seed 0: the nested-dissection "
        "layout, whose fronts are stored dense up to 1024 entries per coupling, so at these "
        "sizes it is close to an exact sparse factorization; `pivoting='auto'` pivots where "
        "the last column says so); "
        "`learned_lu/nopiv` (the same with `pivoting='none'`); and with MC64 static pivoting and scaling "
        "(`learned_precond.pivoting`, `A' = D_r P A D_c`, forced on every matrix): "
        "`ilu0+mc64`, `learned_lu+mc64`. "
        "LearnedLU's own `pivoting=` option was used ('auto' / 'none' / 'mc64').")
    add("")
    add("## Iterations")
    add("")
    add("Inner GMRES iterations to convergence; `no conv.` = not converged within "
        f"{MAXITER} iterations (or GMRES stagnated), `setup fails` = the preconditioner could "
        "not be built (reasons below). The last column says whether "
        "`static_pivoting(A, method='auto')` would pivot.")
    add("")
    add("| matrix | N | " + " | ".join(names) + " | auto pivots? |")
    add("|---|---:|" + "---:|" * len(names) + "---|")
    for m in matrices:
        A = results[m]["problem"].A
        needed, _ = needs_pivoting(A)
        row = [m, str(A.shape[0])]
        row += [cell_iterations(results[m]["cells"][p]) for p in names]
        row.append("yes" if needed else "no")
        add("| " + " | ".join(row) + " |")
    add("")
    add("## Setup / solve seconds")
    add("")
    add("| matrix | " + " | ".join(names) + " |")
    add("|---|" + "---:|" * len(names))
    for m in matrices:
        row = [m] + [cell_time(results[m]["cells"][p]) for p in names]
        add("| " + " | ".join(row) + " |")
    add("")
    add("## Why `auto` pivots")
    add("")
    for m in matrices:
        _, reason = needs_pivoting(results[m]["problem"].A)
        add(f"- `{m}`: {reason}.")
    add("")
    add("## Failures, non-convergence and warnings")
    add("")
    any_note = False
    for m in matrices:
        for p in names:
            cell = results[m]["cells"][p]
            if cell["status"] == "setup fails":
                add(f"- `{m}` / `{p}`: setup fails: {cell['reason']}")
                any_note = True
            elif cell["status"] == "no conv.":
                add(f"- `{m}` / `{p}`: no convergence after {cell['iterations']} iterations, "
                    f"final relative residual {cell['relative_residual']:.2g} "
                    f"(GMRES info {cell['info']}).")
                any_note = True
            for note in cell.get("notes", []):
                add(f"- `{m}` / `{p}`: {note}.")
                any_note = True
    if not any_note:
        add("None.")
    add("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated matrix names")
    parser.add_argument("--precond", default=None, help="comma-separated preconditioners")
    parser.add_argument("--output", default=str(OUTPUT), help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    matrices = MATRICES if args.only is None else tuple(args.only.split(","))
    names = PRECONDITIONERS if args.precond is None else tuple(args.precond.split(","))
    unknown = [m for m in matrices if m not in MATRICES] + [
        p for p in names if p not in PRECONDITIONERS]
    if unknown:
        parser.error(f"unknown matrix or preconditioner: {', '.join(unknown)}")
    start = time.perf_counter()
    results = {}
    for m in matrices:
        problem = problems.get_problem(m)
        results[m] = {"problem": problem, "cells": {}}
        for p in names:
            cell = run_one(p, problem)
            results[m]["cells"][p] = cell
            print(f"{m:>24} {p:>16}: {cell_iterations(cell):>12} "
                  f"{cell_time(cell)}", flush=True)
    elapsed = time.perf_counter() - start
    write_report(results, matrices, names, Path(args.output), elapsed)
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
