"""Stateful streaming inference for the estimators: feed sequences a chunk of steps at a time.

Shape legend: S streams (sequences fed side by side), t steps in a chunk, F features per step.

A :class:`Stream` keeps, per stream, every recurrent layer's state after the steps seen so far
(and, for ``pooling="mean"``, the running sum of the last layer's outputs; for
``pooling="attention"``, the running max-shifted sums of
:class:`numgru._attention.RunningAttention`),
so that feeding a
sequence in chunks gives what ``predict`` gives on the whole sequence: for ``output="each_step"``
the predictions of the new steps, otherwise the prediction given all history so far.
"""

import numpy as np
from sklearn.utils import check_array

from . import _linear_skip
from ._attention import RunningAttention


class ReadOut:
    """What a stream needs of a fitted estimator, handed over by the estimator's ``stream()``
    (the stream never reads the estimator's private attributes).

    ``stack``: the recurrent :class:`numgru._stack.Stack`; ``output``, ``pooling``,
    ``bidirectional``: the estimator's parameters; ``n_inputs``: features per step;
    ``univariate``: fitted on 2-D ``X`` (one feature, steps as columns); ``last_from_out``:
    pooling="last" reads the top layer's output (it has a skip), not ``h_n``; ``head``:
    ``(coef (K, F), intercept (K,))``; ``attention``: ``(W, b, v)`` or None; ``skip``:
    ``(coef, intercept, steps)`` of a regressor's linear skip or None; ``scale_inputs(X)``: the
    estimator's input standardisation; ``decode(logits, proba)``: head outputs to predictions;
    ``name``: the estimator's class name, for messages.
    """

    def __init__(self, *, stack, output, pooling, bidirectional, n_inputs, univariate,
                 last_from_out, head, attention, skip, scale_inputs, decode, name):
        self.stack = stack
        self.output = output
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.n_inputs = n_inputs
        self.univariate = univariate
        self.last_from_out = last_from_out
        self.head = head
        self.attention = attention
        self.skip = skip
        self.scale_inputs = scale_inputs
        self.decode = decode
        self.name = name


class Stream:
    """Streaming inference over ``n_streams`` sequences fed side by side.

    Made by :meth:`GRURegressor.stream <numgru.GRURegressor.stream>` /
    :meth:`GRUClassifier.stream <numgru.GRUClassifier.stream>`; see there.
    """

    def __init__(self, model, n_streams=1):
        if isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer)) \
                or n_streams < 1:
            raise ValueError(f"n_streams must be a positive integer, got {n_streams!r}")
        if model.bidirectional:
            raise ValueError("a bidirectional model cannot stream: its reverse direction reads "
                             "each sequence from its end; use predict on whole sequences")
        self.model = model          # a ReadOut
        self.n_streams = int(n_streams)
        self.reset()

    def reset(self):
        """Forget all history: every stream starts again from a zero state."""
        model = self.model
        stack = model.stack
        be = stack.backend
        self._state = [be.upload(np.zeros((lay.num_states, self.n_streams, lay.state_size),
                                          dtype=stack.dtype))
                       for lay in stack.recurrent_layers]
        self._sum = np.zeros((self.n_streams, stack.output_size), dtype=np.float64)
        self._attention = RunningAttention(self.n_streams, stack.output_size)
        # the linear skip reads the last `steps` inputs: zeros (the mean) before the first
        self._recent = (np.zeros((self.n_streams, model.skip[2], model.n_inputs),
                                 dtype=stack.dtype) if model.skip is not None else None)
        self.n_steps_ = 0
        return self

    def _chunk(self, X):
        """The chunk as (S, t, F) in the model's dtype, with clear errors."""
        model = self.model
        S = self.n_streams
        univariate = model.univariate
        want = "(n_streams, n_steps)" if univariate else "(n_streams, n_steps, n_features)"
        if X is None or (isinstance(X, (list, tuple)) and len(X) == 0):
            # check_array would say "contains NaN" for None, "0 sample(s)" for []
            raise ValueError(f"X_chunk holds no steps (got {X!r}); a chunk is an array of "
                             f"shape {want} with at least one step")
        arr = check_array(X, ensure_2d=False, allow_nd=True, dtype=[np.float64, np.float32],
                          ensure_all_finite=True, ensure_min_samples=1, input_name="X_chunk")
        if univariate:
            if arr.ndim == 1 and S == 1:
                arr = arr[None, :]
            if arr.ndim != 2:
                raise ValueError(f"X_chunk must have shape {want} for a model fitted on "
                                 f"univariate sequences, got shape {arr.shape}")
            arr = arr[:, :, None]
        else:
            if arr.ndim == 2 and S == 1:
                arr = arr[None]
            if arr.ndim != 3:
                raise ValueError(f"X_chunk must have shape {want}, or (n_steps, n_features) "
                                 f"with one stream; got shape {arr.shape}")
        if arr.shape[0] != S:
            raise ValueError(f"X_chunk has {arr.shape[0]} streams but this stream was made with "
                             f"n_streams={S}")
        if arr.shape[1] == 0:
            raise ValueError("X_chunk has no steps; a chunk needs at least one step")
        if arr.shape[2] != model.n_inputs:
            raise ValueError(f"X_chunk has {arr.shape[2]} features per step, but "
                             f"{model.name} is expecting {model.n_inputs}")
        return model.scale_inputs(np.ascontiguousarray(arr, dtype=model.stack.dtype))

    def update(self, X_chunk, proba=False):
        """Feed the next steps of every stream; return the predictions they lead to.

        Parameters
        ----------
        X_chunk : array-like of shape (n_streams, n_steps, n_features)
            The next ``n_steps`` of each stream: (n_steps, n_features) with one stream;
            (n_streams, n_steps) / (n_steps,) for a model fitted on univariate 2-D ``X``.
        proba : bool, default=False
            Classifiers: class probabilities instead of labels.

        Returns
        -------
        ndarray
            ``output="each_step"``: the predictions of the new steps, (n_streams, n_steps[, k]).
            Otherwise the prediction for each stream given everything fed since the last
            :meth:`reset`, (n_streams[, k]) -- what ``predict`` returns for the whole sequences.
        """
        model = self.model
        stack = model.stack
        be = stack.backend
        x = self._chunk(X_chunk)
        S, t = x.shape[0], x.shape[1]
        lengths = np.full(S, t, dtype=np.int64)
        from ._config import compute_threads

        with compute_threads:
            out, h_n = stack.forward(be.upload(x), lengths, h0=self._state)
        self._state = h_n
        self.n_steps_ += t
        out = be.to_host(out)
        if model.output == "each_step":
            feats = out.reshape(S * t, -1)
        elif model.pooling == "attention":
            feats = self._attention.update(out, *model.attention)
        elif model.pooling == "last" and model.last_from_out:    # the top layer's skip
            feats = np.ascontiguousarray(out[:, -1])
        elif model.pooling == "last":
            feats = np.ascontiguousarray(be.to_host(h_n[-1])[0])
        else:
            self._sum += out.sum(axis=1, dtype=np.float64)
            feats = (self._sum / self.n_steps_).astype(out.dtype)
        coef, intercept = model.head
        logits = feats @ coef.T + intercept
        if self._recent is not None:
            skip_coef, skip_intercept, k = model.skip
            self._recent = np.ascontiguousarray(np.concatenate([self._recent, x], axis=1)[:, -k:])
            logits = logits + _linear_skip.forward(self._recent.reshape(S, -1), skip_coef,
                                                   skip_intercept)
        pred = model.decode(logits, proba)
        if model.output == "each_step":
            return pred.reshape((S, t) + pred.shape[1:])
        return pred
