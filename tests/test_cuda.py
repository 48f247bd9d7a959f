"""The CUDA backend (numgru._cuda) against its CPU twins and the NumPy reference.

Runs on a real GPU when there is one, otherwise under Numba's CUDA simulator (tests/conftest.py
turns it on when no NVIDIA driver is present); skips when neither is usable (numba-cuda missing).
Shapes are tiny (the simulator runs every thread in Python) and the launch geometry is shrunk so
that several blocks, ragged row groups and the GEMM's partial tiles really occur.
"""

import numpy as np
import pytest

import numgru
from numgru import _config, _cpu, _cuda
from helpers import random_lengths
import reference as ref

pytestmark = pytest.mark.skipif(_cuda.unavailable_reason() is not None,
                                reason=f"CUDA unusable here: {_cuda.unavailable_reason()}")


@pytest.fixture(autouse=True)
def tiny_geometry(monkeypatch):
    """Blocks of 8 threads, 2 rows per thread, 4x4 GEMM tiles (rebuilt kernels per geometry)."""
    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(_config, "CUDA_ROWS_PER_THREAD", 2)
    monkeypatch.setattr(_config, "CUDA_TILE", 4)
    monkeypatch.setattr(_cuda, "PERSISTENT", False)


def assert_close(actual, expected, dtype=np.float64, err_msg=""):
    """The issue's tolerances for the CUDA path: float64 1e-10, float32 1e-5 relative (plus an
    absolute floor scaled to the data for values near zero)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    rtol = 1e-10 if np.dtype(dtype) == np.float64 else 1e-5
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=rtol * 1e-2 * scale, err_msg=err_msg)


def assert_grads_close(actual, expected, dtype=np.float64):
    assert list(actual) == list(expected)
    for name in expected:
        assert_close(actual[name], expected[name], dtype, err_msg=f"grad {name}")


def dev(a):
    return _cuda.to_device(np.ascontiguousarray(a))


def host(a):
    return a.copy_to_host()


# ----------------------------------------------------------------------------------------------
# kernels, one by one, against their CPU twins
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_and_gemm_tn_match_numpy(dtype):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((9, 6)).astype(dtype)
    W = rng.standard_normal((6, 7)).astype(dtype)
    bias = rng.standard_normal(7).astype(dtype)
    C = _cuda.device_empty((9, 7), dtype)
    _cuda.gemm(dev(A), dev(W), dev(bias), C)
    assert_close(host(C), A.astype(np.float64) @ W + bias, dtype)
    X = rng.standard_normal((9, 5)).astype(dtype)
    G = _cuda.device_empty((6, 5), dtype)
    _cuda.gemm_tn(dev(A), dev(X), G)
    assert_close(host(G), A.T.astype(np.float64) @ X, dtype)


def _layer_inputs(rng, B, T, H, D, dtype, reset_after):
    I = 2
    x = rng.standard_normal((B, T, I)).astype(dtype)
    w_ih = rng.standard_normal((D * 3 * H, I)).astype(dtype)
    b_ih = rng.standard_normal(D * 3 * H).astype(dtype)
    whh = (0.5 * rng.standard_normal((D, 3 * H, H))).astype(dtype)
    bhh = rng.standard_normal((D, 3 * H)).astype(dtype)
    if not reset_after:
        bhh[:, 2 * H:] = 0
    h0 = rng.standard_normal((D, B, H)).astype(dtype)
    lengths = np.array([T, 1, max(1, T - 2)][:B], dtype=np.int64)
    return x, w_ih, b_ih, whh, bhh, h0, lengths


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("persistent", [False, True])
def test_layer_kernels_match_cpu_twins(reset_after, persistent, monkeypatch):
    """gru_layer_forward / gru_layer_backward: same signature, same results on both targets.
    persistent=True runs the one-launch kernel (one block under the simulator)."""
    monkeypatch.setattr(_cuda, "PERSISTENT", persistent)
    rng = np.random.default_rng(1)
    B, T, H, D, dt = 3, 4, 3, 2, np.float64
    x, w_ih, b_ih, whh, bhh, h0, lengths = _layer_inputs(rng, B, T, H, D, dt, reset_after)
    outs = {}
    for name, be, put in (("cpu", _cpu, lambda a: a), ("cuda", _cuda, dev)):
        out = put(np.zeros((B, T, D * H), dt))
        h_n = put(np.zeros((D, B, H), dt))
        gates = put(np.zeros((D, T, B, 3 * H), dt))
        hn_s = put(np.zeros((D, T, B, H), dt))
        hprev = put(np.zeros((D, T, B, H), dt))
        be.gru_layer_forward(put(x), put(w_ih), put(b_ih), put(whh), put(bhh), put(h0),
                             put(lengths), reset_after, 1, out, h_n, True, gates, hn_s, hprev)
        d_out = put(rng.standard_normal((B, T, D * H)) if name == "cpu" else outs["d_out"])
        d_h_n = put(rng.standard_normal((D, B, H)) if name == "cpu" else outs["d_h_n"])
        dgi = put(np.zeros((B, T, D * 3 * H), dt))
        dgh = put(np.zeros((D, T, B, 3 * H), dt))
        dh0 = put(np.zeros((D, B, H), dt))
        dbias = put(np.zeros((D, 2, 3 * H), dt))
        be.gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev, put(whh), put(lengths),
                              reset_after, 1, dgi, dgh, dh0, dbias)
        get = (lambda a: a) if name == "cpu" else host
        res = {k: get(v) for k, v in dict(out=out, h_n=h_n, gates=gates, hprev=hprev, dgi=dgi,
                                           dgh=dgh, dh0=dh0, dbias=dbias).items()}
        if reset_after:
            res["hn_s"] = get(hn_s)
        if name == "cpu":
            outs.update(d_out=d_out, d_h_n=d_h_n)
        outs[name] = res
    for key, want in outs["cpu"].items():
        assert_close(outs["cuda"][key], want, dt, err_msg=key)


def test_transpose_mul_and_nonfinite_helpers():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 5))
    np.testing.assert_array_equal(host(_cuda.transpose_last2(dev(a))), a.transpose(0, 2, 1))
    b = rng.standard_normal((2, 3, 5))
    out = _cuda.device_empty(a.shape, a.dtype)
    np.testing.assert_array_equal(host(_cuda.mul(dev(a), dev(b), out)), a * b)
    assert not _cuda.has_nonfinite(dev(a))
    a[1, 2, 3] = np.nan
    assert _cuda.has_nonfinite(dev(a))
    a[1, 2, 3] = -np.inf
    assert _cuda.has_nonfinite(dev(a))


# ----------------------------------------------------------------------------------------------
# the whole GRU on device="cuda" against the NumPy reference
# ----------------------------------------------------------------------------------------------
# B, T, I, H, L, bidirectional, reset_after, lengths kind, h0, dtype
CASES = [
    (3, 4, 2, 3, 2, True, True, "ragged", True, "float64"),
    (3, 4, 2, 3, 2, True, False, "ragged", True, "float64"),
    (2, 3, 3, 4, 1, False, True, None, False, "float32"),
    (3, 3, 2, 3, 2, False, False, "equal", True, "float32"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"L{c[4]}-{'bi' if c[5] else 'uni'}-"
                         f"{'after' if c[6] else 'cho'}-{c[7]}-{c[9]}")
def test_gru_cuda_matches_reference(case):
    B, T, I, H, L, bi, ra, lkind, with_h0, dtype = case
    rng = np.random.default_rng(3)
    D = 2 if bi else 1
    gru = numgru.GRU(I, H, L, bidirectional=bi, reset_after=ra, dtype=dtype, device="cuda",
                     random_state=0)
    assert gru.device == "cuda"
    params = {k: v.astype(np.float64) for k, v in gru.state_dict().items()}
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((L * D, B, H)).astype(dtype) if with_h0 else None
    lengths = random_lengths(rng, B, T, lkind)
    out, h_n = gru.forward(x, h0=h0, lengths=lengths, training=True)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and h_n.dtype == dtype
    r_out, r_hn, cache = ref.gru_forward(x, params, num_layers=L, hidden_size=H,
                                         bidirectional=bi, reset_after=ra, h0=h0,
                                         lengths=lengths)
    assert_close(out, r_out, dtype, "out")
    assert_close(h_n, r_hn, dtype, "h_n")
    d_out = rng.standard_normal(out.shape).astype(dtype)
    d_h_n = rng.standard_normal(h_n.shape).astype(dtype)
    dx, dh0, grads = gru.backward(d_out, d_h_n)
    r_dx, r_dh0, r_grads = ref.gru_backward(cache, d_out, d_h_n)
    assert_close(dx, r_dx, dtype, "dx")
    assert_close(dh0, r_dh0, dtype, "dh0")
    assert_grads_close(grads, r_grads, dtype)


def test_dropout_masks_match_the_cpu_path():
    """Same random_state -> same masks -> same outputs and gradients as the CPU GRU."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 2))
    res = []
    for device in ("cpu", "cuda"):
        gru = numgru.GRU(2, 3, 3, dropout=0.4, dtype="float64", device=device, random_state=5)
        out, h_n = gru.forward(x, training=True)
        dx, dh0, grads = gru.backward(np.ones_like(out))
        res.append((out, h_n, dx, dh0, grads, gru.dropout_masks_))
    (o1, hn1, dx1, dh1, g1, m1), (o2, hn2, dx2, dh2, g2, m2) = res
    assert len(m1) == 2 and all(np.array_equal(a, b) for a, b in zip(m1, m2))
    for a, b in ((o2, o1), (hn2, hn1), (dx2, dx1), (dh2, dh1)):
        assert_close(a, b)
    assert_grads_close(g2, g1)


def test_device_arrays_in_device_arrays_out():
    rng = np.random.default_rng(6)
    gru = numgru.GRU(2, 3, 2, dtype="float64", device="cuda", random_state=0)
    cpu = numgru.GRU(2, 3, 2, dtype="float64", random_state=0)
    x = rng.standard_normal((2, 3, 2))
    out_d, hn_d = gru.forward(dev(x), lengths=dev(np.array([3, 2])), training=True)
    assert not isinstance(out_d, np.ndarray) and hasattr(out_d, "copy_to_host")
    out_c, hn_c = cpu.forward(x, lengths=[3, 2], training=True)
    assert_close(host(out_d), out_c)
    assert_close(host(hn_d), hn_c)
    dx_d, dh0_d, grads = gru.backward(dev(np.ones_like(out_c)))
    dx_c, dh0_c, grads_c = cpu.backward(np.ones_like(out_c))
    assert hasattr(dx_d, "copy_to_host") and hasattr(dh0_d, "copy_to_host")
    assert_close(host(dx_d), dx_c)
    assert_grads_close(grads, grads_c)


def test_device_input_errors_name_the_problem():
    gru = numgru.GRU(2, 3, dtype="float32", device="cuda")
    with pytest.raises(TypeError, match="dtype float64"):
        gru.forward(dev(np.zeros((1, 2, 2))))
    bad = np.zeros((1, 2, 2), dtype=np.float32)
    bad[0, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gru.forward(dev(bad))
    with pytest.raises(ValueError, match="input_size=2"):
        gru.forward(dev(np.zeros((1, 2, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        gru.forward(dev(np.zeros((1, 2, 2), dtype=np.float32)),
                    h0=dev(np.zeros((1, 2, 3), dtype=np.float32)))


def test_state_dict_reload_reaches_the_device():
    """Device copies of the weights are refreshed after load_state_dict."""
    x = np.random.default_rng(7).standard_normal((1, 3, 2))
    gru = numgru.GRU(2, 3, dtype="float64", device="cuda", random_state=0)
    before, _ = gru.forward(x)
    other = numgru.GRU(2, 3, dtype="float64", random_state=1)
    gru.load_state_dict(other.state_dict())
    after, _ = gru.forward(x)
    assert not np.allclose(before, after)
    assert_close(after, other.forward(x)[0])


def test_cuda_unavailable_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(_cuda, "unavailable_reason", lambda: "no CUDA driver (test)")
    with pytest.raises(RuntimeError, match="device='cuda' cannot be used: no CUDA driver"):
        numgru.GRU(2, 3, device="cuda")
    monkeypatch.setattr(_cuda, "gpu_present", lambda: False)
    assert numgru.GRU(2, 3, device="auto").device == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        numgru.GRU(2, 3, device="tpu")


# ----------------------------------------------------------------------------------------------
# estimators on device="cuda"
# ----------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_estimators_fit_and_predict_on_cuda_like_on_cpu(kind):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((8, 4, 2))
    if kind == "regressor":
        y = X[:, :, 0].sum(axis=1)
        make = numgru.GRURegressor
    else:
        y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
        make = numgru.GRUClassifier
    kw = dict(hidden_layer_sizes=(3,), max_iter=3, batch_size=4, random_state=0,
              dtype="float64")
    cpu = make(**kw).fit(X, y)
    gpu = make(device="cuda", **kw).fit(X, y)
    assert gpu.grus_[0].device == "cuda"
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)
    if kind == "regressor":
        assert_close(gpu.predict(X), cpu.predict(X))
    else:
        assert_close(gpu.predict_proba(X), cpu.predict_proba(X))


def test_persistent_self_check_accepts_good_and_rejects_bad_kernels(monkeypatch):
    """The once-per-GPU check that guards the persistent kernels (run here with one block, on
    a smaller problem than on a GPU: the simulator runs every thread in Python)."""
    monkeypatch.setattr(_cuda, "SELF_CHECK_SHAPE", (3, 4, 5, 2))
    monkeypatch.setattr(_cuda, "_VERIFIED", {})
    assert _cuda._persistent_verified(np.float64)
    assert _cuda.PERSISTENT is False                 # restored
    monkeypatch.setattr(_cuda, "_VERIFIED", {})
    real = _cuda._run_layer

    def broken(*args):                               # a persistent kernel that gets it wrong
        res = real(*args)
        if _cuda.PERSISTENT:
            res[0] = res[0] + 1.0
        return res

    monkeypatch.setattr(_cuda, "_run_layer", broken)
    with pytest.warns(RuntimeWarning, match="persistent CUDA recurrence kernel disagrees"):
        assert not _cuda._persistent_verified(np.float64)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_saved_cuda_model_loads_on_cuda_or_falls_back_to_cpu(tmp_path, monkeypatch):
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((6, 3, 2)), rng.standard_normal(6)
    est = numgru.GRURegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0,
                              dtype="float64", device="cuda").fit(X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    again = numgru.load(path)
    assert again.grus_[0].device == "cuda"
    assert_close(again.predict(X), est.predict(X))
    monkeypatch.setattr(_cuda, "unavailable_reason", lambda: "no GPU (test)")
    with pytest.warns(RuntimeWarning, match="runs on the CPU instead"):
        cpu = numgru.load(path)
    assert cpu.grus_[0].device == "cpu"
    assert_close(cpu.predict(X), est.predict(X))
