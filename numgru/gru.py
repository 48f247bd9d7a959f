"""``numgru.GRU``: a multi-layer (bi)directional GRU with exact backpropagation through time.

Shape legend: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).

The facade of the engine with PyTorch's API: it validates input and runs a
:class:`numgru._stack.Stack` of GRU layers (:mod:`numgru._cells`) on the backend of its device
(:mod:`numgru._backend`). The logic it shares with ``numgru.RNN`` is
:class:`numgru._facade.RecurrentNetwork`; this module adds the GRU's options, its docstrings and
the Keras import. Parameter names, shapes and the Keras conversion are in :mod:`numgru._layout`.
"""

from . import _facade, _layout
from ._facade import RecurrentNetwork


class GRU(RecurrentNetwork):
    """Multi-layer gated recurrent unit, numerically identical to ``torch.nn.GRU``.

    Parameters
    ----------
    input_size : int
        Number of features of each timestep of the input (I).
    hidden_size : int
        Number of hidden units per layer and direction (H).
    num_layers : int, default=1
        Number of stacked layers; layer k > 0 reads the D*H outputs of layer k-1.
    bidirectional : bool, default=False
        Run a second, time-reversed direction in every layer (D = 2).
    dropout : float, default=0.0
        Dropout probability on the outputs of every layer but the last, in training forwards.
    residual : bool, default=False
        Residual connections (tensorflow/nmt's convention): every layer k >= 1 outputs its
        input plus its recurrent output, ``out_k = in_k + h_k``, where ``in_k`` is layer k-1's
        output as the layer reads it (after dropout). Layer 0 never has one (its input is the
        data); with equal sizes every later layer has one, so this needs ``num_layers >= 2``
        (``ValueError`` otherwise). ``h_n`` holds the cells' own states (without the skip).
    layer_norm : bool, default=False
        Layer-normalised GRU (Ba et al. 2016): a LayerNorm with learned gain and bias on
        ``W_ih x`` and, separately, on the recurrent products ``W_hh h``, each over the 3H gate
        pre-activations, before the gate nonlinearities (see the math page). Adds the
        parameters ``layer_norm_{ih,hh}_{weight,bias}_l{k}{s}`` (3H,) (gains 1, biases 0 at
        initialisation). Needs ``reset_after=True``.
    recurrent_dropout : float, default=0.0
        Keras's recurrent dropout: in training forwards, masks (B, H) per gate (r, z, n) and
        direction, drawn once per forward from ``self.rng``, multiply ``h`` where it enters the
        recurrent product, the same at every step (inverted scaling 1/(1-p));
        ``recurrent_dropout_masks_`` holds them, (D, 3, B, H) per layer. Needs
        ``reset_after=True``.
    reset_after : bool, default=True
        True: PyTorch / cuDNN form ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
        False: Cho et al. 2014 / Keras ``reset_after=False`` form
        ``n = tanh(W_in x + b_in + W_hn (r * h))``; ``bias_hh_l{k}`` then has shape (2H,)
        and holds the r and z recurrent biases only.
    dtype : {"float32", "float64"}, default="float32"
        Dtype of parameters, computation and outputs.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the kernels run: Numba CPU kernels, or their CUDA twins (``pip install
        "numgru[cuda]"`` and an NVIDIA GPU; device arrays in give device arrays out). "auto"
        takes a GPU when there is one. ``RuntimeError`` if "cuda" cannot be used here.
    random_state : int, numpy.random.Generator or None
        Seeds initialisation and dropout masks (``self.rng``).

    Examples
    --------
    >>> import numpy as np, numgru
    >>> gru = numgru.GRU(3, 5, num_layers=2, random_state=0)
    >>> x = np.ones((4, 7, 3), dtype=np.float32)
    >>> out, h_n = gru.forward(x)
    >>> out.shape, h_n.shape
    ((4, 7, 5), (2, 4, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False, dropout=0.0,
                 residual=False, layer_norm=False, recurrent_dropout=0.0, reset_after=True,
                 dtype="float32", device="cpu", random_state=None):
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, bidirectional=bidirectional,
                         dropout=dropout, dtype=dtype, device=device, random_state=random_state,
                         cell="gru", cell_options={"reset_after": self.reset_after,
                                                   "layer_norm": layer_norm,
                                                   "recurrent_dropout": recurrent_dropout},
                         residual=residual)

    def _cell_attributes(self, layer):
        self.reset_after = layer.reset_after

    def _repr_options(self):
        return [] if self.reset_after else ["reset_after=False"]

    # ------------------------------------------------------------------ parameters
    def state_dict(self):
        """Copies of all parameters under PyTorch's names, in PyTorch's order.

        Returns
        -------
        dict of str to numpy.ndarray
            ``weight_ih_l{k}[_reverse]`` (3H, I_k), ``weight_hh_l{k}[_reverse]`` (3H, H),
            ``bias_ih_l{k}[_reverse]`` (3H,), ``bias_hh_l{k}[_reverse]`` (3H,), or (2H,) when
            ``reset_after=False``. Gate blocks along the first axis are ordered r, z, n.

        Examples
        --------
        >>> import numgru
        >>> sd = numgru.GRU(3, 4, bidirectional=True, random_state=0).state_dict()
        >>> {name: value.shape for name, value in sd.items()}  # doctest: +NORMALIZE_WHITESPACE
        {'weight_ih_l0': (12, 3), 'weight_hh_l0': (12, 4), 'bias_ih_l0': (12,),
         'bias_hh_l0': (12,), 'weight_ih_l0_reverse': (12, 3), 'weight_hh_l0_reverse': (12, 4),
         'bias_ih_l0_reverse': (12,), 'bias_hh_l0_reverse': (12,)}
        """
        return super().state_dict()

    def load_state_dict(self, state_dict):
        """Load parameters (any array-likes, e.g. torch tensors) with strict name and shape checks.

        Parameters
        ----------
        state_dict : mapping of str to array-like
            Exactly the names and shapes of :meth:`state_dict` (a PyTorch ``nn.GRU``'s
            ``state_dict()`` of the same configuration fits as it is). Values are converted to
            this GRU's dtype.

        Returns
        -------
        None

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping or a value is not real numbers.
        ValueError
            If a name is missing or unexpected, a shape differs, or a value is not finite.

        Examples
        --------
        >>> import numpy as np, numgru
        >>> a = numgru.GRU(2, 3, random_state=0)
        >>> b = numgru.GRU(2, 3, random_state=1)
        >>> b.load_state_dict(a.state_dict())
        >>> x = np.ones((1, 4, 2), dtype=np.float32)
        >>> bool(np.array_equal(a.forward(x)[0], b.forward(x)[0]))
        True
        >>> b.load_state_dict({"weight_ih_l0": np.zeros((9, 2))})
        Traceback (most recent call last):
        ...
        ValueError: state_dict does not match this GRU: missing keys [...], unexpected keys []
        """
        super().load_state_dict(state_dict)

    @classmethod
    def from_keras_weights(cls, kernel, recurrent_kernel, bias, reset_after=True, dtype="float32"):
        """Build a one-layer GRU from a Keras ``GRU`` layer's weights.

        Keras orders the gates z, r, h, stores kernels transposed ((I, 3H) and (H, 3H)), and
        stacks the input and recurrent biases as (2, 3H) when ``reset_after=True`` (a single
        (3H,) input bias otherwise). Keras updates ``h' = z * h + (1 - z) * n``, as numgru does.

        Parameters
        ----------
        kernel : array-like of shape (I, 3H)
            Keras ``kernel`` (input weights, gate blocks z, r, h along the columns).
        recurrent_kernel : array-like of shape (H, 3H)
            Keras ``recurrent_kernel``.
        bias : array-like of shape (2, 3H) if reset_after else (3H,), or None for no bias
            Keras ``bias`` (input bias in row 0, recurrent bias in row 1 when ``reset_after``).
        reset_after : bool, default=True
            The Keras layer's ``reset_after`` (Keras 2.x / TF2 default True).
        dtype : {"float32", "float64"}, default="float32"

        Returns
        -------
        GRU
            A one-layer GRU computing what the Keras layer computes.

        Raises
        ------
        ValueError
            If the shapes do not fit together.

        Examples
        --------
        >>> import numpy as np, numgru
        >>> rng = np.random.default_rng(0)
        >>> I, H = 3, 4
        >>> gru = numgru.GRU.from_keras_weights(rng.standard_normal((I, 3 * H)),
        ...                                     rng.standard_normal((H, 3 * H)),
        ...                                     rng.standard_normal((2, 3 * H)))
        >>> gru
        GRU(3, 4, dtype='float32')
        >>> gru.state_dict()["weight_ih_l0"].shape
        (12, 3)
        """
        I, H, sd = _layout.keras_gru_to_torch(kernel, recurrent_kernel, bias, reset_after)
        gru = cls(I, H, 1, reset_after=reset_after, dtype=dtype)
        gru.load_state_dict(sd)
        return gru

    # ------------------------------------------------------------------ forward / backward
    @_facade.fill_doc
    def forward(self, x, h0=None, lengths=None, training=False):
        """Run the GRU over a batch of sequences.

        {forward_sections}

        Examples
        --------
        >>> import numpy as np, numgru
        >>> gru = numgru.GRU(2, 3, num_layers=2, bidirectional=True, random_state=0)
        >>> x = np.zeros((4, 5, 2), dtype=np.float32)
        >>> out, h_n = gru.forward(x, lengths=[5, 5, 3, 1])
        >>> out.shape, h_n.shape, out.dtype
        ((4, 5, 6), (4, 4, 3), dtype('float32'))
        >>> bool((out[3, 1:] == 0).all())      # zero past each sequence's length
        True
        >>> gru.forward(np.zeros((4, 5, 3)))
        Traceback (most recent call last):
        ...
        ValueError: x has 3 features per timestep but this GRU has input_size=2
        """
        return super().forward(x, h0=h0, lengths=lengths, training=training)

    @_facade.fill_doc
    def backward(self, d_out, d_h_n=None):
        """Backpropagate through the last training forward.

        {backward_sections}

        Examples
        --------
        >>> import numpy as np, numgru
        >>> gru = numgru.GRU(2, 3, num_layers=2, dtype="float64", random_state=0)
        >>> x = np.random.default_rng(0).standard_normal((4, 5, 2))
        >>> out, h_n = gru.forward(x, training=True)
        >>> dx, dh0, grads = gru.backward(np.ones_like(out))   # loss = out.sum()
        >>> dx.shape, dh0.shape, grads["weight_hh_l1"].shape
        ((4, 5, 2), (2, 4, 3), (9, 3))
        >>> list(grads) == list(gru.state_dict())
        True
        """
        return super().backward(d_out, d_h_n)

    __call__ = forward
