"""Time limits of a fit: ``time_budget=``, and the default limit on training.

A fit with ``time_budget=T`` returns within about ``T`` seconds: the start is
always computed (there is nothing to return before it); ``init='auto'`` tries
its more expensive start only when what is left of ``T`` covers its expected
cost; training stops early enough to leave time for packing the factors and
the checks, evaluating the current factors once more when the next
evaluation would come too late; and the checks at the end (the condition
estimates) stop when ``T`` is spent. Without ``time_budget`` only training is
limited, to ``max(DEFAULT_MIN_TRAIN_SECONDS, DEFAULT_TRAIN_FACTOR x`` the
seconds the start took``)``, so that no fit runs unbounded. ``time_budget=inf``
removes every limit.
"""

import math
import sys
import time
from dataclasses import dataclass

__all__ = ["Deadline", "FitClock", "DEFAULT_MIN_TRAIN_SECONDS", "DEFAULT_TRAIN_FACTOR"]

#: Without ``time_budget``, training may take at least this many seconds...
DEFAULT_MIN_TRAIN_SECONDS = 30.0
#: ...or this many times the seconds the start took, whichever is more.
DEFAULT_TRAIN_FACTOR = 10.0
#: Share of ``time_budget`` kept back from training for packing and checks,
#: on top of the measured cost of packing the factors.
RESERVE_SHARE = 0.03


@dataclass(frozen=True)
class Deadline:
    """A point in time (``time.perf_counter()`` seconds) and why it is there.

    ``reason`` becomes ``report.stop_reason`` when a stage stops on it:
    ``'time_budget'`` (the caller's) or ``'time_limit'`` (the default).
    """

    at: float
    reason: str

    def remaining(self):
        """Seconds left (negative once passed)."""
        return self.at - time.perf_counter()

    def passed(self):
        """True once the deadline is reached."""
        return self.remaining() <= 0


class FitClock:
    """The clock of one fit: when it started, and its budget.

    Parameters
    ----------
    budget : float or None
        ``time_budget`` in seconds; None for the default limit, ``inf`` for none.
    """

    def __init__(self, budget, progress=False, stream=None):
        self.t0 = time.perf_counter()
        self.budget = None if budget is None else float(budget)
        self.progress = bool(progress)
        self.stream = stream

    def stage(self, name, detail=""):
        """With ``progress=True``: one line on standard error, ``[seconds] stage: detail``."""
        if not self.progress:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        line = f"LearnedLU.fit [{self.elapsed():8.2f} s] {name}"
        print(f"{line}: {detail}" if detail else line, file=stream, flush=True)

    def elapsed(self):
        """Seconds since the fit started."""
        return time.perf_counter() - self.t0

    @property
    def limited(self):
        """True when the caller gave a finite ``time_budget``."""
        return self.budget is not None and math.isfinite(self.budget)

    def remaining(self):
        """Seconds left of the budget (``inf`` without one)."""
        return self.budget - self.elapsed() if self.limited else math.inf

    def deadline(self):
        """The end of the budget as a :class:`Deadline`, or None without one."""
        return Deadline(self.t0 + self.budget, "time_budget") if self.limited else None

    def train_deadline(self, start_seconds, reserve=0.0):
        """The :class:`Deadline` of training and its length in seconds.

        With a budget: what is left of it, less ``reserve`` (packing) and
        ``RESERVE_SHARE`` of the budget (checks). Without: the default limit
        ``max(DEFAULT_MIN_TRAIN_SECONDS, DEFAULT_TRAIN_FACTOR * start_seconds)``
        from now. ``time_budget=inf``: no deadline, ``inf`` seconds.
        """
        now = time.perf_counter()
        if self.budget is None:
            limit = max(DEFAULT_MIN_TRAIN_SECONDS, DEFAULT_TRAIN_FACTOR * start_seconds)
            return Deadline(now + limit, "time_limit"), limit
        if not self.limited:
            return None, math.inf
        limit = max(0.0, self.remaining() - reserve - RESERVE_SHARE * self.budget)
        return Deadline(now + limit, "time_budget"), limit
