"""Issue 18: preconditioners over slowly changing matrix sequences, total time per strategy.

The two families of :mod:`learned_precond.problems.sequences` (50 steps
each, ``n x n`` grid, default ``n = 128``: N = 16384): backward Euler with a
moving conductivity bump (SPD) and the Jacobians of Newton's method with load
continuation (nonsymmetric). Every strategy solves every step ``A_k x = b_k``
once, and is charged its setup plus its solve at every step:

- ``ILUT rebuild`` / ``AMG rebuild``: a fresh ILUT / AMG at every step;
- ``ILUT stale`` / ``AMG stale``: the one built at step 0, reused;
- ``LearnedLU refit``: ``LearnedLU.fit(A_k)`` at every step;
- ``LearnedLU warm``: ``LearnedLU.fit(A_k, init=M_{k-1})`` (step 0 is the
  cold fit): the nested layout reuses the previous tree (no nested
  dissection) and its trained probes;
- ``LearnedLU stale`` (an extra, not one of the issue's options): the step-0
  fit reused.

Solves: ``learned_precond.krylov.solve``, CG where the sequence is SPD and
the preconditioner symmetric (AMG's smoothed aggregation, LearnedLU's
Cholesky), GMRES(50) otherwise; ``rtol = 1e-8``. BLAS runs on one thread
(the machine's cores are shared; threaded BLAS oversubscribed them).

Writes ``sequences.md`` and ``sequences_cumulative.png`` to ``--out``
(default ``docs/results``); every number comes from one run.

    python benchmarks/sequences.py              # n = 128, 50 steps (a few minutes)
    python benchmarks/sequences.py --quick --out /tmp/seq   # n = 12, 4 steps (seconds)
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
    format_ratio,
    format_seconds,
    load_average,
    markdown_table,
    warm_up,
)

from learned_precond import LearnedLU, problems  # noqa: E402
from learned_precond.baselines import AMG, ILUT  # noqa: E402
from learned_precond.exceptions import (  # noqa: E402
    FitConvergenceWarning,
    IllConditionedWarning,
    PreconditionerSetupError,
)
from learned_precond.krylov import solve  # noqa: E402

RTOL = 1e-8
RESTART = 50
MAXITER = 1000
#: ILUT with SuperLU's 'basic' dropping: the default 'basic,area' needs ~190
#: GMRES iterations on these matrices (6 with 'basic'; see ILUT's docstring).
ILUT_OPTIONS = {"drop_tol": 1e-4, "fill_factor": 10.0, "drop_rule": "basic"}
AMG_OPTIONS = {"seed": 0}
LEARNED_OPTIONS = {"seed": 0}
FAMILIES = ("moving_diffusion", "newton")
STRATEGIES = ("ILUT rebuild", "AMG rebuild", "ILUT stale", "AMG stale", "LearnedLU refit",
              "LearnedLU warm", "LearnedLU stale")
CLASSICAL = STRATEGIES[:4]
#: The learned options of the issue's goal (``LearnedLU stale`` is an extra).
LEARNED = ("LearnedLU refit", "LearnedLU warm")
GOAL = ("the warm-started LearnedLU has the lowest total time of the learned options "
        "and is within 2x of the best classical strategy")


def _fit(strategy, A, previous):
    """(M, setup seconds) for ``strategy`` at one step; ``previous`` its last M."""
    kind, mode = strategy.split()
    if mode == "stale" and previous is not None:
        return previous, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FitConvergenceWarning, IllConditionedWarning))
        t = time.perf_counter()
        if kind == "ILUT":
            M = ILUT.fit(A, **ILUT_OPTIONS)
        elif kind == "AMG":
            M = AMG.fit(A, **AMG_OPTIONS)
        elif mode == "warm" and previous is not None:
            M = LearnedLU.fit(A, init=previous, **LEARNED_OPTIONS)
        else:
            M = LearnedLU.fit(A, **LEARNED_OPTIONS)
        return M, time.perf_counter() - t


def run_family(seq, log):
    """Every strategy over ``seq``; returns strategy -> list of per-step dicts."""
    rows = {s: [] for s in STRATEGIES}
    last = dict.fromkeys(STRATEGIES)
    for k, (A, b) in enumerate(seq):
        for s in STRATEGIES:
            if s in ("LearnedLU warm", "LearnedLU stale") and k == 0:
                # step 0 of the warm chain and of the stale fit *is* the refit's cold fit
                rows[s].append(dict(rows["LearnedLU refit"][0]))
                last[s] = last["LearnedLU refit"]
                continue
            try:
                M, setup = _fit(s, A, last[s])
            except PreconditionerSetupError as exc:
                rows[s].append({"k": k, "error": " ".join(str(exc).split())[:120]})
                continue
            last[s] = M
            method = "cg" if seq.spd and getattr(M, "symmetric", False) else "gmres"
            r = solve(A, b, M, method=method, rtol=RTOL, restart=RESTART, maxiter=MAXITER)
            row = {"k": k, "setup": setup, "solve": r.solve_time, "its": r.iterations,
                   "converged": bool(r.converged), "method": method}
            if s.startswith("LearnedLU") and setup > 0:
                rep = M.report
                row.update(passes=rep.steps, kept=rep.best_step, ordering=rep.ordering,
                           ordering_s=rep.ordering_time)
            rows[s].append(row)
        log(f"{seq.name} step {k}: " + ", ".join(
            f"{s} {r[-1].get('setup', np.nan):.2f}+{r[-1].get('solve', np.nan):.2f} s "
            f"({r[-1].get('its', '-')})" for s, r in rows.items()))
    return rows


def totals(rows):
    """strategy -> summary dict (sums over the steps that ran)."""
    out = {}
    for s, steps in rows.items():
        ok = [x for x in steps if "error" not in x]
        its = [x["its"] for x in ok]
        setup = sum(x["setup"] for x in ok)
        solve_s = sum(x["solve"] for x in ok)
        out[s] = {
            "setup": setup, "solve": solve_s, "total": setup + solve_s,
            "mean_its": float(np.mean(its)) if its else float("nan"),
            "max_its": max(its) if its else None,
            "converged": sum(x["converged"] for x in ok), "steps": len(steps),
            "failed": len(steps) - len(ok),
            "methods": sorted({x["method"] for x in ok}),
            "passes": sum(x.get("passes", 0) for x in ok),
            "ordering_s": sum(x.get("ordering_s", 0.0) for x in ok),
        }
    return out


def goal_verdict(summary):
    """(met, sentence) for one family, from the totals; a strategy that failed
    at a step or did not converge at every step does not count as best."""
    def valid(s):
        t = summary[s]
        return t["failed"] == 0 and t["converged"] == t["steps"]

    classical = [s for s in CLASSICAL if valid(s)]
    best = min(classical, key=lambda s: summary[s]["total"]) if classical else None
    warm = summary["LearnedLU warm"]
    refit = summary["LearnedLU refit"]
    lowest = valid("LearnedLU warm") and (warm["total"] <= refit["total"]
                                          or not valid("LearnedLU refit"))
    if best is None:
        return False, "no classical strategy converged at every step"
    ratio = warm["total"] / summary[best]["total"]
    met = lowest and ratio <= 2.0
    sentence = (
        f"warm {format_seconds(warm['total'])} vs refit {format_seconds(refit['total'])} "
        f"({'lowest of the learned options' if lowest else 'not the lowest learned option'}); "
        f"best classical: {best} {format_seconds(summary[best]['total'])}, warm / best = "
        f"{format_ratio(ratio)} ({'within' if ratio <= 2 else 'not within'} 2x). "
        f"Goal **{'met' if met else 'not met'}**.")
    return met, sentence


def family_section(seq, rows, summary, verdict):
    change = seq.relative_changes() if len(seq) > 1 else np.zeros(1)
    head = [f"## `{seq.name}`: {seq.description}", "",
            f"N = {seq.N} (`n={seq.params['n']}`), {len(seq)} steps, nnz = "
            f"{seq.matrices[0].nnz}, {'SPD' if seq.spd else 'nonsymmetric'}; successive "
            f"matrices differ by {np.mean(change):.1%} on average (at most "
            f"{np.max(change):.1%}; Frobenius norm).", ""]
    best_total = min((summary[s]["total"] for s in STRATEGIES
                      if summary[s]["converged"] == summary[s]["steps"]), default=np.nan)
    table = []
    for s in STRATEGIES:
        t = summary[s]
        conv = "yes" if t["converged"] == t["steps"] else f"no ({t['converged']}/{t['steps']})"
        if t["failed"]:
            conv += f", {t['failed']} setup failure(s)"
        table.append((
            s + (" (extra)" if s == "LearnedLU stale" else ""), "/".join(t["methods"]),
            format_seconds(t["setup"]), format_seconds(t["solve"]),
            format_seconds(t["total"]), format_ratio(t["total"] / best_total),
            f"{t['mean_its']:.1f}", str(t["max_its"]), conv))
    lines = [*head, markdown_table(
        ("strategy", "solver", "total setup", "total solve", "total", "vs fastest",
         "mean its", "max its", "converged all?"), table), ""]
    refit, warm = summary["LearnedLU refit"], summary["LearnedLU warm"]
    lines += [
        f"LearnedLU work recorded in the fit reports: refit {refit['passes']} training "
        f"refactorization(s) in all and {format_seconds(refit['ordering_s'])} of ordering "
        f"(nested dissection at every step); warm {warm['passes']} refactorization(s) and "
        f"{format_seconds(warm['ordering_s'])} of ordering (nested dissection at step 0; "
        f"later the tree of step k-1, after a check that it still separates the graph). Per step, warm/refit setup "
        f"{format_seconds(warm['setup'] / len(seq))} / "
        f"{format_seconds(refit['setup'] / len(seq))}.", "",
        f"Goal: {verdict[1]}", ""]
    return lines


def plot(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.0 * len(results), 4.4),
                             squeeze=False)
    styles = {"ILUT": "--", "AMG": ":", "LearnedLU": "-"}
    for ax, (seq, rows) in zip(axes[0], results, strict=True):
        for i, s in enumerate(STRATEGIES):
            ok = [x for x in rows[s] if "error" not in x]
            if not ok:
                continue
            cum = np.cumsum([x["setup"] + x["solve"] for x in ok])
            ax.plot([x["k"] for x in ok], cum, styles[s.split()[0]], color=f"C{i}",
                    label=s, linewidth=2 if s == "LearnedLU warm" else 1.2)
        ax.set_xlabel("step k")
        ax.set_ylabel("cumulative setup + solve [s]")
        ax.set_yscale("log")
        ax.set_title(f"{seq.name}, N = {seq.N}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Total time over a sequence of slowly changing matrices")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _warm_up():
    """Fit and solve with every strategy on a tiny sequence (numba, pyamg, torch)."""
    warm_up(["ilut", "amg", "learned_lu"])
    for name in FAMILIES:
        run_family(problems.SEQUENCES[name](6, steps=2), lambda msg: None)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Total time (setup + solve per step) over the matrix sequences of "
                    "issue 18; writes sequences.md and sequences_cumulative.png.")
    parser.add_argument("--n", type=int, default=None,
                        help="grid points per side (N = n**2; default 128, --quick 12)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per sequence (default 50, --quick 4)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default docs/results)")
    args = parser.parse_args(argv)
    n = args.n or (12 if args.quick else 128)
    steps = args.steps or (4 if args.quick else 50)
    args.out.mkdir(parents=True, exist_ok=True)
    from threadpoolctl import threadpool_limits

    def log(msg):
        print(msg, flush=True)

    env_lines = environment_lines([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    results, sections, verdicts = [], [], {}
    with threadpool_limits(limits=1, user_api="blas"):
        _warm_up()
        for name in FAMILIES:
            t = time.perf_counter()
            seq = problems.SEQUENCES[name](n, steps=steps, seed=0)
            log(f"built {seq} in {time.perf_counter() - t:.1f} s")
            rows = run_family(seq, log)
            summary = totals(rows)
            verdicts[name] = goal_verdict(summary)
            sections += family_section(seq, rows, summary, verdicts[name])
            results.append((seq, rows))
    wall = time.perf_counter() - start
    png = args.out / "sequences_cumulative.png"
    plot(png, results)
    met = all(v[0] for v in verdicts.values())
    lines = [
        "# Matrix sequences: rebuild, reuse, refit or warm-start (issue 18)",
        "",
        "Generated by `benchmarks/sequences.py`; do not edit by hand (rerun the script).",
        "",
        "Time stepping and Newton's method solve a *sequence* of nearby matrices. The "
        "issue's goal: over each whole sequence, counting setup and solve at every step, "
        f"**{GOAL}**.",
        "",
        f"**Result: {'met' if met else 'not met'}** "
        f"({'; '.join(f'{k}: ' + ('met' if v[0] else 'not met') for k, v in verdicts.items())}"
        "; the numbers are below).",
        "",
        "## How the numbers were measured",
        "",
        *env_lines,
        f"- total wall time of the run: {wall / 60:.1f} min; load average at the end: "
        f"{load_average()}",
        f"- the sequences: `problems.moving_diffusion_sequence(n={n}, steps={steps}, seed=0)` "
        f"and `problems.newton_sequence(n={n}, steps={steps}, seed=0)` with their own "
        f"right-hand sides (`docs/gallery.md`, *Matrix sequences*).",
        f"- one solve per step through `learned_precond.krylov.solve`, `rtol={RTOL:g}`, "
        f"`maxiter={MAXITER}`: CG where the sequence is SPD and the preconditioner "
        f"symmetric, else GMRES({RESTART}) (ILUT is not symmetric, so it runs GMRES on "
        f"the SPD sequence too). *total* = the sum over the steps of setup + solve "
        f"(single wall-clock measurements of this run; BLAS on one thread); a stale "
        f"strategy pays its setup at step 0 only.",
        f"- `ILUT.fit(A, {', '.join(f'{k}={v!r}' for k, v in ILUT_OPTIONS.items())})` "
        f"(SuperLU's default dropping `'basic,area'` needed ~190 GMRES iterations per "
        f"step here, against 6), `AMG.fit(A, seed=0)` (smoothed aggregation for SPD A, "
        f"nonsymmetric smoothed aggregation otherwise), `LearnedLU.fit(A, seed=0)` (the "
        f"default nested-dissection layout; warm: `init=M_prev`).",
        "- *vs fastest*: total over the fastest strategy that converged at every step. "
        "*LearnedLU stale* (the step-0 fit reused) is not one of the issue's options and "
        "does not enter the goal.",
        "",
        *sections,
        f"![cumulative time per strategy over the two sequences]({png.name})",
        "",
    ]
    path = args.out / "sequences.md"
    path.write_text("\n".join(lines))
    log(f"wrote {path} and {png} in {wall / 60:.1f} min")
    return verdicts


if __name__ == "__main__":
    main()
