"""The engine: a stack of layers (recurrent cells and the layers between them) on one backend.

Shape legend: B batch, T time, I input size, H_k hidden size of recurrent layer k,
D directions (1 or 2).

``numgru.GRU`` (equal sizes, PyTorch's API) and the estimators (one size per entry of
``hidden_layer_sizes``) both run a :class:`Stack`. The stack knows nothing about devices or
cells: it hands each layer (see :mod:`numgru._cells` for the interface) native arrays from its
backend (:mod:`numgru._backend`), threads the recurrent states through, keeps what backward
needs, and reuses scratch buffers between calls.

States: ``h0`` / ``h_n`` / ``dh0`` / ``d_h_n`` are lists with one (D, B, H_k) native array per
recurrent layer (views into one (L*D, B, H) array when the sizes are equal).

Residual connections (``residual=True``, the tensorflow/nmt convention): every recurrent layer
after the first whose input width equals its output width (D*H_{k-1} == D*H_k) outputs
``its input + its cell's output``, where its input is what the cell reads, i.e. the previous
layer's output after dropout. The stack applies them (``skips``): a cell never sees its skip,
and the recurrent states (``h_n``) stay the cells' own.
"""

import math
import threading

import numpy as np

from ._cells import Context, Dropout, get_cell


class Stack:
    """Layers run in order on one backend; parameters live on the host.

    Parameters
    ----------
    layers : list
        Layer objects (:mod:`numgru._cells`), each reading the previous one's output.
    backend : numgru._backend.Backend
    dtype : numpy dtype
    """

    def __init__(self, layers, backend, dtype, skips=()):
        self.layers = list(layers)
        self.backend = backend
        self.dtype = np.dtype(dtype)
        # indices into ``layers`` of the layers whose input is added to their output
        self.skips = frozenset(int(i) for i in skips)
        self._native = None           # native copies of the parameters
        self._host_mutable = False    # parameters handed out for in-place updates
        self._tape = None             # what the last training forward keeps for backward
        self._tls = threading.local()

    @classmethod
    def recurrent(cls, input_size, hidden_sizes, *, cell="gru", bidirectional=False, dropout=0.0,
                  residual=False, dtype="float32", backend, rngs, **cell_options):
        """Recurrent layers of ``hidden_sizes`` with dropout between them.

        ``rngs``: one numpy Generator per layer, or a single one drawn from layer after layer,
        for the initialisation. ``residual``: skip connections on every layer after the first
        whose input and output widths match (see :func:`residual_layers`; ValueError if none
        can have one).
        """
        layers, skips = build_recurrent_layers(input_size, hidden_sizes, cell=cell,
                                               bidirectional=bidirectional, dropout=dropout,
                                               residual=residual, dtype=dtype, rngs=rngs,
                                               **cell_options)
        return cls(layers, backend, dtype, skips)

    def layer_view(self, layer):
        """A one-layer stack over ``layer`` (one of :attr:`layers`) on this stack's backend,
        sharing its parameter arrays, which the caller may update in place (device copies are
        refreshed on every call, as after :meth:`parameters`)."""
        view = type(self)([layer], self.backend, self.dtype)
        view._host_mutable = True
        return view

    # ------------------------------------------------------------------ structure
    @property
    def residual_layers(self):
        """Indices among :attr:`recurrent_layers` of the layers with a skip connection."""
        rec = [i for i, lay in enumerate(self.layers) if lay.num_states]
        return [k for k, i in enumerate(rec) if i in self.skips]

    @property
    def recurrent_layers(self):
        return [lay for lay in self.layers if lay.num_states]

    @property
    def input_size(self):
        return self.layers[0].input_size

    @property
    def output_size(self):
        return self.layers[-1].output_size

    def parameters(self):
        """``(array, is_weight)`` for every parameter array, layer by layer, in place: the
        caller may update them (an optimizer), so device copies are refreshed on every call
        from then on."""
        self._host_mutable = True
        return [(lay.params[key], flag) for lay in self.layers
                for key, flag in zip(lay.param_keys, lay.is_weight)]

    def params_changed(self):
        """Drop the device copies: the host parameters were replaced."""
        self._native = None

    def updates_done(self):
        """The caller has finished updating the parameters in place (the end of a fit): device
        copies are made once more and then kept, instead of refreshed on every call."""
        self._host_mutable = False
        self._native = None

    @property
    def training_shape(self):
        """``(B, T)`` of the last training forward (what :meth:`backward` backpropagates
        through), or None when there has been none."""
        if self._tape is None:
            return None
        return self._tape["B"], self._tape["T"]

    def context(self, lengths=None, training=False, rng=None):
        """The :class:`numgru._cells.Context` a layer of this stack (or a layer run beside it,
        such as a language model's softmax head) is called with: this stack's backend, dtype
        and scratch buffers."""
        return Context(self.backend, self.dtype, lengths, training, rng, self._work)

    def flat_grads(self, grads):
        """Gradients from :meth:`backward` in the order of :meth:`parameters`."""
        return [g[key] for lay, g in zip(self.layers, grads) for key in lay.param_keys]

    def _native_params(self):
        if self._native is None or self._host_mutable:
            self._native = [{k: self.backend.upload(v) for k, v in lay.params.items()}
                            for lay in self.layers]
        return self._native

    # ------------------------------------------------------------------ scratch buffers
    def _work(self, key, shape):
        """A scratch array of ``shape`` kept between calls (per thread, grown as needed).

        Large fresh arrays come from the OS and every page faults on first touch; reusing them
        saved a third of a large training step. Never used for arrays handed to the caller.
        """
        bufs = getattr(self._tls, "buffers", None)
        if bufs is None:
            bufs = self._tls.buffers = {}
        n = math.prod(shape)
        buf = bufs.get(key)
        if buf is None or buf.size < n:
            buf = bufs[key] = self.backend.empty(max(n, 1), self.dtype)
        return buf[:n].reshape(shape)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tls"] = None
        state["_tape"] = None
        state["_native"] = None
        return state

    def __setstate__(self, state):
        state.setdefault("skips", frozenset())     # stacks pickled before skips existed
        self.__dict__.update(state)
        self._tls = threading.local()

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x, lengths, h0=None, h_n=None, training=False, rng=None):
        """Run every layer.

        x        (B, T, I) native
        lengths  (B,) int64 host, validated
        h0       list of (D, B, H_k) native per recurrent layer, or None for zeros
        h_n      list of (D, B, H_k) native arrays to write the final states into, or None
        Returns ``(out, h_n)``: out (B, T, output_size) native, freshly allocated.
        """
        be = self.backend
        B = x.shape[0]
        rec = self.recurrent_layers
        if h0 is None:
            h0 = [be.upload(np.zeros((lay.num_states, B, lay.state_size), dtype=self.dtype))
                  for lay in rec]
        if h_n is None:
            h_n = [be.empty((lay.num_states, B, lay.state_size), self.dtype) for lay in rec]
        ctx = self.context(be.upload(lengths), training, rng)
        params = self._native_params()
        tape = []
        inp = x
        si = 0
        last = len(self.layers) - 1
        skips = self.skips
        for i, lay in enumerate(self.layers):
            if lay.num_states:
                out, saved = lay.forward(ctx, params[i], inp, h0[si], h_n[si], i == last)
                si += 1
            else:
                out, saved = lay.forward(ctx, params[i], inp, None, None, i == last)
            if i in skips:      # out = inp + cell output (the cell keeps no reference to out)
                be.add(out, inp, out)
            tape.append(saved)
            inp = out
        if training:  # an inference forward leaves the last training forward's state alone
            self._tape = {"B": B, "T": x.shape[1], "lengths": ctx.lengths, "tape": tape, "params": params}
        return inp, h_n

    def dropout_masks(self):
        """Host dropout masks of the last training forward, in layer order."""
        if self._tape is None:
            return []
        return [saved[0] for lay, saved in zip(self.layers, self._tape["tape"])
                if isinstance(lay, Dropout) and saved is not None]

    def recurrent_masks(self):
        """Host recurrent-dropout masks (D, N, B, H) of the last training forward, one per
        recurrent layer that drew them, in layer order."""
        if self._tape is None:
            return []
        return [saved["masks"] for lay, saved in zip(self.layers, self._tape["tape"])
                if lay.num_states and isinstance(saved, dict) and saved.get("masks") is not None]

    def backward(self, d_out, d_h_n=None, dh0=None, need_dx=True):
        """Backpropagate through the last training forward.

        d_out    (B, T, output_size) native
        d_h_n    list of (D, B, H_k) native per recurrent layer (None entries or None: zeros)
        dh0      list of native arrays to write the initial-state gradients into, or None
        Returns ``(dx, dh0, grads)``: dx (B, T, I) native fresh (None unless need_dx), dh0 list,
        grads one host dict per layer keyed like its ``params``.
        """
        if self._tape is None:
            raise RuntimeError("backward() needs a preceding forward(..., training=True); "
                               "call forward with training=True first")
        be = self.backend
        tape = self._tape
        B = tape["B"]
        rec = self.recurrent_layers
        if dh0 is None:
            dh0 = [be.empty((lay.num_states, B, lay.state_size), self.dtype) for lay in rec]
        d_h_n = list(d_h_n) if d_h_n is not None else [None] * len(rec)
        for j, lay in enumerate(rec):
            if d_h_n[j] is None:
                d_h_n[j] = be.upload(np.zeros((lay.num_states, B, lay.state_size), self.dtype))
        ctx = self.context(tape["lengths"], True, None)
        grads = [None] * len(self.layers)
        si = len(rec)
        d = d_out
        skips = self.skips
        for i in range(len(self.layers) - 1, -1, -1):
            lay = self.layers[i]
            want_dx = need_dx or i > 0
            d_skip = d
            if lay.num_states:
                si -= 1
                d, grads[i] = lay.backward(ctx, tape["params"][i], tape["tape"][i], d, d_h_n[si],
                                           dh0[si], want_dx, i == 0)
            else:
                d, grads[i] = lay.backward(ctx, tape["params"][i], tape["tape"][i], d, None,
                                           None, want_dx, i == 0)
            if i in skips:      # the skip's gradient: d inp += d out (i > 0, so d is not None)
                be.add(d, d_skip, d)
        return d, dh0, grads


def build_recurrent_layers(input_size, hidden_sizes, *, cell="gru", bidirectional=False,
                           dropout=0.0, residual=False, dtype="float32", rngs, **cell_options):
    """The layers of :meth:`Stack.recurrent` and the indices among them of the layers with a
    skip connection: ``(layers, skips)``.

    One layer of ``cell`` per entry of ``hidden_sizes``, each initialised from its entry of
    ``rngs`` (or all from one Generator, layer after layer), with a :class:`Dropout` of
    ``dropout`` between two layers when ``dropout > 0``. A model that puts layers of its own
    around them (the language model's embedding) builds its stack from these.
    """
    layer_cls = get_cell(cell)
    D = 2 if bidirectional else 1
    skip_layers = residual_layers(input_size, hidden_sizes, D) if residual else []
    if isinstance(rngs, np.random.Generator):
        rngs = [rngs] * len(hidden_sizes)
    layers = []
    skips = []
    size = input_size
    for k, (H, rng) in enumerate(zip(hidden_sizes, rngs)):
        if k > 0 and dropout > 0:
            layers.append(Dropout(size, dropout, dtype))
        layer = layer_cls(size, H, D, dtype, **cell_options)
        layer.init_params(rng)
        if k in skip_layers:
            skips.append(len(layers))
        layers.append(layer)
        # layer normalisation lives inside the cells (cell_options layer_norm=True)
        size = layer.output_size
    return layers, skips


def residual_layers(input_size, hidden_sizes, num_directions):
    """Indices k of the recurrent layers that get a residual connection: every k >= 1 whose
    input width (D*H_{k-1}) equals its output width (D*H_k).

    Raises ValueError when there is none (one layer, or every width differs): residual
    connections were asked for and none would be made.
    """
    D = int(num_directions)
    sizes = [int(h) for h in hidden_sizes]
    ks = [k for k in range(1, len(sizes)) if sizes[k - 1] == sizes[k]]
    if not ks:
        if len(sizes) == 1:
            raise ValueError("residual=True needs at least two recurrent layers: the first layer "
                             "never has a residual connection (its input is the data), and this "
                             f"network has one layer (input width {input_size}, output width "
                             f"{D * sizes[0]})")
        widths = ", ".join(f"layer {k}: input width {D * sizes[k - 1]}, output width "
                           f"{D * sizes[k]}" for k in range(1, len(sizes)))
        raise ValueError("residual=True but no layer after the first has equal input and output "
                         f"widths, so none can have a residual connection ({widths})")
    return ks
