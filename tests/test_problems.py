"""Tests of the problem gallery: stencils, claimed properties, registry, Matrix Market I/O."""

import dataclasses
import doctest
import gzip
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import learned_precond
from learned_precond import problems

SEED_NAMES = [
    "seed_laplace_1d",
    "seed_convection_diffusion_1d",
    "seed_convection_diffusion_2d",
    "seed_biharmonic_1d",
    "seed_biharmonic_2d",
    "seed_rbf_kernel",
    "seed_laplace_2d",
]

# Small parameters for the scalable families (seed and real problems use defaults).
SMALL = {
    "laplace_1d": {"n": 20},
    "laplace_2d": {"n": 7},
    "laplace_3d": {"n": 5},
    "convection_diffusion_1d": {"n": 20},
    "convection_diffusion_2d": {"n": 7},
    "biharmonic_1d": {"n": 20},
    "biharmonic_2d": {"n": 7},
    "diffusion_2d": {"n": 7},
    "anisotropic_2d": {"n": 7},
    "rbf_kernel": {"n": 30},
    "exponential_kernel": {"n": 30},
}


def small_params(name):
    return SMALL.get(name, {})


def dense(A):
    return A.toarray() if sp.issparse(A) else np.asarray(A)


def positive_definite(S):
    """Whether the symmetric matrix S is positive definite (numerically)."""
    if not sp.issparse(S) or S.shape[0] <= 300:
        return bool(np.linalg.eigvalsh(dense(S)).min() > 0)
    # Large sparse S: LU with diagonal pivots only and a symmetric fill-reducing
    # permutation, i.e. a Cholesky-like LDL^T of P S P^T. S is positive definite
    # iff every pivot is positive; a positive definite S never needs a row swap,
    # so a swap (perm_r != perm_c) already means "not positive definite".
    lu = sla.splu(
        sp.csc_array(S),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    return bool(np.array_equal(lu.perm_r, lu.perm_c) and np.all(lu.U.diagonal() > 0))


def definiteness(A):
    """Label a matrix with the gallery's definiteness vocabulary, numerically."""
    symmetric = (abs(A - A.T).max() == 0) if sp.issparse(A) else np.array_equal(A, A.T)
    if symmetric:
        if positive_definite(A):
            return "spd"
        return "snd" if positive_definite(-A) else "indefinite"
    return "positive-real" if positive_definite(A + A.T) else "nonsymmetric"


# --------------------------------------------------------------------------- registry


def test_names_cover_every_kind_and_the_seed_set():
    all_names = problems.names()
    assert len(all_names) == len(set(all_names))
    assert problems.names(kind="seed") == SEED_NAMES
    assert set(problems.names(kind="pde")) >= {
        "laplace_1d",
        "laplace_2d",
        "laplace_3d",
        "convection_diffusion_1d",
        "convection_diffusion_2d",
        "biharmonic_1d",
        "biharmonic_2d",
        "diffusion_2d",
        "anisotropic_2d",
    }
    assert set(problems.names(kind="kernel")) == {"rbf_kernel", "exponential_kernel"}
    real = set(problems.names(kind="real"))
    assert real >= set(problems.real.BUNDLED) | {"airfoil", "recirc_flow", "bar", "knot"}
    assert "unit_square" not in real  # singular (pure Neumann)
    assert sorted(all_names) == sorted(sum((problems.names(kind=k) for k in problems.KINDS), []))
    with pytest.raises(ValueError, match="seed, pde, kernel, real"):
        problems.names(kind="toy")


@pytest.mark.parametrize("name", problems.names())
def test_every_problem_builds(name):
    p = problems.get_problem(name, **small_params(name))
    A = p.A
    assert p.name == name and p.info.name == name
    if p.info.kind == "kernel" or name == "seed_rbf_kernel":
        assert type(A) is np.ndarray
    else:
        assert type(A) is sp.csr_array
        assert A.has_canonical_format
    assert A.dtype == np.float64
    assert A.ndim == 2 and A.shape[0] == A.shape[1] > 0
    assert np.all(np.isfinite(A.data if sp.issparse(A) else A))
    if p.grid_shape is not None:
        assert int(np.prod(p.grid_shape)) == A.shape[0]
    assert p.grid_shape == problems.grid_shape(name, **small_params(name))
    assert set(p.params) == set(p.info.defaults)
    assert name in repr(p)


@pytest.mark.parametrize("name", problems.names())
def test_claimed_symmetry_and_definiteness(name):
    info = problems.info(name)
    assert info.kind in problems.KINDS
    assert info.definite in problems.DEFINITENESS
    A = problems.get(name, **small_params(name))
    D = dense(A)
    assert np.array_equal(D, D.T) == info.symmetric
    assert definiteness(A) == info.definite


@pytest.mark.parametrize("n", [8, 16])
@pytest.mark.parametrize("eps", [1e-1, 1e-3])
def test_vortex_convection_diffusion_is_positive_real_at_tested_sizes(n, eps):
    D = dense(problems.get("convection_diffusion_2d", n=n, eps=eps, velocity="vortex"))
    assert not np.array_equal(D, D.T)
    assert definiteness(D) == "positive-real"


def test_unknown_names_and_parameters_raise_with_the_choices():
    with pytest.raises(ValueError, match="Valid names: seed_laplace_1d") as exc:
        problems.get("no_such_matrix")
    assert "sherman1" in str(exc.value)
    with pytest.raises(ValueError, match="Did you mean 'laplace_2d'"):
        problems.get("laplace2d")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'size'.*valid parameters: n"):
        problems.get("laplace_2d", size=8)
    with pytest.raises(ValueError, match="valid parameters: none"):
        problems.get("sherman1", n=5)
    with pytest.raises(ValueError, match="'constant', 'vortex'"):
        problems.get("convection_diffusion_2d", n=4, velocity="swirl")
    with pytest.raises(ValueError, match="'lognormal', 'jumps'"):
        problems.get("diffusion_2d", n=4, coefficient="smooth")
    with pytest.raises(TypeError):
        problems.get(3)
    for bad in (problems.info, problems.grid_shape, problems.get_problem):
        with pytest.raises(ValueError, match="unknown problem"):
            bad("nope")


def test_names_are_case_insensitive():
    assert problems.get_problem("SHERMAN1").name == "sherman1"
    assert problems.get_problem("tumorantiangiogenesis_2").name == "tumorAntiAngiogenesis_2"
    assert problems.get_problem("Laplace-2D", n=3).name == "laplace_2d"


def test_string_parameters_are_coerced_to_the_default_type():
    p = problems.get_problem("convection_diffusion_2d", n="6", eps="1e-3", velocity="vortex")
    assert p.params == {"n": 6, "eps": 1e-3, "velocity": "vortex"}
    assert type(p.params["n"]) is int and type(p.params["eps"]) is float
    ref = problems.get("convection_diffusion_2d", n=6, eps=1e-3, velocity="vortex")
    assert (p.A != ref).nnz == 0
    assert problems.get_problem("laplace_1d", n=7.0).params["n"] == 7
    assert problems.get_problem("exponential_kernel", n=3, rho=0).params["rho"] == 0.0
    assert problems.grid_shape("laplace_3d", n="4") == (4, 4, 4)
    with pytest.raises(ValueError, match="'n' of problem 'laplace_2d' must be an integer"):
        problems.get("laplace_2d", n="eight")
    with pytest.raises(ValueError, match="must be an integer"):
        problems.get("laplace_2d", n="8.5")
    with pytest.raises(ValueError, match="must be an integer"):
        problems.get("laplace_2d", n=8.5)
    with pytest.raises(ValueError, match="must be a number"):
        problems.get("rbf_kernel", n=4, length_scale="wide")
    with pytest.raises(ValueError, match="must be finite"):
        problems.get("rbf_kernel", n=4, length_scale="inf")
    with pytest.raises(ValueError, match="must be an integer, got True"):
        problems.get("laplace_2d", n=True)
    with pytest.raises(ValueError, match="must be a string"):
        problems.get("convection_diffusion_2d", n=4, velocity=3)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("laplace_2d", {"n": 0}, "n must be >= 1"),
        ("seed_convection_diffusion_1d", {"n": 1}, "n must be >= 2"),
        ("seed_convection_diffusion_1d", {"beta": -1.0}, "beta must be >= 0"),
        ("convection_diffusion_1d", {"eps": 0.0}, "eps must be > 0"),
        ("rbf_kernel", {"nugget": -1.0}, "nugget must be >= 0"),
        ("exponential_kernel", {"rho": 1.0}, "-1 < rho < 1"),
        ("diffusion_2d", {"contrast": 0.5}, "contrast"),
        ("diffusion_2d", {"length": 2.0}, r"length must be in \(0, 1\]"),
        ("diffusion_2d", {"seed": -1}, "seed must be >= 0"),
        ("anisotropic_2d", {"epsilon": 0.0}, "epsilon must be > 0"),
    ],
)
def test_out_of_range_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        problems.get(name, **params)


def test_info_is_frozen_and_returns_a_copy_of_the_defaults():
    info = problems.info("diffusion_2d")
    assert info.defaults == {
        "n": 32,
        "coefficient": "lognormal",
        "contrast": 1e3,
        "length": 0.125,
        "seed": 0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.symmetric = False
    info.defaults["n"] = 3
    assert problems.info("diffusion_2d").defaults["n"] == 32
    assert problems.get("diffusion_2d").shape == (32 * 32, 32 * 32)
    assert problems.info("west0479") == problems.info("west0479")
    assert problems.info("west0479").defaults == {}
    assert hash(problems.info("nos4")) == hash(problems.info("nos4"))


def test_grid_shapes():
    assert problems.grid_shape("laplace_1d", n=9) == (9,)
    assert problems.grid_shape("laplace_2d") == (32, 32)
    assert problems.grid_shape("seed_laplace_2d") == (16, 16)
    assert problems.grid_shape("seed_laplace_1d") == (256,)
    assert problems.grid_shape("laplace_3d", n=3) == (3, 3, 3)
    assert problems.grid_shape("gr_30_30") == (30, 30)
    assert problems.grid_shape("sherman1") == (10, 10, 10)
    assert problems.grid_shape("west0479") is None
    assert problems.grid_shape("airfoil") is None
    assert problems.grid_shape("recirc_flow") == (15, 15)


@pytest.mark.parametrize(
    "name", [n for n in problems.names(kind="real") if problems.grid_shape(n)]
)
def test_real_grid_shapes_match_the_sparsity_pattern(name):
    # Natural order on the claimed grid: every coupling joins grid neighbours
    # (up to diagonal ones), never across the wrap from one grid line to the next.
    A = sp.coo_array(problems.get(name))
    shape = problems.grid_shape(name)
    r = np.stack(np.unravel_index(A.row, shape))
    c = np.stack(np.unravel_index(A.col, shape))
    assert np.abs(r - c).max() <= 1


# --------------------------------------------------------------------------- seed matrices


@pytest.mark.parametrize(
    "name, measured, claimed, digits",
    [
        ("seed_convection_diffusion_1d", 3.9115e5, "3.91e+05", 3),
        ("seed_convection_diffusion_2d", 84.47, "84", 2),
        ("seed_biharmonic_2d", 1.3560e4, "1.4e+04", 2),
        ("seed_rbf_kernel", 1.1240e6, "1.1e+06", 2),
        ("seed_biharmonic_1d", 6.9448e8, None, None),
        ("seed_laplace_1d", 2.6768e4, None, None),
        ("seed_laplace_2d", 116.46, None, None),
    ],
)
def test_seed_condition_numbers(name, measured, claimed, digits):
    A = dense(problems.get(name))
    assert A.shape == (256, 256)
    cond = np.linalg.cond(A)
    assert cond == pytest.approx(measured, rel=1e-3)
    if claimed is not None:  # the claim, to the digits it gives
        assert f"{cond:.{digits}g}" == claimed


def test_seed_normalization():
    for name in SEED_NAMES:
        A = dense(problems.get(name))
        expected = {"seed_laplace_1d": 2.0, "seed_laplace_2d": 4.0}.get(name, 1.0)
        assert np.abs(A).max() == expected


def test_seed_laplacians():
    A = dense(problems.get("seed_laplace_1d"))
    np.testing.assert_array_equal(A[5, 3:8], [0, -1, 2, -1, 0])
    np.testing.assert_array_equal(A[0, :3], [2, -1, 0])
    A2 = problems.get("seed_laplace_2d")
    assert (A2 != problems.laplace_2d(16)).nnz == 0
    assert (problems.get("seed_laplace_1d") != problems.laplace_1d(256)).nnz == 0


def test_seed_convection_diffusion_1d_entries():
    A = dense(problems.get("seed_convection_diffusion_1d"))
    h = 1 / 255
    d, c = 0.1 / h**2, 1 / h
    scale = 2 * d + c
    np.testing.assert_array_equal(A[0, :2], [1 / scale, 0])
    np.testing.assert_array_equal(A[-1, -2:], [0, 1 / scale])
    np.testing.assert_allclose(A[100, 99:102], [(-d - c) / scale, 1.0, -d / scale], rtol=1e-14)
    assert np.count_nonzero(A[0]) == 1 and np.count_nonzero(A[-1]) == 1


def test_seed_convection_diffusion_2d_entries():
    n, h = 16, 1 / 15
    A = dense(problems.get("seed_convection_diffusion_2d"))
    d, c = 0.1 / h**2, 1 / h
    scale = 4 * d + c
    k = 5 * n + 7  # interior node
    assert A[k, k] == pytest.approx(1.0, rel=1e-14)
    # upwind neighbour along the slow index (kron(C1, I)), plain diffusion elsewhere
    assert A[k, k - n] == pytest.approx((-d - c) / scale, rel=1e-14)
    for off in (n, 1, -1):
        assert A[k, k + off] == pytest.approx(-d / scale, rel=1e-14)
    assert A[n - 1, n] == 0.0  # no coupling across the end of a grid line
    assert np.count_nonzero(A[k]) == 5


def test_seed_biharmonic_matches_its_formula():
    n, h = 256, 1 / 255
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    L[0], L[-1] = 0, 0
    L[0, 0] = L[-1, -1] = 1
    L /= h**2
    ref = L.T @ L
    ref /= np.abs(ref).max()
    A = dense(problems.get("seed_biharmonic_1d"))
    np.testing.assert_allclose(A, ref, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(A[100, 98:103] / A[100, 100], [1 / 6, -4 / 6, 1, -4 / 6, 1 / 6])

    B = dense(problems.get("seed_biharmonic_2d"))
    n = 16
    k = 6 * n + 6
    scale = 20 + 1e-6
    assert B[k, k] == pytest.approx(1.0, rel=1e-15)
    for off, val in [(1, -8), (n, -8), (n + 1, 2), (n - 1, 2), (2, 1), (2 * n, 1)]:
        assert B[k, k + off] == pytest.approx(val / scale, rel=1e-14)
        assert B[k, k - off] == pytest.approx(val / scale, rel=1e-14)
    assert np.count_nonzero(B[k]) == 13


def test_seed_rbf_kernel_entries():
    A = problems.get("seed_rbf_kernel")
    x = np.linspace(0, 1, 256)
    assert A[0, 0] == 1.0
    assert A[3, 10] == pytest.approx(np.exp(-((x[3] - x[10]) ** 2) / 0.08) / (1 + 1e-4))
    np.testing.assert_allclose(A, problems.rbf_kernel(256) / (1 + 1e-4), rtol=1e-15)


# --------------------------------------------------------------------------- families


def test_laplace_stencils():
    n = 5
    A = dense(problems.laplace_2d(n))
    k = 2 + n * 2
    assert A[k, k] == 4
    assert [A[k, k + o] for o in (-1, 1, -n, n)] == [-1, -1, -1, -1]
    assert A[n - 1, n] == 0 and A[n, n - 1] == 0
    assert problems.laplace_2d(n).nnz == 5 * n * n - 4 * n
    B = dense(problems.laplace_3d(n))
    k = 2 + 2 * n + 2 * n * n
    assert B[k, k] == 6
    assert [B[k, k + o] for o in (-1, 1, -n, n, -n * n, n * n)] == [-1] * 6
    assert np.count_nonzero(B[k]) == 7
    assert B[n - 1, n] == 0 and B[n * n - 1, n * n] == 0
    ev = np.linalg.eigvalsh(dense(problems.laplace_1d(10)))
    np.testing.assert_allclose(ev, 2 - 2 * np.cos(np.arange(1, 11) * np.pi / 11), atol=1e-13)


def test_biharmonic_stencils():
    A = dense(problems.biharmonic_1d(8))
    np.testing.assert_array_equal(A[0, :3], [5, -4, 1])
    np.testing.assert_array_equal(A[4, 2:7], [1, -4, 6, -4, 1])
    np.testing.assert_array_equal(A[-1, -3:], [1, -4, 5])
    n = 7
    B = dense(problems.biharmonic_2d(n))
    k = 3 + 3 * n
    for off, val in [(0, 20), (1, -8), (n, -8), (n + 1, 2), (n - 1, 2), (2, 1), (2 * n, 1)]:
        assert B[k, k + off] == val and B[k, k - off] == val
    assert np.count_nonzero(B[k]) == 13


def test_convection_diffusion_1d_upwind():
    n, eps, beta = 9, 0.05, 2.0
    h = 1 / (n + 1)
    A = dense(problems.convection_diffusion_1d(n, eps=eps, beta=beta))
    np.testing.assert_allclose(
        A[4, 3:6], [-eps / h**2 - beta / h, 2 * eps / h**2 + beta / h, -eps / h**2]
    )
    # beta -> -beta is the mirror image x -> 1 - x
    B = dense(problems.convection_diffusion_1d(n, eps=eps, beta=-beta))
    np.testing.assert_allclose(B, A[::-1, ::-1])
    # an M-matrix: nonpositive off-diagonals, nonnegative row sums
    assert np.all(A - np.diag(np.diag(A)) <= 0) and np.all(A.sum(axis=1) >= -1e-12)
    pure = dense(problems.convection_diffusion_1d(n, eps=eps, beta=0.0))
    np.testing.assert_allclose(pure, eps / h**2 * dense(problems.laplace_1d(n)))


def test_convection_diffusion_2d_constant_and_vortex():
    n, eps = 7, 0.01
    h = 1 / (n + 1)
    w = 1 / np.sqrt(2)
    A = dense(problems.convection_diffusion_2d(n, eps=eps))
    k = 3 + 3 * n
    assert A[k, k] == pytest.approx(4 * eps / h**2 + 2 * w / h)
    assert A[k, k - 1] == pytest.approx(-eps / h**2 - w / h)  # upwind in x (w_x > 0)
    assert A[k, k - n] == pytest.approx(-eps / h**2 - w / h)  # upwind in y (w_y > 0)
    assert A[k, k + 1] == pytest.approx(-eps / h**2)
    assert A[k, k + n] == pytest.approx(-eps / h**2)
    assert A[n - 1, n] == 0

    V = dense(problems.convection_diffusion_2d(n, eps=eps, velocity="vortex"))
    i, j = 2, 1  # x = 3h < 1/2, y = 2h < 1/2
    k = i + n * j
    xi, eta = 2 * (i + 1) * h - 1, 2 * (j + 1) * h - 1
    wx, wy = 2 * eta * (1 - xi**2), -2 * xi * (1 - eta**2)
    assert wx < 0 and wy > 0  # flow goes west and north in this quadrant
    assert V[k, k + 1] == pytest.approx(-eps / h**2 + wx / h)  # upwind east
    assert V[k, k - 1] == pytest.approx(-eps / h**2)
    assert V[k, k - n] == pytest.approx(-eps / h**2 - wy / h)  # upwind south
    assert V[k, k + n] == pytest.approx(-eps / h**2)
    assert V[k, k] == pytest.approx(4 * eps / h**2 + (abs(wx) + abs(wy)) / h)
    for M in (A, V):  # M-matrices, weakly diagonally dominant
        off = M - np.diag(np.diag(M))
        assert np.all(off <= 0) and np.all(M.sum(axis=1) >= -1e-9)


def test_diffusion_2d():
    n = 9
    L = problems.laplace_2d(n)
    for coefficient in ("lognormal", "jumps"):
        A = problems.diffusion_2d(n, coefficient=coefficient, contrast=1.0)
        np.testing.assert_allclose(dense(A), dense(L), rtol=1e-14)
    A = problems.diffusion_2d(n, contrast=1e4, seed=3)
    assert (A != problems.diffusion_2d(n, contrast=1e4, seed=3)).nnz == 0
    assert abs(A - problems.diffusion_2d(n, contrast=1e4, seed=4)).max() > 0
    D = dense(A)
    # interior rows of a conservative scheme sum to zero; boundary rows to > 0
    inner = [i + n * j for i in range(1, n - 1) for j in range(1, n - 1)]
    np.testing.assert_allclose(D[inner].sum(axis=1), 0, atol=1e-9 * D.max())
    assert np.all(D.sum(axis=1) >= -1e-9 * D.max())
    # face coefficients lie within the coefficient range [contrast^-1/2, contrast^1/2]
    faces = -D[D < 0]
    assert faces.min() >= 1e-2 * (1 - 1e-12) and faces.max() <= 1e2 * (1 + 1e-12)
    jumps = dense(problems.diffusion_2d(n, coefficient="jumps", contrast=100.0, seed=1))
    vals = np.unique(np.round(-jumps[jumps < 0], 10))
    assert set(vals) <= {1.0, 100.0, round(200 / 101, 10)} and len(vals) >= 2


def test_anisotropic_2d_strong_direction_follows_theta():
    n, eps = 6, 1e-4
    k = 2 + 2 * n
    A = dense(problems.anisotropic_2d(n, epsilon=eps, theta=0.0))
    assert A[k, k + 1] == pytest.approx((2 * eps - 4) / 6)  # strong along x (offset 1)
    assert A[k, k + n] == pytest.approx((2 - 4 * eps) / 6)
    B = dense(problems.anisotropic_2d(n, epsilon=eps, theta=np.pi / 2))
    assert B[k, k + n] == pytest.approx((2 * eps - 4) / 6, abs=1e-12)  # strong along y
    assert B[k, k + 1] == pytest.approx((2 - 4 * eps) / 6, abs=1e-12)
    iso = dense(problems.anisotropic_2d(n, epsilon=1.0, theta=0.3))
    assert iso[k, k] == pytest.approx(8 / 3) and iso[k, k + n + 1] == pytest.approx(-1 / 3)
    assert np.count_nonzero(A[k]) == 9


def test_kernels():
    E = problems.exponential_kernel(6, rho=0.5)
    assert E[1, 4] == 0.125 and E[4, 1] == 0.125 and np.all(np.diag(E) == 1)
    inv = np.linalg.inv(E)
    assert np.abs(np.triu(inv, 2)).max() < 1e-12  # tridiagonal inverse
    R = problems.rbf_kernel(5, length_scale=0.5, nugget=0.1)
    assert R[0, 0] == pytest.approx(1.1) and R[0, 4] == pytest.approx(np.exp(-2.0))
    ev = np.linalg.eigvalsh(problems.rbf_kernel(200, nugget=1e-3))
    assert ev.min() > 1e-3 * (1 - 1e-6)


# --------------------------------------------------------------------------- real matrices


def test_bundled_matrices_ship_with_the_package():
    pkg = Path(learned_precond.__file__).parent
    for m in problems.real.BUNDLED.values():
        path = problems.bundled_matrix_path(m.name)
        assert path.is_file() and path.parent == pkg / "data"
    assert (pkg / "data" / "README.md").is_file()
    with pytest.raises(ValueError, match="bundled matrices are nos4"):
        problems.bundled_matrix_path("nos5")


@pytest.mark.parametrize(
    "name, n, nnz",
    [
        ("nos4", 100, 594),
        ("gr_30_30", 900, 7744),
        ("1138_bus", 1138, 4054),
        ("tumorAntiAngiogenesis_2", 305, 2699),
        ("sherman1", 1000, 3750),
        ("west0479", 479, 1910),
        ("steam2", 600, 13760),
        ("cdde1", 961, 4681),
        ("jpwh_991", 991, 6027),
        ("orsirr_1", 1030, 6858),
        ("add32", 4960, 23884),
    ],
)
def test_bundled_sizes_match_the_readme(name, n, nnz):
    A = problems.get(name)
    assert A.shape == (n, n) and A.nnz == nnz
    assert problems.real.BUNDLED[name].size == n


def test_zero_diagonals_of_the_hard_real_matrices():
    assert np.count_nonzero(problems.get("west0479").diagonal() == 0) == 471
    assert np.count_nonzero(problems.get("tumorAntiAngiogenesis_2").diagonal() == 0) == 122


def test_pyamg_examples_match_pyamg():
    from pyamg.gallery import load_example

    for name, m in problems.real.PYAMG_EXAMPLES.items():
        A = problems.get(name)
        raw = sp.csr_array(load_example(name)["A"])
        assert A.shape == raw.shape == (m.size, m.size)
        assert abs(A - raw).max() <= 1e-12 * abs(raw).max()
    # recirc_flow's free nodes are the first 225 vertices, in x-fastest order
    xy = load_example("recirc_flow")["vertices"][:225].reshape(15, 15, 2)
    assert np.all(np.diff(xy[..., 0], axis=1) > 0) and np.all(np.diff(xy[..., 1], axis=0) > 0)


# --------------------------------------------------------------------------- load_matrix


def test_load_matrix_round_trip_and_conversions(tmp_path):
    M = sp.random_array((6, 6), density=0.5, rng=np.random.default_rng(0), format="coo")
    M = M + sp.eye_array(6)
    path = tmp_path / "m.mtx"
    scipy.io.mmwrite(path, M)
    A = problems.load_matrix(path)
    assert type(A) is sp.csr_array and A.dtype == np.float64 and A.has_canonical_format
    np.testing.assert_allclose(A.toarray(), M.toarray())
    assert (problems.load_matrix(str(path)) != A).nnz == 0

    gz = tmp_path / "m.mtx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_allclose(problems.load_matrix(gz).toarray(), M.toarray())

    sym = tmp_path / "sym.mtx"
    sym.write_text(
        "%%MatrixMarket matrix coordinate integer symmetric\n3 3 3\n1 1 2\n2 1 -1\n3 3 4\n"
    )
    S = problems.load_matrix(sym)
    assert S.dtype == np.float64
    np.testing.assert_array_equal(S.toarray(), [[2, -1, 0], [-1, 0, 0], [0, 0, 4]])

    pat = tmp_path / "pat.mtx"
    pat.write_text("%%MatrixMarket matrix coordinate pattern general\n2 2 2\n1 1\n2 2\n")
    np.testing.assert_array_equal(problems.load_matrix(pat).toarray(), np.eye(2))


def test_load_matrix_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*problems.get"):
        problems.load_matrix(tmp_path / "missing.mtx")
    with pytest.raises(ValueError, match="is a directory"):
        problems.load_matrix(tmp_path)
    txt = tmp_path / "notes.mtx"
    txt.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="not a Matrix Market file.*'%%MatrixMarket'"):
        problems.load_matrix(txt)
    binary = tmp_path / "bin.mtx"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="not a"):
        problems.load_matrix(binary)
    rect = tmp_path / "rect.mtx"
    scipy.io.mmwrite(rect, sp.coo_array(np.ones((2, 3))))
    with pytest.raises(ValueError, match="2 x 3 matrix.*square"):
        problems.load_matrix(rect)
    cplx = tmp_path / "c.mtx"
    cplx.write_text("%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1.0 2.0\n")
    with pytest.raises(NotImplementedError, match="complex"):
        problems.load_matrix(cplx)
    broken = tmp_path / "broken.mtx"
    broken.write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 x\n")
    with pytest.raises(ValueError, match="could not parse"):
        problems.load_matrix(broken)
    header = tmp_path / "vector.mtx"
    header.write_text("%%MatrixMarket vector coordinate real general\n3 3 1\n1 1 1\n")
    with pytest.raises(ValueError, match="expected '%%MatrixMarket matrix"):
        problems.load_matrix(header)


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize(
    "module", [problems, problems.real, problems.seed, problems.pde, problems.family])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples to run"
    assert result.failed == 0


def test_gallery_page_documents_every_problem():
    page = Path(__file__).resolve().parents[1] / "docs" / "gallery.md"
    if not page.is_file():
        pytest.skip("docs/gallery.md is not part of this installation")
    text = page.read_text()
    for name in problems.names():
        assert f"### `{name}`" in text, f"docs/gallery.md has no section for {name}"
