"""One case of the hard suite: a preconditioner (or direct solver) on one row, measured.

A case is run in a subprocess of its own (:func:`run_subprocess`): its peak
memory (the rise of the process's maximum resident set over the matrix it
built) is its own, and one that runs past its timeout is killed and
reported as timed out without stopping the run. :func:`run_case` is the same
measurement in this process; it returns a list of records (LearnedLU gives
two: the trained operator and its start).

Solver: CG when the row is SPD and the preconditioner is symmetric, else
GMRES(50); rtol 1e-8 on the true residual of the row's fixed right-hand side
(:func:`learned_precond.problems.hard_case`), x0 = 0, at most
:data:`MAXITER` iterations.
"""

import ctypes
import json
import math
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

#: Methods, in table order. 'direct' is splu, or dense Cholesky for a dense row.
METHODS = ("ilu0", "ilut", "ict", "amg", "direct", "learned_lu")
#: The records of a learned_lu case: the default fit (``solves=1``), its
#: start, and the fit with training allowed wherever it cuts iterations.
MANY_SOLVES = "learned_lu (solves=inf)"
LEARNED_NAMES = ("learned_lu", "learned_lu (start)", MANY_SOLVES)
#: What the fit's stop reason says when it skipped a pass as unable to pay
#: for itself over the expected solves (a solves=inf fit would train on).
COST_STOP = "solves= raises that"
#: The classical methods (everything but LearnedLU).
CLASSICAL = ("ilu0", "ilut", "ict", "amg", "direct")
RTOL = 1e-8
RESTART = 50
MAXITER = 2000
SEED = 0
#: Above this N the sparse incomplete factorizations and AMG are not run on a
#: dense row: ILU of a full pattern is a full LU (O(N^3) in a scalar loop) and
#: AMG's strength graph would be complete.
DENSE_SPARSE_LIMIT = 4096

SCRIPT = Path(__file__).resolve().parents[1] / "hard_suite.py"


def _status_bytes(field):
    """``VmHWM``/``VmRSS`` of /proc/self/status in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _ru_maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _start_peak():
    """Where the rise of the resident set is measured from.

    On Linux, the allocator first returns its free memory to the system
    (glibc ``malloc_trim``: freed pages of the warm-up would otherwise be
    reused without raising the resident set), then the high-water mark is
    reset to the current resident set (``/proc/self/clear_refs``, 5), so
    what the warm-up and the row's generation touched before is neither
    counted against nor hidden from the preconditioner; elsewhere the
    process's maximum so far.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    else:
        rss = _status_bytes("VmRSS")
        if rss is not None and _status_bytes("VmHWM") is not None:
            return rss
    return _ru_maxrss_bytes()


def _maxrss_bytes():
    hwm = _status_bytes("VmHWM")
    return hwm if hwm is not None else _ru_maxrss_bytes()


def skip_reason(row_name, N, dense, spd, method):
    """Why ``method`` is not run on this row, or None."""
    if method == "ict" and not spd:
        return "not SPD"
    if dense and method in ("ilu0", "ilut", "ict", "amg") and N > DENSE_SPARSE_LIMIT:
        return f"dense A with N > {DENSE_SPARSE_LIMIT} (a full pattern)"
    return None


def _solve(A, b, M, spd):
    """Krylov solve; returns the record's solver fields."""
    from learned_precond.krylov import solve

    method = "cg" if spd and getattr(M, "symmetric", False) else "gmres"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = solve(A, b, M, method=method, rtol=RTOL, maxiter=MAXITER, restart=RESTART)
    return {"solver": method, "its": int(res.iterations), "converged": bool(res.converged),
            "solve": float(res.solve_time), "residual": float(res.relative_residual),
            "info": int(res.info)}


def _direct(row):
    """splu (sparse) or dense Cholesky: setup, solve, factor bytes, residual."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    A, b = row.A, row.b
    N = row.N
    start = time.perf_counter()
    if isinstance(A, np.ndarray):
        # torch's LAPACK: numpy's and scipy's (OpenBLAS) potrf crash with a
        # segmentation fault on the 16384 x 16384 kernel row on this machine
        import torch

        At = torch.from_numpy(A)
        factor = torch.linalg.cholesky(At) if row.spd else torch.linalg.lu_factor(At)
        setup = time.perf_counter() - start
        nbytes = int(A.nbytes)
        start = time.perf_counter()
        bt = torch.from_numpy(np.asarray(b, dtype=np.float64)).reshape(-1, 1)
        x = (torch.cholesky_solve(bt, factor) if row.spd
             else torch.linalg.lu_solve(*factor, bt)).numpy().ravel()
        name = "dense Cholesky (torch)" if row.spd else "dense LU (torch)"
    else:
        lu = splu(sp.csc_matrix(A))
        setup = time.perf_counter() - start
        nnz = lu.L.nnz + lu.U.nnz
        nbytes = int(nnz * 12 + 8 * (N + 1) * 2 + 8 * N)  # values + indices, pointers, perms
        start = time.perf_counter()
        x = lu.solve(b)
        name = "splu"
    solve = time.perf_counter() - start
    residual = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    return {"setup": setup, "solve": solve, "factor_bytes": nbytes, "solver": name,
            "its": 0, "converged": residual <= RTOL, "residual": residual, "info": 0}


def _learned_options(row, extra=None):
    options = {"seed": SEED, **(extra or {})}
    if isinstance(row.A, np.ndarray):
        options["coords"] = row.coords  # the dense row has no graph to order by
    return options


def _fit_record(row, options, method, base_rss):
    """One LearnedLU fit and solve: the record and the fitted operator."""
    from learned_precond import FitConvergenceWarning, IllConditionedWarning, LearnedLU

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FitConvergenceWarning, IllConditionedWarning))
        start = time.perf_counter()
        M = LearnedLU.fit(row.A, **options)
        setup = time.perf_counter() - start
    peak = None if base_rss is None else _maxrss_bytes() - base_rss
    rep = M.report
    record = {
        "method": method, "setup": setup, "peak": peak, "factor_bytes": int(M.nbytes),
        "start_seconds": float(rep.start_seconds), "train_seconds": float(rep.train_seconds),
        "steps": int(rep.steps), "best_step": getattr(rep, "best_step", None),
        "rank_tol": float(rep.rank_tol),
        "stop_reason": str(rep.stop_reason), "init": str(getattr(rep, "init", "")),
        # the fit's own merit (Krylov iterations on a random right-hand side,
        # nested layout): what it keeps passes by, compared with its below
        "merit_start": float(getattr(rep, "start_iterations", float("nan"))),
        "merit": float(getattr(rep, "iterations", float("nan"))),
        **_solve(row.A, row.b, M, row.spd),
    }
    return record, M


def _learned(row, base_rss, extra=None):
    """LearnedLU with default options (updated by ``extra``): the trained record, its
    start's record, and the record of training allowed on every row (``solves=inf``:
    a second fit where the default stopped at a pass that could not pay for itself
    in one solve, else the default fit's own numbers)."""
    from learned_precond import FitConvergenceWarning, IllConditionedWarning, LearnedLU

    options = _learned_options(row, extra)
    trained, M = _fit_record(row, options, "learned_lu", base_rss)
    rep = M.report
    if COST_STOP in trained["stop_reason"] and "solves" not in options:
        many, _ = _fit_record(row, {**options, "solves": math.inf}, MANY_SOLVES, None)
        many["fit_again"] = True
    else:
        many = {**trained, "method": MANY_SOLVES, "peak": None, "fit_again": False}
    if hasattr(M, "start_operator"):
        S = M.start_operator()
        how = "M.start_operator()"
        s_setup = float(rep.start_seconds)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (FitConvergenceWarning, IllConditionedWarning))
            start = time.perf_counter()
            S = LearnedLU.fit(row.A, **options, max_steps=0)
            s_setup = time.perf_counter() - start
        how = "a second fit with max_steps=0"
    first = {"method": "learned_lu (start)", "setup": s_setup, "peak": None,
             "factor_bytes": int(S.nbytes), "start_from": how,
             **_solve(row.A, row.b, S, row.spd)}
    return [trained, first, many]


def _classical(row, method, base_rss):
    from learned_precond import get_preconditioner

    cls = get_preconditioner(method)
    start = time.perf_counter()
    M = cls.fit(row.A)
    setup = time.perf_counter() - start
    return [{"method": method, "setup": setup, "peak": _maxrss_bytes() - base_rss,
             "factor_bytes": int(M.nbytes), **_solve(row.A, row.b, M, row.spd)}]


def _warm_up(method):
    """Compile numba kernels and load torch/pyamg on a tiny matrix before anything is timed."""
    sys.path.insert(0, str(SCRIPT.parent))
    from _common import warm_up

    if method != "direct":
        warm_up([method])
    if method == "learned_lu":
        # an apply that reads >= 2^17 entries runs on two threads
        # (_hierarchical.factorization._substitute_split): its first call in
        # a process cost ~20 ms more than the next ones, which the first
        # timed fit's 3-iteration training run paid (22% of a 0.27 s fit on
        # 2-D Poisson at N = 65536, against 10-15% after). Its freed memory
        # is returned before the peak is measured (_start_peak).
        from learned_precond import LearnedLU, problems

        B = problems.get("laplace_2d", n=128)
        big = LearnedLU.fit(B, seed=0)
        for _ in range(2):
            big @ np.ones(B.shape[0])


def run_case(row_name, method, scale, *, warm=True, learned_options=None):
    """Measure ``method`` on hard-suite row ``row_name`` at ``scale``; a list of records.

    ``learned_options`` (a dict, e.g. ``{"rank_tol": 1e-3}``) are passed to
    ``LearnedLU.fit`` besides the suite's own (default: the library defaults).
    """
    from learned_precond.problems import hard_case

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")
    if warm:
        _warm_up(method)
    row = hard_case(row_name, scale=scale)
    dense = isinstance(row.A, np.ndarray)
    common = {"row": row_name, "N": row.N, "scale": scale, "spd": row.spd}
    why = skip_reason(row_name, row.N, dense, row.spd, method)
    if why is not None:
        names = LEARNED_NAMES if method == "learned_lu" else [method]
        return [{**common, "method": m, "skipped": why} for m in names]
    base_rss = _start_peak()
    try:
        if method == "direct":
            records = [{"method": "direct", **_direct(row), "peak": _maxrss_bytes() - base_rss}]
        elif method == "learned_lu":
            records = _learned(row, base_rss, learned_options)
        else:
            records = _classical(row, method, base_rss)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports a failed setup, it goes on
        text = " ".join(str(exc).split())
        names = LEARNED_NAMES if method == "learned_lu" else [method]
        return [{**common, "method": m, "error": f"{type(exc).__name__}: {text[:160]}"}
                for m in names]
    for r in records:
        r.update(common)
        r["total"] = r["setup"] + r["solve"]
    return records


def run_subprocess(row_name, method, scale, *, timeout, learned_options=None):
    """:func:`run_case` in a fresh Python process, cut off after ``timeout`` seconds."""
    cmd = [sys.executable, str(SCRIPT), "--case", row_name, method, repr(float(scale))]
    if learned_options:
        cmd += ["--learned-options", json.dumps(learned_options)]
    names = LEARNED_NAMES if method == "learned_lu" else [method]
    base = {"row": row_name, "scale": scale}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return [{**base, "method": m, "error": f"timed out ({timeout:g} s)",
                 "timed_out": True} for m in names]
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return [{**base, "method": m, "error": f"exit {proc.returncode}: {tail[0][:160]}"}
                for m in names]
    return json.loads(proc.stdout.strip().splitlines()[-1])
