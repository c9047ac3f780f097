r"""Sparse approximate inverse (SPAI) preconditioners on a prescribed pattern.

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
the *exact* Frobenius loss (:mod:`learned_precond._sparse_products`), started
from Jacobi: ``R = diag(A)^-1/2`` (SPD form) or ``R = diag(A)^-1``.

Patterns (``pattern=``): ``'A'`` (the pattern of ``A``), ``'A2'`` (that of
``A^2``), or a boolean ``(N, N)`` mask; the diagonal is always included.
``extra_fill=f`` adds ``round(f * nnz(pattern))`` further entries (in
symmetric pairs), those of the next power of the pattern with the largest
weight ``(|A_s| P)_ij + (|A_s| P)_ji``, where ``A_s`` is ``A`` scaled to a
unit diagonal and ``P`` the 0/1 base pattern; the paper allows 20% extra
entries for its harder (biharmonic) family.

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
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ._base import Preconditioner, _format_bytes
from ._sparse_products import loss_plan, spai_loss
from ._validation import as_matrix, check_positive_int, check_structure
from .exceptions import PreconditionerSetupError

__all__ = ["SPAI", "ClassicalSPAI", "SPAIReport", "sparsity_pattern", "spd_certificate"]

PATTERNS = ("A", "A2")
METHODS = ("gd", "lstsq", "fsai")


@dataclass
class SPAIReport:
    """How a SPAI preconditioner was obtained.

    Attributes
    ----------
    method : str
        ``'gd'``, ``'lstsq'``, ``'fsai'`` or ``'generator'``.
    pattern : str
        ``'A'``, ``'A2'`` or ``'mask'``, with ``'+f%'`` for extra fill.
    nnz : int
        Stored entries of ``R``.
    loss_init, loss : float
        Frobenius loss (squared; ``||I - R^T A R||_F^2`` or ``||I - A R||_F^2``)
        of the Jacobi start and of the result (nan where not computed).
    steps : int
        Loss evaluations of the gradient descent (0 for direct methods).
    converged : bool
        The descent met its tolerance (direct methods: True).
    certificate : str
        Why ``R`` is nonsingular, so that ``R R^T`` is SPD (see
        :func:`spd_certificate`); empty for the nonsymmetric form.
    fit_time : float
        Seconds.
    notes : list of str
    """

    method: str = ""
    pattern: str = "A"
    nnz: int = 0
    loss_init: float = float("nan")
    loss: float = float("nan")
    steps: int = 0
    converged: bool = True
    certificate: str = ""
    fit_time: float = 0.0
    notes: list = field(default_factory=list)


# -- input checks and scaling -------------------------------------------------------


def _is_symmetric(A, rtol=1e-12):
    diff = (A - A.T).tocsr()
    if diff.nnz == 0:
        return True
    return bool(np.max(np.abs(diff.data)) <= rtol * np.max(np.abs(A.data)))


def _prepare(A, symmetric):
    """Validate ``A``; return (csr A, symmetric flag, diagonal)."""
    A = as_matrix(A)
    A = sp.csr_array(A, dtype=np.float64) if not sp.issparse(A) else A.astype(np.float64)
    A.eliminate_zeros()
    A.sort_indices()
    check_structure(A)
    if symmetric not in ("auto", True, False):
        raise ValueError(f"symmetric must be 'auto', True or False, got {symmetric!r}.")
    d = np.asarray(A.diagonal(), dtype=np.float64)
    is_sym = _is_symmetric(A)
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


def _unit_pattern(X):
    P = sp.csr_array(X, dtype=np.float64, copy=True)
    P.data[:] = 1.0
    P.sum_duplicates()
    P.sort_indices()
    return P


def sparsity_pattern(A, pattern="A", *, extra_fill=0.0):
    """Return the 0/1 pattern (csr_array, diagonal included) a SPAI of ``A`` lives on.

    Parameters
    ----------
    A : sparse array or ndarray, shape (N, N)
    pattern : {'A', 'A2'} or boolean array/sparse matrix of shape (N, N)
        Base pattern: that of ``A``, of ``A^2``, or an explicit mask.
    extra_fill : float
        Add ``round(extra_fill * nnz(base))`` entries of the pattern of
        ``|A| base`` outside the base, largest weight first (see the module
        docstring), in symmetric pairs.

    Returns
    -------
    scipy.sparse.csr_array
        Canonical, values 1.0.
    """
    A = sp.csr_array(A, dtype=np.float64)
    n = A.shape[0]
    if isinstance(pattern, str):
        if pattern not in PATTERNS:
            raise ValueError(
                f"pattern must be 'A', 'A2' or a boolean (N, N) mask, got {pattern!r}."
            )
        P = _unit_pattern(A)
        if pattern == "A2":
            P = _unit_pattern(P @ P)
    else:
        mask = pattern
        if not sp.issparse(mask):
            mask = np.asarray(mask)
            if mask.shape != (n, n):
                raise ValueError(
                    f"pattern mask has shape {mask.shape}, but A is {n} x {n}; pass an "
                    f"(N, N) boolean array."
                )
            mask = sp.csr_array(mask != 0)
        elif mask.shape != (n, n):
            raise ValueError(
                f"pattern mask has shape {mask.shape}, but A is {n} x {n}; pass an "
                f"(N, N) boolean array."
            )
        mask = sp.csr_array(mask)
        mask.eliminate_zeros()
        P = _unit_pattern(mask)
    P = _unit_pattern(P + sp.eye_array(n, format="csr"))
    extra_fill = float(extra_fill)
    if not (np.isfinite(extra_fill) and extra_fill >= 0):
        raise ValueError(f"extra_fill must be a finite fraction >= 0, got {extra_fill}.")
    if extra_fill > 0:
        P = _add_fill(A, P, extra_fill)
    return P


def _add_fill(A, P, extra_fill):
    n = A.shape[0]
    d = np.abs(A.diagonal())
    d[d == 0] = 1.0
    s = sp.diags_array(1.0 / np.sqrt(d))
    S = sp.csr_array(abs(s @ A @ s) @ P)
    S = sp.csr_array(S + S.T).tocoo()
    rows, cols, w = S.row, S.col, S.data
    upper = rows < cols
    rows, cols, w = rows[upper], cols[upper], w[upper]
    present = P[rows, cols] != 0
    rows, cols, w = rows[~present], cols[~present], w[~present]
    budget = int(round(extra_fill * P.nnz / 2))  # pairs
    if budget <= 0 or rows.size == 0:
        return P
    order = np.lexsort((cols, rows, -w))[:budget]
    r, c = rows[order], cols[order]
    F = sp.csr_array(
        (np.ones(2 * r.size), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n)
    )
    return _unit_pattern(P + F)


# -- nonsingularity ---------------------------------------------------------------------


def spd_certificate(R):
    """Return why the square sparse ``R`` is nonsingular (so ``R R^T`` is SPD), or None.

    Strict diagonal dominance by rows or by columns (Gershgorin) is checked
    in ``O(nnz)``; otherwise a sparse LU of ``R`` must succeed with every
    pivot above ``1e3 eps`` times the largest entry of ``R``.
    """
    R = sp.csr_array(R)
    d = np.abs(R.diagonal())
    A = abs(R)
    off_rows = np.asarray(A.sum(axis=1)).ravel() - d
    off_cols = np.asarray(A.sum(axis=0)).ravel() - d
    if np.all(d > off_rows):
        return "R is strictly diagonally dominant by rows"
    if np.all(d > off_cols):
        return "R is strictly diagonally dominant by columns"
    try:
        lu = spla.splu(sp.csc_array(R))
    except RuntimeError:
        return None
    pivots = np.abs(lu.U.diagonal())
    if pivots.min() > 1e3 * np.finfo(np.float64).eps * np.max(np.abs(R.data)):
        return "sparse LU of R has no tiny pivot"
    return None


# -- the fitted operator ----------------------------------------------------------------


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
            R = _fit_gd(A, d, P, symmetric, max_steps, tol, report, verbose)
        elif method == "lstsq":
            R = _fit_lstsq(A, P)
        else:
            R = _fit_fsai(A, P)
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
        return int(sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
                       for m in (self.R, self.RT)))

    def to_sparse(self):
        """``M`` as a csr_array (``R @ R.T`` or ``R``)."""
        return sp.csr_array(self.R @ self.RT) if self.form == "R R^T" else self.R.copy()

    def save(self, path):
        """Write ``R`` and the report to ``path`` (``.npz`` + JSON metadata, no pickle)."""
        from ._spai_io import save_spai

        save_spai(self, path)

    @classmethod
    def load(cls, path):
        """Read a SPAI written by :meth:`save`; corrupt or foreign files raise ModelFileError."""
        from ._spai_io import load_spai

        return load_spai(cls, path)

    def __repr__(self):
        r = self.report
        return (
            f"<{type(self).__name__} N={self.shape[0]}, M={self.form}, method={r.method!r}, "
            f"pattern={r.pattern!r}, nnz(R)={self.nnz}, memory={_format_bytes(self.nbytes)}, "
            f"setup={self.setup_time:.3g} s>"
        )


class ClassicalSPAI(SPAI):
    """The classical references: Grote-Huckle SPAI (nonsymmetric) or FSAI (SPD).

    Same class and options as :class:`SPAI`; only the default differs:
    ``method='auto'`` is ``'fsai'`` for SPD ``A`` and ``'lstsq'`` otherwise.
    """

    name = "spai"
    _default_method = "auto"


# -- the fits ---------------------------------------------------------------------------


def _fit_gd(A, d, P, symmetric, max_steps, tol, report, verbose):
    """L-BFGS on the exact Frobenius loss, in Jacobi-scaled variables.

    SPD form: with ``A_s = D^-1/2 A D^-1/2`` and ``R = D^-1/2 R_s``,
    ``R^T A R = R_s^T A_s R_s``, so the loss is unchanged and ``R_s = I``
    is Jacobi. Nonsymmetric form: with ``A_c = A D^-1`` and ``R = D^-1 R_c``,
    ``A R = A_c R_c`` exactly.
    """
    import logging

    log = logging.getLogger("learned_precond.spai")
    n = A.shape[0]
    if symmetric:
        s = 1.0 / np.sqrt(d)
        As = sp.csr_array(sp.diags_array(s) @ A @ sp.diags_array(s))
    else:
        s = 1.0 / d
        As = sp.csr_array(A @ sp.diags_array(s))
    As.sort_indices()
    plan = loss_plan(As, P, symmetric=symmetric)
    a = torch.from_numpy(np.ascontiguousarray(As.data))
    rows = np.repeat(np.arange(n), np.diff(P.indptr))
    r0 = (rows == P.indices).astype(np.float64)
    r = torch.tensor(r0, requires_grad=True)
    with torch.no_grad():
        loss0 = float(spai_loss(a, r, plan))
    report.loss_init = loss0
    count = [0]
    if max_steps > 0:
        opt = torch.optim.LBFGS(
            [r], lr=1.0, max_iter=max_steps, max_eval=max_steps, history_size=20,
            tolerance_grad=1e-12, tolerance_change=tol * max(loss0, 1e-300),
            line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad()
            loss = spai_loss(a, r, plan)
            loss.backward()
            count[0] += 1
            if verbose and count[0] % 50 == 0:
                log.info("SPAI step %d: loss %.6g", count[0], float(loss))
            return loss

        flush = torch.set_flush_denormal(True)
        try:
            opt.step(closure)
        finally:
            if flush:
                torch.set_flush_denormal(False)
    values = r.detach().numpy().copy()
    if not np.all(np.isfinite(values)):
        raise PreconditionerSetupError(
            "SPAI gradient descent diverged (non-finite entries); use method='lstsq' or "
            "'fsai', or a smaller pattern."
        )
    with torch.no_grad():
        loss = float(spai_loss(a, torch.from_numpy(values), plan))
    if not loss <= loss0:  # never worse than the Jacobi start
        values, loss = r0, loss0
        report.notes.append("descent did not improve on Jacobi; kept Jacobi")
    report.loss, report.steps = loss, count[0]
    report.converged = count[0] < max_steps
    Rs = sp.csr_array((values, P.indices.copy(), P.indptr.copy()), shape=P.shape)
    return sp.csr_array(sp.diags_array(s) @ Rs)


def _lookup(M, rows, cols):
    """Entries ``M[rows, cols]`` of canonical csr ``M`` (0 where not stored), vectorized."""
    n = M.shape[1]
    keys = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr)) * n + M.indices
    want = rows.astype(np.int64) * n + cols.astype(np.int64)
    pos = np.searchsorted(keys, want)
    pos = np.minimum(pos, keys.size - 1)
    found = keys[pos] == want
    return np.where(found, M.data[pos], 0.0)


def _padded_rows(P):
    """Column indices of each CSR row of ``P`` padded to a rectangle with -1."""
    counts = np.diff(P.indptr)
    width = int(counts.max())
    J = np.full((P.shape[0], width), -1, dtype=np.int64)
    slot = np.arange(P.nnz) - np.repeat(P.indptr[:-1], counts)
    J[np.repeat(np.arange(P.shape[0]), counts), slot] = P.indices
    return J


def _batched_blocks(M, J):
    """Dense ``M[J_k, J_k]`` for every padded index row ``J_k`` (identity on padding)."""
    n_rows, m = J.shape
    a = np.repeat(J, m, axis=1)
    b = np.tile(J, (1, m))
    valid = (a >= 0) & (b >= 0)
    vals = np.zeros(a.shape)
    vals[valid] = _lookup(M, a[valid], b[valid])
    blocks = vals.reshape(n_rows, m, m)
    pad = J < 0
    blocks[pad] = 0.0
    blocks.transpose(0, 2, 1)[pad] = 0.0
    idx = np.nonzero(pad)
    blocks[idx[0], idx[1], idx[1]] = 1.0
    return blocks


def _fit_lstsq(A, P):
    """Grote-Huckle SPAI: ``min ||A r_k - e_k||`` over column ``k``'s pattern, all k.

    With ``J`` the rows allowed in column ``k``, the normal equations are
    ``(A^T A)[J, J] m = A[k, J]^T``: the Gram matrix restricted to ``J``
    (nonsingular for nonsingular ``A``). Columns are scaled by ``diag(A)``
    first (the solution is unchanged, the small systems better conditioned).
    """
    n = A.shape[0]
    d = A.diagonal()
    Ac = sp.csr_array(A @ sp.diags_array(1.0 / d))
    Ac.sort_indices()
    G = sp.csr_array(Ac.T @ Ac)
    G.sort_indices()
    Pc = sp.csr_array(P.T)  # rows of P^T = columns of P
    Pc.sort_indices()
    J = _padded_rows(Pc)
    blocks = _batched_blocks(G, J)
    k = np.repeat(np.arange(n)[:, None], J.shape[1], axis=1)
    rhs = np.where(J >= 0, _lookup(Ac, k, np.maximum(J, 0)), 0.0)
    try:
        m = np.linalg.solve(blocks, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError as err:
        raise PreconditionerSetupError(
            f"SPAI least-squares systems are singular ({err}); A is (numerically) "
            f"singular on some column's pattern. Use a larger pattern or 'ilut'."
        ) from err
    valid = J >= 0
    cols = np.repeat(np.arange(n)[:, None], J.shape[1], axis=1)[valid]
    Rc = sp.csr_array((m[valid], (J[valid], cols)), shape=(n, n))
    return sp.csr_array(sp.diags_array(1.0 / d) @ Rc)


def _fit_fsai(A, P):
    """Factorized SPAI (Kolotilina-Yeremin): ``G`` lower triangular, ``M = G^T G``.

    For row ``i`` with allowed columns ``J`` (``i`` last), solve
    ``A[J, J] y = e_i`` and set ``G[i, J] = y / sqrt(y_i)``; then
    ``diag(G A G^T) = 1`` and ``G`` minimizes ``||I - G L||_F`` over the
    pattern, ``L`` the Cholesky factor of ``A``. ``R = G^T``.
    """
    n = A.shape[0]
    L = sp.csr_array(sp.tril(P, format="csr"))
    L.sort_indices()
    J = _padded_rows(L)
    blocks = _batched_blocks(A, J)
    last = np.diff(L.indptr) - 1  # the diagonal is the last (largest) index of each row
    rhs = np.zeros(J.shape)
    rhs[np.arange(n), last] = 1.0
    try:
        y = np.linalg.solve(blocks, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError as err:
        raise PreconditionerSetupError(
            f"FSAI systems A[J, J] are singular ({err}); A is not positive definite."
        ) from err
    yi = y[np.arange(n), last]
    if not np.all(yi > 0):
        bad = int(np.flatnonzero(~(yi > 0))[0])
        raise PreconditionerSetupError(
            f"FSAI found A[J, J] not positive definite at row {bad}; A is not SPD. "
            f"Use symmetric=False with method='lstsq' (GMRES)."
        )
    g = y / np.sqrt(yi)[:, None]
    valid = J >= 0
    rows = np.repeat(np.arange(n)[:, None], J.shape[1], axis=1)[valid]
    G = sp.csr_array((g[valid], (rows, J[valid])), shape=(n, n))
    return sp.csr_array(G.T)
