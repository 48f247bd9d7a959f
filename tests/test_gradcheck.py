"""Central finite differences on numgru.GRU (both ``reset_after`` forms) and numgru.RNN (tanh,
relu) themselves, float64.

loss = sum(out * R1) + sum(h_n * R2); every parameter, x and h0 are checked element by element.
With dropout, the net's ``rng`` is reset before every training forward so that the same mask is
drawn.
"""

import numpy as np
import pytest

from cells import CELL_IDS, CELLS, make_net
from reference import forward as oracle_forward

EPS = 1e-6

# B, T, I, H, L, bidirectional, lengths, dropout
SHAPES = [
    (2, 4, 3, 3, 1, False, None, 0.0),
    (3, 5, 2, 3, 2, True, [5, 2, 3], 0.0),
    (3, 5, 2, 3, 2, True, [1, 5, 3], 0.0),
    (2, 4, 3, 2, 3, False, [4, 2], 0.4),
    (3, 4, 2, 2, 3, True, [4, 1, 3], 0.3),
    (2, 3, 2, 2, 2, True, None, 0.5),
]
CASES = [(c, s) for c in range(len(CELLS)) for s in range(len(SHAPES))]


def _id(c, s):
    B, T, I, H, L, bidir, lengths, p = SHAPES[s]
    return (f"{CELL_IDS[c]}-B{B}T{T}I{I}H{H}L{L}{'bi' if bidir else 'uni'}"
            f"{'_len' + ''.join(map(str, lengths)) if lengths else ''}{'_drop' if p else ''}")


def _relu_pre_activations(net, x, h0, lengths, params):
    """Every pre-activation of the oracle's run of ``net``'s last training forward."""
    _, _, cache = oracle_forward(x, params, cell="rnn_relu", num_layers=net.num_layers,
                                 hidden_size=net.hidden_size, bidirectional=net.bidirectional,
                                 h0=h0, lengths=lengths,
                                 dropout_masks=[np.asarray(m) for m in net.dropout_masks_])
    return np.concatenate([st["a"].ravel() for lay in cache["layers"] for steps in lay["dirs"]
                           for st in steps])


@pytest.mark.parametrize("c, s", CASES, ids=[_id(c, s) for c, s in CASES])
def test_engine_finite_differences(c, s):
    """ReLU is not differentiable at 0: its cases use the first draw with no pre-activation
    within 1e3 * EPS of it (checked), so that the central differences are exact there too."""
    cell, reset_after = CELLS[c]
    B, T, I, H, L, bidir, lengths, p = SHAPES[s]
    D = 2 if bidir else 1
    for attempt in range(10):
        seed = 10 * s + c + 1000 * attempt
        rng = np.random.default_rng(200 + seed)
        net = make_net(cell, reset_after, I, H, L, bidirectional=bidir, dropout=p,
                       dtype="float64", random_state=seed)
        params = {k: 2.0 * v for k, v in net.state_dict().items()}   # leave the linear regime
        net.load_state_dict(params)
        x = rng.standard_normal((B, T, I))
        h0 = 0.5 * rng.standard_normal((L * D, B, H))
        R1 = rng.standard_normal((B, T, D * H))
        R2 = rng.standard_normal((L * D, B, H))
        mask_seed = 1234 + seed

        def forward():
            net.rng = np.random.default_rng(mask_seed)
            return net.forward(x, h0=h0, lengths=lengths, training=True)

        forward()
        if cell != "rnn_relu" or np.min(np.abs(
                _relu_pre_activations(net, x, h0, lengths, params))) > 1e3 * EPS:
            break
    else:
        pytest.fail("no draw away from relu's kink")

    def loss():
        out, h_n = forward()
        return float(np.sum(out * R1) + np.sum(h_n * R2))

    if p > 0 and L > 1:
        assert len(net.dropout_masks_) == L - 1
        assert any(np.any(np.asarray(m) == 0) for m in net.dropout_masks_)
    dx, dh0, grads = net.backward(R1, R2)

    def numerical(arr, setter=None):
        g = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + EPS
            if setter:
                setter()
            fp = loss()
            arr[i] = old - EPS
            if setter:
                setter()
            fm = loss()
            arr[i] = old
            g[i] = (fp - fm) / (2 * EPS)
        if setter:
            setter()
        return g

    np.testing.assert_allclose(dx, numerical(x), rtol=1e-6, atol=2e-8, err_msg="dx")
    np.testing.assert_allclose(dh0, numerical(h0), rtol=1e-6, atol=2e-8, err_msg="dh0")
    for name in params:
        num = numerical(params[name], lambda: net.load_state_dict(params))
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=2e-8, err_msg=name)
    if lengths is not None:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]
        assert np.all(dx[pad] == 0)
