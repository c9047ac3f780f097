"""Leaf-block extraction and the classical initializations of the learned LU.

All functions work on the permuted, padded matrix (``N = M * P``).
"""

import numpy as np
import scipy.sparse as sp

from ._compress import far_part, reverse_leaves

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
    M = diag.shape[0]
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


class ExactBlockFactors:
    """Exact block LU ``A = L_blk U_blk`` (unit block lower, block upper).

    Built from a pointwise LU without pivoting, ``A = L U`` (L unit lower): with
    ``L_d = blockdiag(L_ii)``, ``L_blk = L L_d^-1`` and ``U_blk = L_d U``.
    ``init='exact_compressed'`` takes its near field as is and compresses
    the rest (:mod:`learned_precond._compress`).

    Attributes
    ----------
    S : (M, P, P)
        Diagonal blocks of ``U_blk`` (the exact Schur complements).
    L_sub : (M-1, P, P)
        Sub-diagonal blocks of ``L_blk``.
    U_sup : (M-1, P, P)
        Super-diagonal blocks of ``U_blk``.
    """

    def __init__(self, L, U, M, P):
        self.M, self.P = M, P
        self._L, self._U = L, U
        Ld, L_sub_raw, _ = block_tridiagonal(L, M, P)
        Ud, _, U_sup_raw = block_tridiagonal(U, M, P)
        self._Ld = Ld
        self._Ld_inv = np.linalg.inv(Ld)
        self.S = Ld @ Ud
        self.L_sub = L_sub_raw @ self._Ld_inv[:-1] if M > 1 else L_sub_raw
        self.U_sup = Ld[:-1] @ U_sup_raw if M > 1 else U_sup_raw

    def far_L(self):
        """The part of ``L_blk`` the GFMM bridges carry (``_compress.far_part``), sparse."""
        return far_part(sp.csr_array(self._L) @ _block_diag(self._Ld_inv), self.P)

    def far_U_reversed(self):
        """The same for ``U_blk`` with its leaf blocks in reversed order (block lower)."""
        U_blk = _block_diag(self._Ld) @ sp.csr_array(self._U)
        return far_part(reverse_leaves(U_blk, self.M, self.P), self.P)


def exact_block_factors(A, M, P):
    """Pointwise LU of the permuted, padded ``A`` without pivoting, or None.

    Sparse ``A``: SuperLU with the natural column order and diagonal pivots
    only (``diag_pivot_thresh=0``), so the factors keep the tree ordering.
    Dense ``A``: right-looking blocked elimination without pivoting. Returns
    None when a pivot is zero or not finite (the caller falls back to the
    block tridiagonal initialization).
    """
    from scipy.sparse.linalg import splu

    with np.errstate(all="raise"):
        try:
            if sp.issparse(A):
                lu = splu(sp.csc_array(A), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                          options={"SymmetricMode": True})
                n = A.shape[0]
                if not (np.array_equal(lu.perm_r, np.arange(n))
                        and np.array_equal(lu.perm_c, np.arange(n))):
                    return None
                L, U = sp.csr_array(lu.L), sp.csr_array(lu.U)
            else:
                L, U = _dense_lu_nopivot(np.array(A, dtype=np.float64), P)
        except (RuntimeError, FloatingPointError, np.linalg.LinAlgError):
            return None
    diag = U.diagonal() if sp.issparse(U) else np.diag(U)
    if not np.all(np.isfinite(diag)) or np.any(diag == 0):
        return None
    try:
        return ExactBlockFactors(L, U, M, P)
    except np.linalg.LinAlgError:
        return None


def _dense_lu_nopivot(A, P):
    n = A.shape[0]
    for k in range(0, n, P):
        e = min(k + P, n)
        # Unblocked LU of the diagonal block, then the panel and the update.
        for j in range(k, e):
            if A[j, j] == 0:
                raise np.linalg.LinAlgError("zero pivot")
            A[j + 1:e, j] /= A[j, j]
            A[j + 1:e, j + 1:e] -= np.outer(A[j + 1:e, j], A[j, j + 1:e])
        if e < n:
            Lkk = np.tril(A[k:e, k:e], -1) + np.eye(e - k)
            Ukk = np.triu(A[k:e, k:e])
            A[k:e, e:] = np.linalg.solve(Lkk, A[k:e, e:])
            A[e:, k:e] = np.linalg.solve(Ukk.T, A[e:, k:e].T).T
            A[e:, e:] -= A[e:, k:e] @ A[k:e, e:]
    return np.tril(A, -1) + np.eye(n), np.triu(A)


def _block_diag(blocks):
    """Sparse block diagonal matrix of ``blocks`` (shape (M, P, P))."""
    M, P, _ = blocks.shape
    return sp.bsr_array((blocks, np.arange(M), np.arange(M + 1)), shape=(M * P, M * P)).tocsr()
