r"""PDE matrix families: deterministic data sets of SPD matrices, generated on demand.

:class:`MatrixFamily` holds ``size`` matrices (default 2000: 1600 train,
400 test, as in the learned-SPAI paper of Li, Wang and Jimack) of one PDE
family on a fixed grid, each generated from ``(seed, index)``: nothing is
downloaded or stored. The SPAI generator
(:class:`learned_precond.spai.SPAIGenerator`) is trained and tested on them.

Families
--------
``'diffusion'``
    :math:`-\nabla\cdot(f\nabla u) = g` on the unit square, homogeneous
    Dirichlet boundary, vertex-centred 5-point **finite differences** on the
    ``n x n`` interior grid (``h = 1/(n+1)``), ``f`` evaluated at the face
    midpoints, unscaled (times ``h^2``). ``N = n^2``.
``'biharmonic'``
    :math:`\Delta(f\Delta u) = g` with ``u = Delta u = 0`` on the boundary
    (simply supported): ``A = L diag(f) L`` with ``L`` the 5-point Laplacian
    (finite differences, unscaled), a 13-point stencil; condition number
    growing like ``n^4``.

The coefficient of matrix ``i`` is a random bivariate polynomial of degree
``degree`` (Legendre basis, coefficients decaying with the degree), mapped
affinely to ``[1, c_i]`` on a 129 x 129 reference grid (and clipped to that
range between its points), with contrast ``c_i`` drawn log-uniformly from
``contrast``. It is a function of ``(x, y)``, independent of ``n``: matrix
``i`` of ``family.at(n2)`` discretizes the same PDE on another grid, which is
how a generator trained at one size is tested at growing ``N``.

Examples
--------
>>> from learned_precond.problems.family import MatrixFamily
>>> fam = MatrixFamily("biharmonic", n=6, size=10, n_train=8)
>>> A = fam.matrix(8)                  # the first test matrix
>>> A.shape, bool(abs(A - A.T).max() == 0)
((36, 36), True)
"""

import numpy as np
import scipy.sparse as sp

from .._structure import canonical_csr
from .._validation import check_positive_int
from .pde import laplace_2d

__all__ = ["FAMILIES", "MatrixFamily"]

FAMILIES = ("diffusion", "biharmonic")
_REFERENCE_POINTS = 129


class MatrixFamily:
    """``size`` SPD matrices of one PDE family on an ``n x n`` grid, generated on demand.

    Parameters
    ----------
    kind : {'diffusion', 'biharmonic'}
        The PDE (see the module docstring).
    n : int
        Interior grid points per side; ``N = n**2``.
    size : int
        Number of matrices (indices ``0 .. size-1``).
    n_train : int
        The first ``n_train`` indices are the training split, the rest the test split.
    contrast : (float, float)
        Range of ``max f / min f``, drawn log-uniformly per matrix.
    degree : int
        Degree of the coefficient polynomials.
    seed : int
        Seed of the family; matrix ``i`` depends only on ``(seed, i)`` and ``n``.

    Examples
    --------
    >>> fam = MatrixFamily("diffusion", n=16)
    >>> len(fam), len(fam.train_indices), len(fam.test_indices), fam.N
    (2000, 1600, 400, 256)
    >>> bool((fam.matrix(3) != fam.at(16).matrix(3)).nnz == 0)
    True
    """

    def __init__(self, kind="diffusion", n=16, *, size=2000, n_train=1600,
                 contrast=(10.0, 1000.0), degree=3, seed=0):
        if kind not in FAMILIES:
            raise ValueError(f"kind must be one of {', '.join(FAMILIES)}, got {kind!r}.")
        self.kind = kind
        self.n = check_positive_int(n, "n", minimum=2)
        self.size = check_positive_int(size, "size")
        self.n_train = check_positive_int(n_train, "n_train", minimum=0)
        if self.n_train > self.size:
            raise ValueError(
                f"n_train={n_train} exceeds size={size}; the test split would be empty.")
        lo, hi = (float(c) for c in contrast)
        if not (1.0 <= lo <= hi and np.isfinite(hi)):
            raise ValueError(f"contrast must be a range 1 <= low <= high, got {contrast!r}.")
        self.contrast = (lo, hi)
        self.degree = check_positive_int(degree, "degree", minimum=0)
        self.seed = check_positive_int(seed, "seed", minimum=0)

    # -- sizes and splits ------------------------------------------------------------
    @property
    def N(self):
        """Matrix size ``n**2``."""
        return self.n * self.n

    @property
    def grid_shape(self):
        """``(n, n)``; unknown ``(i, j)`` (x index ``i``) is row ``i + n*j``."""
        return (self.n, self.n)

    @property
    def train_indices(self):
        """``range(0, n_train)``."""
        return range(0, self.n_train)

    @property
    def test_indices(self):
        """``range(n_train, size)``: never used for training."""
        return range(self.n_train, self.size)

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return self.matrix(i)

    def at(self, n):
        """Return the same family (same coefficients) on an ``n x n`` grid."""
        return MatrixFamily(self.kind, n, size=self.size, n_train=self.n_train,
                            contrast=self.contrast, degree=self.degree, seed=self.seed)

    def __repr__(self):
        return (
            f"MatrixFamily({self.kind!r}, n={self.n} (N={self.N}), size={self.size}, "
            f"train/test={self.n_train}/{self.size - self.n_train}, contrast={self.contrast}, "
            f"degree={self.degree}, seed={self.seed})"
        )

    # -- the coefficient -------------------------------------------------------------
    def _coefficients(self, i):
        if not (0 <= int(i) < self.size):
            raise IndexError(f"matrix index {i} out of range 0..{self.size - 1}.")
        rng = np.random.default_rng([self.seed, int(i)])
        deg = self.degree
        a, b = np.meshgrid(np.arange(deg + 1), np.arange(deg + 1), indexing="ij")
        keep = (a + b) <= deg
        c = np.where(keep, rng.standard_normal((deg + 1, deg + 1)) / (1.0 + a + b), 0.0)
        lo, hi = np.log(self.contrast)
        contrast = float(np.exp(rng.uniform(lo, hi)))
        t = np.linspace(0.0, 1.0, _REFERENCE_POINTS)
        q = self._poly(c, t[:, None], t[None, :])
        return c, float(q.min()), float(q.max()), contrast

    @staticmethod
    def _poly(c, x, y):
        from numpy.polynomial import legendre

        x, y = np.broadcast_arrays(2.0 * x - 1.0, 2.0 * y - 1.0)
        return legendre.legval2d(x, y, c)

    def coefficient(self, i):
        """Return the coefficient ``f`` of matrix ``i``, a vectorized function of ``(x, y)``."""
        c, qmin, qmax, contrast = self._coefficients(i)
        span = qmax - qmin if qmax > qmin else 1.0

        def f(x, y):
            q = self._poly(c, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            return np.clip(1.0 + (contrast - 1.0) * (q - qmin) / span, 1.0, contrast)

        return f

    # -- the matrices ----------------------------------------------------------------
    def matrix(self, i):
        """Matrix ``i`` (csr_array, float64, SPD)."""
        f = self.coefficient(i)
        n = self.n
        h = 1.0 / (n + 1)
        if self.kind == "diffusion":
            return self._diffusion(f, n, h)
        nodes = (np.arange(n) + 1) * h
        fx = f(nodes[None, :], nodes[:, None]).ravel()  # [j, i] -> row i + n*j
        L = laplace_2d(n)
        return canonical_csr(L @ sp.diags_array(fx) @ L)

    @staticmethod
    def _diffusion(f, n, h):
        nodes = (np.arange(n) + 1) * h
        faces = (np.arange(n + 1) + 0.5) * h  # face between nodes k-1 and k (0 = boundary)
        kx = f(faces[None, :], nodes[:, None])  # (n, n+1): x-faces at row j
        ky = f(nodes[None, :], faces[:, None])  # (n+1, n): y-faces at column i
        west, east = kx[:, :-1], kx[:, 1:]
        south, north = ky[:-1, :], ky[1:, :]
        diag = (west + east + south + north).ravel()
        idx = np.arange(n * n).reshape(n, n)
        r = np.concatenate([idx.ravel(), idx[:, :-1].ravel(), idx[:-1, :].ravel()])
        c = np.concatenate([idx.ravel(), idx[:, 1:].ravel(), idx[1:, :].ravel()])
        v = np.concatenate([diag, -east[:, :-1].ravel(), -north[:-1, :].ravel()])
        off = r != c
        A = sp.coo_array(
            (np.concatenate([v, v[off]]),
             (np.concatenate([r, c[off]]), np.concatenate([c, r[off]]))),
            shape=(n * n, n * n),
        )
        return canonical_csr(A)

    def train_matrices(self, limit=None):
        """Iterate over the training matrices (the first ``limit`` when given)."""
        idx = self.train_indices if limit is None else self.train_indices[:limit]
        return (self.matrix(i) for i in idx)

    def test_matrices(self, limit=None):
        """Iterate over the test matrices (the first ``limit`` when given)."""
        idx = self.test_indices if limit is None else self.test_indices[:limit]
        return (self.matrix(i) for i in idx)
