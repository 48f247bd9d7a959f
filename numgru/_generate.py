"""Token-by-token generation for :class:`numgru.lm.GRULanguageModel`: one step of the network for
B rows at a time, and the draw of the next token of every row.

Shape legend: B rows generated side by side (``n_samples``, 1 for a single sequence), V
vocabulary size, E embedding width, H_k hidden size of GRU layer k.

Per token, :meth:`Stepper.step` runs the embedding row lookup, each GRU layer's one step and the
decoder with its log-softmax, calling the backend's kernels (the same methods, with the same
arguments, that :meth:`numgru._stack.Stack.forward` and :meth:`numgru._cells.SoftmaxHead.
log_softmax` call, so the log-probabilities are the same numbers) on buffers made once per
``generate`` call: no context, tape, state or output array is made per token. Dropout layers are
left out (they are the identity outside training). It works on any backend (CPU, CUDA): only the
ids go up and the log-probabilities come down per token.

:func:`sample_rows` draws one token per row from those log-probabilities with the arithmetic of
the single-row sampler it replaced (float64; ``logp / temperature``, top-k cut, ``exp(z -
max)``, cumulative sum, one uniform per row scaled by the row's total), on float64 buffers kept
by a :class:`Sampler`. The uniforms of a step are ``rng.random(B)``: row i takes the i-th, so
the B sequences' draws are interleaved on the stream, step after step, and B=1 draws exactly
what one sequence draws.
"""

import numpy as np

from ._cells import Dropout, Embedding, GRULayer

#: The most sequences one ``generate(..., n_samples=k)`` call draws side by side: its buffers
#: hold (k, V) log-probabilities and two float64 copies, 20 * k * V bytes (1024 sequences over
#: a vocabulary of 10,000: 205 MB).
MAX_SAMPLES = 1024


class Stepper:
    """One step of a language model's network for B rows, on buffers kept between steps.

    ``stack``: the model's :class:`numgru._stack.Stack` (an :class:`Embedding`, GRU layers with
    one direction and :class:`Dropout` layers); ``head``: its
    :class:`numgru._cells.SoftmaxHead`. The state starts at zero (:meth:`set_state` sets it).

    ids    (B, 1)     int64 host: the current token of every row (write it, then :meth:`step`)
    h[k]   (1, B, H_k) native: the state of GRU layer k, two buffers used in turn
    logp   (B, V)     host: the log-probabilities of the next token after :meth:`step`
    """

    def __init__(self, stack, head, B):
        be = self.be = stack.backend
        dt = stack.dtype
        params = stack._native_params()
        self.B = B
        self.ids = np.zeros((B, 1), np.int64)
        self.lengths = be.upload(np.ones(B, np.int64))
        self.no_store = be.empty((1, 0, 0, 0), dt)
        emb = stack.layers[0]
        if not isinstance(emb, Embedding):
            raise TypeError("a language model's stack starts with its Embedding")
        self.emb_weight = params[0]["weight"]
        self.x = be.empty((B, 1, emb.output_size), dt)
        self.layers = []            # (params, hidden size) of each GRU layer, in order
        for lay, p in zip(stack.layers[1:], params[1:]):
            if isinstance(lay, Dropout):
                continue             # the identity outside training
            if not isinstance(lay, GRULayer) or lay.num_directions != 1 or lay.general \
                    or not lay.reset_after:
                raise TypeError("the single-step path runs one-direction reset_after GRU layers "
                                f"only, got {type(lay).__name__}")
            self.layers.append((p, lay.hidden_size))
        self.h = [[be.zeros((1, B, H), dt), be.empty((1, B, H), dt)] for _, H in self.layers]
        self.out = [be.empty((B, 1, H), dt) for _, H in self.layers]
        self.head = head.native(be)
        self.logits = be.empty((B, head.vocab_size), dt)

    def set_state(self, states):
        """Start from ``states``: one host (1, B, H_k) array per GRU layer."""
        for pair, s in zip(self.h, states):
            pair[0] = self.be.upload(np.ascontiguousarray(s, dtype=self.no_store.dtype))

    def step(self):
        """Advance every row by its token in :attr:`ids`; returns the (B, V) host
        log-probabilities of the next token (a buffer: read it before the next step)."""
        be = self.be
        be.embedding_forward(be.upload(self.ids), self.emb_weight, self.x)
        inp = self.x
        ns = self.no_store
        for (p, _), pair, out in zip(self.layers, self.h, self.out):
            be.gru_layer_forward(inp, p["w_ih"], p["b_ih"], p["w_hh"], p["b_hh"], pair[0],
                                 self.lengths, True, out, pair[1], False, ns, ns, ns)
            pair.reverse()          # the new state is read next step; the old one written
            inp = out
        be.log_softmax(inp.reshape(self.B, -1), self.head["weight"], self.head["bias"],
                       self.logits)
        return be.to_host(self.logits)


class Sampler:
    """Draws one token per row of (B, V) log-probabilities (:func:`sample_rows`) with float64
    buffers kept between draws.

    z   (B, V) float64: the scaled log-probabilities, then their exponentials' cumulative sums
    """

    def __init__(self, B, V, temperature, top_k):
        self.temperature = float(temperature)
        self.top_k = top_k if top_k is not None and top_k < V else None
        self.z = np.empty((B, V), np.float64)
        self.tokens = np.empty(B, np.int64)

    def __call__(self, logp, rng):
        """The next token of every row: (B,) int64 (a buffer: read it before the next call)."""
        return sample_rows(logp, self.temperature, self.top_k, rng, self.z, self.tokens)


def sample_rows(logp, temperature, top_k, rng, z, tokens):
    """One token id per row of ``logp`` (B, V) into ``tokens`` (B,) int64, in float64 arithmetic
    on the buffer ``z`` (B, V) float64; ``top_k`` None or < V.

    temperature 0: the most likely token (no draw). Else ``z = logp / temperature``, the
    entries below the row's top_k-th largest set to -inf, ``c = cumsum(exp(z - max z))`` and
    the token is the number of entries of ``c`` <= ``u * c[-1]`` (at most V-1) for the row's
    uniform u from ``rng.random(B)``.
    """
    if temperature == 0:
        np.argmax(logp, axis=1, out=tokens)
        return tokens
    B, V = z.shape
    z[...] = logp                  # to float64 first: the division is a float64 one
    np.divide(z, temperature, out=z)
    if top_k is not None:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k]
        z[z < kth[:, None]] = -np.inf
    np.subtract(z, z.max(axis=1)[:, None], out=z)
    np.exp(z, out=z)
    np.cumsum(z, axis=1, out=z)
    u = rng.random(B)
    np.multiply(u, z[:, -1], out=u)
    for i in range(B):
        tokens[i] = min(np.searchsorted(z[i], u[i], side="right"), V - 1)
    return tokens
