r"""HODLR factorization of a dense matrix: the dense layout's start.

A dense ``A`` (a kernel matrix with coordinates) is ordered by a coordinate
bisection tree (split at the median of the widest coordinate, down to
leaves of ``leaf_size`` points). At a node with children 1 and 2, in that
order,

.. math:: A_\tau = \begin{bmatrix} A_1 & U_1 V_2^T \\ U_2 V_1^T & A_2 \end{bmatrix}
          = D + U V^T,

the diagonal blocks recursively so, the leaves dense (near field), the two
off-diagonal blocks low rank (far field): each compressed from the entries
of ``A`` by a randomized range finder and truncated to the singular values
above ``tol`` times its largest (capped by ``rank``). For symmetric ``A``
only ``A_12 = P Q^T`` is compressed and ``A_21 = Q P^T``.

The solve is the nested Woodbury formula: with ``Y_c = A_c^{-1} U_c`` (the
children's solves of their bases, computed once at setup) and the small
``C = I + V^T D^{-1} U`` factored,

.. math:: A_\tau^{-1} b = z - \operatorname{diag}(Y_1, Y_2)\, C^{-1} V^T z,
          \qquad z = D^{-1} b,

``O(N k log N)`` work per vector, ``O(N k^2 log^2 N)`` setup for ranks
``k``, and ``O(N k log N)`` memory; nothing ``N x N`` is formed beyond the
user's ``A`` (blocks are gathered from it in row chunks into one reused
buffer). The transposed solve runs the same pieces top down:
``A_\tau^{-T} b = D^{-T}(b - V C^{-T} Y^T b)``.

**Symmetric positive definite A.** The leaves are factored by Cholesky, and
the approximation stays positive definite exactly when, at every node,
``G = P^T A_1^{-1} P`` and ``H = Q^T A_2^{-1} Q`` have ``lambda_max(G H) <
1`` (``A_tau``'s Schur complement ``A_2 - Q G Q^T`` is then positive
definite). Both are ``k x k`` products of quantities the setup has. A node that fails
says the tolerance is too loose for this matrix, not for that node alone:
the whole tree is rebuilt at a ten times smaller tolerance (up to
:data:`SPD_RETRIES` times; only the exact, dense leaves are kept) before
:class:`numpy.linalg.LinAlgError` is raised (the caller then falls back to
the nonsymmetric solve). So a symmetric result is SPD by construction, valid
for CG, and every node of it is truncated at the same tolerance. (Rebuilding
only the failing node's subtree left the subtrees that passed at the loose
tolerance: on the 16384-point exponential kernel that gave 13 CG
iterations where the uniform tree gives 5, and rebuilding every failing
subtree in turn built each node three times.)
"""

import time

import numpy as np
import scipy.linalg as sla

__all__ = ["HODLRFactors", "coordinate_tree", "hodlr_factorization", "gather",
           "gather_reference", "SPD_RETRIES"]

#: Tighter rebuilds of a subtree whose approximation lost definiteness.
SPD_RETRIES = 3
#: ``lambda_max(G H)`` must stay below this at every node (SPD margin).
SPD_MARGIN = 1.0 - 1e-8
#: Power iterations of the randomized range finder, at most (each reads a
#: block twice more; without one the truncation error of a slowly decaying
#: spectrum is far above the singular value it is cut at).
POWER_ITERATIONS = 1
#: Extra sampled columns that measure what the range found misses: when it
#: misses no more than the truncation drops anyway, the power iteration is skipped
#: (the exponential kernel's blocks, whose singular values fall fast: the
#: HODLR setup 5.0 -> 2.8 s at 16384 points, the same CG iterations).
TEST_VECTORS = 4
#: Oversampling of the randomized range finder.
OVERSAMPLE = 10
#: Entries of the reused gather buffer, at most (512 MiB of float64): a block
#: that fits is gathered once for all the passes of its range finder, a
#: larger one in row chunks, once per pass.
BUFFER_ENTRIES = 64 * 2**20

try:
    import numba as _numba
except ImportError:  # pragma: no cover - numba is a dependency
    _numba = None


def gather_reference(A, I, J):
    """``A[I][:, J]`` (the reference for :func:`gather`)."""
    return A[np.ix_(I, J)]


if _numba is not None:
    @_numba.njit(parallel=True, cache=True)
    def _gather_kernel(A, I, J, out):
        for r in _numba.prange(I.shape[0]):
            row = A[I[r]]
            for c in range(J.shape[0]):
                out[r, c] = row[J[c]]


def gather(A, I, J, out=None):
    """``A[I][:, J]`` into ``out`` (a compiled row-parallel gather; numpy without numba)."""
    if out is None:
        out = np.empty((len(I), len(J)), dtype=A.dtype)
    if _numba is None or not A.flags.c_contiguous:
        out[...] = gather_reference(A, I, J)
    else:
        _gather_kernel(A, np.ascontiguousarray(I, dtype=np.int64),
                       np.ascontiguousarray(J, dtype=np.int64), out)
    return out


def coordinate_tree(coords, leaf_size):
    """Bisection of points at the median of their widest coordinate.

    Parameters
    ----------
    coords : ndarray, shape (N, d)
    leaf_size : int
        Leaves hold at most this many points.

    Returns
    -------
    perm : ndarray of int64
        ``perm[k]`` is the original index of the k-th unknown in tree order.
    splits : dict
        ``(lo, hi) -> mid`` for every internal node of the ranges ``[lo, hi)``
        in tree order (children ``[lo, mid)`` and ``[mid, hi)``).
    """
    coords = np.asarray(coords, dtype=np.float64)
    order = np.arange(coords.shape[0])
    splits = {}
    stack = [(0, coords.shape[0])]
    while stack:
        lo, hi = stack.pop()
        if hi - lo <= leaf_size:
            continue
        pts = coords[order[lo:hi]]
        axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
        order[lo:hi] = order[lo:hi][np.argsort(pts[:, axis], kind="stable")]
        mid = lo + (hi - lo) // 2
        splits[(lo, hi)] = mid
        stack += [(lo, mid), (mid, hi)]
    return order, splits


class _Leaf:
    __slots__ = ("n", "factor", "cholesky")

    def __init__(self, D, cholesky):
        self.n = D.shape[0]
        self.cholesky = cholesky
        self.factor = sla.cho_factor(D, lower=True) if cholesky else sla.lu_factor(D)

    def solve(self, B):
        if self.cholesky:
            return sla.cho_solve(self.factor, B)
        return sla.lu_solve(self.factor, B)

    def solve_transposed(self, B):
        if self.cholesky:
            return sla.cho_solve(self.factor, B)
        return sla.lu_solve(self.factor, B, trans=1)

    def entries(self):
        return self.factor[0].size

    def walk(self):
        yield self


class _Node:
    __slots__ = ("n", "n1", "first", "second", "Y1", "Y2", "V1", "V2", "C", "k1")

    def solve(self, B):
        n1, k1 = self.n1, self.k1
        Z = np.empty_like(B)
        Z[:n1] = self.first.solve(B[:n1])
        Z[n1:] = self.second.solve(B[n1:])
        W = sla.lu_solve(self.C, np.vstack([self.V2.T @ Z[n1:], self.V1.T @ Z[:n1]]))
        Z[:n1] -= self.Y1 @ W[:k1]
        Z[n1:] -= self.Y2 @ W[k1:]
        return Z

    def solve_transposed(self, B):
        # A^-T b = D^-T (b - V C^-T Y^T b),  V w = [V1 w2; V2 w1]
        n1, k1 = self.n1, self.k1
        W = sla.lu_solve(self.C, np.vstack([self.Y1.T @ B[:n1], self.Y2.T @ B[n1:]]),
                         trans=1)
        T = B.copy()
        T[:n1] -= self.V1 @ W[k1:]
        T[n1:] -= self.V2 @ W[:k1]
        T[:n1] = self.first.solve_transposed(T[:n1])
        T[n1:] = self.second.solve_transposed(T[n1:])
        return T

    def entries(self):
        arrays = {id(a): a.size for a in (self.Y1, self.Y2, self.V1, self.V2)}
        return sum(arrays.values()) + self.C[0].size

    def walk(self):
        yield self
        yield from self.first.walk()
        yield from self.second.walk()


class HODLRFactors:
    """The HODLR factorization of ``A[perm][:, perm]`` (see the module doc).

    Attributes
    ----------
    n : int
    symmetric : bool
        Cholesky leaves and symmetric couplings: the inverse is SPD.
    stats : dict
        ``n_nodes`` (built, over every attempt), ``n_leaves``, ``max_rank``,
        ``ranks_by_level`` (the largest rank per depth), ``spd_retries`` (whole
        rebuilds at a ten times smaller tolerance), ``power_steps`` (blocks
        whose range finder needed its power step), ``tol`` (the tolerance of
        every node: smaller than asked after SPD rebuilds),
        ``floats_per_unknown``.
    """

    def __init__(self, root, n, symmetric, stats):
        self.root, self.n, self.symmetric, self.stats = root, n, symmetric, stats

    def solve(self, X):
        """``A~^-1 X`` for ``X`` of shape (n,) or (n, k), in tree numbering."""
        X = np.asarray(X, dtype=np.float64)
        out = self.root.solve(X.reshape(self.n, -1))
        return out.reshape(X.shape)

    def solve_transposed(self, X):
        """``A~^-T X``."""
        X = np.asarray(X, dtype=np.float64)
        if self.symmetric:
            return self.solve(X)
        return self.root.solve_transposed(X.reshape(self.n, -1)).reshape(X.shape)

    @property
    def factor_entries(self):
        return int(sum(node.entries() for node in self.root.walk()))

    @property
    def nbytes(self):
        return 8 * self.factor_entries


class _Builder:
    """The recursive setup; holds the options, the gather buffer and the statistics."""

    def __init__(self, A, perm, splits, tol, rank, symmetric, deadline, seed, leaves):
        self.A, self.perm, self.splits = A, perm, splits
        self.leaves = leaves  # (lo, hi) -> _Leaf: exact, so kept across rebuilds
        self.tol, self.rank, self.symmetric = tol, rank, symmetric
        self.deadline = deadline
        self.rng = np.random.default_rng(seed)
        self.buffer = None
        self.cached = None  # (I, J, block) of the block the buffer holds whole
        self.guess = {}     # depth -> last rank found there (the next node's first guess)
        self.nodes = 0
        self.power_steps = 0

    def _check_time(self):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise TimeoutError(f"HODLR factorization passed its time limit after "
                               f"{self.nodes} nodes")

    def _rows(self, I, J):
        """Row chunks ``(start, block)`` of ``A[I][:, J]``, gathered into one buffer."""
        if self.buffer is None:
            # the largest off-diagonal block is (N/2)^2
            self.buffer = np.empty(min(BUFFER_ENTRIES, (len(self.perm) + 1) ** 2 // 4))
        if self.cached is not None and self.cached[0] is I and self.cached[1] is J:
            yield 0, self.cached[2]
            return
        step = max(1, self.buffer.size // len(J))
        if step >= len(I):  # the whole block fits: gather it once, keep it
            block = gather(self.A, I, J, self.buffer[:len(I) * len(J)].reshape(len(I), len(J)))
            self.cached = (I, J, block)
            yield 0, block
            return
        self.cached = None  # the chunks overwrite the buffer
        for start in range(0, len(I), step):
            rows = I[start:start + step]
            block = self.buffer[:len(rows) * len(J)].reshape(len(rows), len(J))
            yield start, gather(self.A, rows, J, block)

    def compress(self, I, J, depth, tol):
        """``A[I][:, J] ~ P Q^T``, the singular values above ``tol`` times the largest."""
        n1, n2 = len(I), len(J)
        cap = min(n1, n2) if self.rank is None else min(self.rank, n1, n2)
        # first guess: the last rank at this depth, else twice the children's
        # (a block twice the size; found once instead of by doubling from 24)
        guess = self.guess.get(depth, 2 * self.guess.get(depth + 1, 12))
        k = min(cap, max(8, int(1.2 * guess)))
        while True:
            p = min(k + OVERSAMPLE, n1, n2)
            # p columns for the range, TEST_VECTORS more to measure what it misses
            t = TEST_VECTORS if p < min(n1, n2) else 0
            omega = self.rng.standard_normal((n2, p + t))
            Y = np.empty((n1, p + t))
            for start, block in self._rows(I, J):
                Y[start:start + block.shape[0]] = block @ omega
            Y, test = Y[:, :p], Y[:, p:]
            Qb, _ = np.linalg.qr(Y)
            power = 0
            while True:
                Z = np.zeros((p, n2))
                for start, block in self._rows(I, J):
                    Z += Qb[start:start + block.shape[0]].T @ block
                Us, s, Vt = np.linalg.svd(Z, full_matrices=False)
                if power == POWER_ITERATIONS or (power == 0 and t and _captured(
                        Qb, test, _truncation_error(s, tol))):
                    break
                power += 1
                self.power_steps += 1
                Zq, _ = np.linalg.qr(Z.T)  # one power step: the range of B B^T Qb
                for start, block in self._rows(I, J):
                    Y[start:start + block.shape[0]] = block @ Zq
                Qb, _ = np.linalg.qr(Y)
            r = int(np.count_nonzero(s > tol * s[0])) if s.size and s[0] > 0 else 0
            if r <= p - OVERSAMPLE // 2 or k >= cap or p >= min(n1, n2):
                r = min(r, cap)
                self.guess[depth] = max(r, 1)
                return (Qb @ Us[:, :r]) * s[:r], Vt[:r].T
            k = min(cap, 2 * k)

    def build(self, lo, hi, depth=0):
        """The factors of ``[lo, hi)``; :class:`_TooLoose` when a node loses definiteness."""
        self._check_time()
        self.nodes += 1
        I = self.perm[lo:hi]
        if (lo, hi) not in self.splits:
            if (lo, hi) not in self.leaves:
                self.leaves[(lo, hi)] = _Leaf(gather(self.A, I, I), self.symmetric)
            return self.leaves[(lo, hi)]
        mid = self.splits[(lo, hi)]
        node = _Node()
        node.n, node.n1 = hi - lo, mid - lo
        node.first = self.build(lo, mid, depth + 1)
        node.second = self.build(mid, hi, depth + 1)
        I1, I2 = self.perm[lo:mid], self.perm[mid:hi]
        U1, V2 = self.compress(I1, I2, depth, self.tol)
        U2, V1 = (V2, U1) if self.symmetric else self.compress(I2, I1, depth, self.tol)
        Y1, Y2 = node.first.solve(U1), node.second.solve(U2)
        if self.symmetric and not _keeps_definite(U1, Y1, V2, Y2):
            raise _TooLoose(hi - lo)
        k1, k2 = U1.shape[1], U2.shape[1]
        C = np.eye(k1 + k2)
        C[:k1, k1:] = V2.T @ Y2
        C[k1:, :k1] = V1.T @ Y1
        node.C = sla.lu_factor(C, check_finite=True)
        if np.any(np.abs(np.diag(node.C[0])) <= 1e-14 * max(1.0, np.abs(C).max())):
            raise np.linalg.LinAlgError(
                f"the Woodbury capacitance matrix of a node of {hi - lo} unknowns is "
                f"singular")
        node.Y1, node.Y2, node.V1, node.V2, node.k1 = Y1, Y2, V1, V2, k1
        return node


class _TooLoose(Exception):
    """A node of this many unknowns lost definiteness at the builder's tolerance."""


def _truncation_error(s, tol):
    """What the truncation of singular values ``s`` at ``tol * s[0]`` drops (Frobenius),
    at least that cut itself."""
    if not s.size:
        return 0.0
    r = int(np.count_nonzero(s > tol * s[0]))
    return max(float(np.sqrt(np.sum(s[r:] ** 2))), tol * float(s[0]))


def _captured(Qb, test, cut):
    """Whether the range ``Qb`` misses at most ``cut`` of the block ``B``:
    ``test = B omega`` for Gaussian ``omega`` independent of ``Qb``, so each
    ``|(I - Qb Qb^T) B omega_i|`` estimates ``|(I - Qb Qb^T) B|_F``; all of
    them must be at most ``cut``. With ``cut`` the truncation's own error
    (:func:`_truncation_error`), a power step could lower the final error by
    at most sqrt(2)."""
    if not test.shape[1] or not cut > 0:
        return False
    miss = test - Qb @ (Qb.T @ test)
    return float(np.max(np.linalg.norm(miss, axis=0))) <= cut


def _keeps_definite(P, Y1, Q, Y2):
    """``lambda_max(G H) < 1`` for ``G = P^T Y1``, ``H = Q^T Y2`` (the Schur test)."""
    if P.shape[1] == 0:
        return True
    G = P.T @ Y1
    H = Q.T @ Y2
    w, V = np.linalg.eigh((G + G.T) / 2)
    if w.min() < -1e-10 * max(w.max(), 1e-300):
        return False  # A_1^-1 is not positive definite on P's range
    root = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    return float(np.linalg.eigvalsh(root @ ((H + H.T) / 2) @ root).max()) < SPD_MARGIN


def hodlr_factorization(A, coords, *, leaf_size=256, tol=1e-2, rank=None, symmetric=False,
                        time_limit=None, seed=0):
    """HODLR factors of the dense ``A`` ordered by ``coords`` (see the module doc).

    Parameters
    ----------
    A : ndarray, shape (N, N)
        C-contiguous float64 (other layouts are gathered with numpy).
    coords : ndarray, shape (N, d)
        The points of the unknowns.
    leaf_size : int
        Largest dense diagonal block.
    tol : float
        Relative truncation of each off-diagonal block (``0``: exact).
    rank : int, optional
        Cap on every off-diagonal rank.
    symmetric : bool
        Symmetric couplings and Cholesky leaves (SPD ``A``); raises
        :class:`numpy.linalg.LinAlgError` when a leaf is not positive definite or
        a node stays indefinite after :data:`SPD_RETRIES` tighter compressions.
    time_limit : float, optional
        Seconds; :class:`TimeoutError` past it.

    Returns
    -------
    perm : ndarray
        Tree order (``perm[k]``: original index).
    factors : HODLRFactors
    """
    t0 = time.perf_counter()
    n = A.shape[0]
    perm, splits = coordinate_tree(coords, leaf_size)
    deadline = None if time_limit is None else t0 + time_limit
    leaves, retries, nodes, power_steps = {}, 0, 0, 0
    while True:
        builder = _Builder(A, perm, splits, tol, rank, symmetric, deadline, seed, leaves)
        try:
            root = builder.build(0, n)
        except _TooLoose as exc:
            nodes += builder.nodes
            power_steps += builder.power_steps
            if retries == SPD_RETRIES or tol == 0:
                raise np.linalg.LinAlgError(
                    f"the HODLR approximation is not positive definite at a node of "
                    f"{exc.args[0]} unknowns even at tolerance {tol:.1e}") from None
            retries += 1
            tol = tol / 10
            continue
        nodes += builder.nodes
        power_steps += builder.power_steps
        break
    factors = HODLRFactors(root, n, symmetric, {})
    entries = factors.factor_entries
    ranks = {}
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _Node):
            ranks[depth] = max(ranks.get(depth, 0), node.k1, node.Y2.shape[1])
            stack += [(node.first, depth + 1), (node.second, depth + 1)]
    factors.stats = {
        "seconds": time.perf_counter() - t0,
        "n_nodes": nodes,
        "n_leaves": len(splits) + 1,
        "max_rank": max(ranks.values(), default=0),
        "ranks_by_level": [ranks[d] for d in sorted(ranks)],
        "spd_retries": retries,
        "power_steps": power_steps,
        "tol": tol,
        "floats_per_unknown": entries / n,
        "leaf_size": int(leaf_size),
    }
    return perm, factors
