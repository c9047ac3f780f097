"""The plain numpy reference of the hierarchical substitution (tests only)."""

import numpy as np

__all__ = ["solve_reference"]


def solve_reference(factors, y, *, transposed=False):
    """Plain numpy loop over the nodes: ``M y`` (or ``M^T y``), tree numbering.

    The reference the compiled kernel is tested against.
    """
    f = factors
    x = np.array(y, dtype=np.float64)
    T = f.n_nodes

    def blocks(t):
        i0, i1 = f.ptr[t], f.ptr[t + 1]
        s = i1 - i0
        bnd = f.bidx[f.boff[t]:f.boff[t + 1]]
        b, kl, ku = bnd.size, f.kL[t], f.kU[t]
        D = f.diag[f.doff[t]:f.doff[t + 1]].reshape(s, s)
        XL = f.XL[f.xloff[t]:f.xloff[t + 1]]
        XL = np.eye(s) if XL.size == 0 and kl else XL.reshape(kl, s)
        GL = f.QL[f.qloff[t]:f.qloff[t + 1]].reshape(b, kl) @ XL
        if f.symmetric:
            GU = GL.T
        else:
            XU = f.XU[f.xuoff[t]:f.xuoff[t + 1]]
            XU = np.eye(s) if XU.size == 0 and ku else XU.reshape(s, ku)
            GU = XU @ f.QU[f.quoff[t]:f.quoff[t + 1]].reshape(ku, b)
        Pm = np.eye(s)
        for i, p in enumerate(f.piv[i0:i1]):
            Pm[[i, p]] = Pm[[p, i]]
        if f.symmetric:
            Lt, Ut = D, D.T
        else:
            Lt = np.tril(D, -1) + np.eye(s)
            Ut = np.triu(D)
        return slice(i0, i1), bnd, Lt, Ut, Pm, GL, GU

    if not transposed:
        for t in range(T):
            I, bnd, Lt, _, Pm, GL, _ = blocks(t)
            x[I] = np.linalg.solve(Lt, Pm @ x[I])
            x[bnd] -= GL @ x[I]
        for t in range(T - 1, -1, -1):
            I, bnd, _, Ut, _, _, GU = blocks(t)
            x[I] = np.linalg.solve(Ut, x[I] - GU @ x[bnd])
    else:
        for t in range(T):
            I, bnd, _, Ut, _, _, GU = blocks(t)
            x[I] = np.linalg.solve(Ut.T, x[I])
            x[bnd] -= GU.T @ x[I]
        for t in range(T - 1, -1, -1):
            I, bnd, Lt, _, Pm, GL, _ = blocks(t)
            x[I] = Pm.T @ np.linalg.solve(Lt.T, x[I] - GL.T @ x[bnd])
    return x
