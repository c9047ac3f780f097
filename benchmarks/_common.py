"""Helpers shared by the benchmark scripts (scaling, amortized, spai, seed_table, ...).

Timing (medians over repeats, in one run), fitting with the options recorded,
the run's environment for the generated pages, markdown tables, log-log
slopes and plots, and the time budget that lets a script stop (and say so)
before a measurement that would not finish in time.
"""

import datetime
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results"

__all__ = [
    "DEFAULT_OUT",
    "REPO",
    "Budget",
    "available_memory_bytes",
    "environment_lines",
    "fit_preconditioner",
    "format_bytes",
    "format_ratio",
    "format_seconds",
    "format_slope",
    "git_state",
    "load_average",
    "loglog_slope",
    "markdown_table",
    "median_time",
    "parse_fit_options",
    "plot_loglog_panels",
    "time_apply",
    "warm_up",
]


# -- timing ------------------------------------------------------------------


def median_time(func, *, repeats):
    """Call ``func()`` ``repeats`` times; return (median seconds, all times, last result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times, result


def time_apply(M, x, *, target_s=0.5, min_repeats=5, max_repeats=50):
    """Median seconds of one ``M @ x`` (one vector), and the number of repeats.

    One untimed call first (first-call effects: lazy packing, page faults),
    then enough timed calls to fill about ``target_s`` seconds, between
    ``min_repeats`` and ``max_repeats``.
    """
    start = time.perf_counter()
    M @ x
    first = time.perf_counter() - start
    repeats = int(np.clip(math.ceil(target_s / max(first, 1e-9)), min_repeats, max_repeats))
    median, _, _ = median_time(lambda: M @ x, repeats=repeats)
    return median, repeats


def fit_preconditioner(cls, A, options, *, repeat_below_s=2.0, max_repeats=3):
    """Fit ``cls`` on ``A``; refit (up to ``max_repeats`` in all) while fits are quick.

    Returns ``(M, median setup seconds, number of fits)``. The first fit is
    always kept; more fits are made only when one takes under
    ``repeat_below_s`` seconds, so the median is over several fits exactly
    where one fit is short enough to be noisy.
    """
    from learned_precond.exceptions import FitConvergenceWarning, IllConditionedWarning

    times = []
    M = None
    for _ in range(max_repeats):
        with warnings.catch_warnings():
            # A LearnedLU stopped at max_steps is measured as it is; its report
            # (steps, stop reason) goes into the tables instead of a warning.
            warnings.simplefilter("ignore", (FitConvergenceWarning, IllConditionedWarning))
            start = time.perf_counter()
            fitted = cls.fit(A, **options)
            times.append(time.perf_counter() - start)
        M = M if M is not None else fitted
        if times[-1] >= repeat_below_s:
            break
    return M, float(np.median(times)), len(times)


def warm_up(names):
    """Fit, apply and solve with each registered preconditioner once on a tiny matrix.

    Loads the numba caches, torch and pyamg before anything is timed, so the
    first measured fit does not pay for them.
    """
    from learned_precond import get_preconditioner, problems
    from learned_precond.krylov import solve

    A = problems.get("laplace_2d", n=8)
    b = np.asarray(A @ np.ones(A.shape[0]))
    for name in names:
        options = {"seed": 0, "max_steps": 1} if name == "learned_lu" else {}
        M, _, _ = fit_preconditioner(get_preconditioner(name), A, options, max_repeats=1)
        M @ b
        solve(A, b, M, method="gmres", rtol=1e-8, maxiter=100)
        if name == "learned_lu":
            # the level-set ordering (graphs of >= LEVEL_SET_MIN vertices)
            # is a kernel of its own that the tiny fit above does not reach
            from learned_precond._hierarchical.tree import nested_dissection

            nested_dissection(A, leaf_size=8, method="level_set")
            # factors stored in float32 (the default from N = 16384 on) are
            # read by their own specializations of the substitution kernels
            M32 = get_preconditioner(name).fit(A, seed=0, max_steps=0, factor_dtype="float32")
            M32 @ b
            M32 @ np.stack([b, b], axis=1)


def loglog_slope(xs, ys):
    """Least-squares slope of ``log y`` against ``log x`` (``np.polyfit``), or nan.

    Points with a missing, non-finite or non-positive ``y`` are left out;
    fewer than two points give nan.
    """
    pts = [
        (float(x), float(y))
        for x, y in zip(xs, ys, strict=True)
        if y is not None and np.isfinite(y) and y > 0
    ]
    if len(pts) < 2:
        return float("nan")
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


class Budget:
    """Wall-clock budget of a script run, and the projection that stops a measurement early.

    A cell (one preconditioner at one size) is run only when its projected
    cost fits both the per-cell cap and the time left; the projection
    scales the last measured cost of the same preconditioner by
    ``(N_next / N_last) ** p``, with ``p`` the larger of ``default_exponent``
    and the observed log-log slope of the last two sizes, clamped to
    ``[1, 3]``: at small N fixed costs flatten the observed slope, and an
    optimistic projection would start a measurement that cannot finish.
    """

    def __init__(self, total_s, *, cell_cap_s):
        self.total_s = float(total_s)
        self.cell_cap_s = float(cell_cap_s)
        self.start = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start

    def remaining(self):
        return self.total_s - self.elapsed()

    @staticmethod
    def project(history, n_next, *, default_exponent):
        """Projected seconds at ``n_next`` from ``history`` = [(N, seconds), ...]."""
        if not history:
            return 0.0
        (n_last, t_last) = history[-1]
        p = default_exponent
        if len(history) >= 2:
            (n_prev, t_prev) = history[-2]
            if t_prev > 0 and t_last > 0 and n_last != n_prev:
                p = max(p, math.log(t_last / t_prev) / math.log(n_last / n_prev))
        return t_last * (n_next / n_last) ** float(np.clip(p, 1, 3))

    def refuses(self, projected_s, *, limit_s=None):
        """Return why a cell projected at ``projected_s`` must not run, or None."""
        limit = self.remaining() if limit_s is None else min(limit_s, self.remaining())
        if projected_s > self.cell_cap_s:
            return (
                f"projected {projected_s:.0f} s exceeds the per-measurement cap of "
                f"{self.cell_cap_s:.0f} s"
            )
        if projected_s > limit:
            return f"projected {projected_s:.0f} s exceeds the {max(limit, 0):.0f} s left"
        return None


def available_memory_bytes():
    """MemAvailable from /proc/meminfo (Linux), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# -- options and environment ----------------------------------------------------


def parse_fit_options(items):
    """Parse ``key=value`` strings (CLI ``--fit``) into a dict of Python values.

    Values are read as ``learned-precond --fit`` reads them (bool, None, int,
    float, otherwise the string).
    """
    from learned_precond.cli import parse_value

    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--fit expects key=value, got {item!r} (e.g. --fit max_steps=20).")
        options[key.strip()] = parse_value(value)
    return options


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def git_state(*paths, untracked=False):
    """``(short commit, dirty)``: HEAD and whether ``paths`` (default all) differ from it.

    ``untracked`` counts untracked files as changes. ``('unknown', False)``
    outside a git checkout.
    """
    status = ["git", "status", "--porcelain"] + ([] if untracked else ["--untracked-files=no"])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
            text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [*status, "--", *paths] if paths else status, cwd=REPO, capture_output=True,
            text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit or "unknown", bool(dirty)


def _git_commit():
    commit, dirty = git_state()
    return commit + (" (with uncommitted changes)" if dirty else "")


def load_average():
    """The 1, 5 and 15 minute load averages as text (other processes share the CPUs)."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def environment_lines(argv=None):
    """Markdown bullet lines describing how and where the numbers were measured."""
    import numba
    import pyamg
    import scipy
    import torch

    argv = sys.argv if argv is None else argv
    script = Path(argv[0]).resolve()
    shown = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else argv[0]
    load = load_average()
    return [
        f"- command: `python {shlex.join([shown, *argv[1:]])}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- commit: {_git_commit()}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}; load average at start: {load}",
        f"- software: Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, pyamg {pyamg.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numba {numba.__version__}",
    ]


# -- formatting -------------------------------------------------------------------


def format_seconds(t):
    """Seconds with 3 significant digits, switching to ms / us below 1 s."""
    if t is None or not np.isfinite(t):
        return "-"
    if t == 0:
        return "0 s"
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def format_bytes(n):
    """Bytes in KiB / MiB / GiB (3 significant digits); '-' when unknown."""
    from learned_precond._format import format_bytes

    return "-" if n is None else format_bytes(n, spec=".3g")


def format_ratio(r):
    """A ratio as ``1.23x``; '-' when unavailable."""
    if r is None or not np.isfinite(r):
        return "-"
    return f"{r:.3g}x"


def format_slope(s):
    """A log-log slope with two decimals; '-' when unavailable."""
    return "-" if s is None or not np.isfinite(s) else f"{s:.2f}"


def markdown_table(headers, rows):
    """A GitHub markdown table; cells are converted with ``str`` and ``|`` escaped."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
              for row in rows]
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------------


def plot_loglog_panels(path, panels, *, ncols, suptitle):
    """Write a grid of log-log panels to ``path``.

    ``panels`` is a list of ``(title, ylabel, series)``; ``series`` a list of
    ``(label, xs, ys, hollow)`` where ``hollow[i]`` draws point ``i`` as an
    open marker (e.g. not converged). ``ys`` entries that are None, nan or
    non-positive are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, ylabel, series) in zip(axes.flat, panels, strict=False):
        for i, (label, xs, ys, hollow) in enumerate(series):
            pts = [
                (x, y, h)
                for x, y, h in zip(xs, ys, hollow, strict=True)
                if y is not None and np.isfinite(y) and y > 0
            ]
            if not pts:
                continue
            color = f"C{i}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=color, label=label)
            for x, y, h in pts:
                ax.plot(x, y, "o", color=color, markerfacecolor="white" if h else color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Minor tick labels of a short log axis overlap the major ones.
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("N (unknowns)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
