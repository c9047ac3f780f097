"""One call: a PETSc KSP solve of ``A x = b`` with the matrix split over the ranks."""

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .convert import allgather, barrier, gather, petsc4py_module, petsc_matrix, petsc_vector
from .local import setup_asm, setup_block_jacobi
from .pc import set_preconditioner

__all__ = ["PetscSolveResult", "solve"]


@dataclass
class PetscSolveResult:
    """Outcome of :func:`solve` (the same on every rank).

    Attributes
    ----------
    x : ndarray
        Solution, shape ``(N,)`` (gathered on every rank).
    converged : bool
        PETSc's converged reason is positive.
    reason : str
        PETSc's converged reason (``'CONVERGED_RTOL'``, ``'DIVERGED_ITS'``...).
    iterations : int
        KSP iterations (GMRES: inner iterations).
    relative_residual : float
        True ``||b - A x|| / ||b||``.
    setup_time, solve_time : float
        Seconds, maximum over the ranks: building the preconditioner (local
        fits included) and the KSP solve.
    fit_times : ndarray
        Seconds of each rank's local fits (zeros for PETSc's own PCs).
    local_sizes : list of int
        Unknowns of each rank's block or subdomain (empty for global PCs).
    memory : int
        Bytes held by our fitted local preconditioners, summed over the
        ranks (0 for PETSc's own PCs, whose memory PETSc keeps).
    n_ranks : int
    pc : str
    method : str
    """

    x: np.ndarray
    converged: bool
    reason: str
    iterations: int
    relative_residual: float
    setup_time: float
    solve_time: float
    fit_times: np.ndarray
    local_sizes: list
    memory: int
    n_ranks: int
    pc: str
    method: str

    def __repr__(self):
        status = "converged" if self.converged else f"NOT converged ({self.reason})"
        return (
            f"PetscSolveResult({self.pc}/{self.method} on {self.n_ranks} rank(s): {status} in "
            f"{self.iterations} iterations, relative residual {self.relative_residual:.3g}, "
            f"setup {self.setup_time:.3g} s, solve {self.solve_time:.3g} s)"
        )


def _reason_name(PETSc, code):  # noqa: N803
    names = {getattr(PETSc.KSP.ConvergedReason, k): k
             for k in dir(PETSc.KSP.ConvergedReason) if k.isupper()}
    return names.get(code, str(code))


def solve(A, b, *, pc="bjacobi", method="learned_lu", overlap=1, ksp_type="gmres", restart=50,
          rtol=1e-8, maxiter=1000, fit_options=None, load=None, save=None, comm=None):
    """Solve ``A x = b`` with a PETSc KSP, ``A`` split over the ranks of ``comm``.

    Collective: every rank calls it with the same global ``A`` and ``b``.

    Parameters
    ----------
    A : scipy sparse matrix/array, shape (N, N)
    b : ndarray, shape (N,)
    pc : str
        ``'bjacobi'`` or ``'asm'``: local solvers ``method`` on every rank
        (:func:`setup_block_jacobi`, :func:`setup_asm`). ``'python'``: one
        :class:`PythonPC` fitted on the whole ``A`` (one rank only). Any other
        PETSc PC type (``'gamg'``, ``'ilu'``, ``'none'``...) is used as PETSc
        makes it, and ``method`` is ignored.
    method : str
        Local solver: one of our preconditioner names, or ``'petsc:<pc type>'``.
    overlap : int
        ASM overlap.
    ksp_type : str
        PETSc KSP type. GMRES and FGMRES are preconditioned on the right, so
        ``rtol`` applies to the true (unpreconditioned) residual as in scipy.
    restart, rtol, maxiter
        GMRES restart length, relative tolerance, iteration limit.
    fit_options, load, save
        As in :func:`setup_block_jacobi`.
    comm : petsc4py.PETSc.Comm, optional
        Default ``PETSc.COMM_WORLD``.

    Returns
    -------
    PetscSolveResult
    """
    PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
    comm = PETSc.COMM_WORLD if comm is None else comm
    A = sp.csr_array(A, dtype=np.float64)
    mat = petsc_matrix(A, comm=comm)
    bvec = petsc_vector(b, mat)
    xvec = mat.createVecRight()
    ksp = PETSc.KSP().create(comm=comm)
    try:
        ksp.setOperators(mat)
        ksp.setType(ksp_type)
        if ksp_type in ("gmres", "fgmres"):
            ksp.setGMRESRestart(restart)
            ksp.setPCSide(PETSc.PC.Side.RIGHT)
        ksp.setTolerances(rtol=rtol, atol=0.0, max_it=maxiter)
        ksp.setInitialGuessNonzero(False)
        local_sizes, fit_time, nbytes = [], 0.0, 0
        if pc in ("bjacobi", "asm"):
            setup = setup_block_jacobi if pc == "bjacobi" else setup_asm
            kwargs = {"overlap": overlap} if pc == "asm" else {}
            solvers = setup(ksp, method=method, fit_options=fit_options, load=load, save=save,
                            **kwargs)
            setup_time, fit_time, local_sizes = (solvers.setup_time, solvers.fit_time,
                                                 solvers.local_sizes)
            nbytes = solvers.nbytes
        else:
            barrier(comm)
            start = time.perf_counter()
            if pc == "python":
                context = set_preconditioner(ksp, method=method, fit_options=fit_options,
                                             load=load, save=save)
            else:
                ksp.getPC().setType(pc)
                method = "-"
            ksp.setUp()
            ksp.setUpOnBlocks()
            setup_time = time.perf_counter() - start
            if pc == "python":
                fit_time, nbytes = context.setup_time, int(getattr(context.M, "nbytes", 0))
        barrier(comm)
        start = time.perf_counter()
        ksp.solve(bvec, xvec)
        solve_time = time.perf_counter() - start
        r = bvec.duplicate()
        mat.mult(xvec, r)
        r.aypx(-1.0, bvec)
        bnorm = bvec.norm()
        rel = r.norm() / bnorm if bnorm > 0 else r.norm()
        r.destroy()
        reason = ksp.getConvergedReason()
        per_rank = allgather([setup_time, solve_time, fit_time, nbytes], comm)
        sizes = allgather([sum(local_sizes)], comm)[:, 0] if local_sizes else []
        return PetscSolveResult(
            x=gather(xvec), converged=reason > 0, reason=_reason_name(PETSc, reason),
            iterations=int(ksp.getIterationNumber()), relative_residual=float(rel),
            setup_time=float(per_rank[:, 0].max()), solve_time=float(per_rank[:, 1].max()),
            fit_times=per_rank[:, 2].copy(), local_sizes=[int(s) for s in sizes],
            memory=int(per_rank[:, 3].sum()),
            n_ranks=comm.getSize(), pc=pc, method=method,
        )
    finally:
        ksp.destroy()
        for obj in (xvec, bvec, mat):
            obj.destroy()
