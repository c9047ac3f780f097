"""The machinery of benchmarks/robustness_cases.py (issue 16): classification and a few cases."""

import pathlib
import sys

import pytest

_BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))

from _robustness import CASES  # noqa: E402
from _robustness.runner import GOOD, classify, run_case  # noqa: E402

SPEC = {"names": ["seed"], "rss_limit": None}


def _res(**kw):
    return {"rss": 100 * 2**20, **kw}


@pytest.mark.parametrize("res, outcome", [
    (_res(kind="raised", type="ValueError", message="seed must be an integer"), "clear error"),
    (_res(kind="raised", type="ValueError", message="something went wrong"), "unclear error"),
    (_res(kind="raised", type="IndexError", message="seed", where=["x"]), "crash"),
    (_res(kind="raised", type="TimeoutError", message="too slow"), "hang"),
    (_res(kind="returned", ok=True, detail="checked"), "handled"),
    (_res(kind="returned", ok=False, detail="wrong"), "silent wrong"),
    ({"rss": 8 * 2**30, "kind": "returned", "ok": True, "detail": ""}, "crash"),
])
def test_classification(res, outcome):
    assert classify(SPEC, res)["outcome"] == outcome


def test_every_case_is_registered_with_what_its_error_must_name():
    assert len(CASES) >= 40
    for name, spec in CASES.items():
        assert callable(spec["func"]) and spec["description"], name
        assert spec["timeout"] > 0


@pytest.mark.parametrize("name", ["seed_float", "complex_x", "cli_blocksize_typo",
                                  "npy_renamed_npz"])
def test_cheap_cases_end_well(name):
    r = run_case(name, _BENCHMARKS / "robustness_cases.py", _BENCHMARKS.parent)
    assert r["outcome"] in GOOD, r
