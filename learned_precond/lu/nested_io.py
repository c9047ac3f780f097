"""Safe save/load of the nested-dissection layout (:class:`~learned_precond.lu.nested.NestedLearnedLU`).

The container is :mod:`learned_precond.io`'s format 2 (``.npz`` arrays plus
JSON metadata, never a pickle), with ``layout = 'nested_dissection'`` in the
metadata; ``LearnedLU.load`` reads that field first (:func:`saved_layout`)
and dispatches here. The file holds the separator tree (``tree/perm``,
``tree/ptr``, ``tree/parent``, ``tree/depth``), the compressed factors
(``factors/*``: the flat arrays of
:class:`~learned_precond._hierarchical.HierarchicalFactors`, the float ones
in the storage precision the metadata's ``factor_dtype`` names), the static
pivoting, the training probes when the fit kept a trained pass (``probes``,
``N x p``: a warm start from the loaded operator refactors on them), the
report and the options.

Loading checks, in this order, and raises :class:`ModelFileError` at the
first failure:

1. the metadata: every size (``n``, ``n_nodes``, the flat lengths, the
   probe count) an integer within limits derived from ``n`` (no node set
   larger than ``2 n + 1``, no factor larger than dense ``n x n``);
2. every array's name, shape and dtype (the factors' from ``factor_dtype``)
   from its ``.npy`` header against what the metadata implies, before any
   array is read (so a file cannot make the loader allocate what it merely
   claims);
3. after reading, the values: finite floats, the permutations, the tree
   (post-order parents, depths), every offset array against the sizes it
   implies, boundary indices inside the later unknowns, in-block pivots,
   ranks at most the block size, nonzero pivots of the diagonal blocks;
4. ``A=``: same size and fingerprint as the fitted matrix;
5. the rebuilt operator gives finite output.
"""

import numbers
import typing
from dataclasses import fields

import numpy as np

from ..exceptions import ModelFileError
from ..io import (
    FORMAT,
    MAX_N,
    VERSION,
    check_fitted_to,
    check_headers,
    meta_int,
    read_npz,
    read_pivoting,
    write_npz,
)

__all__ = ["LAYOUT", "load_nested", "save_nested", "saved_layout"]

#: The metadata's ``layout`` for this file kind (GFMM files have none: ``'gfmm'``).
LAYOUT = "nested_dissection"
_INT_FIELDS = ("boff", "bidx", "doff", "piv", "kL", "qloff", "xloff", "kU", "xuoff", "quoff")
_FLOAT_FIELDS = ("diag", "QL", "XL", "XU", "QU")
#: Flat arrays whose length the metadata declares (the others follow from n, n_nodes).
_FLAT = ("bidx", "diag", "QL", "XL", "XU", "QU")
#: Report fields not saved: per-step histories (long, and not part of the operator).
_REPORT_SKIPPED = ("loss_history", "val_history")


class _Peeked(Exception):
    """Raised inside :func:`saved_layout`'s check to stop before any array is read."""


def saved_layout(path):
    """The ``layout`` a LearnedLU file declares (``'gfmm'`` when none), arrays unread.

    Raises
    ------
    FileNotFoundError, ModelFileError
        As :func:`learned_precond.io.read_npz`.
    """
    found = {}

    def peek(meta, headers):
        found["layout"] = meta.get("layout", "gfmm")
        raise _Peeked

    try:
        read_npz(path, FORMAT, "LearnedLU", VERSION, check=peek)
    except _Peeked:
        return found["layout"]
    return "gfmm"  # pragma: no cover - read_npz always calls check


# -- saving -------------------------------------------------------------------------------
def _report_json(report):
    out = {}
    for f in fields(report):
        if f.name in _REPORT_SKIPPED:
            continue
        value = getattr(report, f.name)
        if value is None or isinstance(value, (str, bool, int, float)):
            out[f.name] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[f.name] = list(value)
        elif isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, (bool, int, float, str))
                for k, v in value.items()):
            out[f.name] = dict(value)
    return out


def save_nested(lu, path):
    """Write a fitted NestedLearnedLU to ``path`` (see the module docstring)."""
    tree, f = lu.tree, lu.factors
    arrays = {f"tree/{k}": np.asarray(getattr(tree, k), dtype=np.int64)
              for k in ("perm", "ptr", "parent", "depth")}
    for name in _INT_FIELDS:
        arrays[f"factors/{name}"] = np.asarray(getattr(f, name), dtype=np.int64)
    dtype = np.dtype(f.dtype)  # float64 or float32 (HierarchicalFactors.astype)
    for name in _FLOAT_FIELDS:
        arrays[f"factors/{name}"] = np.asarray(getattr(f, name), dtype=dtype)
    for k, v in lu.pivoting.as_arrays().items():
        arrays[f"pivoting/{k}"] = np.asarray(v)
    probes = getattr(lu, "probes", None)
    if probes is not None:
        arrays["probes"] = np.asarray(probes, dtype=np.float64)
    options = lu.options.to_json() if hasattr(lu.options, "to_json") else lu.options
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "layout": LAYOUT,
        "n": int(f.n),
        "n_nodes": int(f.n_nodes),
        "lengths": {name: int(getattr(f, name).size) for name in _FLAT},
        "symmetric": bool(f.symmetric),
        "factor_dtype": str(dtype),
        "pivoting": lu.pivoting.method,
        "n_probes": None if probes is None else int(np.shape(probes)[1]),
        "fingerprint": lu.fingerprint,
        "report": _report_json(lu.report),
        "options": options,
    }
    write_npz(path, arrays, meta)


# -- checking the metadata and the headers -----------------------------------------------
def _sizes(meta, path, A):
    """Validate the metadata; return ``{name: (shape, kind)}`` of every array and flags."""
    n = meta_int(meta, "n", path, 1, MAX_N)
    T = meta_int(meta, "n_nodes", path, 1, 2 * n + 1)
    lengths = meta.get("lengths")
    if not isinstance(lengths, dict) or set(lengths) != set(_FLAT):
        raise ModelFileError(f"{path}: metadata 'lengths' must give {', '.join(_FLAT)}.")
    for name in _FLAT:
        # Nothing stored is larger than the dense n x n matrix.
        meta_int(lengths, name, f"{path} (lengths)", 0, n * n)
    symmetric = meta.get("symmetric")
    if not isinstance(symmetric, bool):
        raise ModelFileError(f"{path}: metadata 'symmetric' must be true or false.")
    if meta.get("pivoting") not in ("mc64", "scale", "none"):
        raise ModelFileError(
            f"{path}: unknown pivoting method {meta.get('pivoting')!r} in the metadata.")
    # files written before the float32 storage have no factor_dtype: float64
    factor_dtype = meta.get("factor_dtype", "float64")
    if factor_dtype not in ("float64", "float32"):
        raise ModelFileError(
            f"{path}: unknown factor_dtype {factor_dtype!r} in the metadata "
            f"(float64 or float32).")
    fingerprint = meta.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ModelFileError(f"{path}: metadata 'fingerprint' must be a string or null.")
    expected = {f"tree/{k}": ((s,), "i") for k, s in
                (("perm", n), ("ptr", T + 1), ("parent", T), ("depth", T))}
    for name, size in (("boff", T + 1), ("doff", T + 1), ("piv", n), ("kL", T),
                       ("qloff", T + 1), ("xloff", T + 1), ("kU", T), ("xuoff", T + 1),
                       ("quoff", T + 1)):
        expected[f"factors/{name}"] = ((size,), "i")
    expected["factors/bidx"] = ((lengths["bidx"],), "i")
    for name in _FLOAT_FIELDS:
        expected[f"factors/{name}"] = ((lengths[name],),
                                       "f4" if factor_dtype == "float32" else "f")
    for name in ("row_perm", "row_scale", "col_scale"):
        expected[f"pivoting/{name}"] = ((n,), "i" if name == "row_perm" else "f")
    if meta.get("n_probes") is not None:
        expected["probes"] = ((n, meta_int(meta, "n_probes", path, 1, n)), "f")
    check_fitted_to(A, n, fingerprint, path)
    return expected, {"n": n, "T": T, "symmetric": symmetric}


# -- checking the values ------------------------------------------------------------------
def _is_permutation(p, n):
    seen = np.zeros(n, dtype=bool)
    if p.size != n or np.any(p < 0) or np.any(p >= n):
        return False
    seen[p] = True
    return bool(seen.all())


def _offsets(off, sizes, name, path):
    want = np.concatenate([[0], np.cumsum(sizes)])
    if not np.array_equal(off, want):
        raise ModelFileError(
            f"{path}: the offsets {name!r} do not match the block sizes they index; the "
            f"file was edited.")


def _check_values(a, n, T, symmetric, path):
    """Every structural invariant the compiled substitution relies on."""
    perm, ptr, parent, depth = (a[f"tree/{k}"] for k in ("perm", "ptr", "parent", "depth"))
    if not _is_permutation(perm, n):
        raise ModelFileError(f"{path}: the tree permutation is not a permutation of "
                             f"0..{n - 1}.")
    if ptr[0] != 0 or ptr[-1] != n or np.any(np.diff(ptr) < 0):
        raise ModelFileError(f"{path}: the tree's node pointers do not split 0..{n}.")
    t = np.arange(T)
    roots = parent < 0
    if np.any(parent < -1) or np.any(parent[~roots] <= t[~roots]) or np.any(parent >= T):
        raise ModelFileError(f"{path}: the tree's parents are not in post-order.")
    want_depth = np.zeros(T, dtype=np.int64)
    for node in range(T - 1, -1, -1):  # parents come after their children
        if parent[node] >= 0:
            want_depth[node] = want_depth[parent[node]] + 1
    if not np.array_equal(depth, want_depth):
        raise ModelFileError(f"{path}: the tree's depths do not match its parents.")
    f = {k[len("factors/"):]: v for k, v in a.items() if k.startswith("factors/")}
    s = np.diff(ptr)
    boff = f["boff"]
    if boff[0] != 0 or boff[-1] != f["bidx"].size or np.any(np.diff(boff) < 0):
        raise ModelFileError(f"{path}: the boundary offsets do not index 'bidx'.")
    b = np.diff(boff)
    bidx = f["bidx"]
    # Node t's boundary: sorted, distinct unknowns after its own block.
    owner = np.repeat(t, b)
    if bidx.size and (np.any(bidx < ptr[owner + 1]) or np.any(bidx >= n)):
        raise ModelFileError(f"{path}: a boundary index is not a later unknown.")
    same = owner[1:] == owner[:-1]
    if np.any(np.diff(bidx)[same] <= 0):
        raise ModelFileError(f"{path}: a node's boundary indices are not increasing.")
    _offsets(f["doff"], s * s, "doff", path)
    if f["doff"][-1] != f["diag"].size:
        raise ModelFileError(f"{path}: the diagonal blocks do not fill 'factors/diag'.")
    piv = f["piv"]
    local = np.arange(n) - np.repeat(ptr[:-1], s)
    if symmetric:
        if not np.array_equal(piv, local):
            raise ModelFileError(f"{path}: a Cholesky block has row interchanges.")
    elif np.any(piv < local) or np.any(piv >= np.repeat(s, s)):
        raise ModelFileError(f"{path}: a pivot leaves its diagonal block.")
    for side, q, x, k_name in (("L", "qloff", "xloff", "kL"), ("U", "quoff", "xuoff", "kU")):
        k = f[k_name]
        if np.any(k < 0) or np.any(k > s):
            raise ModelFileError(f"{path}: a rank {k_name!r} exceeds its block size.")
        if symmetric and side == "U":
            if np.any(k) or f["XU"].size or f["QU"].size:
                raise ModelFileError(f"{path}: a Cholesky file holds U couplings.")
        _offsets(f[q], b * k, q, path)
        xs = np.diff(f[x])
        # A compressed coupling stores k x s; an uncompressed one none (then k == s).
        if np.any((xs != k * s) & ~((xs == 0) & (k == s))):
            raise ModelFileError(f"{path}: the offsets {x!r} do not match the ranks.")
        if f[x][0] != 0 or f[x][-1] != f["X" + side].size or \
                f[q][-1] != f["Q" + side].size:
            raise ModelFileError(f"{path}: the {side} couplings do not fill their arrays.")
    for name in _FLOAT_FIELDS:
        if not np.all(np.isfinite(f[name])):
            raise ModelFileError(f"{path}: array 'factors/{name}' has NaN or Inf entries.")
    diag = f["diag"]
    pivots = diag[f["doff"][np.repeat(t, s)] + local * (np.repeat(s, s) + 1)]
    if np.any(pivots <= 0 if symmetric else pivots == 0):
        raise ModelFileError(
            f"{path}: a diagonal block has a {'non-positive' if symmetric else 'zero'} "
            f"pivot, so M would not exist{' or not be SPD' if symmetric else ''}.")


def _report(saved):
    from .report import FitReport

    report = FitReport()
    if not isinstance(saved, dict):
        return report
    hints = typing.get_type_hints(FitReport)
    for f in fields(FitReport):
        if f.name in _REPORT_SKIPPED or f.name not in saved:
            continue
        value, kinds = saved[f.name], typing.get_args(hints[f.name]) or (hints[f.name],)
        if value is None and type(None) in kinds:
            setattr(report, f.name, None)
        elif float in kinds and isinstance(value, numbers.Real) and \
                not isinstance(value, bool):
            setattr(report, f.name, float(value))
        elif list in kinds and isinstance(value, list) and \
                all(isinstance(v, str) for v in value):
            setattr(report, f.name, list(value))
        elif dict in kinds and isinstance(value, dict) and all(
                isinstance(v, (bool, int, float, str)) for v in value.values()):
            setattr(report, f.name, dict(value))
        elif any(k in (str, bool, int) and type(value) is k for k in kinds):
            setattr(report, f.name, value)
    return report


def load_nested(cls, path, A=None):
    """Rebuild a NestedLearnedLU (class ``cls``) saved by :func:`save_nested`."""
    from .._hierarchical import HierarchicalFactors, NestedDissection

    sizes = {}

    def check(meta, headers):
        if meta.get("layout") != LAYOUT:
            raise ModelFileError(f"{path} is not a nested-dissection LearnedLU file "
                                 f"(layout {meta.get('layout', 'gfmm')!r}).")
        expected, found = _sizes(meta, path, A)
        check_headers(expected, headers, path, sizes="the metadata's sizes")
        sizes.update(found)

    arrays, meta = read_npz(path, FORMAT, "LearnedLU", VERSION, check=check)
    n, T, symmetric = sizes["n"], sizes["T"], sizes["symmetric"]
    # the factors keep the dtype their headers were checked against
    factor_keys = {f"factors/{name}" for name in _FLOAT_FIELDS}
    arrays = {k: v if k in factor_keys else
              v.astype(np.float64 if v.dtype.kind == "f" else np.int64, copy=False)
              for k, v in arrays.items()}
    _check_values(arrays, n, T, symmetric, path)
    pivoting = read_pivoting(arrays, meta, path)
    tree = NestedDissection(**{k: arrays[f"tree/{k}"] for k in
                               ("perm", "ptr", "parent", "depth")})
    factors = HierarchicalFactors(
        n=n, symmetric=symmetric, ptr=tree.ptr,
        **{k: arrays[f"factors/{k}"] for k in (*_INT_FIELDS, *_FLOAT_FIELDS)})
    options = meta.get("options")
    lu = cls(factors=factors, tree=tree, report=_report(meta.get("report")),
             pivoting=pivoting, options=options if isinstance(options, dict) else None,
             fingerprint=meta.get("fingerprint"))
    if "probes" in arrays:
        if not np.all(np.isfinite(arrays["probes"])):
            raise ModelFileError(f"{path}: array 'probes' has NaN or Inf entries.")
        lu.probes = arrays["probes"]
    z = np.random.default_rng(0).standard_normal((n, 2))
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(lu @ z))
    if not finite:
        raise ModelFileError(f"{path}: the stored factors produce non-finite output.")
    return lu
