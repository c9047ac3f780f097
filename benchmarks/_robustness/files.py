"""Model files of both layouts: crafted sizes, bombs, tampered pivoting, truncation.

Every case saves a small fitted model of its layout (``gfmm``: ``init='gfmm'``,
``nested``: the default for sparse A) and edits the file; ``load`` must then
refuse it with a :class:`~learned_precond.ModelFileError` that names the file
and what is wrong, tracing at most :data:`~common.LOAD_TRACE_LIMIT` bytes.
"""

import io
import json
import zipfile

from .common import fitted_model, load_bounded, parts, saved_model, tmpdir, write_parts
from .registry import case

LAYOUTS = ("gfmm", "nested")
_PATH = r"model\.npz"


def _npy_header(shape, descr="<f8"):
    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _write_bomb(path, small, meta, big_name, big_shape):
    """A ``.npz`` with ``small`` arrays, ``meta``, and ``big_name`` all zeros.

    The big member is streamed through deflate (zeros compress ~1000x), so a
    file of a few MB declares, consistently, an array of a GB.
    """
    import math

    import numpy as np

    arrays = dict(small)
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())
        with zf.open(f"{big_name}.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header(big_shape))
            left = math.prod(big_shape) * 8
            chunk = bytes(16 * 2**20)
            while left:
                fh.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
    return path


for _layout in LAYOUTS:
    def _register(layout):
        @case(f"crafted_member_{layout}", f"{layout} file: an extra member whose .npy "
              f"header claims 10^12 float64 (8 TB)", names=[rf"{_PATH}.*declares shape"])
        def crafted_member():
            path = saved_model(layout)
            with zipfile.ZipFile(path, "a") as zf:
                zf.writestr("L/E_extra.npy", _npy_header((10**12,)) + b"\0" * 64)
            return load_bounded(path)

        @case(f"crafted_n_{layout}", f"{layout} file: metadata n=2^39 (a layout of "
              f"terabytes), arrays unchanged", names=[rf"{_PATH}.*(shape|'n'|n_leaves)"])
        def crafted_n():
            path = saved_model(layout)
            arrays, meta = parts(path)
            meta.update(n=2**39, **({"n_leaves": 2**36} if layout == "gfmm" else {}))
            write_parts(path, arrays, meta)
            return load_bounded(path)

        @case(f"row_perm_zeros_{layout}", f"{layout} file: pivoting/row_perm set to zeros "
              f"(not a permutation)", names=[rf"{_PATH}.*pivoting"])
        def row_perm_zeros():
            import numpy as np

            path = saved_model(layout)
            arrays, meta = parts(path)
            arrays["pivoting/row_perm"] = np.zeros_like(arrays["pivoting/row_perm"])
            write_parts(path, arrays, meta)
            return load_bounded(path)

        @case(f"pivoting_renamed_{layout}", f"{layout} file: the pivoting arrays renamed "
              f"away (pivoting/* -> pivot/*)", names=[rf"{_PATH}.*'pivoting/"])
        def pivoting_renamed():
            path = saved_model(layout)
            arrays, meta = parts(path)
            write_parts(path, {k.replace("pivoting/", "pivot/"): v for k, v in
                               arrays.items()}, meta)
            return load_bounded(path)

        @case(f"pivoting_dropped_{layout}", f"{layout} file: the pivoting arrays deleted "
              f"(metadata still says mc64)", names=[rf"{_PATH}.*'pivoting/"])
        def pivoting_dropped():
            path = saved_model(layout)
            arrays, meta = parts(path)
            write_parts(path, {k: v for k, v in arrays.items()
                               if not k.startswith("pivoting/")}, meta)
            return load_bounded(path)

        @case(f"pivoting_none_{layout}", f"{layout} file: metadata pivoting='none' with a "
              f"real permutation stored", names=[rf"{_PATH}.*pivoting"])
        def pivoting_none():
            path = saved_model(layout)
            arrays, meta = parts(path)
            write_parts(path, arrays, {**meta, "pivoting": "none"})
            return load_bounded(path)

        @case(f"shape_edit_{layout}", f"{layout} file: pivoting/row_scale one entry short",
              names=[rf"{_PATH}.*'pivoting/row_scale'.*shape"])
        def shape_edit():
            path = saved_model(layout)
            arrays, meta = parts(path)
            arrays["pivoting/row_scale"] = arrays["pivoting/row_scale"][:-1]
            write_parts(path, arrays, meta)
            return load_bounded(path)

        @case(f"truncated_{layout}", f"{layout} file: cut to half its bytes",
              names=[rf"{_PATH}.*(truncated|corrupt)"])
        def truncated():
            path = saved_model(layout)
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
            return load_bounded(path)

        @case(f"round_trip_{layout}", f"{layout} file: saved and loaded unchanged (M @ x "
              f"bit for bit)")
        def round_trip():
            import numpy as np

            from learned_precond import LearnedLU

            M = fitted_model(layout)
            path = tmpdir() / "model.npz"
            M.save(path)
            x = np.random.default_rng(0).standard_normal(36)
            same = np.array_equal(M @ x, LearnedLU.load(path) @ x)
            return bool(same and np.all(np.isfinite(M @ x))), f"loaded; identical: {same}"

    _register(_layout)


@case("bomb_gfmm", "gfmm file (a few MB): metadata block_size=12000, one leaf, and a "
      "consistent U/D of 1.1 GB of zeros that deflate shrinks 1000x",
      names=[rf"{_PATH}.*(expand|compress)"], timeout=180)
def bomb_gfmm():
    import numpy as np

    path = saved_model("gfmm")
    arrays, meta = parts(path)
    P = 12000
    meta.update(block_size=P, n_leaves=1, rank=1)
    slots = np.full(P, -1, dtype=np.int64)
    slots[:36] = np.arange(36)
    small = {k: v for k, v in arrays.items() if k.startswith("pivoting/")}
    small["ordering/slots"] = slots
    return load_bounded(_write_bomb(tmpdir() / "model.npz", small, meta, "U/D", (1, P, P)))


@case("bomb_nested", "nested file (a few MB): n=12000, one node, and a consistent dense "
      "diagonal block of 1.1 GB of zeros", names=[rf"{_PATH}.*(expand|compress)"],
      timeout=180)
def bomb_nested():
    import numpy as np

    from learned_precond.io import FORMAT, VERSION

    n = 12000
    i64 = np.int64
    small = {"tree/perm": np.arange(n, dtype=i64), "tree/ptr": np.array([0, n], i64),
             "tree/parent": np.array([-1], i64), "tree/depth": np.array([0], i64),
             "pivoting/row_perm": np.arange(n, dtype=i64),
             "pivoting/row_scale": np.ones(n), "pivoting/col_scale": np.ones(n),
             "factors/bidx": np.zeros(0, i64), "factors/piv": np.arange(n, dtype=i64),
             "factors/doff": np.array([0, n * n], i64)}
    for name in ("boff", "qloff", "xloff", "xuoff", "quoff"):
        small[f"factors/{name}"] = np.zeros(2, i64)
    for name in ("kL", "kU"):
        small[f"factors/{name}"] = np.zeros(1, i64)
    for name in ("QL", "XL", "XU", "QU"):
        small[f"factors/{name}"] = np.zeros(0)
    meta = {"format": FORMAT, "version": VERSION, "layout": "nested_dissection", "n": n,
            "n_nodes": 1, "symmetric": True, "pivoting": "none", "n_probes": None,
            "fingerprint": None, "report": {}, "options": {},
            "lengths": {"bidx": 0, "diag": n * n, "QL": 0, "XL": 0, "XU": 0, "QU": 0}}
    return load_bounded(_write_bomb(tmpdir() / "model.npz", small, meta, "factors/diag",
                                    (n * n,)))


@case("npy_renamed_npz", "a .npy file renamed .npz given to LearnedLU.load",
      names=[rf"{_PATH}.*\.npy"])
def npy_renamed_npz():
    import numpy as np

    tmp = tmpdir()
    np.save(tmp / "a.npy", np.zeros(3))
    (tmp / "a.npy").rename(tmp / "model.npz")
    return load_bounded(tmp / "model.npz")
