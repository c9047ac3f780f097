"""The contract every preconditioner passes, inherited in a few lines per method.

Subclass :class:`PreconditionerContract` in a ``Test*`` class and set
``preconditioner`` (a registry name such as ``'ilu0'``, or a class) and
``fit_options``; pytest then runs the whole contract against
``get_preconditioner(name).fit(A, **fit_options)``::

    from contract import PreconditionerContract

    class TestILU0(PreconditionerContract):
        preconditioner = "ilu0"
        max_iterations = {("laplace2d-32", "gmres"): 40}

The contract checks the ``LinearOperator`` surface (shapes (N,), (N, 1),
(N, k); float32/float64 kept; linearity; ``<M x, y> = <x, M^T y>``), the
bookkeeping (``nbytes``, ``setup_time``, ``repr``), input validation, and
what a preconditioner is for: Krylov methods converge on the test matrices
in fewer iterations than without it. Test ids read like
``test_converges[laplace2d-32-ilu0-gmres]``.

The test matrices are built here, inline, so the contract does not depend on
the gallery (:mod:`learned_precond.problems`).
"""

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from learned_precond import get_preconditioner
from learned_precond._base import Preconditioner
from learned_precond.krylov import solve

__all__ = [
    "CASES",
    "PreconditionerContract",
    "convection_diffusion_2d",
    "laplace_2d",
    "make_case",
    "variable_diffusion_2d",
]


# -- test matrices -------------------------------------------------------------


def laplace_2d(n):
    """5-point Laplacian on an ``n x n`` interior grid, natural order, stencil [-1 4 -1]."""
    tridiag = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    return sp.kronsum(tridiag, tridiag, format="csr")


def variable_diffusion_2d(n):
    """Finite-volume ``-div(k grad u)`` with ``k = 10**(sin(2 pi x) sin(2 pi y))``.

    SPD like the Laplacian, but its diagonal varies over two orders of
    magnitude, so diagonal scaling matters (unlike on :func:`laplace_2d`).
    """
    h = 1.0 / (n + 1)
    # (n+1) x n difference from cell values to faces, zero Dirichlet values outside
    grad = sp.diags_array([1.0, -1.0], offsets=[0, -1], shape=(n + 1, n))
    identity = sp.eye_array(n)
    centers = (np.arange(n) + 1) * h
    faces = (np.arange(n + 1) + 0.5) * h

    def k(x, y):
        return 10.0 ** (np.sin(2 * np.pi * x) * np.sin(2 * np.pi * y))

    # unknown (i, j) -> j * n + i, i along x
    kx = k(faces[None, :], centers[:, None]).ravel()  # x-faces: index j * (n+1) + f
    ky = k(centers[None, :], faces[:, None]).ravel()  # y-faces: index f * n + i
    diff_x = sp.kron(identity, grad, format="csr")
    diff_y = sp.kron(grad, identity, format="csr")
    A = diff_x.T @ sp.diags_array(kx) @ diff_x + diff_y.T @ sp.diags_array(ky) @ diff_y
    return sp.csr_array(A)


def convection_diffusion_2d(n, *, diffusion=1e-2, wind=(1.0, 0.5)):
    """Upwind ``-diffusion * lap(u) + wind . grad(u)`` on an ``n x n`` grid, times h^2.

    Nonsymmetric, with a nonzero diagonal and ILU(0)-friendly M-matrix signs.
    """
    h = 1.0 / (n + 1)
    tridiag = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    B = sp.diags_array([-1.0, 1.0], offsets=[-1, 0], shape=(n, n))  # backward difference
    identity = sp.eye_array(n)
    A = diffusion * sp.kronsum(tridiag, tridiag) + h * (
        wind[0] * sp.kron(identity, B) + wind[1] * sp.kron(B, identity)
    )
    return sp.csr_array(A)


#: Named test matrices: ``name -> builder``. Names read ``family-n``.
CASES = {
    "laplace2d-16": functools.partial(laplace_2d, 16),
    "laplace2d-32": functools.partial(laplace_2d, 32),
    "vardiff2d-32": functools.partial(variable_diffusion_2d, 32),
    "convdiff2d-32": functools.partial(convection_diffusion_2d, 32),
}

_SYMMETRIC_CASES = {"laplace2d-16", "laplace2d-32", "vardiff2d-32"}


@functools.lru_cache(maxsize=None)
def make_case(name):
    """Return the (cached, read-only) csr_array registered as ``name`` in :data:`CASES`."""
    A = CASES[name]()
    A.data.setflags(write=False)
    return A


def rhs(n, seed=0):
    """Deterministic random right-hand side of length ``n``."""
    return np.random.default_rng(seed).standard_normal(n)


@functools.lru_cache(maxsize=None)
def iterations_without_preconditioner(case, method, rtol=1e-8, restart=50):
    """Krylov iterations on ``case`` with ``M = None`` (the number to beat)."""
    A = make_case(case)
    result = solve(A, rhs(A.shape[0]), None, method=method, rtol=rtol, restart=restart)
    assert result.converged, f"unpreconditioned {method} failed on {case}"
    return result.iterations


def _bad_inputs():
    """``id -> (matrix factory, expected exception)`` for input validation."""
    good = laplace_2d(4)
    nan = good.copy()
    nan.data[3] = np.nan
    return {
        "nonsquare": (lambda: sp.csr_array(np.ones((4, 3))), ValueError),
        "empty": (lambda: sp.csr_array((0, 0)), ValueError),
        "nan": (lambda: nan, ValueError),
        "inf-dense": (lambda: np.where(np.eye(4) > 0, np.inf, 1.0), ValueError),
        "int": (lambda: sp.csr_array(good.toarray().astype(np.int64)), TypeError),
        "complex": (lambda: good.astype(np.complex128), NotImplementedError),
        "vector": (lambda: np.ones(4), ValueError),
        "string": (lambda: "A", TypeError),
        "operator": (lambda: aslinearoperator(good), TypeError),
    }


# -- the contract ----------------------------------------------------------------


class PreconditionerContract:
    """Tests every fitted preconditioner must pass; subclass and set the attributes.

    Attributes
    ----------
    preconditioner : str or type
        Registry name (``'ilu0'``) or a Preconditioner subclass.
    fit_options : dict
        Keyword arguments for ``fit``.
    cases : tuple of str
        Names in :data:`CASES` to fit and solve (the first one is also used
        for the operator tests).
    krylov_methods : tuple of str or None
        Methods for :meth:`test_converges`; default gmres and bicgstab, plus
        cg when the class declares ``symmetric = True`` and the case is SPD.
    no_gain_cases : tuple of str
        Cases on which the method cannot beat ``M = None`` (Jacobi on the
        constant-diagonal Laplacian is a scaled identity): there it must only
        match the unpreconditioned count to within 2 iterations.
    compare_with_none : bool
        False for the identity itself.
    max_iterations : dict
        ``(case, method) -> bound`` on the iteration count.
    holds_memory : bool
        False when ``nbytes`` must be 0 (the identity holds no arrays).
    accepts_operator : bool
        True when ``fit`` accepts a LinearOperator (needs no entries).
    exact_inverse : bool
        True when ``M`` is ``A^-1`` up to rounding.
    dense_input : bool
        Fit on ``A.toarray()`` instead of the sparse matrix.
    """

    preconditioner = None
    fit_options = {}
    cases = ("laplace2d-32", "vardiff2d-32")
    krylov_methods = None
    no_gain_cases = ()
    compare_with_none = True
    max_iterations = {}
    holds_memory = True
    accepts_operator = False
    exact_inverse = False
    dense_input = False
    rtol = 1e-8

    # -- helpers ------------------------------------------------------------------
    @classmethod
    def precond_class(cls):
        p = cls.preconditioner
        return get_preconditioner(p) if isinstance(p, str) else p

    @classmethod
    def label(cls):
        p = cls.preconditioner
        return p if isinstance(p, str) else p.name

    @classmethod
    def fit(cls, A, **extra):
        if cls.dense_input and sp.issparse(A):
            A = A.toarray()
        return cls.precond_class().fit(A, **{**cls.fit_options, **extra})

    @classmethod
    def fitted(cls, case):
        """The preconditioner fitted on ``case``, fitted once per class."""
        cache = cls.__dict__.get("_fitted_cache")
        if cache is None:
            cache = {}
            cls._fitted_cache = cache
        if case not in cache:
            cache[case] = cls.fit(make_case(case))
        return cache[case]

    @classmethod
    def methods_for(cls, case):
        if cls.krylov_methods is not None:
            return tuple(cls.krylov_methods)
        methods = ("gmres", "bicgstab")
        if getattr(cls.precond_class(), "symmetric", False) and case in _SYMMETRIC_CASES:
            methods += ("cg",)
        return methods

    def pytest_generate_tests(self, metafunc):
        names = metafunc.fixturenames
        if "case" in names and "method" in names:
            params = [(c, m) for c in self.cases for m in self.methods_for(c)]
            ids = [f"{c}-{self.label()}-{m}" for c, m in params]
            metafunc.parametrize(("case", "method"), params, ids=ids)
        if "bad_input" in names:
            bad = _bad_inputs()
            metafunc.parametrize("bad_input", list(bad.values()), ids=list(bad))

    @property
    def M(self):
        return self.fitted(self.cases[0])

    @property
    def A(self):
        return make_case(self.cases[0])

    # -- the LinearOperator surface ---------------------------------------------
    def test_is_fitted_linear_operator(self):
        M = self.M
        assert isinstance(M, Preconditioner)
        assert isinstance(M, LinearOperator)
        assert M.shape == self.A.shape
        assert M.dtype == np.float64
        if isinstance(self.preconditioner, str):
            assert type(M).name == self.preconditioner

    def test_shapes(self):
        M, n = self.M, self.A.shape[0]
        rng = np.random.default_rng(1)
        x = rng.standard_normal(n)
        X = rng.standard_normal((n, 3))
        y = M.matvec(x)
        assert y.shape == (n,)
        assert M.matvec(x[:, None]).shape == (n, 1)
        assert (M @ x).shape == (n,)
        assert M.matmat(x[:, None]).shape == (n, 1)
        Y = M.matmat(X)
        assert Y.shape == (n, 3)
        assert (M @ X).shape == (n, 3)
        assert np.all(np.isfinite(Y))
        # a block is applied column by column
        for c in range(3):
            np.testing.assert_allclose(Y[:, c], M.matvec(X[:, c]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(M.matvec(x[:, None])[:, 0], y, rtol=1e-12, atol=1e-14)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_dtype_preserved(self, dtype):
        M, n = self.M, self.A.shape[0]
        x = np.random.default_rng(2).standard_normal(n)
        X = np.random.default_rng(3).standard_normal((n, 2))
        assert M.matvec(x.astype(dtype)).dtype == dtype
        assert M.matmat(X.astype(dtype)).dtype == dtype
        assert (M @ x.astype(dtype)).dtype == dtype
        reference = M.matvec(x)
        low = M.matvec(x.astype(dtype)).astype(np.float64)
        assert np.linalg.norm(low - reference) <= 1e-3 * np.linalg.norm(reference)

    def test_linearity(self):
        M, n = self.M, self.A.shape[0]
        rng = np.random.default_rng(4)
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        a, b = 2.5, -0.75
        m_x, m_y = M.matvec(x), M.matvec(y)
        lhs = M.matvec(a * x + b * y)
        scale = abs(a) * np.linalg.norm(m_x) + abs(b) * np.linalg.norm(m_y)
        assert np.linalg.norm(lhs - (a * m_x + b * m_y)) <= 1e-9 * scale
        assert np.linalg.norm(M.matvec(np.zeros(n))) == 0.0

    def test_adjoint(self):
        """``<M x, y> = <x, M^T y>`` where M has a transpose, a clear error where not."""
        M, n = self.M, self.A.shape[0]
        rng = np.random.default_rng(5)
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        if not M.has_adjoint:
            with pytest.raises(NotImplementedError, match="transpose"):
                M.rmatvec(y)
            return
        m_x, mt_y = M.matvec(x), M.rmatvec(y)
        assert mt_y.shape == (n,)
        scale = max(
            np.linalg.norm(m_x) * np.linalg.norm(y), np.linalg.norm(x) * np.linalg.norm(mt_y)
        )
        assert abs(np.dot(m_x, y) - np.dot(x, mt_y)) <= 1e-10 * scale
        assert M.rmatvec(y.astype(np.float32)).dtype == np.float32
        Y = rng.standard_normal((n, 2))
        np.testing.assert_allclose(M.H.matmat(Y)[:, 1], M.rmatvec(Y[:, 1]), rtol=1e-12, atol=1e-14)

    def test_exact_inverse(self):
        if not self.exact_inverse:
            pytest.skip("not an exact inverse")
        A, M = self.A, self.M
        x = np.random.default_rng(6).standard_normal(A.shape[0])
        np.testing.assert_allclose(M.matvec(A @ x), x, rtol=1e-10, atol=1e-10)

    # -- what a preconditioner is for --------------------------------------------
    def test_converges(self, case, method):
        A, M = make_case(case), self.fitted(case)
        result = solve(A, rhs(A.shape[0]), M, method=method, rtol=self.rtol, restart=50)
        assert result.converged, result
        assert result.relative_residual <= 10 * self.rtol
        bound = self.max_iterations.get((case, method))
        if bound is not None:
            assert result.iterations <= bound, result
        if not self.compare_with_none:
            return
        reference = iterations_without_preconditioner(case, method, self.rtol)
        if case in self.no_gain_cases:
            assert result.iterations <= reference + 2, (result, reference)
        else:
            assert result.iterations < reference, (result, reference)

    # -- bookkeeping -----------------------------------------------------------------
    def test_nbytes(self):
        nbytes = self.M.nbytes
        assert isinstance(nbytes, (int, np.integer))
        if self.holds_memory:
            assert nbytes > 0
        else:
            assert nbytes == 0

    def test_setup_time(self):
        t = self.M.setup_time
        assert isinstance(t, float)
        assert np.isfinite(t) and t >= 0.0

    def test_repr(self):
        text = repr(self.M)
        assert type(self.M).__name__ in text
        assert str(self.A.shape[0]) in text
        assert " at 0x" not in text

    # -- input validation ----------------------------------------------------------
    def test_rejects_bad_input(self, bad_input):
        factory, error = bad_input
        A = factory()
        if isinstance(A, LinearOperator) and self.accepts_operator:
            M = self.precond_class().fit(A, **self.fit_options)
            assert M.shape == A.shape
            return
        if error is NotImplementedError and getattr(self.precond_class(), "supports_complex",
                                                    False) and self.fit_options.get(
                                                        "method") not in ("rs", "air"):
            # complex A: fitted in complex arithmetic (tests/test_ecosystem.py checks values)
            M = self.precond_class().fit(A, **self.fit_options)
            assert np.issubdtype(M.dtype, np.complexfloating)
            return
        with pytest.raises(error):
            self.precond_class().fit(A, **self.fit_options)

    def test_rejects_unknown_option(self):
        with pytest.raises(TypeError):
            self.precond_class().fit(self.A, **self.fit_options, no_such_option=1)
