"""Bad inputs raise the errors documented in docs/engine.md; GRU.from_keras_weights."""

import numpy as np
import pytest

import numgru
from helpers import keras_gru_forward, random_keras_weights

B, T, I, H, L = 3, 4, 5, 2, 2


@pytest.fixture(scope="module")
def gru():
    return numgru.GRU(I, H, L, bidirectional=True, dtype="float64", random_state=0)


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((B, T, I))


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(T, I), (B, T, I, 1), (I,)])
def test_wrong_ndim(gru, shape):
    with pytest.raises(ValueError, match=r"(?i)(3-?D|ndim|dimension)"):
        gru.forward(np.zeros(shape))


def test_input_size_mismatch(gru):
    with pytest.raises(ValueError, match=r"(?i)(input_size|input size|features)"):
        gru.forward(np.zeros((B, T, I + 1)))


@pytest.mark.parametrize("lengths", [[0, 2, 3], [1, 2, T + 1], [-1, 2, 3]])
def test_lengths_out_of_range(gru, x, lengths):
    with pytest.raises(ValueError, match=r"(?i)lengths.*(range|\[1|lie|between|must)"):
        gru.forward(x, lengths=lengths)


@pytest.mark.parametrize("lengths", [[1, 2], [1, 2, 3, 4], [[1, 2, 3]]])
def test_lengths_wrong_count(gru, x, lengths):
    with pytest.raises(ValueError, match=r"(?i)lengths.*(one entry|per sequence|shape|count|"
                                         r"batch|size)"):
        gru.forward(x, lengths=lengths)


@pytest.mark.parametrize("lengths", [[1.5, 2, 3], np.array([1.0, 2.5, 3.0]),
                                     np.array(["1", "2", "3"]), np.array([1, np.nan, 3])])
def test_lengths_non_integer(gru, x, lengths):
    with pytest.raises(ValueError, match=r"(?i)lengths.*integer"):
        gru.forward(x, lengths=lengths)


@pytest.mark.parametrize("shape", [(L * 2, B, H + 1), (L * 2, B + 1, H), (L, B, H), (B, H)])
def test_h0_wrong_shape(gru, x, shape):
    with pytest.raises(ValueError, match=r"(?i)h0.*shape"):
        gru.forward(x, h0=np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(gru, x, bad):
    x[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"(?i)(nan|inf|finite)"):
        gru.forward(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_h0(gru, x, bad):
    h0 = np.zeros((2 * L, B, H))
    h0[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"(?i)(nan|inf|finite)"):
        gru.forward(x, h0=h0)


@pytest.mark.parametrize("make", [
    lambda x: x.astype(np.complex128),
    lambda x: x > 0,
    lambda x: x.astype(str),
    lambda x: x.astype(object),
    lambda x: np.full(x.shape, "a"),
], ids=["complex", "bool", "str", "object", "letters"])
def test_non_real_x_dtypes(gru, x, make):
    with pytest.raises(TypeError, match=r"(?i)(dtype|numeric|complex|bool|float|real)"):
        gru.forward(make(x))


def test_non_real_h0_dtype(gru, x):
    with pytest.raises(TypeError, match=r"(?i)(dtype|numeric|complex|bool|float|real)"):
        gru.forward(x, h0=np.zeros((2 * L, B, H), dtype=np.complex64))
    with pytest.raises(TypeError, match=r"(?i)(dtype|numeric|complex|bool|float|real)"):
        gru.forward(x, h0=np.zeros((2 * L, B, H), dtype=bool))


@pytest.mark.parametrize("dtype", ["int32", "float16", "complex128", "bool", "object",
                                   "longdouble", "not-a-dtype"])
def test_unsupported_model_dtype(dtype):
    if dtype == "longdouble" and np.dtype(np.longdouble) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match=r"(?i)dtype"):
        numgru.GRU(I, H, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------------
def test_backward_without_training_forward(x):
    g = numgru.GRU(I, H, L, dtype="float64", random_state=0)
    with pytest.raises(RuntimeError, match=r"(?i)(forward|training)"):
        g.backward(np.zeros((B, T, H)))
    g.forward(x, training=False)
    with pytest.raises(RuntimeError, match=r"(?i)(forward|training)"):
        g.backward(np.zeros((B, T, H)))


@pytest.mark.parametrize("shape", [(B, T, H), (B, T + 1, 2 * H), (B, T, 2 * H, 1), (T, 2 * H)])
def test_d_out_wrong_shape(gru, x, shape):
    gru.forward(x, training=True)
    with pytest.raises(ValueError, match=r"(?i)d_out.*shape"):
        gru.backward(np.zeros(shape))


@pytest.mark.parametrize("shape", [(2 * L, B, H + 1), (L, B, H), (B, H)])
def test_d_h_n_wrong_shape(gru, x, shape):
    gru.forward(x, training=True)
    with pytest.raises(ValueError, match=r"(?i)d_h_n.*shape"):
        gru.backward(np.zeros((B, T, 2 * H)), np.zeros(shape))


def test_d_out_non_real(gru, x):
    gru.forward(x, training=True)
    with pytest.raises(TypeError, match=r"(?i)(dtype|numeric|complex|bool|float|real)"):
        gru.backward(np.zeros((B, T, 2 * H), dtype=np.complex128))


# ----------------------------------------------------------------------------------------------
# load_state_dict
# ----------------------------------------------------------------------------------------------
def test_load_state_dict_missing_key(gru):
    sd = gru.state_dict()
    del sd["bias_hh_l1_reverse"]
    with pytest.raises(ValueError, match=r"(?i)missing.*bias_hh_l1_reverse"):
        gru.load_state_dict(sd)


def test_load_state_dict_unexpected_key(gru):
    sd = gru.state_dict()
    sd["weight_ih_l2"] = np.zeros((3 * H, 2 * H))
    with pytest.raises(ValueError, match=r"(?i)unexpected.*weight_ih_l2"):
        gru.load_state_dict(sd)


def test_load_state_dict_wrong_names_no_keyerror(gru):
    sd = {k.replace("weight", "w"): v for k, v in gru.state_dict().items()}
    with pytest.raises(ValueError, match=r"weight_ih_l0"):
        gru.load_state_dict(sd)


@pytest.mark.parametrize("name, shape", [("weight_ih_l0", (3 * H, I + 1)),
                                         ("weight_hh_l1_reverse", (3 * H, H + 1)),
                                         ("bias_ih_l1", (2 * H,)),
                                         ("bias_hh_l0", (2 * H,)),
                                         ("weight_ih_l1", (3 * H, H))])
def test_load_state_dict_wrong_shape(gru, name, shape):
    before = gru.state_dict()
    sd = gru.state_dict()
    sd[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=rf"(?i){name}.*shape|shape.*{name}"):
        gru.load_state_dict(sd)
    # a rejected state_dict leaves the model untouched
    for k, v in gru.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_reset_before_bias_shape():
    g = numgru.GRU(I, H, 1, reset_after=False, dtype="float64", random_state=0)
    sd = g.state_dict()
    assert sd["bias_hh_l0"].shape == (2 * H,)
    sd["bias_hh_l0"] = np.zeros(3 * H)
    with pytest.raises(ValueError, match=r"(?i)bias_hh_l0.*shape|shape.*bias_hh_l0"):
        g.load_state_dict(sd)


# ----------------------------------------------------------------------------------------------
# GRU.from_keras_weights
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset_after", [True, False])
def test_from_keras_weights(reset_after):
    rng = np.random.default_rng(11)
    Bk, Tk, Ik, Hk = 4, 6, 3, 5
    kernel, rec, bias = random_keras_weights(rng, Ik, Hk, reset_after)
    gru = numgru.GRU.from_keras_weights(kernel, rec, bias, reset_after=reset_after,
                                        dtype="float64")
    assert gru.input_size == Ik and gru.hidden_size == Hk and gru.num_layers == 1
    assert gru.reset_after is reset_after and not gru.bidirectional
    assert gru.dtype == np.float64
    assert gru.state_dict()["bias_hh_l0"].shape == ((3 * Hk,) if reset_after else (2 * Hk,))
    x = rng.standard_normal((Bk, Tk, Ik))
    h0 = 0.5 * rng.standard_normal((Bk, Hk))
    seq, h = keras_gru_forward(x, kernel, rec, bias, reset_after, h0=h0)
    out, h_n = gru.forward(x, h0=h0[None])
    np.testing.assert_allclose(out, seq, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n[0], h, rtol=1e-10, atol=1e-12)
    out0, _ = gru.forward(x)
    seq0, _ = keras_gru_forward(x, kernel, rec, bias, reset_after)
    np.testing.assert_allclose(out0, seq0, rtol=1e-10, atol=1e-12)


def test_from_keras_weights_float32_default():
    rng = np.random.default_rng(12)
    kernel, rec, bias = random_keras_weights(rng, 3, 4, True)
    gru = numgru.GRU.from_keras_weights(kernel.astype(np.float32), rec.astype(np.float32),
                                        bias.astype(np.float32))
    assert gru.dtype == np.float32 and gru.reset_after
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    out, _ = gru.forward(x)
    seq, _ = keras_gru_forward(x, kernel.astype(np.float32), rec.astype(np.float32),
                               bias.astype(np.float32), True)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, seq, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_from_keras_weights_bad_bias_shape(reset_after):
    rng = np.random.default_rng(13)
    kernel, rec, bias = random_keras_weights(rng, 3, 4, not reset_after)   # the other layout
    with pytest.raises(ValueError, match=r"(?i)(bias|shape)"):
        numgru.GRU.from_keras_weights(kernel, rec, bias, reset_after=reset_after,
                                      dtype="float64")
