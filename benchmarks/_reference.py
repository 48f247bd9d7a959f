"""Plain-NumPy float64 reference GRU used by the benchmarks' correctness checks.

Deliberately independent of ``numgru`` and of ``tests/``: a straightforward, unoptimised
transcription of the equations in docs/engine.md (PyTorch layout, gate order r, z, n,
``reset_after=True``, unidirectional, no dropout, h0 = 0).  Only the helpers the benchmarks
need; nothing here may be named ``time_*`` / ``peakmem_*`` / ``track_*`` (asv imports every
module of this package during discovery).
"""

import numpy as np

# Benchmark shapes (B, T, I, H, L), shared by bench_gru.py and compare_torch.py.
SHAPES = {
    "small": (1, 100, 16, 64, 2),
    "mid": (32, 100, 32, 128, 2),
    "large": (128, 100, 64, 256, 2),
}


def gru_flops(B, T, I, H, L):
    """Matrix-product FLOPs of one forward pass: sum_k 2*B*T*3H*(I_k + H), I_k = I or H.

    Element-wise gate arithmetic (~15*B*T*H per layer) and bias additions are ignored; they
    are < 3% of the total for the shapes benchmarked here.
    """
    total = 0
    for k in range(L):
        in_k = I if k == 0 else H
        total += 2 * B * T * 3 * H * (in_k + H)
    return total


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _weights(state_dict, k):
    g = lambda name: np.asarray(state_dict[f"{name}_l{k}"], dtype=np.float64)  # noqa: E731
    return g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh")


def reference_forward(state_dict, x, num_layers):
    """Float64 forward. Returns ``(out, h_n, cache)``; ``cache`` feeds :func:`reference_backward`."""
    inp = np.asarray(x, dtype=np.float64)
    B, T, _ = inp.shape
    h_n, cache = [], []
    for k in range(num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(state_dict, k)
        H = w_hh.shape[1]
        h = np.zeros((B, H))
        out = np.empty((B, T, H))
        steps = []
        for t in range(T):
            gi = inp[:, t] @ w_ih.T + b_ih
            gh = h @ w_hh.T + b_hh
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            steps.append((h, r, z, n, gh[:, 2 * H:]))
            h = (1.0 - z) * n + z * h
            out[:, t] = h
        cache.append((inp, steps))
        h_n.append(h)
        inp = out
    return inp, np.stack(h_n), cache


def reference_backward(state_dict, cache, d_out):
    """Float64 backpropagation through time for :func:`reference_forward` (d_h_n = 0).

    Returns ``(dx, dh0, grads)`` with ``grads`` keyed like the state dict.
    """
    num_layers = len(cache)
    grads = {}
    dh0 = [None] * num_layers
    d_layer_out = np.asarray(d_out, dtype=np.float64)
    for k in reversed(range(num_layers)):
        w_ih, w_hh, _, _ = _weights(state_dict, k)
        H = w_hh.shape[1]
        inp, steps = cache[k]
        B, T, _ = inp.shape
        dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
        db_ih, db_hh = np.zeros(3 * H), np.zeros(3 * H)
        dx = np.empty_like(inp)
        dh = np.zeros((B, H))
        for t in reversed(range(T)):
            h_prev, r, z, n, ghn = steps[t]
            dh = dh + d_layer_out[:, t]
            da_n = dh * (1.0 - z) * (1.0 - n * n)
            da_z = dh * (h_prev - n) * z * (1.0 - z)
            da_r = da_n * ghn * r * (1.0 - r)
            dgi = np.concatenate([da_r, da_z, da_n], axis=1)
            dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
            dw_ih += dgi.T @ inp[:, t]
            dw_hh += dgh.T @ h_prev
            db_ih += dgi.sum(axis=0)
            db_hh += dgh.sum(axis=0)
            dx[:, t] = dgi @ w_ih
            dh = dh * z + dgh @ w_hh
        grads[f"weight_ih_l{k}"], grads[f"weight_hh_l{k}"] = dw_ih, dw_hh
        grads[f"bias_ih_l{k}"], grads[f"bias_hh_l{k}"] = db_ih, db_hh
        dh0[k] = dh
        d_layer_out = dx
    ordered = {}
    for k in range(num_layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            ordered[f"{name}_l{k}"] = grads[f"{name}_l{k}"]
    return d_layer_out, np.stack(dh0), ordered


def max_scaled_error(actual, expected):
    """max |actual - expected| / max(1, max |expected|) (absolute for O(1) values)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != reference shape {expected.shape}")
    if not np.all(np.isfinite(actual)):
        raise AssertionError("non-finite values")
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    return float(np.max(np.abs(actual - expected))) / scale if actual.size else 0.0
