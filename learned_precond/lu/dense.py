"""The dense layout: LearnedLU of a dense matrix with coordinates, as HODLR factors.

``LearnedLU.fit(A, coords=X)`` for a dense ``A`` of at least
:data:`DENSE_MIN_N` unknowns (and ``init='hodlr'`` for any dense ``A``) runs
the options and static pivoting stages of :mod:`learned_precond.lu` and then:

1. order: bisection of the points ``coords`` (without them, of the index:
   the ranks are then those of ``A``'s own numbering);
2. start: the HODLR factorization of :mod:`learned_precond._hodlr` (dense
   leaves, the off-diagonal blocks compressed from the entries of ``A`` to
   ``rank_tol`` times their largest singular value, capped by ``rank``);
   SPD ``A`` keeps an SPD preconditioner (CG);
3. train: the merit is the Krylov iteration count on a random right-hand
   side (CG for SPD, GMRES otherwise, rtol 1e-8, as in the nested layout);
   the run stops after :data:`EARLY_ITERATIONS` when the solve they
   extrapolate to, times the ``solves`` option, is cheaper than a pass (no
   pass can pay for itself; the merit is then the extrapolated count).
   While the merit is above :data:`~learned_precond.lu.refine.FEW_ITERATIONS`, a
   pass refactors at a ten times smaller tolerance and is kept when it
   lowers the expected work of a solve (iterations times one product with
   ``A`` plus one application) by :data:`~learned_precond.lu.refine.MIN_GAIN`;
   at most ``min(max_steps, 2)`` passes, within the training time limit.

Nothing ``N x N`` is formed besides the user's ``A``: blocks are gathered
from it in row chunks. The operator is :class:`DenseLearnedLU`.
"""

import time

import numpy as np

from .._format import format_bytes
from .._hodlr import hodlr_factorization
from ..exceptions import PreconditionerSetupError
from .nested import PermutedLearnedLU
from .nested_fit import finish_fit
from .refine import FEW_ITERATIONS, MIN_GAIN, RTOL, _cg_lanczos, _gmres_arnoldi, _merit

__all__ = ["DenseLearnedLU", "fit_dense", "prefers_dense", "DENSE_MIN_N", "MAX_PASSES"]

#: ``init='auto'`` uses the dense layout for a dense ``A`` with ``coords`` from this size.
DENSE_MIN_N = 2048
#: Tighter refactorizations training may do at most.
MAX_PASSES = 2
#: Leaves (dense diagonal blocks) hold at most this many unknowns (at least block_size).
LEAF_SIZE = 256
#: The start's merit run first stops after this many iterations: when the
#: solve they extrapolate to costs less than a tighter pass would, no pass
#: can pay for itself and the run ends there (the merit extrapolated).
EARLY_ITERATIONS = 3


def prefers_dense(A, opts):
    """``init='auto'``: the dense layout for a dense ndarray of >= DENSE_MIN_N with coords."""
    return (isinstance(A, np.ndarray) and A.shape[0] >= DENSE_MIN_N
            and opts.coords is not None and opts.ordering == "auto"
            and opts.loss == "probe" and not opts.transpose_loss and not opts.blockwise
            and opts.lr is None and opts.train_near_field
            and opts.factor_dtype == "auto" and opts.dtype is None
            and opts.device.type == "cpu")


class DenseLearnedLU(PermutedLearnedLU):
    """A :class:`LearnedLU` on the dense layout (HODLR factors, see the module doc).

    Attributes
    ----------
    perm : ndarray
        ``perm[k]``: the original index of the k-th unknown in tree order.
    factors : HODLRFactors
        The HODLR factors of ``A'[perm][:, perm]``.
    """

    tree = None  # no separator tree (the nested layout's); not a nested warm start

    def save(self, path):
        """Not available for the dense layout yet (raises NotImplementedError)."""
        raise NotImplementedError(
            "saving a LearnedLU of the dense (HODLR) layout is not supported yet; refit "
            "it (its setup is the factorization), or fit with init='gfmm' to save.")

    def __repr__(self):
        rep, st = self.report, self.factors.stats
        rows = [
            ("N", self.shape[0]),
            ("layout", f"dense HODLR, {st['n_leaves']} leaves of <= {st['leaf_size']}, "
                       f"ranks by level {st['ranks_by_level']}"),
            ("factorization", "Cholesky leaves, SPD (CG)" if self.factors.symmetric
             else "LU leaves"),
            ("memory", f"{format_bytes(self.nbytes)} "
                       f"({st['floats_per_unknown']:.1f} floats per unknown)"),
            ("fit time", f"{rep.fit_time:.3g} s (start {rep.start_seconds:.3g}, train "
                         f"{rep.train_seconds:.3g})"),
            ("training", f"{rep.steps} pass(es), {rep.best_step} kept, "
                         f"{rep.start_iterations:.3g} -> {rep.iterations:.3g} iterations "
                         f"({rep.stop_reason})"),
        ]
        width = max(len(k) for k, _ in rows)
        body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
        return f"{type(self).__name__}\n{body}"


def _factorize(A, coords, opts, sym, tol, deadline):
    limit = None if deadline is None else max(deadline.remaining(), 0.0)
    leaf = max(LEAF_SIZE, int(opts.block_size))
    seed = 0 if opts.seed is None else int(opts.seed) % (2**31 - 1)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: measured 2x faster on 2 cores than BLAS's own threads
    # (16 s vs 30 s on the N = 16384 kernel), the products are thin (k
    # columns) and the gathers already run in parallel
    with threadpool_limits(limits=1, user_api="blas"):
        return hodlr_factorization(A, coords, leaf_size=leaf, tol=tol, rank=opts.rank,
                                   symmetric=sym, time_limit=limit, seed=seed)


def _start(A, coords, opts, report, sym, deadline):
    budget = "raise time_budget or rank_tol"
    if sym:
        try:
            return _factorize(A, coords, opts, True, opts.rank_tol, deadline), True
        except np.linalg.LinAlgError as exc:
            if opts.symmetric is True:
                raise PreconditionerSetupError(
                    f"symmetric=True, but the HODLR Cholesky failed ({exc}): A is not "
                    f"positive definite. Pass symmetric=False.", report=report) from exc
            report.notes.append(f"HODLR Cholesky failed ({exc}); LU leaves instead")
        except TimeoutError as exc:
            raise PreconditionerSetupError(
                f"time_budget spent in the HODLR start ({exc}); {budget}.",
                report=report) from exc
    try:
        return _factorize(A, coords, opts, False, opts.rank_tol, deadline), False
    except np.linalg.LinAlgError as exc:
        raise PreconditionerSetupError(
            f"the HODLR factorization met a singular block ({exc}); lower rank_tol, or "
            f"use init='gfmm'.", report=report) from exc
    except TimeoutError as exc:
        raise PreconditionerSetupError(
            f"time_budget spent in the HODLR start ({exc}); {budget}.",
            report=report) from exc


def _measure(A, perm, factors, sym, seed, deadline, maxiter=None):
    """Krylov iterations to RTOL on a random right-hand side (the merit),
    extrapolated from the residual reduction when ``maxiter`` cuts the run
    short; and the seconds of the run."""
    n = A.shape[0]
    b = np.random.default_rng(seed).standard_normal(n)

    def M(x):
        z = factors.solve(x[perm])
        out = np.empty_like(z)
        out[perm] = z
        return out

    if maxiter is None:
        maxiter = max(50, min(500, n))
    t = time.perf_counter()
    if sym:
        its, conv, res, _, _ = _cg_lanczos(A, M, b, RTOL, maxiter, deadline, 16)
    else:
        its, conv, res, *_ = _gmres_arnoldi(A, M, b, RTOL, maxiter, deadline, 120)
    return _merit(its, conv, res, RTOL), its, time.perf_counter() - t


def _work(n, factors, merit):
    """Expected work of a solve in entries read: merit x (A x + M x)."""
    return merit * (n * n + factors.factor_entries * (2 if factors.symmetric else 1))


def fit_dense(A_user, A_prime, piv, opts, report, clock, *, symmetric):
    """The dense layout's stages; returns a DenseLearnedLU."""
    if opts.warm_start is not None or opts.nested_warm_start is not None:
        raise ValueError("a warm start (init=<LearnedLU>) is not available for the dense "
                         "layout; fit afresh (its start is the whole setup).")
    A = np.ascontiguousarray(A_prime, dtype=np.float64)
    n = A.shape[0]
    if opts.coords is not None:
        coords = np.asarray(opts.coords, dtype=np.float64)
        report.ordering = "coordinate_bisection"
    else:
        coords = np.arange(n, dtype=np.float64)[:, None]
        report.ordering = "index_bisection"
        report.notes.append("dense layout without coords: bisection of A's own numbering "
                            "(pass coords= for low far-field ranks)")
    deadline = clock.deadline()
    sym = bool(symmetric) and opts.symmetric is not False
    (perm, factors), sym = _start(A, coords, opts, report, sym, deadline)
    report.ordering_time = 0.0
    report.init = "hodlr"
    report.symmetric = sym
    report.rank_tol = opts.rank_tol
    report.start_seconds = clock.elapsed()
    report.init_time = report.start_seconds
    start_stats = dict(factors.stats)
    clock.stage("start", f"HODLR, ranks by level {start_stats['ranks_by_level']}, "
                         f"{start_stats['floats_per_unknown']:.1f} floats per unknown")

    train_deadline, train_limit = clock.train_deadline(report.start_seconds)
    report.train_limit = train_limit
    seed = 0 if opts.seed is None else int(opts.seed)
    stop = time.perf_counter() + (train_limit if train_deadline is None
                                  else max(train_deadline.remaining(), 0.0))
    tol = factors.stats["tol"]
    last_cost = factors.stats["seconds"]
    # a pass costs about a factorization, and it can save at most the solve:
    # a few iterations tell whether the solve costs less (then stop there)
    merit, its, run_seconds = _measure(A, perm, factors, sym, seed, stop, EARLY_ITERATIONS)
    extrapolated = its == EARLY_ITERATIONS and merit > its
    if extrapolated:
        run_seconds *= merit / its
        if last_cost <= opts.solves * run_seconds:  # a pass may pay: the whole run
            merit, its, run_seconds = _measure(A, perm, factors, sym, seed, stop)
            extrapolated = False
    start_merit = merit
    history = [merit]
    passes = kept = 0
    reason = "max_steps=0" if opts.max_steps == 0 else ""
    while not reason:
        if merit <= FEW_ITERATIONS:
            reason = f"converges in {merit:.3g} iterations: nothing to gain"
        elif last_cost > opts.solves * run_seconds:
            how = (f"about {run_seconds:.3g} s, extrapolated from {EARLY_ITERATIONS} "
                   f"iterations" if extrapolated else f"{run_seconds:.3g} s")
            what = ("the whole solve" if opts.solves == 1
                    else f"the {opts.solves:g} solves")
            reason = (f"a tighter pass would cost about {last_cost:.3g} s, more than "
                      f"{what} it could shorten ({how} a solve; solves= raises that)")
        elif passes >= min(MAX_PASSES, opts.max_steps):
            reason = f"{passes} pass(es), the most allowed"
        elif tol <= 0:
            reason = "rank_tol=0: the factors are exact"
        elif time.perf_counter() > stop:
            reason = "time_limit"
        if reason:
            break
        tol /= 10
        passes += 1
        try:
            p2, f2 = _factorize(A, coords, opts, sym, tol, None if train_deadline is None
                                else train_deadline)
            last_cost = f2.stats["seconds"]
            m2, _, run_seconds = _measure(A, p2, f2, sym, seed, stop)
        except (np.linalg.LinAlgError, TimeoutError) as exc:
            reason = f"the pass at tolerance {tol:.0e} failed ({exc})"
            break
        history.append(m2)
        clock.stage("train", f"pass {passes}: rank_tol {tol:.0e}, {m2:.3g} iterations")
        if _work(n, f2, m2) <= (1 - MIN_GAIN) * _work(n, factors, merit):
            perm, factors, merit, kept = p2, f2, m2, passes
        else:
            reason = (f"a pass saved less than {MIN_GAIN:.0%} of a solve's work "
                      f"({merit:.3g} vs {m2:.3g} iterations)")
    report.steps, report.best_step = passes, kept
    report.stop_reason = reason
    report.start_iterations, report.iterations = float(start_merit), float(merit)
    report.val_history = list(enumerate(history))
    report.converged = reason != "time_limit"
    if reason == "time_limit":
        report.cut_short.append("train")
    report.train_seconds = clock.elapsed() - report.start_seconds
    report.hierarchical = dict(factors.stats, start_floats_per_unknown=start_stats[
        "floats_per_unknown"], probes=0)
    report.notes.append(
        f"dense HODLR start: {start_stats['n_leaves']} leaves, ranks by level "
        f"{start_stats['ranks_by_level']}, {start_stats['floats_per_unknown']:.1f} floats "
        f"per unknown, {start_stats['spd_retries']} SPD rebuild(s) of the whole tree ten "
        f"times tighter (tolerance {start_stats['tol']:.0e})")
    report.notes.append(
        f"training: {passes} tighter refactorization(s), {kept} kept; {start_merit:.3g} -> "
        f"{merit:.3g} {'CG' if sym else 'GMRES'} iterations on a random right-hand side "
        f"({reason})")
    # no fingerprint: it identifies the matrix of a saved file, and this layout
    # is not saved (hashing a 2 GiB A costs seconds)
    self = DenseLearnedLU(factors=factors, perm=perm, report=report, pivoting=piv,
                          options=opts, fingerprint=None)
    return finish_fit(self, report, clock, "the HODLR factors produce non-finite output; "
                      "try a smaller rank_tol or init='gfmm'.")
