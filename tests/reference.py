"""Plain-NumPy float64 GRU and vanilla RNN: the single oracle every kernel is tested against.

Written for clarity, not speed. It follows docs/engine.md exactly; the RNN follows
``torch.nn.RNN`` with the same conventions. One network (:func:`forward` / :func:`backward`)
runs either cell, named as numgru names them:

* ``cell="gru"``: r, z, n gates, ``reset_after`` True (PyTorch's form) or False (the Cho form);
* ``cell="rnn_tanh"`` / ``"rnn_relu"``: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

Conventions:

* parameters use the PyTorch names and layout (gate order r, z, n); with ``reset_after=False`` the
  GRU's recurrent bias ``bias_hh_l{k}{s}`` has shape (2H,) (r and z only);
* ``lengths`` has ``pack_padded_sequence`` semantics: a step t is *active* for sequence b when
  ``t < lengths[b]``; inactive steps leave the state untouched and write 0 to the output, so the
  reverse direction naturally starts at each sequence's own end and ``h_n`` is the state after the
  last valid step; gradients arriving at padded positions of ``d_out`` are ignored;
* ``dropout_masks[k]`` (B, T, D*H) multiplies the output of layer k (k = 0..L-2) before it is fed to
  layer k+1;
* ``residual=True``: layer k >= 1 outputs its input (as fed to it, after dropout) plus its cells'
  output (equal sizes, so every layer after the first has the skip).

Everything is computed in float64 whatever the dtype of the inputs. This module imports NumPy
only, never numgru: it is the outside view the engine is checked against.
"""

import numpy as np

__all__ = ["CELLS", "forward", "backward", "gru_forward", "gru_backward", "rnn_forward",
           "rnn_backward", "init_params", "param_names", "param_shapes", "sigmoid", "tanh",
           "relu", "embedding_forward", "embedding_backward", "softmax_xent",
           "softmax_logprob", "log_softmax", "general_param_shapes", "general_layer_forward",
           "general_layer_backward"]

CELLS = ("gru", "rnn_tanh", "rnn_relu")


# ----------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------
def sigmoid(a):
    """Overflow-free logistic function: only exp of non-positive numbers is ever taken."""
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(a):
    """np.tanh never overflows (it saturates to +-1)."""
    return np.tanh(np.asarray(a, dtype=np.float64))


def relu(a):
    return np.maximum(np.asarray(a, dtype=np.float64), 0.0)


_ACTS = {"tanh": tanh, "relu": relu}


# ----------------------------------------------------------------------------------------------
# parameter layout
# ----------------------------------------------------------------------------------------------
def _suffixes(bidirectional):
    return ("", "_reverse") if bidirectional else ("",)


def _check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


def param_shapes(input_size, hidden_size, num_layers, bidirectional=False, reset_after=True,
                 cell="gru"):
    """Ordered dict name -> shape, exactly as in docs/engine.md (PyTorch order). ``reset_after``
    concerns the GRU only."""
    _check_cell(cell)
    H = hidden_size
    D = 2 if bidirectional else 1
    G = 3 * H if cell == "gru" else H                # rows of the stacked gate blocks
    G_hh = 2 * H if cell == "gru" and not reset_after else G
    shapes = {}
    for k in range(num_layers):
        I_k = input_size if k == 0 else D * H
        for s in _suffixes(bidirectional):
            shapes[f"weight_ih_l{k}{s}"] = (G, I_k)
            shapes[f"weight_hh_l{k}{s}"] = (G, H)
            shapes[f"bias_ih_l{k}{s}"] = (G,)
            shapes[f"bias_hh_l{k}{s}"] = (G_hh,)
    return shapes


def param_names(num_layers, bidirectional=False):
    names = []
    for k in range(num_layers):
        for s in _suffixes(bidirectional):
            names += [f"weight_ih_l{k}{s}", f"weight_hh_l{k}{s}", f"bias_ih_l{k}{s}",
                      f"bias_hh_l{k}{s}"]
    return names


def init_params(rng, input_size, hidden_size, num_layers, bidirectional=False, reset_after=True,
                dtype=np.float64, cell="gru"):
    """Random parameters, uniform in [-1/sqrt(H), 1/sqrt(H)], in contract order."""
    bound = 1.0 / np.sqrt(hidden_size)
    return {name: rng.uniform(-bound, bound, size=shape).astype(dtype)
            for name, shape in param_shapes(input_size, hidden_size, num_layers, bidirectional,
                                            reset_after, cell).items()}


# ----------------------------------------------------------------------------------------------
# one time step of one cell: forward (h_new and what the backward needs) and backward
# ----------------------------------------------------------------------------------------------
def _gru_step(xt, h, W_ih, W_hh, b_ih, b_hh, reset_after):
    H = h.shape[1]
    gi = xt @ W_ih.T + b_ih                                      # (B,3H)
    if reset_after:
        gh = h @ W_hh.T + b_hh                                   # (B,3H)
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        ghn = gh[:, 2 * H:]
        n = tanh(gi[:, 2 * H:] + r * ghn)
    else:
        gh = h @ W_hh[:2 * H].T + b_hh                           # (B,2H)
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        ghn = (r * h) @ W_hh[2 * H:].T                           # W_hn (r*h)
        n = tanh(gi[:, 2 * H:] + ghn)
    return (1.0 - z) * n + z * h, dict(r=r, z=z, n=n, ghn=ghn)


def _gru_step_backward(st, gm, W_hh, dW_hh, reset_after):
    """gm (B,H): the gradient w.r.t. h_new of the active rows. Adds into dW_hh; returns the
    gradients of the input and recurrent pre-activations and of h_prev."""
    H = gm.shape[1]
    r, z, n, h_prev, ghn = st["r"], st["z"], st["n"], st["h_prev"], st["ghn"]
    dn = gm * (1.0 - z)
    dz = gm * (h_prev - n)
    dh_prev = gm * z
    dan = dn * (1.0 - n * n)
    if reset_after:
        dr = dan * ghn
    else:
        d_rh = dan @ W_hh[2 * H:]                                # d(r*h)
        dr = d_rh * h_prev
        dh_prev = dh_prev + d_rh * r
        dW_hh[2 * H:] += dan.T @ (r * h_prev)
    dar = dr * r * (1.0 - r)
    daz = dz * z * (1.0 - z)
    dgi = np.concatenate([dar, daz, dan], axis=1)                # (B,3H)
    if reset_after:
        dgh = np.concatenate([dar, daz, dan * r], axis=1)        # (B,3H)
        dh_prev = dh_prev + dgh @ W_hh
        dW_hh += dgh.T @ h_prev
    else:
        dgh = np.concatenate([dar, daz], axis=1)                 # (B,2H)
        dh_prev = dh_prev + dgh @ W_hh[:2 * H]
        dW_hh[:2 * H] += dgh.T @ h_prev
    return dgi, dgh, dh_prev


def _rnn_step(xt, h, W_ih, W_hh, b_ih, b_hh, act):
    a = xt @ W_ih.T + b_ih + h @ W_hh.T + b_hh                   # (B,H) pre-activation
    return _ACTS[act](a), dict(a=a)


def _rnn_step_backward(st, gm, W_hh, dW_hh, act):
    """As _gru_step_backward: one pre-activation, shared by the input and recurrent sides."""
    if act == "tanh":
        da = gm * (1.0 - np.tanh(st["a"]) ** 2)
    else:
        da = gm * (st["a"] > 0)            # relu'(0) = 0, as torch
    dW_hh += da.T @ st["h_prev"]
    return da, da, da @ W_hh


def _step(cell, reset_after):
    """(forward, backward) of one time step of ``cell``, with its variant bound."""
    if cell == "gru":
        return (lambda *a: _gru_step(*a, reset_after),
                lambda *a: _gru_step_backward(*a, reset_after))
    act = cell[len("rnn_"):]
    return lambda *a: _rnn_step(*a, act), lambda *a: _rnn_step_backward(*a, act)


# ----------------------------------------------------------------------------------------------
# one direction of one layer
# ----------------------------------------------------------------------------------------------
def _direction_forward(x, h0, active, W_ih, W_hh, b_ih, b_hh, reverse, step):
    """x (B,T,I), h0 (B,H), active (B,T) bool. Returns y (B,T,H), h_last (B,H), steps."""
    B, T, _ = x.shape
    H = h0.shape[1]
    y = np.zeros((B, T, H))
    h = h0.copy()
    steps = []
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        m = active[:, t][:, None]                                # (B,1) bool
        xt = x[:, t, :]
        h_new, saved = step(xt, h, W_ih, W_hh, b_ih, b_hh)
        steps.append(dict(t=t, m=m, x=xt, h_prev=h, h_new=h_new, **saved))
        h = np.where(m, h_new, h)
        y[:, t, :] = np.where(m, h_new, 0.0)
    return y, h, steps


def _direction_backward(steps, dy, dh_last, W_ih, W_hh, b_hh_size, in_size, step_backward):
    """Reverse of _direction_forward. dy (B,T,H) (already masked), dh_last (B,H)."""
    B, T, H = dy.shape
    dW_ih = np.zeros_like(W_ih)
    dW_hh = np.zeros_like(W_hh)
    db_ih = np.zeros(W_ih.shape[0])
    db_hh = np.zeros(b_hh_size)
    dx = np.zeros((B, T, in_size))
    dh = dh_last.copy()
    for st in reversed(steps):
        t, m = st["t"], st["m"].astype(np.float64)
        g = dh + m * dy[:, t, :]          # gradient w.r.t. h_new where active, w.r.t. h otherwise
        gm = g * m                         # only active rows see the cell
        dgi, dgh, dh_prev = step_backward(st, gm, W_hh, dW_hh)
        db_hh += dgh.sum(axis=0)
        dW_ih += dgi.T @ st["x"]
        db_ih += dgi.sum(axis=0)
        dx[:, t, :] = dgi @ W_ih
        dh = dh_prev + (1.0 - m) * g       # inactive rows: the state passes through unchanged
    return dx, dh, dW_ih, dW_hh, db_ih, db_hh


# ----------------------------------------------------------------------------------------------
# full network
# ----------------------------------------------------------------------------------------------
def _active_mask(lengths, B, T):
    if lengths is None:
        return np.ones((B, T), dtype=bool)
    lengths = np.asarray(lengths)
    assert lengths.shape == (B,), "lengths must have one entry per sequence"
    assert np.all((lengths >= 1) & (lengths <= T)), "lengths must lie in [1, T]"
    return np.arange(T)[None, :] < lengths[:, None]


def forward(x, params, *, cell="gru", num_layers, hidden_size, bidirectional=False,
            reset_after=True, h0=None, lengths=None, dropout_masks=None, residual=False):
    """A stack of ``cell`` layers. Returns (out (B,T,D*H), h_n (L*D,B,H), cache), all float64."""
    _check_cell(cell)
    x = np.asarray(x, dtype=np.float64)
    B, T, I = x.shape
    H, L = hidden_size, num_layers
    D = 2 if bidirectional else 1
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    expected = param_shapes(I, H, L, bidirectional, reset_after, cell)
    assert set(P) == set(expected), (sorted(P), sorted(expected))
    for name, shape in expected.items():
        assert P[name].shape == shape, (name, P[name].shape, shape)
    h0 = np.zeros((L * D, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    assert h0.shape == (L * D, B, H)
    dropout_masks = [np.asarray(mk, dtype=np.float64) for mk in (dropout_masks or [])]
    assert len(dropout_masks) in (0, L - 1), "need one dropout mask per layer 0..L-2 (or none)"
    active = _active_mask(lengths, B, T)
    step, _ = _step(cell, reset_after)

    h_n = np.zeros((L * D, B, H))
    layers = []
    inp = x
    for k in range(L):
        ys, dirs = [], []
        for d, s in enumerate(_suffixes(bidirectional)):
            y, h_last, steps = _direction_forward(
                inp, h0[k * D + d], active, P[f"weight_ih_l{k}{s}"], P[f"weight_hh_l{k}{s}"],
                P[f"bias_ih_l{k}{s}"], P[f"bias_hh_l{k}{s}"], reverse=(d == 1), step=step)
            ys.append(y)
            dirs.append(steps)
            h_n[k * D + d] = h_last
        y = np.concatenate(ys, axis=2)
        if residual and k > 0:
            y = y + inp
        layers.append(dict(inp_size=inp.shape[2], dirs=dirs))
        if k < L - 1 and dropout_masks:
            assert dropout_masks[k].shape == y.shape
            y = y * dropout_masks[k]
        inp = y
    cache = dict(params=P, layers=layers, num_layers=L, hidden_size=H, D=D, cell=cell,
                 bidirectional=bidirectional, reset_after=reset_after, active=active,
                 dropout_masks=dropout_masks, shape=(B, T, I), residual=residual)
    return inp, h_n, cache


def backward(cache, d_out, d_h_n=None):
    """Returns (dx (B,T,I), dh0 (L*D,B,H), grads dict keyed like params), all float64."""
    P, L, H, D = cache["params"], cache["num_layers"], cache["hidden_size"], cache["D"]
    B, T, I = cache["shape"]
    _, step_backward = _step(cache["cell"], cache["reset_after"])
    active = cache["active"].astype(np.float64)[:, :, None]
    d_out = np.asarray(d_out, dtype=np.float64)
    assert d_out.shape == (B, T, D * H)
    d_h_n = np.zeros((L * D, B, H)) if d_h_n is None else np.asarray(d_h_n, dtype=np.float64)
    assert d_h_n.shape == (L * D, B, H)
    grads, dh0 = {}, np.zeros((L * D, B, H))
    dy = d_out * active                      # gradients at padded positions are ignored
    for k in range(L - 1, -1, -1):
        layer = cache["layers"][k]
        dinp = np.zeros((B, T, layer["inp_size"]))
        for d, s in enumerate(_suffixes(cache["bidirectional"])):
            dx_d, dh, dW_ih, dW_hh, db_ih, db_hh = _direction_backward(
                layer["dirs"][d], dy[:, :, d * H:(d + 1) * H], d_h_n[k * D + d],
                P[f"weight_ih_l{k}{s}"], P[f"weight_hh_l{k}{s}"], P[f"bias_hh_l{k}{s}"].size,
                layer["inp_size"], step_backward)
            dinp += dx_d
            dh0[k * D + d] = dh
            grads[f"weight_ih_l{k}{s}"] = dW_ih
            grads[f"weight_hh_l{k}{s}"] = dW_hh
            grads[f"bias_ih_l{k}{s}"] = db_ih
            grads[f"bias_hh_l{k}{s}"] = db_hh
        if k > 0:
            if cache["residual"]:
                dinp = dinp + dy
            if cache["dropout_masks"]:
                dinp = dinp * cache["dropout_masks"][k - 1]
            dy = dinp * active
        else:
            dx = dinp
    grads = {name: grads[name] for name in param_names(L, cache["bidirectional"])}
    return dx, dh0, grads


def gru_forward(x, params, **kw):
    """:func:`forward` of a GRU stack (keywords as there, ``reset_after`` included)."""
    return forward(x, params, cell="gru", **kw)


def rnn_forward(x, params, *, nonlinearity="tanh", **kw):
    """:func:`forward` of a vanilla RNN stack, ``nonlinearity`` as ``torch.nn.RNN``'s."""
    assert nonlinearity in _ACTS, nonlinearity
    return forward(x, params, cell=f"rnn_{nonlinearity}", **kw)


gru_backward = rnn_backward = backward       # the cache says which cell ran


# ----------------------------------------------------------------------------------------------
# layer normalisation and recurrent dropout (one layer, GRU reset_after=True or vanilla RNN):
#   LN(v; g, beta) = g (v - mean v) / sqrt(var v + eps) + beta   over the G = N*H entries of v
#   a_i = LN(W_ih x; g_ih, beta_ih) + b_ih
#   a_h = LN([W_hr (h m_r), W_hz (h m_z), W_hn (h m_n)]; g_hh, beta_hh) + b_hh
#   GRU: r = σ(a_i,r + a_h,r), z = σ(..z), n = tanh(a_i,n + r a_h,n), h' = (1-z) n + z h
#   RNN: h' = act(a_i + a_h)  (one block, one mask)
# masks: (D, N, B, H) explicit (all ones: no recurrent dropout); layer_norm False: LN = id.
# ----------------------------------------------------------------------------------------------
LN_EPS = 1e-5


def general_param_shapes(input_size, hidden_size, cell="gru", bidirectional=False,
                         layer_norm=False):
    """Names and shapes of one layer's parameters (layer index 0), numgru's order."""
    N = 3 if cell == "gru" else 1
    G = N * hidden_size
    shapes = {}
    for s in _suffixes(bidirectional):
        shapes[f"weight_ih_l0{s}"] = (G, input_size)
        shapes[f"weight_hh_l0{s}"] = (G, hidden_size)
        shapes[f"bias_ih_l0{s}"] = (G,)
        shapes[f"bias_hh_l0{s}"] = (G,)
        if layer_norm:
            for kind in ("layer_norm_ih_weight", "layer_norm_ih_bias", "layer_norm_hh_weight",
                         "layer_norm_hh_bias"):
                shapes[f"{kind}_l0{s}"] = (G,)
    return shapes


def _ln_forward(v, g, beta):
    """Rows of v (B, G): (y, xhat, rstd)."""
    mu = v.mean(axis=1, keepdims=True)
    var = ((v - mu) ** 2).mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + LN_EPS)
    xhat = (v - mu) * rstd
    return g * xhat + beta, xhat, rstd


def _ln_backward(dy, g, xhat, rstd):
    """(dv, dg, dbeta) of _ln_forward."""
    dxh = dy * g
    dv = rstd * (dxh - dxh.mean(axis=1, keepdims=True)
                 - xhat * (dxh * xhat).mean(axis=1, keepdims=True))
    return dv, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def general_layer_forward(x, params, *, hidden_size, cell="gru", bidirectional=False, h0=None,
                          lengths=None, layer_norm=False, masks=None):
    """One GRU (reset_after=True) or RNN layer ("rnn_tanh", "rnn_relu") with layer_norm and
    recurrent masks (D, N, B, H) (None: ones). Returns (out (B,T,D*H), h_n (D,B,H), cache)."""
    x = np.asarray(x, dtype=np.float64)
    B, T, I = x.shape
    H = hidden_size
    D = 2 if bidirectional else 1
    N = 3 if cell == "gru" else 1
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    expected = general_param_shapes(I, H, cell, bidirectional, layer_norm)
    assert set(P) == set(expected), (sorted(P), sorted(expected))
    h0 = np.zeros((D, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    masks = np.ones((D, N, B, H)) if masks is None else np.asarray(masks, dtype=np.float64)
    assert masks.shape == (D, N, B, H)
    active = _active_mask(lengths, B, T)
    out = np.zeros((B, T, D * H))
    h_n = np.zeros((D, B, H))
    dirs = []
    for d, s in enumerate(_suffixes(bidirectional)):
        W_ih, W_hh = P[f"weight_ih_l0{s}"], P[f"weight_hh_l0{s}"]
        b_ih, b_hh = P[f"bias_ih_l0{s}"], P[f"bias_hh_l0{s}"]
        h = h0[d].copy()
        steps = []
        for t in (range(T - 1, -1, -1) if d == 1 else range(T)):
            m = active[:, t][:, None]
            xt = x[:, t]
            st = dict(t=t, m=m, x=xt, h_prev=h)
            vi = xt @ W_ih.T
            vh = np.concatenate([(h * masks[d, g]) @ W_hh[g * H:(g + 1) * H].T
                                 for g in range(N)], axis=1)
            if layer_norm:
                yi, st["xhat_i"], st["rstd_i"] = _ln_forward(
                    vi, P[f"layer_norm_ih_weight_l0{s}"], P[f"layer_norm_ih_bias_l0{s}"])
                yh, st["xhat_h"], st["rstd_h"] = _ln_forward(
                    vh, P[f"layer_norm_hh_weight_l0{s}"], P[f"layer_norm_hh_bias_l0{s}"])
            else:
                yi, yh = vi, vh
            ai, ah = yi + b_ih, yh + b_hh
            if cell == "gru":
                r = sigmoid(ai[:, :H] + ah[:, :H])
                z = sigmoid(ai[:, H:2 * H] + ah[:, H:2 * H])
                n = tanh(ai[:, 2 * H:] + r * ah[:, 2 * H:])
                h_new = (1.0 - z) * n + z * h
                st.update(r=r, z=z, n=n, ahn=ah[:, 2 * H:])
            else:
                a = ai + ah
                h_new = _ACTS[cell[4:]](a)
                st.update(a=a)
            steps.append(st)
            h = np.where(m, h_new, h)
            out[:, t, d * H:(d + 1) * H] = np.where(m, h_new, 0.0)
        h_n[d] = h
        dirs.append(steps)
    cache = dict(P=P, dirs=dirs, H=H, D=D, N=N, cell=cell, masks=masks, active=active,
                 layer_norm=layer_norm, shape=(B, T, I), bidirectional=bidirectional)
    return out, h_n, cache


def general_layer_backward(cache, d_out, d_h_n=None):
    """Returns (dx (B,T,I), dh0 (D,B,H), grads keyed like params), float64."""
    P, H, D, N, cell = cache["P"], cache["H"], cache["D"], cache["N"], cache["cell"]
    B, T, I = cache["shape"]
    masks, layer_norm = cache["masks"], cache["layer_norm"]
    d_out = np.asarray(d_out, dtype=np.float64) * cache["active"][:, :, None]
    d_h_n = np.zeros((D, B, H)) if d_h_n is None else np.asarray(d_h_n, dtype=np.float64)
    dx = np.zeros((B, T, I))
    dh0 = np.zeros((D, B, H))
    grads = {}
    for d, s in enumerate(_suffixes(cache["bidirectional"])):
        W_ih, W_hh = P[f"weight_ih_l0{s}"], P[f"weight_hh_l0{s}"]
        gr = {k: np.zeros_like(v) for k, v in P.items() if k.endswith(f"_l0{s}")}
        dh = d_h_n[d].copy()
        for st in reversed(cache["dirs"][d]):
            t, m = st["t"], st["m"].astype(np.float64)
            g = dh + m * d_out[:, t, d * H:(d + 1) * H]
            gm = g * m
            if cell == "gru":
                r, z, n, h_prev = st["r"], st["z"], st["n"], st["h_prev"]
                dan = gm * (1.0 - z) * (1.0 - n * n)
                daz = gm * (h_prev - n) * z * (1.0 - z)
                dar = dan * st["ahn"] * r * (1.0 - r)
                dai = np.concatenate([dar, daz, dan], axis=1)
                dah = np.concatenate([dar, daz, r * dan], axis=1)
                direct = gm * z
            else:
                if cell == "rnn_tanh":
                    da = gm * (1.0 - np.tanh(st["a"]) ** 2)
                else:
                    da = gm * (st["a"] > 0)
                dai = dah = da
                direct = 0.0
            gr[f"bias_ih_l0{s}"] += dai.sum(axis=0)
            gr[f"bias_hh_l0{s}"] += dah.sum(axis=0)
            if layer_norm:
                dvi, dg, db = _ln_backward(dai, P[f"layer_norm_ih_weight_l0{s}"], st["xhat_i"],
                                           st["rstd_i"])
                gr[f"layer_norm_ih_weight_l0{s}"] += dg
                gr[f"layer_norm_ih_bias_l0{s}"] += db
                dvh, dg, db = _ln_backward(dah, P[f"layer_norm_hh_weight_l0{s}"], st["xhat_h"],
                                           st["rstd_h"])
                gr[f"layer_norm_hh_weight_l0{s}"] += dg
                gr[f"layer_norm_hh_bias_l0{s}"] += db
            else:
                dvi, dvh = dai, dah
            gr[f"weight_ih_l0{s}"] += dvi.T @ st["x"]
            dx[:, t] += dvi @ W_ih
            dh_prev = direct
            for gg in range(N):
                blk = slice(gg * H, (gg + 1) * H)
                hm = st["h_prev"] * masks[d, gg]
                gr[f"weight_hh_l0{s}"][blk] += dvh[:, blk].T @ hm
                dh_prev = dh_prev + (dvh[:, blk] @ W_hh[blk]) * masks[d, gg]
            dh = dh_prev + (1.0 - m) * g
        dh0[d] = dh
        grads.update(gr)
    grads = {k: grads[k] for k in P}
    return dx, dh0, grads


# ----------------------------------------------------------------------------------------------
# language-model layers: embedding, and the softmax over the vocabulary
# V vocabulary, E embedding width, M rows (flattened (b, t) positions), K features
# ----------------------------------------------------------------------------------------------
def embedding_forward(ids, weight):
    """out[b, t] = weight[ids[b, t]]: ids (B, T) ints, weight (V, E) -> (B, T, E)."""
    return np.asarray(weight, dtype=np.float64)[np.asarray(ids)]


def embedding_backward(ids, d_out, num_embeddings):
    """d_weight (V, E): row v is the sum of d_out[b, t] over the (b, t) with ids[b, t] == v."""
    ids = np.asarray(ids).reshape(-1)
    d_out = np.asarray(d_out, dtype=np.float64).reshape(ids.shape[0], -1)
    d_weight = np.zeros((num_embeddings, d_out.shape[1]))
    for m, v in enumerate(ids):
        d_weight[v] += d_out[m]
    return d_weight


def _logits(y, w, b):
    return (np.asarray(y, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
            + np.asarray(b, dtype=np.float64))


def _logsumexp(logits):
    """Row-wise log(sum(exp(l))), stably: the row max is subtracted first."""
    mx = logits.max(axis=1, keepdims=True)
    return (mx + np.log(np.exp(logits - mx).sum(axis=1, keepdims=True)))[:, 0]


def log_softmax(y, w, b):
    """Full log-probabilities (M, V) of the logits y @ w.T + b."""
    logits = _logits(y, w, b)
    return logits - _logsumexp(logits)[:, None]


def softmax_logprob(y, w, b, targets):
    """log softmax(y[m] @ w.T + b)[targets[m]] for every row: (M,)."""
    return log_softmax(y, w, b)[np.arange(len(targets)), np.asarray(targets)]


def softmax_xent(y, w, b, targets, weights):
    """Weighted cross-entropy of the softmax over the vocabulary and its gradients.

    loss = sum_m weights[m] * (logsumexp(l[m]) - l[m, targets[m]]), l = y @ w.T + b.
    Returns (loss, dy (M, K), dw (V, K), db (V,)), all float64.
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    rows = np.arange(len(targets))
    logp = log_softmax(y, w, b)
    loss = float(np.sum(weights * -logp[rows, targets]))
    g = np.exp(logp)                       # softmax
    g[rows, targets] -= 1.0                # - onehot
    g *= weights[:, None]
    return loss, g @ w, g.T @ y, g.sum(axis=0)
