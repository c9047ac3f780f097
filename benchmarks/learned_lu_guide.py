"""Figures and the options table for docs/learned_lu.md ("How LearnedLU works").

Writes ``docs/results/options.md`` and ``docs/figures/learned_lu_*.png`` from
fitted models; nothing in them is typed by hand.

    python benchmarks/learned_lu_guide.py [--quick]
"""

import argparse
import pathlib
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from learned_precond import LearnedLU, get_preconditioner, problems  # noqa: E402
from learned_precond.exceptions import FitConvergenceWarning  # noqa: E402
from learned_precond.krylov import solve  # noqa: E402
from learned_precond.ordering import tree_ordering  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"


def fit(A, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        return LearnedLU.fit(A, seed=0, **options)


def dense_factors(M):
    N = M.layout.size
    eye = torch.eye(N, dtype=torch.float64)
    with torch.no_grad():
        L = M._model.L(eye).numpy()
        U = M._model.apply_U(eye).numpy() * M.scale
    return L, U


def far_field_ranks(F, M, P, lower=True, tol=1e-8):
    """Numerical rank of the coupling between sibling nodes at each level."""
    K = int(np.log2(M))
    ranks = {}
    for lev in range(1, K):
        size = (M >> lev) * P
        rs = []
        for a in range(0, 2**lev, 2):
            rows = slice((a + 1) * size, (a + 2) * size) if lower else slice(a * size, (a + 1) * size)
            cols = slice(a * size, (a + 1) * size) if lower else slice((a + 1) * size, (a + 2) * size)
            s = np.linalg.svd(F[rows, cols], compute_uv=False)
            rs.append(int(np.sum(s > tol * max(s[0], 1e-300))))
        ranks[lev] = max(rs)
    return ranks


def figures():
    n = 32
    A = problems.get("laplace_2d", n=n)
    # Factors with a far field to look at: the exact factors compressed into
    # the GFMM structure (init='exact_compressed'), no further training.
    M = fit(A, block_size=16, rank=8, grid_shape=(n, n), init="exact_compressed",
            max_steps=0)
    L, U = dense_factors(M)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, F, title in ((axes[0], L, "|L|"), (axes[1], U, "|U|")):
        im = ax.imshow(np.log10(np.abs(F) + 1e-16), cmap="viridis", vmin=-8, vmax=1)
        P = M.layout.block_size
        for k in range(0, F.shape[0] + 1, P * 4):
            ax.axhline(k - 0.5, color="w", lw=0.3)
            ax.axvline(k - 0.5, color="w", lw=0.3)
        ax.set_title(f"{title} (log10), 2-D Poisson n={n}, P={P}, r={M.layout.rank}")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(FIG / "learned_lu_factors.png", dpi=110)
    plt.close(fig)

    rank_L = far_field_ranks(L, M.layout.n_leaves, M.layout.block_size, lower=True)
    rank_U = far_field_ranks(U, M.layout.n_leaves, M.layout.block_size, lower=False)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, method in zip(axes, ("natural", "geometric", "bisection")):
        t = tree_ordering(A, 16, method=method, grid_shape=(n, n) if method == "geometric" else None)
        leaf = np.empty(n * n)
        leaf[t.slots[t.slots >= 0]] = np.flatnonzero(t.slots >= 0) // 16
        ax.imshow(leaf.reshape(n, n), cmap="tab20", interpolation="nearest")
        ax.set_title(f"{method}: leaf of each grid point")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(FIG / "learned_lu_orderings.png", dpi=110)
    plt.close(fig)

    # Training from block Jacobi with a long patience: the loss and the merit.
    M = fit(A, block_size=16, rank=8, grid_shape=(n, n), init="block_jacobi", lr=1e-2,
            max_steps=300, patience=100)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(M.report.loss_history, lw=0.8, label="training loss (probe)")
    ax.set_xlabel("step")
    ax2 = ax.twinx()
    steps, vals = zip(*M.report.val_history)
    ax2.plot(steps, vals, "o-", color="C3", ms=3, label="GMRES iterations (merit)")
    ax2.set_ylabel("merit: GMRES(50) iterations, 3 right-hand sides")
    ax.set_title("LearnedLU training from block Jacobi, 2-D Poisson n=32")
    fig.legend(loc="upper right")
    fig.savefig(FIG / "learned_lu_loss.png", dpi=110)
    plt.close(fig)
    return rank_L, rank_U


def options_table(quick):
    n = 64
    A = problems.get("laplace_2d", n=n)
    b = A @ np.ones(A.shape[0])
    base = {"block_size": 32, "rank": 16, "grid_shape": (n, n)}
    variants = [
        ("defaults (P=32, r=16, geometric, auto init, probe loss, 200 steps)", {}),
        ("max_steps=0 (initialization only)", {"max_steps": 0}),
        ("block_size=16", {"block_size": 16}),
        ("block_size=64", {"block_size": 64}),
        ("rank=4", {"rank": 4}),
        ("rank=8", {"rank": 8}),
        ("rank=32", {"rank": 32}),
        ("ordering='natural'", {"ordering": "natural", "grid_shape": None}),
        ("ordering='bisection' (auto without grid)", {"grid_shape": None}),
        ("loss='adaptive'", {"loss": "adaptive"}),
        ("init='block_tridiagonal' (far field zero)", {"init": "block_tridiagonal"}),
        ("init='block_jacobi', lr=1e-2, 300 steps, patience=100",
         {"init": "block_jacobi", "lr": 1e-2, "max_steps": 300, "patience": 100}),
    ]
    if quick:
        variants = variants[:3]
    rows = []
    for label, extra in variants:
        opts = {**base, **extra}
        t = time.perf_counter()
        M = fit(A, **opts)
        ft = time.perf_counter() - t
        x = np.random.default_rng(0).standard_normal(A.shape[0])
        M @ x
        t = time.perf_counter()
        for _ in range(5):
            M @ x
        ta = (time.perf_counter() - t) / 5
        r = solve(A, b, M, rtol=1e-8, restart=50, maxiter=3000)
        rows.append((label, r.iterations if r.converged else f">{r.iterations}", ft, ta,
                     M.nbytes, M.n_parameters, M.report.steps))
    ilu = get_preconditioner("ilu0").fit(A)
    return rows, solve(A, b, ilu, rtol=1e-8, restart=50, maxiter=3000).iterations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    FIG.mkdir(parents=True, exist_ok=True)
    rank_L, rank_U = figures()
    rows, ilu_its = options_table(args.quick)
    out = ["# LearnedLU options, measured\n",
           "Generated by `python benchmarks/learned_lu_guide.py`. 2-D Poisson n=64 "
           "(N=4096), GMRES(50) to rtol 1e-8 (true residual), b = A @ ones, one run on "
           f"this machine. ILU(0) needs {ilu_its} iterations in the same run.\n",
           "| options | iterations | fit s | apply s/vector | memory | parameters | steps |",
           "|---|---|---|---|---|---|---|"]
    for label, its, ft, ta, nb, npar, steps in rows:
        out.append(f"| {label} | {its} | {ft:.1f} | {ta:.2e} | {nb / 2**20:.2f} MiB | "
                   f"{npar} | {steps} |")
    out.append("\n## Far-field ranks of the fitted factors (figure model)\n")
    out.append("Numerical rank (tol 1e-8) of the coupling between sibling tree nodes, "
               "largest over the nodes of each level, for the model in "
               "`docs/figures/learned_lu_factors.png` (2-D Poisson n=32, P=16, r=8). "
               "Level 1 is the root's children.\n")
    out.append("| level | " + " | ".join(str(k) for k in rank_L) + " |")
    out.append("|---|" + "---|" * len(rank_L))
    out.append("| L | " + " | ".join(str(v) for v in rank_L.values()) + " |")
    out.append("| U | " + " | ".join(str(v) for v in rank_U.values()) + " |")
    text = "\n".join(out) + "\n"
    (ROOT / "docs" / "results" / "options.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
