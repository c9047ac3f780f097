"""compare(): rows, failures as rows, tables, plots; the learned-precond CLI."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from learned_precond import _registry, cli
from learned_precond import compare as compare_module
from learned_precond.compare import (
    ComparisonRow,
    compare,
    format_markdown,
    format_table,
    main,
    plot_convergence,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def poisson_2d(n):
    lap_1d = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    return sp.kronsum(lap_1d, lap_1d, format="csr")


def swap_pairs(n):
    """Permutation matrix swapping unknowns 2k and 2k+1: zero diagonal, A^-1 = A."""
    perm = np.arange(n).reshape(-1, 2)[:, ::-1].ravel()
    return sp.csr_array((np.ones(n), (np.arange(n), perm)), shape=(n, n))


def convection_diffusion_1d(n, peclet=0.5):
    return sp.diags_array(
        [-1.0 - peclet, 2.0, -1.0 + peclet], offsets=[-1, 0, 1], shape=(n, n)
    ).tocsr()


@pytest.fixture(scope="module")
def poisson_rows():
    return compare(poisson_2d(12), preconditioners=("none", "jacobi", "ilu0", "amg", "exact"))


# -- compare() ----------------------------------------------------------------

def test_rows_have_fields_in_requested_order(poisson_rows):
    assert [row.name for row in poisson_rows] == ["none", "jacobi", "ilu0", "amg", "exact"]
    for row in poisson_rows:
        assert isinstance(row, ComparisonRow)
        assert row.ok and row.error is None
        assert row.converged
        assert isinstance(row.iterations, int) and row.iterations >= 1
        assert row.setup_time >= 0 and row.solve_time >= 0
        assert isinstance(row.nbytes, int) and row.nbytes >= 0
        assert row.relative_residual <= 1e-7
        assert row.residuals[0] == pytest.approx(1.0)
        assert row.residuals.ndim == 1 and len(row.residuals) >= 2


def test_preconditioners_reduce_iterations(poisson_rows):
    its = {row.name: row.iterations for row in poisson_rows}
    assert its["exact"] <= 2
    assert its["ilu0"] < its["none"]
    assert its["amg"] < its["none"]


def test_default_rhs_has_solution_of_ones():
    A = poisson_2d(6)
    [row_default] = compare(A, preconditioners=("exact",))
    [row_explicit] = compare(A, A @ np.ones(36), preconditioners=("exact",))
    assert row_default.iterations == row_explicit.iterations
    np.testing.assert_allclose(row_default.residuals, row_explicit.residuals)


def test_setup_failure_is_a_row_not_an_exception():
    A = swap_pairs(40)
    rows = compare(A, preconditioners=("none", "jacobi", "ilu0", "exact"))
    by_name = {row.name: row for row in rows}
    for name in ("jacobi", "ilu0"):
        row = by_name[name]
        assert not row.ok and not row.converged
        assert row.error.startswith("setup failed: ")
        assert "diagonal" in row.error
        assert row.iterations is None and row.residuals is None
    assert by_name["exact"].converged and by_name["exact"].iterations <= 2
    # A symmetric orthogonal matrix (eigenvalues +-1): GMRES needs two steps.
    assert by_name["none"].converged and by_name["none"].iterations <= 2


def test_unavailable_preconditioner_is_a_row(monkeypatch):
    monkeypatch.setitem(
        _registry.PRECONDITIONERS, "learned_lu", "learned_precond._not_a_module:Missing"
    )
    rows = compare(poisson_2d(5), preconditioners=("jacobi", "learned_lu"))
    assert rows[0].converged
    assert rows[1].error.startswith("unavailable: ")
    assert "_not_a_module" in rows[1].error


def test_cg_rejects_nonsymmetric_matrix():
    with pytest.raises(ValueError, match="symmetric"):
        compare(convection_diffusion_1d(30), preconditioners=("none",), method="cg")


def test_cg_skips_preconditioner_that_is_not_spd():
    rows = compare(poisson_2d(8), preconditioners=("jacobi", "ilu0"), method="cg")
    assert rows[0].converged
    assert rows[1].error.startswith("skipped: ")
    assert "symmetric positive definite" in rows[1].error
    assert rows[1].setup_time is not None  # it was fitted, then not run


def test_nonsymmetric_problem_with_gmres_and_bicgstab():
    A = convection_diffusion_1d(60)
    for method in ("gmres", "bicgstab"):
        rows = compare(A, preconditioners=("none", "ilu0"), method=method)
        assert all(row.converged for row in rows)
        # ILU(0) of a tridiagonal matrix is its exact LU.
        assert rows[1].iterations <= 2


class _RecordingPreconditioner:
    """Stands in for a registry class: records what fit received."""

    calls = []

    @classmethod
    def fit(cls, A, *, seed=None, scale=1.0, grid_shape=None):
        from learned_precond.baselines import Jacobi

        cls.calls.append({"seed": seed, "scale": scale, "grid_shape": grid_shape})
        return Jacobi.fit(A)


@pytest.fixture
def recorder(monkeypatch):
    real = compare_module.get_preconditioner
    monkeypatch.setattr(
        compare_module, "get_preconditioner",
        lambda name: _RecordingPreconditioner if name == "learned_lu" else real(name),
    )
    _RecordingPreconditioner.calls.clear()
    return _RecordingPreconditioner.calls


def test_seed_grid_shape_and_fit_options_reach_fit(recorder):
    A = poisson_2d(5)
    compare(A, preconditioners=("learned_lu",), seed=7)
    compare(A, preconditioners=("learned_lu", "jacobi"), grid_shape=(5, 5),
            fit_options={"learned_lu": {"scale": 2.0}})
    compare(A, preconditioners=("learned_lu",), seed=7, grid_shape=(5, 5),
            fit_options={"learned_lu": {"seed": 3, "grid_shape": (25,)}})
    assert recorder == [
        {"seed": 7, "scale": 1.0, "grid_shape": None},
        {"seed": 0, "scale": 2.0, "grid_shape": (5, 5)},
        {"seed": 3, "scale": 1.0, "grid_shape": (25,)},
    ]


def test_cli_passes_problem_grid_and_fit_options(recorder, capsys):
    assert main(["compare", "laplace_2d", "--n", "8", "--precond", "learned_lu",
                 "--fit", "scale=3", "--seed", "5", "--no-plot"]) == 0
    assert recorder == [{"seed": 5, "scale": 3, "grid_shape": (8, 8)}]
    assert "learned_lu" in capsys.readouterr().out


def test_bad_arguments_raise():
    A = poisson_2d(4)
    with pytest.raises(ValueError, match="unknown preconditioner"):
        compare(A, preconditioners=("ilu_zero",))
    with pytest.raises(ValueError, match="fit_options"):
        compare(A, preconditioners=("none",), fit_options={"ilut": {"drop_tol": 1e-3}})
    with pytest.raises(ValueError, match="square"):
        compare(np.ones((4, 5)), preconditioners=("none",))
    with pytest.raises(ValueError, match="b has shape"):
        compare(A, np.ones(3), preconditioners=("none",))
    with pytest.raises(ValueError, match="grid_shape"):
        compare(A, preconditioners=("none",), grid_shape=(4, 3))
    with pytest.raises(ValueError, match="Krylov method"):
        compare(A, preconditioners=("none",), method="lsqr")
    with pytest.raises(ValueError, match="rtol"):
        compare(A, preconditioners=("none",), rtol=0.0)


# -- presentation ---------------------------------------------------------------

def test_format_table_and_markdown(poisson_rows):
    failed = ComparisonRow("ilut", None, False, None, None, None, None, None,
                           error="setup failed: zero pivot | in row 3")
    rows = [*poisson_rows, failed]
    table = format_table(rows, title="Poisson 12 x 12")
    lines = table.splitlines()
    assert lines[0] == "Poisson 12 x 12"
    for column in ("preconditioner", "iterations", "converged", "setup s", "solve s",
                   "memory", "true residual"):
        assert column in lines[1]
    for row in poisson_rows:
        line = next(line for line in lines if line.startswith(row.name + " "))
        assert str(row.iterations) in line.split()
    assert lines[-1].startswith("ilut") and lines[-1].endswith(failed.error)
    # Columns are aligned: every successful row ends where the header ends.
    assert {len(line) for line in lines[3:-1]} == {len(lines[1])}

    md = format_markdown(rows).splitlines()
    assert len(md) == 2 + len(rows)
    assert {line.replace("\\|", "").count("|") for line in md} == {8}
    assert "setup failed: zero pivot \\| in row 3" in md[-1]


def test_plot_convergence_writes_png(tmp_path, poisson_rows):
    path = plot_convergence(poisson_rows, tmp_path / "conv.png", title="t", rtol=1e-8)
    assert path.read_bytes()[:8] == PNG_MAGIC
    # Rows without a history (all failed) still give a plot, not an error.
    failed = ComparisonRow("ilu0", None, False, None, None, None, None, None, error="x")
    empty = plot_convergence([failed], tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == PNG_MAGIC


# -- command line ---------------------------------------------------------------

def test_cli_list(capsys):
    from learned_precond import problems

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("laplace_2d", "sherman1"):
        assert name in out
    assert len(out.splitlines()) >= len(problems.names()) + 1


def test_cli_compare_problem(tmp_path, capsys):
    png = tmp_path / "tmp.png"
    code = main(["compare", "laplace_2d", "--n", "16", "--precond", "none,jacobi,ilu0",
                 "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "N=256" in out
    table_rows = [line.split() for line in out.splitlines()]
    names = [cells[0] for cells in table_rows if cells]
    for name in ("none", "jacobi", "ilu0"):
        assert name in names
    assert str(png) in out


def test_cli_default_plot_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "laplace_2d", "--n", "8", "--precond", "exact"]) == 0
    assert (tmp_path / "laplace_2d_convergence.png").read_bytes()[:8] == PNG_MAGIC
    assert "laplace_2d_convergence.png" in capsys.readouterr().out
    assert main(["compare", "laplace_2d", "--n=8", "--precond", "exact", "--no-plot"]) == 0
    assert "convergence plot" not in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["laplace_2d_convergence.png"]


def test_cli_matrix_file(tmp_path, capsys):
    path = tmp_path / "cd.mtx"
    scipy.io.mmwrite(path, sp.coo_array(convection_diffusion_1d(50)))
    code = main(["compare", "--matrix", str(path), "--precond", "none,ilu0,exact",
                 "--method", "bicgstab", "--no-plot"])
    out = capsys.readouterr().out
    assert code == 0
    assert "cd.mtx" in out and "N=50" in out and "nonsymmetric" in out
    assert sum(line.startswith(("none", "ilu0", "exact")) for line in out.splitlines()) == 3


def test_cli_setup_failure_keeps_table(tmp_path, capsys):
    path = tmp_path / "swap.mtx"
    scipy.io.mmwrite(path, sp.coo_array(swap_pairs(20)))
    code = main(["compare", "--matrix", str(path), "--precond", "ilu0,exact", "--no-plot"])
    out = capsys.readouterr().out
    assert code == 0
    assert any(line.startswith("ilu0") and "setup failed" in line for line in out.splitlines())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "no_such_problem"], "no_such_problem"),
        (["compare", "laplace_2d", "--n", "8", "--bogus", "3"], "bogus"),
        (["compare", "laplace_2d", "--n"], "needs a value"),
        (["compare", "--matrix", "does/not/exist.mtx"], "not found"),
        (["compare"], "PROBLEM"),
        (["compare", "laplace_2d", "--n", "8", "--precond", "ilu7"], "ilu7"),
        (["compare", "laplace_2d", "--n", "8", "--fit", "max_steps"], "KEY=VALUE"),
        (["compare", "laplace_2d", "--n", "8", "--precond", "none", "--fit", "rank=2"],
         "learned_lu"),
        (["compare", "laplace_2d", "--n", "8", "--maxiter", "0"], "maxiter"),
        (["compare", "laplace_2d", "--n", "8", "--plot", "no/such/dir/x.png"], "does not exist"),
        (["compare", "laplace_2d", "--method", "cgs"], "cgs"),
    ],
)
def test_cli_bad_input_exits_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_not_square_and_cg_nonsymmetric(tmp_path, capsys):
    rect = tmp_path / "rect.mtx"
    scipy.io.mmwrite(rect, sp.coo_array(np.arange(1.0, 7.0).reshape(2, 3)))
    assert main(["compare", "--matrix", str(rect), "--no-plot"]) == 2
    assert "square" in capsys.readouterr().err
    cd = tmp_path / "cd.mtx"
    scipy.io.mmwrite(cd, sp.coo_array(convection_diffusion_1d(20)))
    assert main(["compare", "--matrix", str(cd), "--method", "cg", "--no-plot"]) == 2
    assert "symmetric" in capsys.readouterr().err


def test_cli_fit_option_parsing():
    parse = cli._fit_options
    assert parse(["max_steps=200", "lr=1e-3", "verbose=true", "rank=none", "ordering=zorder",
                  "ilut:drop_tol=1e-3"], ["ilut", "learned_lu"]) == {
        "learned_lu": {"max_steps": 200, "lr": 1e-3, "verbose": True, "rank": None,
                       "ordering": "zorder"},
        "ilut": {"drop_tol": 1e-3},
    }


def test_cli_demo(tmp_path, monkeypatch, capsys):
    # The demo's own matrix, with two fast preconditioners instead of all.
    monkeypatch.setattr(compare_module, "DEFAULT_PRECONDITIONERS", ("ilu0", "exact"))
    png = tmp_path / "demo.png"
    assert main(["demo", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert compare_module.DEMO_PROBLEM in out
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_python_dash_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "learned_precond", "compare", "laplace_2d", "--n", "6",
         "--precond", "none,exact", "--no-plot"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exact" in proc.stdout
