"""Each case in a subprocess of its own (timeout, address-space limit), classified.

Outcomes:

* ``clear error``: a ``TypeError``/``ValueError``/``NotImplementedError``/
  ``ModelFileError``/``PreconditionerSetupError`` (or, for the CLI, exit
  status 2) whose message matches one of the case's ``names`` (it names the
  argument);
* ``unclear error``: one of those, but the message does not name it;
* ``handled``: it worked, and the answer was checked (a finite
  preconditioner and a GMRES solution within ``1e-6`` of the known one, a
  bit-identical round trip, or the measured limit met);
* ``silent wrong``: it returned, and the check failed;
* ``crash``: any other exception, a killed process, or a memory bound
  exceeded (peak RSS, or the tracemalloc bound of a model file's ``load``);
* ``hang``: the timeout, or a time limit not respected (``TimeoutError``).
"""

import json
import os
import re
import resource
import subprocess
import sys
import time
import traceback

from .registry import CASES

__all__ = ["ADDRESS_LIMIT", "CLEAR_TYPES", "OUTCOMES", "RSS_LIMIT", "child", "classify",
           "run_case"]

#: Address space a case may map (torch and numba reserve a few GB of it).
ADDRESS_LIMIT = 24 * 2**30
#: Peak RSS above which a case counts as a crash (denial of service).
RSS_LIMIT = 3 * 2**30
#: Errors that are the library's way of refusing input.
CLEAR_TYPES = ("TypeError", "ValueError", "NotImplementedError", "ModelFileError",
               "PreconditionerSetupError", "StructurallySingularError")
OUTCOMES = ("clear error", "handled", "unclear error", "silent wrong", "crash", "hang")
#: Outcomes the issue allows.
GOOD = ("clear error", "handled")


def child(name):
    """Run one case in this process; print one ``RESULT {json}`` line."""
    out = {"name": name}
    try:
        ok, detail = CASES[name]["func"]()
        out.update(kind="returned", ok=bool(ok), detail=detail)
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        out.update(kind="raised", type=type(exc).__name__, message=str(exc),
                   where=traceback.format_exc(limit=-3).strip().splitlines()[-4:])
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(out), flush=True)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def run_case(name, script, cwd):
    """Run case ``name`` as ``python script --child name``; the classified record."""
    spec = CASES[name]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script), "--child", name],
                              capture_output=True, text=True, timeout=spec["timeout"],
                              env=env, cwd=cwd, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        return dict(name=name, outcome="hang", detail=f"no result after {spec['timeout']} s",
                    seconds=time.perf_counter() - t0, rss=None)
    seconds = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return dict(name=name, outcome="crash", detail=f"exit {proc.returncode}: {tail[0]}",
                    seconds=seconds, rss=None)
    res = json.loads(lines[-1][len("RESULT "):])
    return dict(name=name, seconds=seconds, rss=res["rss"], **classify(spec, res))


def classify(spec, res):
    """``{'outcome', 'detail'}`` from a child's report (see the module docstring)."""
    limit = spec.get("rss_limit") or RSS_LIMIT
    if res["rss"] > limit:
        return dict(outcome="crash", detail=f"peak RSS {res['rss'] / 2**30:.2f} GiB > "
                                            f"{limit / 2**30:.1f} GiB")
    if res["kind"] == "returned":
        return dict(outcome="handled" if res["ok"] else "silent wrong", detail=res["detail"])
    kind, message = res["type"], res["message"]
    text = f"{kind}: {message}"
    if kind == "TimeoutError":
        return dict(outcome="hang", detail=message)
    if kind not in CLEAR_TYPES:
        return dict(outcome="crash", detail=f"{text} ({' / '.join(res['where'])})")
    named = any(re.search(pattern, message, re.S) for pattern in spec["names"])
    return dict(outcome="clear error" if named else "unclear error", detail=text)


def counts(results):
    """``{outcome: number of results}`` over :data:`OUTCOMES`."""
    return {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES}
