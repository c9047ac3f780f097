"""Leaf-block extraction and the classical initializations of the learned LU.

All functions work on the permuted, padded matrix (``N = M * P``).
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["block_tridiagonal", "block_tridiagonal_lu", "probe_block_tridiagonal"]


def block_tridiagonal(A, M, P):
    """Dense diagonal, sub- and super-diagonal leaf blocks of ``A``.

    Returns
    -------
    diag : (M, P, P)
    sub : (M-1, P, P), ``sub[i-1] = A[i, i-1]``
    sup : (M-1, P, P), ``sup[i] = A[i, i+1]``
    """
    diag = np.zeros((M, P, P))
    sub = np.zeros((max(M - 1, 0), P, P))
    sup = np.zeros((max(M - 1, 0), P, P))
    if sp.issparse(A):
        C = sp.coo_array(A)
        rb, cb = C.row // P, C.col // P
        rr, cc = C.row % P, C.col % P
        for target, offset, first in ((diag, 0, 0), (sub, -1, 1), (sup, 1, 0)):
            sel = cb - rb == offset
            np.add.at(target, (rb[sel] - first, rr[sel], cc[sel]), C.data[sel])
        return diag, sub, sup
    Ab = np.asarray(A).reshape(M, P, M, P)
    idx = np.arange(M)
    diag[:] = Ab[idx, :, idx, :]
    if M > 1:
        sub[:] = Ab[idx[1:], :, idx[:-1], :]
        sup[:] = Ab[idx[:-1], :, idx[1:], :]
    return diag, sub, sup


def probe_block_tridiagonal(apply_A, M, P):
    """Estimate the block tridiagonal part of an operator from ``3 P`` products.

    Leaves are colored ``i mod 3``; a probe puts unit vector ``e_j`` in every
    leaf of one color, so each output block row sees its own diagonal block and
    its two neighbours exactly, plus couplings to leaves three or more apart
    (zero for a block tridiagonal operator).
    """
    diag = np.zeros((M, P, P))
    sub = np.zeros((max(M - 1, 0), P, P))
    sup = np.zeros((max(M - 1, 0), P, P))
    leaves = np.arange(M)
    for color in range(3):
        Z = np.zeros((M, P, P))
        on = leaves % 3 == color
        Z[on] = np.eye(P)
        Y = apply_A(Z.reshape(M * P, P)).reshape(M, P, P)
        for i in np.flatnonzero(on):
            diag[i] = Y[i]
            if i + 1 < M:
                sub[i] = Y[i + 1]
            if i >= 1:
                sup[i - 1] = Y[i - 1]
    return diag, sub, sup


def block_tridiagonal_lu(diag, sub, sup, *, max_cond=1e12):
    """Exact block LU of a block tridiagonal matrix (no pivoting across blocks).

    ``S_0 = A_00``, ``S_i = A_ii - A_(i,i-1) S_(i-1)^-1 A_(i-1,i)``;
    ``L`` has identity diagonal blocks and ``E_i = A_(i,i-1) S_(i-1)^-1``,
    ``U`` has diagonal blocks ``S_i`` and super-diagonal blocks ``A_(i,i+1)``.

    Returns
    -------
    S : (M, P, P)
    L_sub : (M-1, P, P)
    ok : bool
        False when some ``S_i`` had condition number above ``max_cond`` (the
        recursion then restarts from ``A_ii`` at that block, i.e. it drops the
        coupling, and the caller should report it).
    """
    M, P = diag.shape[0], diag.shape[1]
    S = np.empty_like(diag)
    L_sub = np.zeros_like(sub)
    S[0] = diag[0]
    ok = True
    for i in range(1, M):
        prev = S[i - 1]
        if np.linalg.cond(prev) > max_cond:
            ok = False
            S[i] = diag[i]
            continue
        L_sub[i - 1] = np.linalg.solve(prev.T, sub[i - 1].T).T
        S[i] = diag[i] - L_sub[i - 1] @ sup[i - 1]
    if np.linalg.cond(S[-1]) > max_cond:
        ok = False
    return S, L_sub, ok
