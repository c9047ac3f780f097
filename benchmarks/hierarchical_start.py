"""LearnedLU's hierarchical start at scale, beside ICT, ILUT, AMG and splu (issue 14).

Every (problem, N, preconditioner) runs in its own subprocess, so that its
peak memory (ru_maxrss of that process, minus the matrix it was handed) is
its own and a case that runs out of time is cut off without taking the run
with it. CG (rtol 1e-8, b = A @ ones, true residual, at most 1000 its) on
every SPD problem; ILUT is nonsymmetric, so its row uses GMRES(50) (marked).

    python benchmarks/hierarchical_start.py            # the page, ~25 min on 2 cores
    python benchmarks/hierarchical_start.py --quick    # N <= 65536 only

Writes docs/results/hierarchical.md.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_OUT,
    environment_lines,
    format_bytes,
    format_seconds,
    format_slope,
    loglog_slope,
    markdown_table,
)

PRECONDITIONERS = ("learned_lu", "ict", "ilut", "amg", "splu")
#: (problem, gallery parameters) per row family; n is the grid side.
FAMILIES = {
    "poisson_2d": ("laplace_2d", {}),
    "lognormal_2d": ("diffusion_2d", {"coefficient": "lognormal", "contrast": 1e3}),
    "poisson_3d": ("laplace_3d", {}),
}
SIDES = {"poisson_2d": (128, 256, 512, 1024), "lognormal_2d": (128, 256, 512, 1024),
         "poisson_3d": (32, 64)}
QUICK_SIDES = {"poisson_2d": (128, 256), "lognormal_2d": (128, 256), "poisson_3d": (32,)}
TOLS = (0.3, 0.1, 3e-2, 1e-2, 3e-3, 1e-3)
CASE_TIMEOUT = 600


def _matrix(family, n):
    from learned_precond import problems

    name, params = FAMILIES[family]
    import scipy.sparse as sp

    return sp.csr_array(problems.get(name, n=n, **params))


def _maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(family, n, precond, tol):
    """One measurement, in this process; returns a JSON-able dict."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    from learned_precond import AMG, ILUT, IncompleteCholesky, LearnedLU, solve

    if precond != "splu":
        # numba caches, pyamg and torch loaded before anything is timed (the
        # first fit of a process had paid for them: ~0.3 s at N = 16384)
        from _common import warm_up

        warm_up([precond])
    A = _matrix(family, n)
    N = A.shape[0]
    b = A @ np.ones(N)
    base_rss = _maxrss_bytes()
    out = {"family": family, "n": n, "N": N, "precond": precond, "tol": tol}
    start = time.perf_counter()
    if precond == "splu":
        lu = splu(sp.csc_array(A))
        out["setup"] = time.perf_counter() - start
        out["peak"] = _maxrss_bytes() - base_rss
        nnz = lu.L.nnz + lu.U.nnz
        out["factor_bytes"] = nnz * 12 + 8 * (N + 1) * 2
        start = time.perf_counter()
        x = lu.solve(b)
        out["solve"] = time.perf_counter() - start
        out["its"] = 0
        out["method"] = "direct"
    else:
        if precond == "learned_lu":
            M = LearnedLU.fit(A, init="hierarchical", rank_tol=tol, seed=0)
            rep = M.report
            out["start_seconds"] = rep.start_seconds
            out["train_seconds"] = rep.train_seconds
            out["notes"] = list(rep.notes)
            out["max_rank"] = int(M.factors.kL.max())
        elif precond == "ict":
            M = IncompleteCholesky.fit(A)
        elif precond == "ilut":
            M = ILUT.fit(A)
        else:
            M = AMG.fit(A)
        out["setup"] = time.perf_counter() - start
        out["peak"] = _maxrss_bytes() - base_rss
        out["factor_bytes"] = int(M.nbytes)
        method = "gmres" if precond == "ilut" else "cg"
        start = time.perf_counter()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = solve(A, b, M, method=method, rtol=1e-8, maxiter=1000, restart=50)
        out["solve"] = time.perf_counter() - start
        out["its"] = int(res.iterations)
        out["converged"] = bool(res.converged)
        x = res.x
        out["method"] = method
    out["residual"] = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    out["floats_per_unknown"] = out["factor_bytes"] / 8 / N
    return out


def run_subprocess(family, n, precond, tol):
    N = n ** (3 if family.endswith("3d") else 2)
    cmd = [sys.executable, __file__, "--case", family, str(n), precond, str(tol)]
    env = dict(os.environ)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"family": family, "n": n, "N": N, "precond": precond, "tol": tol,
                "error": f"timeout ({CASE_TIMEOUT} s)"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"family": family, "n": n, "N": N, "precond": precond, "tol": tol,
                "error": f"exit {proc.returncode}: {tail[0][:120]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _its(r):
    if "error" in r:
        return r["error"]
    if r["method"] == "direct":
        return "direct"
    its = str(r["its"]) + (" (gmres)" if r["method"] == "gmres" else "")
    return its if r.get("converged", True) else f"> {r['its']} (not converged)"


def _row(r):
    if "error" in r:
        return [r["family"], str(r["N"]), r["precond"], r["error"]] + [""] * 7
    name = r["precond"] + (f" (tol {r['tol']:g})" if r["precond"] == "learned_lu" else "")
    split = ""
    if r["precond"] == "learned_lu":
        split = (f"{format_seconds(r['start_seconds'])} / "
                 f"{format_seconds(r['train_seconds'])}")
    return [r["family"], str(r["N"]), name, format_seconds(r["setup"]), split,
            format_bytes(r["peak"]), f"{r['floats_per_unknown']:.1f}", _its(r),
            format_seconds(r["solve"]), format_seconds(r["setup"] + r["solve"]),
            f"{r['residual']:.1e}"]


HEADERS = ["problem", "N", "preconditioner", "setup", "start / training", "peak memory",
           "factor floats / unknown", "its", "solve", "setup + solve", "true residual"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=4, metavar=("FAMILY", "N", "PRECOND", "TOL"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tol", type=float, default=1e-2,
                        help="rank_tol of LearnedLU's hierarchical start in the scaling rows")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma-separated problem families (default: all)")
    parser.add_argument("--precond", default=",".join(PRECONDITIONERS),
                        help="comma-separated preconditioners (default: all)")
    parser.add_argument("--ilut-max-n", type=int, default=None,
                        help="skip ILUT (GMRES) above this N (it needs hundreds of "
                             "iterations there)")
    args = parser.parse_args(argv)
    if args.case:
        fam, n, pre, tol = args.case
        print(json.dumps(run_case(fam, int(n), pre, float(tol))))
        return 0

    sides = QUICK_SIDES if args.quick else SIDES
    args.out.mkdir(parents=True, exist_ok=True)  # now, not after the runs
    t_run = time.perf_counter()
    results = []
    families = [f for f in args.families.split(",") if f]
    preconds = [p for p in args.precond.split(",") if p]
    unknown = sorted(set(families) - set(FAMILIES)) + sorted(set(preconds) - set(PRECONDITIONERS))
    if unknown:
        parser.error(f"unknown family or preconditioner: {', '.join(unknown)}")
    for family, ns in sides.items():
        if family not in families:
            continue
        for n in ns:
            for pre in preconds:
                N = n ** (3 if family.endswith("3d") else 2)
                if pre == "ilut" and args.ilut_max_n is not None and N > args.ilut_max_n:
                    continue
                r = run_subprocess(family, n, pre, args.tol)
                print(json.dumps(r), flush=True)
                results.append(r)
    knob = []
    for tol in TOLS:
        r = run_subprocess("poisson_2d", 256, "learned_lu", tol)
        print(json.dumps(r), flush=True)
        knob.append(r)
    write_page(args.out / "hierarchical.md", results, knob, args,
               time.perf_counter() - t_run, argv_of_run=argv)
    return 0


def _slopes(results):
    rows = []
    for family in FAMILIES:
        for pre in PRECONDITIONERS:
            rs = [r for r in results if r["family"] == family and r["precond"] == pre
                  and "error" not in r]
            if len(rs) < 2:
                continue
            N = [r["N"] for r in rs]
            cells = [family, pre, f"{N[0]}-{N[-1]}"]
            for key in ("setup", "peak", "factor_bytes"):
                cells.append(format_slope(loglog_slope(N, [max(r[key], 1e-9) for r in rs])))
            rows.append(cells)
    return rows


def _checks(results):
    """The issue's N = 65536 2-D Poisson checks, from this run's rows."""
    get = {r["precond"]: r for r in results
           if r["family"] == "poisson_2d" and r.get("N") == 65536 and "error" not in r}
    if "learned_lu" not in get or "ict" not in get:
        return ["(the N = 65536 Poisson rows did not complete)"]
    h, c = get["learned_lu"], get["ict"]
    lines = [
        f"- CG iterations: LearnedLU {h['its']} vs ICT {c['its']}: "
        f"{'met' if h['its'] <= c['its'] else 'MISSED'} (<=).",
        f"- factor memory: {format_bytes(h['factor_bytes'])} vs ICT "
        f"{format_bytes(c['factor_bytes'])} = {h['factor_bytes'] / c['factor_bytes']:.2f}x: "
        f"{'met' if h['factor_bytes'] <= 2 * c['factor_bytes'] else 'MISSED'} (<= 2x).",
        f"- setup + solve: {format_seconds(h['setup'] + h['solve'])} vs ICT "
        f"{format_seconds(c['setup'] + c['solve'])} = "
        f"{(h['setup'] + h['solve']) / (c['setup'] + c['solve']):.2f}x: "
        f"{'met' if h['setup'] + h['solve'] <= 3 * (c['setup'] + c['solve']) else 'MISSED'}"
        f" (<= 3x).",
    ]
    big = [r for r in results if r["family"] == "poisson_2d" and r.get("N") == 262144
           and r["precond"] == "learned_lu"]
    if big and "error" not in big[0]:
        r = big[0]
        lines.append(f"- N = 262144: setup {format_seconds(r['setup'])} (< 5 min: "
                     f"{'met' if r['setup'] < 300 else 'MISSED'}), peak memory "
                     f"{format_bytes(r['peak'])} (< 4 GB: "
                     f"{'met' if r['peak'] < 4e9 else 'MISSED'}).")
    huge = [r for r in results if r.get("N") == 1048576 and r["precond"] == "learned_lu"]
    for r in huge:
        lines.append(f"- {r['family']} N = 1048576: "
                     + ("completed" if "error" not in r else f"did not complete ({r['error']})")
                     + ".")
    for family in ("poisson_2d", "lognormal_2d"):
        rs = [r for r in results if r["family"] == family and r["precond"] == "learned_lu"
              and "error" not in r]
        if len(rs) < 2:
            continue
        N = [r["N"] for r in rs]
        setup = loglog_slope(N, [r["setup"] for r in rs])
        peak = loglog_slope(N, [max(r["peak"], 1e-9) for r in rs])
        lines.append(f"- {family} log-log slopes over N = {N[0]}..{N[-1]}: setup "
                     f"{format_slope(setup)}, peak memory {format_slope(peak)}: "
                     f"{'met' if max(setup, peak) <= 1.2 else 'MISSED'} (<= 1.2).")
    return lines


def _best_total(results):
    lines = []
    keys = sorted({(r["family"], r.get("N", r["n"])) for r in results})
    for fam, N in keys:
        rs = [r for r in results if r["family"] == fam and r.get("N", r["n"]) == N
              and "error" not in r and r.get("converged", True)]
        if not rs:
            continue
        best = min(rs, key=lambda r: r["setup"] + r["solve"])
        lines.append(f"- {fam} N = {N}: best setup + solve {best['precond']} "
                     f"({format_seconds(best['setup'] + best['solve'])})")
    return lines


def write_page(path, results, knob, args, seconds, argv_of_run=None):
    lines = [
        "# LearnedLU's hierarchical start at scale",
        "",
        "Generated by `python benchmarks/hierarchical_start.py"
        + "".join(f" {a}" for a in (sys.argv[1:] if argv_of_run is None else argv_of_run))
        + f"` in {seconds / 60:.1f} min "
        "(every case in its own process; do not edit by hand).",
        "",
        *environment_lines(),
        "",
        "`LearnedLU.fit(A, init='hierarchical', rank_tol=tol)` (the default layout for "
        "sparse A, with its training passes; 'start / training' splits the fit): a "
        "compressed multifrontal Cholesky on the nested-dissection tree "
        "(`learned_precond/_hierarchical/`), the separator fill truncated to "
        "`tol * sigma_1` as it is formed. CG to rtol "
        "1e-8 with b = A @ ones (ILUT, nonsymmetric, with GMRES(50)); 'its' are "
        "iterations, 'direct' a single solve. Peak memory: the rise of the process's "
        "maximum resident set while the preconditioner was built. Factor floats per "
        "unknown: the preconditioner's `nbytes` / 8 / N (indices included).",
        "",
        f"## Scaling (LearnedLU rank_tol = {args.tol:g})",
        "",
        markdown_table(HEADERS, [_row(r) for r in results]),
        "",
        "## Fitted log-log slopes (exponent p in cost ~ N^p)",
        "",
        markdown_table(["problem", "preconditioner", "N range", "setup", "peak memory",
                        "factor memory"], _slopes(results)),
        "",
        "## Checks at N = 65536, 2-D Poisson (issue 14)",
        "",
        *_checks(results),
        "",
        "## Best total per row",
        "",
        *_best_total(results),
        "",
        "## The tolerance knob: 2-D Poisson, N = 65536",
        "",
        markdown_table(HEADERS, [_row(r) for r in knob]),
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
