"""Layers of the engine's stack: recurrent cells and the layers between them.

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2).

Every layer has the same small interface, which :class:`numgru._stack.Stack` drives:

``input_size``, ``output_size``
    Features per timestep in and out.
``num_states``, ``state_size``
    Recurrent states the layer takes in ``h0`` / gives back in ``h_n``: ``num_states`` arrays
    of (B, ``state_size``) stacked as (num_states, B, state_size) (0 for stateless layers).
``params``
    dict of the layer's parameter arrays (host, the source of truth), in ``param_keys`` order;
    ``is_weight`` flags those the L2 penalty applies to.
``forward(ctx, params, inp, h0, h_n, fresh) -> (out, saved)``
    ``params``: the native copies of ``self.params``; ``inp`` (B, T, input_size) native;
    ``h0``/``h_n``: (num_states, B, state_size) native (read / written), None if stateless;
    ``fresh``: the output is handed to the caller (allocate it, don't use the workspace).
    ``saved`` is what backward needs (None for an inference forward).
``backward(ctx, params, saved, d_out, d_h_n, dh0, need_dx) -> (d_inp, grads)``
    Writes dh0 (if stateful); returns the input gradient (None if not ``need_dx``) and a dict
    of host gradient arrays keyed like ``params``.

A new recurrent cell is one kernel pair in each backend (see :mod:`numgru._contract`) plus a
class here registered with :func:`register_cell`; a new layer between cells (residual add,
embedding, a head) is a class with this interface.
"""

import numpy as np

from ._cell_kinds import KIND_GRU, KIND_RNN_RELU, KIND_RNN_TANH

CELLS = {}


def register_cell(name):
    """Class decorator: make a recurrent layer class available as ``cell=name``."""

    def deco(cls):
        cls.cell = name
        CELLS[name] = cls
        return cls

    return deco


def get_cell(name):
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; known cells: {sorted(CELLS)}") from None


class Context:
    """What one forward or backward call shares with its layers.

    be        the backend
    lengths   (B,) native valid lengths
    training  keep what backward needs, apply dropout
    rng       numpy Generator for dropout masks (training forwards)
    work      ``work(key, shape)``: a scratch array kept between calls (never handed out)
    """

    def __init__(self, be, dtype, lengths, training, rng, work):
        self.be = be
        self.dtype = dtype
        self.lengths = lengths
        self.training = training
        self.rng = rng
        self.work = work



_LN_KEYS = ("ln_ih_g", "ln_ih_b", "ln_hh_g", "ln_hh_b")
_LN_KINDS = ("layer_norm_ih_weight", "layer_norm_ih_bias", "layer_norm_hh_weight",
             "layer_norm_hh_bias")


def check_recurrent_dropout(p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer,
                                                             np.floating)) \
            or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"recurrent_dropout must be a number in [0, 1), got {p!r}")
    return float(p)


class _GeneralCell:
    """What the recurrent cells (``GRULayer``, ``RNNLayer``) share: sizes, the packed
    parameters of N = ``gates`` blocks of H rows per direction and their PyTorch views and
    initialisation, and layer normalisation and recurrent dropout.

    With ``layer_norm`` or ``recurrent_dropout > 0`` a layer runs the general kernels
    (``backend.ln_rows_forward``, ``norm_layer_forward`` and their backwards, see
    :mod:`numgru._cpu_norm` for the equations); otherwise the fast kernels of its cell.
    Extra parameters with ``layer_norm`` (gains init 1, biases 0; not weights for the L2
    penalty, like biases), G = N*H (N gate blocks):

    ln_ih_g, ln_ih_b (D, G)   gain and bias of the LN of W_ih x
    ln_hh_g, ln_hh_b (D, G)   gain and bias of the LN of the recurrent products

    Recurrent dropout masks (D, N, B, H) are drawn once per training forward from the
    context's rng: ``(rng.random((D, N, B, H)) >= p) / (1 - p)``; the host copy is kept in
    ``saved`` (``Stack.recurrent_masks``).
    """

    gates = 1
    kind = KIND_RNN_TANH       # the general kernels' cell kind (numgru._cell_kinds)
    reset_after = True          # only GRULayer has the other form (b_hh's n part then unused)
    param_keys = ("w_ih", "w_hh", "b_ih", "b_hh")
    is_weight = (True, True, False, False)
    torch_kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def _init_cell(self, input_size, hidden_size, num_directions, dtype, layer_norm,
                   recurrent_dropout):
        """Sizes, zeroed packed parameters (G = gates * H rows per direction), and the general
        kernels' options."""
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_directions = int(num_directions)
        self.dtype = np.dtype(dtype)
        H, D, G = self.hidden_size, self.num_directions, self.gates * self.hidden_size
        self.params = {"w_ih": np.zeros((D * G, self.input_size), self.dtype),
                       "w_hh": np.zeros((D, G, H), self.dtype),
                       "b_ih": np.zeros(D * G, self.dtype),
                       "b_hh": np.zeros((D, G), self.dtype)}
        self._init_general(layer_norm, recurrent_dropout)

    # ------------------------------------------------------------------ sizes and layout
    @property
    def output_size(self):
        return self.num_directions * self.hidden_size

    @property
    def num_states(self):
        return self.num_directions

    @property
    def state_size(self):
        return self.hidden_size

    def torch_shape(self, kind):
        """Shape of one direction's parameter under PyTorch's name ``{kind}_l{k}{suffix}``."""
        H, G = self.hidden_size, self.gates * self.hidden_size
        if kind.startswith("layer_norm"):
            return (G,)
        return {"weight_ih": (G, self.input_size), "weight_hh": (G, H), "bias_ih": (G,),
                "bias_hh": (G,) if self.reset_after else (2 * H,)}[kind]

    def view(self, arrays, kind, d):
        """The writable view of direction d's ``kind`` parameter inside packed ``arrays``."""
        if kind.startswith("layer_norm"):
            return self._ln_view(arrays, kind, d)
        G = self.gates * self.hidden_size
        if kind == "weight_ih":
            return arrays["w_ih"][d * G:(d + 1) * G]
        if kind == "weight_hh":
            return arrays["w_hh"][d]
        if kind == "bias_ih":
            return arrays["b_ih"][d * G:(d + 1) * G]
        return arrays["b_hh"][d] if self.reset_after else arrays["b_hh"][d, : 2 * self.hidden_size]

    def init_params(self, rng):
        """PyTorch's initialisation: every weight and bias uniform in [-1/sqrt(H), 1/sqrt(H)],
        drawn per direction in state_dict order (weight_ih, weight_hh, bias_ih, bias_hh)."""
        bound = 1.0 / np.sqrt(self.hidden_size)
        for d in range(self.num_directions):
            for kind in type(self).torch_kinds:
                self.view(self.params, kind, d)[...] = rng.uniform(-bound, bound,
                                                                   self.torch_shape(kind))
        self._init_ln()     # layer norm: gains 1, biases 0 (no draws: same weights as without)

    def _init_general(self, layer_norm, recurrent_dropout):
        self.layer_norm = bool(layer_norm)
        self.recurrent_dropout = check_recurrent_dropout(recurrent_dropout)
        if self.layer_norm:
            D, G = self.num_directions, self.gates * self.hidden_size
            for key in _LN_KEYS:
                self.params[key] = (np.ones if key.endswith("_g") else np.zeros)((D, G),
                                                                                 self.dtype)
            self.param_keys = type(self).param_keys + _LN_KEYS
            self.is_weight = type(self).is_weight + (False,) * 4
            self.torch_kinds = type(self).torch_kinds + _LN_KINDS

    @property
    def general(self):
        """True when the layer runs the general kernels."""
        return self.layer_norm or self.recurrent_dropout > 0

    def _ln_view(self, arrays, kind, d):
        return arrays[_LN_KEYS[_LN_KINDS.index(kind)]][d]

    def _init_ln(self):
        if self.layer_norm:
            for key in _LN_KEYS:
                self.params[key][...] = 1 if key.endswith("_g") else 0

    def _general_forward(self, ctx, p, inp, h0, h_n, fresh):
        be, work = ctx.be, ctx.work
        B, T, I = inp.shape
        H, D, N = self.hidden_size, self.num_directions, self.gates
        G = N * H
        dt = ctx.dtype
        mode = "train" if ctx.training else "infer"
        key = (id(self), mode)
        none4 = be.empty((D, 0, 0, 0), dt)
        out = be.empty((B, T, D * H), dt) if fresh else work(key + ("out",), (B, T, D * H))
        # input side: v = W_ih x, then LN (+ b_ih) in place, as (rows, D, G)
        gi = work(key + ("gi",), (B, T, D * G))
        be.gemm(inp.reshape(B * T, I), p["w_ih"].T, be.empty(0, dt), gi.reshape(B * T, D * G))
        gi3 = gi.reshape(B * T, D, G)
        if self.layer_norm:
            xhat_i = work(key + ("xhat_i",), (B * T, D, G))
            rstd_i = work(key + ("rstd_i",), (B * T, D))
            g_ih, b_ln, g_hh, b_hh_ln = p["ln_ih_g"], p["ln_ih_b"], p["ln_hh_g"], p["ln_hh_b"]
        else:
            xhat_i, rstd_i = be.empty((0, D, G), dt), be.empty((0, D), dt)
            g_ih = b_ln = g_hh = b_hh_ln = be.empty((D, 0), dt)
        be.ln_rows_forward(gi3, g_ih, b_ln, p["b_ih"].reshape(D, G), self.layer_norm, xhat_i,
                           rstd_i, gi3)
        masks_host = None
        masks = none4
        if ctx.training and self.recurrent_dropout > 0:
            q = self.recurrent_dropout
            masks_host = ((ctx.rng.random((D, N, B, H)) >= q).astype(dt)
                          / np.dtype(dt).type(1.0 - q))
            masks = be.upload(masks_host)
        store = ctx.training
        if store:
            gates = work((id(self), "gates"), (D, T, B, G))
            ahn = (work((id(self), "ahn"), (D, T, B, H)) if self.kind == KIND_GRU else none4)
            xh = work((id(self), "xh"), (D, T, B, G)) if self.layer_norm else none4
            rstd = (work((id(self), "rstd"), (D, T, B)) if self.layer_norm
                    else be.empty((D, 0, 0), dt))
            hprev = work((id(self), "hprev"), (D, T, B, H))
            hm = work((id(self), "hm"), (D, T, B, G)) if masks_host is not None else none4
        else:
            gates = ahn = xh = hprev = hm = none4
            rstd = be.empty((D, 0, 0), dt)
        be.norm_layer_forward(gi, p["w_hh"], p["b_hh"], g_hh, b_hh_ln, masks, h0, ctx.lengths,
                              self.kind, self.layer_norm, out, h_n, store, gates, ahn, xh, rstd,
                              hprev, hm)
        if not store:
            return out, None
        saved = dict(inp=inp, xhat_i=xhat_i, rstd_i=rstd_i, masks=masks_host, masks_n=masks,
                     gates=gates, ahn=ahn, xh=xh, rstd=rstd, hprev=hprev, hm=hm)
        return out, saved

    def _general_backward(self, ctx, p, sv, d_out, d_h_n, dh0, need_dx, fresh_dx):
        """dgi (gradient of a_i) and dgh (of the raw recurrent products) from the backward
        recurrence; the input-side LN backward turns dgi into the gradient of W_ih x in
        place; then ``dW_ih = dv^T x``, ``dW_hh`` block g = ``dgh_g^T (h_prev * m_g)`` and
        ``dx = dv @ W_ih``. Bias, gain and LN-bias gradients are row sums."""
        be, work = ctx.be, ctx.work
        inp = sv["inp"]
        B, T, in_k = inp.shape
        H, D, N = self.hidden_size, self.num_directions, self.gates
        G = N * H
        dt = ctx.dtype
        dgi = work("dgi", (B, T, D * G))
        dgh = work("dgh", (D, T, B, G))                          # time-major
        g_hh = p["ln_hh_g"] if self.layer_norm else be.empty((D, 0), dt)
        sums = be.norm_layer_backward(d_out, d_h_n, sv["gates"], sv["ahn"], sv["xh"],
                                      sv["rstd"], sv["hprev"], p["w_hh"], g_hh, sv["masks_n"],
                                      ctx.lengths, self.kind, self.layer_norm, dgi, dgh,
                                      dh0)                        # (D, 3, G) host
        grads = {}
        if self.layer_norm:
            dgi3 = dgi.reshape(B * T, D, G)
            grads["ln_ih_g"] = be.ln_rows_backward(dgi3, sv["xhat_i"], sv["rstd_i"],
                                                   p["ln_ih_g"], dgi3)
            grads["ln_ih_b"] = sums[:, 0].copy()
            grads["ln_hh_g"] = sums[:, 2].copy()
            grads["ln_hh_b"] = sums[:, 1].copy()
        dv2 = dgi.reshape(B * T, D * G)
        g_ih = be.empty((D * G, in_k), dt)
        be.gemm_tn(dv2, inp.reshape(B * T, in_k), g_ih)
        w_hh = np.empty((D, G, H), dtype=dt)
        for d in range(D):
            if sv["masks"] is None:
                gd = be.empty((G, H), dt)
                be.gemm_tn(dgh[d].reshape(T * B, G), sv["hprev"][d].reshape(T * B, H), gd)
                w_hh[d] = be.to_host(gd)
            else:   # all blocks against all masked states; the diagonal blocks are dW_hh
                gd = be.empty((G, G), dt)
                be.gemm_tn(dgh[d].reshape(T * B, G), sv["hm"][d].reshape(T * B, G), gd)
                full = be.to_host(gd)
                for g in range(N):
                    w_hh[d, g * H:(g + 1) * H] = full[g * H:(g + 1) * H, g * H:(g + 1) * H]
        grads.update({"w_ih": be.to_host(g_ih), "w_hh": w_hh,
                      "b_ih": sums[:, 0].reshape(-1).copy(), "b_hh": sums[:, 1].copy()})
        if not need_dx:
            return None, grads
        d_inp = (be.empty((B, T, in_k), dt) if fresh_dx
                 else work((id(self), "d_inp"), (B, T, in_k)))
        be.gemm(dv2, p["w_ih"], be.empty(0, dt), d_inp.reshape(B * T, in_k))
        return d_inp, grads


@register_cell("gru")
class GRULayer(_GeneralCell):
    """One GRU layer with D directions (gate order r, z, n; PyTorch's layout).

    Packed parameters (both directions in one array, so that the input projection of all
    directions is one product):

    w_ih (D*3H, I)   input weights, direction d at rows d*3H
    w_hh (D, 3H, H)  recurrent weights
    b_ih (D*3H,)     input biases
    b_hh (D, 3H)     recurrent biases; with reset_after=False the n part is 0 and unused

    ``reset_after``: True is PyTorch's / cuDNN's form, False Cho et al. 2014's.
    """

    gates = 3
    kind = KIND_GRU   # the general kernels' cell kind (numgru._cell_kinds)

    def __init__(self, input_size, hidden_size, num_directions, dtype, reset_after=True,
                 layer_norm=False, recurrent_dropout=0.0):
        self.reset_after = bool(reset_after)
        if not self.reset_after and layer_norm:
            raise ValueError("layer_norm=True needs reset_after=True: with reset_after=False "
                             "the n gate's recurrent pre-activation W_hn (r * h) depends on r, "
                             "so a layer norm over the 3H recurrent pre-activations would be "
                             "circular")
        if not self.reset_after and recurrent_dropout:
            raise ValueError("recurrent_dropout > 0 needs reset_after=True (not implemented "
                             "for the reset_after=False form)")
        self._init_cell(input_size, hidden_size, num_directions, dtype, layer_norm,
                        recurrent_dropout)

    # ------------------------------------------------------------------ forward / backward
    def forward(self, ctx, p, inp, h0, h_n, fresh):
        if self.general:
            return self._general_forward(ctx, p, inp, h0, h_n, fresh)
        be, work = ctx.be, ctx.work
        B, T = inp.shape[0], inp.shape[1]
        H, D = self.hidden_size, self.num_directions
        key = id(self)
        out = (be.empty((B, T, D * H), ctx.dtype) if fresh
               else work((key, "infer" if not ctx.training else "train", "out"), (B, T, D * H)))
        if ctx.training:
            gates = work((key, "gates"), (D, T, B, 3 * H))            # time-major
            hn_s = (work((key, "hn_s"), (D, T, B, H)) if self.reset_after
                    else be.empty((D, 0, 0, 0), ctx.dtype))
            hprev = work((key, "hprev"), (D, T, B, H))
        else:
            gates = hn_s = hprev = be.empty((D, 0, 0, 0), ctx.dtype)
        be.gru_layer_forward(inp, p["w_ih"], p["b_ih"], p["w_hh"], p["b_hh"], h0, ctx.lengths,
                             self.reset_after, out, h_n, ctx.training, gates, hn_s, hprev)
        saved = (inp, gates, hn_s, hprev) if ctx.training else None
        return out, saved

    def backward(self, ctx, p, saved, d_out, d_h_n, dh0, need_dx, fresh_dx):
        """dgi / dgh from the backward recurrence, then every weight gradient as one product
        over all timesteps (``dW_ih = dgi^T x``, ``dW_hh = dgh^T h_prev``) and
        ``dx = dgi @ W_ih``."""
        if self.general:
            return self._general_backward(ctx, p, saved, d_out, d_h_n, dh0, need_dx, fresh_dx)
        be, work = ctx.be, ctx.work
        inp, gates, hn_s, hprev = saved
        B, T, in_k = inp.shape
        H, D = self.hidden_size, self.num_directions
        dgi = work("dgi", (B, T, D * 3 * H))
        dgh = work("dgh", (D, T, B, 3 * H))                       # time-major
        dbias = be.gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev, p["w_hh"], ctx.lengths,
                                      self.reset_after, dgi, dgh, dh0)     # (D, 2, 3H) host
        dgi2 = dgi.reshape(B * T, D * 3 * H)
        g_ih = be.empty((D * 3 * H, in_k), ctx.dtype)
        be.gemm_tn(dgi2, inp.reshape(B * T, in_k), g_ih)
        g_hh = be.empty((D, 3 * H, H), ctx.dtype)
        for d in range(D):
            be.gru_hh_weight_grad(dgh[d].reshape(B * T, 3 * H), hprev[d].reshape(B * T, H),
                                  gates[d].reshape(B * T, 3 * H), self.reset_after, g_hh[d])
        b_hh = np.zeros((D, 3 * H), dtype=ctx.dtype)
        b_hh[:, : 3 * H if self.reset_after else 2 * H] = \
            dbias[:, 1, : 3 * H if self.reset_after else 2 * H]
        grads = {"w_ih": be.to_host(g_ih), "w_hh": be.to_host(g_hh),
                 "b_ih": dbias[:, 0].reshape(-1).copy(), "b_hh": b_hh}
        if not need_dx:
            return None, grads
        d_inp = (be.empty((B, T, in_k), ctx.dtype) if fresh_dx
                 else work((id(self), "d_inp"), (B, T, in_k)))
        be.gemm(dgi2, p["w_ih"], be.empty(0, ctx.dtype), d_inp.reshape(B * T, in_k))
        return d_inp, grads


class RNNLayer(_GeneralCell):
    """One vanilla (Elman) RNN layer with D directions, as ``torch.nn.RNN``::

        h' = act(W_ih x + b_ih + W_hh h + b_hh)        act = tanh or relu

    registered as the cells ``"rnn_tanh"`` (:class:`RNNTanhLayer`) and ``"rnn_relu"``
    (:class:`RNNReLULayer`), which fix ``nonlinearity``. Packed parameters (both directions in
    one array, so that the input projection of all directions is one product):

    w_ih (D*H, I)   input weights, direction d at rows d*H
    w_hh (D, H, H)  recurrent weights
    b_ih (D*H,)     input biases
    b_hh (D, H)     recurrent biases
    """

    nonlinearity = "tanh"

    def __init__(self, input_size, hidden_size, num_directions, dtype, layer_norm=False,
                 recurrent_dropout=0.0):
        self._init_cell(input_size, hidden_size, num_directions, dtype, layer_norm,
                        recurrent_dropout)

    @property
    def kind(self):
        return KIND_RNN_RELU if self.relu else KIND_RNN_TANH

    @property
    def relu(self):
        return self.nonlinearity == "relu"

    # ------------------------------------------------------------------ forward / backward
    def forward(self, ctx, p, inp, h0, h_n, fresh):
        if self.general:
            return self._general_forward(ctx, p, inp, h0, h_n, fresh)
        be, work = ctx.be, ctx.work
        B, T = inp.shape[0], inp.shape[1]
        H, D = self.hidden_size, self.num_directions
        key = id(self)
        out = (be.empty((B, T, D * H), ctx.dtype) if fresh
               else work((key, "infer" if not ctx.training else "train", "out"), (B, T, D * H)))
        states = (work((key, "states"), (D, T + 1, B, H)) if ctx.training
                  else be.empty((D, 0, 0, 0), ctx.dtype))
        be.rnn_layer_forward(inp, p["w_ih"], p["b_ih"], p["w_hh"], p["b_hh"], h0, ctx.lengths,
                             self.relu, out, h_n, ctx.training, states)
        saved = (inp, states) if ctx.training else None
        return out, saved

    def backward(self, ctx, p, saved, d_out, d_h_n, dh0, need_dx, fresh_dx):
        """da from the backward recurrence (batch-major ``dgi``, time-major ``dgh``), then every
        weight gradient as one product over all timesteps (``dW_ih = dgi^T x``,
        ``dW_hh = dgh^T h_prev`` with h_prev the T states the steps read) and
        ``dx = dgi @ W_ih``."""
        if self.general:
            return self._general_backward(ctx, p, saved, d_out, d_h_n, dh0, need_dx, fresh_dx)
        be, work = ctx.be, ctx.work
        inp, states = saved
        B, T, in_k = inp.shape
        H, D = self.hidden_size, self.num_directions
        dgi = work("dgi", (B, T, D * H))
        dgh = work("dgh", (D, T, B, H))                           # time-major
        dbias = be.rnn_layer_backward(d_out, d_h_n, states, p["w_hh"], ctx.lengths, self.relu,
                                      dgi, dgh, dh0)              # (D, 2, H) host
        dgi2 = dgi.reshape(B * T, D * H)
        g_ih = be.empty((D * H, in_k), ctx.dtype)
        be.gemm_tn(dgi2, inp.reshape(B * T, in_k), g_ih)
        g_hh = be.empty((D, H, H), ctx.dtype)
        for d in range(D):
            # direction 0 reads slots 0..T-1, direction 1 (run backwards) slots 1..T
            prev = states[d, 1:] if d == 1 else states[d, :T]
            be.gemm_tn(dgh[d].reshape(T * B, H), prev.reshape(T * B, H), g_hh[d])
        grads = {"w_ih": be.to_host(g_ih), "w_hh": be.to_host(g_hh),
                 "b_ih": dbias[:, 0].reshape(-1).copy(), "b_hh": dbias[:, 1].copy()}
        if not need_dx:
            return None, grads
        d_inp = (be.empty((B, T, in_k), ctx.dtype) if fresh_dx
                 else work((id(self), "d_inp"), (B, T, in_k)))
        be.gemm(dgi2, p["w_ih"], be.empty(0, ctx.dtype), d_inp.reshape(B * T, in_k))
        return d_inp, grads


@register_cell("rnn_tanh")
class RNNTanhLayer(RNNLayer):
    """:class:`RNNLayer` with ``act = tanh`` (``torch.nn.RNN(nonlinearity="tanh")``)."""

    nonlinearity = "tanh"


@register_cell("rnn_relu")
class RNNReLULayer(RNNLayer):
    """:class:`RNNLayer` with ``act = relu`` (``torch.nn.RNN(nonlinearity="relu")``)."""

    nonlinearity = "relu"


class Dropout:
    """Inverted dropout between layers (training forwards only).

    mask = (rng.random((B, T, F)) >= p) / (1 - p), drawn from the context's rng; the host mask
    is kept in ``saved`` (the engine reports it) and its native copy multiplies the gradient.
    """

    num_states = 0
    state_size = 0
    param_keys = ()
    is_weight = ()

    def __init__(self, size, p, dtype):
        self.input_size = self.output_size = int(size)
        self.p = float(p)
        self.dtype = np.dtype(dtype)
        self.params = {}

    def forward(self, ctx, p, inp, h0, h_n, fresh):
        if not ctx.training or self.p == 0:
            return inp, None
        be = ctx.be
        keep = ctx.rng.random(tuple(inp.shape)) >= self.p
        mask = keep.astype(self.dtype) / self.dtype.type(1.0 - self.p)
        mask_n = be.upload(mask)
        out = be.empty(inp.shape, self.dtype) if fresh else ctx.work((id(self), "out"), inp.shape)
        be.mul(inp, mask_n, out)
        return out, (mask, mask_n)

    def backward(self, ctx, p, saved, d_out, d_h_n, dh0, need_dx, fresh_dx):
        if not need_dx:
            return None, {}
        if saved is None:
            return d_out, {}
        be = ctx.be
        d_inp = (be.empty(d_out.shape, self.dtype) if fresh_dx
                 else ctx.work((id(self), "d_inp"), d_out.shape))
        be.mul(d_out, saved[1], d_inp)
        return d_inp, {}


class Embedding:
    """A lookup table of token vectors, the first layer of a language model
    (``torch.nn.Embedding``): ``out[b, t] = weight[ids[b, t]]``.

    Its input is not features but token ids: ``inp`` (B, T) int64 native, validated by the
    caller (0 <= id < V). Backward gives no input gradient, only ``d weight`` (V, E): the
    gradients of the rows using each id, summed in a fixed order (deterministic).

    weight (V, E)   one row per token id
    """

    num_states = 0
    state_size = 0
    input_size = None         # token ids, not features
    param_keys = ("weight",)
    is_weight = (True,)

    def __init__(self, num_embeddings, embedding_dim, dtype):
        self.num_embeddings = int(num_embeddings)
        self.output_size = int(embedding_dim)
        self.dtype = np.dtype(dtype)
        self.params = {"weight": np.zeros((self.num_embeddings, self.output_size), self.dtype)}

    def init_params(self, rng, bound=0.1):
        """Uniform in [-bound, bound], as PyTorch's word_language_model ``RNNModel`` does."""
        self.params["weight"][...] = rng.uniform(-bound, bound, self.params["weight"].shape)

    def forward(self, ctx, p, inp, h0, h_n, fresh):
        be = ctx.be
        B, T = inp.shape
        shape = (B, T, self.output_size)
        out = (be.empty(shape, ctx.dtype) if fresh
               else ctx.work((id(self), "infer" if not ctx.training else "train", "out"), shape))
        be.embedding_forward(inp, p["weight"], out)
        return out, (inp if ctx.training else None)

    def backward(self, ctx, p, saved, d_out, d_h_n, dh0, need_dx, fresh_dx):
        if need_dx:
            raise ValueError("an Embedding layer has no input gradient (its input is token ids)")
        be = ctx.be
        g = be.empty((self.num_embeddings, self.output_size), ctx.dtype)
        be.embedding_backward(saved, d_out, g)
        return None, {"weight": be.to_host(g)}


class SoftmaxHead:
    """A linear decoder over a vocabulary fused with softmax cross-entropy: the output of a
    language model (``torch.nn.Linear(K, V)`` followed by ``CrossEntropyLoss``).

    Not a stack layer (its backward starts from targets, not from an output gradient): the
    language model calls it on the stack's output rows ``y`` (M, K) = (B*T, K).

    weight (V, K)   decoder weights (may be the embedding's own array: tied weights)
    bias (V,)

    The (M, V) logits are never formed at once: the backend works through blocks of rows
    (``_config.SOFTMAX_BLOCK_BYTES``).
    """

    param_keys = ("weight", "bias")
    is_weight = (True, False)

    def __init__(self, in_features, vocab_size, dtype):
        self.input_size = int(in_features)
        self.vocab_size = int(vocab_size)
        self.dtype = np.dtype(dtype)
        self.params = {"weight": np.zeros((self.vocab_size, self.input_size), self.dtype),
                       "bias": np.zeros(self.vocab_size, self.dtype)}

    def init_params(self, rng, bound=0.1):
        """Weight uniform in [-bound, bound], bias 0 (word_language_model's ``init_weights``)."""
        self.params["weight"][...] = rng.uniform(-bound, bound, self.params["weight"].shape)
        self.params["bias"][...] = 0

    def native(self, be):
        return {k: be.upload(v) for k, v in self.params.items()}

    def loss_and_grad(self, ctx, p, y, targets, weights):
        """``sum_m weights[m] * -log softmax(y[m] W^T + b)[targets[m]]`` and its gradients.

        y (M, K) native, targets (M,) int64 native, weights (M,) native (0 for padding).
        Returns ``(loss, dy, grads)``: a float, dy (M, K) native (workspace: consume it before
        the next call), grads a host dict keyed like ``params``.
        """
        be = ctx.be
        M = y.shape[0]
        dy = ctx.work((id(self), "dy"), (M, self.input_size))
        dw = be.empty((self.vocab_size, self.input_size), ctx.dtype)
        db = be.empty(self.vocab_size, ctx.dtype)
        loss = be.softmax_xent(y, p["weight"], p["bias"], targets, weights, dy, dw, db)
        return loss, dy, {"weight": be.to_host(dw), "bias": be.to_host(db)}

    def logprob(self, ctx, p, y, targets):
        """``log softmax(y[m] W^T + b)[targets[m]]`` for every row: (M,) host."""
        be = ctx.be
        out = be.empty(y.shape[0], ctx.dtype)
        be.softmax_logprob(y, p["weight"], p["bias"], targets, out)
        return be.to_host(out)

    def log_softmax(self, ctx, p, y):
        """All log-probabilities (M, V) host (generation: M is small)."""
        be = ctx.be
        out = be.empty((y.shape[0], self.vocab_size), ctx.dtype)
        be.log_softmax(y, p["weight"], p["bias"], out)
        return be.to_host(out)
