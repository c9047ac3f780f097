"""The sections' runs: the main table, the ablations, the hierarchy sizes, seed 003's diffusion."""

import math
import time
import warnings

import numpy as np
from learned_precond import get_preconditioner, problems
from learned_precond.krylov import solve

from .cases import (
    BASELINES,
    BLOCK_SIZE,
    DIFFUSION_OPTIONS,
    DIFFUSION_PRECONDITIONERS,
    HIERARCHY_PROBLEMS,
    MAIN_CASES,
    ORDERING_PROBLEMS,
    RTOL,
    SEED,
)
from .measure import as_dense, fit_baselines, measure, short


def run_main(cfg, log):
    results = {}
    cache = {}
    for case in MAIN_CASES:
        t0 = time.perf_counter()
        A = problems.get(case.problem)
        if case.problem not in cache:
            cache[case.problem] = (
                fit_baselines(A),
                get_preconditioner("exact").fit(as_dense(A)))
        base, solver = cache[case.problem][:2]
        done = cache[case.problem][2] if len(cache[case.problem]) > 2 else None
        opts = {**case.fit_options, **cfg["main_fit"]}
        m = measure(A, fit_options=opts, n_samples=cfg["n_samples"], keep_error_matrix=True,
                    fitted_baselines=base, solver=solver, baseline_results=done)
        cache[case.problem] = (base, solver, {k: m.iterations[k] for k in BASELINES})
        results[case.key] = m
        log(f"  main {case.key}: {time.perf_counter() - t0:.1f} s")
    return results


def ablation_configs(cfg):
    """(label, options) of the ablation study; the first entries vary the blog's tricks."""
    configs = []
    for init in ("auto", "random"):
        for tl, bw in ((False, False), (True, False), (False, True), (True, True)):
            if init == "auto" and tl != bw:
                continue  # with the default init the single tricks add nothing new
            configs.append(dict(init=init, loss="probe", transpose_loss=tl, blockwise=bw,
                                ordering="auto"))
        configs.append(dict(init=init, loss="identity", transpose_loss=False, blockwise=False,
                            ordering="auto"))
    configs.append(dict(init="random", loss="identity", transpose_loss=True, blockwise=True,
                        ordering="auto"))  # the blog's own recipe
    for init in ("block_tridiagonal", "block_jacobi"):
        configs.append(dict(init=init, loss="probe", transpose_loss=False, blockwise=False,
                            ordering="auto"))
    if cfg["quick"]:
        keep = {("auto", "probe", False, False), ("random", "probe", False, False),
                ("random", "probe", True, True), ("random", "identity", True, True)}
        configs = [c for c in configs
                   if (c["init"], c["loss"], c["transpose_loss"], c["blockwise"]) in keep]
    return configs


def run_ablations(cfg, log):
    rows = []
    for problem in ("seed_laplace_1d", "seed_rbf_kernel"):
        A = problems.get(problem)
        base = fit_baselines(A, ())
        solver = get_preconditioner("exact").fit(as_dense(A))
        for opts in ablation_configs(cfg):
            t0 = time.perf_counter()
            m = measure(A, fit_options={**opts, **cfg["ablation_fit"]},
                        n_samples=cfg["ablation_samples"], baselines=(),
                        fitted_baselines=base, solver=solver,
                        keep_error_matrix=problem == "seed_laplace_1d")
            rows.append((problem, "tricks/init/loss", opts, m))
            log(f"  ablation {problem} {opts}: {time.perf_counter() - t0:.1f} s")
    problems_ = ORDERING_PROBLEMS[1:] if cfg["quick"] else ORDERING_PROBLEMS
    for problem, grid in problems_:
        A = problems.get(problem)
        solver = get_preconditioner("exact").fit(as_dense(A))
        orderings = ["natural", "bisection"] + (["geometric"] if grid else [])
        for ordering in orderings:
            opts = dict(init="auto", loss="probe", transpose_loss=False, blockwise=False,
                        ordering=ordering)
            extra = {"grid_shape": grid} if ordering == "geometric" else {}
            t0 = time.perf_counter()
            m = measure(A, fit_options={**opts, **extra, **cfg["ablation_fit"]},
                        n_samples=cfg["ablation_samples"], baselines=(),
                        fitted_baselines={}, solver=solver)
            rows.append((problem, "ordering", opts, m))
            log(f"  ordering {problem} {ordering}: {time.perf_counter() - t0:.1f} s")
    return rows


def grow_skip(history, n_next, budget, start):
    """Whether the next grid size is predicted to fit in the section's time budget.

    ``history`` holds ``(n, seconds)`` of the sizes done (seconds of the whole
    row: fit, solves and metrics). The time is extrapolated as ``N^p`` with
    ``N = n^2`` and ``p`` the growth measured between the last two sizes, at
    least 1.5 (a fit step is O(N) but the fit's GMRES evaluations and the
    unconverged baseline solves grow faster; growth between small rows is too
    noisy to trust a flatter value). Returns ``None`` to go on, or the
    sentence explaining the cap.
    """
    n_prev, t_prev = history[-1]
    p = 1.5
    if len(history) >= 2 and history[-2][1] > 0:
        (n0, t0) = history[-2]
        p = max(1.5, math.log(t_prev / t0) / math.log((n_prev / n0) ** 2))
    predicted = t_prev * ((n_next / n_prev) ** 2) ** p
    left = budget - (time.perf_counter() - start)
    if predicted > left:
        return (f"n = {n_next} and larger skipped: the row at n = {n_prev} took {t_prev:.0f} s, "
                f"so n = {n_next} was predicted to take about {predicted:.0f} s (time ~ "
                f"N^{p:.1f}), more than the {max(left, 0):.0f} s left of this section's "
                f"{budget:.0f} s budget on this machine")
    return None


def run_hierarchy(cfg, log):
    rows, caps = [], []
    start = time.perf_counter()
    per_problem = cfg["hierarchy_budget"] / len(HIERARCHY_PROBLEMS)
    for problem in HIERARCHY_PROBLEMS:
        history = []
        p_start = time.perf_counter()
        for n in cfg["hierarchy_sizes"]:
            if history:
                msg = grow_skip(history, n, per_problem, p_start)
                if msg:
                    caps.append(f"{problem}: {msg}.")
                    break
            t0 = time.perf_counter()
            A = problems.get(problem, n=n)
            m = measure(A, fit_options={"grid_shape": (n, n), **cfg["hierarchy_fit"]},
                        n_samples=cfg["hierarchy_samples"], dense=False)
            rows.append((problem, n, m))
            history.append((n, time.perf_counter() - t0))
            log(f"  hierarchy {problem} n={n}: {time.perf_counter() - t0:.1f} s")
    log(f"  hierarchy total {time.perf_counter() - start:.1f} s")
    return rows, caps


def run_diffusion(cfg, log):
    """Seed 003's comparison: CG iterations and memory on 2-D variable diffusion."""
    from learned_precond import LearnedLU

    rows, cap = [], None
    start = time.perf_counter()
    history = []
    failed_at = {}
    for n in cfg["diffusion_sizes"]:
        row_start = time.perf_counter()
        A = problems.get("diffusion_2d", n=n)
        N = A.shape[0]
        b = np.random.default_rng(SEED + 1).standard_normal(N)
        maxiter = min(10 * N, cfg["cg_maxiter"])
        row = {"n": n, "N": N, "nnz_A": int(A.nnz), "maxiter": maxiter, "entries": {}}
        skip_learned = None
        if history:
            skip_learned = grow_skip(history, n, cfg["diffusion_budget"], start)
        for name in DIFFUSION_PRECONDITIONERS:
            t0 = time.perf_counter()
            if name == "learned_lu" and (skip_learned or cap):
                cap = cap or skip_learned
                row["entries"][name] = None
                continue
            if name in failed_at:
                # It did not converge at a smaller n; larger grids only cost time.
                row["entries"][name] = {"skipped": f"not converged at n = {failed_at[name]}"}
                continue
            entry = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    if name == "learned_lu":
                        M = LearnedLU.fit(A, block_size=BLOCK_SIZE, seed=SEED, grid_shape=(n, n),
                                          **cfg["diffusion_fit"])
                        entry["count"] = int(M.n_parameters)
                        entry["count_kind"] = "parameters"
                        entry["symmetric"] = bool(M.symmetric)
                        entry["init"] = M.report.init
                    else:
                        registry, options = DIFFUSION_OPTIONS.get(name, (name, {}))
                        M = get_preconditioner(registry).fit(A, **options)
                        nnz = getattr(M, "nnz", None)
                        if name == "jacobi":
                            nnz = N
                        elif name == "ilu0":
                            nnz = int(M.data.size)
                        entry["count"] = None if nnz is None else int(nnz)
                        entry["count_kind"] = "nonzeros"
                        entry["symmetric"] = bool(getattr(M, "symmetric", False))
                    entry["setup"] = float(M.setup_time)
                    entry["nbytes"] = int(M.nbytes)
                    res = solve(A, b, M, method="cg", rtol=RTOL, maxiter=maxiter)
                    entry["iterations"] = int(res.iterations)
                    entry["converged"] = bool(res.converged)
                except Exception as exc:
                    entry["error"] = short(exc)
            entry["time"] = time.perf_counter() - t0
            row["entries"][name] = entry
            if "iterations" in entry and not entry["converged"]:
                failed_at[name] = n
        if row["entries"].get("learned_lu"):
            history.append((n, time.perf_counter() - row_start))
        rows.append(row)
        log(f"  diffusion n={n}: {time.perf_counter() - start:.1f} s so far")
    return rows, cap
