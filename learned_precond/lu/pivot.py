"""Stage 1, pivoting: static pivoting and scaling ``A' = D_r P A D_c``.

The factors are learned for ``A'`` and the operator applies
``M = D_c M' D_r P`` (:mod:`learned_precond.pivoting`). A warm start reuses
the previous fit's pivoting, so that its factors line up; a LinearOperator
has no entries to pivot on and gets none.
"""

from scipy.sparse.linalg import LinearOperator

from ..pivoting import StaticPivoting, static_pivoting

__all__ = ["pivot"]


def pivot(A, options, report):
    """Return ``(A', pivoting)`` for ``A``; the report notes what was applied."""
    n = A.shape[0]
    if options.warm_start is not None:
        piv = options.warm_start.pivoting
    elif isinstance(A, LinearOperator):
        piv = StaticPivoting.identity(n)
    else:
        piv = static_pivoting(A, method=options.pivoting, _validated=True)
    if options.symmetric is True and not piv.preserves_symmetry:
        raise ValueError(
            "symmetric=True needs a symmetric A', but static pivoting permuted rows; "
            "pass pivoting='none' or 'scale'.")
    report.pivoting = piv.method
    if piv.method != "none":
        report.notes.append(f"static pivoting: {piv.reason}")
    return (A if piv.is_identity else piv.apply(A)), piv
