"""learned_precond.petsc: LearnedLU as a PETSc preconditioner, on 2 MPI ranks.

The ``petsc`` tests need petsc4py (built by ``tools/install_petsc.sh``) and
``mpiexec``; without them they are skipped, and the rest of this file still
checks that the module imports and fails helpfully without petsc4py.

How the MPI checks run: the collective checks live in ``petsc_worker.py``.
Under a plain ``python -m pytest`` one ``mpiexec -n 2 python
tests/petsc_worker.py`` runs all of them once (a module fixture) and each test
below asserts its check's outcome. When pytest itself runs under
``mpiexec -n 2 python -m pytest -m petsc tests/test_petsc.py``, every rank
runs the checks in-process instead (the same tests, collectively).
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
N_RANKS = 2
#: Environment variables MPICH's (and Open MPI's) launchers set in their ranks.
_UNDER_MPI = any(k in os.environ for k in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE"))

_HAVE_PETSC = importlib.util.find_spec("petsc4py") is not None
_HAVE_MPIEXEC = shutil.which("mpiexec") is not None
needs_petsc4py = pytest.mark.skipif(
    not _HAVE_PETSC,
    reason="petsc4py is not installed (build it with tools/install_petsc.sh; see docs/petsc.md)")
needs_mpiexec = pytest.mark.skipif(not (_HAVE_MPIEXEC or _UNDER_MPI), reason="mpiexec not found")


# -- without petsc4py -------------------------------------------------------------


def test_import_never_needs_petsc4py():
    # petsc4py made unimportable: the package and the module import; using the
    # module raises ImportError that says how to install it.
    code = (
        "import sys; sys.modules['petsc4py'] = None\n"
        "import learned_precond, learned_precond.petsc as lp\n"
        "assert 'petsc4py.PETSc' not in sys.modules\n"
        "try:\n"
        "    lp.petsc_matrix([[1.0]])\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "tools/install_petsc.sh" in out.stdout


def test_strip_grid_options():
    from learned_precond.petsc import strip_grid

    options = strip_grid(8, max_steps=3)
    assert options(8 * 5) == {"max_steps": 3, "grid_shape": (5, 8)}
    assert options(8 * 5 + 1) == {"max_steps": 3}  # not whole rows: no grid


def test_python_pc_rejects_bad_arguments():
    import scipy.sparse as sp

    from learned_precond import Jacobi
    from learned_precond.petsc import PythonPC

    M = Jacobi.fit(sp.eye_array(4, format="csr"))
    with pytest.raises(ValueError, match="not both"):
        PythonPC(M, load="model.npz")


# -- on 2 MPI ranks ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mpi_results():
    """Results of every check in petsc_worker.py, run collectively on N_RANKS ranks."""
    if _UNDER_MPI:
        sys.path.insert(0, str(TESTS))
        import petsc_worker

        return {r["check"]: r for r in petsc_worker.run()}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = ["mpiexec", "-n", str(N_RANKS), sys.executable, str(TESTS / "petsc_worker.py")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env,
                              timeout=900)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish in 900 s:\n{exc.stdout}\n{exc.stderr}")
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            results[result["check"]] = result
    if not results:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode} and reported nothing:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return results


def _assert_check(mpi_results, name):
    result = mpi_results.get(name)
    assert result is not None, f"check {name!r} did not report"
    assert result["ok"], f"{name} failed on {N_RANKS} ranks:\n{result['error']}"
    print(f"{name}: {json.dumps(result['details'], default=str)}")


CHECK_NAMES = [
    "bjacobi_learned_matches_spsolve",
    "asm_overlap_and_subdomains",
    "local_baselines",
    "transpose_apply",
    "save_and_load_per_rank",
    "options_database_route",
    "python_pc_needs_one_rank",
]


@pytest.mark.petsc
@needs_petsc4py
@needs_mpiexec
@pytest.mark.parametrize("check", CHECK_NAMES)
def test_mpi(check, mpi_results):
    _assert_check(mpi_results, check)


def test_every_worker_check_is_tested():
    source = (TESTS / "petsc_worker.py").read_text()
    defined = {line.split("(")[0][len("def check_"):] for line in source.splitlines()
               if line.startswith("def check_")}
    assert defined == set(CHECK_NAMES)


# -- the user guide's commands, as written -----------------------------------------------


def _guide_examples():
    """(script name, its code, the shell command that runs it) from docs/petsc.md."""
    text = (REPO / "docs" / "petsc.md").read_text()
    blocks = re.findall(r"```python\n(# (\S+\.py)\n.*?)```", text, flags=re.S)
    commands = [line.strip() for line in text.splitlines()
                if line.startswith("    ") and re.search(r"\bpython \S+\.py\b", line)]
    examples = []
    for code, name in blocks:
        runs = [c for c in commands if re.search(rf"python {re.escape(name)}\b", c)]
        examples.append((name, code, runs))
    return examples


def test_guide_examples_are_found():
    examples = _guide_examples()
    assert len(examples) >= 5
    for name, _, runs in examples:
        # the first command runs it here; later ones (the hostfile example) need more machines
        assert runs, f"docs/petsc.md: no command runs {name}"


@pytest.mark.petsc
@needs_petsc4py
@needs_mpiexec
@pytest.mark.skipif(_UNDER_MPI, reason="launches mpiexec itself")
@pytest.mark.parametrize("name", [name for name, _, _ in _guide_examples()])
def test_guide_example_runs(name, tmp_path):
    (code, runs), = [(c, r) for n, c, r in _guide_examples() if n == name]
    (tmp_path / name).write_text(code)
    # `python` in the command is this interpreter; the package from this checkout
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(["bash", "-c", runs[0]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    print(f"$ {runs[0]}\n{proc.stdout}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NOT converged" not in proc.stdout and "DIVERGED" not in proc.stdout, proc.stdout
    errors = [float(v) for v in re.findall(r"error\s+([0-9.eE+-]+)", proc.stdout)]
    assert errors and max(errors) < 1e-5, proc.stdout
