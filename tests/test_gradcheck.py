"""Central finite differences on numgru.GRU itself (float64).

loss = sum(out * R1) + sum(h_n * R2); every parameter, x and h0 are checked element by element.
With dropout, ``gru.rng`` is reset before every training forward so that the same mask is drawn.
"""

import numpy as np
import pytest

import numgru

EPS = 1e-6

# B, T, I, H, L, bidirectional, reset_after, lengths, dropout
CONFIGS = [
    (2, 4, 3, 3, 1, False, True, None, 0.0),
    (2, 4, 3, 3, 1, False, False, None, 0.0),
    (3, 5, 2, 3, 2, True, True, [5, 2, 3], 0.0),
    (3, 5, 2, 3, 2, True, False, [1, 5, 3], 0.0),
    (2, 4, 3, 2, 3, False, True, [4, 2], 0.4),
    (3, 4, 2, 2, 3, True, False, [4, 1, 3], 0.3),
    (2, 3, 2, 2, 2, True, True, None, 0.5),
]


def _ids():
    return [f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
            f"{'_ra' if c[6] else '_rb'}{'_len' if c[7] else ''}{'_drop' if c[8] else ''}"
            for c in CONFIGS]


@pytest.mark.parametrize("seed, cfg", list(enumerate(CONFIGS)), ids=_ids())
def test_engine_finite_differences(seed, cfg):
    B, T, I, H, L, bidir, reset_after, lengths, p = cfg
    D = 2 if bidir else 1
    rng = np.random.default_rng(200 + seed)
    gru = numgru.GRU(I, H, L, bidirectional=bidir, dropout=p, reset_after=reset_after,
                     dtype="float64", random_state=seed)
    params = {k: 2.0 * v for k, v in gru.state_dict().items()}   # leave the linear regime
    gru.load_state_dict(params)
    x = rng.standard_normal((B, T, I))
    h0 = 0.5 * rng.standard_normal((L * D, B, H))
    R1 = rng.standard_normal((B, T, D * H))
    R2 = rng.standard_normal((L * D, B, H))
    mask_seed = 1234 + seed

    def forward():
        gru.rng = np.random.default_rng(mask_seed)
        return gru.forward(x, h0=h0, lengths=lengths, training=True)

    def loss():
        out, h_n = forward()
        return float(np.sum(out * R1) + np.sum(h_n * R2))

    forward()
    if p > 0 and L > 1:
        assert len(gru.dropout_masks_) == L - 1
        assert any(np.any(np.asarray(m) == 0) for m in gru.dropout_masks_)
    dx, dh0, grads = gru.backward(R1, R2)

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
        num = numerical(params[name], lambda: gru.load_state_dict(params))
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=2e-8, err_msg=name)
    if lengths is not None:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]
        assert np.all(dx[pad] == 0)


# ----------------------------------------------------------------------------------------------
# numgru.RNN (tanh and relu)
# ----------------------------------------------------------------------------------------------
# B, T, I, H, L, bidirectional, nonlinearity, lengths, dropout
RNN_CONFIGS = [
    (2, 4, 3, 3, 1, False, "tanh", None, 0.0),
    (2, 4, 3, 3, 1, False, "relu", None, 0.0),
    (3, 5, 2, 3, 2, True, "tanh", [5, 2, 3], 0.0),
    (3, 5, 2, 3, 2, True, "relu", [1, 5, 3], 0.0),
    (2, 4, 3, 2, 3, False, "tanh", [4, 2], 0.4),
    (3, 4, 2, 2, 3, True, "relu", [4, 1, 3], 0.3),
]


@pytest.mark.parametrize(
    "seed, cfg", list(enumerate(RNN_CONFIGS)),
    ids=[f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}_{c[6]}"
         f"{'_len' if c[7] else ''}{'_drop' if c[8] else ''}" for c in RNN_CONFIGS])
def test_rnn_finite_differences(seed, cfg):
    """As above for numgru.RNN. ReLU is not differentiable at 0: no pre-activation of these
    draws lies within EPS of it (checked), so the central differences are exact there too."""
    B, T, I, H, L, bidir, act, lengths, p = cfg
    D = 2 if bidir else 1
    rng = np.random.default_rng(400 + seed)
    rnn = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=bidir, dropout=p,
                     dtype="float64", random_state=seed)
    params = {k: 2.0 * v for k, v in rnn.state_dict().items()}   # leave the linear regime
    rnn.load_state_dict(params)
    x = rng.standard_normal((B, T, I))
    h0 = 0.5 * rng.standard_normal((L * D, B, H))
    R1 = rng.standard_normal((B, T, D * H))
    R2 = rng.standard_normal((L * D, B, H))
    mask_seed = 4321 + seed

    def forward():
        rnn.rng = np.random.default_rng(mask_seed)
        return rnn.forward(x, h0=h0, lengths=lengths, training=True)

    def loss():
        out, h_n = forward()
        return float(np.sum(out * R1) + np.sum(h_n * R2))

    forward()
    if act == "relu":      # away from the kink: every pre-activation of the oracle is not ~0
        from reference import rnn_forward
        _, _, cache = rnn_forward(x, params, num_layers=L, hidden_size=H, nonlinearity=act,
                                  bidirectional=bidir, h0=h0, lengths=lengths,
                                  dropout_masks=[np.asarray(m) for m in rnn.dropout_masks_])
        a = np.concatenate([st["a"].ravel() for lay in cache["layers"] for steps in lay["dirs"]
                            for st in steps])
        assert np.min(np.abs(a)) > 1e3 * EPS
    dx, dh0, grads = rnn.backward(R1, R2)

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
        num = numerical(params[name], lambda: rnn.load_state_dict(params))
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=2e-8, err_msg=name)
    if lengths is not None:
        pad = np.arange(T)[None, :] >= np.asarray(lengths)[:, None]
        assert np.all(dx[pad] == 0)
