"""The document: one function per section's tables, and the page that puts them together."""

import datetime
import os
import platform

import learned_precond
from _common import git_state, markdown_table

from .blog import BLOG, blog_note, goal_status
from .cases import (
    BASELINES,
    BLOCK_SIZE,
    DIFFUSION_OPTIONS,
    DIFFUSION_PRECONDITIONERS,
    MAIN_CASES,
    RESTART,
    RTOL,
)
from .prose import section_prose
from .text import (
    config_label,
    fmt,
    fmt_iterations,
    fmt_seconds,
    join_words,
    options_text,
    steps_text,
)


def section_main(main, cfg):
    lines = []
    header = ["problem", "‖E_A‖₂", "blog", "‖E_A‖₂/‖A‖₂", "e_x LAPACK64", "e_x LearnedLU",
              "blog e_x solver", "blog e_x LU-net", "e_b LAPACK64", "e_b LearnedLU",
              "blog e_b solver", "blog e_b LU-net", "cond(A)", "blog", "cond(A_hat)", "blog",
              "goal met?"]
    rows = []
    for case in MAIN_CASES:
        m, blog = main[case.key], BLOG[case.key]
        g = blog or {}
        met, reasons = goal_status(m, blog)
        rows.append([
            case.label, fmt(m.E_A), fmt(g.get("E_A")), fmt(m.E_A_rel), fmt(m.e_x_solver),
            fmt(m.e_x), fmt(g.get("ex_solver")), fmt(g.get("ex_lu")), fmt(m.e_b_solver),
            fmt(m.e_b), fmt(g.get("eb_solver")), fmt(g.get("eb_lu")), fmt(m.cond_A),
            fmt(g.get("cond_A")), fmt(m.cond_A_hat), fmt(g.get("cond_A_hat")),
            ("yes" if blog else "yes (no blog E_A to compare)") if met
            else "no: " + "; ".join(reasons)])
    lines.append(markdown_table(header, rows))
    lines.append("")
    lines.append(
        f"Ours: N = 256, block size {BLOCK_SIZE}, LearnedLU defaults except the options "
        f"named in the row (fit options per row in the next table). e_x, e_b: mean over "
        f"{cfg['n_samples']} samples x ~ N(0, I) of ‖x_hat − x‖/‖x‖ and "
        f"‖A x_hat − b‖/(‖A‖₂‖x_hat‖ + ‖b‖) with x_hat = M b, b = A x. cond: 2-norm, "
        f"dense SVD. Goal: ‖E_A‖₂ ≤ blog/10, cond(A_hat) within 10x of cond(A), e_x "
        f"finite, GMRES with LearnedLU converged.")
    lines.append("")
    lines.append(f"GMRES({RESTART}) iterations to rtol {RTOL:g} (true residual), b ~ N(0, I):")
    lines.append("")
    header = ["problem"] + list(BASELINES) + ["LearnedLU", "LearnedLU fit options", "init",
                                              "ordering", "steps (stop; kept step)",
                                              "fit time", "memory (bytes)"]
    rows = []
    for case in MAIN_CASES:
        m = main[case.key]
        rows.append([case.label] + [fmt_iterations(m.iterations.get(n)) for n in BASELINES]
                    + [fmt_iterations(m.iterations.get("learned_lu")),
                       options_text(m.fit_options), m.init or "—", m.ordering or "—",
                       steps_text(m), fmt_seconds(m.fit_time),
                       str(m.nbytes) if m.nbytes else "—"])
    lines.append(markdown_table(header, rows))
    lines.append("")
    lines.append("What differs from the blog's metric, row by row:")
    lines.append("")
    for case in MAIN_CASES:
        lines.append(f"- **{case.label}**: {blog_note(case, main[case.key], BLOG[case.key])}")
    lines.append("")
    lines.append("Cross-checks of the fit report against the dense measurements "
                 "(report.relative_error is the library's probe estimate of "
                 "‖L U − A‖_F/‖A‖_F, report.cond_A_hat its power-iteration estimate):")
    lines.append("")
    header = ["problem", "report.relative_error (at init)", "our probe ‖(A_hat−A)Z‖_F/‖AZ‖_F",
              "report.cond_A_hat", "dense cond(A_hat)", "warnings"]
    rows = []
    for case in MAIN_CASES:
        m = main[case.key]
        rows.append([case.label, f"{fmt(m.report_relative_error)} "
                                 f"({fmt(m.report_init_relative_error)})", fmt(m.E_A_probe),
                     fmt(m.report_cond_A_hat), fmt(m.cond_A_hat),
                     "; ".join(m.warnings) if m.warnings else "—"])
    lines.append(markdown_table(header, rows))
    return "\n".join(lines)


def section_ablation(rows, cfg):
    lines = []
    problems_ = []
    for p, kind, _, _ in rows:
        if (p, kind) not in problems_:
            problems_.append((p, kind))
    header = ["configuration", "‖E_A‖₂", "‖E_A‖₂/‖A‖₂", "GMRES its", "e_x", "cond(A_hat)",
              "init used", "ordering used", "steps (stop; kept step)", "fit time"]
    for p, kind in problems_:
        what = "ordering" if kind == "ordering" else "blog tricks, loss and initialization"
        lines.append(f"**{p}** ({what})")
        lines.append("")
        table = []
        for q, k2, o, m in rows:
            if (q, k2) != (p, kind):
                continue
            label = config_label(o) if kind != "ordering" else f"ordering={o['ordering']}"
            if m.fit_error:
                table.append([label, "fit failed: " + m.fit_error] + ["—"] * 8)
                continue
            table.append([label, fmt(m.E_A), fmt(m.E_A_rel),
                          fmt_iterations(m.learned_iterations), fmt(m.e_x), fmt(m.cond_A_hat),
                          m.init, m.ordering, steps_text(m), fmt_seconds(m.fit_time)])
        lines.append(markdown_table(header, table))
        lines.append("")
    lines.append(
        f"T = transpose loss, B = block-wise training. Fit options besides those named: "
        f"{options_text(cfg['ablation_fit'])}; e_x over {cfg['ablation_samples']} samples. "
        "init='auto' is the library's default (its name in 'init used'), 'random' is the "
        "blog's starting point. The blog's recipe is init=random, loss=identity, T, B.")
    return "\n".join(lines)


def section_hierarchy(rows, caps, cfg):
    header = ["problem", "n", "N", "E_A probe (rel. F)", "report.relative_error (init)",
              "e_x SuperLU", "e_x LearnedLU", "e_b SuperLU", "e_b LearnedLU", "cond(A)",
              "cond(A_hat)"] + list(BASELINES) + ["LearnedLU", "init", "steps (stop; kept step)",
                                                  "fit time"]
    table = []
    for problem, n, m in rows:
        table.append([problem, n, m.N, fmt(m.E_A_probe),
                      f"{fmt(m.report_relative_error)} ({fmt(m.report_init_relative_error)})",
                      fmt(m.e_x_solver), fmt(m.e_x), fmt(m.e_b_solver), fmt(m.e_b),
                      fmt(m.cond_A), fmt(m.cond_A_hat)]
                     + [fmt_iterations(m.iterations.get(b)) for b in BASELINES]
                     + [fmt_iterations(m.learned_iterations), m.init or "—",
                        steps_text(m) if not m.fit_error else m.fit_error,
                        fmt_seconds(m.fit_time)])
    lines = [markdown_table(header, table), ""]
    lines.append(
        f"LearnedLU with block size {BLOCK_SIZE}, ordering from grid_shape=(n, n) (geometric), "
        f"{options_text(cfg['hierarchy_fit'])}. E_A probe: ‖(A_hat − A)Z‖_F/‖AZ‖_F on 32 "
        f"Gaussian columns Z (no dense matrix is formed); e_x, e_b over "
        f"{cfg['hierarchy_samples']} samples against SuperLU (a dense LAPACK LU would not fit "
        f"the budget); cond: 2-norm, ARPACK (svds) estimates of ‖A‖₂‖A⁻¹‖₂ and "
        f"‖A_hat‖₂‖A_hat⁻¹‖₂. GMRES({RESTART}), rtol {RTOL:g}, at most "
        f"min(10 N, 5000) iterations.")
    for c in caps:
        lines.append("")
        lines.append("Size cap: " + c)
    return "\n".join(lines)


def section_diffusion(rows, cap, cfg):
    header = ["n", "N"]
    for name in DIFFUSION_PRECONDITIONERS:
        header.append(f"{name} its")
    for name in DIFFUSION_PRECONDITIONERS[1:]:
        header.append(f"{name} memory")
    table = []
    for row in rows:
        cells = [row["n"], row["N"]]
        for name in DIFFUSION_PRECONDITIONERS:
            e = row["entries"].get(name)
            if e is None:
                cells.append("skipped (size cap)")
            elif "skipped" in e:
                cells.append(f"skipped ({e['skipped']})")
            elif "error" in e:
                cells.append("error: " + e["error"])
            else:
                cells.append(str(e["iterations"]) if e["converged"]
                             else f"{e['iterations']} (not converged)")
        for name in DIFFUSION_PRECONDITIONERS[1:]:
            e = row["entries"].get(name)
            if e is None or "nbytes" not in e:
                cells.append("—")
                continue
            count = "" if e.get("count") is None else f", {e['count']} {e['count_kind']}"
            cells.append(f"{e['nbytes']} B{count}")
        table.append(cells)
    lines = [markdown_table(header, table), ""]
    fitted = {name: [row["entries"][name] for row in rows
                     if row["entries"].get(name) and "nbytes" in row["entries"][name]]
              for name in DIFFUSION_PRECONDITIONERS[1:]}
    nonsym = [name for name, entries in fitted.items()
              if entries and not all(e.get("symmetric") for e in entries)]
    variants = "; ".join(f"{label}: {registry} with {options_text(opts)}"
                         for label, (registry, opts) in DIFFUSION_OPTIONS.items())
    lines.append(
        f"CG to rtol {RTOL:g} (true residual), b ~ N(0, I), at most min(10 N, "
        f"{cfg['cg_maxiter']}) iterations; diffusion_2d with the gallery's defaults "
        f"(log-normal coefficient). ilut: SuperLU's threshold ILU with the library's default "
        f"options; {variants}. ILU0 on an SPD matrix is IC(0) up to the diagonal scaling. A "
        f"preconditioner that did not converge at some n is not run at larger n. Memory is "
        f"the preconditioner's nbytes; the counts are stored nonzeros (baselines) or learned "
        f"parameters (LearnedLU). LearnedLU: block size {BLOCK_SIZE}, grid_shape=(n, n), "
        f"{options_text(cfg['diffusion_fit'])}.")
    if nonsym:
        lines.append("")
        lines.append(f"Not symmetric as fitted (CG's theory does not cover them; CG was run "
                     f"anyway, as seed 003 does with SPILU): {join_words(nonsym)}.")
    if cap:
        lines.append("")
        lines.append("Size cap: " + cap + ".")
    return "\n".join(lines)


def write_document(path, *, cfg, main, ablations, hierarchy, caps, diffusion, dcap,
                   figures, total_time):
    head, dirty = git_state("learned_precond", untracked=True)
    rel = [p.relative_to(path.parent).as_posix() for p in figures]
    cmd = "python benchmarks/seed_table.py" + (" --quick" if cfg["quick"] else "")
    lines = [
        "# The seed blog's experiments, reproduced",
        "",
        f"Generated by `{cmd}` on {datetime.date.today().isoformat()} "
        f"(learned_precond {learned_precond.__version__}, commit {head}"
        f"{', library sources modified since' if dirty else ''}; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU cores, torch threads "
        f"{cfg.get('threads', 1)}, total run time "
        f"{total_time:.0f} s{'; QUICK subset' if cfg['quick'] else ''}). Every number below is "
        f"written by the script; the blog's values are copied from its tables.",
        "",
        "The blog (seed 000) learns `L U ~ A` with GFMM blocks at N = 256, block size 32. Two "
        "flaws make its LU-net columns unreliable: its code fits `L U ~ A^T`, and its "
        "e_x / e_b solve against the network's own output `L_hat U_hat x` instead of the true "
        "`b = A x` (its e_x is also one norm over the 1000-sample batch, and its solver "
        "columns are LAPACK in float32). Here every error is measured against `b = A x`, per "
        "sample, in float64.",
        "",
        "## 1. The seven seed matrices (N = 256, block size 32)",
        "",
        section_main(main, cfg),
        "",
        "## 2. Ablations: the blog's tricks and this library's choices",
        "",
        section_ablation(ablations, cfg),
        "",
        "## 3. Heat maps of |A_hat − A|",
        "",
    ]
    for r in rel:
        if "heatmaps" in r:
            lines += [f"![{r}]({r})", ""]
    lines += [
        "## 4. Where the hierarchy matters: 2-D problems with grid side > block size",
        "",
        section_hierarchy(hierarchy, caps, cfg) if hierarchy else "Not run.",
        "",
        "## 5. Seed 003's comparison: CG iterations and memory on variable diffusion",
        "",
        section_diffusion(diffusion, dcap, cfg) if diffusion else "Not run.",
        "",
    ]
    for r in rel:
        if "diffusion" in r:
            lines += [f"![{r}]({r})", ""]
    lines += [
        "## 6. What the numbers mean",
        "",
        section_prose(main, ablations, hierarchy, diffusion),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
