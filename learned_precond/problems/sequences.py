r"""Slowly changing matrix sequences (issue 18): time stepping and Newton's method.

A preconditioner that can be reused, or refitted from the previous one, pays
for itself over a *sequence* of nearby matrices, the way implicit time
stepping and Newton's method produce them. Each generator here returns a
:class:`MatrixSequence` of ``steps`` (default 50) sparse matrices on the
``n x n`` interior grid of the unit square (``N = n**2``, ``h = 1/(n+1)``,
natural order with x fastest, as in :mod:`learned_precond.problems.pde`),
with the right-hand side of every step and its solution. Everything is
generated from ``(n, steps, seed)``; nothing is downloaded.

:func:`moving_diffusion_sequence`
    Backward Euler for the heat equation :math:`u_t - \nabla\cdot(k\nabla u)
    = 1` whose conductivity ``k(x, t)`` is a seeded lognormal background
    times a bump that moves along a circle: the matrices
    ``h^2/dt I + K(t_k)`` (SPD, same pattern every step), the right-hand
    sides ``h^2/dt u_{k-1} + h^2``.
:func:`newton_sequence`
    Load continuation for the quasilinear problem
    :math:`-\nabla\cdot((1 + u^2)\nabla u) = s f`: one Newton step per load
    increment, the Jacobians ``F'(u_{k-1})`` (nonsymmetric: the derivative
    of the coefficient adds a first-order term) and ``-F(u_{k-1})``.

The solutions are computed with SuperLU (the next step needs them), so the
right-hand sides do not depend on how a caller solves. These are not
registry entries: a registry :class:`~learned_precond.problems.Problem` is
one matrix.
"""

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._structure import canonical_csr
from .._validation import check_positive_int
from ._build import check_float
from .pde import _coefficient_field

__all__ = ["SEQUENCES", "MatrixSequence", "moving_diffusion_sequence", "newton_sequence"]


@dataclass(frozen=True, eq=False)
class MatrixSequence:
    """A sequence of nearby sparse systems ``A_k x_k = b_k``, ``k = 0 .. steps-1``.

    Iterating gives the pairs ``(A_k, b_k)``; ``seq[k]`` is one pair.

    Attributes
    ----------
    name : str
        Family name (a key of :data:`SEQUENCES`).
    matrices : tuple of scipy.sparse.csr_array
        The matrices, float64, canonical, all with the same sparsity pattern.
    rhs : tuple of numpy.ndarray
        The right-hand sides.
    solutions : tuple of numpy.ndarray
        ``x_k`` with ``A_k x_k = b_k`` (SuperLU), which the next step builds on
        (for :func:`newton_sequence` the Newton corrections).
    spd : bool
        Every matrix is symmetric positive definite (CG applies).
    grid_shape : tuple of int
        ``(n, n)``, x fastest.
    params : dict
        The generator's parameters.
    description : str
        One line for tables.
    """

    name: str
    matrices: tuple
    rhs: tuple
    solutions: tuple
    spd: bool
    grid_shape: tuple
    params: dict
    description: str

    @property
    def N(self):
        """Number of unknowns."""
        return self.matrices[0].shape[0]

    def __len__(self):
        return len(self.matrices)

    def __getitem__(self, k):
        return self.matrices[k], self.rhs[k]

    def __iter__(self):
        return iter(zip(self.matrices, self.rhs, strict=True))

    def relative_changes(self):
        r"""``||A_{k+1} - A_k||_F / ||A_k||_F`` for ``k = 0 .. steps-2``, an array."""
        return np.array([
            sp.linalg.norm(B - A) / sp.linalg.norm(A)
            for A, B in zip(self.matrices[:-1], self.matrices[1:], strict=True)])

    def __repr__(self):
        return (f"MatrixSequence({self.name}: {len(self)} matrices, N={self.N}, "
                f"nnz={self.matrices[0].nnz}, spd={self.spd})")


def _check_steps(steps):
    return check_positive_int(steps, "steps")


def _lu_solve(A, b, *, symmetric):
    spec = "MMD_AT_PLUS_A" if symmetric else "COLAMD"
    return spla.splu(sp.csc_array(A), permc_spec=spec).solve(b)


# -- moving-bump diffusion ----------------------------------------------------------


def _diffusion_matrix(k):
    """Unscaled 5-point ``-div(k grad u)`` from the node field k, (n+2) x (n+2), [j, i].

    Face coefficients are harmonic means of the two end nodes, as in
    :func:`~learned_precond.problems.pde.diffusion_2d`.
    """
    n = k.shape[0] - 2
    kx = 2.0 * k[:, 1:] * k[:, :-1] / (k[:, 1:] + k[:, :-1])
    ky = 2.0 * k[1:, :] * k[:-1, :] / (k[1:, :] + k[:-1, :])
    west, east = kx[1:-1, :-1], kx[1:-1, 1:]
    south, north = ky[:-1, 1:-1], ky[1:, 1:-1]
    idx = np.arange(n * n).reshape(n, n)
    r = np.concatenate([idx.ravel(), idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    c = np.concatenate([idx.ravel(), idx[:, 1:].ravel(), idx[1:, :].ravel()])
    v = np.concatenate([(west + east + south + north).ravel(), -east[:, :-1].ravel(),
                        -north[:-1, :].ravel()])
    off = r != c
    A = sp.coo_array(
        (np.concatenate([v, v[off]]), (np.concatenate([r, c[off]]), np.concatenate([c, r[off]]))),
        shape=(n * n,) * 2)
    return A


def moving_diffusion_sequence(n=64, *, steps=50, dt=1e-2, contrast=100.0, seed=0):
    r"""Backward Euler for heat conduction with a conductivity bump that moves: SPD, slowly changing.

    The heat equation :math:`u_t - \nabla\cdot(k(x, t)\nabla u) = 1` on the
    unit square, :math:`u = 0` on the boundary and at :math:`t = 0`,
    vertex-centred 5-point finite differences (face coefficients the
    harmonic mean of the nodes, as in
    :func:`~learned_precond.problems.pde.diffusion_2d`), backward Euler with
    step ``dt``, all multiplied by :math:`h^2`:

    .. math:: A_k = \frac{h^2}{dt} I + K(t_k), \qquad
              b_k = \frac{h^2}{dt} u_{k-1} + h^2 \mathbf{1}, \qquad
              A_k u_k = b_k,\ u_{-1} = 0.

    The conductivity is a lognormal background :math:`k_0` (max/min 10,
    correlation length 1/8, from ``seed``) times a Gaussian bump,
    :math:`k = k_0 (1 + (\text{contrast} - 1) e^{-|x - c_k|^2 / (2 w^2)})`,
    width :math:`w = 0.1`, whose centre :math:`c_k` goes a quarter turn around
    the circle of radius 1/4 about the middle of the square over the
    sequence (start angle from ``seed``). Every matrix is SPD with the
    pattern of :func:`~learned_precond.problems.pde.laplace_2d`; with the
    defaults successive matrices differ by about 6% (Frobenius norm,
    :meth:`MatrixSequence.relative_changes`).

    Parameters
    ----------
    n : int
        Grid points per side (N = n**2).
    steps : int
        Number of time steps (matrices).
    dt : float
        Time step (> 0); the smaller, the larger the identity shift.
    contrast : float
        Conductivity at the bump's centre over the background (>= 1).
    seed : int
        Seed of the background field and of the bump's start angle.

    Returns
    -------
    MatrixSequence

    Examples
    --------
    >>> import numpy as np
    >>> seq = moving_diffusion_sequence(8, steps=3)
    >>> len(seq), seq.matrices[0].shape, seq.spd
    (3, (64, 64), True)
    >>> A, b = seq[1]
    >>> bool(abs(A - A.T).max() == 0), bool(np.allclose(A @ seq.solutions[1], b))
    (True, True)
    """
    n = check_positive_int(n, "n")
    steps = _check_steps(steps)
    dt = check_float(dt, "dt", positive=True)
    contrast = check_float(contrast, "contrast")
    if contrast < 1.0:
        raise ValueError(f"contrast must be >= 1 (the bump conducts better), got {contrast}.")
    seed = check_positive_int(seed, "seed", minimum=0)
    h = 1.0 / (n + 1)
    background = _coefficient_field("lognormal", n, 10.0, 0.125, seed)
    phase = 2.0 * math.pi * np.random.default_rng(seed).random()
    t = np.arange(n + 2) * h
    x, y = np.meshgrid(t, t)  # [j, i]
    shift = sp.eye_array(n * n, format="csr") * (h * h / dt)
    matrices, rhs, solutions = [], [], []
    u = np.zeros(n * n)
    for k in range(steps):
        angle = phase + 0.5 * math.pi * k / max(steps - 1, 1)
        cx, cy = 0.5 + 0.25 * math.cos(angle), 0.5 + 0.25 * math.sin(angle)
        bump = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.1**2))
        A = canonical_csr(shift + _diffusion_matrix(background * (1 + (contrast - 1) * bump)))
        b = (h * h / dt) * u + h * h
        u = _lu_solve(A, b, symmetric=True)
        matrices.append(A)
        rhs.append(b)
        solutions.append(u)
    return MatrixSequence(
        "moving_diffusion", tuple(matrices), tuple(rhs), tuple(solutions), True, (n, n),
        {"n": n, "steps": steps, "dt": dt, "contrast": contrast, "seed": seed},
        f"heat equation, backward Euler dt={dt:g}, conductivity bump x{contrast:g} moving "
        f"a quarter turn")


# -- Newton's method on a quasilinear problem ----------------------------------------


def _quasilinear(u, n, h, source):
    """Residual F(u) and Jacobian F'(u) of ``-div((1 + u^2) grad u) = source`` (times h^2).

    Face coefficient ``(a(u_p) + a(u_q)) / 2`` with ``a(u) = 1 + u^2``, zero
    Dirichlet values outside. ``F_p = sum_q k_pq (u_p - u_q) - h^2 source_p``;
    ``dF_p/du_p = sum_q k_pq + u_p (u_p - u_q)``, ``dF_p/du_q = -k_pq + u_q (u_p - u_q)``.
    """
    U = np.zeros((n + 2, n + 2))
    U[1:-1, 1:-1] = u.reshape(n, n)
    P = U[1:-1, 1:-1]
    a_p = 1.0 + P * P
    idx = np.arange(n * n).reshape(n, n)
    F = -(h * h) * source.reshape(n, n)
    diag = np.zeros((n, n))
    rows, cols, vals = [], [], []
    # neighbour (east, west, north, south), the interior nodes that have it, its offset
    for Q, inside, offset in [
        (U[1:-1, 2:], (slice(None), slice(None, -1)), 1),
        (U[1:-1, :-2], (slice(None), slice(1, None)), -1),
        (U[2:, 1:-1], (slice(None, -1), slice(None)), n),
        (U[:-2, 1:-1], (slice(1, None), slice(None)), -n),
    ]:
        k_f = 0.5 * (a_p + 1.0 + Q * Q)
        diff = P - Q
        F = F + k_f * diff
        diag += k_f + P * diff
        rows.append(idx[inside].ravel())
        cols.append(idx[inside].ravel() + offset)
        vals.append((-k_f + Q * diff)[inside].ravel())
    J = sp.coo_array(
        (np.concatenate([diag.ravel(), *vals]),
         (np.concatenate([idx.ravel(), *rows]), np.concatenate([idx.ravel(), *cols]))),
        shape=(n * n,) * 2)
    return F.ravel(), canonical_csr(J)


def newton_sequence(n=64, *, steps=50, load=150.0, seed=0):
    r"""Jacobians of Newton's method with load continuation on ``-div((1+u^2) grad u) = s f``.

    The quasilinear problem :math:`-\nabla\cdot((1 + u^2)\nabla u) = s f` on
    the unit square, :math:`u = 0` on the boundary, 5-point finite
    differences with face coefficient the mean of :math:`1 + u^2` at the two
    nodes, multiplied by :math:`h^2` (residual :math:`F(u; s)`). The source
    :math:`f` is a seeded smooth positive field (lognormal, max/min 4,
    correlation length 1/8). The load rises in ``steps`` equal increments,
    :math:`s_k = \text{load}\,(k + 1)/\text{steps}`, and each increment takes
    one Newton step from the previous iterate (:math:`u_{-1} = 0`):

    .. math:: A_k = F'(u_{k-1}), \qquad b_k = -F(u_{k-1}; s_k), \qquad
              u_k = u_{k-1} + A_k^{-1} b_k.

    :math:`A_0` is the 5-point Laplacian; later Jacobians add the
    derivative of the coefficient, :math:`-\nabla\cdot(2u\,\delta u\,\nabla
    u)`, a first-order term that makes them nonsymmetric
    (:math:`(A_k)_{pq} - (A_k)_{qp} = u_p^2 - u_q^2`). With the defaults the
    final iterate peaks near 2.8 (the coefficient varies about 9x), its
    residual is ~3e-4 of the load's, and successive Jacobians differ by
    about 4% (at most 9%).

    Parameters
    ----------
    n : int
        Grid points per side (N = n**2).
    steps : int
        Load increments (one Newton step and one matrix each).
    load : float
        Final load :math:`s` (> 0).
    seed : int
        Seed of the source field.

    Returns
    -------
    MatrixSequence

    Examples
    --------
    >>> import numpy as np
    >>> seq = newton_sequence(8, steps=3)
    >>> len(seq), seq.matrices[2].shape, seq.spd
    (3, (64, 64), False)
    >>> A, b = seq[2]
    >>> bool(np.allclose(A @ seq.solutions[2], b)), bool(abs(A - A.T).max() > 0)
    (True, True)
    """
    n = check_positive_int(n, "n")
    steps = _check_steps(steps)
    load = check_float(load, "load", positive=True)
    seed = check_positive_int(seed, "seed", minimum=0)
    h = 1.0 / (n + 1)
    f = _coefficient_field("lognormal", n, 4.0, 0.125, seed)[1:-1, 1:-1].ravel()
    f = f / f.mean()
    u = np.zeros(n * n)
    matrices, rhs, solutions = [], [], []
    for k in range(steps):
        s = load * (k + 1) / steps
        F, J = _quasilinear(u, n, h, s * f)
        b = -F
        du = _lu_solve(J, b, symmetric=k == 0)
        matrices.append(J)
        rhs.append(b)
        solutions.append(du)
        u = u + du
    return MatrixSequence(
        "newton", tuple(matrices), tuple(rhs), tuple(solutions), False, (n, n),
        {"n": n, "steps": steps, "load": load, "seed": seed},
        f"Newton with load continuation, -div((1+u^2) grad u) = s f, s up to {load:g}")


#: Family name -> generator.
SEQUENCES = {
    "moving_diffusion": moving_diffusion_sequence,
    "newton": newton_sequence,
}
