"""LearnedLU's options, time limits, complex input and model files (issues 14 and 16).

Every bad option raises a ``TypeError``/``ValueError`` naming the option
before any work; ``time_budget=`` and the default limit stop training;
``M @ x`` refuses complex ``x``; loading checks every stored shape, dtype and
permutation before reading an array. The hypothesis tests fuzz options and
model files: each example ends in a documented error or a preconditioner
with finite output.
"""

import inspect
import io
import json
import math
import re
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from contract import convection_diffusion_2d, laplace_2d
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learned_precond import (
    FitConvergenceWarning,
    IllConditionedWarning,
    LearnedLU,
    ModelFileError,
    PreconditionerSetupError,
)
from learned_precond.lu import STARTS, FitOptions, budget, operator
from learned_precond.lu.budget import Deadline
from learned_precond.lu.train import LUModel, train

SMALL = {"block_size": 8, "rank": 2, "max_steps": 3, "seed": 0, "init": "gfmm"}


def lap1d(n):
    return sp.csr_array(sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)))


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        warnings.simplefilter("ignore", IllConditionedWarning)
        return func(*args, **kwargs)


def nonsymmetric(n=16):
    A = lap1d(n).tolil()
    A[0, 1] = -0.5
    return sp.csr_array(A)


# -- 1. every bad option: a clear error naming it, before any work ---------------------------

BAD_OPTIONS = [
    # (options, error, fragment of the message)
    ({"seed": 1.7}, TypeError, "seed must be an integer"),
    ({"seed": "abc"}, TypeError, "seed must be an integer"),
    ({"seed": 2**70}, ValueError, r"seed must be an integer in \[0, 2\*\*64\)"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": True}, TypeError, "seed"),
    ({"tol": math.nan}, ValueError, "tol must be a finite number"),
    ({"tol": -1e-3}, ValueError, "tol must be >= 0"),
    ({"lr": math.nan}, ValueError, "lr must be a finite number"),
    ({"lr": math.inf}, ValueError, "lr must be a finite number"),
    ({"lr": "fast"}, TypeError, "lr must be a number"),
    ({"dtype": "float32"}, TypeError, "dtype must be a torch dtype.*torch.float32"),
    ({"dtype": np.float32}, TypeError, "dtype must be a torch dtype"),
    ({"dtype": torch.float16}, ValueError, "dtype=torch.float16 is not supported"),
    ({"dtype": torch.bfloat16}, ValueError, "not supported"),
    ({"dtype": torch.complex64}, ValueError, "dtype must be torch.float64 or"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"device": "mps"}, ValueError, "device='mps' is not supported"),
    ({"time_budget": 0}, ValueError, "time_budget must be positive"),
    ({"time_budget": -5.0}, ValueError, "time_budget must be positive"),
    ({"time_budget": math.nan}, ValueError, "time_budget must be a finite number"),
    ({"time_budget": "1 min"}, TypeError, "time_budget must be a number"),
    ({"blocksize": 4}, TypeError, "unknown option 'blocksize'; did you mean 'block_size'"),
    ({"block_size": "abc"}, TypeError, "block_size must be an integer"),
    ({"max_steps": 2.0}, TypeError, "max_steps must be an integer"),
    ({"patience": 0}, ValueError, "patience must be >= 1"),
    ({"verbose": "yes"}, TypeError, "verbose must be True or False"),
    ({"transpose_loss": 1}, TypeError, "transpose_loss must be True or False"),
    ({"callback": 3}, TypeError, "callback must be callable"),
    ({"factor_dtype": np.float32}, ValueError, "factor_dtype"),
    ({"symmetric": "yes"}, ValueError, "symmetric must be 'auto', True or False"),
    ({"grid_shape": (4, 5)}, ValueError, "grid_shape=.* has 20 points but A has 16 rows"),
    ({"grid_shape": (4,)}, ValueError, "grid_shape must have 2 or 3 entries"),
    ({"coords": np.zeros((15, 2))}, ValueError, r"coords must be an array of shape \(16, d\)"),
    ({"coords": np.full((16, 2), np.nan)}, ValueError, "coords must be finite"),
]


@pytest.fixture
def no_work(monkeypatch):
    """Make the first stage of the fit fail loudly: an error raised before it is 'before work'."""
    def started(*args, **kwargs):
        raise AssertionError("the fit started working before rejecting its options")

    monkeypatch.setattr(operator, "pivot", started)


@pytest.mark.parametrize("options, error, match", BAD_OPTIONS,
                         ids=[f"{next(iter(o))}={list(o.values())[0]!r}"[:40]
                              for o, _, _ in BAD_OPTIONS])
def test_bad_option_is_rejected_before_any_work(options, error, match, no_work):
    with pytest.raises(error, match=match):
        LearnedLU.fit(lap1d(16), **{**SMALL, **options})


def test_symmetric_true_on_a_nonsymmetric_matrix(no_work):
    with pytest.raises(ValueError, match="symmetric=True but A is not symmetric.*max "
                                         r"\|a_ij - a_ji\|"):
        LearnedLU.fit(nonsymmetric(), symmetric=True, **SMALL)
    op = sp.linalg.aslinearoperator(nonsymmetric())
    with pytest.raises(ValueError, match="symmetric=True but A is not symmetric"):
        LearnedLU.fit(op, symmetric=True, **SMALL)


def test_cuda_without_a_gpu(monkeypatch, no_work):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(ValueError, match="torch.cuda.is_available.. is False.*device='cpu'"):
            LearnedLU.fit(lap1d(16), device=device, **SMALL)


def test_operator_restrictions_are_checked_before_any_work(no_work):
    op = sp.linalg.aslinearoperator(lap1d(16))
    with pytest.raises(ValueError, match="pivoting='mc64' needs the matrix entries"):
        LearnedLU.fit(op, pivoting="mc64", **SMALL)
    with pytest.raises(ValueError, match="ordering='bisection' needs the matrix graph"):
        LearnedLU.fit(op, ordering="bisection", **SMALL)


@pytest.mark.parametrize("options", [
    {"seed": np.int64(3)}, {"seed": 2**64 - 1}, {"seed": 0},
    {"time_budget": math.inf}, {"time_budget": 600}, {"dtype": torch.float32},
    {"symmetric": np.True_}, {"block_size": np.int32(8)}, {"lr": np.float32(1e-3)},
    {"grid_shape": (4, 4)}, {"coords": np.random.default_rng(0).random((16, 2))},
])
def test_good_unusual_options_fit(options):
    M = quiet(LearnedLU.fit, lap1d(16), **{**SMALL, **options})
    assert np.all(np.isfinite(M @ np.ones(16)))


def test_options_are_one_dataclass_and_fit_keeps_its_signature():
    # Every keyword of the pre-package LearnedLU.fit, with its default.
    old = {"block_size": 32, "rank": None, "ordering": "auto", "symmetric": "auto",
           "loss": "probe", "transpose_loss": False, "blockwise": False, "max_steps": 200,
           "n_probes": 16, "lr": None, "tol": 1e-3, "patience": None, "init": "auto",
           "seed": None, "device": "cpu", "dtype": None, "coords": None,
           "grid_shape": None, "verbose": False, "callback": None,
           "train_near_field": True, "pivoting": "auto", "factor_dtype": "auto"}
    params = inspect.signature(LearnedLU.fit).parameters
    assert list(params)[0] == "A"
    for name, default in old.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default, name
    assert params["time_budget"].default is None
    defaults = FitOptions()
    assert {name: getattr(defaults, name) for name in old if name != "device"} == \
        {k: v for k, v in old.items() if k != "device"}
    assert defaults.device == torch.device("cpu")
    documented = {name.strip() for line in re.findall(r"^ +([\w, ]+) :", LearnedLU.fit.__doc__,
                                                     re.M) for name in line.split(",")}
    assert set(params) <= documented, set(params) - documented
    with pytest.raises(dataclasses_frozen_error()):
        defaults.block_size = 4


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_starts_registry_names_the_inits():
    assert set(STARTS) == {"block_tridiagonal", "block_jacobi", "exact_compressed", "random"}
    for name in STARTS:
        M = quiet(LearnedLU.fit, lap1d(16), **{**SMALL, "init": name, "max_steps": 0})
        assert M.report.init == name


# -- 2. time limits ----------------------------------------------------------------------


class ScriptedDeadline(Deadline):
    """A deadline whose ``remaining()`` returns scripted values (no wall clock), then -1."""

    def __init__(self, values, reason="time_budget"):
        object.__setattr__(self, "at", 0.0)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "_values", iter(values))

    def remaining(self):
        return next(self._values, -1.0)


def _tiny_training(deadline, eval_every=1000):
    from learned_precond.gfmm import GFMMLayout
    from learned_precond.lu.report import FitReport

    A = torch.from_numpy(laplace_2d(4).toarray())
    model = LUModel(GFMMLayout(2, 8, 2), symmetric=False)
    report = FitReport()

    def apply_A(Z):
        return A @ Z

    converged = train(model, apply_A, None, report, max_steps=10_000, lr=1e-2, tol=0.0,
                      eval_every=eval_every, generator=torch.Generator().manual_seed(0),
                      deadline=deadline)
    return converged, report


def test_training_checks_its_deadline_every_step():
    # Evaluations every 1000 steps; the clock is read before every step.
    # Plenty of time for 3 steps, then too little for a step and an evaluation
    # but enough for the evaluation: the 3 steps are evaluated, and training stops.
    converged, report = _tiny_training(ScriptedDeadline([1e9] * 3 + [0.0, 1e9]))
    assert not converged
    assert report.stop_reason == "time_budget" and report.cut_short == ["train"]
    assert report.steps == 3
    assert report.val_history[-1][0] == 3
    # Not even time for the evaluation: stop, and keep the last evaluated factors.
    _, report = _tiny_training(ScriptedDeadline([1e9] * 3 + [0.0, 0.0]))
    assert report.steps == 3 and report.val_history[-1][0] == 0
    assert report.best_step == 0
    _, report = _tiny_training(ScriptedDeadline([], reason="time_limit"))
    assert report.steps == 0 and report.stop_reason == "time_limit"


def test_time_budget_returns_the_best_found_and_says_what_was_cut_short():
    A = laplace_2d(24)
    M = quiet(LearnedLU.fit, A, block_size=8, seed=0, time_budget=0.05, max_steps=10_000,
              tol=0.0, init="gfmm")
    rep = M.report
    assert rep.time_budget == 0.05
    assert rep.stop_reason == "time_budget"
    assert "train" in rep.cut_short
    assert rep.train_limit <= rep.time_budget
    assert rep.steps < 10_000
    # the kept factors are the best evaluated: never worse than the start
    assert min(v for _, v in rep.val_history) <= rep.val_history[0][1]
    assert np.all(np.isfinite(M @ np.ones(A.shape[0])))
    assert "cut short" in repr(M) and "time_budget" in rep.stop_reason


def test_default_limit_stops_training(monkeypatch):
    monkeypatch.setattr(budget, "DEFAULT_MIN_TRAIN_SECONDS", 0.0)
    monkeypatch.setattr(budget, "DEFAULT_TRAIN_FACTOR", 0.0)
    with pytest.warns(FitConvergenceWarning, match="default time limit"):
        M = LearnedLU.fit(laplace_2d(16), block_size=8, seed=0, max_steps=500, tol=0.0,
                          init="block_jacobi")
    rep = M.report
    assert rep.stop_reason == "time_limit" and rep.train_limit == 0.0
    assert any("default time limit" in note for note in rep.notes)
    assert rep.steps == 0


def test_default_limit_is_recorded():
    M = quiet(LearnedLU.fit, laplace_2d(16), block_size=8, seed=0, max_steps=20)
    rep = M.report
    assert rep.time_budget is None
    assert rep.train_limit == max(budget.DEFAULT_MIN_TRAIN_SECONDS,
                                  budget.DEFAULT_TRAIN_FACTOR * rep.start_seconds)
    assert rep.start_seconds > 0 and rep.train_seconds >= 0
    assert rep.train_time == rep.train_seconds
    assert rep.start_seconds + rep.train_seconds <= rep.fit_time
    M = quiet(LearnedLU.fit, laplace_2d(16), block_size=8, seed=0, max_steps=20,
              time_budget=math.inf)
    assert M.report.train_limit == math.inf and M.report.cut_short == []


# -- 3. float training dtypes ------------------------------------------------------------


def test_float32_training_keeps_an_exact_start():
    # A banded matrix: the block tridiagonal start is exact. Single precision
    # training used to miss that and train it for max_steps.
    A = lap1d(64)
    M64 = quiet(LearnedLU.fit, A, block_size=8, seed=0, init="gfmm")
    M32 = quiet(LearnedLU.fit, A, block_size=8, seed=0, dtype=torch.float32, init="gfmm")
    assert M32.report.stop_reason == "exact" and M32.report.steps == 0
    x = np.random.default_rng(0).standard_normal(64)
    np.testing.assert_array_equal(M32 @ x, M64 @ x)  # the float64 start itself


def test_float32_training_trains():
    A = convection_diffusion_2d(8)
    M = quiet(LearnedLU.fit, A, block_size=8, rank=2, max_steps=20, seed=0,
              dtype=torch.float32, init="block_jacobi")
    assert M.report.steps > 0
    assert np.all(np.isfinite(M @ np.ones(A.shape[0])))


# -- 4. complex right-hand sides -----------------------------------------------------------


def test_complex_x_is_applied_to_both_parts_not_dropped():
    # M is real, so M x for a complex x is M x.real + 1j M x.imag, for every
    # way of applying it; the imaginary part is never silently dropped.
    M = quiet(LearnedLU.fit, convection_diffusion_2d(6), **SMALL)
    rng = np.random.default_rng(0)
    xr, xi = rng.standard_normal(36), rng.standard_normal(36)
    for apply in (lambda v: M @ v, M.matvec, M.rmatvec):
        y = apply(xr + 1j * xi)
        assert np.iscomplexobj(y)
        np.testing.assert_allclose(y.real, apply(xr), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(y.imag, apply(xi), rtol=1e-13, atol=1e-14)
    Y = M.matmat(np.column_stack([xr + 1j * xi, xi]))
    np.testing.assert_allclose(Y[:, 0].imag, M @ xi, rtol=1e-13, atol=1e-14)
    with pytest.raises(TypeError, match="numeric"):
        M @ np.array(["a"] * 36)


# -- 5. model files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two saved models (general L U with mc64 pivoting, and symmetric L S L^T)."""
    path = tmp_path_factory.mktemp("models")
    A0 = convection_diffusion_2d(6)
    A = sp.csr_array(A0[np.roll(np.arange(36), 3)])  # zero diagonal: mc64 pivoting
    general = quiet(LearnedLU.fit, A, pivoting="auto", **SMALL)
    assert general.pivoting.method == "mc64" and not general.factors.symmetric
    spd = quiet(LearnedLU.fit, laplace_2d(6), **SMALL)
    assert spd.factors.symmetric
    files = {}
    for name, M in (("general", general), ("spd", spd)):
        files[name] = path / f"{name}.npz"
        M.save(files[name])
    return files


def read_parts(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("__metadata__").tobytes().decode())
    return arrays, meta


def write_parts(path, arrays, meta, compressed=True):
    arrays = dict(arrays)
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


def test_round_trip_keeps_the_public_state(saved):
    M = LearnedLU.load(saved["general"])
    arrays, meta = read_parts(saved["general"])
    assert meta["version"] == 2
    assert all(k.startswith(("L/", "U/", "ordering/", "pivoting/")) or k == "S"
               for k in arrays)
    assert meta["options"]["block_size"] == 8 and meta["options"]["seed"] == 0
    assert M.options["pivoting"] == "auto"
    assert M.report.start_seconds > 0 and M.report.notes
    assert np.all(np.isfinite(M @ np.ones(36)))


def test_npy_renamed_npz(tmp_path):
    path = tmp_path / "model.npz"
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(path)
    with pytest.raises(ModelFileError, match="single .npy array, not a LearnedLU .npz"):
        LearnedLU.load(path)


def test_old_format_version_is_a_clear_error(saved, tmp_path):
    arrays, meta = read_parts(saved["spd"])
    meta["version"] = 1
    write_parts(tmp_path / "v1.npz", arrays, meta)
    with pytest.raises(ModelFileError, match="format version 1; this library reads version 2 "
                                             "only. Fit the preconditioner again"):
        LearnedLU.load(tmp_path / "v1.npz")


def _member(name, shape, data, dtype="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return name, buf.getvalue() + data


@pytest.mark.parametrize("shape", [(10**12,), (2**20, 2**20), (3, 2**40)])
def test_crafted_array_header_never_allocates(saved, tmp_path, shape):
    arrays, meta = read_parts(saved["general"])
    path = tmp_path / "crafted.npz"
    write_parts(path, arrays, meta)
    with zipfile.ZipFile(path, "a") as zf:  # an extra member that claims terabytes
        name, payload = _member("L/E_extra.npy", shape, b"\0" * 64)
        zf.writestr(name, payload)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="declares shape"):
            LearnedLU.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


@pytest.mark.parametrize("edit, match", [
    ({"block_size": 2**20, "n_leaves": 1}, "unexpected array|shape"),  # 2**20-blocks
    ({"n_leaves": 2**30}, "does not match n="),
    ({"n": 2**39, "n_leaves": 2**36}, "shape|missing"),
    ({"rank": 9}, "rank"),
    ({"n": -3}, "'n' must be an integer"),
    ({"n": 36.5}, "'n' must be an integer"),
    ({"scale": "big"}, "'scale' must be a positive number"),
    ({"scale": -1.0}, "'scale' must be a positive number"),
    ({"symmetric": "no"}, "'symmetric' must be true or false"),
    ({"symmetric": True}, "missing|unexpected"),
    ({"pivoting": "mc65"}, "unknown pivoting method"),
    ({"factor_dtype": "float16"}, "unknown factor_dtype"),
    ({"ordering_method": 3}, "ordering_method"),
])
def test_edited_metadata_is_refused_before_reading_arrays(saved, tmp_path, edit, match):
    arrays, meta = read_parts(saved["general"])
    meta.update(edit)
    path = tmp_path / "edited.npz"
    write_parts(path, arrays, meta)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match):
            LearnedLU.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def _edit(arrays, name, value):
    arrays = dict(arrays)
    if value is None:
        del arrays[name]
    else:
        arrays[name] = value
    return arrays


@pytest.mark.parametrize("name, make, match", [
    ("pivoting/row_perm", lambda a: None, "array 'pivoting/row_perm' is missing"),
    ("pivoting/row_perm", lambda a: np.zeros_like(a), "invalid static pivoting"),
    ("pivoting/row_perm", lambda a: a[:-1], "shape"),
    ("pivoting/row_perm", lambda a: a.astype(np.float64), "dtype"),
    ("pivoting/row_scale", lambda a: -a, "invalid static pivoting"),
    ("ordering/slots", lambda a: np.roll(np.where(a >= 0, 0, a), 1), "not a permutation"),
    ("ordering/slots", lambda a: a.astype(np.int32), "dtype"),
    ("L/E", lambda a: np.full_like(a, np.nan), "NaN or Inf"),
    ("L/E", lambda a: a.reshape(-1), "shape"),
    ("U/D", lambda a: a.astype(np.float32), "dtype"),
    ("U/D", lambda a: None, "missing"),
])
def test_edited_arrays_are_refused(saved, tmp_path, name, make, match):
    arrays, meta = read_parts(saved["general"])
    path = tmp_path / "edited.npz"
    write_parts(path, _edit(arrays, name, make(arrays[name])), meta)
    with pytest.raises(ModelFileError, match=match):
        LearnedLU.load(path)


def test_tampered_pivoting_never_loads_as_identity(saved, tmp_path):
    arrays, meta = read_parts(saved["general"])
    # arrays renamed away: missing, not identity
    renamed = {k.replace("pivoting/", "pivot/"): v for k, v in arrays.items()}
    write_parts(tmp_path / "renamed.npz", renamed, meta)
    with pytest.raises(ModelFileError, match="missing|unexpected"):
        LearnedLU.load(tmp_path / "renamed.npz")
    # 'none' in the metadata with a real permutation stored
    write_parts(tmp_path / "none.npz", arrays, {**meta, "pivoting": "none"})
    with pytest.raises(ModelFileError, match="not the identity"):
        LearnedLU.load(tmp_path / "none.npz")


def test_symmetric_blocks_must_be_spd(saved, tmp_path):
    arrays, meta = read_parts(saved["spd"])
    write_parts(tmp_path / "indef.npz", _edit(arrays, "S", -arrays["S"]), meta)
    with pytest.raises(ModelFileError, match="not positive definite"):
        LearnedLU.load(tmp_path / "indef.npz")
    S = arrays["S"].copy()
    S[0, 0, 1] += 1.0
    write_parts(tmp_path / "asym.npz", _edit(arrays, "S", S), meta)
    with pytest.raises(ModelFileError, match="not symmetric"):
        LearnedLU.load(tmp_path / "asym.npz")


# -- 6. fuzzing ------------------------------------------------------------------------------

#: Each option: valid values and invalid ones (an invalid one must be named in the error).
OPTION_VALUES = {
    "block_size": ([4, 8, 16], [0, -1, 2.5, "8", None]),
    "rank": ([None, 1, 2, 4], [0, 99, 1.5]),
    "ordering": (["auto", "natural", "geometric", "bisection"], ["spiral", 3]),
    "symmetric": (["auto", False], ["yes", None]),
    "loss": (["probe", "adaptive", "preconditioned"], ["l2", None]),
    "max_steps": ([0, 1, 3], [-1, 2.0]),
    "n_probes": ([1, 4], [0, "4"]),
    "lr": ([None, 1e-3, 0.1], [0.0, -1.0, math.nan, math.inf]),
    "tol": ([0.0, 1e-3], [math.nan, -1.0, "small"]),
    "patience": ([None, 1], [0, 1.0]),
    "init": (["auto", "block_tridiagonal", "block_jacobi", "random", "exact_compressed"],
             ["magic", 0]),
    "seed": ([0, 7, 2**63], [1.7, "abc", 2**70, -1]),
    "dtype": ([None, torch.float64, torch.float32], ["float32", torch.float16, np.float64]),
    "device": (["cpu"], ["gpu", "tpu"]),
    "pivoting": (["auto", "none", "scale", "mc64"], ["mc65"]),
    "factor_dtype": (["auto", "float64", "float32"], ["float16", np.float32]),
    "time_budget": ([None, 60.0, math.inf], [0.0, -1.0, math.nan, "1s"]),
    "train_near_field": ([True, False], ["no"]),
}


@st.composite
def fit_options(draw):
    options, invalid = {}, []
    for name in draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), unique=True,
                              max_size=6)):
        good, bad = OPTION_VALUES[name]
        if draw(st.integers(0, 4)) == 0:
            options[name] = draw(st.sampled_from(bad))
            invalid.append(name)
        else:
            options[name] = draw(st.sampled_from(good))
    return options, invalid


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec=fit_options())
def test_fuzz_fit_options(spec):
    options, invalid = spec
    A = lap1d(24) + 0.1 * sp.eye_array(24)
    options = {"max_steps": 2, "seed": 0, **options}
    try:
        M = quiet(LearnedLU.fit, A, **options)
    except (TypeError, ValueError) as exc:
        # the error names an invalid option, or (for a combination, such as
        # rank > block_size or 'geometric' without coordinates) a given one
        named = [name for name in (invalid or options) if name in str(exc)]
        assert named, (options, exc)
        return
    except PreconditionerSetupError:
        return
    assert not invalid, options
    assert np.all(np.isfinite(M @ np.ones(24)))


def _mutations(draw, data, arrays, meta, good_bytes):
    kind = draw(st.sampled_from(["flip", "truncate", "meta", "array", "flip_raw"]))
    if kind in ("flip", "flip_raw"):
        raw = bytearray(good_bytes if kind == "flip" else data["raw"])
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(raw)
    if kind == "truncate":
        return good_bytes[:draw(st.integers(0, len(good_bytes) - 1))]
    arrays, meta = dict(arrays), dict(meta)
    if kind == "meta":
        key = draw(st.sampled_from(["n", "n_leaves", "block_size", "rank", "scale",
                                    "symmetric", "pivoting", "factor_dtype", "version",
                                    "format", "report", "options"]))
        meta[key] = draw(st.one_of(st.integers(-3, 2**45), st.floats(allow_nan=True),
                                   st.booleans(), st.none(), st.text(max_size=5),
                                   st.sampled_from(["mc64", "none", "float32"])))
    else:
        name = draw(st.sampled_from(sorted(arrays)))
        a = arrays[name]
        op = draw(st.sampled_from(["reshape", "shrink", "grow", "dtype", "scale", "drop"]))
        if op == "reshape":
            a = a.reshape(-1)
        elif op == "shrink":
            a = a[: max(a.shape[0] - 1, 0)]
        elif op == "grow":
            a = np.concatenate([a, a[:1]])
        elif op == "dtype":
            a = a.astype(draw(st.sampled_from([np.float32, np.int32, np.int64, np.float64,
                                               np.uint8])))
        elif op == "scale":
            a = a * draw(st.sampled_from([0.0, -1.0, 1e300, 1e-300]))
        if op == "drop":
            del arrays[name]
        else:
            arrays[name] = a
    buf = io.BytesIO()
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("which", ["general", "spd"])
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_model_files(saved, tmp_path, which, data):
    good = saved[which].read_bytes()
    arrays, meta = read_parts(saved[which])
    buf = io.BytesIO()
    write = dict(arrays)
    write["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **write)  # uncompressed: byte flips reach headers and values
    blob = _mutations(data.draw, {"raw": buf.getvalue()}, arrays, meta, good)
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        try:
            M = LearnedLU.load(path)
        except ModelFileError:
            return
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    n = M.shape[0]
    x = np.random.default_rng(0).standard_normal(n)
    assert np.all(np.isfinite(M @ x)) and np.all(np.isfinite(M.rmatvec(x)))


def test_an_edited_n_is_named_as_such(saved, tmp_path):
    arrays, meta = read_parts(saved["general"])
    meta.update(n=2**39, n_leaves=2**36)
    write_parts(tmp_path / "n.npz", arrays, meta)
    with pytest.raises(ModelFileError, match=r"metadata n=549755813888 does not match"):
        LearnedLU.load(tmp_path / "n.npz")
