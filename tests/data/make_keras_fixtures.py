"""Dump small Keras GRU fixtures (forward and backward) as .npz files next to this script.

The outside oracle of the Cho form (``reset_after=False``), which torch does not have: numgru's
and tests/reference.py's versions of it are otherwise only checked against each other. One
``reset_after=True`` case is dumped too, a second outside check of the default form.

Regenerate with Keras 3 on its torch backend (CPU build; generated with keras 3.15.1 and torch
2.13.0), in an environment of its own::

    python3 -m venv venv-keras && venv-keras/bin/pip install keras "torch==2.13.0" numpy
    KERAS_BACKEND=torch venv-keras/bin/python tests/data/make_keras_fixtures.py

float32: on its torch backend Keras computes ``reset_after=False`` in float32 whatever the layer's
dtype (``keras.backend.result_type`` maps float64 to float32, as JAX does, and the Cho form's
products go through ``keras.ops.matmul``; with ``reset_after=True`` a CPU run takes a pure-torch
path that keeps float64; a float64 Cho layer's outputs were measured 6e-8 off a float64 NumPy
GRU, where its reset_after=True ones agree to 2e-16). So every case is made, and compared, at
float32 precision.

Each case is written as ``keras_<name>.npz`` and holds, all floats float32:
  config : reset_after, has_h0, input_size, hidden_size
  kernel (I, 3H), recurrent_kernel (H, 3H), bias ((3H,), or (2, 3H) with reset_after):
      the layer's weights in Keras's own layout (gate blocks z, r, h along the columns),
  x (B,T,I), h0 (B,H) (zeros when has_h0 is False),
  seq (B,T,H), h_T (B,H): ``GRU(return_sequences=True, return_state=True)``'s outputs,
  d_seq, d_h_T : random upstream gradients, loss = sum(seq * d_seq) + sum(h_T * d_h_T),
  dx, dh0, g.kernel, g.recurrent_kernel, g.bias : the gradients torch's autograd computes
      through Keras's layer (the Keras variables are torch parameters on this backend).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# name, reset_after, B, T, I, H, with_h0, seed
CASES = [
    ("cho_h0", False, 3, 5, 4, 5, True, 21),
    ("cho", False, 2, 7, 3, 6, False, 22),
    ("after_h0", True, 3, 4, 2, 3, True, 23),
]


def run_case(name, reset_after, B, T, I, H, with_h0, seed):
    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch (gradients come from torch's autograd)")
    keras.config.set_floatx("float32")
    rng = np.random.default_rng(seed)
    layer = keras.layers.GRU(H, reset_after=reset_after, return_sequences=True,
                             return_state=True, dtype="float32")
    layer.build((B, T, I))
    # uniform(-0.7, 0.7), as the torch fixtures: wider than Keras's default initialisers, so that
    # the gates leave their linear regime
    f32 = np.float32
    kernel = rng.uniform(-0.7, 0.7, (I, 3 * H)).astype(f32)
    recurrent_kernel = rng.uniform(-0.7, 0.7, (H, 3 * H)).astype(f32)
    bias = rng.uniform(-0.7, 0.7, (2, 3 * H) if reset_after else (3 * H,)).astype(f32)
    layer.set_weights([kernel, recurrent_kernel, bias])
    x = rng.standard_normal((B, T, I)).astype(f32)
    h0 = (0.5 * rng.standard_normal((B, H)) if with_h0 else np.zeros((B, H))).astype(f32)
    d_seq = rng.standard_normal((B, T, H)).astype(f32)
    d_h_T = rng.standard_normal((B, H)).astype(f32)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    seq, h_T = layer(xt, initial_state=[h0t]) if with_h0 else layer(xt)
    loss = (seq * torch.tensor(d_seq)).sum() + (h_T * torch.tensor(d_h_T)).sum()
    loss.backward()
    variables = {v.path.rsplit("/", 1)[-1]: v.value for v in layer.weights}
    assert sorted(variables) == ["bias", "kernel", "recurrent_kernel"], sorted(variables)

    arrays = dict(
        reset_after=np.bool_(reset_after), has_h0=np.bool_(with_h0), input_size=np.int64(I),
        hidden_size=np.int64(H), kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
        x=x, h0=h0, seq=seq.detach().numpy(), h_T=h_T.detach().numpy(), d_seq=d_seq,
        d_h_T=d_h_T, dx=xt.grad.numpy(),
        dh0=h0t.grad.numpy() if with_h0 else np.zeros((B, H), dtype=f32),
    )
    for vname, v in variables.items():
        # the weights Keras computed with are the ones set above
        np.testing.assert_array_equal(v.detach().numpy(), arrays[vname])
        arrays["g." + vname] = v.grad.numpy()
    for k, a in arrays.items():
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            assert a.dtype == np.float32, (k, a.dtype)
    path = os.path.join(HERE, f"keras_{name}.npz")
    np.savez_compressed(path, **arrays)
    return path


def main():
    torch.set_num_threads(1)
    print(f"keras {keras.__version__}, torch {torch.__version__}")
    for case in CASES:
        path = run_case(*case)
        print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
