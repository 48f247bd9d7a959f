"""``numgru.RNN``: a multi-layer (bi)directional Elman RNN (tanh or ReLU) with exact BPTT.

Shape legend: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).

The same facade as ``numgru.GRU`` (:class:`numgru._facade.RecurrentNetwork`) over a stack of
the vanilla RNN cell (:class:`numgru._cells.RNNLayer`, cells ``"rnn_tanh"`` and ``"rnn_relu"``).
"""

from . import _facade
from ._facade import RecurrentNetwork

_NONLINEARITIES = ("tanh", "relu")


class RNN(RecurrentNetwork):
    """Multi-layer Elman RNN with tanh or ReLU, numerically identical to ``torch.nn.RNN``.

    Each layer and direction computes ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Parameters
    ----------
    input_size : int
        Number of features of each timestep of the input (I).
    hidden_size : int
        Number of hidden units per layer and direction (H).
    num_layers : int, default=1
        Number of stacked layers; layer k > 0 reads the D*H outputs of layer k-1.
    nonlinearity : {"tanh", "relu"}, default="tanh"
        The activation ``act``.
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
        Layer-normalised RNN: ``h' = act(LN(W_ih x) + b_ih + LN(W_hh h) + b_hh)`` with a learned
        gain and bias per LayerNorm, over the H pre-activations (see the math page). Adds the
        parameters ``layer_norm_{ih,hh}_{weight,bias}_l{k}{s}`` (H,).
    recurrent_dropout : float, default=0.0
        Keras's recurrent dropout: in training forwards one mask (B, H) per direction, drawn
        once per forward from ``self.rng``, multiplies ``h`` where it enters ``W_hh h``, the
        same at every step (inverted scaling); ``recurrent_dropout_masks_`` holds them.
    dtype : {"float32", "float64"}, default="float32"
        Dtype of parameters, computation and outputs.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the kernels run: Numba CPU kernels, or their CUDA twins (``pip install
        "numgru[cuda]"`` and an NVIDIA GPU; device arrays in give device arrays out). "auto"
        takes a GPU when there is one. ``RuntimeError`` if "cuda" cannot be used here.
    random_state : int, numpy.random.Generator or None
        Seeds initialisation (PyTorch's: uniform in [-1/sqrt(H), 1/sqrt(H)]) and dropout masks
        (``self.rng``).

    See Also
    --------
    numgru.GRU : The gated recurrent unit with the same API.

    Examples
    --------
    >>> import numpy as np, numgru
    >>> rnn = numgru.RNN(3, 5, num_layers=2, nonlinearity="relu", random_state=0)
    >>> rnn
    RNN(3, 5, num_layers=2, nonlinearity='relu', dtype='float32')
    >>> x = np.ones((4, 7, 3), dtype=np.float32)
    >>> out, h_n = rnn.forward(x)
    >>> out.shape, h_n.shape
    ((4, 7, 5), (2, 4, 5))
    >>> bool((out >= 0).all())               # relu outputs
    True
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh",
                 bidirectional=False, dropout=0.0, residual=False, layer_norm=False,
                 recurrent_dropout=0.0, dtype="float32", device="cpu", random_state=None):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional=bidirectional,
                         dropout=dropout, dtype=dtype, device=device, random_state=random_state,
                         cell=f"rnn_{nonlinearity}",
                         cell_options={"layer_norm": layer_norm,
                                       "recurrent_dropout": recurrent_dropout},
                         residual=residual)

    def _cell_attributes(self, layer):
        self.nonlinearity = layer.nonlinearity

    def _repr_options(self):
        return [] if self.nonlinearity == "tanh" else [f"nonlinearity={self.nonlinearity!r}"]

    # ------------------------------------------------------------------ parameters
    def state_dict(self):
        """Copies of all parameters under PyTorch's names, in PyTorch's order.

        Returns
        -------
        dict of str to numpy.ndarray
            ``weight_ih_l{k}[_reverse]`` (H, I_k), ``weight_hh_l{k}[_reverse]`` (H, H),
            ``bias_ih_l{k}[_reverse]`` (H,), ``bias_hh_l{k}[_reverse]`` (H,): exactly the keys,
            order and shapes of ``torch.nn.RNN.state_dict()``.

        Examples
        --------
        >>> import numgru
        >>> sd = numgru.RNN(3, 4, bidirectional=True, random_state=0).state_dict()
        >>> {name: value.shape for name, value in sd.items()}  # doctest: +NORMALIZE_WHITESPACE
        {'weight_ih_l0': (4, 3), 'weight_hh_l0': (4, 4), 'bias_ih_l0': (4,),
         'bias_hh_l0': (4,), 'weight_ih_l0_reverse': (4, 3), 'weight_hh_l0_reverse': (4, 4),
         'bias_ih_l0_reverse': (4,), 'bias_hh_l0_reverse': (4,)}
        """
        return super().state_dict()

    def load_state_dict(self, state_dict):
        """Load parameters (any array-likes, e.g. torch tensors) with strict name and shape checks.

        Parameters
        ----------
        state_dict : mapping of str to array-like
            Exactly the names and shapes of :meth:`state_dict` (a PyTorch ``nn.RNN``'s
            ``state_dict()`` of the same configuration fits as it is). Values are converted to
            this RNN's dtype.

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
        >>> a = numgru.RNN(2, 3, random_state=0)
        >>> b = numgru.RNN(2, 3, random_state=1)
        >>> b.load_state_dict(a.state_dict())
        >>> x = np.ones((1, 4, 2), dtype=np.float32)
        >>> bool(np.array_equal(a.forward(x)[0], b.forward(x)[0]))
        True
        >>> b.load_state_dict({"weight_ih_l0": np.zeros((3, 2))})
        Traceback (most recent call last):
        ...
        ValueError: state_dict does not match this RNN: missing keys [...], unexpected keys []
        """
        super().load_state_dict(state_dict)

    # ------------------------------------------------------------------ forward / backward
    @_facade.fill_doc
    def forward(self, x, h0=None, lengths=None, training=False):
        """Run the RNN over a batch of sequences.

        {forward_sections}

        Examples
        --------
        >>> import numpy as np, numgru
        >>> rnn = numgru.RNN(2, 3, num_layers=2, bidirectional=True, random_state=0)
        >>> x = np.zeros((4, 5, 2), dtype=np.float32)
        >>> out, h_n = rnn.forward(x, lengths=[5, 5, 3, 1])
        >>> out.shape, h_n.shape, out.dtype
        ((4, 5, 6), (4, 4, 3), dtype('float32'))
        >>> bool((out[3, 1:] == 0).all())      # zero past each sequence's length
        True
        >>> rnn.forward(np.zeros((4, 5, 3)))
        Traceback (most recent call last):
        ...
        ValueError: x has 3 features per timestep but this RNN has input_size=2
        """
        return super().forward(x, h0=h0, lengths=lengths, training=training)

    @_facade.fill_doc
    def backward(self, d_out, d_h_n=None):
        """Backpropagate through the last training forward.

        {backward_sections}

        Examples
        --------
        >>> import numpy as np, numgru
        >>> rnn = numgru.RNN(2, 3, num_layers=2, dtype="float64", random_state=0)
        >>> x = np.random.default_rng(0).standard_normal((4, 5, 2))
        >>> out, h_n = rnn.forward(x, training=True)
        >>> dx, dh0, grads = rnn.backward(np.ones_like(out))   # loss = out.sum()
        >>> dx.shape, dh0.shape, grads["weight_hh_l1"].shape
        ((4, 5, 2), (2, 4, 3), (3, 3))
        >>> list(grads) == list(rnn.state_dict())
        True
        """
        return super().backward(d_out, d_h_n)

    __call__ = forward
