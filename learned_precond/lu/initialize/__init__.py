"""Stage 4, initialization: the start that training improves.

Each start is one module of this package with a function
``start(system, layout, generator) -> BlockStart`` (see ``_build``), and one
line in :data:`STARTS`; that is all a new start needs to be usable as
``LearnedLU.fit(A, init=<name>)``.

==================  ==========================================================
``block_tridiagonal``  exact block LU of A's block tridiagonal part (far field 0)
``block_jacobi``       the diagonal blocks only
``exact_compressed``   exact LU of A, far field compressed to the rank
``random``             the seed's random start
==================  ==========================================================

``init='auto'`` (the default) builds the block tridiagonal start and, where
the exact LU is affordable (at most :data:`EXACT_START_MAX_N` unknowns, A
given by its entries, and enough of ``time_budget`` left), the compressed
exact start too, and keeps the one with the better GMRES figure of merit.
A fitted ``LearnedLU`` as ``init`` warm-starts from its factors (``warm``).
"""

import time

import torch

from . import block_jacobi, block_tridiagonal, exact_compressed, random, warm
from ._build import BlockStart, StartUnavailable, build_model

__all__ = ["STARTS", "INITS", "BlockStart", "StartUnavailable", "default_rank",
           "initialize"]

#: Start name -> ``start(system, layout, generator) -> BlockStart``.
STARTS = {
    "block_tridiagonal": block_tridiagonal.start,
    "block_jacobi": block_jacobi.start,
    "exact_compressed": exact_compressed.start,
    "random": random.start,
}
#: The names ``init=`` accepts (besides a fitted LearnedLU).
INITS = ("auto", "gfmm", *STARTS, "hierarchical", "hodlr")
#: The automatic choices of the GFMM layout's start: ``'auto'`` (when the
#: nested layout is not preferred, see :mod:`learned_precond.lu.nested_fit`)
#: and ``'gfmm'`` (always the GFMM layout).
AUTO_INITS = ("auto", "gfmm")

#: Largest (padded) N for which ``init='auto'`` also tries the compressed exact
#: LU of A (a sparse LU in the tree order, or a dense one for dense A: about
#: 10 s at 8192 on one core).
EXACT_START_MAX_N = 8192
#: Default far-field ranks with and without the compressed exact start.
RANK_EXACT_START = 16
RANK_TRAINED = 8
#: Under a ``time_budget``, ``init='auto'`` expects the compressed exact start
#: to cost this many times what the block tridiagonal start cost (measured on
#: 2-D Poisson, N = 4096 and 8192, including its evaluation), and tries it only
#: when that fits in what is left.
EXACT_START_COST_RATIO = 12.0


def default_rank(init, n_slots, is_operator):
    """The far-field rank when ``rank=None``: 16 where the exact start is used or tried, else 8."""
    exact_start = not is_operator and (
        init == "exact_compressed" or (init in AUTO_INITS and n_slots <= EXACT_START_MAX_N))
    return RANK_EXACT_START if exact_start else RANK_TRAINED


def initialize(system, layout, options, report, *, symmetric, generator, new_merit, clock):
    """Build the start; return ``(model, merit, merit_value)``.

    Parameters
    ----------
    system : ScaledSystem
        The scaled, tree-ordered matrix (stage 3).
    layout : GFMMLayout
    options : FitOptions
    report : FitReport
        ``init``, ``symmetric``, ``init_time`` and notes are filled in.
    symmetric : bool
        Whether A' is symmetric (or ``symmetric=True`` asks for ``U = S L^T``).
    generator : torch.Generator
    new_merit : callable
        ``() -> merit``: the figure of merit (``model -> float``), built once
        the first start exists (it draws its right-hand sides from
        ``generator`` then).
    clock : FitClock

    Returns
    -------
    model : LUModel
        On ``options.device``, in float64.
    merit : callable
    merit_value : float
        ``merit(model)``.
    """
    t0 = time.perf_counter()
    # Starts are built in double precision whatever dtype training runs in:
    # when training cannot improve a start, the start is returned as it is.
    dtype = torch.float64
    if options.warm_start is not None:
        model = warm.start(options.warm_start, system, dtype)
        report.init = "warm_start"
    else:
        name = "block_tridiagonal" if options.init in AUTO_INITS else options.init
        try:
            block = STARTS[name](system, layout, generator)
        except StartUnavailable as exc:
            report.notes.append(f"{exc}: block tridiagonal initialization used")
            block = STARTS["block_tridiagonal"](system, layout, generator)
        model, notes = build_model(block, layout, symmetric=symmetric,
                                   symmetric_option=options.symmetric, dtype=dtype,
                                   generator=generator)
        report.init = block.name
        report.notes.extend(block.notes + notes)
    model.to(options.device)
    report.symmetric = model.symmetric
    report.init_time = time.perf_counter() - t0
    merit = new_merit()
    value = None
    if (options.init in AUTO_INITS and options.warm_start is None and not system.is_operator
            and layout.size <= EXACT_START_MAX_N):
        model, value = _best_start(model, system, layout, options, report,
                                   symmetric=symmetric, generator=generator, merit=merit,
                                   clock=clock, first_seconds=time.perf_counter() - t0)
    if value is None:
        # The start's figure of merit is part of what the start costs (for a
        # poor start at large N, hundreds of GMRES iterations): the default
        # training limit is proportional to it.
        value = merit(model)
    return model, merit, value


def _best_start(model, system, layout, options, report, *, symmetric, generator, merit,
                clock, first_seconds):
    """``init='auto'``: the better of the block tridiagonal and compressed exact starts.

    The block tridiagonal initialization ignores every coupling beyond the
    neighbouring leaf. Where the exact LU of A (without pivoting, in the tree
    order) is affordable, its factors with the far field compressed to the
    GFMM rank are tried too, and the start with the lower expected solve cost
    (GMRES figure of merit times the bytes one iteration reads) is kept. Returns the start and its merit
    (which training then need not evaluate again).
    """
    t0 = time.perf_counter()
    first = merit(model)
    first_work = merit.last_work
    expected = EXACT_START_COST_RATIO * (first_seconds + time.perf_counter() - t0)
    if clock.remaining() < expected:
        report.cut_short.append("initialize")
        report.notes.append(
            f"init='auto': the compressed exact start was not tried (expected to take "
            f"~{expected:.2g} s, {max(clock.remaining(), 0.0):.2g} s of time_budget "
            f"left): block tridiagonal start")
        return model, first
    try:
        block = exact_compressed.start(system, layout, generator)
    except StartUnavailable as exc:
        report.notes.append(f"{exc}: block tridiagonal start")
        return model, first
    candidate, notes = build_model(block, layout, symmetric=symmetric,
                                   symmetric_option=options.symmetric,
                                   dtype=torch.float64, generator=generator)
    candidate.to(options.device)
    second = merit(candidate)
    # Kept by the expected cost of a solve (iterations x bytes one iteration
    # reads), not by iterations alone: the exact start's factors are larger.
    cost_first, cost_second = first * first_work, second * merit.last_work
    keep = cost_second < cost_first
    report.notes.append(
        f"start: block tridiagonal scored {first:.0f} (GMRES merit), compressed exact "
        f"LU {second:.0f}; expected solve cost {cost_second / cost_first:.2f}x: "
        f"{'compressed exact LU' if keep else 'block tridiagonal'} kept")
    if not keep:
        return model, first
    report.init = block.name
    report.symmetric = candidate.symmetric
    report.notes.extend(notes)
    return candidate, second
