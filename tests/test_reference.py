"""The NumPy oracle (tests/reference.py) against PyTorch fixtures and finite differences, for every
cell: the GRU (both ``reset_after`` forms; torch has only ``reset_after=True``) and the vanilla RNN
(tanh, relu). The Keras fixtures of the Cho form are in test_keras_parity.py."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from helpers import fixture_ids, fixture_paths, load_fixture, make_masks
from reference import backward, forward, init_params, param_names, param_shapes, sigmoid

# (cell, reset_after): the GRU's reset_after both ways, then the RNN's nonlinearities; as in
# tests/cells.py, which imports numgru (the oracle's own tests do not need it)
CELLS = [("gru", True), ("gru", False), ("rnn_tanh", True), ("rnn_relu", True)]
CELL_IDS = ["gru", "gru_cho", "rnn_tanh", "rnn_relu"]


# ----------------------------------------------------------------------------------------------
# PyTorch fixtures
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_fixtures_present(kind):
    ids = fixture_ids(kind)
    assert len(ids) >= (5 if kind == "gru" else 4), ids
    cells = {load_fixture(p)["cell"] for p in fixture_paths(kind)}
    assert cells == ({"gru"} if kind == "gru" else {"rnn_tanh", "rnn_relu"}), cells
    if kind == "gru":
        assert any(i.endswith("f32") for i in ids) and any(i.endswith("f64") for i in ids)
    # the shapes only the live torch tests covered before: three layers, and H > 16
    fixtures = [load_fixture(p) for p in fixture_paths(kind)]
    assert any(fx["num_layers"] == 3 for fx in fixtures)
    assert any(fx["hidden_size"] > 16 for fx in fixtures)


TORCH_FIXTURES = fixture_paths("gru") + fixture_paths("rnn")
TORCH_FIXTURE_IDS = fixture_ids("gru") + ["rnn_" + i for i in fixture_ids("rnn")]


@pytest.mark.parametrize("path", TORCH_FIXTURES, ids=TORCH_FIXTURE_IDS)
def test_oracle_matches_torch_fixture(path):
    fx = load_fixture(path)
    rtol = 1e-12 if fx["dtype"] == "float64" else 1e-5
    out, h_n, cache = forward(
        fx["x"], fx["params"], cell=fx["cell"], num_layers=fx["num_layers"],
        hidden_size=fx["hidden_size"], bidirectional=fx["bidirectional"], reset_after=True,
        h0=fx["h0"] if fx["has_h0"] else None,
        lengths=fx["lengths"] if fx["has_lengths"] else None)
    dx, dh0, grads = backward(cache, fx["d_out"], fx["d_h_n"])

    def check(a, b, what):
        b = np.asarray(b, dtype=np.float64)
        atol = rtol * max(1.0, float(np.max(np.abs(b)))) * (1e-2 if rtol == 1e-12 else 1e-1)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)

    for name, value in (("out", out), ("h_n", h_n), ("dx", dx), ("dh0", dh0)):
        check(value, fx[name], name)
    assert list(grads) == list(fx["grads"])
    for name in grads:
        check(grads[name], fx["grads"][name], name)


# ----------------------------------------------------------------------------------------------
# basic properties of the oracle
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_param_layout(cell, reset_after):
    G = 3 if cell == "gru" else 1                        # gate blocks
    sh = param_shapes(5, 4, 2, bidirectional=True, reset_after=reset_after, cell=cell)
    assert list(sh) == param_names(2, True)
    assert sh["weight_ih_l0"] == (4 * G, 5)
    assert sh["weight_ih_l1_reverse"] == (4 * G, 8)
    assert sh["weight_hh_l1"] == (4 * G, 4)
    assert sh["bias_ih_l1"] == (4 * G,)
    # the Cho form has no recurrent bias on n
    assert sh["bias_hh_l0_reverse"] == ((8,) if cell == "gru" and not reset_after else (4 * G,))
    p = init_params(np.random.default_rng(0), 5, 4, 2, True, reset_after, dtype=np.float32,
                    cell=cell)
    assert {k: v.shape for k, v in p.items()} == sh
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
            out, h_n, cache = forward(x, p, num_layers=2, hidden_size=4, bidirectional=True)
            dx, dh0, grads = backward(cache, rng.standard_normal(out.shape))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    assert all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_padding_semantics(cell, reset_after):
    rng = np.random.default_rng(1)
    B, T, I, H = 3, 6, 2, 3
    p = init_params(rng, I, H, 1, True, reset_after, cell=cell)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 2, 4])
    kw = dict(cell=cell, num_layers=1, hidden_size=H, bidirectional=True, reset_after=reset_after)
    out, h_n, _ = forward(x, p, lengths=lengths, **kw)
    for b, n in enumerate(lengths):
        assert np.all(out[b, n:] == 0)
        # each sequence run alone, truncated to its own length, gives the same result
        o1, h1, _ = forward(x[b:b + 1, :n], p, **kw)
        np.testing.assert_allclose(out[b, :n], o1[0], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-14, atol=1e-15)
        # the reverse direction starts at the sequence's own end
        np.testing.assert_allclose(h_n[1, b], out[b, 0, H:], rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------------------------
FD_SHAPES = [
    # B, T, I, H, L, bidirectional, lengths, h0, dropout
    (2, 4, 3, 3, 1, False, None, False, 0.0),
    (2, 4, 3, 3, 1, False, None, True, 0.0),
    (3, 5, 2, 3, 2, True, [5, 2, 3], True, 0.0),
    (3, 5, 2, 3, 2, True, [1, 5, 3], True, 0.0),
    (2, 4, 3, 2, 3, False, [4, 2], True, 0.4),
    (2, 4, 2, 2, 3, True, None, False, 0.3),
    (3, 4, 2, 2, 2, True, [2, 4, 1], True, 0.5),
]
FD_CASES = [(c, s) for c in range(len(CELLS)) for s in range(len(FD_SHAPES))]


def _fd_id(c, s):
    B, T, I, H, L, bidir, lengths, with_h0, p = FD_SHAPES[s]
    return (f"{CELL_IDS[c]}-B{B}T{T}I{I}H{H}L{L}{'bi' if bidir else 'uni'}"
            f"{'_len' + ''.join(map(str, lengths)) if lengths else ''}"
            f"{'_h0' if with_h0 else ''}{'_drop' if p else ''}")


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


def _pre_activations(cache):
    return np.concatenate([st["a"].ravel() for lay in cache["layers"] for steps in lay["dirs"]
                           for st in steps])


@pytest.mark.parametrize("c, s", FD_CASES, ids=[_fd_id(c, s) for c, s in FD_CASES])
def test_oracle_finite_differences(c, s):
    cell, reset_after = CELLS[c]
    B, T, I, H, L, bidir, lengths, with_h0, p_drop = FD_SHAPES[s]
    D = 2 if bidir else 1
    kw = dict(cell=cell, num_layers=L, hidden_size=H, bidirectional=bidir,
              reset_after=reset_after, lengths=lengths)
    # central differences are exact only away from relu's kink: for rnn_relu, the first draw
    # whose every pre-activation lies farther than 1e-3 from 0
    for attempt in range(10):
        rng = np.random.default_rng(100 + 10 * s + c + 1000 * attempt)
        params = init_params(rng, I, H, L, bidir, reset_after, cell=cell)
        params = {k: v * 2.0 for k, v in params.items()}        # leave the linear regime
        x = rng.standard_normal((B, T, I))
        h0 = 0.5 * rng.standard_normal((L * D, B, H)) if with_h0 else np.zeros((L * D, B, H))
        kw["dropout_masks"] = make_masks(rng, L, (B, T, D * H), p_drop) if p_drop else None
        R1 = rng.standard_normal((B, T, D * H))
        R2 = rng.standard_normal((L * D, B, H))
        out, h_n, cache = forward(x, params, h0=h0, **kw)
        if cell != "rnn_relu" or np.min(np.abs(_pre_activations(cache))) > 1e-3:
            break
    else:
        pytest.fail("no draw away from relu's kink")

    def loss():
        out, h_n, _ = forward(x, params, h0=h0, **kw)
        return float(np.sum(out * R1) + np.sum(h_n * R2))

    dx, dh0, grads = backward(cache, R1, R2)

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
# both GRU conventions against an independent implementation of the Keras equations
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
    out, h_n, _ = forward(x, keras_to_torch_params(kernel, rec, bias, reset_after),
                          num_layers=1, hidden_size=H, reset_after=reset_after, h0=h0[None])
    np.testing.assert_allclose(out, seq, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n[0], h, rtol=1e-12, atol=1e-14)


def test_oracle_never_imports_numgru():
    """The oracle is an outside view: loading it loads no numgru module."""
    code = ("import sys, reference; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'numgru'))")
    here = os.path.dirname(os.path.abspath(__file__))
    res = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout
