"""Issue 15's "What it must show", computed from the measured records; nothing is assumed.

Each goal is a :class:`Goal`: its statement, met or not, and the measured
numbers behind the verdict (one line per row where the goal is per row).
A record that is missing, skipped, failed or timed out counts against a
goal that needs it, and its line says so.
"""

import math
from dataclasses import dataclass, field

from .measure import CLASSICAL, MANY_SOLVES

#: Training must cut iterations by at least this fraction (30%).
TRAINING_GAIN = 0.30
#: Training that gains nothing may cost at most this share of the fit (20%).
IDLE_TRAIN_SHARE = 0.20
#: LearnedLU's memory may be at most this multiple of the reference's.
MEMORY_FACTOR = 2.0
#: "Within 2x of the best classical total".
TOTAL_FACTOR = 2.0
#: Rows where LearnedLU must need no more iterations than AMG.
AMG_ROWS = ("biharmonic_2d", "elasticity_2d")


@dataclass
class Goal:
    """One goal: what it asks, whether the run met it, and the numbers."""

    statement: str
    met: bool
    summary: str
    lines: list = field(default_factory=list)

    @property
    def verdict(self):
        return "met" if self.met else "NOT met"


def ok(r):
    """The record ran and converged to the tolerance."""
    return r is not None and "error" not in r and "skipped" not in r and r["converged"]


def its_text(r):
    """Iterations as the tables write them (direct, not converged, failed, skipped)."""
    if r is None:
        return "not run"
    if "skipped" in r:
        return f"skipped ({r['skipped']})"
    if "error" in r:
        return r["error"]
    if r["solver"] in ("splu", "dense Cholesky (torch)", "dense LU (torch)"):
        return "direct" if r["converged"] else f"direct (residual {r['residual']:.1e})"
    mark = "" if r["solver"] == "cg" else " (gmres)"
    return f"{r['its']}{mark}" if r["converged"] else f"> {r['its']}{mark} (not converged)"


def index(records):
    """``{row: {method: record}}``."""
    table = {}
    for r in records:
        table.setdefault(r["row"], {})[r["method"]] = r
    return table


def training_goal(table, rows):
    """>= 30% fewer iterations than the start on >= half the rows, never more.

    Training as it runs when it is allowed to wherever it cuts iterations
    (the ``solves=inf`` fit; the default ``solves=1`` fit skips a pass that
    cannot pay for itself in one solve, and the other goals judge that one).
    """
    need = math.ceil(len(rows) / 2)
    gained, worse, lines = 0, [], []
    for row in rows:
        t = table[row].get(MANY_SOLVES, table[row].get("learned_lu"))
        s = table[row].get("learned_lu (start)")
        if not (ok(t) or ok(s)):
            lines.append(f"{row}: start {its_text(s)}, trained {its_text(t)}: no comparison")
            continue
        if ok(t) and not ok(s):
            gained += 1
            lines.append(f"{row}: start {its_text(s)}, trained {t['its']}: gain (start failed)")
            continue
        if ok(s) and not ok(t):
            worse.append(row)
            lines.append(f"{row}: start {s['its']}, trained {its_text(t)}: WORSE")
            continue
        cut = 1.0 - t["its"] / s["its"] if s["its"] else 0.0
        if t["its"] > s["its"]:
            worse.append(row)
        hit = cut >= TRAINING_GAIN
        gained += hit
        verdict = ": >= 30% fewer" if hit else ": MORE" if t["its"] > s["its"] else ""
        lines.append(f"{row}: start {s['its']}, trained {t['its']} "
                     f"({100 * (t['its'] / s['its'] - 1) if s['its'] else 0:+.0f}%){verdict}")
    met = gained >= need and not worse
    summary = (f"{gained} of {len(rows)} rows with >= 30% fewer iterations (need {need}); "
               f"rows with more iterations than the start: {', '.join(worse) or 'none'}")
    return Goal("Training gives >= 30% fewer iterations than its own start on at least half "
                "the rows, and never more iterations (training allowed on every row: "
                "`solves=inf`)", met, summary, lines)


def idle_training_goal(table, rows):
    """Where training gained nothing it cost <= 20% of the fit."""
    idle, costly, lines = 0, [], []
    for row in rows:
        t, s = table[row].get("learned_lu"), table[row].get("learned_lu (start)")
        if not (ok(t) and ok(s)) or t["its"] < s["its"]:
            continue
        idle += 1
        share = t["train_seconds"] / t["setup"] if t["setup"] > 0 else 0.0
        if share > IDLE_TRAIN_SHARE:
            costly.append(row)
        lines.append(f"{row}: no gain ({s['its']} -> {t['its']} its); training "
                     f"{t['train_seconds']:.3g} s of a {t['setup']:.3g} s fit = {100 * share:.0f}%")
    summary = (f"{idle} rows where training gained nothing; over 20% of the fit on "
               f"{len(costly)}: {', '.join(costly) or 'none'}")
    return Goal("When training cannot gain, it costs <= 20% of the fit time", not costly,
                summary, lines)


def convergence_goal(table, rows):
    failed = [row for row in rows if not ok(table[row].get("learned_lu"))]
    lines = [f"{row}: {its_text(table[row].get('learned_lu'))}" for row in rows]
    return Goal("LearnedLU converges on every row", not failed,
                f"converged on {len(rows) - len(failed)} of {len(rows)}"
                + (f"; not on {', '.join(failed)}" if failed else ""), lines)


def reference_method(table, row):
    """ICT for an SPD row, ILUT otherwise (the incomplete factorization CG/GMRES pairs with)."""
    spd = next(iter(table[row].values())).get("spd", False)
    return "ict" if spd else "ilut"


def incomplete_goal(table, rows):
    """its <= ILUT/ICT's at <= 2x their memory on >= 6 of the 9 rows (2/3 of a partial run)."""
    need = math.ceil(6 * len(rows) / 9)
    count, lines = 0, []
    for row in rows:
        ref = reference_method(table, row)
        t, c = table[row].get("learned_lu"), table[row].get(ref)
        if not ok(t):
            lines.append(f"{row}: LearnedLU {its_text(t)}: no")
            continue
        if c is None or "skipped" in c or ("error" in c and c.get("timed_out")):
            lines.append(f"{row}: {ref} {its_text(c)}: no comparison, counted as no")
            continue
        if not ok(c):  # the reference ran and failed: LearnedLU converging beats it
            count += 1
            lines.append(f"{row}: LearnedLU {t['its']} vs {ref} {its_text(c)}: yes")
            continue
        ratio = t["factor_bytes"] / c["factor_bytes"] if c["factor_bytes"] else math.inf
        hit = t["its"] <= c["its"] and ratio <= MEMORY_FACTOR
        count += hit
        lines.append(f"{row}: LearnedLU {t['its']} its vs {ref} {c['its']}, memory "
                     f"{ratio:.2f}x: {'yes' if hit else 'no'}")
    return Goal(f"LearnedLU's iterations <= ILUT's (ICT's on SPD rows) at <= 2x their memory "
                f"on >= {need} of the {len(rows)} rows", count >= need,
                f"{count} of {len(rows)} rows (need {need})", lines)


def _beats(t, c):
    """LearnedLU record ``t`` needs no more iterations than the measured record ``c``.

    None when there is no comparison (``c`` missing, skipped or timed out);
    a ``c`` that ran and did not converge (or whose setup failed) is beaten
    by a converged ``t``.
    """
    if c is None or "skipped" in c or c.get("timed_out"):
        return None
    if not ok(t):
        return False
    return True if not ok(c) else t["its"] <= c["its"]


def amg_goal(table, rows):
    present = [r for r in AMG_ROWS if r in rows]
    lines, met = [], len(present) == len(AMG_ROWS)
    for row in present:
        t, a = table[row].get("learned_lu"), table[row].get("amg")
        hit = _beats(t, a)
        met = met and bool(hit)
        verdict = "no comparison" if hit is None else "yes" if hit else "no"
        lines.append(f"{row}: LearnedLU {its_text(t)} vs AMG {its_text(a)}: {verdict}")
    return Goal("LearnedLU's iterations <= AMG's on biharmonic and elasticity", met,
                "; ".join(lines) or "neither row was run", [])


def best_totals(table, row):
    """(best classical record, best record overall) among converged ones, or None."""
    done = [r for r in table[row].values()
            if ok(r) and not r["method"].startswith("learned_lu (")]
    classical = [r for r in done if r["method"] in CLASSICAL]
    best_c = min(classical, key=lambda r: r["total"]) if classical else None
    best = min(done, key=lambda r: r["total"]) if done else None
    return best_c, best


def total_goals(table, rows):
    need = math.ceil(len(rows) / 2)
    within, best_of_all, lines = 0, [], []
    for row in rows:
        t = table[row].get("learned_lu")
        best_c, best = best_totals(table, row)
        if not ok(t):
            lines.append(f"{row}: LearnedLU {its_text(t)}")
            continue
        if best_c is None:
            within += 1
            lines.append(f"{row}: LearnedLU {t['total']:.3g} s; no classical method converged")
        else:
            ratio = t["total"] / best_c["total"]
            within += ratio <= TOTAL_FACTOR
            lines.append(f"{row}: LearnedLU {t['total']:.3g} s vs best classical "
                         f"{best_c['method']} {best_c['total']:.3g} s = {ratio:.2f}x")
        if best is t:
            best_of_all.append(row)
    first = Goal("Setup + solve within 2x of the best classical method on at least half "
                 "the rows", within >= need, f"{within} of {len(rows)} rows (need {need})",
                 lines)
    second = Goal("Setup + solve the best of all on >= 2 rows", len(best_of_all) >= 2,
                  f"{len(best_of_all)} rows: {', '.join(best_of_all) or 'none'}", [])
    return [first, second]


def evaluate(records, rows):
    """All goals, in the issue's order, for the rows of this run."""
    table = index(records)
    rows = [row for row in rows if row in table]
    return [training_goal(table, rows), idle_training_goal(table, rows),
            convergence_goal(table, rows), incomplete_goal(table, rows),
            amg_goal(table, rows), *total_goals(table, rows)]
