"""Fuzzing (hypothesis) of what a user hands LearnedLU: scalings, dtypes, complex input, files.

Every drawn case must end in a clear error (one of the library's documented
exception types, with a message) or in a preconditioner whose output is
finite; complex vectors are applied as ``M x.real + 1j M x.imag``. The
option fuzzing and the GFMM model-file fuzzing are in ``test_fit_options.py``.
"""

import io
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learned_precond import LearnedLU, problems
from learned_precond.exceptions import ModelFileError, PreconditionerSetupError

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
CLEAR = (TypeError, ValueError, NotImplementedError, PreconditionerSetupError)
LAYOUTS = ({}, {"init": "gfmm", "block_size": 8, "max_steps": 3})


def _matrix(kind):
    if kind == "laplace":
        return sp.csr_array(problems.get("laplace_2d", n=8))
    return sp.csr_array(problems.get("convection_diffusion_2d", n=8, eps=1e-2,
                                     velocity="vortex"))


def _fit(A, layout):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # conditioning / convergence warnings are allowed
        return LearnedLU.fit(A, seed=0, **layout)


def _check_output(M, n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    y = M @ x
    assert y.shape == (n,) and np.all(np.isfinite(y))
    z = x + 1j * rng.standard_normal(n)
    w = M @ z
    assert np.iscomplexobj(w) and np.all(np.isfinite(w))
    assert np.allclose(w, M @ z.real + 1j * (M @ z.imag), rtol=1e-12, atol=0)


@FUZZ
@given(kind=st.sampled_from(["laplace", "convdiff"]),
       rows=st.tuples(st.integers(-300, 300), st.integers(-300, 300)),
       cols=st.tuples(st.integers(-300, 300), st.integers(-300, 300)),
       layout=st.sampled_from(range(len(LAYOUTS))))
def test_fuzz_scalings(kind, rows, cols, layout):
    # rows scaled over 10^rows[0] .. 10^rows[1], columns likewise (log-spaced)
    A = _matrix(kind)
    n = A.shape[0]
    with np.errstate(over="ignore", under="ignore"):
        r = np.logspace(*rows, n)
        c = np.logspace(*cols, n)
        B = sp.csr_array(sp.diags_array(r) @ A @ sp.diags_array(c))
    try:
        M = _fit(B, LAYOUTS[layout])
    except CLEAR as exc:
        assert str(exc)
        return
    _check_output(M, n)


@FUZZ
@given(kind=st.sampled_from(["laplace", "convdiff"]),
       dtype=st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.bool_,
                              np.complex128, np.complex64]),
       dense=st.booleans(), layout=st.sampled_from(range(len(LAYOUTS))))
def test_fuzz_dtypes_and_complex(kind, dtype, dense, layout):
    A = _matrix(kind)
    if np.issubdtype(dtype, np.complexfloating):
        A = sp.csr_array(A + 0.5j * sp.eye_array(A.shape[0]))
    dense = dense or dtype is np.float16  # scipy.sparse has no float16
    B = A.toarray().astype(dtype) if dense else sp.csr_array(A.astype(dtype))
    try:
        M = _fit(B, LAYOUTS[layout])
    except CLEAR as exc:
        assert str(exc)
        return
    assert not np.issubdtype(dtype, np.bool_) and not np.issubdtype(dtype, np.integer)
    if np.issubdtype(dtype, np.complexfloating):
        x = np.random.default_rng(0).standard_normal(A.shape[0]) + 0j
        assert np.all(np.isfinite(M @ x))
        return
    _check_output(M, A.shape[0])


@pytest.fixture(scope="module")
def nested_file(tmp_path_factory):
    A = _matrix("convdiff")
    M = LearnedLU.fit(A, rank_tol=0.2, seed=0)
    buf = io.BytesIO()
    path = tmp_path_factory.mktemp("fuzz") / "nested.npz"
    M.save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(buf, **arrays)  # uncompressed: byte flips reach headers and values
    return A.shape[0], path.read_bytes(), buf.getvalue()


@FUZZ
@given(data=st.data())
def test_fuzz_nested_model_files(nested_file, tmp_path, data):
    import tracemalloc

    n, compressed, raw = nested_file
    blob = bytearray(data.draw(st.sampled_from([compressed, raw])))
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(bytes(blob))
    tracemalloc.start()
    try:
        try:
            M = LearnedLU.load(path)
        except ModelFileError as exc:
            assert str(exc)
            return
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    x = np.random.default_rng(0).standard_normal(n)
    assert np.all(np.isfinite(M @ x))
