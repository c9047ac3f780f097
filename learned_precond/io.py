"""Safe save/load of fitted preconditioners: ``.npz`` arrays plus JSON metadata.

Loading never executes code and never allocates what a file merely claims:

* the file must be a zip archive of ``.npy`` members (a pickle, a lone
  ``.npy`` renamed ``.npz``, or anything else is refused by name);
* every member's ``.npy`` header (shape, dtype) is read first, without its
  data: object and structured dtypes are refused, the declared size must be
  what the member holds, and no member may claim to expand more than deflate
  can (so an array can never be larger than ~1000 times its bytes on disk);
* the metadata (JSON, size-limited) is read next, and a format's own check
  compares every declared shape and dtype with what the metadata implies,
  before any array is read (``read_npz(..., check=...)``);
* only then are the arrays read (``allow_pickle=False``), and their values
  checked (finite, valid permutations) before an object is rebuilt.

A LearnedLU file (format version 2) holds the operator's public state: the
ordering, the static pivoting, the factors (``LUFactors``: the GFMM
parameters of ``L`` and ``U``, or ``L`` and the SPD blocks ``S`` of
``U = S L^T``), the scale, the report and the fit options.
"""

import hashlib
import json
import math
import numbers
import zipfile
import zlib

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .exceptions import ModelFileError

__all__ = ["MAX_N", "check_fitted_to", "check_headers", "matrix_fingerprint", "meta_int",
           "read_pivoting", "save_learned_lu", "load_learned_lu", "read_npz", "write_npz"]

FORMAT = "learned_precond.LearnedLU"
#: Version 2 stores the public state (LUFactors); version 1 stored the torch
#: model's internal parameters and is no longer read.
VERSION = 2
_META = "__metadata__"
#: Largest metadata block read (bytes of JSON).
_MAX_META_BYTES = 16 * 2**20
#: Deflate expands at most ~1032x; a member claiming more is corrupt or crafted.
_MAX_EXPANSION = 1100
#: A member that expands to more than this many bytes...
_BOMB_BYTES = 64 * 2**20
#: ...at more than this ratio is refused: fitted factors are dense floats that
#: deflate barely shrinks (~1.1x); megabytes of zeros standing for gigabytes are
#: a decompression bomb, not a model.
_BOMB_RATIO = 100
#: Largest N a LearnedLU file may declare.
MAX_N = 2**40


# -- the container -----------------------------------------------------------------------
def write_npz(path, arrays, meta):
    """Write ``arrays`` plus JSON ``meta`` to a compressed ``.npz`` (no pickle)."""
    arrays = dict(arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def read_npz(path, fmt, what, version, *, check=None):
    """Read a file written by :func:`write_npz`; return ``(arrays, meta)``.

    Parameters
    ----------
    path : str or path-like
    fmt, what, version
        The ``format`` and ``version`` the metadata must carry, and the name
        of the object the file should hold (for messages).
    check : callable, optional
        ``check(meta, headers)`` with ``headers`` ``{name: (shape, dtype)}``
        of every array, called before any array is read; raises
        :class:`ModelFileError` when a shape or dtype is not what ``meta``
        implies.

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFileError
        Not a zip of ``.npy`` arrays (a pickle, a single ``.npy``, a
        truncated or corrupt file), an unsafe or implausible array header,
        missing or invalid metadata, another format or version, or what
        ``check`` refuses.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read as a {what} file ({exc}).") from exc
    if head.startswith(b"\x93NUMPY"):
        raise ModelFileError(
            f"{path} is a single .npy array, not a {what} .npz archive (a .npy file "
            f"renamed .npz?); save the preconditioner with {what}.save(path).")
    if head[:1] == b"\x80":
        raise ModelFileError(
            f"{path} is a pickle, which is never loaded (it could run code); save the "
            f"preconditioner with {what}.save(path).")
    try:
        with zipfile.ZipFile(path) as zf:
            members = _read_headers(zf, path, what)
            if _META not in members:
                raise ModelFileError(
                    f"{path} has no metadata; it was not written by {what}.save.")
            meta = _read_metadata(zf, members.pop(_META), path)
            _check_format(meta, path, fmt, what, version)
            if check is not None:
                check(meta, {k: (m[1], m[2]) for k, m in members.items()})
            arrays = {}
            for name, (info, _, _) in members.items():
                with zf.open(info) as fh:
                    arrays[name] = np.lib.format.read_array(fh, allow_pickle=False)
    except ModelFileError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, zlib.error,
            zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path} is not a readable {what} file ({exc}); it may be truncated, corrupt, "
            f"or a pickle (which is never loaded). Save it again with .save()."
        ) from exc
    return arrays, meta


def _read_headers(zf, path, what):
    """``{name: (ZipInfo, shape, dtype)}`` from the ``.npy`` headers alone."""
    members = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or info.is_dir():
            raise ModelFileError(
                f"{path} holds {info.filename!r}, which is not a .npy array; it was not "
                f"written by {what}.save.")
        if info.file_size > _MAX_EXPANSION * max(info.compress_size, 1) + 4096:
            raise ModelFileError(
                f"{path}: member {info.filename!r} claims to expand from "
                f"{info.compress_size} to {info.file_size} bytes, more than compression "
                f"allows; the file is corrupt or crafted.")
        if info.file_size > _BOMB_BYTES and \
                info.file_size > _BOMB_RATIO * max(info.compress_size, 1):
            raise ModelFileError(
                f"{path}: member {info.filename!r} would expand from {info.compress_size} "
                f"to {info.file_size} bytes ({info.file_size / max(info.compress_size, 1):.0f}x "
                f"compression; fitted factors compress about 1.1x): a decompression bomb, "
                f"not a saved preconditioner. It is not read.")
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ModelFileError(
                    f"{path}: member {info.filename!r} has .npy format version {version}, "
                    f"which is not read.")
            header = fh.tell()
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
            raise ModelFileError(
                f"{path}: array {info.filename[:-4]!r} has dtype {dtype}; only plain "
                f"numbers are read (never objects, which would be unpickled).")
        nbytes = math.prod(shape) * dtype.itemsize
        if header + nbytes != info.file_size:
            raise ModelFileError(
                f"{path}: array {info.filename[:-4]!r} declares shape {shape} "
                f"({nbytes} bytes) but its member holds {info.file_size - header}; the "
                f"file is corrupt or crafted.")
        members[info.filename[:-4]] = (info, tuple(int(s) for s in shape), dtype)
    return members


def _read_metadata(zf, member, path):
    info, shape, dtype = member
    if dtype != np.uint8 or len(shape) != 1:
        raise ModelFileError(f"{path}: the metadata array is not JSON bytes.")
    if shape[0] > _MAX_META_BYTES:
        raise ModelFileError(f"{path}: the metadata block ({shape[0]} bytes) is too large.")
    with zf.open(info) as fh:
        raw = np.lib.format.read_array(fh, allow_pickle=False)
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc}).") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: metadata is not a JSON object.")
    return meta


def _check_format(meta, path, fmt, what, version):
    if meta.get("format") != fmt:
        raise ModelFileError(f"{path} is not a {what} file (format {meta.get('format')!r}).")
    if meta.get("version") != version:
        raise ModelFileError(
            f"{path} has format version {meta.get('version')!r}; this library reads "
            f"version {version} only. Fit the preconditioner again with this version and "
            f"save it (older versions stored other internals, which are not converted).")


def matrix_fingerprint(A):
    """SHA-256 of a matrix's size, pattern and values (None for a LinearOperator)."""
    if isinstance(A, LinearOperator) and not sp.issparse(A):
        return None
    h = hashlib.sha256()
    if sp.issparse(A):
        C = sp.csr_array(A, dtype=np.float64)  # noqa: N806
        if not C.has_canonical_format:  # hash the canonical form, without touching A
            C = C.copy()  # noqa: N806
            C.sum_duplicates()
            C.sort_indices()
        h.update(np.asarray(C.shape, dtype=np.int64).tobytes())
        for arr in (C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data):
            h.update(np.ascontiguousarray(arr).tobytes())
    else:
        arr = np.ascontiguousarray(np.asarray(A, dtype=np.float64))
        h.update(np.asarray(arr.shape, dtype=np.int64).tobytes())
        h.update(memoryview(arr))  # the same bytes as arr.tobytes(), without a copy
    return h.hexdigest()


def read_pivoting(arrays, meta, path):
    """The StaticPivoting stored under ``pivoting/`` (checked against the metadata's method)."""
    from .pivoting import StaticPivoting

    method = meta["pivoting"]
    try:
        pivoting = StaticPivoting.from_arrays(
            {k[len("pivoting/"):]: v for k, v in arrays.items() if k.startswith("pivoting/")},
            method=method)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{path}: invalid static pivoting arrays ({exc}).") from exc
    if method == "none" and not pivoting.is_identity:
        raise ModelFileError(
            f"{path}: the metadata says no pivoting, but the pivoting arrays are not the "
            f"identity; the file was edited.")
    return pivoting


# -- LearnedLU ----------------------------------------------------------------------------
#: Report fields saved, with the JSON types they must have when loaded.
_REPORT_FIELDS = {
    "loss": str, "init": str, "ordering": str, "symmetric": bool, "steps": int,
    "best_step": int, "relative_error": float, "init_relative_error": float,
    "stop_reason": str, "converged": bool, "fit_time": float, "init_time": float,
    "ordering_time": float, "start_seconds": float, "train_seconds": float,
    "train_limit": float, "time_budget": float, "recoveries": int, "n_parameters": int,
    "nbytes": int, "cond_A": float, "cond_A_hat": float, "pivoting": str,
    "cut_short": list, "notes": list,
}


def save_learned_lu(lu, path):
    """Write a fitted LearnedLU's public state to ``path`` (a ``.npz`` file)."""
    arrays = dict(lu.factors.arrays())
    arrays["ordering/slots"] = np.asarray(lu.ordering.slots, dtype=np.int64)
    for k, v in lu.pivoting.as_arrays().items():
        arrays[f"pivoting/{k}"] = np.asarray(v)
    rep = lu.report
    options = lu.options.to_json() if hasattr(lu.options, "to_json") else lu.options
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "n": int(lu.shape[0]),
        "n_leaves": lu.layout.n_leaves,
        "block_size": lu.layout.block_size,
        "rank": lu.layout.rank,
        "symmetric": bool(lu.factors.symmetric),
        "pivoting": lu.pivoting.method,
        "scale": lu.scale,
        "factor_dtype": lu.factor_dtype,
        "ordering_method": lu.ordering.method,
        "fingerprint": lu.fingerprint,
        "report": {k: getattr(rep, k) for k in _REPORT_FIELDS},
        "options": options,
    }
    write_npz(path, arrays, meta)


def _leaves_for(n, P):
    """The tree's number of leaves: the smallest power of two ``M`` with ``M P >= n``."""
    return 1 << max(0, (-(-n // P) - 1).bit_length())


def meta_int(meta, key, path, low, high):
    """``meta[key]``, which must be an integer in ``[low, high]`` (else ModelFileError)."""
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ModelFileError(
            f"{path}: metadata {key!r} must be an integer in [{low}, {high}], got "
            f"{value!r}.")
    return value


def _learned_lu_layout(meta, path, A):
    """Validate the metadata of a LearnedLU file; return its sizes and flags."""
    n = meta_int(meta, "n", path, 1, MAX_N)
    P = meta_int(meta, "block_size", path, 1, MAX_N)
    M = meta_int(meta, "n_leaves", path, 1, 2 * MAX_N)
    r = meta_int(meta, "rank", path, 1, P)
    if M != _leaves_for(n, P):
        raise ModelFileError(
            f"{path}: metadata n_leaves={M} does not match n={n} and block_size={P} (the "
            f"tree has {_leaves_for(n, P)} leaves).")
    symmetric = meta.get("symmetric")
    scale = meta.get("scale")
    if not isinstance(symmetric, bool):
        raise ModelFileError(f"{path}: metadata 'symmetric' must be true or false.")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or \
            not (math.isfinite(scale) and scale > 0):
        raise ModelFileError(f"{path}: metadata 'scale' must be a positive number, got "
                             f"{scale!r}.")
    if meta.get("factor_dtype") not in ("float64", "float32"):
        raise ModelFileError(
            f"{path}: unknown factor_dtype {meta.get('factor_dtype')!r} in the metadata.")
    if meta.get("pivoting") not in ("mc64", "scale", "none"):
        raise ModelFileError(
            f"{path}: unknown pivoting method {meta.get('pivoting')!r} in the metadata.")
    if not isinstance(meta.get("ordering_method"), str):
        raise ModelFileError(f"{path}: metadata 'ordering_method' must be a string.")
    fingerprint = meta.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ModelFileError(f"{path}: metadata 'fingerprint' must be a string or null.")
    check_fitted_to(A, n, fingerprint, path)
    return n, M, P, r, symmetric, float(scale)


def check_fitted_to(A, n, fingerprint, path):
    """A file for an ``n x n`` matrix with ``fingerprint``: was it fitted to ``A``? (None: no check)."""
    if A is None:
        return
    if A.shape != (n, n):
        raise ModelFileError(
            f"{path} holds a preconditioner for a {n}x{n} matrix, but A is "
            f"{A.shape[0]}x{A.shape[1]}; fit a new one for this matrix.")
    fp = matrix_fingerprint(A)
    if fp is not None and fingerprint not in (None, fp):
        raise ModelFileError(
            f"{path} was fitted to a different matrix (its fingerprint does not match "
            f"A); fit a new one, or warm-start: LearnedLU.fit(A, init=old).")


def _expected_arrays(layout, symmetric, n):
    """``{name: (shape, dtype kind)}`` of every array of a LearnedLU file."""
    from .lu.pack import LUFactors

    out = {k: (v, "f") for k, v in LUFactors.shapes(layout, symmetric).items()}
    out["ordering/slots"] = ((layout.size,), "i")
    out["pivoting/row_perm"] = ((n,), "i")
    out["pivoting/row_scale"] = ((n,), "f")
    out["pivoting/col_scale"] = ((n,), "f")
    return out


def check_headers(expected, headers, path, *, sizes="the metadata's N, block size and rank"):
    """Every stored array against ``expected`` (``{name: (shape, dtype kind)}``), before any is read.

    Missing arrays are reported first (an array renamed away is named by what
    the file should hold), then unexpected ones, then shapes and dtypes
    (kind ``'f'`` or ``'i'``: 8-byte floats or integers; ``'f4'``: 4-byte
    floats); ``sizes`` says where the expected shapes come from. Raises :class:`ModelFileError`.
    """
    # Missing arrays first: an array renamed away (pivoting/ -> pivot/) is then
    # reported by the name the file should hold, never read as a default.
    missing = [name for name in expected if name not in headers]
    if missing:
        extra = [name for name in headers if name not in expected]
        also = f" (it holds {', '.join(map(repr, extra))} instead)" if extra else ""
        raise ModelFileError(
            f"{path}: array {missing[0]!r} is missing{also}; the file does not match its "
            f"metadata (written by another version, or edited).")
    for name in headers:
        if name not in expected:
            raise ModelFileError(
                f"{path}: unexpected array {name!r}; the file does not match its metadata "
                f"(written by another version, or edited).")
    for name, (shape, kind) in expected.items():
        got_shape, dtype = headers[name]
        # kind 'f' / 'i': float64 / int64; 'f4': float32
        size = int(kind[1:]) if len(kind) > 1 else 8
        if got_shape != tuple(shape) or dtype.kind != kind[0] or dtype.itemsize != size:
            want = f"{'float' if kind[0] == 'f' else 'int'}{8 * size}"
            raise ModelFileError(
                f"{path}: array {name!r} has shape {got_shape} and dtype {dtype}, expected "
                f"{tuple(shape)} {want} (from {sizes}).")


def load_learned_lu(cls, path, A=None):
    """Rebuild a LearnedLU saved by :func:`save_learned_lu`; see ``LearnedLU.load``."""
    from ._convert import randn
    from .gfmm import GFMMLayout
    from .lu.pack import LUFactors
    from .lu.report import FitReport
    from .ordering import TreeOrdering

    sizes = {}

    def check(meta, headers):
        n, M, P, r, symmetric, scale = _learned_lu_layout(meta, path, A)
        stored = headers.get("pivoting/row_perm", ((n,), None))[0]
        if tuple(stored) != (n,):
            # the arrays sized by n alone say what n was: an edited n is named as
            # such, not as the first layout array that a wrong n makes "missing"
            raise ModelFileError(
                f"{path}: metadata n={n} does not match the stored arrays "
                f"('pivoting/row_perm' has shape {tuple(stored)}); the file was edited.")
        layout = GFMMLayout(M, P, r)
        check_headers(_expected_arrays(layout, symmetric, n), headers, path)
        sizes.update(n=n, layout=layout, symmetric=symmetric, scale=scale)

    arrays, meta = read_npz(path, FORMAT, "LearnedLU", VERSION, check=check)
    n, layout, symmetric = sizes["n"], sizes["layout"], sizes["symmetric"]
    arrays = {k: v.astype(np.float64 if v.dtype.kind == "f" else np.int64, copy=False)
              for k, v in arrays.items()}
    for name, arr in arrays.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: array {name!r} has NaN or Inf entries.")

    slots = arrays["ordering/slots"]
    real = slots[slots >= 0]
    if real.size != n or np.any(slots < -1) or not np.array_equal(np.sort(real), np.arange(n)):
        raise ModelFileError(f"{path}: the ordering is not a permutation of 0..{n - 1}.")
    positions = np.empty(n, dtype=np.int64)
    positions[real] = np.flatnonzero(slots >= 0)
    try:
        tree = TreeOrdering(n=n, block_size=layout.block_size, n_leaves=layout.n_leaves,
                            n_levels=layout.n_levels, slots=slots, positions=positions,
                            method=meta["ordering_method"])
    except ValueError as exc:
        raise ModelFileError(f"{path}: invalid ordering ({exc}).") from exc

    pivoting = read_pivoting(arrays, meta, path)

    factors = LUFactors.from_arrays(
        layout, symmetric, {k: v for k, v in arrays.items() if "/" not in k or
                            k.startswith(("L/", "U/"))})
    if symmetric:
        S = factors.S
        asym = np.abs(S - np.swapaxes(S, 1, 2)).max()
        if asym > 1e-10 * max(np.abs(S).max(), 1e-300):
            raise ModelFileError(f"{path}: the blocks S of U = S L^T are not symmetric.")
        try:
            np.linalg.cholesky(S)
        except np.linalg.LinAlgError:
            raise ModelFileError(
                f"{path}: the blocks S of U = S L^T are not positive definite, so M would "
                f"not be SPD.") from None

    report = FitReport()
    saved_report = meta.get("report") if isinstance(meta.get("report"), dict) else {}
    for key, kind in _REPORT_FIELDS.items():
        value = saved_report.get(key)
        if kind is list:
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                setattr(report, key, list(value))
        elif kind is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(report, key, float(value))
        elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            setattr(report, key, value)
    options = meta.get("options")
    lu = cls(factors=factors, ordering=tree, scale=sizes["scale"], report=report,
             fingerprint=meta.get("fingerprint"), pivoting=pivoting,
             factor_dtype=meta["factor_dtype"],
             options=options if isinstance(options, dict) else None)
    import torch

    z = randn(torch.Generator().manual_seed(0), n, 2)
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(lu._apply(z)))
    if not finite:
        raise ModelFileError(f"{path}: the stored factors produce non-finite output.")
    return lu
