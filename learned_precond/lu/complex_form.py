r"""Complex ``A`` for LearnedLU: the fit on its equivalent real form.

``A = B + iC`` acts on ``x = u + iv`` as the real ``2N x 2N`` matrix

.. math:: K = \begin{bmatrix} B & -C \\ C & B \end{bmatrix}
          \quad\text{on}\quad \begin{bmatrix} u \\ v \end{bmatrix},

so ``LearnedLU.fit(A)`` for complex ``A`` fits the real preconditioner
``T ~ K^-1`` (either layout, every option as for a real matrix) and applies
its complex-linear part,

.. math:: M x = \tfrac12\,\bigl(T(x) - i\,T(i x)\bigr),

as one blocked application of ``T`` to the ``2k`` real columns of ``k``
complex ones. An approximate ``T`` need not commute with multiplication by
``i``; this projection does (``M`` is complex-linear, as a Krylov solver
needs), equals ``A^-1`` when ``T = K^-1``, and keeps structure: ``A``
Hermitian positive definite gives ``K`` SPD, a symmetric positive definite
``T`` and a Hermitian positive definite ``M`` (valid for CG). Complex
symmetric ``A`` (a shifted Laplacian) gives a nonsymmetric ``K``: LU, GMRES.
Memory and apply work are those of ``T`` on ``2N`` unknowns.
"""

import numpy as np
import scipy.sparse as sp

from .._base import Preconditioner

__all__ = ["ComplexLearnedLU", "real_form"]


def real_form(A):
    """``K = [[B, -C], [C, B]]`` of complex ``A = B + iC`` (sparse or dense, float64)."""
    if sp.issparse(A):
        A = sp.csr_array(A)
        B, C = sp.csr_array(A.real), sp.csr_array(A.imag)
        return sp.csr_array(sp.block_array([[B, -C], [C, B]], format="csr"))
    A = np.asarray(A)
    B, C = A.real.astype(np.float64), A.imag.astype(np.float64)
    return np.block([[B, -C], [C, B]])


def _real_options(options):
    """The options of the real fit: geometry doubled, a complex warm start unwrapped."""
    out = dict(options)
    if out.get("grid_shape") is not None:
        raise ValueError(
            "grid_shape does not apply to a complex A (its real form has 2N unknowns); "
            "pass coords=(N, d) points instead, or nothing (the default layout orders by "
            "A's graph).")
    if out.get("coords") is not None:
        coords = np.asarray(out["coords"], dtype=np.float64)
        out["coords"] = np.vstack([coords, coords])  # u and v of a point share its place
    if isinstance(out.get("init"), ComplexLearnedLU):
        out["init"] = out["init"].real_operator
    return out


class ComplexLearnedLU(Preconditioner):
    """LearnedLU of a complex matrix: the complex-linear part of a real fit on ``K``.

    Built by ``LearnedLU.fit(A)`` when ``A`` is complex (see the module doc).

    Attributes
    ----------
    real_operator : LearnedLU
        The fitted real preconditioner of the real form ``K`` (``2N`` unknowns).
    report : FitReport
        Its report.
    """

    name = "learned_lu"
    supports_complex = True

    def __init__(self, real_operator):
        n = real_operator.shape[0] // 2
        super().__init__((n, n), dtype=np.complex128)
        self.real_operator = real_operator
        self.report = real_operator.report
        self.options = real_operator.options
        self.symmetric = bool(getattr(real_operator, "symmetric", False))
        self.has_adjoint = bool(getattr(real_operator, "has_adjoint", True))
        self.setup_time = real_operator.setup_time

    @classmethod
    def fit(cls, A, fit_real, **options):
        """``ComplexLearnedLU`` from ``fit_real(K, **options)`` (``LearnedLU.fit``)."""
        import time

        from .options import FitOptions

        t0 = time.perf_counter()
        real_options = _real_options(options)
        FitOptions.from_kwargs(real_options)  # every option checked before any work
        K = real_form(A)
        self = cls(fit_real(K, **real_options))
        self.setup_time = time.perf_counter() - t0
        return self

    def _project(self, apply, X):
        # T applied to [x, i x] in real form (2k real columns), then
        # M x = (T(x) - i T(i x)) / 2
        n, k = X.shape
        U, V = X.real, X.imag
        R = np.empty((2 * n, 2 * k))
        R[:n, :k], R[n:, :k] = U, V          # x   = u + iv
        R[:n, k:], R[n:, k:] = -V, U         # i x = -v + iu
        Y = apply(R)
        Tx = Y[:n, :k] + 1j * Y[n:, :k]
        Tix = Y[:n, k:] + 1j * Y[n:, k:]
        return 0.5 * (Tx - 1j * Tix)

    def _apply(self, X):
        return self._project(self.real_operator.matmat, X)

    def _apply_adjoint(self, X):
        # the real form of M^H is the transpose of M's: the same projection of T^T
        return self._project(self.real_operator.rmatmat, X)

    @property
    def nbytes(self):
        return int(self.real_operator.nbytes)

    def save(self, path):
        """Not available yet: a complex fit is not saved (raises NotImplementedError)."""
        raise NotImplementedError(
            "saving a LearnedLU of a complex matrix is not supported yet; save "
            "M.real_operator (the fit on the real form [[B, -C], [C, B]] of A = B + iC) "
            "and wrap a loaded one with ComplexLearnedLU(loaded).")
