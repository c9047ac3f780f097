"""The petsc4py ``python`` PC context around one of our preconditioners."""

import ast
import time

from .convert import petsc4py_module, scipy_matrix

__all__ = ["PythonPC", "set_preconditioner", "strip_grid"]


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
        PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
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
        PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
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
            from ..lu import LearnedLU

            self.M = LearnedLU.load(str(self.load).format(**names), A=A)
        else:
            from .._registry import get_preconditioner

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
    PETSc = petsc4py_module()  # noqa: N806 - the module's usual name
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
