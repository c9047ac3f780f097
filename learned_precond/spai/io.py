"""Safe save/load of SPAI preconditioners and SPAI generators: ``.npz`` + JSON.

Same rules as :mod:`learned_precond.io`, whose reader and writer it uses:
``numpy.load(..., allow_pickle=False)`` reads plain arrays only, metadata is
JSON, and every array is checked for name, shape, dtype and finiteness (and
a sparse factor for a valid CSR structure) before an object is rebuilt, so a
crafted or corrupt file raises
:class:`~learned_precond.exceptions.ModelFileError` with a clear message.
"""

import numbers

import numpy as np
import scipy.sparse as sp
import torch

from ..exceptions import ModelFileError
from ..io import read_npz, write_npz
from .certificate import spd_certificate
from .nets import SPAINet
from .report import SPAIReport, TrainingReport

__all__ = ["save_spai", "load_spai", "save_generator", "load_generator"]

SPAI_FORMAT = "learned_precond.SPAI"
GENERATOR_FORMAT = "learned_precond.SPAIGenerator"
VERSION = 1


def _json_scalars(obj):
    """Keep the entries of a dict that are finite JSON scalars (for reports)."""
    return {k: v for k, v in obj.items()
            if isinstance(v, (bool, int, float, str))
            and not (isinstance(v, float) and not np.isfinite(v))}


# -- SPAI ---------------------------------------------------------------------------------


def save_spai(M, path):
    """Write a fitted SPAI (its factor ``R``, form and report)."""
    rep = M.report
    meta = {
        "format": SPAI_FORMAT, "version": VERSION, "n": int(M.shape[0]), "form": M.form,
        "class": type(M).__name__,
        "report": _json_scalars({k: getattr(rep, k) for k in (
            "method", "pattern", "nnz", "loss_init", "loss", "steps", "converged",
            "certificate", "fit_time")}),
    }
    arrays = {"R/data": M.R.data, "R/indices": M.R.indices.astype(np.int64),
              "R/indptr": M.R.indptr.astype(np.int64)}
    write_npz(path, arrays, meta)


def load_spai(cls, path):
    """Rebuild a SPAI written by :func:`save_spai`."""
    arrays, meta = read_npz(path, SPAI_FORMAT, "SPAI", VERSION)
    try:
        n = int(meta["n"])
        form = meta["form"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: metadata is incomplete ({exc}).") from exc
    if form not in ("R R^T", "R") or not 0 < n < 2**40:
        raise ModelFileError(f"{path}: invalid form or size in the metadata.")
    R = _read_csr(arrays, "R", n, path)
    if form == "R R^T" and spd_certificate(R) is None:
        raise ModelFileError(f"{path}: the stored R is singular, so R R^T is not SPD.")
    report = SPAIReport()
    for k, v in (meta.get("report") or {}).items():
        if hasattr(report, k) and isinstance(v, (int, float, str, bool)):
            setattr(report, k, v)
    M = cls(R, form=form, report=report)
    return M


def _read_csr(arrays, prefix, n, path):
    try:
        data, indices, indptr = (arrays[f"{prefix}/{k}"] for k in ("data", "indices", "indptr"))
    except KeyError as exc:
        raise ModelFileError(f"{path}: array {exc} is missing.") from None
    if data.dtype != np.float64 or indices.dtype.kind != "i" or indptr.dtype.kind != "i":
        raise ModelFileError(f"{path}: the sparse factor has the wrong dtypes.")
    if (indptr.shape != (n + 1,) or data.ndim != 1 or indices.shape != data.shape
            or indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0)):
        raise ModelFileError(f"{path}: the sparse factor's CSR structure is inconsistent.")
    if data.size and (indices.min() < 0 or indices.max() >= n):
        raise ModelFileError(f"{path}: column indices out of range 0..{n - 1}.")
    if not np.all(np.isfinite(data)):
        raise ModelFileError(f"{path}: the sparse factor has NaN or Inf entries.")
    R = sp.csr_array((data, indices, indptr), shape=(n, n))
    R.sum_duplicates()
    R.sort_indices()
    return R


# -- the generator ------------------------------------------------------------------------

_CONFIG_INTS = {"hidden": (1, 4096), "layers": (0, 64), "decoder_layers": (0, 64),
                "latent": (0, 1024), "max_offdiag_per_row": (1, 10**6)}


def save_generator(gen, path):
    """Write a trained SPAIGenerator: parameters (float32 arrays) and JSON config/report."""
    arrays = {f"param/{k}": v.detach().cpu().numpy() for k, v in gen.net.state_dict().items()}
    rep = gen.report
    meta = {
        "format": GENERATOR_FORMAT, "version": VERSION, "config": gen.config,
        "report": {
            "history": [_json_scalars(h) for h in rep.history],
            **_json_scalars({k: getattr(rep, k) for k in (
                "best_epoch", "jacobi_val", "n_train", "n_val", "train_time", "stop_reason")}),
        },
        "parameters": {k: list(v.shape) for k, v in arrays.items()},
    }
    write_npz(path, arrays, meta)


def _check_config(config, path):
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: the generator config is missing.")
    try:
        if config["variant"] not in ("cvae", "deterministic"):
            raise ValueError(f"variant {config['variant']!r}")
        if config["pattern"] not in ("A", "A2"):
            raise ValueError(f"pattern {config['pattern']!r}")
        fill = config["extra_fill"]
        if not (isinstance(fill, numbers.Real) and np.isfinite(fill) and fill >= 0):
            raise ValueError(f"extra_fill {fill!r}")
        for key, (lo, hi) in _CONFIG_INTS.items():
            v = config[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{key} {v!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid generator config ({exc}).") from exc


def load_generator(cls, path):
    """Rebuild a SPAIGenerator written by :func:`save_generator`."""
    arrays, meta = read_npz(path, GENERATOR_FORMAT, "SPAIGenerator", VERSION)
    config = meta.get("config")
    _check_config(config, path)
    net = SPAINet(hidden=config["hidden"], layers=config["layers"],
                  decoder_layers=config["decoder_layers"], latent=max(config["latent"], 1),
                  variant=config["variant"])
    expected = net.state_dict()
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    if set(params) != set(expected) or len(params) != len(arrays):
        raise ModelFileError(
            f"{path}: parameter names do not match a {config['variant']} generator with "
            f"hidden={config['hidden']}, layers={config['layers']}."
        )
    state = {}
    for k, ref in expected.items():
        arr = params[k]
        if arr.shape != tuple(ref.shape) or arr.dtype != np.float32:
            raise ModelFileError(
                f"{path}: array {k!r} has shape {arr.shape} and dtype {arr.dtype}, expected "
                f"{tuple(ref.shape)} float32."
            )
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: array {k!r} has NaN or Inf entries.")
        state[k] = torch.from_numpy(arr.copy())
    net.load_state_dict(state)
    net.eval()
    report = TrainingReport()
    rep = meta.get("report") or {}
    if isinstance(rep, dict):
        for k, v in rep.items():
            if k == "history" and isinstance(v, list):
                report.history = [h for h in v if isinstance(h, dict)]
            elif hasattr(report, k) and isinstance(v, (int, float, str, bool)):
                setattr(report, k, v)
    return cls(net, config, report)
