"""Block Jacobi and additive Schwarz across MPI ranks, our preconditioner on every block."""

import time
from dataclasses import dataclass, field

from .convert import barrier, petsc4py_module
from .pc import set_preconditioner

__all__ = ["LocalSolvers", "setup_asm", "setup_block_jacobi"]


@dataclass
class LocalSolvers:
    """Local solvers of one rank under block Jacobi or ASM (from :func:`setup_block_jacobi`).

    Attributes
    ----------
    pc_type : str
        ``'bjacobi'`` or ``'asm'``.
    overlap : int
        ASM overlap (0 for block Jacobi).
    method : str
        Our preconditioner name (``'learned_lu'``, ``'ilu0'``...) or
        ``'petsc:<type>'`` for PETSc's own sub-PC.
    contexts : list of PythonPC
        One per block on this rank (empty for ``petsc:`` methods).
    local_sizes : list of int
        Unknowns of each of this rank's blocks (subdomains include the overlap).
    setup_time : float
        Seconds this rank spent in the setup (block extraction and local fits),
        after a barrier at the start.
    """

    pc_type: str
    overlap: int
    method: str
    contexts: list = field(default_factory=list)
    local_sizes: list = field(default_factory=list)
    setup_time: float = 0.0

    @property
    def fit_time(self):
        """Seconds of this rank's local fits (or loads)."""
        return float(sum(c.setup_time for c in self.contexts))

    @property
    def nbytes(self):
        """Bytes of this rank's fitted local preconditioners."""
        return int(sum(getattr(c.M, "nbytes", 0) for c in self.contexts if c.M is not None))


def setup_block_jacobi(ksp, *, method="learned_lu", fit_options=None, load=None, save=None):
    """Block Jacobi over the ranks, each rank's diagonal block a fitted local solver.

    ``ksp`` must have its operators set. Every rank extracts its diagonal
    block and fits ``method`` on it (all ranks at once, same options), or
    loads its model from ``load`` (``'model_{rank}.npz'``). After this the
    KSP is set up; call ``ksp.solve(b, x)``. Collective over the KSP's communicator.

    Parameters
    ----------
    ksp : petsc4py.PETSc.KSP
    method : str
        A preconditioner name from :func:`~learned_precond.preconditioner_names`
        (``'learned_lu'``, ``'ilu0'``, ``'ilut'``, ``'amg'``, ``'exact'``...) or
        ``'petsc:<pc type>'`` for PETSc's own (``'petsc:ilu'`` is ILU(0)).
    fit_options : dict or callable, optional
        Passed to ``fit`` on every rank; a callable gets the local size (see
        :func:`strip_grid`).
    load, save : str, optional
        Per-rank LearnedLU model files (formatted with ``rank``, ``size``, ``block``).

    Returns
    -------
    LocalSolvers
    """
    return _setup_local(ksp, "bjacobi", 0, method, fit_options, load, save)


def setup_asm(ksp, *, overlap=1, method="learned_lu", fit_options=None, load=None, save=None):
    """Additive Schwarz over the ranks, each overlapping subdomain a fitted local solver.

    Like :func:`setup_block_jacobi`, but every rank's block grows by
    ``overlap`` layers of matrix-graph neighbours (PETSc's ``-pc_asm_overlap``)
    and the local solver is fitted on that larger subdomain matrix. PETSc's
    default restricted ASM (``PC.ASMType.RESTRICT``) is kept.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}.")
    return _setup_local(ksp, "asm", int(overlap), method, fit_options, load, save)


def _setup_local(ksp, pc_type, overlap, method, fit_options, load, save):
    PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
    comm = ksp.getComm()
    pc = ksp.getPC()
    barrier(comm)
    start = time.perf_counter()
    pc.setType(pc_type)
    if pc_type == "asm":
        pc.setASMOverlap(overlap)
    # PCSetUp creates the blocks (extracts each rank's diagonal block, or the
    # overlapping subdomain matrices) and their sub-KSPs; it does not set the
    # sub-PCs up yet, which happens in KSPSetUpOnBlocks below.
    ksp.setUp()
    subs = pc.getBJacobiSubKSP() if pc_type == "bjacobi" else pc.getASMSubKSP()
    solvers = LocalSolvers(pc_type=pc_type, overlap=overlap, method=method)
    for i, sub in enumerate(subs):
        sub.setType(PETSc.KSP.Type.PREONLY)
        solvers.local_sizes.append(sub.getOperators()[1].getSize()[0])
        if method.startswith("petsc:"):
            sub.getPC().setType(method.partition(":")[2])
            continue
        solvers.contexts.append(set_preconditioner(
            sub, method=method, fit_options=fit_options, load=load, save=save, block=i))
    # Every rank fits its local factors here, in parallel with the others.
    ksp.setUpOnBlocks()
    solvers.setup_time = time.perf_counter() - start
    return solvers
