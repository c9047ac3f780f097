"""The structure facts of :mod:`learned_precond._structure`: the compiled asymmetry pass."""

import numpy as np
import pytest
import scipy.sparse as sp

from learned_precond._structure import (_asymmetry_tiles, _dense_asymmetry,
                                        _dense_asymmetry_reference, asymmetry, is_symmetric)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_asymmetry_matches_the_numpy_reference(n, dtype):
    rng = np.random.default_rng(n)
    S = rng.standard_normal((n, n))
    S = (S + S.T).astype(dtype)
    N = S.copy()
    N[n - 1, 0] += 3.0  # one asymmetric pair, in the last tile row
    for A in (S, N):
        got = _asymmetry_tiles(A)
        want = _dense_asymmetry_reference(A)
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 0)
    assert _dense_asymmetry(S)[0] == 0.0
    assert is_symmetric(S) and (n == 1 or not is_symmetric(N))


def test_asymmetry_of_a_nan_matrix_is_nan_and_not_symmetric():
    A = np.eye(70)
    A[5, 66] = np.nan
    worst, top = _dense_asymmetry(A)
    assert np.isnan(worst) and np.isnan(top)
    assert not is_symmetric(A)


def test_other_dtypes_and_sparse_agree_with_dense():
    rng = np.random.default_rng(0)
    A = rng.integers(-5, 5, size=(90, 90))
    assert _dense_asymmetry(A) == _dense_asymmetry_reference(A)
    F = A.astype(np.float64)
    assert asymmetry(sp.csr_array(F)) == _dense_asymmetry(F)[0] == asymmetry(F)


# -- the dense input scan (learned_precond._validation.dense_scan) -------------------


def _awkward(n, m, dtype, seed):
    """Random entries with every case the scan must tell apart."""
    A = np.random.default_rng(seed).standard_normal((n, m)).astype(dtype)
    A[A > 1.0] = 0.0
    A[0, :] = 0.0  # an empty row
    A[:, 1] = 0.0  # an empty column
    A[2, 3] = -0.0  # a zero, not a nonzero
    A[4, 5] = np.finfo(dtype).tiny / 8  # a subnormal: nonzero
    A[6, 7], A[8, 0] = np.nan, -np.inf
    return A


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(9, 9), (130, 70), (1, 12)])
def test_compiled_dense_scan_matches_the_numpy_reference(dtype, shape):
    from learned_precond._validation import _dense_scan_reference, dense_scan

    A = _awkward(*max(shape, (9, 9)), dtype, seed=shape[0])[:shape[0], :shape[1]]
    A = np.ascontiguousarray(A)
    fast, ref = dense_scan(A), _dense_scan_reference(A)
    for field in fast._fields:
        got, want = getattr(fast, field), getattr(ref, field)
        if isinstance(got, np.ndarray):
            np.testing.assert_array_equal(got, want, err_msg=field)
        else:
            assert got == want or (got != got and want != want), field
    assert dense_scan(np.asfortranarray(A)).row_nonzeros.tolist() == ref.row_nonzeros.tolist()
    mask = (A != 0)
    np.testing.assert_array_equal(fast.row_nonzeros, mask.sum(axis=1))
    np.testing.assert_array_equal(fast.col_nonzeros, mask.sum(axis=0))
    assert fast.nonfinite == np.count_nonzero(~np.isfinite(A))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_all_subnormal_matrix_is_refused_even_when_subnormals_flush(dtype):
    import torch

    from learned_precond._validation import as_matrix

    A = np.eye(5, dtype=dtype) * (np.finfo(dtype).tiny / 4)
    fine = A.copy()
    fine[0, 0] = 1.0
    S = sp.csr_array(A)  # built before: a flushing A != 0 finds no entries
    assert S.nnz == 5
    flushing = torch.set_flush_denormal(True)
    try:
        for dense in (A, np.asfortranarray(A)):
            with pytest.raises(ValueError, match="subnormal"):
                as_matrix(dense)
        with pytest.raises(ValueError, match="subnormal"):
            as_matrix(S)
        assert as_matrix(fine) is not None
    finally:
        torch.set_flush_denormal(False)
    assert flushing in (True, False)  # CPUs without the mode check the plain path
