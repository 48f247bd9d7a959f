"""numgru.RNN (the vanilla tanh / relu cell) against the NumPy oracle (tests/reference.py).

float64 agrees to 1e-10 relative, float32 to 1e-5 relative (plus an absolute floor scaled to
each array's largest entry, for values near zero).
"""

import pickle
import warnings

import numpy as np
import pytest

import numgru
from helpers import random_lengths
from reference import param_names, rnn_backward, rnn_forward, rnn_param_shapes


def assert_close(actual, expected, dtype, err_msg=""):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    if np.dtype(dtype) == np.float64:
        kw = dict(rtol=1e-10, atol=1e-12 * scale)
    else:
        kw = dict(rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, err_msg=err_msg,
                               **kw)


def run_both(rnn, x, *, h0=None, lengths=None, d_out=None, d_h_n=None, training=True):
    """Engine forward (+ backward when d_out is given) and the oracle on the engine's own
    (dtype-rounded) parameters, inputs and dropout masks. Returns (engine, oracle) lists."""
    dtype = rnn.dtype
    out, h_n = rnn.forward(x, h0=h0, lengths=lengths, training=training)
    masks = [np.array(m) for m in rnn.dropout_masks_] if training else []
    ref_out, ref_h_n, cache = rnn_forward(
        np.asarray(x).astype(dtype), rnn.state_dict(), num_layers=rnn.num_layers,
        hidden_size=rnn.hidden_size, nonlinearity=rnn.nonlinearity,
        bidirectional=rnn.bidirectional,
        h0=None if h0 is None else np.asarray(h0).astype(dtype), lengths=lengths,
        dropout_masks=masks or None)
    eng, ref = [out, h_n], [ref_out, ref_h_n]
    if d_out is not None:
        d_out = np.asarray(d_out).astype(dtype)
        d_h_n = None if d_h_n is None else np.asarray(d_h_n).astype(dtype)
        eng += list(rnn.backward(d_out, d_h_n))
        ref += list(rnn_backward(cache, d_out, d_h_n))
    return eng, ref


def check_all(eng, ref, dtype, label=""):
    for name, a, b in zip(["out", "h_n", "dx", "dh0"], eng, ref):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.dtype == dtype, (name, a.dtype)
        assert_close(a, b, dtype, err_msg=f"{label} {name}")
    if len(eng) > 4:
        assert list(eng[4]) == list(ref[4])
        for name, g in eng[4].items():
            assert g.dtype == dtype, (name, g.dtype)
            assert_close(g, ref[4][name], dtype, err_msg=f"{label} grad {name}")


def padded(lengths, B, T):
    if lengths is None:
        return np.zeros((B, T), dtype=bool)
    return np.arange(T)[None, :] >= np.asarray(lengths)[:, None]


# ----------------------------------------------------------------------------------------------
# a grid of small configurations
# ----------------------------------------------------------------------------------------------
# B, T, I, H, L, bidirectional, nonlinearity, lengths kind, h0, d_h_n, dropout
CONFIGS = [
    (1, 1, 1, 1, 1, False, "tanh", None, False, False, 0.0),
    (3, 5, 4, 5, 1, False, "tanh", None, False, True, 0.0),
    (3, 5, 4, 5, 1, False, "relu", None, True, True, 0.0),
    (2, 6, 3, 4, 1, True, "tanh", "mixed", True, True, 0.0),
    (2, 6, 3, 4, 1, True, "relu", "mixed", False, False, 0.0),
    (4, 7, 2, 3, 2, False, "tanh", "equal", True, True, 0.0),
    (4, 7, 2, 3, 2, False, "relu", "full", True, False, 0.0),
    (5, 6, 3, 4, 2, True, "tanh", "mixed", True, True, 0.0),
    (5, 6, 3, 4, 2, True, "relu", "mixed", True, True, 0.0),
    (3, 4, 5, 3, 3, True, "tanh", None, True, True, 0.0),
    (3, 4, 5, 3, 3, False, "relu", "mixed", False, True, 0.0),
    (4, 5, 3, 4, 2, True, "tanh", "mixed", True, True, 0.3),
    (4, 5, 3, 4, 3, False, "relu", "equal", False, True, 0.5),
    (9, 5, 3, 6, 2, True, "relu", "mixed", True, True, 0.0),     # 9 rows: the packed product
    (11, 4, 2, 5, 2, True, "tanh", "mixed", True, True, 0.2),
    (2, 9, 1, 1, 2, True, "relu", "mixed", True, True, 0.0),
]


def _ids(configs):
    return [f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}_{c[6]}"
            f"_{c[7] or 'nolen'}{'_h0' if c[8] else ''}{'_dhn' if c[9] else ''}"
            f"{f'_p{c[10]}' if c[10] else ''}" for c in configs]


def _run_config(seed, cfg, dtype):
    B, T, I, H, L, bidir, act, len_kind, with_h0, with_dhn, p = cfg
    D = 2 if bidir else 1
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(2000 + seed)
    rnn = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=bidir, dropout=p,
                     dtype=dtype.name, random_state=seed)
    # scale the parameters up a little so that tanh leaves its linear regime
    rnn.load_state_dict({k: 1.5 * v for k, v in rnn.state_dict().items()})
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = random_lengths(rng, B, T, len_kind)
    h0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(dtype) if with_h0 else None
    d_out = rng.standard_normal((B, T, D * H)).astype(dtype)
    d_h_n = rng.standard_normal((L * D, B, H)).astype(dtype) if with_dhn else None
    x_copy = x.copy()

    eng, ref = run_both(rnn, x, h0=h0, lengths=lengths, d_out=d_out, d_h_n=d_h_n)
    check_all(eng, ref, dtype)
    out, h_n, dx, dh0, grads = eng
    assert out.shape == (B, T, D * H) and h_n.shape == (L * D, B, H)
    assert dx.shape == (B, T, I) and dh0.shape == (L * D, B, H)
    assert list(grads) == param_names(L, bidir)
    for name, shape in rnn_param_shapes(I, H, L, bidir).items():
        assert grads[name].shape == shape, name
    np.testing.assert_array_equal(x, x_copy)          # inputs are not modified
    pad = padded(lengths, B, T)
    assert np.all(out[pad] == 0), "outputs past a sequence's end must be exactly 0"
    assert np.all(dx[pad] == 0), "dx past a sequence's end must be exactly 0"
    if act == "relu":
        assert np.all(out >= 0) and np.all(h_n >= 0)
    masks = rnn.dropout_masks_
    assert len(masks) == (L - 1 if p > 0 and L > 1 else 0)

    # inference forward: no dropout, same as the oracle without masks
    eng_i, ref_i = run_both(rnn, x, h0=h0, lengths=lengths, training=False)
    check_all(eng_i, ref_i, dtype, "inference")
    if p == 0:
        np.testing.assert_array_equal(eng_i[0], out)

    # gradients arriving at padded positions of d_out are ignored
    if pad.any():
        results = []
        for fill in (1e3, 0.0):
            rnn.rng = np.random.default_rng(5)
            rnn.forward(x, h0=h0, lengths=lengths, training=True)
            d = d_out.copy()
            d[pad] = fill
            results.append(rnn.backward(d, d_h_n))
        (dx2, dh02, g2), (dx3, dh03, g3) = results
        assert_close(dx2, dx3, dtype)
        assert_close(dh02, dh03, dtype)
        for name in g2:
            assert_close(g2[name], g3[name], dtype, err_msg=name)


@pytest.mark.parametrize("seed, cfg", list(enumerate(CONFIGS)), ids=_ids(CONFIGS))
def test_matches_reference_float64(seed, cfg):
    _run_config(seed, cfg, "float64")


CONFIGS_F32 = [CONFIGS[i] for i in (1, 2, 7, 8, 12, 13)]


@pytest.mark.parametrize("seed, cfg", list(enumerate(CONFIGS_F32)), ids=_ids(CONFIGS_F32))
def test_matches_reference_float32(seed, cfg):
    _run_config(seed, cfg, "float32")


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_large_shapes(act):
    """Several threads' chunks (when the machine has them), packed products with remainders."""
    B, T, I, H, L = 37, 23, 19, 70, 2
    rng = np.random.default_rng(42)
    rnn = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=True, dropout=0.2,
                     dtype="float64", random_state=3)
    x = rng.standard_normal((B, T, I))
    lengths = rng.integers(1, T + 1, size=B)
    lengths[:3] = [T, 1, T - 1]
    h0 = 0.5 * rng.standard_normal((2 * L, B, H))
    eng, ref = run_both(rnn, x, h0=h0, lengths=lengths,
                        d_out=rng.standard_normal((B, T, 2 * H)),
                        d_h_n=rng.standard_normal((2 * L, B, H)))
    check_all(eng, ref, np.dtype("float64"), "large")


# ----------------------------------------------------------------------------------------------
# the public object
# ----------------------------------------------------------------------------------------------
def test_attributes_and_repr():
    rnn = numgru.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True, dropout=0.1,
                     dtype="float64", random_state=0)
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers) == (3, 4, 2)
    assert rnn.bidirectional is True and rnn.num_directions == 2
    assert rnn.dropout == 0.1 and rnn.nonlinearity == "relu"
    assert rnn.dtype == np.dtype("float64") and rnn.device == "cpu"
    assert isinstance(rnn.rng, np.random.Generator) and rnn.dropout_masks_ == []
    assert repr(rnn) == ("RNN(3, 4, num_layers=2, bidirectional=True, dropout=0.1, "
                         "nonlinearity='relu', dtype='float64')")
    r32 = numgru.RNN(3, 4)
    assert r32.nonlinearity == "tanh" and r32.dtype == np.float32 and r32.num_layers == 1
    assert repr(r32) == "RNN(3, 4, dtype='float32')"
    x = np.ones((2, 3, 3), dtype=np.float32)
    np.testing.assert_array_equal(r32(x)[0], r32.forward(x)[0])


def test_constructor_errors():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        numgru.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        numgru.RNN(2, 0)
    with pytest.raises(ValueError, match="dropout must be"):
        numgru.RNN(2, 3, dropout=1.0)
    with pytest.raises(TypeError, match="dtype must be"):
        numgru.RNN(2, 3, dtype="float16")
    with pytest.raises(ValueError, match="device must be"):
        numgru.RNN(2, 3, device="tpu")


def test_input_errors_name_the_rnn():
    rnn = numgru.RNN(2, 3, dtype="float64", random_state=0)
    with pytest.raises(ValueError, match="this RNN has input_size=2"):
        rnn.forward(np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="lengths must lie in"):
        rnn.forward(np.zeros((2, 4, 2)), lengths=[0, 4])
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn.forward(np.zeros((2, 4, 2)), h0=np.zeros((1, 2, 4)))
    with pytest.raises(RuntimeError, match="needs a preceding forward"):
        numgru.RNN(2, 3).backward(np.zeros((1, 4, 3)))
    rnn.forward(np.zeros((2, 4, 2)), training=True)
    with pytest.raises(ValueError, match="d_out must have the shape of out"):
        rnn.backward(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="state_dict does not match this RNN"):
        rnn.load_state_dict({"weight_ih_l0": np.zeros((3, 2))})
    sd = rnn.state_dict()
    sd["weight_hh_l0"] = np.zeros((9, 3))              # a GRU's shape
    with pytest.raises(ValueError, match=r"has shape \(9, 3\), expected \(3, 3\)"):
        rnn.load_state_dict(sd)


def test_sequences_are_independent_of_padding():
    rng = np.random.default_rng(9)
    rnn = numgru.RNN(3, 4, 2, bidirectional=True, dtype="float64", random_state=9)
    B, T = 4, 6
    x = rng.standard_normal((B, T, 3))
    lengths = np.array([6, 1, 3, 5])
    h0 = rng.standard_normal((4, B, 4))
    out, h_n = rnn.forward(x, h0=h0, lengths=lengths)
    for b, n in enumerate(lengths):
        o1, h1 = rnn.forward(x[b:b + 1, :n], h0=h0[:, b:b + 1])
        np.testing.assert_allclose(out[b, :n], o1[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_state_dict_layout_and_round_trip(act):
    I, H, L = 3, 4, 2
    a = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=True, dtype="float64",
                   random_state=1)
    b = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=True, dtype="float32",
                   random_state=2)
    sd = a.state_dict()
    assert list(sd) == param_names(L, True)
    assert {k: v.shape for k, v in sd.items()} == rnn_param_shapes(I, H, L, True)
    sd["weight_ih_l0"][...] = 123.0                     # copies
    assert not np.any(a.state_dict()["weight_ih_l0"] == 123.0)
    b.load_state_dict({k: v.tolist() for k, v in a.state_dict().items()})
    for k, v in b.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, a.state_dict()[k].astype(np.float32))


def test_initialisation_is_pytorchs():
    """uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, drawn per layer and direction in
    state_dict order from the random_state's Generator."""
    I, H, L = 5, 7, 2
    rnn = numgru.RNN(I, H, L, bidirectional=True, dtype="float64", random_state=0)
    bound = 1.0 / np.sqrt(H)
    rng = np.random.default_rng(0)
    for name, value in rnn.state_dict().items():
        np.testing.assert_array_equal(value, rng.uniform(-bound, bound, value.shape), name)
    allv = np.concatenate([v.ravel() for v in rnn.state_dict().values()])
    assert np.all(np.abs(allv) <= bound) and allv.max() > 0.9 * bound
    assert allv.min() < -0.9 * bound


def test_dropout_masks_drawn_as_documented():
    B, T, H, L, p = 3, 4, 5, 3, 0.35
    rnn = numgru.RNN(2, H, L, bidirectional=True, dropout=p, dtype="float64", random_state=0)
    x = np.random.default_rng(1).standard_normal((B, T, 2))
    rnn.rng = np.random.default_rng(77)
    rnn.forward(x, training=True)
    expect_rng = np.random.default_rng(77)
    expected = [(expect_rng.random((B, T, 2 * H)) >= p) / (1 - p) for _ in range(L - 1)]
    assert len(rnn.dropout_masks_) == L - 1
    for m, e in zip(rnn.dropout_masks_, expected):
        np.testing.assert_array_equal(m, e)


def test_pickle_round_trip():
    rnn = numgru.RNN(2, 3, 2, nonlinearity="relu", dtype="float64", random_state=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    again = pickle.loads(pickle.dumps(rnn))
    assert again.nonlinearity == "relu"
    np.testing.assert_array_equal(again.forward(x)[0], rnn.forward(x)[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_stable_for_huge_preactivations(dtype, act):
    rng = np.random.default_rng(6)
    B, T, I, H, L = 3, 5, 6, 4, 2
    rnn = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=True, dtype=dtype,
                     random_state=6)
    scale = 1e4 if act == "tanh" else 10.0          # relu grows without bound: keep it finite
    rnn.load_state_dict({k: v * scale for k, v in rnn.state_dict().items()})
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = [5, 2, 4]
    rnn.forward(x, training=True)                   # warm up (compiler warnings, if any)
    rnn.backward(np.zeros((B, T, 2 * H), dtype=dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out, h_n = rnn.forward(x, lengths=lengths, training=True)
            dx, dh0, grads = rnn.backward(rng.standard_normal(out.shape).astype(dtype))
    for a in [out, h_n, dx, dh0, *grads.values()]:
        assert np.all(np.isfinite(a))
    ref_out, _, _ = rnn_forward(x, rnn.state_dict(), num_layers=L, hidden_size=H,
                                nonlinearity=act, bidirectional=True, lengths=lengths)
    assert_close(out, ref_out, dtype)
