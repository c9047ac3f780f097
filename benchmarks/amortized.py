"""When does fitting LearnedLU pay off? Many right-hand sides, and drifting matrices.

Part 1, many right-hand sides: one matrix (2-D Poisson and 2-D
convection-diffusion with the vortex velocity, ``n x n`` grid), every
preconditioner fitted once, then 100 GMRES(50) solves with seeded random
right-hand sides; the total time (setup + solves) after 1, 10 and 100 of
them, and the break-even number of right-hand sides against each baseline.

Part 2, a drifting matrix: 10 convection-diffusion matrices whose diffusion
coefficient grows 5% per step (``eps_k = 0.01 * 1.05**k``), one solve each.
LearnedLU is refitted each step from scratch (cold) and warm-started from the
previous step's fit (``LearnedLU.fit(A_k, init=previous)``), and reused
unchanged from step 0 (frozen); ILU(0), ILUT, AMG and the direct solver are
rebuilt each step. Reports fit steps (``report.steps``) of warm and cold fits.

Writes ``amortized.md``, ``amortized_rhs.png`` and ``amortized_drift.png`` to
``--out`` (default ``docs/results``); every number comes from one run.

    python benchmarks/amortized.py                # 100 rhs at N = 4096; 10 drift steps at N = 1024
    python benchmarks/amortized.py --n 32 --drift-n 16 --rhs 20 --steps 4 --out /tmp/amortized
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_OUT,
    environment_lines,
    format_bytes,
    format_ratio,
    format_seconds,
    load_average,
    markdown_table,
    parse_fit_options,
    warm_up,
)

from learned_precond import LearnedLU, get_preconditioner, problems  # noqa: E402
from learned_precond.exceptions import (  # noqa: E402
    FitConvergenceWarning,
    IllConditionedWarning,
    PreconditionerSetupError,
)
from learned_precond.krylov import solve  # noqa: E402

RTOL = 1e-8
RESTART = 50
MAXITER = 1000
EPS0 = 0.01
DRIFT = 0.05
LEARNED_LU_OPTIONS = {"seed": 0}
BASELINE_OPTIONS = {"amg": {"seed": 0}}
METHODS = ("learned_lu", "ilu0", "ilut", "amg", "direct")
RHS_PROBLEMS = (
    ("poisson", "2-D Poisson (`laplace_2d`)", "laplace_2d", {}),
    ("convdiff", "2-D convection-diffusion, vortex (`convection_diffusion_2d`, eps=0.01, "
                 "velocity='vortex')", "convection_diffusion_2d", {"velocity": "vortex"}),
)


def _quiet_fit(cls, A, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FitConvergenceWarning, IllConditionedWarning))
        start = time.perf_counter()
        M = cls.fit(A, **options)
        return M, time.perf_counter() - start


def _fit(method, A, grid_shape, learned_options, *, init=None):
    if method == "learned_lu":
        options = dict(learned_options)
        if init is not None:
            options["init"] = init  # the warm start keeps init's ordering
        elif grid_shape is not None:
            options.setdefault("grid_shape", grid_shape)
        return _quiet_fit(LearnedLU, A, **options)
    name = "exact" if method == "direct" else method
    return _quiet_fit(get_preconditioner(name), A, **BASELINE_OPTIONS.get(method, {}))


def _solve(method, A, b, M):
    """(iterations or None for direct, converged, seconds, true relative residual)."""
    if method == "direct":
        start = time.perf_counter()
        x = M @ b
        seconds = time.perf_counter() - start
        res = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
        return None, res <= RTOL, seconds, res
    r = solve(A, b, M, method="gmres", rtol=RTOL, restart=RESTART, maxiter=MAXITER)
    return int(r.iterations), bool(r.converged), float(r.solve_time), float(r.relative_residual)


# -- part 1: many right-hand sides -------------------------------------------------


def run_rhs(key, name, params, n, n_rhs, learned_options, log):
    p = problems.get_problem(name, n=n, **params)
    A, N = p.A, p.A.shape[0]
    rng = np.random.default_rng(0)
    B = rng.standard_normal((n_rhs, N))
    out = {}
    for method in METHODS:
        try:
            M, setup = _fit(method, A, p.grid_shape, learned_options)
        except PreconditionerSetupError as exc:
            out[method] = {"error": f"setup failed: {' '.join(str(exc).split())}"}
            log(f"{key} {method}: {out[method]['error']}")
            continue
        its, times, conv = [], [], []
        for b in B:
            i, c, t, _ = _solve(method, A, b, M)
            its.append(i)
            times.append(t)
            conv.append(c)
        steps = M.report.steps if method == "learned_lu" else None
        out[method] = {"setup": setup, "times": np.array(times), "its": its,
                       "converged": int(np.sum(conv)), "steps": steps,
                       "nbytes": int(M.nbytes)}
        log(f"{key} N={N} {method}: setup {setup:.2f} s, {n_rhs} solves "
            f"{np.sum(times):.2f} s, converged {np.sum(conv)}/{n_rhs}")
    return N, out


def _break_even(lu, other):
    """Smallest k with setup_lu + k s_lu <= setup_o + k s_o (mean solve times), or None."""
    s_lu, s_o = float(np.mean(lu["times"])), float(np.mean(other["times"]))
    d_setup = lu["setup"] - other["setup"]
    if d_setup <= 0:
        return 1 if s_lu <= s_o else None
    if s_lu >= s_o:
        return None
    return int(np.ceil(d_setup / (s_o - s_lu)))


def rhs_section(title, N, out, counts):
    lines = [f"### {title}, N = {N}", ""]
    rows = []
    totals = {}
    for method in METHODS:
        r = out[method]
        if "error" in r:
            rows.append((method, r["error"], *(["-"] * (5 + len(counts)))))
            continue
        cum = r["setup"] + np.cumsum(r["times"])
        totals[method] = {k: float(cum[k - 1]) for k in counts if k <= len(cum)}
        its = [i for i in r["its"] if i is not None]
        rows.append((
            method, format_seconds(r["setup"]),
            f"{r['steps']}" if r["steps"] is not None else "-",
            format_seconds(float(np.mean(r["times"]))),
            f"{np.mean(its):.1f}" if its else "direct",
            f"{r['converged']}/{len(r['times'])}",
            format_bytes(r["nbytes"]),
            *(format_seconds(totals[method].get(k)) for k in counts),
        ))
    lines += [markdown_table(
        ("preconditioner", "setup", "fit steps", "mean solve", "mean its", "converged",
         "memory", *(f"total, {k} rhs" for k in counts)), rows), ""]
    best = {k: min((t[k], m) for m, t in totals.items() if k in t) for k in counts}
    lines += ["Fastest in total: " + "; ".join(
        f"{k} rhs: {best[k][1]} ({format_seconds(best[k][0])})" for k in counts) + ".", ""]
    if "learned_lu" in totals:
        lu = out["learned_lu"]
        rows = []
        for method in METHODS[1:]:
            if method not in totals:
                continue
            k = _break_even(lu, out[method])
            rows.append((method, *(format_ratio(totals["learned_lu"][c] / totals[method][c])
                                   for c in counts),
                         "never (LearnedLU solves are not faster)" if k is None else str(k)))
        lines += ["LearnedLU total time as a ratio to each baseline (below 1: LearnedLU "
                  "is faster), and the number of right-hand sides from which LearnedLU's "
                  "total would be lower (mean solve times):", "",
                  markdown_table(("baseline", *(f"{k} rhs" for k in counts),
                                    "break-even rhs"), rows), ""]
    return lines, totals


# -- part 2: drifting matrices -------------------------------------------------------


def run_drift(n, n_steps, learned_options, log):
    """Run the drifting sequence; returns (strategy names, strategy -> per-step dicts)."""
    strategies = ("learned_lu warm", "learned_lu cold", "learned_lu frozen",
                  "ilu0", "ilut", "amg", "direct")
    # Cold first: step 0 of the warm chain and of the frozen fit *is* the cold fit.
    order = ("learned_lu cold", "learned_lu warm", "learned_lu frozen",
             "ilu0", "ilut", "amg", "direct")
    rows = {s: [] for s in strategies}
    warm = frozen = None
    for k in range(n_steps):
        eps = EPS0 * (1 + DRIFT) ** k
        p = problems.get_problem("convection_diffusion_2d", n=n, eps=eps, velocity="vortex")
        A = p.A
        b = np.asarray(A @ np.ones(A.shape[0]))
        cold = None
        for s in order:
            method = s.split()[0]
            if k == 0 and s in ("learned_lu warm", "learned_lu frozen"):
                rows[s].append(dict(rows["learned_lu cold"][0]))
                continue
            if s in ("learned_lu warm", "learned_lu frozen") and warm is None:
                rows[s].append({"k": k, "eps": eps, "error": "no step-0 fit to start from"})
                continue
            steps = None
            try:
                if s == "learned_lu frozen":
                    M, setup = frozen, 0.0
                elif s == "learned_lu warm":
                    M, setup = _fit(method, A, p.grid_shape, learned_options, init=warm)
                    steps = M.report.steps
                else:
                    M, setup = _fit(method, A, p.grid_shape, learned_options)
                    steps = M.report.steps if method == "learned_lu" else None
            except PreconditionerSetupError as exc:
                rows[s].append({"k": k, "eps": eps, "error": " ".join(str(exc).split())})
                continue
            its, conv, t, res = _solve(method, A, b, M)
            best = M.report.best_step if steps is not None else None
            rows[s].append({"k": k, "eps": eps, "setup": setup, "steps": steps,
                            "best_step": best, "its": its, "converged": conv, "solve": t,
                            "residual": res})
            if s == "learned_lu cold":
                cold = M
            elif s == "learned_lu warm":
                warm = M
        if k == 0:
            warm = frozen = cold
        log(f"drift step {k} (eps={eps:.5f}): " + ", ".join(
            f"{s}: {r[-1].get('setup', float('nan')):.2f}+{r[-1].get('solve', float('nan')):.2f}"
            f" s" for s, r in rows.items()))
    return strategies, rows


def drift_section(n, strategies, rows):
    N = n * n
    lines = [f"### Drift: `convection_diffusion_2d(n={n}, eps=0.01*1.05**k, velocity='vortex')`, "
             f"N = {N}, k = 0..{len(rows[strategies[0]]) - 1}", ""]
    summary = []
    for s in strategies:
        r = [x for x in rows[s] if "error" not in x]
        setup = sum(x["setup"] for x in r)
        solve_t = sum(x["solve"] for x in r)
        its = [x["its"] for x in r if x["its"] is not None]
        steps = [x["steps"] for x in r if x["steps"] is not None]
        kept_start = sum(1 for x in r if x["steps"] is not None and x.get("best_step") == 0)
        summary.append((
            s, format_seconds(setup), format_seconds(solve_t),
            format_seconds(setup + solve_t),
            str(sum(steps)) if steps else "-",
            f"{kept_start}/{len(steps)}" if steps else "-",
            f"{np.mean(its):.1f}" if its else "direct",
            f"{sum(x['converged'] for x in r)}/{len(rows[s])}",
        ))
    lines += [markdown_table(("strategy", "total setup", "total solve", "total",
                              "total fit steps", "fits that kept their start (step 0)",
                              "mean its", "converged"), summary), ""]
    lines += ["Per step (setup + solve; fit steps and GMRES iterations in brackets):", ""]
    per = []
    for k in range(len(rows[strategies[0]])):
        cells = [str(k), f"{EPS0 * (1 + DRIFT) ** k:.5f}"]
        for s in strategies:
            x = rows[s][k]
            if "error" in x:
                cells.append("failed: " + x["error"][:60])
                continue
            detail = []
            if x["steps"] is not None:
                detail.append(f"{x['steps']} steps, kept step {x['best_step']}")
            detail.append("direct" if x["its"] is None else
                          f"{x['its']} its" + ("" if x["converged"] else " (not conv.)"))
            cells.append(f"{format_seconds(x['setup'])} + {format_seconds(x['solve'])} "
                         f"({', '.join(detail)})")
        per.append(cells)
    lines += [markdown_table(("k", "eps", *strategies), per), ""]
    lines += ["Step 0 of the warm chain is a cold fit (nothing to start from); *frozen* "
              "reuses the step-0 cold fit unchanged (no setup cost after step 0).", ""]
    return lines


def _plot(path, curves, *, xlabel, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.2), squeeze=False)
    for ax, (sub, series) in zip(axes[0], curves, strict=True):
        for label, xs, ys in series:
            ax.plot(xs, ys, "-o", markersize=2, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cumulative time (setup + solves) [s]")
        ax.set_yscale("log")
        ax.set_title(sub, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Amortized cost of LearnedLU vs the baselines: many right-hand sides "
                    "and a drifting sequence of matrices; writes amortized.md.")
    parser.add_argument("--n", type=int, default=64,
                        help="grid points per side of the many-rhs part (N = n**2; default 64)")
    parser.add_argument("--drift-n", type=int, default=32,
                        help="grid points per side of the drifting sequence (default 32: it "
                             "fits LearnedLU twice per step)")
    parser.add_argument("--rhs", type=int, default=100,
                        help="right-hand sides per matrix (default 100; totals at 1, 10, 100)")
    parser.add_argument("--steps", type=int, default=10,
                        help="matrices in the drifting sequence (default 10)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default docs/results)")
    parser.add_argument("--fit", action="append", default=[], metavar="KEY=VALUE",
                        help=f"extra LearnedLU.fit option, repeatable (over {LEARNED_LU_OPTIONS})")
    args = parser.parse_args(argv)
    learned_options = {**LEARNED_LU_OPTIONS, **parse_fit_options(args.fit)}
    counts = tuple(k for k in (1, 10, 100) if k <= args.rhs) or (args.rhs,)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    env_lines = environment_lines([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    warm_up(["exact" if m == "direct" else m for m in METHODS])
    rhs_lines, rhs_curves = [], []
    for key, title, name, params in RHS_PROBLEMS:
        N, out = run_rhs(key, name, params, args.n, args.rhs, learned_options, log)
        lines, _ = rhs_section(title, N, out, counts)
        rhs_lines += lines
        series = []
        for m in METHODS:
            if "error" in out[m]:
                continue
            cum = out[m]["setup"] + np.cumsum(out[m]["times"])
            series.append((m, np.arange(1, len(cum) + 1), cum))
        rhs_curves.append((f"{key}, N = {N}", series))
    strategies, drift_rows = run_drift(args.drift_n, args.steps, learned_options, log)
    wall = time.perf_counter() - start

    rhs_png = args.out / "amortized_rhs.png"
    _plot(rhs_png, rhs_curves, xlabel="number of right-hand sides",
          title="Same matrix, many right-hand sides")
    series = []
    for s in strategies:
        r = [x for x in drift_rows[s] if "error" not in x]
        cum = np.cumsum([x["setup"] + x["solve"] for x in r])
        series.append((s, np.array([x["k"] for x in r]), cum))
    drift_png = args.out / "amortized_drift.png"
    _plot(drift_png, [(f"convection-diffusion, eps drifting {DRIFT:.0%} per step", series)],
          xlabel="step k", title="Drifting matrix, one solve per step")

    opts = ", ".join(f"{k}={v!r}" for k, v in learned_options.items())
    lines = [
        "# Amortized cost: many right-hand sides, drifting matrices",
        "",
        "Generated by `benchmarks/amortized.py`; do not edit by hand (rerun the script).",
        "",
        "## How the numbers were measured",
        "",
        *env_lines,
        f"- total wall time of the run: {wall / 60:.1f} min; load average at the end: "
        f"{load_average()}",
        f"- every solve: GMRES({RESTART}) through `learned_precond.krylov.solve`, "
        f"`rtol={RTOL:g}`, `maxiter={MAXITER}`; the direct solver (`ExactLU`: SuperLU "
        f"`splu`) solves once instead. Times are single wall-clock measurements of each "
        f"fit and each solve, taken in this one run; *total, k rhs* = setup + the first k "
        f"solve times.",
        f"- LearnedLU: `LearnedLU.fit(A, grid_shape=<grid>, {opts})` (otherwise the "
        f"library defaults); warm starts `LearnedLU.fit(A_k, init=previous, {opts})`. "
        f"Baselines: `ILU0.fit(A)`, `ILUT.fit(A)`, `AMG.fit(A, seed=0)`, `ExactLU.fit(A)`.",
        f"- right-hand sides of part 1: {args.rhs} seeded standard normal vectors "
        f"(`numpy.random.default_rng(0)`); part 2: `b_k = A_k @ ones`.",
        "",
        f"## Many right-hand sides (same matrix, {args.rhs} solves)",
        "",
        *rhs_lines,
        f"![cumulative time vs number of right-hand sides]({rhs_png.name})",
        "",
        f"## A drifting matrix ({args.steps} steps, diffusion coefficient +{DRIFT:.0%} per "
        f"step)",
        "",
        *drift_section(args.drift_n, strategies, drift_rows),
        f"![cumulative time over the drifting sequence]({drift_png.name})",
        "",
    ]
    path = args.out / "amortized.md"
    path.write_text("\n".join(lines))
    log(f"wrote {path}, {rhs_png}, {drift_png} in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
