r"""The graph-conditioned generator of SPAI preconditioners (seed 003, Li, Wang & Jimack).

:class:`SPAIGenerator`
    The paper's generator: a conditional VAE whose condition is a graph
    network over ``A``'s nonzeros (:mod:`learned_precond.spai.nets`); trained
    on a :class:`~learned_precond.problems.family.MatrixFamily`, it returns a
    sparse approximate inverse ``R`` (``M = R R^T``, SPD) for an *unseen*
    ``A`` of the family in one forward pass, using ``A`` alone. ``variant=
    'deterministic'`` is the ablation without the ``A^-1`` encoder and the
    latent variable.
:class:`GeneratedSPAI`
    The ``fit(A, model=...) -> LinearOperator`` surface of a trained
    generator (registry name ``'spai_generator'``).

Training minimizes the batched exact loss ``||I - R_s^T A_s R_s||_F^2`` of a
disjoint union of graphs (one index plan per pattern, cached), plus the KL
term of the cVAE.

Examples
--------
>>> from learned_precond.family import MatrixFamily, SPAIGenerator
>>> fam = MatrixFamily("diffusion", n=8, size=40, n_train=32)
>>> gen = SPAIGenerator.train(fam, epochs=2, batch_size=8, seed=0)
>>> A = fam.at(12).matrix(35)          # unseen coefficient, larger grid
>>> M = gen.generate(A)
>>> M.shape, M.symmetric
((144, 144), True)
"""

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .._structure import canonical_csr, is_symmetric
from .._validation import as_matrix, check_positive_int, check_structure
from ..exceptions import PreconditionerSetupError
from ..problems.family import MatrixFamily
from .certificate import spd_certificate
from .loss import loss_plan
from .nets import GraphBatch, SPAINet, graph_features, inverse_features
from .operator import SPAI
from .pattern import sparsity_pattern
from .report import SPAIReport, TrainingReport

__all__ = ["GeneratedSPAI", "SPAIGenerator"]

# The name the documentation gives (``verbose=True`` logs here), kept from
# when the generator lived in learned_precond.family.
log = logging.getLogger("learned_precond.family")


# -- samples: one matrix ready for the network ----------------------------------------


@dataclass
class _Sample:
    n: int
    a_data: np.ndarray  # A_s values, CSR order of A's pattern
    feats: dict
    plan_key: tuple
    P_shape: tuple
    P_indptr: np.ndarray
    P_indices: np.ndarray


def _check_spd_input(A, name="A"):
    """Validate a matrix for the generator: finite, square, symmetric, positive diagonal."""
    A = canonical_csr(as_matrix(A, name=name))
    check_structure(A, name)
    if not is_symmetric(A, rtol=1e-10):
        raise ValueError(
            f"{name} is not symmetric; the SPAI generator makes SPD preconditioners "
            f"(M = R R^T) for SPD families. Use SPAI.fit({name}, symmetric=False) with GMRES."
        )
    d = A.diagonal()
    bad = np.flatnonzero(~(d > 0))
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} non-positive diagonal entries (first: row {int(bad[0])}), "
            f"so it is not SPD; the generator makes SPD preconditioners for SPD families."
        )
    return A, d


def _max_offdiag_per_row(A):
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    return int(np.bincount(rows[rows != A.indices], minlength=A.shape[0]).max())


class _Preprocessor:
    """Turns matrices into :class:`_Sample` objects and caches loss plans by pattern."""

    def __init__(self, pattern, extra_fill, with_inverse):
        self.pattern = pattern
        self.extra_fill = extra_fill
        self.with_inverse = with_inverse
        self.plans = {}

    def sample(self, A, d=None, *, inverse=None, plan=True):
        if d is None:
            A, d = _check_spd_input(A)
        s = 1.0 / np.sqrt(d)
        As = sp.csr_array(sp.diags_array(s) @ A @ sp.diags_array(s))
        As.sort_indices()
        P = sparsity_pattern(As, self.pattern, extra_fill=self.extra_fill)
        feats = graph_features(As, P, d)
        if self.with_inverse if inverse is None else inverse:
            feats.update(inverse_features(As, feats))
        key = (
            As.shape[0],
            hash(As.indptr.tobytes()), hash(As.indices.tobytes()),
            hash(P.indptr.tobytes()), hash(P.indices.tobytes()),
        )
        if plan and key not in self.plans:
            self.plans[key] = loss_plan(As, P, symmetric=True)
        return _Sample(n=As.shape[0], a_data=As.data.copy(), feats=feats, plan_key=key,
                       P_shape=P.shape, P_indptr=P.indptr, P_indices=P.indices)

    def batch_loss_inputs(self, samples, dtype):
        """Concatenated A values and the batched loss plan of ``samples``."""
        parts = {k: [] for k in ("arl", "arr", "aro", "rl", "rr", "ro", "diag", "cg")}
        a_off = r_off = b_off = c_off = 0
        sizes = []
        for gi, smp in enumerate(samples):
            plan = self.plans[smp.plan_key]
            left, right, out, nnz_b = plan.ar
            parts["arl"].append(left + a_off)
            parts["arr"].append(right + r_off)
            parts["aro"].append(out + b_off)
            left, right, out, nnz_c = plan.rtb
            parts["rl"].append(left + r_off)
            parts["rr"].append(right + b_off)
            parts["ro"].append(out + c_off)
            parts["diag"].append(plan.diag + c_off)
            parts["cg"].append(torch.full((nnz_c,), gi, dtype=torch.int64))
            a_off += smp.a_data.size
            r_off += smp.feats["diag_pos"].size + smp.feats["edge_pos"].size
            b_off += nnz_b
            c_off += nnz_c
            sizes.append(smp.n)
        cat = {k: torch.cat(v) for k, v in parts.items()}
        a = torch.from_numpy(np.concatenate([s.a_data for s in samples])).to(dtype)
        return a, cat, b_off, c_off, torch.tensor(sizes, dtype=dtype)


def _batched_loss(a, r, cat, nnz_b, nnz_c, sizes):
    """Per-graph ``||I - R_s^T A_s R_s||_F^2`` of a disjoint union (torch)."""
    prod = a[cat["arl"]] * r[cat["arr"]]
    B = prod.new_zeros(nnz_b).index_add_(0, cat["aro"], prod)
    prod = r[cat["rl"]] * B[cat["rr"]]
    C = prod.new_zeros(nnz_c).index_add_(0, cat["ro"], prod)
    n_graphs = sizes.numel()
    sq = C.new_zeros(n_graphs).index_add_(0, cat["cg"], C * C)
    tr = C.new_zeros(n_graphs).index_add_(0, cat["cg"][cat["diag"]], C[cat["diag"]])
    return sq - 2.0 * tr + sizes


class SPAIGenerator:
    """A trained graph-conditioned generator of SPAI preconditioners.

    Build one with :meth:`train` (or :meth:`load`); then :meth:`generate`
    gives ``M = R R^T`` for a new SPD matrix of the family in one forward
    pass, and :meth:`sample` several of them from different latent draws.

    Attributes
    ----------
    net : SPAINet
        The torch model (float32).
    config : dict
        Architecture, pattern and what it was trained on (JSON-serializable).
    report : TrainingReport
    """

    def __init__(self, net, config, report=None):
        self.net = net
        self.config = dict(config)
        self.report = report if report is not None else TrainingReport()
        self._prep = _Preprocessor(config["pattern"], config["extra_fill"], with_inverse=False)

    # -- training ----------------------------------------------------------------------
    @classmethod
    def train(cls, data, *, variant="cvae", pattern="A", extra_fill=0.0, hidden=24, layers=2,
              decoder_layers=1, latent=4, alpha=0.1, epochs=5, batch_size=32, lr=3e-3,
              n_train=None, validation=0.05, seed=0, max_time=None, verbose=False,
              callback=None):
        """Train a generator on the training split of one or more families.

        Parameters
        ----------
        data : MatrixFamily, list of MatrixFamily, or list of SPD matrices
            Training data: the training split (first ``n_train`` matrices) of
            each family (several grid sizes may be mixed), or explicit matrices.
        variant : {'cvae', 'deterministic'}
            The paper's conditional VAE, or the ablation without ``A^-1``
            encoder and latent variable.
        pattern, extra_fill
            SPAI pattern of ``R`` (``'A'`` or ``'A2'``; see
            :func:`learned_precond.spai.sparsity_pattern`).
        hidden, layers, decoder_layers, latent : int
            Width, graph-convolution layers of the condition (and ``A^-1``)
            encoder and of the decoder, latent dimensions per node.
        alpha : float
            Weight of the KL term (0.1 in the paper).
        epochs, batch_size, lr : int, int, float
            Adam with cosine decay of the learning rate to ``lr / 10``.
        n_train : int, optional
            Use only the first ``n_train`` matrices of each family's training split.
        validation : float
            Fraction of the training matrices held out for model selection
            (the kept parameters have the lowest validation loss at inference).
        seed : int
            Seeds initialization, batching and the latent noise.
        max_time : float, optional
            Stop after this many seconds of training (after a full epoch).
        verbose : bool
            Log each epoch (logger ``learned_precond.family``).
        callback : callable, optional
            ``callback(epoch_record)`` after each epoch.

        Returns
        -------
        SPAIGenerator
        """
        start = time.perf_counter()
        if not (isinstance(pattern, str) and pattern in ("A", "A2")):
            raise ValueError(
                f"the generator's pattern must be 'A' or 'A2' (a rule, not a fixed mask, so "
                f"that it applies to any size), got {pattern!r}."
            )
        extra_fill = float(extra_fill)
        if not (np.isfinite(extra_fill) and extra_fill >= 0):
            raise ValueError(f"extra_fill must be a finite fraction >= 0, got {extra_fill}.")
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        alpha = float(alpha)
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be >= 0, got {alpha}.")
        if not 0.0 <= float(validation) < 1.0:
            raise ValueError(f"validation must be a fraction in [0, 1), got {validation}.")
        matrices, kinds, sizes = cls._training_matrices(data, n_train)
        torch.manual_seed(int(seed))
        net = SPAINet(hidden=hidden, layers=layers, decoder_layers=decoder_layers,
                      latent=latent, variant=variant)
        prep = _Preprocessor(pattern, extra_fill, with_inverse=(variant == "cvae"))
        samples, max_row = [], 0
        for A in matrices:
            A, d = _check_spd_input(A)
            max_row = max(max_row, _max_offdiag_per_row(A))
            samples.append(prep.sample(A, d))
        rng = np.random.default_rng(int(seed))
        order = rng.permutation(len(samples))
        n_val = int(math.floor(float(validation) * len(samples)))
        if len(samples) - n_val < 1:
            raise ValueError("no training matrices left after the validation split.")
        val = [samples[i] for i in order[:n_val]]
        train = [samples[i] for i in order[n_val:]]
        config = {
            "variant": variant, "pattern": pattern, "extra_fill": extra_fill,
            "hidden": int(hidden), "layers": int(layers), "decoder_layers": int(decoder_layers),
            "latent": int(latent), "alpha": alpha, "epochs": epochs, "batch_size": batch_size,
            "lr": float(lr), "seed": int(seed), "kinds": sorted(kinds),
            "train_sizes": sorted(sizes), "max_offdiag_per_row": int(max_row),
        }
        self = cls(net, config)
        report = self.report
        report.n_train, report.n_val = len(train), len(val)
        if val:
            report.jacobi_val = self._evaluate(val, prep, jacobi=True)
        opt = torch.optim.Adam(net.parameters(), lr=float(lr))
        steps_per_epoch = math.ceil(len(train) / batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=epochs * steps_per_epoch, eta_min=float(lr) / 10)
        gen = torch.Generator().manual_seed(int(seed))
        best, best_state = float("inf"), None
        report.stop_reason = "epochs"
        for epoch in range(epochs):
            t0 = time.perf_counter()
            net.train()
            perm = rng.permutation(len(train))
            sums = np.zeros(3)
            for b in range(steps_per_epoch):
                batch = [train[i] for i in perm[b * batch_size:(b + 1) * batch_size]]
                g = GraphBatch([s.feats for s in batch], with_inverse=(variant == "cvae"))
                a, cat, nnz_b, nnz_c, nsz = prep.batch_loss_inputs(batch, torch.float32)
                r, kl = net.training_outputs(g, generator=gen)
                frob = _batched_loss(a, r, cat, nnz_b, nnz_c, nsz)
                loss = ((frob + alpha * kl) / nsz).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
                opt.step()
                sched.step()
                w = len(batch) / len(train)
                sums += w * np.array([float(loss.detach()), float((frob.detach() / nsz).mean()),
                                      float((kl.detach() / nsz).mean())])
            val_loss = self._evaluate(val, prep) if val else sums[1]
            record = {"epoch": epoch, "loss": sums[0], "frobenius": sums[1], "kl": sums[2],
                      "val": val_loss, "seconds": time.perf_counter() - t0}
            report.history.append(record)
            if verbose:
                log.info("epoch %d: loss %.4g (frobenius %.4g, kl %.4g), val %.4g, %.1f s",
                         epoch, *sums, val_loss, record["seconds"])
            if callback is not None:
                callback(record)
            if np.isfinite(val_loss) and val_loss < best:
                best, report.best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if max_time is not None and time.perf_counter() - start > max_time:
                report.stop_reason = "max_time"
                break
        if best_state is None:
            raise PreconditionerSetupError(
                "SPAI generator training diverged (the loss is not finite); lower lr or "
                "check the training matrices.", report=report)
        net.load_state_dict(best_state)
        net.eval()
        report.train_time = time.perf_counter() - start
        return self

    @staticmethod
    def _training_matrices(data, n_train):
        if isinstance(data, MatrixFamily):
            data = [data]
        data = list(data)
        if not data:
            raise ValueError("no training data: pass a MatrixFamily or a list of matrices.")
        matrices, kinds, sizes = [], set(), set()
        for item in data:
            if isinstance(item, MatrixFamily):
                limit = None if n_train is None else check_positive_int(n_train, "n_train")
                matrices.extend(item.train_matrices(limit))
                kinds.add(item.kind)
                sizes.add(item.N)
            else:
                matrices.append(item)
                kinds.add("matrices")
                sizes.add(int(item.shape[0]))
        if not matrices:
            raise ValueError("the training split is empty (n_train=0).")
        return matrices, kinds, sizes

    def _evaluate(self, samples, prep, *, jacobi=False, batch_size=64):
        """Mean ``||I - R_s^T A_s R_s||_F^2 / N`` at inference (``z = 0``)."""
        self.net.eval()
        total = 0.0
        with torch.no_grad():
            for b in range(0, len(samples), batch_size):
                batch = samples[b:b + batch_size]
                g = GraphBatch([s.feats for s in batch])
                a, cat, nnz_b, nnz_c, nsz = prep.batch_loss_inputs(batch, torch.float32)
                if jacobi:
                    r = torch.zeros(g.n_values).index_fill_(0, g.diag_pos, 1.0)
                else:
                    r = self.net(g, z="mean")
                total += float((_batched_loss(a, r, cat, nnz_b, nnz_c, nsz) / nsz).sum())
        self.net.train()
        return total / len(samples)

    # -- inference ---------------------------------------------------------------------
    def check_matrix(self, A, *, _validated=None):
        """Validate ``A`` for this generator; return ``(csr A, diag)`` or raise ValueError."""
        A, d = _check_spd_input(A) if _validated is None else _validated
        width = _max_offdiag_per_row(A)
        trained = self.config["max_offdiag_per_row"]
        if width > trained:
            kinds = ", ".join(self.config.get("kinds", [])) or "its training data"
            raise ValueError(
                f"A has rows with {width} off-diagonal entries, but this generator was "
                f"trained on matrices with at most {trained} ({kinds}): A comes from a "
                f"different stencil or family, where its output is meaningless. Train a "
                f"generator on matrices like A (SPAIGenerator.train) or fit one SPAI to A "
                f"(learned_precond.spai.SPAI.fit)."
            )
        return A, d

    def values(self, A, *, z="mean", seed=0, _checked=None):
        """``(R, info)``: the generated sparse factor of ``A`` (csr_array) and timings."""
        A, d = self.check_matrix(A) if _checked is None else _checked
        t0 = time.perf_counter()
        smp = self._prep.sample(A, d, inverse=False, plan=False)
        g = GraphBatch([smp.feats])
        t1 = time.perf_counter()
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            vals = self.net(g, z=z, generator=gen).double().numpy()
        t2 = time.perf_counter()
        if not np.all(np.isfinite(vals)):
            raise PreconditionerSetupError(
                "the SPAI generator produced non-finite values for A; A is probably far "
                "outside the training family. Use SPAI.fit(A) instead.")
        Rs = sp.csr_array((vals, smp.P_indices.copy(), smp.P_indptr.copy()), shape=smp.P_shape)
        R = sp.csr_array(sp.diags_array(1.0 / np.sqrt(d)) @ Rs)
        return R, {"features": t1 - t0, "forward": t2 - t1}

    def generate(self, A, *, z="mean", seed=0):
        """Return ``M = R R^T`` for ``A`` from one forward pass (a :class:`GeneratedSPAI`).

        Parameters
        ----------
        A : sparse array or ndarray
            SPD matrix of the family the generator was trained on (any size).
        z : {'mean', 'sample'}
            Decode at the prior mean (deterministic), or at a latent draw
            ``z ~ N(0, I)`` from ``seed`` (cVAE only; the deterministic
            variant ignores it).
        seed : int
            Seed of the latent draw.

        Raises
        ------
        ValueError
            ``A`` is not square, finite, symmetric with a positive diagonal,
            or comes from a wider stencil than the training matrices.
        PreconditionerSetupError
            The generated ``R`` is not finite or is singular.
        """
        return GeneratedSPAI.fit(A, model=self, z=z, seed=seed)

    def sample(self, A, n_samples=8, *, seed=0):
        """``n_samples`` preconditioners for ``A`` from independent latent draws."""
        n_samples = check_positive_int(n_samples, "n_samples")
        return [self.generate(A, z="sample", seed=seed + k) for k in range(n_samples)]

    # -- persistence ---------------------------------------------------------------------
    def save(self, path):
        """Write the model to ``path`` (``.npz`` arrays + JSON metadata; never pickle)."""
        from .io import save_generator

        save_generator(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; bad files raise :class:`ModelFileError`."""
        from .io import load_generator

        return load_generator(cls, path)

    @property
    def n_parameters(self):
        """Number of trainable parameters."""
        return int(sum(p.numel() for p in self.net.parameters()))

    def __repr__(self):
        c = self.config
        return (
            f"<SPAIGenerator variant={c['variant']!r}, pattern={c['pattern']!r}"
            f"{'+%g%%' % (100 * c['extra_fill']) if c['extra_fill'] else ''}, "
            f"trained on {'/'.join(c.get('kinds', []))} N={c.get('train_sizes')}, "
            f"{self.n_parameters} parameters, best epoch {self.report.best_epoch}>"
        )


_LOADED = {}


class GeneratedSPAI(SPAI):
    """``M = R R^T`` with ``R`` from a trained :class:`SPAIGenerator` (one forward pass).

    ``setup_time`` covers validation, features, the forward pass and the
    nonsingularity certificate of ``R``; ``timings`` splits it.
    """

    name = "spai_generator"

    @classmethod
    def fit(cls, A, *, model=None, z="mean", seed=0):
        """Generate the preconditioner of ``A`` with ``model``.

        Parameters
        ----------
        A : sparse array or ndarray
            SPD matrix of the family ``model`` was trained on.
        model : SPAIGenerator or str or path
            A trained generator, or the ``.npz`` file it was saved to.
        z : {'mean', 'sample'}
            See :meth:`SPAIGenerator.generate`.
        seed : int
            Seed of the latent draw for ``z='sample'``.

        Returns
        -------
        GeneratedSPAI
        """
        start = time.perf_counter()
        validated = _check_spd_input(A)  # bad input is reported before a missing model
        if model is None:
            raise PreconditionerSetupError(
                "spai_generator needs a trained generator: pass model=PATH to a file "
                "written by SPAIGenerator.save (CLI: --fit spai_generator:model=PATH), or "
                "a SPAIGenerator. Train one with learned_precond.family.SPAIGenerator.train.")
        if not isinstance(model, SPAIGenerator):
            key = str(model)
            if key not in _LOADED:
                _LOADED[key] = SPAIGenerator.load(key)
            model = _LOADED[key]
        if z not in ("mean", "sample"):
            raise ValueError(f"z must be 'mean' or 'sample', got {z!r}.")
        checked = model.check_matrix(A, _validated=validated)
        R, timings = model.values(A, z=z, seed=seed, _checked=checked)
        t0 = time.perf_counter()
        cert = spd_certificate(R)
        timings["certificate"] = time.perf_counter() - t0
        if cert is None:
            raise PreconditionerSetupError(
                "the generated R is singular, so R R^T is not positive definite; A is "
                "probably outside the training family. Use SPAI.fit(A) or 'jacobi'.")
        c = model.config
        label = c["pattern"] + (f"+{100 * c['extra_fill']:g}%" if c["extra_fill"] else "")
        report = SPAIReport(method="generator", pattern=label, nnz=int(R.nnz),
                            certificate=cert)
        self = cls(R, form="R R^T", report=report)
        self.timings = timings
        self.model_config = c
        self.setup_time = time.perf_counter() - start
        report.fit_time = self.setup_time
        return self
