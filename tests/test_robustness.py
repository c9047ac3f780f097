"""Robustness: bad input, hard matrices, random matrices (hypothesis), threads.

Every row of the table in ``docs/robustness.md`` names the test here (or in
``test_pivoting.py``) that backs it. Entry points are the registered
preconditioners' ``fit``, :func:`learned_precond.krylov.solve`,
:func:`learned_precond.compare.compare`, the ``learned-precond`` CLI and
:func:`learned_precond.pivoting.static_pivoting`.
"""

import inspect
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from contract import convection_diffusion_2d
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from learned_precond import (
    FitConvergenceWarning,
    IllConditionedWarning,
    LearnedLU,
    PreconditionerSetupError,
    StructurallySingularError,
    get_preconditioner,
    preconditioner_names,
)
from learned_precond.compare import compare, main
from learned_precond.krylov import solve
from learned_precond.pivoting import pivoted, static_pivoting

# Every registered preconditioner except the SPAI generator, which needs a
# trained model to fit (tests/test_spai.py covers its errors).
NAMES = [name for name in preconditioner_names() if name != "spai_generator"]
BASELINES = [name for name in NAMES if name != "learned_lu"]
#: Small, fast LearnedLU options for these tests.
LEARNED = {"block_size": 8, "rank": 2, "max_steps": 5, "seed": 0}
HAS_PIVOTING_OPTION = "pivoting" in inspect.signature(LearnedLU.fit).parameters


def fit(name, A, **options):
    """Fit the registered preconditioner ``name`` (LearnedLU with the small options)."""
    if name == "learned_lu":
        options = {**LEARNED, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        warnings.simplefilter("ignore", IllConditionedWarning)
        return get_preconditioner(name).fit(A, **options)


def lap1d(n):
    return sp.csr_array(sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)))


def with_empty_row(n=12, row=3):
    A = lap1d(n).tolil()
    A[row, :] = 0.0
    A = sp.csr_array(A)
    A.eliminate_zeros()
    return A


def with_explicit_zero_diagonal(n=12):
    """1-D Laplacian whose diagonal is stored but zero (a nonsingular, indefinite matrix)."""
    A = lap1d(n) + sp.csr_array(np.eye(n, k=2))  # keeps it nonsingular
    A = sp.csr_array(A)
    rows = np.repeat(np.arange(n), np.diff(A.indptr))
    A.data[A.indices == rows] = 0.0
    return A


# -- 1. invalid matrices: the same error from every entry point ---------------------------


def _fits_complex(entry):
    """Entry points that take complex A (``supports_complex`` classes and ``solve``)."""
    if entry == "solve":
        return True
    return entry in NAMES and getattr(get_preconditioner(entry), "supports_complex", False)

ENTRY_POINTS = [*NAMES, "solve", "compare", "static_pivoting"]


def call_entry(entry, A):
    if entry == "solve":
        n = np.shape(A)[0] if hasattr(A, "shape") and len(A.shape) == 2 else 3
        return solve(A, np.ones(n))
    if entry == "compare":
        return compare(A, preconditioners=("none",))
    if entry == "static_pivoting":
        return static_pivoting(A, method="mc64")
    return fit(entry, A)


INVALID = {
    # id: (factory, error, message fragment)
    "nonsquare": (lambda: sp.csr_array(np.ones((4, 3))), ValueError, "square"),
    "empty": (lambda: sp.csr_array((0, 0)), ValueError, "empty"),
    "nan": (lambda: sp.csr_array(np.where(np.eye(3) > 0, np.nan, 1.0)), ValueError, "NaN"),
    "inf-dense": (lambda: np.where(np.eye(3) > 0, np.inf, 1.0), ValueError, "NaN or Inf"),
    "int": (lambda: np.eye(3, dtype=np.int64), TypeError, "astype"),
    "bool": (lambda: sp.csr_array(np.eye(3, dtype=bool)), TypeError, "astype"),
    "complex": (lambda: np.eye(3, dtype=np.complex128), NotImplementedError, "real"),
    "3-d": (lambda: np.ones((2, 2, 2)), ValueError, "2-D"),
    "string": (lambda: "A", TypeError, "must be a scipy sparse"),
    "none": (lambda: None, TypeError, "must be a scipy sparse"),
    "list": (lambda: [[1.0, 0.0], [0.0, 1.0]], TypeError, "must be a scipy sparse"),
    "object-array": (lambda: np.array([[1, "a"], [2, 3]], dtype=object), TypeError, "object"),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_matrix_is_rejected(case, entry):
    factory, error, fragment = INVALID[case]
    if case == "complex" and _fits_complex(entry):
        # complex A is solved in complex arithmetic there (tests/test_ecosystem.py)
        out = call_entry(entry, factory())
        assert np.iscomplexobj(out.x if entry == "solve" else np.zeros(1, out.dtype))
        return
    with pytest.raises(error, match=fragment):
        call_entry(entry, factory())


# -- 2. structurally singular: an empty row or column ----------------------------------------


@pytest.mark.parametrize("entry", [*BASELINES, "solve", "compare", "static_pivoting"])
@pytest.mark.parametrize("where", ["row", "column"])
def test_structurally_singular_names_the_empty_row(entry, where):
    A = with_empty_row(12, 3)
    if where == "column":
        A = sp.csr_array(A.T)
    if entry == "none":
        # The identity uses only A's shape; it does not refuse A.
        assert fit("none", A).shape == A.shape
        return
    with pytest.raises(StructurallySingularError, match=f"{where} 3 has no nonzero") as info:
        call_entry(entry, A)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PreconditionerSetupError)
    assert "Remove that unknown" in str(info.value)


def test_dense_empty_rows_and_columns_are_found_across_row_chunks():
    # 3000 x 3000 float64 is 72 MB: three row chunks of the dense checks
    from learned_precond._validation import _row_col_nonzeros, structure_problem

    A = np.random.default_rng(0).standard_normal((3000, 3000))
    A[A > 1.5] = 0.0
    per_row, per_col = _row_col_nonzeros(A)
    mask = A != 0
    np.testing.assert_array_equal(per_row, mask.sum(axis=1))
    np.testing.assert_array_equal(per_col, mask.sum(axis=0))
    A[:, 2999] = 0.0
    assert "column 2999 has no nonzero" in structure_problem(A)
    A[2500] = 0.0
    assert "row 2500 has no nonzero" in structure_problem(A)


def test_structurally_singular_learned_lu():
    with pytest.raises(StructurallySingularError, match="row 3 has no nonzero"):
        fit("learned_lu", with_empty_row(12, 3))


def test_structurally_singular_cli(tmp_path, capsys):
    path = tmp_path / "empty_row.mtx"
    scipy.io.mmwrite(path, sp.coo_array(with_empty_row(12, 3)))
    assert main(["compare", "--matrix", str(path), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "row 3 has no nonzero" in err and "Traceback" not in err


# -- 3. N = 1, N smaller than a block, N not a multiple of the block size ---------------------


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("name", NAMES)
def test_one_by_one_matrix(name, dense):
    A = np.array([[4.0]]) if dense else sp.csr_array(np.array([[4.0]]))
    M = fit(name, A)
    assert M.shape == (1, 1)
    y = M @ np.array([2.0])
    assert y.shape == (1,) and np.isfinite(y).all()
    if name not in ("none",):
        np.testing.assert_allclose(y, [0.5], rtol=1e-12)  # every method is exact for N = 1
    result = solve(A, np.array([2.0]), M)
    assert result.converged and result.iterations <= 1
    np.testing.assert_allclose(result.x, [0.5], rtol=1e-12)


@pytest.mark.parametrize("n", [3, 7, 13, 17])
def test_learned_lu_any_size_relative_to_block(n):
    """N < block_size (3, 7) and N not a multiple of it (13, 17) are padded internally."""
    A = sp.csr_array(lap1d(n) + 0.1 * sp.eye_array(n))
    M = fit("learned_lu", A)
    assert M.shape == (n, n)
    b = np.random.default_rng(n).standard_normal(n)
    assert np.isfinite(M @ b).all()
    result = solve(A, b, M, rtol=1e-10)
    assert result.converged and result.iterations <= n


# -- 4. zero diagonal: explicit zeros, and static pivoting as the fix -------------------------


@pytest.mark.parametrize("name", ["jacobi", "ilu0", "amg"])
def test_zero_diagonal_setup_error_points_to_pivoting(name):
    A = with_explicit_zero_diagonal()
    with pytest.raises(PreconditionerSetupError, match="static pivoting") as info:
        fit(name, A)
    assert not isinstance(info.value, StructurallySingularError)
    M = pivoted(name, A)  # the fix the message names
    result = solve(A, A @ np.ones(A.shape[0]), M, rtol=1e-10)
    assert M.pivoting.method == "mc64" and result.converged


@pytest.mark.parametrize("name", ["ilut", "exact", "none"])
def test_zero_diagonal_other_baselines_build(name):
    A = with_explicit_zero_diagonal()
    M = fit(name, A)
    result = solve(A, A @ np.ones(A.shape[0]), M, rtol=1e-10, maxiter=500)
    assert np.isfinite(result.x).all()
    if name in ("ilut", "exact"):
        assert result.converged


def test_zero_diagonal_learned_lu_with_pivoting():
    """A permuted convection-diffusion matrix: zero diagonal, easy once pivoted."""
    A0 = convection_diffusion_2d(12)
    n = A0.shape[0]
    A = sp.csr_array(A0[np.roll(np.arange(n), 5)])  # rows shifted: diagonal all zero
    assert np.all(A.diagonal() == 0)
    b = A @ np.ones(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        warnings.simplefilter("ignore", IllConditionedWarning)
        if HAS_PIVOTING_OPTION:
            M = LearnedLU.fit(A, pivoting="auto", **LEARNED)
        else:
            M = pivoted(LearnedLU, A, **LEARNED)
    result = solve(A, b, M, rtol=1e-8, maxiter=500)
    assert result.converged, result
    reference = solve(A0, A0 @ np.ones(n), fit("learned_lu", A0), rtol=1e-8, maxiter=500)
    assert result.iterations <= reference.iterations + 5


@pytest.mark.skipif(not HAS_PIVOTING_OPTION, reason="LearnedLU.fit has no pivoting= yet")
def test_learned_lu_pivoting_option(tmp_path):
    """``LearnedLU.fit(A, pivoting=...)``: M ~ A^-1 for the original A, its transpose, io."""
    A0 = convection_diffusion_2d(12)
    n = A0.shape[0]
    A = sp.csr_array(A0[np.roll(np.arange(n), 5)])  # zero diagonal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        M = LearnedLU.fit(A, pivoting="auto", **LEARNED)
    assert M.pivoting.method == "mc64" and M.report.pivoting == "mc64"
    assert not M.symmetric  # rows moved: M = D_c M' D_r P is not symmetric
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    assert abs((M @ x) @ y - x @ M.rmatvec(y)) <= 1e-10 * np.linalg.norm(M @ x) * np.linalg.norm(y)
    assert solve(A, A @ np.ones(n), M, rtol=1e-8, maxiter=500).converged
    path = tmp_path / "pivoted.npz"
    M.save(path)
    loaded = LearnedLU.load(path, A=A)  # the fingerprint is the original A's
    np.testing.assert_array_equal(loaded @ x, M @ x)
    np.testing.assert_array_equal(loaded.rmatvec(y), M.rmatvec(y))
    # symmetric scaling keeps an SPD preconditioner SPD (valid for CG)
    spd = sp.csr_array(sp.diags_array(np.linspace(1, 100, 40)) @ lap1d(40)
                       @ sp.diags_array(np.linspace(1, 100, 40)))
    S = fit("learned_lu", spd, pivoting="scale")
    assert S.symmetric
    assert solve(spd, np.ones(40), S, method="cg", rtol=1e-10).converged
    with pytest.raises(ValueError, match="pivoting"):
        LearnedLU.fit(A, pivoting="mc65", **LEARNED)


def test_zero_diagonal_learned_lu_without_pivoting_is_honest():
    """Without pivoting LearnedLU must fail loudly or solve honestly, never return NaN."""
    A = with_explicit_zero_diagonal(24)
    options = {"pivoting": "none"} if HAS_PIVOTING_OPTION else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitConvergenceWarning)
            warnings.simplefilter("ignore", IllConditionedWarning)
            M = LearnedLU.fit(A, **LEARNED, **options)
    except PreconditionerSetupError:
        return
    result = solve(A, A @ np.ones(24), M, rtol=1e-8, maxiter=200)
    assert np.isfinite(result.x).all() and np.isfinite(result.relative_residual)
    assert result.converged == (result.relative_residual <= 1e-8 * 10)


def test_amg_tiny_diagonal_nonfinite_cycle_is_a_setup_error():
    A = lap1d(30).tolil()
    A[4, 4] = 1e-300  # Ruge-Stuben builds a hierarchy whose V-cycle overflows
    with pytest.raises(PreconditionerSetupError, match="non-finite values"):
        fit("amg", sp.csr_array(A), method="rs")


# -- 5. numerically singular --------------------------------------------------------------------


def duplicated_row(n=16):
    """Full structure (every row and column nonempty) but rank n - 1: rows 4 and 5 equal."""
    A = lap1d(n).tolil()
    A[5, :] = A[4, :]
    return sp.csr_array(A)


@pytest.mark.parametrize("name", ["ilu0", "ilut", "exact"])
def test_numerically_singular_factorizations_raise(name):
    with pytest.raises(PreconditionerSetupError, match="singular|pivot"):
        fit(name, duplicated_row())


@pytest.mark.parametrize("name", ["none", "jacobi", "amg"])
def test_numerically_singular_others_report_nonconvergence(name):
    A = duplicated_row()
    b = np.random.default_rng(0).standard_normal(A.shape[0])  # inconsistent: no solution
    result = solve(A, b, fit(name, A), rtol=1e-10, maxiter=300)
    assert not result.converged
    assert np.isfinite(result.x).all() and np.isfinite(result.relative_residual)


def test_numerically_singular_learned_lu_warns_or_raises():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            LearnedLU.fit(duplicated_row(), **LEARNED)
        except PreconditionerSetupError:
            return
    assert any(issubclass(w.category, IllConditionedWarning) for w in caught)


# -- 6. right-hand sides, operators, options -------------------------------------------------


@pytest.mark.parametrize(
    "b, error",
    [(np.ones(5), ValueError), (np.ones((6, 2)), ValueError), (np.full(6, np.nan), ValueError),
     (np.ones(6, dtype=complex), NotImplementedError)],
    ids=["wrong-length", "two-columns", "nan", "complex"],
)
def test_bad_rhs_is_rejected_by_solve_and_compare(b, error):
    A = lap1d(6)
    if np.iscomplexobj(b):
        assert np.iscomplexobj(solve(A, b).x)  # solve works in complex arithmetic
    else:
        with pytest.raises(error):
            solve(A, b)
    with pytest.raises(error):
        compare(A, b, preconditioners=("none",))


@pytest.mark.parametrize("name", NAMES)
def test_apply_to_wrong_length_is_rejected(name):
    M = fit(name, lap1d(20) + sp.eye_array(20))
    with pytest.raises(ValueError, match="dimension mismatch"):
        M @ np.ones(19)


@pytest.mark.parametrize("name", NAMES)
def test_linear_operator_input(name):
    A = lap1d(20) + sp.eye_array(20)
    op = spla.aslinearoperator(A)
    if name in ("none", "learned_lu"):
        M = fit(name, op)
        assert M.shape == (20, 20)
        assert solve(op, np.ones(20), M, rtol=1e-10).converged
    else:
        with pytest.raises(TypeError, match="LinearOperator.*entries"):
            fit(name, op)


def test_operator_without_rmatvec_and_transpose_loss():
    A = lap1d(20)
    op = spla.LinearOperator(A.shape, matvec=lambda x: A @ x, dtype=np.float64)
    with pytest.raises(ValueError, match="rmatvec"):
        fit("learned_lu", op, transpose_loss=True)
    M = fit("learned_lu", op)  # without the transpose loss the operator is fine
    assert np.isfinite(M @ np.ones(20)).all()


LEARNED_BAD_OPTIONS = [
    ({"block_size": 0}, ValueError, "block_size must be >= 1"),
    ({"block_size": -4}, ValueError, "block_size"),
    ({"block_size": 2.5}, TypeError, "block_size must be an integer"),
    ({"block_size": 4, "rank": 5}, ValueError, "rank=5 exceeds block_size=4"),
    ({"rank": 0}, ValueError, "rank"),
    ({"max_steps": -1}, ValueError, "max_steps must be >= 0"),
    ({"n_probes": 0}, ValueError, "n_probes"),
    ({"ordering": "spiral"}, ValueError, "unknown ordering 'spiral'"),
    ({"loss": "l7"}, ValueError, "unknown loss"),
    ({"init": "magic"}, ValueError, "unknown init"),
    ({"symmetric": "yes"}, ValueError, "symmetric"),
    ({"lr": 0.0}, ValueError, "lr must be positive"),
]
if HAS_PIVOTING_OPTION:
    LEARNED_BAD_OPTIONS.append(({"pivoting": "mc65"}, ValueError, "mc65"))


@pytest.mark.parametrize("options, error, match", LEARNED_BAD_OPTIONS,
                         ids=[next(iter(o)) + f"={list(o.values())[-1]}"
                              for o, _, _ in LEARNED_BAD_OPTIONS])
def test_learned_lu_options_out_of_range(options, error, match):
    with pytest.raises(error, match=match):
        LearnedLU.fit(lap1d(16), **{**LEARNED, **options})


@pytest.mark.parametrize(
    "name, options, error, match",
    [
        ("ilut", {"drop_tol": -0.1}, ValueError, "drop_tol"),
        ("ilut", {"fill_factor": 0.5}, ValueError, "fill_factor"),
        ("amg", {"method": "gmg"}, ValueError, "unknown AMG method"),
        ("amg", {"cycle": "Z"}, ValueError, "cycle"),
        ("jacobi", {"omega": 0.5}, TypeError, "omega"),
    ],
)
def test_baseline_options_out_of_range(name, options, error, match):
    with pytest.raises(error, match=match):
        fit(name, lap1d(16), **options)


def test_pivoting_options_out_of_range():
    with pytest.raises(ValueError, match="unknown pivoting method"):
        static_pivoting(lap1d(4), method="MC64")
    with pytest.raises(ValueError, match="unknown pivoting method"):
        pivoted("ilu0", lap1d(4), pivoting="best")


# -- 7. the CLI -------------------------------------------------------------------------------


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("%%MatrixMarket matrix coordinate real general\n2 3 1\n1 1 1.0\n", "square"),
        ("%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1.0 0.0\n", "complex"),
        ("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 nan\n2 2 1.0\n", "NaN"),
        ("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 1.0\n", "row 1 has no"),
        ("%%MatrixMarket matrix coordinate real general\n0 0 0\n", "empty"),
        ("1 2 3\n4 5 6\n", "not a Matrix Market file"),
    ],
    ids=["nonsquare", "complex", "nan", "structurally-singular", "empty", "not-mtx"],
)
def test_cli_rejects_bad_matrix_files(tmp_path, capsys, content, message):
    path = _write(tmp_path, "bad.mtx", content)
    assert main(["compare", "--matrix", path, "--no-plot", "--precond", "none,jacobi"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("learned-precond: error:") and "Traceback" not in err


def test_cli_integer_and_one_by_one_matrix_files_work(tmp_path, capsys):
    path = _write(tmp_path, "one.mtx", "%%MatrixMarket matrix coordinate integer general\n"
                  "1 1 1\n1 1 4\n")
    code = main(["compare", "--matrix", path, "--no-plot", "--precond", "none,jacobi,ilu0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "jacobi" in out and "setup failed" not in out


def test_cli_zero_diagonal_reports_failed_rows_and_runs_the_rest(tmp_path, capsys):
    path = tmp_path / "zero_diag.mtx"
    scipy.io.mmwrite(path, sp.coo_array(with_explicit_zero_diagonal()))
    code = main(["compare", "--matrix", str(path), "--no-plot", "--precond", "jacobi,exact"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("jacobi") and "setup failed" in line for line in lines)
    assert any(line.startswith("exact") and "setup failed" not in line for line in lines)


# -- 8. properties on random small matrices (hypothesis) ----------------------------------------

KINDS = ("spd", "diag_dominant", "indefinite", "badly_scaled")


def random_matrix(kind, n, seed):
    """A random sparse ``n x n`` matrix of the given kind (always structurally nonsingular)."""
    rng = np.random.default_rng(seed)
    density = min(1.0, 3.0 / n)
    R = sp.random_array((n, n), density=density, rng=rng, data_sampler=rng.standard_normal)
    R = sp.csr_array(R)
    # A permutation part guarantees nonempty rows/columns and a perfect matching.
    P = sp.csr_array((rng.uniform(0.5, 1.5, n), (rng.permutation(n), np.arange(n))),
                     shape=(n, n))
    if kind == "spd":
        B = R + P
        A = B @ B.T + 0.1 * sp.eye_array(n)
    elif kind == "diag_dominant":
        B = R + P
        A = B + sp.diags_array(abs(B).sum(axis=1) * rng.uniform(1.1, 2.0, n))
    elif kind == "indefinite":
        signs = rng.choice([-1.0, 1.0], n) * (rng.random(n) > 0.3)  # some zero diagonal
        A = R + 2.0 * P + sp.diags_array(signs * rng.uniform(0.1, 1.0, n))
    else:  # badly scaled diagonally dominant
        B = R + P
        B = B + sp.diags_array(abs(B).sum(axis=1) * 1.5)
        d1, d2 = 10.0 ** rng.uniform(-4, 4, n), 10.0 ** rng.uniform(-4, 4, n)
        A = sp.diags_array(d1) @ B @ sp.diags_array(d2)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


matrices = st.tuples(st.sampled_from(KINDS), st.integers(1, 40), st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("name", [*NAMES, "ilu0+pivoting", "learned_lu+pivoting"])
@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec=matrices)
def test_random_matrices_fit_apply_solve(name, spec):
    kind, n, seed = spec
    A = random_matrix(kind, n, seed)
    rng = np.random.default_rng(seed)
    try:
        if name.endswith("+pivoting"):
            inner = name.split("+")[0]
            opts = LEARNED if inner == "learned_lu" else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitConvergenceWarning)
                warnings.simplefilter("ignore", IllConditionedWarning)
                M = pivoted(inner, A, **opts)
        else:
            M = fit(name, A)
    except StructurallySingularError:  # pragma: no cover - the generator prevents it
        raise
    except PreconditionerSetupError:
        event(f"{kind}: setup error")
        # Jacobi refuses zero diagonals; incomplete Cholesky refuses any
        # nonsymmetric or indefinite matrix, as documented.
        assert kind in ("indefinite", "badly_scaled") or name in ("jacobi", "ict"), (kind, name)
        return

    # finite and linear
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    m_x, m_y = M @ x, M @ y
    assert np.isfinite(m_x).all() and np.isfinite(m_y).all()
    combo = M @ (2.0 * x - 3.0 * y)
    scale = 2.0 * np.linalg.norm(m_x) + 3.0 * np.linalg.norm(m_y)
    assert np.linalg.norm(combo - (2.0 * m_x - 3.0 * m_y)) <= 1e-9 * scale + 1e-300

    # GMRES with M: the spsolve solution, or honest non-convergence; never NaN
    b = A @ rng.standard_normal(n)
    rtol = 1e-8
    result = solve(A, b, M, rtol=rtol, restart=10, maxiter=50 * n + 50)
    assert np.isfinite(result.x).all() and np.isfinite(result.relative_residual)
    assert result.converged == (
        result.relative_residual <= rtol or (result.info == 0 and
                                             result.relative_residual <= 10 * rtol))
    event(f"{kind}: {'converged' if result.converged else 'not converged'}")
    if kind in ("spd", "diag_dominant"):
        assert result.converged, (kind, n, seed, result)
    if result.converged:
        exact = spla.spsolve(sp.csc_array(A), b)
        cond = np.linalg.cond(A.toarray())
        error = np.linalg.norm(result.x - exact) / np.linalg.norm(exact)
        assert error <= 20 * cond * rtol, (error, cond)


# -- 9. threads: one fitted operator, applied concurrently ------------------------------------

THREADS, APPLIES = 8, 50


def _threaded(func, inputs):
    chunks = [inputs[t * APPLIES:(t + 1) * APPLIES] for t in range(THREADS)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        parts = list(pool.map(lambda chunk: [func(v) for v in chunk], chunks))
    return [out for part in parts for out in part]


@pytest.mark.parametrize("name", [*NAMES, "ilu0+pivoting"])
def test_concurrent_applies_match_serial_bit_for_bit(name):
    A = convection_diffusion_2d(12)  # nonsymmetric: LearnedLU's transpose packs are lazy
    if name == "ict":  # incomplete Cholesky: symmetric positive definite A only
        A = lap1d(144)
    if name == "ilu0+pivoting":
        M = pivoted("ilu0", A, pivoting="mc64")
    else:
        M = fit(name, A)
    n = A.shape[0]
    rng = np.random.default_rng(7)
    vectors = list(rng.standard_normal((THREADS * APPLIES, n)))
    blocks = [rng.standard_normal((n, 3)) for _ in range(THREADS * APPLIES)]

    # Threads first, so that lazily built state (e.g. transpose factors) is
    # built under contention; then the serial reference with the same operator.
    threaded = _threaded(M.matvec, vectors)
    threaded_blocks = _threaded(M.matmat, blocks)
    threaded_t = _threaded(M.rmatvec, vectors) if M.has_adjoint else None
    serial = [M.matvec(v) for v in vectors]
    serial_blocks = [M.matmat(B) for B in blocks]
    for got, want in zip(threaded, serial, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(threaded_blocks, serial_blocks, strict=True):
        np.testing.assert_array_equal(got, want)
    if threaded_t is not None:
        for got, v in zip(threaded_t, vectors, strict=True):
            np.testing.assert_array_equal(got, M.rmatvec(v))
