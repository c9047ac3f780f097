r"""The fitted SPAI operators: :class:`SPAI` (learned) and :class:`ClassicalSPAI`.

A SPAI preconditioner is a sparse matrix ``R ~ A^-1`` (or a product of two)
whose sparsity pattern is fixed in advance; applying it is one or two sparse
matrix-vector products, with no triangular solve, so every entry of the
result can be computed in parallel.

==========  ================  ==============================================
method      form of ``M``     ``R`` minimizes
==========  ================  ==============================================
``'gd'``    ``R R^T`` (SPD)   ``||I - R^T A R||_F`` (the learned-SPAI paper's
                              loss, Li, Wang & Jimack), gradient descent
``'gd'``    ``R``             ``||I - A R||_F`` (nonsymmetric ``A``),
                              gradient descent
``'lstsq'`` ``R``             ``||I - A R||_F`` column by column, by least
                              squares: the classical fixed-pattern SPAI of
                              Grote and Huckle (1997)
``'fsai'``  ``G^T G`` (SPD)   factorized SPAI of Kolotilina and Yeremin:
                              ``G`` lower triangular on the lower triangle of
                              the pattern, the classical SPD reference
==========  ================  ==============================================

``symmetric='auto'`` picks the SPD form (``'gd'`` with ``R R^T``) for a
symmetric ``A`` with a positive diagonal, valid for CG, and the form ``R``
otherwise (use GMRES or BiCGStab). The gradient descent is torch's L-BFGS on
the *exact* Frobenius loss (:mod:`learned_precond.spai.loss`), started
from Jacobi: ``R = diag(A)^-1/2`` (SPD form) or ``R = diag(A)^-1``
(:mod:`~learned_precond.spai.learned`); ``'lstsq'`` and ``'fsai'`` are in
:mod:`~learned_precond.spai.classical`, the patterns (``pattern=``,
``extra_fill=``) in :mod:`~learned_precond.spai.pattern`.

Examples
--------
>>> import numpy as np
>>> from learned_precond.problems import diffusion_2d
>>> from learned_precond.spai import SPAI
>>> from learned_precond.krylov import solve
>>> A = diffusion_2d(16, contrast=100.0)
>>> M = SPAI.fit(A)
>>> M.symmetric, M.form
(True, 'R R^T')
>>> b = A @ np.ones(A.shape[0])
>>> solve(A, b, M, method="cg", rtol=1e-8).converged
True
"""

import time

import numpy as np
import scipy.sparse as sp

from .._base import Preconditioner
from .._format import format_bytes
from .._structure import canonical_csr, is_symmetric, sparse_nbytes
from .._validation import as_matrix, check_positive_int, check_structure
from ..exceptions import PreconditionerSetupError
from .certificate import spd_certificate
from .classical import fit_fsai, fit_lstsq
from .learned import fit_gd
from .pattern import sparsity_pattern
from .report import SPAIReport

__all__ = ["METHODS", "SPAI", "ClassicalSPAI"]

METHODS = ("gd", "lstsq", "fsai")


def _prepare(A, symmetric):
    """Validate ``A``; return (csr A, symmetric flag, diagonal)."""
    A = canonical_csr(as_matrix(A))
    check_structure(A)
    if symmetric not in ("auto", True, False):
        raise ValueError(f"symmetric must be 'auto', True or False, got {symmetric!r}.")
    d = np.asarray(A.diagonal(), dtype=np.float64)
    is_sym = is_symmetric(A)
    if symmetric == "auto":
        symmetric = bool(is_sym and np.all(d > 0))
    elif symmetric:
        if not is_sym:
            raise ValueError(
                "symmetric=True needs a symmetric A (the R R^T form preconditions SPD "
                "systems), but A != A^T; pass symmetric=False and solve with GMRES."
            )
        bad = np.flatnonzero(d <= 0)
        if bad.size:
            raise PreconditionerSetupError(
                f"symmetric=True needs an SPD A, but A[i, i] <= 0 for {bad.size} row(s) "
                f"(first: {int(bad[0])}); A is not positive definite. Pass "
                f"symmetric=False (GMRES) or fix the sign of the system (-A)."
            )
    if not symmetric:
        bad = np.flatnonzero(d == 0)
        if bad.size:
            raise PreconditionerSetupError(
                f"SPAI starts from Jacobi (R = diag(A)^-1), but A[i, i] == 0 for "
                f"{bad.size} row(s) (first: {int(bad[0])}). Permute large entries onto "
                f"the diagonal first (learned_precond.pivoting) or use 'ilut'."
            )
    return A, bool(symmetric), d


class SPAI(Preconditioner):
    """A sparse approximate inverse on a fixed pattern: ``M = R R^T`` or ``M = R``.

    Build one with :meth:`fit`. ``M = R R^T`` (``form == 'R R^T'``, SPD: CG
    may be used) costs two sparse products per application; ``M = R``
    (``form == 'R'``) one.

    Attributes
    ----------
    R : scipy.sparse.csr_array
        The sparse factor (``G^T`` for FSAI).
    form : {'R R^T', 'R'}
    report : SPAIReport
    """

    name = "learned_spai"
    symmetric = True
    _default_method = "gd"

    def __init__(self, R, *, form, report=None):
        R = sp.csr_array(R, dtype=np.float64)
        R.sort_indices()
        super().__init__(R.shape)
        if form not in ("R R^T", "R"):
            raise ValueError(f"form must be 'R R^T' or 'R', got {form!r}.")
        if not np.all(np.isfinite(R.data)):
            raise PreconditionerSetupError(
                "the SPAI factor has NaN or Inf entries; the fit diverged. Scale A, use "
                "method='lstsq'/'fsai', or a smaller pattern."
            )
        self.R = R
        self.RT = sp.csr_array(R.T)
        self.RT.sort_indices()
        self.form = form
        self.symmetric = form == "R R^T"
        self.report = report if report is not None else SPAIReport(nnz=R.nnz)

    @classmethod
    def fit(cls, A, *, pattern="A", extra_fill=0.0, symmetric="auto", method=None,
            max_steps=500, tol=1e-7, verbose=False):
        """Fit a sparse approximate inverse of ``A``.

        Parameters
        ----------
        A : sparse array or ndarray, shape (N, N)
            Real square matrix with a nonzero diagonal (positive for the SPD form).
        pattern : {'A', 'A2'} or boolean (N, N) mask
            Sparsity pattern of ``R`` (the diagonal is always added).
        extra_fill : float
            Fraction of extra entries (see :func:`sparsity_pattern`).
        symmetric : {'auto', True, False}
            ``True``: ``M = R R^T`` (SPD, for CG), minimizing ``||I - R^T A R||_F``;
            ``False``: ``M = R``, minimizing ``||I - A R||_F``. ``'auto'``:
            True for symmetric ``A`` with a positive diagonal.
        method : {'gd', 'lstsq', 'fsai'}, optional
            ``'gd'`` gradient descent (L-BFGS) on the Frobenius loss (default
            for this class); ``'lstsq'`` the column-wise least-squares SPAI
            (``symmetric=False`` only); ``'fsai'`` the factorized SPAI
            (``symmetric=True`` only; uses the lower triangle of the pattern).
        max_steps : int
            Loss evaluations allowed to the gradient descent.
        tol : float
            Stop the descent when a step changes the loss by less than
            ``tol`` times its initial value.
        verbose : bool
            Log the descent (logger ``learned_precond.spai``).

        Returns
        -------
        SPAI

        Raises
        ------
        ValueError
            Bad input (see :func:`learned_precond._validation.as_matrix`), a
            bad option, or ``symmetric=True`` for a nonsymmetric ``A``.
        PreconditionerSetupError
            A zero (or, for the SPD form, non-positive) diagonal, or an ``R``
            that is singular or not finite.
        """
        start = time.perf_counter()
        method = cls._default_method if method is None else method
        A, symmetric, d = _prepare(A, symmetric)
        if method == "auto":
            method = "fsai" if symmetric else "lstsq"
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")
        if method == "lstsq" and symmetric:
            raise ValueError(
                "method='lstsq' (Grote-Huckle) gives a nonsymmetric R, not an SPD M; "
                "for CG use method='fsai' or 'gd', or pass symmetric=False (GMRES)."
            )
        if method == "fsai" and not symmetric:
            raise ValueError(
                "method='fsai' needs an SPD A (symmetric=True); for a nonsymmetric A "
                "use method='lstsq' or 'gd'."
            )
        max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
        tol = float(tol)
        if not (np.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {tol}.")
        P = sparsity_pattern(A, pattern, extra_fill=extra_fill)
        label = pattern if isinstance(pattern, str) else "mask"
        if extra_fill:
            label += f"+{100 * float(extra_fill):g}%"
        report = SPAIReport(method=method, pattern=label)
        if method == "gd":
            R = fit_gd(A, d, P, symmetric, max_steps, tol, report, verbose)
        elif method == "lstsq":
            R = fit_lstsq(A, P)
        else:
            R = fit_fsai(A, P)
        form = "R R^T" if symmetric else "R"
        if symmetric:
            cert = spd_certificate(R)
            if cert is None:
                raise PreconditionerSetupError(
                    "the fitted SPAI factor R is singular, so R R^T is not positive "
                    "definite; use method='fsai', a larger pattern, or 'jacobi'."
                )
            report.certificate = cert
        self = cls(R, form=form, report=report)
        report.nnz = int(self.R.nnz)
        self.setup_time = time.perf_counter() - start
        report.fit_time = self.setup_time
        return self

    # -- apply ---------------------------------------------------------------------
    def _apply(self, X):
        if self.form == "R R^T":
            return np.asarray(self.R @ (self.RT @ X))
        return np.asarray(self.R @ X)

    def _apply_adjoint(self, X):
        if self.form == "R R^T":
            return self._apply(X)
        return np.asarray(self.RT @ X)

    # -- bookkeeping ---------------------------------------------------------------
    @property
    def nnz(self):
        """Stored entries of ``R`` (the preconditioner's nonzeros)."""
        return int(self.R.nnz)

    @property
    def nbytes(self):
        """Bytes of ``R`` and of its stored transpose (CSR arrays)."""
        return sparse_nbytes(self.R, self.RT)

    def to_sparse(self):
        """``M`` as a csr_array (``R @ R.T`` or ``R``)."""
        return sp.csr_array(self.R @ self.RT) if self.form == "R R^T" else self.R.copy()

    def save(self, path):
        """Write ``R`` and the report to ``path`` (``.npz`` + JSON metadata, no pickle)."""
        from .io import save_spai

        save_spai(self, path)

    @classmethod
    def load(cls, path):
        """Read a SPAI written by :meth:`save`; corrupt or foreign files raise ModelFileError."""
        from .io import load_spai

        return load_spai(cls, path)

    def __repr__(self):
        r = self.report
        return (
            f"<{type(self).__name__} N={self.shape[0]}, M={self.form}, method={r.method!r}, "
            f"pattern={r.pattern!r}, nnz(R)={self.nnz}, memory={format_bytes(self.nbytes)}, "
            f"setup={self.setup_time:.3g} s>"
        )


class ClassicalSPAI(SPAI):
    """The classical references: Grote-Huckle SPAI (nonsymmetric) or FSAI (SPD).

    Same class and options as :class:`SPAI`; only the default differs:
    ``method='auto'`` is ``'fsai'`` for SPD ``A`` and ``'lstsq'`` otherwise.
    """

    name = "spai"
    _default_method = "auto"
