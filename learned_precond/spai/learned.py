"""The learned SPAI's fit: L-BFGS on the exact Frobenius loss, started from Jacobi.

The loss is evaluated exactly (:mod:`learned_precond.spai.loss`), in torch,
so its gradient with respect to the stored entries of ``R`` is exact too.
"""

import logging

import numpy as np
import scipy.sparse as sp
import torch

from ..exceptions import PreconditionerSetupError
from .loss import loss_plan, spai_loss

__all__ = ["fit_gd"]

log = logging.getLogger("learned_precond.spai")


def fit_gd(A, d, P, symmetric, max_steps, tol, report, verbose):
    """L-BFGS on the exact Frobenius loss, in Jacobi-scaled variables.

    SPD form: with ``A_s = D^-1/2 A D^-1/2`` and ``R = D^-1/2 R_s``,
    ``R^T A R = R_s^T A_s R_s``, so the loss is unchanged and ``R_s = I``
    is Jacobi. Nonsymmetric form: with ``A_c = A D^-1`` and ``R = D^-1 R_c``,
    ``A R = A_c R_c`` exactly.
    """
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
