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

    python benchmarks/petsc_scaling.py           # full run (35 min on 2 cores shared with 3 jobs)
    python benchmarks/petsc_scaling.py --quick   # N = 16384 only (a few minutes)
    python benchmarks/petsc_scaling.py --from-json benchmarks/results/petsc_scaling.json
    python benchmarks/petsc_scaling.py --sizes 128,256 --ranks 1,2 --out /tmp/petsc

``--from-json`` rewrites the page from the raw rows a run saved (git-ignored),
without running anything. Needs petsc4py (``tools/install_petsc.sh``) and
``mpiexec``. Each rank runs torch, numba, numpy's BLAS and PETSc with one thread
(``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``) so that two ranks use the
two cores.
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
    warm_up,
)

RTOL = 1e-8
RESTART = 50
MAXITER = 1000
OVERLAP = 1
SIZES = (256, 512)  # grid side n: N = 65536, 262144
QUICK_SIZES = (128,)  # N = 16384
#: Raw rows of the last run (git-ignored), from which ``--from-json`` rewrites the page.
RAW = REPO / "benchmarks" / "results" / "petsc_scaling.json"
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
    # numba kernels, torch and pyamg loaded before anything is timed
    warm_up(["learned_lu", "ilu0", "amg"])
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
        from learned_precond.petsc.convert import allgather

        if allgather(late, comm)[0, 0]:
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
           "NUMBA_NUM_THREADS": "1",
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


PREDICT_AT = (4, 16, 64)
#: Iteration growth per doubling of p (p >= 2) that one-level Schwarz theory gives for
#: strips with exact local solves: its ~ sqrt(condition number) ~ sqrt(p n / overlap).
THEORY_B = 0.5


def _setup_exponent(rows, problem, method):
    """s in setup ~ N^s, from the one-rank runs at the two smallest-to-largest N (or 1)."""
    pts = sorted((r["N"], r["setup"]) for r in rows
                 if r["problem"] == problem and r["method"] == method and r["ranks"] == 1
                 and r["pc"] == "bjacobi" and "skipped" not in r and r["setup"] > 0)
    if len(pts) < 2:
        return None
    (n1, s1), (n2, s2) = pts[0], pts[-1]
    return math.log(s2 / s1) / math.log(n2 / n1)


def growth_model(one, two, s_setup):
    """Iterations and time on p ranks, from the 1- and 2-rank runs of one configuration.

    Measured: ``b_meas = log2(its(2) / its(1))``, the growth of the first doubling.
    Predicted for p >= 2: ``its(p) = its(2) (p / 2)^THEORY_B`` (the one-level Schwarz
    rate, anchored at the measured 2-rank count; from 1 to 2 ranks the
    decomposition first appears, which is not the asymptotic rate), and
    ``total(p) = setup(1) p^-s + its(p) t(1) / p`` with ``t(1)`` the one-rank time per
    iteration and ``s`` the one-rank setup exponent in N (the local problem is N/p):
    the work per rank divided ideally, which this shared 2-core machine cannot show.
    Needs both runs converged.
    """
    if one is None or two is None or not (one["converged"] and two["converged"]):
        return None
    t1 = one["solve"] / one["iterations"]
    s_setup = 1.0 if s_setup is None else s_setup
    b_meas = math.log2(two["iterations"] / one["iterations"])

    def its(p):
        return two["iterations"] * (p / 2) ** THEORY_B

    def total(p):
        return one["setup"] * p ** (-s_setup) + its(p) * t1 / p

    total_1 = one["setup"] + one["solve"]
    return {"b_meas": b_meas, "s": s_setup, "its": its, "total": total,
            "efficiency": lambda p: total_1 / (p * total(p))}


def growth_section(rows, sizes_n, grid_check):
    lines = ["## How iterations and time grow with the number of ranks", ""]
    ps = " / ".join(map(str, PREDICT_AT))
    headers = ["problem", "N", "PC", "local solver", "its 1 -> 2 ranks", "b_meas",
               "total 1 / 2 ranks (measured)", "s (setup ~ N^s)", f"predicted its, p = {ps}",
               f"predicted total, p = {ps}", f"parallel efficiency, p = {ps}"]
    table, models = [], {}
    for problem in PROBLEMS:
        for N in sizes_n:
            for pc in ("bjacobi", "asm"):
                for method in LOCAL_METHODS:
                    one = _find(rows, problem, N, 1, "bjacobi", method)
                    two = _find(rows, problem, N, 2, pc, method)
                    if one is None or two is None:
                        continue
                    model = growth_model(one, two, _setup_exponent(rows, problem, method))
                    models[(problem, N, pc, method)] = model
                    cells = [problem, N, pc, METHOD_LABEL[method],
                             f"{_fmt_its(one)} -> {_fmt_its(two)}"]
                    cells.append("-" if model is None else f"{model['b_meas']:+.2f}")
                    cells.append(f"{format_seconds(one['setup'] + one['solve'])} / "
                                 f"{format_seconds(two['setup'] + two['solve'])}")
                    if model is None:
                        cells += ["-"] * 4
                    else:
                        cells += [f"{model['s']:.2f}",
                                  " / ".join(f"{model['its'](p):.0f}" for p in PREDICT_AT),
                                  " / ".join(format_seconds(model["total"](p))
                                             for p in PREDICT_AT),
                                  " / ".join(f"{model['efficiency'](p):.2f}"
                                             for p in PREDICT_AT)]
                    table.append(cells)
    lines += [
        "Measured: the iterations on 1 and 2 ranks and `b_meas = log2(its(2) / its(1))`, the "
        "growth over the first doubling (the one-rank block Jacobi run is the p = 1 point of "
        "ASM too). Predicted, for p >= 2: `its(p) = its(2) (p/2)^0.5` (the one-level Schwarz "
        "rate for strips, anchored at the measured 2-rank count: the step from 1 to 2 ranks is "
        "where the decomposition first appears, not the asymptotic rate) and "
        "`total(p) = setup(1) p^-s + its(p) t(1) / p`, with `t(1)` the one-rank time per "
        "iteration and `s` the exponent of the one-rank setup time in N measured here "
        "(each rank fits a problem of N/p unknowns); *parallel efficiency* is "
        "`total(1) / (p total(p))`. The time model divides the work per rank ideally (no "
        "communication cost): the measured 2-rank times, on 2 cores shared with other jobs, "
        "cannot show that. Two rank counts give one doubling, so these are extrapolations of "
        "the stated model, not measurements. Configurations with a run that did not converge "
        "have no prediction (its iteration count is only a lower bound).",
        "",
        markdown_table(headers, table),
        "",
    ]
    lines += _growth_paragraph(rows, models, sizes_n, grid_check)
    return lines


def subdomain_grid_check():
    """GMRES iterations of LearnedLU on Poisson strips with 2^k and 2^k + 1 grid rows.

    ASM's overlapping strips have n/p + 1 rows; this measures, serially, how
    much worse LearnedLU (the run's options) fits such a grid than the
    power-of-two strip of block Jacobi. Returns rows ``(rows, cols, its)``.
    """
    import scipy.sparse as sp
    import torch

    from learned_precond import LearnedLU
    from learned_precond.krylov import solve as scipy_solve

    torch.set_num_threads(1)
    out = []
    for rows, cols in ((32, 64), (33, 64), (64, 128), (65, 128)):
        def lap(k):
            return sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(k, k))

        A = sp.csr_array(sp.kron(lap(rows), sp.eye_array(cols))
                         + sp.kron(sp.eye_array(rows), lap(cols)))
        b = A @ np.ones(A.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            M = LearnedLU.fit(A, grid_shape=(rows, cols), **LEARNED_LU_OPTIONS)
        res = scipy_solve(A, b, M, method="gmres", rtol=RTOL, restart=RESTART, maxiter=MAXITER)
        out.append((rows, cols, res.iterations if res.converged else None))
    return out


def _growth_paragraph(rows, models, sizes_n, grid_check):
    def its(problem, N, ranks, pc, method):
        r = _find(rows, problem, N, ranks, pc, method)
        return _fmt_its(r).split(" (")[0] if r else "-"

    def pairs(method, pcs=("bjacobi", "asm")):
        """(problem, N, pc, model) of the runs of ``method`` on 2 ranks."""
        return [(problem, N, pc, models.get((problem, N, pc, method)))
                for problem in PROBLEMS for N in sizes_n for pc in pcs
                if _find(rows, problem, N, 2, pc, method)]

    def jump(problem, N, pc, method):
        return f"{its(problem, N, 1, 'bjacobi', method)} -> {its(problem, N, 2, pc, method)}"

    ranks = " / ".join(map(str, PREDICT_AT))
    fitted, censored = [], []
    for problem, N, pc, model in pairs("learned_lu"):
        if model is None:
            censored.append(f"{problem} N={N} {pc}")
            continue
        predicted_its = " / ".join(f"{model['its'](p):.0f}" for p in PREDICT_AT)
        efficiency = " / ".join(f"{model['efficiency'](p):.2f}" for p in PREDICT_AT)
        fitted.append(
            f"{problem} N={N} {pc}: {jump(problem, N, pc, 'learned_lu')} iterations "
            f"(b_meas = {model['b_meas']:+.2f}), predicted {predicted_its} iterations and "
            f"parallel efficiency {efficiency} on {ranks} ranks (one-rank setup ~ "
            f"N^{model['s']:.2f})")
    learned = "; ".join(fitted) if fitted else "no converged pair of runs"
    if censored:
        learned += (". Runs that stopped at the iteration limit on 1 and 2 ranks give no "
                    "exponent: " + ", ".join(censored))
    amg = "; ".join(f"{problem} N={N} {pc} {jump(problem, N, pc, 'amg')}"
                    for problem, N, pc, model in pairs("amg") if model is not None)
    ilu = "; ".join(f"{problem} N={N} {pc} {jump(problem, N, pc, 'petsc:ilu')}"
                    for problem, N, pc, model in pairs("petsc:ilu") if model is not None)
    gamg = "; ".join(f"{problem} N={N} {its(problem, N, 1, 'gamg', '-')} -> "
                     f"{its(problem, N, 2, 'gamg', '-')}"
                     for problem, N, _, _ in pairs("-", pcs=("gamg",)))
    grid_text = ", ".join(f"{r} x {c}: {its_ if its_ else 'not converged'}"
                          for r, c, its_ in grid_check)
    contention = ""
    small = min(sizes_n)
    one = _find(rows, "poisson", small, 1, "bjacobi", "petsc:ilu")
    two = _find(rows, "poisson", small, 2, "bjacobi", "petsc:ilu")
    if one and two and one["converged"] and two["converged"]:
        contention = (f" (PETSc ILU(0) block Jacobi, Poisson N={small}: "
                      f"{two['iterations'] / one['iterations']:.2f}x the iterations took "
                      f"{two['solve'] / one['solve']:.1f}x the solve time on 2 ranks)")
    return [
        f"**What to expect on more ranks.** LearnedLU local factors: {learned}.",
        "",
        "Block Jacobi drops the couplings between the ranks' blocks, so its iteration count "
        "grows with the number of subdomains p: for exact local solves on p strips of an "
        "n x n grid (strip width H = 1/p, mesh width h = 1/n) the preconditioned operator has "
        "condition number ~ 1/(H h) = p n, and Krylov iterations grow like sqrt(p n), a "
        "factor 1.41 per doubling of p, without bound; that is the `(p/2)^0.5` of the "
        "predictions. Going from 1 to 2 ranks is the step from no decomposition to one "
        "interface, and is steeper for a local solver that is a good global method on one "
        f"rank (our AMG: {amg or '-'}). An inexact local solver (ILU(0), LearnedLU with 10 "
        "fitting steps) is more accurate on a smaller block, which hides part of the growth "
        f"on a few ranks (PETSc ILU(0): {ilu or '-'}; LearnedLU: see above); the sqrt(p) "
        "growth of the decomposition wins as p grows. ASM with an overlap of delta grid "
        "lines changes 1/(H h) into about "
        "1/(H delta h) (the one-level Schwarz bound (1 + H/(delta h))/H^2 for strips): about "
        "sqrt(delta) fewer iterations, the same sqrt(p) growth; overlap lowers the constant, "
        "not the rate, as the AMG and ILU(0) rows show. LearnedLU under ASM is the exception: "
        "the overlapping subdomains have n/p + 1 grid rows, not a power of two, and "
        "LearnedLU's hierarchical fit is markedly worse on such grids (serially, with the "
        f"same options, GMRES({RESTART}) iterations on Poisson {grid_text}), which outweighs "
        "the overlap. Only a coarse space (a two-level method: a few unknowns per subdomain "
        "in a global coarse problem, as in PETSc's `PCMG`, `PCGAMG` or `-pc_type deflation`) "
        "stops the growth: the two-level Schwarz bound 1 + H/(delta h) does not grow with p "
        "at fixed N, so the iterations would stay near the 2-rank count. GAMG, two-level by "
        f"construction, went {gamg} on 1 -> 2 ranks (PETSc's defaults, which target "
        "symmetric problems, do not converge on the convection-dominated vortex problem). "
        "For the time: setup and work per iteration shrink like p^-s and 1/p while the "
        "iterations grow like sqrt(p), so the one-level total keeps falling but the parallel "
        "efficiency drops towards p^-0.5 once the iteration term dominates; with a coarse "
        "space the iteration factor disappears and the efficiency is limited by the coarse "
        "solve and communication instead. On this machine the measured 2-rank solve times "
        "are inflated by the two ranks waiting for each other on cores shared with other "
        f"jobs{contention}, which is why the time predictions use the one-rank costs.",
        "",
    ]


def write_page(path, run):
    rows, wall, ranks_list = run["rows"], run["wall"], run["ranks_list"]
    sizes_n = sorted({r["N"] for r in rows})
    grid_check = run.get("subdomain_check")
    late_check = []
    if grid_check is None:  # a run saved before the check existed: measure it now
        grid_check = subdomain_grid_check()
        late_check = ["- the serial subdomain-grid check quoted in the last section "
                      "(`subdomain_grid_check`) was measured when this page was written from "
                      "the run's saved rows, not during the run."]
    lines = [
        "# PETSc scale-out: block Jacobi and ASM with LearnedLU local factors",
        "",
        "Generated by `benchmarks/petsc_scaling.py`; do not edit by hand (rerun the script).",
        "",
        "## How the numbers were measured",
        "",
        *run["environment"],
        f"- PETSc {run['petsc_version']} through petsc4py (built by `tools/install_petsc.sh`: "
        f"`--with-debugging=0`, `-O2`, OpenBLAS), {run['mpi_version']}; ranks launched with "
        f"`mpiexec -n R` on this one machine, R = {', '.join(map(str, ranks_list))}.",
        "- **The machine was shared**: other jobs ran on its 2 cores during the run "
        f"(load average at start: {run['load_start']}; at the end: {run['load_end']}), so times "
        "are indicative, and 2-rank times include contention for the 2 cores.",
        "- one thread per rank: `OMP_NUM_THREADS=1`, `OPENBLAS_NUM_THREADS=1`, "
        "`NUMBA_NUM_THREADS=1`, `torch.set_num_threads(1)`; numba kernels, torch and pyamg "
        "are warmed up on a tiny matrix in every rank before anything is timed.",
        f"- total wall time of the run: {wall / 60:.1f} min (mpiexec start-up and matrix "
        "assembly included; the per-group times are "
        + ", ".join(f"{k} {v:.0f} s" for k, v in run["group_times"].items()) + ").",
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
        *late_check,
        "",
    ]
    for problem, (title, _, _) in PROBLEMS.items():
        prob_rows = [r for r in rows if r["problem"] == problem]
        if not prob_rows:
            continue
        lines += [f"## {title}", "", results_table(prob_rows), ""]
    lines += growth_section(rows, sizes_n, grid_check)
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
    parser.add_argument("--budget", type=float, default=45 * 60,
                        help="seconds; configurations not started by then are skipped")
    # worker mode (run under mpiexec by the driver)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--problem", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=math.inf, help=argparse.SUPPRESS)
    parser.add_argument("--from-json", type=Path,
                        help=f"rewrite the page from a run's saved rows (default file: {RAW})")
    args = parser.parse_args(argv[1:])
    if args.worker:
        return worker(args)
    if args.from_json:
        write_page(args.out / "petsc.md", json.loads(args.from_json.read_text()))
        return 0

    petsc_version = _petsc_version()
    if petsc_version is None:
        raise SystemExit("petsc4py is not importable: build it with tools/install_petsc.sh "
                         "(see docs/petsc.md).")
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else list(QUICK_SIZES if args.quick else SIZES))
    ranks_list = [int(r) for r in args.ranks.split(",")]
    problems = args.problems.split(",")
    load_start = load_average()
    environment = environment_lines(argv)
    start = time.perf_counter()
    deadline = time.time() + args.budget
    print("serial check: LearnedLU on 2^k and 2^k + 1 grid rows", flush=True)
    grid_check = subdomain_grid_check()
    rows, group_times = [], {}
    # size by size, so that a run short of time loses the largest size, not a problem
    for n in sizes:
        for problem in problems:
            for ranks in ranks_list:
                print(f"{problem} n={n} (N={n * n}) on {ranks} rank(s)", flush=True)
                group, seconds = run_group(problem, n, ranks, deadline, [])
                rows += group
                group_times[f"{problem}/N={n * n}/{ranks}r"] = seconds
    run = {"rows": rows, "argv": argv, "wall": time.perf_counter() - start,
           "load_start": load_start, "load_end": load_average(), "ranks_list": ranks_list,
           "petsc_version": petsc_version, "mpi_version": _mpi_version(),
           "group_times": group_times, "environment": environment,
           "subdomain_check": grid_check}
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps(run, indent=1))
    write_page(args.out / "petsc.md", run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
