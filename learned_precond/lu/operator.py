"""Stage 7, the operator: :class:`LearnedLU`, the fitted ``M = U^-1 L^-1`` as a LinearOperator.

``LearnedLU.fit`` runs the pipeline of this package, one stage per module::

    options -> pivot -> order -> scale -> initialize -> train -> pack -> operator

and the operator applies ``M = D_c P_t^T (U^-1 L^-1 / s) P_t D_r P`` (static
pivoting, tree ordering and padding, scaling undone) by the compiled blocked
substitution. Its state is public and is what a saved file holds: the
ordering, the pivoting, the factors (:class:`~learned_precond.lu.pack.
LUFactors`), the scale, the report and the options.
"""

import contextlib
import logging
import threading
import warnings

import numpy as np
import torch

from .._base import Preconditioner
from .._convert import to_numpy
from .._format import format_bytes
from .._validation import as_matrix, check_structure
from ..exceptions import FitConvergenceWarning, ModelFileError, PreconditionerSetupError
from ..io import load_learned_lu, matrix_fingerprint, save_learned_lu
from ..pivoting import StaticPivoting
from . import _checks
from ._merit import GmresMerit
from .budget import FitClock
from .initialize import initialize
from .options import FitOptions
from .order import order
from .pack import LUFactors, PackedFactors, auto_factor_dtype
from .pivot import pivot
from .report import FitReport
from .scale import ScaledSystem
from .train import LUModel, train_stage

__all__ = ["LearnedLU"]

logger = logging.getLogger("learned_precond.lu")

#: Layouts other than the GFMM tree: ``init`` name -> ``fit(A, A_prime, piv,
#: opts, report, clock, *, symmetric)``. :mod:`learned_precond.lu.nested`
#: registers ``'hierarchical'`` when the package is imported (it subclasses
#: LearnedLU, so this module cannot import it).
LAYOUTS = {}
#: ``init='auto'``: layout name -> ``prefers(A, opts)``, true when that layout
#: is the default for ``A`` (registered beside ``LAYOUTS``).
PREFERRED = {}
#: Saved layouts other than the GFMM tree: the metadata's ``layout`` ->
#: ``load(path, A=None)``, registered in lu/__init__ like :data:`LAYOUTS`.
LOADERS = {}


#: Up to this many unknowns training runs torch on one thread.
SINGLE_THREAD_MAX_N = 16384


@contextlib.contextmanager
def _torch_threads(n):
    # The training step is a few dozen batched products of small blocks: up to
    # N = 16384 OpenMP's threads cost more than they give, and on a shared
    # machine their spin-waiting made a step 2-20x slower (N = 4096: 0.07 s on
    # one thread, 0.15-2.4 s on two, with the cores also used by others).
    previous = torch.get_num_threads()
    if n <= SINGLE_THREAD_MAX_N and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _indent(text, spaces):
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else line for line in text.splitlines())


def _is_complex(A):
    """A complex matrix or operator (before validation: anything with a complex dtype)."""
    dtype = getattr(A, "dtype", None)
    try:
        return dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating)
    except TypeError:
        return False


def _options_doc():
    """The Parameters section of FitOptions, indented for fit's docstring."""
    doc = FitOptions.__doc__ or ""  # None under python -OO
    return _indent(doc.split("----------", 1)[-1].strip("\n").rstrip(), 4)


class LearnedLU(Preconditioner):
    """Preconditioner ``M = U^-1 L^-1`` with learned GFMM-block factors ``L U ~ A``.

    Build it with :meth:`fit` (or :meth:`load`); the constructor is internal.

    Attributes
    ----------
    report : FitReport
        Loss history, steps, times, error and condition estimates.
    options : FitOptions or None
        The options of the fit (None for a file saved without them).
    ordering : TreeOrdering
        Maps the user's numbering to the padded tree numbering.
    pivoting : StaticPivoting
        Row permutation and scalings applied before the factors.
    factors : LUFactors
        The learned factors of ``A' / scale`` in the tree numbering.
    scale : float
        The factors approximate ``A' / scale``.
    layout : GFMMLayout
        Leaves, block size and far-field rank.
    factor_dtype : str
        ``'float64'`` or ``'float32'``: storage of the packed factors.
    symmetric : bool
        ``U = S L^T`` with SPD ``S`` and a pivoting that keeps A symmetric:
        ``M`` is SPD (valid for CG and MINRES).
    """

    name = "learned_lu"
    #: For SPD A the default factorization is ``L S L^T``: M is SPD (CG-safe).
    symmetric = True
    #: Complex ``A`` is fitted on its real form (``lu/complex_form.py``).
    supports_complex = True

    def __init__(self, *, factors, ordering, scale, report, fingerprint=None,
                 pivoting=None, factor_dtype="float64", options=None):
        n = ordering.n
        super().__init__((n, n), dtype=np.float64)
        self.ordering = ordering
        self.factors = factors
        self.layout = factors.layout
        self.pivoting = pivoting if pivoting is not None else StaticPivoting.identity(n)
        self._pivoted = not self.pivoting.is_identity
        # M is SPD only when the factorization is L S L^T and the pivoting kept
        # the matrix symmetric (scaling only).
        self.symmetric = factors.symmetric and self.pivoting.preserves_symmetry
        self.scale = float(scale)
        self.report = report
        self.options = options
        self.fingerprint = fingerprint
        self.factor_dtype = factor_dtype  # validated by fit and by load
        self._packed = PackedFactors(factors, factor_dtype=factor_dtype)
        self.report.notes.extend(note for note in self._packed.notes
                                 if note not in self.report.notes)
        self._lock = threading.Lock()
        self._model_cache = None

    # -- construction -------------------------------------------------------
    @classmethod
    def fit(cls, A, **options):
        if _is_complex(A):
            # the equivalent real form, fitted like any real matrix (complex_form.py)
            from .complex_form import ComplexLearnedLU

            A = as_matrix(A, allow_operator=True, allow_complex=True)
            if _is_operator(A):
                raise NotImplementedError(
                    "LearnedLU of a complex LinearOperator is not supported (its real "
                    "form needs A's entries); pass the complex sparse or dense matrix.")
            check_structure(A)
            return ComplexLearnedLU.fit(A, cls.fit, **options)
        opts = FitOptions.from_kwargs(options)
        clock = FitClock(opts.time_budget, progress=opts.progress)
        A = as_matrix(A, allow_operator=True)
        if not _is_operator(A):
            check_structure(A)
        symmetric = opts.check_matrix(A)
        report = FitReport(loss=opts.loss, time_budget=opts.time_budget)
        seed = opts.seed if opts.seed is not None else int(torch.seed() % 2**31)
        generator = torch.Generator().manual_seed(seed)
        with _flush_denormals(), contextlib.ExitStack() as stack:
            A_prime, piv = pivot(A, opts, report)
            clock.stage("pivot", f"N={A.shape[0]}, pivoting={piv.method!r}")
            symmetric = symmetric and piv.preserves_symmetry
            dense = (isinstance(opts.init, str) and opts.init == "hodlr") or (
                isinstance(opts.init, str) and opts.init == "auto"
                and PREFERRED["hodlr"](A, opts))
            if dense:
                if not isinstance(A, np.ndarray):
                    raise ValueError(
                        "init='hodlr' is the dense layout: it needs A as a dense ndarray "
                        "(a sparse A has the nested layout, init='hierarchical').")
                return LAYOUTS["hodlr"](A, A_prime, piv, opts, report, clock,
                                        symmetric=symmetric)
            nested = (opts.nested_warm_start is not None
                      or (isinstance(opts.init, str) and opts.init == "hierarchical")
                      or (isinstance(opts.init, str) and opts.init == "auto"
                          and PREFERRED["hierarchical"](A, opts)))
            if nested:
                if _is_operator(A):
                    raise ValueError(
                        "init='hierarchical' factors A from its entries; a LinearOperator "
                        "has none. Pass a sparse matrix or use init='block_tridiagonal'.")
                return LAYOUTS["hierarchical"](A, A_prime, piv, opts, report, clock,
                                               symmetric=symmetric)
            tree, layout = order(A_prime, opts, report)
            clock.stage("order", f"{report.ordering} (GFMM layout)")
            stack.enter_context(_torch_threads(layout.size))
            system = ScaledSystem(A_prime, tree, generator)
            model, merit, merit_value = initialize(
                system, layout, opts, report, symmetric=symmetric, generator=generator,
                new_merit=lambda: GmresMerit(system, generator), clock=clock)
            report.start_seconds = clock.elapsed()
            clock.stage("start", f"init={report.init!r}")
            model = train_stage(model, system, opts, report, merit=merit,
                                merit_value=merit_value, clock=clock, generator=generator)
            factors = LUFactors.from_model(model)
            factor_dtype = (auto_factor_dtype(factors) if opts.factor_dtype == "auto"
                            else opts.factor_dtype)
            self = cls(factors=factors, ordering=tree, scale=system.scale, report=report,
                       fingerprint=matrix_fingerprint(A), pivoting=piv,
                       factor_dtype=factor_dtype, options=opts)
            self._model_cache = model
            clock.stage("train", f"{report.steps} step(s), best step {report.best_step} "
                                 f"({report.stop_reason})")
            self._check_fit(A_prime, generator, clock)
            clock.stage("done", f"{self.nbytes / 2**20:.3g} MiB")
        return self

    fit.__func__.__signature__ = FitOptions.signature("cls", "A")
    fit.__func__.__doc__ = f"""Learn ``L U ~ A`` and return the fitted preconditioner.

        The stages, one module each of :mod:`learned_precond.lu`: validate the
        options (``options``), static pivoting (``pivot``), the tree ordering
        (``order``), scaling (``scale``), the start (``initialize``), training
        (``train``), packing (``pack``); then checks of the result.

        Parameters
        ----------
        A : sparse array/matrix, ndarray or LinearOperator, shape (N, N)
            Real square matrix. A LinearOperator is used only through products
            with ``A`` (and ``A^T`` for ``transpose_loss``); it gets natural
            ordering and a probed block tridiagonal initialization.
        **options
            Keyword-only, each validated before any work (a misspelt name is a
            ``TypeError`` that suggests the right one):
{_options_doc()}

        Returns
        -------
        LearnedLU

        Raises
        ------
        TypeError, ValueError
            An option (or ``A``) is invalid; the message names it and the fix.
        PreconditionerSetupError
            When no usable factors can be produced (the report is attached).
        """

    def _check_fit(self, A_prime, generator, clock):
        """Finite output, condition estimates (within the budget), warnings."""
        report = self.report
        report.n_parameters = self.factors.n_parameters
        report.nbytes = self.nbytes
        if _checks.nonfinite_output(self, generator):
            raise PreconditionerSetupError(
                "the learned factors produce non-finite output (a diagonal block of U is "
                "numerically singular); try init='block_jacobi', a different ordering, "
                "or static pivoting for matrices with a weak diagonal.", report=report)
        deadline = clock.deadline()
        report.cond_A_hat, iterations = _checks.cond_estimate_hat(
            self._model, self._packed, generator, deadline=deadline)
        skipped = []
        if iterations < 20:
            skipped.append(f"cond(L U) from {iterations} power iteration(s) instead of 20")
        if deadline is not None and deadline.passed():
            skipped.append("cond(A) not estimated")
        else:
            report.cond_A = _checks.cond_estimate(A_prime)
        if skipped:
            report.cut_short.append("checks")
            report.notes.append(f"time_budget spent: {'; '.join(skipped)}")
        _checks.warn_conditioning(report, stacklevel=4)
        report.fit_time = clock.elapsed()
        self.setup_time = report.fit_time
        opts = self.options
        if opts.max_steps > 0 and not report.converged:
            if report.stop_reason in ("time_budget", "time_limit"):
                limit = (f"time_budget={opts.time_budget:g} s" if report.stop_reason ==
                         "time_budget" else f"the default time limit of "
                         f"{report.train_limit:.3g} s on training")
                warnings.warn(
                    f"LearnedLU stopped at {limit} after {report.steps} steps, before its "
                    f"tolerance (tol={opts.tol}) was met; the factors are the best found "
                    f"in time. Pass a larger time_budget (math.inf: no limit) to train "
                    f"longer.", FitConvergenceWarning, stacklevel=3)
            else:
                warnings.warn(
                    f"LearnedLU stopped at max_steps={opts.max_steps} before its tolerance "
                    f"(tol={opts.tol}) was met; the factors are usable but may improve "
                    f"with a larger max_steps or lr.", FitConvergenceWarning,
                    stacklevel=3)

    # -- persistence ------------------------------------------------------------
    def save(self, path):
        """Save to ``path`` (``.npz`` arrays + JSON metadata; no pickle).

        Examples
        --------
        >>> M.save("poisson.npz")                     # doctest: +SKIP
        >>> M2 = LearnedLU.load("poisson.npz", A=A)   # doctest: +SKIP
        """
        save_learned_lu(self, path)

    @classmethod
    def load(cls, path, A=None):
        """Load a preconditioner saved by :meth:`save`.

        Every stored name, shape, dtype and permutation is checked against
        the metadata (and the metadata against itself) before an array is
        read, so a corrupt or crafted file raises instead of allocating
        what it claims.

        Parameters
        ----------
        path : str or path-like
        A : matrix, optional
            When given, the file must have been fitted to this matrix (same
            size and entries), else :class:`~learned_precond.ModelFileError`.

        Raises
        ------
        ModelFileError
            Corrupt, truncated, unsafe (pickle), inconsistent, from an older
            format version, or fitted to another matrix.
        """
        from .nested_io import saved_layout

        layout = saved_layout(path)
        if layout == "gfmm":
            return load_learned_lu(cls, path, A=A)
        if layout not in LOADERS:
            raise ModelFileError(f"{path} holds an unknown LearnedLU layout {layout!r}.")
        return LOADERS[layout](path, A=A)

    # -- application ------------------------------------------------------------
    def _prepare(self, X):
        # A complex x is applied as M x.real + 1j * M x.imag (Preconditioner._run):
        # M is real (a complex A is refused at fit).
        X = np.asarray(X)
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise TypeError(f"M @ x needs a numeric x, got dtype {X.dtype}.")
        return super()._prepare(X)

    def _solve_slots(self, Y):
        """``U^-1 L^-1 Y`` in slot numbering, ``Y`` of shape (M, P, k)."""
        return self._packed.solve(Y)

    def _apply(self, X):
        if self._pivoted:
            return self.pivoting.wrap_solve(X, self._apply_prime)
        return self._apply_prime(X)

    def _apply_adjoint(self, X):
        if self._pivoted:
            return self.pivoting.wrap_solve_adjoint(X, self._apply_adjoint_prime)
        return self._apply_adjoint_prime(X)

    def _apply_prime(self, X):
        """``M' X`` for the pivoted, scaled matrix ``A'`` (user numbering)."""
        M, P = self.layout.n_leaves, self.layout.block_size
        Y = self.ordering.to_slots(X).reshape(M, P, -1)
        Z = self._packed.solve(Y).reshape(M * P, -1)
        return self.ordering.from_slots(Z) / self.scale

    def _apply_adjoint_prime(self, X):
        M, P = self.layout.n_leaves, self.layout.block_size
        Y = self.ordering.to_slots(X).reshape(M, P, -1)
        Z = self._packed.solve_adjoint(Y).reshape(M * P, -1)
        return self.ordering.from_slots(Z) / self.scale

    # -- views ------------------------------------------------------------------
    @property
    def _packs(self):
        """The packed arrays (``PackedFactors.packs``)."""
        return self._packed.packs

    @property
    def _model(self):
        """The factors as a torch model (built on first use, CPU float64)."""
        with self._lock:
            if self._model_cache is None:
                self._model_cache = LUModel.from_factors(self.factors)
        return self._model_cache

    def to_dense(self, max_size=8192):
        """Dense learned ``A_hat = L U`` in the user's numbering (small N only).

        For metrics and figures: ``A_hat`` is what the preconditioner inverts
        exactly (``M = A_hat^-1``).
        """
        n = self.shape[0]
        if self.layout.size > max_size:
            raise ValueError(
                f"to_dense would form a {self.layout.size}x{self.layout.size} matrix; "
                f"raise max_size if you really want that.")
        with torch.no_grad():
            eye = torch.eye(self.layout.size, dtype=torch.float64)
            full = to_numpy(self._model.product(eye)) * self.scale
        pos = self.ordering.positions
        return full[np.ix_(pos, pos)].reshape(n, n)

    # -- reporting ------------------------------------------------------------
    @property
    def nbytes(self):
        """Bytes held by the packed factors used when applying."""
        total = self._packed.nbytes
        if self._pivoted:
            total += self.pivoting.nbytes
        return int(total + self.ordering.slots.nbytes + self.ordering.positions.nbytes)

    @property
    def n_parameters(self):
        """Number of learned scalars."""
        return self.factors.n_parameters

    def __repr__(self):
        lay, rep = self.layout, self.report
        rows = [
            ("N", f"{self.shape[0]} (padded {lay.size})"),
            ("block size", lay.block_size),
            ("leaves / levels", f"{lay.n_leaves} / {lay.n_levels}"),
            ("far-field rank", lay.rank if lay.has_far_field else "- (no far field)"),
            ("factorization", "L S L^T (SPD)" if self.factors.symmetric else "L U"),
            ("pivoting", self.pivoting.method),
            ("ordering", rep.ordering),
            ("parameters", f"{self.n_parameters} ({self.n_parameters / self.shape[0]:.1f}"
                           f" per unknown)"),
            ("memory", f"{format_bytes(self.nbytes)} ({self.factor_dtype} factors)"),
            ("init", rep.init),
            ("fit steps", f"{rep.steps} (kept step {rep.best_step}, {rep.stop_reason})"),
            ("||LU-A||_F/||A||_F", f"{rep.relative_error:.3g} (init "
                                   f"{rep.init_relative_error:.3g})"),
            ("fit time", f"{rep.fit_time:.3g} s (start {rep.start_seconds:.3g}, train "
                         f"{rep.train_seconds:.3g})"),
        ]
        if rep.cut_short:
            rows.append(("cut short", ", ".join(rep.cut_short)))
        width = max(len(k) for k, _ in rows)
        body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
        return f"LearnedLU\n{body}"


def _is_operator(A):
    from scipy.sparse.linalg import LinearOperator

    return isinstance(A, LinearOperator)


@contextlib.contextmanager
def _flush_denormals():
    # Adam's second moments of tiny gradients become subnormal floats, which
    # are ~10x slower on x86; flushing them to zero changes no result that
    # matters and is undone when fit returns.
    flush = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush:
            torch.set_flush_denormal(False)

