"""Safe save/load of fitted preconditioners: ``.npz`` arrays plus JSON metadata.

Loading never executes code: ``numpy.load(..., allow_pickle=False)`` reads only
plain arrays, the metadata is JSON, and every array is checked for name,
shape, dtype and finiteness before a factor is rebuilt from it.
"""

import hashlib
import json
import zipfile

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import LinearOperator

from .exceptions import ModelFileError

__all__ = ["matrix_fingerprint", "save_learned_lu", "load_learned_lu", "read_npz", "write_npz"]

FORMAT = "learned_precond.LearnedLU"
VERSION = 1
_META = "__metadata__"


def write_npz(path, arrays, meta):
    """Write ``arrays`` plus JSON ``meta`` to a compressed ``.npz`` (no pickle)."""
    arrays = dict(arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def read_npz(path, fmt, what, version):
    """Read a file written by :func:`write_npz`; return ``(arrays, meta)``.

    Never unpickles (``allow_pickle=False``); a missing, unreadable or
    mismatched metadata block (another ``format``, another ``version``)
    raises :class:`ModelFileError` naming ``what`` the file should be.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModelFileError(
            f"{path} is not a readable {what} file ({exc}); it may be truncated, corrupt, "
            f"or a pickle (which is never loaded). Save it again with .save()."
        ) from exc
    if _META not in arrays:
        raise ModelFileError(f"{path} has no metadata; it was not written by {what}.save.")
    raw = arrays.pop(_META)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{path}: the metadata array is not JSON bytes.")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelFileError(f"{path} is not a {what} file (format {meta.get('format')!r}).")
    if meta.get("version") != version:
        raise ModelFileError(
            f"{path} has format version {meta.get('version')}; this library reads version "
            f"{version}.")
    return arrays, meta


def matrix_fingerprint(A):
    """SHA-256 of a matrix's size, pattern and values (None for a LinearOperator)."""
    if isinstance(A, LinearOperator) and not sp.issparse(A):
        return None
    h = hashlib.sha256()
    if sp.issparse(A):
        C = sp.csr_array(A, dtype=np.float64, copy=True)
        C.sum_duplicates()
        C.sort_indices()
        h.update(np.asarray(C.shape, dtype=np.int64).tobytes())
        for arr in (C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data):
            h.update(np.ascontiguousarray(arr).tobytes())
    else:
        arr = np.ascontiguousarray(np.asarray(A, dtype=np.float64))
        h.update(np.asarray(arr.shape, dtype=np.int64).tobytes())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_learned_lu(lu, path):
    """Write a fitted LearnedLU to ``path`` (a ``.npz`` file)."""
    arrays = {f"param/{k}": v.detach().cpu().numpy()
              for k, v in lu._model.state_dict().items()}
    arrays["ordering/slots"] = np.asarray(lu.ordering.slots)
    for k, v in lu.pivoting.as_arrays().items():
        arrays[f"pivoting/{k}"] = np.asarray(v)
    rep = lu.report
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "n": int(lu.shape[0]),
        "n_leaves": lu.layout.n_leaves,
        "block_size": lu.layout.block_size,
        "rank": lu.layout.rank,
        "symmetric": bool(lu._model.symmetric),
        "pivoting": lu.pivoting.method,
        "scale": lu.scale,
        "factor_dtype": lu.factor_dtype,
        "ordering_method": lu.ordering.method,
        "fingerprint": lu.fingerprint,
        "report": {k: getattr(rep, k) for k in (
            "loss", "init", "ordering", "steps", "best_step", "relative_error",
            "init_relative_error", "stop_reason", "converged", "fit_time", "pivoting")},
        "parameters": {k: list(v.shape) for k, v in arrays.items()},
    }
    write_npz(path, arrays, meta)


def load_learned_lu(cls, path, A=None):
    """Rebuild a LearnedLU saved by :func:`save_learned_lu`; see ``LearnedLU.load``."""
    from .gfmm import GFMMLayout
    from .ordering import TreeOrdering
    from .training import FitReport, LUModel

    arrays, meta = read_npz(path, FORMAT, "LearnedLU", VERSION)
    try:
        n, M, P, r = (int(meta[k]) for k in ("n", "n_leaves", "block_size", "rank"))
        symmetric, scale = bool(meta["symmetric"]), float(meta["scale"])
        layout = GFMMLayout(M, P, r)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: metadata is incomplete or invalid ({exc}).") from exc
    if not (0 < n <= M * P and np.isfinite(scale) and scale > 0):
        raise ModelFileError(f"{path}: inconsistent sizes or scale in the metadata.")

    if A is not None:
        if A.shape != (n, n):
            raise ModelFileError(
                f"{path} holds a preconditioner for a {n}x{n} matrix, but A is "
                f"{A.shape[0]}x{A.shape[1]}; fit a new one for this matrix.")
        fp = matrix_fingerprint(A)
        if fp is not None and meta.get("fingerprint") not in (None, fp):
            raise ModelFileError(
                f"{path} was fitted to a different matrix (its fingerprint does not match "
                f"A); fit a new one, or warm-start: LearnedLU.fit(A, init=old).")

    model = LUModel(layout, symmetric=symmetric)
    expected = model.state_dict()
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    if set(params) != set(expected):
        raise ModelFileError(
            f"{path}: parameter names do not match a {M}-leaf, block-size {P}, rank {r} "
            f"{'symmetric' if symmetric else 'general'} LearnedLU.")
    state = {}
    for k, ref in expected.items():
        arr = params[k]
        if arr.shape != tuple(ref.shape) or arr.dtype != np.float64:
            raise ModelFileError(
                f"{path}: array {k!r} has shape {arr.shape} and dtype {arr.dtype}, "
                f"expected {tuple(ref.shape)} float64.")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: array {k!r} has NaN or Inf entries.")
        state[k] = torch.from_numpy(arr.copy())
    model.load_state_dict(state)

    slots = arrays.get("ordering/slots")
    if (slots is None or slots.shape != (M * P,) or slots.dtype.kind != "i"):
        raise ModelFileError(f"{path}: the ordering array is missing or has the wrong shape.")
    real = slots[slots >= 0]
    if real.size != n or not np.array_equal(np.sort(real), np.arange(n)) or np.any(slots < -1):
        raise ModelFileError(f"{path}: the ordering is not a permutation of 0..{n - 1}.")
    positions = np.empty(n, dtype=np.int64)
    positions[slots[slots >= 0]] = np.flatnonzero(slots >= 0)
    tree = TreeOrdering(n=n, block_size=P, n_leaves=M, n_levels=layout.n_levels,
                        slots=slots.astype(np.int64), positions=positions,
                        method=str(meta.get("ordering_method", "loaded")))

    from .pivoting import StaticPivoting

    piv_arrays = {k[len("pivoting/"):]: v for k, v in arrays.items()
                  if k.startswith("pivoting/")}
    if piv_arrays:
        try:
            pivoting = StaticPivoting.from_arrays(
                piv_arrays, method=str(meta.get("pivoting", "mc64")))
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelFileError(f"{path}: invalid static pivoting arrays ({exc}).") from exc
        if pivoting.n != n:
            raise ModelFileError(f"{path}: the pivoting arrays are for another size.")
    else:
        pivoting = StaticPivoting.identity(n)

    report = FitReport()
    for k, v in (meta.get("report") or {}).items():
        if hasattr(report, k) and isinstance(v, (int, float, str, bool)):
            setattr(report, k, v)
    factor_dtype = meta.get("factor_dtype", "float64")
    if factor_dtype not in ("float64", "float32"):
        raise ModelFileError(f"{path}: unknown factor_dtype {factor_dtype!r} in the metadata.")
    lu = cls(model=model, ordering=tree, scale=scale, report=report,
             fingerprint=meta.get("fingerprint"), pivoting=pivoting,
             factor_dtype=factor_dtype)
    lu._check_output(torch.Generator().manual_seed(0))
    return lu
