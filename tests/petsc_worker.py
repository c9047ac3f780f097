"""Collective checks of learned_precond.petsc, run on several MPI ranks.

Run by ``tests/test_petsc.py`` as ``mpiexec -n 2 python tests/petsc_worker.py``
(or imported in-process when pytest itself runs under ``mpiexec``). Every
check runs on all ranks, compares what it got with what it should get, and
decides on the same data on every rank (the results of
:func:`learned_precond.petsc.solve` are identical on all ranks), so that all
ranks pass or fail together and nothing waits on a rank that gave up.

Prints one JSON line per check on rank 0:
``{"check": name, "ok": bool, "details": {...}, "error": str or null}``.
"""

import json
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import spsolve

N_SIDE = 32  # 32 x 32 grids: N = 1024, a 512-unknown strip per rank on 2 ranks
FIT = {"max_steps": 20, "seed": 0, "block_size": 16}


def _setup():
    import petsc4py

    petsc4py.init([])
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # FitConvergenceWarning at max_steps: expected here


def _problem(kind):
    from learned_precond import problems

    if kind == "poisson":
        A = problems.get("laplace_2d", n=N_SIDE)
    else:
        A = problems.get("convection_diffusion_2d", n=N_SIDE, velocity="vortex", eps=1e-2)
    b = A @ np.ones(A.shape[0]) + np.sin(np.arange(A.shape[0]))
    return A, b, spsolve(A.tocsc(), b)


def _rel_err(x, ref):
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def _opts():
    from learned_precond.petsc import strip_grid

    return strip_grid(N_SIDE, **FIT)


# -- the checks ------------------------------------------------------------------


def check_bjacobi_learned_matches_spsolve():
    """Block Jacobi + per-rank LearnedLU: the solution of scipy's spsolve, far fewer iterations."""
    from petsc4py import PETSc

    from learned_precond.petsc import solve

    size = PETSc.COMM_WORLD.getSize()
    out = {}
    for kind in ("poisson", "convdiff"):
        A, b, ref = _problem(kind)
        res = solve(A, b, pc="bjacobi", method="learned_lu", fit_options=_opts(), rtol=1e-10)
        none = solve(A, b, pc="none", rtol=1e-10, maxiter=2000)
        out[kind] = {"its": res.iterations, "its_none": none.iterations,
                     "err": _rel_err(res.x, ref), "reason": res.reason,
                     "local_sizes": res.local_sizes, "fit_times": res.fit_times.tolist()}
        assert res.converged, (kind, res)
        assert out[kind]["err"] < 1e-7, (kind, out[kind])
        assert res.relative_residual < 1e-9, (kind, res)
        assert res.iterations < 0.5 * none.iterations, (kind, res.iterations, none.iterations)
        assert res.local_sizes == [A.shape[0] // size] * size, res.local_sizes
        assert np.all(res.fit_times > 0), res.fit_times
    return out


def check_asm_overlap_and_subdomains():
    """ASM (overlap 1): strips grow by one grid row; overlap cuts iterations of exact local LU.

    LearnedLU under ASM must converge to the right solution; its iteration
    count is reported, not compared: LearnedLU fits the (n/2 + 1)-row
    subdomains less well than the n/2-row blocks of block Jacobi.
    """
    from petsc4py import PETSc

    from learned_precond.petsc import solve

    size = PETSc.COMM_WORLD.getSize()
    A, b, ref = _problem("poisson")
    out = {}
    for method, options in (("exact", None), ("ilu0", None), ("learned_lu", _opts())):
        bj = solve(A, b, pc="bjacobi", method=method, fit_options=options, rtol=1e-10)
        asm = solve(A, b, pc="asm", overlap=1, method=method, fit_options=options, rtol=1e-10)
        out[method] = {"its_bjacobi": bj.iterations, "its_asm": asm.iterations,
                       "err_asm": _rel_err(asm.x, ref), "asm_local_sizes": asm.local_sizes}
        assert asm.converged and out[method]["err_asm"] < 1e-7, out
        if size > 1:
            # overlap 1 on a 5-point grid split into strips adds one grid row per interface
            n_strip = A.shape[0] // size
            expected = [n_strip + N_SIDE * (1 if r in (0, size - 1) else 2) for r in range(size)]
            assert asm.local_sizes == expected, (asm.local_sizes, expected)
            if method != "learned_lu":
                assert asm.iterations < bj.iterations, out
    return out


def check_local_baselines():
    """The baselines and PETSc's ILU(0) as local solvers; exact local LU beats ILU(0)."""
    from learned_precond.petsc import solve

    A, b, ref = _problem("convdiff")
    out = {}
    for method in ("ilu0", "amg", "exact", "petsc:ilu"):
        res = solve(A, b, pc="bjacobi", method=method, rtol=1e-10)
        out[method] = {"its": res.iterations, "err": _rel_err(res.x, ref)}
        assert res.converged and out[method]["err"] < 1e-7, (method, res)
    # our ILU(0) and PETSc's are the same factorization of the same blocks
    assert abs(out["ilu0"]["its"] - out["petsc:ilu"]["its"]) <= 2, out
    assert out["exact"]["its"] < out["ilu0"]["its"], out
    gamg = solve(A, b, pc="gamg", rtol=1e-10)
    out["gamg"] = {"its": gamg.iterations, "err": _rel_err(gamg.x, ref)}
    assert gamg.converged and out["gamg"]["err"] < 1e-7, out
    return out


def check_transpose_apply():
    """applyTranspose is M.rmatvec, and KSP bicg (which applies M^T) converges with it."""
    from petsc4py import PETSc

    from learned_precond import LearnedLU
    from learned_precond.petsc import petsc_matrix, set_preconditioner, solve

    A, b, ref = _problem("convdiff")
    # serial: each rank on its own (COMM_SELF), a PythonPC around a fitted M
    M = LearnedLU.fit(A, grid_shape=(N_SIDE, N_SIDE), **FIT)
    mat = petsc_matrix(A, comm=PETSc.COMM_SELF)
    ksp = PETSc.KSP().create(comm=PETSc.COMM_SELF)
    ksp.setOperators(mat)
    context = set_preconditioner(ksp, M)
    ksp.setUp()
    pc = ksp.getPC()
    rng = np.random.default_rng(PETSc.COMM_WORLD.getRank())
    v = rng.standard_normal(A.shape[0])
    x, y = mat.createVecs()
    x.setArray(v)
    pc.apply(x, y)
    fwd = _rel_err(y.getArray().copy(), M @ v)
    pc.applyTranspose(x, y)
    got_t = y.getArray().copy()
    adj = _rel_err(got_t, M.rmatvec(v))
    # and M^T is the transpose: <M u, v> = <u, M^T v>
    u = rng.standard_normal(A.shape[0])
    dual = abs((M @ u) @ v - u @ got_t) / (np.linalg.norm(M @ u) * np.linalg.norm(v))
    assert context.M is M
    ksp.destroy()
    mat.destroy()
    # distributed: bicg calls PCApplyTranspose -> bjacobi -> our applyTranspose
    res = solve(A, b, pc="bjacobi", method="learned_lu", fit_options=_opts(), ksp_type="bicg",
                rtol=1e-10, maxiter=2000)
    out = {"apply_err": fwd, "apply_transpose_err": adj, "dual_gap": float(dual),
           "bicg_its": res.iterations, "bicg_err": _rel_err(res.x, ref)}
    assert fwd < 1e-12 and adj < 1e-12 and dual < 1e-10, out
    assert res.converged and out["bicg_err"] < 1e-7, out
    return out


def check_save_and_load_per_rank():
    """Per-rank model files: save at fit, load in a new solve, same iterations and solution."""
    from petsc4py import PETSc

    from learned_precond.petsc import solve
    from learned_precond.petsc.convert import allgather

    comm = PETSc.COMM_WORLD
    A, b, ref = _problem("poisson")
    # one file name pattern for all ranks: rank 0's random token, shared
    token = int(allgather([np.random.default_rng().integers(2**40)], comm)[0, 0])
    folder = os.environ.get("LP_PETSC_TMP") or tempfile.gettempdir()
    pattern = str(Path(folder) / f"lp_petsc_{token}_{{rank}}of{{size}}.npz")
    fitted = solve(A, b, pc="asm", method="learned_lu", fit_options=_opts(), save=pattern,
                   rtol=1e-10)
    mine = Path(pattern.format(rank=comm.getRank(), size=comm.getSize()))
    exists = allgather([float(mine.is_file())], comm)[:, 0]
    loaded = solve(A, b, pc="asm", method="learned_lu", load=pattern, rtol=1e-10)
    out = {"files": exists.tolist(), "its_fitted": fitted.iterations,
           "its_loaded": loaded.iterations, "max_dx": float(np.abs(fitted.x - loaded.x).max())}
    # a file fitted to another matrix is refused (every rank refuses its own)
    A2 = A.copy()
    A2.data = A2.data * 1.5
    try:
        solve(A2, b, pc="asm", method="learned_lu", load=pattern)
        refused = ""
    except PETSc.Error as exc:  # raised in our setUp, re-raised by PETSc with it as cause
        refused = f"{type(exc.__cause__).__name__}: {exc.__cause__}"
    out["refused"] = refused[:200]
    comm.barrier()
    mine.unlink(missing_ok=True)
    assert np.all(exists == 1), out
    assert fitted.iterations == loaded.iterations and out["max_dx"] < 1e-12, out
    assert refused.startswith("ModelFileError"), out
    return out


def check_options_database_route():
    """-sub_pc_type python -sub_pc_python_type learned_precond.petsc.PythonPC + -sub_learned_*."""
    from petsc4py import PETSc

    from learned_precond.petsc import gather, petsc_matrix, petsc_vector

    A, b, ref = _problem("poisson")
    opts = PETSc.Options()
    values = {"ksp_type": "gmres", "ksp_rtol": 1e-10, "ksp_pc_side": "right",
              "pc_type": "bjacobi", "sub_ksp_type": "preonly", "sub_pc_type": "python",
              "sub_pc_python_type": "learned_precond.petsc.PythonPC",
              "sub_learned_method": "learned_lu", "sub_learned_fit": "max_steps=5,seed=0"}
    for key, value in values.items():
        opts[key] = value
    try:
        mat = petsc_matrix(A)
        bvec = petsc_vector(b, mat)
        xvec = mat.createVecRight()
        ksp = PETSc.KSP().create()
        ksp.setOperators(mat)
        ksp.setFromOptions()
        ksp.solve(bvec, xvec)
        sub = ksp.getPC().getBJacobiSubKSP()[0].getPC()
        context = sub.getPythonContext()
        out = {"its": ksp.getIterationNumber(), "reason": int(ksp.getConvergedReason()),
               "err": _rel_err(gather(xvec), ref), "context": repr(context)[:60],
               "fit_options": context.fit_options}
        ksp.destroy()
    finally:
        for key in values:
            del opts[key]
    assert out["reason"] > 0 and out["err"] < 1e-7, out
    assert type(context).__name__ == "PythonPC" and out["fit_options"] == {"max_steps": 5,
                                                                           "seed": 0}, out
    return out


def check_python_pc_needs_one_rank():
    """pc='python' (one global PythonPC): on 2 ranks it fails with advice; on 1 rank it solves."""
    from petsc4py import PETSc

    from learned_precond.petsc import solve

    A, b, ref = _problem("poisson")
    if PETSc.COMM_WORLD.getSize() == 1:
        res = solve(A, b, pc="python", method="learned_lu",
                    fit_options={"grid_shape": (N_SIDE, N_SIDE), **FIT}, rtol=1e-10)
        out = {"its": res.iterations, "err": _rel_err(res.x, ref)}
        assert res.converged and out["err"] < 1e-7, out
        return out
    try:
        solve(A, b, pc="python", method="ilu0")
        message = ""
    except PETSc.Error as exc:
        message = f"{type(exc.__cause__).__name__}: {exc.__cause__}"
    out = {"message": message}
    assert message.startswith("ValueError") and "setup_block_jacobi" in message, out
    return out


CHECKS = {name[len("check_"):]: func for name, func in sorted(globals().items())
          if name.startswith("check_") and callable(func)}


def run(names=None):
    """Run the named checks (all by default) on every rank; return their results."""
    _setup()
    results = []
    for name in names or CHECKS:
        try:
            details, ok, error = CHECKS[name](), True, None
        except AssertionError as exc:
            details, ok, error = None, False, f"AssertionError: {exc}"
        except Exception:  # noqa: BLE001 - report, keep the other checks going
            details, ok, error = None, False, traceback.format_exc()[-2000:]
        results.append({"check": name, "ok": ok, "details": details, "error": error})
    return results


def main(argv):
    results = run(argv[1:] or None)
    from petsc4py import PETSc

    if PETSc.COMM_WORLD.getRank() == 0:
        for result in results:
            print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main(sys.argv))
