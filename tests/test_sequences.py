"""Matrix sequences (problems.sequences) and LearnedLU warm-started along them."""

import numpy as np
import pytest
import scipy.sparse as sp

from learned_precond import LearnedLU, problems
from learned_precond.krylov import solve
from learned_precond.problems import MatrixSequence, moving_diffusion_sequence, newton_sequence


@pytest.mark.parametrize("make", [moving_diffusion_sequence, newton_sequence])
def test_a_sequence_is_a_slowly_changing_family_of_solved_systems(make):
    seq = make(12, steps=50, seed=3)
    assert isinstance(seq, MatrixSequence) and len(seq) == 50 and seq.N == 144
    pattern = seq.matrices[0].indices
    for (A, b), x in zip(seq, seq.solutions, strict=True):
        assert sp.issparse(A) and A.dtype == np.float64 and A.shape == (144, 144)
        assert np.array_equal(A.indices, pattern)  # same pattern every step
        assert np.allclose(A @ x, b, atol=1e-10 * np.abs(b).max())
    changes = seq.relative_changes()
    assert changes.shape == (49,) and np.all(changes > 0) and np.all(changes < 0.15)
    again = make(12, steps=50, seed=3)
    assert all((A != B).nnz == 0 for A, B in zip(seq.matrices, again.matrices, strict=True))


def test_moving_diffusion_is_spd_and_newton_is_not():
    d = moving_diffusion_sequence(10, steps=3)
    assert d.spd
    for A in d.matrices:
        assert abs(A - A.T).max() == 0
        assert np.linalg.eigvalsh(A.toarray()).min() > 0
    n = newton_sequence(10, steps=3)
    assert not n.spd and abs(n.matrices[0] - n.matrices[0].T).max() == 0  # A_0: Laplacian
    assert abs(n.matrices[2] - n.matrices[2].T).max() > 0


@pytest.mark.parametrize("bad, match", [({"steps": 0}, "steps"), ({"n": -1}, "n"),
                                        ({"seed": -2}, "seed"), ({"dt": 0.0}, "dt"),
                                        ({"contrast": 0.5}, "contrast")])
def test_bad_sequence_parameters_are_named(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        moving_diffusion_sequence(**{"n": 8, **bad})


def test_warm_start_along_a_sequence_keeps_the_iterations():
    # Warm-started from the previous step: the same CG iterations (within 1) as
    # a fresh fit, with the tree reused at every step (no nested dissection).
    seq = moving_diffusion_sequence(24, steps=4, seed=0)
    prev = None
    for A, b in seq:
        fresh = LearnedLU.fit(A, seed=0)
        M = fresh if prev is None else LearnedLU.fit(A, init=prev, seed=0)
        if prev is not None:
            assert M.report.init == "warm_start" and M.tree is prev.tree
            assert M.report.ordering == "nested_dissection (warm start)"
        r_warm = solve(A, b, M, method="cg")
        r_fresh = solve(A, b, fresh, method="cg")
        assert r_warm.converged and r_warm.iterations <= r_fresh.iterations + 1
        prev = M


def test_sequences_registry():
    assert set(problems.SEQUENCES) == {"moving_diffusion", "newton"}
    assert "MatrixSequence(moving_diffusion" in repr(problems.SEQUENCES["moving_diffusion"](
        6, steps=2))
