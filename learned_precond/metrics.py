"""Accuracy measures for preconditioners and solutions.

operator_error
    ``||A - A_hat||_F / ||A||_F``: how well an approximate factorization
    ``A_hat = L U`` reproduces ``A`` (the "E_A" of the learned LU).
relative_forward_error
    ``E ||M A x - x|| / ||x||`` for Gaussian ``x``: how far ``M`` is from
    ``A^-1`` on typical vectors (0 for the exact inverse).
backward_error
    Normwise backward error of an approximate solution.
condest
    1-norm condition number ``||A||_1 ||A^-1||_1`` (estimated for large sparse A).
"""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._validation import as_matrix, check_positive_int, check_rhs

__all__ = ["operator_error", "relative_forward_error", "backward_error", "condest"]

# Dense computations (exact norms, explicit inverses) below this size.
_DENSE_LIMIT = 500
# Columns per block when an operator is applied to many vectors at once.
_BLOCK = 64


def _as_operator_or_matrix(A, name):
    return as_matrix(A, name=name, allow_operator=True)


def _apply_block(A, X):
    """Return ``A @ X`` for a matrix or LinearOperator ``A`` and a 2-D block ``X``."""
    if isinstance(A, spla.LinearOperator):
        return np.asarray(A.matmat(X))
    return np.asarray(A @ X)


def operator_error(A, A_hat):
    """Relative Frobenius error ``||A - A_hat||_F / ||A||_F``.

    Parameters
    ----------
    A : sparse array or ndarray
        Reference matrix.
    A_hat : sparse array, ndarray or LinearOperator
        Approximation of ``A`` (for instance ``L @ U``). An operator is
        applied to the identity in blocks of columns (``N`` products).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from learned_precond.metrics import operator_error
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> float(operator_error(A, A))
    0.0
    """
    A = as_matrix(A)
    A_hat = _as_operator_or_matrix(A_hat, "A_hat")
    if A_hat.shape != A.shape:
        raise ValueError(f"A_hat has shape {A_hat.shape} but A has shape {A.shape}.")
    n = A.shape[0]
    A_norm = spla.norm(A, "fro") if sp.issparse(A) else np.linalg.norm(A, "fro")
    if not isinstance(A_hat, spla.LinearOperator):
        diff = A - A_hat
        err = spla.norm(diff, "fro") if sp.issparse(diff) else np.linalg.norm(diff, "fro")
    else:
        A_csc = sp.csc_array(A)
        sq = 0.0
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            E = np.zeros((n, stop - start))
            E[np.arange(start, stop), np.arange(stop - start)] = 1.0
            D = _apply_block(A_hat, E) - A_csc[:, start:stop].toarray()
            sq += float(np.sum(D * D))
        err = np.sqrt(sq)
    return float(err / A_norm) if A_norm > 0 else float(err)


def relative_forward_error(M, A, *, n_samples=1000, seed=0):
    """Mean of ``||M (A x) - x|| / ||x||`` over ``x ~ N(0, I)``.

    Parameters
    ----------
    M : LinearOperator, sparse array or ndarray
        Preconditioner ``M ~ A^-1``.
    A : sparse array, ndarray or LinearOperator
        System matrix.
    n_samples : int, optional
        Number of random vectors (applied in blocks of 64 columns).
    seed : int or numpy.random.Generator, optional
        Seed of the Gaussian samples: sample ``j`` is row ``j`` of
        ``default_rng(seed).standard_normal((n_samples, N))``.

    Returns
    -------
    float
        0 for the exact inverse; 1 for ``M = 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from learned_precond.metrics import relative_forward_error
    >>> A = np.diag([1.0, 2.0, 4.0])
    >>> bool(relative_forward_error(np.linalg.inv(A), A, n_samples=10) < 1e-14)
    True
    """
    A = _as_operator_or_matrix(A, "A")
    M = _as_operator_or_matrix(M, "M")
    if M.shape != A.shape:
        raise ValueError(f"M has shape {M.shape} but A has shape {A.shape}.")
    n_samples = check_positive_int(n_samples, "n_samples")
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    total = 0.0
    for start in range(0, n_samples, _BLOCK):
        k = min(_BLOCK, n_samples - start)
        # samples as rows, so the stream does not depend on the block size
        X = rng.standard_normal((k, n)).T
        R = _apply_block(M, _apply_block(A, X)).reshape(n, k) - X
        total += float(np.sum(np.linalg.norm(R, axis=0) / np.linalg.norm(X, axis=0)))
    return total / n_samples


def _norm2(A):
    """Spectral norm of a matrix or operator (dense SVD when small, else ``svds``)."""
    n = A.shape[0]
    if n <= _DENSE_LIMIT and not isinstance(A, spla.LinearOperator):
        dense = A.toarray() if sp.issparse(A) else A
        return float(np.linalg.norm(dense, 2))
    if n <= 2:
        dense = _apply_block(A, np.eye(n))
        return float(np.linalg.norm(dense, 2))
    s = spla.svds(A, k=1, return_singular_vectors=False, random_state=0)
    return float(s[0])


def backward_error(A, x_hat, b, *, norm_A=None):
    """Normwise backward error ``||A x - b|| / (||A||_2 ||x|| + ||b||)``.

    The smallest relative perturbation of ``A`` and ``b`` for which ``x_hat``
    is an exact solution (Rigal-Gaches); about machine epsilon for a
    backward stable solver.

    Parameters
    ----------
    A : sparse array, ndarray or LinearOperator
        System matrix.
    x_hat : array_like
        Approximate solution, shape ``(N,)``.
    b : array_like
        Right-hand side, shape ``(N,)``.
    norm_A : float, optional
        ``||A||_2`` if already known; otherwise computed (dense SVD up to
        N=500, else one singular value by ``scipy.sparse.linalg.svds``).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from learned_precond.metrics import backward_error
    >>> A = np.array([[2.0, 0.0], [0.0, 1.0]])
    >>> float(backward_error(A, np.array([1.0, 1.0]), np.array([2.0, 1.0])))
    0.0
    """
    A = _as_operator_or_matrix(A, "A")
    n = A.shape[0]
    x_hat = check_rhs(x_hat, n, name="x_hat")
    b = check_rhs(b, n)
    r = np.asarray(_apply_block(A, x_hat[:, None])).reshape(n) - b
    if norm_A is None:
        norm_A = _norm2(A)
    denom = norm_A * np.linalg.norm(x_hat) + np.linalg.norm(b)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(r) / denom)


def condest(A):
    """1-norm condition number ``||A||_1 ||A^-1||_1``.

    Exact (``numpy.linalg.cond(A, 1)``) for dense ``A`` and for sparse ``A``
    with at most 500 rows. Larger sparse ``A`` is factored once with
    ``splu`` and both norms are estimated with Higham-Tisseur's block 1-norm
    estimator (``scipy.sparse.linalg.onenormest``), which returns a lower
    bound that is usually exact or within a factor of 3.

    Parameters
    ----------
    A : sparse array or ndarray
        Square system matrix.

    Returns
    -------
    float
        ``inf`` for a singular ``A``.

    Examples
    --------
    >>> import numpy as np
    >>> from learned_precond.metrics import condest
    >>> float(condest(np.diag([1.0, 10.0])))
    10.0
    """
    A = as_matrix(A)
    n = A.shape[0]
    if not sp.issparse(A) or n <= _DENSE_LIMIT:
        dense = A.toarray() if sp.issparse(A) else A
        with np.errstate(all="ignore"):
            try:
                c = float(np.linalg.cond(dense, 1))
            except np.linalg.LinAlgError:
                return float("inf")
        return c if np.isfinite(c) else float("inf")
    A = sp.csc_array(A, dtype=np.float64)
    try:
        lu = spla.splu(A)
    except RuntimeError:  # "Factor is exactly singular"
        return float("inf")
    inv = spla.LinearOperator(
        A.shape, matvec=lu.solve, rmatvec=lambda y: lu.solve(y, trans="T"), dtype=np.float64
    )
    return float(spla.onenormest(A) * spla.onenormest(inv))
