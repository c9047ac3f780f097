"""How setup, apply, iterations and memory grow with N, for LearnedLU and the baselines.

Runs the 2-D Poisson matrix and 2-D convection-diffusion with the vortex
velocity at N = 4096, 16384, 65536, 262144, and the dense RBF kernel at
N = 1024 ... 16384, with LearnedLU, ILU(0), threshold ILU, AMG and a direct
solve (SuperLU ``splu`` / LAPACK ``lu_factor``, the ``exact`` preconditioner
used as a solver). Writes ``scaling.md`` and three log-log figures
(``scaling_time.png``, ``scaling_iterations.png``, ``scaling_memory.png``)
to ``--out`` (default ``docs/results``). Every number in the page comes from
one run of this script.

    python benchmarks/scaling.py                 # full run (< 25 min on 2 cores)
    python benchmarks/scaling.py --quick         # stop at N = 16384
    python benchmarks/scaling.py --max-n 65536 --out /tmp/scaling --fit max_steps=20

A measurement whose projected cost does not fit the time budget (``--budget``)
or the per-measurement cap (``--cell-cap``), or a dense matrix that does not
fit in memory, is not started; the page says which and why, and larger sizes
of that preconditioner are not attempted.
"""

import argparse
import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_OUT,
    Budget,
    available_memory_bytes,
    environment_lines,
    fit_preconditioner,
    format_bytes,
    format_ratio,
    format_seconds,
    format_slope,
    load_average,
    loglog_slope,
    markdown_table,
    parse_fit_options,
    plot_loglog_panels,
    time_apply,
    warm_up,
)

from learned_precond import get_preconditioner, problems  # noqa: E402
from learned_precond.exceptions import PreconditionerSetupError  # noqa: E402
from learned_precond.krylov import solve  # noqa: E402

RTOL = 1e-8
RESTART = 50
MAXITER = 1000
QUICK_MAX_N = 16384
#: A dense matrix is built only when it needs at most this fraction of the
#: available memory (other jobs share the machine).
MEMORY_FRACTION = 0.35
#: LearnedLU options of the run (besides grid_shape), the same at every N so
#: that the fitted slopes compare like with like. The default max_steps=200
#: makes one fit at N = 262144 take longer than the whole time budget here.
LEARNED_LU_OPTIONS = {"max_steps": 10, "seed": 0}
BASELINE_OPTIONS = {"amg": {"seed": 0}}
#: Execution order at each N: LearnedLU first, then the references of the
#: ratios, so that a run short of time drops the baselines' largest sizes first.
RUN_ORDER = ("learned_lu", "ilu0", "amg", "direct", "ilut")
#: Table order.
SHOW_ORDER = ("learned_lu", "ilu0", "ilut", "amg", "direct")


@dataclass(frozen=True)
class ScalingProblem:
    key: str
    title: str
    name: str
    params: dict
    sizes: tuple  # values of the gallery's size parameter n
    dense: bool
    #: Largest fraction of the budget this problem may use (None: no limit of
    #: its own), so the dense kernel cannot starve the large sparse sizes.
    max_share: float | None = None

    def n_unknowns(self, n):
        return n if self.dense else n * n


PROBLEMS = (
    ScalingProblem("poisson", "2-D Poisson (`laplace_2d`, 5-point)", "laplace_2d", {},
                   (64, 128, 256, 512), False),
    ScalingProblem("convdiff", "2-D convection-diffusion, vortex "
                   "(`convection_diffusion_2d`, eps=0.01, velocity='vortex')",
                   "convection_diffusion_2d", {"velocity": "vortex"},
                   (64, 128, 256, 512), False),
    ScalingProblem("rbf", "RBF kernel (`rbf_kernel`, dense, length_scale=0.2, nugget=1e-4)",
                   "rbf_kernel", {}, (1024, 2048, 4096, 8192, 16384), True, 0.25),
)


@dataclass
class Cell:
    """One preconditioner at one N."""

    method: str
    N: int
    setup_s: float = float("nan")
    setup_reps: int = 0
    apply_s: float = float("nan")
    apply_reps: int = 0
    iterations: int | None = None
    converged: bool = False
    residual: float = float("nan")
    solve_s: float = float("nan")
    nbytes: int | None = None
    note: str = ""
    error: str | None = None
    wall_s: float = 0.0

    @property
    def ok(self):
        return self.error is None

    @property
    def total_s(self):
        return self.setup_s + self.solve_s


@dataclass
class ProblemRun:
    problem: ScalingProblem
    cells: dict = field(default_factory=dict)  # (method, N) -> Cell
    skipped: list = field(default_factory=list)  # (method or 'all', N, reason)
    Ns: list = field(default_factory=list)
    build_s: dict = field(default_factory=dict)


def _registry_name(method):
    return "exact" if method == "direct" else method


def _options(method, grid_shape, learned_options):
    if method == "learned_lu":
        options = dict(learned_options)
        if grid_shape is not None:
            options.setdefault("grid_shape", grid_shape)
        return options
    return dict(BASELINE_OPTIONS.get(method, {}))


def _note(method, M):
    if method == "learned_lu":
        rep = M.report
        return f"{rep.steps} steps, stop: {rep.stop_reason}, kept step {rep.best_step}"
    if method == "ilut":
        return f"nnz(L+U) = {M.nnz}"
    if method == "amg":
        return f"{M.method}, {len(M.ml.levels)} levels, op. complexity {M.operator_complexity:.2f}"
    if method == "direct":
        return "splu (COLAMD)" if M.sparse else "lu_factor (LAPACK)"
    return ""


def run_cell(method, A, b, x, grid_shape, learned_options):
    """Fit, time the apply, solve; failures become the cell's error."""
    start = time.perf_counter()
    cell = Cell(method, A.shape[0])
    cls = get_preconditioner(_registry_name(method))
    try:
        M, cell.setup_s, cell.setup_reps = fit_preconditioner(
            cls, A, _options(method, grid_shape, learned_options))
    except (PreconditionerSetupError, ValueError, MemoryError, RuntimeError) as exc:
        cell.error = f"setup failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        cell.wall_s = time.perf_counter() - start
        return cell
    cell.nbytes = int(M.nbytes)
    cell.note = _note(method, M)
    cell.apply_s, cell.apply_reps = time_apply(M, x)
    if method == "direct":
        t0 = time.perf_counter()
        sol = M @ b
        cell.solve_s = time.perf_counter() - t0
        cell.residual = float(np.linalg.norm(b - A @ sol) / np.linalg.norm(b))
        cell.converged = cell.residual <= RTOL
    else:
        try:
            result = solve(A, b, M, method="gmres", rtol=RTOL, restart=RESTART,
                           maxiter=MAXITER)
        except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as exc:
            cell.error = f"solve failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
            cell.wall_s = time.perf_counter() - start
            return cell
        cell.iterations = int(result.iterations)
        cell.converged = bool(result.converged)
        cell.residual = float(result.relative_residual)
        cell.solve_s = float(result.solve_time)
    del M
    cell.wall_s = time.perf_counter() - start
    return cell


def run_all(scaling_problems, *, max_n, budget, learned_options, log):
    """Run every problem, size and preconditioner, smallest N first, within ``budget``.

    Sizes of all problems are interleaved in increasing N, so the measurements
    that the budget may have to drop are the largest ones, whatever the problem.
    """
    runs = [ProblemRun(pr) for pr in scaling_problems]
    history = {(i, m): [] for i in range(len(runs)) for m in RUN_ORDER}
    stopped = set()  # (problem index, method)
    schedule = sorted(
        ((pr.n_unknowns(n), i, n) for i, pr in enumerate(scaling_problems) for n in pr.sizes),
        key=lambda item: (item[0], item[1]),
    )
    out_of_memory = set()
    used = [0.0] * len(runs)  # seconds spent per problem
    for N, i, n in schedule:
        run, problem = runs[i], runs[i].problem
        if N > max_n:
            run.skipped.append(("all", N, f"above --max-n {max_n}"))
            continue
        if i in out_of_memory:
            continue
        if problem.dense:
            # The matrix, the temporaries of building it and a factorization's copy.
            need = 4 * 8 * N * N
            avail = available_memory_bytes()
            if avail is not None and need > MEMORY_FRACTION * avail:
                out_of_memory.add(i)
                run.skipped.append(("all", N, (
                    f"the dense {N} x {N} matrix needs about {format_bytes(need)} to build "
                    f"and factor, more than {MEMORY_FRACTION:.0%} of the "
                    f"{format_bytes(avail)} available on this shared machine")))
                continue
        if all((i, m) in stopped for m in RUN_ORDER):
            continue
        t0 = time.perf_counter()
        p = problems.get_problem(problem.name, n=n, **problem.params)
        A = p.A
        run.build_s[N] = time.perf_counter() - t0
        used[i] += run.build_s[N]
        b = np.asarray(A @ np.ones(N))
        x = np.random.default_rng(0).standard_normal(N)
        run.Ns.append(N)
        log(f"{problem.key} N={N} (built in {run.build_s[N]:.1f} s, "
            f"{budget.remaining():.0f} s of the budget left)")
        for method in RUN_ORDER:
            if (i, method) in stopped:
                continue
            # Without history: dense factorizations grow like N^3, dense
            # products like N^2, sparse work (with growing iteration counts)
            # like N^1.5.
            default_p = 3.0 if problem.dense and method in ("ilu0", "ilut", "direct") else (
                2.0 if problem.dense else 1.5)
            projected = budget.project(history[(i, method)], N, default_exponent=default_p)
            share_left = (None if problem.max_share is None
                          else problem.max_share * budget.total_s - used[i])
            reason = budget.refuses(projected, limit_s=share_left)
            if reason is not None and share_left is not None and projected <= min(
                    budget.cell_cap_s, budget.remaining()):
                reason = (f"projected {projected:.0f} s exceeds the {max(share_left, 0):.0f} s "
                          f"left of this problem's {problem.max_share:.0%} share of the budget")
            if reason is not None:
                stopped.add((i, method))
                run.skipped.append((method, N, reason + "; larger N not attempted"))
                log(f"  {method:>10}: not run ({reason})")
                continue
            cell = run_cell(method, A, b, x, p.grid_shape, learned_options)
            used[i] += cell.wall_s
            run.cells[(method, N)] = cell
            history[(i, method)].append((N, cell.wall_s))
            if cell.ok:
                its = "direct" if cell.iterations is None else cell.iterations
                log(f"  {method:>10}: setup {format_seconds(cell.setup_s)}, apply "
                    f"{format_seconds(cell.apply_s)}, its {its} "
                    f"({'converged' if cell.converged else 'NOT converged'}), "
                    f"solve {format_seconds(cell.solve_s)}, "
                    f"{format_bytes(cell.nbytes)}  [{cell.wall_s:.1f} s]")
            else:
                log(f"  {method:>10}: {cell.error}")
        del A, b, x, p
    return runs


# -- report -------------------------------------------------------------------------


def _ratio(a, b):
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)) or b <= 0:
        return float("nan")
    return a / b


def _cell_iterations(cell):
    if cell.iterations is None:
        return "direct"
    return str(cell.iterations) if cell.converged else f"> {MAXITER} (not converged)" if (
        cell.iterations >= MAXITER) else f"{cell.iterations} (not converged)"


def _series(run, method, attr, *, converged_only=False):
    xs, ys, hollow = [], [], []
    for N in run.Ns:
        cell = run.cells.get((method, N))
        if cell is None or not cell.ok:
            continue
        value = getattr(cell, attr)
        if attr == "iterations" and value is None:
            continue
        xs.append(N)
        ys.append(None if converged_only and not cell.converged else value)
        hollow.append(not cell.converged)
    return xs, ys, hollow


def slopes(run):
    """method -> {quantity: (slope, N range)} on log-log axes (np.polyfit)."""
    out = {}
    for method in SHOW_ORDER:
        row = {}
        for attr, conv in (("setup_s", False), ("apply_s", False), ("iterations", True),
                           ("nbytes", False), ("total_s", True)):
            xs, ys, _ = _series(run, method, attr, converged_only=conv)
            used = [x for x, y in zip(xs, ys, strict=True) if y is not None]
            row[attr] = (loglog_slope(xs, ys), (min(used), max(used)) if used else None)
        out[method] = row
    return out


def _slope_cell(entry):
    slope, span = entry
    if span is None or not np.isfinite(slope):
        return "-"
    return f"{slope:.2f} ({span[0]}-{span[1]})"


def write_plots(runs, out, all_slopes):
    figs = {}
    panels = []
    for quantity, ylabel in (("setup_s", "setup (fit) time [s]"),
                             ("apply_s", "apply time per vector [s]")):
        for run in runs:
            series = []
            for m in SHOW_ORDER:
                xs, ys, hollow = _series(run, m, quantity)
                slope = all_slopes[run.problem.key][m][quantity][0]
                series.append((f"{m} (slope {format_slope(slope)})", xs, ys, hollow))
            panels.append((f"{run.problem.key}: {ylabel.split(' [')[0]}", ylabel, series))
    figs["time"] = out / "scaling_time.png"
    plot_loglog_panels(figs["time"], panels, ncols=len(runs),
                         suptitle="Setup and apply time vs N (open markers: GMRES not converged)")
    panels = []
    for run in runs:
        series = []
        for m in SHOW_ORDER:
            if m == "direct":
                continue
            xs, ys, hollow = _series(run, m, "iterations")
            slope = all_slopes[run.problem.key][m]["iterations"][0]
            series.append((f"{m} (slope {format_slope(slope)})", xs, ys, hollow))
        panels.append((f"{run.problem.key}: GMRES(50) iterations to 1e-8", "iterations",
                       series))
    figs["iterations"] = out / "scaling_iterations.png"
    plot_loglog_panels(figs["iterations"], panels, ncols=len(runs),
                         suptitle=f"Iterations vs N (open markers: not converged in {MAXITER})")
    panels = []
    for run in runs:
        series = []
        for m in SHOW_ORDER:
            xs, ys, hollow = _series(run, m, "nbytes")
            slope = all_slopes[run.problem.key][m]["nbytes"][0]
            series.append((f"{m} (slope {format_slope(slope)})", xs, ys,
                           [False] * len(xs)))
        panels.append((f"{run.problem.key}: memory (nbytes)", "bytes", series))
    figs["memory"] = out / "scaling_memory.png"
    plot_loglog_panels(figs["memory"], panels, ncols=len(runs),
                         suptitle="Memory held by the preconditioner vs N")
    return figs


def _checks(runs):
    """Issue 8's apply-time checks, as table rows."""
    rows = []
    for run in runs:
        if run.problem.dense:
            continue
        lu = {N: run.cells.get(("learned_lu", N)) for N in run.Ns}
        ilu = run.cells.get(("ilu0", 65536))
        a65 = lu.get(65536)
        a262 = lu.get(262144)
        if a65 is not None and a65.ok and ilu is not None and ilu.ok:
            r = a65.apply_s / ilu.apply_s
            verdict = ("meets the 3x target" if r <= 3 else
                       "within 5x, misses the 3x target" if r <= 5 else "misses (above 5x)")
            rows.append((run.problem.key, "LearnedLU apply / ILU(0) apply at N = 65536",
                         f"{format_seconds(a65.apply_s)} / {format_seconds(ilu.apply_s)}",
                         format_ratio(r), "<= 5x (target 3x)", verdict))
        else:
            rows.append((run.problem.key, "LearnedLU apply / ILU(0) apply at N = 65536",
                         "not measured", "-", "<= 5x (target 3x)", "not measured"))
        ilu262 = run.cells.get(("ilu0", 262144))
        if a65 is not None and a65.ok and a262 is not None and a262.ok:
            r = a262.apply_s / a65.apply_s
            ref = (f"; ILU(0)'s own: {format_ratio(ilu262.apply_s / ilu.apply_s)}"
                   if ilu is not None and ilu.ok and ilu262 is not None and ilu262.ok else "")
            rows.append((run.problem.key,
                         "LearnedLU apply per vector, N = 262144 over N = 65536",
                         f"{format_seconds(a262.apply_s)} / {format_seconds(a65.apply_s)}",
                         format_ratio(r), "<= 5 (O(N): 4)",
                         ("<= 5 warm" if r <= 5 else "above 5 warm") + ref))
        else:
            rows.append((run.problem.key,
                         "LearnedLU apply per vector, N = 262144 over N = 65536",
                         "not measured", "-", "<= 5 (O(N): 4)", "not measured"))
    return rows


def _default_max_steps():
    fit = get_preconditioner("learned_lu").fit
    return inspect.signature(fit).parameters["max_steps"].default


def write_markdown(runs, out, figs, *, learned_options, args, env_lines, wall_s):
    all_slopes = {run.problem.key: slopes(run) for run in runs}
    lines = [
        "# Scaling with N",
        "",
        "Generated by `benchmarks/scaling.py`; do not edit by hand (rerun the script).",
        "",
        "## How the numbers were measured",
        "",
        *env_lines,
        f"- total wall time of the run: {wall_s / 60:.1f} min (budget {args.budget / 60:.0f} min, "
        f"per-measurement cap {args.cell_cap:.0f} s); load average at the end: "
        f"{load_average()}",
        f"- right-hand side `b = A @ ones(N)`; GMRES({RESTART}) through "
        f"`learned_precond.krylov.solve`, `rtol={RTOL:g}`, `maxiter={MAXITER}` (inner "
        f"iterations); *iterations* are GMRES inner iterations and *true residual* is "
        f"`||b - A x|| / ||b||` recomputed for the returned `x`.",
        "- *setup*: `fit` wall time, median over up to 3 fits (a fit is repeated only "
        "while one takes under 2 s; the number of fits is in the *reps* column). "
        "*apply*: median over 5-50 timed `M @ x` on one seeded random vector "
        "after one untimed call. *solve*: one GMRES run. *total* = setup + solve. "
        "*memory*: the preconditioner's `nbytes` (factors and hierarchy it holds).",
        f"- LearnedLU: `LearnedLU.fit(A, grid_shape=<problem grid>, "
        f"{', '.join(f'{k}={v!r}' for k, v in learned_options.items())})` at every N "
        f"(the same options at every size, so the slopes compare like with like; the "
        f"library default is `max_steps={_default_max_steps()}`).",
        "- baselines with their defaults: `ILU0.fit(A)`, `ILUT.fit(A)` (drop_tol=1e-4, "
        "fill_factor=10), `AMG.fit(A, seed=0)` (smoothed aggregation for symmetric A, "
        "nonsymmetric SA otherwise), *direct* = `ExactLU.fit(A)`: SuperLU `splu` with "
        "COLAMD for sparse A, LAPACK `lu_factor` for dense A, used as a solver (one "
        "solve, no iterations).",
        "- slopes: `np.polyfit(log N, log y, 1)` over the sizes measured (the N range is "
        "shown); iteration and total-time slopes use converged runs only.",
        "",
        "## LearnedLU apply time against issue 8's bounds, warm cache",
        "",
        "Applies here run back to back (warm cache): at N = 65536 the factors stay in "
        "this machine's 32 MiB L3, at N = 262144 they do not, which inflates the "
        "262144/65536 ratio of every preconditioner (ILU(0)'s own is shown). Issue 8's "
        "check times applies from a cold cache, as inside GMRES, with the sizes in "
        "turns: [learned_lu.md](learned_lu.md).",
        "",
        markdown_table(("problem", "quantity", "times", "ratio", "required", "verdict"),
                         _checks(runs)),
        "",
        "## Fitted log-log slopes (exponent p in cost ~ N^p)",
        "",
    ]
    rows = []
    for run in runs:
        for m in SHOW_ORDER:
            s = all_slopes[run.problem.key][m]
            rows.append((run.problem.key, m, _slope_cell(s["setup_s"]),
                         _slope_cell(s["apply_s"]), _slope_cell(s["iterations"]),
                         _slope_cell(s["total_s"]), _slope_cell(s["nbytes"])))
    lines += [
        markdown_table(("problem", "preconditioner", "setup (fit) time", "apply time",
                          "iterations", "total time", "memory"), rows),
        "",
        "Cells read `slope (N range)`.",
        "",
    ]
    for run in runs:
        pr = run.problem
        lines += [f"## {pr.title}", ""]
        rows, ratio_rows = [], []
        for N in run.Ns:
            ref_ilu = run.cells.get(("ilu0", N))
            ref_amg = run.cells.get(("amg", N))
            for m in SHOW_ORDER:
                cell = run.cells.get((m, N))
                if cell is None:
                    continue
                if not cell.ok:
                    rows.append((N, m, *(["-"] * 9), cell.error))
                    continue
                rows.append((
                    N, m, format_seconds(cell.setup_s), format_seconds(cell.apply_s),
                    f"{cell.setup_reps}/{cell.apply_reps}", _cell_iterations(cell),
                    f"{cell.residual:.1e}", format_seconds(cell.solve_s),
                    format_seconds(cell.total_s), format_bytes(cell.nbytes), cell.note))
                refs = []
                for attr in ("setup_s", "apply_s", "total_s"):
                    for ref in (ref_ilu, ref_amg):
                        ok = ref is not None and ref.ok
                        refs.append(format_ratio(_ratio(getattr(cell, attr),
                                                          getattr(ref, attr) if ok else None)))
                ratio_rows.append((N, m, *refs))
        lines += [
            markdown_table(("N", "preconditioner", "setup", "apply / vector", "reps",
                              f"GMRES({RESTART}) its", "true residual", "solve",
                              "total", "memory", "notes"), rows),
            "",
            "Times as ratios to ILU(0) and AMG at the same N (below 1: faster than the "
            "reference; *total* of a run that did not converge is a lower bound):",
            "",
            markdown_table(("N", "preconditioner", "setup / ILU0", "setup / AMG",
                              "apply / ILU0", "apply / AMG", "total / ILU0", "total / AMG"),
                             ratio_rows),
            "",
        ]
        if run.skipped:
            lines += ["Not measured:", ""]
            lines += [f"- N = {N}, {what}: {why}" for what, N, why in run.skipped]
            lines += [""]
    lines += [
        "## Figures",
        "",
        f"![setup and apply time vs N]({figs['time'].name})",
        "",
        f"![iterations vs N]({figs['iterations'].name})",
        "",
        f"![memory vs N]({figs['memory'].name})",
        "",
    ]
    path = out / "scaling.md"
    path.write_text("\n".join(lines))
    return path, all_slopes


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Scaling of LearnedLU, ILU(0), ILUT, AMG and a direct solve with N; "
                    "writes scaling.md and log-log PNGs.")
    parser.add_argument("--max-n", type=int, default=None,
                        help="largest number of unknowns to run (default: all sizes)")
    parser.add_argument("--quick", action="store_true",
                        help=f"stop at N = {QUICK_MAX_N} (same as --max-n {QUICK_MAX_N})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default docs/results)")
    parser.add_argument("--fit", action="append", default=[], metavar="KEY=VALUE",
                        help="extra LearnedLU.fit option, repeatable (overrides "
                             f"{LEARNED_LU_OPTIONS})")
    parser.add_argument("--budget", type=float, default=23 * 60,
                        help="wall-clock budget in seconds (default 1380)")
    parser.add_argument("--cell-cap", type=float, default=900.0,
                        help="largest projected seconds for one preconditioner at one N "
                             "(default 900)")
    args = parser.parse_args(argv)
    max_n = args.max_n if args.max_n is not None else 10**12
    if args.quick:
        max_n = min(max_n, QUICK_MAX_N)
    learned_options = {**LEARNED_LU_OPTIONS, **parse_fit_options(args.fit)}
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    env_lines = environment_lines([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    budget = Budget(args.budget, cell_cap_s=args.cell_cap)
    warm_up([_registry_name(m) for m in RUN_ORDER])
    runs = run_all(PROBLEMS, max_n=max_n, budget=budget, learned_options=learned_options,
                   log=log)
    wall = budget.elapsed()
    all_slopes = {run.problem.key: slopes(run) for run in runs}
    figs = write_plots(runs, args.out, all_slopes)
    path, _ = write_markdown(runs, args.out, figs, learned_options=learned_options,
                             args=args, env_lines=env_lines, wall_s=wall)
    log(f"wrote {path} and {', '.join(str(f) for f in figs.values())} in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
