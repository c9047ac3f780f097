"""The hierarchical (compressed multifrontal) start on the nested-dissection tree."""

import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg, gmres

from learned_precond import problems
from learned_precond._hierarchical import (
    BLOCK_WIDTH,
    factorization_plan,
    hierarchical_factorization,
    nested_dissection,
    separates,
    solve_reference,
)
from learned_precond._hierarchical.tree import subtree_starts


def _laplace(n):
    return sp.csr_array(problems.get("laplace_2d", n=n))


def _convdiff(n):
    return sp.csr_array(problems.get("convection_diffusion_2d", n=n, eps=1e-2,
                                     velocity="vortex"))


def _dense_M(f, tree, n, transposed=False):
    E = np.eye(n)[tree.perm]
    cols = f.solve_transposed(E) if transposed else f.solve(E)
    M = np.empty((n, n))
    M[tree.perm] = cols
    return M


def _ancestors(parent, t):
    out = set()
    while t >= 0:
        out.add(t)
        t = parent[t]
    return out


def _check_tree(A, tree, leaf_size):
    n = A.shape[0]
    assert np.array_equal(np.sort(tree.perm), np.arange(n))
    owner = np.empty(n, dtype=np.int64)
    owner[tree.perm] = np.repeat(np.arange(tree.n_nodes), tree.sizes)
    # Post-order: every parent after its children.
    has_parent = tree.parent >= 0
    assert np.all(tree.parent[has_parent] > np.flatnonzero(has_parent))
    # Separator property: an edge of A joins a node and one of its ancestors.
    coo = sp.coo_array(A)
    for i, j in zip(coo.row, coo.col, strict=True):
        a, b = owner[i], owner[j]
        assert a in _ancestors(tree.parent, b) or b in _ancestors(tree.parent, a)
    leaves = np.setdiff1d(np.arange(tree.n_nodes), tree.parent)
    assert tree.sizes[leaves].max() <= leaf_size
    assert np.array_equal(tree.depth[has_parent], tree.depth[tree.parent[has_parent]] + 1)


@pytest.mark.parametrize("method", ["metis", "level_set"])
@pytest.mark.parametrize("leaf_size", [4, 16, 64])
def test_tree_is_a_nested_dissection(leaf_size, method):
    A = _laplace(20)
    tree = nested_dissection(A, leaf_size=leaf_size, method=method)
    assert tree.method == method
    _check_tree(A, tree, leaf_size)


def _random_graph(n, degree, seed):
    rng = np.random.default_rng(seed)
    R = sp.random_array((n, n), density=degree / n, rng=rng, format="csr")
    return sp.csr_array(R + R.T + sp.eye_array(n))


@pytest.mark.parametrize("make", [
    lambda: sp.csr_array(problems.get("laplace_3d", n=9)),
    lambda: _random_graph(300, 3, 0),           # irregular, small diameter
    lambda: _random_graph(200, 0.5, 1),         # many components
    lambda: sp.csr_array(np.ones((40, 40))),    # a clique: one level below the root
    lambda: sp.diags_array([np.ones(99), np.ones(100), np.ones(99)], offsets=[-1, 0, 1],
                           format="csr"),       # a path
    lambda: sp.block_diag([_laplace(6), _laplace(5), sp.eye_array(3)], format="csr"),
])
def test_level_set_trees_separate_any_graph(make):
    A = make()
    tree = nested_dissection(A, leaf_size=8, method="level_set")
    _check_tree(A, tree, 8)
    assert separates(A, tree)
    n = A.shape[0]
    A = sp.csr_array(A + n * sp.eye_array(n))  # diagonally dominant, so SPD
    f, _ = hierarchical_factorization(A, tree, tol=0.0, symmetric=True)
    assert np.allclose(_dense_M(f, tree, n) @ A.toarray(), np.eye(n), atol=1e-9)


def test_auto_ordering_picks_level_sets_on_a_mesh_only():
    from learned_precond._hierarchical.tree import LEVEL_SET_MIN

    grid = _laplace(128)
    assert grid.shape[0] >= LEVEL_SET_MIN
    assert nested_dissection(grid).method == "level_set"
    assert nested_dissection(_laplace(20)).method == "metis"       # small: METIS
    # a large graph of small diameter: the level sets are far wider than METIS's cut
    assert nested_dissection(_random_graph(LEVEL_SET_MIN, 4, 2)).method == "metis"
    with pytest.raises(ValueError, match="method must be one of"):
        nested_dissection(grid, method="amd")


def test_stored_zeros_are_not_edges():
    # an explicit zero joining the two far corners of a grid: no edge to separate
    C = sp.coo_array(_laplace(12))
    A = sp.csr_array((np.r_[C.data, 0.0, 0.0], (np.r_[C.row, 0, 143], np.r_[C.col, 143, 0])),
                     shape=(144, 144))
    assert A.nnz == C.nnz + 2 and (A.data == 0).sum() == 2
    tree = nested_dissection(A, leaf_size=8)
    assert separates(A, tree)
    from learned_precond import LearnedLU

    M = LearnedLU.fit(A, seed=0)
    x, info = cg(A, np.ones(144), M=M, rtol=1e-10)
    assert info == 0 and np.linalg.norm(A @ x - 1) < 1e-8 * 12


@pytest.mark.parametrize(("make", "symmetric"),
                         [(_laplace, True), (_laplace, False), (_convdiff, False)],
                         ids=["laplace-cholesky", "laplace-lu", "convdiff-lu"])
def test_tol_zero_is_the_exact_inverse(make, symmetric):
    A = make(12)
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=8)
    f, stats = hierarchical_factorization(A, tree, tol=0.0, symmetric=symmetric)
    M = _dense_M(f, tree, n)
    assert np.allclose(M @ A.toarray(), np.eye(n), atol=1e-10)
    assert stats["truncated_nodes"] == 0


@pytest.mark.parametrize("symmetric", [True, False])
def test_compiled_kernel_matches_reference(symmetric):
    A = _laplace(40) if symmetric else _convdiff(40)
    tree = nested_dissection(A, leaf_size=32)
    f, stats = hierarchical_factorization(A, tree, tol=0.2, symmetric=symmetric, dense_entries=0)
    assert stats["truncated_nodes"] > 0  # the low-rank paths are exercised
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((A.shape[0], 3))
    X = f.solve(Y)
    Xt = f.solve_transposed(Y)
    for j in range(3):
        np.testing.assert_allclose(X[:, j], solve_reference(f, Y[:, j]), atol=1e-12)
        np.testing.assert_allclose(Xt[:, j], solve_reference(f, Y[:, j], transposed=True),
                                   atol=1e-12)
        np.testing.assert_allclose(f.solve(Y[:, j]), X[:, j], atol=1e-14)


@pytest.mark.parametrize("k", [1, 3, 17, BLOCK_WIDTH + 6])
@pytest.mark.parametrize("symmetric", [True, False], ids=["cholesky", "lu"])
def test_many_right_hand_sides_equal_single_solves(symmetric, k):
    # k columns go through one blocked pass (two chunks for BLOCK_WIDTH + 6);
    # every column must equal its own single-vector solve to rounding.
    A = _laplace(24) if symmetric else _convdiff(24)
    tree = nested_dissection(A, leaf_size=16)
    f, stats = hierarchical_factorization(A, tree, tol=0.2, symmetric=symmetric, dense_entries=0)
    assert stats["truncated_nodes"] > 0
    Y = np.random.default_rng(k).standard_normal((A.shape[0], k))
    for solve in (f.solve, f.solve_transposed):
        X = solve(Y)
        assert X.shape == Y.shape
        single = np.column_stack([solve(Y[:, j]) for j in range(k)])
        np.testing.assert_allclose(X, single, rtol=1e-12, atol=1e-12 * np.abs(single).max())
    assert np.array_equal(f.solve(Y[:, :1])[:, 0], f.solve(Y[:, 0]))


@pytest.mark.parametrize("k", [1, 3, 17])
@pytest.mark.parametrize("make", [_laplace, _convdiff], ids=["cholesky", "lu"])
def test_learned_lu_matmat_is_blocked_single_applications(make, k):
    from learned_precond import LearnedLU

    A = make(20)
    M = LearnedLU.fit(A, init="hierarchical", rank_tol=0.2, seed=0)
    X = np.random.default_rng(1).standard_normal((A.shape[0], k))
    single = np.column_stack([M @ X[:, j] for j in range(k)])
    scale = np.abs(single).max()
    np.testing.assert_allclose(M @ X, single, rtol=1e-12, atol=1e-12 * scale)
    single_t = np.column_stack([M.rmatvec(X[:, j]) for j in range(k)])
    np.testing.assert_allclose(M.H @ X, single_t, rtol=1e-12,
                               atol=1e-12 * np.abs(single_t).max())


def test_transposed_solve_is_the_transpose():
    A = _convdiff(36)
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=32)
    f, _ = hierarchical_factorization(A, tree, tol=0.3, symmetric=False, dense_entries=0)
    np.testing.assert_allclose(_dense_M(f, tree, n, transposed=True),
                               _dense_M(f, tree, n).T, atol=1e-12)


def test_symmetric_start_is_spd_after_truncation():
    A = _laplace(40)
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=32)
    f, stats = hierarchical_factorization(A, tree, tol=0.3, symmetric=True, dense_entries=0)
    assert stats["truncated_nodes"] > 0
    M = _dense_M(f, tree, n)
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    assert np.linalg.eigvalsh((M + M.T) / 2).min() > 0


def test_tolerance_trades_memory_for_iterations():
    A = _laplace(64)
    n = A.shape[0]
    b = A @ np.ones(n)
    tree = nested_dissection(A, leaf_size=32)
    its, entries = [], []
    for tol in (1e-3, 1e-1, 0.5):
        f, stats = hierarchical_factorization(A, tree, tol=tol, symmetric=True)

        def mv(v, f=f):
            out = np.empty(n)
            out[tree.perm] = f.solve(v[tree.perm])
            return out

        count = [0]
        x, info = cg(A, b, M=LinearOperator((n, n), matvec=mv), rtol=1e-8, maxiter=500,
                     callback=lambda _: count.__setitem__(0, count[0] + 1))
        assert info == 0
        its.append(count[0])
        entries.append(f.factor_entries)
    assert its[0] <= its[1] <= its[2]
    assert its[0] <= 5
    assert entries[0] > entries[1] > entries[2]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("shape", [(90, 30), (30, 90)])
def test_gram_row_space_matches_the_svd(shape, compiled):
    # the couplings' truncation takes the Gram matrix's eigenvectors at
    # tol >= GRAM_MIN_TOL (compiled, or numpy's: the reference): same rank
    # and same subspace as the SVD's
    from learned_precond._hierarchical import factorization as fz

    rng = np.random.default_rng(3)
    m, n = shape
    U, _ = np.linalg.qr(rng.standard_normal((m, min(m, n))))
    V, _ = np.linalg.qr(rng.standard_normal((n, min(m, n))))
    sv = 10.0 ** -np.linspace(0, 6, min(m, n))
    G = (U * sv) @ V.T
    for tol in (1e-2, 1e-4):
        W, zero = fz._row_space(G, tol, 1000, compiled)
        Ws, _ = fz._row_space(G, fz.GRAM_MIN_TOL / 10, 1000, compiled)  # the SVD path
        k = int(np.count_nonzero(sv > tol))
        assert not zero and W.shape == (n, k)
        np.testing.assert_allclose(W.T @ W, np.eye(k), atol=1e-10)
        np.testing.assert_allclose(W @ W.T, V[:, :k] @ V[:, :k].T, atol=1e-8)
        assert Ws.shape[1] == int(np.count_nonzero(sv > fz.GRAM_MIN_TOL / 10))
        capped, _ = fz._row_space(G, tol, 5, compiled)  # the rank bound
        np.testing.assert_allclose(capped @ capped.T, V[:, :5] @ V[:, :5].T, atol=1e-8)
    W, zero = fz._row_space(np.zeros(shape), 1e-2, 1000, compiled)
    assert zero and W.shape == (n, 0)
    # a Fortran-ordered G (the fronts pass transposes): the same space
    Wf, _ = fz._row_space(np.asfortranarray(G), 1e-2, 1000, compiled)
    k = int(np.count_nonzero(sv > 1e-2))
    np.testing.assert_allclose(Wf @ Wf.T, V[:, :k] @ V[:, :k].T, atol=1e-8)


@pytest.mark.parametrize("rank", [150, 600])
def test_randomized_gram_eigenpairs_match_eigh(rank):
    # a Gram of order >= RANDOMIZED_MIN: the randomized subspace iteration
    # gives the full eigh's cut (rank 150), and falls back to eigh when the
    # rank is too large a share of the order (600 of 1200)
    from learned_precond._hierarchical import factorization as fz

    n = 1200
    assert n >= fz.RANDOMIZED_MIN
    rng = np.random.default_rng(5)
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = 10.0 ** -np.linspace(0, 8 * n / rank, n)  # 1e-4 (tol 1e-2) at `rank`
    H = (V * lam) @ V.T
    tol = 1e-2
    got, W = fz._gram_eigh(H, tol, n)
    k = int(np.count_nonzero(lam > tol * tol * lam[0]))
    assert int(np.count_nonzero(got > tol * tol * got[0])) == k
    assert (W.shape[1] == n) == (rank > n / 3) and got.size == W.shape[1] > k
    np.testing.assert_allclose(got[:k], lam[:k], rtol=1e-6)
    P = W[:, :k] @ W[:, :k].T
    np.testing.assert_allclose(P, V[:, :k] @ V[:, :k].T, atol=1e-6)
    # the same matrix gives the same subspace (the sketch is seeded)
    np.testing.assert_array_equal(fz._gram_eigh(H, tol, n)[1], W)


def test_copy_upper_copies_the_upper_triangle_only():
    from learned_precond._hierarchical.fronts import copy_upper

    for b in (1, 5, 64, 131):
        S = np.random.default_rng(b).standard_normal((b, b))
        out = np.full((b, b), np.nan)
        copy_upper(S, out)
        np.testing.assert_array_equal(np.triu(out), np.triu(S))
        assert np.isnan(out[np.tril_indices(b, -1)]).all()


@pytest.mark.parametrize("make", [_laplace, lambda n: sp.block_diag(
    [_laplace(n // 2), _laplace(n // 3), sp.eye_array(3)], format="csr")],
    ids=["laplace", "disconnected"])
def test_symmetric_updates_are_read_on_their_upper_triangle_only(make, monkeypatch):
    # A symmetric update is put on the stack as its upper triangle: with
    # every other stack entry NaN, the exact (tol = 0) factorization must
    # still be A's inverse, through the compiled small-front kernel and
    # through the LAPACK path (``compiled=False`` sends every front there;
    # the disconnected graph has empty separators, whose front is passed on).
    import learned_precond._hierarchical.factorization as fz

    monkeypatch.setattr(fz, "_new_stack", lambda size: np.full(size, np.nan))
    A = sp.csr_array(make(14))
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=8)
    for compiled in (True, False):
        f, _ = fz.hierarchical_factorization(A, tree, tol=0.0, symmetric=True,
                                             compiled=compiled)
        assert np.allclose(_dense_M(f, tree, n) @ A.toarray(), np.eye(n), atol=1e-10)


def test_upper_assembly_is_the_upper_triangle_of_the_front():
    # the symmetric factorization assembles only F's upper triangle; it must
    # be the full front's, entry for entry, with the children's updates on
    # the stack (random, not symmetric: only their upper halves may be read)
    from learned_precond._hierarchical.factorization import permuted_csr
    from learned_precond._hierarchical.fronts import assemble, symbolic

    A = _laplace(20)
    tree = nested_dissection(A, leaf_size=8)
    mats = permuted_csr(A, tree.perm)
    ptr = np.asarray(tree.ptr, dtype=np.int64)
    boff, bidx, cptr, cidx, soff, peak, status = symbolic(
        ptr, np.asarray(tree.parent, dtype=np.int64), mats[0], mats[1], mats[3], mats[4])
    assert status == 0
    stk = np.random.default_rng(0).standard_normal(int(peak))
    loc = np.full(A.shape[0], -1, dtype=np.int64)
    checked = 0
    for t in range(tree.n_nodes):
        m = int(ptr[t + 1] - ptr[t] + boff[t + 1] - boff[t])
        if cptr[t + 1] == cptr[t] or m == 0:
            continue
        full = np.empty((m, m))
        assemble(t, full, ptr, boff, bidx, cptr, cidx, soff, stk, *mats, loc, False)
        upper = np.full((m, m), np.nan)
        assemble(t, upper, ptr, boff, bidx, cptr, cidx, soff, stk, *mats, loc, True)
        np.testing.assert_array_equal(np.triu(upper), np.triu(full))
        assert np.isnan(upper[np.tril_indices(m, -1)]).all()  # left as it was
        assert np.all(loc == -1)
        checked += 1
    assert checked > 10


def test_rank_bounds_every_coupling():
    A = _laplace(40)
    tree = nested_dissection(A, leaf_size=32)
    f, stats = hierarchical_factorization(A, tree, tol=0.0, rank=4, symmetric=True)
    s, b, kl, _ = f.ranks()
    truncated = np.diff(f.xloff) > 0
    assert truncated.any()
    assert kl[truncated].max() <= 4


def test_nonsymmetric_start_converges_with_gmres():
    A = _convdiff(48)
    n = A.shape[0]
    b = A @ np.ones(n)
    tree = nested_dissection(A, leaf_size=32)
    f, _ = hierarchical_factorization(A, tree, tol=1e-2, symmetric=False)

    def mv(v):
        out = np.empty(n)
        out[tree.perm] = f.solve(v[tree.perm])
        return out

    x, info = gmres(A, b, M=LinearOperator((n, n), matvec=mv), rtol=1e-10, restart=50,
                    maxiter=5)
    assert info == 0
    assert np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b)


def test_disconnected_graph():
    A = sp.block_diag([_laplace(6), _laplace(5), sp.eye_array(3)], format="csr")
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=4)
    f, _ = hierarchical_factorization(A, tree, tol=0.0, symmetric=True)
    assert np.allclose(_dense_M(f, tree, n) @ A.toarray(), np.eye(n), atol=1e-10)


def test_a_tree_is_reused_only_for_a_graph_it_separates():
    # Warm starts reuse a previous fit's tree when separates() holds: same
    # pattern (new values) yes; another size, or an edge between two nodes
    # neither of which is the other's ancestor, no.
    A = _laplace(16)
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=8)
    assert separates(A, tree)
    A2 = sp.csr_array(A + sp.diags_array(np.linspace(0.1, 2.0, n)))
    assert separates(A2, tree)
    assert not separates(_laplace(15), tree)
    leaves = np.setdiff1d(np.arange(tree.n_nodes), tree.parent)
    i, j = tree.perm[tree.ptr[leaves[0]]], tree.perm[tree.ptr[leaves[-1]]]
    bridge = sp.coo_array(([1.0, 1.0], ([i, j], [j, i])), shape=(n, n))
    assert not separates(sp.csr_array(A + bridge), tree)
    # Refactoring A2 on the reused tree is its exact inverse at tol = 0.
    f, _ = hierarchical_factorization(A2, tree, tol=0.0, symmetric=True)
    assert np.allclose(_dense_M(f, tree, n) @ A2.toarray(), np.eye(n), atol=1e-10)


def test_indefinite_matrix_fails_cholesky_clearly():
    A = sp.csr_array(_laplace(8) - 3.0 * sp.eye_array(64))
    tree = nested_dissection(A, leaf_size=8)
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        hierarchical_factorization(A, tree, tol=0.0, symmetric=True)


@pytest.mark.parametrize(("make", "symmetric", "tol"),
                         [(_laplace, True, 0.0), (_laplace, True, 1e-2), (_laplace, False, 1e-2),
                          (_convdiff, False, 0.0), (_convdiff, False, 1e-2)],
                         ids=["laplace-cholesky-exact", "laplace-cholesky", "laplace-lu",
                              "convdiff-lu-exact", "convdiff-lu"])
def test_compiled_fronts_match_the_lapack_path(make, symmetric, tol):
    # The compiled small-front kernel (symbolic boundaries, assembly,
    # right-looking Cholesky / LU on the whole front) against the numpy and
    # LAPACK path: same structure exactly, same factors and solves to rounding.
    A = make(40)
    tree = nested_dissection(A, leaf_size=16)
    ref, ref_stats = hierarchical_factorization(A, tree, tol=tol, symmetric=symmetric,
                                                compiled=False)
    f, stats = hierarchical_factorization(A, tree, tol=tol, symmetric=symmetric)
    for name in ("ptr", "boff", "bidx", "doff", "piv", "kL", "kU", "qloff", "xloff",
                 "xuoff", "quoff"):
        np.testing.assert_array_equal(getattr(f, name), getattr(ref, name), err_msg=name)
    np.testing.assert_allclose(f.diag, ref.diag, rtol=0, atol=1e-12)
    if tol == 0:  # no SVD, whose singular vectors' signs are arbitrary
        np.testing.assert_allclose(f.QL, ref.QL, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f.QU, ref.QU, rtol=0, atol=1e-12)
    assert stats["truncated_nodes"] == ref_stats["truncated_nodes"]
    Y = np.random.default_rng(1).standard_normal((A.shape[0], 3))
    np.testing.assert_allclose(f.solve(Y), ref.solve(Y), rtol=1e-10, atol=1e-12)


def test_compiled_lu_pivots_inside_the_front():
    # Weak diagonal (0.5 against off-diagonal -1, perturbed): the compiled LU
    # must interchange rows as LAPACK does.
    rng = np.random.default_rng(3)
    L = _laplace(10)
    A = sp.csr_array(L - 3.5 * sp.eye_array(100)
                     + sp.csr_array((rng.uniform(-0.2, 0.2, L.nnz), L.indices, L.indptr),
                                    shape=L.shape))
    tree = nested_dissection(A, leaf_size=8)
    ref, _ = hierarchical_factorization(A, tree, tol=0.0, compiled=False)
    f, _ = hierarchical_factorization(A, tree, tol=0.0)
    assert np.any(f.piv != np.concatenate([np.arange(s) for s in tree.sizes]))
    np.testing.assert_array_equal(f.piv, ref.piv)
    n = A.shape[0]
    assert np.allclose(_dense_M(f, tree, n) @ A.toarray(), np.eye(n), atol=1e-8)


def test_a_tree_that_does_not_separate_a_is_refused():
    # A in the tree's numbering is not A: its entries join unrelated nodes.
    A = _laplace(12)
    tree = nested_dissection(A, leaf_size=8)
    with pytest.raises(ValueError, match="does not separate"):
        hierarchical_factorization(sp.csr_array(A[tree.perm][:, tree.perm]), tree, tol=0.0,
                                   symmetric=True)


def test_tree_out_of_post_order_is_refused():
    A = _laplace(8)
    tree = nested_dissection(A, leaf_size=8)
    T = tree.n_nodes
    bad = type(tree)(perm=tree.perm, ptr=tree.ptr, parent=tree.parent.copy(), depth=tree.depth)
    # Leaf 0 adopted by the last leaf's parent: its subtree is no longer contiguous.
    leaves = np.setdiff1d(np.arange(T), tree.parent)
    bad.parent[0] = tree.parent[leaves[-1]]
    with pytest.raises(ValueError, match="post-order"):
        hierarchical_factorization(A, bad, tol=0.0, symmetric=True)



@pytest.mark.parametrize(("make", "symmetric"), [(_laplace, True), (_convdiff, False)],
                         ids=["cholesky", "lu"])
def test_a_plan_serves_every_factorization_of_its_matrix(make, symmetric):
    # The plan (A permuted, the symbolic pass, the schedules) depends on A and
    # the tree only: with it, every tolerance, probe set and thread count
    # gives the factors it gives without it, bit for bit, and one plan serves
    # many factorizations (training's refactorizations share one).
    A = make(40)
    tree = nested_dissection(A, leaf_size=16)
    plan = factorization_plan(A, tree)
    Z = np.random.default_rng(5).standard_normal((A.shape[0], 3))
    for tol, probes, threads in ((1e-2, None, 1), (0.0, None, 2), (1e-2, Z, 2), (1e-2, Z, 1)):
        planned, _ = hierarchical_factorization(A, tree, tol=tol, symmetric=symmetric,
                                                probes=probes, threads=threads, plan=plan)
        fresh, _ = hierarchical_factorization(A, tree, tol=tol, symmetric=symmetric,
                                              probes=probes, threads=threads)
        for name in fresh._FIELDS:
            np.testing.assert_array_equal(getattr(planned, name), getattr(fresh, name),
                                          err_msg=name)
    with pytest.raises(ValueError, match="another tree"):
        hierarchical_factorization(A, nested_dissection(A, leaf_size=8), plan=plan)
    with pytest.raises(ValueError, match="or matrix"):  # its values would be ignored
        hierarchical_factorization(2.0 * A, tree, plan=plan)
    with pytest.raises(ValueError, match="does not separate"):
        factorization_plan(sp.csr_array(A[tree.perm][:, tree.perm]), tree)


def test_a_float32_copy_shares_the_substitution_schedule():
    # astype keeps the structure, so the two-thread schedule computed for the
    # double factors is the single copy's too: the same result as a schedule
    # computed afresh for the copy
    A = _laplace(128)
    tree = nested_dissection(A)
    f, _ = hierarchical_factorization(A, tree, tol=1e-2, symmetric=True)
    steps = f.substitution_steps()
    assert steps is not None  # large enough to split
    shared = f.astype(np.float32)
    fresh = f.astype(np.float32)
    fresh._steps = None
    np.testing.assert_array_equal(fresh.substitution_steps(), steps)
    x = np.random.default_rng(1).standard_normal((A.shape[0], 2))
    np.testing.assert_array_equal(shared.solve(x), fresh.solve(x))


# -- through LearnedLU.fit(A, init='hierarchical') ------------------------------------


def test_learned_lu_one_liner_with_hierarchical_start():
    from learned_precond import LearnedLU

    A = _convdiff(32)
    b = A @ np.ones(A.shape[0])
    M = LearnedLU.fit(A, init="hierarchical", seed=0)
    x, info = gmres(A, b, M=M, rtol=1e-8, restart=50, maxiter=3)
    assert info == 0
    assert np.linalg.norm(b - A @ x) <= 1e-7 * np.linalg.norm(b)
    rep = M.report
    assert rep.init == "hierarchical"
    # The layout may now be trained (lu.refine): start and training within the fit.
    assert rep.start_seconds + rep.train_seconds <= rep.fit_time + 1e-9
    assert not M.symmetric


def test_learned_lu_hierarchical_is_spd_on_spd_matrices():
    from learned_precond import LearnedLU

    A = _laplace(40)
    M = LearnedLU.fit(A, init="hierarchical", rank_tol=0.3, seed=0)
    assert M.symmetric
    D = M @ np.eye(A.shape[0])
    np.testing.assert_allclose(D, D.T, atol=1e-12)
    assert np.linalg.eigvalsh((D + D.T) / 2).min() > 0
    b = A @ np.ones(A.shape[0])
    x, info = cg(A, b, M=M, rtol=1e-8, maxiter=100)
    assert info == 0


def test_learned_lu_hierarchical_bad_input_is_explained():
    from learned_precond import LearnedLU

    A = _laplace(8)
    with pytest.raises(ValueError, match="rank_tol"):
        LearnedLU.fit(A, init="hierarchical", rank_tol=float("nan"))
    with pytest.raises(ValueError, match="LinearOperator"):
        LearnedLU.fit(LinearOperator(A.shape, matvec=lambda v: A @ v), init="hierarchical")


def test_learned_lu_stores_large_well_conditioned_factors_in_float32():
    # factor_dtype='auto' from N = 16384: float32 when it moves A M x by
    # <= 2e-5 (here ~2e-6): half the float bytes, the same CG iterations; an
    # explicit float64 keeps double
    from learned_precond import LearnedLU

    A = _laplace(128)
    M32 = LearnedLU.fit(A, seed=0, max_steps=0)
    M64 = LearnedLU.fit(A, seed=0, max_steps=0, factor_dtype="float64")
    assert (M32.factor_dtype, M64.factor_dtype) == ("float32", "float64")
    assert M32.factors.dtype == np.float32 and M64.factors.dtype == np.float64
    assert any("float32" in note for note in M32.report.notes)
    floats = M64.factors.factor_entries * 8
    assert M64.nbytes - M32.nbytes == floats // 2
    x = np.random.default_rng(2).standard_normal(A.shape[0])
    y32, y64 = M32 @ x, M64 @ x
    assert y32.dtype == np.float64
    assert np.linalg.norm(y32 - y64) <= 1e-5 * np.linalg.norm(y64)
    D = M32 @ np.eye(A.shape[0])[:, :40]  # still symmetric: the same loops on L L^T
    np.testing.assert_allclose(D[:40], D[:40].T, atol=1e-12 * np.abs(D).max())
    b = A @ np.ones(A.shape[0])
    its = []
    for M in (M32, M64):
        count = [0]
        _, info = cg(A, b, M=M, rtol=1e-8, callback=lambda _: count.__setitem__(0, count[0] + 1))
        assert info == 0
        its.append(count[0])
    assert its[0] == its[1]



@pytest.mark.parametrize("n", [32, 128], ids=["float64", "auto-float32"])
@pytest.mark.parametrize("bad", ["both", "float32"])
def test_factors_with_non_finite_output_are_a_setup_error(n, bad, monkeypatch):
    # Factors whose output is not finite never make a preconditioner: below
    # N = 16384 the fit's last check applies them; from it the float32
    # storage test has already applied both precisions, and its result
    # decides (float32 broken alone: the float64 factors are kept and work)
    from learned_precond import LearnedLU
    from learned_precond._hierarchical import HierarchicalFactors
    from learned_precond.exceptions import PreconditionerSetupError

    solve = HierarchicalFactors.solve

    def broken(self, Y):
        X = solve(self, Y)
        if bad == "both" or self.dtype == np.float32:
            X[0] = np.nan
        return X

    monkeypatch.setattr(HierarchicalFactors, "solve", broken)
    A = _laplace(n)
    if bad == "both":
        with pytest.raises(PreconditionerSetupError, match="non-finite"):
            LearnedLU.fit(A, seed=0, max_steps=0)
        return
    M = LearnedLU.fit(A, seed=0, max_steps=0)
    assert M.factor_dtype == "float64"
    assert np.all(np.isfinite(M @ np.ones(A.shape[0])))


def test_ill_conditioned_factors_stay_in_float64():
    # the graph Laplacian of a grid plus 1e-9 I (condition number ~1e10, its
    # Cholesky factor's ~1e5): float32 storage would move A M x by far more
    # than 2e-5 (1.5e-4), so 'auto' keeps float64
    from learned_precond import LearnedLU

    n = 128
    T = sp.diags([-np.ones(n - 1), -np.ones(n - 1)], [-1, 1])
    G = sp.kron(sp.eye(n), T) + sp.kron(T, sp.eye(n))
    G = G - sp.diags(np.asarray(G.sum(axis=1)).ravel())
    A = sp.csr_array(G + 1e-9 * sp.eye(n * n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = LearnedLU.fit(A, seed=0, max_steps=0)
    assert M.factor_dtype == "float64"
    assert any("kept in float64" in note for note in M.report.notes)


@pytest.mark.parametrize(("make", "symmetric", "tol", "probes"),
                         [(_laplace, True, 1e-2, 0), (_laplace, True, 0.0, 0),
                          (_laplace, True, 1e-2, 3), (_convdiff, False, 1e-2, 0),
                          (_convdiff, False, 1e-2, 2), ("3d", True, 1e-2, 0),
                          ("3d", False, 0.0, 0)],
                         ids=["cholesky", "cholesky-exact", "cholesky-probes", "lu",
                              "lu-probes", "3d-cholesky", "3d-lu-exact"])
def test_two_threads_give_the_same_factors_bit_for_bit(make, symmetric, tol, probes,
                                                       monkeypatch):
    # Two ranges of subtrees side by side, each with its own scratch arrays and
    # its own part of the contribution stack: the same operations on the same
    # numbers as one thread, so the same bits (a stack overlap or a shared
    # scratch map would change them). The work floor is lifted so that a
    # small matrix splits too.
    import learned_precond._hierarchical.factorization as fz

    monkeypatch.setattr(fz, "PARALLEL_MIN_WORK", 0.0)
    if make == "3d":  # level-set tree: the schedule splits more than once
        A = sp.csr_array(problems.laplace_3d(12))
        tree = nested_dissection(A, leaf_size=8, method="level_set")
    else:
        A = make(96)
        tree = nested_dissection(A, leaf_size=16)
    b = np.diff(fz.symbolic(np.asarray(tree.ptr, dtype=np.int64),
                            np.asarray(tree.parent, dtype=np.int64),
                            *(fz.permuted_csr(A, tree.perm)[i] for i in (0, 1, 3, 4)))[0])
    groups, _, _ = fz._schedule(tree, b, np.zeros(tree.n_nodes, dtype=np.int64), 2)
    assert len(groups) >= 2 and len(groups[0]) == 2  # a split is taken
    Z = np.random.default_rng(3).standard_normal((A.shape[0], probes)) if probes else None
    one, one_stats = hierarchical_factorization(A, tree, tol=tol, symmetric=symmetric,
                                                probes=Z, threads=1)
    two, two_stats = hierarchical_factorization(A, tree, tol=tol, symmetric=symmetric,
                                                probes=Z, threads=2)
    for name in one._FIELDS:
        np.testing.assert_array_equal(getattr(two, name), getattr(one, name), err_msg=name)
    assert two_stats["truncated_nodes"] == one_stats["truncated_nodes"]


def test_split_ranges_hold_whole_subtrees_and_balance(monkeypatch):
    import learned_precond._hierarchical.factorization as fz

    monkeypatch.setattr(fz, "PARALLEL_MIN_WORK", 0.0)
    A = _laplace(96)
    tree = nested_dissection(A, leaf_size=16)
    s = np.diff(tree.ptr)
    b = np.full(tree.n_nodes, 40)
    first = subtree_starts(np.asarray(tree.parent))
    w = fz._work(s, b)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    groups, _, _ = fz._schedule(tree, b, np.zeros(tree.n_nodes, dtype=np.int64), 2)
    assert len(groups) >= 2 and [len(g) for g in groups[:-1]] == [2] * (len(groups) - 1)
    covered = [r for g in groups for r in g]
    assert covered[0][0] == 0 and covered[-1][1] == tree.n_nodes
    assert all(a[1] == b_[0] for a, b_ in zip(covered, covered[1:]))  # contiguous, in order
    for (lo, x), (_, y) in groups[:-1]:
        assert lo < x < y
        assert (first[x:y] >= x).all()  # no node of [x, y) needs one of [lo, x)
        assert max(w[lo:x].sum(), w[x:y].sum()) + w[y:].sum() <= \
            fz.PARALLEL_GAIN * w[lo:].sum()
    assert fz._split(first, np.asarray(tree.depth), cw) == (groups[0][1][0], groups[0][1][1])
    # a chain (every node one child) has nothing to run side by side
    chain = subtree_starts(np.append(np.arange(1, 6), -1))
    assert fz._split(chain, np.arange(5, -1, -1), np.arange(7.0) * 1e9) is None
    # and too little work is not worth two threads
    monkeypatch.setattr(fz, "PARALLEL_MIN_WORK", 2 * w.sum())
    assert fz._split(first, np.asarray(tree.depth), cw) is None


def test_two_threads_raise_what_one_thread_raises(monkeypatch):
    import learned_precond._hierarchical.factorization as fz

    monkeypatch.setattr(fz, "PARALLEL_MIN_WORK", 0.0)
    A = _laplace(96).tolil()
    A[5000, 5000] = -10.0  # not positive definite, inside one range
    A = sp.csr_array(A)
    tree = nested_dissection(A, leaf_size=16)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        hierarchical_factorization(A, tree, symmetric=True, threads=2)
    with pytest.raises(TimeoutError, match="hierarchical factorization passed"):
        hierarchical_factorization(_laplace(96), tree, time_limit=0.0, threads=2)


def _stack_conflicts(parent, groups, soff, sizes):
    """Pairs of updates whose stack slots overlap while both may be live.

    An update is live from its node's elimination until its parent's; nodes
    of one range run in order, two ranges of one step at the same time, and
    steps one after the other.
    """
    T = parent.size
    step = np.empty(T, dtype=np.int64)
    lane = np.empty(T, dtype=np.int64)
    for k, g in enumerate(groups):
        for r, (lo, hi) in enumerate(g):
            step[lo:hi], lane[lo:hi] = k, r

    def done_before(a, b):  # a finishes before b starts, in every interleaving
        if step[a] != step[b]:
            return step[a] < step[b]
        return lane[a] == lane[b] and a < b

    slots = sorted((soff[t], soff[t] + sizes[t], t) for t in range(T) if sizes[t])
    bad = []
    for i, (_, end, u) in enumerate(slots):
        for start_v, _, v in slots[i + 1:]:
            if start_v >= end:
                break
            u_end = parent[u] if parent[u] >= 0 else u
            v_end = parent[v] if parent[v] >= 0 else v
            if not (u_end == v or v_end == u or done_before(u_end, v)
                    or done_before(v_end, u)):
                bad.append((u, v))
    return bad


@pytest.mark.parametrize("dim", [2, 3])
def test_threaded_stack_layout_has_no_live_overlap(dim, monkeypatch):
    # Every update's slot, in the layout the two-thread schedule uses, is
    # free of every other update that may be live at the same time (the
    # sequential layout passes the same check with one step).
    import learned_precond._hierarchical.factorization as fz

    monkeypatch.setattr(fz, "PARALLEL_MIN_WORK", 0.0)
    # level-set trees of a 3-D grid are unbalanced at the top, as at 64^3:
    # the schedule splits again after its first split
    A = sp.csr_array(problems.laplace_3d(12) if dim == 3 else _laplace(64))
    tree = nested_dissection(A, leaf_size=8, method="level_set")
    parent = np.asarray(tree.parent, dtype=np.int64)
    mats = fz.permuted_csr(A, tree.perm)
    boff, _, _, _, soff, _, _ = fz.symbolic(np.asarray(tree.ptr, dtype=np.int64), parent,
                                            mats[0], mats[1], mats[3], mats[4])
    b = np.diff(boff)
    sizes = b.astype(np.int64) ** 2
    assert _stack_conflicts(parent, [[(0, tree.n_nodes)]], soff, sizes) == []
    groups, shifted, size = fz._schedule(tree, b, soff, 2)
    assert len(groups) >= (3 if dim == 3 else 2)
    assert _stack_conflicts(parent, groups, shifted, sizes) == []
    assert size == int((shifted + sizes).max())
    # without the gaps the threads would overwrite each other's updates
    assert _stack_conflicts(parent, groups, soff, sizes) != []


def _split_factors(make, symmetric, monkeypatch):
    import learned_precond._hierarchical.factorization as fz

    monkeypatch.setattr(fz, "SPLIT_MIN_ENTRIES", 0)
    if make == "3d":  # a level-set tree, unbalanced at the top
        A = sp.csr_array(problems.laplace_3d(12))
        tree = nested_dissection(A, leaf_size=8, method="level_set")
    else:
        A = make(64)
        tree = nested_dissection(A, leaf_size=16)
    f, _ = hierarchical_factorization(A, tree, tol=1e-2, symmetric=symmetric)
    return f


@pytest.mark.parametrize(("make", "symmetric"),
                         [(_laplace, True), (_convdiff, False), ("3d", True)],
                         ids=["cholesky", "lu", "3d-cholesky"])
def test_vector_substitution_on_two_threads_matches_one(make, symmetric, monkeypatch):
    # Two ranges of subtrees side by side: the first half's updates of their
    # common ancestors' rows are summed from two copies (so they agree with
    # one thread to rounding, not bit for bit), the second half only reads
    # those rows. Both agree with the plain reference loop.
    from learned_precond._hierarchical.factorization import _substitute_split
    from learned_precond._hierarchical.kernels import substitute, substitute_block

    f = _split_factors(make, symmetric, monkeypatch)
    steps = f.substitution_steps()
    assert steps is not None and np.any(steps[:, 1] < steps[:, 2])  # a split is taken
    assert steps[0, 0] == 0 and steps[-1, 2] == f.n_nodes
    assert np.array_equal(steps[1:, 0], steps[:-1, 2])  # the steps cover the nodes in order
    y = np.random.default_rng(4).standard_normal(f.n)
    Y = np.random.default_rng(5).standard_normal((f.n, 5))
    for transposed in (False, True):
        if transposed and symmetric:
            continue
        one, two = y.copy(), y.copy()
        substitute(symmetric, transposed, *f._arrays(), one)
        _substitute_split(symmetric, transposed, steps, f._arrays(), two.reshape(-1, 1))
        np.testing.assert_allclose(two, one, rtol=0, atol=1e-12 * np.abs(one).max())
        np.testing.assert_allclose(two, solve_reference(f, y, transposed=transposed),
                                   rtol=0, atol=1e-10 * np.abs(one).max())
        # a block of columns in one pass, split the same way
        ones, twos = Y.copy(), Y.copy()
        substitute_block(symmetric, transposed, *f._arrays(), ones, BLOCK_WIDTH)
        _substitute_split(symmetric, transposed, steps, f._arrays(), twos)
        np.testing.assert_allclose(twos, ones, rtol=0, atol=1e-12 * np.abs(ones).max())
    # solve() takes the split when numba has two threads, and the one-thread
    # kernel otherwise: the same vector either way
    import numba

    threads = numba.get_num_threads()
    got, gots = f.solve(y), f.solve(Y)
    try:
        numba.set_num_threads(1)
        np.testing.assert_allclose(f.solve(y), got, rtol=0, atol=1e-12 * np.abs(got).max())
        np.testing.assert_allclose(f.solve(Y), gots, rtol=0, atol=1e-12 * np.abs(gots).max())
    finally:
        numba.set_num_threads(threads)


def test_vector_substitution_split_refuses_unsafe_ranges(monkeypatch):
    # A boundary row of the first range inside the second range would make the
    # two threads write the same rows: such a split is not used.
    import learned_precond._hierarchical.factorization as fz

    f = _split_factors(_laplace, True, monkeypatch)
    steps = f.substitution_steps()
    lo, x, y = (int(v) for v in steps[0])
    assert x < y
    # a node of [lo, x) with boundary rows: its last one (not its first, which
    # names its parent) moved into the second range's rows
    t = next(t for t in range(lo, x) if f.boff[t + 1] - f.boff[t] >= 2)
    bad = fz.HierarchicalFactors(n=f.n, symmetric=f.symmetric,
                                 **{name: getattr(f, name).copy() for name in f._FIELDS})
    bad.bidx[bad.boff[t + 1] - 1] = bad.ptr[x]
    got = bad.substitution_steps()
    assert got is None or tuple(got[0]) != (lo, x, y)
    # too little work for two threads: one thread
    monkeypatch.setattr(fz, "SPLIT_MIN_ENTRIES", 10 ** 12)
    fresh = fz.HierarchicalFactors(n=f.n, symmetric=f.symmetric,
                                   **{name: getattr(f, name) for name in f._FIELDS})
    assert fresh.substitution_steps() is None


def _single_from(monkeypatch, own):
    """Fronts of >= ``own`` unknowns in single precision (256 by default:
    none of this file's small trees would reach it; with ``dense_entries=0``
    every front goes through LAPACK, where the choice is made)."""
    from learned_precond._hierarchical import factorization

    monkeypatch.setattr(factorization, "FLOAT32_MIN_OWN", own)
    return factorization


def _cg_iterations(A, f, tree):
    n = A.shape[0]

    def mv(v):
        out = np.empty(n)
        out[tree.perm] = f.solve(v[tree.perm])
        return out

    count = [0]
    _, info = cg(A, A @ np.ones(n), M=LinearOperator((n, n), matvec=mv), rtol=1e-8,
                 maxiter=500, callback=lambda _: count.__setitem__(0, count[0] + 1))
    assert info == 0
    return count[0]


@pytest.mark.parametrize(("make", "symmetric"), [(_laplace, True), (_convdiff, False)],
                         ids=["cholesky", "lu"])
def test_single_precision_fronts_change_the_start_by_their_rounding(make, symmetric,
                                                                      monkeypatch):
    A = make(40)
    n = A.shape[0]
    tree = nested_dissection(A, leaf_size=16)
    f64, st64 = hierarchical_factorization(A, tree, tol=1e-2, symmetric=symmetric,
                                           dense_entries=0)
    assert st64["single_fronts"] == 0
    _single_from(monkeypatch, 16)
    f32, st32 = hierarchical_factorization(A, tree, tol=1e-2, symmetric=symmetric,
                                           dense_entries=0)
    assert st32["single_fronts"] > 0 and not st32["single_retried"]
    assert f32.diag.dtype == f32.QL.dtype == np.float64  # stored in double
    x = np.random.default_rng(0).standard_normal(n)
    y32, y64 = f32.solve(x), f64.solve(x)
    assert np.linalg.norm(y32 - y64) <= 1e-5 * np.linalg.norm(y64)  # measured 1.3e-7, 4.4e-7
    if symmetric:
        M = _dense_M(f32, tree, n)
        np.testing.assert_allclose(M, M.T, atol=1e-12 * np.abs(M).max())
        assert np.linalg.eigvalsh((M + M.T) / 2).min() > 0
        assert _cg_iterations(A, f32, tree) == _cg_iterations(A, f64, tree)


@pytest.mark.parametrize("tol", [0.0, 1e-4])
def test_tight_tolerances_keep_every_front_in_double(tol, monkeypatch):
    A = _laplace(24)
    tree = nested_dissection(A, leaf_size=8)
    _single_from(monkeypatch, 1)
    f, stats = hierarchical_factorization(A, tree, tol=tol, symmetric=True,
                                               dense_entries=0)
    assert stats["single_fronts"] == 0
    if tol == 0:
        M = _dense_M(f, tree, A.shape[0])
        assert np.allclose(M @ A.toarray(), np.eye(A.shape[0]), atol=1e-10)


@pytest.mark.parametrize("symmetric", [True, False])
def test_single_front_factor_is_refused_when_ill_conditioned(symmetric):
    from learned_precond._hierarchical.factorization import _factor_single

    rng = np.random.default_rng(1)
    Q = np.linalg.qr(rng.standard_normal((64, 64)))[0]
    for cond, accepted in ((10.0, True), (1e8, False)):
        F = (Q * np.geomspace(1.0, 1.0 / cond, 64)) @ Q.T
        out = _factor_single(np.triu(F) if symmetric else F, symmetric)
        assert (out is not None) == accepted
        if out is not None:
            f, piv = out
            assert f.dtype == np.float32
            if symmetric:
                R = np.triu(f).astype(np.float64)
                np.testing.assert_allclose(R.T @ R, F, atol=1e-5)
            else:
                lu, p = sla.lu_factor(F)
                np.testing.assert_allclose(np.triu(f), np.triu(lu), atol=1e-4)


def test_a_front_failing_after_single_ones_redoes_everything_in_double(monkeypatch):
    A = _laplace(40)
    tree = nested_dissection(A, leaf_size=16)
    f64, _ = hierarchical_factorization(A, tree, tol=1e-2, symmetric=True,
                                         dense_entries=0)
    fz = _single_from(monkeypatch, 16)
    real = fz._factor_single

    def too_small(block, symmetric):
        # a factor a third too small makes the updates 9x too large: the
        # ancestors' fronts are no longer positive definite
        out = real(block, symmetric)
        return None if out is None else (out[0] / 3, out[1])

    monkeypatch.setattr(fz, "_factor_single", too_small)
    f, stats = hierarchical_factorization(A, tree, tol=1e-2, symmetric=True,
                                         dense_entries=0)
    assert stats["single_retried"] and stats["single_fronts"] == 0
    for name in ("diag", "QL", "XL"):
        assert np.array_equal(getattr(f, name), getattr(f64, name))
