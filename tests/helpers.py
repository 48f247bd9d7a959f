"""Shared helpers of the test-suite (not a test module)."""

import glob
import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def fixture_paths(kind="gru"):
    """The committed torch fixtures: ``kind`` "gru" (``torch_*.npz``) or "rnn"
    (``torch_rnn_*.npz``, dumped from ``torch.nn.RNN``)."""
    paths = sorted(glob.glob(os.path.join(DATA, "torch_*.npz")))
    rnn = [p for p in paths if os.path.basename(p).startswith("torch_rnn_")]
    return rnn if kind == "rnn" else [p for p in paths if p not in rnn]


def fixture_ids(kind="gru"):
    return [os.path.basename(p)[len("torch_"):-len(".npz")] for p in fixture_paths(kind)]


def load_fixture(path):
    """Dict with the config, arrays and ``params``/``grads`` dicts (state_dict names)."""
    with np.load(path) as f:
        raw = {k: f[k] for k in f.files}
    fx = {k: v for k, v in raw.items() if not k.startswith(("p.", "g."))}
    fx["params"] = {k[2:]: v for k, v in raw.items() if k.startswith("p.")}
    fx["grads"] = {k[2:]: v for k, v in raw.items() if k.startswith("g.")}
    for k in ("num_layers", "hidden_size", "input_size"):
        fx[k] = int(fx[k])
    for k in ("bidirectional", "has_h0", "has_lengths"):
        fx[k] = bool(fx[k])
    fx["dtype"] = str(fx["dtype"])
    fx["cell"] = str(fx.get("cell", "gru"))
    return fx


def tol(dtype, scale=1.0):
    """assert_allclose keyword arguments for comparing a result of the given dtype with a float64
    reference whose values are of order ``scale``."""
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-10, atol=1e-12 * max(1.0, scale))
    return dict(rtol=2e-5, atol=1e-6 * max(1.0, scale))


def assert_close(actual, expected, dtype=np.float64, err_msg=""):
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, err_msg=err_msg,
                               **tol(dtype, scale))


def assert_grads_close(actual, expected, dtype=np.float64, prefix=""):
    assert list(actual) == list(expected), (list(actual), list(expected))
    for name in expected:
        assert np.shape(actual[name]) == np.shape(expected[name]), name
        assert_close(actual[name], expected[name], dtype, err_msg=f"{prefix}grad {name}")


def make_masks(rng, num_layers, shape, p):
    """Fixed inverted-dropout masks for layers 0..L-2, as the contract draws them."""
    return [(rng.random(shape) >= p).astype(np.float64) / (1.0 - p) for _ in range(num_layers - 1)]


def random_lengths(rng, B, T, kind):
    if kind is None:
        return None
    if kind == "full":
        return np.full(B, T, dtype=np.int64)
    if kind == "equal":
        return np.full(B, max(1, T - 2), dtype=np.int64)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    if B > 1:
        lengths[-1] = 1
    return lengths.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# An independent NumPy implementation of the Keras GRU layer (gate order z, r, h).
# ----------------------------------------------------------------------------------------------
def _keras_sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))          # exact identity, overflow-free


def keras_gru_forward(x, kernel, recurrent_kernel, bias, reset_after=True, h0=None):
    """Keras GRU (return_sequences=True, return_state=True), float64.

    kernel (I, 3H), recurrent_kernel (H, 3H), columns in gate order z, r, h;
    reset_after=True: bias (2, 3H) = [input bias, recurrent bias],
        hh = tanh(x W_h + b_h + r * (h U_h + rb_h));
    reset_after=False: bias (3H,), hh = tanh(x W_h + b_h + (r * h) U_h);
    h' = z * h + (1 - z) * hh.  Returns (sequence (B,T,H), final state (B,H)).
    """
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(kernel, dtype=np.float64)
    U = np.asarray(recurrent_kernel, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    B, T, _ = x.shape
    H = U.shape[0]
    if reset_after:
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, np.zeros(3 * H)
    h = np.zeros((B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    seq = np.zeros((B, T, H))
    for t in range(T):
        xi = x[:, t] @ W + b_in
        x_z, x_r, x_h = xi[:, :H], xi[:, H:2 * H], xi[:, 2 * H:]
        if reset_after:
            rec = h @ U + b_rec
            z = _keras_sigmoid(x_z + rec[:, :H])
            r = _keras_sigmoid(x_r + rec[:, H:2 * H])
            hh = np.tanh(x_h + r * rec[:, 2 * H:])
        else:
            z = _keras_sigmoid(x_z + h @ U[:, :H])
            r = _keras_sigmoid(x_r + h @ U[:, H:2 * H])
            hh = np.tanh(x_h + (r * h) @ U[:, 2 * H:])
        h = z * h + (1.0 - z) * hh
        seq[:, t] = h
    return seq, h


def random_keras_weights(rng, I, H, reset_after, scale=0.6):
    kernel = rng.uniform(-scale, scale, (I, 3 * H))
    recurrent_kernel = rng.uniform(-scale, scale, (H, 3 * H))
    bias = rng.uniform(-scale, scale, (2, 3 * H) if reset_after else (3 * H,))
    return kernel, recurrent_kernel, bias


def keras_to_torch_params(kernel, recurrent_kernel, bias, reset_after=True):
    """Map Keras weights onto the contract's PyTorch names (used to check the oracle itself)."""
    H = recurrent_kernel.shape[0]

    def zrh_to_rzn(m):                       # columns z, r, h -> rows r, z, n
        return np.concatenate([m[..., H:2 * H], m[..., :H], m[..., 2 * H:]], axis=-1)

    p = {"weight_ih_l0": zrh_to_rzn(kernel).T.copy(),
         "weight_hh_l0": zrh_to_rzn(recurrent_kernel).T.copy()}
    if reset_after:
        p["bias_ih_l0"] = zrh_to_rzn(bias[0])
        p["bias_hh_l0"] = zrh_to_rzn(bias[1])
    else:
        p["bias_ih_l0"] = zrh_to_rzn(bias)
        p["bias_hh_l0"] = np.zeros(2 * H)
    return p
