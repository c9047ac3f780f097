"""The blog's own numbers (seed 000, copied from its tables) and how ours compare to them."""

import math

from learned_precond import problems

from .text import fmt

# The blog's numbers (seed 000, "Learning LU Factorization using gradient
# descent", tables of the Experiments section). None: not reported.
# e_x/e_b: its code solves against L_hat U_hat x (not A x), e_x is one norm
# over the 1000-sample batch, the solver columns are LAPACK in float32, and
# its L U approximates A^T.
BLOG = {
    "laplace_1d_tb": dict(E_A=9.6e-3, ex_solver=0.024, ex_lu=0.129, eb_solver=1.72e-8,
                          eb_lu=4.06e-7, cond_A=None, cond_A_hat=None),
    "laplace_1d_noT": dict(E_A=2.0e-3, ex_solver=0.024, ex_lu=0.370, eb_solver=1.72e-8,
                           eb_lu=3.59e-7, cond_A=None, cond_A_hat=None),
    "laplace_1d_noB": dict(E_A=6.6e-2, ex_solver=0.024, ex_lu=math.inf, eb_solver=1.72e-8,
                           eb_lu=math.inf, cond_A=None, cond_A_hat=None),
    "convdiff_1d": dict(E_A=4.9e-3, ex_solver=0.345, ex_lu=29380.7, eb_solver=1.84e-8,
                        eb_lu=1.17e-5, cond_A=391199.0, cond_A_hat=4236075520.0),
    "convdiff_2d": dict(E_A=1.6e-4, ex_solver=1.8e-4, ex_lu=2.1e-3, eb_solver=3.15e-8,
                        eb_lu=6.19e-7, cond_A=None, cond_A_hat=None),
    "biharmonic_1d": dict(E_A=9.5e-4, ex_solver=41.95, ex_lu=1.02e19, eb_solver=2.11e-8,
                          eb_lu=4.95e-5, cond_A=44740336.0, cond_A_hat=2534652160.0),
    "biharmonic_2d": dict(E_A=0.078, ex_solver=0.022, ex_lu=0.030, eb_solver=3.39e-8,
                          eb_lu=8.68e-7, cond_A=None, cond_A_hat=None),
    "rbf": dict(E_A=0.243, ex_solver=13.12, ex_lu=math.inf, eb_solver=2.29e-8,
                eb_lu=6.42e-7, cond_A=1201921.0, cond_A_hat=5652878336.0),
    "laplace_2d": None,  # the blog has no 2-D Laplacian row
}


def goal_status(m, blog):
    """Return ``(met, reasons)`` for one main-table row.

    Goals: ``||E_A||_2`` at most 1/10 of the blog's; ``cond(A_hat)`` within a
    factor 10 of ``cond(A)``; ``e_x`` finite; LearnedLU GMRES iterations
    reported (and converged).
    """
    reasons = []
    if m.fit_error:
        return False, [f"fit failed: {m.fit_error}"]
    E = m.E_A if m.dense else m.E_A_probe
    if blog is not None and blog.get("E_A") is not None:
        target = blog["E_A"] / 10
        if not (E <= target):
            reasons.append(f"E_A {fmt(E)} > blog/10 = {fmt(target)}")
    ratio = m.cond_A_hat / m.cond_A if m.cond_A > 0 else math.nan
    if not (0.1 <= ratio <= 10):
        reasons.append(f"cond(A_hat)/cond(A) = {fmt(ratio)}")
    if not math.isfinite(m.e_x):
        reasons.append("e_x not finite")
    its = m.learned_iterations
    if isinstance(its, str) or its is None:
        reasons.append("no GMRES iteration count")
    elif not its[1]:
        reasons.append("GMRES did not converge")
    return not reasons, reasons


def blog_note(case, m, blog):
    """One line on what differs between the blog's metric and ours, for this row."""
    if blog is None:
        return "not in the blog; ours only."
    sym = problems.info(case.problem).symmetric
    parts = []
    if sym:
        parts.append("A is symmetric, so the blog fitting A^T instead of A changes nothing")
    else:
        parts.append("A is nonsymmetric: the blog's L U approximates A^T, so its E_A and "
                     "cond(A_hat) are for A^T")
    parts.append("its e_x/e_b solve L_hat U_hat x (not A x), its e_x is one norm over the "
                 "1000-sample batch (ours: per-sample relative, averaged)")
    parts.append("its solver columns are float32 LAPACK (ours float64)")
    if blog.get("cond_A") is not None and m.cond_A > 0:
        r = m.cond_A / blog["cond_A"]
        if not 0.5 <= r <= 2:
            parts.append(f"its cond(A) is {fmt(1 / r)}x ours (the matrix rounded to float32)")
    return "; ".join(parts) + "."
