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
from sklearn.utils.validation import check_is_fitted

from . import _linear_skip
from ._attention import RunningAttention


class Stream:
    """Streaming inference over ``n_streams`` sequences fed side by side.

    Made by :meth:`GRURegressor.stream <numgru.GRURegressor.stream>` /
    :meth:`GRUClassifier.stream <numgru.GRUClassifier.stream>`; see there.
    """

    def __init__(self, estimator, n_streams=1):
        check_is_fitted(estimator, "stack_")
        if isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer)) \
                or n_streams < 1:
            raise ValueError(f"n_streams must be a positive integer, got {n_streams!r}")
        if estimator.bidirectional:
            raise ValueError("a bidirectional model cannot stream: its reverse direction reads "
                             "each sequence from its end; use predict on whole sequences")
        self.estimator = estimator
        self.n_streams = int(n_streams)
        self.reset()

    def reset(self):
        """Forget all history: every stream starts again from a zero state."""
        stack = self.estimator.stack_
        be = stack.backend
        self._state = [be.upload(np.zeros((lay.num_states, self.n_streams, lay.state_size),
                                          dtype=stack.dtype))
                       for lay in stack.recurrent_layers]
        self._sum = np.zeros((self.n_streams, stack.output_size), dtype=np.float64)
        self._attention = RunningAttention(self.n_streams, stack.output_size)
        est = self.estimator
        # the linear skip reads the last skip_steps_ inputs: zeros (the mean) before the first
        self._recent = (np.zeros((self.n_streams, est.skip_steps_, est._n_inputs),
                                 dtype=stack.dtype) if est._has_skip() else None)
        self.n_steps_ = 0
        return self

    def _chunk(self, X):
        """The chunk as (S, t, F) in the model's dtype, with clear errors."""
        est = self.estimator
        S = self.n_streams
        univariate = est._input_kind == "2d"
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
        if arr.shape[2] != est._n_inputs:
            raise ValueError(f"X_chunk has {arr.shape[2]} features per step, but "
                             f"{type(est).__name__} is expecting {est._n_inputs}")
        return est._scale_inputs(np.ascontiguousarray(arr, dtype=est._dtype))

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
        est = self.estimator
        stack = est.stack_
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
        if est.output == "each_step":
            feats = out.reshape(S * t, -1)
        elif est.pooling == "attention":
            feats = self._attention.update(out, est.attention_coef_, est.attention_intercept_,
                                           est.attention_vector_)
        elif est.pooling == "last" and est._last_from_out():    # the top layer's skip
            feats = np.ascontiguousarray(out[:, -1])
        elif est.pooling == "last":
            feats = np.ascontiguousarray(be.to_host(h_n[-1])[0])
        else:
            self._sum += out.sum(axis=1, dtype=np.float64)
            feats = (self._sum / self.n_steps_).astype(out.dtype)
        logits = feats @ est.head_coef_.T + est.head_intercept_
        if self._recent is not None:
            k = self._recent.shape[1]
            self._recent = np.ascontiguousarray(np.concatenate([self._recent, x], axis=1)[:, -k:])
            logits = logits + _linear_skip.forward(self._recent.reshape(S, -1), est.skip_coef_,
                                                   est.skip_intercept_)
        pred = est._decode_logits(logits, proba)
        if est.output == "each_step":
            return pred.reshape((S, t) + pred.shape[1:])
        return pred
