"""The nested-dissection layout: LearnedLU whose start is the hierarchical factorization.

``LearnedLU.fit(A, init='hierarchical')`` (and ``init='auto'`` for sparse A
given by its entries, see :func:`~learned_precond.lu.nested_fit.prefers_nested`)
runs the same first stages (options, static pivoting) and then, instead of
the fixed-rank GFMM tree, factors ``A'`` on its nested-dissection tree with
the fill compressed as it is created (:mod:`learned_precond._hierarchical`):
dense separator blocks (near field) and truncated low-rank couplings from
each node to its ancestors' separators (far field), ranks set per coupling by
``rank_tol`` (and capped by ``rank``). Nothing N x N and no full LU is formed.

The fit itself (ordering, start, training on the slow modes) is
:mod:`learned_precond.lu.nested_fit`; this module holds the operator.
"""

import numpy as np

from .._format import format_bytes
from .operator import LearnedLU

__all__ = ["NestedLearnedLU", "PermutedLearnedLU"]


class PermutedLearnedLU(LearnedLU):
    """A LearnedLU whose factors act in a permuted numbering (the nested and dense layouts).

    Subclasses hold ``factors`` with ``solve``/``solve_transposed`` in the
    numbering ``perm`` (``perm[k]``: the original index of unknown k),
    ``nbytes``, ``factor_entries`` and ``symmetric``.
    """

    def __init__(self, *, factors, perm, report, pivoting, options=None, fingerprint=None):
        # The GFMM operator's state (layout, packs, slots) does not exist here.
        n = factors.n
        super(LearnedLU, self).__init__((n, n), dtype=np.float64)
        self.factors = factors
        self.perm = perm
        self.pivoting = pivoting
        self._pivoted = not pivoting.is_identity
        self.symmetric = factors.symmetric and pivoting.preserves_symmetry
        self.scale = 1.0
        self.report = report
        self.options = options
        self.fingerprint = fingerprint
        self.factor_dtype = str(np.dtype(getattr(factors, "dtype", np.float64)))
        self.layout = None
        self.ordering = None
        #: The training probes (N x p) the factors are exact on, or None
        #: (untrained); a warm start from this operator refactors on them.
        self.probes = None

    def _permuted(self, solve, X):
        Z = solve(X[self.perm])
        out = np.empty_like(Z)
        out[self.perm] = Z
        return out

    def _apply_prime(self, X):
        return self._permuted(self.factors.solve, X)

    def _apply_adjoint_prime(self, X):
        return self._permuted(self.factors.solve_transposed, X)

    @property
    def nbytes(self):
        total = self.factors.nbytes + self.perm.nbytes
        if self._pivoted:
            total += self.pivoting.nbytes
        return int(total)

    @property
    def n_parameters(self):
        return self.factors.factor_entries

    def to_dense(self, max_size=8192):
        n = self.shape[0]
        if n > max_size:
            raise ValueError(f"to_dense would form a {n}x{n} matrix; raise max_size.")
        return np.linalg.inv(self._apply_prime(np.eye(n)))


class NestedLearnedLU(PermutedLearnedLU):
    """A :class:`LearnedLU` on the nested-dissection layout (``init='hierarchical'``).

    Attributes
    ----------
    tree : NestedDissection
        The separator tree (post-order) and the permutation to its numbering.
    factors : HierarchicalFactors
        The compressed multifrontal factors of ``A'`` in tree numbering.
    """

    def __init__(self, *, factors, tree, report, pivoting, options=None, fingerprint=None):
        super().__init__(factors=factors, perm=tree.perm, report=report, pivoting=pivoting,
                         options=options, fingerprint=fingerprint)
        self.tree = tree

    def save(self, path):
        """Save to ``path`` (``.npz`` + JSON, no pickle); ``LearnedLU.load`` reads it back.

        The tree, the factors (in their storage precision), the static
        pivoting, the training probes when there are some, the report and
        the options (:mod:`learned_precond.lu.nested_io`).
        """
        from .nested_io import save_nested

        save_nested(self, path)

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
                       f"({f.factor_entries / self.shape[0]:.1f} floats per unknown, "
                       f"{self.factor_dtype} factors)"),
            ("init", rep.init),
            ("fit time", f"{rep.fit_time:.3g} s (start {rep.start_seconds:.3g}, train "
                         f"{rep.train_seconds:.3g})"),
        ]
        if rep.steps:
            rows.append(("training", f"{rep.steps} refactorization(s), {rep.best_step} kept, "
                                     f"{rep.start_iterations:.3g} -> {rep.iterations:.3g} "
                                     f"iterations ({rep.stop_reason})"))
        elif rep.stop_reason:
            rows.append(("training", f"none ({rep.stop_reason})"))
        width = max(len(k) for k, _ in rows)
        body = "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
        return f"{type(self).__name__}\n{body}"
