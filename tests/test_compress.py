"""The algebraic far-field compression behind init='exact_compressed'."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from learned_precond._compress import compress_lower, far_part
from learned_precond.gfmm import GFMMBlock, GFMMLayout, apply_lower


def _hss_block(M, P, r, seed):
    """A random far field of GFMM form with sibling bridges only (HSS form).

    The near field is zero: the test compares far fields.
    """
    g = torch.Generator().manual_seed(seed)
    blk = GFMMBlock(GFMMLayout(M, P, r), "lower")
    with torch.no_grad():
        for p in blk.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        for B in blk.B:
            B[1::2] = 0  # bridge b-1 -> b is stored at b-1: keep odd b only
        blk.D.zero_()
        blk.E.zero_()
    return blk


def _dense(params, M, P):
    eye = torch.eye(M * P, dtype=torch.float64).reshape(M, P, M * P)
    with torch.no_grad():
        return apply_lower(params, eye).reshape(M * P, M * P).numpy()


def _far_params(p, M, P):
    """``compress_lower``'s arrays as ``apply_lower`` parameters with zero near field."""
    zero = torch.zeros(M, P, P, dtype=torch.float64)
    out = {"D": zero, "E": zero[1:]}
    for key, value in p.items():
        out[key] = ([torch.from_numpy(t) for t in value] if isinstance(value, list)
                    else torch.from_numpy(value))
    return out


@pytest.mark.parametrize("M,P,r", [(4, 3, 2), (8, 4, 2), (16, 4, 3), (32, 2, 2)])
def test_far_field_of_gfmm_form_is_reproduced_exactly(M, P, r):
    dense = _dense(_hss_block(M, P, r, seed=M + P).params(), M, P)
    F = far_part(sp.csr_array(dense), P)
    p = compress_lower(F, M, P, r)
    params = _far_params(p, M, P)
    np.testing.assert_allclose(_dense(params, M, P), F.toarray(), atol=1e-9 * abs(dense).max())
    # What the bridges add to the sub-diagonal blocks, as the near field sees it.
    far = _dense(params, M, P).reshape(M, P, M, P)
    for i in range(1, M):
        np.testing.assert_allclose(p["E_far"][i - 1], far[i, :, i - 1], atol=1e-12)


def test_far_part_keeps_what_bridges_carry():
    M, P = 8, 3
    F = far_part(sp.csr_array(np.tril(np.ones((M * P, M * P)))), P)
    rows, cols = np.nonzero(F.toarray())
    d, i = rows // P - cols // P, rows // P
    assert np.all((d >= 2) | ((d == 1) & (i % 2 == 0)))
    assert F.nnz == P * P * (sum(i - 1 for i in range(2, M)) + len(range(2, M, 2)))


def test_truncation_error_falls_with_rank():
    # A smooth kernel's far field is numerically low rank: the compression
    # error shrinks as the rank grows.
    M, P = 16, 4
    x = np.linspace(0, 1, M * P)
    dense = np.tril(1.0 / (1.0 + 50 * np.abs(x[:, None] - x[None, :])))
    F = far_part(sp.csr_array(dense), P)
    errors = []
    for r in (1, 2, 4):
        params = _far_params(compress_lower(F, M, P, r), M, P)
        errors.append(np.linalg.norm(_dense(params, M, P) - F.toarray()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-2 * np.linalg.norm(F.toarray())
