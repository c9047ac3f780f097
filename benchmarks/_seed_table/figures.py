"""The figures: heat maps of |A_hat - A| and the diffusion study's iterations and memory."""

import math

import numpy as np

from .cases import DIFFUSION_PRECONDITIONERS, MAIN_CASES
from .text import config_label, fmt


def _heatmap_grid(panels, path, suptitle):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    k = len(panels)
    cols = min(3, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    floor = 1e-17
    for ax, (title, E) in zip(axes.flat, panels, strict=False):
        if E is None:
            ax.set_title(title + "\n(fit failed)", fontsize=9)
            ax.axis("off")
            continue
        E = np.where(np.isfinite(E), E, np.nan)
        vmax = max(float(np.nanmax(E)), floor * 10)
        im = ax.imshow(np.maximum(E, floor), norm=LogNorm(vmin=floor, vmax=vmax),
                       cmap="viridis", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_heatmaps(main, ablations, out_dir):
    panels = []
    for case in MAIN_CASES:
        m = main[case.key]
        panels.append((f"{case.label}\n||E_A||_2 = {fmt(m.E_A)}", m.error_matrix))
    paths = [out_dir / "seed_heatmaps.png"]
    _heatmap_grid(panels, paths[0],
                  "|A_hat - A| of LearnedLU (default init), N = 256, block 32 (log scale)")
    abl = [(p, o, m) for p, kind, o, m in ablations
           if p == "seed_laplace_1d" and kind == "tricks/init/loss" and o["init"] == "random"]
    if abl:
        panels = [(f"{config_label(o)}\n||E_A||_2 = {fmt(m.E_A)}", m.error_matrix)
                  for _, o, m in abl]
        paths.append(out_dir / "seed_ablation_heatmaps.png")
        _heatmap_grid(panels, paths[1],
                      "|A_hat - A|, 1-D Laplacian, init='random' (log scale)")
    return paths


def plot_diffusion(rows, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, ylabel, fname, log_y in (
            ("iterations", "CG iterations to rtol 1e-8", "seed_diffusion_iterations.png", True),
            ("nbytes", "preconditioner memory (bytes)", "seed_diffusion_memory.png", True)):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for name in DIFFUSION_PRECONDITIONERS:
            if key == "nbytes" and name == "none":
                continue
            xs, ys, open_x, open_y = [], [], [], []
            for row in rows:
                e = row["entries"].get(name)
                if not e or key not in e:
                    continue
                if key == "iterations" and not e.get("converged", False):
                    open_x.append(row["N"])
                    open_y.append(e[key])
                    continue
                xs.append(row["N"])
                ys.append(e[key])
            line, = ax.plot(xs, ys, marker="o", label=name)
            if open_x:
                ax.plot(open_x, open_y, marker="x", linestyle="none", color=line.get_color(),
                        label=f"{name} (not converged)")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("N (unknowns)")
        ax.set_ylabel(ylabel)
        ax.set_title("variable-coefficient 2-D diffusion (diffusion_2d)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
