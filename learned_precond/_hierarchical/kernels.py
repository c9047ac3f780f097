"""Compiled substitution (numba) with the packed hierarchical factors.

Forward elimination in post-order, back substitution in reverse, over the
flat per-node arrays of :class:`~learned_precond._hierarchical.factorization.
HierarchicalFactors`. :func:`~learned_precond._hierarchical.reference.
solve_reference` is the plain loop these kernels are tested against.
"""

import numba
import numpy as np

__all__ = ["substitute"]


@numba.njit(cache=True, nogil=True, parallel=True)
def substitute(symmetric, transposed, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
               xloff, XL, kU, xuoff, XU, quoff, QU, X):
    """In place, every column of X: ``x <- M x`` (``M^T x`` when ``transposed``)."""
    T = ptr.size - 1
    kmax = 1
    for t in range(T):
        kmax = max(kmax, kL[t], kU[t])
    for col in numba.prange(X.shape[1]):
        tmp = np.empty(kmax)
        if transposed:
            _transposed_column(ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL,
                               kU, xuoff, XU, quoff, QU, X[:, col], tmp)
        else:
            _column(symmetric, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL,
                    kU, xuoff, XU, quoff, QU, X[:, col], tmp)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _encode_add(Xf, x0, k, s, x, i0, tmp, ident):
    # tmp[c] = sum_i Xf[x0 + c*s + i] x[i0 + i]   (row-major k x s; identity: tmp = x_I)
    if ident:
        for c in range(k):
            tmp[c] = x[i0 + c]
        return
    for c in range(k):
        acc = 0.0
        r = x0 + c * s
        for i in range(s):
            acc += Xf[r + i] * x[i0 + i]
        tmp[c] = acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scatter_sub_rows(Q, q0, b, k, bidx, b0, x, tmp):
    # x[bidx[j]] -= sum_c Q[q0 + j*k + c] tmp[c]   (row-major b x k)
    for j in range(b):
        acc = 0.0
        r = q0 + j * k
        for c in range(k):
            acc += Q[r + c] * tmp[c]
        x[bidx[b0 + j]] -= acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather_rows(Q, q0, b, k, bidx, b0, x, tmp):
    # tmp[c] = sum_j Q[q0 + j*k + c] x[bidx[j]]   (Q^T x_B, Q row-major b x k)
    for c in range(k):
        tmp[c] = 0.0
    for j in range(b):
        v = x[bidx[b0 + j]]
        r = q0 + j * k
        for c in range(k):
            tmp[c] += Q[r + c] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _decode_sub_cols(Xf, x0, k, s, x, i0, tmp, ident):
    # x[i0 + i] -= sum_c Xf[x0 + c*s + i] tmp[c]   (Xf^T tmp, Xf row-major k x s)
    if ident:
        for c in range(k):
            x[i0 + c] -= tmp[c]
        return
    for c in range(k):
        v = tmp[c]
        r = x0 + c * s
        for i in range(s):
            x[i0 + i] -= Xf[r + i] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _decode_sub_rows(Xf, x0, s, k, x, i0, tmp, ident):
    # x[i0 + i] -= sum_c Xf[x0 + i*k + c] tmp[c]   (Xf row-major s x k)
    if ident:
        for c in range(k):
            x[i0 + c] -= tmp[c]
        return
    for i in range(s):
        acc = 0.0
        r = x0 + i * k
        for c in range(k):
            acc += Xf[r + c] * tmp[c]
        x[i0 + i] -= acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather_cols(Q, q0, k, b, bidx, b0, x, tmp):
    # tmp[c] = sum_j Q[q0 + c*b + j] x[bidx[j]]   (Q row-major k x b)
    for c in range(k):
        acc = 0.0
        r = q0 + c * b
        for j in range(b):
            acc += Q[r + j] * x[bidx[b0 + j]]
        tmp[c] = acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _encode_cols(Xf, x0, s, k, x, i0, tmp, ident):
    # tmp[c] = sum_i Xf[x0 + i*k + c] x[i0 + i]   (Xf^T x_I, Xf row-major s x k)
    if ident:
        for c in range(k):
            tmp[c] = x[i0 + c]
        return
    for c in range(k):
        tmp[c] = 0.0
    for i in range(s):
        v = x[i0 + i]
        r = x0 + i * k
        for c in range(k):
            tmp[c] += Xf[r + c] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scatter_sub_cols(Q, q0, k, b, bidx, b0, x, tmp):
    # x[bidx[j]] -= sum_c Q[q0 + c*b + j] tmp[c]   (Q^T tmp, Q row-major k x b)
    for c in range(k):
        v = tmp[c]
        r = q0 + c * b
        for j in range(b):
            x[bidx[b0 + j]] -= Q[r + j] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lower_solve(D, d0, s, x, i0, unit):
    # rows of the lower triangle, row-major
    for i in range(s):
        acc = x[i0 + i]
        r = d0 + i * s
        for j in range(i):
            acc -= D[r + j] * x[i0 + j]
        x[i0 + i] = acc if unit else acc / D[r + i]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _upper_solve(D, d0, s, x, i0):
    for i in range(s - 1, -1, -1):
        r = d0 + i * s
        acc = x[i0 + i]
        for j in range(i + 1, s):
            acc -= D[r + j] * x[i0 + j]
        x[i0 + i] = acc / D[r + i]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _upper_transposed_solve(D, d0, s, x, i0):
    # (upper triangle)^T x = b, lower: by rows of the upper triangle
    for j in range(s):
        r = d0 + j * s
        v = x[i0 + j] / D[r + j]
        x[i0 + j] = v
        for i in range(j + 1, s):
            x[i0 + i] -= D[r + i] * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lower_transposed_solve(D, d0, s, x, i0, unit):
    # (lower triangle)^T x = b, upper: by rows of the lower triangle
    for j in range(s - 1, -1, -1):
        r = d0 + j * s
        v = x[i0 + j] if unit else x[i0 + j] / D[r + j]
        x[i0 + j] = v
        for i in range(j):
            x[i0 + i] -= D[r + i] * v


@numba.njit(cache=True, nogil=True)
def _column(symmetric, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL, kU,
            xuoff, XU, quoff, QU, x, tmp):
    T = ptr.size - 1
    for t in range(T):  # forward: y_I = L_t^-1 P y_I;  y_B -= QL XL y_I
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        if symmetric:
            _lower_solve(diag, doff[t], s, x, i0, False)
        else:
            for i in range(s):
                p = piv[i0 + i]
                if p != i:
                    v = x[i0 + i]
                    x[i0 + i] = x[i0 + p]
                    x[i0 + p] = v
            _lower_solve(diag, doff[t], s, x, i0, True)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kL[t]
        if b and k:
            _encode_add(XL, xloff[t], k, s, x, i0, tmp, xloff[t + 1] == xloff[t])
            _scatter_sub_rows(QL, qloff[t], b, k, bidx, b0, x, tmp)
    for t in range(T - 1, -1, -1):  # backward: x_I = U_t^-1 (y_I - G_U x_B)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        b0 = boff[t]
        b = boff[t + 1] - b0
        if symmetric:
            k = kL[t]
            if b and k:
                _gather_rows(QL, qloff[t], b, k, bidx, b0, x, tmp)
                _decode_sub_cols(XL, xloff[t], k, s, x, i0, tmp, xloff[t + 1] == xloff[t])
            _lower_transposed_solve(diag, doff[t], s, x, i0, False)
        else:
            k = kU[t]
            if b and k:
                _gather_cols(QU, quoff[t], k, b, bidx, b0, x, tmp)
                _decode_sub_rows(XU, xuoff[t], s, k, x, i0, tmp, xuoff[t + 1] == xuoff[t])
            _upper_solve(diag, doff[t], s, x, i0)


@numba.njit(cache=True, nogil=True)
def _transposed_column(ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff, XL, kU,
                       xuoff, XU, quoff, QU, x, tmp):
    T = ptr.size - 1
    for t in range(T):  # U^T w = x: w_I = U_t^-T x_I;  x_B -= G_U^T w_I
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        _upper_transposed_solve(diag, doff[t], s, x, i0)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kU[t]
        if b and k:
            _encode_cols(XU, xuoff[t], s, k, x, i0, tmp, xuoff[t + 1] == xuoff[t])
            _scatter_sub_cols(QU, quoff[t], k, b, bidx, b0, x, tmp)
    for t in range(T - 1, -1, -1):  # L^T v = w: v_I = P^T L_t^-T (w_I - G_L^T v_B)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kL[t]
        if b and k:
            _gather_rows(QL, qloff[t], b, k, bidx, b0, x, tmp)
            _decode_sub_cols(XL, xloff[t], k, s, x, i0, tmp, xloff[t + 1] == xloff[t])
        _lower_transposed_solve(diag, doff[t], s, x, i0, True)
        for i in range(s - 1, -1, -1):
            p = piv[i0 + i]
            if p != i:
                v = x[i0 + i]
                x[i0 + i] = x[i0 + p]
                x[i0 + p] = v

