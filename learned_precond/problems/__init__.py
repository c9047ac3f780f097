"""Gallery of test matrices, with a name registry for the CLI, tests and benchmarks.

Every generator returns a ``scipy.sparse.csr_array`` (float64, canonical
format), except the kernel matrices, which are dense ``numpy.ndarray``.

Registry
--------
names
    All registered problem names (optionally one ``kind``).
get
    ``get(name, **params)`` -> the matrix.
get_problem
    ``get_problem(name, **params)`` -> :class:`Problem` (matrix, resolved
    parameters, :class:`ProblemInfo`, grid shape).
info
    ``info(name)`` -> :class:`ProblemInfo`: kind, symmetry, definiteness,
    description, default parameters.
grid_shape
    ``grid_shape(name, **params)`` -> grid tuple for structured-grid problems.
load_matrix
    Read any square real Matrix Market file.

Modules
-------
``pde``, ``seed``, ``real``
    The generators of kinds ``'pde'`` and ``'kernel'``, ``'seed'``, ``'real'``.
``hard``
    The hard suite of issue 15: ``hard_suite(scale)`` yields its nine rows
    (:class:`~learned_precond.problems.hard.HardCase`: matrix, fixed
    right-hand side, SPD flag, coordinates), ``hard_case(name, scale=...)``
    builds one. Its two new matrices, ``elasticity_2d`` and
    ``exponential_kernel_2d``, are plain functions, not registry entries:
    their use needs the coordinates a row carries and a registry
    :class:`Problem` does not.
``family``
    :class:`~learned_precond.problems.family.MatrixFamily`: deterministic data
    sets of one PDE family (what the SPAI generator trains on); not in the
    registry, whose entries are single matrices.
``sequences``
    Slowly changing sequences of 50 systems (issue 18), each a
    :class:`~learned_precond.problems.sequences.MatrixSequence` (matrices,
    right-hand sides, solutions): :func:`moving_diffusion_sequence` (backward
    Euler, a conductivity bump that moves; SPD) and :func:`newton_sequence`
    (the Jacobians of Newton's method with load continuation on
    ``-div((1 + u^2) grad u) = s f``; nonsymmetric). Not in the registry
    either: an entry is one matrix.

Kinds
-----
``'seed'``
    The seven matrices of the learned-LU blog post, exactly as its code builds
    them (``seed_*``).
``'pde'``
    Scalable discretizations: ``laplace_1d/2d/3d``, ``convection_diffusion_1d/2d``,
    ``biharmonic_1d/2d``, ``diffusion_2d``, ``anisotropic_2d``.
``'kernel'``
    Dense covariance matrices: ``rbf_kernel``, ``exponential_kernel``.
``'real'``
    Eleven SuiteSparse matrices shipped with the package (``'sherman1'``, ...)
    and six pyamg examples (``'airfoil'``, ``'recirc_flow'``, ...).

Definiteness labels (``ProblemInfo.definite``): ``'spd'`` symmetric positive
definite; ``'snd'`` symmetric negative definite; ``'indefinite'`` symmetric
with eigenvalues of both signs; ``'positive-real'`` nonsymmetric with
``A + A^T`` positive definite (so ``x^T A x > 0``); ``'nonsymmetric'`` no
definiteness is claimed.

Grid order
----------
Grid problems number unknowns in natural (lexicographic) order with **x
fastest**: unknown ``(i, j)`` (``i`` the x index) is row ``i + n*j``, and
``u.reshape(grid_shape)`` is indexed ``[j, i]`` (``[k, j, i]`` in 3-D). 1-D
problems and kernels have ``grid_shape == (n,)``; real matrices whose pattern
shows natural grid order (``gr_30_30``, ``cdde1``, ``sherman1``,
``recirc_flow``, ``unit_cube``) have their grid; all others ``None``.

The size parameter is ``n`` everywhere: the number of unknowns for 1-D
problems and kernels, the number of grid points per side for 2-D and 3-D
ones (matrix size ``n**2`` or ``n**3``).
"""

import difflib
import inspect
import math
import numbers
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from . import family, real  # noqa: F401 - family: problems.family.MatrixFamily
from .hard import (
    HARD_SUITE,
    HardCase,
    elasticity_2d,
    elasticity_2d_coords,
    exponential_kernel_2d,
    hard_case,
    hard_suite,
    kernel_points_2d,
)
from .pde import (
    anisotropic_2d,
    biharmonic_1d,
    biharmonic_2d,
    convection_diffusion_1d,
    convection_diffusion_2d,
    diffusion_2d,
    exponential_kernel,
    helmholtz_2d,
    laplace_1d,
    laplace_2d,
    laplace_3d,
    rbf_kernel,
)
from .real import bundled_matrix_path, load_matrix
from .seed import (
    seed_biharmonic_1d,
    seed_biharmonic_2d,
    seed_convection_diffusion_1d,
    seed_convection_diffusion_2d,
    seed_laplace_1d,
    seed_laplace_2d,
    seed_rbf_kernel,
)
from .sequences import SEQUENCES, MatrixSequence, moving_diffusion_sequence, newton_sequence

__all__ = [
    "DEFINITENESS",
    "HARD_SUITE",
    "HardCase",
    "KINDS",
    "MatrixSequence",
    "Problem",
    "ProblemInfo",
    "SEQUENCES",
    "anisotropic_2d",
    "biharmonic_1d",
    "biharmonic_2d",
    "bundled_matrix_path",
    "convection_diffusion_1d",
    "convection_diffusion_2d",
    "diffusion_2d",
    "elasticity_2d",
    "elasticity_2d_coords",
    "exponential_kernel",
    "exponential_kernel_2d",
    "get",
    "get_problem",
    "grid_shape",
    "hard_case",
    "hard_suite",
    "helmholtz_2d",
    "info",
    "kernel_points_2d",
    "laplace_1d",
    "laplace_2d",
    "laplace_3d",
    "load_matrix",
    "moving_diffusion_sequence",
    "names",
    "newton_sequence",
    "rbf_kernel",
    "seed_biharmonic_1d",
    "seed_biharmonic_2d",
    "seed_convection_diffusion_1d",
    "seed_convection_diffusion_2d",
    "seed_laplace_1d",
    "seed_laplace_2d",
    "seed_rbf_kernel",
]

KINDS = ("seed", "pde", "kernel", "real")
DEFINITENESS = ("spd", "snd", "indefinite", "positive-real", "nonsymmetric")


@dataclass(frozen=True)
class ProblemInfo:
    """What the registry knows about a problem before building it.

    Attributes
    ----------
    name : str
        Registry name.
    kind : {'seed', 'pde', 'kernel', 'real'}
        Family the problem belongs to.
    symmetric : bool
        Whether ``A == A.T`` exactly (at the default parameters).
    definite : {'spd', 'snd', 'indefinite', 'positive-real', 'nonsymmetric'}
        Definiteness at the default parameters (see the module docstring).
    description : str
        One-line description.
    defaults : dict
        Parameter names and default values (empty for real matrices).
    """

    name: str
    kind: str
    symmetric: bool
    definite: str
    description: str
    defaults: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True, eq=False)
class Problem:
    """A built problem: the matrix with the facts needed to use it.

    Attributes
    ----------
    A : scipy.sparse.csr_array or numpy.ndarray
        The matrix (dense only for kernel problems).
    name : str
        Registry name.
    params : dict
        All parameters used, defaults filled in and coerced to their types.
    info : ProblemInfo
        Registry facts (kind, symmetry, definiteness, ...).
    grid_shape : tuple of int or None
        Structured-grid shape in x-fastest natural order, or ``None``.
    """

    A: object
    name: str
    params: dict
    info: ProblemInfo
    grid_shape: tuple | None

    @property
    def shape(self):
        """Shape of ``A``."""
        return self.A.shape

    def __repr__(self):
        fmt = "dense" if isinstance(self.A, np.ndarray) else f"nnz={self.A.nnz}"
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return (
            f"Problem({self.name}({args}): {self.A.shape[0]}x{self.A.shape[1]} {fmt}, "
            f"{self.info.definite}, grid_shape={self.grid_shape})"
        )


@dataclass(frozen=True)
class _Entry:
    build: object
    info: ProblemInfo
    grid: object  # callable(params) -> tuple | None


_REGISTRY = {}


def _grid_1d(p):
    return (p["n"],)


def _grid_2d(p):
    return (p["n"], p["n"])


def _grid_3d(p):
    return (p["n"], p["n"], p["n"])


def _add(func, *, kind, symmetric, definite, grid, name=None, description=None, defaults=None):
    name = name or func.__name__
    if defaults is None:
        defaults = {
            k: v.default
            for k, v in inspect.signature(func).parameters.items()
            if v.default is not inspect.Parameter.empty
        }
    if description is None:
        description = inspect.getdoc(func).splitlines()[0]
    info = ProblemInfo(name, kind, symmetric, definite, description, dict(defaults))
    _REGISTRY[name] = _Entry(func, info, grid if callable(grid) else (lambda p, g=grid: g))


for _kind, _table in [
    ("seed", [
        (seed_laplace_1d, True, "spd", _grid_1d),
        (seed_convection_diffusion_1d, False, "nonsymmetric", _grid_1d),
        (seed_convection_diffusion_2d, False, "positive-real", _grid_2d),
        (seed_biharmonic_1d, True, "spd", _grid_1d),
        (seed_biharmonic_2d, True, "spd", _grid_2d),
        (seed_rbf_kernel, True, "spd", _grid_1d),
        (seed_laplace_2d, True, "spd", _grid_2d),
    ]),
    ("pde", [
        (laplace_1d, True, "spd", _grid_1d),
        (laplace_2d, True, "spd", _grid_2d),
        (laplace_3d, True, "spd", _grid_3d),
        (convection_diffusion_1d, False, "positive-real", _grid_1d),
        (convection_diffusion_2d, False, "positive-real", _grid_2d),
        (biharmonic_1d, True, "spd", _grid_1d),
        (biharmonic_2d, True, "spd", _grid_2d),
        (diffusion_2d, True, "spd", _grid_2d),
        (anisotropic_2d, True, "spd", _grid_2d),
    ]),
    ("kernel", [
        (rbf_kernel, True, "spd", _grid_1d),
        (exponential_kernel, True, "spd", _grid_1d),
    ]),
]:
    for _f, _sym, _def, _grid in _table:
        _add(_f, kind=_kind, symmetric=_sym, definite=_def, grid=_grid)

for _load, _matrices in [(real.load_bundled, real.BUNDLED),
                         (real.load_pyamg_example, real.PYAMG_EXAMPLES)]:
    for _m in _matrices.values():
        _add(partial(_load, _m.name), kind="real", name=_m.name, symmetric=_m.symmetric,
             definite=_m.definite, grid=_m.grid_shape, description=_m.description,
             defaults={})
del _kind, _table, _f, _sym, _def, _grid, _load, _matrices, _m


def names(*, kind=None):
    """Return the registered problem names, in gallery order.

    Parameters
    ----------
    kind : {'seed', 'pde', 'kernel', 'real'}, optional
        Only names of this kind.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from learned_precond import problems
    >>> problems.names(kind="seed")[:2]
    ['seed_laplace_1d', 'seed_convection_diffusion_1d']
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}.")
    return [k for k, e in _REGISTRY.items() if kind is None or e.info.kind == kind]


def _lookup(name):
    if not isinstance(name, str):
        raise TypeError(f"problem name must be a string, got {type(name).__name__}.")
    if name in _REGISTRY:
        return _REGISTRY[name]
    folded = {k.lower(): k for k in _REGISTRY}
    key = name.strip().lower().replace("-", "_")
    if key in folded:
        return _REGISTRY[folded[key]]
    close = difflib.get_close_matches(key, list(folded), n=3)
    hint = f" Did you mean {', '.join(repr(folded[c]) for c in close)}?" if close else ""
    raise ValueError(f"unknown problem {name!r}.{hint} Valid names: {', '.join(_REGISTRY)}.")


def _coerce(problem, key, value, default):
    """Convert ``value`` (possibly a CLI string) to the type of ``default``."""
    what = f"parameter {key!r} of problem {problem!r}"
    if isinstance(value, bool | np.bool_):  # bool is an int subclass; never a valid value here
        kind = (
            "an integer"
            if isinstance(default, numbers.Integral)
            else "a number"
            if isinstance(default, numbers.Real)
            else "a string"
        )
        raise ValueError(f"{what} must be {kind}, got {value!r}.")
    if isinstance(default, numbers.Integral):
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ValueError(f"{what} must be an integer, got {value!r}.") from None
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{what} must be an integer, got {value!r}.")
    if isinstance(default, numbers.Real):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(f"{what} must be a number, got {value!r}.") from None
        if isinstance(value, numbers.Real):
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{what} must be finite, got {value!r}.")
            return value
        raise ValueError(f"{what} must be a number, got {value!r}.")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError(f"{what} must be a string, got {value!r}.")
    return value


def _resolve(entry, params):
    defaults = entry.info.defaults
    unknown = [k for k in params if k not in defaults]
    if unknown:
        valid = ", ".join(defaults) if defaults else "none (it is a fixed matrix)"
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for problem "
            f"{entry.info.name!r}; valid parameters: {valid}."
        )
    resolved = dict(defaults)
    for k, v in params.items():
        resolved[k] = _coerce(entry.info.name, k, v, defaults[k])
    return resolved


def info(name):
    """Return the :class:`ProblemInfo` of problem ``name``.

    Examples
    --------
    >>> from learned_precond import problems
    >>> problems.info("laplace_2d").definite
    'spd'
    """
    entry = _lookup(name)
    # A fresh copy, so a caller editing .defaults cannot change the registry.
    return ProblemInfo(**{**entry.info.__dict__, "defaults": dict(entry.info.defaults)})


def grid_shape(name, **params):
    """Return the structured-grid shape of problem ``name``, or ``None``.

    The shape is in x-fastest natural order: ``u.reshape(shape)`` is indexed
    ``[j, i]`` in 2-D (``i`` the x index) and ``[k, j, i]`` in 3-D.

    Examples
    --------
    >>> from learned_precond import problems
    >>> problems.grid_shape("laplace_2d", n="8")
    (8, 8)
    """
    entry = _lookup(name)
    return entry.grid(_resolve(entry, params))


def get_problem(name, **params):
    """Build problem ``name`` and return it with its parameters and facts.

    Parameters
    ----------
    name : str
        A name from :func:`names` (case-insensitive).
    **params
        Overrides of the problem's defaults (see ``info(name).defaults``).
        Strings are converted to the default's type, so CLI values such as
        ``n="64"`` work.

    Returns
    -------
    Problem

    Raises
    ------
    ValueError
        Unknown name or parameter, or a value that cannot be converted or is
        out of range; the message lists the valid choices.

    Examples
    --------
    >>> from learned_precond import problems
    >>> p = problems.get_problem("convection_diffusion_2d", n="10", velocity="vortex")
    >>> p.A.shape, p.grid_shape, p.params["eps"]
    ((100, 100), (10, 10), 0.01)
    """
    entry = _lookup(name)
    resolved = _resolve(entry, params)
    A = entry.build(**resolved)
    return Problem(A, entry.info.name, resolved, info(entry.info.name), entry.grid(resolved))


def get(name, **params):
    """Build problem ``name`` and return its matrix.

    Same arguments as :func:`get_problem`.

    Returns
    -------
    scipy.sparse.csr_array or numpy.ndarray
        float64; dense only for kernel problems.

    Examples
    --------
    >>> import numpy as np
    >>> from learned_precond import problems
    >>> A = problems.get("laplace_1d", n=5)
    >>> A.toarray()[1]
    array([-1.,  2., -1.,  0.,  0.])
    >>> bool(np.all(problems.get("sherman1").diagonal() < 0))
    True
    """
    return get_problem(name, **params).A
