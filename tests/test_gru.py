"""numgru.GRU forward/backward against the NumPy oracle (tests/reference.py), per docs/engine.md."""

import warnings

import numpy as np
import pytest

import numgru
from helpers import assert_close, assert_grads_close, random_lengths
from reference import gru_backward, gru_forward, param_names, param_shapes


def run_both(gru, x, *, h0=None, lengths=None, d_out=None, d_h_n=None, training=True,
             rng=None):
    """Run engine forward (+ backward when d_out is given) and the oracle on the engine's own
    (dtype-rounded) parameters, inputs and dropout masks. Returns (engine, oracle) tuples."""
    dtype = gru.dtype
    out, h_n = gru.forward(x, h0=h0, lengths=lengths, training=training)
    masks = [np.array(m) for m in gru.dropout_masks_] if training else []
    ref_out, ref_h_n, cache = gru_forward(
        np.asarray(x).astype(dtype), gru.state_dict(), num_layers=gru.num_layers,
        hidden_size=gru.hidden_size, bidirectional=gru.bidirectional,
        reset_after=gru.reset_after, h0=None if h0 is None else np.asarray(h0).astype(dtype),
        lengths=lengths, dropout_masks=masks or None)
    eng, ref = [out, h_n], [ref_out, ref_h_n]
    if d_out is not None:
        d_out = np.asarray(d_out).astype(dtype)
        d_h_n = None if d_h_n is None else np.asarray(d_h_n).astype(dtype)
        eng += list(gru.backward(d_out, d_h_n))
        ref += list(gru_backward(cache, d_out, d_h_n))
    return eng, ref


def check_all(eng, ref, dtype, label=""):
    for name, a, b in zip(["out", "h_n", "dx", "dh0"], eng, ref):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.dtype == dtype, (name, a.dtype)
        assert_close(a, b, dtype, err_msg=f"{label} {name}")
    if len(eng) > 4:
        for name, g in eng[4].items():
            assert g.dtype == dtype, (name, g.dtype)
        assert_grads_close(eng[4], ref[4], dtype, prefix=label + " ")


def padded(lengths, B, T):
    if lengths is None:
        return np.zeros((B, T), dtype=bool)
    return np.arange(T)[None, :] >= np.asarray(lengths)[:, None]


# ----------------------------------------------------------------------------------------------
# many small configurations
# ----------------------------------------------------------------------------------------------
# B, T, I, H, L, bidirectional, reset_after, lengths kind, h0, d_h_n, dropout
CONFIGS = [
    (1, 1, 1, 1, 1, False, True, None, False, False, 0.0),
    (3, 5, 4, 5, 1, False, True, None, False, True, 0.0),
    (3, 5, 4, 5, 1, False, False, None, True, True, 0.0),
    (2, 6, 3, 4, 1, True, True, "mixed", True, True, 0.0),
    (2, 6, 3, 4, 1, True, False, "mixed", False, False, 0.0),
    (4, 7, 2, 3, 2, False, True, "equal", True, True, 0.0),
    (4, 7, 2, 3, 2, False, False, "full", True, False, 0.0),
    (5, 6, 3, 4, 2, True, True, "mixed", True, True, 0.0),
    (5, 6, 3, 4, 2, True, False, "mixed", True, True, 0.0),
    (3, 4, 5, 3, 3, False, True, "mixed", False, True, 0.0),
    (3, 4, 5, 3, 3, True, False, None, True, True, 0.0),
    (4, 5, 3, 4, 2, True, True, "mixed", True, True, 0.3),
    (4, 5, 3, 4, 3, False, False, "equal", False, True, 0.5),
    (3, 6, 2, 3, 3, True, True, None, True, False, 0.25),
    (6, 3, 7, 9, 2, True, False, "mixed", True, True, 0.2),
    (2, 9, 1, 1, 2, True, True, "mixed", True, True, 0.0),
]


def _ids(configs, dtype=""):
    return [f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
            f"{'_ra' if c[6] else '_rb'}_{c[7] or 'nolen'}{'_h0' if c[8] else ''}"
            f"{'_dhn' if c[9] else ''}{f'_p{c[10]}' if c[10] else ''}{dtype}" for c in configs]


def _run_config(seed, cfg, dtype):
    B, T, I, H, L, bidir, reset_after, len_kind, with_h0, with_dhn, p = cfg
    D = 2 if bidir else 1
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(1000 + seed)
    gru = numgru.GRU(I, H, L, bidirectional=bidir, dropout=p, reset_after=reset_after,
                     dtype=dtype.name, random_state=seed)
    # scale the parameters up a little so that the gates are not all near their linear regime
    gru.load_state_dict({k: 1.5 * v for k, v in gru.state_dict().items()})
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = random_lengths(rng, B, T, len_kind)
    h0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(dtype) if with_h0 else None
    d_out = rng.standard_normal((B, T, D * H)).astype(dtype)
    d_h_n = rng.standard_normal((L * D, B, H)).astype(dtype) if with_dhn else None
    x_copy = x.copy()

    eng, ref = run_both(gru, x, h0=h0, lengths=lengths, d_out=d_out, d_h_n=d_h_n)
    check_all(eng, ref, dtype)
    out, h_n, dx, dh0, grads = eng
    assert out.shape == (B, T, D * H) and h_n.shape == (L * D, B, H)
    assert dx.shape == (B, T, I) and dh0.shape == (L * D, B, H)
    assert list(grads) == param_names(L, bidir)
    for name, shape in param_shapes(I, H, L, bidir, reset_after).items():
        assert grads[name].shape == shape, name
    np.testing.assert_array_equal(x, x_copy)          # inputs are not modified

    pad = padded(lengths, B, T)
    assert np.all(out[pad] == 0), "outputs past a sequence's end must be exactly 0"
    assert np.all(dx[pad] == 0), "dx past a sequence's end must be exactly 0"

    masks = gru.dropout_masks_
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
    eng_i, ref_i = run_both(gru, x, h0=h0, lengths=lengths, training=False)
    check_all(eng_i, ref_i, dtype, "inference")
    if p == 0:
        np.testing.assert_array_equal(eng_i[0], out)

    # gradients arriving at padded positions of d_out are ignored
    if pad.any():
        gru.rng = np.random.default_rng(5)
        gru.forward(x, h0=h0, lengths=lengths, training=True)
        d_noisy = d_out.copy()
        d_noisy[pad] = 1e3
        dx2, dh02, grads2 = gru.backward(d_noisy, d_h_n)
        gru.rng = np.random.default_rng(5)
        gru.forward(x, h0=h0, lengths=lengths, training=True)
        d_clean = d_out.copy()
        d_clean[pad] = 0
        dx3, dh03, grads3 = gru.backward(d_clean, d_h_n)
        assert_close(dx2, dx3, dtype)
        assert_close(dh02, dh03, dtype)
        assert_grads_close(grads2, grads3, dtype)


@pytest.mark.parametrize("seed, cfg", list(enumerate(CONFIGS)), ids=_ids(CONFIGS))
def test_matches_reference_float64(seed, cfg):
    _run_config(seed, cfg, "float64")


CONFIGS_F32 = [CONFIGS[i] for i in (1, 2, 7, 8, 12, 14)]


@pytest.mark.parametrize("seed, cfg", list(enumerate(CONFIGS_F32)), ids=_ids(CONFIGS_F32))
def test_matches_reference_float32(seed, cfg):
    _run_config(seed, cfg, "float32")


# ----------------------------------------------------------------------------------------------
# larger shapes (multi-threaded / blocked paths with remainders)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_large_shapes(dtype, reset_after):
    if dtype == "float32" and not reset_after:
        pytest.skip("covered by the other three combinations")
    B, T, I, H, L = 37, 23, 19, 70, 2
    rng = np.random.default_rng(42)
    gru = numgru.GRU(I, H, L, bidirectional=True, dropout=0.2, reset_after=reset_after,
                     dtype=dtype, random_state=3)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[:3] = [T, 1, T - 1]
    h0 = (0.5 * rng.standard_normal((2 * L, B, H))).astype(dtype)
    d_out = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    d_h_n = rng.standard_normal((2 * L, B, H)).astype(dtype)
    eng, ref = run_both(gru, x, h0=h0, lengths=lengths, d_out=d_out, d_h_n=d_h_n)
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


def test_large_unidirectional_no_lengths():
    B, T, I, H = 37, 23, 19, 70
    rng = np.random.default_rng(4)
    gru = numgru.GRU(I, H, 1, dtype="float64", random_state=4)
    x = rng.standard_normal((B, T, I))
    eng, ref = run_both(gru, x, d_out=rng.standard_normal((B, T, H)))
    check_all(eng, ref, np.dtype("float64"), "large uni")


# ----------------------------------------------------------------------------------------------
# dtypes, attributes, layout
# ----------------------------------------------------------------------------------------------
def test_attributes():
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_dtype_preserved(dtype):
    rng = np.random.default_rng(0)
    gru = numgru.GRU(3, 4, 2, bidirectional=True, dtype=dtype, random_state=0)
    other = np.float64 if dtype == "float32" else np.float32
    x = rng.standard_normal((2, 5, 3)).astype(other)            # converted, never upcast
    h0 = rng.standard_normal((4, 2, 4)).astype(other)
    out, h_n = gru.forward(x, h0=h0, training=True)
    assert out.dtype == dtype and h_n.dtype == dtype
    dx, dh0, grads = gru.backward(rng.standard_normal((2, 5, 8)).astype(other),
                                  rng.standard_normal((4, 2, 4)).astype(other))
    assert dx.dtype == dtype and dh0.dtype == dtype
    assert all(g.dtype == dtype for g in grads.values())
    assert all(v.dtype == dtype for v in gru.state_dict().values())
    # integer input is numeric and is converted as well
    xi = rng.integers(-2, 3, size=(2, 5, 3))
    out_i, _ = gru.forward(xi)
    out_f, _ = gru.forward(xi.astype(dtype))
    assert out_i.dtype == dtype
    np.testing.assert_array_equal(out_i, out_f)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(8)
    gru = numgru.GRU(3, 4, 2, bidirectional=True, dtype="float64", random_state=1)
    x_big = rng.standard_normal((5, 12, 7))
    x = x_big[::2, ::2, 1:4]                                   # strided view (3, 6, 3)
    h0 = np.asfortranarray(rng.standard_normal((4, 3, 4)))
    d_out = np.asfortranarray(rng.standard_normal((3, 6, 8)))
    lengths = [6, 2, 5]
    eng, ref = run_both(gru, x, h0=h0, lengths=lengths, d_out=d_out)
    check_all(eng, ref, np.dtype("float64"), "non-contiguous")
    out_c, h_c = gru.forward(np.ascontiguousarray(x), h0=np.ascontiguousarray(h0),
                             lengths=np.array(lengths, dtype=np.int32))
    np.testing.assert_array_equal(out_c, eng[0])
    np.testing.assert_array_equal(h_c, eng[1])


def test_h0_none_equals_zeros():
    rng = np.random.default_rng(2)
    gru = numgru.GRU(3, 4, 2, bidirectional=True, dtype="float64", random_state=2)
    x = rng.standard_normal((3, 4, 3))
    d_out = rng.standard_normal((3, 4, 8))
    out1, h1 = gru.forward(x, training=True)
    dx1, dh01, g1 = gru.backward(d_out)
    out2, h2 = gru.forward(x, h0=np.zeros((4, 3, 4)), training=True)
    dx2, dh02, g2 = gru.backward(d_out)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(h1, h2)
    assert dh01.shape == (4, 3, 4)
    np.testing.assert_allclose(dh01, dh02, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-14, atol=1e-15)


def test_lengths_as_list_and_all_full_equals_no_lengths():
    rng = np.random.default_rng(3)
    gru = numgru.GRU(2, 3, 1, bidirectional=True, dtype="float64", random_state=3)
    x = rng.standard_normal((3, 5, 2))
    o1, h1 = gru.forward(x)
    o2, h2 = gru.forward(x, lengths=[5, 5, 5])
    np.testing.assert_allclose(o1, o2, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h1, h2, rtol=1e-14, atol=1e-15)


def test_sequences_are_independent_of_padding():
    """Each padded sequence gives what it gives when run alone, truncated to its own length."""
    rng = np.random.default_rng(9)
    gru = numgru.GRU(3, 4, 2, bidirectional=True, dtype="float64", random_state=9)
    B, T = 4, 6
    x = rng.standard_normal((B, T, 3))
    lengths = np.array([6, 1, 3, 5])
    h0 = rng.standard_normal((4, B, 4))
    out, h_n = gru.forward(x, h0=h0, lengths=lengths)
    for b, n in enumerate(lengths):
        o1, h1 = gru.forward(x[b:b + 1, :n], h0=h0[:, b:b + 1])
        np.testing.assert_allclose(out[b, :n], o1[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# dropout masks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_masks_drawn_as_documented(dtype):
    B, T, H, L, p = 3, 4, 5, 3, 0.35
    gru = numgru.GRU(2, H, L, bidirectional=True, dropout=p, dtype=dtype, random_state=0)
    x = np.random.default_rng(1).standard_normal((B, T, 2))
    gru.rng = np.random.default_rng(77)
    gru.forward(x, training=True)
    expect_rng = np.random.default_rng(77)
    expected = [(expect_rng.random((B, T, 2 * H)) >= p).astype(dtype) / (1 - p)
                for _ in range(L - 1)]
    assert len(gru.dropout_masks_) == L - 1
    for m, e in zip(gru.dropout_masks_, expected):
        np.testing.assert_allclose(np.asarray(m, dtype=np.float64), e, rtol=1e-7, atol=0)
    # no dropout when not training: the output is deterministic and dropout-free. (Whether an
    # inference forward clears ``dropout_masks_`` is left open: the contract calls them "masks of
    # the last training forward".)
    o1, _ = gru.forward(x, training=False)
    gru.rng = np.random.default_rng(78)
    o2, _ = gru.forward(x, training=False)
    np.testing.assert_array_equal(o1, o2)
    g_nodrop = numgru.GRU(2, H, L, bidirectional=True, dropout=0.0, dtype=dtype, random_state=0)
    np.testing.assert_array_equal(g_nodrop.forward(x)[0], o1)
    # no masks when p == 0
    g0 = numgru.GRU(2, H, L, dropout=0.0, dtype=dtype, random_state=0)
    g0.forward(x, training=True)
    assert len(g0.dropout_masks_) == 0


# ----------------------------------------------------------------------------------------------
# state_dict / initialisation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset_after", [True, False])
def test_state_dict_round_trip(reset_after):
    I, H, L = 3, 4, 2
    a = numgru.GRU(I, H, L, bidirectional=True, reset_after=reset_after, dtype="float64",
                   random_state=1)
    b = numgru.GRU(I, H, L, bidirectional=True, reset_after=reset_after, dtype="float64",
                   random_state=2)
    sd = a.state_dict()
    assert list(sd) == param_names(L, True)
    for name, shape in param_shapes(I, H, L, True, reset_after).items():
        assert sd[name].shape == shape and sd[name].dtype == np.float64
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


def test_load_state_dict_converts_dtype():
    a = numgru.GRU(3, 4, 1, dtype="float64", random_state=1)
    b = numgru.GRU(3, 4, 1, dtype="float32", random_state=2)
    b.load_state_dict(a.state_dict())
    for k, v in b.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, a.state_dict()[k].astype(np.float32))


@pytest.mark.parametrize("H", [1, 4, 70])
def test_initialisation_range(H):
    gru = numgru.GRU(5, H, 2, bidirectional=True, reset_after=(H != 4), dtype="float64",
                     random_state=0)
    bound = 1.0 / np.sqrt(H)
    allv = np.concatenate([v.ravel() for v in gru.state_dict().values()])
    assert np.all(np.abs(allv) <= bound)
    # uniform: spread over the whole interval, roughly zero mean
    assert allv.max() > 0.9 * bound and allv.min() < -0.9 * bound
    assert abs(allv.mean()) < 0.1 * bound
    assert np.unique(allv).size == allv.size


def test_initialisation_reproducible():
    kw = dict(bidirectional=True, dtype="float32")
    a = numgru.GRU(3, 4, 2, random_state=11, **kw).state_dict()
    b = numgru.GRU(3, 4, 2, random_state=11, **kw).state_dict()
    c = numgru.GRU(3, 4, 2, random_state=12, **kw).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # and the dropout masks drawn afterwards are reproducible as well
    x = np.ones((2, 3, 3), dtype=np.float32)
    g1 = numgru.GRU(3, 4, 2, dropout=0.5, random_state=5, **kw)
    g2 = numgru.GRU(3, 4, 2, dropout=0.5, random_state=5, **kw)
    o1, _ = g1.forward(x, training=True)
    o2, _ = g2.forward(x, training=True)
    np.testing.assert_array_equal(o1, o2)
    for m1, m2 in zip(g1.dropout_masks_, g2.dropout_masks_):
        np.testing.assert_array_equal(m1, m2)


# ----------------------------------------------------------------------------------------------
# numerical stability
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_stable_for_huge_preactivations(dtype, reset_after):
    rng = np.random.default_rng(6)
    B, T, I, H, L = 3, 5, 6, 4, 2
    gru = numgru.GRU(I, H, L, bidirectional=True, reset_after=reset_after, dtype=dtype,
                     random_state=6)
    # weights ~ +-5e3 so that |pre-activations| reach ~1e4 and beyond
    gru.load_state_dict({k: v * 1e4 for k, v in gru.state_dict().items()})
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lengths = [5, 2, 4]
    h0 = rng.uniform(-1, 1, (2 * L, B, H)).astype(dtype)
    # warm up first so that compiler warnings (if any) are not mistaken for numerical ones
    gru.forward(x, training=True)
    gru.backward(np.zeros((B, T, 2 * H), dtype=dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out, h_n = gru.forward(x, h0=h0, lengths=lengths, training=True)
            dx, dh0, grads = gru.backward(rng.standard_normal(out.shape).astype(dtype),
                                          rng.standard_normal(h_n.shape).astype(dtype))
    for a in [out, h_n, dx, dh0, *grads.values()]:
        assert np.all(np.isfinite(a))
    assert np.all(np.abs(out) <= 1) and np.all(np.abs(h_n) <= 1)
    ref_out, ref_h_n, cache = gru_forward(x, gru.state_dict(), num_layers=L, hidden_size=H,
                                          bidirectional=True, reset_after=reset_after,
                                          h0=h0, lengths=lengths)
    atol = 1e-9 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=atol)
    np.testing.assert_allclose(h_n, ref_h_n, rtol=0, atol=atol)


# ----------------------------------------------------------------------------------------------
# chunks on either side of the packed product's row threshold
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
