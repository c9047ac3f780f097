"""The seven test matrices of the learned-LU blog post, built as its code builds them.

Registry kind ``'seed'`` of :mod:`learned_precond.problems`.

The seed code (``lu_examples.py`` and the Laplacian helpers of the blog's
repository) builds dense float32 torch tensors; these functions build the same
matrices in float64 with scipy.sparse (the RBF kernel stays dense). All sizes
default to the blog's N = 256: 1-D problems with n = 256 points, 2-D problems
on a 16 x 16 grid in natural order. All except the two Laplacians are divided
by ``max|A_ij|`` as in the seed ("normalizing to keep values numerically low").

Condition numbers (2-norm, float64) at the defaults, measured and tested:

========================== ========== =========================================
matrix                     cond(A)    blog's value (float32 code)
========================== ========== =========================================
seed_laplace_1d            2.68e4
seed_convection_diffusion_1d 3.91e5   391199
seed_convection_diffusion_2d 84.5
seed_biharmonic_1d         6.94e8     44740336 (float32 rounding of A)
seed_biharmonic_2d         1.36e4
seed_rbf_kernel            1.12e6     1201921 (float32 rounding of K)
seed_laplace_2d            116
========================== ========== =========================================
"""

import numpy as np
import scipy.sparse as sp

from .._structure import canonical_csr
from .._validation import check_positive_int
from ._build import check_float, tridiag
from .pde import biharmonic_2d, laplace_1d, laplace_2d, rbf_kernel

__all__ = [
    "seed_laplace_1d",
    "seed_convection_diffusion_1d",
    "seed_convection_diffusion_2d",
    "seed_biharmonic_1d",
    "seed_biharmonic_2d",
    "seed_rbf_kernel",
    "seed_laplace_2d",
]


def _identity_rows(A, rows):
    """Replace the given rows of ``A`` by rows of the identity (the seed's BC rows)."""
    coo = sp.coo_array(A)
    keep = ~np.isin(coo.row, rows)
    rows = np.asarray(rows)
    row = np.concatenate([coo.row[keep], rows])
    col = np.concatenate([coo.col[keep], rows])
    val = np.concatenate([coo.data[keep], np.ones(len(rows))])
    return sp.csr_array((val, (row, col)), shape=A.shape)


def _normalize(A):
    """Divide by ``max|A_ij|`` as the seed does."""
    if sp.issparse(A):
        return canonical_csr(A / np.abs(A.data).max())
    return A / np.abs(A).max()


def seed_laplace_1d(n=256):
    r"""Seed 1-D Laplacian: ``tridiag(-1, 2, -1)``, no h scaling, not normalized.

    .. math:: A = \operatorname{tridiag}(-1, 2, -1) \in \mathbb{R}^{n\times n}

    Symmetric positive definite; eigenvalues :math:`2 - 2\cos(k\pi/(n+1))`;
    cond = 2.68e4 at n = 256.

    Parameters
    ----------
    n : int
        Matrix size (256 in the seed).

    Returns
    -------
    scipy.sparse.csr_array

    Examples
    --------
    >>> seed_laplace_1d(4).toarray()[1]
    array([-1.,  2., -1.,  0.])
    """
    return laplace_1d(n)


def seed_convection_diffusion_1d(n=256, *, eps=0.1, beta=1.0):
    r"""Seed 1-D convection-diffusion, upwind, identity boundary rows, normalized.

    Discretizes :math:`-\varepsilon u'' + \beta u'` on n points of [0, 1] with
    :math:`h = 1/(n-1)`:

    .. math:: A = \frac{\varepsilon}{h^2}\operatorname{tridiag}(-1, 2, -1)
              + \frac{\beta}{h}\,\operatorname{bidiag}(-1, 1)

    (first-order upwind: diagonal +1, sub-diagonal -1), then rows 0 and n-1
    are replaced by identity rows (Dirichlet) and A is divided by
    :math:`\max|A_{ij}|`. Nonsymmetric; its symmetric part is indefinite
    (because of the identity rows); cond = 3.91e5 at the defaults.

    Parameters
    ----------
    n : int
        Number of points, boundary included (>= 2; 256 in the seed).
    eps : float
        Diffusion coefficient (> 0).
    beta : float
        Convection velocity (>= 0; the seed code's beta < 0 branch flips the sign
        of the convection term, so it is refused here: use
        :func:`learned_precond.problems.convection_diffusion_1d`).

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n", minimum=2)
    eps = check_float(eps, "eps", positive=True)
    beta = check_float(beta, "beta", nonnegative=True)
    h = 1.0 / (n - 1)
    D = (eps / h**2) * tridiag(n, -1, 2, -1)
    conv = (beta / h) * tridiag(n, -1, 1, 0)
    A = _identity_rows(D + conv, [0, n - 1])
    return _normalize(A)


def seed_convection_diffusion_2d(n=16, *, eps=0.1, beta=1.0):
    r"""Seed 2-D convection-diffusion on an n x n grid, no boundary rows, normalized.

    With :math:`h = 1/(n-1)`, :math:`L_1 = (\varepsilon/h^2)\operatorname{tridiag}(-1,2,-1)`
    and :math:`C_1 = (\beta/h)\operatorname{bidiag}(-1, 1)` (upwind),

    .. math:: A = (L_1\otimes I + I\otimes L_1 + C_1\otimes I) / \max|A_{ij}|.

    ``C1 (x) I`` differentiates along the slow index, i.e. along y in this
    gallery's x-fastest order (the seed calls it the x direction; the matrix
    is the same). Nonsymmetric, positive real (:math:`A + A^T` is SPD for
    beta >= 0); cond = 84.5 at the defaults.

    Parameters
    ----------
    n : int
        Grid points per side (>= 2; 16 in the seed, N = n**2 = 256).
    eps : float
        Diffusion coefficient (> 0).
    beta : float
        Convection velocity.

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n", minimum=2)
    eps = check_float(eps, "eps", positive=True)
    beta = check_float(beta, "beta")
    h = 1.0 / (n - 1)
    eye = sp.eye_array(n, format="csr")
    L1 = (eps / h**2) * tridiag(n, -1, 2, -1)
    conv1 = (beta / h) * tridiag(n, -1, 1, 0)  # the seed's C1
    A = sp.kron(L1, eye) + sp.kron(eye, L1) + sp.kron(conv1, eye)
    return _normalize(A)


def seed_biharmonic_1d(n=256):
    r"""Seed 1-D biharmonic: :math:`A = L^T L` with a Dirichlet Laplacian L, normalized.

    :math:`L = h^{-2}\,\operatorname{tridiag}(-1, 2, -1)` with rows 0 and n-1
    replaced by identity rows before the scaling, :math:`h = 1/(n-1)`; then
    :math:`A = L^T L / \max|A_{ij}|`. Interior rows have the stencil
    (1, -4, 6, -4, 1). SPD (L is nonsingular); cond = 6.94e8 at n = 256
    (the blog reports 4.47e7, the condition number of the float32-rounded matrix).

    Parameters
    ----------
    n : int
        Number of points, boundary included (>= 2; 256 in the seed).

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n", minimum=2)
    h = 1.0 / (n - 1)
    L = (1.0 / h**2) * _identity_rows(tridiag(n, -1, 2, -1), [0, n - 1])
    return _normalize(L.T @ L)


def seed_biharmonic_2d(n=16):
    r"""Seed 2-D biharmonic: the squared 5-point Laplacian plus 1e-6 I, normalized.

    With :math:`L_1 = \operatorname{tridiag}(1, -2, 1)` and
    :math:`\Delta_h = L_1\otimes I + I\otimes L_1` (no h scaling),

    .. math:: A = (\Delta_h^2 + 10^{-6} I) / \max|A_{ij}|.

    SPD, 13-point stencil (20, -8, 2, 1 in the interior before normalizing);
    cond = 1.36e4 at n = 16.

    Parameters
    ----------
    n : int
        Grid points per side (16 in the seed, N = 256).

    Returns
    -------
    scipy.sparse.csr_array
    """
    n = check_positive_int(n, "n")
    return _normalize(biharmonic_2d(n) + 1e-6 * sp.eye_array(n * n))  # (-L)^2 = L^2


def seed_rbf_kernel(n=256, *, length_scale=0.2, nugget=1e-4):
    r"""Seed RBF (Gaussian) kernel matrix on n equispaced points of [0, 1], dense.

    .. math:: A = \bigl(K + \sigma I\bigr)/\max|A_{ij}|,\quad
              K_{ij} = \exp\!\Bigl(-\frac{(x_i - x_j)^2}{2\ell^2}\Bigr),\quad
              x = \operatorname{linspace}(0, 1, n)

    with :math:`\ell` = ``length_scale`` and :math:`\sigma` = ``nugget`` (the
    seed's ``sigma_noise``). SPD; dense with numerically low-rank off-diagonal
    blocks. cond = 1.12e6 at the defaults (the blog's 1.20e6 is that of the
    float32-rounded K).

    Parameters
    ----------
    n : int
        Number of points (256 in the seed).
    length_scale : float
        Kernel length scale (> 0).
    nugget : float
        Diagonal shift (>= 0).

    Returns
    -------
    numpy.ndarray
    """
    return _normalize(rbf_kernel(n, length_scale=length_scale, nugget=nugget))


def seed_laplace_2d(n=16):
    r"""Seed 2-D Laplacian on an n x n grid: ``kron(I, L1) + kron(L1, I)``.

    :math:`L_1 = \operatorname{tridiag}(-1, 2, -1)`; the 5-point stencil
    (4, -1) without h scaling, not normalized. SPD; cond = 116 at n = 16.
    Equal to :func:`learned_precond.problems.laplace_2d`.

    Parameters
    ----------
    n : int
        Grid points per side (16 in the seed, N = 256).

    Returns
    -------
    scipy.sparse.csr_array
    """
    return laplace_2d(n)
