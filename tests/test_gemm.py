"""The packed micro-kernel product of numgru._gemm against NumPy (float64 reference)."""

import numpy as np
import pytest

from numgru import _gemm


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,K,N", [(8, 1, 1), (8, 5, 7), (16, 13, 33), (24, 64, 96),
                                   (64, 256, 768), (8, 0, 5)])
def test_mm_packed_matches_numpy(dtype, M, K, N):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((N, K)).astype(dtype)
    Wp = _gemm.pack_nt(W)
    nc = _gemm.panel_width(np.dtype(dtype).itemsize)
    assert Wp.shape == (-(-N // nc), K, nc)
    C = np.full((M, Wp.shape[0] * nc), np.nan, dtype=dtype)
    _gemm.mm_packed(A, Wp, C)
    want = A.astype(np.float64) @ W.T.astype(np.float64)
    tol = 1e-12 if dtype == "float64" else 2e-6
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(C[:, :N], want, rtol=tol, atol=tol * scale * max(K, 1))
    assert np.all(C[:, N:] == 0)            # zero-padded panel columns give zeros


def test_padded_rows_and_row_slices():
    assert [_gemm.padded_rows(m) for m in (1, 8, 9, 16, 17)] == [8, 8, 16, 16, 24]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((24, 9)).astype(np.float32)
    W = rng.standard_normal((10, 9)).astype(np.float32)
    Wp = _gemm.pack_nt(W)
    C = np.zeros((24, Wp.shape[0] * Wp.shape[2]), dtype=np.float32)
    _gemm.mm_packed(A[:16], Wp, C)          # a leading-row slice: only its rows are written
    np.testing.assert_allclose(C[:16, :10], A[:16] @ W.T, rtol=1e-5, atol=1e-5)
    assert np.all(C[16:] == 0)
