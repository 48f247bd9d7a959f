"""Layer normalisation (``layer_norm=True``) and recurrent dropout (``recurrent_dropout=p``):
the general GRU / RNN layers (numgru._cpu_norm, numgru._cuda_norm) against the float64 oracle
(reference.general_layer_forward / _backward), finite differences through the engines, the
masks' semantics, errors, the estimators, and the CUDA twin under the simulator (tiny)."""

import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone

import numgru
from numgru import GRU, RNN, GRURegressor, GRUClassifier, _config, _cuda, _layout
from numgru._backend import get_backend
from numgru._stack import Stack
import reference as ref

B, T, I, H = 4, 5, 3, 8
LENGTHS = np.array([5, 2, 4, 1])
CELLS = ("gru", "rnn_tanh", "rnn_relu")
OPTIONS = [(True, 0.0), (False, 0.3), (True, 0.3)]          # (layer_norm, recurrent_dropout)


def _layer_stack(cell, D, ln, p, dtype, device="cpu", seed=0):
    """One general layer with perturbed parameters (LN gains/biases away from 1/0)."""
    rng = np.random.default_rng(seed)
    st = Stack.recurrent(I, [H], cell=cell, bidirectional=D == 2, dtype=dtype,
                         backend=get_backend(device), rngs=np.random.default_rng(seed + 1),
                         layer_norm=ln, recurrent_dropout=p)
    sd = _layout.state_dict(st)
    for k in sd:
        sd[k] = sd[k] + rng.normal(0, 0.3, sd[k].shape)
    _layout.load_state_dict(st, sd)
    return st, sd


def _run_layer(st, dtype, D, seed=0, h0_given=True, lengths=LENGTHS):
    rng = np.random.default_rng(seed + 10)
    x = rng.normal(size=(B, T, I)).astype(dtype)
    h0 = rng.normal(size=(D, B, H)).astype(dtype) if h0_given else np.zeros((D, B, H), dtype)
    d_out = rng.normal(size=(B, T, D * H)).astype(dtype)
    d_hn = rng.normal(size=(D, B, H)).astype(dtype)
    be = st.backend
    out, h_n = st.forward(be.upload(x), lengths, [be.upload(h0)], None, training=True,
                          rng=np.random.default_rng(seed + 20))
    masks = st.recurrent_masks()
    dx, dh0, grads = st.backward(be.upload(d_out), [be.upload(d_hn)])
    res = dict(out=be.to_host(out), h_n=be.to_host(h_n[0]), dx=be.to_host(dx),
               dh0=be.to_host(dh0[0]), **_layout.named_grads(st, grads))
    return res, dict(x=x, h0=h0, d_out=d_out, d_hn=d_hn, masks=masks[0] if masks else None)


def _close(actual, expected, dtype, what):
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    tol = 1e-10 if np.dtype(dtype) == np.float64 else 1e-5
    err = float(np.abs(np.asarray(actual, np.float64) - expected).max()) / scale
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol}"


# ---------------------------------------------------------------------------------------------
# kernels vs the oracle
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ln, p", OPTIONS, ids=["ln", "rdrop", "ln+rdrop"])
@pytest.mark.parametrize("D", [1, 2], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_layer_matches_oracle(cell, D, ln, p, dtype):
    st, sd = _layer_stack(cell, D, ln, p, dtype)
    res, io = _run_layer(st, dtype, D)
    out, h_n, cache = ref.general_layer_forward(io["x"], sd, hidden_size=H, cell=cell,
                                                bidirectional=D == 2, h0=io["h0"],
                                                lengths=LENGTHS, layer_norm=ln,
                                                masks=io["masks"])
    dx, dh0, grads = ref.general_layer_backward(cache, io["d_out"], io["d_hn"])
    assert (io["masks"] is None) == (p == 0)
    expected = dict(out=out, h_n=h_n, dx=dx, dh0=dh0, **grads)
    assert set(expected) == set(res)
    for k, v in expected.items():
        _close(res[k], v, dtype, k)


def test_no_h0_and_full_lengths():
    st, sd = _layer_stack("gru", 2, True, 0.2, np.float64)
    full = np.full(B, T)
    res, io = _run_layer(st, np.float64, 2, h0_given=False, lengths=full)
    out, h_n, cache = ref.general_layer_forward(io["x"], sd, hidden_size=H, bidirectional=True,
                                                layer_norm=True, masks=io["masks"])
    dx, dh0, grads = ref.general_layer_backward(cache, io["d_out"], io["d_hn"])
    for k, v in dict(out=out, h_n=h_n, dx=dx, dh0=dh0, **grads).items():
        _close(res[k], v, np.float64, k)


def test_padded_positions_are_zero_and_ignored():
    st, _ = _layer_stack("gru", 2, True, 0.3, np.float64)
    res, _ = _run_layer(st, np.float64, 2)
    for b, n in enumerate(LENGTHS):
        assert not res["out"][b, n:].any()
        assert not res["dx"][b, n:].any()


# ---------------------------------------------------------------------------------------------
# finite differences through the engines (float64; recurrent dropout with fixed masks)
# ---------------------------------------------------------------------------------------------
def _fd_check(net, seed=0, n_entries=4, eps=1e-6):
    rng = np.random.default_rng(seed)
    D, L = net.num_directions, net.num_layers
    x = rng.normal(size=(3, 4, net.input_size))
    h0 = rng.normal(size=(L * D, 3, net.hidden_size))
    lengths = np.array([4, 2, 3])
    w_out = rng.normal(size=(3, 4, D * net.hidden_size))
    w_hn = rng.normal(size=h0.shape)

    def loss(x_=x, h0_=h0):
        net.rng = np.random.default_rng(123)           # the same masks every forward
        out, h_n = net.forward(x_, h0_, lengths, training=True)
        return float((out * w_out).sum() + (h_n * w_hn).sum())

    loss()
    dx, dh0, grads = net.backward(w_out, w_hn)
    sd = net.state_dict()
    for name, value in sd.items():
        flat = value.reshape(-1)
        for idx in rng.choice(flat.size, min(n_entries, flat.size), replace=False):
            old = flat[idx]
            vals = []
            for delta in (eps, -eps):
                flat[idx] = old + delta
                net.load_state_dict(sd)
                vals.append(loss())
            flat[idx] = old
            net.load_state_dict(sd)
            num = (vals[0] - vals[1]) / (2 * eps)
            assert abs(num - grads[name].reshape(-1)[idx]) <= 1e-6 * max(1.0, abs(num)), name
    for arr, g, what in ((x, dx, "dx"), (h0, dh0, "dh0")):
        for idx in np.ndindex(*arr.shape[:2]):
            if what == "dx" and idx[1] >= lengths[idx[0]]:
                continue
            e = np.zeros_like(arr)
            e[idx + (0,)] = eps
            num = (loss(*((arr + e, h0) if what == "dx" else (x, arr + e)))
                   - loss(*((arr - e, h0) if what == "dx" else (x, arr - e)))) / (2 * eps)
            assert abs(num - g[idx + (0,)]) <= 1e-6 * max(1.0, abs(num)), (what, idx)


@pytest.mark.parametrize("kw", [dict(layer_norm=True), dict(recurrent_dropout=0.4),
                                dict(layer_norm=True, recurrent_dropout=0.3, bidirectional=True,
                                     residual=True, dropout=0.2)],
                         ids=["ln", "rdrop", "all"])
def test_finite_differences_gru(kw):
    _fd_check(GRU(2, 3, 2, dtype="float64", random_state=1, **kw))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_finite_differences_rnn(nonlinearity):
    _fd_check(RNN(2, 3, 2, nonlinearity=nonlinearity, layer_norm=True, recurrent_dropout=0.3,
                  bidirectional=True, dtype="float64", random_state=2))


# ---------------------------------------------------------------------------------------------
# semantics
# ---------------------------------------------------------------------------------------------
def test_state_dict_names_and_initialisation():
    plain = GRU(3, 4, 2, bidirectional=True, random_state=0)
    ln = GRU(3, 4, 2, bidirectional=True, layer_norm=True, random_state=0)
    rd = GRU(3, 4, 2, bidirectional=True, recurrent_dropout=0.5, random_state=0)
    assert list(rd.state_dict()) == list(plain.state_dict())       # torch-identical names
    sd, sp = ln.state_dict(), plain.state_dict()
    extra = [k for k in sd if k not in sp]
    assert extra == [f"{kind}_l{k}{s}" for k in range(2) for s in ("", "_reverse")
                     for kind in ("layer_norm_ih_weight", "layer_norm_ih_bias",
                                  "layer_norm_hh_weight", "layer_norm_hh_bias")]
    for k in sp:                                  # the same draws as without layer_norm
        np.testing.assert_array_equal(sd[k], sp[k])
    for k in extra:
        assert sd[k].shape == (12,)
        assert np.all(sd[k] == (1.0 if k.split("_l")[0].endswith("weight") else 0.0))
    assert RNN(3, 4, layer_norm=True).state_dict()["layer_norm_hh_weight_l0"].shape == (4,)
    # LN gains and biases are not weights for the L2 penalty
    flags = dict(zip([k for lay in ln._stack.layers for k in lay.param_keys],
                     [f for _, f in ln._stack.parameters()]))
    assert not any(flags[k] for k in ("ln_ih_g", "ln_ih_b", "ln_hh_g", "ln_hh_b"))


def test_masks_per_sequence_inverted_and_training_only():
    p = 0.3
    gru = GRU(3, 40, 2, bidirectional=True, recurrent_dropout=p, random_state=0,
              dtype="float64")
    x = np.random.default_rng(0).normal(size=(50, 6, 3))
    gru.forward(x, training=True)
    masks = gru.recurrent_dropout_masks_
    assert len(masks) == 2 and all(m.shape == (2, 3, 50, 40) for m in masks)
    for m in masks:
        assert set(np.unique(m)) == {0.0, 1.0 / (1 - p)}
        assert abs(m.mean() - 1.0) < 0.05                    # inverted scaling
        assert not np.array_equal(m[0, 0], m[0, 1])           # one mask per gate
        assert not np.array_equal(m[0, 0, 0], m[0, 0, 1])     # and per sequence
    first = [m.copy() for m in masks]
    gru.forward(x, training=True)
    assert not np.array_equal(first[0], gru.recurrent_dropout_masks_[0])   # drawn per forward
    # inference: no masks; equal to the same weights without recurrent dropout
    plain = GRU(3, 40, 2, bidirectional=True, random_state=0, dtype="float64")
    plain.load_state_dict(gru.state_dict())
    out, h_n = gru.forward(x)
    out_p, h_n_p = plain.forward(x)
    np.testing.assert_allclose(out, out_p, rtol=1e-12, atol=1e-14)   # general vs fast kernel
    np.testing.assert_allclose(h_n, h_n_p, rtol=1e-12, atol=1e-14)


def test_same_mask_at_every_step():
    """With all-ones LN off, a single layer's training output equals the oracle run with the
    reported masks applied at every step (a mask redrawn per step would not)."""
    gru = GRU(2, 5, recurrent_dropout=0.5, random_state=3, dtype="float64")
    x = np.random.default_rng(1).normal(size=(3, 7, 2))
    out, _ = gru.forward(x, training=True)
    masks = gru.recurrent_dropout_masks_[0]
    ref_out, _, _ = ref.general_layer_forward(x, gru.state_dict(), hidden_size=5, masks=masks)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)


def test_layer_norm_inference_matches_oracle_and_float32():
    gru = GRU(3, 4, layer_norm=True, random_state=0, dtype="float32")
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    out, h_n = gru.forward(x, lengths=[5, 3])
    assert out.dtype == np.float32
    r_out, r_hn, _ = ref.general_layer_forward(x, gru.state_dict(), hidden_size=4,
                                               lengths=[5, 3], layer_norm=True)
    _close(out, r_out, np.float32, "out")
    _close(h_n, r_hn, np.float32, "h_n")


@pytest.mark.parametrize("kw, match", [
    (dict(layer_norm=True, reset_after=False), "layer_norm=True needs reset_after=True"),
    (dict(recurrent_dropout=0.2, reset_after=False), "needs reset_after=True"),
    (dict(recurrent_dropout=1.0), r"recurrent_dropout must be a number in \[0, 1\)"),
    (dict(recurrent_dropout=-0.5), "recurrent_dropout"),
])
def test_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        GRU(2, 3, **kw)


def test_rnn_error():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        RNN(2, 3, recurrent_dropout=1.5)


def test_repr_and_pickle():
    gru = GRU(2, 3, 2, layer_norm=True, recurrent_dropout=0.1, random_state=0)
    assert "layer_norm=True" in repr(gru) and "recurrent_dropout=0.1" in repr(gru)
    x = np.ones((2, 4, 2), np.float32)
    again = pickle.loads(pickle.dumps(gru))
    np.testing.assert_array_equal(again.forward(x)[0], gru.forward(x)[0])


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "rnn_tanh"])
def test_estimators_fit_predict_save_load(cell, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6, 2))
    y = X.sum(axis=(1, 2))
    reg = GRURegressor((5, 5), cell=cell, residual=True, layer_norm=True,
                       recurrent_dropout=0.2, max_iter=3, random_state=0)
    with pytest.warns(Warning):
        reg.fit(X, y)
    assert reg.get_params()["layer_norm"] is True
    assert clone(reg).get_params()["recurrent_dropout"] == 0.2
    pred = reg.predict(X)
    assert np.isfinite(pred).all()
    path = os.path.join(tmp_path, "m.npz")
    reg.save(path)
    loaded = numgru.io.load(path)
    np.testing.assert_array_equal(loaded.predict(X), pred)
    assert any("layer_norm_hh_weight" in k for k in reg._network_arrays())
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), pred)
    s = reg.stream(n_streams=24)          # streaming equals predict (no masks at inference)
    s.update(X[:, :2])
    np.testing.assert_allclose(np.asarray(s.update(X[:, 2:])).ravel(), pred, rtol=1e-6,
                               atol=1e-9)
    clf = GRUClassifier((4,), layer_norm=True, recurrent_dropout=0.3, max_iter=2,
                        bidirectional=True, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y > 0)
    assert set(clf.predict(X)) <= {False, True}


def test_estimator_parameter_errors():
    X = np.zeros((4, 3, 2))
    y = np.zeros(4)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        GRURegressor((3,), recurrent_dropout=1.0).fit(X, y)
    with pytest.raises(ValueError, match="layer_norm=True needs reset_after=True"):
        GRURegressor((3,), layer_norm=True, reset_after=False).fit(X, y)


# ---------------------------------------------------------------------------------------------
# the CUDA twin (simulator when there is no GPU; tiny)
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(_cuda.unavailable_reason() is not None, reason="CUDA unusable here")
@pytest.mark.parametrize("cell, D, ln, p, dtype", [
    ("gru", 2, True, 0.3, np.float64), ("gru", 1, False, 0.3, np.float32),
    ("gru", 1, True, 0.0, np.float32), ("rnn_tanh", 2, True, 0.3, np.float64),
    ("rnn_relu", 1, True, 0.2, np.float64)])
def test_cuda_twin_matches_cpu(cell, D, ln, p, dtype, monkeypatch):
    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 4)
    monkeypatch.setattr(_config, "CUDA_ROWS_PER_THREAD", 2)
    monkeypatch.setattr(_config, "CUDA_TILE", 4)
    cpu, _ = _run_layer(_layer_stack(cell, D, ln, p, dtype)[0], dtype, D)
    gpu, _ = _run_layer(_layer_stack(cell, D, ln, p, dtype, device="cuda")[0], dtype, D)
    assert set(cpu) == set(gpu)
    for k in cpu:
        _close(gpu[k], cpu[k], dtype, k)
