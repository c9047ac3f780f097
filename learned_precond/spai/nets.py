r"""Graph networks of the SPAI generator: features, gated message passing, the cVAE.

Used by :mod:`learned_precond.spai.generator`. Everything works on a
*disjoint union* of graphs (a batch): node arrays are concatenated, edge
endpoints are offset, and each matrix keeps its own size, so one model is
trained and evaluated on matrices of any size.

Graph of a matrix ``A`` (SPD, scaled to a unit diagonal, ``A_s = D^-1/2 A
D^-1/2``): one node per unknown and one directed edge per off-diagonal
entry of the SPAI pattern ``P`` (which contains ``A``'s pattern; the extra
fill entries are edges too). Features (all invariant to scaling ``A``):

* node ``i``: ``sum_j a_ij`` and ``sum_j |a_ij|`` over the off-diagonal
  entries of row ``i`` of ``A_s``, ``log d_i`` minus the mean of
  ``log d_j`` over the neighbours, and the fraction of the widest row's
  off-diagonal entries that row ``i`` has (boundary rows have fewer);
* edge ``(i, j)``: ``a_ij`` (0 for fill), ``(A_s^2)_ij``, and 1 for an entry
  of ``A``, 0 for fill.

The encoder of ``A^-1`` (training only) sees, on the same edges, the
correlations ``z_ij / sqrt(z_ii z_jj)`` of ``Z = A_s^-1`` and, per node,
``log z_ii``.

:class:`SPAINet` outputs the values of ``R_s`` on ``P`` (in CSR order);
``R = D^-1/2 R_s``. Its last layers start at zero, so an untrained network
is Jacobi (``R_s = I``).
"""

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .pattern import csr_entries

__all__ = ["GraphBatch", "SPAINet", "graph_features", "inverse_features", "N_NODE", "N_EDGE"]

N_NODE = 4
N_EDGE = 3
N_INV_NODE = 1
N_INV_EDGE = 1


def graph_features(As, P, d):
    """Node and edge features of one matrix (see the module docstring).

    Parameters
    ----------
    As : csr_array
        ``A`` scaled to a unit diagonal (canonical).
    P : csr_array
        0/1 SPAI pattern, diagonal included (canonical).
    d : ndarray
        The diagonal of the unscaled ``A`` (positive).

    Returns
    -------
    dict of ndarray
        ``node`` (N, 4), ``edge`` (E, 3), ``src``/``dst`` (E,), ``edge_pos``
        (E,) positions of the edges in ``P.data`` and ``diag_pos`` (N,).
    """
    n = As.shape[0]
    rows = np.repeat(np.arange(n), np.diff(P.indptr))
    cols = P.indices
    off = rows != cols
    src, dst = cols[off], rows[off]  # message j -> i for the entry (i, j)
    a_rows = np.repeat(np.arange(n), np.diff(As.indptr))
    a_off = a_rows != As.indices
    offsum = np.bincount(a_rows[a_off], weights=As.data[a_off], minlength=n)
    abssum = np.bincount(a_rows[a_off], weights=np.abs(As.data[a_off]), minlength=n)
    count = np.bincount(a_rows[a_off], minlength=n).astype(np.float64)
    logd = np.log(d)
    nbr_mean = np.bincount(a_rows[a_off], weights=logd[As.indices[a_off]], minlength=n)
    nbr_mean = np.where(count > 0, nbr_mean / np.maximum(count, 1), logd)
    node = np.stack(
        [offsum, abssum, logd - nbr_mean, count / max(count.max(), 1.0)], axis=1
    )
    a_ij = csr_entries(As, dst, src)
    As2 = sp.csr_array(As @ As)
    As2.sort_indices()
    a2_ij = csr_entries(As2, dst, src)
    in_a = (a_ij != 0).astype(np.float64)
    edge = np.stack([a_ij, a2_ij, in_a], axis=1)
    diag_pos = np.flatnonzero(~off)
    return {
        "node": node,
        "edge": edge,
        "src": src.astype(np.int64),
        "dst": dst.astype(np.int64),
        "edge_pos": np.flatnonzero(off),
        "diag_pos": diag_pos,
    }


def inverse_features(As, feats):
    """Features of ``Z = A_s^-1`` on the graph's nodes and edges (dense inverse)."""
    Z = np.linalg.inv(As.toarray())
    z = np.diag(Z).copy()
    if not np.all(z > 0):
        raise ValueError("A is not positive definite: its inverse has a non-positive diagonal.")
    src, dst = feats["src"], feats["dst"]
    corr = Z[dst, src] / np.sqrt(z[dst] * z[src])
    return {"inv_node": np.log(z)[:, None], "inv_edge": corr[:, None]}


class GraphBatch:
    """A disjoint union of graphs as torch tensors (float32 features, int64 indices).

    Built from a list of per-matrix feature dicts (:func:`graph_features`,
    optionally updated with :func:`inverse_features`).
    """

    def __init__(self, items, *, dtype=torch.float32, with_inverse=False):
        node_off = np.cumsum([0] + [it["node"].shape[0] for it in items])
        val_off = np.cumsum([0] + [it["diag_pos"].size + it["edge_pos"].size for it in items])
        cat = np.concatenate
        self.n_graphs = len(items)
        self.n_nodes = int(node_off[-1])
        self.n_values = int(val_off[-1])
        self.sizes = torch.tensor([it["node"].shape[0] for it in items], dtype=dtype)
        self.node = torch.from_numpy(cat([it["node"] for it in items])).to(dtype)
        self.edge = torch.from_numpy(cat([it["edge"] for it in items])).to(dtype)
        self.src = torch.from_numpy(
            cat([it["src"] + o for it, o in zip(items, node_off, strict=False)]))
        self.dst = torch.from_numpy(
            cat([it["dst"] + o for it, o in zip(items, node_off, strict=False)]))
        self.edge_pos = torch.from_numpy(
            cat([it["edge_pos"] + o for it, o in zip(items, val_off, strict=False)]))
        self.diag_pos = torch.from_numpy(
            cat([it["diag_pos"] + o for it, o in zip(items, val_off, strict=False)]))
        self.graph = torch.from_numpy(
            np.repeat(np.arange(len(items)), [it["node"].shape[0] for it in items])
        )
        deg = torch.zeros(self.n_nodes, dtype=dtype).index_add_(
            0, self.dst, torch.ones(self.dst.numel(), dtype=dtype)
        )
        self.inv_deg = (1.0 / deg.clamp(min=1.0))[:, None]
        if with_inverse:
            self.inv_node = torch.from_numpy(cat([it["inv_node"] for it in items])).to(dtype)
            self.inv_edge = torch.from_numpy(cat([it["inv_edge"] for it in items])).to(dtype)


def _mlp(n_in, n_hidden, n_out):
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


class GatedConv(nn.Module):
    """Gated graph convolution with edge updates (residual).

    For every edge ``j -> i``: ``[g, v] = MLP(h_i, h_j, e_ij)``, message
    ``sigmoid(g) * v``; node ``i`` averages its messages ``m_i`` and updates
    ``h_i += MLP(h_i, m_i)``; the edge updates ``e_ij += MLP(h_i, h_j, e_ij)``.
    The gate lets a node weigh each neighbour by the coupling's value, which
    plain averaging cannot.
    """

    def __init__(self, hidden):
        super().__init__()
        self.message = _mlp(3 * hidden, hidden, 2 * hidden)
        self.update = _mlp(2 * hidden, hidden, hidden)
        self.edge_update = _mlp(3 * hidden, hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h, e, g):
        pair = torch.cat([h[g.dst], h[g.src], e], dim=1)
        gate, value = self.message(pair).chunk(2, dim=1)
        msg = torch.sigmoid(gate) * value
        agg = torch.zeros_like(h).index_add_(0, g.dst, msg) * g.inv_deg
        h = self.norm(h + self.update(torch.cat([h, agg], dim=1)))
        e = e + self.edge_update(torch.cat([h[g.dst], h[g.src], e], dim=1))
        return h, e


class GraphEncoder(nn.Module):
    """Embeds node/edge features and runs ``layers`` gated convolutions."""

    def __init__(self, n_node, n_edge, hidden, layers):
        super().__init__()
        self.node_in = _mlp(n_node, hidden, hidden)
        self.edge_in = _mlp(n_edge, hidden, hidden)
        self.convs = nn.ModuleList(GatedConv(hidden) for _ in range(layers))

    def forward(self, node, edge, g):
        h, e = self.node_in(node), self.edge_in(edge)
        for conv in self.convs:
            h, e = conv(h, e, g)
        return h, e


class SPAINet(nn.Module):
    """Graph-conditioned generator of SPAI values; cVAE or deterministic.

    ``variant='cvae'``: condition ``G = GNN(A)``; posterior
    ``q(z | A, A^-1) = N(mu, sigma^2)`` per node, from ``G`` and a graph
    encoder of ``A^-1``; decoder ``GNN(G, z) -> R_s`` values. The prior is
    ``N(0, I)`` per node, so a sample for an unseen ``A`` needs only ``A``.
    ``variant='deterministic'``: decoder ``GNN(G) -> R_s``, no latent.
    """

    def __init__(self, *, hidden=24, layers=2, decoder_layers=1, latent=4, variant="cvae"):
        super().__init__()
        if variant not in ("cvae", "deterministic"):
            raise ValueError(f"variant must be 'cvae' or 'deterministic', got {variant!r}.")
        self.variant = variant
        self.latent = latent if variant == "cvae" else 0
        self.condition = GraphEncoder(N_NODE, N_EDGE, hidden, layers)
        if variant == "cvae":
            self.inverse = GraphEncoder(N_INV_NODE, N_INV_EDGE + N_EDGE, hidden, layers)
            self.posterior = _mlp(2 * hidden, hidden, 2 * latent)
            self.z_in = nn.Linear(latent, hidden)
        self.decoder = nn.ModuleList(GatedConv(hidden) for _ in range(decoder_layers))
        self.out_diag = _mlp(hidden, hidden, 1)
        self.out_edge = _mlp(3 * hidden, hidden, 1)
        for head in (self.out_diag, self.out_edge):  # start at Jacobi: R_s = I
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def encode(self, g):
        """Condition ``(h, e)`` and posterior mean and log-variance per node (cVAE)."""
        h, e = self.condition(g.node, g.edge, g)
        hz, _ = self.inverse(g.inv_node, torch.cat([g.inv_edge, g.edge], dim=1), g)
        mu, logvar = self.posterior(torch.cat([h, hz], dim=1)).chunk(2, dim=1)
        return h, e, mu, logvar.clamp(-10.0, 10.0)

    def decode(self, h, e, g, z=None):
        """Values of ``R_s`` on the pattern, CSR order, shape ``(g.n_values,)``."""
        if z is not None:
            h = h + self.z_in(z)
        for conv in self.decoder:
            h, e = conv(h, e, g)
        values = h.new_zeros(g.n_values)
        values = values.index_put((g.diag_pos,), 1.0 + self.out_diag(h)[:, 0])
        edge_vals = self.out_edge(torch.cat([h[g.dst], h[g.src], e], dim=1))[:, 0]
        return values.index_put((g.edge_pos,), edge_vals)

    def forward(self, g, *, z="mean", generator=None):
        """Inference: values of ``R_s`` from ``A`` alone.

        ``z='mean'`` decodes at the prior mean ``z = 0``; ``z='sample'`` draws
        ``z ~ N(0, I)`` with ``generator``; a tensor is used as given.
        """
        h, e = self.condition(g.node, g.edge, g)
        if self.variant == "deterministic":
            return self.decode(h, e, g)
        if isinstance(z, str):
            if z == "mean":
                z = h.new_zeros(h.shape[0], self.latent)
            elif z == "sample":
                z = torch.randn(h.shape[0], self.latent, generator=generator, dtype=h.dtype)
            else:
                raise ValueError(f"z must be 'mean', 'sample' or a tensor, got {z!r}.")
        return self.decode(h, e, g, z)

    def training_outputs(self, g, generator=None):
        """Values of ``R_s`` and the KL term per graph, for the training loss."""
        if self.variant == "deterministic":
            h, e = self.condition(g.node, g.edge, g)
            return self.decode(h, e, g), torch.zeros(g.n_graphs, dtype=h.dtype)
        h, e, mu, logvar = self.encode(g)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # reparameterization
        kl_node = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=1)
        kl = torch.zeros(g.n_graphs, dtype=h.dtype).index_add_(0, g.graph, kl_node)
        return self.decode(h, e, g, z), kl
