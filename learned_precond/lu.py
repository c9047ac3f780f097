"""LearnedLU: learned GFMM-block LU factors applied as a scipy LinearOperator.

``LearnedLU.fit(A)`` orders the unknowns hierarchically, starts from a
classical block factorization, improves ``L U ~ A`` by gradient descent in
torch, then factors the diagonal blocks once and packs the factors for the
compiled blocked substitution. Applying ``M = U^-1 L^-1`` costs
``O(N (block_size + rank))`` per vector; nothing ``N x N`` is ever formed.

Examples
--------
>>> import numpy as np
>>> from scipy.sparse.linalg import gmres
>>> from learned_precond import LearnedLU, problems
>>> A = problems.get("laplace_2d", n=32)
>>> b = np.ones(A.shape[0])
>>> M = LearnedLU.fit(A, block_size=16, rank=4, max_steps=50, seed=0)
>>> x, info = gmres(A, b, M=M, rtol=1e-8)
>>> bool(np.linalg.norm(b - A @ x) <= 1e-7 * np.linalg.norm(b))
True
"""

import logging
import math
import threading
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import LinearOperator, gmres

from . import _blocks
from ._base import Preconditioner, _format_bytes
from ._compress import compress_lower
from ._substitution import PackedBlockDiagonal, pack_lower, solve_lower
from ._validation import as_matrix, check_positive_int, check_structure
from .exceptions import FitConvergenceWarning, IllConditionedWarning, PreconditionerSetupError
from .gfmm import GFMMLayout, transpose_params
from .io import load_learned_lu, matrix_fingerprint, save_learned_lu
from .ordering import tree_ordering
from .pivoting import PIVOTING_METHODS, StaticPivoting, static_pivoting
from .training import LOSSES, FitReport, LUModel, train

__all__ = ["LearnedLU"]

logger = logging.getLogger(__name__)

_INITS = ("auto", "block_tridiagonal", "block_jacobi", "exact_compressed", "random")
# Sizes up to which fit estimates cond(A) with a sparse/dense factorization.
_COND_MAX_SPARSE = 20000
_COND_MAX_DENSE = 4096
# Condition numbers beyond which the fit warns (seed 002: near the singular
# set no learned approximate inverse can be trusted).
_COND_WARN = 1e10
_ORDERINGS = ("auto", "natural", "geometric", "zorder", "bisection")
# Diagonal blocks of U with a larger condition number are regularized.
_MAX_BLOCK_COND = 1e10


class LearnedLU(Preconditioner):
    """Preconditioner ``M = U^-1 L^-1`` with learned GFMM-block factors ``L U ~ A``.

    Build it with :meth:`fit` (or :meth:`load`); the constructor is internal.

    Attributes
    ----------
    report : FitReport
        Loss history, steps, times, error and condition estimates.
    ordering : TreeOrdering
        Maps the user's numbering to the padded tree numbering.
    layout : GFMMLayout
        Leaves, block size and far-field rank.
    symmetric : bool
        ``U = S L^T`` with SPD ``S``: ``M`` is SPD (valid for CG and MINRES).
    """

    name = "learned_lu"
    #: For SPD A the default factorization is ``L S L^T``: M is SPD (CG-safe).
    symmetric = True

    def __init__(self, *, model, ordering, scale, report, fingerprint=None,
                 pivoting=None, dtype=np.float64, factor_dtype="float64"):
        n = ordering.n
        super().__init__((n, n), dtype=dtype)
        self.ordering = ordering
        self.layout = model.layout
        self.pivoting = pivoting if pivoting is not None else StaticPivoting.identity(n)
        self._pivoted = not self.pivoting.is_identity
        # M is SPD only when the factorization is L S L^T and the pivoting kept
        # the matrix symmetric (scaling only).
        self.symmetric = model.symmetric and self.pivoting.preserves_symmetry
        self.scale = float(scale)
        self.report = report
        self.fingerprint = fingerprint
        self._model = model
        self._lock = threading.Lock()
        self.factor_dtype = factor_dtype  # validated by fit and by load
        self._packs = {}
        self._pack_forward()

    # -- construction -------------------------------------------------------
    @classmethod
    def fit(cls, A, *, block_size=32, rank=None, ordering="auto", symmetric="auto",
            loss="probe", transpose_loss=False, blockwise=False, max_steps=200,
            n_probes=16, lr=None, tol=1e-3, patience=None, init="auto", seed=None,
            device="cpu", dtype=None, coords=None, grid_shape=None, verbose=False,
            callback=None, train_near_field=True, pivoting="auto", factor_dtype="auto"):
        """Learn ``L U ~ A`` and return the fitted preconditioner.

        Parameters
        ----------
        A : sparse array/matrix, ndarray or LinearOperator, shape (N, N)
            Real square matrix. A LinearOperator is used only through products
            with ``A`` (and ``A^T`` for ``transpose_loss``); it gets natural
            ordering and a probed block tridiagonal initialization.
        block_size : int
            Leaf block size ``P``; ``N`` need not be a multiple (padding is
            internal). Larger blocks: fewer iterations, more memory and apply
            time (``O(N P)``).
        rank : int, optional
            Rank of the far-field couplings, ``1 <= rank <= block_size``.
            Default: 16 where the compressed exact start is used or tried
            (see ``init``; the far field compressed from the exact factors
            gains from the higher rank), else 8 (a far field trained from
            zero has not, and each training step costs more); at most
            ``block_size``.
        ordering : {'auto', 'natural', 'geometric', 'zorder', 'bisection'}
            Hierarchical ordering of the unknowns (:func:`~learned_precond.
            ordering.tree_ordering`); ``'auto'`` bisects the graph of sparse
            ``A`` with METIS, or uses ``coords``/``grid_shape`` when given.
        symmetric : {'auto', True, False}
            Symmetric factorization ``U = S L^T`` (SPD ``M``). ``'auto'`` uses it
            when ``A`` is symmetric and its initialization is positive definite.
        loss : {'probe', 'quality', 'identity'}
            Training loss (see :mod:`learned_precond.training`).
        transpose_loss, blockwise : bool
            The seed's transpose term and block-row schedule.
        max_steps : int
            Optimizer steps (0 returns the initialization). Training keeps the
            parameters with the best GMRES residual reduction seen, so the
            result is never worse than the initialization.
        n_probes : int
            Probe vectors per step.
        lr : float, optional
            Adam learning rate (default 5e-3; the factors are trained on A
            scaled to unit diagonal, so this is a relative step).
        tol, patience : float, int
            Stop when the kept GMRES figure of merit (evaluated every 20
            steps) improved by less than ``tol`` relatively for ``patience``
            evaluations in a row. Default patience: 3, or 1 for a warm start
            (its starting point is already a fitted model, so one evaluation
            without progress ends it).
        init : {'auto', 'block_tridiagonal', 'block_jacobi', 'exact_compressed', \
'random'} or LearnedLU
            Starting point. ``'block_tridiagonal'``: the exact block LU of
            ``A``'s block tridiagonal part in the chosen ordering (far field
            zero). ``'exact_compressed'``: the exact LU of ``A`` in the
            chosen ordering (no pivoting; small N only) with the far field of
            both factors compressed to ``rank`` (nested bases, truncated
            eigendecompositions: see ``learned_precond._compress``).
            ``'auto'``: both where the exact LU is affordable (N <= 8192, A
            not a LinearOperator), keeping the one with fewer GMRES
            iterations; ``'block_tridiagonal'`` beyond. A fitted
            ``LearnedLU`` for a matrix of the same size warm-starts from its
            factors (and reuses its ordering).
        train_near_field : bool
            Also train the near-field blocks (default); False trains only the
            far field.
        pivoting : {'auto', 'mc64', 'scale', 'none'}
            Static pivoting and scaling applied inside the operator
            (:mod:`learned_precond.pivoting`): ``'mc64'`` permutes rows so the
            diagonal is large (maximum weight matching) and scales to unit
            diagonal; ``'scale'`` equilibrates only; ``'auto'`` uses ``'mc64'``
            when the diagonal is zero or weak, else nothing.
        factor_dtype : {'auto', 'float64', 'float32'}
            Precision in which the fitted factors are stored for applying
            (the substitution always accumulates in double and returns the
            caller's dtype). Single precision halves the memory an apply
            reads, which bounds its speed at large N. ``'auto'`` uses float32
            from N = 16384 on when every diagonal block has condition number
            <= 1e4, float64 otherwise.
        seed : int, optional
            Makes the fit deterministic.
        device : str or torch.device
            Where training runs (``'cpu'``, ``'cuda'``); applying is on the CPU.
        dtype : torch dtype, optional
            Training precision (default float64).
        coords, grid_shape : optional
            Geometry for the ``'geometric'`` ordering.
        verbose : bool
            Log progress (``logging`` at INFO level, logger ``learned_precond.lu``).
        callback : callable, optional
            ``callback(step, info)`` at each evaluation; ``info`` has ``loss``,
            ``val`` and ``best_val``.

        Returns
        -------
        LearnedLU

        Raises
        ------
        PreconditionerSetupError
            When no usable factors can be produced (the report is attached).
        """
        t_start = time.perf_counter()
        A = as_matrix(A, allow_operator=True)
        if not isinstance(A, LinearOperator):
            check_structure(A)
        if pivoting not in PIVOTING_METHODS:
            raise ValueError(
                f"unknown pivoting {pivoting!r}; choose from {', '.join(PIVOTING_METHODS)}.")
        # Adam's second moments of tiny gradients become subnormal floats, which
        # are ~10x slower on x86; flushing them to zero changes no result that
        # matters and is undone when fit returns.
        flush = torch.set_flush_denormal(True)
        try:
            return cls._fit(A, t_start, block_size=block_size, rank=rank,
                            ordering=ordering, symmetric=symmetric, loss=loss,
                            transpose_loss=transpose_loss, blockwise=blockwise,
                            max_steps=max_steps, n_probes=n_probes, lr=lr, tol=tol,
                            patience=patience, init=init, seed=seed, device=device,
                            dtype=dtype, coords=coords, grid_shape=grid_shape,
                            verbose=verbose, callback=callback,
                            train_near_field=train_near_field, pivoting=pivoting,
                            factor_dtype=factor_dtype)
        finally:
            if flush:
                torch.set_flush_denormal(False)

    @classmethod
    def _fit(cls, A, t_start, *, block_size, rank, ordering, symmetric, loss,
             transpose_loss, blockwise, max_steps, n_probes, lr, tol, patience, init,
             seed, device, dtype, coords, grid_shape, verbose, callback,
             train_near_field, pivoting, factor_dtype):
        n = A.shape[0]
        if factor_dtype not in ("auto", *_FACTOR_DTYPES):
            raise ValueError(
                f"factor_dtype must be 'auto', 'float64' or 'float32', got "
                f"{factor_dtype!r}.")
        block_size = check_positive_int(block_size, "block_size")
        if rank is not None:
            rank = check_positive_int(rank, "rank")
        if rank is not None and rank > block_size:
            raise ValueError(
                f"rank={rank} exceeds block_size={block_size}; the far-field couplings "
                f"of a {block_size}-block cannot have higher rank. Lower rank or raise "
                f"block_size.")
        max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
        n_probes = check_positive_int(n_probes, "n_probes")
        if patience is None:
            patience = 1 if isinstance(init, LearnedLU) else 3
        patience = check_positive_int(patience, "patience")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}.")
        if ordering not in _ORDERINGS:
            raise ValueError(
                f"unknown ordering {ordering!r}; choose from {', '.join(_ORDERINGS)}.")
        if symmetric not in ("auto", True, False):
            raise ValueError(f"symmetric must be 'auto', True or False, got {symmetric!r}.")
        warm = init if isinstance(init, LearnedLU) else None
        if warm is None and init not in _INITS:
            raise ValueError(
                f"unknown init {init!r}; choose from {', '.join(_INITS)} or pass a fitted "
                f"LearnedLU to warm-start.")
        if warm is not None and warm.shape != A.shape:
            raise ValueError(
                f"init is a LearnedLU for a {warm.shape[0]}x{warm.shape[0]} matrix but A "
                f"is {n}x{n}; warm starts need a matrix of the same size.")
        is_operator = isinstance(A, LinearOperator)
        if transpose_loss and is_operator and not _has_rmatvec(A):
            raise ValueError(
                "transpose_loss=True needs A^T products, but this LinearOperator has no "
                "rmatvec; define rmatvec or pass transpose_loss=False.")
        lr = 5e-3 if lr is None else float(lr)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        torch_dtype = torch.float64 if dtype is None else dtype
        generator = torch.Generator().manual_seed(
            int(seed) if seed is not None else int(torch.seed() % 2**31))

        report = FitReport(loss=loss)

        # 0. Static pivoting and scaling: the factors are learned for
        #    A' = D_r P A D_c and the operator applies D_c M' D_r P.
        A_user = A
        if warm is not None:
            piv = warm.pivoting
        elif is_operator:
            if pivoting not in ("auto", "none"):
                raise ValueError(
                    f"pivoting={pivoting!r} needs the matrix entries; a LinearOperator "
                    f"supports pivoting='none' only.")
            piv = StaticPivoting.identity(n)
        else:
            piv = static_pivoting(A, method=pivoting)
        if symmetric is True and not piv.preserves_symmetry:
            raise ValueError(
                "symmetric=True needs a symmetric A', but static pivoting permuted rows; "
                "pass pivoting='none' or 'scale'.")
        if not piv.is_identity:
            A = piv.apply(A)
        report.pivoting = piv.method
        if piv.method != "none":
            report.notes.append(f"static pivoting: {piv.reason}")

        # 1. Ordering: a warm start keeps the previous tree, so factors line up.
        t0 = time.perf_counter()
        if warm is not None:
            tree = warm.ordering
            block_size, rank = warm.layout.block_size, warm.layout.rank
        elif is_operator:
            if ordering not in ("auto", "natural"):
                raise ValueError(
                    f"ordering={ordering!r} needs the matrix graph; a LinearOperator "
                    f"supports ordering='natural' only.")
            tree = tree_ordering(sp.eye_array(n, format="csr"), block_size, method="natural")
        else:
            if ordering == "auto" and coords is None and grid_shape is None and \
                    _bandwidth(A) <= block_size:
                # Block tridiagonal in the given order: the default initialization
                # is then the exact factorization, which no reordering can beat.
                ordering = "natural"
            tree = tree_ordering(A, block_size, method=ordering, coords=coords,
                                 grid_shape=grid_shape,
                                 seed=0 if seed is None else int(seed))
        report.ordering = tree.method
        report.ordering_time = time.perf_counter() - t0
        M, P = tree.n_leaves, tree.block_size
        if rank is None:
            exact_start = not is_operator and (
                init == "exact_compressed" or (init == "auto" and M * P <= _EXACT_START_MAX_N))
            rank = _RANK_EXACT_START if exact_start else _RANK_TRAINED
        layout = GFMMLayout(M, P, min(rank, P))
        N = layout.size

        # 2. The permuted, padded matrix, scaled to unit size.
        if is_operator:
            def apply_raw(Z):
                return tree.to_slots(A @ tree.from_slots(Z)) + _padding_rows(tree, Z)

            def apply_raw_t(Z):
                return tree.to_slots(A.rmatvec(tree.from_slots(Z)) if Z.ndim == 1 else
                                     A.H @ tree.from_slots(Z)) + _padding_rows(tree, Z)
            Ap = None
        else:
            Ap = tree.permute_matrix(A)
            ApT = Ap.T.tocsr() if sp.issparse(Ap) else Ap.T

            def apply_raw(Z):
                return Ap @ Z

            def apply_raw_t(Z):
                return ApT @ Z
        scale = _scale_estimate(Ap, apply_raw, N, generator)
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(
                "A is zero (or its entries are not finite); there is nothing to "
                "precondition.")

        # 3. Symmetry and initialization.
        t0 = time.perf_counter()
        is_sym = _is_symmetric(A) if symmetric == "auto" else bool(symmetric)
        if warm is not None:
            model = LUModel(layout, symmetric=warm._model.symmetric, dtype=torch_dtype)
            model.load_state_dict(warm._model.state_dict())
            if warm.scale != scale:
                _rescale_model(model, scale / warm.scale)
            report.init = "warm_start"
        else:
            if is_operator:
                blocks = _blocks.probe_block_tridiagonal(apply_raw, M, P)
            else:
                blocks = _blocks.block_tridiagonal(Ap, M, P)
            blocks = tuple(b / scale for b in blocks)
            teacher = None
            if init == "exact_compressed" and not is_operator:
                teacher = _blocks.exact_block_factors(Ap / scale, M, P)
                if teacher is None:
                    report.notes.append("exact LU without pivoting failed (zero pivot): "
                                        "block tridiagonal initialization used")
            if init == "exact_compressed" and is_operator:
                report.notes.append("init='exact_compressed' needs the entries of A, not a "
                                    "LinearOperator: block tridiagonal initialization used")
            if init == "exact_compressed" and teacher is None:
                init = "block_tridiagonal"
            model, init_name, notes = _initial_model(
                layout, blocks, init, is_sym, symmetric, torch_dtype, generator,
                teacher=teacher)
            report.init = init_name
            report.notes.extend(notes)
        model.to(device)
        report.symmetric = model.symmetric
        report.init_time = time.perf_counter() - t0

        # 4. Training.
        def to_torch(Z):
            return torch.from_numpy(np.ascontiguousarray(Z)).to(device=device,
                                                                 dtype=torch_dtype)

        def apply_A(Z):
            return to_torch(apply_raw(Z.detach().cpu().double().numpy()) / scale)

        def apply_At(Z):
            return to_torch(apply_raw_t(Z.detach().cpu().double().numpy()) / scale)

        def apply_scaled(v):
            return apply_raw(v) / scale

        rhs_eval = _merit_rhs(apply_scaled, N, generator)

        def merit(m):
            return _gmres_merit(m, apply_scaled, rhs_eval)

        start_merit = None
        if warm is None and init == "auto" and not is_operator and N <= _EXACT_START_MAX_N:
            model, start_merit = _best_start(model, report, layout, blocks, Ap, scale,
                                                is_sym, symmetric, torch_dtype, generator,
                                                device, merit)
        try:
            converged = train(
                model, apply_A, apply_At, report, loss=loss,
                transpose_loss=transpose_loss, blockwise=blockwise,
                max_steps=max_steps, n_probes=n_probes, lr=lr, tol=tol,
                patience=patience, eval_every=20, generator=generator, verbose=verbose,
                callback=callback, fast_solve=_fast_solve,
                train_near_field=train_near_field, evaluate=merit,
                initial_value=start_merit)
        except FloatingPointError as exc:
            raise PreconditionerSetupError(
                f"LearnedLU training diverged: {exc}. Try a smaller lr, a smaller "
                f"block_size, or init='block_jacobi'.", report=report) from exc
        report.converged = converged or report.stop_reason == "exact"
        model = model.to("cpu").double()
        report.n_parameters = model.n_parameters()

        # 5. Factor the diagonal blocks once, pack for the compiled apply.
        if factor_dtype == "auto":
            factor_dtype = _auto_factor_dtype(model)
        self = cls(model=model, ordering=tree, scale=scale, report=report,
                   fingerprint=matrix_fingerprint(A_user), pivoting=piv,
                   factor_dtype=factor_dtype)
        report.nbytes = self.nbytes
        self._check_output(generator)
        report.cond_A_hat = self._cond_estimate_hat(generator)
        report.cond_A = _cond_estimate(A)
        _warn_conditioning(report)
        report.fit_time = time.perf_counter() - t_start
        self.setup_time = report.fit_time
        if max_steps > 0 and not report.converged:
            warnings.warn(
                f"LearnedLU stopped at max_steps={max_steps} before its tolerance "
                f"(tol={tol}) was met; the factors are usable but may improve with a "
                f"larger max_steps or lr.", FitConvergenceWarning, stacklevel=3)
        return self

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

        Parameters
        ----------
        path : str or path-like
        A : matrix, optional
            When given, the file must have been fitted to this matrix (same
            size and entries), else :class:`~learned_precond.ModelFileError`.

        Raises
        ------
        ModelFileError
            Corrupt, truncated, unsafe (pickle) or mismatched file.
        """
        return load_learned_lu(cls, path, A=A)

    # -- packing and application ------------------------------------------------
    def _pack_forward(self):
        self._packs, notes = _pack_model(self._model, storage=self.factor_dtype)
        self.report.notes.extend(notes)

    def _transposed_packs(self):
        # Built on first use (rmatvec is rare); the lock keeps concurrent callers
        # from packing twice, and the packs are never mutated afterwards.
        with self._lock:
            if "Ut" not in self._packs:
                M, P = self.layout.n_leaves, self.layout.block_size
                with torch.no_grad():
                    pU = self._model.U.params()
                    TpU = transpose_params(pU)
                    S_inv, _ = _invert_blocks(self._model.diagonal_blocks().double().numpy())
                    self._packs["Ut"] = pack_lower(
                        TpU, M, P, Dinv=np.ascontiguousarray(np.swapaxes(S_inv, 1, 2)))
                    self._packs["Lt"] = pack_lower(transpose_params(self._model.L.params()),
                                                   M, P)
                    for key in ("Ut", "Lt"):
                        self._packs[key].astype(self.factor_dtype)
        return self._packs["Ut"], self._packs["Lt"]

    def _solve_slots(self, Y):
        """``U^-1 L^-1 Y`` in slot numbering, ``Y`` of shape (M, P, k)."""
        return _solve_packed(self._packs, Y)

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
        Z = self._solve_slots(Y).reshape(M * P, -1)
        return self.ordering.from_slots(Z) / self.scale

    def _apply_adjoint_prime(self, X):
        if self._model.symmetric:
            return self._apply_prime(X)
        M, P = self.layout.n_leaves, self.layout.block_size
        Ut, Lt = self._transposed_packs()
        Y = self.ordering.to_slots(X).reshape(M, P, -1)
        # M'^T = L^-T U^-T; U^T = lower(T pU), L^T = rev . lower(T pL) . rev.
        Y = solve_lower(Ut, Y)
        Z = solve_lower(Lt, Y[::-1])[::-1].reshape(M * P, -1)
        return self.ordering.from_slots(Z) / self.scale

    # -- checks ---------------------------------------------------------------
    def _check_output(self, generator):
        z = torch.randn(self.shape[0], 2, generator=generator, dtype=torch.float64).numpy()
        y = self._apply(z)
        if not np.all(np.isfinite(y)):
            raise PreconditionerSetupError(
                "the learned factors produce non-finite output (a diagonal block of U is "
                "numerically singular); try init='block_jacobi', a different ordering, "
                "or static pivoting for matrices with a weak diagonal.",
                report=self.report)

    def _cond_estimate_hat(self, generator, iters=20):
        """Power-iteration estimate of cond(A_hat) = ||A_hat|| ||A_hat^-1|| (2-norm)."""
        model = self._model
        N = self.layout.size
        M, P = self.layout.n_leaves, self.layout.block_size
        x = torch.randn(N, 1, generator=generator, dtype=torch.float64)
        y = x.clone()
        with torch.no_grad():
            big = small = 0.0
            for _ in range(iters):
                x = x / x.norm()
                x = model.product_t(model.product(x))
                big = math.sqrt(float(x.norm()))
                y = y / np.linalg.norm(y.numpy())
                w = self._solve_slots(y.numpy().reshape(M, P, 1)).reshape(N, 1)
                w = _adjoint_solve(self, w)
                small = math.sqrt(float(np.linalg.norm(w)))
                y = torch.from_numpy(np.ascontiguousarray(w))
        return big * small if math.isfinite(big * small) else float("inf")

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
            full = self._model.product(eye).numpy() * self.scale
        pos = self.ordering.positions
        return full[np.ix_(pos, pos)].reshape(n, n)

    # -- reporting ------------------------------------------------------------
    @property
    def nbytes(self):
        """Bytes held by the packed factors used when applying."""
        total = sum(pk.nbytes for key, pk in self._packs.items())
        if self._pivoted:
            total += self.pivoting.nbytes
        return int(total + self.ordering.slots.nbytes + self.ordering.positions.nbytes)

    @property
    def n_parameters(self):
        """Number of learned scalars."""
        return self._model.n_parameters()

    def __repr__(self):
        lay, rep = self.layout, self.report
        rows = [
            ("N", f"{self.shape[0]} (padded {lay.size})"),
            ("block size", lay.block_size),
            ("leaves / levels", f"{lay.n_leaves} / {lay.n_levels}"),
            ("far-field rank", lay.rank if lay.has_far_field else "- (no far field)"),
            ("factorization", "L S L^T (SPD)" if self._model.symmetric else "L U"),
            ("pivoting", self.pivoting.method),
            ("ordering", rep.ordering),
            ("parameters", f"{self.n_parameters} ({self.n_parameters / self.shape[0]:.1f}"
                           f" per unknown)"),
            ("memory", f"{_format_bytes(self.nbytes)} ({self.factor_dtype} factors)"),
            ("init", rep.init),
            ("fit steps", f"{rep.steps} (kept step {rep.best_step}, {rep.stop_reason})"),
            ("||LU-A||_F/||A||_F", f"{rep.relative_error:.3g} (init "
                                   f"{rep.init_relative_error:.3g})"),
            ("fit time", f"{rep.fit_time:.3g} s"),
        ]
        width = max(len(k) for k, _ in rows)
        body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
        return f"LearnedLU\n{body}"


# -- helpers -------------------------------------------------------------------
def _gmres_merit(model, apply_slots, rhs, rtol=1e-8, restart=50, cap=200):
    """GMRES(restart) iterations to a true relative residual ``rtol``, as a float.

    The figure of merit for keeping the best factors: exactly what a Krylov
    user feels. Summed over the columns of ``rhs`` (a rough and a smooth
    right-hand side: a preconditioner can be good on one and bad on the
    other). The fractional part (final residual over target, < 1 when
    converged) breaks ties; an unconverged run scores ``cap`` plus the
    number of decades still missing. The factors are packed as the fitted
    operator would pack them (float32 from N = 16384 when that is safe): the
    evaluations are most of a large fit's time.
    """
    M, P = model.layout.n_leaves, model.layout.block_size
    N = M * P
    try:
        packs, _ = _pack_model(model, check=False, storage=_auto_factor_dtype(model))
    except np.linalg.LinAlgError:
        return math.inf

    def m_apply(v):
        return _solve_packed(packs, v.reshape(M, P, -1)).reshape(v.shape)

    Mop = LinearOperator((N, N), matvec=m_apply, dtype=np.float64)
    Aop = LinearOperator((N, N), matvec=lambda v: apply_slots(v), dtype=np.float64)
    total = 0.0
    for b in rhs.T:
        count = [0]

        def callback(_):
            count[0] += 1

        with np.errstate(all="ignore"):
            x, _ = gmres(Aop, b, M=Mop, restart=restart, maxiter=-(-cap // restart),
                         rtol=rtol, atol=0.0, callback=callback, callback_type="pr_norm")
            res = np.linalg.norm(b - apply_slots(x)) / np.linalg.norm(b)
        if not np.isfinite(res):
            return math.inf
        if res <= rtol:
            total += count[0] + res / rtol
        else:
            total += max(count[0], cap) + math.log10(res / rtol)
    return total


def _merit_rhs(apply_slots, N, generator, sweeps=10):
    """Rough, smooth and constant-solution right-hand sides for the figure of merit.

    The smooth one is ``A x`` for ``x`` a Gaussian vector after ``sweeps``
    Richardson steps ``x <- x - A x / ||A||`` (``||A||`` by power iteration):
    they damp the components of large eigenvalue and keep the smooth ones,
    which a Krylov method resolves last. Needs only products with A.
    """
    z = torch.randn(N, 2, generator=generator, dtype=torch.float64).numpy()
    x = z[:, 1].copy()
    v = z[:, 0].copy()
    for _ in range(10):
        v = apply_slots(v)
        v /= np.linalg.norm(v)
    lam = np.linalg.norm(apply_slots(v))
    for _ in range(sweeps):
        x = x - (apply_slots(x) / lam)
    rough = z[:, 0]
    # The constant solution, the classical test right-hand side: a
    # preconditioner that is poor on it is poor in practice.
    ones = apply_slots(np.ones(N))
    return np.column_stack([rough, apply_slots(x), ones])


def _fast_solve(model, W):
    """``U^-1 L^-1 W`` for a torch ``W`` (N, k), through the compiled kernel."""
    M, P = model.layout.n_leaves, model.layout.block_size
    packs, _ = _pack_model(model, check=False)
    Y = W.detach().double().cpu().numpy().reshape(M, P, -1)
    Z = _solve_packed(packs, Y).reshape(W.shape)
    return torch.from_numpy(np.ascontiguousarray(Z)).to(device=W.device, dtype=W.dtype)


def _pack_model(model, check=True, storage="float64"):
    """Factor U's diagonal blocks once and pack both factors for the kernel.

    ``check=False`` (inside training) skips the per-block condition numbers.
    ``storage='float32'`` stores the packed factors in single precision (the
    kernel still accumulates in double): half the bytes an apply reads.
    """
    packs, notes = _pack_model64(model, check)
    if storage != "float64":
        for pk in packs.values():
            pk.astype(storage)
    return packs, notes


def _auto_factor_dtype(model):
    """``'float32'`` when single precision storage cannot matter, else ``'float64'``.

    Single precision halves the memory traffic of an apply (which is bound by
    it for large N) and perturbs M by about ``1e-7 * cond`` of the diagonal
    blocks relative; it is used from ``_FLOAT32_MIN_N`` unknowns on, when every
    diagonal block has condition number at most ``_FLOAT32_MAX_COND``.
    """
    if model.layout.size < _FLOAT32_MIN_N:
        return "float64"
    with torch.no_grad():
        S = model.diagonal_blocks().double().cpu().numpy()
    conds = np.linalg.cond(S)
    if not np.all(np.isfinite(conds)) or conds.max() > _FLOAT32_MAX_COND:
        return "float64"
    return "float32"


def _pack_model64(model, check):
    M, P = model.layout.n_leaves, model.layout.block_size
    with torch.no_grad():
        S = model.diagonal_blocks().double().cpu().numpy()
        S_inv, notes = _invert_blocks(S) if check else (np.linalg.inv(S), [])
        pL = {k: _to_cpu64(v) for k, v in model.L.params().items()}
        packs = {"L": pack_lower(pL, M, P)}
        if model.symmetric:
            # U = S L^T, so U^-1 = L^-T S^-1 with L^T = rev . lower(T pL) . rev
            # (unit diagonal): a block diagonal product, then a unit solve. An
            # apply reads S^-1 once and L's sparse near field twice (folding S
            # into L^T's rows instead would make its near field dense).
            packs["S_inv"] = PackedBlockDiagonal(S_inv)
            packs["U"] = pack_lower(transpose_params(pL), M, P)
            return packs, notes
        pU = {k: _to_cpu64(v) for k, v in model.U.params().items()}
        # U is stored as a lower block in reversed leaf order.
        packs["U"] = pack_lower(pU, M, P, Dinv=S_inv[::-1].copy())
        return packs, notes


def _to_cpu64(v):
    if v is None:
        return None
    if isinstance(v, list):
        return [t.detach().double().cpu() for t in v]
    return v.detach().double().cpu()


def _solve_packed(packs, Y):
    """``U^-1 L^-1 Y`` with packed factors, ``Y`` (M, P, k) in slot numbering.

    ``U`` is packed as a lower block in reversed leaf order; for ``U = S L^T``
    the pack is ``L^T`` alone and ``S^-1`` is applied first (``_pack_model64``).
    """
    Y = solve_lower(packs["L"], Y)
    if "S_inv" in packs:
        Y = packs["S_inv"].apply(Y)
    return solve_lower(packs["U"], Y[::-1])[::-1]


def _warn_conditioning(report):
    """Warn when A, or the learned L U, is too ill conditioned to trust (seed 002)."""
    cA, cH = report.cond_A, report.cond_A_hat
    if cA > _COND_WARN:  # NaN compares False: no estimate, no warning
        what = "numerically singular" if not math.isfinite(cA) else f"ill conditioned " \
            f"(cond(A) ~ {cA:.2g})"
        warnings.warn(
            f"A is {what}: near the singular set a learned approximate inverse cannot be "
            f"trusted (docs/robustness.md). Check the true residual of your solves; "
            f"consider ExactLU or ILUT, or fix the model that produced A.",
            IllConditionedWarning, stacklevel=4)
    elif cH > _COND_WARN:
        warnings.warn(
            f"the learned factors are ill conditioned (cond(L U) ~ {cH:.2g}"
            + (f", while cond(A) ~ {cA:.2g}" if math.isfinite(cA) else "")
            + "): a diagonal block is nearly singular. Try pivoting='mc64', "
              "init='block_jacobi' or a different block_size.",
            IllConditionedWarning, stacklevel=4)


def _cond_estimate(A):
    """cond_1(A) when a factorization is affordable, else NaN (see report)."""
    from .metrics import condest

    if isinstance(A, LinearOperator):
        return float("nan")
    n = A.shape[0]
    if n > (_COND_MAX_SPARSE if sp.issparse(A) else _COND_MAX_DENSE):
        return float("nan")
    try:
        return float(condest(A))
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return float("inf")


def _bandwidth(A):
    """Largest |i - j| over the nonzeros of A (dense: over entries != 0)."""
    if sp.issparse(A):
        C = sp.coo_array(A)
        return int(np.abs(C.row - C.col).max()) if C.nnz else 0
    i, j = np.nonzero(A)
    return int(np.abs(i - j).max()) if i.size else 0


def _has_rmatvec(A):
    try:
        A.rmatvec(np.zeros(A.shape[0]))
    except (NotImplementedError, TypeError, AttributeError, ValueError):
        return False
    return True


def _padding_rows(tree, Z):
    # The padded operator is the identity on padding slots.
    out = np.zeros_like(Z)
    pad = tree.slots < 0
    out[pad] = Z[pad]
    return out


def _scale_estimate(Ap, apply_raw, N, generator):
    """A scalar of the size of A's entries: the mean |diagonal| or a norm estimate."""
    if Ap is not None:
        d = np.abs(Ap.diagonal())
        if np.any(d > 0):
            return float(np.mean(d[d > 0]))
    z = torch.randn(N, 4, generator=generator, dtype=torch.float64).numpy()
    return float(np.linalg.norm(apply_raw(z)) / np.linalg.norm(z))


def _is_symmetric(A):
    if isinstance(A, LinearOperator):
        return False
    if sp.issparse(A):
        diff = abs(A - A.T)
        return diff.nnz == 0 or diff.max() <= 1e-12 * abs(A).max()
    return bool(np.allclose(A, A.T, rtol=0, atol=1e-12 * np.abs(A).max()))


_FACTOR_DTYPES = ("float64", "float32")
#: ``factor_dtype='auto'`` stores factors in float32 from this many unknowns on...
_FLOAT32_MIN_N = 16384
#: ...when no diagonal block's condition number exceeds this.
_FLOAT32_MAX_COND = 1e4

#: Largest (padded) N for which ``init='auto'`` also tries the compressed exact
#: LU of A (a sparse LU in the tree order, or a dense one for dense A: about
#: 10 s at 8192 on one core).
_EXACT_START_MAX_N = 8192
#: Default far-field ranks with and without the compressed exact start.
_RANK_EXACT_START = 16
_RANK_TRAINED = 8


def _best_start(model, report, layout, blocks, Ap, scale, is_sym, symmetric, dtype,
                generator, device, merit):
    """``init='auto'``: the better of the block tridiagonal and compressed exact starts.

    The block tridiagonal initialization ignores every coupling beyond the
    neighbouring leaf. Where the exact LU of A (without pivoting, in the tree
    order) is affordable, its factors with the far field compressed to the
    GFMM rank are tried too, and the start with the better GMRES figure of
    merit is kept, so this can only help. Returns the start and its merit
    (which training then need not evaluate again).
    """
    first = merit(model)
    teacher = _blocks.exact_block_factors(Ap / scale, layout.n_leaves, layout.block_size)
    if teacher is None:
        report.notes.append("the exact LU without pivoting failed (zero pivot): "
                            "block tridiagonal start")
        return model, first
    candidate, name, notes = _initial_model(layout, blocks, "exact_compressed", is_sym,
                                            symmetric, dtype, generator, teacher=teacher)
    candidate.to(device)
    second = merit(candidate)
    keep = second < first
    report.notes.append(
        f"start: block tridiagonal scored {first:.0f} (GMRES merit), compressed exact "
        f"LU {second:.0f}: {'compressed exact LU' if keep else 'block tridiagonal'} kept")
    if not keep:
        return model, first
    report.init = name
    report.symmetric = candidate.symmetric
    report.notes.extend(notes)
    return candidate, second


def _initial_model(layout, blocks, init, is_sym, symmetric, dtype, generator,
                   teacher=None):
    diag, sub, sup = blocks
    M, P = layout.n_leaves, layout.block_size
    notes = []
    name = init
    if init == "auto":
        name = "block_tridiagonal"
    if name == "exact_compressed":
        S, L_sub, sup = teacher.S, teacher.L_sub, teacher.U_sup
    elif name == "block_tridiagonal":
        S, L_sub, ok = _blocks.block_tridiagonal_lu(diag, sub, sup)
        if not ok:
            notes.append("block tridiagonal LU met a singular Schur complement; "
                         "coupling dropped there")
    elif name == "block_jacobi":
        S, L_sub = diag.copy(), np.zeros_like(sub)
        sup = np.zeros_like(sup)
    else:  # random
        S = np.eye(P)[None].repeat(M, 0) + 0.1 * torch.randn(
            M, P, P, generator=generator, dtype=torch.float64).numpy()
        L_sub = 0.1 * torch.randn(sub.shape, generator=generator, dtype=torch.float64).numpy()
        sup = 0.1 * torch.randn(sup.shape, generator=generator, dtype=torch.float64).numpy()
    if is_sym:
        chol = _block_cholesky(S)
        if chol is None:
            if symmetric is True:
                raise PreconditionerSetupError(
                    "symmetric=True needs a positive definite initialization, but a "
                    "diagonal block of the block LDL^T of A is not positive definite "
                    "(A is indefinite?). Use symmetric=False (then use gmres, not cg).")
            notes.append("A is symmetric but not positive definite in its block "
                         "LDL^T: using the nonsymmetric factorization")
            is_sym = False
    model = LUModel(layout, symmetric=is_sym, dtype=dtype)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    with torch.no_grad():
        if M > 1:
            model.L.E.copy_(t(L_sub))
        if is_sym:
            model.C.copy_(t(chol))
        else:
            model.U.D.copy_(t(S[::-1].copy()))
            if M > 1:
                model.U.E.copy_(t(sup[::-1].copy()))
        model.L.init_far_field(generator)
        if model.U is not None:
            model.U.init_far_field(generator)
    if name == "exact_compressed" and layout.has_far_field:
        _set_far_field(model.L, teacher.far_L(), L_sub)
        if model.U is not None:
            _set_far_field(model.U, teacher.far_U_reversed(), sup[::-1])
        notes.append(f"far field compressed from the exact block factors to rank "
                     f"{layout.rank} (nested bases)")
    return model, name, notes


def _set_far_field(block, F, E):
    """Far field of ``block`` compressed from ``F``; near field ``E`` less its overlap."""
    layout = block.layout
    p = compress_lower(F, layout.n_leaves, layout.block_size, layout.rank)
    block.set_far_field(p)
    with torch.no_grad():
        block.E.copy_(torch.as_tensor(E - p["E_far"], dtype=block.E.dtype))


def _block_cholesky(S):
    try:
        sym = 0.5 * (S + np.swapaxes(S, 1, 2))
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        return None


def _invert_blocks(S):
    """Inverses of the diagonal blocks, regularizing numerically singular ones.

    Returns ``(S_inv, notes)``.
    """
    notes = []
    conds = np.linalg.cond(S)
    bad = ~np.isfinite(conds) | (conds > _MAX_BLOCK_COND)
    if np.any(bad):
        S = S.copy()
        for i in np.flatnonzero(bad):
            norm = np.linalg.norm(S[i], 2)
            norm = norm if norm > 0 else 1.0
            S[i] = S[i] + norm * math.sqrt(1.0 / _MAX_BLOCK_COND) * np.eye(S.shape[1])
        notes.append(f"{int(bad.sum())} diagonal block(s) of U were numerically singular "
                     f"and were shifted to condition <= ~{_MAX_BLOCK_COND:.0e}")
    return np.linalg.inv(S), notes


def _rescale_model(model, factor):
    """Multiply ``U`` (so ``L U``) by ``factor``: a warm start on a rescaled matrix."""
    with torch.no_grad():
        if model.symmetric:
            model.C.mul_(math.sqrt(factor))
            return
        # D, E and the out-bases enter U linearly, each once.
        for p in (model.U.D, model.U.E, model.U.U):
            if p is not None:
                p.mul_(factor)


def _adjoint_solve(self, w):
    M, P = self.layout.n_leaves, self.layout.block_size
    if self._model.symmetric:
        return self._solve_slots(w.reshape(M, P, 1)).reshape(-1, 1)
    Ut, Lt = self._transposed_packs()
    Y = solve_lower(Ut, w.reshape(M, P, 1))
    return solve_lower(Lt, Y[::-1])[::-1].reshape(-1, 1)
