"""numgru.GRU and the NumPy oracle against Keras's own GRU layer: the committed fixtures
tests/data/keras_*.npz (made by tests/data/make_keras_fixtures.py), the outside oracle of the Cho
form (``reset_after=False``), which torch does not have. Keras computes that form in float32 on
its torch backend (see the script), so the fixtures are float32 and every comparison is at float32
precision, numgru's float32 and float64 alike."""

import glob
import os

import numpy as np
import pytest

import numgru
from helpers import DATA, assert_close, keras_to_torch_params
from reference import gru_backward, gru_forward

PATHS = sorted(glob.glob(os.path.join(DATA, "keras_*.npz")))
IDS = [os.path.basename(p)[len("keras_"):-len(".npz")] for p in PATHS]


def load(path):
    with np.load(path) as f:
        fx = {k: f[k] for k in f.files}
    fx["reset_after"] = bool(fx["reset_after"])
    fx["has_h0"] = bool(fx["has_h0"])
    fx["grads"] = keras_grads_as_torch(fx)
    return fx


def keras_grads_as_torch(fx):
    """Keras's gradients in numgru's (PyTorch's) names and layout. Without reset_after Keras has
    one bias per gate; numgru splits r's and z's into an input and a recurrent bias that enter
    the same sum, so both receive that gate's gradient."""
    g = keras_to_torch_params(fx["g.kernel"], fx["g.recurrent_kernel"], fx["g.bias"],
                              fx["reset_after"])
    if not fx["reset_after"]:
        H = int(fx["hidden_size"])
        g["bias_hh_l0"] = g["bias_ih_l0"][:2 * H].copy()
    return g


def test_fixtures_present():
    assert {"cho", "cho_h0", "after_h0"} <= set(IDS), IDS
    assert sum(not load(p)["reset_after"] for p in PATHS) >= 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_engine_matches_keras_fixture(path, dtype):
    fx = load(path)
    gru = numgru.GRU.from_keras_weights(fx["kernel"], fx["recurrent_kernel"], fx["bias"],
                                        reset_after=fx["reset_after"], dtype=dtype)
    assert gru.reset_after is fx["reset_after"]
    out, h_n = gru.forward(fx["x"], h0=fx["h0"][None] if fx["has_h0"] else None, training=True)
    dx, dh0, grads = gru.backward(fx["d_seq"], fx["d_h_T"][None])
    assert out.dtype == dtype and dx.dtype == dtype
    assert_close(out, fx["seq"], np.float32, err_msg="out")
    assert_close(h_n[0], fx["h_T"], np.float32, err_msg="h_n")
    assert_close(dx, fx["dx"], np.float32, err_msg="dx")
    if fx["has_h0"]:
        assert_close(dh0[0], fx["dh0"], np.float32, err_msg="dh0")
    assert list(grads) == list(fx["grads"])
    for name, g in grads.items():
        assert_close(g, fx["grads"][name], np.float32, err_msg="grad " + name)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_oracle_matches_keras_fixture(path):
    fx = load(path)
    params = keras_to_torch_params(fx["kernel"], fx["recurrent_kernel"], fx["bias"],
                                   fx["reset_after"])
    out, h_n, cache = gru_forward(fx["x"], params, num_layers=1,
                                  hidden_size=int(fx["hidden_size"]),
                                  reset_after=fx["reset_after"], h0=fx["h0"][None])
    dx, dh0, grads = gru_backward(cache, fx["d_seq"], fx["d_h_T"][None])
    assert_close(out, fx["seq"], np.float32, err_msg="out")
    assert_close(h_n[0], fx["h_T"], np.float32, err_msg="h_n")
    assert_close(dx, fx["dx"], np.float32, err_msg="dx")
    if fx["has_h0"]:
        assert_close(dh0[0], fx["dh0"], np.float32, err_msg="dh0")
    for name in params:
        assert_close(grads[name], fx["grads"][name], np.float32, err_msg="grad " + name)
