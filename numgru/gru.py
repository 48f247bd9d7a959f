"""``numgru.GRU``: a multi-layer (bi)directional GRU with exact backpropagation through time.

Shape legend: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).

Parameters are held per layer in packed form (both directions stacked) so that the input
projection of all timesteps and both directions is one GEMM; :meth:`GRU.state_dict` exposes them
under PyTorch's names and shapes. The recurrences run in :mod:`numgru._cpu`.
"""

import functools
import math
import numbers
import threading

import numpy as np

from . import _cpu, _cuda
from ._config import PARALLEL_MIN_WORK, blas_single_threaded

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _as_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _check_float_array(a, name, dtype):
    """Convert an array-like to a C-contiguous array of ``dtype``; reject non-real-number data."""
    arr = np.asarray(a)
    kind = arr.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} has boolean dtype; expected real floating-point numbers")
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; expected real floating-point numbers")
    if kind not in "fiu":
        raise TypeError(f"{name} has non-numeric dtype {arr.dtype}; expected real floating-point numbers")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if not out.flags.writeable:  # a read-only array would make Numba compile another variant
        out = out.copy()
    return out


def _check_finite(arr, name):
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(f"{name} contains {bad} values; all values must be finite")


def _holding_blas(method):
    """Run a method with SciPy's BLAS held to one thread (see ``_config.blas_single_threaded``)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with blas_single_threaded:
            return method(*args, **kwargs)

    return wrapper


def _resolve_device(device):
    """'cpu' or 'cuda' for a ``device`` argument; 'auto' takes a real GPU when there is one."""
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "auto":
        return "cuda" if _cuda.gpu_present() else "cpu"
    if device == "cuda":
        reason = _cuda.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"device='cuda' cannot be used: {reason}")
    return device


def _num_threads():
    import numba

    return numba.get_num_threads()


class GRU:
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
                 reset_after=True, dtype="float32", device="cpu", random_state=None):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real) \
                or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        device = _resolve_device(device)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dropout = float(dropout)
        self.reset_after = bool(reset_after)
        self.dtype = _as_dtype(dtype)
        self.device = device
        self.rng = (random_state if isinstance(random_state, np.random.Generator)
                    else np.random.default_rng(random_state))
        self.dropout_masks_ = []
        self._cache = None
        self._dev_params = None        # device copies of the parameters (device="cuda")
        self._host_mutable = False     # parameters handed out for in-place updates
        self._tls = threading.local()
        self._layers = []
        H, D = self.hidden_size, self.num_directions
        bound = 1.0 / np.sqrt(H)
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else D * H
            layer = {}
            # draw per direction in state_dict order so that the stream matches the names
            w_ih, w_hh, b_ih, b_hh = [], [], [], []
            for _ in range(D):
                w_ih.append(self.rng.uniform(-bound, bound, (3 * H, in_k)))
                w_hh.append(self.rng.uniform(-bound, bound, (3 * H, H)))
                b_ih.append(self.rng.uniform(-bound, bound, 3 * H))
                bh = self.rng.uniform(-bound, bound, 3 * H if self.reset_after else 2 * H)
                b_hh.append(np.concatenate([bh, np.zeros(3 * H - bh.size)]))
            layer["w_ih"] = np.ascontiguousarray(np.concatenate(w_ih), dtype=self.dtype)
            layer["w_hh"] = np.ascontiguousarray(np.stack(w_hh), dtype=self.dtype)
            layer["b_ih"] = np.ascontiguousarray(np.concatenate(b_ih), dtype=self.dtype)
            layer["b_hh"] = np.ascontiguousarray(np.stack(b_hh), dtype=self.dtype)
            self._layers.append(layer)

    # ------------------------------------------------------------------ workspace
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
            buf = bufs[key] = self._alloc(max(n, 1))
        return buf[:n].reshape(shape)

    def _alloc(self, shape):
        """A fresh uninitialised array on this GRU's device."""
        if self.device == "cuda":
            return _cuda.device_empty(shape, self.dtype)
        return np.empty(shape, dtype=self.dtype)

    @property
    def _be(self):
        """The kernel module of this GRU's device: :mod:`numgru._cpu` or :mod:`numgru._cuda`."""
        return _cuda if self.device == "cuda" else _cpu

    def _bparams(self):
        """Per-layer parameters as the kernels take them, on this GRU's device.

        Device copies are kept until the parameters change: :meth:`load_state_dict` drops them,
        and once :meth:`_packed_params` has handed the arrays out for in-place updates every
        call uploads afresh.
        """
        if self.device != "cuda":
            return self._layers
        if self._dev_params is None or self._host_mutable:
            self._dev_params = [{key: _cuda.to_device(value) for key, value in lay.items()}
                                for lay in self._layers]
        return self._dev_params

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tls"] = None
        state["_cache"] = None
        state["_dev_params"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._tls = threading.local()

    # ------------------------------------------------------------------ parameters
    def _names(self):
        suffixes = ["", "_reverse"][: self.num_directions]
        for k in range(self.num_layers):
            for d, s in enumerate(suffixes):
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    yield f"{kind}_l{k}{s}", k, d, kind

    def _shape(self, k, kind):
        H, D = self.hidden_size, self.num_directions
        in_k = self.input_size if k == 0 else D * H
        return {"weight_ih": (3 * H, in_k), "weight_hh": (3 * H, H), "bias_ih": (3 * H,),
                "bias_hh": (3 * H,) if self.reset_after else (2 * H,)}[kind]

    def _view(self, layers, k, d, kind):
        """The (writable) view of one direction's parameter inside packed per-layer arrays."""
        H = self.hidden_size
        lay = layers[k]
        if kind == "weight_ih":
            return lay["w_ih"][d * 3 * H:(d + 1) * 3 * H]
        if kind == "weight_hh":
            return lay["w_hh"][d]
        if kind == "bias_ih":
            return lay["b_ih"][d * 3 * H:(d + 1) * 3 * H]
        return lay["b_hh"][d] if self.reset_after else lay["b_hh"][d, : 2 * H]

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
        return {name: self._view(self._layers, k, d, kind).copy()
                for name, k, d, kind in self._names()}

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
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
        expected = {name: (k, d, kind) for name, k, d, kind in self._names()}
        missing = [n for n in expected if n not in state_dict]
        unexpected = [n for n in state_dict if n not in expected]
        if missing or unexpected:
            raise ValueError(f"state_dict does not match this GRU: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        converted = {}
        for name, (k, d, kind) in expected.items():
            value = state_dict[name]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            arr = _check_float_array(value, f"state_dict[{name!r}]", self.dtype)
            shape = self._shape(k, kind)
            if arr.shape != shape:
                raise ValueError(f"state_dict[{name!r}] has shape {arr.shape}, expected {shape}")
            _check_finite(arr, f"state_dict[{name!r}]")
            converted[name] = arr
        for name, (k, d, kind) in expected.items():
            self._view(self._layers, k, d, kind)[...] = converted[name]
        self._cache = None
        self._dev_params = None

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
        kernel = _check_float_array(kernel, "kernel", np.float64)
        recurrent_kernel = _check_float_array(recurrent_kernel, "recurrent_kernel", np.float64)
        if kernel.ndim != 2 or kernel.shape[1] % 3:
            raise ValueError(f"kernel must have shape (input_size, 3*units), got {kernel.shape}")
        I, H3 = kernel.shape
        H = H3 // 3
        if recurrent_kernel.shape != (H, H3):
            raise ValueError(f"recurrent_kernel must have shape {(H, H3)}, got {recurrent_kernel.shape}")
        if bias is None:
            bias = np.zeros((2, H3) if reset_after else (H3,))
        bias = _check_float_array(bias, "bias", np.float64)
        want = (2, H3) if reset_after else (H3,)
        if bias.shape != want:
            raise ValueError(f"bias must have shape {want} for reset_after={reset_after}, got {bias.shape}")

        def reorder(a):  # Keras (z, r, h) blocks along the last axis -> PyTorch (r, z, n)
            z, r, h = a[..., :H], a[..., H:2 * H], a[..., 2 * H:]
            return np.concatenate([r, z, h], axis=-1)

        gru = cls(I, H, 1, reset_after=reset_after, dtype=dtype)
        sd = {"weight_ih_l0": reorder(kernel).T, "weight_hh_l0": reorder(recurrent_kernel).T}
        if reset_after:
            sd["bias_ih_l0"] = reorder(bias[0])
            sd["bias_hh_l0"] = reorder(bias[1])
        else:
            sd["bias_ih_l0"] = reorder(bias)
            sd["bias_hh_l0"] = np.zeros(2 * H)
        gru.load_state_dict(sd)
        return gru

    # ------------------------------------------------------------------ validation
    def _check_x(self, x):
        x = _check_float_array(x, "x", self.dtype)
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D (batch, time, input_size), got {x.ndim}-D with shape {x.shape}")
        B, T, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x has {I} features per timestep but this GRU has input_size={self.input_size}")
        if B == 0 or T == 0:
            raise ValueError(f"x must have at least one sequence and one timestep, got shape {x.shape}")
        _check_finite(x, "x")
        return x

    def _check_lengths(self, lengths, B, T):
        if lengths is None:
            return np.full(B, T, dtype=np.int64)
        if hasattr(lengths, "detach"):
            lengths = lengths.detach().cpu().numpy()
        elif _cuda.is_device_array(lengths):
            lengths = _cuda.as_device(lengths).copy_to_host()
        arr = np.asarray(lengths)
        if arr.ndim != 1 or arr.shape[0] != B:
            raise ValueError(f"lengths must have one entry per sequence: expected shape ({B},), got {arr.shape}")
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise ValueError("lengths must be integers")
        elif arr.dtype.kind not in "iu":
            raise ValueError(f"lengths must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)  # always a fresh, writable copy
        if arr.min() < 1 or arr.max() > T:
            raise ValueError(f"lengths must lie in [1, {T}] (the number of timesteps), "
                             f"got values in [{arr.min()}, {arr.max()}]")
        return np.ascontiguousarray(arr)

    def _check_device_array(self, a, name, shape):
        """Validate a CUDA array (no copy to the host): shape, dtype, contiguity, finiteness."""
        a = _cuda.as_device(a)
        if a.dtype != self.dtype:
            raise TypeError(f"{name} is a device array of dtype {a.dtype}, but this GRU computes "
                            f"in {self.dtype}; convert it on the device first")
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {shape}, got {tuple(a.shape)}")
        if not a.is_c_contiguous():
            raise ValueError(f"{name} must be a C-contiguous device array")
        if _cuda.has_nonfinite(a):
            raise ValueError(f"{name} contains NaN or inf values; all values must be finite")
        return a

    def _check_x_device(self, x):
        a = _cuda.as_device(x)
        if a.ndim != 3:
            raise ValueError(f"x must be 3-D (batch, time, input_size), got {a.ndim}-D with "
                             f"shape {tuple(a.shape)}")
        B, T, I = a.shape
        if I != self.input_size:
            raise ValueError(f"x has {I} features per timestep but this GRU has "
                             f"input_size={self.input_size}")
        if B == 0 or T == 0:
            raise ValueError(f"x must have at least one sequence and one timestep, got shape {a.shape}")
        return self._check_device_array(a, "x", None)

    def _check_state(self, h, name, B):
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if self.device == "cuda" and _cuda.is_device_array(h):
            return self._check_device_array(h, name, shape)
        h = _check_float_array(h, name, self.dtype)
        if h.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (num_layers*num_directions, batch, "
                             f"hidden_size), got {h.shape}")
        _check_finite(h, name)
        return h

    @staticmethod
    def _ntasks(M):
        """Blocks of rows for the large products: one per thread, at least 64 rows each."""
        return max(1, min(_num_threads(), M // 64))

    def _nchunks(self, B):
        if B * 3 * self.hidden_size * self.hidden_size < PARALLEL_MIN_WORK:
            return 1
        return max(1, min(_num_threads(), B))

    # ------------------------------------------------------------------ forward / backward
    @_holding_blas
    def forward(self, x, h0=None, lengths=None, training=False):
        """Run the GRU over a batch of sequences.

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
        dev = self.device == "cuda"
        device_io = dev and _cuda.is_device_array(x)
        x = self._check_x_device(x) if device_io else self._check_x(x)
        B, T, _ = x.shape
        lengths = self._check_lengths(lengths, B, T)
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        if h0 is None:
            h0 = np.zeros((L * D, B, H), dtype=self.dtype)   # uploaded below on CUDA
        else:
            h0 = self._check_state(h0, "h0", B)
        be = self._be
        params = self._bparams()
        if dev:
            x = x if device_io else _cuda.to_device(x)
            h0 = h0 if _cuda.is_device_array(h0) else _cuda.to_device(h0)
            lengths_k = _cuda.to_device(lengths)
            nchunks = 1
        else:
            lengths_k = lengths
            nchunks = self._nchunks(B)
        empty4 = self._alloc((D, 0, 0, 0))
        h_n = self._alloc((L * D, B, H))
        mode = "train" if training else "infer"
        layer_caches = []
        masks = []
        inp = x
        for k, lay in enumerate(params):
            out = (self._alloc((B, T, D * H)) if k == L - 1
                   else self._work((mode, "out", k), (B, T, D * H)))
            if training:
                gates = self._work(("gates", k), (D, T, B, 3 * H))   # time-major
                hn_s = self._work(("hn_s", k), (D, T, B, H)) if self.reset_after else empty4
                hprev = self._work(("hprev", k), (D, T, B, H))
            else:
                gates = hn_s = hprev = empty4
            be.gru_layer_forward(inp, lay["w_ih"], lay["b_ih"], lay["w_hh"], lay["b_hh"],
                                 h0[k * D:(k + 1) * D], lengths_k, self.reset_after, nchunks,
                                 out, h_n[k * D:(k + 1) * D], training, gates, hn_s, hprev)
            if training:
                layer_caches.append((inp, gates, hn_s, hprev))
            if training and self.dropout > 0 and k < L - 1:
                keep = self.rng.random((B, T, D * H)) >= self.dropout
                mask = keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout)
                masks.append(mask)
                out = be.mul(out, _cuda.to_device(mask) if dev else mask,
                             self._work(("drop", k), (B, T, D * H)))
            inp = out
        if training:  # an inference forward leaves the last training forward's state alone
            self.dropout_masks_ = masks
            self._cache = {"B": B, "T": T, "lengths": lengths_k, "layers": layer_caches,
                           "masks": masks, "nchunks": nchunks, "params": params,
                           "device_io": device_io}
        if dev and not device_io:
            return inp.copy_to_host(), h_n.copy_to_host()
        return inp, h_n

    def backward(self, d_out, d_h_n=None):
        """Backpropagate through the last training forward.

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
            If no ``forward(..., training=True)`` preceded this call.
        ValueError
            If ``d_out`` or ``d_h_n`` has the wrong shape or non-finite values.

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
        d_in, dh0, glayers = self._backward(d_out, d_h_n, need_dx=True)
        packed = [{"w_ih": g["w_ih"], "w_hh": g["w_hh"], "b_ih": g["b_ih"], "b_hh": g["b_hh"]}
                  for g in glayers]
        grads = {name: self._view(packed, k, d, kind).copy() for name, k, d, kind in self._names()}
        return d_in, dh0, grads

    def _packed_params(self):
        """The parameter arrays themselves (packed per layer), for in-place optimizer updates."""
        self._host_mutable = True
        return [lay[key] for lay in self._layers for key in ("w_ih", "w_hh", "b_ih", "b_hh")]

    @staticmethod
    def _packed_grads(glayers):
        """Gradients from :meth:`_backward` in the order of :meth:`_packed_params`."""
        return [g[key] for g in glayers for key in ("w_ih", "w_hh", "b_ih", "b_hh")]

    @_holding_blas
    def _backward(self, d_out, d_h_n=None, need_dx=True):
        """Backward pass returning packed per-layer gradients; ``dx`` is None unless need_dx."""
        if self._cache is None:
            raise RuntimeError("backward() needs a preceding forward(..., training=True); "
                               "call forward with training=True first")
        cache = self._cache
        B, T, lengths = cache["B"], cache["T"], cache["lengths"]
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        dev = self.device == "cuda"
        be = self._be
        if dev and _cuda.is_device_array(d_out):
            d_out = self._check_device_array(d_out, "d_out", (B, T, D * H))
        else:
            d_out = _check_float_array(d_out, "d_out", self.dtype)
            if d_out.shape != (B, T, D * H):
                raise ValueError(f"d_out must have the shape of out, {(B, T, D * H)}, "
                                 f"got {d_out.shape}")
            _check_finite(d_out, "d_out")
            d_out = _cuda.to_device(d_out) if dev else d_out
        if d_h_n is None:
            d_h_n = np.zeros((L * D, B, H), dtype=self.dtype)
        else:
            d_h_n = self._check_state(d_h_n, "d_h_n", B)
        if dev and not _cuda.is_device_array(d_h_n):
            d_h_n = _cuda.to_device(d_h_n)
        host = (lambda a: a.copy_to_host()) if dev else (lambda a: a)
        nchunks = cache["nchunks"]
        params = cache["params"]
        no_bias = self._alloc(0)
        dh0 = self._alloc((L * D, B, H))
        glayers = [None] * L
        d_layer = d_out
        for k in range(L - 1, -1, -1):
            lay = params[k]
            inp, gates, hn_s, hprev = cache["layers"][k]
            in_k = inp.shape[2]
            dgi = self._work("dgi", (B, T, D * 3 * H))
            dgh = self._work("dgh", (D, T, B, 3 * H))                # time-major
            dbias = self._work("dbias", (D * nchunks, 2, 3 * H))
            be.gru_layer_backward(d_layer, d_h_n[k * D:(k + 1) * D], gates, hn_s, hprev,
                                  lay["w_hh"], lengths, self.reset_after, nchunks,
                                  dgi, dgh, dh0[k * D:(k + 1) * D], dbias)
            dbias = host(dbias).reshape(D, nchunks, 2, 3 * H).sum(axis=1)   # (D, 2, 3H)
            dgi2 = dgi.reshape(B * T, D * 3 * H)
            ntasks = self._ntasks(B * T)
            g_ih = self._alloc((D * 3 * H, in_k))
            be.gemm_tn(dgi2, inp.reshape(B * T, in_k), g_ih, ntasks)
            g_hh = self._alloc((D, 3 * H, H))
            for d in range(D):
                be.hh_weight_grad(dgh[d].reshape(B * T, 3 * H), hprev[d].reshape(B * T, H),
                                  gates[d].reshape(B * T, 3 * H), self.reset_after, g_hh[d],
                                  ntasks)
            g = {"w_ih": host(g_ih), "w_hh": host(g_hh), "b_ih": dbias[:, 0].reshape(-1).copy(),
                 "b_hh": np.zeros((D, 3 * H), dtype=self.dtype)}
            for d in range(D):
                if self.reset_after:
                    g["b_hh"][d] = dbias[d, 1]
                else:
                    g["b_hh"][d, : 2 * H] = dbias[d, 1, : 2 * H]
            glayers[k] = g
            if k == 0 and not need_dx:
                d_layer = None
                break
            d_inp = (self._alloc((B, T, in_k)) if k == 0
                     else self._work(("d_inp", k % 2), (B, T, in_k)))
            be.gemm(dgi2, lay["w_ih"], no_bias, d_inp.reshape(B * T, in_k), ntasks)
            if k > 0 and cache["masks"]:
                mask = cache["masks"][k - 1]
                be.mul(d_inp, _cuda.to_device(mask) if dev else mask, d_inp)
            d_layer = d_inp
        if dev and not cache["device_io"]:
            return (None if d_layer is None else d_layer.copy_to_host()), dh0.copy_to_host(), glayers
        return d_layer, dh0, glayers



    __call__ = forward

    def __repr__(self):
        extra = []
        if self.num_layers != 1:
            extra.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            extra.append("bidirectional=True")
        if self.dropout:
            extra.append(f"dropout={self.dropout}")
        if not self.reset_after:
            extra.append("reset_after=False")
        extra.append(f"dtype={self.dtype.name!r}")
        return f"GRU({self.input_size}, {self.hidden_size}, {', '.join(extra)})"
