"""The fit of the nested-dissection layout: order, start, train, operator.

``LearnedLU.fit(A)`` (``init='hierarchical'``, and ``init='auto'`` for sparse
A given by its entries, see :func:`prefers_nested`) runs the options and
static pivoting stages of :mod:`learned_precond.lu` and then:

1. order: nested dissection of ``A'``'s graph (:func:`~learned_precond.
   _hierarchical.nested_dissection`; a warm start reuses its tree);
2. start: the compressed multifrontal Cholesky (SPD ``A``) or LU, the fill
   truncated to ``rank_tol`` as it is formed;
3. train: :func:`~learned_precond.lu.refine.train_nested`, refactorizations
   exact on the slow modes the Krylov solver found, kept only when they
   lower its iteration count, tried only when they can pay for themselves
   over ``solves`` solves (``max_steps=0``: the start);
4. the operator, :class:`~learned_precond.lu.nested.NestedLearnedLU`.
"""

import math

import numpy as np
import scipy.sparse as sp

from .._hierarchical import (
    factorization_plan,
    hierarchical_factorization,
    nested_dissection,
    separates,
)
from ..exceptions import PreconditionerSetupError
from .nested import NestedLearnedLU
from .refine import train_nested

__all__ = ["finish_fit", "fit_nested", "prefers_nested", "MAX_PASSES", "NESTED_MAX_DENSITY"]

#: Refactorizations training may do at most.
MAX_PASSES = 3
#: ``factor_dtype='auto'`` stores the factors in float32 when that moves
#: ``A M x`` by at most this much, relative, on a random ``x``.
FLOAT32_MAX_DEVIATION = 2e-5
#: ``init='auto'`` uses the nested layout for sparse A with at most this share
#: of nonzeros (denser graphs have fronts as large as the matrix).
NESTED_MAX_DENSITY = 0.05


def prefers_nested(A, opts):
    """``init='auto'``: the nested layout for sparse A given by its entries.

    The GFMM layout is kept for LinearOperators (no entries to eliminate),
    dense or nearly dense matrices (nested dissection of a complete graph is
    one dense front: the exact LU), and when a GFMM-only option asks for it
    (an explicit ordering, the seed's losses, a training precision, a GPU:
    the nested layout is factored and trained on the CPU in double; its
    storage precision is ``factor_dtype``'s, see :func:`_storage`).
    """
    from scipy.sparse.linalg import LinearOperator

    if isinstance(A, LinearOperator) or not sp.issparse(A):
        return False
    n = A.shape[0]
    if n < 2 or A.nnz > NESTED_MAX_DENSITY * n * n and n > 64:
        return False
    # coords/grid_shape are not GFMM-only: they are geometry hints, and the
    # nested layout orders by A's graph, which a sparse A always has.
    gfmm_only = (opts.ordering != "auto" or opts.loss != "probe"
                 or opts.transpose_loss or opts.blockwise or opts.lr is not None
                 or not opts.train_near_field or opts.dtype is not None
                 or opts.device.type != "cpu")
    return not gfmm_only


def _factorize(A_prime, tree, opts, sym, deadline, probes=None, plan=None):
    """The factorization, cut off at ``deadline`` (a Deadline, or None for no limit).

    ``plan``: :func:`~learned_precond._hierarchical.factorization_plan` of
    ``A_prime`` and ``tree``, shared by the fit's factorizations.
    """
    from threadpoolctl import threadpool_limits

    limit = None if deadline is None else max(deadline.remaining(), 0.0)
    threads = factorization_threads()
    # Most fronts are small: BLAS threads cost more than they give there, and
    # on a busy machine they oversubscribe (20x slower measured on 2 cores;
    # on 3-D Poisson's largest fronts, 2 BLAS threads took 10.2 s where 1
    # took 4.4). The factorization's own threads run whole subtrees instead.
    with threadpool_limits(limits=1, user_api="blas"):
        return hierarchical_factorization(A_prime, tree, tol=opts.rank_tol, rank=opts.rank,
                                          symmetric=sym, time_limit=limit, probes=probes,
                                          threads=threads, plan=plan)


def factorization_threads():
    """Threads of the hierarchical factorization: 2 when BLAS may use 2 or more
    (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or a ``threadpoolctl``
    limit around the fit say how many), else 1."""
    from threadpoolctl import threadpool_info

    counts = [int(info.get("num_threads") or 1) for info in threadpool_info()
              if info.get("user_api") == "blas"]
    return 2 if counts and min(counts) >= 2 else 1


def _start(A_prime, tree, opts, report, sym, deadline, plan):
    """The start's factors: Cholesky when asked or possible, else LU."""
    budget = "raise time_budget or rank_tol"
    if sym:
        try:
            return _factorize(A_prime, tree, opts, True, deadline, plan=plan), True
        except np.linalg.LinAlgError as exc:
            if opts.symmetric is True:
                raise PreconditionerSetupError(
                    f"symmetric=True, but the hierarchical Cholesky failed ({exc}): A is "
                    f"not positive definite. Pass symmetric=False (LU).",
                    report=report) from exc
            report.notes.append(f"Cholesky failed ({exc}); LU instead")
        except TimeoutError as exc:
            raise PreconditionerSetupError(
                f"time_budget spent in the hierarchical start ({exc}); {budget}.",
                report=report) from exc
    try:
        return _factorize(A_prime, tree, opts, False, deadline, plan=plan), False
    except np.linalg.LinAlgError as exc:
        raise PreconditionerSetupError(
            f"the hierarchical LU met a singular front ({exc}); A (after static pivoting) "
            f"needs pivoting across separators. Try pivoting='mc64' or "
            f"init='block_tridiagonal'.", report=report) from exc
    except TimeoutError as exc:
        raise PreconditionerSetupError(
            f"time_budget spent in the hierarchical start ({exc}); {budget}.",
            report=report) from exc


def _storage(factors, opts, report, A_prime, tree):
    """The factors in the precision they are stored in (``factor_dtype``).

    ``'auto'``: float32 from :data:`~learned_precond.lu.pack.FLOAT32_MIN_N`
    unknowns on when single precision moves the preconditioned operator by
    at most :data:`FLOAT32_MAX_DEVIATION`: ``||A (M32 - M) x|| <= 2e-5
    ||A M x||`` on a random ``x``. That is far below what the truncation
    leaves (``I - A M`` of a start is 1e-2 and more), so the iterations do
    not change while an apply reads half the bytes. Rounding the factors
    moves ``A M`` by about ``1e-7`` times the condition number of the
    factors (the square root of A's for Cholesky): ill-conditioned ones
    keep float64.

    Returns ``(factors, finite)``: ``finite`` when the returned factors'
    output on a random vector was computed here and is finite (the fit's
    final check, :func:`finish_fit`, then need not apply them again).
    """
    from .pack import FLOAT32_MIN_N

    if opts.factor_dtype == "float64" or (opts.factor_dtype == "auto"
                                          and factors.n < FLOAT32_MIN_N):
        return factors, False
    single = factors.astype(np.float32)
    if opts.factor_dtype == "float32":
        return single, False
    apply_of = _applier(tree)
    x = np.random.default_rng(1).standard_normal(factors.n)
    y = apply_of(factors)(x)
    y32 = apply_of(single)(x)
    with np.errstate(all="ignore"):
        deviation = float(np.linalg.norm(A_prime @ (y32 - y)) / np.linalg.norm(A_prime @ y))
    if deviation <= FLOAT32_MAX_DEVIATION:
        report.notes.append(f"factors stored in float32 (A M x moves by {deviation:.1e} "
                            f"relative)")
        return single, bool(np.all(np.isfinite(y32)))
    report.notes.append(f"factors kept in float64: float32 would move A M x by "
                        f"{deviation:.1e} relative (ill-conditioned factors)")
    return factors, bool(np.all(np.isfinite(y)))


def _applier(tree):
    perm = tree.perm

    def apply_of(factors):
        def apply(X):
            Z = factors.solve(X[perm])
            out = np.empty_like(Z)
            out[perm] = Z
            return out
        return apply
    return apply_of


def _previous_merit(warm):
    """The iterations the warm start's own fit ended with (None without one)."""
    if warm is None or warm.report is None:
        return None
    merit = getattr(warm.report, "iterations", math.nan)
    return float(merit) if math.isfinite(merit) else None


def fit_nested(A_user, A_prime, piv, opts, report, clock, *, symmetric):
    """The nested-dissection layout's stages; returns a NestedLearnedLU.

    Raises
    ------
    PreconditionerSetupError
        A front cannot be factored (singular), or the time budget ran out
        before the start existed.
    """
    from ..io import matrix_fingerprint

    A_prime = sp.csr_array(A_prime, dtype=np.float64)
    if A_prime.nnz and not A_prime.data.all():
        # stored zeros are not edges of the graph the tree separates
        A_prime = A_prime.copy()
        A_prime.eliminate_zeros()
    warm = opts.init if isinstance(opts.init, NestedLearnedLU) else None
    deadline = clock.deadline()
    if warm is not None and not separates(A_prime, warm.tree):
        report.notes.append("warm start: the previous tree does not separate A's graph "
                            "(its pattern changed); ordered afresh")
        warm = None
    if warm is not None:
        tree = warm.tree
        report.ordering = "nested_dissection (warm start)"
    else:
        try:
            tree = nested_dissection(
                A_prime, leaf_size=opts.block_size,
                seed=0 if opts.seed is None else int(opts.seed) % (2**31 - 1),
                time_limit=None if deadline is None else max(deadline.remaining(), 0.0))
        except TimeoutError as exc:
            raise PreconditionerSetupError(
                f"time_budget spent in the ordering ({exc}), before the hierarchical start "
                f"existed: there is no preconditioner to return yet. Raise time_budget.",
                report=report) from exc
        report.ordering = "nested_dissection"
    report.ordering_time = clock.elapsed()
    clock.stage("order", f"{report.ordering}, {tree.n_nodes} nodes")
    sym = bool(symmetric) and opts.symmetric is not False
    # A permuted and the symbolic pass: once for the start and every refactorization
    plan = factorization_plan(A_prime, tree)
    probes = None if warm is None else getattr(warm, "probes", None)
    if probes is not None and probes.shape[0] != A_prime.shape[0]:
        probes = None
    factors = None
    if probes is not None:
        # a warm start factors at once on the previous fit's trained probes
        # (one factorization, not the plain start and then a refactorization)
        try:
            factors, stats = _factorize(A_prime, tree, opts, sym, deadline, probes, plan)
        except (np.linalg.LinAlgError, TimeoutError):
            probes = None
    if factors is None:
        (factors, stats), sym = _start(A_prime, tree, opts, report, sym, deadline, plan)
    report.init = "hierarchical" if warm is None else "warm_start"
    report.symmetric = sym
    report.rank_tol = opts.rank_tol
    report.start_seconds = clock.elapsed()
    report.init_time = report.start_seconds - report.ordering_time
    start_stats = dict(stats)
    clock.stage("start", f"{'Cholesky' if sym else 'LU'}, largest front "
                         f"{stats['max_front']}, max rank {stats['max_rank']}, "
                         f"{stats['floats_per_unknown']:.1f} floats per unknown")

    # training: refactorizations on the slow modes, within the training limit
    train_deadline, train_limit = clock.train_deadline(report.start_seconds)
    report.train_limit = train_limit
    passes = 0 if opts.max_steps == 0 else min(MAX_PASSES, opts.max_steps)
    if passes:
        t_limit = train_limit if train_deadline is None else max(train_deadline.remaining(), 0)

        def factorize(p):
            return _factorize(A_prime, tree, opts, sym, train_deadline, p, plan)

        result = train_nested(A_prime, factorize, _applier(tree), factors, stats,
                              symmetric=sym, time_limit=t_limit, max_passes=passes,
                              seed=0 if opts.seed is None else int(opts.seed),
                              on_pass=lambda msg: clock.stage("train", msg), probes=probes,
                              good_enough=_previous_merit(warm), solves=opts.solves)
        factors, stats = result.factors, result.stats
        if result.probes is not None:
            probes = result.probes
        report.steps, report.best_step = result.passes, result.kept_passes
        report.stop_reason = result.stop_reason
        report.start_iterations, report.iterations = result.start_merit, result.merit
        report.val_history = list(enumerate(result.merit_history))
        report.converged = True
        if report.stop_reason == "time_limit":
            report.stop_reason = train_deadline.reason if train_deadline else "time_limit"
            report.cut_short.append("train")
            report.converged = False
    else:
        report.steps = report.best_step = 0
        report.stop_reason = "max_steps=0"
        report.converged = True
    report.train_seconds = clock.elapsed() - report.start_seconds
    clock.stage("train", f"done: {report.steps} pass(es), {report.best_step} kept "
                         f"({report.stop_reason})")
    factors, finite = _storage(factors, opts, report, A_prime, tree)
    report.hierarchical = dict(stats, start_floats_per_unknown=start_stats[
        "floats_per_unknown"], probes=0 if probes is None else int(probes.shape[1]))
    report.notes.append(
        f"hierarchical start: {start_stats['n_nodes']} nodes, largest front "
        f"{start_stats['max_front']}, max rank {start_stats['max_rank']}, "
        f"{start_stats['floats_per_unknown']:.1f} floats per unknown")
    if passes:
        report.notes.append(
            f"training: {report.steps} refactorization(s), {report.best_step} kept; "
            f"{report.start_iterations:.3g} -> {report.iterations:.3g} "
            f"{'CG' if sym else 'GMRES'} iterations on a random right-hand side; "
            f"{report.hierarchical['floats_per_unknown']:.1f} floats per unknown "
            f"({report.stop_reason})")
    self = NestedLearnedLU(factors=factors, tree=tree, report=report, pivoting=piv,
                           options=opts, fingerprint=matrix_fingerprint(A_user))
    self.probes = probes
    return finish_fit(self, report, clock, "the hierarchical factors produce non-finite "
                      "output; try a smaller rank_tol or init='block_tridiagonal'.",
                      checked=finite)


def finish_fit(self, report, clock, nonfinite_message, checked=False):
    """The end of a nested or dense fit: finite output checked, sizes and times reported.

    ``checked``: the factors' output on a random vector is already known to
    be finite (so is then the operator's: the pivoting's scalings are
    finite), and they are not applied again.
    """
    if not checked:
        x = np.random.default_rng(0).standard_normal(self.shape[0])
        if not np.all(np.isfinite(self @ x)):
            raise PreconditionerSetupError(nonfinite_message, report=report)
    report.nbytes = self.nbytes
    report.fit_time = clock.elapsed()
    self.setup_time = report.fit_time
    clock.stage("done", f"{self.nbytes / 2**20:.3g} MiB")
    if not math.isfinite(report.train_limit):
        report.train_limit = math.inf
    return self
