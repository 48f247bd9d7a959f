"""The language-model backend kernels (embedding, softmax over the vocabulary) against the NumPy
float64 oracle in tests/reference.py: the CPU backend, then its CUDA twins under the simulator.

Shape legend: V vocabulary size, E embedding width, M rows (flattened (b, t) positions),
K features.
"""

import numba
import numpy as np
import pytest

from numgru import _config, _cpu, _cuda
import reference as ref

CPU = _cpu.backend
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close(actual, expected, dtype, err_msg=""):
    """float64 ~1e-12 relative, float32 ~1e-5, with an absolute floor scaled to the data."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    rtol = RTOL[dtype]
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=rtol * scale, err_msg=err_msg)


def lm_problem(rng, M, K, V, dtype, scale=1.0):
    """y (M, K), w (V, K), b (V,), targets (M,) int64, weights (M,) with a masked row and
    weights other than 1."""
    y = (rng.standard_normal((M, K)) * scale).astype(dtype)
    w = rng.standard_normal((V, K)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    targets = rng.integers(0, V, M).astype(np.int64)
    weights = rng.uniform(0.5, 2.0, M).astype(dtype)
    if M > 2:
        weights[1] = 0
    return y, w, b, targets, weights


def cpu_xent(y, w, b, targets, weights, be=CPU):
    dy, dw, db = np.full_like(y, np.nan), np.full_like(w, np.nan), np.full_like(b, np.nan)
    loss = be.softmax_xent(y, w, b, targets, weights, dy, dw, db)
    assert isinstance(loss, float)
    return loss, dy, dw, db


def check_xent(res, y, w, b, targets, weights, dtype):
    loss, dy, dw, db = res
    r_loss, r_dy, r_dw, r_db = ref.softmax_xent(y, w, b, targets, weights)
    assert_close(loss, r_loss, dtype, "loss")
    for name, a, e in (("dy", dy, r_dy), ("dw", dw, r_dw), ("db", db, r_db)):
        assert a.dtype == dtype
        assert_close(a, e, dtype, name)


@pytest.fixture
def block_rows(monkeypatch):
    """Set SOFTMAX_BLOCK_BYTES so that blocks of logits hold ``rows`` rows of V."""
    def set_rows(rows, V, dtype):
        monkeypatch.setattr(_config, "SOFTMAX_BLOCK_BYTES", rows * V * np.dtype(dtype).itemsize)
    return set_rows


@pytest.fixture
def threads():
    """numba.set_num_threads for the test, restored afterwards."""
    before = numba.get_num_threads()
    yield lambda n: numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# embedding
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_forward(dtype):
    rng = np.random.default_rng(0)
    V, E, B, T = 11, 6, 3, 5
    weight = rng.standard_normal((V, E)).astype(dtype)
    ids = rng.integers(0, V, (B, T)).astype(np.int64)
    ids[0, :3] = [0, V - 1, 0]
    out = np.full((B, T, E), np.nan, dtype=dtype)
    CPU.embedding_forward(ids, weight, out)
    np.testing.assert_array_equal(out, ref.embedding_forward(ids, weight).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_backward_repeated_and_unused_ids(dtype):
    rng = np.random.default_rng(1)
    V, E, B, T = 9, 4, 2, 6
    ids = np.array([[3, 3, 0, 7, 3, 0], [7, 8, 3, 3, 0, 8]], dtype=np.int64)   # 1, 2, 4-6 unused
    d_out = rng.standard_normal((B, T, E)).astype(dtype)
    d_weight = np.full((V, E), np.nan, dtype=dtype)
    CPU.embedding_backward(ids, d_out, d_weight)
    assert_close(d_weight, ref.embedding_backward(ids, d_out, V), dtype)
    unused = np.setdiff1d(np.arange(V), ids)
    assert np.all(d_weight[unused] == 0)
    # summed from 0 in row-major (b, t) order, in the array's dtype
    expected = np.zeros(E, dtype=dtype)
    for m in np.flatnonzero(ids.reshape(-1) == 3):
        expected = expected + d_out.reshape(-1, E)[m]
    np.testing.assert_array_equal(d_weight[3], expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_backward_bit_identical_across_threads(dtype, threads):
    rng = np.random.default_rng(2)
    V, E, B, T = 300, 70, 8, 25                   # (V + M) E is enough work for 2 tasks
    ids = rng.integers(0, 40, (B, T)).astype(np.int64)        # many repeats
    d_out = rng.standard_normal((B, T, E)).astype(dtype)
    results = []
    for n in (1, 2):
        threads(n)
        d_weight = np.full((V, E), np.nan, dtype=dtype)
        CPU.embedding_backward(ids, d_out, d_weight)
        results.append(d_weight)
    ids_f, d_f = ids.reshape(-1), d_out.reshape(-1, E)
    for ntasks in (1, 2, 3, 7):                   # the parallel kernel itself, any split
        d_weight = np.full((V, E), np.nan, dtype=dtype)
        _cpu.embedding_backward(ids_f, d_f, d_weight, ntasks)
        results.append(d_weight)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert_close(results[0], ref.embedding_backward(ids, d_out, V), dtype)


# ----------------------------------------------------------------------------------------------
# softmax over the vocabulary: loss and gradients
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_matches_reference(dtype):
    rng = np.random.default_rng(3)
    args = lm_problem(rng, 23, 9, 37, dtype)
    res = cpu_xent(*args)
    check_xent(res, *args, dtype)
    assert np.all(res[1][1] == 0)                 # the masked row's dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 2, 3])
def test_softmax_xent_blocks_equal_one_block(dtype, rows, block_rows):
    rng = np.random.default_rng(4)
    M, K, V = 10, 6, 13
    args = lm_problem(rng, M, K, V, dtype)
    one = cpu_xent(*args)
    block_rows(rows, V, dtype)
    assert CPU._softmax_block(V, dtype) == rows
    blocked = cpu_xent(*args)
    check_xent(blocked, *args, dtype)
    # the same up to rounding: BLAS may take another path for a block of 1 row, and loss, dw
    # and db are summed block by block
    for name, a, e in zip(("loss", "dy", "dw", "db"), blocked, one):
        assert_close(a, e, dtype, name)


def test_softmax_xent_block_bytes_smaller_than_a_row(block_rows, monkeypatch):
    monkeypatch.setattr(_config, "SOFTMAX_BLOCK_BYTES", 1)
    assert CPU._softmax_block(1000, np.float64) == 1
    rng = np.random.default_rng(5)
    args = lm_problem(rng, 4, 3, 5, np.float64)
    check_xent(cpu_xent(*args), *args, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_single_row_and_all_masked(dtype):
    rng = np.random.default_rng(6)
    y, w, b, targets, weights = lm_problem(rng, 1, 4, 6, dtype)
    check_xent(cpu_xent(y, w, b, targets, weights), y, w, b, targets, weights, dtype)
    y, w, b, targets, weights = lm_problem(rng, 5, 4, 6, dtype)
    weights[:] = 0
    y[2] = np.nan                                 # a masked row contributes nothing at all
    loss, dy, dw, db = cpu_xent(y, w, b, targets, weights)
    assert loss == 0.0
    assert np.all(dy == 0) and np.all(dw == 0) and np.all(db == 0)


def test_softmax_xent_masked_rows_are_skipped():
    """A row of weight 0 holding NaN changes nothing: it is left out, not multiplied by 0."""
    rng = np.random.default_rng(7)
    y, w, b, targets, weights = lm_problem(rng, 6, 4, 5, np.float64)
    clean = cpu_xent(y, w, b, targets, weights)
    y[1] = np.nan                                 # weights[1] == 0
    dirty = cpu_xent(y, w, b, targets, weights)
    for a, e in zip(dirty, clean):
        np.testing.assert_array_equal(a, e)


def test_softmax_xent_finite_differences():
    rng = np.random.default_rng(8)
    y, w, b, targets, weights = lm_problem(rng, 5, 3, 4, np.float64)
    _, dy, dw, db = cpu_xent(y, w, b, targets, weights)
    eps = 1e-5

    def loss_at(y_, w_, b_):
        return CPU.softmax_xent(y_, w_, b_, targets, weights, np.empty_like(y_),
                                np.empty_like(w_), np.empty_like(b_))

    for name, x, grad in (("y", y, dy), ("w", w, dw), ("b", b, db)):
        numeric = np.empty_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += eps
            xm[i] -= eps
            args_p = {"y": y, "w": w, "b": b, name: xp}
            args_m = {"y": y, "w": w, "b": b, name: xm}
            numeric[i] = (loss_at(**{k + "_": v for k, v in args_p.items()})
                          - loss_at(**{k + "_": v for k, v in args_m.items()})) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits_do_not_overflow(dtype):
    rng = np.random.default_rng(9)
    M, K, V = 6, 4, 7
    y, w, b, targets, weights = lm_problem(rng, M, K, V, dtype)
    b[:] = np.array([1000, -1000, 999, 0, 1000, -500, 990], dtype=dtype)
    y *= dtype(100.0)                             # logits of several thousand
    res = cpu_xent(y, w, b, targets, weights)
    assert all(np.all(np.isfinite(a)) for a in res)
    check_xent(res, y, w, b, targets, weights, dtype)
    lp = np.empty(M, dtype=dtype)
    CPU.softmax_logprob(y, w, b, targets, lp)
    assert np.all(np.isfinite(lp)) and np.all(lp <= 0)
    full = np.empty((M, V), dtype=dtype)
    CPU.log_softmax(y, w, b, full)
    assert np.all(np.isfinite(full))
    assert_close(lp, ref.softmax_logprob(y, w, b, targets), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_paths_match_reference(dtype, threads):
    """Big enough that every kernel runs with 2 tasks (rows, dw columns)."""
    rng = np.random.default_rng(10)
    M, K, V = 70, 16, 1000
    args = lm_problem(rng, M, K, V, dtype, scale=0.3)
    results = []
    for n in (1, 2):
        threads(n)
        res = cpu_xent(*args)
        check_xent(res, *args, dtype)
        results.append(res)
    for name, a, e in zip(("loss", "dy", "dw", "db"), *results):
        assert_close(a, e, dtype, name)
    lp = np.empty(M, dtype=dtype)
    CPU.softmax_logprob(args[0], args[1], args[2], args[3], lp)
    assert_close(lp, ref.softmax_logprob(*args[:4]), dtype)
    full = np.empty((M, V), dtype=dtype)
    CPU.log_softmax(*args[:3], full)
    assert_close(full, ref.log_softmax(*args[:3]), dtype)


# ----------------------------------------------------------------------------------------------
# scoring and generation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [None, 1, 3])
def test_softmax_logprob(dtype, rows, block_rows):
    rng = np.random.default_rng(11)
    M, K, V = 11, 5, 9
    y, w, b, targets, _ = lm_problem(rng, M, K, V, dtype)
    if rows is not None:
        block_rows(rows, V, dtype)
    out = np.full(M, np.nan, dtype=dtype)
    CPU.softmax_logprob(y, w, b, targets, out)
    assert_close(out, ref.softmax_logprob(y, w, b, targets), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 4])
def test_log_softmax(dtype, M):
    rng = np.random.default_rng(12)
    K, V = 5, 9
    y, w, b, _, _ = lm_problem(rng, M, K, V, dtype)
    out = np.full((M, V), np.nan, dtype=dtype)
    CPU.log_softmax(y, w, b, out)
    assert_close(out, ref.log_softmax(y, w, b), dtype)
    np.testing.assert_allclose(np.exp(out.astype(np.float64)).sum(axis=1), 1.0,
                               rtol=10 * RTOL[dtype])


# ----------------------------------------------------------------------------------------------
# CUDA twins (a real GPU, else Numba's simulator; tiny sizes), against the CPU backend
# ----------------------------------------------------------------------------------------------
cuda_only = pytest.mark.skipif(_cuda.unavailable_reason() is not None,
                               reason=f"CUDA unusable here: {_cuda.unavailable_reason()}")


@pytest.fixture
def gpu(monkeypatch):
    """The CUDA backend with blocks of 8 threads and 4x4 GEMM tiles (as tests/test_cuda.py)."""
    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(_config, "CUDA_ROWS_PER_THREAD", 2)
    monkeypatch.setattr(_config, "CUDA_TILE", 4)
    return _cuda.CUDABackend(persistent=False)


def dev(a):
    return _cuda.to_device(np.ascontiguousarray(a))


CUDA_RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def assert_cuda_close(actual, expected, dtype, err_msg=""):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    rtol = CUDA_RTOL[dtype]
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=rtol * scale, err_msg=err_msg)


@cuda_only
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_embedding(gpu, dtype):
    rng = np.random.default_rng(13)
    V, E, B, T = 7, 5, 2, 3
    weight = rng.standard_normal((V, E)).astype(dtype)
    ids = np.array([[3, 0, 3], [6, 3, 0]], dtype=np.int64)          # repeats; 1, 2, 4, 5 unused
    d_out = rng.standard_normal((B, T, E)).astype(dtype)
    out = gpu.empty((B, T, E), dtype)
    gpu.embedding_forward(dev(ids), dev(weight), out)
    np.testing.assert_array_equal(gpu.to_host(out), weight[ids])
    d_weight = dev(np.full((V, E), np.nan, dtype=dtype))
    gpu.embedding_backward(dev(ids), dev(d_out), d_weight)
    expected = np.empty((V, E), dtype=dtype)
    CPU.embedding_backward(ids, d_out, expected)
    np.testing.assert_array_equal(gpu.to_host(d_weight), expected)     # same sums, same order


@cuda_only
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_softmax_xent(gpu, dtype, block_rows):
    rng = np.random.default_rng(14)
    M, K, V = 6, 5, 7
    y, w, b, targets, weights = lm_problem(rng, M, K, V, dtype)
    b[0] = dtype(1000)                            # a large logit
    expected = cpu_xent(y, w, b, targets, weights)
    block_rows(4, V, dtype)                       # blocks of 4 and 2 rows
    dy, dw, db = (dev(np.full_like(a, np.nan)) for a in (y, w, b))
    loss = gpu.softmax_xent(dev(y), dev(w), dev(b), dev(targets), dev(weights), dy, dw, db)
    assert isinstance(loss, float)
    assert_cuda_close(loss, expected[0], dtype, "loss")
    for name, a, e in (("dy", dy, expected[1]), ("dw", dw, expected[2]), ("db", db, expected[3])):
        assert_cuda_close(gpu.to_host(a), e, dtype, name)
    assert np.all(gpu.to_host(dy)[1] == 0)        # the masked row


@cuda_only
def test_cuda_softmax_logprob_and_log_softmax(gpu, block_rows):
    dtype = np.float64
    rng = np.random.default_rng(15)
    M, K, V = 5, 4, 7
    y, w, b, targets, _ = lm_problem(rng, M, K, V, dtype)
    block_rows(2, V, dtype)                       # blocks of 2, 2 and 1 rows
    out = gpu.empty(M, dtype)
    gpu.softmax_logprob(dev(y), dev(w), dev(b), dev(targets), out)
    expected = np.empty(M, dtype=dtype)
    CPU.softmax_logprob(y, w, b, targets, expected)
    assert_cuda_close(gpu.to_host(out), expected, dtype)
    full = gpu.empty((M, V), dtype)
    gpu.log_softmax(dev(y), dev(w), dev(b), full)
    assert_cuda_close(gpu.to_host(full), ref.log_softmax(y, w, b), dtype)


# ----------------------------------------------------------------------------------------------
# one step of one sequence (generation): products split by rows over the pool
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_single_step_split_matches_chunk_kernel_and_oracle(dtype, monkeypatch):
    import numba

    import numgru
    from numgru import _cpu

    if numba.get_num_threads() < 2:
        pytest.skip("one Numba thread: the split path is not taken")
    calls = []
    real = _cpu.gru_single_step
    monkeypatch.setattr(_cpu, "gru_single_step", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(0)
    I, H = 128, 384                  # 3H * (I + H) multiply-adds: two tasks' worth of the split
    gru = numgru.GRU(I, H, 2, dtype=dtype, random_state=0)
    x = rng.standard_normal((1, 1, I)).astype(dtype)
    h0 = rng.standard_normal((2, 1, H)).astype(dtype) * 0.5
    out, h_n = gru.forward(x, h0=h0)
    assert len(calls) == 2                       # both layers took the split path
    monkeypatch.setattr(_cpu, "SPLIT_STEP_MIN_WORK", 1 << 40)
    out_c, h_n_c = gru.forward(x, h0=h0)
    assert len(calls) == 2
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(out, out_c, rtol=tol, atol=tol)
    np.testing.assert_allclose(h_n, h_n_c, rtol=tol, atol=tol)
    exp_out, exp_h = ref.gru_forward(x, gru.state_dict(), num_layers=2, hidden_size=H, h0=h0)[:2]
    np.testing.assert_allclose(out, exp_out, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_log_softmax_one_row_split_matches_oracle(dtype):
    rng = np.random.default_rng(1)
    V, K = 2000, 300                             # V * K: two tasks' worth of the split
    y = rng.standard_normal((1, K)).astype(dtype)
    w = (rng.standard_normal((V, K)) * 0.1).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    out = np.empty((1, V), dtype)
    assert V * K // _cpu.SPLIT_STEP_MIN_WORK >= 2
    _cpu.backend.log_softmax(y, w, b, out)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(out, ref.log_softmax(y, w, b), rtol=tol, atol=tol)
