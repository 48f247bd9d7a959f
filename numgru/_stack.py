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

    def __init__(self, layers, backend, dtype):
        self.layers = list(layers)
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self._native = None           # native copies of the parameters
        self._host_mutable = False    # parameters handed out for in-place updates
        self._tape = None             # what the last training forward keeps for backward
        self._tls = threading.local()

    @classmethod
    def recurrent(cls, input_size, hidden_sizes, *, cell="gru", bidirectional=False, dropout=0.0,
                  dtype="float32", backend, rngs, **cell_options):
        """Recurrent layers of ``hidden_sizes`` with dropout between them.

        ``rngs``: one numpy Generator per layer, or a single one drawn from layer after layer,
        for the initialisation.
        """
        layer_cls = get_cell(cell)
        D = 2 if bidirectional else 1
        if isinstance(rngs, np.random.Generator):
            rngs = [rngs] * len(hidden_sizes)
        layers = []
        size = input_size
        for k, (H, rng) in enumerate(zip(hidden_sizes, rngs)):
            if k > 0 and dropout > 0:
                layers.append(Dropout(size, dropout, dtype))
            layer = layer_cls(size, H, D, dtype, **cell_options)
            layer.init_params(rng)
            layers.append(layer)
            size = layer.output_size
        return cls(layers, backend, dtype)

    # ------------------------------------------------------------------ structure
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
        ctx = _context(self, be.upload(lengths), training, rng)
        params = self._native_params()
        tape = []
        inp = x
        si = 0
        last = len(self.layers) - 1
        for i, lay in enumerate(self.layers):
            if lay.num_states:
                out, saved = lay.forward(ctx, params[i], inp, h0[si], h_n[si], i == last)
                si += 1
            else:
                out, saved = lay.forward(ctx, params[i], inp, None, None, i == last)
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
        ctx = _context(self, tape["lengths"], True, None)
        grads = [None] * len(self.layers)
        si = len(rec)
        d = d_out
        for i in range(len(self.layers) - 1, -1, -1):
            lay = self.layers[i]
            want_dx = need_dx or i > 0
            if lay.num_states:
                si -= 1
                d, grads[i] = lay.backward(ctx, tape["params"][i], tape["tape"][i], d, d_h_n[si],
                                           dh0[si], want_dx, i == 0)
            else:
                d, grads[i] = lay.backward(ctx, tape["params"][i], tape["tape"][i], d, None,
                                           None, want_dx, i == 0)
        return d, dh0, grads


def _context(stack, lengths, training, rng):
    return Context(stack.backend, stack.dtype, lengths, training, rng, stack._work)
