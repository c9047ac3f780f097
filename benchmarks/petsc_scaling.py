"""PETSc scale-out: block Jacobi and ASM with LearnedLU local factors on 1 and 2 MPI ranks.

2-D Poisson (``laplace_2d``) and 2-D convection-diffusion (vortex wind,
eps = 1e-2) at N = 65536 and 262144, PETSc GMRES(50) preconditioned on the
right. Preconditioners: block Jacobi and ASM (overlap 1) whose local solvers
are LearnedLU, our ILU(0) and AMG (pyamg V-cycle) through
``learned_precond.petsc``, or PETSc's own ILU(0); and PETSc's GAMG on the
whole matrix. Every configuration runs under ``mpiexec -n R`` (R = 1, 2; on
one rank block Jacobi and ASM are the same single block, so ASM is run on
two ranks only). Writes ``petsc.md`` to ``--out`` (default ``docs/results``),
including a growth model fitted to the runs.

    python benchmarks/petsc_scaling.py               # full run (about 20-25 min on 2 shared cores)
    python benchmarks/petsc_scaling.py --quick       # N = 16384 only (a few minutes)
    python benchmarks/petsc_scaling.py --sizes 128,256 --ranks 1,2 --out /tmp/petsc

Needs petsc4py (``tools/install_petsc.sh``) and ``mpiexec``. Each rank runs
torch, numpy's BLAS and PETSc with one thread (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``) so that two ranks use the two cores.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (  # noqa: E402
    DEFAULT_OUT,
    REPO,
    environment_lines,
    format_bytes,
    format_seconds,
    load_average,
    markdown_table,
)

RTOL = 1e-8
RESTART = 50
MAXITER = 2000
OVERLAP = 1
SIZES = (256, 512)  # grid side n: N = 65536, 262144
QUICK_SIZES = (128,)  # N = 16384
RANKS = (1, 2)
#: LearnedLU options on every local block (plus grid_shape of the block's strip).
LEARNED_LU_OPTIONS = {"max_steps": 10, "seed": 0}
FIT_OPTIONS = {"learned_lu": LEARNED_LU_OPTIONS, "amg": {"seed": 0}, "ilu0": {}}
#: Local solvers under block Jacobi / ASM, in run order (LearnedLU first).
LOCAL_METHODS = ("learned_lu", "ilu0", "amg", "petsc:ilu")
METHOD_LABEL = {"learned_lu": "LearnedLU", "ilu0": "our ILU(0)", "amg": "our AMG (pyamg)",
                "petsc:ilu": "PETSc ILU(0)", "-": "-"}
PROBLEMS = {
    "poisson": ("2-D Poisson (`laplace_2d`, 5-point)", "laplace_2d", {}),
    "convdiff": ("2-D convection-diffusion, vortex (`convection_diffusion_2d`, eps=0.01, "
                 "velocity='vortex')", "convection_diffusion_2d",
                 {"velocity": "vortex", "eps": 1e-2}),
}


# -- one group of runs on R ranks (inside mpiexec) ---------------------------------------


def worker(args):
    import petsc4py

    petsc4py.init([])
    import torch
    from petsc4py import PETSc

    from learned_precond import problems
    from learned_precond.petsc import solve, strip_grid

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # FitConvergenceWarning at max_steps=10 is expected
    comm = PETSc.COMM_WORLD
    size = comm.getSize()
    _, name, params = PROBLEMS[args.problem]
    n = args.n
    A = problems.get(name, n=n, **params)
    b = A @ np.ones(A.shape[0])
    configs = [("bjacobi", m) for m in LOCAL_METHODS]
    if size > 1:
        configs += [("asm", m) for m in LOCAL_METHODS]
    configs.append(("gamg", "-"))
    rows = []
    for pc, method in configs:
        row = {"problem": args.problem, "n": n, "N": A.shape[0], "ranks": size, "pc": pc,
               "method": method}
        # the same decision on every rank: the deadline is compared with rank 0's clock
        late = np.zeros(1)
        if comm.getRank() == 0 and time.time() > args.deadline:
            late[0] = 1
        from learned_precond.petsc import _allgather

        if _allgather(late, comm)[0, 0]:
            row["skipped"] = "time budget of the run spent"
            rows.append(row)
            continue
        options = FIT_OPTIONS.get(method, {})
        if method == "learned_lu":
            options = strip_grid(n, **options)
        res = solve(A, b, pc=pc, method=method, overlap=OVERLAP, restart=RESTART, rtol=RTOL,
                    maxiter=MAXITER, fit_options=options)
        row.update(iterations=res.iterations, converged=res.converged, reason=res.reason,
                   relative_residual=res.relative_residual, setup=res.setup_time,
                   fit=float(res.fit_times.max()), solve=res.solve_time,
                   local_sizes=res.local_sizes, memory=res.memory)
        rows.append(row)
        if comm.getRank() == 0:
            print(f"  {args.problem} N={A.shape[0]} ranks={size} {pc}/{method}: "
                  f"{res.iterations} its ({res.reason}), setup {res.setup_time:.3g} s, "
                  f"solve {res.solve_time:.3g} s", flush=True)
    if comm.getRank() == 0:
        Path(args.json).write_text(json.dumps(rows))


# -- the driver ---------------------------------------------------------------------------


def _petsc_version():
    code = ("import petsc4py; petsc4py.init([]); from petsc4py import PETSc; "
            "print('%d.%d.%d' % PETSc.Sys.getVersion())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def _mpi_version():
    out = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if "Version" in line:
            return "MPICH " + line.split(":", 1)[1].strip()
    return "unknown MPI"


def run_group(problem, n, ranks, deadline, fit_args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = ["mpiexec", "-n", str(ranks), sys.executable, str(Path(__file__).resolve()),
               "--worker", "--problem", problem, "--n", str(n), "--json", str(out),
               "--deadline", repr(deadline), *fit_args]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=REPO, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        print(proc.stdout, end="", flush=True)
        if proc.returncode != 0 or not out.is_file():
            raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}).")
        rows = json.loads(out.read_text())
    return rows, time.perf_counter() - start


def _fmt_its(row):
    if "skipped" in row:
        return "skipped"
    if row["converged"]:
        return str(row["iterations"])
    return f"> {row['iterations']} ({row['reason'].lower()})"


def results_table(rows):
    headers = ["N", "ranks", "PC", "local solver", "GMRES(50) its", "true residual",
               "setup", "of which local fit", "solve", "total", "local size(s)",
               "memory (ours)"]
    table = []
    for r in rows:
        if "skipped" in r:
            table.append([r["N"], r["ranks"], r["pc"], METHOD_LABEL[r["method"]], "skipped",
                          *["-"] * 7])
            continue
        fit = format_seconds(r["fit"]) if r["method"] not in ("-", "petsc:ilu") else "-"
        sizes = ", ".join(str(s) for s in r["local_sizes"]) or "-"
        mem = format_bytes(r["memory"]) if r["memory"] else "-"
        table.append([r["N"], r["ranks"], r["pc"], METHOD_LABEL[r["method"]], _fmt_its(r),
                      f"{r['relative_residual']:.1e}", format_seconds(r["setup"]), fit,
                      format_seconds(r["solve"]), format_seconds(r["setup"] + r["solve"]),
                      sizes, mem])
    return markdown_table(headers, table)


def _find(rows, problem, N, ranks, pc, method):
    for r in rows:
        if (r["problem"], r["N"], r["ranks"], r["pc"], r["method"]) == (problem, N, ranks, pc,
                                                                        method):
            return r if "skipped" not in r else None
    return None


def fit_growth(rows, problem, pc, method):
    """Least-squares ``log y = c + a log N + b log p`` for iterations and total time.

    One rank is the same single block for block Jacobi and ASM, so the 1-rank
    block Jacobi run is the p = 1 point of both. Iteration counts of runs that
    did not converge are lower bounds and are left out. Returns a dict with
    the exponents, or None when fewer than 3 points remain.
    """
    pts = []
    for r in rows:
        if r["problem"] != problem or "skipped" in r or r["method"] != method:
            continue
        if not (r["pc"] == pc or (r["ranks"] == 1 and r["pc"] == "bjacobi")):
            continue
        if not r["converged"]:
            continue
        pts.append((r["N"], r["ranks"], r["iterations"], r["setup"] + r["solve"],
                    r["setup"], r["solve"] / max(r["iterations"], 1)))
    if len({(N, p) for N, p, *_ in pts}) < 3 or len({p for _, p, *_ in pts}) < 2:
        return None
    pts = np.array(pts, dtype=float)
    X = np.column_stack([np.ones(len(pts)), np.log(pts[:, 0]), np.log(pts[:, 1])])
    out = {"points": len(pts)}
    for key, col in (("its", 2), ("total", 3), ("setup", 4), ("per_it", 5)):
        coef, *_ = np.linalg.lstsq(X, np.log(pts[:, col]), rcond=None)
        out[key] = coef  # c, a (N exponent), b (rank exponent)
    return out


def growth_section(rows, sizes_n):
    lines = ["## How iterations and time grow with the number of ranks", ""]
    headers = ["problem", "PC", "local solver", "its at 1 rank", "its at 2 ranks",
               "ratio (2/1)", "b_its (its ~ p^b)", "a_its (its ~ N^a)",
               "b_time (total ~ p^b)", "predicted its, p = 4 / 16 / 64 (N = max)"]
    table, fitted = [], {}
    n_max = max(sizes_n)
    for problem in PROBLEMS:
        for pc in ("bjacobi", "asm"):
            for method in LOCAL_METHODS:
                for N in sizes_n:
                    one = _find(rows, problem, N, 1, "bjacobi", method)
                    two = _find(rows, problem, N, 2, pc, method)
                    if one is None or two is None:
                        continue
                    ratio = (two["iterations"] / one["iterations"]
                             if one["converged"] and two["converged"] else None)
                    table_row = [problem, pc, METHOD_LABEL[method], f"{_fmt_its(one)} (N={N})",
                                 _fmt_its(two), f"{ratio:.2f}" if ratio else "-"]
                    if N == n_max:
                        model = fit_growth(rows, problem, pc, method)
                        fitted[(problem, pc, method)] = model
                        if model is not None:
                            c, a, b = model["its"]
                            pred = [math.exp(c + a * math.log(N) + b * math.log(p))
                                    for p in (4, 16, 64)]
                            table_row += [f"{b:.2f}", f"{a:.2f}", f"{model['total'][2]:.2f}",
                                          " / ".join(f"{v:.0f}" for v in pred)]
                        else:
                            table_row += ["-"] * 4
                    else:
                        table_row += [""] * 4
                    table.append(table_row)
    lines += [markdown_table(headers, table), ""]
    lines += ["Model: `log y = c + a log N + b log p` fitted by least squares to the converged "
              "runs of each (problem, PC, local solver) at both N and p = 1, 2 (the one-rank "
              "run is the p = 1 point of both block Jacobi and ASM); rows without a fit have "
              "fewer than three converged points. With two rank counts `b` is the slope of one "
              "doubling, so the predictions at p = 4 ... 64 are extrapolations of a power law, "
              "not measurements.", ""]
    lines += _growth_paragraph(rows, fitted, sizes_n)
    return lines


def _growth_paragraph(rows, fitted, sizes_n):
    def its(problem, N, ranks, pc, method):
        r = _find(rows, problem, N, ranks, pc, method)
        return _fmt_its(r) if r else "-"

    n_max = max(sizes_n)
    parts = []
    for problem in PROBLEMS:
        for pc in ("bjacobi", "asm"):
            model = fitted.get((problem, pc, "learned_lu"))
            if model is not None:
                c, a, b = model["its"]
                parts.append(f"{problem}/{pc}: its ~ N^{a:.2f} p^{b:.2f}, total time ~ "
                             f"p^{model['total'][2]:.2f} (setup ~ p^{model['setup'][2]:.2f}, "
                             f"time per iteration ~ p^{model['per_it'][2]:.2f})")
    learned = "; ".join(parts) if parts else (
        "no fit (fewer than three converged LearnedLU runs per problem and PC)")
    gamg = ", ".join(f"{problem} {its(problem, n_max, 1, 'gamg', '-')} -> "
                     f"{its(problem, n_max, 2, 'gamg', '-')}" for problem in PROBLEMS)
    bj = ", ".join(f"{problem} {its(problem, n_max, 1, 'bjacobi', 'amg')} -> "
                   f"{its(problem, n_max, 2, 'bjacobi', 'amg')} (block Jacobi) / "
                   f"{its(problem, n_max, 2, 'asm', 'amg')} (ASM)" for problem in PROBLEMS)
    return [
        "What the fit says, and what to expect on more ranks. Fitted to these runs for the "
        f"LearnedLU local factors: {learned}. Two effects move the iteration count when the "
        "ranks double. The domain-decomposition error grows: with exact local solves, "
        "one-level block Jacobi on p strips of an n x n grid has condition number "
        "~ 1/(H h) = p n (subdomain width H = 1/p, mesh width h = 1/n), so Krylov iterations "
        "grow like sqrt(p n), i.e. b = 1/2 per doubling (a factor 1.41). The local solver "
        "error shrinks: an inexact local solver (ILU(0), LearnedLU with 10 steps) is better on "
        "a smaller block, so for an inexact solver the measured b mixes the two and can be "
        "below 1/2, even negative. The AMG local solver is close to exact, so its block "
        f"Jacobi iterations show the decomposition effect alone at N = {n_max}: {bj}. "
        "ASM with overlap delta (in mesh widths) replaces 1/(H h) by about 1/(H delta h): "
        "the same sqrt(p) growth, divided by sqrt(delta), so overlap lowers the constant but "
        "not the exponent. Only a coarse space (a two-level method: a global problem with one "
        "or a few unknowns per subdomain, e.g. PETSc's `-pc_asm` inside `-pc_type mg` or "
        "`PCDeflation`, or GAMG) removes the growth with p: the two-level Schwarz bound "
        "1 + H/delta does not grow when p grows at fixed N. GAMG's iteration count, already "
        f"two-level by construction, at N = {n_max} on 1 -> 2 ranks: {gamg}. The time per "
        "rank is setup(N/p) + its(p) x apply(N/p): the LearnedLU fit (~N^1.2 in "
        "`scaling.md`) and the apply shrink like 1/p while the iterations grow like "
        "p^b, so one-level block Jacobi or ASM keeps gaining from more ranks only while "
        "b < 1, and the gain per rank drops as the p^b factor grows; past a few tens of "
        "ranks a coarse space is needed.",
        "",
    ]


def write_page(path, rows, *, argv, wall, load_start, sizes, ranks_list, petsc_version,
               mpi_version, group_times):
    sizes_n = sorted({r["N"] for r in rows})
    lines = [
        "# PETSc scale-out: block Jacobi and ASM with LearnedLU local factors",
        "",
        "Generated by `benchmarks/petsc_scaling.py`; do not edit by hand (rerun the script).",
        "",
        "## How the numbers were measured",
        "",
        *environment_lines(argv),
        f"- PETSc {petsc_version} through petsc4py (built by `tools/install_petsc.sh`: "
        f"`--with-debugging=0`, `-O2`, OpenBLAS), {mpi_version}; ranks launched with "
        f"`mpiexec -n R` on this one machine, R = {', '.join(map(str, ranks_list))}.",
        "- **The machine was shared**: other jobs ran on its 2 cores during the run "
        f"(load average at start: {load_start}; at the end: {load_average()}), so times "
        "are indicative, and 2-rank times include contention for the 2 cores.",
        "- one thread per rank: `OMP_NUM_THREADS=1`, `OPENBLAS_NUM_THREADS=1`, "
        "`torch.set_num_threads(1)`.",
        f"- total wall time of the run: {wall / 60:.1f} min (mpiexec start-up and matrix "
        "assembly included; the per-group times are "
        + ", ".join(f"{k} {v:.0f} s" for k, v in group_times.items()) + ").",
        f"- KSP `gmres`, restart {RESTART}, right preconditioning (so `rtol` applies to the "
        f"true residual), `rtol={RTOL:g}`, `atol=0`, `max_it={MAXITER}`; `b = A @ ones(N)`, "
        "`x0 = 0`. *its*: KSP iterations; *true residual*: `||b - A x|| / ||b||` recomputed.",
        "- *setup*: wall time to build the preconditioner (block extraction, every rank's "
        "local fit, PETSc's setup), maximum over the ranks after a barrier; *local fit*: "
        "the largest rank's `fit` time inside it; *solve*: `KSP.solve`, maximum over ranks.",
        "- rows are split by PETSc's default contiguous partition, so each rank owns a strip "
        "of whole grid rows; ASM overlap 1 adds one grid row per interface.",
        "- local solvers through `learned_precond.petsc.setup_block_jacobi` / `setup_asm`: "
        "`LearnedLU.fit(A_local, grid_shape=(rows of the strip, n), "
        + ", ".join(f"{k}={v}" for k, v in LEARNED_LU_OPTIONS.items())
        + ")` on every rank (the library default is max_steps=200; 10 keeps the 262144 fits "
        "within the run's budget, as in `scaling.md`), `ILU0.fit`, `AMG.fit(seed=0)` "
        "(one pyamg V-cycle per application); *PETSc ILU(0)* is `-sub_pc_type ilu` "
        "(levels 0). *GAMG* is `-pc_type gamg` with PETSc's defaults on the whole matrix. "
        "Our threshold ILU is left out (its solves at N = 262144 alone would take most of the "
        "run's budget; see `scaling.md`).",
        "- on one rank block Jacobi is the single block, i.e. the local solver on the whole "
        "matrix; ASM is measured on two ranks only (on one rank it is the same solver).",
        "",
    ]
    for problem, (title, _, _) in PROBLEMS.items():
        prob_rows = [r for r in rows if r["problem"] == problem]
        if not prob_rows:
            continue
        lines += [f"## {title}", "", results_table(prob_rows), ""]
    lines += growth_section(rows, sizes_n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main(argv=None):
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 16384 only")
    parser.add_argument("--sizes", help="grid sides n, comma separated (N = n^2)")
    parser.add_argument("--ranks", default=",".join(map(str, RANKS)))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--budget", type=float, default=30 * 60,
                        help="seconds; configurations not started by then are skipped")
    # worker mode (run under mpiexec by the driver)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--problem", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=math.inf, help=argparse.SUPPRESS)
    args = parser.parse_args(argv[1:])
    if args.worker:
        return worker(args)

    petsc_version = _petsc_version()
    if petsc_version is None:
        raise SystemExit("petsc4py is not importable: build it with tools/install_petsc.sh "
                         "(see docs/petsc.md).")
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else list(QUICK_SIZES if args.quick else SIZES))
    ranks_list = [int(r) for r in args.ranks.split(",")]
    problems = args.problems.split(",")
    load_start = load_average()
    start = time.perf_counter()
    deadline = time.time() + args.budget
    rows, group_times = [], {}
    for problem in problems:
        for n in sizes:
            for ranks in ranks_list:
                print(f"{problem} n={n} (N={n * n}) on {ranks} rank(s)", flush=True)
                group, seconds = run_group(problem, n, ranks, deadline, [])
                rows += group
                group_times[f"{problem}/N={n * n}/{ranks}r"] = seconds
    write_page(args.out / "petsc.md", rows, argv=argv, wall=time.perf_counter() - start,
               load_start=load_start, sizes=sizes, ranks_list=ranks_list,
               petsc_version=petsc_version, mpi_version=_mpi_version(), group_times=group_times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
