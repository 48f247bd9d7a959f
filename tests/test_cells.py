"""numgru.GRU (``reset_after`` either way) and numgru.RNN (tanh, relu) against the NumPy oracle
(tests/reference.py), per docs/engine.md: one test per behaviour, parametrised by cell.

float64 agrees to 1e-10 relative, float32 to 1e-5 relative (plus an absolute floor scaled to each
array's largest entry, for values near zero).
"""

import pickle
import warnings

import numpy as np
import pytest

import numgru
from cells import CELL_IDS, CELL_PARAMS, CELLS, make_net
from helpers import random_lengths
from reference import backward as oracle_backward
from reference import forward as oracle_forward
from reference import param_names, param_shapes

DTYPES = ["float32", "float64"]


def assert_close(actual, expected, dtype, err_msg=""):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    if np.dtype(dtype) == np.float64:
        kw = dict(rtol=1e-10, atol=1e-12 * scale)
    else:
        kw = dict(rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, err_msg=err_msg,
                               **kw)


def assert_grads_close(actual, expected, dtype, label=""):
    assert list(actual) == list(expected), (list(actual), list(expected))
    for name, g in actual.items():
        assert g.dtype == dtype, (name, g.dtype)
        assert_close(g, expected[name], dtype, err_msg=f"{label} grad {name}")


def run_both(net, cell, x, *, h0=None, lengths=None, d_out=None, d_h_n=None, training=True):
    """Engine forward (+ backward when d_out is given) and the oracle on the engine's own
    (dtype-rounded) parameters, inputs and dropout masks. Returns (engine, oracle) lists."""
    dtype = net.dtype
    out, h_n = net.forward(x, h0=h0, lengths=lengths, training=training)
    masks = [np.array(m) for m in net.dropout_masks_] if training else []
    ref_out, ref_h_n, cache = oracle_forward(
        np.asarray(x).astype(dtype), net.state_dict(), cell=cell, num_layers=net.num_layers,
        hidden_size=net.hidden_size, bidirectional=net.bidirectional,
        reset_after=getattr(net, "reset_after", True),
        h0=None if h0 is None else np.asarray(h0).astype(dtype), lengths=lengths,
        dropout_masks=masks or None)
    eng, ref = [out, h_n], [ref_out, ref_h_n]
    if d_out is not None:
        d_out = np.asarray(d_out).astype(dtype)
        d_h_n = None if d_h_n is None else np.asarray(d_h_n).astype(dtype)
        eng += list(net.backward(d_out, d_h_n))
        ref += list(oracle_backward(cache, d_out, d_h_n))
    return eng, ref


def check_all(eng, ref, dtype, label=""):
    for name, a, b in zip(["out", "h_n", "dx", "dh0"], eng, ref):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.dtype == dtype, (name, a.dtype)
        assert_close(a, b, dtype, err_msg=f"{label} {name}")
    if len(eng) > 4:
        assert_grads_close(eng[4], ref[4], dtype, label)


def padded(lengths, B, T):
    if lengths is None:
        return np.zeros((B, T), dtype=bool)
    return np.arange(T)[None, :] >= np.asarray(lengths)[:, None]


# ----------------------------------------------------------------------------------------------
# a grid of small configurations, every one for every cell
# ----------------------------------------------------------------------------------------------
# B, T, I, H, L, bidirectional, lengths kind, h0, d_h_n, dropout
SHAPES = [
    (1, 1, 1, 1, 1, False, None, False, False, 0.0),
    (3, 5, 4, 5, 1, False, None, False, True, 0.0),
    (3, 5, 4, 5, 1, False, None, True, True, 0.0),
    (2, 6, 3, 4, 1, True, "mixed", True, True, 0.0),
    (2, 6, 3, 4, 1, True, "mixed", False, False, 0.0),
    (4, 7, 2, 3, 2, False, "equal", True, True, 0.0),
    (4, 7, 2, 3, 2, False, "full", True, False, 0.0),
    (5, 6, 3, 4, 2, True, "mixed", True, True, 0.0),
    (3, 4, 5, 3, 3, False, "mixed", False, True, 0.0),
    (3, 4, 5, 3, 3, True, None, True, True, 0.0),
    (4, 5, 3, 4, 2, True, "mixed", True, True, 0.3),
    (4, 5, 3, 4, 3, False, "equal", False, True, 0.5),
    (3, 6, 2, 3, 3, True, None, True, False, 0.25),
    (6, 3, 7, 9, 2, True, "mixed", True, True, 0.2),
    (9, 5, 3, 6, 2, True, "mixed", True, True, 0.0),       # 9 rows: the packed product
    (11, 4, 2, 5, 2, True, "mixed", True, True, 0.2),
    (2, 9, 1, 1, 2, True, "mixed", True, True, 0.0),
]
SHAPES_F32 = [1, 2, 7, 11, 13, 14]


def _cases(shapes):
    cases = [(c, s) for c in range(len(CELLS)) for s in shapes]
    ids = []
    for c, s in cases:
        B, T, I, H, L, bidir, len_kind, with_h0, with_dhn, p = SHAPES[s]
        ids.append(f"{CELL_IDS[c]}-B{B}T{T}I{I}H{H}L{L}{'bi' if bidir else 'uni'}"
                   f"_{len_kind or 'nolen'}{'_h0' if with_h0 else ''}{'_dhn' if with_dhn else ''}"
                   f"{f'_p{p}' if p else ''}")
    return dict(argnames="c, s", argvalues=cases, ids=ids)


def _run_config(c, s, dtype):
    cell, reset_after = CELLS[c]
    B, T, I, H, L, bidir, len_kind, with_h0, with_dhn, p = SHAPES[s]
    D = 2 if bidir else 1
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(1000 + 10 * s + c)
    net = make_net(cell, reset_after, I, H, L, bidirectional=bidir, dropout=p, dtype=dtype.name,
                   random_state=10 * s + c)
    # scale the parameters up a little so that the gates and tanh leave their linear regime
    net.load_state_dict({k: 1.5 * v for k, v in net.state_dict().items()})
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = random_lengths(rng, B, T, len_kind)
    h0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(dtype) if with_h0 else None
    d_out = rng.standard_normal((B, T, D * H)).astype(dtype)
    d_h_n = rng.standard_normal((L * D, B, H)).astype(dtype) if with_dhn else None
    x_copy = x.copy()

    eng, ref = run_both(net, cell, x, h0=h0, lengths=lengths, d_out=d_out, d_h_n=d_h_n)
    check_all(eng, ref, dtype)
    out, h_n, dx, dh0, grads = eng
    assert out.shape == (B, T, D * H) and h_n.shape == (L * D, B, H)
    assert dx.shape == (B, T, I) and dh0.shape == (L * D, B, H)
    assert list(grads) == param_names(L, bidir)
    for name, shape in param_shapes(I, H, L, bidir, reset_after, cell).items():
        assert grads[name].shape == shape, name
    np.testing.assert_array_equal(x, x_copy)          # inputs are not modified

    pad = padded(lengths, B, T)
    assert np.all(out[pad] == 0), "outputs past a sequence's end must be exactly 0"
    assert np.all(dx[pad] == 0), "dx past a sequence's end must be exactly 0"
    if cell == "rnn_relu":
        assert np.all(out >= 0) and np.all(h_n >= 0)

    masks = net.dropout_masks_
    if p > 0 and L > 1:
        assert len(masks) == L - 1
        for m in masks:
            m = np.asarray(m)
            assert m.shape == (B, T, D * H)
            assert m.dtype == dtype
            kept = m[m != 0]
            np.testing.assert_allclose(kept, 1.0 / (1.0 - p), rtol=1e-6)
    else:
        assert len(masks) == 0

    # inference forward: no dropout, same as the oracle without masks
    eng_i, ref_i = run_both(net, cell, x, h0=h0, lengths=lengths, training=False)
    check_all(eng_i, ref_i, dtype, "inference")
    if p == 0:
        np.testing.assert_array_equal(eng_i[0], out)

    # gradients arriving at padded positions of d_out are ignored
    if pad.any():
        results = []
        for fill in (1e3, 0.0):
            net.rng = np.random.default_rng(5)
            net.forward(x, h0=h0, lengths=lengths, training=True)
            d = d_out.copy()
            d[pad] = fill
            results.append(net.backward(d, d_h_n))
        (dx2, dh02, g2), (dx3, dh03, g3) = results
        assert_close(dx2, dx3, dtype)
        assert_close(dh02, dh03, dtype)
        assert_grads_close(g2, g3, dtype)


@pytest.mark.parametrize(**_cases(range(len(SHAPES))))
def test_matches_reference_float64(c, s):
    _run_config(c, s, "float64")


@pytest.mark.parametrize(**_cases(SHAPES_F32))
def test_matches_reference_float32(c, s):
    _run_config(c, s, "float32")


# ----------------------------------------------------------------------------------------------
# larger shapes (several threads' chunks when the machine has them, packed products with
# remainders)
# ----------------------------------------------------------------------------------------------
LARGE = ([(c, "float64") for c in range(len(CELLS))]
         + [(c, "float32") for c, (cell, ra) in enumerate(CELLS) if cell != "gru" or ra])


@pytest.mark.parametrize("c, dtype", LARGE, ids=[f"{CELL_IDS[c]}-{d}" for c, d in LARGE])
def test_large_shapes(c, dtype):
    cell, reset_after = CELLS[c]
    B, T, I, H, L = 37, 23, 19, 70, 2
    rng = np.random.default_rng(42)
    net = make_net(cell, reset_after, I, H, L, bidirectional=True, dropout=0.2, dtype=dtype,
                   random_state=3)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[:3] = [T, 1, T - 1]
    h0 = (0.5 * rng.standard_normal((2 * L, B, H))).astype(dtype)
    d_out = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    d_h_n = rng.standard_normal((2 * L, B, H)).astype(dtype)
    eng, ref = run_both(net, cell, x, h0=h0, lengths=lengths, d_out=d_out, d_h_n=d_h_n)
    if dtype == "float64":
        check_all(eng, ref, np.dtype(dtype), "large")
    else:
        # float32 sums over B*T ~ 850 terms: compare relative to each array's largest entry
        for name, a, b in zip(["out", "h_n", "dx", "dh0"], eng, ref):
            assert a.dtype == np.float32, name
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * np.abs(b).max(),
                                       err_msg=name)
        for name in ref[4]:
            b = ref[4][name]
            np.testing.assert_allclose(eng[4][name], b, rtol=1e-4, atol=2e-5 * np.abs(b).max(),
                                       err_msg=name)
    pad = padded(lengths, B, T)
    assert np.all(eng[0][pad] == 0) and np.all(eng[2][pad] == 0)


@pytest.mark.parametrize(**CELL_PARAMS)
def test_large_unidirectional_no_lengths(cell, reset_after):
    B, T, I, H = 37, 23, 19, 70
    rng = np.random.default_rng(4)
    net = make_net(cell, reset_after, I, H, 1, dtype="float64", random_state=4)
    x = rng.standard_normal((B, T, I))
    eng, ref = run_both(net, cell, x, d_out=rng.standard_normal((B, T, H)))
    check_all(eng, ref, np.dtype("float64"), "large uni")


# ----------------------------------------------------------------------------------------------
# dtypes, inputs, padding
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(**CELL_PARAMS)
def test_output_dtype_preserved(cell, reset_after, dtype):
    rng = np.random.default_rng(0)
    net = make_net(cell, reset_after, 3, 4, 2, bidirectional=True, dtype=dtype, random_state=0)
    other = np.float64 if dtype == "float32" else np.float32
    x = rng.standard_normal((2, 5, 3)).astype(other)            # converted, never upcast
    h0 = rng.standard_normal((4, 2, 4)).astype(other)
    out, h_n = net.forward(x, h0=h0, training=True)
    assert out.dtype == dtype and h_n.dtype == dtype
    dx, dh0, grads = net.backward(rng.standard_normal((2, 5, 8)).astype(other),
                                  rng.standard_normal((4, 2, 4)).astype(other))
    assert dx.dtype == dtype and dh0.dtype == dtype
    assert all(g.dtype == dtype for g in grads.values())
    assert all(v.dtype == dtype for v in net.state_dict().values())
    # integer input is numeric and is converted as well
    xi = rng.integers(-2, 3, size=(2, 5, 3))
    out_i, _ = net.forward(xi)
    out_f, _ = net.forward(xi.astype(dtype))
    assert out_i.dtype == dtype
    np.testing.assert_array_equal(out_i, out_f)


@pytest.mark.parametrize(**CELL_PARAMS)
def test_non_contiguous_inputs(cell, reset_after):
    rng = np.random.default_rng(8)
    net = make_net(cell, reset_after, 3, 4, 2, bidirectional=True, dtype="float64",
                   random_state=1)
    x_big = rng.standard_normal((5, 12, 7))
    x = x_big[::2, ::2, 1:4]                                   # strided view (3, 6, 3)
    h0 = np.asfortranarray(rng.standard_normal((4, 3, 4)))
    d_out = np.asfortranarray(rng.standard_normal((3, 6, 8)))
    lengths = [6, 2, 5]
    eng, ref = run_both(net, cell, x, h0=h0, lengths=lengths, d_out=d_out)
    check_all(eng, ref, np.dtype("float64"), "non-contiguous")
    out_c, h_c = net.forward(np.ascontiguousarray(x), h0=np.ascontiguousarray(h0),
                             lengths=np.array(lengths, dtype=np.int32))
    np.testing.assert_array_equal(out_c, eng[0])
    np.testing.assert_array_equal(h_c, eng[1])


@pytest.mark.parametrize(**CELL_PARAMS)
def test_h0_none_equals_zeros(cell, reset_after):
    rng = np.random.default_rng(2)
    net = make_net(cell, reset_after, 3, 4, 2, bidirectional=True, dtype="float64",
                   random_state=2)
    x = rng.standard_normal((3, 4, 3))
    d_out = rng.standard_normal((3, 4, 8))
    out1, h1 = net.forward(x, training=True)
    dx1, dh01, g1 = net.backward(d_out)
    out2, h2 = net.forward(x, h0=np.zeros((4, 3, 4)), training=True)
    dx2, dh02, g2 = net.backward(d_out)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(h1, h2)
    assert dh01.shape == (4, 3, 4)
    np.testing.assert_allclose(dh01, dh02, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(**CELL_PARAMS)
def test_lengths_as_list_and_all_full_equals_no_lengths(cell, reset_after):
    rng = np.random.default_rng(3)
    net = make_net(cell, reset_after, 2, 3, 1, bidirectional=True, dtype="float64",
                   random_state=3)
    x = rng.standard_normal((3, 5, 2))
    o1, h1 = net.forward(x)
    o2, h2 = net.forward(x, lengths=[5, 5, 5])
    np.testing.assert_allclose(o1, o2, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h1, h2, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(**CELL_PARAMS)
def test_sequences_are_independent_of_padding(cell, reset_after):
    """Each padded sequence gives what it gives when run alone, truncated to its own length."""
    rng = np.random.default_rng(9)
    net = make_net(cell, reset_after, 3, 4, 2, bidirectional=True, dtype="float64",
                   random_state=9)
    B, T = 4, 6
    x = rng.standard_normal((B, T, 3))
    lengths = np.array([6, 1, 3, 5])
    h0 = rng.standard_normal((4, B, 4))
    out, h_n = net.forward(x, h0=h0, lengths=lengths)
    for b, n in enumerate(lengths):
        o1, h1 = net.forward(x[b:b + 1, :n], h0=h0[:, b:b + 1])
        np.testing.assert_allclose(out[b, :n], o1[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# dropout masks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(**CELL_PARAMS)
def test_dropout_masks_drawn_as_documented(cell, reset_after, dtype):
    B, T, H, L, p = 3, 4, 5, 3, 0.35
    kw = dict(bidirectional=True, dtype=dtype, random_state=0)
    net = make_net(cell, reset_after, 2, H, L, dropout=p, **kw)
    x = np.random.default_rng(1).standard_normal((B, T, 2))
    net.rng = np.random.default_rng(77)
    net.forward(x, training=True)
    expect_rng = np.random.default_rng(77)
    expected = [(expect_rng.random((B, T, 2 * H)) >= p).astype(dtype) / (1 - p)
                for _ in range(L - 1)]
    assert len(net.dropout_masks_) == L - 1
    for m, e in zip(net.dropout_masks_, expected):
        if dtype == "float64":
            np.testing.assert_array_equal(m, e)
        else:
            np.testing.assert_allclose(np.asarray(m, dtype=np.float64), e, rtol=1e-7, atol=0)
    # no dropout when not training: the output is deterministic and dropout-free. (Whether an
    # inference forward clears ``dropout_masks_`` is left open: the contract calls them "masks of
    # the last training forward".)
    o1, _ = net.forward(x, training=False)
    net.rng = np.random.default_rng(78)
    o2, _ = net.forward(x, training=False)
    np.testing.assert_array_equal(o1, o2)
    no_drop = make_net(cell, reset_after, 2, H, L, dropout=0.0, **kw)
    np.testing.assert_array_equal(no_drop.forward(x)[0], o1)
    # no masks when p == 0
    no_drop.forward(x, training=True)
    assert len(no_drop.dropout_masks_) == 0


# ----------------------------------------------------------------------------------------------
# state_dict / initialisation / pickling
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(**CELL_PARAMS)
def test_state_dict_round_trip(cell, reset_after):
    I, H, L = 3, 4, 2
    a = make_net(cell, reset_after, I, H, L, bidirectional=True, dtype="float64", random_state=1)
    b = make_net(cell, reset_after, I, H, L, bidirectional=True, dtype="float64", random_state=2)
    sd = a.state_dict()
    assert list(sd) == param_names(L, True)
    assert {k: v.shape for k, v in sd.items()} == param_shapes(I, H, L, True, reset_after, cell)
    assert all(v.dtype == np.float64 for v in sd.values())
    # copies: mutating them does not touch the model
    sd["weight_ih_l0"][...] = 123.0
    assert not np.any(a.state_dict()["weight_ih_l0"] == 123.0)
    sd = a.state_dict()
    b.load_state_dict({k: v.tolist() for k, v in sd.items()})        # any array-likes
    for k in sd:
        np.testing.assert_array_equal(b.state_dict()[k], sd[k])
    # load_state_dict copies too
    sd["weight_hh_l1"][...] = 7.0
    assert not np.any(b.state_dict()["weight_hh_l1"] == 7.0)
    x = np.random.default_rng(0).standard_normal((2, 3, I))
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
    # and converts to the model's dtype
    c = make_net(cell, reset_after, I, H, L, bidirectional=True, dtype="float32", random_state=2)
    c.load_state_dict(a.state_dict())
    for k, v in c.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, a.state_dict()[k].astype(np.float32))


@pytest.mark.parametrize("H", [1, 4, 7, 70])
@pytest.mark.parametrize(**CELL_PARAMS)
def test_initialisation_is_pytorchs(cell, reset_after, H):
    """uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, drawn per layer and direction in
    state_dict order from the random_state's Generator."""
    I, L = 5, 2
    net = make_net(cell, reset_after, I, H, L, bidirectional=True, dtype="float64",
                   random_state=0)
    bound = 1.0 / np.sqrt(H)
    rng = np.random.default_rng(0)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, rng.uniform(-bound, bound, value.shape), name)
    allv = np.concatenate([v.ravel() for v in net.state_dict().values()])
    assert np.all(np.abs(allv) <= bound)
    assert np.unique(allv).size == allv.size


@pytest.mark.parametrize(**CELL_PARAMS)
def test_initialisation_reproducible(cell, reset_after):
    kw = dict(bidirectional=True, dtype="float32")
    a = make_net(cell, reset_after, 3, 4, 2, random_state=11, **kw).state_dict()
    b = make_net(cell, reset_after, 3, 4, 2, random_state=11, **kw).state_dict()
    c = make_net(cell, reset_after, 3, 4, 2, random_state=12, **kw).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # and the dropout masks drawn afterwards are reproducible as well
    x = np.ones((2, 3, 3), dtype=np.float32)
    n1 = make_net(cell, reset_after, 3, 4, 2, dropout=0.5, random_state=5, **kw)
    n2 = make_net(cell, reset_after, 3, 4, 2, dropout=0.5, random_state=5, **kw)
    o1, _ = n1.forward(x, training=True)
    o2, _ = n2.forward(x, training=True)
    np.testing.assert_array_equal(o1, o2)
    for m1, m2 in zip(n1.dropout_masks_, n2.dropout_masks_):
        np.testing.assert_array_equal(m1, m2)


@pytest.mark.parametrize(**CELL_PARAMS)
def test_pickle_round_trip(cell, reset_after):
    net = make_net(cell, reset_after, 2, 3, 2, dtype="float64", random_state=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    again = pickle.loads(pickle.dumps(net))
    assert type(again) is type(net)
    if cell == "gru":
        assert again.reset_after is reset_after
    else:
        assert again.nonlinearity == cell[len("rnn_"):]
    np.testing.assert_array_equal(again.forward(x)[0], net.forward(x)[0])


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(**CELL_PARAMS)
def test_input_errors_name_the_class(cell, reset_after):
    kind = "GRU" if cell == "gru" else "RNN"
    net = make_net(cell, reset_after, 2, 3, dtype="float64", random_state=0)
    with pytest.raises(ValueError, match=f"this {kind} has input_size=2"):
        net.forward(np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="lengths must lie in"):
        net.forward(np.zeros((2, 4, 2)), lengths=[0, 4])
    with pytest.raises(ValueError, match="h0 must have shape"):
        net.forward(np.zeros((2, 4, 2)), h0=np.zeros((1, 2, 4)))
    with pytest.raises(RuntimeError, match="needs a preceding forward"):
        make_net(cell, reset_after, 2, 3).backward(np.zeros((1, 4, 3)))
    net.forward(np.zeros((2, 4, 2)), training=True)
    with pytest.raises(ValueError, match="d_out must have the shape of out"):
        net.backward(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=f"state_dict does not match this {kind}"):
        net.load_state_dict({"weight_ih_l0": np.zeros((3, 2))})
    sd = net.state_dict()
    right = sd["weight_hh_l0"].shape
    wrong = (3, 3) if cell == "gru" else (9, 3)              # the other cell's shape
    sd["weight_hh_l0"] = np.zeros(wrong)
    with pytest.raises(ValueError,
                       match=rf"has shape \({wrong[0]}, 3\), expected \({right[0]}, 3\)"):
        net.load_state_dict(sd)


# ----------------------------------------------------------------------------------------------
# numerical stability
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(**CELL_PARAMS)
def test_stable_for_huge_preactivations(cell, reset_after, dtype):
    rng = np.random.default_rng(6)
    B, T, I, H, L = 3, 5, 6, 4, 2
    net = make_net(cell, reset_after, I, H, L, bidirectional=True, dtype=dtype, random_state=6)
    # weights ~ +-5e3 so that |pre-activations| reach ~1e4 and beyond; relu grows without
    # bound: there, keep it finite
    scale = 10.0 if cell == "rnn_relu" else 1e4
    net.load_state_dict({k: v * scale for k, v in net.state_dict().items()})
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = [5, 2, 4]
    h0 = rng.uniform(-1, 1, (2 * L, B, H)).astype(dtype)
    # warm up first so that compiler warnings (if any) are not mistaken for numerical ones
    net.forward(x, training=True)
    net.backward(np.zeros((B, T, 2 * H), dtype=dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out, h_n = net.forward(x, h0=h0, lengths=lengths, training=True)
            dx, dh0, grads = net.backward(rng.standard_normal(out.shape).astype(dtype),
                                          rng.standard_normal(h_n.shape).astype(dtype))
    for a in [out, h_n, dx, dh0, *grads.values()]:
        assert np.all(np.isfinite(a))
    ref_out, ref_h_n, _ = oracle_forward(x, net.state_dict(), cell=cell, num_layers=L,
                                         hidden_size=H, bidirectional=True,
                                         reset_after=reset_after, h0=h0, lengths=lengths)
    if cell == "rnn_relu":
        assert_close(out, ref_out, dtype)
        assert_close(h_n, ref_h_n, dtype)
    else:
        # saturated gates: compare the bounded outputs absolutely
        assert np.all(np.abs(out) <= 1) and np.all(np.abs(h_n) <= 1)
        atol = 1e-9 if dtype == "float64" else 1e-4
        np.testing.assert_allclose(out, ref_out, rtol=0, atol=atol)
        np.testing.assert_allclose(h_n, ref_h_n, rtol=0, atol=atol)


# ----------------------------------------------------------------------------------------------
# one cell's own attributes and constructor
# ----------------------------------------------------------------------------------------------
def test_gru_attributes():
    gru = numgru.GRU(3, 4, 2, bidirectional=True, dropout=0.1, reset_after=False,
                     dtype="float64", random_state=0)
    assert (gru.input_size, gru.hidden_size, gru.num_layers) == (3, 4, 2)
    assert gru.bidirectional is True and gru.num_directions == 2
    assert gru.dropout == 0.1 and gru.reset_after is False
    assert gru.dtype == np.dtype("float64") and isinstance(gru.dtype, np.dtype)
    assert gru.device == "cpu"
    assert isinstance(gru.rng, np.random.Generator)
    assert len(gru.dropout_masks_) == 0
    g32 = numgru.GRU(3, 4)
    assert g32.dtype == np.dtype("float32") and g32.num_directions == 1 and g32.reset_after
    assert g32.num_layers == 1 and g32.dropout == 0.0


def test_rnn_attributes_and_repr():
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


def test_rnn_constructor_errors():
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


# ----------------------------------------------------------------------------------------------
# the GRU kernel's chunks on either side of the packed product's row threshold
# ----------------------------------------------------------------------------------------------
def _layer_run(B, nchunks, reset_after, seed=3, T=5, I=3, H=6):
    from numgru import _cpu

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I))
    w_ih = rng.standard_normal((3 * H, I))
    b_ih = rng.standard_normal(3 * H)
    whh = rng.standard_normal((1, 3 * H, H)) * 0.5
    bhh = rng.standard_normal((1, 3 * H))
    if not reset_after:
        bhh[:, 2 * H:] = 0
    h0 = rng.standard_normal((1, B, H))
    lengths = rng.integers(1, T + 1, B).astype(np.int64)
    out = np.empty((B, T, H))
    h_n = np.empty((1, B, H))
    gates = np.empty((1, T, B, 3 * H))
    hn_s = np.empty((1, T, B, H))
    hprev = np.empty((1, T, B, H))
    _cpu.gru_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, nchunks, out, h_n,
                           True, gates, hn_s, hprev)
    d_out = rng.standard_normal((B, T, H))
    d_h_n = rng.standard_normal((1, B, H))
    dgi = np.empty((B, T, 3 * H))
    dgh = np.empty((1, T, B, 3 * H))
    dh0 = np.empty((1, B, H))
    dbias = np.empty((nchunks, 2, 3 * H))
    _cpu.gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after, nchunks,
                            dgi, dgh, dh0, dbias)
    return out, h_n, dgi, dgh, dh0, dbias.sum(axis=0)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("rows", [-2, -1, 0])
def test_split_chunks_agree_with_one_chunk_around_the_packed_threshold(reset_after, rows):
    """Two chunks of a batch of 2 * PACK_MIN_ROWS + rows rows (both below the packed product's
    threshold, one each side, both at it) give what one chunk of the whole batch gives (float64,
    to rounding): forward, state, and every gradient of the backward."""
    from numgru._gemm import PACK_MIN_ROWS

    B = 2 * PACK_MIN_ROWS + rows
    split = _layer_run(B, 2, reset_after)
    whole = _layer_run(B, 1, reset_after)
    for a, b in zip(split, whole):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
