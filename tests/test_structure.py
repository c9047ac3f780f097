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
