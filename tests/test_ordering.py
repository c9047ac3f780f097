"""Tests of the hierarchical orderings in learned_precond.ordering."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import aslinearoperator

from learned_precond import ordering as ordering_module
from learned_precond.ordering import TreeOrdering, offdiagonal_ranks, tree_ordering


def laplace_1d(n):
    return sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))


def laplace_2d(nx, ny):
    """5-point Laplacian, unknown i * ny + j at grid point (i, j) (last axis fastest)."""
    return sp.csr_array(
        sp.kron(laplace_1d(nx), sp.eye_array(ny)) + sp.kron(sp.eye_array(nx), laplace_1d(ny))
    )


def laplace_3d(n):
    L, eye = laplace_1d(n), sp.eye_array(n)
    return sp.csr_array(
        sp.kron(sp.kron(L, eye), eye)
        + sp.kron(sp.kron(eye, L), eye)
        + sp.kron(sp.kron(eye, eye), L)
    )


def random_sparse(n, seed):
    rng = np.random.default_rng(seed)
    A = sp.random_array((n, n), density=min(1.0, 3.0 / n), rng=rng)
    return sp.csr_array(A + sp.eye_array(n))


def build(A, block_size, method, seed=0):
    """tree_ordering with the coordinates each method needs (random points for geometric)."""
    n = A.shape[0]
    if method == "geometric":
        coords = np.random.default_rng(seed).random((n, 2))
        return tree_ordering(A, block_size, method=method, coords=coords)
    return tree_ordering(A, block_size, method=method)


def leaf_members(order, i):
    idx = order.slots[i * order.block_size : (i + 1) * order.block_size]
    return idx[idx >= 0]


def node_members(order, level, a):
    width = 2 ** (order.n_levels - level) * order.block_size
    idx = order.slots[a * width : (a + 1) * width]
    return idx[idx >= 0]


def is_connected(A, idx):
    if idx.size == 0:
        return True
    graph = abs(A) + abs(A).T
    return connected_components(graph[idx][:, idx], directed=False)[0] == 1


def far_couplings(A, positions, block_size):
    """Nonzeros of A coupling leaves that are neither the same nor adjacent."""
    coo = sp.coo_array(A)
    leaf_r = positions[coo.row] // block_size
    leaf_c = positions[coo.col] // block_size
    return int(np.count_nonzero(np.abs(leaf_r - leaf_c) > 1))


def check_invariants(order, n, block_size):
    M, P = order.n_leaves, order.block_size
    assert (order.n, P) == (n, block_size)
    assert M == 2**order.n_levels
    assert M * P >= n and (M == 1 or (M // 2) * P < n)  # smallest power of two
    assert order.slots.dtype == np.int64 and order.positions.dtype == np.int64
    assert order.slots.shape == (M * P,) and order.positions.shape == (n,)
    real = order.slots[order.slots >= 0]
    np.testing.assert_array_equal(np.sort(real), np.arange(n))
    assert np.all(order.slots[order.slots < 0] == -1)
    np.testing.assert_array_equal(order.slots[order.positions], np.arange(n))
    filled = order.slots.reshape(M, P) >= 0
    # real unknowns first in each leaf: no padding slot before a real one
    assert np.all(np.diff(filled.astype(np.int8), axis=1) <= 0)
    np.testing.assert_array_equal(order.leaf_sizes, filled.sum(axis=1))
    assert order.leaf_sizes.max() <= P
    assert order.method != "auto"


CASES = [(1, 1), (1, 4), (3, 1), (5, 8), (16, 16), (17, 16), (100, 16), (300, 7), (64, 1)]


@pytest.mark.parametrize("method", ["natural", "geometric", "bisection", "auto"])
@pytest.mark.parametrize(("n", "block_size"), CASES, ids=[f"n{n}-P{p}" for n, p in CASES])
def test_slots_are_a_padded_permutation(method, n, block_size):
    order = build(random_sparse(n, seed=n), block_size, method)
    check_invariants(order, n, block_size)


@pytest.mark.parametrize(("n", "block_size"), [(100, 16), (300, 7), (333, 1), (1000, 16)])
def test_geometric_fills_leaves_before_padding(n, block_size):
    # The first child of every node takes as many unknowns as its subtree
    # holds: all occupied leaves but the last are full, padding is whole leaves.
    order = build(random_sparse(n, seed=1), block_size, "geometric")
    sizes = order.leaf_sizes
    full = n // block_size
    np.testing.assert_array_equal(sizes[:full], block_size)
    assert sizes[full:].sum() == n - full * block_size
    assert np.count_nonzero(sizes[full:]) <= 1


@pytest.mark.parametrize(("n", "block_size"), [(100, 16), (300, 7), (333, 1), (1000, 16)])
def test_bisection_halves_every_node(n, block_size):
    # Children hold ceil(m/2) and floor(m/2): at level l every node holds
    # floor(n / 2**l) or ceil(n / 2**l) unknowns, so capacities are never exceeded.
    method = "bisection"
    order = build(random_sparse(n, seed=1), block_size, method)
    for level in range(order.n_levels + 1):
        counts = [node_members(order, level, a).size for a in range(2**level)]
        assert sum(counts) == n
        assert set(counts) <= {n // 2**level, -(-n // 2**level)}


def test_natural_puts_padding_in_the_last_leaves():
    order = tree_ordering(sp.eye_array(100, format="csr"), 16, method="natural")
    assert (order.n_leaves, order.n_levels) == (8, 3)
    np.testing.assert_array_equal(order.slots[:100], np.arange(100))
    assert np.all(order.slots[100:] == -1)
    np.testing.assert_array_equal(order.positions, np.arange(100))
    np.testing.assert_array_equal(order.leaf_sizes, [16] * 6 + [4, 0])


@pytest.mark.parametrize("method", ["natural", "geometric", "bisection"])
def test_to_slots_from_slots_round_trip(method):
    n = 100
    order = build(random_sparse(n, seed=3), 16, method)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    y = order.to_slots(x)
    assert y.shape == (order.n_slots,)
    assert np.all(y[order.slots < 0] == 0)
    np.testing.assert_array_equal(y[order.slots >= 0], x[order.slots[order.slots >= 0]])
    np.testing.assert_array_equal(order.from_slots(y), x)

    X = rng.standard_normal((n, 3)).astype(np.float32)
    Y = order.to_slots(X)
    assert Y.shape == (order.n_slots, 3) and Y.dtype == np.float32
    np.testing.assert_array_equal(order.from_slots(Y), X)

    with pytest.raises(ValueError, match="shape"):
        order.to_slots(np.ones(n + 1))
    with pytest.raises(ValueError, match="shape"):
        order.from_slots(np.ones(n))


@pytest.mark.parametrize("method", ["natural", "geometric", "bisection"])
def test_permute_matrix_is_padded_PAPT(method):
    n = 70
    A = random_sparse(n, seed=5)
    order = build(A, 8, method)
    N = order.n_slots
    # explicit permutation matrix: row s of perm selects unknown slots[s]
    perm = np.zeros((N, n))
    real = np.flatnonzero(order.slots >= 0)
    perm[real, order.slots[real]] = 1.0
    expected = perm @ A.toarray() @ perm.T + np.diag((order.slots < 0).astype(float))

    Ap = order.permute_matrix(A)
    assert isinstance(Ap, sp.csr_array) and Ap.shape == (N, N)
    np.testing.assert_array_equal(Ap.toarray(), expected)
    Ad = order.permute_matrix(A.toarray())
    assert isinstance(Ad, np.ndarray)
    np.testing.assert_array_equal(Ad, expected)
    # consistency with the vector maps: (P A P^T) (P x) = P (A x)
    x = np.random.default_rng(1).standard_normal(n)
    np.testing.assert_allclose(Ap @ order.to_slots(x), order.to_slots(A @ x))

    with pytest.raises(ValueError, match="unknowns"):
        order.permute_matrix(sp.eye_array(n + 1, format="csr"))
    with pytest.raises(TypeError, match="LinearOperator"):
        order.permute_matrix(aslinearoperator(A))


def test_geometric_16x16_grid_gives_4x4_square_leaves():
    A = laplace_2d(16, 16)
    order = tree_ordering(A, 16, grid_shape=(16, 16))
    assert order.method == "geometric" and order.n_leaves == 16
    squares = set()
    for i in range(order.n_leaves):
        ii, jj = np.divmod(leaf_members(order, i), 16)
        assert ii.size == 16
        assert ii.max() - ii.min() == 3 and jj.max() - jj.min() == 3
        assert ii.min() % 4 == 0 and jj.min() % 4 == 0
        squares.add((ii.min(), jj.min()))
    assert len(squares) == 16
    # Z order: the first four leaves tile the top-left 8 x 8 quadrant
    ii, jj = np.divmod(node_members(order, 2, 0), 16)
    assert ii.max() == 7 and jj.max() == 7


def test_grid_shape_last_axis_fastest_and_coords_agree():
    # 4 x 16 grid: index = i * 16 + j. Leaves must be 4 x 4 squares spanning all rows.
    n = 64
    order = tree_ordering(sp.eye_array(n, format="csr"), 16, grid_shape=(4, 16))
    np.testing.assert_array_equal(
        np.sort(leaf_members(order, 0)), (np.arange(4)[:, None] * 16 + np.arange(4)).ravel()
    )
    coords = np.stack(np.unravel_index(np.arange(n), (4, 16)), axis=1)
    by_coords = tree_ordering(sp.eye_array(n, format="csr"), 16, coords=coords, method="zorder")
    assert by_coords.method == "zorder"
    np.testing.assert_array_equal(by_coords.slots, order.slots)


def test_geometric_3d_grid_gives_cubes():
    order = tree_ordering(laplace_3d(8), 64, grid_shape=(8, 8, 8))
    assert order.n_leaves == 8
    for i in range(8):
        pts = np.stack(np.unravel_index(leaf_members(order, i), (8, 8, 8)), axis=1)
        np.testing.assert_array_equal(pts.max(axis=0) - pts.min(axis=0), [3, 3, 3])


@pytest.mark.parametrize("side", [16, 32])
def test_bisection_on_grid_gives_connected_local_leaves(side):
    A = laplace_2d(side, side)
    order = tree_ordering(A, 16, method="bisection")
    assert order.method == "bisection"
    for level in range(order.n_levels + 1):
        for a in range(2**level):
            assert is_connected(A, node_members(order, level, a))
    n = side * side
    random_positions = np.random.default_rng(0).permutation(n)
    far = far_couplings(A, order.positions, 16)
    far_random = far_couplings(A, random_positions, 16)
    assert far < 0.25 * far_random
    # edges inside a leaf: a compact subdomain keeps most of its edges
    # (a random leaf of 16 keeps about 15/(n-1) of them, a 4 x 4 square 3/4)
    coo = sp.coo_array(A)
    off = coo.row != coo.col
    row, col = coo.row[off], coo.col[off]
    inside = np.count_nonzero(order.positions[row] // 16 == order.positions[col] // 16)
    inside_random = np.count_nonzero(random_positions[row] // 16 == random_positions[col] // 16)
    assert inside > 0.5 * row.size
    assert inside > 5 * inside_random


def test_bisection_symmetrizes_a_nonsymmetric_pattern():
    # Only the superdiagonal: a directed path. Its undirected version is a path,
    # whose compact pieces are intervals.
    n = 64
    A = sp.csr_array(sp.diags_array([np.ones(n - 1)], offsets=[1], shape=(n, n)))
    order = tree_ordering(A + sp.eye_array(n), 8, method="bisection")
    for i in range(order.n_leaves):
        idx = np.sort(leaf_members(order, i))
        np.testing.assert_array_equal(np.diff(idx), 1)


def test_bisection_separates_disconnected_components():
    A = sp.block_diag([laplace_2d(8, 8), laplace_2d(8, 8)], format="csr")
    order = tree_ordering(A, 16)
    assert order.method == "bisection"
    halves = {tuple(np.sort(node_members(order, 1, a))[[0, -1]]) for a in range(2)}
    assert halves == {(0, 63), (64, 127)}
    for i in range(order.n_leaves):
        assert is_connected(A, leaf_members(order, i))


@pytest.mark.parametrize(
    "A",
    [
        sp.eye_array(50, format="csr"),  # no edges at all
        sp.block_diag([laplace_2d(5, 5), laplace_1d(9), sp.eye_array(7)], format="csr"),
    ],
    ids=["isolated-vertices", "mixed-components"],
)
def test_bisection_handles_graphs_without_enough_edges(A):
    check_invariants(tree_ordering(A, 4, method="bisection"), A.shape[0], 4)


def test_bisection_falls_back_when_metis_fails(monkeypatch):
    import pymetis

    def broken(*args, **kwargs):
        raise RuntimeError("METIS error")

    monkeypatch.setattr(pymetis, "part_graph", broken)
    A = laplace_2d(16, 16)
    order = tree_ordering(A, 16, method="bisection")
    check_invariants(order, 256, 16)
    # breadth-first halves of a grid are connected
    for a in range(2):
        assert is_connected(A, node_members(order, 1, a))


def test_rebalancing_moves_vertices_next_to_the_cut(monkeypatch):
    # METIS answer replaced by a 10 / 2 split of a path of 12 vertices: the
    # 4 vertices handed over must be those adjacent, in turn, to the small side.
    import pymetis

    def lopsided(nparts, adjacency, **kwargs):
        m = len(adjacency.adj_starts) - 1
        return pymetis.GraphPartition(0, [1] * (m - 2) + [0, 0])

    monkeypatch.setattr(pymetis, "part_graph", lopsided)
    A = sp.csr_array(laplace_1d(12))
    order = tree_ordering(A, 6, method="bisection")
    np.testing.assert_array_equal(np.sort(node_members(order, 1, 0)), np.arange(6))
    np.testing.assert_array_equal(np.sort(node_members(order, 1, 1)), np.arange(6, 12))


def test_bisection_is_deterministic_and_format_independent():
    A = random_sparse(500, seed=7)
    A = sp.csr_array(A + A.T)
    first = tree_ordering(A, 16, method="bisection", seed=3)
    for B in (A, sp.csc_array(A), sp.coo_array(A), sp.csr_matrix(A)):
        again = tree_ordering(B, 16, method="bisection", seed=3)
        np.testing.assert_array_equal(again.slots, first.slots)
    # the pattern counts, not the values
    scaled = tree_ordering(A * 3.7, 16, method="bisection", seed=3)
    np.testing.assert_array_equal(scaled.slots, first.slots)


def test_auto_dispatch():
    A = laplace_2d(8, 8)
    assert tree_ordering(A, 16).method == "bisection"
    assert tree_ordering(A, 16, grid_shape=(8, 8)).method == "geometric"
    assert tree_ordering(A, 64).method == "natural"  # n <= block_size
    assert tree_ordering(A.toarray(), 16).method == "natural"  # dense: no graph
    assert tree_ordering(aslinearoperator(A), 16).method == "natural"
    assert tree_ordering(A.toarray(), 16, method="bisection").method == "bisection"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "metis"}, ValueError, "'natural'"),
        ({"block_size": 0}, ValueError, "block_size"),
        ({"block_size": -3}, ValueError, "block_size"),
        ({"block_size": 2.5}, TypeError, "block_size"),
        ({"grid_shape": (8, 9)}, ValueError, "product of grid_shape"),
        ({"grid_shape": (8, 8.5)}, ValueError, "positive integers"),
        ({"grid_shape": (8, 8), "coords": np.zeros((64, 2))}, ValueError, "not both"),
        ({"coords": np.zeros((63, 2))}, ValueError, "coords must have shape"),
        ({"coords": np.full((64, 2), np.nan)}, ValueError, "NaN"),
        ({"method": "geometric"}, ValueError, "grid_shape"),
        ({"method": "bisection", "seed": 1.5}, TypeError, "seed"),
    ],
)
def test_invalid_arguments_raise(kwargs, error, match):
    options = {"block_size": 16, **kwargs}
    block_size = options.pop("block_size")
    with pytest.raises(error, match=match):
        tree_ordering(laplace_2d(8, 8), block_size, **options)


def test_invalid_matrices_raise():
    with pytest.raises(ValueError, match="square"):
        tree_ordering(np.ones((3, 4)), 2)
    with pytest.raises(TypeError, match="LinearOperator"):
        tree_ordering(aslinearoperator(laplace_2d(4, 4)), 4, method="bisection")


def test_ordering_is_frozen_and_read_only():
    order = tree_ordering(laplace_2d(8, 8), 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.method = "natural"
    with pytest.raises(ValueError, match="read-only"):
        order.slots[0] = 5
    assert "n_leaves=4" in repr(order)
    with pytest.raises(ValueError, match="2\\*\\*n_levels"):
        TreeOrdering(4, 2, 3, 1, np.arange(6), np.arange(4), "natural")


def test_hierarchical_orderings_lower_far_field_ranks():
    # 16 x 16 Poisson, P = 16: the sibling blocks of A^-1 at level 2 couple
    # 64-unknown nodes. In natural order these are strips of 4 rows whose
    # interface is a full row (16 points); in Z order, 8 x 8 squares.
    A = laplace_2d(16, 16)
    natural = tree_ordering(A, 16, method="natural")
    zorder = tree_ordering(A, 16, grid_shape=(16, 16))
    bisection = tree_ordering(A, 16, method="bisection")
    r_nat = offdiagonal_ranks(A, natural, 2, tol=1e-6)
    r_z = offdiagonal_ranks(A, zorder, 2, tol=1e-6)
    r_bis = offdiagonal_ranks(A, bisection, 2, tol=1e-6)
    assert r_nat.shape == (2,)
    assert r_z.max() < r_nat.max() and r_bis.max() < r_nat.max()
    # L factor, Z order, level 2 (8 x 8 squares). First pair: the block is
    # A10 U00^-1, whose rank is the number of unknowns of node 1 coupled to
    # node 0: the 8 points of the shared edge. Second pair (bottom half): the
    # Schur complement of the top half adds fill on node 3's top row, so the
    # coupled rows are its left column and its top row: at most 8 + 8 - 1.
    r_lower = offdiagonal_ranks(A, zorder, 2, tol=1e-10, which="lower")
    assert r_lower[0] == 8
    assert 8 <= r_lower[1] <= 15


def test_offdiagonal_ranks_checks_its_arguments():
    A = laplace_2d(8, 8)
    order = tree_ordering(A, 16)
    with pytest.raises(ValueError, match="level"):
        offdiagonal_ranks(A, order, 0)
    with pytest.raises(ValueError, match="level"):
        offdiagonal_ranks(A, order, 3)
    with pytest.raises(ValueError, match="which"):
        offdiagonal_ranks(A, order, 1, which="upper")
    big = tree_ordering(sp.eye_array(5000, format="csr"), 16, method="natural")
    with pytest.raises(ValueError, match="4096"):
        offdiagonal_ranks(sp.eye_array(5000, format="csr"), big, 1)


def test_module_exports():
    assert set(ordering_module.__all__) == {"TreeOrdering", "tree_ordering", "offdiagonal_ranks"}
