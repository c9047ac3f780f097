"""Complex input, badly scaled rows and columns, extreme scalings, a float16 ``A``."""

import math

from .common import checked_solve, convdiff, fit, fit_and_check, fitted_model, quiet
from .registry import case


def _complex_apply(layout):
    """``M @ (xr + 1j xi)`` must be ``M xr + 1j M xi`` (M is real), for every apply."""
    import numpy as np

    M = fitted_model(layout, pivot=True)
    rng = np.random.default_rng(0)
    xr, xi = rng.standard_normal(36), rng.standard_normal(36)
    worst = 0.0
    for name, apply in (("M @ x", lambda v: M @ v), ("matvec", M.matvec),
                        ("rmatvec", M.rmatvec), ("matmat", lambda v: M.matmat(
                            np.column_stack([v, v]))[:, 1])):
        y = apply(xr + 1j * xi)
        if not np.iscomplexobj(y):
            return False, f"{name} returned dtype {y.dtype}: the imaginary part was dropped"
        want = apply(xr) + 1j * apply(xi)
        worst = max(worst, float(np.abs(y - want).max() / np.abs(want).max()))
    ok = worst <= 1e-12
    return ok, (f"{layout} layout: complex128 from M @ x, matvec, rmatvec, matmat; "
                f"max relative difference from M x.real + 1j M x.imag {worst:.1e}")


def _complex_matrix(layout):
    import numpy as np

    A = convdiff(10).astype(np.complex128) * (1 + 0.5j)
    M = fit(A, layout, block_size=8, max_steps=3)
    ok, detail = checked_solve(A, M, np.ones(100) * (1 - 1j))
    return ok, f"fitted a complex A ({layout}); {detail}"


def _badly_scaled(columns):
    """``D_r A0 D_c`` (rows 1e-150..1e150; columns 1e-100..1e100 in random order, or 1).

    The solution ``x = D_c^-1 y`` with ``y`` of size 1, so that ``b = D_r A0 y``:
    each component of x is then determined to about machine precision (a
    symmetric ``D A0 D`` is not: its ``x`` mixes scales through ``A0^-1``).
    """
    import numpy as np
    import scipy.sparse as sp

    A0 = convdiff(16)
    rng = np.random.default_rng(0)
    d_r = np.logspace(-150, 150, 256)
    d_c = rng.permutation(np.logspace(-100, 100, 256)) if columns else np.ones(256)
    A = sp.csr_array(sp.diags_array(d_r) @ A0 @ sp.diags_array(d_c))
    return A, rng.uniform(-1, 1, 256) / d_c


def _scaled_rows(layout, columns):
    A, x_true = _badly_scaled(columns)
    ok, detail = fit_and_check(A, layout, x_true=x_true)
    # pivoting='auto' must equilibrate such a matrix (issue 16: it did nothing)
    equilibrated = "pivoting none" not in detail
    return ok and equilibrated, detail + ("" if equilibrated else "; not equilibrated")


def _scaled(layout, c, normalize):
    return fit_and_check(convdiff(16) * c, layout, normalize=normalize)


for _layout in ("nested", "gfmm"):
    def _register(layout):
        suffix = "" if layout == "nested" else "_gfmm"
        where = "default layout" if layout == "nested" else "init='gfmm'"

        @case(f"complex_x{suffix}", f"M @ (x + 1j y) for a fitted real LearnedLU ({where})",
              names=["complex"])
        def complex_x():
            return _complex_apply(layout)

        @case(f"complex_A{suffix}", f"LearnedLU.fit on a complex A ({where})",
              names=[r"\bA\b.*complex"])
        def complex_a():
            return _complex_matrix(layout)

        @case(f"rows_1e-150_1e150{suffix}", f"rows scaled from 1e-150 to 1e150 "
              f"(convection-diffusion, N=256), pivoting='auto' ({where})",
              names=[r"\bA\b", "scal"])
        def rows_scaled():
            return _scaled_rows(layout, False)

        @case(f"rows_and_columns{suffix}", f"rows scaled 1e-150..1e150 and columns "
              f"1e-100..1e100 (N=256), pivoting='auto' ({where})", names=[r"\bA\b", "scal"])
        def rows_columns_scaled():
            return _scaled_rows(layout, True)

        @case(f"scaled_1e307{suffix}", f"A * 1e307 (largest entry 1e307; {where})",
              names=[r"\bA\b"])
        def scaled_big():
            return _scaled(layout, 1e307, True)

        @case(f"scaled_1e-300{suffix}", f"A * 1e-300 (tiny but normal; {where})",
              names=[r"\bA\b"])
        def scaled_small():
            return _scaled(layout, 1e-300, True)

        @case(f"scaled_1e-310{suffix}", f"A * 1e-310 (every entry subnormal; {where})",
              names=[r"\bA\b.*subnormal"])
        def scaled_tiny():
            return _scaled(layout, 1e-310, False)

    _register(_layout)


@case("A_float16", "A given as a dense float16 array (GFMM layout: dense A)",
      names=[r"\bA\b", "float16"])
def a_float16():
    import numpy as np

    A = convdiff(8).toarray().astype(np.float16)
    return fit_and_check(A, "gfmm", x_true=np.ones(64))


@case("A_float32_sparse", "A given as a sparse float32 matrix (default layout)",
      names=[r"\bA\b", "float32"])
def a_float32():
    import numpy as np

    A = convdiff(8).astype(np.float32)
    return fit_and_check(A, "nested", x_true=np.ones(64))


def _solve_scaled(c):
    import numpy as np

    from learned_precond import LearnedLU
    from learned_precond.krylov import solve

    quiet()
    A = convdiff(16) * c
    x_true = np.random.default_rng(1).uniform(-1, 1, A.shape[0])
    M = LearnedLU.fit(A, seed=0)
    res = solve(A, A @ x_true, M, rtol=1e-12)
    err = float(np.linalg.norm(res.x - x_true) / np.linalg.norm(x_true))
    ok = err <= 1e-6 and math.isfinite(res.relative_residual)
    return bool(ok), (f"krylov.solve: {res.iterations} its, converged={res.converged}, "
                      f"relative residual {res.relative_residual:.1e}, forward error "
                      f"{err:.1e}")


@case("solve_1e-300", "krylov.solve(A * 1e-300, b, M) with a fitted M (the harness's "
      "norms, not the preconditioner)", names=[r"\bb\b"])
def solve_tiny():
    return _solve_scaled(1e-300)


@case("solve_1e307", "krylov.solve(A * 1e307, b, M) with a fitted M", names=[r"\bb\b"])
def solve_big():
    return _solve_scaled(1e307)
