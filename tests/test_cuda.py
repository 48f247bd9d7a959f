"""The CUDA backend (numgru._cuda) against the CPU backend and the NumPy reference.

Runs on a real GPU when there is one, otherwise under Numba's CUDA simulator (tests/conftest.py
turns it on when no NVIDIA driver is present); skips when neither is usable (numba-cuda missing).
Shapes are tiny (the simulator runs every thread in Python) and the launch geometry is shrunk so
that several blocks, ragged row groups and the GEMM's partial tiles really occur.
"""

import os
import pickle
import subprocess
import sys

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
# the backend object: its contract, method by method, against the CPU backend
# ----------------------------------------------------------------------------------------------
CPU = _cpu.backend


@pytest.fixture(params=[False, True], ids=["per-step", "persistent"])
def be(request):
    """A CUDA backend with the launch strategy forced (persistent: one block in the simulator)."""
    return _cuda.CUDABackend(persistent=request.param)


def test_backend_object_default_pickle_and_policy(monkeypatch):
    from numgru._backend import Backend, get_backend

    default = _cuda.backend()
    assert isinstance(default, Backend) and default.name == "cuda"
    assert _cuda.backend() is default and get_backend("cuda") is default
    assert default.persistent is None
    # pickles by name: the unpickling process's default backend, whatever ``persistent`` was
    for obj in (default, _cuda.CUDABackend(persistent=True)):
        assert pickle.loads(pickle.dumps(obj)) is default
    with pytest.raises(TypeError, match="persistent must be"):
        _cuda.CUDABackend(persistent="yes")
    # the policy: per-step under the simulator; on a GPU persistent when _config allows it and
    # the self-check passes; forced choices ignore both
    assert _cuda.CUDABackend(persistent=True).uses_persistent(np.float64)
    assert not _cuda.CUDABackend(persistent=False).uses_persistent(np.float64)
    policy = _cuda.CUDABackend()
    if _cuda.simulator_enabled():
        assert not policy.uses_persistent(np.float64)
    monkeypatch.setattr(_cuda, "simulator_enabled", lambda: False)     # pretend a GPU
    monkeypatch.setattr(policy, "_persistent_verified", lambda dtype: True)
    assert policy.uses_persistent(np.float32)
    monkeypatch.setattr(_config, "CUDA_PERSISTENT", False)
    assert not policy.uses_persistent(np.float32)
    assert _cuda.CUDABackend(persistent=True).uses_persistent(np.float32)


def test_import_does_not_load_numba_cuda(tmp_path):
    """``import numgru._cuda`` stays cheap: numba.cuda (~0.2 s) is imported on first use."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(_cuda.__file__)))
    code = ("import sys, numgru._cuda as m; assert m.__file__.startswith(sys.argv[1]), m.__file__; "
            "print(sorted(k for k in sys.modules if k == 'numba.cuda' or "
            "k.startswith('numba.cuda.')))")
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # cwd: not the checkout, whose numgru/ would shadow an installed numgru ('' is on sys.path)
    res = subprocess.run([sys.executable, "-c", code, root], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_kernels_are_attributes_of_one_object_per_geometry():
    K = _cuda._k(np.float64)
    assert K is _cuda._kernels("float64", 8, 2, 4)           # the tiny geometry of the fixture
    for name in ("fwd_after", "fwd_cho_rz", "fwd_cho_n", "bwd_gates", "bwd_cho_r", "bwd_dh",
                 "rnn_fwd", "rnn_bwd_act", "forward", "backward", "gemm", "colsum", "mul",
                 "copy", "fill", "transpose_last2", "rh", "nonfinite"):
        assert callable(getattr(K, name).__getitem__), name
    assert _cuda._k(np.float32) is not K


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_memory_methods(dtype):
    be = _cuda.backend()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 5)).astype(dtype)
    d = be.upload(a)
    assert be.is_native(d) and not CPU.is_native(a) and not be.is_native(a)
    assert be.as_native(d) is d
    got = be.to_host(d)
    assert isinstance(got, np.ndarray) and got.dtype == dtype
    np.testing.assert_array_equal(got, a)
    e = be.empty((4, 3), dtype)
    assert be.is_native(e) and tuple(e.shape) == (4, 3) and e.dtype == dtype
    z = be.zeros((3, 7), dtype)
    np.testing.assert_array_equal(be.to_host(z), CPU.zeros((3, 7), dtype))
    assert be.to_host(be.zeros((0, 2), dtype)).shape == (0, 2)
    assert be.to_host(be.zeros(4, np.int64)).tolist() == [0, 0, 0, 0]
    assert be.is_contiguous(d) and CPU.is_contiguous(a)
    assert not be.is_contiguous(d[:, :, ::2]) and not CPU.is_contiguous(a[:, :, ::2])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mul_and_has_nonfinite_match_cpu(dtype):
    be = _cuda.backend()
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 5)).astype(dtype)
    b = rng.standard_normal((2, 3, 5)).astype(dtype)
    out = be.empty(a.shape, dtype)
    assert be.mul(be.upload(a), be.upload(b), out) is out
    np.testing.assert_array_equal(be.to_host(out), CPU.mul(a, b, np.empty_like(a)))
    for value in (None, np.nan, np.inf, -np.inf):
        c = a.copy()
        if value is not None:
            c[1, 2, 3] = value
        assert be.has_nonfinite(be.upload(c)) == CPU.has_nonfinite(c) == (value is not None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_matches_cpu_also_in_place(dtype):
    be = _cuda.backend()
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 5)).astype(dtype)
    b = rng.standard_normal((2, 3, 5)).astype(dtype)
    out = be.empty(a.shape, dtype)
    assert be.add(be.upload(a), be.upload(b), out) is out
    np.testing.assert_array_equal(be.to_host(out), CPU.add(a, b, np.empty_like(a)))
    a_n = be.upload(a)
    be.add(a_n, be.upload(b), a_n)
    np.testing.assert_array_equal(be.to_host(a_n), a + b)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_residual_stack_on_cuda_matches_the_cpu(bidirectional):
    x = np.random.default_rng(4).standard_normal((3, 4, 2))
    kw = dict(residual=True, bidirectional=bidirectional, dropout=0.2, dtype="float64",
              random_state=0)
    cpu, gpu = numgru.GRU(2, 3, 3, **kw), numgru.GRU(2, 3, 3, device="cuda", **kw)
    o_c, h_c = cpu.forward(x, lengths=[4, 2, 1], training=True)
    o_g, h_g = gpu.forward(x, lengths=[4, 2, 1], training=True)
    assert_close(o_g, o_c)
    assert_close(h_g, h_c)
    d = np.random.default_rng(5).standard_normal(o_c.shape)
    dx_c, dh0_c, g_c = cpu.backward(d)
    dx_g, dh0_g, g_g = gpu.backward(d)
    assert_close(dx_g, dx_c)
    assert_close(dh0_g, dh0_c)
    assert_grads_close(g_g, g_c)


def test_transpose_last2_helper():
    a = np.random.default_rng(2).standard_normal((2, 3, 5))
    np.testing.assert_array_equal(host(_cuda.transpose_last2(dev(a))), a.transpose(0, 2, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_and_gemm_tn_match_cpu(dtype):
    """Partial 4x4 tiles; with and without bias; W as a transposed (non-contiguous) view."""
    be = _cuda.backend()
    rng = np.random.default_rng(0)
    A = rng.standard_normal((9, 6)).astype(dtype)
    W = rng.standard_normal((6, 7)).astype(dtype)
    Wt = np.ascontiguousarray(W.T)
    bias = rng.standard_normal(7).astype(dtype)
    no_bias = np.zeros(0, dtype)
    for w_host, w_dev, b in ((W, be.upload(W), bias), (Wt.T, be.upload(Wt).T, no_bias)):
        C = be.empty((9, 7), dtype)
        be.gemm(be.upload(A), w_dev, be.upload(b), C)
        want = np.empty((9, 7), dtype)
        CPU.gemm(A, w_host, b, want)
        assert_close(be.to_host(C), want, dtype)
        assert_close(be.to_host(C), A.astype(np.float64) @ W + (bias if b.size else 0), dtype)
    X = rng.standard_normal((9, 5)).astype(dtype)
    G = be.empty((6, 5), dtype)
    be.gemm_tn(be.upload(A), be.upload(X), G)
    want = np.empty((6, 5), dtype)
    CPU.gemm_tn(A, X, want)
    assert_close(be.to_host(G), want, dtype)
    assert_close(be.to_host(G), A.T.astype(np.float64) @ X, dtype)


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


def _run_layer_methods(backend, inputs, d_out, d_h_n, reset_after, store=True):
    """gru_layer_forward (+ gru_layer_backward and gru_hh_weight_grad when ``store``) through
    the contract; host copies of everything written, the reduced dbias included."""
    x, w_ih, b_ih, whh, bhh, h0, lengths = inputs
    B, T, _ = x.shape
    D, _, H = h0.shape
    dt = x.dtype
    put, get = backend.upload, backend.to_host
    out, h_n = backend.empty((B, T, D * H), dt), backend.empty((D, B, H), dt)
    if store:
        gates = backend.empty((D, T, B, 3 * H), dt)
        hn_s = backend.empty((D, T, B, H), dt) if reset_after else backend.empty((D, 0, 0, 0), dt)
        hprev = backend.empty((D, T, B, H), dt)
    else:
        gates = hn_s = hprev = backend.empty((D, 0, 0, 0), dt)
    whh_n = put(whh)
    lengths_n = put(lengths)
    backend.gru_layer_forward(put(x), put(w_ih), put(b_ih), whh_n, put(bhh), put(h0), lengths_n,
                              reset_after, out, h_n, store, gates, hn_s, hprev)
    res = {"out": get(out), "h_n": get(h_n)}
    if not store:
        return res
    res.update(gates=get(gates), hprev=get(hprev))
    if reset_after:
        res["hn_s"] = get(hn_s)
    dgi = backend.empty((B, T, D * 3 * H), dt)
    dgh = backend.empty((D, T, B, 3 * H), dt)
    dh0 = backend.empty((D, B, H), dt)
    dbias = backend.gru_layer_backward(put(d_out), put(d_h_n), gates, hn_s, hprev, whh_n,
                                       lengths_n, reset_after, dgi, dgh, dh0)
    assert isinstance(dbias, np.ndarray) and dbias.shape == (D, 2, 3 * H) and dbias.dtype == dt
    res.update(dgi=get(dgi), dgh=get(dgh), dh0=get(dh0), dbias=dbias)
    dw = backend.empty((D, 3 * H, H), dt)
    for d in range(D):
        backend.gru_hh_weight_grad(dgh[d].reshape(B * T, 3 * H), hprev[d].reshape(B * T, H),
                                   gates[d].reshape(B * T, 3 * H), reset_after, dw[d])
    res["dw_hh"] = get(dw)
    return res


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "cho"])
def test_layer_methods_match_cpu_backend(be, reset_after):
    """gru_layer_forward / gru_layer_backward (dbias returned reduced) / gru_hh_weight_grad:
    the same arrays from the CUDA backend as from the CPU backend, per-step and persistent."""
    rng = np.random.default_rng(1)
    B, T, H, D, dt = 3, 4, 3, 2, np.float64
    inputs = _layer_inputs(rng, B, T, H, D, dt, reset_after)
    d_out = rng.standard_normal((B, T, D * H))
    d_h_n = rng.standard_normal((D, B, H))
    want = _run_layer_methods(CPU, inputs, d_out, d_h_n, reset_after)
    got = _run_layer_methods(be, inputs, d_out, d_h_n, reset_after)
    assert sorted(got) == sorted(want)
    if reset_after:          # hn_s past a sequence's end is not written (nothing reads it there)
        valid = np.arange(T)[:, None] < inputs[-1][None, :]          # (T, B)
        for res in (got, want):
            res["hn_s"] = res["hn_s"][:, valid]
    for key in want:
        assert_close(got[key], want[key], dt, err_msg=key)


def test_layer_forward_without_store_float32(be):
    """Inference (store=False: no buffers for backward), one direction, float32."""
    rng = np.random.default_rng(5)
    inputs = _layer_inputs(rng, 3, 3, 2, 1, np.float32, True)
    want = _run_layer_methods(CPU, inputs, None, None, True, store=False)
    got = _run_layer_methods(be, inputs, None, None, True, store=False)
    for key in want:
        assert_close(got[key], want[key], np.float32, err_msg=key)


# ----------------------------------------------------------------------------------------------
# the vanilla RNN cell's contract methods against the CPU backend
# ----------------------------------------------------------------------------------------------
def _run_rnn_layer_methods(backend, inputs, d_out, d_h_n, relu, store=True):
    """rnn_layer_forward (+ rnn_layer_backward when ``store``) through the contract; host
    copies of everything written, the reduced dbias included."""
    x, w_ih, b_ih, whh, bhh, h0, lengths = inputs
    B, T, _ = x.shape
    D, _, H = h0.shape
    dt = x.dtype
    put, get = backend.upload, backend.to_host
    out, h_n = backend.empty((B, T, D * H), dt), backend.empty((D, B, H), dt)
    states = backend.empty((D, T + 1, B, H) if store else (D, 0, 0, 0), dt)
    whh_n, lengths_n = put(whh), put(lengths)
    backend.rnn_layer_forward(put(x), put(w_ih), put(b_ih), whh_n, put(bhh), put(h0), lengths_n,
                              relu, out, h_n, store, states)
    res = {"out": get(out), "h_n": get(h_n)}
    if not store:
        return res
    res["states"] = get(states)
    dgi = backend.empty((B, T, D * H), dt)
    dgh = backend.empty((D, T, B, H), dt)
    dh0 = backend.empty((D, B, H), dt)
    dbias = backend.rnn_layer_backward(put(d_out), put(d_h_n), states, whh_n, lengths_n, relu,
                                       dgi, dgh, dh0)
    assert isinstance(dbias, np.ndarray) and dbias.shape == (D, 2, H) and dbias.dtype == dt
    res.update(dgi=get(dgi), dgh=get(dgh), dh0=get(dh0), dbias=dbias)
    return res


def _rnn_inputs(rng, B, T, H, D, dtype):
    I = 2
    return (rng.standard_normal((B, T, I)).astype(dtype),
            rng.standard_normal((D * H, I)).astype(dtype),
            rng.standard_normal(D * H).astype(dtype),
            (0.5 * rng.standard_normal((D, H, H))).astype(dtype),
            rng.standard_normal((D, H)).astype(dtype),
            rng.standard_normal((D, B, H)).astype(dtype),
            np.array([T, 1, max(1, T - 2)][:B], dtype=np.int64))


@pytest.mark.parametrize("relu", [False, True], ids=["tanh", "relu"])
def test_rnn_layer_methods_match_cpu_backend(relu):
    """rnn_layer_forward / rnn_layer_backward (dbias returned reduced): the same arrays from
    the CUDA backend as from the CPU backend, the saved states included."""
    rng = np.random.default_rng(11)
    B, T, H, D, dt = 3, 4, 3, 2, np.float64
    inputs = _rnn_inputs(rng, B, T, H, D, dt)
    d_out = rng.standard_normal((B, T, D * H))
    d_h_n = rng.standard_normal((D, B, H))
    want = _run_rnn_layer_methods(CPU, inputs, d_out, d_h_n, relu)
    got = _run_rnn_layer_methods(_cuda.backend(), inputs, d_out, d_h_n, relu)
    assert sorted(got) == sorted(want)
    for key in want:
        assert_close(got[key], want[key], dt, err_msg=key)
    np.testing.assert_array_equal(got["dbias"][:, 0], got["dbias"][:, 1])


def test_rnn_layer_forward_without_store_float32():
    rng = np.random.default_rng(12)
    inputs = _rnn_inputs(rng, 3, 3, 2, 1, np.float32)
    for relu in (False, True):
        want = _run_rnn_layer_methods(CPU, inputs, None, None, relu, store=False)
        got = _run_rnn_layer_methods(_cuda.backend(), inputs, None, None, relu, store=False)
        for key in want:
            assert_close(got[key], want[key], np.float32, err_msg=key)


# B, T, I, H, L, bidirectional, nonlinearity, lengths kind, h0, dtype
RNN_CASES = [
    (3, 4, 2, 3, 2, True, "tanh", "ragged", True, "float64"),
    (3, 3, 2, 3, 2, False, "relu", "equal", True, "float32"),
]


@pytest.mark.parametrize("case", RNN_CASES, ids=lambda c: f"L{c[4]}-{'bi' if c[5] else 'uni'}-"
                         f"{c[6]}-{c[7]}-{c[9]}")
def test_rnn_cuda_matches_reference(case):
    B, T, I, H, L, bi, act, lkind, with_h0, dtype = case
    rng = np.random.default_rng(13)
    D = 2 if bi else 1
    rnn = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=bi, dtype=dtype, device="cuda",
                     random_state=0)
    assert rnn.device == "cuda"
    params = {k: v.astype(np.float64) for k, v in rnn.state_dict().items()}
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((L * D, B, H)).astype(dtype) if with_h0 else None
    lengths = random_lengths(rng, B, T, lkind)
    out, h_n = rnn.forward(x, h0=h0, lengths=lengths, training=True)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and h_n.dtype == dtype
    r_out, r_hn, cache = ref.rnn_forward(x, params, num_layers=L, hidden_size=H,
                                         nonlinearity=act, bidirectional=bi, h0=h0,
                                         lengths=lengths)
    assert_close(out, r_out, dtype, "out")
    assert_close(h_n, r_hn, dtype, "h_n")
    d_out = rng.standard_normal(out.shape).astype(dtype)
    d_h_n = rng.standard_normal(h_n.shape).astype(dtype)
    dx, dh0, grads = rnn.backward(d_out, d_h_n)
    r_dx, r_dh0, r_grads = ref.rnn_backward(cache, d_out, d_h_n)
    assert_close(dx, r_dx, dtype, "dx")
    assert_close(dh0, r_dh0, dtype, "dh0")
    assert_grads_close(grads, r_grads, dtype)


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


def _module_state():
    return {k: v for k, v in vars(_cuda).items() if not k.startswith("__")}


def test_persistent_self_check_accepts_good_and_rejects_bad_kernels(monkeypatch):
    """The once-per-GPU check that guards the persistent kernels (run here with one block, on
    a smaller problem than on a GPU: the simulator runs every thread in Python). It records its
    result on the backend object and changes no module global."""
    monkeypatch.setattr(_config, "CUDA_SELF_CHECK_SHAPE", (3, 4, 5, 2))
    config_before = dict(vars(_config))
    be = _cuda.CUDABackend()
    before = _module_state()
    assert be._persistent_verified(np.float64)
    assert be._verified == {("float64", _cuda._geometry()): True}
    assert be.persistent is None
    after = _module_state()
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] is not before[k]] == []
    assert dict(vars(_config)) == config_before
    real = _cuda._run_layer
    calls = []

    def broken(*args):                               # a persistent kernel that gets it wrong
        persistent = args[-1]
        calls.append(persistent)
        res = real(*args)
        if persistent:
            res[0] = res[0] + 1.0
        return res

    monkeypatch.setattr(_cuda, "_run_layer", broken)
    assert be._persistent_verified(np.float64)       # recorded once per dtype and geometry
    assert calls == []
    other = _cuda.CUDABackend()
    before = _module_state()
    with pytest.warns(RuntimeWarning, match="persistent CUDA recurrence kernel disagrees"):
        assert not other._persistent_verified(np.float64)
    assert sorted(set(calls)) == [False, True]       # the choice is passed down, not set globally
    assert [k for k in before if _module_state()[k] is not before[k]] == []
    assert be._verified[("float64", _cuda._geometry())] is True


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
    assert cpu.device == "cpu"                       # refitting works where it was loaded
    assert_close(cpu.predict(X), est.predict(X))
    cpu.partial_fit(X, y)
