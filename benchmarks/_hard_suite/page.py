"""The tables and the Markdown page of the hard suite (docs/results/hard_suite.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import environment_lines, format_bytes, format_seconds, markdown_table  # noqa: E402

from .goals import best_totals, evaluate, index, its_text, ok  # noqa: E402
from .measure import DENSE_SPARSE_LIMIT, MANY_SOLVES, MAXITER, RESTART, RTOL  # noqa: E402

HEADERS = ["row", "N", "method", "solver", "its", "setup", "solve", "setup + solve",
           "factor memory", "peak memory", "true residual"]
LEARNED_HEADERS = ["row", "N", "its (start)", "its (trained)", "change", "fit", "start",
                   "training", "training share", "steps (best) / stop", "memory"]


def _seconds(r, key):
    return format_seconds(r.get(key)) if r.get(key) is not None else "-"


def method_rows(records, rows):
    """One table row per measured (row, method); the best total of a row in bold."""
    table = index(records)
    out = []
    for row in rows:
        _, best = best_totals(table, row)
        for r in table.get(row, {}).values():
            if "skipped" in r or "error" in r:
                out.append([row, str(r.get("N", "")), r["method"], "", its_text(r)]
                           + [""] * 6)
                continue
            total = format_seconds(r["total"])
            if best is r:
                total = f"**{total} (best)**"
            out.append([row, str(r["N"]), r["method"], r["solver"], its_text(r),
                        _seconds(r, "setup"), _seconds(r, "solve"), total,
                        format_bytes(r["factor_bytes"]), format_bytes(r.get("peak")),
                        f"{r['residual']:.1e}"])
    return out


def learned_rows(records, rows, method="learned_lu"):
    """LearnedLU per row: start vs trained iterations and the fit's time split."""
    table = index(records)
    out = []
    for row in rows:
        t, s = table.get(row, {}).get(method), table.get(row, {}).get("learned_lu (start)")
        if t is None or "setup" not in t:
            out.append([row, "", its_text(s), its_text(t)] + [""] * 7)
            continue
        change = "-"
        if ok(t) and ok(s) and s["its"]:
            change = f"{100 * (t['its'] / s['its'] - 1):+.0f}%"
        share = t["train_seconds"] / t["setup"] if t["setup"] > 0 else float("nan")
        out.append([row, str(t["N"]), its_text(s), its_text(t), change,
                    format_seconds(t["setup"]), format_seconds(t["start_seconds"]),
                    format_seconds(t["train_seconds"]), f"{100 * share:.0f}%",
                    f"{t['steps']} ({t['best_step']}) / {t['stop_reason']}",
                    format_bytes(t["factor_bytes"])])
    return out


MERIT_HEADERS = ["row", "merit (start)", "its (start)", "merit (trained)", "its (trained)"]


def _merit_pairs(records, rows):
    """(row, merit, its) of every start and trained fit where both are known."""
    table = index(records)
    pairs = []
    for row in rows:
        t, s = table.get(row, {}).get("learned_lu"), table.get(row, {}).get("learned_lu (start)")
        if t is None or "merit" not in t:
            continue
        for merit, r in ((t["merit_start"], s), (t["merit"], t)):
            if ok(r) and merit == merit:  # not NaN
                pairs.append((row, merit, r["its"]))
    return pairs


def merit_rows(records, rows):
    """Per row: the fit's merit (random right-hand side) and the measured its (b of the row)."""
    table = index(records)
    out = []
    for row in rows:
        t, s = table.get(row, {}).get("learned_lu"), table.get(row, {}).get("learned_lu (start)")
        if t is None or "merit" not in t:
            continue
        cell = lambda m: "-" if m != m else f"{m:.3g}"  # noqa: E731
        out.append([row, cell(t["merit_start"]), its_text(s), cell(t["merit"]), its_text(t)])
    return out


def merit_correlation(records, rows):
    """One line: Spearman's rank correlation of merit and its over the pairs."""
    from scipy.stats import spearmanr

    pairs = _merit_pairs(records, rows)
    if len(pairs) < 3:
        return f"Too few pairs ({len(pairs)}) for a rank correlation."
    rho = spearmanr([p[1] for p in pairs], [p[2] for p in pairs]).statistic
    return (f"Spearman's rank correlation of the merit and the measured iterations over "
            f"{len(pairs)} (start and trained) fits: **{rho:.2f}**.")


def goal_lines(goals):
    lines = []
    for g in goals:
        lines.append(f"- **{g.verdict}**: {g.statement}. Measured: {g.summary}.")
        lines += [f"    - {line}" for line in g.lines]
    return lines


def failures(records):
    lines = [f"- `{r['row']}` / `{r['method']}`: {r['error']}" for r in records
             if "error" in r]
    return lines or ["None."]


def write_page(path, records, rows, *, quick, scale, seconds, timeout, argv=None):
    """Write the page from this run's records; returns the goals."""
    goals = evaluate(records, rows)
    refit = [r["row"] for r in records if r.get("method") == MANY_SOLVES and r.get("fit_again")]
    start_from = sorted({r["start_from"] for r in records if r.get("start_from")})
    banner = []
    if quick:
        banner = [
            f"> **Quick run** (scale {scale:g} of the full N; the N column gives each row's "
            "size): it proves the pipeline; it is not the issue's measurement at "
            "N ~ 65536. `python benchmarks/hard_suite.py` (scale 1) writes that page.",
            "",
        ]
    lines = [
        "# The hard suite (issue 15)",
        "",
        *banner,
        "Generated by `benchmarks/hard_suite.py` in "
        f"{seconds / 60:.1f} min; do not edit by hand. Every (row, method) ran in its own "
        f"process, cut off after {timeout:.0f} s.",
        "",
        *environment_lines(argv),
        "",
        "## Settings",
        "",
        "- Rows: `learned_precond.problems.hard_suite(scale)` (module "
        "`learned_precond/problems/hard.py`), generated, never downloaded. Right-hand "
        "side fixed: `b = ones(N)` (a unit load), for elasticity a uniform downward body "
        "force (`b[1::2] = -1`).",
        f"- Solver: CG when the row is SPD and the preconditioner symmetric, else "
        f"GMRES({RESTART}) (marked `(gmres)`); x0 = 0, rtol {RTOL:g} on the true residual "
        f"`||b - A x|| / ||b||`, at most {MAXITER} iterations; converged as "
        "`learned_precond.krylov.solve` decides it (true residual <= rtol, or scipy "
        "reported success and it is <= 10 rtol). ILU0 and ILUT are not symmetric, so "
        "they run GMRES on every row.",
        "- Baselines from the same run, library defaults: `ilu0` (ILU(0)), `ilut` (scipy "
        "spilu, drop_tol 1e-4, fill_factor 10), `ict` (threshold incomplete Cholesky, "
        "drop_tol 1e-3, fill_factor 20; SPD rows), `amg` (pyamg smoothed aggregation, "
        "nonsymmetric SA on nonsymmetric rows; one V-cycle, default near-null space: "
        "constants, not elasticity's rigid motions), `direct` (scipy splu; torch dense Cholesky "
        f"on the kernel row). On a dense row with N > {DENSE_SPARSE_LIMIT} the incomplete "
        "factorizations and AMG are skipped (a full pattern).",
        "- LearnedLU: `LearnedLU.fit(A, seed=0)` with the default options (and "
        "`coords=` the points on the kernel row). `learned_lu (start)`: its start, from "
        f"{' / '.join(start_from) or '(not measured)'}.",
        "- Factor memory: the preconditioner's `nbytes` (splu: nnz(L + U) values and "
        "indices; dense Cholesky: the N x N factor). Peak memory: the rise of the "
        "process's resident-set high-water mark while the preconditioner was built, "
        "the mark reset to the current resident set just before (Linux "
        "`/proc/self/clear_refs`), so the warm-up and the row's generation are not "
        "counted.",
        "",
        "## Results",
        "",
        markdown_table(HEADERS, method_rows(records, rows)),
        "",
        "## LearnedLU: start, training, fit time",
        "",
        markdown_table(LEARNED_HEADERS, learned_rows(records, rows)),
        "",
        "The default fit (`solves=1`) skips a training pass that could not pay for "
        "itself in one solve (its stop reason says so). With `solves=inf` training "
        "runs wherever it can cut iterations; the training goal below is judged on "
        "that fit, the other goals on the default. Rows the default trained as far as "
        "it could repeat its numbers; the others were fitted again "
        f"({', '.join(refit) or 'none'}):",
        "",
        markdown_table(LEARNED_HEADERS, learned_rows(records, rows, MANY_SOLVES)),
        "",
        "## The fit's merit against the measured iterations",
        "",
        "The merit is what the fit keeps a training pass by: Krylov iterations (CG on "
        "SPD rows, else GMRES) to rtol 1e-8 on a random right-hand side, counted inside "
        "the fit (nested layout; `-` where the layout does not record it). The "
        "iterations are the ones measured above, with the row's own right-hand side.",
        "",
        markdown_table(MERIT_HEADERS, merit_rows(records, rows)),
        "",
        merit_correlation(records, rows),
        "",
        "## Goals (issue 15, 'What it must show'), from the numbers above",
        "",
        *goal_lines(goals),
        "",
        "## Failures and timeouts",
        "",
        *failures(records),
        "",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return goals
