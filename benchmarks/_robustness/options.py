"""Fit options and the command line: each bad value must be refused, naming it."""

import math

from .common import fit, lap1d, quiet
from .registry import case


def _bad_option(layout="nested", **options):
    """Fit a 1-D Laplacian with ``options``; returning at all is a silent acceptance."""
    M = fit(lap1d(16), layout, block_size=8, rank=2, max_steps=3, **options)
    return False, f"accepted {options} ({M.report.init})"


for _layout in ("nested", "gfmm"):
    def _register(layout):
        suffix = "" if layout == "nested" else "_gfmm"
        where = "default layout" if layout == "nested" else "init='gfmm'"

        @case(f"seed_float{suffix}", f"seed=1.7 ({where})", names=["seed"])
        def seed_float():
            return _bad_option(layout, seed=1.7)

        @case(f"tol_nan{suffix}", f"tol=nan ({where})", names=["tol"])
        def tol_nan():
            return _bad_option(layout, tol=math.nan)

        @case(f"symmetric_true_nonsym{suffix}", f"symmetric=True on a nonsymmetric A "
              f"({where})", names=["symmetric"])
        def symmetric_true_nonsym():
            import scipy.sparse as sp

            A = lap1d(16).tolil()
            A[0, 1] = -0.5
            M = fit(sp.csr_array(A), layout, symmetric=True, block_size=8, max_steps=3)
            return False, f"accepted ({M.report.init})"

    _register(_layout)


@case("seed_str", "seed='abc'", names=["seed"])
def seed_str():
    return _bad_option(seed="abc")


@case("seed_huge", "seed=2**70", names=["seed"])
def seed_huge():
    return _bad_option(seed=2**70)


@case("dtype_str", "dtype='float32' (a string; a GFMM training option)", names=["dtype"])
def dtype_str():
    return _bad_option("gfmm", dtype="float32")


@case("dtype_float16", "dtype=torch.float16 (half precision training)", names=["dtype"])
def dtype_float16():
    import torch

    return _bad_option("gfmm", dtype=torch.float16)


@case("factor_dtype_float16", "factor_dtype='float16' (GFMM factor storage)",
      names=["factor_dtype"])
def factor_dtype_float16():
    return _bad_option("gfmm", factor_dtype="float16")


@case("block_size_str", "block_size='8' (a string)", names=["block_size"])
def block_size_str():
    from learned_precond import LearnedLU

    quiet()
    M = LearnedLU.fit(lap1d(16), block_size="8", max_steps=3, seed=0)
    return False, f"accepted ({M.report.init})"


@case("device_cuda_no_gpu", "device='cuda' with no GPU visible (CUDA_VISIBLE_DEVICES='')",
      names=["device"])
def device_cuda():
    return _bad_option("gfmm", device="cuda")


@case("time_budget_nan", "time_budget=nan", names=["time_budget"])
def time_budget_nan():
    return _bad_option(time_budget=math.nan)


def _cli(*fit_options, precond="jacobi,learned_lu"):
    import contextlib
    import io

    from learned_precond.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(["compare", "laplace_2d", "--n", "8", "--precond", precond,
                           "--no-plot", *[f"--fit={f}" for f in fit_options]])
        except SystemExit as exc:  # argparse errors exit 2
            status = exc.code
    if status == 2:
        raise ValueError(f"exit status 2: {err.getvalue().strip()}")
    return False, f"exit status {status}: {err.getvalue().strip()[-200:]}"


@case("cli_blocksize_typo", "CLI `--fit blocksize=4` (a typo)", names=["blocksize"])
def cli_typo():
    return _cli("blocksize=4")


@case("cli_block_size_abc", "CLI `--fit block_size=abc`", names=["block_size"])
def cli_abc():
    return _cli("block_size=abc")


@case("cli_fit_no_equals", "CLI `--fit block_size` (no value)", names=["block_size"])
def cli_no_equals():
    return _cli("block_size")


@case("cli_seed_float", "CLI `--fit seed=1.7`", names=["seed"])
def cli_seed_float():
    return _cli("seed=1.7")
