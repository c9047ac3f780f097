"""CG and GMRES for k right-hand sides in lockstep: one blocked product per step.

:func:`learned_precond.krylov.solve_many` runs these. Each column is its own
Krylov iteration (its own step lengths, its own Hessenberg matrix), exactly
as k separate solves would run it; the columns only share the products
``A @ X`` and ``M @ X``, which are made for all still active columns at once,
so a preconditioner's blocked apply (one pass over its factors for k columns)
is what the iteration uses. A column leaves the lockstep as soon as it
converges.

* :func:`lockstep_cg`: preconditioned CG (Saad, *Iterative Methods for Sparse
  Linear Systems*, 2nd ed., Algorithm 9.1), Hermitian inner products.
* :func:`lockstep_gmres`: *right* preconditioned restarted GMRES(m) with
  modified Gram-Schmidt and complex Givens rotations (Saad, Algorithm 9.5):
  its residual estimate is the true residual ``||b - A x||`` in exact
  arithmetic, and the solution update ``x += M (V y)`` is one blocked apply
  per restart cycle (the vectors ``M v_j`` are not kept: they would cost
  ``m N k`` more numbers).

Both return ``(X, iterations, histories, info)`` with relative residual
histories per column (entry 0 the initial residual), ``info[c]`` 0 when the
recursive residual met the target and 1 when ``maxiter`` ran out.
"""

import numpy as np

__all__ = ["lockstep_cg", "lockstep_gmres"]


def _norms(R):
    return np.sqrt(np.sum(np.abs(R) ** 2, axis=0))


def lockstep_cg(A_op, B, M_op, X, target, scale, maxiter):
    """Preconditioned CG on every column of ``B`` (SPD/HPD ``A`` and ``M``)."""
    k = B.shape[1]
    R = B - A_op.matmat(X)
    histories = [[v] for v in _norms(R) / scale]
    iterations = np.zeros(k, dtype=int)
    info = np.ones(k, dtype=int)
    active = np.flatnonzero(_norms(R) > target)
    info[_norms(R) <= target] = 0
    Z = R[:, active] if M_op is None else M_op.matmat(R[:, active])
    R = R[:, active]
    P = Z.copy()
    rz = np.sum(np.conj(R) * Z, axis=0)
    while active.size:
        Q = A_op.matmat(P)
        alpha = rz / np.sum(np.conj(P) * Q, axis=0)
        X[:, active] += P * alpha
        R -= Q * alpha
        rn = _norms(R)
        iterations[active] += 1
        for c, v in zip(active, rn / scale[active]):
            histories[c].append(float(v))
        done = rn <= target[active]
        info[active[done]] = 0
        done |= iterations[active] >= maxiter
        keep = ~done
        active, R, P = active[keep], R[:, keep], P[:, keep]
        if not active.size:
            break
        Z = R if M_op is None else M_op.matmat(R)
        rz_new = np.sum(np.conj(R) * Z, axis=0)
        beta = rz_new / rz[keep]
        P = Z + P * beta
        rz = rz_new
    return X, iterations, histories, info


def _givens(a, b):
    """Complex Givens ``(c, s)`` with ``[c s; -conj(s) c] [a; b] = [r; 0]`` (vectors)."""
    absa = np.abs(a)
    r = np.sqrt(absa**2 + np.abs(b) ** 2)
    safe_r = np.where(r > 0, r, 1.0)
    safe_a = np.where(absa > 0, absa, 1.0)
    c = np.where(absa > 0, absa / safe_r, 0.0)
    s = np.where(absa > 0, (a / safe_a) * np.conj(b) / safe_r, 1.0)
    return c, s


def lockstep_gmres(A_op, B, M_op, X, target, scale, maxiter, restart):
    """Right preconditioned GMRES(restart) on every column of ``B``."""
    N, k = B.shape
    dtype = B.dtype
    R = B - A_op.matmat(X)
    rnorm = _norms(R)
    histories = [[v] for v in rnorm / scale]
    iterations = np.zeros(k, dtype=int)
    info = np.where(rnorm <= target, 0, 1)
    m = min(restart, N)
    while True:
        cols = np.flatnonzero((info == 1) & (iterations < maxiter))
        if not cols.size:
            break
        kk = cols.size
        V = np.zeros((m + 1, N, kk), dtype=dtype)
        V[0] = R[:, cols] / rnorm[cols]
        H = np.zeros((kk, m + 1, m), dtype=dtype)
        g = np.zeros((kk, m + 1), dtype=dtype)
        g[:, 0] = rnorm[cols]
        cs = np.zeros((kk, m))
        sn = np.zeros((kk, m), dtype=dtype)
        steps = np.zeros(kk, dtype=int)  # Arnoldi steps taken in this cycle
        live = np.arange(kk)
        for j in range(m):
            W = A_op.matmat(V[j][:, live] if M_op is None else M_op.matmat(V[j][:, live]))
            for i in range(j + 1):  # modified Gram-Schmidt
                Vi = V[i][:, live]
                h = np.sum(np.conj(Vi) * W, axis=0)
                W -= Vi * h
                H[live, i, j] = h
            wn = _norms(W)
            H[live, j + 1, j] = wn
            V[j + 1][:, live] = W / np.where(wn > 0, wn, 1.0)
            for i in range(j):  # earlier rotations on the new column
                hi, hi1 = H[live, i, j], H[live, i + 1, j]
                H[live, i, j] = cs[live, i] * hi + sn[live, i] * hi1
                H[live, i + 1, j] = -np.conj(sn[live, i]) * hi + cs[live, i] * hi1
            c, s = _givens(H[live, j, j], H[live, j + 1, j])
            cs[live, j], sn[live, j] = c, s
            H[live, j, j] = c * H[live, j, j] + s * H[live, j + 1, j]
            H[live, j + 1, j] = 0.0
            g[live, j + 1] = -np.conj(s) * g[live, j]
            g[live, j] = c * g[live, j]
            steps[live] += 1
            est = np.abs(g[live, j + 1])
            for c_, v in zip(cols[live], est / scale[cols[live]]):
                histories[c_].append(float(v))
            iterations[cols[live]] += 1
            stop = (est <= target[cols[live]]) | (wn == 0) | (iterations[cols[live]] >= maxiter)
            live = live[~stop]
            if not live.size:
                break
        # y from the triangular systems, then x += M (V y): one blocked apply.
        Y = np.zeros((m, kk), dtype=dtype)
        for q in range(kk):
            n_q = steps[q]
            if n_q:
                Y[:n_q, q] = np.linalg.solve(np.triu(H[q, :n_q, :n_q]), g[q, :n_q])
        U = np.einsum("jnc,jc->nc", V[:m], Y)
        X[:, cols] += U if M_op is None else M_op.matmat(U)
        R[:, cols] = B[:, cols] - A_op.matmat(X[:, cols])
        rnorm[cols] = _norms(R[:, cols])
        met = np.abs(g[np.arange(kk), steps]) <= target[cols]
        # the cycle's estimate met the target: accept when the true residual is close
        info[cols[met & (rnorm[cols] <= 10 * target[cols])]] = 0
    return X, iterations, histories, info
