"""Parameter grid and shared machinery of the asv suite.

Grid
----
problem
    Labels of :data:`PROBLEMS`: the 2-D Poisson matrix, 2-D convection-diffusion
    with the recirculating ``'vortex'`` velocity, the 2-D biharmonic,
    variable-coefficient (lognormal) diffusion, the dense RBF kernel, and
    pyamg's ``recirc_flow`` and ``airfoil`` examples.
size
    ``'small'``, ``'medium'``, ``'large'``; :data:`PROBLEMS` maps each label
    to the problem's size parameter ``n`` (grid problems: ``n x n`` grid,
    N = 1024 / 4096 / 16384; RBF kernel: N = 1024 / 2048 / 4096). The two
    pyamg examples have one fixed size (N = 225 and 260) and exist only as
    ``'small'``.
preconditioner
    Every registered name: ``none``, ``jacobi``, ``ilu0``, ``ilut``, ``amg``,
    ``exact``, ``learned_lu``.
method
    ``gmres`` (GMRES(50)), ``cg`` (only for symmetric ``A`` with a symmetric
    positive definite ``M``), ``bicgstab``.

By default the grid is the quick subset (size ``'small'`` only), which keeps
a full ``asv run`` on two cores under 20 minutes; ``LP_BENCH_FULL=1`` in the
environment selects all three sizes, and ``LP_BENCH_PROBLEMS=label,label``
restricts the problems.

Every solve uses ``b = A @ ones(N)``, ``rtol = 1e-8``, ``maxiter = 1000``
(GMRES: total inner iterations) through :func:`learned_precond.krylov.solve`,
whose iteration counts and true residuals mean the same for every method.
``LearnedLU`` is fitted with its default options plus ``seed=0`` and the
problem's grid shape (geometric ordering), once per (problem, size), in
:meth:`LearnedLUCache.setup_cache`.
"""

import functools
import os
import warnings

import numpy as np

# LearnedLU (and so torch) is imported here, not lazily: asv's forkserver
# imports this module once and forks every benchmark process from it, so no
# benchmark pays for importing torch.
from learned_precond import LearnedLU, get_preconditioner, problems
from learned_precond._registry import DEFAULT_NAMES
from learned_precond.exceptions import FitConvergenceWarning, IllConditionedWarning
from learned_precond.krylov import solve

__all__ = [
    "FULL",
    "GRID_PROBLEMS",
    "LEARNED_LU_OPTIONS",
    "MAXITER",
    "METHODS",
    "PRECONDITIONERS",
    "PROBLEMS",
    "RESTART",
    "RTOL",
    "SIZES",
    "LearnedLUCache",
    "build_problem",
    "check_method",
    "fit",
    "fit_learned_lu_models",
    "fit_options",
    "fitted",
    "full_grid_requested",
    "grid",
    "rhs",
    "run_solve",
    "selected_problems",
]


def full_grid_requested(environ=os.environ):
    """True when ``LP_BENCH_FULL`` is set to anything but ``''``, ``'0'`` or ``'false'``."""
    return environ.get("LP_BENCH_FULL", "").strip().lower() not in ("", "0", "false", "no")


#: Whether this run uses the full grid (read once, at import).
FULL = full_grid_requested()

#: label -> (registry name, fixed parameters, {size label: n} or None for a
#: fixed-size matrix, which runs as ``'small'`` only).
PROBLEMS = {
    "laplace_2d": ("laplace_2d", {}, {"small": 32, "medium": 64, "large": 128}),
    "convection_diffusion_2d_vortex": (
        "convection_diffusion_2d",
        {"velocity": "vortex"},
        {"small": 32, "medium": 64, "large": 128},
    ),
    "biharmonic_2d": ("biharmonic_2d", {}, {"small": 32, "medium": 64, "large": 128}),
    "diffusion_2d": ("diffusion_2d", {}, {"small": 32, "medium": 64, "large": 128}),
    "rbf_kernel": ("rbf_kernel", {}, {"small": 1024, "medium": 2048, "large": 4096}),
    "recirc_flow": ("recirc_flow", {}, None),
    "airfoil": ("airfoil", {}, None),
}



def selected_problems(environ=os.environ):
    """Problem labels of the grid: all, or those listed in ``LP_BENCH_PROBLEMS``.

    ``LP_BENCH_PROBLEMS=laplace_2d,airfoil`` restricts a run (``setup_cache``
    included) to those problems.
    """
    listed = [s.strip() for s in environ.get("LP_BENCH_PROBLEMS", "").split(",") if s.strip()]
    unknown = [s for s in listed if s not in PROBLEMS]
    if unknown:
        raise ValueError(
            f"LP_BENCH_PROBLEMS names unknown problem(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(PROBLEMS)}."
        )
    return tuple(listed) if listed else tuple(PROBLEMS)


#: Problem labels in the grid (all unless ``LP_BENCH_PROBLEMS`` is set).
GRID_PROBLEMS = selected_problems()
#: Size labels in the grid: the quick subset unless ``LP_BENCH_FULL=1``.
SIZES = ("small", "medium", "large") if FULL else ("small",)
PRECONDITIONERS = DEFAULT_NAMES
METHODS = ("gmres", "cg", "bicgstab")

RTOL = 1e-8
RESTART = 50
MAXITER = 1000

#: Options passed to ``LearnedLU.fit`` besides ``grid_shape`` (the defaults
#: otherwise: what a user gets from ``LearnedLU.fit(A)``; for a sparse A that
#: is the nested-dissection layout, which ignores ``grid_shape``).
LEARNED_LU_OPTIONS = {"seed": 0}
#: Options of the baselines' ``fit`` (their defaults; AMG gets a seed so its
#: spectral-radius estimates, and hence iteration counts, are reproducible).
BASELINE_OPTIONS = {"amg": {"seed": 0}}


def grid():
    """Return the ``(problem, size)`` pairs of the current grid that exist."""
    pairs = []
    for label in GRID_PROBLEMS:
        sizes = PROBLEMS[label][2]
        pairs += [
            (label, size)
            for size in SIZES
            if (sizes is None and size == "small") or (sizes is not None and size in sizes)
        ]
    return pairs


@functools.lru_cache(maxsize=4)
def build_problem(label, size):
    """Build problem ``label`` at ``size`` (memoized per process).

    Raises
    ------
    NotImplementedError
        For a fixed-size matrix at a size other than ``'small'`` (asv then
        skips the combination).
    """
    name, params, sizes = PROBLEMS[label]
    if sizes is None:
        if size != "small":
            raise NotImplementedError(
                f"{label} is a fixed-size matrix; it runs only as size 'small'."
            )
        return problems.get_problem(name, **params)
    return problems.get_problem(name, n=sizes[size], **params)


def rhs(A):
    """Right-hand side ``A @ ones(N)``: the exact solution is all ones."""
    return np.asarray(A @ np.ones(A.shape[0]))


def fit_options(name, problem):
    """Keyword options of ``fit`` for preconditioner ``name`` on ``problem``."""
    if name == "learned_lu":
        options = dict(LEARNED_LU_OPTIONS)
        if problem.grid_shape is not None and len(problem.grid_shape) > 1:
            options.setdefault("grid_shape", problem.grid_shape)
        return options
    return dict(BASELINE_OPTIONS.get(name, {}))


def fit(name, problem):
    """Fit preconditioner ``name`` on ``problem`` (not memoized: what time_setup times)."""
    with warnings.catch_warnings():
        # A fit stopped at max_steps, or with ill-conditioned factors, is still
        # a preconditioner; the benchmark measures it as it is.
        warnings.simplefilter("ignore", (FitConvergenceWarning, IllConditionedWarning))
        return get_preconditioner(name).fit(problem.A, **fit_options(name, problem))


def _cache_key(label, size):
    return f"{label}/{size}"


def fit_learned_lu_models(pairs=None):
    """Fit ``LearnedLU`` for every ``(problem, size)`` and save it in the current directory.

    The body of :meth:`LearnedLUCache.setup_cache`: asv runs it once, in a
    directory that lives until the last benchmark using it has run, and
    passes the returned dictionary to ``setup``.

    Returns
    -------
    dict
        ``'problem/size'`` -> ``{'path': absolute .npz path}``, or
        ``{'error': message}`` when the fit failed (that combination then
        fails in ``setup`` with the message; the others still run).
    """
    cache = {}
    for label, size in grid() if pairs is None else pairs:
        problem = build_problem(label, size)
        key = _cache_key(label, size)
        try:
            M = fit("learned_lu", problem)
        except Exception as exc:  # noqa: BLE001 - one failed fit must not skip the suite
            cache[key] = {"error": f"LearnedLU.fit failed on {key}: {type(exc).__name__}: {exc}"}
            continue
        path = os.path.abspath(f"learned_lu_{label}_{size}.npz")
        M.save(path)
        cache[key] = {"path": path}
    return cache


@functools.lru_cache(maxsize=2)
def _fitted(name, label, size, path):
    problem = build_problem(label, size)
    if name == "learned_lu":
        return LearnedLU.load(path, A=problem.A)
    return fit(name, problem)


def fitted(name, label, size, cache):
    """Return preconditioner ``name`` fitted on (``label``, ``size``), memoized per process.

    ``LearnedLU`` is loaded from the file :func:`fit_learned_lu_models`
    saved; the baselines are fitted (they are cheap). asv re-runs ``setup``
    before every timing sample, so the memo keeps that cheap.
    """
    path = None
    if name == "learned_lu":
        entry = cache.get(_cache_key(label, size))
        if entry is None:
            raise RuntimeError(
                f"setup_cache has no LearnedLU for {label}/{size}; the grid changed "
                f"between setup_cache and setup (LP_BENCH_FULL set differently?)."
            )
        if "error" in entry:
            raise RuntimeError(entry["error"])
        path = entry["path"]
    return _fitted(name, label, size, path)


def check_method(method, problem, M=None, name=None):
    """Raise NotImplementedError when ``method`` is not valid for ``A`` (and ``M``).

    CG's short recurrence needs a symmetric ``A`` and a symmetric positive
    definite ``M``; GMRES and BiCGStab take any nonsingular pair. Called
    without ``M`` it checks ``A`` only (before paying for a fit).
    """
    if method != "cg":
        return
    if not problem.info.symmetric:
        raise NotImplementedError(f"cg needs a symmetric A; {problem.name} is nonsymmetric.")
    if M is not None and not getattr(M, "symmetric", False):
        raise NotImplementedError(f"cg needs a symmetric positive definite M; {name} is not.")


def run_solve(A, b, M, method):
    """One preconditioned solve with the suite's settings; returns a SolveResult."""
    return solve(A, b, M, method=method, rtol=RTOL, restart=RESTART, maxiter=MAXITER)


class LearnedLUCache:
    """Mixin: fit every ``LearnedLU`` of the grid once, shared by all classes using it.

    asv keys a setup cache by the module and line of ``setup_cache``, so
    every class inheriting this one shares a single cache (one fit per
    problem and size per ``asv run``).
    """

    def setup_cache(self):
        return fit_learned_lu_models()

    # Fitting the whole grid takes minutes (default LearnedLU options).
    setup_cache.timeout = 3600
