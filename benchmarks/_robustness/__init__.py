"""The cases of ``benchmarks/robustness_cases.py`` (issue 16), one module per kind.

registry
    :data:`~registry.CASES` and the :func:`~registry.case` decorator.
common
    What the cases share inside their own process: small matrices, fitting
    and checking a preconditioner, saving a model of either layout, reading
    and rewriting its parts, loading under a memory bound.
files
    Model files of both layouts (``gfmm`` and ``nested``): crafted sizes,
    decompression bombs, tampered pivoting, truncation, a renamed ``.npy``.
options
    Fit options and the command line: seed, tol, symmetric, dtype, device.
numerics
    Complex ``x``, badly scaled rows and columns, extreme scalings, float16 ``A``.
limits
    Time and memory: KKT systems, the N = 262144 Poisson fit, float32
    training, ``time_budget`` and the default limit.
runner
    Each case in a subprocess of its own, classified.
page
    The table and the generated section of docs/robustness.md.

Importing the package registers every case.
"""

from . import files, limits, numerics, options  # noqa: F401  (register the cases)
from .registry import CASES

__all__ = ["CASES"]
