"""Stage 6 for the nested layout: training the couplings on the slow modes.

The hierarchical start is the exact factorization of a nearby matrix: its
truncations lose most on a few slow modes of ``M A`` (smooth error the
compressed couplings no longer carry), and those are what a Krylov solver
spends its iterations on. Each pass of :func:`train_nested`

1. runs the Krylov method the preconditioner is meant for (preconditioned CG
   when ``M`` is SPD and ``A`` symmetric, else full GMRES on ``A M``) on a
   random right-hand side to ``rtol = 1e-8``, or until its share of the time
   limit is spent (the start's run: at most :data:`START_RUN_CAP`
   iterations, enough for its slowest Ritz pairs; a slow start's remaining
   iterations would only confirm that it is slow; and on CG it stops after
   :data:`EARLY_CHECK` iterations when their Ritz values already predict
   less than :data:`EARLY_GAIN`, so a start with nothing to gain costs
   three applications). Its iteration count is
   the figure of merit (extrapolated from the residual reduction when a run
   is cut short; infinite when the residual did not drop): the merit *is* a
   Krylov iteration count, so keeping the best pass cannot disagree with the
   solver;
2. takes the Ritz vectors of the slowest modes from that run's own basis
   (Lanczos for CG, Arnoldi for GMRES): the probes are the vectors the solver
   itself found hardest;
3. refactors on the same tree with those probes (added to the previous
   pass's), every front's couplings fitted, level by level as the
   elimination goes, to act on the probes exactly (``probes=`` of
   :func:`~learned_precond._hierarchical.hierarchical_factorization`: a
   least-squares fit with the residual forced to zero on the probes, which
   keeps the Cholesky SPD), so ``L U t = A t`` for every probe ``t``.

A pass is kept only when it lowers the expected cost of a solve by
:data:`MIN_GAIN` or more: iterations times the work of one iteration (one
product with ``A`` plus one application of the factors, counted in entries
read, see :func:`solve_work`), so a pass whose probes add more rank than
they save in iterations is not kept (the start is the fallback); training stops when a pass gains less, when
the start already converges in :data:`FEW_ITERATIONS` or when the Ritz
values predict too little, and at the time limit. It also stops before a
pass that could not pay for itself: when even a pass's best case (the
merit down to :data:`FEW_ITERATIONS`) would save less solve time, over the
``solves`` the fit was told to expect (``LearnedLU.fit(..., solves=1)`` by
default), than the pass costs (both counted in entries read, not timed);
the start's run then ends after :data:`EARLY_CHECK` iterations when they
extrapolate to well under the merit a pass would need.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

__all__ = ["TrainResult", "train_nested", "solve_work", "MIN_GAIN", "RTOL", "FEW_ITERATIONS"]

#: Relative residual the merit's Krylov run aims at (the benchmarks' rtol).
RTOL = 1e-8
#: A pass is kept only when it lowers the merit by at least this share.
MIN_GAIN = 0.1
#: A start that converges in this many iterations is not trained.
FEW_ITERATIONS = 3
#: Ritz pairs whose residual bound exceeds this share of their value are not used.
RITZ_TOL = 0.2
#: Slow modes added per pass, and probes in all.
MODES_PER_PASS = 8
MAX_PROBES = 24
#: After this many iterations the start's run checks its Ritz values, and
#: stops when they already predict less than :data:`EARLY_GAIN` (a margin
#: under :data:`MIN_GAIN`: early Ritz values are rough). At N = 65536 the
#: ratio sqrt(kappa1 / kappa0) after 3 iterations was 0.98-0.99 on Poisson,
#: lognormal and anisotropic diffusion (no pass gains there), 0.90 on
#: elasticity and 0.57 on checkerboard (both gain): those run on.
EARLY_CHECK = 3
EARLY_GAIN = 0.05
#: The start's run stops after this many iterations (its merit extrapolated).
#: Checkerboard at N = 65536: 34 iterations counted, 40 extrapolated from 20,
#: the same pass kept (5 iterations), training 0.68 -> 0.48 s.
START_RUN_CAP = 20
#: A pass's cost in refactorizations (the last one's seconds): with the
#: probes' extra rank a pass took 1.3-1.6x the start on the hard suite.
PASS_COST = 1.5
#: Factorization flops (``stats['work']``, the tree's estimate) that cost as
#: much time as one entry read by a solve (:func:`solve_work`): measured 6.6-11.9
#: on the 2-D hard-suite rows at N = 65536 (flops per second of the
#: factorization over entries per second of an iteration), median 9. With
#: it, whether a pass can pay for itself is a deterministic count too.
FLOPS_PER_ENTRY = 9.0
#: The start's run stops after :data:`EARLY_CHECK` iterations when they
#: extrapolate to at most 1 / EARLY_MARGIN of the merit a pass needs to pay.
EARLY_MARGIN = 2.0
#: Bytes the Krylov basis of one run may take (it is bounded to 16..120 vectors).
BASIS_BYTES = 160 * 2**20


def solve_work(A, stats, merit, symmetric):
    """Expected work of one solve: ``merit`` iterations of (A x + M x), in entries read.

    An iteration reads A once and the factors once (LU: L then U) or twice
    (Cholesky: ``L`` forward, then as ``L^T`` back), plus a few vectors. A
    deterministic count, so the same seed keeps the same pass on any machine.
    """
    n = A.shape[0]
    factor = stats.get("floats_per_unknown", 0.0) * n * (2 if symmetric else 1)
    return merit * (A.nnz + factor + 6 * n)


@dataclass
class TrainResult:
    """What :func:`train_nested` did (copied into the FitReport)."""

    factors: object
    stats: dict
    probes: np.ndarray | None
    start_merit: float
    merit: float
    merit_history: list = field(default_factory=list)
    passes: int = 0
    kept_passes: int = 0
    stop_reason: str = ""
    seconds: float = 0.0
    method: str = "cg"


def _lanczos_tridiagonal(alphas, betas, m):
    """The Lanczos tridiagonal (diagonal, off-diagonal) of CG's first ``m`` steps."""
    d = np.empty(m)
    e = np.empty(max(m - 1, 0))
    for j in range(m):
        d[j] = 1.0 / alphas[j] + (betas[j - 1] / alphas[j - 1] if j > 0 else 0.0)
        if j < m - 1:
            e[j] = -math.sqrt(betas[j]) / alphas[j]  # residuals, unsigned
    return d, e


def _cg_lanczos(A, M, b, rtol, maxiter, deadline, max_basis, early_check=False,
                stop_below=None):
    """Preconditioned CG recording the Lanczos data of ``M A``.

    Returns (iterations, converged, residual ratio, T, basis) with ``basis``
    the normalized preconditioned residuals ``M r_j / sqrt(r_j^T M r_j)``
    (at most ``max_basis`` of them) and ``T`` the Lanczos tridiagonal of the
    same steps. With ``early_check``, CG stops after :data:`EARLY_CHECK`
    iterations when the Ritz values of those steps predict less than
    :data:`EARLY_GAIN` from removing the slow modes (see :func:`_predicted_rate`),
    or when the iterations extrapolated from their residual reduction are at
    most ``stop_below`` (see :func:`_early_stop`).
    """
    n = b.size
    # Only the residuals matter here (the merit is a count): no iterate x,
    # and every update in place (a temporary of N doubles per operation was a
    # fifth of a 3-iteration run at N = 65536).
    r = b.copy()
    z = M(r)
    rho = float(r @ z)
    if not (rho > 0 and math.isfinite(rho)):
        raise np.linalg.LinAlgError("M is not positive definite on the probe")
    p = z.copy()
    bnorm = float(np.linalg.norm(b))
    # rows, each contiguous, written in place (no array per iteration)
    basis = np.empty((min(max_basis, maxiter), n))
    kept = 0
    alphas, betas = [], []
    res = 1.0
    it = 0
    while it < maxiter:
        if kept < basis.shape[0]:
            np.multiply(z, 1.0 / math.sqrt(rho), out=basis[kept])
            kept += 1
        q = A @ p
        pq = float(p @ q)
        if not (pq > 0 and math.isfinite(pq)):
            break
        alpha = rho / pq
        q *= alpha
        r -= q
        it += 1
        res = float(np.linalg.norm(r)) / bnorm
        alphas.append(alpha)
        if res <= rtol or time.perf_counter() > deadline:
            break
        if early_check and it == EARLY_CHECK:
            rate = _predicted_rate(_lanczos_tridiagonal(alphas, betas, it))
            if rate is not None and rate > 1 - EARLY_GAIN:
                break
            if _early_stop(it, res, rtol, stop_below):
                break
        z = M(r)
        rho_new = float(r @ z)
        if not (rho_new > 0 and math.isfinite(rho_new)):
            break
        beta = rho_new / rho
        betas.append(beta)
        rho = rho_new
        p *= beta
        p += z
    m = min(len(alphas), kept)
    return it, res <= rtol, res, _lanczos_tridiagonal(alphas, betas, m), \
        basis[:m].T if m else None


def _early_stop(its, res, rtol, stop_below):
    """Say whether a run may end after :data:`EARLY_CHECK` iterations.

    It may when the count extrapolated from their residual reduction is at
    most ``stop_below``: so low that no pass could pay for itself.
    """
    return stop_below is not None and _merit(its, False, res, rtol) <= stop_below


def _gmres_arnoldi(A, M, b, rtol, maxiter, deadline, max_basis, stop_below=None):
    """Right-preconditioned full GMRES on ``A M``, recording the Arnoldi data.

    Returns (iterations, converged, residual ratio, H, V, MV): ``H`` the
    (m+1) x m Hessenberg matrix, ``V`` the Arnoldi basis of ``A M`` and
    ``MV = M V`` (so a Ritz vector ``u = V y`` of ``A M`` gives the
    eigenvector ``M u`` of ``M A``). With ``stop_below``, the run ends after
    :data:`EARLY_CHECK` iterations when :func:`_early_stop` says so.
    """
    m_max = min(maxiter, max_basis)
    n = b.size
    beta0 = float(np.linalg.norm(b))
    # Basis vectors as rows: each one contiguous (a column of an (n, m)
    # array would be written and read with a stride of m).
    V = np.empty((m_max + 1, n))
    MV = np.empty((m_max, n))
    H = np.zeros((m_max + 1, m_max))
    V[0] = b / beta0
    g = np.zeros(m_max + 1)
    g[0] = beta0
    cs, sn = np.zeros(m_max), np.zeros(m_max)
    res, it = 1.0, 0
    for j in range(m_max):
        MV[j] = M(V[j])
        w = A @ MV[j]
        for _ in range(2):  # classical Gram-Schmidt, twice
            h = V[:j + 1] @ w
            w -= V[:j + 1].T @ h
            H[:j + 1, j] += h
        H[j + 1, j] = float(np.linalg.norm(w))
        it = j + 1
        if not np.all(np.isfinite(H[:j + 2, j])):
            it = j
            break
        if H[j + 1, j] > 0:
            V[j + 1] = w / H[j + 1, j]
        # Givens rotations of the least-squares problem, for the residual norm
        col = H[:j + 2, j].copy()
        for i in range(j):
            col[i], col[i + 1] = cs[i] * col[i] + sn[i] * col[i + 1], \
                -sn[i] * col[i] + cs[i] * col[i + 1]
        denom = math.hypot(col[j], col[j + 1])
        cs[j], sn[j] = (col[j] / denom, col[j + 1] / denom) if denom > 0 else (1.0, 0.0)
        g[j], g[j + 1] = cs[j] * g[j], -sn[j] * g[j]
        res = abs(g[j + 1]) / beta0
        if res <= rtol or H[j + 1, j] == 0 or time.perf_counter() > deadline:
            break
        if it == EARLY_CHECK and _early_stop(it, res, rtol, stop_below):
            break
    return it, res <= rtol, res, H[:it + 1, :it], V[:it].T, MV[:it].T


def _merit(its, converged, res, rtol):
    """Iterations to ``rtol``: counted, or extrapolated from the reduction reached."""
    if converged or its == 0:
        return float(its)
    if not (0 < res < 1):
        return math.inf
    return its * math.log(rtol) / math.log(res)


def _ritz_spd(tridiag, k_max):
    """(theta ascending, S, idx): Ritz pairs of the tridiagonal, ``idx`` the
    (at most ``k_max``) slowest converged ones below 1; None when too few steps."""
    d, e = tridiag
    if d.size < 2:
        return None
    theta, S = sla.eigh_tridiagonal(d, e)
    # residual bound of each Ritz pair: |beta_m * last component|, beta_m ~ e[-1]
    bound = np.abs(S[-1, :]) * (abs(e[-1]) if e.size else 0.0)
    good = (theta < 1.0) & (theta > 0) & (bound <= RITZ_TOL * np.abs(theta))
    return theta, S, np.flatnonzero(good)[:k_max]


def _rate_ratio(theta, k):
    """CG's predicted rate after the ``k`` slowest modes are made exact, over
    its rate now: ``sqrt(kappa1 / kappa0)`` (its rate follows sqrt(cond); the
    exact modes move to ~1). None when the Ritz values cannot tell."""
    if not (0 < k < theta.size and theta[0] > 0):
        return None
    kappa0 = theta[-1] / theta[0]
    kappa1 = max(theta[-1], 1.0) / min(theta[k], 1.0)
    return math.sqrt(kappa1 / kappa0)


def _predicted_rate(tridiag, k_max=MODES_PER_PASS):
    """:func:`_rate_ratio` of the slow modes a pass would take from ``tridiag``."""
    ritz = _ritz_spd(tridiag, k_max)
    return None if ritz is None else _rate_ratio(ritz[0], ritz[2].size)


def _slow_modes_spd(tridiag, basis, k_max):
    ritz = _ritz_spd(tridiag, k_max)
    if ritz is None:
        return None, None
    theta, S, idx = ritz
    if idx.size == 0:
        return None, theta
    return basis @ S[:, idx], theta


def _slow_modes_general(H, MV, k_max):
    m = H.shape[1]
    if m < 2:
        return None, None
    theta, Y = np.linalg.eig(H[:m, :m])
    order = np.argsort(np.abs(theta))
    # residual bound |h_{m+1,m} y_m| relative to |theta|
    bound = np.abs(H[m, m - 1] * Y[m - 1, :]) if H.shape[0] > m else np.zeros(m)
    chosen, cols = [], 0
    for i in order:
        if cols >= k_max:
            break
        if abs(theta[i]) >= 1.0 or bound[i] > RITZ_TOL * abs(theta[i]):
            continue
        if theta[i].imag > 0:
            chosen += [Y[:, i].real, Y[:, i].imag]
            cols += 2
        elif theta[i].imag == 0:
            chosen.append(Y[:, i].real)
            cols += 1
    if not chosen:
        return None, theta
    Q, _ = np.linalg.qr(np.column_stack(chosen))
    return MV @ Q, theta


def _basis_limit(n, vectors_per_step):
    return int(min(120, max(16, BASIS_BYTES // (8 * vectors_per_step * max(n, 1)))))


def train_nested(A, factorize, apply_of, start, start_stats, *, symmetric, time_limit,
                 max_passes=3, seed=0, rtol=RTOL, on_pass=None, probes=None,
                 good_enough=None, solves=math.inf):
    """Train the hierarchical factors on their slow modes (see the module doc).

    Parameters
    ----------
    A : sparse matrix (N, N)
        The (pivoted) matrix the factors approximate.
    factorize : callable
        ``probes -> (factors, stats)``: the hierarchical factorization of ``A``
        on the start's tree, exact on ``probes`` (N x p).
    apply_of : callable
        ``factors -> (X -> M X)`` in ``A``'s numbering.
    start, start_stats
        The start's factors and statistics (``stats['seconds']``: its cost).
    symmetric : bool
        The start is SPD and ``A`` symmetric: CG; else GMRES.
    time_limit : float
        Seconds training may take in all.
    max_passes : int
        Refactorizations at most (0: only measure the start).
    on_pass : callable, optional
        ``on_pass(message)`` after the start is measured and after each pass
        (the fit's progress line).
    probes : ndarray (N, p), optional
        The probes ``start`` is exact on (a warm start's): passes add to
        them, the oldest giving way beyond ``MAX_PROBES``.
    good_enough : float, optional
        Iterations at or below which the start is not trained (a warm start
        passes the previous fit's: a start within ``MIN_GAIN`` of it has
        little left to gain).
    solves : float
        Solves the preconditioner is expected to serve. A pass is tried only
        when, even at its best (the merit down to :data:`FEW_ITERATIONS`),
        it would save more solve work over ``solves`` solves than it costs
        (:data:`PASS_COST` factorizations of ``start_stats['work']`` flops,
        :data:`FLOPS_PER_ENTRY` to an entry read, plus that best run), all
        counted, not timed. ``math.inf``: wherever the iterations can drop.

    Returns
    -------
    TrainResult
        The best factors found (the start when no pass gained).
    """
    t0 = time.perf_counter()
    n = A.shape[0]
    rng = np.random.default_rng(seed)
    method = "cg" if symmetric else "gmres"
    maxiter = max(50, min(2000, n))
    limit = _basis_limit(n, 1 if symmetric else 2)

    def remaining():
        return time_limit - (time.perf_counter() - t0)

    work = start_stats.get("work")

    def pays_above(stats):
        """Return the merit a pass must start from to pay for itself.

        Over ``solves`` solves, at best ending at FEW_ITERATIONS, counted in
        entries read; None when that is not counted.
        """
        if work is None or not math.isfinite(solves):
            return None
        per_iteration = solve_work(A, stats, 1.0, symmetric)
        cost = PASS_COST * work / FLOPS_PER_ENTRY + FEW_ITERATIONS * per_iteration
        return FEW_ITERATIONS + cost / (solves * per_iteration)

    def run(factors, share, cap=maxiter, early=False, stop_below=None):
        b = rng.standard_normal(n)
        deadline = time.perf_counter() + max(share, 0.0)
        M = apply_of(factors)
        if symmetric:
            its, conv, res, data, basis = _cg_lanczos(A, M, b, rtol, cap, deadline,
                                                      limit, early_check=early,
                                                      stop_below=stop_below)
            return _merit(its, conv, res, rtol), (data, basis)
        its, conv, res, H, V, MV = _gmres_arnoldi(A, M, b, rtol, cap, deadline, limit,
                                                  stop_below=stop_below)
        return _merit(its, conv, res, rtol), (H, MV)

    out = TrainResult(start, start_stats, None, math.nan, math.nan, method=method)
    try:
        # a start whose first EARLY_CHECK iterations extrapolate to well under
        # the merit a pass needs (EARLY_MARGIN: 3 iterations are a rough guess)
        # stops there: its run is most of what training costs
        threshold = pays_above(start_stats)
        merit, data = run(start, 0.5 * time_limit, min(maxiter, START_RUN_CAP), early=True,
                          stop_below=None if threshold is None else threshold / EARLY_MARGIN)
    except np.linalg.LinAlgError as exc:
        out.stop_reason = f"the start is not usable with {method} ({exc})"
        out.seconds = time.perf_counter() - t0
        return out
    out.start_merit = out.merit = merit
    out.merit_history.append(merit)
    if on_pass is not None:
        on_pass(f"the start takes {merit:.3g} {method.upper()} iterations")
    best_work = solve_work(A, start_stats, merit, symmetric)
    refactor_seconds = float(start_stats.get("seconds", 0.0))
    while True:
        if out.passes >= max_passes:
            out.stop_reason = "max_passes" if max_passes else "max_steps=0"
            break
        if out.merit <= FEW_ITERATIONS:
            out.stop_reason = f"converges in {out.merit:.3g} iterations: nothing to gain"
            break
        if good_enough is not None and out.passes == 0 and \
                out.merit <= good_enough * (1 + MIN_GAIN):
            out.stop_reason = (f"as good as the fit it was warm-started from "
                               f"({out.merit:.3g} vs {good_enough:.3g} iterations)")
            break
        # at best a pass brings the merit down to FEW_ITERATIONS: below the
        # threshold, not even that saves over `solves` solves what it costs
        threshold = pays_above(out.stats)
        if threshold is not None and out.merit < threshold:
            what = "one solve" if solves == 1 else f"{solves:g} solves"
            out.stop_reason = (
                f"a pass would cost about {(threshold - FEW_ITERATIONS) * solves:.3g} "
                f"iterations' work, more than it could save over {what} (at most "
                f"{(out.merit - FEW_ITERATIONS) * solves:.3g}; solves= raises that)")
            break
        # a fit's own passes stop at MAX_PROBES; a warm start's inherited
        # probes give way to the new modes, the oldest first
        own = out.passes * MODES_PER_PASS
        k = min(MODES_PER_PASS, MAX_PROBES - own)
        if k <= 0:
            out.stop_reason = f"{MAX_PROBES} probes"
            break
        if symmetric:
            Z, theta = _slow_modes_spd(data[0], data[1], k)
        else:
            Z, theta = _slow_modes_general(data[0], data[1], k)
        if Z is None:
            out.stop_reason = "no slow mode found (the spectrum is clustered)"
            break
        if symmetric:  # Z found: theta is the run's Ritz values
            rate = _rate_ratio(theta, Z.shape[1])
            if rate is not None and rate > 1 - MIN_GAIN:
                out.stop_reason = "the Ritz values predict less than a 10% gain"
                break
        if PASS_COST * refactor_seconds > remaining():
            out.stop_reason = "time_limit"
            break
        Z = Z / np.linalg.norm(Z, axis=0)
        if probes is None:
            candidate = Z
        else:
            old = probes[:, max(0, probes.shape[1] + Z.shape[1] - MAX_PROBES):]
            candidate = np.hstack([old, Z])
        out.passes += 1
        t1 = time.perf_counter()
        try:
            factors, stats = factorize(candidate)
        except (np.linalg.LinAlgError, TimeoutError) as exc:
            out.stop_reason = f"refactorization failed ({exc}); kept the best so far"
            break
        refactor_seconds = time.perf_counter() - t1
        try:
            new_merit, new_data = run(factors, remaining())
        except np.linalg.LinAlgError as exc:
            out.merit_history.append(math.inf)
            out.stop_reason = f"a pass was not usable with {method} ({exc})"
            break
        out.merit_history.append(new_merit)
        new_work = solve_work(A, stats, new_merit, symmetric)
        if on_pass is not None:
            on_pass(f"pass {out.passes}: {candidate.shape[1]} probes, {new_merit:.3g} "
                    f"iterations ({new_work / best_work:.2f}x the work of the best)")
        if new_work <= best_work * (1 - MIN_GAIN):
            out.factors, out.stats, out.probes = factors, stats, candidate
            probes, data, out.merit = candidate, new_data, new_merit
            best_work = new_work
            out.kept_passes += 1
        else:
            out.stop_reason = (f"a pass saved less than {MIN_GAIN:.0%} of a solve's work "
                               f"({new_merit:.3g} vs {out.merit:.3g} iterations, "
                               f"{new_work / best_work:.2f}x the work)")
            break
        if remaining() <= 0:
            out.stop_reason = "time_limit"
            break
    out.seconds = time.perf_counter() - t0
    return out
