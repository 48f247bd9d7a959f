"""The NumPy oracle (tests/reference.py) against PyTorch fixtures and finite differences."""

import warnings

import numpy as np
import pytest

from helpers import fixture_ids, fixture_paths, load_fixture, make_masks
from reference import gru_backward, gru_forward, init_params, param_names, param_shapes, \
    rnn_backward, rnn_forward, rnn_init_params, rnn_param_shapes, sigmoid


# ----------------------------------------------------------------------------------------------
# PyTorch fixtures
# ----------------------------------------------------------------------------------------------
def test_fixtures_present():
    ids = fixture_ids()
    assert len(ids) >= 5, ids
    assert any(i.endswith("f32") for i in ids) and any(i.endswith("f64") for i in ids)


@pytest.mark.parametrize("path", fixture_paths(), ids=fixture_ids())
def test_oracle_matches_torch_fixture(path):
    fx = load_fixture(path)
    rtol = 1e-12 if fx["dtype"] == "float64" else 1e-5
    out, h_n, cache = gru_forward(
        fx["x"], fx["params"], num_layers=fx["num_layers"], hidden_size=fx["hidden_size"],
        bidirectional=fx["bidirectional"], reset_after=True,
        h0=fx["h0"] if fx["has_h0"] else None,
        lengths=fx["lengths"] if fx["has_lengths"] else None)
    dx, dh0, grads = gru_backward(cache, fx["d_out"], fx["d_h_n"])

    def check(a, b, what):
        b = np.asarray(b, dtype=np.float64)
        atol = rtol * max(1.0, float(np.max(np.abs(b)))) * (1e-2 if rtol == 1e-12 else 1e-1)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)

    check(out, fx["out"], "out")
    check(h_n, fx["h_n"], "h_n")
    check(dx, fx["dx"], "dx")
    check(dh0, fx["dh0"], "dh0")
    assert list(grads) == list(fx["grads"])
    for name in grads:
        check(grads[name], fx["grads"][name], name)


# ----------------------------------------------------------------------------------------------
# basic properties of the oracle
# ----------------------------------------------------------------------------------------------
def test_param_layout():
    sh = param_shapes(5, 4, 2, bidirectional=True, reset_after=False)
    assert list(sh) == param_names(2, True)
    assert sh["weight_ih_l0"] == (12, 5)
    assert sh["weight_ih_l1_reverse"] == (12, 8)
    assert sh["weight_hh_l1"] == (12, 4)
    assert sh["bias_hh_l0_reverse"] == (8,)
    assert param_shapes(5, 4, 1)["bias_hh_l0"] == (12,)
    p = init_params(np.random.default_rng(0), 5, 4, 2, True, True, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in p.values())
    assert all(np.all(np.abs(v) <= 0.5) for v in p.values())


def test_stable_activations():
    a = np.array([-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            s = sigmoid(a)
            rng = np.random.default_rng(0)
            p = {k: v * 2e4 for k, v in init_params(rng, 3, 4, 2, True, True).items()}
            x = rng.standard_normal((2, 5, 3))
            out, h_n, cache = gru_forward(x, p, num_layers=2, hidden_size=4, bidirectional=True)
            dx, dh0, grads = gru_backward(cache, rng.standard_normal(out.shape))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_padding_semantics():
    rng = np.random.default_rng(1)
    B, T, I, H = 3, 6, 2, 3
    p = init_params(rng, I, H, 1, True, True)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 2, 4])
    out, h_n, _ = gru_forward(x, p, num_layers=1, hidden_size=H, bidirectional=True,
                              lengths=lengths)
    for b, n in enumerate(lengths):
        assert np.all(out[b, n:] == 0)
        # each sequence run alone, truncated to its own length, gives the same result
        o1, h1, _ = gru_forward(x[b:b + 1, :n], p, num_layers=1, hidden_size=H,
                                bidirectional=True)
        np.testing.assert_allclose(out[b, :n], o1[0], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-14, atol=1e-15)
        # the reverse direction starts at the sequence's own end
        np.testing.assert_allclose(h_n[1, b], out[b, 0, H:], rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------------------------
FD_CONFIGS = [
    # B, T, I, H, L, bidirectional, reset_after, lengths, h0, dropout
    (2, 4, 3, 3, 1, False, True, None, False, 0.0),
    (2, 4, 3, 3, 1, False, False, None, True, 0.0),
    (3, 5, 2, 3, 2, True, True, [5, 2, 3], True, 0.0),
    (3, 5, 2, 3, 2, True, False, [1, 5, 3], True, 0.0),
    (2, 4, 3, 2, 3, False, True, [4, 2], True, 0.4),
    (2, 4, 2, 2, 3, True, False, None, False, 0.3),
    (3, 4, 2, 2, 2, True, True, [2, 4, 1], True, 0.5),
]


def _fd_ids():
    return [f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
            f"{'_ra' if c[6] else '_rb'}{'_len' if c[7] else ''}{'_h0' if c[8] else ''}"
            f"{'_drop' if c[9] else ''}" for c in FD_CONFIGS]


def numerical_grad(f, arr, eps=1e-6):
    """Central differences of scalar f() w.r.t. every element of arr (modified in place)."""
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("seed, cfg", list(enumerate(FD_CONFIGS)), ids=_fd_ids())
def test_oracle_finite_differences(seed, cfg):
    B, T, I, H, L, bidir, reset_after, lengths, with_h0, p_drop = cfg
    D = 2 if bidir else 1
    rng = np.random.default_rng(100 + seed)
    params = init_params(rng, I, H, L, bidir, reset_after)
    params = {k: v * 2.0 for k, v in params.items()}        # leave the linear regime
    x = rng.standard_normal((B, T, I))
    h0 = 0.5 * rng.standard_normal((L * D, B, H)) if with_h0 else np.zeros((L * D, B, H))
    masks = make_masks(rng, L, (B, T, D * H), p_drop) if p_drop else None
    R1 = rng.standard_normal((B, T, D * H))
    R2 = rng.standard_normal((L * D, B, H))
    kw = dict(num_layers=L, hidden_size=H, bidirectional=bidir, reset_after=reset_after,
              lengths=lengths, dropout_masks=masks)

    def loss():
        out, h_n, _ = gru_forward(x, params, h0=h0, **kw)
        return float(np.sum(out * R1) + np.sum(h_n * R2))

    out, h_n, cache = gru_forward(x, params, h0=h0, **kw)
    dx, dh0, grads = gru_backward(cache, R1, R2)

    def check(analytic, arr, what):
        num = numerical_grad(loss, arr)
        np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=2e-8, err_msg=what)

    check(dx, x, "dx")
    check(dh0, h0, "dh0")
    for name in params:
        check(grads[name], params[name], name)
    if lengths is not None:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]
        assert np.all(dx[pad] == 0)


# ----------------------------------------------------------------------------------------------
# both conventions against an independent implementation of the Keras equations
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset_after", [True, False])
def test_oracle_matches_keras_equations(reset_after):
    from helpers import keras_gru_forward, keras_to_torch_params, random_keras_weights
    rng = np.random.default_rng(7)
    B, T, I, H = 3, 6, 4, 5
    kernel, rec, bias = random_keras_weights(rng, I, H, reset_after)
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((B, H))
    seq, h = keras_gru_forward(x, kernel, rec, bias, reset_after, h0=h0)
    out, h_n, _ = gru_forward(x, keras_to_torch_params(kernel, rec, bias, reset_after),
                              num_layers=1, hidden_size=H, reset_after=reset_after,
                              h0=h0[None])
    np.testing.assert_allclose(out, seq, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n[0], h, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# the vanilla RNN oracle (rnn_forward / rnn_backward)
# ----------------------------------------------------------------------------------------------
def test_rnn_fixtures_present():
    ids = fixture_ids("rnn")
    assert len(ids) >= 4, ids
    assert {load_fixture(p)["cell"] for p in fixture_paths("rnn")} == {"rnn_tanh", "rnn_relu"}
    assert all(load_fixture(p)["cell"] == "gru" for p in fixture_paths())


@pytest.mark.parametrize("path", fixture_paths("rnn"), ids=fixture_ids("rnn"))
def test_rnn_oracle_matches_torch_fixture(path):
    fx = load_fixture(path)
    rtol = 1e-12 if fx["dtype"] == "float64" else 1e-5
    out, h_n, cache = rnn_forward(
        fx["x"], fx["params"], num_layers=fx["num_layers"], hidden_size=fx["hidden_size"],
        nonlinearity=fx["cell"][len("rnn_"):], bidirectional=fx["bidirectional"],
        h0=fx["h0"] if fx["has_h0"] else None,
        lengths=fx["lengths"] if fx["has_lengths"] else None)
    dx, dh0, grads = rnn_backward(cache, fx["d_out"], fx["d_h_n"])

    def check(a, b, what):
        b = np.asarray(b, dtype=np.float64)
        atol = rtol * max(1.0, float(np.max(np.abs(b)))) * (1e-2 if rtol == 1e-12 else 1e-1)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)

    for name, value in (("out", out), ("h_n", h_n), ("dx", dx), ("dh0", dh0)):
        check(value, fx[name], name)
    assert list(grads) == list(fx["grads"])
    for name in grads:
        check(grads[name], fx["grads"][name], name)


def test_rnn_param_layout():
    sh = rnn_param_shapes(5, 4, 2, bidirectional=True)
    assert list(sh) == param_names(2, True)
    assert sh["weight_ih_l0"] == (4, 5) and sh["weight_ih_l1_reverse"] == (4, 8)
    assert sh["weight_hh_l1"] == (4, 4) and sh["bias_hh_l0_reverse"] == (4,)
    p = rnn_init_params(np.random.default_rng(0), 5, 4, 2, True, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in p.values())
    assert all(np.all(np.abs(v) <= 0.5) for v in p.values())


def test_rnn_padding_semantics():
    rng = np.random.default_rng(1)
    B, T, I, H = 3, 6, 2, 3
    p = rnn_init_params(rng, I, H, 1, True)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 2, 4])
    for act in ("tanh", "relu"):
        out, h_n, _ = rnn_forward(x, p, num_layers=1, hidden_size=H, nonlinearity=act,
                                  bidirectional=True, lengths=lengths)
        for b, n in enumerate(lengths):
            assert np.all(out[b, n:] == 0)
            o1, h1, _ = rnn_forward(x[b:b + 1, :n], p, num_layers=1, hidden_size=H,
                                    nonlinearity=act, bidirectional=True)
            np.testing.assert_allclose(out[b, :n], o1[0], rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(h_n[1, b], out[b, 0, H:], rtol=1e-14)


RNN_FD_CONFIGS = [
    # B, T, I, H, L, bidirectional, nonlinearity, lengths, h0, dropout
    (2, 4, 3, 3, 1, False, "tanh", None, False, 0.0),
    (2, 4, 3, 3, 1, False, "relu", None, True, 0.0),
    (3, 5, 2, 3, 2, True, "tanh", [5, 2, 3], True, 0.0),
    (3, 5, 2, 3, 2, True, "relu", [1, 5, 3], True, 0.0),
    (2, 4, 3, 2, 3, False, "tanh", [4, 2], True, 0.4),
    (3, 4, 2, 2, 2, True, "relu", [2, 4, 1], True, 0.5),
]


@pytest.mark.parametrize(
    "seed, cfg", list(enumerate(RNN_FD_CONFIGS)),
    ids=[f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}_{c[6]}"
         f"{'_len' if c[7] else ''}{'_h0' if c[8] else ''}{'_drop' if c[9] else ''}"
         for c in RNN_FD_CONFIGS])
def test_rnn_oracle_finite_differences(seed, cfg):
    B, T, I, H, L, bidir, act, lengths, with_h0, p_drop = cfg
    D = 2 if bidir else 1
    rng = np.random.default_rng(500 + seed)
    params = {k: v * 2.0 for k, v in rnn_init_params(rng, I, H, L, bidir).items()}
    x = rng.standard_normal((B, T, I))
    h0 = 0.5 * rng.standard_normal((L * D, B, H)) if with_h0 else np.zeros((L * D, B, H))
    masks = make_masks(rng, L, (B, T, D * H), p_drop) if p_drop else None
    R1 = rng.standard_normal((B, T, D * H))
    R2 = rng.standard_normal((L * D, B, H))
    kw = dict(num_layers=L, hidden_size=H, nonlinearity=act, bidirectional=bidir,
              lengths=lengths, dropout_masks=masks)

    def loss():
        out, h_n, _ = rnn_forward(x, params, h0=h0, **kw)
        return float(np.sum(out * R1) + np.sum(h_n * R2))

    out, h_n, cache = rnn_forward(x, params, h0=h0, **kw)
    if act == "relu":      # central differences are exact only away from relu's kink
        a = np.concatenate([st["a"].ravel() for lay in cache["layers"] for steps in lay["dirs"]
                            for st in steps])
        assert np.min(np.abs(a)) > 1e-3
    dx, dh0, grads = rnn_backward(cache, R1, R2)

    def check(analytic, arr, what):
        num = numerical_grad(loss, arr)
        np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=2e-8, err_msg=what)

    check(dx, x, "dx")
    check(dh0, h0, "dh0")
    for name in params:
        check(grads[name], params[name], name)
    if lengths is not None:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]
        assert np.all(dx[pad] == 0)
