"""petsc4py, imported in one place, and scipy/numpy <-> PETSc conversions across ranks."""

import numpy as np
import scipy.sparse as sp

__all__ = [
    "allgather",
    "barrier",
    "gather",
    "petsc4py_module",
    "petsc_matrix",
    "petsc_vector",
    "scipy_matrix",
]

_INSTALL_HINT = (
    "learned_precond.petsc needs petsc4py, which has no wheels on PyPI: build PETSc "
    "and petsc4py with tools/install_petsc.sh (about 25 minutes on 2 cores; see "
    "docs/petsc.md), then `pip install -e \".[petsc]\"`."
)


def petsc4py_module():
    """Import and return ``petsc4py.PETSc`` (the one place it is imported)."""
    try:
        from petsc4py import PETSc
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return PETSc


def _ownership(N, comm):
    """Rows ``[lo, hi)`` PETSc gives this rank when it splits ``N`` rows itself."""
    size, rank = comm.getSize(), comm.getRank()
    counts = np.full(size, N // size)
    counts[: N % size] += 1
    lo = int(counts[:rank].sum())
    return lo, lo + int(counts[rank])


def petsc_matrix(A, *, comm=None):
    """Build a distributed PETSc AIJ matrix from a scipy sparse matrix.

    Every rank passes the same global ``A`` and keeps its own rows, split as
    PETSc splits ``N`` rows by default (contiguous, sizes differing by at most
    one). Collective over ``comm``.

    Parameters
    ----------
    A : scipy sparse matrix/array or ndarray, shape (N, N)
    comm : petsc4py.PETSc.Comm, optional
        Default ``PETSc.COMM_WORLD``.

    Returns
    -------
    petsc4py.PETSc.Mat
        Assembled, type ``aij`` (``seqaij`` on one rank, ``mpiaij`` on more).
    """
    PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
    comm = PETSc.COMM_WORLD if comm is None else comm
    A = sp.csr_array(A, dtype=np.float64)
    N, ncols = A.shape
    if N != ncols:
        raise ValueError(f"A must be square, got shape {A.shape}.")
    A.sort_indices()
    lo, hi = _ownership(N, comm)
    rows = A[lo:hi]
    int_type = PETSc.IntType
    csr = (rows.indptr.astype(int_type), rows.indices.astype(int_type), rows.data)
    mat = PETSc.Mat().createAIJ(size=((hi - lo, N), (hi - lo, N)), csr=csr, comm=comm)
    mat.assemble()
    return mat


def scipy_matrix(mat):
    """Return the rows a rank holds of a PETSc AIJ matrix as a scipy ``csr_array``.

    For a sequential matrix (a block Jacobi block, an ASM subdomain) that is
    the whole matrix. For a distributed one it is the local rows with global
    column indices, shape ``(local rows, N)``. Not collective.
    """
    if mat.getType() not in ("seqaij", "mpiaij"):
        mat = mat.convert("aij")
    indptr, indices, data = mat.getValuesCSR()
    (nrows, _), (_, ncols) = mat.getSizes()
    return sp.csr_array(
        (np.array(data, dtype=np.float64), np.array(indices), np.array(indptr)),
        shape=(nrows, ncols),
    )


def petsc_vector(b, mat):
    """Build a PETSc vector laid out like ``mat``'s rows, holding this rank's part of ``b``.

    Every rank passes the same global ``b`` (shape ``(N,)``). Collective.
    """
    vec = mat.createVecLeft()
    lo, hi = vec.getOwnershipRange()
    vec.setArray(np.ascontiguousarray(np.asarray(b, dtype=np.float64)[lo:hi]))
    return vec


def gather(vec):
    """Return the whole of a distributed PETSc vector as a numpy array, on every rank.

    Collective.
    """
    PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
    scatter, full = PETSc.Scatter.toAll(vec)
    try:
        scatter.scatter(vec, full, addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return full.getArray(readonly=True).copy()
    finally:
        scatter.destroy()
        full.destroy()


def allgather(values, comm):
    """Rows of per-rank float values, shape ``(size, len(values))``, on every rank.

    Goes through a PETSc vector, so that no mpi4py is needed (PyPI's mpi4py
    wheel does not load Debian's MPICH). Collective.
    """
    PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    vec = PETSc.Vec().createMPI((values.size, PETSc.DECIDE), comm=comm)
    try:
        vec.setArray(values)
        out = gather(vec)
    finally:
        vec.destroy()
    return out.reshape(comm.getSize(), values.size)


def barrier(comm):
    """Wait until every rank of ``comm`` gets here (before a timed section)."""
    comm.barrier()
