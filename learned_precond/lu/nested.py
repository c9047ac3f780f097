"""The nested-dissection layout: LearnedLU whose start is the hierarchical factorization.

``LearnedLU.fit(A, init='hierarchical')`` (and ``init='auto'`` for sparse A
beyond :data:`~learned_precond.lu.initialize.EXACT_START_MAX_N` unknowns)
runs the same first stages (options, static pivoting) and then, instead of
the fixed-rank GFMM tree, factors ``A'`` on its nested-dissection tree with
the fill compressed as it is created (:mod:`learned_precond._hierarchical`):
dense separator blocks (near field) and truncated low-rank couplings from
each node to its ancestors' separators (far field), ranks set per coupling by
``rank_tol`` (and capped by ``rank``). Nothing N x N and no full LU is formed.

The factors are not trained yet: ``max_steps`` does not apply to this layout
and the report says so (``train_seconds = 0``).
"""

import numpy as np

from .._format import format_bytes
from .._hierarchical import hierarchical_factorization, nested_dissection
from ..exceptions import PreconditionerSetupError
from .operator import LearnedLU

__all__ = ["NestedLearnedLU", "fit_nested"]


class NestedLearnedLU(LearnedLU):
    """A :class:`LearnedLU` on the nested-dissection layout (``init='hierarchical'``).

    Attributes
    ----------
    tree : NestedDissection
        The separator tree (post-order) and the permutation to its numbering.
    factors : HierarchicalFactors
        The compressed multifrontal factors of ``A'`` in tree numbering.
    """

    def __init__(self, *, factors, tree, report, pivoting, options=None, fingerprint=None):
        # The GFMM operator's state (layout, packs, slots) does not exist here.
        n = factors.n
        super(LearnedLU, self).__init__((n, n), dtype=np.float64)
        self.factors = factors
        self.tree = tree
        self.pivoting = pivoting
        self._pivoted = not pivoting.is_identity
        self.symmetric = factors.symmetric and pivoting.preserves_symmetry
        self.scale = 1.0
        self.report = report
        self.options = options
        self.fingerprint = fingerprint
        self.factor_dtype = "float64"
        self.layout = None
        self.ordering = None

    def _apply_prime(self, X):
        perm = self.tree.perm
        Z = self.factors.solve(X[perm])
        out = np.empty_like(Z)
        out[perm] = Z
        return out

    def _apply_adjoint_prime(self, X):
        perm = self.tree.perm
        Z = self.factors.solve_transposed(X[perm])
        out = np.empty_like(Z)
        out[perm] = Z
        return out

    @property
    def nbytes(self):
        total = self.factors.nbytes + self.tree.perm.nbytes
        if self._pivoted:
            total += self.pivoting.nbytes
        return int(total)

    @property
    def n_parameters(self):
        return self.factors.factor_entries

    def save(self, path):
        """Save to ``path`` (``.npz`` + JSON, no pickle); ``LearnedLU.load`` reads it back.

        The tree, the factors, the static pivoting, the low-rank correction
        when there is one, the report and the options
        (:mod:`learned_precond.lu.nested_io`).
        """
        from .nested_io import save_nested

        save_nested(self, path)

    def to_dense(self, max_size=8192):
        n = self.shape[0]
        if n > max_size:
            raise ValueError(f"to_dense would form a {n}x{n} matrix; raise max_size.")
        return np.linalg.inv(self._apply_prime(np.eye(n)))

    def __repr__(self):
        rep, f = self.report, self.factors
        s, b, kl, ku = f.ranks()
        rows = [
            ("N", self.shape[0]),
            ("layout", f"nested dissection, {f.n_nodes} nodes, largest separator "
                       f"{int(s.max())}, largest front {int((s + b).max())}"),
            ("far-field ranks", f"max {int(max(kl.max(), ku.max()))}, rank_tol "
                                f"{rep.rank_tol:g}"),
            ("factorization", "Cholesky L L^T (SPD)" if f.symmetric else "LU"),
            ("pivoting", self.pivoting.method),
            ("memory", f"{format_bytes(self.nbytes)} "
                       f"({f.factor_entries / self.shape[0]:.1f} floats per unknown)"),
            ("init", rep.init),
            ("fit time", f"{rep.fit_time:.3g} s (start {rep.start_seconds:.3g}, train "
                         f"{rep.train_seconds:.3g})"),
        ]
        width = max(len(k) for k, _ in rows)
        body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
        return f"LearnedLU\n{body}"


def fit_nested(A_user, A_prime, piv, opts, report, clock, *, symmetric):
    """Stages 3-7 for the nested-dissection layout; returns a NestedLearnedLU.

    Raises
    ------
    PreconditionerSetupError
        A front cannot be factored (singular), or the time budget ran out.
    """
    import scipy.sparse as sp

    from ..io import matrix_fingerprint

    A_prime = sp.csr_array(A_prime, dtype=np.float64)
    deadline = clock.deadline()
    limit = None if deadline is None else max(deadline.remaining(), 0.0)
    tree = nested_dissection(A_prime, leaf_size=opts.block_size,
                             seed=0 if opts.seed is None else int(opts.seed) % (2**31 - 1))
    report.ordering = "nested_dissection"
    report.ordering_time = clock.elapsed()
    tol = opts.rank_tol
    sym = bool(symmetric) and opts.symmetric is not False
    factors = stats = None
    from threadpoolctl import threadpool_limits

    # Most fronts are small: BLAS threads cost more than they give there, and
    # on a busy machine they oversubscribe (20x slower measured on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        if sym:
            try:
                factors, stats = hierarchical_factorization(
                    A_prime, tree, tol=tol, rank=opts.rank, symmetric=True, time_limit=limit)
            except np.linalg.LinAlgError as exc:
                if opts.symmetric is True:
                    raise PreconditionerSetupError(
                        f"symmetric=True, but the hierarchical Cholesky failed ({exc}): A is "
                        f"not positive definite. Pass symmetric=False (LU).",
                        report=report) from exc
                report.notes.append(f"Cholesky failed ({exc}); LU instead")
                sym = False
            except TimeoutError as exc:
                raise PreconditionerSetupError(
                    f"time_budget spent in the hierarchical start ({exc}); raise "
                    f"time_budget or rank_tol.", report=report) from exc
        if factors is None:
            try:
                factors, stats = hierarchical_factorization(
                    A_prime, tree, tol=tol, rank=opts.rank, symmetric=False,
                    time_limit=limit)
            except np.linalg.LinAlgError as exc:
                raise PreconditionerSetupError(
                    f"the hierarchical LU met a singular front ({exc}); A (after static "
                    f"pivoting) needs pivoting across separators. Try pivoting='mc64' or "
                    f"init='block_tridiagonal'.", report=report) from exc
            except TimeoutError as exc:
                raise PreconditionerSetupError(
                    f"time_budget spent in the hierarchical start ({exc}); raise "
                    f"time_budget or rank_tol.", report=report) from exc
    report.init = "hierarchical"
    report.symmetric = sym
    report.rank_tol = tol
    report.hierarchical = stats
    report.start_seconds = clock.elapsed()
    report.init_time = report.start_seconds - report.ordering_time
    report.train_seconds = 0.0
    report.steps = 0
    report.best_step = 0
    report.stop_reason = "not trained"
    report.notes.append(
        f"hierarchical start: {stats['n_nodes']} nodes, largest front {stats['max_front']}, "
        f"max rank {stats['max_rank']}, {stats['floats_per_unknown']:.1f} floats per "
        f"unknown; this layout is not trained (max_steps does not apply)")
    self = NestedLearnedLU(factors=factors, tree=tree, report=report, pivoting=piv,
                           options=opts, fingerprint=matrix_fingerprint(A_user))
    x = np.random.default_rng(0).standard_normal(self.shape[0])
    if not np.all(np.isfinite(self @ x)):
        raise PreconditionerSetupError(
            "the hierarchical factors produce non-finite output; try a smaller rank_tol "
            "or init='block_tridiagonal'.", report=report)
    report.nbytes = self.nbytes
    report.fit_time = clock.elapsed()
    self.setup_time = report.fit_time
    return self
