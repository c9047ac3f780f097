"""Reproduce the learned-LU blog post (seed 000) honestly, and extend it.

Run from the repository root::

    python benchmarks/seed_table.py           # full run (about 15 minutes on 2 cores)
    python benchmarks/seed_table.py --quick   # a fast subset (smaller sizes, fewer fits)

It writes ``docs/results/seed_table.md`` and the figures
``docs/results/seed_*.png``. Every number in the document comes from this
script; the only typed numbers are the blog's own (``BLOG`` in
``_seed_table/blog.py``, copied from the post's tables) and the experiment
settings (``_seed_table/cases.py``).

What is measured (the sections of the document):

1. The seven seed matrices of the gallery at N = 256, block size 32:
   ``||E_A||_2`` with ``E_A = A_hat - A`` and ``A_hat = L U`` (dense, exact
   2-norm), the mean over 1000 samples ``x ~ N(0, I)`` of the relative
   forward error ``||x_hat - x|| / ||x||`` and of the normwise backward
   error with the *true* right-hand side ``b = A x`` (for LearnedLU and for
   LAPACK LU in float64), 2-norm condition numbers of ``A`` and ``A_hat``,
   and GMRES(50) iterations to ``rtol = 1e-8`` with every baseline. The
   blog's values sit in adjacent columns.
2. Ablations of the blog's two tricks (transpose loss, block-wise training)
   and of this library's choices (probe vs identity loss, classical vs random
   initialization, ordering).
3. Heat maps of ``|A_hat - A|`` (log scale).
4. The same metrics on 2-D problems whose grid side exceeds the block size
   (n = 64, 128), where the hierarchy (far-field blocks) matters; ``E_A`` is
   then a probe estimate, condition numbers are ARPACK estimates.
5. Seed 003's comparison (CG iterations and preconditioner memory against
   Jacobi and threshold ILU) on variable-coefficient 2-D diffusion.
6. Prose generated from the measured values.

This file is the driver (command line, the order of the sections); the
pieces live in ``benchmarks/_seed_table/``, one module per thing produced:
``cases`` (settings and rows), ``blog`` (the blog's numbers, goals),
``measure`` (one matrix's measurement), ``experiments`` (each section's
runs), ``figures``, ``document`` (each section's tables and the page),
``prose`` (section 6) and ``text`` (number formatting).
"""

import argparse
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (REPO, HERE):  # run as a script from a source checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from _seed_table.cases import config  # noqa: E402
from _seed_table.document import write_document  # noqa: E402
from _seed_table.experiments import (  # noqa: E402
    run_ablations,
    run_diffusion,
    run_hierarchy,
    run_main,
)
from _seed_table.figures import plot_diffusion, plot_heatmaps  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a fast subset: fewer samples, fewer ablations, smaller sizes")
    parser.add_argument("--out", default=str(REPO / "docs" / "results"),
                        help="output folder (default docs/results)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: at N <= 16384 more threads "
                             "only add overhead, and measured 3-4x slower on a loaded 2-core "
                             "machine)")
    parser.add_argument("--only", default="main,ablation,hierarchy,diffusion",
                        help="comma-separated sections to run (the others are 'Not run.')")
    args = parser.parse_args(argv)
    cfg = config(args.quick)
    cfg["threads"] = args.threads
    import torch

    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = set(args.only.split(","))
    t_start = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    log("1. main table")
    main_rows = run_main(cfg, log)
    ablations = []
    if "ablation" in sections:
        log("2. ablations")
        ablations = run_ablations(cfg, log)
    hierarchy, caps = [], []
    if "hierarchy" in sections:
        log("4. hierarchy")
        hierarchy, caps = run_hierarchy(cfg, log)
    diffusion, dcap = [], None
    if "diffusion" in sections:
        log("5. diffusion (seed 003)")
        diffusion, dcap = run_diffusion(cfg, log)
    figures = plot_heatmaps(main_rows, ablations, out_dir)
    if diffusion:
        figures += plot_diffusion(diffusion, out_dir)
    path = out_dir / "seed_table.md"
    write_document(path, cfg=cfg, main=main_rows, ablations=ablations, hierarchy=hierarchy,
                   caps=caps, diffusion=diffusion, dcap=dcap, figures=figures,
                   total_time=time.perf_counter() - t_start)
    log(f"wrote {path} and {len(figures)} figures in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
