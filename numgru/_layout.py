"""Parameter layout: PyTorch's names and shapes for a stack's packed arrays, and Keras import.

For recurrent layer k and suffix s in ("", "_reverse") (the second only when bidirectional),
in this order: ``{kind}_l{k}{s}`` for each of the cell's ``torch_kinds`` (for the GRU:
weight_ih (3H, I_k), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,) or (2H,) when
``reset_after=False``) -- exactly the keys and order of ``torch.nn.GRU.state_dict()``.
The arrays are views into each layer's packed parameters (:mod:`numgru._cells`).
"""

import numpy as np

from ._validation import check_finite, check_float_array, to_numpy


def names(stack):
    """``(name, layer, direction, kind)`` for every parameter, in PyTorch's order."""
    for k, lay in enumerate(stack.recurrent_layers):
        for d, suffix in enumerate(["", "_reverse"][: lay.num_directions]):
            for kind in lay.torch_kinds:
                yield f"{kind}_l{k}{suffix}", lay, d, kind


def state_dict(stack):
    """Copies of all parameters under PyTorch's names."""
    return {name: lay.view(lay.params, kind, d).copy() for name, lay, d, kind in names(stack)}


def named_grads(stack, grads):
    """Gradients from ``Stack.backward`` (one packed dict per layer) under PyTorch's names."""
    by_layer = {id(lay): g for lay, g in zip(stack.layers, grads)}
    return {name: lay.view(by_layer[id(lay)], kind, d).copy()
            for name, lay, d, kind in names(stack)}


def read_entry(state_dict, name, shape, dtype):
    """``state_dict[name]`` (any array-like, a torch tensor too) as a finite ``dtype`` array of
    ``shape``, or ValueError naming the entry."""
    try:
        value = to_numpy(state_dict[name])
    except (ValueError, TypeError) as exc:  # ragged nested lists, unreadable objects
        raise ValueError(f"state_dict[{name!r}] could not be read as an array of numbers: "
                         f"{exc}") from exc
    arr = check_float_array(value, f"state_dict[{name!r}]", dtype)
    if arr.shape != shape:
        raise ValueError(f"state_dict[{name!r}] has shape {arr.shape}, expected {shape}")
    check_finite(arr, f"state_dict[{name!r}]")
    return arr


def load_state_dict(stack, state_dict, what="GRU"):
    """Load any array-likes (torch tensors too) with strict name, shape and finiteness checks;
    nothing is changed unless every entry is valid."""
    if not (hasattr(state_dict, "keys") and hasattr(state_dict, "__getitem__")):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                        f"{type(state_dict).__name__}")
    expected = {name: (lay, d, kind) for name, lay, d, kind in names(stack)}
    given = list(state_dict.keys())
    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    if missing or unexpected:
        raise ValueError(f"state_dict does not match this {what}: missing keys {missing}, "
                         f"unexpected keys {unexpected}")
    converted = {name: read_entry(state_dict, name, lay.torch_shape(kind), stack.dtype)
                 for name, (lay, d, kind) in expected.items()}
    for name, (lay, d, kind) in expected.items():
        lay.view(lay.params, kind, d)[...] = converted[name]
    stack.params_changed()


def keras_gru_to_torch(kernel, recurrent_kernel, bias, reset_after):
    """A Keras ``GRU`` layer's weights as ``(input_size, hidden_size, state_dict)`` in PyTorch's
    layout: gates z, r, h -> r, z, n, kernels transposed, biases split (Keras keeps the input
    and recurrent biases as (2, 3H) with ``reset_after``, a single (3H,) input bias without)."""
    kernel = check_float_array(kernel, "kernel", np.float64)
    recurrent_kernel = check_float_array(recurrent_kernel, "recurrent_kernel", np.float64)
    if kernel.ndim != 2 or kernel.shape[1] % 3:
        raise ValueError(f"kernel must have shape (input_size, 3*units), got {kernel.shape}")
    I, H3 = kernel.shape
    H = H3 // 3
    if recurrent_kernel.shape != (H, H3):
        raise ValueError(f"recurrent_kernel must have shape {(H, H3)}, got {recurrent_kernel.shape}")
    if bias is None:
        bias = np.zeros((2, H3) if reset_after else (H3,))
    bias = check_float_array(bias, "bias", np.float64)
    want = (2, H3) if reset_after else (H3,)
    if bias.shape != want:
        raise ValueError(f"bias must have shape {want} for reset_after={reset_after}, got {bias.shape}")

    def reorder(a):  # Keras (z, r, h) blocks along the last axis -> PyTorch (r, z, n)
        z, r, h = a[..., :H], a[..., H:2 * H], a[..., 2 * H:]
        return np.concatenate([r, z, h], axis=-1)

    sd = {"weight_ih_l0": reorder(kernel).T, "weight_hh_l0": reorder(recurrent_kernel).T}
    if reset_after:
        sd["bias_ih_l0"] = reorder(bias[0])
        sd["bias_hh_l0"] = reorder(bias[1])
    else:
        sd["bias_ih_l0"] = reorder(bias)
        sd["bias_hh_l0"] = np.zeros(2 * H)
    return I, H, sd
