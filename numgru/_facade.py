"""The facade that ``numgru.GRU`` and ``numgru.RNN`` share: PyTorch's API over an engine stack.

Shape legend: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).

:class:`RecurrentNetwork` validates input and runs a :class:`numgru._stack.Stack` of equal-size
layers of one cell (:mod:`numgru._cells`) on the backend of its device (:mod:`numgru._backend`);
parameter names and shapes come from :mod:`numgru._layout`. All the logic lives here. A public
class (:class:`numgru.GRU`, :class:`numgru.RNN`) names its cell, takes its own constructor
options, and re-exposes the public methods with its own docstrings and examples.
"""

import functools
import numbers

import numpy as np

from . import _layout
from ._backend import get_backend
from ._config import compute_threads
from ._cells import check_recurrent_dropout as _check_recurrent_dropout
from ._stack import Stack
from ._validation import as_dtype, check_float_array, check_finite, check_lengths, \
    check_native, check_sequences, check_state


def _holding_blas(method):
    """Run a method under numgru's thread settings (``_config.compute_threads``: BLAS held to one
    thread, Numba capped at the OpenMP limit in force)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with compute_threads:
            return method(*args, **kwargs)

    return wrapper


# The numpydoc sections (Parameters, Returns, Raises) of forward and backward that numgru.GRU and
# numgru.RNN share, written once; their docstrings name them by marker ("{forward_sections}", a
# line of its own) and fill_doc writes them in, before each class's own Examples.
SHARED_SECTIONS = {
    "forward_sections": """\
        Parameters
        ----------
        x : array-like of shape (B, T, input_size)
        h0 : array-like of shape (L*D, B, H), optional
            Initial states (zeros when omitted).
        lengths : array-like of int of shape (B,), optional
            Valid lengths with right padding (``pack_padded_sequence`` semantics).
        training : bool, default=False
            Apply dropout and keep what :meth:`backward` needs.

        Returns
        -------
        out : ndarray of shape (B, T, D*H)
            Last layer's hidden states; 0 past each sequence's length.
        h_n : ndarray of shape (L*D, B, H)
            Every layer's and direction's state after the last valid step.

        Raises
        ------
        ValueError
            Wrong shapes, input size, lengths, or non-finite values.
        TypeError
            Non-numeric, boolean or complex input (or, on CUDA, a device array of another dtype).

""",
    "backward_sections": """\
        Parameters
        ----------
        d_out : array-like of shape (B, T, D*H)
            Gradient of the loss with respect to ``out`` (ignored at padded positions).
        d_h_n : array-like of shape (L*D, B, H), optional
            Gradient with respect to ``h_n``.

        Returns
        -------
        dx : ndarray of shape (B, T, input_size)
        dh0 : ndarray of shape (L*D, B, H)
        grads : dict of str to ndarray, keyed like :meth:`state_dict`

        Raises
        ------
        RuntimeError
            If the last forward was not ``forward(..., training=True)`` (there was none, or an
            inference forward came after it), or ``load_state_dict`` replaced the parameters
            since: the gradients would not be those of the last forward.
        ValueError
            If ``d_out`` or ``d_h_n`` has the wrong shape or non-finite values.

""",
}


def fill_doc(method):
    """Decorator: write :data:`SHARED_SECTIONS` into ``method``'s docstring in place of their
    markers."""
    doc = method.__doc__
    for name, text in SHARED_SECTIONS.items():
        doc = doc.replace("        {" + name + "}\n\n", text)
    method.__doc__ = doc
    return method


class RecurrentNetwork:
    """A stack of ``num_layers`` equal-size recurrent layers of one cell, PyTorch's API.

    Not public: subclasses call ``__init__`` with their ``cell`` name and ``cell_options``
    (keyword arguments of the layer class), implement :meth:`_cell_attributes` (copy their
    options from a layer) and :meth:`_repr_options`, and document the public methods.
    """

    def __init__(self, input_size, hidden_size, num_layers, *, bidirectional, dropout, dtype,
                 device, random_state, cell, cell_options, residual=False):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real) \
                or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        be = get_backend(device)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dropout = float(dropout)
        self.residual = bool(residual)
        self.dtype = as_dtype(dtype)
        try:
            self.rng = (random_state if isinstance(random_state, np.random.Generator)
                        else np.random.default_rng(random_state))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"random_state must be None, a non-negative integer or a "
                            f"numpy.random.Generator, got {random_state!r}") from exc
        self.layer_norm = bool(cell_options.get("layer_norm", False))
        self.recurrent_dropout = _check_recurrent_dropout(cell_options.get("recurrent_dropout",
                                                                           0.0))
        self.dropout_masks_ = []
        self.recurrent_dropout_masks_ = []
        self._device_io = False
        self._no_backward = None     # why backward() would be stale (None: it is not)
        self._stack = Stack.recurrent(self.input_size, [self.hidden_size] * self.num_layers,
                                      cell=cell, bidirectional=self.bidirectional,
                                      dropout=self.dropout, residual=self.residual,
                                      dtype=self.dtype, backend=be, rngs=self.rng,
                                      **cell_options)

    def _cell_attributes(self, layer):
        """Set the cell's own attributes (``reset_after``, ``nonlinearity``) from a layer."""
        raise NotImplementedError

    def _repr_options(self):
        """The cell's own non-default options, as ``name=value`` strings for ``repr``."""
        return []

    @property
    def device(self):
        """"cpu" or "cuda": where the kernels run."""
        return self._stack.backend.name

    # ------------------------------------------------------------------ parameters
    def state_dict(self):
        """Copies of all parameters under PyTorch's names, in PyTorch's order."""
        return _layout.state_dict(self._stack)

    def load_state_dict(self, state_dict):
        """Load parameters (any array-likes) with strict name, shape and finiteness checks."""
        _layout.load_state_dict(self._stack, state_dict, what=type(self).__name__)
        if self._stack.training_shape is not None:
            self._no_backward = ("the parameters were replaced (load_state_dict) after the last "
                                 "training forward")

    def _split(self, h):
        """A (L*D, B, H) state as the stack's list of per-layer (D, B, H) views."""
        D = self.num_directions
        return [h[k * D:(k + 1) * D] for k in range(self.num_layers)]

    # ------------------------------------------------------------------ forward / backward
    @_holding_blas
    def forward(self, x, h0=None, lengths=None, training=False):
        """Run the network: ``(out (B, T, D*H), h_n (L*D, B, H))``."""
        be = self._stack.backend
        x, device_io = check_sequences(be, x, self.input_size, self.dtype,
                                       what=type(self).__name__)
        B, T, _ = x.shape
        lengths = check_lengths(lengths, B, T, be)
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if h0 is None:
            h0 = np.zeros(shape, dtype=self.dtype)
        h0 = check_state(be, h0, "h0", shape, self.dtype)
        h_n = be.empty(shape, self.dtype)
        out, _ = self._stack.forward(x, lengths, self._split(h0), self._split(h_n),
                                     training=training, rng=self.rng)
        if training:
            self.dropout_masks_ = self._stack.dropout_masks()
            self.recurrent_dropout_masks_ = self._stack.recurrent_masks()
            self._device_io = device_io
            self._no_backward = None
        elif self._stack.training_shape is not None:
            # the stack keeps the training forward's tape: a backward now would silently
            # return that forward's gradients, not this one's (PyTorch raises here too)
            self._no_backward = ("the last forward was an inference forward (training=False), "
                                 "whose gradients are not kept")
        if device_io:
            return out, h_n
        return be.to_host(out), be.to_host(h_n)

    @_holding_blas
    def backward(self, d_out, d_h_n=None):
        """Backpropagate through the last training forward: ``(dx, dh0, grads)``."""
        dx, dh0, grads = self._backward(d_out, d_h_n, need_dx=True)
        return dx, dh0, _layout.named_grads(self._stack, grads)

    def _backward(self, d_out, d_h_n=None, need_dx=True):
        stack = self._stack
        if stack.training_shape is None:
            raise RuntimeError("backward() needs a preceding forward(..., training=True); "
                               "call forward with training=True first")
        reason = getattr(self, "_no_backward", None)
        if reason is not None:
            raise RuntimeError(f"backward() backpropagates through the last forward, which must "
                               f"be forward(..., training=True), but {reason}; call forward "
                               "with training=True again before backward")
        be = stack.backend
        B, T = stack.training_shape
        out_shape = (B, T, self.num_directions * self.hidden_size)
        if be.is_native(d_out):
            d_out = check_native(be, d_out, "d_out", out_shape, self.dtype)
        else:
            d_out = check_float_array(d_out, "d_out", self.dtype)
            if d_out.shape != out_shape:
                raise ValueError(f"d_out must have the shape of out, {out_shape}, "
                                 f"got {d_out.shape}")
            check_finite(d_out, "d_out")
            d_out = be.upload(d_out)
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if d_h_n is not None:
            d_h_n = self._split(check_state(be, d_h_n, "d_h_n", shape, self.dtype))
        dh0 = be.empty(shape, self.dtype)
        dx, _, grads = stack.backward(d_out, d_h_n, self._split(dh0), need_dx=need_dx)
        if self._device_io:
            return dx, dh0, grads
        return (None if dx is None else be.to_host(dx)), be.to_host(dh0), grads

    def __repr__(self):
        extra = []
        if self.num_layers != 1:
            extra.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            extra.append("bidirectional=True")
        if self.dropout:
            extra.append(f"dropout={self.dropout}")
        if self.residual:
            extra.append("residual=True")
        if getattr(self, "layer_norm", False):
            extra.append("layer_norm=True")
        if getattr(self, "recurrent_dropout", 0.0):
            extra.append(f"recurrent_dropout={self.recurrent_dropout}")
        extra += self._repr_options()
        extra.append(f"dtype={self.dtype.name!r}")
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, {', '.join(extra)})"


def network_over(cls, stack, rng=None):
    """A ``cls`` (``numgru.GRU`` or ``numgru.RNN``, a :class:`RecurrentNetwork`) over an existing
    stack of equal-size layers of its cell, sharing the stack's parameters (the sequence
    estimators' ``layers_``)."""
    rec = stack.recurrent_layers
    first = rec[0]
    net = cls.__new__(cls)
    net.input_size = first.input_size
    net.hidden_size = first.hidden_size
    net.num_layers = len(rec)
    net.num_directions = first.num_directions
    net.bidirectional = first.num_directions == 2
    net.dropout = next((lay.p for lay in stack.layers if not lay.num_states), 0.0)
    net.residual = bool(stack.residual_layers)
    net._cell_attributes(first)
    net.layer_norm = getattr(first, "layer_norm", False)
    net.recurrent_dropout = getattr(first, "recurrent_dropout", 0.0)
    net.dtype = stack.dtype
    net.rng = rng if rng is not None else np.random.default_rng()
    net.dropout_masks_ = []
    net.recurrent_dropout_masks_ = []
    net._device_io = False
    net._no_backward = None
    net._stack = stack
    return net


def stack_of(network):
    """The engine :class:`numgru._stack.Stack` a :class:`RecurrentNetwork` runs on (the ONNX
    export reads its layers)."""
    return network._stack
