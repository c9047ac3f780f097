"""The compressed multifrontal factorization on a nested-dissection tree.

See the package docstring (:mod:`learned_precond._hierarchical`) for the
fronts, the truncation of the fill and why the Cholesky variant stays SPD.
"""

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .fronts import assemble, copy_upper, eliminate_small, symbolic
from .kernels import substitute, substitute_block, substitute_range
from .tree import subtree_starts

__all__ = ["BLOCK_WIDTH", "FactorizationPlan", "HierarchicalFactors",
           "factorization_plan", "hierarchical_factorization"]

#: Columns per pass of the blocked substitution: wide enough that each factor
#: entry read serves many columns, narrow enough that a pass's rows stay in
#: cache; wider blocks are split into chunks that run in parallel.
BLOCK_WIDTH = 64


@dataclass
class HierarchicalFactors:
    """Packed compressed multifrontal factors (tree numbering).

    Per node ``t`` (post-order): ``s_t = ptr[t+1] - ptr[t]`` own unknowns,
    ``b_t`` boundary unknowns ``bidx[boff[t]:boff[t+1]]``, ranks ``kL_t``,
    ``kU_t``. Flat float arrays, row-major per node:

    - ``diag[doff[t]:]``: the ``s x s`` LU of ``F_II`` (unit L below, U on and
      above the diagonal; for ``symmetric``: the Cholesky factor C, lower);
      ``piv`` the row interchanges inside the block (LAPACK order, 0-based).
    - ``QL`` (``b x kL``), ``XL`` (``kL x s``): ``G_L ~ QL XL``.
    - ``XU`` (``s x kU``), ``QU`` (``kU x b``): ``G_U ~ XU QU`` (absent when
      ``symmetric``: ``G_U = G_L^T``).

    The five float arrays are float64, or float32 (:meth:`astype`) for
    storage: the substitution reads them in either and computes in double.
    """

    n: int
    symmetric: bool
    ptr: np.ndarray
    boff: np.ndarray
    bidx: np.ndarray
    doff: np.ndarray
    diag: np.ndarray
    piv: np.ndarray
    kL: np.ndarray
    qloff: np.ndarray
    QL: np.ndarray
    xloff: np.ndarray
    XL: np.ndarray
    kU: np.ndarray
    xuoff: np.ndarray
    XU: np.ndarray
    quoff: np.ndarray
    QU: np.ndarray
    #: :meth:`substitution_steps`, once computed (not part of the factors' state)
    _steps: np.ndarray = field(default=None, init=False, repr=False, compare=False)

    _FIELDS = ("ptr", "boff", "bidx", "doff", "diag", "piv", "kL", "qloff", "QL", "xloff",
               "XL", "kU", "xuoff", "XU", "quoff", "QU")

    #: The floating-point arrays (the rest are integer structure).
    _FLOAT_FIELDS = ("diag", "QL", "XL", "XU", "QU")

    @property
    def n_nodes(self):
        return self.ptr.size - 1

    @property
    def dtype(self):
        """Storage precision of the factors (the substitution accumulates in double)."""
        return self.diag.dtype

    def astype(self, dtype):
        """The same factors stored in ``dtype`` (float64 or float32): a new object."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float64, np.float32):
            raise ValueError(f"factors are stored in float64 or float32, not {dtype}")
        fields = {f: getattr(self, f) for f in self._FIELDS}
        for f in self._FLOAT_FIELDS:
            fields[f] = fields[f].astype(dtype)
        out = HierarchicalFactors(n=self.n, symmetric=self.symmetric, **fields)
        # the substitution schedule depends on the structure only, which is shared
        out._steps = self._steps
        return out

    @property
    def nbytes(self):
        return int(sum(getattr(self, f).nbytes for f in self._FIELDS))

    @property
    def factor_entries(self):
        """Stored floating-point entries (dense blocks counted in full)."""
        return int(self.diag.size + self.QL.size + self.XL.size + self.XU.size
                   + self.QU.size)

    def ranks(self):
        """Per node: (own size, boundary size, rank of G_L, rank of G_U)."""
        s = np.diff(self.ptr)
        b = np.diff(self.boff)
        return s, b, self.kL.copy(), (self.kL if self.symmetric else self.kU).copy()

    def _arrays(self):
        return tuple(getattr(self, f) for f in self._FIELDS)

    def solve(self, Y):
        """``M Y`` for ``Y`` of shape (N,) or (N, k), tree numbering.

        The k columns of an (N, k) ``Y`` go through one blocked substitution
        (one pass over the nodes per chunk of :data:`BLOCK_WIDTH` columns).
        """
        return self._substitute(Y, transposed=False)

    def solve_transposed(self, Y):
        """``M^T Y``: the same loops on the transposed factors."""
        return self._substitute(Y, transposed=not self.symmetric)

    def substitution_steps(self):
        """The two-thread schedule of a one-pass substitution (one vector, or
        up to :data:`BLOCK_WIDTH` columns; :func:`_substitute_split`), or
        None when one thread does as well (computed once)."""
        if self._steps is None:
            self._steps = _substitution_steps(self)
        return self._steps if self._steps.size else None

    def _substitute(self, Y, transposed):
        Y = np.asarray(Y, dtype=np.float64)
        vec = Y.ndim == 1
        Y = Y.reshape(self.n, -1)
        symmetric = self.symmetric and not transposed
        X = np.array(Y, dtype=np.float64, order="C")
        # Up to BLOCK_WIDTH columns are one pass over the nodes: on two
        # threads, two ranges of subtrees side by side; wider blocks run
        # their chunks in parallel instead.
        steps = (self.substitution_steps()
                 if numba.get_num_threads() >= 2 and X.shape[1] <= BLOCK_WIDTH else None)
        if steps is not None:
            _substitute_split(symmetric, transposed, steps, self._arrays(), X)
        elif X.shape[1] == 1:
            # One column: the vector kernel (row operations over one column
            # would pay the loop overhead of the blocked kernel for nothing).
            substitute(symmetric, transposed, *self._arrays(), X.reshape(-1))
        else:
            substitute_block(symmetric, transposed, *self._arrays(), X, BLOCK_WIDTH)
        return X[:, 0] if vec else X


# Couplings with fewer entries (8 KiB) are stored dense: a truncation cannot
# save enough there to pay for its SVD. On 2-D Poisson at N = 65536, 2117 of
# the 3000 SVDs of blocks this small kept the block dense anyway; skipping
# them all costs 1.5% more factor memory and saves a fifth of the start.
DENSE_ENTRIES = 1024


#: From this ``tol`` up, :func:`_row_space` takes the eigenvectors of the Gram
#: matrix rather than an SVD: its eigenvalues carry ``sigma^2`` to about
#: ``eps * sigma_1^2``, so singular values are resolved down to ~1e-8
#: ``sigma_1``, far below the cut. 2.4x faster than the SVD on elasticity's
#: couplings (median 72 x 28), which were a third of the factorization.
GRAM_MIN_TOL = 1e-6


#: Gram matrices of at least this order get their leading eigenpairs from a
#: randomized subspace iteration (:func:`_gram_eigh`) instead of a full,
#: O(n^3), ``eigh``, ...
RANDOMIZED_MIN = 1000
#: ... starting from this many columns, doubled until the cut is inside the
#: subspace with :data:`OVERSAMPLE` columns to spare (beyond ``n / 3``
#: columns the full ``eigh`` is about as cheap and is used). 3-D Poisson at
#: 64^3: its three Gram matrices of order 1000-2000 took 1.36 s in ``eigh``,
#: 0.58 s so; the 14 of order 384-1000 would not gain (ranks near n / 4).
RANDOMIZED_START = 128
OVERSAMPLE = 10


def _gram_eigh(H, tol, max_rank):
    """Eigenpairs of the Gram matrix ``H`` (n x n, PSD), descending, that
    :func:`_row_space`'s cut needs: all of them, or (``n >=``
    :data:`RANDOMIZED_MIN`) the leading ``l`` from a randomized subspace
    iteration once fewer than ``l - OVERSAMPLE`` of them are above
    ``tol^2`` times the largest (or ``max_rank`` is reached).

    The subspace is ``H^2 Omega`` orthonormalized (one step of subspace
    iteration: its vectors carry ``sigma^4``, so at ``tol = 1e-2`` the
    discarded directions are 1e-8 of the kept ones), the pairs the Ritz
    pairs of ``H`` on it. ``Omega`` is seeded by ``n``: the same matrix
    gives the same truncation every time.
    """
    n = H.shape[0]
    if n >= RANDOMIZED_MIN:
        rng = np.random.default_rng(n)
        l = RANDOMIZED_START
        while 3 * l <= n:
            Q = np.linalg.qr(H @ rng.standard_normal((n, l)).astype(H.dtype, copy=False))[0]
            Q = np.linalg.qr(H @ Q)[0]
            lam, Y = np.linalg.eigh(Q.T @ (H @ Q))
            lam, Y = lam[::-1], Y[:, ::-1]
            k = int(np.count_nonzero(lam > tol * tol * lam[0])) if lam[0] > 0 else 0
            if min(k, max_rank) <= l - OVERSAMPLE:
                return lam, Q @ Y
            l *= 2
    # in double even for a single front's H: LAPACK's float32 eigh is no faster
    # here (n = 512: 40 ms either way), and its vectors are orthonormal to 1e-7
    lam, V = np.linalg.eigh(H.astype(np.float64, copy=False))
    return lam[::-1], V[:, ::-1]


@numba.njit(cache=True, nogil=True)
def _gram_row_space(G, tol, max_rank):
    """Compute :func:`_row_space`'s Gram path in one compiled call.

    For a double, C-ordered ``G`` whose Gram matrix is of order below
    :data:`RANDOMIZED_MIN` (the full ``eigh``): the same steps, without the
    GIL. Two factorization threads otherwise queue for it between their many
    small numpy calls: on 2-D Poisson at N = 65536 two threads took 0.097 s
    against one thread's 0.088 s; with this, 0.063 s (one thread 0.077 s).
    """
    m, n = G.shape
    H = G.T @ G if m >= n else G @ G.T
    lam, V = np.linalg.eigh(H)
    lam = lam[::-1]
    sv = np.sqrt(np.maximum(lam, 0.0))
    if sv.size == 0 or not sv[0] > 0:
        return np.zeros((n, 0)), True
    k = max(1, min(int(np.count_nonzero(sv > tol * sv[0])), max_rank))
    Vk = np.ascontiguousarray(V[:, ::-1][:, :k])
    if m < n:
        Q, _ = np.linalg.qr(G.T @ Vk)
        return np.ascontiguousarray(Q), False
    return Vk, False


def _row_space(G, tol, max_rank, compiled=True):
    """``(W, zero)``: ``W`` (s x k, orthonormal) spans the leading right
    singular vectors of ``G`` (b x s), singular values > ``tol * sigma_1``,
    ``1 <= k <= max_rank``; ``zero`` when ``G`` is zero. ``compiled``: the
    Gram path of a double ``G`` of small order runs in
    :func:`_gram_row_space` (``False``: numpy and LAPACK, the reference)."""
    m, n = G.shape
    gram = tol >= GRAM_MIN_TOL
    if compiled and gram and G.dtype == np.float64 and min(m, n) < RANDOMIZED_MIN:
        try:
            return _gram_row_space(np.ascontiguousarray(G), tol, max_rank)
        except np.linalg.LinAlgError:
            pass  # the numpy path below, with its SVD fallback
    if gram:
        try:
            lam, V = _gram_eigh(G.T @ G if m >= n else G @ G.T, tol, max_rank)
        except np.linalg.LinAlgError:
            gram = False
        else:  # descending; V: right (m >= n) or left singular vectors
            sv = np.sqrt(np.maximum(lam, 0.0))
    if not gram:
        try:
            _, sv, Vt = sla.svd(G, full_matrices=False, check_finite=False,
                                lapack_driver="gesdd")
        except np.linalg.LinAlgError:
            _, sv, Vt = sla.svd(G, full_matrices=False, check_finite=False,
                                lapack_driver="gesvd")
        V = Vt.T
    if sv.size == 0 or not sv[0] > 0:
        return np.zeros((n, 0)), True
    k = max(1, min(int(np.count_nonzero(sv > tol * sv[0])), max_rank))
    if gram and m < n:
        # right singular vectors from the left ones, G^T u / sigma,
        # orthonormal again (to eps / (sigma_k / sigma_1)^2 they are not)
        W = np.linalg.qr(G.T @ V[:, :k])[0]
    else:
        W = V[:, :k]
    if W.dtype != np.float64:
        # a single front's: orthonormal in double (the update's SPD argument,
        # see _truncate, needs W^T W = I, not 1e-7 from it)
        W = np.linalg.qr(W.astype(np.float64))[0]
    return W, False


def _truncate(G, tol, max_rank, keep, dense_entries, compiled=True):
    """``G`` (b x s) as ``Q X``: singular values > tol * sigma_1 kept.

    The kept row space ``W`` (``s x k``, orthonormal) is that of the leading
    singular vectors (:func:`_row_space`), extended by the columns of
    ``keep`` (``s x p``, the probes' directions that must survive, see
    :func:`hierarchical_factorization`); then ``Q = G W`` and ``X = W^T``,
    so ``G X^T X v = G v`` for every ``v`` in ``keep``'s span, and
    ``G G^T - (Q X)(Q X)^T = G (I - W W^T) G^T`` is positive semidefinite
    whatever ``W`` is. Without ``keep`` this is the truncated SVD.

    Returns ``(Q, X)``, or ``(G, None)`` (``X`` = identity) when the
    low-rank form would not be smaller than ``G`` itself.
    """
    m, n = G.shape
    if m == 0 or n == 0:
        return np.zeros((m, 0)), None
    if max_rank >= min(m, n) and (tol <= 0 or m * n <= dense_entries):
        # exact, or too small to pay for the SVD (a rank bound still applies)
        return G, None
    W, zero = _row_space(G, tol, max_rank, compiled)
    if zero:
        return np.zeros((m, 0)), np.zeros((0, n))
    if keep is not None:
        size = float(np.max(np.linalg.norm(keep, axis=0))) if keep.size else 0.0
        if size > 0:
            E = keep - W @ (W.T @ keep)
            Qe, Re, _ = sla.qr(E, mode="economic", pivoting=True, check_finite=False)
            new = int(np.count_nonzero(np.abs(np.diag(Re)) > 1e-6 * size))
            W = np.hstack([W, Qe[:, :new]])
    k = W.shape[1]
    if k * (m + n) >= m * n:
        return G, None
    return G @ W, np.ascontiguousarray(W.T)


_potrf, _trtrs, _getrf = sla.get_lapack_funcs(("potrf", "trtrs", "getrf"),
                                              (np.zeros(1),))
_syrk, _gemm = sla.get_blas_funcs(("syrk", "gemm"), (np.zeros(1),))
_potrf32, _trtrs32, _getrf32, _trcon32 = sla.get_lapack_funcs(
    ("potrf", "trtrs", "getrf", "trcon"), (np.zeros(1, dtype=np.float32),))


#: Fronts that own at least this many unknowns are factored in single
#: precision when ``tol >= FLOAT32_MIN_TOL`` (their LAPACK and BLAS calls run
#: about twice as fast: potrf 0.07 -> 0.04 s, trtrs 0.23 -> 0.12 s and the
#: Gram matrix 0.20 -> 0.10 s on a 1868 x 2800 front of 3-D Poisson, one
#: thread). Their factors are stored, and their updates passed up, in double.
#: 3-D Poisson at 64^3, start (two threads, median of 3 interleaved fits):
#: 7.76 s all double, 7.69 s from 512 (13 fronts), 7.09 s from 256 (29
#: fronts); another run 8.00 / 7.09 / 6.56 s; CG iterations unchanged (5).
FLOAT32_MIN_OWN = 256
#: ... only where the truncation already discards far more than single
#: precision's rounding (the Gram eigenvalues resolve singular values down to
#: about sqrt(eps32) = 2.4e-4 of the largest) ...
FLOAT32_MIN_TOL = 1e-3
#: ... and only when the single-precision triangular factor's reciprocal
#: condition number (LAPACK's 1-norm estimate) is at least this: its
#: rounding, ~eps32 * cond, then stays below 1e-5. Otherwise the front is
#: factored again in double.
FLOAT32_MIN_RCOND = 1e-2


def _factor_single(block, symmetric):
    """Factor a front's ``F_II`` in single precision, or return None.

    ``block`` is ``F_II`` (s x s; only its upper triangle is read when
    ``symmetric``). Returns ``(R, None)`` (Cholesky, ``F_II = R^T R``) or
    ``(lu, piv)`` (LU with partial pivoting), float32; None when the
    factorization fails or is too ill-conditioned for single precision
    (:data:`FLOAT32_MIN_RCOND`): the caller then factors it in double.
    """
    a = np.empty(block.shape, dtype=np.float32, order="F")
    a[...] = block
    if symmetric:
        f, info = _potrf32(a, lower=0, clean=1, overwrite_a=1)
        piv = None
    else:
        f, piv, info = _getrf32(a, overwrite_a=1)
    if info != 0 or not np.isfinite(f[-1, -1]):
        return None
    rcond, info = _trcon32(f, norm="1", uplo="U", diag="N")
    if info != 0 or not rcond >= FLOAT32_MIN_RCOND:
        return None
    return f, piv


def _factor_front(block, symmetric, single):
    """Factor a front's ``F_II``: ``(factor, piv, trtrs)``.

    In single precision when ``single`` and :func:`_factor_single` accepts
    it, else in double (``R`` of ``F_II = R^T R`` with ``piv`` None, or
    LAPACK's ``lu, piv``); ``trtrs`` is the triangular solve of the factor's
    precision. ``factor`` is None when the double factorization fails
    (singular, or not positive definite).
    """
    if single:
        out = _factor_single(block, symmetric)
        if out is not None:
            return (*out, _trtrs32)
    if symmetric:
        R, info = _potrf(block, lower=0, clean=1)
        return (R if info == 0 else None), None, _trtrs
    lu, piv, info = _getrf(block)
    return (lu if info == 0 and np.all(np.isfinite(lu)) else None), piv, _trtrs


def _transposed(X):
    """``(a, trans)`` with ``op(a) = X^T`` for BLAS, ``a`` Fortran-ordered, no copy
    when ``X`` is C- or Fortran-contiguous (``trans``: 0 takes ``a``, 1 its transpose)."""
    if X.flags.f_contiguous:
        return X, 1
    return np.asfortranarray(X.T), 0


def _chol_lower(G):
    """Lower Cholesky factor of the small SPD ``G`` (k x k, ~I here)."""
    return sla.cholesky(G, lower=True, check_finite=False)


def _row_permutation(piv):
    """Rows of ``P X`` for LAPACK's interchanges ``piv`` (0-based, sequential)."""
    order = np.arange(piv.size)
    for i, p in enumerate(piv):
        if p != i:
            order[i], order[p] = order[p], order[i]
    return order


#: Fronts eliminated by the compiled kernel (:mod:`.fronts`) when their
#: couplings stay dense: at most this many own unknowns ...
SMALL_OWN = 96
#: ... and at most this many unknowns in all (own + boundary); larger fronts
#: go to LAPACK, whose blocked kernels win there.
SMALL_FRONT = 384


def _small_nodes(s, b, tol, max_rank, dense_entries):
    """Nodes whose couplings :func:`_truncate` keeps dense, and small enough."""
    dense = ((s == 0) | (b == 0)
             | ((max_rank >= np.minimum(s, b)) & ((tol <= 0) | (s * b <= dense_entries))))
    return dense & (s <= SMALL_OWN) & (s + b <= SMALL_FRONT)


def _new_stack(size):
    """The contribution stack (uninitialized: each update is written before it is
    read; of a symmetric update, only the upper triangle is written or read)."""
    return np.empty(size)


def _work(s, b):
    """A node's elimination cost in flops, roughly: its factorization, the fill
    ``G_L`` and its truncation, the update, and the assembly's entries."""
    s, b = s.astype(np.float64), b.astype(np.float64)
    return s ** 3 / 3 + 2 * s * s * b + b * b * np.minimum(s, b) + 50 * (s + b) ** 2


#: Two ranges run side by side only when that shortens the estimated
#: critical path to at most this share of the sequential work ...
PARALLEL_GAIN = 0.9
#: ... and the work is at least this many flops (about 10 ms: below it,
#: starting the threads costs more than they save).
PARALLEL_MIN_WORK = 2e8


def _split(first, depth, cw, lo=0, max_depth=8, min_work=None):
    """``(x, y)``: once the nodes before ``lo`` are eliminated, nodes
    ``[lo, x)`` and ``[x, y)`` may be eliminated side by side (no node of
    the second needs one of the first: its subtree starts at ``x`` or
    later), then ``[y, T)``.

    Among splits at the first node of a subtree of depth at most
    ``max_depth``, the one with the shortest estimated critical path
    ``max(W[lo, x), W[x, y)) + W[y, T)``, with ``W`` the cumulated
    :func:`_work` ``cw``. None when none shortens it below
    :data:`PARALLEL_GAIN` of ``W[lo, T)``, or when that is under
    ``min_work`` (default :data:`PARALLEL_MIN_WORK`, read at call time).
    """
    T = first.size
    total = cw[T] - cw[lo]
    if total < (PARALLEL_MIN_WORK if min_work is None else min_work):
        return None
    nodes = np.arange(T)
    best, found = PARALLEL_GAIN * total, None
    for x in np.unique(first[(depth <= max_depth) & (first > lo)]).tolist():
        late = np.flatnonzero((nodes >= x) & (first < x))
        y = int(late[0]) if late.size else T
        critical = max(cw[x] - cw[lo], cw[y] - cw[x]) + cw[T] - cw[y]
        if y > x and critical < best:
            best, found = critical, (x, y)
    return found


def _schedule(tree, b, soff, threads):
    """How the nodes are eliminated: ``(groups, soff, stack size)``.

    ``groups`` is a list of steps, each a list of node ranges ``(lo, hi)``
    run at the same time (one worker each). With one thread, one step of
    ``(0, T)`` and the sequential stack. With two, the two ranges of
    :func:`_split` side by side, then :func:`_split` again on the nodes
    after them, until nothing is worth splitting; the rest in one range.

    The sequential stack layout is kept with a gap per split: the first
    range's updates stay where they are, and everything placed at or above
    the stack top the first range leaves (by the second range and by all
    later nodes) moves up past the highest entry the first range writes or
    reads (the updates earlier steps left for it), so the second range
    never writes where the first one still may. This is the
    sequential layout of a stack with a hole in it, so it stays valid for
    every later node. The stack grows by the gaps.
    """
    T = tree.n_nodes
    sizes = b.astype(np.int64) ** 2
    if threads < 2 or T < 3:
        return [[(0, T)]], soff, int((soff + sizes).max()) if T else 0
    parent = np.asarray(tree.parent, dtype=np.int64)
    first = subtree_starts(parent)
    depth = np.asarray(tree.depth, dtype=np.int64)
    cw = np.concatenate([[0.0], np.cumsum(_work(np.diff(tree.ptr), b))])
    nodes = np.arange(T)
    shifted = soff.copy()
    groups = []
    lo = 0
    while lo < T:
        split = _split(first, depth, cw, lo)
        if split is None:
            groups.append([(lo, T)])
            break
        x, y = split
        top = int(shifted[x - 1] + sizes[x - 1])  # node x - 1 pushed last
        # the first range writes up to its peak, and reads what earlier
        # steps left on the stack for it (live until it is assembled)
        live = (nodes < lo) & (parent >= lo)
        peak = int(max((shifted[lo:x] + sizes[lo:x]).max(),
                       (shifted[live] + sizes[live]).max() if live.any() else 0))
        shifted[(nodes >= x) & (shifted >= top)] += max(peak - top, 0)
        groups.append([(lo, x), (x, y)])
        lo = y
    return groups, shifted, int((shifted + sizes).max())


#: A vector's substitution runs on two threads from this many entries read
#: (factor entries, plus a few per row for the indices): below, starting
#: the threads and copying the vector cost about what they save.
SPLIT_MIN_ENTRIES = 2**17


def _substitution_steps(f):
    """``steps`` of :func:`_substitute_split` (S x 3 int64; empty: one thread).

    The tree is that of the factors' own structure: a node's parent is the
    node that owns its lowest boundary row (so the factors need not carry
    the ordering tree). The ranges are :func:`_split`'s, on the entries each
    node reads, split again after each split as in :func:`_schedule`. A
    split whose first range has a boundary row in the second is not used:
    that does not happen with the boundaries the factorization computes,
    and the check keeps the two threads off each other's rows whatever the
    factors.
    """
    T = f.n_nodes
    none = np.zeros((0, 3), dtype=np.int64)
    if T < 3:
        return none
    s, b = np.diff(f.ptr), np.diff(f.boff)
    work = (np.diff(f.doff) + np.diff(f.qloff) + np.diff(f.xloff) + np.diff(f.xuoff)
            + np.diff(f.quoff) + 4 * (s + b)).astype(np.float64)
    if work.sum() < SPLIT_MIN_ENTRIES:
        return none
    owner = np.repeat(np.arange(T, dtype=np.int64), s)
    parent = np.full(T, -1, dtype=np.int64)
    has = b > 0
    if has.any():
        parent[has] = owner[np.minimum.reduceat(f.bidx, f.boff[:-1][has])]
    nodes = np.arange(T)
    if np.any(parent[has] <= nodes[has]):
        return none  # not post-ordered: no split is known to be safe
    depth = np.zeros(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        if parent[t] >= 0:
            depth[t] = depth[parent[t]] + 1
    first = subtree_starts(parent)
    cw = np.concatenate([[0.0], np.cumsum(work)])
    steps, lo = [], 0
    while lo < T:
        split = _split(first, depth, cw, lo, min_work=SPLIT_MIN_ENTRIES)
        if split is not None:
            x, y = split
            rows = f.bidx[f.boff[lo]:f.boff[x]]
            if np.any((rows >= f.ptr[x]) & (rows < f.ptr[y])):
                split = None
        if split is None:
            steps.append((lo, T, T))
            break
        steps.append((lo, x, y))
        lo = y
    if all(mid == hi for _, mid, hi in steps):
        return none
    return np.array(steps, dtype=np.int64).reshape(-1, 3)


_POOL = []


def _pool():
    """The one worker thread that runs the second range of a split substitution."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=1,
                                        thread_name_prefix="learned_precond-substitution"))
    return _POOL[0]


def _substitute_split(symmetric, transposed, steps, arrays, X):
    """In place, X C-ordered (N, m): ``M X`` with the two ranges of each of
    ``steps`` (:func:`_substitution_steps`) side by side, the second one in
    a worker thread (the kernel releases the GIL).

    In the forward half both ranges write their common ancestors' rows (rows
    ``ptr[hi]`` on): the second range works on a copy of its rows and
    those, whose changes are added afterwards, so the result agrees with
    one thread to rounding. The backward half runs the steps in reverse;
    there both ranges only read those rows.
    """
    ptr = arrays[0]
    for first in (True, False):
        for lo, mid, hi in (steps if first else steps[::-1]).tolist():
            if mid == hi:
                substitute_range(first, transposed, symmetric, lo, hi, *arrays, X)
                continue
            r1, r2 = int(ptr[mid]), int(ptr[hi])
            if first:
                saved = X[r2:].copy()
                X1 = np.empty_like(X)
                X1[r1:] = X[r1:]
            else:
                X1 = X
            job = _pool().submit(substitute_range, first, transposed, symmetric, mid, hi,
                                 *arrays, X1)
            try:
                substitute_range(first, transposed, symmetric, lo, mid, *arrays, X)
            finally:
                job.result()
            if first:
                X[r1:r2] = X1[r1:r2]
                X[r2:] += X1[r2:] - saved


def _run(eliminate, groups, soff):
    """Every step of ``groups`` in turn, its ranges in threads; the parts in node order.

    The kernels and LAPACK release the GIL. When a worker raises, the others
    are told to stop at their next node, and the error of the first range
    that raised is raised.
    """
    parts = []
    for step in groups:
        if len(step) == 1:
            parts.append(eliminate(*step[0], soff, []))
            continue
        cancel = []
        with ThreadPoolExecutor(max_workers=len(step)) as pool:
            futures = [pool.submit(eliminate, lo, hi, soff, cancel) for lo, hi in step]
            wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                cancel.append(True)
            wait(futures)
        for f in futures:
            if f.exception() is not None:
                raise f.exception()
        parts += [f.result() for f in futures]
    return parts


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def permuted_csr(A, perm):
    """``A[perm][:, perm]`` and its transpose as CSR arrays for the compiled
    kernels: ``(indptr, indices, data)`` of each (sorted indices; int64,
    float64), six arrays in all."""
    Ap = sp.csr_array(A)[perm][:, perm]
    Ap.sort_indices()
    ApT = sp.csr_array(Ap.T)
    ApT.sort_indices()
    return tuple(np.asarray(x, dtype=dt) for M_ in (Ap, ApT)
                 for x, dt in ((M_.indptr, np.int64), (M_.indices, np.int64),
                               (M_.data, np.float64)))


@dataclass
class FactorizationPlan:
    """The part of a factorization that depends on ``A`` and the tree alone.

    Whatever the tolerance and probes: ``A`` permuted to the tree's
    numbering (:func:`permuted_csr`), the symbolic pass (boundaries,
    children, stack offsets) and the two-thread schedules. Training refactors
    the same matrix on the same tree several times; one plan
    (:func:`factorization_plan`) serves them all. It holds ``A``'s values,
    so a plan serves only the matrix object it was made from (``matrix``).
    """

    matrix: object
    tree: object
    mats: tuple
    ptr: np.ndarray
    boff: np.ndarray
    bidx: np.ndarray
    cptr: np.ndarray
    cidx: np.ndarray
    soff: np.ndarray
    _schedules: dict = field(default_factory=dict, repr=False)

    def schedule(self, threads):
        """:func:`_schedule` for ``threads`` (computed once per count)."""
        if threads not in self._schedules:
            self._schedules[threads] = _schedule(self.tree, np.diff(self.boff), self.soff,
                                                 threads)
        return self._schedules[threads]


def factorization_plan(A, tree):
    """Make the :class:`FactorizationPlan` of sparse ``A`` (original numbering) on ``tree``.

    Raises
    ------
    ValueError
        The tree is not in post-order, or does not separate A's graph.
    """
    mats = permuted_csr(A, tree.perm)
    ptr = np.asarray(tree.ptr, dtype=np.int64)
    boff, bidx, cptr, cidx, soff, _, status = symbolic(
        ptr, np.asarray(tree.parent, dtype=np.int64), mats[0], mats[1], mats[3], mats[4])
    if status == 1:
        raise ValueError("the tree is not in post-order (a node must follow its "
                         "children's subtrees); build it with nested_dissection")
    if status == 2:
        raise ValueError("the tree does not separate the graph of A (an entry joins two "
                         "nodes neither of which is the other's ancestor); pass A in its "
                         "original numbering, or build the tree from A with nested_dissection")
    return FactorizationPlan(matrix=A, tree=tree, mats=mats, ptr=ptr, boff=boff,
                             bidx=bidx, cptr=cptr, cidx=cidx, soff=soff)


def hierarchical_factorization(A, tree, *, tol=1e-2, rank=None, symmetric=False,
                               time_limit=None, probes=None, dense_entries=None,
                               compiled=True, threads=1, plan=None):
    """Compressed multifrontal LU of sparse ``A`` (original numbering) on ``tree``.

    Parameters
    ----------
    A : sparse array, shape (N, N)
        Real; for ``symmetric`` SPD.
    tree : NestedDissection
    tol : float
        Relative singular-value threshold of the fill compression (0: exact).
        From :data:`FLOAT32_MIN_TOL` up, fronts of :data:`FLOAT32_MIN_OWN`
        or more own unknowns are factored in single precision (see
        :func:`_factor_single`; ``stats['single_fronts']`` counts them).
    rank : int, optional
        Largest rank per coupling (default: no bound beyond ``tol``).
    symmetric : bool
        Cholesky of every front (``A`` must be SPD; ``M`` is then SPD).
    time_limit : float, optional
        Seconds; exceeding it raises ``TimeoutError`` (the caller falls back).
    probes : ndarray (N, p), optional
        Vectors (original numbering) on which the factorization is to be
        exact: every truncation keeps, besides its leading singular
        directions, the directions that the probes' restrictions to the
        front need (``G_L^T t_B`` and ``C^T t_I`` for Cholesky, ``U t_I``
        and ``G_U t_B`` for LU), so each front's compressed couplings act on
        the probes as the exact ones do and ``L U t = A t`` for every probe
        ``t`` (to rounding). Costs at most ``2 p`` extra rank per coupling.
        Training (:mod:`learned_precond.lu.refine`) passes the slow modes of
        a previous factorization here.
    dense_entries : int
        Couplings with at most this many entries are stored dense, without
        an SVD (default: the module's :data:`DENSE_ENTRIES`, read at call
        time; 0 compresses every coupling).
    compiled : bool
        Small fronts with dense couplings (:data:`SMALL_OWN`,
        :data:`SMALL_FRONT`) are eliminated in runs by the compiled kernel
        of :mod:`.fronts`, and the couplings' Gram eigenpairs below
        :data:`RANDOMIZED_MIN` come from :func:`_gram_row_space`; ``False``
        sends every front through numpy and LAPACK (the reference the
        kernels are tested against).
    threads : int
        With 2 or more, two ranges of whole subtrees are eliminated side by
        side in two threads, step after step up the tree (:func:`_split`,
        :func:`_schedule`). The factors are the same, bit for bit, as with
        1; the contribution stack grows by a gap per step, and each thread
        holds its own largest front.
    plan : FactorizationPlan, optional
        :func:`factorization_plan` of this ``A`` and ``tree``, made once for
        several factorizations of the same matrix (default: made here).

    Returns
    -------
    HierarchicalFactors, dict
        The factors in tree numbering and statistics (seconds, ranks, shifts).

    Raises
    ------
    np.linalg.LinAlgError
        A front cannot be factored (singular, or not positive definite for
        ``symmetric``).
    ValueError
        The tree is not a post-ordered nested dissection of A's graph
        (:func:`factorization_plan`), or ``plan`` was made for another tree or
        matrix.
    """
    t_start = time.perf_counter()
    if dense_entries is None:
        dense_entries = DENSE_ENTRIES
    n = A.shape[0]
    Tp = (None if probes is None
          else np.asarray(probes, dtype=np.float64).reshape(n, -1)[tree.perm])
    if plan is None:
        plan = factorization_plan(A, tree)
    elif plan.tree is not tree or plan.matrix is not A:
        # the plan holds its matrix's values: another A would be ignored silently
        raise ValueError("plan= was made for another tree or matrix; make it with "
                         "factorization_plan(A, tree) for this A and tree")
    mats = plan.mats
    T = tree.n_nodes
    ptr = plan.ptr
    max_rank = np.iinfo(np.int64).max if rank is None else int(rank)
    boff, bidx, cptr, cidx = plan.boff, plan.bidx, plan.cptr, plan.cidx
    s_all, b_all = np.diff(ptr), np.diff(boff)
    small = _small_nodes(s_all, b_all, tol, max_rank, dense_entries) & bool(compiled)
    m_small = s_all[small] + b_all[small]
    small_entries = int((m_small ** 2).max()) if m_small.size else 0

    # Per node: entries of each packed array, and the ranks (written by node,
    # so the workers share them); the arrays themselves as chunks in node
    # order (one per run of small fronts), one list per worker.
    sizes = {f: np.zeros(T, dtype=np.int64) for f in ("diag", "QL", "XL", "XU", "QU")}
    kL = np.zeros(T, dtype=np.int64)
    kU = np.zeros(T, dtype=np.int64)

    def node_error(t):
        kind = "is not positive definite" if symmetric else "is singular"
        return np.linalg.LinAlgError(f"front {t} ({s_all[t]} unknowns) {kind}")

    def eliminate(lo, hi, soff, cancel):
        """Nodes ``lo <= t < hi`` in order, with their own scratch arrays:
        ``(chunks, truncated)``, or None when ``cancel`` became true."""
        structure = (ptr, boff, bidx, cptr, cidx, soff)
        loc = np.full(n, -1, dtype=np.int64)
        buf = np.empty(small_entries)
        front_buf = np.empty(0)
        chunks = {f: [] for f in ("diag", "piv", "QL", "XL", "XU", "QU")}
        n_trunc = n_single = 0
        # runs of consecutive small nodes inside the range: start -> end
        edges = np.diff(np.concatenate([[0], small[lo:hi].astype(np.int8), [0]]))
        run_end = dict(zip((lo + np.flatnonzero(edges == 1)).tolist(),
                           (lo + np.flatnonzero(edges == -1)).tolist()))
        t = lo
        while t < hi:
            if cancel:
                return None
            if time_limit is not None and time.perf_counter() - t_start > time_limit:
                raise TimeoutError(f"hierarchical factorization passed {time_limit:.1f} s "
                                   f"at node {t} of {T}")
            if t in run_end:
                t1 = run_end[t]
                s, b = s_all[t:t1], b_all[t:t1]
                q = np.where((s > 0) & (b > 0), s * b, 0)
                doff, qoff = _offsets(s * s), _offsets(q)
                diag = np.empty(doff[-1])
                piv = np.empty(int(s.sum()), dtype=np.int64)
                QL = np.empty(qoff[-1])
                QU = np.empty(0 if symmetric else qoff[-1])
                bad = eliminate_small(t, t1, bool(symmetric), buf, *structure, stk, *mats, loc,
                                      doff, diag, piv, qoff, QL, QU)
                if bad >= 0:
                    raise node_error(bad)
                sizes["diag"][t:t1] = s * s
                sizes["QL"][t:t1] = q
                kL[t:t1] = np.where(q > 0, s, 0)
                chunks["diag"].append(diag)
                chunks["piv"].append(piv)
                chunks["QL"].append(QL)
                if not symmetric:
                    sizes["QU"][t:t1] = q
                    kU[t:t1] = kL[t:t1]
                    chunks["QU"].append(QU)
                t = t1
                continue
            s, b = int(s_all[t]), int(b_all[t])
            i0, i1 = ptr[t], ptr[t + 1]
            bnd = bidx[boff[t]:boff[t + 1]]
            # one buffer for every large front: each is copied out before the next
            # (a fresh array per front paid its page faults, 8 GB of them at 64^3)
            if front_buf.size < (s + b) ** 2:
                front_buf = np.empty(int(((s_all + b_all)[lo:hi][~small[lo:hi]] ** 2).max()))
            F = front_buf[:(s + b) ** 2].reshape(s + b, s + b)
            # a symmetric front is assembled, read and passed on (its update on
            # the stack) on and above the diagonal only
            assemble(t, F, *structure, stk, *mats, loc, bool(symmetric))
            FII, FBB = F[:s, :s], F[s:, s:]
            XL = XUt = None
            if s == 0:  # an empty separator (disconnected parts): pass the updates on
                S = FBB
                out = {}
            elif symmetric:
                # F_II = R^T R from its upper triangle; the stored factor is C = R^T
                R, _, trtrs = _factor_front(FII, True,
                                            use_single and b and s >= FLOAT32_MIN_OWN)
                if R is None:
                    raise node_error(t)
                n_single += trtrs is _trtrs32
                C = R.T
                # G_L = F_BI C^-T  <=>  G_L^T = C^-1 F_IB = R^-T F_IB
                FIB = np.asfortranarray(F[:s, s:], dtype=R.dtype)
                GLt = trtrs(R, FIB, lower=0, trans=1)[0] if b else np.zeros((s, 0))
                keep = None
                if Tp is not None and b:  # the couplings must act exactly on the probes
                    keep = np.hstack([GLt @ Tp[bnd], R @ Tp[i0:i1]])
                QL, XL = _truncate(GLt.T, tol, max_rank, keep, dense_entries, compiled)
                out = {"diag": C, "piv": np.arange(s, dtype=np.int64), "QL": QL, "XL": XL}
                if b:
                    # S = F_BB - G_L G_L^T, G_L ~ QL XL: syrk on P = QL chol(XL XL^T)
                    # (XL XL^T is I up to rounding: W is orthonormal), written
                    # into the stack in place, upper triangle only (all the
                    # parent's assembly reads)
                    S = stk[soff[t]:soff[t] + b * b].reshape(b, b)
                    copy_upper(FBB, S)
                    if QL.shape[1]:
                        P = QL if XL is None else QL @ _chol_lower(XL @ XL.T)
                        # the update in double, from the single front's factors
                        a, ta = _transposed(P.astype(np.float64, copy=False))
                        # on the Fortran view S.T: C -= P P^T, its lower triangle
                        # (S's upper) only
                        _syrk(-1.0, a, beta=1.0, c=S.T, trans=1 - ta, lower=1, overwrite_c=1)
            else:
                lu, piv, trtrs = _factor_front(FII, False,
                                               use_single and b and s >= FLOAT32_MIN_OWN)
                if lu is None:
                    raise node_error(t)
                n_single += trtrs is _trtrs32
                # G_L = F_BI U^-1  <=>  U^T G_L^T = F_BI^T;  G_U = L^-1 P F_IB
                if b:
                    FIB = np.asfortranarray(F[:s, s:], dtype=lu.dtype)
                    FBI = np.asfortranarray(F[s:, :s].T, dtype=lu.dtype)
                    GLt = trtrs(lu, FBI, lower=0, trans=1)[0]
                    GU = trtrs(lu, FIB[_row_permutation(piv)], lower=1, unitdiag=1)[0]
                else:
                    GLt = GU = np.zeros((s, 0))
                keep_l = keep_u = None
                if Tp is not None and b:  # the couplings must act exactly on the probes
                    keep_l, keep_u = np.triu(lu) @ Tp[i0:i1], GU @ Tp[bnd]
                QL, XL = _truncate(GLt.T, tol, max_rank, keep_l, dense_entries, compiled)
                QUt, XUt = _truncate(GU.T, tol, max_rank, keep_u, dense_entries, compiled)
                QU = QUt.T
                out = {"diag": lu, "piv": np.asarray(piv, dtype=np.int64), "QL": QL, "XL": XL,
                       "QU": QU, "XU": None if XUt is None else XUt.T}
                kU[t] = QU.shape[0]
                if b:
                    # S = F_BB - G_L G_U, G_L ~ QL XL, G_U ~ XU QU: one gemm whose
                    # inner dimension is the smaller rank, into the stack in place
                    XU = out["XU"]
                    if QL.shape[1] <= QU.shape[0]:
                        left = QL
                        if XL is None:
                            right = QU if XU is None else XU @ QU
                        else:
                            right = (XL if XU is None else XL @ XU) @ QU
                    else:
                        right = QU
                        if XU is None:
                            left = QL if XL is None else QL @ XL
                        else:
                            left = QL @ (XU if XL is None else XL @ XU)
                    S = stk[soff[t]:soff[t] + b * b].reshape(b, b)
                    S[...] = FBB
                    if left.shape[1]:
                        # S^T (the Fortran view of the C-order S) -= right^T left^T,
                        # in double (from a single front's factors too)
                        right = right.astype(np.float64, copy=False)
                        left = left.astype(np.float64, copy=False)
                        (a, ta), (c, tc) = _transposed(right), _transposed(left)
                        _gemm(-1.0, a, c, beta=1.0, c=S.T, trans_a=ta, trans_b=tc,
                              overwrite_c=1)
            if s:
                kL[t] = out["QL"].shape[1]
            n_trunc += XL is not None
            for f, X in out.items():
                if X is not None:
                    X = np.ascontiguousarray(X).ravel()
                    chunks[f].append(X)
                    if f in sizes:
                        sizes[f][t] = X.size
            if s == 0:
                if symmetric:
                    copy_upper(S, stk[soff[t]:soff[t] + b * b].reshape(b, b))
                else:
                    stk[soff[t]:soff[t] + b * b] = S.ravel()
            t += 1
        return chunks, n_trunc, n_single

    groups, soff_run, size = plan.schedule(int(threads))
    stk = _new_stack(size)
    use_single = tol >= FLOAT32_MIN_TOL
    retried = False
    try:
        parts = _run(eliminate, groups, soff_run)
    except np.linalg.LinAlgError:
        if not use_single or not np.any(s_all >= FLOAT32_MIN_OWN):
            raise
        # single-precision rounding may have cost a later front its
        # definiteness: everything again in double (within the same time limit)
        use_single, retried = False, True
        parts = _run(eliminate, groups, soff_run)
    chunks = {f: [X for part in parts for X in part[0][f]] for f in parts[0][0]}
    n_trunc = sum(part[1] for part in parts)
    n_single = sum(part[2] for part in parts)
    parts = None

    # The stack goes before the factors are packed (the workers' fronts went
    # with them), and each packed array's chunks as soon as it is: the packing
    # then adds the largest array to the chunks, not all of them plus the
    # fronts and the stack (3-D Poisson 64^3: traced peak 1646 -> 1189 MiB,
    # now the loop's own, chunks + stack + front buffer).
    stk = None

    def flat(f, dtype=np.float64):
        parts = chunks.pop(f)
        return np.concatenate(parts).astype(dtype, copy=False) if parts \
            else np.zeros(0, dtype=dtype)

    factors = HierarchicalFactors(
        n=n, symmetric=bool(symmetric), ptr=ptr, boff=boff, bidx=bidx,
        doff=_offsets(sizes["diag"]), diag=flat("diag"), piv=flat("piv", np.int64),
        kL=kL, qloff=_offsets(sizes["QL"]), QL=flat("QL"),
        xloff=_offsets(sizes["XL"]), XL=flat("XL"),
        kU=kU, xuoff=_offsets(sizes["XU"]), XU=flat("XU"),
        quoff=_offsets(sizes["QU"]), QU=flat("QU"))
    stats = {
        "seconds": time.perf_counter() - t_start,
        "n_nodes": T,
        "max_front": int((s_all + b_all).max()) if T else 0,
        "max_separator": int(s_all.max()) if T else 0,
        "max_rank": int(kL.max()) if T else 0,
        "truncated_nodes": int(n_trunc),
        "single_fronts": int(n_single),
        # the elimination's flops as the schedule estimates them (deterministic)
        "work": float(_work(s_all, b_all).sum()) if T else 0.0,
        "single_retried": retried,
        "floats_per_unknown": factors.factor_entries / max(n, 1),
    }
    return factors, stats

