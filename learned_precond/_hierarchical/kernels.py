"""Compiled substitution (numba) with the packed hierarchical factors.

Forward elimination in post-order, back substitution in reverse, over the
flat per-node arrays of :class:`~learned_precond._hierarchical.factorization.
HierarchicalFactors`. :func:`~learned_precond._hierarchical.reference.
solve_reference` is the plain loop these kernels are tested against.
"""

import numba
import numpy as np

__all__ = ["substitute", "substitute_block", "substitute_range"]


@numba.njit(cache=True, nogil=True)
def _kmax(kL, kU):
    kmax = 1
    for t in range(kL.size):
        kmax = max(kmax, kL[t], kU[t])
    return kmax


@numba.njit(cache=True, nogil=True)
def substitute(symmetric, transposed, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
               xloff, XL, kU, xuoff, XU, quoff, QU, x):
    """In place, the contiguous vector x: ``x <- M x`` (``M^T x`` when ``transposed``).

    One thread. ``x`` must be a contiguous 1-D array (a column of an (N, 1)
    array is typed as a strided view, whose loops vectorize less well).
    """
    T = ptr.size - 1
    tmp = np.empty(_kmax(kL, kU))
    if transposed:
        _forward_transposed(symmetric, 0, T, ptr, boff, bidx, doff, diag, piv, kL, qloff,
                            QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp)
        _backward_transposed(symmetric, 0, T, ptr, boff, bidx, doff, diag, piv, kL, qloff,
                             QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp)
    else:
        _forward(symmetric, 0, T, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff,
                 XL, kU, xuoff, XU, quoff, QU, x, tmp)
        _backward(symmetric, 0, T, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff,
                  XL, kU, xuoff, XU, quoff, QU, x, tmp)


@numba.njit(cache=True, nogil=True)
def _half(first, transposed, symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
          qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp):
    if first and transposed:
        _forward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
                            qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp)
    elif first:
        _forward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                 xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp)
    elif transposed:
        _backward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
                             qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp)
    else:
        _backward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                  xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp)


@numba.njit(cache=True, nogil=True)
def substitute_range(first, transposed, symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv,
                     kL, qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X):
    """In place, X C-ordered (N, m): nodes ``t0..t1-1`` of the forward half
    (``first``) or of the backward half of ``M X`` (``M^T X``); the vector
    kernel when m = 1, else one pass of the blocked one.

    The halves of :func:`substitute` and of one chunk of
    :func:`substitute_block`, a range of nodes at a time:
    :meth:`~learned_precond._hierarchical.factorization.HierarchicalFactors.solve`
    runs two ranges of whole subtrees side by side in two threads with it.
    """
    m = X.shape[1]
    if m == 1:
        _half(first, transposed, symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
              qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X.reshape(X.shape[0]),
              np.empty(_kmax(kL, kU)))
    else:
        _block_half(first, transposed, symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv,
                    kL, qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X, 0, m,
                    np.empty((_kmax(kL, kU), m)))


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
def _forward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff,
             XL, kU, xuoff, XU, quoff, QU, x, tmp):
    # nodes t0..t1-1 of M x's first half: each writes its own rows and its boundary's
    for t in range(t0, t1):  # forward: y_I = L_t^-1 P y_I;  y_B -= QL XL y_I
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


@numba.njit(cache=True, nogil=True)
def _backward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL, xloff,
              XL, kU, xuoff, XU, quoff, QU, x, tmp):
    # nodes t1-1..t0 of the second half: each reads its boundary, writes its own rows
    for t in range(t1 - 1, t0 - 1, -1):  # backward: x_I = U_t^-1 (y_I - G_U x_B)
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
def _forward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff,
                        QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp):
    # M^T's first half (``symmetric`` unused: M^T of a Cholesky is M)
    for t in range(t0, t1):  # U^T w = x: w_I = U_t^-T x_I;  x_B -= G_U^T w_I
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        _upper_transposed_solve(diag, doff[t], s, x, i0)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kU[t]
        if b and k:
            _encode_cols(XU, xuoff[t], s, k, x, i0, tmp, xuoff[t + 1] == xuoff[t])
            _scatter_sub_cols(QU, quoff[t], k, b, bidx, b0, x, tmp)


@numba.njit(cache=True, nogil=True)
def _backward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff,
                         QL, xloff, XL, kU, xuoff, XU, quoff, QU, x, tmp):
    for t in range(t1 - 1, t0 - 1, -1):  # L^T v = w: v_I = P^T L_t^-T (w_I - G_L^T v_B)
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



# -- many right-hand sides: one pass over the nodes for a block of columns ---------------
#
# X is C-ordered (N, m): the columns of one row are contiguous, so every update
# below is a row operation over a chunk of columns c0:c1 (unit stride, SIMD),
# and each stored factor entry is read once per chunk instead of once per
# column. The couplings are small matrix-matrix products with a gather of the
# boundary rows (``_gather``) or a scatter into them (``_scatter``); a factor
# entry W(a, i) is F[off + a * rs + i * cs], so one helper serves a block and
# its transpose.


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather(F, off, rs, cs, k, m, idx, i_off, i0, contig, X, c0, c1, tmp):
    # tmp[a, :] = sum_i W(a, i) X[row(i), c0:c1];  row(i) = i0 + i or idx[i_off + i]
    w = c1 - c0
    for a in range(k):
        for c in range(w):
            tmp[a, c] = 0.0
    for i in range(m):
        row = i0 + i if contig else idx[i_off + i]
        for a in range(k):
            f = F[off + a * rs + i * cs]
            for c in range(w):
                tmp[a, c] += f * X[row, c0 + c]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scatter(F, off, rs, cs, k, m, idx, i_off, i0, contig, X, c0, c1, tmp):
    # X[row(i), c0:c1] -= sum_a W(i, a) tmp[a, :]
    w = c1 - c0
    for i in range(m):
        row = i0 + i if contig else idx[i_off + i]
        for a in range(k):
            f = F[off + i * rs + a * cs]
            for c in range(w):
                X[row, c0 + c] -= f * tmp[a, c]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _copy_rows(X, i0, k, c0, c1, tmp):
    # the identity encode (uncompressed coupling): tmp = X_I
    for a in range(k):
        for c in range(c1 - c0):
            tmp[a, c] = X[i0 + a, c0 + c]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _sub_rows(X, i0, k, c0, c1, tmp):
    # the identity decode: X_I -= tmp
    for a in range(k):
        for c in range(c1 - c0):
            X[i0 + a, c0 + c] -= tmp[a, c]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _swap_rows(X, i0, s, piv, c0, c1, forward):
    # P X_I (forward, LAPACK order) or P^T X_I
    for q in range(s):
        i = q if forward else s - 1 - q
        p = piv[i0 + i]
        if p != i:
            for c in range(c0, c1):
                v = X[i0 + i, c]
                X[i0 + i, c] = X[i0 + p, c]
                X[i0 + p, c] = v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _block_lower(D, d0, s, X, i0, unit, c0, c1):
    # L X_I = B, L the lower triangle (row-major s x s), forward by rows
    for i in range(s):
        r = d0 + i * s
        for j in range(i):
            d = D[r + j]
            for c in range(c0, c1):
                X[i0 + i, c] -= d * X[i0 + j, c]
        if not unit:
            d = D[r + i]
            for c in range(c0, c1):
                X[i0 + i, c] /= d


@numba.njit(cache=True, nogil=True, fastmath=True)
def _block_upper(D, d0, s, X, i0, c0, c1):
    # U X_I = B, U the upper triangle, backward by rows
    for i in range(s - 1, -1, -1):
        r = d0 + i * s
        for j in range(i + 1, s):
            d = D[r + j]
            for c in range(c0, c1):
                X[i0 + i, c] -= d * X[i0 + j, c]
        d = D[r + i]
        for c in range(c0, c1):
            X[i0 + i, c] /= d


@numba.njit(cache=True, nogil=True, fastmath=True)
def _block_upper_transposed(D, d0, s, X, i0, c0, c1):
    # U^T X_I = B: forward, column j of U^T is row j of U
    for j in range(s):
        r = d0 + j * s
        d = D[r + j]
        for c in range(c0, c1):
            X[i0 + j, c] /= d
        for i in range(j + 1, s):
            d = D[r + i]
            for c in range(c0, c1):
                X[i0 + i, c] -= d * X[i0 + j, c]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _block_lower_transposed(D, d0, s, X, i0, unit, c0, c1):
    # L^T X_I = B: backward, column j of L^T is row j of L
    for j in range(s - 1, -1, -1):
        r = d0 + j * s
        if not unit:
            d = D[r + j]
            for c in range(c0, c1):
                X[i0 + j, c] /= d
        for i in range(j):
            d = D[r + i]
            for c in range(c0, c1):
                X[i0 + i, c] -= d * X[i0 + j, c]


@numba.njit(cache=True, nogil=True)
def _block_forward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                   xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1, tmp):
    for t in range(t0, t1):  # forward: Y_I = L_t^-1 P Y_I;  Y_B -= QL (XL Y_I)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        if not symmetric:
            _swap_rows(X, i0, s, piv, c0, c1, True)
        _block_lower(diag, doff[t], s, X, i0, not symmetric, c0, c1)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kL[t]
        if b and k:
            if xloff[t + 1] == xloff[t]:
                _copy_rows(X, i0, k, c0, c1, tmp)
            else:
                _gather(XL, xloff[t], s, 1, k, s, bidx, 0, i0, True, X, c0, c1, tmp)
            _scatter(QL, qloff[t], k, 1, k, b, bidx, b0, 0, False, X, c0, c1, tmp)


@numba.njit(cache=True, nogil=True)
def _block_backward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                    xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1, tmp):
    for t in range(t1 - 1, t0 - 1, -1):  # backward: X_I = U_t^-1 (Y_I - G_U X_B)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        b0 = boff[t]
        b = boff[t + 1] - b0
        if symmetric:  # G_U = G_L^T = XL^T QL^T
            k = kL[t]
            if b and k:
                _gather(QL, qloff[t], 1, k, k, b, bidx, b0, 0, False, X, c0, c1, tmp)
                if xloff[t + 1] == xloff[t]:
                    _sub_rows(X, i0, k, c0, c1, tmp)
                else:
                    _scatter(XL, xloff[t], 1, s, k, s, bidx, 0, i0, True, X, c0, c1, tmp)
            _block_lower_transposed(diag, doff[t], s, X, i0, False, c0, c1)
        else:  # G_U = XU QU
            k = kU[t]
            if b and k:
                _gather(QU, quoff[t], b, 1, k, b, bidx, b0, 0, False, X, c0, c1, tmp)
                if xuoff[t + 1] == xuoff[t]:
                    _sub_rows(X, i0, k, c0, c1, tmp)
                else:
                    _scatter(XU, xuoff[t], k, 1, k, s, bidx, 0, i0, True, X, c0, c1, tmp)
            _block_upper(diag, doff[t], s, X, i0, c0, c1)


@numba.njit(cache=True, nogil=True)
def _block_forward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
                              qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1,
                              tmp):
    for t in range(t0, t1):  # U^T W = X: W_I = U_t^-T X_I;  X_B -= G_U^T W_I = QU^T (XU^T W_I)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        _block_upper_transposed(diag, doff[t], s, X, i0, c0, c1)
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kU[t]
        if b and k:
            if xuoff[t + 1] == xuoff[t]:
                _copy_rows(X, i0, k, c0, c1, tmp)
            else:
                _gather(XU, xuoff[t], 1, k, k, s, bidx, 0, i0, True, X, c0, c1, tmp)
            _scatter(QU, quoff[t], 1, b, k, b, bidx, b0, 0, False, X, c0, c1, tmp)


@numba.njit(cache=True, nogil=True)
def _block_backward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
                               qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1,
                               tmp):
    for t in range(t1 - 1, t0 - 1, -1):  # L^T V = W: V_I = P^T L_t^-T (W_I - G_L^T V_B)
        i0 = ptr[t]
        s = ptr[t + 1] - i0
        b0 = boff[t]
        b = boff[t + 1] - b0
        k = kL[t]
        if b and k:
            _gather(QL, qloff[t], 1, k, k, b, bidx, b0, 0, False, X, c0, c1, tmp)
            if xloff[t + 1] == xloff[t]:
                _sub_rows(X, i0, k, c0, c1, tmp)
            else:
                _scatter(XL, xloff[t], 1, s, k, s, bidx, 0, i0, True, X, c0, c1, tmp)
        _block_lower_transposed(diag, doff[t], s, X, i0, True, c0, c1)
        _swap_rows(X, i0, s, piv, c0, c1, False)


@numba.njit(cache=True, nogil=True)
def _block_half(first, transposed, symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
                qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1, tmp):
    if first and transposed:
        _block_forward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL,
                                  qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X, c0,
                                  c1, tmp)
    elif first:
        _block_forward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                       xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1, tmp)
    elif transposed:
        _block_backward_transposed(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv,
                                   kL, qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X,
                                   c0, c1, tmp)
    else:
        _block_backward(symmetric, t0, t1, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                        xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1, tmp)


@numba.njit(cache=True, nogil=True, parallel=True)
def substitute_block(symmetric, transposed, ptr, boff, bidx, doff, diag, piv, kL, qloff, QL,
                     xloff, XL, kU, xuoff, XU, quoff, QU, X, width):
    """In place, X C-ordered (N, m): ``X <- M X`` (``M^T X``), ``width`` columns a pass.

    One pass over the nodes per chunk of ``width`` columns; the chunks run in
    parallel.
    """
    T = ptr.size - 1
    kmax = 1
    for t in range(T):
        kmax = max(kmax, kL[t], kU[t])
    m = X.shape[1]
    n_chunks = (m + width - 1) // width
    for chunk in numba.prange(n_chunks):
        c0 = chunk * width
        c1 = min(m, c0 + width)
        tmp = np.empty((kmax, c1 - c0))
        for first in (True, False):
            _block_half(first, transposed, symmetric, 0, T, ptr, boff, bidx, doff, diag, piv,
                        kL, qloff, QL, xloff, XL, kU, xuoff, XU, quoff, QU, X, c0, c1, tmp)
