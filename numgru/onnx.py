"""ONNX export: ``to_onnx(model)`` builds an ``onnx.ModelProto`` that runs without numgru.

Shape legend: B batch, T time, I input size, H_k hidden size of recurrent layer k,
D directions (1 or 2), F = D*H of the top layer, K head outputs (classes or targets),
V vocabulary size.

Needs the ``onnx`` package (``pip install "numgru[onnx]"``); the graph is made with its
``onnx.helper`` functions from standard operators only (opset ``opset``, default 17):

- every recurrent layer is ONNX's own ``GRU`` or ``RNN`` operator, time-major, one operator per
  layer (so layers of different sizes chain), gates reordered from PyTorch's r, z, n to ONNX's
  z, r, h, ``linear_before_reset=1`` for ``reset_after=True`` (0 for the Cho form, whose
  recurrent n-bias is 0), ``direction="bidirectional"`` for D = 2, ``activations`` Tanh or Relu
  for the RNN; ``sequence_lens`` carries the valid lengths of a padded batch;
- residual connections are ``Add`` nodes; dropout and recurrent dropout, training-only, are
  left out;
- the estimators' heads: last / mean / attention pooling or one output per step, a ``Gemm`` /
  ``MatMul`` head, softmax and the class labels for the classifier; the language model's
  embedding (``Gather``), GRU stack and decoder with ``LogSoftmax``.

Layer normalisation inside the gates (``layer_norm=True``) is not a standard ``GRU`` / ``RNN``
option and is not exported: :func:`to_onnx` raises ``ValueError`` naming it.

Every number comes from the fitted model: the recurrent parameters from the engine's
PyTorch-layout views (:mod:`numgru._layout`), the heads from the estimator's fitted arrays, and
the fitted input standardisation (``input_mean_``, ``input_scale_``) and regressor target
standardisation (``target_mean_``, ``target_scale_``) whenever the estimator has them.
"""

import numbers

import numpy as np

__all__ = ["to_onnx"]

DEFAULT_OPSET = 17
_MIN_OPSET = 14


def _onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("numgru.onnx.to_onnx needs the onnx package: "
                          'pip install "numgru[onnx]"') from exc
    return onnx


def to_onnx(model, *, lengths=False, state=False, dtype=None, opset=DEFAULT_OPSET):
    """Export a numgru network or fitted estimator as an ONNX model.

    Parameters
    ----------
    model : numgru.GRU, numgru.RNN, GRUClassifier, GRURegressor or GRULanguageModel
        A network, or a fitted estimator.
    lengths : bool, default=False
        Add an int64 input ``lengths`` (B,) of valid lengths for right-padded batches
        (ONNX ``sequence_lens``): the outputs then equal numgru's for the same ``lengths`` (or
        the ragged list of the same sequences). Without it every sequence has all T steps.
    state : bool, default=False
        Add the recurrent layers' initial states as inputs (zeros in numgru when omitted), so
        that a deployed model can carry its state from one chunk of a stream to the next. The
        final states are outputs in every export. Names: ``h0`` / ``h_n`` (L*D, B, H) for
        ``GRU`` / ``RNN``; ``h0_l{k}`` / ``h_n_l{k}`` (D, B, H_k) per recurrent layer k for
        the estimators and the language model.
    dtype : {None, "float32", "float64"}, default=None
        Dtype of the graph's inputs, parameters and outputs; None: the model's. onnxruntime
        (1.32, the version tested) runs the ``GRU`` and ``RNN`` operators in float32 only, so
        a float64 model meant for onnxruntime is exported with ``dtype="float32"``.
    opset : int, default=17
        ONNX opset of the graph (14 or later).

    Returns
    -------
    onnx.ModelProto
        Inputs and outputs, with symbolic dimensions ``batch`` and ``time``:

        - ``GRU`` / ``RNN``: input ``input`` (B, T, I) -> ``output`` (B, T, D*H) and
          ``h_n`` (L*D, B, H), as :meth:`numgru.GRU.forward`.
        - ``GRUClassifier``: ``X`` (B, T, I) -> ``label`` (B,) and ``probabilities`` (B, K),
          skl2onnx's names (its ``zipmap=False`` form): :meth:`~GRUClassifier.predict` and
          :meth:`~GRUClassifier.predict_proba`. With ``output="each_step"``: (B, T) and
          (B, T, K), zero (or the empty string) past each sequence's length, as ``predict``
          gives for a padded array.
        - ``GRURegressor``: ``X`` (B, T, I) -> ``variable`` (B, K) (skl2onnx's name; a single
          target too keeps its column), or (B, T, K) with ``output="each_step"``, zero past
          each length.
        - ``GRULanguageModel``: ``ids`` int64 (B, T) -> ``log_probabilities`` (B, T, V), the
          log-softmax over the vocabulary of the token after each position.

        An estimator's ``X`` is always 3-D: a univariate model takes (B, T, 1).

    Raises
    ------
    ImportError
        If the onnx package is not installed.
    TypeError
        If ``model`` is none of the supported types.
    sklearn.exceptions.NotFittedError
        If an estimator is not fitted.
    ValueError
        If the model has ``layer_norm=True`` (no standard operator computes it), or an option
        is out of range.

    Examples
    --------
    >>> import numpy as np, numgru
    >>> from numgru.onnx import to_onnx
    >>> gru = numgru.GRU(3, 5, num_layers=2, bidirectional=True, random_state=0)
    >>> proto = to_onnx(gru, lengths=True)
    >>> [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    (['input', 'lengths'], ['output', 'h_n'])
    >>> import onnxruntime as ort                          # doctest: +SKIP
    >>> sess = ort.InferenceSession(proto.SerializeToString())  # doctest: +SKIP
    >>> x = np.ones((4, 7, 3), np.float32)                 # doctest: +SKIP
    >>> out, h_n = sess.run(None, {"input": x, "lengths": np.array([7, 7, 3, 1])})  # doctest: +SKIP
    """
    onnx = _onnx()
    from sklearn.utils.validation import check_is_fitted

    from .estimators import GRUClassifier, GRURegressor, _BaseRecurrentEstimator
    from .lm import GRULanguageModel
    from ._facade import RecurrentNetwork, stack_of

    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, numbers.Integral) \
            or not _MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be an integer from {_MIN_OPSET} to "
                         f"{onnx.defs.onnx_opset_version()} (this onnx package's newest), "
                         f"got {opset!r}")
    if isinstance(model, RecurrentNetwork):
        stack, kind = stack_of(model), "network"
    elif isinstance(model, _BaseRecurrentEstimator):
        check_is_fitted(model, "stack_")
        if not isinstance(model, (GRUClassifier, GRURegressor)):
            raise TypeError(f"to_onnx does not know the estimator {type(model).__name__}")
        stack, kind = model.stack_, "estimator"
    elif isinstance(model, GRULanguageModel):
        check_is_fitted(model, "stack_")
        stack, kind = model.stack_, "lm"
    else:
        raise TypeError("to_onnx exports numgru.GRU, numgru.RNN, GRUClassifier, GRURegressor "
                        f"and GRULanguageModel, got {type(model).__name__}")
    for lay in stack.recurrent_layers:
        if getattr(lay, "layer_norm", False):
            raise ValueError("layer_norm=True cannot be exported: ONNX's GRU and RNN operators "
                             "have no layer normalisation inside the gates (train with "
                             "layer_norm=False to deploy with ONNX)")
    dt = np.dtype(stack.dtype if dtype is None else dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {dtype!r}")

    g = _Graph(onnx, dt)
    if kind == "network":
        _network_graph(g, model, stack, lengths, state)
        name = type(model).__name__
    elif kind == "estimator":
        _estimator_graph(g, model, lengths, state, isinstance(model, GRUClassifier))
        name = type(model).__name__
    else:
        _lm_graph(g, model, lengths, state)
        name = "GRULanguageModel"
    return g.model(name, opset)


# ---------------------------------------------------------------------- graph building
class _Graph:
    """Nodes, initializers, inputs and outputs of the graph being built, with unique names."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.h = onnx.helper
        self.dtype = np.dtype(dtype)
        self.elem = self.h.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._count = 0

    def _name(self, base):
        self._count += 1
        return f"{base}_{self._count}"

    def const(self, value, base="const", dtype=None):
        """An initializer holding ``value`` (in the graph's dtype unless ``dtype`` is given)."""
        arr = np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        name = self._name(base)
        if arr.dtype.kind in "USO":
            tensor = self.h.make_tensor(name, self.onnx.TensorProto.STRING, arr.shape,
                                        [str(s).encode("utf-8") for s in arr.ravel()])
        else:
            tensor = self.onnx.numpy_helper.from_array(arr.copy(order="C"), name)
        self.inits.append(tensor)
        return name

    def ints(self, values, base="ints"):
        return self.const(np.asarray(values, dtype=np.int64), base)

    def node(self, op, inputs, n_out=1, base=None, **attrs):
        outs = [self._name(base or op.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op, list(inputs), outs, name=self._name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def input(self, name, shape, elem=None):
        self.inputs.append(self.h.make_tensor_value_info(name, self.elem if elem is None
                                                         else elem, shape))
        return name

    def output(self, source, name, shape, elem=None):
        """Expose tensor ``source`` as graph output ``name`` (through an Identity)."""
        self.nodes.append(self.h.make_node("Identity", [source], [name],
                                           name=self._name("Identity")))
        self.outputs.append(self.h.make_tensor_value_info(name, self.elem if elem is None
                                                          else elem, shape))

    def model(self, name, opset):
        from . import __version__
        graph = self.h.make_graph(self.nodes, f"numgru_{name}", self.inputs, self.outputs,
                                  self.inits)
        proto = self.h.make_model(graph, opset_imports=[self.h.make_opsetid("", int(opset))],
                                  producer_name="numgru", producer_version=__version__)
        proto.doc_string = f"numgru {name} exported by numgru.onnx.to_onnx"
        self.onnx.checker.check_model(proto)
        return proto


def _gate_blocks(a, H, order):
    """Blocks of H rows (first axis) of ``a`` taken in ``order``."""
    return np.concatenate([a[i * H:(i + 1) * H] for i in order], axis=0)


def _layer_arrays(lay):
    """ONNX ``W`` (D, G, I), ``R`` (D, G, H), ``B`` (D, 2G) of one recurrent layer
    (G = 3H for the GRU in gate order z, r, h; G = H for the RNN)."""
    H, D = lay.hidden_size, lay.num_directions
    Ws, Rs, Bs = [], [], []
    for d in range(D):
        w_ih = lay.view(lay.params, "weight_ih", d)
        w_hh = lay.view(lay.params, "weight_hh", d)
        b_ih = lay.view(lay.params, "bias_ih", d)
        b_hh = lay.view(lay.params, "bias_hh", d)
        if lay.cell == "gru":
            zrh = (1, 0, 2)                    # PyTorch r, z, n -> ONNX z, r, h
            w, r, bw = (_gate_blocks(a, H, zrh) for a in (w_ih, w_hh, b_ih))
            if lay.reset_after:
                br = _gate_blocks(b_hh, H, zrh)
            else:                              # Cho form: b_hh holds r, z only; Rbh = 0
                br = np.concatenate([b_hh[H:2 * H], b_hh[:H], np.zeros(H, b_hh.dtype)])
        else:
            w, r, bw, br = w_ih, w_hh, b_ih, b_hh
        Ws.append(w)
        Rs.append(r)
        Bs.append(np.concatenate([bw, br]))
    return np.stack(Ws), np.stack(Rs), np.stack(Bs)


def _recurrent(g, lay, x, seq_lens, h0, k):
    """One recurrent layer on time-major ``x`` (T, B, I): returns ``(out (T, B, D*H),
    h_n (D, B, H))``."""
    H, D = lay.hidden_size, lay.num_directions
    W, R, B = _layer_arrays(lay)
    inputs = [x, g.const(W, f"W_l{k}"), g.const(R, f"R_l{k}"), g.const(B, f"B_l{k}"),
              seq_lens or "", h0 or ""]
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if lay.cell == "gru":
        op = "GRU"
        attrs["linear_before_reset"] = int(lay.reset_after)
    else:
        op = "RNN"
        attrs["activations"] = [lay.nonlinearity.capitalize()] * D     # "Tanh" / "Relu"
    Y, Y_h = g.node(op, inputs, n_out=2, base=f"{op.lower()}_l{k}", **attrs)
    # Y (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
    Yt = g.node("Transpose", [Y], perm=[0, 2, 1, 3])
    out = g.node("Reshape", [Yt, g.ints([0, 0, -1])])
    return out, Y_h


def _run_stack(g, stack, x, seq_lens, h0s):
    """All layers of ``stack`` from time-major ``x``; dropout is inference-time identity, the
    embedding has been applied by the caller. Returns ``(out (T, B, F), [h_n per layer])``."""
    rec = stack.recurrent_layers
    skip = set(stack.residual_layers)
    h_ns = []
    for k, lay in enumerate(rec):
        out, h_n = _recurrent(g, lay, x, seq_lens, h0s[k] if h0s else None, k)
        if k in skip:
            out = g.node("Add", [out, x], base=f"residual_l{k}")
        h_ns.append(h_n)
        x = out
    return x, h_ns


def _lengths_and_mask(g, x, lengths_name, time_axis):
    """``lens`` (B,) int64 (the input, or T for every sequence) and ``valid`` (T, B) bool."""
    shape = g.node("Shape", [x])
    T = g.node("Gather", [shape, g.const(np.int64(time_axis))], base="T")
    if lengths_name is None:
        B = g.node("Gather", [shape, g.ints([1 - time_axis])], base="B")   # (1,)
        lens = g.node("Expand", [T, B], base="lens")
    else:
        lens = lengths_name
    steps = g.node("Range", [g.const(np.int64(0)), T, g.const(np.int64(1))])
    valid = g.node("Less", [g.node("Unsqueeze", [steps, g.ints([1])]),
                            g.node("Unsqueeze", [lens, g.ints([0])])], base="valid")
    return lens, valid


def _standardised_input(g, model, x):
    """``(x - input_mean_) / input_scale_`` when the estimator has fitted them (a model from
    before input standardisation has neither: x unchanged)."""
    mean = getattr(model, "input_mean_", None)
    scale = getattr(model, "input_scale_", None)
    if mean is not None:
        x = g.node("Sub", [x, g.const(np.asarray(mean), "input_mean")])
    if scale is not None:
        x = g.node("Div", [x, g.const(np.asarray(scale), "input_scale")])
    return x


def _state_inputs(g, rec, state):
    """Per-layer initial-state inputs ``h0_l{k}`` (D, B, H_k), or None without ``state``."""
    if not state:
        return None
    return [g.input(f"h0_l{k}", [lay.num_directions, "batch", lay.hidden_size])
            for k, lay in enumerate(rec)]


# ---------------------------------------------------------------------- the three graphs
def _network_graph(g, net, stack, lengths, state):
    I, L, D, H = net.input_size, net.num_layers, net.num_directions, net.hidden_size
    x = g.input("input", ["batch", "time", I])
    seq_lens = None
    if lengths:
        seq_lens = g.node("Cast", [g.input("lengths", ["batch"], g.onnx.TensorProto.INT64)],
                          to=g.onnx.TensorProto.INT32)
    h0s = None
    if state:
        h0 = g.input("h0", [L * D, "batch", H])
        h0s = [g.node("Slice", [h0, g.ints([k * D]), g.ints([(k + 1) * D]), g.ints([0])])
               for k in range(L)]
    out, h_ns = _run_stack(g, stack, g.node("Transpose", [x], perm=[1, 0, 2]), seq_lens, h0s)
    g.output(g.node("Transpose", [out], perm=[1, 0, 2]), "output", ["batch", "time", D * H])
    h_n = h_ns[0] if L == 1 else g.node("Concat", h_ns, axis=0)
    g.output(h_n, "h_n", [L * D, "batch", H])


def _estimator_graph(g, model, lengths, state, classifier):
    stack = model.stack_
    rec = stack.recurrent_layers
    I = rec[0].input_size
    x = g.input("X", ["batch", "time", I])
    lengths_name = g.input("lengths", ["batch"], g.onnx.TensorProto.INT64) if lengths else None
    seq_lens = (g.node("Cast", [lengths_name], to=g.onnx.TensorProto.INT32)
                if lengths else None)
    xs = _standardised_input(g, model, x)
    h0s = _state_inputs(g, rec, state)
    out, h_ns = _run_stack(g, stack, g.node("Transpose", [xs], perm=[1, 0, 2]), seq_lens, h0s)
    top_skip = len(rec) - 1 in stack.residual_layers
    if model.output == "each_step" or model.pooling != "last" or top_skip:
        lens, valid = _lengths_and_mask(g, out, lengths_name, 0)    # (B,), valid (T, B)
    else:                       # pooling="last" reads the final states: no mask needed
        lens = valid = None
    top = rec[-1]
    F = top.num_directions * top.hidden_size
    coef = np.asarray(model.head_coef_)
    K = coef.shape[0]
    if model.output == "each_step":
        h = g.node("Transpose", [out], perm=[1, 0, 2])                 # (B, T, F)
        logits = g.node("Add", [g.node("MatMul", [h, g.const(coef.T, "head_coef_T")]),
                                g.const(model.head_intercept_, "head_intercept")])
        mask = g.node("Transpose", [valid], perm=[1, 0], base="valid_bt")   # (B, T)
        dims = ["batch", "time"]
    else:
        feats = _pooled(g, model, stack, out, h_ns[-1], lens, valid, F)
        logits = g.node("Gemm", [feats, g.const(coef, "head_coef"),
                                 g.const(model.head_intercept_, "head_intercept")], transB=1)
        if getattr(model, "skip_coef_", None) is not None:       # GRURegressor's linear skip
            logits = g.node("Add", [logits, _linear_skip(g, model, xs, lengths_name)])
        mask = None
        dims = ["batch"]
    if classifier:
        _classifier_outputs(g, model, logits, mask, dims, K)
    else:
        pred = logits
        scale = getattr(model, "target_scale_", None)
        mean = getattr(model, "target_mean_", None)
        if scale is not None:
            pred = g.node("Mul", [pred, g.const(np.asarray(scale), "target_scale")])
        if mean is not None:
            pred = g.node("Add", [pred, g.const(np.asarray(mean), "target_mean")])
        if mask is not None:
            pred = g.node("Mul", [pred, _float_mask(g, mask)])
        g.output(pred, "variable", dims + [K])
    for k, (lay, h_n) in enumerate(zip(rec, h_ns)):
        g.output(h_n, f"h_n_l{k}", [lay.num_directions, "batch", lay.hidden_size])


def _linear_skip(g, model, xs, lengths_name):
    """The regressor's linear skip (B, K): the standardised inputs ``xs`` (B, T, I) of the last
    ``skip_steps_`` valid steps of each sequence (zeros before its first), oldest first,
    flattened, times ``skip_coef_`` plus ``skip_intercept_`` (:mod:`numgru._linear_skip`). Each
    step is picked with an exact 0/1 mask over time."""
    k = int(model.skip_steps_)
    xt = g.node("Transpose", [xs], perm=[1, 0, 2])                       # (T, B, I)
    shape = g.node("Shape", [xt])
    T = g.node("Gather", [shape, g.const(np.int64(0))])
    if lengths_name is None:
        lens = g.node("Expand", [T, g.node("Gather", [shape, g.ints([1])])])
    else:
        lens = lengths_name
    steps = g.node("Unsqueeze", [g.node("Range", [g.const(np.int64(0)), T, g.const(np.int64(1))]),
                                 g.ints([1])])                           # (T, 1)
    picked = []
    for j in range(k):
        step = g.node("Sub", [lens, g.const(np.int64(k - j))])           # (B,)
        pick = g.node("Equal", [steps, g.node("Unsqueeze", [step, g.ints([0])])])
        pick = g.node("Unsqueeze", [g.node("Cast", [pick], to=g.elem), g.ints([2])])
        picked.append(g.node("ReduceSum", [g.node("Mul", [xt, pick]), g.ints([0])], keepdims=0))
    Z = picked[0] if k == 1 else g.node("Concat", picked, axis=1, base="skip_inputs")
    return g.node("Gemm", [Z, g.const(np.asarray(model.skip_coef_), "skip_coef"),
                           g.const(np.asarray(model.skip_intercept_), "skip_intercept")],
                  transB=1, base="skip")


def _float_mask(g, mask):
    """(B, T) bool -> (B, T, 1) in the graph's dtype."""
    return g.node("Unsqueeze", [g.node("Cast", [mask], to=g.elem), g.ints([2])])


def _pooled(g, model, stack, out, h_n, lens, valid, F):
    """Features (B, F) of ``output="last"`` with the model's pooling, from the top layer's
    output ``out`` (T, B, F) (zero past each length) and final state ``h_n`` (D, B, H)."""
    D = stack.recurrent_layers[-1].num_directions
    H = F // D
    pooling = model.pooling
    if pooling == "last":
        if len(stack.recurrent_layers) - 1 not in stack.residual_layers:
            # the top layer's final states, (D, B, H) -> (B, D*H)
            return g.node("Reshape", [g.node("Transpose", [h_n], perm=[1, 0, 2]),
                                      g.ints([0, -1])], base="feats")
        # a skip on the top layer: its output at the last valid step (the forward half at
        # length - 1, the reverse half at step 0), picked with an exact 0/1 mask
        shape = g.node("Shape", [out])
        T = g.node("Gather", [shape, g.const(np.int64(0))])
        steps = g.node("Range", [g.const(np.int64(0)), T, g.const(np.int64(1))])
        last = g.node("Sub", [lens, g.const(np.int64(1))])
        pick = g.node("Equal", [g.node("Unsqueeze", [steps, g.ints([1])]),
                                g.node("Unsqueeze", [last, g.ints([0])])])
        pick = g.node("Unsqueeze", [g.node("Cast", [pick], to=g.elem), g.ints([2])])
        at_last = g.node("ReduceSum", [g.node("Mul", [out, pick]), g.ints([0])], keepdims=0)
        if D == 1:
            return at_last
        fwd = g.node("Slice", [at_last, g.ints([0]), g.ints([H]), g.ints([1])])
        first = g.node("Gather", [out, g.const(np.int64(0))], axis=0)      # (B, F)
        rev = g.node("Slice", [first, g.ints([H]), g.ints([F]), g.ints([1])])
        return g.node("Concat", [fwd, rev], axis=1, base="feats")
    if pooling == "mean":
        total = g.node("ReduceSum", [out, g.ints([0])], keepdims=0)          # (B, F)
        n = g.node("Unsqueeze", [g.node("Cast", [lens], to=g.elem), g.ints([1])])
        return g.node("Div", [total, n], base="feats")
    # attention: u = tanh(h W^T + b), s = u . v, alpha = softmax over the valid steps
    u = g.node("Tanh", [g.node("Add", [
        g.node("MatMul", [out, g.const(np.asarray(model.attention_coef_).T, "attention_coef_T")]),
        g.const(model.attention_intercept_, "attention_intercept")])])
    s = g.node("MatMul", [u, g.const(model.attention_vector_, "attention_vector")])  # (T, B)
    s = g.node("Where", [valid, s, g.const(np.array(-np.inf))])
    alpha = g.node("Softmax", [s], axis=0, base="alpha")
    weighted = g.node("Mul", [out, g.node("Unsqueeze", [alpha, g.ints([2])])])
    return g.node("ReduceSum", [weighted, g.ints([0])], keepdims=0, base="feats")


def _classifier_outputs(g, model, logits, mask, dims, K):
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "iu":
        table, elem, zero = classes.astype(np.int64), g.onnx.TensorProto.INT64, np.int64(0)
    elif classes.dtype.kind == "f":
        table, elem, zero = classes.astype(np.float64), g.onnx.TensorProto.DOUBLE, np.float64(0)
    elif classes.dtype.kind in "US" or (classes.dtype.kind == "O"
                                        and all(isinstance(c, str) for c in classes)):
        table, elem, zero = classes.astype(str), g.onnx.TensorProto.STRING, np.array("")
    else:
        raise ValueError(f"class labels of dtype {classes.dtype} cannot be exported; use "
                         "integer, float or string labels")
    proba = g.node("Softmax", [logits], axis=-1)
    index = g.node("ArgMax", [logits], axis=-1, keepdims=0)
    # the labels keep their own dtype (float labels stay float64 in a float32 graph)
    label = g.node("Gather", [g.const(table, "classes", dtype=table.dtype), index], axis=0)
    if mask is not None:
        proba = g.node("Mul", [proba, _float_mask(g, mask)])
        label = g.node("Where", [mask, label, g.const(zero, "no_label", dtype=table.dtype)])
    g.output(label, "label", dims, elem)
    g.output(proba, "probabilities", dims + [K])


def _lm_graph(g, lm, lengths, state):
    stack = lm.stack_
    rec = stack.recurrent_layers
    ids = g.input("ids", ["batch", "time"], g.onnx.TensorProto.INT64)
    seq_lens = None
    if lengths:
        seq_lens = g.node("Cast", [g.input("lengths", ["batch"], g.onnx.TensorProto.INT64)],
                          to=g.onnx.TensorProto.INT32)
    h0s = _state_inputs(g, rec, state)
    ids_t = g.node("Transpose", [ids], perm=[1, 0])                              # (T, B)
    emb = g.node("Gather", [g.const(stack.layers[0].params["weight"], "encoder_weight"), ids_t],
                 axis=0)                                                        # (T, B, E)
    out, h_ns = _run_stack(g, stack, emb, seq_lens, h0s)
    h = g.node("Transpose", [out], perm=[1, 0, 2])                               # (B, T, H)
    head = lm.head_
    logits = g.node("Add", [g.node("MatMul", [h, g.const(head.params["weight"].T,
                                                        "decoder_weight_T")]),
                            g.const(head.params["bias"], "decoder_bias")])
    V = head.vocab_size
    g.output(g.node("LogSoftmax", [logits], axis=-1), "log_probabilities", ["batch", "time", V])
    for k, (lay, h_n) in enumerate(zip(rec, h_ns)):
        g.output(h_n, f"h_n_l{k}", [lay.num_directions, "batch", lay.hidden_size])
