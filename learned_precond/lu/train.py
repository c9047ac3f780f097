"""Stage 5, training: the factor model, the losses and the optimizer loop.

The model holds a unit block lower GFMM factor ``L`` and either a block upper
GFMM factor ``U`` (general A) or SPD diagonal blocks ``S`` with ``U = S L^T``
(symmetric A, so that ``M = L^-T S^-1 L^-1`` is SPD). Everything here works on
the *permuted, padded and scaled* matrix; :mod:`learned_precond.lu.operator`
maps to the user's numbering.

Losses (``loss=``)
------------------
``'probe'`` (default)
    ``||L U Z - A Z||_F^2 / ||A Z||_F^2`` on ``k`` fresh Gaussian probe columns
    per step: an unbiased estimate of ``||L U - A||_F^2 / ||A||_F^2``. One step
    costs ``O(nnz(A) k + N (P + r) k)``.
``'preconditioned'``
    ``||(L U - A) Y||_F^2 / ||Z||_F^2`` with ``Y = U^-1 L^-1 Z`` computed by the
    compiled substitution without gradient: at the current parameters this is
    ``||Z - A M Z||``, the right-preconditioned residual on the probes, with
    the gradient taken through ``L U`` only. One extra substitution per step.
    Unlike ``'probe'``, whose Frobenius fit can make the preconditioner
    worse while its loss falls, it targets what GMRES feels; in our trials it
    improved the figure of merit only slowly, so it is not the default.
``'quality'``
    ``||U^-1 L^-1 A Z - Z||_F^2 / ||Z||_F^2`` through the differentiable
    blocked substitution: what a preconditioner is for, but sequential over
    the leaves (use it for a few hundred leaves at most).
``'identity'``
    The seed's loss: ``Z = I`` (all ``N`` columns), ``O(N^2)`` per step; kept to
    reproduce the seed on small problems.

``transpose_loss=True`` adds the seed's ``||U^T L^T Z - A^T Z||^2`` term and
``blockwise=True`` the seed's block-row-by-block-row schedule.
"""

import copy
import logging
import math
import time

import torch
from torch import nn

from .._convert import to_torch
from .._substitution import solve_lower_torch
from ..exceptions import PreconditionerSetupError
from ..gfmm import GFMMBlock, reverse_blocks, transpose_params
from .pack import spd_root
from .report import FitReport

__all__ = ["LOSSES", "FitReport", "LUModel", "train", "train_stage"]

logger = logging.getLogger(__name__)

LOSSES = ("probe", "preconditioned", "adaptive", "quality", "identity")


class LUModel(nn.Module):
    """``L`` (unit block lower GFMM) and ``U`` (block upper GFMM, or ``S L^T``)."""

    def __init__(self, layout, *, symmetric, dtype=torch.float64, device="cpu"):
        super().__init__()
        self.layout = layout
        self.symmetric = bool(symmetric)
        self.L = GFMMBlock(layout, "lower", unit_diagonal=True, dtype=dtype, device=device)
        M, P = layout.n_leaves, layout.block_size
        if self.symmetric:
            # S_i = C_i C_i^T: SPD by construction (C_i is a free P x P matrix).
            self.C = nn.Parameter(torch.eye(P, dtype=dtype, device=device).repeat(M, 1, 1))
            self.U = None
        else:
            self.C = None
            self.U = GFMMBlock(layout, "upper", dtype=dtype, device=device)

    @classmethod
    def from_factors(cls, factors, *, dtype=torch.float64, device="cpu"):
        """A trainable model holding ``factors`` (:class:`~learned_precond.lu.pack.LUFactors`).

        For ``U = S L^T`` the free parameter ``C`` (``S = C C^T``) is the
        Cholesky factor of ``S``.
        """
        model = cls(factors.layout, symmetric=factors.symmetric, dtype=dtype, device=device)
        with torch.no_grad():
            for block, arrays in ((model.L, factors.L), (model.U, factors.U)):
                if block is None:
                    continue
                stored = block.stored()
                for name, value in arrays.items():
                    stored[name].copy_(to_torch(value, dtype=dtype, device=device))
            if factors.symmetric:
                model.C.copy_(to_torch(spd_root(factors.S), dtype=dtype, device=device))
        return model

    # -- pieces -------------------------------------------------------------
    def diagonal_blocks(self):
        """Diagonal blocks of ``U`` in leaf order, shape (M, P, P)."""
        if self.symmetric:
            return self.C @ self.C.transpose(-1, -2)
        return torch.flip(self.U.D, dims=(0,))

    def n_parameters(self):
        """Number of scalar parameters."""
        return sum(p.numel() for p in self.parameters())

    # -- products -------------------------------------------------------------
    def _blocks(self, Z):
        M, P = self.layout.n_leaves, self.layout.block_size
        return Z.reshape(M, P, -1)

    def apply_U(self, Z):
        """``U Z``."""
        if self.symmetric:
            LtZ = self._blocks(self.L.transpose_apply(Z))
            return torch.bmm(self.diagonal_blocks(), LtZ).reshape(Z.shape)
        return self.U(Z)

    def apply_Ut(self, Z):
        """``U^T Z``."""
        if self.symmetric:
            SZ = torch.bmm(self.diagonal_blocks(), self._blocks(Z)).reshape(Z.shape)
            return self.L(SZ)
        return self.U.transpose_apply(Z)

    def product(self, Z):
        """``L U Z`` (the learned ``A_hat`` applied to ``Z``)."""
        return self.L(self.apply_U(Z))

    def product_t(self, Z):
        """``U^T L^T Z``."""
        return self.apply_Ut(self.L.transpose_apply(Z))

    def solve(self, Z):
        """``U^-1 L^-1 Z`` by differentiable blocked substitution (reference speed)."""
        M, P = self.layout.n_leaves, self.layout.block_size
        Y = solve_lower_torch(self.L.params(), Z.reshape(M, P, -1))
        if self.symmetric:
            Y = torch.linalg.solve(self.diagonal_blocks(), Y)
            Tp = transpose_params(self.L.params())
            X = reverse_blocks(solve_lower_torch(Tp, reverse_blocks(Y)))
        else:
            X = reverse_blocks(solve_lower_torch(self.U.params(), reverse_blocks(Y)))
        return X.reshape(Z.shape)


def train_stage(model, system, options, report, *, merit, merit_value, clock, generator):
    """Stage 5 of ``LearnedLU.fit``: train ``model`` on ``system`` as ``options`` say.

    Training gets what is left of ``time_budget`` (less a reserve for packing
    and checks), or the default limit ``max(30 s, 10 x report.start_seconds)``;
    the limit is recorded as ``report.train_limit``. Returns the kept model,
    on the CPU in float64: the start itself (built in float64) when no step
    improved it, whatever ``dtype`` training ran in.
    """
    from ._merit import fast_solve

    apply_A, apply_At = system.torch_products(dtype=options.training_dtype,
                                              device=options.device)
    deadline, report.train_limit = clock.train_deadline(report.start_seconds,
                                                        reserve=2 * merit.pack_seconds)
    start = model
    if options.training_dtype != next(start.parameters()).dtype:
        model = copy.deepcopy(start).to(options.training_dtype)
    try:
        converged = train(
            model, apply_A, apply_At, report, loss=options.loss,
            transpose_loss=options.transpose_loss, blockwise=options.blockwise,
            max_steps=options.max_steps, n_probes=options.n_probes,
            lr=options.learning_rate, tol=options.tol,
            patience=options.patience_evaluations, eval_every=20, generator=generator,
            verbose=options.verbose, callback=options.callback, fast_solve=fast_solve,
            train_near_field=options.train_near_field, evaluate=merit,
            initial_value=merit_value, deadline=deadline, eval_seconds=merit.seconds)
    except FloatingPointError as exc:
        raise PreconditionerSetupError(
            f"LearnedLU training diverged: {exc}. Try a smaller lr, a smaller "
            f"block_size, or init='block_jacobi'.", report=report) from exc
    report.converged = converged or report.stop_reason == "exact"
    if report.best_step == 0:
        model = start  # the start itself, not its rounding to the training dtype
    if report.stop_reason == "time_limit":
        report.notes.append(
            f"training stopped at the default time limit of {report.train_limit:.3g} s "
            f"(max(30 s, 10 x the start's {report.start_seconds:.3g} s)); pass "
            f"time_budget= (seconds, or math.inf) to allow more")
    return model.to("cpu").double()


def train(model, apply_A, apply_At, report, *, loss="probe", transpose_loss=False,
          blockwise=False, max_steps=300, n_probes=16, lr=1e-3, tol=1e-3,
          patience=5, eval_every=10, generator=None, verbose=False, callback=None,
          fast_solve=None, evaluate=None, train_near_field=True, initial_value=None,
          deadline=None, eval_seconds=0.0):
    """Run the optimizer on ``model`` in place; keep the best parameters.

    Parameters
    ----------
    model : LUModel
    apply_A, apply_At : callable
        ``Z -> A Z`` and ``Z -> A^T Z`` on torch tensors (N, k) in the model's
        numbering. ``apply_At`` may be None when ``transpose_loss`` is False.
    report : FitReport
        Filled in place.
    tol : float
        Stop when the best validation loss improved by less than this
        relative amount over ``patience`` consecutive evaluations.

    fast_solve : callable, optional
        ``(model, W) -> U^-1 L^-1 W`` without gradient (the compiled
        substitution on freshly packed factors); needed by ``loss='adaptive'``.
    evaluate : callable, optional
        ``model -> float``, lower is better: the figure of merit used to keep
        the best parameters and to stop early (``LearnedLU.fit`` passes the
        GMRES residual reduction after a fixed number of iterations, so the
        kept factors are never worse than the initialization in the way that
        matters). Default: the loss on fixed validation probes.
    initial_value : float, optional
        ``validation()`` of the model as passed in, when the caller has it
        already (it is not evaluated again).
    deadline : Deadline, optional
        When to stop (:class:`learned_precond.lu.budget.Deadline`), checked
        before every step. When the time left would not cover one more step
        and an evaluation, the current parameters are evaluated at once (so
        the steps since the last evaluation are not lost) and training
        stops; ``report.stop_reason`` is then ``deadline.reason`` and
        ``report.cut_short`` ends in ``'train'``.
    eval_seconds : float
        What one ``evaluate`` call is expected to cost, when the caller has
        timed one (the estimate is refined by every evaluation here).

    Returns
    -------
    bool
        True when training stopped on its tolerance.
    """
    N = model.layout.size
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device

    def probes(k):
        return torch.randn(N, k, generator=generator, dtype=dtype).to(device)

    if loss == "identity":
        Z_val = torch.eye(N, dtype=dtype, device=device)
    else:
        Z_val = probes(max(2 * n_probes, 16))
    AZ_val = apply_A(Z_val)
    AtZ_val = apply_At(Z_val) if transpose_loss else None

    pool = {}

    def test_vectors(k):
        # Adaptive test vectors (as in bootstrap AMG): a few sweeps of the
        # error propagator I - w M A on a block of vectors keep the directions
        # the current preconditioner handles worst (small eigenvalues of M A),
        # which a Frobenius fit on uniform probes barely sees.
        with torch.no_grad():
            if "E" not in pool:
                pool["omega"] = 1.0 / _largest_eigenvalue(model, apply_A, fast_solve,
                                                          probes(1))
                E, sweeps = probes(k), 3
            else:
                E, sweeps = pool["E"], 1
            for _ in range(sweeps):
                E = E - pool["omega"] * fast_solve(model, apply_A(E))
            E, _ = torch.linalg.qr(E)
            pool["E"] = E
        return E

    def objective(Z, AZ, AtZ, rows=None):
        if loss == "preconditioned":
            # Probes Y = M W through the current (detached) preconditioner:
            # (L U - A) M W = W - A M W at the current parameters, so this is
            # the right-preconditioned residual ||I - A M||_F on the probes,
            # with the gradient taken through L U only (a Gauss-Newton-like
            # step that is exact to first order when A M ~ I).
            with torch.no_grad():
                Y = fast_solve(model, Z)
                AY = apply_A(Y)
            R = model.product(Y) - AY
            value = _masked_sq(R, rows) / _masked_sq(Z, rows)
        elif loss == "quality":
            R = model.solve(AZ) - Z
            value = _masked_sq(R, rows) / _masked_sq(Z, rows)
        else:
            R = model.product(Z) - AZ
            value = _masked_sq(R, rows) / _masked_sq(AZ, rows)
        if loss == "adaptive":
            E = test_vectors(Z.shape[1])
            AE = apply_A(E)
            Re = model.product(E) - AE
            value = value + _masked_sq(Re, rows) / _masked_sq(AE, rows)
        if transpose_loss:
            Rt = model.product_t(Z) - AtZ
            value = value + _masked_sq(Rt, rows) / _masked_sq(AtZ, rows)
        return value

    timing = {"eval": float(eval_seconds), "step": 0.0}

    def validation():
        t = time.perf_counter()
        if evaluate is not None:
            value = float(evaluate(model))
        else:
            with torch.no_grad():
                value = float(objective(Z_val, AZ_val, AtZ_val))
        timing["eval"] = max(timing["eval"], time.perf_counter() - t)
        return value

    def out_of_time(margin=0.0):
        return deadline is not None and deadline.remaining() <= margin

    best_val = validation() if initial_value is None else float(initial_value)
    report.val_history.append((0, best_val))
    t = time.perf_counter()
    report.init_relative_error = _relative_error(model, Z_val, AZ_val)
    # Until a step is timed: a step (forward and backward on n_probes columns)
    # costs about two products on the validation probes.
    timing["step"] = 2 * (time.perf_counter() - t)
    if max_steps == 0:
        report.stop_reason = "max_steps=0"
        report.relative_error = report.init_relative_error
        return False
    # An exact start cannot improve: 1e-14 in double precision, the same
    # number of ulps in single (whose rounding alone leaves ~1e-7, so a float32
    # fit trained the exact start of a banded matrix for max_steps, and made it
    # worse on the way).
    exact = 1e-14 * float(torch.finfo(dtype).eps / torch.finfo(torch.float64).eps)
    if report.init_relative_error <= exact:
        report.stop_reason = "exact"
        report.relative_error = report.init_relative_error
        return True

    if not train_near_field:
        for p in (model.L.E, model.C, *(
                (model.U.D, model.U.E) if model.U is not None else ())):
            if p is not None:
                p.requires_grad_(False)
    def take_step(optimizer, frozen, rows):
        """One optimizer step on fresh probes; the loss, or None after a recovery."""
        t = time.perf_counter()
        if loss == "identity":
            Z, AZ, AtZ = Z_val, AZ_val, AtZ_val
        else:
            Z = probes(n_probes)
            # 'preconditioned' applies A to its own probes M Z instead.
            AZ = None if loss == "preconditioned" else apply_A(Z)
            AtZ = apply_At(Z) if transpose_loss else None
        optimizer.zero_grad(set_to_none=True)
        value = objective(Z, AZ, AtZ, rows)
        if not torch.isfinite(value):
            _recover(model, best_state, optimizer, report)
            return None
        value.backward()
        if frozen is not None:
            for p, mask in zip(model.parameters(), frozen, strict=True):
                if p.grad is not None:
                    p.grad[mask] = 0
        optimizer.step()
        value = float(value.detach())
        report.loss_history.append(value)
        timing["step"] = time.perf_counter() - t
        return value

    stages = _blockwise_stages(model) if blockwise else [None]
    best_state = copy.deepcopy(model.state_dict())
    steps_per_stage = max(1, max_steps // len(stages))
    frozen = None
    converged = timed_out = False
    step = last_eval = 0
    t0 = time.perf_counter()
    for rows in stages:
        optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        stall = 0
        stage_best = objective_value = math.inf
        for _ in range(steps_per_stage):
            # No time left for one more step and its evaluation: evaluate the
            # steps not yet evaluated (when that still fits) and stop.
            last_chance = False
            if out_of_time(timing["eval"] + timing["step"]):
                if step == last_eval or out_of_time(timing["eval"]):
                    timed_out = True
                    break
                last_chance = True
            if not last_chance:
                step += 1
                value = take_step(optimizer, frozen, rows)
                if value is None:  # non-finite loss: recovered from the best state
                    continue
                objective_value = value
            due = step % eval_every == 0 or step == max_steps
            if due or last_chance:
                last_eval = step
                val = validation() if rows is None else float(
                    objective(Z_val, AZ_val, AtZ_val, rows).detach())
                report.val_history.append((step, val))
                if not math.isfinite(val):
                    _recover(model, best_state, optimizer, report)
                    if last_chance:
                        timed_out = True
                        break
                    continue
                if rows is None:
                    if val < best_val:
                        improvement = (best_val - val) / best_val
                        best_val = val
                        best_state = copy.deepcopy(model.state_dict())
                        report.best_step = step
                        stall = stall + 1 if improvement < tol else 0
                    else:
                        stall += 1
                else:
                    stall = stall + 1 if val > stage_best * (1 - tol) else 0
                    stage_best = min(stage_best, val)
                if verbose:
                    logger.info("step %d loss %.3e val %.3e", step, objective_value, val)
                if callback is not None:
                    callback(step, {"loss": objective_value, "val": val,
                                    "best_val": best_val})
                if last_chance:
                    timed_out = True
                    break
                if stall >= patience:
                    converged = True
                    break
        if timed_out:
            break
        if rows is not None:
            # Freeze everything this block row's loss reached (seed's schedule).
            frozen = _reached(model, objective, Z_val, AZ_val, AtZ_val, rows, frozen)
    if blockwise and not out_of_time(timing["eval"]):
        val = validation()
        if val < best_val:
            best_val, report.best_step = val, step
            best_state = copy.deepcopy(model.state_dict())
    for p in model.parameters():
        p.requires_grad_(True)
    report.train_seconds = time.perf_counter() - t0
    report.steps = step
    model.load_state_dict(best_state)
    report.relative_error = _relative_error(model, Z_val, AZ_val)
    if timed_out:
        report.stop_reason = deadline.reason
        report.cut_short.append("train")
        if last_eval < step:
            report.notes.append(f"{step - last_eval} step(s) after the last evaluation "
                                f"were not evaluated in time and were dropped")
    else:
        report.stop_reason = "tolerance" if converged else "max_steps"
    return converged


class Adam:
    """Adam with torch's defaults: the update of ``torch.optim.Adam`` (its CPU path).

    Written out because the first ``torch.optim`` optimizer of a process
    imports ``torch._dynamo``, which takes seconds: more than a small
    ``time_budget`` (and than many fits). The update is the one torch
    applies by default on the CPU (``_single_tensor_adam``: no weight decay,
    no amsgrad), operation for operation, so the results are the same.
    """

    def __init__(self, params, *, lr, betas=(0.9, 0.999), eps=1e-8):
        self.param_groups = [{"params": list(params), "lr": float(lr)}]
        self.betas, self.eps = betas, eps
        self.state = {}

    def zero_grad(self, set_to_none=True):
        """Forget the gradients."""
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self):
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        lr = self.param_groups[0]["lr"]
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    # torch keeps the step count as a float32 scalar
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            state["step"] += 1
            exp_avg, exp_avg_sq, grad = state["exp_avg"], state["exp_avg_sq"], p.grad
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = state["step"].item()
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


def _largest_eigenvalue(model, apply_A, fast_solve, v, iters=10):
    """Power-iteration estimate of the largest |eigenvalue| of ``M A``."""
    lam = 1.0
    for _ in range(iters):
        v = v / v.norm()
        w = fast_solve(model, apply_A(v))
        lam = float(w.norm())
        v = w
    return max(lam, 1e-12)


def _masked_sq(R, rows):
    if rows is not None:
        R = R[rows]
    return (R * R).sum()


def _relative_error(model, Z, AZ):
    with torch.no_grad():
        R = model.product(Z) - AZ
        return math.sqrt(float((R * R).sum() / (AZ * AZ).sum()))


def _recover(model, best_state, optimizer, report):
    report.recoveries += 1
    if report.recoveries > 8:
        raise FloatingPointError(
            "training produced non-finite values 8 times even after halving the "
            "learning rate each time")
    model.load_state_dict(best_state)
    for group in optimizer.param_groups:
        group["lr"] *= 0.5
    optimizer.state.clear()


def _blockwise_stages(model):
    M, P = model.layout.n_leaves, model.layout.block_size
    return [slice(i * P, (i + 1) * P) for i in range(M)]


def _reached(model, objective, Z, AZ, AtZ, rows, frozen):
    model.zero_grad(set_to_none=True)
    objective(Z, AZ, AtZ, rows).backward()
    masks = []
    for i, p in enumerate(model.parameters()):
        reached = p.grad is not None and p.grad.ne(0)
        reached = reached if p.grad is not None else torch.zeros_like(p, dtype=torch.bool)
        if frozen is not None:
            reached = reached | frozen[i]
        masks.append(reached)
    model.zero_grad(set_to_none=True)
    return masks
