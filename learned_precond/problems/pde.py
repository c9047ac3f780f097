r"""Scalable PDE discretizations and dense kernel matrices.

Registry kinds ``'pde'`` and ``'kernel'`` of :mod:`learned_precond.problems`.
Grid problems use natural order with x fastest: unknown ``(i, j)`` (``i``
the x index, 0-based) is row ``i + n*j``. With
:math:`T_n = \operatorname{tridiag}(-1, 2, -1)`, x-direction operators are
``kron(I, T)`` and y-direction ones ``kron(T, I)``.
"""

import numpy as np
import scipy.sparse as sp

from .._structure import canonical_csr
from .._validation import check_positive_int
from ._build import check_choice, check_float, tridiag

__all__ = [
    "laplace_1d",
    "laplace_2d",
    "laplace_3d",
    "convection_diffusion_1d",
    "convection_diffusion_2d",
    "biharmonic_1d",
    "biharmonic_2d",
    "rbf_kernel",
    "exponential_kernel",
    "diffusion_2d",
    "anisotropic_2d",
    "helmholtz_2d",
]

VELOCITIES = ("constant", "vortex")
COEFFICIENTS = ("lognormal", "jumps")


def laplace_1d(n=256):
    r"""1-D Laplacian, Dirichlet: ``tridiag(-1, 2, -1)`` (unscaled, = h^2 * (-u'')).

    SPD, eigenvalues :math:`2 - 2\cos(k\pi/(n+1))`, cond ~ :math:`4(n+1)^2/\pi^2`.

    Parameters
    ----------
    n : int
        Number of interior points (matrix size).

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    return canonical_csr(tridiag(n, -1, 2, -1))


def laplace_2d(n=32):
    r"""2-D 5-point Laplacian on the n x n interior grid of the unit square, Dirichlet.

    .. math:: A = I\otimes T_n + T_n\otimes I

    Unscaled stencil: 4 on the diagonal, -1 for the four neighbours. SPD,
    N = n**2, cond ~ :math:`4(n+1)^2/\pi^2`.

    Parameters
    ----------
    n : int
        Grid points per side.

    Returns
    -------
    scipy.sparse.csr_array

    Examples
    --------
    >>> A = laplace_2d(3)              # 9 unknowns; the centre one has four neighbours
    >>> A.shape, A.nnz, float(A[4, 4]), [float(A[4, j]) for j in (1, 3, 5, 7)]
    ((9, 9), 33, 4.0, [-1.0, -1.0, -1.0, -1.0])
    """
    n = check_positive_int(n, "n")
    eye = sp.eye_array(n, format="csr")
    t = tridiag(n, -1, 2, -1)
    return canonical_csr(sp.kron(eye, t) + sp.kron(t, eye))


def laplace_3d(n=16):
    r"""3-D 7-point Laplacian on the n x n x n interior grid of the unit cube, Dirichlet.

    .. math:: A = I\otimes I\otimes T_n + I\otimes T_n\otimes I + T_n\otimes I\otimes I

    Unscaled stencil: 6 on the diagonal, -1 for the six neighbours. SPD,
    N = n**3, cond ~ :math:`4(n+1)^2/\pi^2`.

    Parameters
    ----------
    n : int
        Grid points per side.

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    eye = sp.eye_array(n, format="csr")
    eye2 = sp.eye_array(n * n, format="csr")
    t = tridiag(n, -1, 2, -1)
    return canonical_csr(sp.kron(eye2, t) + sp.kron(sp.kron(eye, t), eye) + sp.kron(t, eye2))


def _upwind_1d(n, velocity, h):
    """First-order upwind matrix of ``velocity * d/dx`` (Dirichlet zero outside)."""
    if velocity >= 0:  # backward difference (u_i - u_{i-1}) / h
        return (velocity / h) * tridiag(n, -1, 1, 0)
    return (velocity / h) * tridiag(n, 0, -1, 1)  # forward difference (u_{i+1} - u_i) / h


def convection_diffusion_1d(n=256, *, eps=0.1, beta=1.0):
    r"""1-D convection-diffusion :math:`-\varepsilon u'' + \beta u'` on (0, 1), upwind.

    Dirichlet boundaries, n interior points, :math:`h = 1/(n+1)`:

    .. math:: A = \frac{\varepsilon}{h^2}\operatorname{tridiag}(-1, 2, -1)
              + \frac{|\beta|}{h}\,U,

    with U = bidiag(diag 1, sub-diagonal -1) for beta >= 0 (backward
    difference) and bidiag(diag 1, super-diagonal -1) for beta < 0 (forward
    difference). An M-matrix; nonsymmetric for beta != 0 and positive real
    (:math:`A + A^T = (2\varepsilon/h^2 + |\beta|/h) T_n` is SPD). Not
    normalized; mesh Peclet number :math:`|\beta| h / (2\varepsilon)`.

    Parameters
    ----------
    n : int
        Number of interior points.
    eps : float
        Diffusion coefficient (> 0).
    beta : float
        Convection velocity (any sign).

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    eps = check_float(eps, "eps", positive=True)
    beta = check_float(beta, "beta")
    h = 1.0 / (n + 1)
    return canonical_csr((eps / h**2) * tridiag(n, -1, 2, -1) + _upwind_1d(n, beta, h))


def _velocity_field(kind, n):
    """Velocity components at the interior nodes, arrays indexed [j, i]."""
    if kind == "constant":
        w = 1.0 / np.sqrt(2.0)
        return np.full((n, n), w), np.full((n, n), w)
    h = 1.0 / (n + 1)
    t = np.arange(1, n + 1) * h
    xi, eta = np.meshgrid(2.0 * t - 1.0, 2.0 * t - 1.0)  # [j, i]: xi varies along i
    return 2.0 * eta * (1.0 - xi**2), -2.0 * xi * (1.0 - eta**2)


def convection_diffusion_2d(n=32, *, eps=1e-2, velocity="constant"):
    r"""2-D convection-diffusion :math:`-\varepsilon\Delta u + w\cdot\nabla u` on the unit square.

    n x n interior grid, :math:`h = 1/(n+1)`, homogeneous Dirichlet
    boundaries; 5-point central diffusion :math:`(\varepsilon/h^2)(4, -1)` plus
    first-order upwind convection: at node (i, j),
    :math:`w_x (u_{i,j} - u_{i-1,j})/h` if :math:`w_x \ge 0`, else
    :math:`w_x (u_{i+1,j} - u_{i,j})/h`, likewise in y. Not normalized.

    ``velocity``:

    - ``'constant'``: :math:`w = (1, 1)/\sqrt{2}` (unit speed along the diagonal).
    - ``'vortex'``: the recirculating wind of IFISS example 3.1.4,
      :math:`w = (2\eta(1-\xi^2), -2\xi(1-\eta^2))` with
      :math:`(\xi, \eta) = (2x-1, 2y-1) \in [-1, 1]^2`, i.e. the IFISS field
      evaluated at the affinely mapped point (equivalent, up to a factor, to
      the IFISS problem on :math:`[-1,1]^2` with viscosity :math:`2\varepsilon`).

    Both give an M-matrix (weakly diagonally dominant, irreducible), nonsingular
    and nonsymmetric. For 'constant' :math:`A + A^T` is SPD (positive real:
    the symmetric part of the upwind term is
    :math:`\tfrac{|w_x|}{2h} I\otimes T_n + \tfrac{|w_y|}{2h} T_n\otimes I \succeq 0`).
    For 'vortex' :math:`A + A^T` was found SPD for every n <= 48 and eps in
    [1e-3, 1e-1] checked (an observation, not a theorem).

    Parameters
    ----------
    n : int
        Grid points per side (N = n**2).
    eps : float
        Diffusion coefficient (> 0).
    velocity : {'constant', 'vortex'}
        Wind field.

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    eps = check_float(eps, "eps", positive=True)
    check_choice(velocity, "velocity", VELOCITIES)
    h = 1.0 / (n + 1)
    wx, wy = (w.ravel() for w in _velocity_field(velocity, n))
    idx = np.arange(n * n)
    i, j = idx % n, idx // n
    rows, cols, vals = [idx], [idx], [np.full(n * n, 4.0 * eps / h**2)]
    # Diffusion neighbours (x: +-1, y: +-n), dropped across the boundary.
    for ok, off in [(i > 0, -1), (i < n - 1, 1), (j > 0, -n), (j < n - 1, n)]:
        rows.append(idx[ok])
        cols.append(idx[ok] + off)
        vals.append(np.full(int(ok.sum()), -eps / h**2))
    # Upwind convection: |w|/h on the diagonal, -|w|/h at the upwind neighbour.
    for w, step, pos in [(wx, 1, i), (wy, n, j)]:
        rows.append(idx)
        cols.append(idx)
        vals.append(np.abs(w) / h)
        up = np.where(w >= 0, -1, 1)  # direction of the upwind neighbour
        ok = (pos + up >= 0) & (pos + up <= n - 1)
        rows.append(idx[ok])
        cols.append(idx[ok] + up[ok] * step)
        vals.append(-np.abs(w[ok]) / h)
    A = sp.coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n,) * 2
    )
    return canonical_csr(A)


def biharmonic_1d(n=256):
    r"""1-D biharmonic :math:`u''''`, simply supported: :math:`A = T_n^2` (unscaled).

    Stencil (1, -4, 6, -4, 1) in the interior; first and last rows
    (5, -4, 1) and (1, -4, 5) (u = u'' = 0 at both ends). SPD, eigenvalues
    :math:`(2 - 2\cos(k\pi/(n+1)))^2`, cond ~ :math:`16(n+1)^4/\pi^4`.

    Parameters
    ----------
    n : int
        Number of interior points.

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    t = tridiag(n, -1, 2, -1)
    return canonical_csr(t @ t)


def biharmonic_2d(n=16):
    r"""2-D biharmonic :math:`\Delta^2 u`, simply supported: the squared 5-point Laplacian.

    :math:`A = L^2` with L = :func:`laplace_2d` (n), unscaled: 13-point
    stencil 20 (centre), -8 (edge neighbours), 2 (diagonal neighbours),
    1 (distance 2), modified next to the boundary (u = Delta u = 0). SPD,
    N = n**2, cond ~ :math:`16(n+1)^4/\pi^4`.

    Parameters
    ----------
    n : int
        Grid points per side.

    Returns
    -------
    scipy.sparse.csr_array
    """
    L = laplace_2d(n)
    return canonical_csr(L @ L)


def rbf_kernel(n=256, *, length_scale=0.2, nugget=1e-4):
    r"""Gaussian (RBF) kernel matrix plus nugget on n equispaced points of [0, 1], dense.

    .. math:: A_{ij} = \exp\!\Bigl(-\frac{(x_i - x_j)^2}{2\ell^2}\Bigr) + \sigma\delta_{ij},
              \quad x = \operatorname{linspace}(0, 1, n)

    Not normalized (``seed_rbf_kernel`` is this divided by 1 + nugget). SPD
    for nugget > 0, with smallest eigenvalue just above the nugget once n is
    large; off-diagonal blocks are numerically low rank.

    Parameters
    ----------
    n : int
        Number of points.
    length_scale : float
        :math:`\ell` (> 0).
    nugget : float
        :math:`\sigma` (>= 0; 0 gives a numerically singular matrix).

    Returns
    -------
    numpy.ndarray
    """
    n = check_positive_int(n, "n")
    length_scale = check_float(length_scale, "length_scale", positive=True)
    nugget = check_float(nugget, "nugget", nonnegative=True)
    x = np.linspace(0.0, 1.0, n)
    return np.exp(-(np.subtract.outer(x, x) ** 2) / (2.0 * length_scale**2)) + nugget * np.eye(n)


def exponential_kernel(n=256, *, rho=0.9):
    r"""Exponential (Kac-Murdock-Szego) covariance :math:`A_{ij} = \rho^{|i-j|}`, dense.

    The covariance of a stationary AR(1) / discretized Ornstein-Uhlenbeck
    process; SPD for :math:`|\rho| < 1`, off-diagonal blocks of rank one, and
    the inverse is tridiagonal. Eigenvalues lie in
    :math:`[(1-|\rho|)/(1+|\rho|), (1+|\rho|)/(1-|\rho|)]`.

    Parameters
    ----------
    n : int
        Matrix size.
    rho : float
        Correlation, :math:`-1 < \rho < 1`.

    Returns
    -------
    numpy.ndarray
    """
    n = check_positive_int(n, "n")
    rho = check_float(rho, "rho")
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must satisfy -1 < rho < 1 for an SPD matrix, got {rho}.")
    k = np.arange(n)
    return rho ** np.abs(np.subtract.outer(k, k)).astype(np.float64)


def _coefficient_field(kind, n, contrast, length, seed):
    """Coefficient k at the (n+2) x (n+2) nodes (boundary included), indexed [j, i]."""
    rng = np.random.default_rng(seed)
    m = n + 2
    t = np.arange(m) / (n + 1)
    if kind == "lognormal":
        from scipy.ndimage import gaussian_filter

        g = gaussian_filter(rng.standard_normal((m, m)), sigma=length * (n + 1), mode="wrap")
        span = g.max() - g.min()
        g = (g - g.min()) / span - 0.5 if span > 0 else np.zeros_like(g)
        return contrast**g  # values in [contrast^-1/2, contrast^1/2]
    tiles = max(1, int(np.ceil(1.0 / length)))
    tile = np.minimum((t / length).astype(int), tiles - 1)
    values = np.where(rng.random((tiles, tiles)) < 0.5, 1.0, contrast)
    return values[np.ix_(tile, tile)]


def diffusion_2d(n=32, *, coefficient="lognormal", contrast=1e3, length=0.125, seed=0):
    r"""Variable-coefficient diffusion :math:`-\nabla\cdot(k\nabla u)` on the unit square.

    Vertex-centred 5-point finite differences on the n x n interior grid,
    :math:`h = 1/(n+1)`, homogeneous Dirichlet boundaries, face coefficients
    the harmonic mean of k at the two end nodes (exact for a coefficient jump
    between them):

    .. math:: (Au)_{ij} = \sum_{q\in\{E,W,N,S\}} k_{f(q)}\,(u_{ij} - u_q),\quad
              k_f = \frac{2 k_p k_q}{k_p + k_q},

    unscaled (multiplied by :math:`h^2`), so k = 1 gives :func:`laplace_2d`.
    SPD (a weighted graph Laplacian plus positive boundary terms). This is the
    finite-difference analogue of the variable-coefficient elliptic families
    of the learned-SPAI paper (Li, Wang, Jimack), which use P1 elements and
    polynomial coefficients.

    ``coefficient``:

    - ``'lognormal'``: :math:`k = \text{contrast}^{g}` with g a Gaussian random
      field (white noise smoothed by a Gaussian of width ``length``, periodic),
      affinely rescaled to [-1/2, 1/2]; so max k / min k = contrast exactly.
    - ``'jumps'``: a random checkerboard of square tiles of side ``length``,
      each tile k = 1 or k = contrast with probability 1/2.

    Parameters
    ----------
    n : int
        Grid points per side (N = n**2).
    coefficient : {'lognormal', 'jumps'}
        Coefficient model.
    contrast : float
        max k / min k (>= 1).
    length : float
        Correlation length ('lognormal') or tile side ('jumps'), in (0, 1].
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same matrix.

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    check_choice(coefficient, "coefficient", COEFFICIENTS)
    contrast = check_float(contrast, "contrast")
    if contrast < 1.0:
        raise ValueError(f"contrast = max k / min k must be >= 1, got {contrast}.")
    length = check_float(length, "length", positive=True)
    if length > 1.0:
        raise ValueError(f"length must be in (0, 1], got {length}.")
    seed = check_positive_int(seed, "seed", minimum=0)
    k = _coefficient_field(coefficient, n, contrast, length, seed)
    kx = 2.0 * k[:, 1:] * k[:, :-1] / (k[:, 1:] + k[:, :-1])  # face (i, i+1) at row j
    ky = 2.0 * k[1:, :] * k[:-1, :] / (k[1:, :] + k[:-1, :])  # face (j, j+1) at column i
    # Interior node (i, j) has node index (i+1, j+1) in k.
    west, east = kx[1:-1, :-1], kx[1:-1, 1:]  # each (n, n), indexed [j, i]
    south, north = ky[:-1, 1:-1], ky[1:, 1:-1]
    diag = (west + east + south + north).ravel()
    idx = np.arange(n * n).reshape(n, n)
    rows = [idx.ravel(), idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    cols = [idx.ravel(), idx[:, 1:].ravel(), idx[1:, :].ravel()]
    vals = [diag, -east[:, :-1].ravel(), -north[:-1, :].ravel()]
    r, c, v = (np.concatenate(a) for a in (rows, cols, vals))
    off = r != c
    A = sp.coo_array(
        (np.concatenate([v, v[off]]), (np.concatenate([r, c[off]]), np.concatenate([c, r[off]]))),
        shape=(n * n,) * 2,
    )
    return canonical_csr(A)


def anisotropic_2d(n=32, *, epsilon=1e-3, theta=np.pi / 6):
    r"""Rotated anisotropic diffusion :math:`-\nabla\cdot(Q D Q^T\nabla u)`, D = diag(1, epsilon).

    Q is the rotation by ``theta`` from the x axis, so diffusion is strong
    along direction :math:`(\cos\theta, \sin\theta)` and weak (epsilon)
    across it. Built with pyamg: ``stencil_grid(diffusion_stencil_2d(epsilon,
    theta, type='FE'), (n, n))``, the bilinear (Q1) finite-element 9-point
    stencil on the n x n interior grid with Dirichlet boundaries, unscaled.
    The stencil is transposed before ``stencil_grid`` because pyamg orders y
    fastest and this gallery x fastest. SPD for epsilon > 0.

    Parameters
    ----------
    n : int
        Grid points per side (N = n**2).
    epsilon : float
        Anisotropy ratio (> 0; 1 is isotropic).
    theta : float
        Angle of the strong direction, radians.

    Returns
    -------
    scipy.sparse.csr_array
    """
    from pyamg.gallery import diffusion_stencil_2d, stencil_grid

    n = check_positive_int(n, "n")
    epsilon = check_float(epsilon, "epsilon", positive=True)
    theta = check_float(theta, "theta")
    stencil = diffusion_stencil_2d(epsilon=epsilon, theta=theta, type="FE")
    return canonical_csr(stencil_grid(stencil.T, (n, n), format="csr"))


def helmholtz_2d(n=32, *, wavenumber=10.0, damping=0.5):
    r"""2-D shifted Laplacian (damped Helmholtz) on the unit square, Dirichlet: complex.

    .. math:: A = h^{-2} L_n - k^2 (1 - i\,\beta) I

    with :math:`L_n` the 5-point Laplacian (:func:`laplace_2d`), ``h =
    1/(n+1)``, wavenumber :math:`k` and damping :math:`\beta`: the complex
    shifted Laplacian used to precondition Helmholtz problems. Complex
    symmetric (``A == A.T``, not Hermitian), N = n**2. Not in the problem
    registry (whose matrices are real); fit a preconditioner with
    ``supports_complex`` to it.

    Parameters
    ----------
    n : int
        Grid points per side.
    wavenumber : float
        :math:`k` (> 0); indefinite real part once :math:`k^2` passes the
        smallest eigenvalue of :math:`h^{-2} L_n` (about :math:`2\pi^2`).
    damping : float
        :math:`\beta >= 0`; 0 is the real (indefinite) Helmholtz operator.

    Returns
    -------
    scipy.sparse.csr_array
        complex128.

    Examples
    --------
    >>> A = helmholtz_2d(3, wavenumber=2.0, damping=0.5)
    >>> A.dtype, A.shape, complex(A[4, 4])
    (dtype('complex128'), (9, 9), (60+2j))
    """
    n = check_positive_int(n, "n")
    k = check_float(wavenumber, "wavenumber", positive=True)
    beta = check_float(damping, "damping", nonnegative=True)
    h2 = float(n + 1) ** 2
    L = sp.csr_array(laplace_2d(n) * h2, dtype=np.complex128)
    A = sp.csr_array(L - (k * k * (1 - 1j * beta)) * sp.eye_array(n * n, format="csr"))
    A.sum_duplicates()  # canonical_csr is real-only
    return A
