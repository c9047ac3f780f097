"""LearnedLU and the baselines as PETSc preconditioners, on one process or many.

petsc4py is an optional dependency (the ``petsc`` extra; it has no wheels, so
``tools/install_petsc.sh`` builds it, see ``docs/petsc.md``). This module
imports it only inside the functions that need it: ``import learned_precond``
and ``import learned_precond.petsc`` never require it.

API map
-------
PythonPC
    A petsc4py ``PC`` context (``PC`` type ``python``) around one of our
    preconditioners: a fitted instance you pass in, a model file loaded at
    setup, or a fit made at setup on the PC's own operator. ``apply`` is
    ``M @ x``; ``applyTranspose`` is ``M.rmatvec`` (PETSc's ``bicg`` uses it).
set_preconditioner
    Make the PC of a KSP (or a PC) a :class:`PythonPC`.
setup_block_jacobi, setup_asm
    Across MPI ranks: PETSc's block Jacobi or additive Schwarz, every rank's
    local solver a :class:`PythonPC` fitted on that rank's diagonal block
    (block Jacobi) or overlapping subdomain (ASM), all ranks fitting at the
    same time with the same options; or loaded per rank from files.
petsc_matrix, petsc_vector, gather
    scipy / numpy to PETSc and back; rows split over the ranks as PETSc
    splits them by default.
solve
    Matrix, right-hand side, preconditioner layout -> :class:`PetscSolveResult`
    with iterations, setup and solve seconds and the true residual.

Run a script that uses it on several processes with MPICH's launcher, e.g.
``OMP_NUM_THREADS=1 mpiexec -n 2 python my_solve.py``. Every function here
that takes a communicator is collective over it: all ranks call it.
"""

import ast
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

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

_INSTALL_HINT = (
    "learned_precond.petsc needs petsc4py, which has no wheels on PyPI: build PETSc "
    "and petsc4py with tools/install_petsc.sh (about 25 minutes on 2 cores; see "
    "docs/petsc.md), then `pip install -e \".[petsc]\"`."
)


def _petsc():
    """Import and return ``petsc4py.PETSc`` (the one place it is imported)."""
    try:
        from petsc4py import PETSc
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return PETSc


# -- conversions ----------------------------------------------------------------


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
    PETSc = _petsc()  # noqa: N806 - the module's usual name
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
    PETSc = _petsc()  # noqa: N806 - the module's usual name
    scatter, full = PETSc.Scatter.toAll(vec)
    try:
        scatter.scatter(vec, full, addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return full.getArray(readonly=True).copy()
    finally:
        scatter.destroy()
        full.destroy()


def _allgather(values, comm):
    """Rows of per-rank float values, shape ``(size, len(values))``, on every rank.

    Goes through a PETSc vector, so that no mpi4py is needed (PyPI's mpi4py
    wheel does not load Debian's MPICH). Collective.
    """
    PETSc = _petsc()  # noqa: N806 - the module's usual name
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    vec = PETSc.Vec().createMPI((values.size, PETSc.DECIDE), comm=comm)
    try:
        vec.setArray(values)
        out = gather(vec)
    finally:
        vec.destroy()
    return out.reshape(comm.getSize(), values.size)


def _max_over_ranks(value, comm):
    return float(_allgather([value], comm).max())


def _barrier(comm):
    comm.barrier()


# -- the PC context ----------------------------------------------------------------


def strip_grid(n_columns, **options):
    """Fit options for local blocks that are full rows of an ``n_rows x n_columns`` grid.

    A 2-D grid numbered row by row and split into contiguous rows over the
    ranks gives each rank a strip of whole grid rows; ASM overlap adds whole
    rows too (5-point stencil). This returns a callable for ``fit_options``
    that adds ``grid_shape=(m // n_columns, n_columns)`` to ``options`` for a
    local block of ``m`` unknowns (when ``n_columns`` divides ``m``; otherwise
    the options unchanged, and LearnedLU orders by graph bisection), so that
    LearnedLU uses its geometric ordering on each strip.

    Examples
    --------
    >>> opts = strip_grid(64, max_steps=10, seed=0)
    >>> opts(64 * 33)
    {'max_steps': 10, 'seed': 0, 'grid_shape': (33, 64)}
    """

    def options_for(m):
        if m % n_columns == 0:
            return {**options, "grid_shape": (m // n_columns, n_columns)}
        return dict(options)

    options_for.__qualname__ = f"strip_grid({n_columns})"
    return options_for


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False, "none": None}.get(text.lower(), text)


class PythonPC:
    """petsc4py ``python`` PC context applying one of our preconditioners.

    Three ways to get the preconditioner ``M`` it applies:

    - ``PythonPC(M)``: a fitted :class:`~learned_precond._base.Preconditioner`
      (or any ``LinearOperator`` of the PC's local size);
    - ``PythonPC(load="model_{rank}.npz")``: a :class:`~learned_precond.LearnedLU`
      file, loaded at PETSc's setup and checked against the PC's operator;
    - ``PythonPC(method="learned_lu", fit_options={...})``: fitted at PETSc's
      setup on the PC's (sequential) preconditioning matrix, and fitted again
      whenever PETSc sets the PC up for a changed matrix.

    ``fit_options`` is a dict for ``get_preconditioner(method).fit``, or a
    callable ``f(m) -> dict`` of the local size ``m`` (see :func:`strip_grid`).
    ``load`` and ``save`` are paths, formatted with ``rank`` and ``size``
    (``PETSc.COMM_WORLD``) and ``block`` (the block's index on its rank).

    Made from the options database (``-pc_type python -pc_python_type
    learned_precond.petsc.PythonPC``, or ``-sub_pc_type python
    -sub_pc_python_type ...`` under block Jacobi), it is built with no
    arguments and reads ``-[prefix]learned_method NAME``, ``-[prefix]learned_fit
    key=value,key=value`` and ``-[prefix]learned_load PATH`` (``prefix`` the
    PC's options prefix, ``sub_`` for block Jacobi and ASM blocks).

    Attributes
    ----------
    M : LinearOperator or None
        The preconditioner applied (None before setup, unless given).
    setup_time : float
        Seconds of the last fit or load done at setup (0 for a given ``M``).
    n_setups : int
        Fits or loads done at setup.
    """

    def __init__(self, M=None, *, method="learned_lu", fit_options=None, load=None, save=None,
                 block=0):
        if M is not None and (load is not None or save is not None):
            raise ValueError("give either a fitted M or load/save paths, not both.")
        if M is not None and (getattr(M, "ndim", 2) != 2 or M.shape[0] != M.shape[1]):
            raise ValueError(f"M must be a square LinearOperator, got shape {M.shape}.")
        self.M = M
        self.method = method
        self.fit_options = fit_options
        self.load = load
        self.save = save
        self.block = block
        self.setup_time = 0.0
        self.n_setups = 0
        self._given = M is not None

    # -- hooks PETSc calls ------------------------------------------------------
    def setFromOptions(self, pc):  # noqa: N802 - petsc4py's hook name
        """Read ``-[prefix]learned_method``, ``_fit`` and ``_load`` (when given)."""
        PETSc = _petsc()  # noqa: N806 - the module's usual name
        opts = PETSc.Options(pc.getOptionsPrefix())
        if opts.hasName("learned_method"):
            self.method = opts.getString("learned_method")
        if opts.hasName("learned_fit"):
            fit = opts.getString("learned_fit")
            parsed = {}
            for item in fit.split(","):
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(
                        f"-learned_fit expects key=value pairs separated by commas, got {fit!r} "
                        f"(e.g. -sub_learned_fit max_steps=20,seed=0)."
                    )
                parsed[key.strip()] = _parse_value(value.strip())
            self.fit_options = parsed
        if opts.hasName("learned_load"):
            self.load = opts.getString("learned_load")

    def setUp(self, pc):  # noqa: N802 - petsc4py's hook name
        """Fit (or load, or check) ``M`` for the PC's preconditioning matrix."""
        PETSc = _petsc()  # noqa: N806 - the module's usual name
        _, P = pc.getOperators()
        if pc.getComm().getSize() > 1:
            raise ValueError(
                "PythonPC applies a sequential preconditioner, but this PC's matrix is "
                f"distributed over {pc.getComm().getSize()} ranks. Use setup_block_jacobi or "
                "setup_asm (one PythonPC per rank), or `-pc_type bjacobi -sub_pc_type python`."
            )
        n_rows = P.getSize()[0]
        if self._given:
            if self.M.shape[0] != n_rows:
                raise ValueError(
                    f"the fitted preconditioner has size {self.M.shape[0]} but the PC's "
                    f"matrix has {n_rows} rows; fit it to this matrix (or this rank's block)."
                )
            return
        start = time.perf_counter()
        A = scipy_matrix(P)
        world = PETSc.COMM_WORLD
        names = {"rank": world.getRank(), "size": world.getSize(), "block": self.block}
        if self.load is not None:
            from .lu import LearnedLU

            self.M = LearnedLU.load(str(self.load).format(**names), A=A)
        else:
            from ._registry import get_preconditioner

            options = self.fit_options
            options = options(A.shape[0]) if callable(options) else dict(options or {})
            self.M = get_preconditioner(self.method).fit(A, **options)
        if self.save is not None:
            if not hasattr(self.M, "save"):
                raise ValueError(f"{type(self.M).__name__} cannot be saved; only LearnedLU can.")
            self.M.save(str(self.save).format(**names))
        self.setup_time = time.perf_counter() - start
        self.n_setups += 1

    def reset(self, pc):
        """Forget a fitted (not given) preconditioner."""
        if not self._given:
            self.M = None

    def apply(self, pc, x, y):
        """``y = M x``."""
        y.setArray(self.M.matvec(x.getArray(readonly=True)))

    def applyTranspose(self, pc, x, y):  # noqa: N802 - petsc4py's hook name
        """``y = M^T x`` (``M.rmatvec``), for KSP methods such as ``bicg``."""
        if not getattr(self.M, "has_adjoint", True):
            raise NotImplementedError(
                f"{type(self.M).__name__} has no transpose apply; use a KSP method that "
                f"does not apply the transposed preconditioner (gmres, fgmres, bcgs, cg)."
            )
        y.setArray(self.M.rmatvec(x.getArray(readonly=True)))

    def view(self, pc, viewer):
        """Print what ``-ksp_view`` shows for this PC."""
        if self.M is None:
            viewer.printfASCII(f"learned_precond {self.method}: not set up\n")
            return
        source = "given" if self._given else (
            f"loaded from {self.load}" if self.load is not None else f"fitted ({self.method})"
        )
        viewer.printfASCII(
            f"learned_precond {type(self.M).__name__}, {source}, N={self.M.shape[0]}, "
            f"setup {self.setup_time:.3g} s\n"
        )

    def __repr__(self):
        state = repr(self.M) if self.M is not None else f"{self.method}, not set up"
        return f"PythonPC({state})"


def set_preconditioner(ksp_or_pc, M=None, **options):
    """Make the PC of ``ksp_or_pc`` a ``python`` PC with a :class:`PythonPC` context.

    Parameters
    ----------
    ksp_or_pc : petsc4py.PETSc.KSP or petsc4py.PETSc.PC
    M : Preconditioner, LinearOperator or PythonPC, optional
        A fitted preconditioner (or a ready context). Leave out to fit at
        PETSc's setup with ``options`` (see :class:`PythonPC`).
    **options
        ``method``, ``fit_options``, ``load``, ``save``, ``block`` of :class:`PythonPC`.

    Returns
    -------
    PythonPC
        The context installed (its ``M`` and ``setup_time`` after setup).

    Examples
    --------
    >>> ksp = PETSc.KSP().create(comm=PETSc.COMM_SELF)          # doctest: +SKIP
    >>> ksp.setOperators(petsc_matrix(A, comm=PETSc.COMM_SELF))  # doctest: +SKIP
    >>> set_preconditioner(ksp, LearnedLU.fit(A))               # doctest: +SKIP
    """
    PETSc = _petsc()  # noqa: N806 - the module's usual name
    pc = ksp_or_pc.getPC() if isinstance(ksp_or_pc, PETSc.KSP) else ksp_or_pc
    if isinstance(M, PythonPC):
        if options:
            raise TypeError("options go to PythonPC(...) when a context is given.")
        context = M
    else:
        context = PythonPC(M, **options)
    pc.setType(PETSc.PC.Type.PYTHON)
    pc.setPythonContext(context)
    return context


# -- block Jacobi and ASM across ranks --------------------------------------------


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
    PETSc = _petsc()  # noqa: N806 - the module's usual name
    comm = ksp.getComm()
    pc = ksp.getPC()
    _barrier(comm)
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


# -- one call -------------------------------------------------------------------


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
    PETSc = _petsc()  # noqa: N806 - the module's usual name
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
            _barrier(comm)
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
        _barrier(comm)
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
        per_rank = _allgather([setup_time, solve_time, fit_time, nbytes], comm)
        sizes = _allgather([sum(local_sizes)], comm)[:, 0] if local_sizes else []
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
