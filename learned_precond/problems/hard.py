r"""The hard suite of issue 15: nine generated problems at N ~ 65536, and their two new matrices.

:func:`hard_suite` yields the nine rows (:data:`HARD_SUITE`), each a
:class:`HardCase` with its matrix, a fixed right-hand side, the SPD flag and
the coordinates of the unknowns; :func:`hard_case` builds one row by name.
``scale`` multiplies the number of unknowns (``scale=1``: 2-D rows at
256 x 256, the 3-D row at 64^3, elasticity at 65160 unknowns, the kernel at
16384 points; ``scale=1/16``: about 4096 each, the kernel 1024), so tests
and quick benchmark runs build the same problems small.

The two matrices that the rest of the gallery lacks live here too (both
registered in :mod:`learned_precond.problems`):

- :func:`elasticity_2d`: plane-strain linear elasticity, bilinear (Q1)
  elements, clamped on the left edge, the two displacement components of a
  node interleaved; SPD.
- :func:`exponential_kernel_2d`: the dense exponential (Matern-1/2)
  covariance :math:`\exp(-|x - y| / \ell)` on seeded random points of the
  unit square (:func:`kernel_points_2d` returns the points); SPD.

Right-hand sides (``HardCase.b``), fixed and never random: a unit load,
``b = ones(N)`` (the unscaled discretizations already carry the factor
``h^2``, or ``h^4``, that a physical source would; rtol is relative, so the
constant does not matter), except elasticity, whose load is a uniform body
force pointing down (``b[0::2] = 0``, ``b[1::2] = -1``).
"""

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._structure import canonical_csr
from .._validation import check_positive_int
from ._build import check_float
from .pde import anisotropic_2d, biharmonic_2d, convection_diffusion_2d, diffusion_2d, \
    laplace_2d, laplace_3d

__all__ = [
    "HARD_SUITE",
    "HardCase",
    "elasticity_2d",
    "elasticity_2d_coords",
    "exponential_kernel_2d",
    "hard_case",
    "hard_suite",
    "kernel_points_2d",
]


# -- 2-D linear elasticity ------------------------------------------------------


def _q1_element_stiffness(E, nu):
    r"""8 x 8 plane-strain stiffness of one square bilinear element (any side length).

    :math:`K_e = \int B^T D B\,dA` by 2 x 2 Gauss quadrature on the reference
    square; with side h, :math:`B \propto 1/h` and :math:`dA \propto h^2`, so
    K_e does not depend on h. Local nodes (0,0), (1,0), (1,1), (0,1); dofs
    ``[u0x, u0y, u1x, u1y, ...]``.
    """
    lam = E / ((1.0 + nu) * (1.0 - 2.0 * nu))
    D = lam * np.array([[1.0 - nu, nu, 0.0], [nu, 1.0 - nu, 0.0], [0.0, 0.0, (1.0 - 2.0 * nu) / 2]])
    xi_n = np.array([-1.0, 1.0, 1.0, -1.0])
    eta_n = np.array([-1.0, -1.0, 1.0, 1.0])
    g = 1.0 / math.sqrt(3.0)
    K = np.zeros((8, 8))
    for xi in (-g, g):
        for eta in (-g, g):
            # Derivatives in the reference square; on a side-h square d/dx = (2/h) d/dxi
            # and dA = (h/2)^2 dxi deta, so with h = 2 both factors are 1.
            dx = xi_n * (1.0 + eta * eta_n) / 4.0
            dy = eta_n * (1.0 + xi * xi_n) / 4.0
            B = np.zeros((3, 8))
            B[0, 0::2] = dx
            B[1, 1::2] = dy
            B[2, 0::2] = dy
            B[2, 1::2] = dx
            K += B.T @ D @ B
    return (K + K.T) / 2.0  # exactly symmetric, so the assembled A == A.T bit for bit


def _q1_stiffness(n, E, nu):
    """Global stiffness of the n x n element mesh of the unit square, no boundary condition.

    Nodes (i, j), i the x index, numbered ``i + (n+1) j``; dof ``2 node + c``.
    Singular: the three rigid motions span its null space.
    """
    K_e = _q1_element_stiffness(E, nu)
    ei, ej = np.meshgrid(np.arange(n), np.arange(n))  # element (ei, ej), lower-left node
    base = (ei + (n + 1) * ej).ravel()
    nodes = np.stack([base, base + 1, base + n + 2, base + n + 1], axis=1)  # local order
    dofs = np.empty((nodes.shape[0], 8), dtype=np.int64)
    dofs[:, 0::2] = 2 * nodes
    dofs[:, 1::2] = 2 * nodes + 1
    rows = np.repeat(dofs, 8, axis=1).ravel()
    cols = np.tile(dofs, (1, 8)).ravel()
    vals = np.tile(K_e.ravel(), nodes.shape[0])
    size = 2 * (n + 1) ** 2
    return sp.coo_array((vals, (rows, cols)), shape=(size, size)).tocsr()


def _clamped_dofs(n):
    """Indices of the dofs that remain when the nodes on x = 0 are clamped, in order."""
    node = np.arange((n + 1) ** 2)
    free = node[node % (n + 1) != 0]
    return np.stack([2 * free, 2 * free + 1], axis=1).ravel()


def elasticity_2d(n=180, *, E=1.0, nu=0.3):
    r"""2-D plane-strain linear elasticity on the unit square, Q1 elements, clamped at x = 0.

    An n x n mesh of square bilinear elements, 2 x 2 Gauss quadrature,
    Young's modulus E and Poisson ratio nu (Lame form of the plane-strain
    constitutive matrix). The nodes on the left edge are clamped (their
    dofs removed), the other edges are traction free. Unknowns: the free
    nodes in x-fastest order (i = 1..n, j = 0..n), the x and y displacement
    of a node interleaved, so N = 2 n (n + 1) (65160 for n = 180). SPD: the
    clamp removes the three rigid motions, the null space of the free
    operator. Unscaled (the element stiffness of a square does not depend on
    its size). Nodal coordinates: :func:`elasticity_2d_coords`.

    Parameters
    ----------
    n : int
        Elements per side (>= 1).
    E : float
        Young's modulus (> 0).
    nu : float
        Poisson ratio, 0 <= nu < 1/2 (1/2 is incompressible: no plane-strain stiffness).

    Returns
    -------
    scipy.sparse.csr_array

    Examples
    --------
    >>> A = elasticity_2d(2)
    >>> A.shape, bool(abs(A - A.T).max() < 1e-12)
    ((12, 12), True)
    """
    n = check_positive_int(n, "n")
    E = check_float(E, "E", positive=True)
    nu = check_float(nu, "nu", nonnegative=True)
    if nu >= 0.5:
        raise ValueError(f"nu must satisfy 0 <= nu < 0.5 (plane strain), got {nu}.")
    keep = _clamped_dofs(n)
    K = _q1_stiffness(n, E, nu)
    return canonical_csr(K[keep][:, keep])


def elasticity_2d_coords(n=180):
    """Coordinates of the unknowns of :func:`elasticity_2d` (n): shape (2 n (n+1), 2).

    Both dofs of a node get the node's (x, y), in the matrix's order.
    """
    n = check_positive_int(n, "n")
    node = np.arange((n + 1) ** 2)
    free = node[node % (n + 1) != 0]
    xy = np.stack([(free % (n + 1)) / n, (free // (n + 1)) / n], axis=1)
    return np.repeat(xy, 2, axis=0)


# -- dense exponential kernel in 2-D -----------------------------------------------


def kernel_points_2d(n=16384, *, seed=0):
    """The n points of :func:`exponential_kernel_2d`: uniform on the unit square, seeded.

    Returns
    -------
    numpy.ndarray, shape (n, 2)
    """
    n = check_positive_int(n, "n")
    seed = check_positive_int(seed, "seed", minimum=0)
    return np.random.default_rng(seed).random((n, 2))


def exponential_kernel_2d(n=16384, *, length_scale=0.1, seed=0):
    r"""Dense exponential covariance :math:`A_{ij} = \exp(-|x_i - x_j| / \ell)` on 2-D points.

    The points are :func:`kernel_points_2d` (n, seed): uniform random on the
    unit square, so no grid orders them; pass them as ``coords``. The
    exponential (Matern-1/2) kernel is positive definite in every dimension,
    so A is SPD; close pairs of points make it ill conditioned (cond ~ 1e5
    at n = 4096, l = 0.1), and its off-diagonal blocks between separated
    clusters are numerically low rank. n = 16384 is 2 GiB of float64.

    Parameters
    ----------
    n : int
        Number of points (matrix size).
    length_scale : float
        :math:`\ell` (> 0).
    seed : int
        Seed of the points.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> A = exponential_kernel_2d(50)
    >>> A.shape, float(A[3, 3]), bool(np.linalg.eigvalsh(A)[0] > 0)
    ((50, 50), 1.0, True)
    """
    from scipy.spatial.distance import cdist

    length_scale = check_float(length_scale, "length_scale", positive=True)
    X = kernel_points_2d(n, seed=seed)
    A = cdist(X, X)
    A *= -1.0 / length_scale
    np.exp(A, out=A)  # in place: one N x N array at the peak
    return A


# -- the suite ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HardCase:
    """One row of the hard suite.

    Attributes
    ----------
    name : str
        Row name (one of :data:`HARD_SUITE`).
    A : scipy.sparse.csr_array or numpy.ndarray
        The matrix (dense for the kernel row).
    b : numpy.ndarray
        The fixed right-hand side (see the module docstring).
    spd : bool
        A is symmetric positive definite (CG applies).
    symmetric : bool
        A == A.T exactly.
    coords : numpy.ndarray or None
        Coordinates of the unknowns, shape (N, d).
    grid_shape : tuple of int or None
        Structured grid in x-fastest order, for the scalar grid rows.
    problem : str
        Registry name of the generator.
    params : dict
        Its parameters.
    description : str
        One line for tables.
    """

    name: str
    A: object
    b: np.ndarray
    spd: bool
    symmetric: bool
    coords: np.ndarray | None
    grid_shape: tuple | None
    problem: str
    params: dict
    description: str

    @property
    def N(self):
        """Number of unknowns."""
        return self.A.shape[0]

    def __repr__(self):
        fmt = "dense" if isinstance(self.A, np.ndarray) else f"nnz={self.A.nnz}"
        return f"HardCase({self.name}: N={self.N} {fmt}, spd={self.spd}, {self.problem})"


def _grid_coords(shape):
    """x-fastest grid coordinates in [0, 1]^d of a grid of ``shape`` (nx, ny[, nz])."""
    axes = [np.arange(1, s + 1) / (s + 1) for s in shape]
    mesh = np.meshgrid(*axes[::-1], indexing="ij")  # slowest axis first
    return np.stack([m.ravel() for m in mesh[::-1]], axis=1)


def _side(full, dim, scale, minimum=2):
    return max(minimum, int(round(full * scale ** (1.0 / dim))))


def _elasticity_n(scale):
    """Elements per side with 2 n (n + 1) closest to 65160 * scale."""
    target = 2 * 180 * 181 * scale
    return max(1, int(round((math.sqrt(1.0 + 2.0 * target) - 1.0) / 2.0)))


#: (row name, generator, SPD, description, parameters from scale)
_ROWS = (
    ("poisson_2d", laplace_2d, True, "2-D Poisson, 5-point",
     lambda s: {"n": _side(256, 2, s)}),
    ("lognormal_2d", diffusion_2d, True, "2-D diffusion, lognormal k, contrast 1e3",
     lambda s: {"n": _side(256, 2, s), "coefficient": "lognormal", "contrast": 1e3}),
    ("checkerboard_2d", diffusion_2d, True,
     "2-D diffusion, random checkerboard k (8 x 8 tiles), contrast 1e6",
     lambda s: {"n": _side(256, 2, s), "coefficient": "jumps", "contrast": 1e6}),
    ("anisotropic_2d", anisotropic_2d, True,
     "2-D rotated anisotropic diffusion, eps 1e-3, 30 degrees, Q1",
     lambda s: {"n": _side(256, 2, s), "epsilon": 1e-3, "theta": math.pi / 6}),
    ("convdiff_vortex_2d", convection_diffusion_2d, False,
     "2-D convection-diffusion, vortex wind, eps 1e-3, upwind",
     lambda s: {"n": _side(256, 2, s), "eps": 1e-3, "velocity": "vortex"}),
    ("biharmonic_2d", biharmonic_2d, True, "2-D biharmonic, 13-point",
     lambda s: {"n": _side(256, 2, s)}),
    ("poisson_3d", laplace_3d, True, "3-D Poisson, 7-point",
     lambda s: {"n": _side(64, 3, s)}),
    ("elasticity_2d", elasticity_2d, True,
     "2-D plane-strain elasticity, Q1, clamped left edge, nu 0.3",
     lambda s: {"n": _elasticity_n(s)}),
    ("kernel_2d", exponential_kernel_2d, True,
     "dense exp(-|x-y|/0.1), random points in 2-D",
     lambda s: {"n": max(16, int(round(16384 * s)))}),
)
#: The row names, in table order.
HARD_SUITE = tuple(row[0] for row in _ROWS)


def _check_scale(scale):
    scale = check_float(scale, "scale", positive=True)
    if scale > 4.0:
        raise ValueError(f"scale multiplies N ~ 65536; scale={scale} > 4 would build "
                         f"matrices of millions of unknowns (the dense kernel row "
                         f"{16384 * scale:.0f}^2 floats). Use scale <= 4.")
    return scale


def hard_case(name, *, scale=1.0):
    """Build the hard-suite row ``name`` at ``scale`` (fraction of its full N).

    Parameters
    ----------
    name : str
        One of :data:`HARD_SUITE`.
    scale : float
        Multiplies the number of unknowns (grid sides by its square or cube
        root), ``0 < scale <= 4``.

    Returns
    -------
    HardCase

    Examples
    --------
    >>> row = hard_case("elasticity_2d", scale=1 / 1024)
    >>> row.N, row.spd, row.coords.shape
    (60, True, (60, 2))
    """
    scale = _check_scale(scale)
    table = {row[0]: row for row in _ROWS}
    if name not in table:
        raise ValueError(f"unknown hard-suite row {name!r}; choose from {', '.join(HARD_SUITE)}.")
    _, func, spd, description, params_of = table[name]
    params = params_of(scale)
    A = func(**params)
    N = A.shape[0]
    grid, coords = None, None
    if func is elasticity_2d:
        coords = elasticity_2d_coords(params["n"])
        b = np.zeros(N)
        b[1::2] = -1.0
    else:
        b = np.ones(N)
        if func is exponential_kernel_2d:
            coords = kernel_points_2d(params["n"])
        else:
            grid = (params["n"],) * (3 if func is laplace_3d else 2)
            coords = _grid_coords(grid)
    return HardCase(name=name, A=A, b=b, spd=spd, symmetric=spd, coords=coords,
                    grid_shape=grid, problem=func.__name__, params=params,
                    description=description)


def hard_suite(scale=1.0):
    """Yield the nine rows of the hard suite (:class:`HardCase`), in :data:`HARD_SUITE` order.

    Each matrix is built when its row is reached (the full suite holds a
    2 GiB dense kernel matrix), so iterate rather than ``list()`` at
    ``scale=1``.

    Examples
    --------
    >>> [row.N for row in hard_suite(scale=1 / 1024)]
    [64, 64, 64, 64, 64, 64, 216, 60, 16]
    """
    scale = _check_scale(scale)
    for name in HARD_SUITE:
        yield hard_case(name, scale=scale)
