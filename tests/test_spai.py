"""SPAI preconditioners, PDE matrix families and the graph-conditioned SPAI generator."""

import functools
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from contract import PreconditionerContract, laplace_2d, rhs, variable_diffusion_2d

from learned_precond import ModelFileError, PreconditionerSetupError
from learned_precond.baselines import IncompleteCholesky
from learned_precond.spai.loss import loss_plan, spai_loss
from learned_precond.baselines import Jacobi
from learned_precond.family import GeneratedSPAI, MatrixFamily, SPAIGenerator
from learned_precond.krylov import solve
from learned_precond.spai import SPAI, ClassicalSPAI, sparsity_pattern, spd_certificate

torch.set_num_threads(1)


# -- tiny trained generators, shared by the tests ---------------------------------------


@functools.lru_cache(maxsize=None)
def tiny_generator(variant="deterministic"):
    """A generator trained for a few seconds on 8 x 8 diffusion matrices."""
    fam = MatrixFamily("diffusion", n=8, size=60, n_train=48)
    return SPAIGenerator.train(fam, variant=variant, epochs=4, batch_size=12, hidden=16,
                               layers=2, decoder_layers=1, lr=1e-2, seed=0)


def dense_matrix(M):
    return M @ np.eye(M.shape[0])


# -- the contract -------------------------------------------------------------------------


class TestSPAI(PreconditionerContract):
    preconditioner = SPAI
    fit_options = {"max_steps": 100}
    # R R^T is SPD: CG runs too (methods_for adds it for symmetric classes)


class TestSPAINonsymmetric(PreconditionerContract):
    preconditioner = SPAI
    fit_options = {"symmetric": False, "max_steps": 100}
    cases = ("convdiff2d-32", "laplace2d-32")
    krylov_methods = ("gmres", "bicgstab")


class TestSPAILeastSquares(PreconditionerContract):
    preconditioner = ClassicalSPAI
    fit_options = {"symmetric": False}
    cases = ("convdiff2d-32",)
    krylov_methods = ("gmres", "bicgstab")


class TestFSAI(PreconditionerContract):
    preconditioner = ClassicalSPAI


class TestIncompleteCholesky(PreconditionerContract):
    preconditioner = IncompleteCholesky
    max_iterations = {("laplace2d-32", "cg"): 15}


class TestGeneratedSPAI(PreconditionerContract):
    preconditioner = GeneratedSPAI
    cases = ("vardiff2d-32", "laplace2d-32")

    @classmethod
    def fit(cls, A, **extra):
        return GeneratedSPAI.fit(A, model=tiny_generator(), **extra)


# -- exact losses ------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [True, False])
def test_loss_plan_matches_dense(symmetric):
    A = variable_diffusion_2d(6)
    P = sparsity_pattern(A, "A", extra_fill=0.3)
    r = np.random.default_rng(0).standard_normal(P.nnz)
    R = sp.csr_array((r, P.indices, P.indptr), shape=P.shape).toarray()
    Ad = A.toarray()
    E = np.eye(36) - (R.T @ Ad @ R if symmetric else Ad @ R)
    plan = loss_plan(A, P, symmetric=symmetric)
    loss = spai_loss(torch.from_numpy(A.data), torch.from_numpy(r), plan)
    assert float(loss) == pytest.approx(np.sum(E * E), rel=1e-12)


# -- patterns ------------------------------------------------------------------------------


def test_patterns():
    A = laplace_2d(8)
    PA = sparsity_pattern(A, "A")
    assert PA.nnz == A.nnz
    assert sparsity_pattern(A, "A2").nnz == sp.csr_array(A @ A).nnz
    P = sparsity_pattern(A, "A", extra_fill=0.2)
    added = P.nnz - A.nnz
    assert abs(added - 0.2 * A.nnz) <= 2 and (P - P.T).count_nonzero() == 0
    assert (P.multiply(PA)).sum() == A.nnz  # the base pattern is kept
    mask = np.eye(64, dtype=bool)
    assert sparsity_pattern(A, mask).nnz == 64
    with pytest.raises(ValueError, match="pattern"):
        sparsity_pattern(A, "A3")
    with pytest.raises(ValueError, match="shape"):
        sparsity_pattern(A, np.eye(5, dtype=bool))
    with pytest.raises(ValueError, match="extra_fill"):
        sparsity_pattern(A, "A", extra_fill=-0.1)


# -- per-matrix SPAI ------------------------------------------------------------------------


def test_spai_is_spd_and_beats_jacobi():
    A = MatrixFamily("diffusion", n=16).matrix(1601)
    M = SPAI.fit(A, max_steps=150)
    assert M.form == "R R^T" and M.symmetric and M.report.certificate
    assert M.report.loss < 0.5 * M.report.loss_init
    D = dense_matrix(M)
    np.testing.assert_allclose(D, D.T, atol=1e-13)
    assert np.linalg.eigvalsh(D).min() > 0
    b = rhs(A.shape[0])
    spai = solve(A, b, M, method="cg", rtol=1e-8)
    jacobi = solve(A, b, Jacobi.fit(A), method="cg", rtol=1e-8)
    assert spai.converged and spai.iterations < 0.7 * jacobi.iterations, (spai, jacobi)


def test_gradient_descent_reaches_least_squares_spai():
    """Nonsymmetric loss: L-BFGS and the column-wise least squares agree."""
    from contract import convection_diffusion_2d

    A = convection_diffusion_2d(10)
    gd = SPAI.fit(A, symmetric=False, max_steps=1000, tol=0.0)
    ls = SPAI.fit(A, symmetric=False, method="lstsq")
    assert abs(gd.R - ls.R).max() < 1e-6 * abs(ls.R).max()
    # least squares is the minimum: perturbing R on its pattern increases the loss
    eye = np.eye(100)
    base = np.linalg.norm(eye - A @ ls.R.toarray()) ** 2
    R2 = ls.R.copy()
    R2.data += 1e-3 * np.random.default_rng(0).standard_normal(R2.nnz)
    assert np.linalg.norm(eye - A @ R2.toarray()) ** 2 > base


def test_fsai_unit_diagonal_and_spd():
    A = variable_diffusion_2d(8)
    M = ClassicalSPAI.fit(A, pattern="A2")
    assert M.report.method == "fsai"
    G = M.R.T.toarray()
    assert np.allclose(np.triu(G, 1), 0.0)
    np.testing.assert_allclose(np.diag(G @ A.toarray() @ G.T), 1.0, rtol=1e-10)
    assert np.linalg.eigvalsh(dense_matrix(M)).min() > 0


def test_spai_option_errors():
    A = laplace_2d(6)
    with pytest.raises(ValueError, match="fsai"):
        SPAI.fit(A, method="lstsq", symmetric=True)
    with pytest.raises(ValueError, match="SPD"):
        SPAI.fit(A, method="fsai", symmetric=False)
    with pytest.raises(ValueError, match="unknown method"):
        SPAI.fit(A, method="newton")
    from contract import convection_diffusion_2d

    with pytest.raises(ValueError, match="symmetric"):
        SPAI.fit(convection_diffusion_2d(6), symmetric=True)
    Z = sp.csr_array(np.array([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(PreconditionerSetupError, match="diagonal"):
        SPAI.fit(Z, symmetric=False)
    with pytest.raises(PreconditionerSetupError, match="A\\[i, i\\] <= 0"):
        SPAI.fit(-laplace_2d(4), symmetric=True)


def test_spd_certificate_detects_singular_r():
    assert spd_certificate(sp.eye_array(4, format="csr")) is not None
    R = sp.csr_array(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert spd_certificate(R) is None


def test_spai_save_load(tmp_path):
    A = variable_diffusion_2d(8)
    M = SPAI.fit(A, max_steps=50)
    path = tmp_path / "spai.npz"
    M.save(path)
    M2 = SPAI.load(path)
    x = rhs(64)
    np.testing.assert_array_equal(M @ x, M2 @ x)
    assert M2.form == "R R^T" and M2.report.method == "gd"
    # a crafted file with a singular R is refused
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["R/data"] = np.zeros_like(arrays["R/data"])  # R = 0: singular
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError):
        SPAI.load(bad)


# -- incomplete Cholesky ---------------------------------------------------------------------


def test_incomplete_cholesky_exact_limit_and_symmetry():
    A = variable_diffusion_2d(10)
    M = IncompleteCholesky.fit(A, drop_tol=0.0)
    x = rhs(100)
    np.testing.assert_allclose(M @ (A @ x), x, rtol=1e-10)
    D = dense_matrix(IncompleteCholesky.fit(A, drop_tol=0.05))
    np.testing.assert_allclose(D, D.T, atol=1e-12)
    assert np.linalg.eigvalsh(D).min() > 0
    from contract import convection_diffusion_2d

    with pytest.raises(PreconditionerSetupError, match="symmetric"):
        IncompleteCholesky.fit(convection_diffusion_2d(6))


# -- families ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["diffusion", "biharmonic"])
def test_family_is_deterministic_spd(kind):
    fam = MatrixFamily(kind, n=6, size=10, n_train=8)
    A = fam.matrix(9)
    assert (A != fam.matrix(9)).nnz == 0
    assert (A != MatrixFamily(kind, n=6, size=10, n_train=8, seed=1).matrix(9)).nnz > 0
    assert list(fam.test_indices) == [8, 9] and len(fam.train_indices) == 8
    dense = A.toarray()
    np.testing.assert_allclose(dense, dense.T)
    assert np.linalg.eigvalsh(dense).min() > 0
    assert fam.at(9).matrix(9).shape == (81, 81)
    L = laplace_2d(6)
    assert A.nnz == (L.nnz if kind == "diffusion" else sp.csr_array(L @ L).nnz)


def test_family_coefficient_range_and_errors():
    fam = MatrixFamily("diffusion", n=8, contrast=(50.0, 50.0))
    f = fam.coefficient(3)
    t = np.linspace(0, 1, 41)
    vals = f(t[:, None], t[None, :])
    assert vals.min() >= 1.0 and vals.max() <= 50.0 and vals.max() > 40.0
    # constant coefficient 1 would give the Laplacian: the stencil signs are right
    A = fam.matrix(0)
    assert np.all(A.diagonal() > 0) and np.all(A.data[A.indices != np.repeat(
        np.arange(64), np.diff(A.indptr))] < 0)
    with pytest.raises(ValueError, match="kind"):
        MatrixFamily("wave")
    with pytest.raises(IndexError):
        fam.matrix(2000)
    with pytest.raises(ValueError, match="n_train"):
        MatrixFamily(size=10, n_train=11)


# -- the generator ---------------------------------------------------------------------------


def test_generator_beats_jacobi_on_unseen_larger_matrices():
    gen = tiny_generator()
    rep = gen.report
    assert rep.history[rep.best_epoch]["val"] < 0.6 * rep.jacobi_val
    fam = MatrixFamily("diffusion", n=8, size=60, n_train=48).at(20)  # N = 400, never trained on
    for i in (50, 59):
        A = fam.matrix(i)
        b = rhs(A.shape[0], seed=i)
        M = gen.generate(A)
        assert M.report.method == "generator" and M.setup_time > 0
        ours = solve(A, b, M, method="cg", rtol=1e-5)
        jac = solve(A, b, Jacobi.fit(A), method="cg", rtol=1e-5)
        assert ours.converged and ours.iterations < 0.8 * jac.iterations, (ours, jac)


def test_generated_preconditioner_is_spd():
    A = MatrixFamily("diffusion", n=7, size=60, n_train=48).matrix(55)
    for gen in (tiny_generator(), tiny_generator("cvae")):
        for z in ("mean", "sample"):
            D = dense_matrix(GeneratedSPAI.fit(A, model=gen, z=z, seed=3))
            np.testing.assert_allclose(D, D.T, atol=1e-12)
            assert np.all(np.isfinite(D)) and np.linalg.eigvalsh(D).min() > 0


def test_cvae_samples_differ_deterministic_ignores_z():
    A = MatrixFamily("diffusion", n=8, size=60, n_train=48).matrix(50)
    cvae = tiny_generator("cvae")
    assert np.isfinite(cvae.report.history[-1]["kl"])
    Ms = cvae.sample(A, 3, seed=0)
    assert abs(Ms[0].R - Ms[1].R).max() > 0
    det = tiny_generator()
    assert abs(det.generate(A, z="sample", seed=1).R - det.generate(A).R).max() == 0


def test_generator_rejects_bad_input():
    gen = tiny_generator()
    bih = MatrixFamily("biharmonic", n=8).matrix(0)
    with pytest.raises(ValueError, match="off-diagonal entries"):
        gen.generate(bih)
    from contract import convection_diffusion_2d

    with pytest.raises(ValueError, match="not symmetric"):
        gen.generate(convection_diffusion_2d(8))
    A = laplace_2d(8).astype(np.float64)
    A.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gen.generate(A)
    with pytest.raises(ValueError, match="not square|must be square"):
        gen.generate(sp.csr_array(np.ones((4, 3))))
    with pytest.raises(ValueError, match="non-positive diagonal"):
        gen.generate(-laplace_2d(4))
    with pytest.raises(PreconditionerSetupError, match="trained generator"):
        GeneratedSPAI.fit(laplace_2d(4))
    with pytest.raises(ValueError, match="pattern"):
        SPAIGenerator.train([laplace_2d(4)], pattern=np.eye(16))


def test_generator_save_load_and_corrupt_files(tmp_path):
    gen = tiny_generator("cvae")
    path = tmp_path / "gen.npz"
    gen.save(path)
    loaded = SPAIGenerator.load(path)
    A = MatrixFamily("diffusion", n=9).matrix(1900)
    assert abs(loaded.generate(A).R - gen.generate(A).R).max() == 0
    assert loaded.config == gen.config and len(loaded.report.history) == 4
    M = GeneratedSPAI.fit(A, model=str(path))  # the registry/CLI path
    assert M.shape == A.shape

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ModelFileError, match="not a readable"):
        SPAIGenerator.load(garbage)

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}

    def write(name, **changes):
        out = dict(arrays, **changes)
        p = tmp_path / name
        np.savez(p, **out)
        return p

    key = next(k for k in arrays if k.startswith("param/"))
    with pytest.raises(ModelFileError, match="NaN"):
        SPAIGenerator.load(write("nan.npz", **{key: np.full_like(arrays[key], np.nan)}))
    with pytest.raises(ModelFileError, match="shape"):
        SPAIGenerator.load(write("shape.npz", **{key: np.zeros((3, 3), np.float32)}))
    meta = json.loads(arrays["__metadata__"].tobytes())
    meta["config"]["hidden"] = -1
    bad_meta = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with pytest.raises(ModelFileError, match="config"):
        SPAIGenerator.load(write("meta.npz", __metadata__=bad_meta))
    pickled = np.array([{"x": 1}], dtype=object)
    with pytest.raises(ModelFileError):
        SPAIGenerator.load(write("pickle.npz", **{key: pickled}))
    with pytest.raises(ModelFileError, match="not a SPAIGenerator"):
        SPAI.fit(laplace_2d(4), max_steps=5).save(tmp_path / "spai.npz")
        SPAIGenerator.load(tmp_path / "spai.npz")
