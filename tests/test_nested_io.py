"""Save/load of the nested-dissection layout (NestedLearnedLU.save, LearnedLU.load)."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from learned_precond import LearnedLU, problems
from learned_precond.exceptions import ModelFileError
from learned_precond.lu.nested import NestedLearnedLU
from learned_precond.lu.nested_io import saved_layout

META = "__metadata__"


def _laplace(n=16):
    return sp.csr_array(problems.get("laplace_2d", n=n))


def _convdiff(n=16):
    return sp.csr_array(problems.get("convection_diffusion_2d", n=n, eps=1e-2,
                                     velocity="vortex"))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``{name: (A, M, path)}``: Cholesky, LU, LU with static pivoting and
    Cholesky stored in float32, saved."""
    out = {}
    root = tmp_path_factory.mktemp("nested")
    for name, A, options in (("cholesky", _laplace(), {}),
                             ("lu", _convdiff(), {}),
                             ("lu-mc64", _convdiff(), {"pivoting": "mc64"}),
                             ("cholesky-float32", _laplace(), {"factor_dtype": "float32"})):
        M = LearnedLU.fit(A, init="hierarchical", rank_tol=0.2, seed=0, **options)
        path = root / f"{name}.npz"
        M.save(path)
        out[name] = (A, M, path)
    return out


def _read(path):
    """Our own file's arrays and metadata (written by the test, so np.load is safe)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop(META).tobytes().decode())
    return arrays, meta


def _write(path, arrays, meta):
    arrays = dict(arrays)
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


@pytest.mark.parametrize("name", ["cholesky", "lu", "lu-mc64", "cholesky-float32"])
def test_round_trip_is_bit_identical(fitted, name):
    A, M, path = fitted[name]
    assert saved_layout(path) == "nested_dissection"
    M2 = LearnedLU.load(path, A=A)
    assert isinstance(M2, NestedLearnedLU)
    assert M2.symmetric == M.symmetric and M2.pivoting.method == M.pivoting.method
    X = np.random.default_rng(0).standard_normal((A.shape[0], 3))
    assert np.array_equal(M @ X, M2 @ X)
    assert np.array_equal(M @ X[:, 0], M2 @ X[:, 0])
    assert np.array_equal(M.H @ X, M2.H @ X)
    assert M2.report.init == "hierarchical"
    assert M2.report.rank_tol == M.report.rank_tol
    assert M2.report.hierarchical == M.report.hierarchical
    assert M2.nbytes == M.nbytes
    assert repr(M2) == repr(M)
    # NestedLearnedLU.load dispatches the same way.
    assert np.array_equal(NestedLearnedLU.load(path) @ X, M @ X)


@pytest.mark.parametrize("name", ["cholesky", "lu"])
def test_round_trip_keeps_the_training_probes(fitted, tmp_path, name):
    # The probes let a warm start from a loaded operator refactor on them.
    A, M, path = fitted[name]
    M2 = LearnedLU.load(path, A=A)
    if M.probes is None:
        assert M2.probes is None and "probes" not in _read(path)[0]
    n = A.shape[0]
    probes = np.random.default_rng(1).standard_normal((n, 5))
    saved, M.probes = M.probes, probes
    try:
        path2 = tmp_path / "probes.npz"
        M.save(path2)
    finally:
        M.probes = saved
    M3 = LearnedLU.load(path2, A=A)
    assert np.array_equal(M3.probes, probes)
    X = np.random.default_rng(2).standard_normal((n, 2))
    assert np.array_equal(M3 @ X, M @ X)
    W = LearnedLU.fit(A, init=M3, rank_tol=0.2, seed=0)
    assert W.report.init == "warm_start"
    # a probe count that disagrees with the stored array is refused before reading
    arrays, meta = _read(path2)
    meta["n_probes"] = 4
    _write(path2, arrays, meta)
    with pytest.raises(ModelFileError, match="probes"):
        LearnedLU.load(path2)
    arrays["probes"][0, 0] = np.nan
    meta["n_probes"] = 5
    _write(path2, arrays, meta)
    with pytest.raises(ModelFileError, match="NaN"):
        LearnedLU.load(path2)


def test_wrong_matrix_is_refused(fitted):
    A, _, path = fitted["cholesky"]
    with pytest.raises(ModelFileError, match="different matrix"):
        LearnedLU.load(path, A=A * 2.0)
    with pytest.raises(ModelFileError, match="for a 256x256 matrix"):
        LearnedLU.load(path, A=_laplace(12))



def test_the_fingerprint_is_of_the_canonical_matrix_and_leaves_it_alone(fitted):
    # the same matrix with each row's entries reversed and split in two
    # duplicates has the same fingerprint (a file loads against either form),
    # and hashing modifies neither form
    from learned_precond.io import matrix_fingerprint

    A, _, path = fitted["cholesky"]
    indptr, indices, data = [0], [], []
    for i in range(A.shape[0]):
        cols = A.indices[A.indptr[i]:A.indptr[i + 1]][::-1]
        vals = A.data[A.indptr[i]:A.indptr[i + 1]][::-1]
        indices += [*cols, *cols]
        data += [*(vals / 4), *(3 * vals / 4)]
        indptr.append(len(indices))
    messy = sp.csr_array((np.array(data), np.array(indices), np.array(indptr)),
                         shape=A.shape)
    assert not messy.has_canonical_format
    before = [x.copy() for x in (messy.indptr, messy.indices, messy.data)]
    assert matrix_fingerprint(messy) == matrix_fingerprint(A)
    for got, want in zip((messy.indptr, messy.indices, messy.data), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert matrix_fingerprint(A * 2.0) != matrix_fingerprint(A)
    LearnedLU.load(path, A=messy)


def test_truncated_file_is_refused(fitted, tmp_path):
    _, _, path = fitted["lu"]
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 10, 20):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            LearnedLU.load(bad)


def _edited(fitted, tmp_path, name, edit):
    _, _, path = fitted[name]
    arrays, meta = _read(path)
    edit(arrays, meta)
    bad = tmp_path / "edited.npz"
    _write(bad, arrays, meta)
    return bad


def _swap_perm(a, m):
    a["tree/perm"][0] = a["tree/perm"][1]


def _shrink_diag(a, m):
    a["factors/diag"] = a["factors/diag"][:-1]


def _shrink_diag_and_meta(a, m):
    a["factors/diag"] = a["factors/diag"][:-1]
    m["lengths"]["diag"] -= 1


def _huge_length(a, m):
    m["lengths"]["QL"] = m["n"] ** 2 + 1


def _huge_n(a, m):
    m["n"] = 2**39


def _rank_above_block(a, m):
    s = np.diff(a["tree/ptr"])
    a["factors/kL"][np.argmax(s)] = s.max() + 1


def _parent_before_child(a, m):
    a["tree/parent"][-2] = 0


def _boundary_inside_node(a, m):
    t = int(np.flatnonzero(np.diff(a["factors/boff"]))[0])
    a["factors/bidx"][a["factors/boff"][t]] = a["tree/ptr"][t]


def _pivot_out_of_block(a, m):
    a["factors/piv"][0] = a["tree/ptr"][1]


def _zero_pivot(a, m):
    a["factors/diag"][0] = 0.0


def _nan_factor(a, m):
    a["factors/QL"][0] = np.nan


def _float32_array(a, m):
    a["factors/XL"] = a["factors/XL"].astype(np.float32)


def _float64_in_a_float32_file(a, m):
    m["factor_dtype"] = "float32"  # the arrays stay float64


def _unknown_factor_dtype(a, m):
    m["factor_dtype"] = "float16"


def _extra_array(a, m):
    a["factors/extra"] = np.zeros(3)


def _no_layout(a, m):
    del m["layout"]  # then it reads as a GFMM file, which it is not


@pytest.mark.parametrize("edit", [
    _swap_perm, _shrink_diag, _shrink_diag_and_meta, _huge_length, _huge_n,
    _rank_above_block, _parent_before_child, _boundary_inside_node, _pivot_out_of_block,
    _zero_pivot, _nan_factor, _float32_array, _float64_in_a_float32_file,
    _unknown_factor_dtype, _extra_array, _no_layout,
], ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("name", ["cholesky", "lu"])
def test_edited_file_is_refused(fitted, tmp_path, name, edit):
    bad = _edited(fitted, tmp_path, name, edit)
    with pytest.raises(ModelFileError):
        LearnedLU.load(bad)


def test_crafted_sizes_never_allocate(fitted, tmp_path):
    # Metadata and headers that agree on 2^33 floats: refused before any read
    # (the member holds a few bytes), and nothing near that size is allocated.
    _, _, path = fitted["cholesky"]
    arrays, meta = _read(path)
    meta["lengths"]["diag"] = 2**33
    del arrays["factors/diag"]
    bad = tmp_path / "crafted.npz"
    _write(bad, arrays, meta)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (2**33,)})
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("factors/diag.npy", buf.getvalue() + b"\0" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError):
            LearnedLU.load(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**26


@pytest.mark.parametrize("name", ["cholesky", "lu"])
def test_every_integer_edit_is_caught_or_harmless(fitted, tmp_path, name):
    # One entry of every integer array set to values a crafted file would
    # use: loading either raises ModelFileError or gives a finite operator,
    # never another exception (an index error, a segfault in the kernel).
    _, _, path = fitted[name]
    arrays, meta = _read(path)
    n = meta["n"]
    rng = np.random.default_rng(0)
    for key in sorted(k for k, v in arrays.items() if v.dtype.kind == "i" and v.size):
        for value in (-1, 0, 1, n, 2**62):
            edited = {k: v.copy() for k, v in arrays.items()}
            edited[key][rng.integers(edited[key].size)] = value
            bad = tmp_path / "fuzz.npz"
            _write(bad, edited, meta)
            try:
                M = LearnedLU.load(bad)
            except ModelFileError:
                continue
            assert np.all(np.isfinite(M @ np.ones(n))), (key, value)


def test_a_decompression_bomb_is_refused_before_it_is_read(tmp_path):
    # ~1 MB of deflated zeros that would become 128 MiB: refused from the zip
    # header alone (fitted factors compress ~1.1x), without decompressing.
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        buf = io.BytesIO()
        np.save(buf, np.zeros(2**24))
        zf.writestr("factors/diag.npy", buf.getvalue())
        zf.writestr(META + ".npy", _npy(np.frombuffer(b"{}", dtype=np.uint8)))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="decompression bomb"):
            LearnedLU.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**24


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_a_renamed_array_is_reported_missing_by_its_name(fitted, tmp_path):
    _, _, path = fitted["lu-mc64"]
    arrays, meta = _read(path)
    arrays = {k.replace("pivoting/", "pivot/"): v for k, v in arrays.items()}
    bad = tmp_path / "renamed.npz"
    _write(bad, arrays, meta)
    with pytest.raises(ModelFileError, match=r"'pivoting/row_perm' is missing \(it holds"):
        LearnedLU.load(bad)
