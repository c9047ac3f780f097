"""LearnedLU and the baselines as PETSc preconditioners, on one process or many.

petsc4py is an optional dependency (the ``petsc`` extra; it has no wheels, so
``tools/install_petsc.sh`` builds it, see ``docs/petsc.md``). This package
imports it only inside the functions that need it
(:func:`~learned_precond.petsc.convert.petsc4py_module`): ``import
learned_precond`` and ``import learned_precond.petsc`` never require it.

API map
-------
PythonPC (:mod:`~learned_precond.petsc.pc`)
    A petsc4py ``PC`` context (``PC`` type ``python``) around one of our
    preconditioners: a fitted instance you pass in, a model file loaded at
    setup, or a fit made at setup on the PC's own operator. ``apply`` is
    ``M @ x``; ``applyTranspose`` is ``M.rmatvec`` (PETSc's ``bicg`` uses it).
set_preconditioner, strip_grid (:mod:`~learned_precond.petsc.pc`)
    Make the PC of a KSP (or a PC) a :class:`PythonPC`; fit options for
    the strips of rows of a 2-D grid a rank holds.
setup_block_jacobi, setup_asm, LocalSolvers (:mod:`~learned_precond.petsc.local`)
    Across MPI ranks: PETSc's block Jacobi or additive Schwarz, every rank's
    local solver a :class:`PythonPC` fitted on that rank's diagonal block
    (block Jacobi) or overlapping subdomain (ASM), all ranks fitting at the
    same time with the same options; or loaded per rank from files.
petsc_matrix, petsc_vector, scipy_matrix, gather (:mod:`~learned_precond.petsc.convert`)
    scipy / numpy to PETSc and back; rows split over the ranks as PETSc
    splits them by default.
solve, PetscSolveResult (:mod:`~learned_precond.petsc.ksp`)
    Matrix, right-hand side, preconditioner layout -> :class:`PetscSolveResult`
    with iterations, setup and solve seconds and the true residual.

Run a script that uses it on several processes with MPICH's launcher, e.g.
``OMP_NUM_THREADS=1 mpiexec -n 2 python my_solve.py``. Every function here
that takes a communicator is collective over it: all ranks call it.
"""

from .convert import gather, petsc_matrix, petsc_vector, scipy_matrix
from .ksp import PetscSolveResult, solve
from .local import LocalSolvers, setup_asm, setup_block_jacobi
from .pc import PythonPC, set_preconditioner, strip_grid

__all__ = [
    "PetscSolveResult",
    "PythonPC",
    "LocalSolvers",
    "gather",
    "petsc_matrix",
    "petsc_vector",
    "scipy_matrix",
    "set_preconditioner",
    "setup_asm",
    "setup_block_jacobi",
    "solve",
    "strip_grid",
]
