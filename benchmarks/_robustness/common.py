"""What the cases share; everything here runs inside a case's own process."""

import json
import math
import tempfile
import time
import warnings
from pathlib import Path

__all__ = ["LAYOUT_OPTIONS", "LOAD_TRACE_LIMIT", "checked_solve", "convdiff", "fit",
           "fit_and_check", "fitted_model", "lap1d", "layout_of", "load_bounded", "parts",
           "quiet", "saved_model", "tmpdir", "write_parts"]

#: The two layouts of LearnedLU and the fit options that select them: the
#: default for sparse A is the nested-dissection layout, ``init='gfmm'`` the
#: GFMM tree.
LAYOUT_OPTIONS = {"nested": {}, "gfmm": {"init": "gfmm"}}
#: Bytes ``load`` may trace (tracemalloc) before it refuses a crafted file.
LOAD_TRACE_LIMIT = 50 * 2**20


def quiet():
    warnings.simplefilter("ignore")


def tmpdir():
    return Path(tempfile.mkdtemp(prefix="robustness_"))


def lap1d(n):
    import scipy.sparse as sp

    return sp.csr_array(sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)))


def convdiff(n=16):
    """Convection-diffusion on an n x n grid, scaled to ``max |a_ij| = 1``."""
    import scipy.sparse as sp

    from learned_precond.problems import get

    A = sp.csr_array(get("convection_diffusion_2d", n=n))
    return A / abs(A).max()


def layout_of(M):
    """``'nested'`` or ``'gfmm'``: the layout a fitted LearnedLU has (a complex fit's real one)."""
    M = getattr(M, "real_operator", M)
    return "nested" if getattr(M, "tree", None) is not None else "gfmm"


def fit(A, layout, **options):
    """``LearnedLU.fit(A, seed=0, **options)`` in ``layout``; checks it got that layout."""
    from learned_precond import LearnedLU

    quiet()
    M = LearnedLU.fit(A, **{"seed": 0, **LAYOUT_OPTIONS[layout], **options})
    if layout_of(M) != layout:
        raise AssertionError(f"the harness asked for the {layout} layout and got "
                             f"{layout_of(M)}")
    return M


def checked_solve(A, M, x_true, *, tol=1e-6, normalize=False):
    """GMRES with ``M``; the relative forward error against ``x_true`` must be <= tol.

    ``normalize``: solve ``(c A) x = c b`` with ``M / c``, ``c`` the power of
    two that brings ``max |a_ij|`` near 1 (exact: no digit is lost), so that a
    matrix scaled by 1e307 or 1e-300 checks the preconditioner, not the norms
    of ``solve`` (the ``solve_*`` cases check those).
    """
    import numpy as np
    from scipy.sparse.linalg import aslinearoperator

    from learned_precond.krylov import solve

    with np.errstate(all="ignore"):
        probe = M @ np.ones(A.shape[0])
    if not np.all(np.isfinite(probe)):
        return False, "M @ ones is not finite"
    b = A @ x_true
    if normalize:
        c = 2.0 ** -round(math.log2(float(abs(A).max())))
        A, b, M = A * c, b * c, aslinearoperator(M) * (1.0 / c)
    res = solve(A, b, M, rtol=1e-12, maxiter=2000)
    err = float(np.linalg.norm(res.x - x_true) / np.linalg.norm(x_true))
    detail = (f"GMRES {res.iterations} its, converged={res.converged}, forward error "
              f"{err:.1e}")
    return bool(err <= tol and np.all(np.isfinite(res.x))), detail


def fit_and_check(A, layout, x_true=None, normalize=False, **options):
    """Fit in ``layout``, then :func:`checked_solve`; ``(ok, detail)``."""
    import numpy as np

    if x_true is None:
        x_true = np.random.default_rng(1).uniform(-1, 1, A.shape[0])
    t0 = time.perf_counter()
    M = fit(A, layout, **options)
    fit_s = time.perf_counter() - t0
    ok, detail = checked_solve(A, M, x_true, normalize=normalize)
    return ok, (f"{layout} layout: fit {fit_s:.2f} s (pivoting {M.pivoting.method}, stop "
                f"{M.report.stop_reason}); {detail}")


def fitted_model(layout, pivot=True):
    """A small LearnedLU of ``layout`` (convection-diffusion 6 x 6, 3 steps).

    ``pivot``: rows rolled so the diagonal has zeros, so that the fit uses
    MC64 pivoting and the model holds a real permutation.
    """
    import numpy as np
    import scipy.sparse as sp

    A = convdiff(6)
    if pivot:
        A = sp.csr_array(A[np.roll(np.arange(36), 3)])
    M = fit(A, layout, block_size=8, rank=2, max_steps=3)
    if pivot and M.pivoting.method != "mc64":
        raise AssertionError(f"expected mc64 pivoting, got {M.pivoting.method}")
    return M


def saved_model(layout, pivot=True):
    """:func:`fitted_model` saved to a fresh ``model.npz``; its path."""
    path = tmpdir() / "model.npz"
    fitted_model(layout, pivot).save(path)
    return path


def parts(path):
    """``(arrays, metadata)`` of a saved file (read plainly: the harness trusts it)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(arrays.pop("__metadata__").tobytes().decode())


def write_parts(path, arrays, meta):
    import numpy as np

    arrays = dict(arrays)
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)


def load_bounded(path, limit=LOAD_TRACE_LIMIT):
    """``LearnedLU.load(path)`` under tracemalloc; a peak above ``limit`` is a crash.

    Returns ``(False, detail)`` when the file loads (each case that expects a
    load to succeed checks the operator itself).
    """
    import tracemalloc

    from learned_precond import LearnedLU

    tracemalloc.start()
    try:
        try:
            LearnedLU.load(path)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    except Exception as exc:
        if peak > limit:
            raise MemoryError(f"load traced {peak / 2**20:.0f} MiB before refusing "
                              f"({type(exc).__name__}: {exc})") from exc
        raise
    finally:
        tracemalloc.stop()
    return False, f"loaded (traced {peak / 2**20:.1f} MiB)"
