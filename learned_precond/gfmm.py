"""The GFMM block: a hierarchical (FMM-like) structured matrix as a torch module.

Layout
------
``N = n_leaves * block_size`` unknowns (after padding), ``n_leaves = M = 2**K``
leaf blocks of size ``P`` on a complete binary tree: level ``l = 0`` is the
root, level ``K`` the leaves, node ``a`` of level ``l`` covers leaves
``a * 2**(K-l) ... (a+1) * 2**(K-l) - 1``. Parameters of a *lower* block:

==========  =====================  ==============================================
name        shape                  role
==========  =====================  ==============================================
``D``       (M, P, P)              diagonal blocks (near field); absent when
                                   ``unit_diagonal`` (the block is then I)
``E``       (M-1, P, P)            ``E[i-1]`` couples leaf i-1 -> leaf i
``V``       (M-2, P, r)            leaf in-bases (up-sweep encode), leaves 0..M-3
``U``       (M-2, P, r)            leaf out-bases (down-sweep decode), leaves 2..M-1
``W[l]``    (2**l-2, r, r), l=2..K up-sweep transfer child -> parent, nodes 0..
``R[l]``    (2**l-2, r, r), l=2..K down-sweep transfer parent -> child, nodes 2..
``B[l]``    (2**l-1, r, r),        bridge node a-1 -> node a at level l
            l=1..K-1               (``B[l][a-1]``; strictly lower)
==========  =====================  ==============================================

``y = L x`` is::

    g^K_i     = V_i^T x_i                               (encode)
    g^(l-1)_p = sum_{c child of p} W^l_c^T g^l_c        (up-sweep, l = K..2)
    f^l_a     = B^l_a g^l_(a-1) [a>=1] + R^l_a f^(l-1)_parent(a) [l>=2]
    f^K_i     = R^K_i f^(K-1)_parent(i)                 (down-sweep)
    y_i       = D_i x_i + E_i x_(i-1) + U_i f^K_i

A bridge only carries information from node a-1 to node a of the same
level, and every leaf under a-1 precedes every leaf under a, so the dense
matrix is exactly block lower triangular. Any pair of leaves j < i-1 is
coupled: at the level where their ancestors first differ these are siblings
a-1, a and ``B^l_a`` couples them; j = i-1 is the near field ``E_i``.
Every parameter reaches the output (no dead edges): ``W`` and ``R`` exist only
at levels 2..K, bridges only at levels 1..K-1, and the rightmost node of a
level sends to nobody, so its children carry no ``V``/``W``; the leftmost
receives from nobody, so its children carry no ``U``/``R``. A general block
stores all of them.

Two identities let one kernel (a lower block) serve every operator:

* ``upper(p) = rev . lower(p) . rev`` where ``rev`` reverses the order of the
  leaf blocks (not the entries inside a leaf): a block upper triangular
  factor is a lower one in reversed leaf order.
* ``lower(p)^T = rev . lower(transpose_params(p)) . rev``, where
  ``transpose_params`` reverses every per-node array, transposes ``D``, ``E``
  and ``B`` and swaps the roles ``U <-> V`` and ``W <-> R``.

So every product, transposed product and triangular solve is a lower-block
operation on (possibly transformed) parameters.
"""

import math

import numpy as np
import torch
from torch import nn

from ._convert import to_torch

__all__ = [
    "GFMMBlock",
    "GFMMLayout",
    "apply_lower",
    "full_params",
    "reverse_blocks",
    "transpose_params",
]


class GFMMLayout:
    """Sizes of a GFMM block: leaves, levels, block size and far-field rank.

    Parameters
    ----------
    n_leaves : int
        Number of leaf blocks ``M``; a power of two.
    block_size : int
        Leaf block size ``P``.
    rank : int
        Rank ``r`` of the far-field couplings, ``1 <= r <= P``.
    """

    def __init__(self, n_leaves, block_size, rank):
        if n_leaves < 1 or n_leaves & (n_leaves - 1):
            raise ValueError(f"n_leaves must be a power of two, got {n_leaves}.")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}.")
        if not 1 <= rank <= block_size:
            raise ValueError(f"rank must be in [1, block_size={block_size}], got {rank}.")
        self.n_leaves = int(n_leaves)
        self.block_size = int(block_size)
        self.rank = int(rank)
        self.n_levels = int(round(math.log2(n_leaves)))

    @property
    def size(self):
        """Number of rows ``N = M * P``."""
        return self.n_leaves * self.block_size

    @property
    def has_far_field(self):
        """True when there are leaves j < i-1 (M >= 4), i.e. bases are used."""
        return self.n_levels >= 2

    def __eq__(self, other):
        return isinstance(other, GFMMLayout) and (
            (self.n_leaves, self.block_size, self.rank)
            == (other.n_leaves, other.block_size, other.rank)
        )

    def __repr__(self):
        return (
            f"GFMMLayout(n_leaves={self.n_leaves}, block_size={self.block_size}, "
            f"rank={self.rank})"
        )


class GFMMBlock(nn.Module):
    """Block lower, block upper or general GFMM block with learnable parameters.

    Parameters
    ----------
    layout : GFMMLayout
        Sizes.
    kind : {'lower', 'upper', 'general'}
        ``'upper'`` is stored as a lower block in reversed leaf order.
        ``'general'`` has bridges and near-field couplings in both directions.
    unit_diagonal : bool
        Diagonal blocks fixed to the identity (no ``D`` parameter): removes the
        gauge freedom ``(L_ii G)(G^-1 U_ii)`` of an LU pair.
    dtype, device : torch dtype and device.
    """

    def __init__(self, layout, kind="lower", *, unit_diagonal=False,
                 dtype=torch.float64, device="cpu"):
        super().__init__()
        if kind not in ("lower", "upper", "general"):
            raise ValueError(f"kind must be 'lower', 'upper' or 'general', got {kind!r}.")
        self.layout = layout
        self.kind = kind
        self.unit_diagonal = bool(unit_diagonal)
        opts = {"dtype": dtype, "device": device}
        shapes = self.parameter_shapes(layout, kind, unit_diagonal=unit_diagonal)

        def zeros(name):
            return nn.Parameter(torch.zeros(*shapes[name], **opts))

        def levels(prefix):
            names = sorted((k for k in shapes if k.startswith(prefix) and k[len(prefix):]
                            .isdigit()), key=lambda k: int(k[len(prefix):]))
            return nn.ParameterList([zeros(k) for k in names]) if names else None

        P = layout.block_size
        self.D = None if "D" not in shapes else nn.Parameter(
            torch.eye(P, **opts).expand(*shapes["D"]).clone())
        self.E = zeros("E") if "E" in shapes else None
        self.E_up = zeros("E_up") if "E_up" in shapes else None
        self.V = zeros("V") if "V" in shapes else None
        self.U = zeros("U") if "U" in shapes else None
        self.W, self.R, self.B = levels("W"), levels("R"), levels("B")
        self.B_up = levels("B_up")

    @staticmethod
    def parameter_shapes(layout, kind="lower", *, unit_diagonal=False):
        """Names and shapes of the stored parameters, without allocating any.

        ``W``, ``R``, ``B`` (and ``B_up``) are per level: ``'W2'`` ... ``'WK'``,
        ``'B1'`` ... ``'B(K-1)'``. This is the one definition of the layout
        (the constructor allocates from it; loading a saved file checks the
        stored arrays against it before reading them).
        """
        M, P, r, K = layout.n_leaves, layout.block_size, layout.rank, layout.n_levels
        shapes = {}
        if not unit_diagonal:
            shapes["D"] = (M, P, P)
        if M > 1:
            shapes["E"] = (M - 1, P, P)
            if kind == "general":
                shapes["E_up"] = (M - 1, P, P)
        if layout.has_far_field:
            # In a triangular block the rightmost node of every level sends to
            # nobody, so the two children of its parent have no V (leaves) or W
            # (interior nodes); the leftmost node receives from nobody, so the
            # two children of its parent have no U or R. Those edges are not
            # stored. A general block uses them all.
            trim = 0 if kind == "general" else 2
            shapes["V"] = shapes["U"] = (M - trim, P, r)
            for lev in range(2, K + 1):
                shapes[f"W{lev}"] = shapes[f"R{lev}"] = (2**lev - trim, r, r)
            for lev in range(1, K):
                shapes[f"B{lev}"] = (2**lev - 1, r, r)
                if kind == "general":
                    shapes[f"B_up{lev}"] = (2**lev - 1, r, r)
        return shapes

    # -- parameter views ----------------------------------------------------
    def stored(self):
        """The stored parameters by the names of :meth:`parameter_shapes`."""
        out = {name: getattr(self, name) for name in ("D", "E", "E_up", "V", "U")
               if getattr(self, name) is not None}
        for prefix, first in (("W", 2), ("R", 2), ("B", 1), ("B_up", 1)):
            for i, t in enumerate(getattr(self, prefix) or ()):
                out[f"{prefix}{first + i}"] = t
        return out

    def params(self):
        """The lower-block parameter dict this block applies (see module doc).

        Per-node arrays are full length (M or 2**l); the edges a triangular
        block does not store are zero blocks here.
        """
        return full_params(self.stored(), self.kind)

    def set_far_field(self, p):
        """Copy far-field parameters given as :meth:`params` lays them out.

        ``p`` holds full-length per-node arrays ``V``, ``U``, ``W``, ``R``, ``B``
        (numpy or torch); a triangular block keeps only the edges it stores
        (the inverse of the padding in :meth:`params`).
        """
        trim = self.kind != "general"

        def t(a):
            return to_torch(a, dtype=self.V.dtype, device=self.V.device)

        with torch.no_grad():
            self.V.copy_(t(p["V"][:-2] if trim else p["V"]))
            self.U.copy_(t(p["U"][2:] if trim else p["U"]))
            for dst, src in zip(self.W, p["W"], strict=True):
                dst.copy_(t(src[:-2] if trim else src))
            for dst, src in zip(self.R, p["R"], strict=True):
                dst.copy_(t(src[2:] if trim else src))
            for dst, src in zip(self.B, p["B"], strict=True):
                dst.copy_(t(src))

    def n_parameters(self):
        """Number of scalar parameters."""
        return sum(p.numel() for p in self.parameters())

    def init_far_field(self, generator, scale=1.0):
        """Random bases and near-orthogonal transfers with zero bridges.

        The far field stays exactly zero (bridges are zero), so the dense
        block is unchanged, but every far-field parameter gets a nonzero
        gradient after the first step (a product of zero factors would not).
        """
        if not self.layout.has_far_field:
            return
        P, r = self.layout.block_size, self.layout.rank
        with torch.no_grad():
            for basis in (self.V, self.U):
                basis.copy_(_randn(basis.shape, generator, basis) * (scale / math.sqrt(P)))
            for transfers in (self.W, self.R):
                for t in transfers:
                    eye = torch.eye(r, dtype=t.dtype, device=t.device)
                    noise = _randn(t.shape, generator, t) / math.sqrt(r)
                    t.copy_(eye * math.sqrt(0.5) + 0.1 * noise)

    # -- application --------------------------------------------------------
    def forward(self, X):
        """``Y = G X`` for ``X`` of shape (N, k) (torch)."""
        M, P = self.layout.n_leaves, self.layout.block_size
        Xb = X.reshape(M, P, -1)
        if self.kind == "upper":
            return reverse_blocks(apply_lower(self.params(), reverse_blocks(Xb))).reshape(X.shape)
        Y = apply_lower(self.params(), Xb, E_up=self.E_up,
                        B_up=list(self.B_up) if self.B_up is not None else None)
        return Y.reshape(X.shape)

    def transpose_apply(self, X):
        """``Y = G^T X`` with the same parameters (no dense transpose formed)."""
        M, P = self.layout.n_leaves, self.layout.block_size
        Xb = X.reshape(M, P, -1)
        if self.kind == "general":
            # The transpose of a linear map is the vector-Jacobian product of
            # the map itself: exact, and it cannot drift from forward().
            Z = torch.zeros_like(X, requires_grad=True)
            with torch.enable_grad():
                (Y,) = torch.autograd.grad(self.forward(Z), Z, grad_outputs=X,
                                           create_graph=torch.is_grad_enabled())
            return Y
        Tp = transpose_params(self.params())
        if self.kind == "upper":
            # upper = rev L rev, so upper^T = rev L^T rev = lower(T(p)).
            return apply_lower(Tp, Xb).reshape(X.shape)
        return reverse_blocks(apply_lower(Tp, reverse_blocks(Xb))).reshape(X.shape)

    def to_dense(self):
        """Dense ``N x N`` matrix (tests and figures on small N only)."""
        N = self.layout.size
        like = next(self.parameters(), None)
        eye = torch.eye(N, dtype=like.dtype if like is not None else torch.float64,
                        device=like.device if like is not None else "cpu")
        return self.forward(eye)


def full_params(stored, kind="lower"):
    """The :meth:`GFMMBlock.params` dict from stored arrays (torch or numpy).

    ``stored`` maps the names of :meth:`GFMMBlock.parameter_shapes` to arrays;
    a triangular block's per-node arrays are padded with the zero blocks of
    the edges it does not store.
    """
    def levels(prefix, first):
        out, lev = [], first
        while f"{prefix}{lev}" in stored:
            out.append(stored[f"{prefix}{lev}"])
            lev += 1
        return out or None

    V, U, W, R = stored.get("V"), stored.get("U"), levels("W", 2), levels("R", 2)
    if V is not None and kind != "general":
        V, U = _pad_last(V), _pad_first(U)
        W = [_pad_last(t) for t in W]
        R = [_pad_first(t) for t in R]
    return {"D": stored.get("D"), "E": stored.get("E"), "V": V, "U": U, "W": W, "R": R,
            "B": levels("B", 1)}


def _pad_last(t):
    if isinstance(t, np.ndarray):
        return np.concatenate([t, np.zeros_like(t[:2])])
    return torch.cat([t, torch.zeros_like(t[:2])])


def _pad_first(t):
    if isinstance(t, np.ndarray):
        return np.concatenate([np.zeros_like(t[:2]), t])
    return torch.cat([torch.zeros_like(t[:2]), t])


def _flip(t):
    if t is None:
        return None
    return t[::-1] if isinstance(t, np.ndarray) else torch.flip(t, dims=(0,))


def _flip_transpose(t):
    if t is None:
        return None
    if isinstance(t, np.ndarray):
        return np.swapaxes(t[::-1], -1, -2)
    return torch.flip(t, dims=(0,)).transpose(-1, -2)


def _randn(shape, generator, like):
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)


def reverse_blocks(Xb):
    """Reverse the order of the leaf blocks of ``Xb`` (shape (M, P, k))."""
    return torch.flip(Xb, dims=(0,))


def transpose_params(p):
    """Parameters of ``rev . L^T . rev`` as a lower block (see module doc).

    Works on torch tensors and on numpy arrays alike.
    """
    return {
        "D": _flip_transpose(p["D"]),
        "E": _flip_transpose(p["E"]),
        "V": _flip(p["U"]),
        "U": _flip(p["V"]),
        "W": None if p["R"] is None else [_flip(t) for t in p["R"]],
        "R": None if p["W"] is None else [_flip(t) for t in p["W"]],
        "B": None if p["B"] is None else [_flip_transpose(t) for t in p["B"]],
    }


def apply_lower(p, Xb, *, E_up=None, B_up=None):
    """Apply a lower GFMM block, batched per tree level.

    Parameters
    ----------
    p : dict
        Parameters as returned by :meth:`GFMMBlock.params` (``D`` may be None
        for a unit diagonal).
    Xb : tensor, shape (M, P, k)
        Input in leaf blocks.
    E_up, B_up : optional
        Upward near-field blocks and bridges for a general block.

    Returns
    -------
    tensor, shape (M, P, k)
    """
    M = Xb.shape[0]
    Y = Xb.clone() if p["D"] is None else torch.bmm(p["D"], Xb)
    if M > 1:
        Y = Y + torch.cat([torch.zeros_like(Xb[:1]), torch.bmm(p["E"], Xb[:-1])])
        if E_up is not None:
            Y = Y + torch.cat([torch.bmm(E_up, Xb[1:]), torch.zeros_like(Xb[:1])])
    if p["V"] is None:
        return Y
    K = int(round(math.log2(M)))
    r, k = p["V"].shape[2], Xb.shape[2]
    # Up-sweep: g[l] for levels 1..K (index l-1).
    g = [None] * (K + 1)
    g[K] = torch.einsum("mpr,mpk->mrk", p["V"], Xb)
    for lev in range(K, 1, -1):
        t = torch.einsum("crs,crk->csk", p["W"][lev - 2], g[lev])
        g[lev - 1] = t.reshape(2 ** (lev - 1), 2, r, k).sum(dim=1)
    # Down-sweep through the bridges.
    f = None
    for lev in range(1, K + 1):
        if lev >= 2:
            parent = f.repeat_interleave(2, dim=0)
            f = torch.einsum("crs,csk->crk", p["R"][lev - 2], parent)
        else:
            f = torch.zeros(2, r, k, dtype=Xb.dtype, device=Xb.device)
        if lev < K:
            bridge = torch.bmm(p["B"][lev - 1], g[lev][:-1])
            f = f + torch.cat([torch.zeros_like(bridge[:1]), bridge])
            if B_up is not None:
                bridge_up = torch.bmm(B_up[lev - 1], g[lev][1:])
                f = f + torch.cat([bridge_up, torch.zeros_like(bridge_up[:1])])
    return Y + torch.bmm(p["U"], f)
