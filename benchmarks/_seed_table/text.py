"""Numbers, iteration counts, option sets and lists as the document writes them."""

import math

from .cases import BASELINES


def fmt(value, digits=3):
    """Format a number for the tables (inf/NaN/None spelled out)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    value = float(value)
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if abs(value) < 1e-2 or abs(value) >= 1e5:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def fmt_iterations(entry, maxiter=None):
    """``12``, ``>5000 (not converged)`` or the error text."""
    if entry is None:
        return "—"
    if isinstance(entry, str):
        return f"error: {entry}"
    its, converged = entry
    return str(its) if converged else f"{its} (not converged)"


def fmt_seconds(value):
    return "—" if value is None or math.isnan(value) else f"{value:.1f} s"


def join_words(items):
    items = list(items)
    if not items:
        return "none"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def config_label(o):
    parts = [f"init={o['init']}", f"loss={o['loss']}"]
    parts.append("T" if o["transpose_loss"] else "no T")
    parts.append("B" if o["blockwise"] else "no B")
    if o.get("ordering", "auto") != "auto":
        parts.append(f"ordering={o['ordering']}")
    return ", ".join(parts)


def options_text(opts):
    keep = {k: v for k, v in opts.items() if k not in ("block_size", "seed")}
    if not keep:
        return "defaults"
    return ", ".join(f"{k}={v}" for k, v in keep.items())


def steps_text(m):
    """``'60 (tolerance; kept step 0)'``: steps taken, why it stopped, which step was kept."""
    if m.fit_error:
        return "—"
    return f"{m.steps} ({m.stop_reason}; kept step {m.best_step})"


def its_word(entry):
    return "iteration" if isinstance(entry, tuple) and entry[0] == 1 else "iterations"


def ratio(a, b):
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def best_baseline(m):
    best = None
    for name in BASELINES:
        e = m.iterations.get(name)
        if isinstance(e, tuple) and e[1] and (best is None or e[0] < best[1]):
            best = (name, e[0])
    return best
