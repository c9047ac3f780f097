"""Stage 0, options: every option of ``LearnedLU.fit``, with its default, validated once.

:class:`FitOptions` is the one place where an option is named, given its
default and checked; ``LearnedLU.fit(A, **options)`` takes its signature and
its parameter documentation from it. Every check runs before any work and
raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (wrong value)
that names the option and says how to fix it. :meth:`FitOptions.check_matrix`
adds the checks that need ``A`` (size of a warm start, symmetry, what a
LinearOperator allows).
"""

import difflib
import inspect
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from .._structure import asymmetry, is_symmetric
from ..pivoting import PIVOTING_METHODS
from .initialize import INITS
from .pack import FACTOR_DTYPES, LUFactors
from .train import LOSSES

__all__ = ["FitOptions", "ORDERINGS", "DEFAULT_LR"]

ORDERINGS = ("auto", "natural", "geometric", "zorder", "bisection")
#: Adam's learning rate when ``lr=None``.
DEFAULT_LR = 5e-3
#: Training precisions (``dtype=``); float16/bfloat16 are refused (see below).
TRAINING_DTYPES = (torch.float64, torch.float32)
#: ``seed`` must be an integer in ``[0, SEED_LIMIT)`` (torch's generator range).
SEED_LIMIT = 2**64


@dataclass(frozen=True)
class FitOptions:
    """The options of :meth:`LearnedLU.fit <learned_precond.lu.LearnedLU.fit>`.

    Parameters
    ----------
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
        when ``A`` is symmetric and its initialization is positive definite;
        ``True`` on a nonsymmetric ``A`` is an error.
    loss : {'probe', 'preconditioned', 'adaptive', 'quality', 'identity'}
        Training loss (see :mod:`learned_precond.lu.train`).
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
        scaled to unit diagonal, so this is a relative step). Finite, > 0.
    tol : float
        Stop when the kept GMRES figure of merit (evaluated every 20 steps)
        improved by less than ``tol`` relatively for ``patience``
        evaluations in a row. Finite, >= 0.
    patience : int, optional
        Default: 3, or 1 for a warm start (its starting point is already a
        fitted model, so one evaluation without progress ends it).
    init : {'auto', 'hierarchical', 'gfmm', 'block_tridiagonal', 'block_jacobi', \
'exact_compressed', 'random', 'hodlr'} or LearnedLU
        Layout and starting point. ``'auto'`` (default): ``'hierarchical'``
        for a sparse ``A`` given by its entries (at most 5% nonzeros) when no
        GFMM-only option (``ordering``, ``loss``, ``transpose_loss``,
        ``blockwise``, ``lr``, ``train_near_field``, ``dtype``, a CUDA
        ``device``) is given, else ``'gfmm'``
        (``coords``/``grid_shape`` are then ignored: the nested layout
        orders by A's graph).
        ``'hierarchical'``: the nested-dissection layout
        (:mod:`learned_precond.lu.nested_fit`), a compressed multifrontal LU
        (Cholesky for SPD A) whose fill is truncated to ``rank_tol`` as it
        is formed, then trained on the slow modes of the Krylov solver
        (:mod:`learned_precond.lu.refine`; ``max_steps`` bounds the
        refactorizations at 3, 0 keeps the start). ``'hodlr'``: the dense
        layout (:mod:`learned_precond.lu.dense`), HODLR factors of a dense
        ``A`` ordered by ``coords`` (also ``'auto'``'s choice for a dense
        ``A`` of >= 2048 unknowns with ``coords``). The other values use
        the GFMM layout, trained by Adam
        (:mod:`learned_precond.lu.initialize`).
        ``'block_tridiagonal'``: the exact block LU of ``A``'s block
        tridiagonal part in the chosen ordering (far field zero).
        ``'exact_compressed'``: the exact LU of ``A`` in the chosen ordering
        (no pivoting; small N only) with the far field of both factors
        compressed to ``rank``. ``'gfmm'``: both where the exact LU is
        affordable (N <= 8192, A not a LinearOperator, and enough of
        ``time_budget`` left), keeping the one with fewer GMRES iterations;
        ``'block_tridiagonal'`` beyond. A fitted ``LearnedLU`` for a matrix
        of the same size warm-starts from it in its own layout (the GFMM
        factors, ordering and pivoting; or the nested tree and training
        probes).
    seed : int, optional
        Makes the fit deterministic; an integer in ``[0, 2**64)``.
    device : str or torch.device
        Where training runs (``'cpu'``, ``'cuda'``, ``'cuda:1'``); applying is
        on the CPU. A CUDA device must be available.
    dtype : torch.dtype, optional
        Training precision: ``torch.float64`` (default) or ``torch.float32``.
        Half precision is refused (Adam's moments and the block solves of
        the figure of merit need more than 3 digits); to store the fitted
        factors in single precision use ``factor_dtype='float32'``.
    coords, grid_shape : optional
        Geometry for the ``'geometric'`` ordering: ``coords`` of shape
        ``(N, d)``, or ``grid_shape=(nx, ny[, nz])`` with product ``N``.
    verbose : bool
        Log progress (``logging`` at INFO level, logger ``learned_precond.lu``).
    progress : bool
        Print one line per stage of the fit to standard error (off by
        default): the stage (pivot, order, start, each training pass, done),
        the seconds since the fit began, and what the stage found, so that a
        long fit shows where it is.
    callback : callable, optional
        ``callback(step, info)`` at each evaluation; ``info`` has ``loss``,
        ``val`` and ``best_val``.
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
        from N = 16384 on when that cannot matter, float64 otherwise: in the
        GFMM layout when every diagonal block has condition number <= 1e4,
        in the nested layout when float32 moves ``A M x`` by at most 2e-5
        (relative) on a random ``x`` (``report.notes`` says which and why).
    time_budget : float, optional
        Seconds the whole fit may take (:mod:`learned_precond.lu.budget`):
        the fit returns the best operator found within it (the start, if
        nothing better), and ``report.stop_reason``/``report.cut_short`` say
        what was cut short. Default None: only training is limited, to
        ``max(30 s, 10 x`` the seconds the start took``)``
        (``report.train_limit``). ``math.inf``: no limit at all.
    rank_tol : float
        Nested and dense layouts (dense: each off-diagonal block keeps the
        singular values above ``rank_tol`` times its largest, tightened by
        10x where the SPD test needs it). Nested: each coupling of a node to its
        ancestors' separators keeps the singular values above ``rank_tol``
        times its largest (capped by ``rank`` when given). Smaller: more
        memory and setup, fewer iterations; 0 is an exact multifrontal LU.
    solves : float
        Nested and dense layouts: how many solves the preconditioner is
        expected to serve (default 1, as in ``gmres(A, b, M=LearnedLU.fit(A))``).
        A training pass is tried only when, even at its best, it would save
        more solve time over that many solves than it costs; otherwise the
        start is returned and ``report.stop_reason`` says so. Raise it (e.g.
        ``solves=100``, or ``math.inf``: wherever the iterations can drop)
        when the same ``M`` will serve many right-hand sides. Real, >= 1.
    """

    block_size: int = 32
    rank: int | None = None
    ordering: str = "auto"
    symmetric: Any = "auto"
    loss: str = "probe"
    transpose_loss: bool = False
    blockwise: bool = False
    max_steps: int = 200
    n_probes: int = 16
    lr: float | None = None
    tol: float = 1e-3
    patience: int | None = None
    init: Any = "auto"
    seed: int | None = None
    device: Any = "cpu"
    dtype: Any = None
    coords: Any = None
    grid_shape: Any = None
    verbose: bool = False
    callback: Any = None
    train_near_field: bool = True
    pivoting: str = "auto"
    factor_dtype: str = "auto"
    time_budget: float | None = None
    rank_tol: float = 1e-2
    progress: bool = False
    solves: float = 1

    def __post_init__(self):
        put = object.__setattr__.__get__(self)  # frozen: normalize values once, here
        put("block_size", _integer(self.block_size, "block_size", minimum=1))
        if self.rank is not None:
            put("rank", _integer(self.rank, "rank", minimum=1))
            if self.rank > self.block_size:
                raise ValueError(
                    f"rank={self.rank} exceeds block_size={self.block_size}; the far-field "
                    f"couplings of a {self.block_size}-block cannot have higher rank. "
                    f"Lower rank or raise block_size.")
        _choice(self.ordering, "ordering", ORDERINGS, word="ordering")
        if not (isinstance(self.symmetric, str) and self.symmetric == "auto"):
            if not isinstance(self.symmetric, (bool, np.bool_)):
                raise ValueError(
                    f"symmetric must be 'auto', True or False, got {self.symmetric!r}.")
            put("symmetric", bool(self.symmetric))
        _choice(self.loss, "loss", LOSSES, word="loss")
        for name in ("transpose_loss", "blockwise", "verbose", "train_near_field",
                     "progress"):
            put(name, _flag(getattr(self, name), name))
        put("max_steps", _integer(self.max_steps, "max_steps", minimum=0))
        put("n_probes", _integer(self.n_probes, "n_probes", minimum=1))
        if self.lr is not None:
            put("lr", _real(self.lr, "lr", positive=True,
                            fix=f"the default (lr=None) is {DEFAULT_LR}"))
        put("tol", _real(self.tol, "tol", positive=False, fix="e.g. tol=1e-3, or 0 to "
                         "train for max_steps"))
        if self.patience is not None:
            put("patience", _integer(self.patience, "patience", minimum=1))
        if self.warm_start is None and self.nested_warm_start is None:
            if not isinstance(self.init, str) and hasattr(self.init, "factors"):
                raise ValueError(
                    f"init is a fitted {type(self.init).__name__}, which cannot warm-start "
                    f"a fit (only the GFMM and nested layouts can); fit afresh.")
            _choice(self.init, "init", INITS, word="init",
                    extra=" or pass a fitted LearnedLU to warm-start")
        if self.seed is not None:
            put("seed", _seed(self.seed))
        put("device", _device(self.device))
        put("dtype", _training_dtype(self.dtype))
        if self.grid_shape is not None:
            put("grid_shape", _grid_shape(self.grid_shape))
        if self.callback is not None and not callable(self.callback):
            raise TypeError(
                f"callback must be callable as callback(step, info), got "
                f"{type(self.callback).__name__}.")
        _choice(self.pivoting, "pivoting", PIVOTING_METHODS, word="pivoting")
        if not isinstance(self.factor_dtype, str) or \
                self.factor_dtype not in ("auto", *FACTOR_DTYPES):
            raise ValueError(
                f"factor_dtype must be 'auto', 'float64' or 'float32' (a string), got "
                f"{self.factor_dtype!r}.")
        put("rank_tol", _real(self.rank_tol, "rank_tol", positive=False,
                              fix="e.g. rank_tol=1e-2 (0: exact couplings)"))
        solves = _real(self.solves, "solves", positive=True, finite=False,
                       fix="e.g. solves=1 (one right-hand side) or solves=100")
        if not solves >= 1:
            raise ValueError(f"solves must be >= 1 (the solves M will serve), got {solves!r}.")
        put("solves", solves)
        if self.time_budget is not None:
            budget = _real(self.time_budget, "time_budget", positive=True, finite=False,
                           fix="give seconds, e.g. time_budget=60, or None for the "
                               "default limit")
            put("time_budget", budget)

    # -- construction --------------------------------------------------------------
    @classmethod
    def from_kwargs(cls, options):
        """``FitOptions(**options)`` with a helpful error for a misspelt option name."""
        names = [f.name for f in fields(cls)]
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise TypeError(
                    f"LearnedLU.fit got an unknown option {key!r}; {hint}the options are: "
                    f"{', '.join(names)}.")
        return cls(**options)

    @classmethod
    def signature(cls, *leading):
        """An :class:`inspect.Signature` with ``leading`` parameters, then every option.

        The options are keyword-only, with the defaults written in this class.
        """
        params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for name in leading]
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
                   for f in fields(cls)]
        return inspect.Signature(params)

    # -- resolved values -------------------------------------------------------------
    @property
    def warm_start(self):
        """The fitted LearnedLU given as ``init`` (what holds ``LUFactors``), or None."""
        return self.init if isinstance(getattr(self.init, "factors", None), LUFactors) \
            else None

    @property
    def nested_warm_start(self):
        """The fitted nested-layout LearnedLU given as ``init`` (it has a ``tree``), or None."""
        return self.init if (getattr(self.init, "tree", None) is not None
                             and hasattr(self.init, "factors")) else None

    @property
    def learning_rate(self):
        """``lr``, or its default."""
        return DEFAULT_LR if self.lr is None else self.lr

    @property
    def patience_evaluations(self):
        """``patience``, or its default (1 for a warm start, else 3)."""
        if self.patience is not None:
            return self.patience
        return 1 if self.warm_start is not None else 3

    @property
    def training_dtype(self):
        """The torch dtype training runs in."""
        return torch.float64 if self.dtype is None else self.dtype

    def to_json(self):
        """The options as JSON values (for saved files and reports).

        A warm start's ``init`` becomes ``'warm_start'``, ``coords`` and
        ``callback`` only whether they were given.
        """
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "init" and not isinstance(value, str):
                value = "warm_start"
            elif f.name in ("coords", "callback"):
                value = value is not None
            elif f.name in ("device", "dtype"):
                value = None if value is None else str(value)
            elif f.name == "grid_shape" and value is not None:
                value = list(value)
            out[f.name] = value
        return out

    # -- checks against A ----------------------------------------------------------------
    def check_matrix(self, A):
        """The checks that need ``A`` (validated by ``as_matrix``); returns whether A is symmetric.

        Raises before any work: a warm start for a matrix of another size,
        ``symmetric=True`` on a nonsymmetric ``A``, options a LinearOperator
        cannot honour (pivoting, orderings that need the graph, the
        transpose loss without ``rmatvec``), and ``coords``/``grid_shape``
        that do not match ``A``'s size.

        Returns
        -------
        bool
            True when the symmetric factorization is to be tried: ``A`` is
            symmetric and ``symmetric`` is ``'auto'`` or True.
        """
        n = A.shape[0]
        is_operator = isinstance(A, LinearOperator)
        warm = self.warm_start if self.warm_start is not None else self.nested_warm_start
        if warm is not None and warm.shape != A.shape:
            raise ValueError(
                f"init is a LearnedLU for a {warm.shape[0]}x{warm.shape[0]} matrix but A "
                f"is {n}x{n}; warm starts need a matrix of the same size.")
        if is_operator:
            if self.transpose_loss and not _has_rmatvec(A):
                raise ValueError(
                    "transpose_loss=True needs A^T products, but this LinearOperator has "
                    "no rmatvec; define rmatvec or pass transpose_loss=False.")
            if self.pivoting not in ("auto", "none"):
                raise ValueError(
                    f"pivoting={self.pivoting!r} needs the matrix entries; a "
                    f"LinearOperator supports pivoting='none' only.")
            if warm is None and self.ordering not in ("auto", "natural"):
                raise ValueError(
                    f"ordering={self.ordering!r} needs the matrix graph; a LinearOperator "
                    f"supports ordering='natural' only.")
        if self.grid_shape is not None and math.prod(self.grid_shape) != n:
            raise ValueError(
                f"grid_shape={self.grid_shape} has {math.prod(self.grid_shape)} points but "
                f"A has {n} rows; pass the grid A was assembled on.")
        if self.coords is not None:
            coords = np.asarray(self.coords)
            if coords.ndim != 2 or coords.shape[0] != n or coords.dtype == object:
                raise ValueError(
                    f"coords must be an array of shape ({n}, d) (one point per unknown), "
                    f"got shape {coords.shape}.")
            if not np.issubdtype(coords.dtype, np.number) or \
                    not np.all(np.isfinite(coords)):
                raise ValueError("coords must be finite numbers.")
        if self.symmetric == "auto":
            return _is_symmetric(A)
        if self.symmetric is True:
            if is_operator:
                # products are not exact: single-precision operators are
                # symmetric to ~1e-7 only
                tol = max(_SYMMETRY_RTOL, 1e3 * float(np.finfo(np.dtype(A.dtype)).eps))
                symmetric, gap = _operator_asymmetry(A) <= tol, "x^T A y != y^T A x"
            else:
                symmetric, gap = _is_symmetric(A), f"max |a_ij - a_ji| = {asymmetry(A):.3g}"
            if not symmetric:
                raise ValueError(
                    f"symmetric=True but A is not symmetric ({gap}); the factorization "
                    f"U = S L^T can only fit a symmetric A. Pass symmetric='auto' or False "
                    f"(and use gmres or bicgstab, not cg).")
            return True
        return False


#: Relative asymmetry ``max|A - A^T| / max|A|`` below which A counts as symmetric.
_SYMMETRY_RTOL = 1e-12


def _is_symmetric(A):
    if isinstance(A, LinearOperator):
        return False
    return is_symmetric(A, rtol=_SYMMETRY_RTOL)


def _operator_asymmetry(A):
    """``|x^T A y - y^T A x|`` relative to ``|A x| |y| + |A y| |x|`` on two random vectors."""
    X = np.random.default_rng(0).standard_normal((A.shape[0], 2))
    AX = np.asarray(A @ X)
    gap = abs(X[:, 1] @ AX[:, 0] - X[:, 0] @ AX[:, 1])
    size = (np.linalg.norm(AX[:, 0]) * np.linalg.norm(X[:, 1])
            + np.linalg.norm(AX[:, 1]) * np.linalg.norm(X[:, 0]))
    return 0.0 if size == 0 else float(gap / size)


def _has_rmatvec(A):
    try:
        A.rmatvec(np.zeros(A.shape[0]))
    except (NotImplementedError, TypeError, AttributeError, ValueError):
        return False
    return True


# -- value checks --------------------------------------------------------------------------
def _integer(value, name, *, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _real(value, name, *, positive, finite=True, fix):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}; {fix}.")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}; {fix}.")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive, got {value}; {fix}.")
    if not positive and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}; {fix}.")
    return value


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def _choice(value, name, choices, *, word, extra=""):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"unknown {word} {value!r}; choose from {', '.join(choices)}{extra}.")


def _seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an integer (or None for a random fit), got {seed!r}; pass "
            f"e.g. seed=0.")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(
            f"seed must be an integer in [0, 2**64), got {seed}; pass e.g. "
            f"seed={int(seed) % 2**32}.")
    return int(seed)


def _device(device):
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:<k>' (or a torch.device), got "
            f"{device!r} ({exc}).") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}, but torch.cuda.is_available() is False (this torch "
                f"build has no CUDA support, or no GPU is visible); pass device='cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}, but only {torch.cuda.device_count()} CUDA device(s) "
                f"are visible; pass device='cuda:0' or 'cpu'.")
    elif dev.type != "cpu":
        raise ValueError(
            f"device={device!r} is not supported; training runs on 'cpu' or 'cuda'.")
    return dev


def _training_dtype(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str) or (isinstance(dtype, type) and issubclass(dtype, np.generic)) \
            or isinstance(dtype, np.dtype):
        raise TypeError(
            f"dtype must be a torch dtype, got {dtype!r}; pass dtype=torch.float64 "
            f"(the default) or dtype=torch.float32. (For single precision storage of "
            f"the fitted factors use factor_dtype='float32'.)")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(
            f"dtype must be torch.float64 or torch.float32, got {dtype!r}.")
    if dtype in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"dtype={dtype} is not supported for training: Adam's updates and the "
            f"block solves of the figure of merit need more than half precision's 3 "
            f"digits. Pass dtype=torch.float32 (or the default float64); to store the "
            f"fitted factors in single precision use factor_dtype='float32'.")
    if dtype not in TRAINING_DTYPES:
        raise ValueError(
            f"dtype must be torch.float64 or torch.float32, got {dtype}.")
    return dtype


def _grid_shape(grid_shape):
    try:
        shape = tuple(grid_shape)
    except TypeError:
        raise TypeError(
            f"grid_shape must be a tuple (nx, ny) or (nx, ny, nz), got "
            f"{grid_shape!r}.") from None
    if len(shape) not in (2, 3):
        raise ValueError(
            f"grid_shape must have 2 or 3 entries, got {grid_shape!r}.")
    return tuple(_integer(s, "grid_shape entries", minimum=1) for s in shape)
