"""LearnedLU: the GFMM block, the blocked substitution, fitting, persistence."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from contract import PreconditionerContract, convection_diffusion_2d, laplace_2d
from learned_precond.problems import get as get_problem
from scipy.sparse.linalg import aslinearoperator, cg, gmres

from learned_precond import FitConvergenceWarning, LearnedLU, ModelFileError
from learned_precond._substitution import pack_lower, solve_lower, solve_lower_torch
from learned_precond.gfmm import GFMMBlock, GFMMLayout, transpose_params
from learned_precond.krylov import solve
from learned_precond.training import LUModel

FAST = {"block_size": 16, "rank": 4, "max_steps": 20, "seed": 0, "init": "gfmm"}


def quiet_fit(A, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        return LearnedLU.fit(A, **{**FAST, **options})


def laplace_1d(n):
    return sp.csr_array(sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)))


def random_block(kind, M, P, r, seed, unit=False):
    g = torch.Generator().manual_seed(seed)
    blk = GFMMBlock(GFMMLayout(M, P, r), kind, unit_diagonal=unit)
    with torch.no_grad():
        for p in blk.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        if blk.D is not None:
            blk.D.add_(3 * torch.eye(P))
    return blk


class TestLearnedLUContract(PreconditionerContract):
    preconditioner = "learned_lu"
    fit_options = {**FAST}
    cases = ("laplace2d-32", "convdiff2d-32")
    accepts_operator = True

    @classmethod
    def fit(cls, A, **extra):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitConvergenceWarning)
            return super().fit(A, **extra)


# -- the GFMM block ------------------------------------------------------------------
@pytest.mark.parametrize("M", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("kind", ["lower", "upper", "general"])
def test_gfmm_structure_and_transpose(kind, M):
    P = 4
    blk = random_block(kind, M, P, 3, seed=M)
    dense = blk.to_dense().detach().numpy()
    for i in range(M):
        for j in range(M):
            block = dense[i * P:(i + 1) * P, j * P:(j + 1) * P]
            if (kind == "lower" and j > i) or (kind == "upper" and j < i):
                assert np.all(block == 0), (i, j)
            else:  # every allowed block is reached by some parameter
                assert np.abs(block).sum() > 0, (i, j)
    X = torch.randn(M * P, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(blk.transpose_apply(X).detach().numpy(), dense.T @ X.numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lower", "upper", "general"])
def test_gfmm_has_no_dead_parameters(kind):
    blk = random_block(kind, 16, 4, 3, seed=0)
    (blk.to_dense() ** 2).sum().backward()
    for name, p in blk.named_parameters():
        assert torch.all(p.grad != 0), f"parameter {name} has entries that never reach the output"


def test_parameters_grow_linearly():
    counts = {N: LUModel(GFMMLayout(N // 32, 32, 8), symmetric=False).n_parameters()
              for N in (4096, 65536)}
    assert counts[65536] <= 17 * counts[4096]
    # L: E blocks; U: D and E blocks; both: two bases and transfers: ~N (3P + 4r)
    assert counts[65536] < 65536 * (3 * 32 + 4 * 8) * 1.2


# -- blocked substitution ----------------------------------------------------------------
@pytest.mark.parametrize("M", [1, 2, 4, 8, 32])
@pytest.mark.parametrize("k", [1, 3])
def test_substitution_matches_dense_and_reference(M, k):
    P = 4
    blk = random_block("lower", M, P, 3, seed=M + k)
    L = blk.to_dense().detach().numpy()
    b = np.random.default_rng(M).standard_normal((M * P, k))
    expected = np.linalg.solve(L, b)
    p = blk.params()
    ref = solve_lower_torch(p, torch.from_numpy(b).reshape(M, P, k)).reshape(M * P, k)
    np.testing.assert_allclose(ref.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    packed = pack_lower(p, M, P, Dinv=np.linalg.inv(blk.D.detach().numpy()))
    fast = solve_lower(packed, b.reshape(M, P, k)).reshape(M * P, k)
    np.testing.assert_allclose(fast, expected, rtol=1e-10, atol=1e-12)
    # transposed solve through the transformed parameters: L^T = rev . lower(T p) . rev
    Tp = transpose_params(p)
    packedT = pack_lower(Tp, M, P, Dinv=np.linalg.inv(Tp["D"].detach().numpy()))
    fastT = solve_lower(packedT, b.reshape(M, P, k)[::-1])[::-1].reshape(M * P, k)
    np.testing.assert_allclose(fastT, np.linalg.solve(L.T, b), rtol=1e-10, atol=1e-12)


def test_apply_equals_inverse_of_learned_product():
    A = convection_diffusion_2d(12)
    M = quiet_fit(A, block_size=8, rank=3)
    model = M._model
    N = M.layout.size
    A_hat = model.product(torch.eye(N, dtype=torch.float64)).detach().numpy()
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    y_slots = np.linalg.solve(A_hat, M.ordering.to_slots(x)) / M.scale
    np.testing.assert_allclose(M @ x, M.ordering.from_slots(y_slots), rtol=1e-9, atol=1e-12)


# -- fitting -------------------------------------------------------------------------
def test_one_line_usage_from_the_readme():
    A = laplace_2d(24)
    b = np.ones(A.shape[0])
    x, info = gmres(A, b, M=quiet_fit(A), rtol=1e-8)
    assert info == 0
    assert np.linalg.norm(b - A @ x) <= 1e-7 * np.linalg.norm(b)


def test_fits_L_U_to_A_not_its_transpose():
    # Nonsymmetric A whose block tridiagonal init is exact: L U must equal A.
    A = convection_diffusion_2d(8)
    M = quiet_fit(A, block_size=8, ordering="natural", max_steps=0)
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    np.testing.assert_allclose(M @ (A @ x), x, rtol=1e-9, atol=1e-9)
    assert np.linalg.norm(M @ (A.T @ x) - x) > 1e-3 * np.linalg.norm(x)


def test_1d_laplacian_exact_block_bidiagonal():
    A = laplace_1d(4096)
    M = quiet_fit(A, block_size=32, rank=8, max_steps=0)
    result = solve(A, np.ones(4096), M, method="gmres", rtol=1e-8)
    assert result.converged and result.iterations <= 3


def test_symmetric_factorization_is_spd_and_cg_converges():
    A = laplace_2d(24)
    M = quiet_fit(A)
    assert M.symmetric
    dense = M @ np.eye(A.shape[0])
    np.testing.assert_allclose(dense, dense.T, rtol=1e-10, atol=1e-12)
    assert np.linalg.eigvalsh(0.5 * (dense + dense.T)).min() > 0
    b = np.ones(A.shape[0])
    x, info = cg(A, b, M=M, rtol=1e-8)
    assert info == 0


@pytest.mark.parametrize("method", ["gmres", "bicgstab", "bicg"])
def test_nonsymmetric_methods_converge(method):
    A = convection_diffusion_2d(24)
    M = quiet_fit(A)
    assert not M.symmetric
    result = solve(A, np.ones(A.shape[0]), M, method=method, rtol=1e-8)
    assert result.converged
    assert result.iterations < solve(A, np.ones(A.shape[0]), None, method=method,
                                     rtol=1e-8).iterations


@pytest.mark.parametrize("n", [1, 5, 37, 100])
def test_any_size_is_padded_invisibly(n):
    A = laplace_1d(n) + sp.eye_array(n) * 0.1
    M = quiet_fit(A, block_size=16, rank=4)
    x = np.random.default_rng(n).standard_normal(n)
    y = M @ x
    assert y.shape == (n,) and np.all(np.isfinite(y))
    np.testing.assert_allclose(M @ (A @ x), x, rtol=1e-6, atol=1e-8)


def test_linear_operator_input():
    A = laplace_2d(16)
    M = quiet_fit(aslinearoperator(A))
    result = solve(A, np.ones(A.shape[0]), M, method="gmres", rtol=1e-8)
    assert result.converged


def test_dense_input():
    # exponential covariance rho^|i-j| (dense): low-rank off-diagonal blocks
    i = np.arange(200)
    A = 0.9 ** np.abs(np.subtract.outer(i, i))
    M = quiet_fit(A, block_size=16, rank=8, max_steps=50)
    result = solve(A, np.ones(200), M, method="gmres", rtol=1e-8)
    assert result.converged
    assert result.iterations < solve(A, np.ones(200), None, method="gmres").iterations


def test_training_is_never_worse_than_its_initialization():
    A = laplace_2d(32)
    M = quiet_fit(A, max_steps=60, lr=3e-2)  # an aggressive rate that may overshoot
    first, *rest = M.report.val_history
    kept = min(v for _, v in M.report.val_history)
    assert kept <= first[1]
    M0 = quiet_fit(A, max_steps=0)
    b = np.ones(A.shape[0])
    assert solve(A, b, M).iterations <= solve(A, b, M0).iterations + 1


def test_training_improves_the_preconditioner():
    # From block Jacobi (no coupling between leaves) gradient descent must
    # learn the couplings: fewer GMRES iterations and a smaller ||LU - A||.
    A = laplace_2d(16)
    b = np.ones(A.shape[0])
    options = {"block_size": 8, "rank": 4, "init": "block_jacobi", "seed": 0}
    M0 = quiet_fit(A, **options, max_steps=0)
    M = quiet_fit(A, **options, max_steps=300, lr=1e-2, patience=100)
    assert M.report.best_step > 0
    assert M.report.relative_error < M.report.init_relative_error
    assert solve(A, b, M).iterations < solve(A, b, M0).iterations


def test_deterministic_given_seed():
    A = convection_diffusion_2d(16)
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    y1 = quiet_fit(A, seed=3) @ x
    y2 = quiet_fit(A, seed=3) @ x
    np.testing.assert_array_equal(y1, y2)


def test_max_steps_warns_and_callback_is_called():
    A = laplace_2d(16)
    seen = []
    with pytest.warns(FitConvergenceWarning, match="max_steps"):
        # block_size 8 < bandwidth 16: not exact at initialization, so it trains
        LearnedLU.fit(A, **{**FAST, "block_size": 8, "max_steps": 10, "tol": 0.0},
                      callback=lambda step, info: seen.append((step, info["val"])))
    assert seen and seen[-1][0] == 10


def test_warm_start_reuses_factors():
    A = laplace_2d(24)
    M = quiet_fit(A, max_steps=40)
    rng = np.random.default_rng(0)
    A2 = A.copy()
    A2.data = A2.data * (1 + 0.05 * rng.uniform(-1, 1, A2.data.size))
    A2 = sp.csr_array(0.5 * (A2 + A2.T))
    M2 = quiet_fit(A2, init=M, max_steps=40)
    assert M2.report.init == "warm_start"
    np.testing.assert_array_equal(M2.ordering.slots, M.ordering.slots)
    assert solve(A2, np.ones(A.shape[0]), M2).converged


def test_repr_is_a_table():
    text = repr(quiet_fit(laplace_2d(16)))
    for word in ("LearnedLU", "block size", "levels", "rank", "parameters", "memory",
                 "fit steps", "fit time"):
        assert word in text


@pytest.mark.parametrize("options, error, match", [
    ({"block_size": 0}, ValueError, "block_size"),
    ({"block_size": 2.5}, TypeError, "block_size"),
    ({"rank": 40, "block_size": 16}, ValueError, "rank"),
    ({"max_steps": -1}, ValueError, "max_steps"),
    ({"ordering": "spiral"}, ValueError, "ordering"),
    ({"loss": "l7"}, ValueError, "loss"),
    ({"init": "magic"}, ValueError, "init"),
    ({"lr": -1.0}, ValueError, "lr"),
    ({"factor_dtype": "float16"}, ValueError, "factor_dtype"),
])
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        LearnedLU.fit(laplace_2d(8), **{**FAST, **options})


def test_transpose_loss_needs_rmatvec():
    A = laplace_2d(8)
    op = sp.linalg.LinearOperator(A.shape, matvec=lambda x: A @ x, dtype=np.float64)
    with pytest.raises(ValueError, match="rmatvec"):
        LearnedLU.fit(op, transpose_loss=True, **FAST)


# -- persistence --------------------------------------------------------------------------
def test_save_load_round_trip_is_bit_identical(tmp_path):
    A = convection_diffusion_2d(16)
    M = quiet_fit(A)
    path = tmp_path / "m.npz"
    M.save(path)
    M2 = LearnedLU.load(path, A=A)
    X = np.random.default_rng(0).standard_normal((A.shape[0], 3))
    np.testing.assert_array_equal(M @ X, M2 @ X)
    np.testing.assert_array_equal(M.rmatvec(X[:, 0]), M2.rmatvec(X[:, 0]))


@pytest.mark.parametrize("init", ["gfmm", "auto"], ids=["gfmm", "nested"])
@pytest.mark.parametrize("A", [laplace_2d(16), convection_diffusion_2d(16)],
                         ids=["symmetric", "nonsymmetric"])
def test_float32_factors_halve_memory_and_match_float64(A, init, tmp_path):
    M64 = quiet_fit(A, factor_dtype="float64", init=init)
    M32 = quiet_fit(A, factor_dtype="float32", init=init)
    assert (M64.factor_dtype, M32.factor_dtype) == ("float64", "float32")
    # the int32 index arrays do not halve (an untrained nested start, 256
    # unknowns: 0.60x)
    assert M32.nbytes < 0.65 * M64.nbytes
    X = np.random.default_rng(1).standard_normal((A.shape[0], 2))
    for apply in (lambda M: M @ X, lambda M: M.rmatvec(X[:, 0])):
        y64, y32 = apply(M64), apply(M32)
        assert y32.dtype == np.float64
        np.testing.assert_allclose(y32, y64, rtol=0, atol=1e-5 * np.abs(y64).max())
    # The storage precision survives save/load, outputs bit-identical.
    M32.save(tmp_path / "m32.npz")
    M2 = LearnedLU.load(tmp_path / "m32.npz", A=A)
    assert M2.factor_dtype == "float32"
    np.testing.assert_array_equal(M2 @ X, M32 @ X)
    assert "float32 factors" in repr(M32)


def test_zero_far_field_is_not_swept_and_sparse_near_field_is_compacted():
    # The block tridiagonal start has zero bridges (so no far field) and
    # near-field blocks E_i = A_(i,i-1) S_(i-1)^-1 with few nonzero rows: the
    # packs drop the tree sweep and keep only those rows, and M is unchanged.
    A = laplace_2d(32)
    M = quiet_fit(A, max_steps=0, block_size=16, init="block_tridiagonal")
    L = M._packs["L"]
    assert L.V.shape[1] == 0 and L.W.size == 0
    assert L.E_nr[1:].max() < 16
    dense = np.linalg.inv(M.to_dense())
    X = np.random.default_rng(0).standard_normal((A.shape[0], 2))
    np.testing.assert_allclose(M @ X, dense @ X, rtol=1e-8, atol=1e-10)


def test_auto_factor_dtype_keeps_double_for_small_n():
    assert quiet_fit(laplace_2d(16)).factor_dtype == "float64"


def test_preconditioned_loss_trains_and_keeps_the_best():
    A = convection_diffusion_2d(16)
    M = quiet_fit(A, loss="preconditioned", max_steps=40, block_size=8)
    assert M.report.loss == "preconditioned"
    assert len(M.report.loss_history) > 0 and np.all(np.isfinite(M.report.loss_history))
    assert min(v for _, v in M.report.val_history) <= M.report.val_history[0][1]
    assert solve(A, np.ones(A.shape[0]), M).converged


def test_auto_init_keeps_the_compressed_exact_factors_where_they_are_better():
    # A power-network matrix (1138_bus): couplings far beyond neighbouring
    # leaves make the block tridiagonal start useless (GMRES does not converge
    # in 2000 iterations); init="gfmm" tries the compressed exact LU as well.
    from learned_precond import problems

    A = problems.get_problem("1138_bus").A
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = LearnedLU.fit(A, seed=0, max_steps=1, init="gfmm")
    assert M.report.init == "exact_compressed"
    assert any("compressed exact LU kept" in note for note in M.report.notes)
    result = solve(A, A @ np.ones(A.shape[0]), M, maxiter=2000)
    assert result.converged and result.iterations < 200


def test_auto_init_keeps_block_tridiagonal_where_it_is_exact():
    M = quiet_fit(get_problem("laplace_1d", n=256), block_size=16)
    assert M.report.init == "block_tridiagonal"
    assert any("block tridiagonal kept" in note for note in M.report.notes)


def test_compressed_exact_start_beats_block_tridiagonal_on_poisson():
    # The far field matters in 2-D: the compressed exact factors need fewer
    # GMRES iterations than the block tridiagonal start, and fewer with a
    # higher rank.
    A = laplace_2d(32)
    b = A @ np.ones(A.shape[0])
    its = {}
    for init, rank in (("block_tridiagonal", 8), ("exact_compressed", 4),
                       ("exact_compressed", 16)):
        M = quiet_fit(A, max_steps=0, init=init, rank=rank, grid_shape=(32, 32))
        its[init, rank] = solve(A, b, M).iterations
    assert its["exact_compressed", 16] < its["exact_compressed", 4] \
        < its["block_tridiagonal", 8]


def test_load_rejects_other_matrix(tmp_path):
    A = laplace_2d(16)
    path = tmp_path / "m.npz"
    quiet_fit(A).save(path)
    with pytest.raises(ModelFileError, match="different matrix"):
        LearnedLU.load(path, A=2 * A)
    with pytest.raises(ModelFileError, match="256x256"):
        LearnedLU.load(path, A=laplace_2d(8))


def test_load_rejects_crafted_files(tmp_path):
    import pickle

    A = laplace_2d(16)
    good = tmp_path / "good.npz"
    quiet_fit(A).save(good)
    # a pickle payload that would run code if unpickled
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps(eval))
    with pytest.raises(ModelFileError):
        LearnedLU.load(evil)
    # a truncated file
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelFileError):
        LearnedLU.load(trunc)
    # arrays of the wrong shape
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if k.startswith("L/"))  # a factor array
    arrays[key] = np.zeros((3, 3))
    bad = tmp_path / "shape.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="shape"):
        LearnedLU.load(bad)
    # an object array (pickle inside npz) is refused, not executed
    arrays[key] = np.array([eval], dtype=object)
    objfile = tmp_path / "obj.npz"
    np.savez(objfile, **arrays)
    with pytest.raises(ModelFileError):
        LearnedLU.load(objfile)


def test_to_dense_is_the_matrix_M_inverts():
    A = convection_diffusion_2d(12)
    M = quiet_fit(A, block_size=8, rank=3)
    A_hat = M.to_dense()
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    np.testing.assert_allclose(M @ (A_hat @ x), x, rtol=1e-9, atol=1e-9)


def test_packed_block_diagonal_matches_numpy_in_both_storages():
    from learned_precond._substitution import PackedBlockDiagonal

    rng = np.random.default_rng(0)
    blocks, Y = rng.standard_normal((5, 4, 4)), rng.standard_normal((5, 4, 3))
    pk = PackedBlockDiagonal(blocks)
    np.testing.assert_allclose(pk.apply(Y), blocks @ Y, rtol=1e-13)
    pk.astype(np.float32)
    assert pk.nbytes == blocks.size * 4
    np.testing.assert_allclose(pk.apply(Y), blocks.astype(np.float32).astype(float) @ Y,
                               rtol=1e-12)
