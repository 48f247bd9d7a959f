"""scikit-learn estimators for sequences: ``GRURegressor`` and ``GRUClassifier``.

They follow ``MLPRegressor`` / ``MLPClassifier``: the same parameter names wherever one exists,
``fit`` and ``partial_fit`` sharing one ``_fit(X, y, incremental)`` path (``_initialize``,
``_fit_stochastic``), early stopping on a held-out ``validation_fraction`` with best-weight
restore, and the fitted attributes ``loss_curve_``, ``validation_scores_``, ``best_loss_``,
``n_iter_`` and ``t_``.

The network: one engine stack (:class:`numgru._stack.Stack`) with a recurrent layer per entry of
``hidden_layer_sizes`` (sizes may differ; the cell is ``cell``: the GRU, or the vanilla RNN with
tanh or relu) and dropout between them (``residual``: skip connections, see
:func:`numgru._stack.residual_layers`), then a linear head on either one feature vector per
sequence (``output="last"``; ``pooling`` "last" = the top layer's output at the end of each
sequence, "mean" = the mean output over valid steps, "attention" = an attention-weighted sum of
the outputs, :mod:`numgru._attention`) or on every valid timestep (``output="each_step"``). The
head's output goes through softmax (classifier) or the identity (regressor).

This module is the scikit-learn face; the work is in modules named for what they hold: the
pooling and the head, forward and backward, in :mod:`numgru._heads`; the targets and weights
the loss sees in :mod:`numgru._targets`, :mod:`numgru._weights` and :mod:`numgru._standardize`;
the epochs in :mod:`numgru._training` (the loop the language model shares) over
:class:`numgru._sequence_problem.SequenceProblem`, whose step is
:meth:`_BaseRecurrentEstimator._loss_and_grads`; the model-file format in
:mod:`numgru._fitted_state` and :mod:`numgru.io`; the documentation both classes share in
:mod:`numgru._estimator_docs`.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from . import (_attention, _data, _facade, _fitted_state, _heads, _linear_skip, _stream,
               _targets, _training, _weights)
from . import _estimator_docs as _docs
from . import io as _io
from ._config import compute_threads
from ._losses import softmax, softmax_cross_entropy, squared_error
from ._backend import get_backend
from ._sequence_problem import SequenceProblem
from ._stack import Stack
from ._standardize import standardizer
from .gru import GRU
from .rnn import RNN

# the public one-layer facade of each cell (``layers_``)
_CELL_FACADES = {"gru": GRU, "rnn_tanh": RNN, "rnn_relu": RNN}
# batch_size="auto": n_samples // AUTO_BATCH_STEPS sequences per minibatch, within
# [AUTO_BATCH_MIN, AUTO_BATCH] (and at most n_samples): an epoch of about 16 optimizer steps
# on small data sets, Keras's and most PyTorch recipes' 32 from 512 sequences on. Measured on
# the quality benchmark (docs/training.md, 2026-12-03, 36-270 sequences, 3-6 seeds):
# min(32, n) gave GunPoint (50 sequences) 2 steps an epoch, and its loss sat at ln 2 for ~90
# epochs; in batches of 4 (13 steps) it leaves that plateau in ~30 epochs, and 200 epochs
# reach 0.97 against 0.88, while an epoch costs 1.2-2.7x as much (small-batch kernels are
# bound by per-step latency). Batches of 8 stopped GunPoint at 0.79 under the same rule.
AUTO_BATCH_STEPS = 16
AUTO_BATCH_MIN = 4
AUTO_BATCH = 32
# early_stopping="auto": a regressor holds out validation_fraction of its sequences when that is
# at least this many (5 of 50 at the default 0.1). Measured on the quality benchmark's
# forecasts (docs/training.md): validation-based stopping cut the RMSE on 4 of 5 series (PBS
# 0.54 -> 0.30, the noisy sine 0.42 -> 0.38); a classifier's training-loss rule already
# reached the accuracy of 200 epochs on the small UCR/UEA sets, whose 10% would be 4-27
# sequences, so "auto" leaves classifiers on that rule
AUTO_EARLY_STOPPING_MIN_VAL = 5


def _store_parameters(est, arguments):
    """Set each constructor argument in ``arguments`` (an ``__init__``'s ``locals()``) as the
    attribute of its name: all that an ``__init__`` does (scikit-learn's convention), written
    once for both classes' explicit signatures."""
    for name, value in arguments.items():
        if name != "self":
            setattr(est, name, value)


class _BaseRecurrentEstimator(BaseEstimator):
    """Shared machinery of the sequence estimators (not public)."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "cell": [StrOptions({"gru", "rnn_tanh", "rnn_relu"})],
        "bidirectional": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "residual": ["boolean"],
        "layer_norm": ["boolean"],
        "recurrent_dropout": [Interval(Real, 0, 1, closed="left")],
        "reset_after": ["boolean"],
        "pooling": [StrOptions({"last", "mean", "attention"})],
        "output": [StrOptions({"last", "each_step"})],
        "solver": [StrOptions({"adam", "rmsprop", "sgd"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": [StrOptions({"auto"}), "verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "clip_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "dtype": [StrOptions({"auto", "float32", "float64"})],
        "standardize": ["boolean"],
    }

    # no __init__ here: scikit-learn reads each class's own explicit signature (GRURegressor's
    # adds linear_skip, GRUClassifier's class_weight); both store them with _store_parameters

    # ------------------------------------------------------------------ input
    def _sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not sizes or any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes}")
        return [int(s) for s in sizes]

    def _resolve_dtype(self, X):
        """The compute dtype: ``dtype``, or with "auto" float32 for float32 input (as
        MLPClassifier preserves float32) and float64 otherwise."""
        if self.dtype != "auto":
            return np.dtype(self.dtype)
        first = X[0] if _data.is_ragged_list(X) else X
        kind = getattr(first, "dtype", None)
        return np.dtype(np.float32) if kind == np.float32 else np.dtype(np.float64)

    def _input(self, X, reset, lengths=None):
        """``X`` as padded (n, T, F) sequences in the compute dtype, standardised with the
        fitted ``input_mean_`` / ``input_scale_`` (fitted here when ``reset``), and lengths."""
        if reset:
            self._dtype = self._resolve_dtype(X)
        Xp, lengths_, kind = _data.as_sequences(X, self._dtype)
        lengths = lengths_ if lengths is None else _data.check_lengths(lengths, Xp, kind)
        # a DataFrame's column names (2-D X: one name per timestep), as validate_data keeps them
        _check_feature_names(self, X, reset=reset)
        if reset:
            if kind == "2d":
                _data.warn_if_one_sequence(X, Xp[:, :, 0])
            self._input_kind = kind
            self._n_inputs = Xp.shape[2]
            self.n_features_in_ = Xp.shape[1] if kind == "2d" else Xp.shape[2]
            self.input_mean_, self.input_scale_ = standardizer(
                Xp[_data.valid_mask(lengths, Xp.shape[1])], self.standardize)
        else:
            if kind == "2d" and self._input_kind == "2d" and Xp.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {Xp.shape[1]} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input.")
            if Xp.shape[2] != self._n_inputs:
                raise ValueError(f"X has {Xp.shape[2]} features per timestep, but "
                                 f"{type(self).__name__} is expecting {self._n_inputs} features "
                                 "per timestep as input.")
        return self._scale_inputs(Xp, lengths), lengths

    def _scale_inputs(self, X, lengths=None):
        """(X - input_mean_) / input_scale_ in the compute dtype; steps past ``lengths`` stay
        0. Models without the attributes (files from before standardisation) pass X as is."""
        mean = getattr(self, "input_mean_", None)
        if mean is None or (not mean.any() and (self.input_scale_ == 1).all()):
            return X
        with np.errstate(over="ignore", invalid="ignore"):
            Xs = ((X - mean) / self.input_scale_).astype(self._dtype, copy=False)
        if lengths is not None:
            Xs[~_data.valid_mask(lengths, Xs.shape[1])] = 0
        if not np.isfinite(Xs).all():
            raise ValueError(f"X has values too large for {self._dtype} once standardised with "
                             "the training data's mean and scale (input_mean_, input_scale_).")
        return np.ascontiguousarray(Xs)

    def _network_signature(self):
        """The parameters that the fitted network is built from (normalised), by name."""
        sig = {"hidden_layer_sizes": tuple(self._sizes()), "cell": self.cell,
               "bidirectional": bool(self.bidirectional), "dropout": float(self.dropout),
               "residual": bool(self.residual), "layer_norm": bool(self.layer_norm),
               "recurrent_dropout": float(self.recurrent_dropout), "output": self.output,
               "device": self.device}
        if self.cell == "gru":
            sig["reset_after"] = bool(self.reset_after)
        if self.output == "last":
            sig["pooling"] = self.pooling
        if hasattr(self, "linear_skip"):        # the regressor's
            sig["linear_skip"] = self.linear_skip
        return sig

    def _check_same_network(self, doing):
        """ValueError when a warm-started ``fit``, a ``partial_fit`` or a prediction would use a
        network built with other architecture parameters than the current ones (set_params
        since: training would keep the old network without a word, and ``save`` would write a
        file that ``load`` refuses; predicting would read it as the new architecture).
        ``doing`` says what uses the network, for the message."""
        built = getattr(self, "_built_with", None)
        if built is None:          # fitted before numgru recorded it (an older pickle)
            return
        now = self._network_signature()
        changed = [f"{k} from {built[k]!r} to {now[k]!r}"
                   for k in sorted(built.keys() & now.keys()) if built[k] != now[k]]
        if self.dtype != "auto" and np.dtype(self.dtype) != self._dtype:
            changed.append(f"dtype from {self._dtype.name!r} to {self.dtype!r}")
        if changed:
            raise ValueError(f"{type(self).__name__}: {', '.join(changed)} since the network was "
                             f"built; {doing}, so its architecture parameters must stay as "
                             "they were: set them back, or fit with warm_start=False for a new "
                             "network")

    # ------------------------------------------------------------------ network
    def _init_network(self, n_inputs, n_outputs, rng):
        """The recurrent stack (one engine for all layers, sizes may differ, dropout between
        them) and the linear head; every layer is seeded from ``rng`` in turn, then the head."""
        dt = self._dtype
        sizes = self._sizes()
        seeds = [int(rng.integers(2 ** 31)) if hasattr(rng, "integers") else int(rng.randint(2 ** 31))
                 for _ in sizes]
        self.stack_ = self._build_stack(n_inputs, self.device,
                                        [np.random.default_rng(s) for s in seeds])
        size_in = self.stack_.output_size
        bound = np.sqrt(6.0 / (size_in + n_outputs))  # Glorot uniform, as MLP's output layer
        self.head_coef_ = rng.uniform(-bound, bound, (n_outputs, size_in)).astype(dt)
        self.head_intercept_ = np.zeros(n_outputs, dtype=dt)
        self._drop_skip()          # a new network's skip comes from _fit_stochastic
        if self._attention_pooled():   # drawn after the head: other models' draws unchanged
            (self.attention_coef_, self.attention_intercept_,
             self.attention_vector_) = _attention.init_attention(rng, size_in, size_in, dt)

    def _build_stack(self, n_inputs, device, rngs):
        """The recurrent layers of ``hidden_layer_sizes`` (cells ``cell``) as one engine stack
        on ``device``, initialised from ``rngs`` (one Generator per layer)."""
        options = {"reset_after": self.reset_after} if self.cell == "gru" else {}
        options.update(layer_norm=self.layer_norm, recurrent_dropout=self.recurrent_dropout)
        return Stack.recurrent(n_inputs, self._sizes(), cell=self.cell,
                               bidirectional=self.bidirectional, dropout=self.dropout,
                               residual=self.residual, dtype=self._dtype,
                               backend=get_backend(device), rngs=rngs, **options)

    @property
    def layers_(self):
        """The fitted recurrent layers as one-layer ``numgru.GRU`` (``cell="gru"``) or
        ``numgru.RNN`` objects sharing the estimator's parameters (views of ``stack_``)."""
        stack = self.stack_
        views = []
        for lay in stack.recurrent_layers:
            # a view whose arrays the estimator may update in place
            views.append(_facade.network_over(_CELL_FACADES[lay.cell], stack.layer_view(lay)))
        return views

    @property
    def grus_(self):
        """``layers_`` of a fitted GRU network (``cell="gru"``); an RNN network has none."""
        layers = self.layers_
        if not all(isinstance(layer, GRU) for layer in layers):
            raise AttributeError("grus_ exists for cell='gru' only; use layers_")
        return layers

    def _attention_pooled(self):
        """True when the head reads attention-pooled features (and the network has the
        attention parameters)."""
        return self.output == "last" and self.pooling == "attention"

    def _last_from_out(self):
        """pooling="last" reads the top layer's output at the end of each sequence; without a
        skip on the top layer that is its final state ``h_n`` (read from there, bit-identical),
        with one it is ``h_n`` plus the skip, read from the output."""
        stack = self.stack_
        return len(stack.recurrent_layers) - 1 in stack.residual_layers

    def _params(self):
        att = ([self.attention_coef_, self.attention_intercept_, self.attention_vector_]
               if self._attention_pooled() else [])
        return ([a for a, _ in self.stack_.parameters()] + att
                + [self.head_coef_, self.head_intercept_] + self._skip_params())

    def _is_weight(self):
        att = [True, False, True] if self._attention_pooled() else []
        skip = [True, False] if self._has_skip() else []
        return [flag for _, flag in self.stack_.parameters()] + att + [True, False] + skip

    # ------------------------------------------------------------------ linear skip
    def _wants_skip(self):
        """True when a new network gets a linear skip (:mod:`numgru._linear_skip`): the
        regressor's ``linear_skip`` (``"auto"``: with ``output="last"``)."""
        return False

    def _has_skip(self):
        """True when the fitted network has a linear skip."""
        return getattr(self, "skip_coef_", None) is not None

    def _drop_skip(self):
        """Forget the linear skip's fitted attributes (a new or loaded network sets its own)."""
        for name in ("skip_coef_", "skip_intercept_", "skip_steps_"):
            self.__dict__.pop(name, None)

    def _skip_params(self):
        return [self.skip_coef_, self.skip_intercept_] if self._has_skip() else []

    def _init_skip(self, X, lengths, Y, sample_weight):
        """Start the linear skip at the ridge regression of the (standardised) targets ``Y`` on
        the last ``skip_steps_`` steps of the training sequences ``X``, and the head at zero:
        training starts from the ridge model (:mod:`numgru._linear_skip`)."""
        self.skip_steps_ = _linear_skip.n_steps(lengths, X.shape[2])
        Z = _linear_skip.features(X, lengths, self.skip_steps_)
        coef, intercept, _ = _linear_skip.fit_ridge(Z, Y, sample_weight)
        self.skip_coef_ = coef.astype(self._dtype)
        self.skip_intercept_ = intercept.astype(self._dtype)
        self.head_coef_[...] = 0
        self.head_intercept_[...] = 0

    def _skip_outputs(self, X, lengths):
        """``(outputs (B, K), Z)`` of the linear skip for standardised ``X``, or
        ``(0, None)`` without one."""
        if not self._has_skip():
            return 0, None
        Z = _linear_skip.features(X, lengths, self.skip_steps_)
        return _linear_skip.forward(Z, self.skip_coef_, self.skip_intercept_), Z

    def _pooling(self):
        """The head's pooling of this network (:class:`numgru._heads.Pooling`)."""
        attention = ((self.attention_coef_, self.attention_intercept_, self.attention_vector_)
                     if self._attention_pooled() else None)
        return _heads.Pooling(self.output, self.pooling, 2 if self.bidirectional else 1,
                              self._last_from_out(), attention)

    def _features(self, X, lengths, training, rng=None):
        """Run the recurrent stack; return (features, what :meth:`_backward` needs).

        That is the last layer's outputs (B, T, D*H), or with attention pooling the saved
        state of :func:`numgru._attention.attention_forward` (its ``[0]`` is those outputs).
        """
        be = self.stack_.backend
        out, h_n = self.stack_.forward(be.upload(X), lengths, training=training, rng=rng)
        pooling = self._pooling()
        final_state = be.to_host(h_n[-1]) if pooling.reads_final_state else None
        return pooling.forward(be.to_host(out), lengths, final_state)

    def _forward_logits(self, X, lengths):
        with compute_threads:
            feats, _ = self._features(X, lengths, training=False)
            skip, _ = self._skip_outputs(X, lengths)
            return _heads.linear_head(feats, self.head_coef_, self.head_intercept_) + skip

    def _backward(self, lengths, feats, top, dlogits):
        """Gradients of every parameter (order of ``_params``) given d loss / d logits;
        ``top`` is what :meth:`_features` returned beside ``feats``."""
        d_feats, g_head = _heads.linear_head_backward(feats, dlogits, self.head_coef_)
        d_out, d_final, g_att = self._pooling().backward(d_feats, top, lengths)
        stack = self.stack_
        be = stack.backend
        d_h_n = [None] * len(stack.recurrent_layers)
        if d_final is not None:
            d_h_n[-1] = be.upload(d_final)
        with compute_threads:
            _, _, grads = stack.backward(be.upload(np.ascontiguousarray(d_out, dtype=stack.dtype)),
                                         d_h_n, need_dx=False)
        return stack.flat_grads(grads) + g_att + g_head

    # ------------------------------------------------------------------ training
    def _batch_size(self, n):
        """Sequences per minibatch: ``batch_size``, or for "auto" ``n // AUTO_BATCH_STEPS``
        within [AUTO_BATCH_MIN, AUTO_BATCH], at most ``n``."""
        if self.batch_size == "auto":
            return min(n, max(AUTO_BATCH_MIN, min(AUTO_BATCH, n // AUTO_BATCH_STEPS)))
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped")
        return max(1, min(self.batch_size, n))

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None, lengths=None):
        """Validate the data, initialise on a first fit, then train (``fit``, ``partial_fit``).

        As ``BaseMultilayerPerceptron._fit``: a first pass (no network yet, or neither
        ``warm_start`` nor ``incremental``) resets the input checks and the fitted attributes
        (:meth:`_initialize`); the epochs run in :meth:`_fit_stochastic`.
        """
        with compute_threads:
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                                 "y is None")
            first_pass = not (hasattr(self, "stack_") and (self.warm_start or incremental))
            if not first_pass:
                self._check_same_network("partial_fit continues training that network"
                                         if incremental else "fit with warm_start=True "
                                         "continues training that network")
            X, lengths = self._input(X, reset=first_pass, lengths=lengths)
            # the subclass's target encoding sets n_outputs_ and out_activation_ (and classes_)
            # on a first pass
            Y, sample_weight = self._encode_targets(y, lengths, sample_weight, first_pass, classes)
            if first_pass:
                self._initialize(Y.shape[-1])
                self._built_with = self._network_signature()
            self._fit_stochastic(X, lengths, Y, sample_weight, incremental, first_pass)
        return self

    def _initialize(self, n_outputs):
        """First-pass state: the random streams, a new network, empty training history.

        ``_random_state`` (a ``RandomState`` from ``random_state``) draws the network's
        initialisation and the early-stopping split; ``_rng`` (a ``Generator`` seeded from it)
        the batch shuffling and the dropout masks.
        """
        self._random_state = check_random_state(self.random_state)
        self._rng = np.random.default_rng(self._random_state.randint(2 ** 31))
        self._init_network(self._n_inputs, n_outputs, self._random_state)
        _training.start_history(self)

    def _fit_stochastic(self, X, lengths, Y, sample_weight, incremental, first_pass=False):
        """Run the epochs of minibatch training in :func:`numgru._training.train`:
        ``max_iter`` for ``fit``, one for ``partial_fit``.

        ``X`` (n, T, F) padded sequences with their ``lengths``, ``Y`` the encoded targets and
        ``sample_weight`` the weights from ``_encode_targets``. With early stopping (not in
        ``partial_fit``; :meth:`_holds_out`) ``validation_fraction`` of the sequences is held
        out (:meth:`_holdout`) and scored after every epoch. On a ``first_pass`` a linear skip
        starts from the training sequences (:meth:`_init_skip`).
        """
        everything = (X, lengths, Y, sample_weight)
        val = None
        if self._holds_out(X.shape[0], first_pass) and not incremental:
            train, held = self._holdout(X.shape[0], Y)
            if len(held) < 2:
                raise ValueError("The validation set is too small: increase validation_fraction "
                                 f"or the number of samples (got {len(held)} validation samples).")
            val = (X[held], lengths[held], Y[held], sample_weight[held])
            X, lengths, Y, sample_weight = X[train], lengths[train], Y[train], sample_weight[train]
        if first_pass and self._wants_skip():
            self._init_skip(X, lengths, Y, sample_weight)
        self._run_epochs((X, lengths, Y, sample_weight), val, everything, incremental, first_pass)

    def _run_epochs(self, data, val, everything, incremental, first_pass):
        """The loop over the training sequences ``data`` (X, lengths, Y, sample_weight) with
        the held-out ``val`` (or None); ``everything`` holds all the sequences, before the
        split (the regressor's choice refits on them)."""
        _training.train(self, self._problem(*data, val), _training.Settings.from_estimator(self),
                        incremental=incremental)

    def _problem(self, X, lengths, Y, sample_weight, val):
        """The training loop's view of these sequences (``val``: the held-out ones, or None)."""
        return SequenceProblem(X, lengths, Y, sample_weight, val, params=self._params(),
                               is_weight=self._is_weight(),
                               batch_size=self._batch_size(X.shape[0]), rng=self._rng,
                               shuffle=self.shuffle, loss_and_grads=self._loss_and_grads,
                               score=self._score_arrays)

    def _holds_out(self, n_samples, first_pass):
        """Whether a fit of ``n_samples`` sequences holds some out for early stopping."""
        return self._early_stopping(n_samples)

    def _holdout(self, n_samples, Y):
        """``(train, held)`` indices of early stopping's split: a random draw from
        ``_random_state``, stratified by class for a classifier with ``output="last"``."""
        stratify = self._stratify(Y) if self.output == "last" else None
        return train_test_split(np.arange(n_samples), test_size=self.validation_fraction,
                                random_state=self._random_state, stratify=stratify)

    def _early_stopping(self, n_samples):
        """``early_stopping``, with "auto" decided for ``n_samples`` training sequences."""
        if self.early_stopping != "auto":
            return bool(self.early_stopping)
        return (isinstance(self, RegressorMixin)
                and n_samples * self.validation_fraction >= AUTO_EARLY_STOPPING_MIN_VAL)

    def _loss_and_grads(self, X, lengths, Y, sample_weight):
        """One minibatch's forward, loss and backward: ``(loss, grads, total weight)``.

        ``X`` (B, T, F) holds the batch's sequences cut to their longest length ``T``; ``Y`` and
        ``sample_weight`` are their rows of the encoded targets and weights. ``loss`` is the
        weighted mean data loss (the loop adds the L2 term), ``grads`` follow :meth:`_params`.
        Raises ``FloatingPointError`` when the loss or a gradient is not finite.
        """
        feats, top = self._features(X, lengths, True, self._rng)
        Y, sample_weight = self._rows(Y, sample_weight, lengths, X.shape[1])
        with np.errstate(over="ignore", invalid="ignore"):
            skip, Z = self._skip_outputs(X, lengths)
            logits = _heads.linear_head(feats, self.head_coef_, self.head_intercept_) + skip
            loss, dlogits = self._loss(logits, Y, sample_weight)
        if not (np.isfinite(loss) and np.isfinite(dlogits).all()):
            raise FloatingPointError
        dlogits = dlogits.astype(X.dtype)
        grads = self._backward(lengths, feats, top, dlogits)
        if Z is not None:
            grads += _linear_skip.backward(Z, dlogits)
        return loss, grads, float(sample_weight.sum())

    def _stratify(self, Y):
        return None

    def _rows(self, Yb, wb, Lb, Tb):
        """Targets and weights of the rows the loss sees: sequences or valid timesteps."""
        if self.output == "each_step":
            m = _data.valid_mask(Lb, Tb)
            return Yb[:, :Tb][m], np.broadcast_to(wb[:, None], m.shape)[m] if wb.ndim == 1 \
                else wb[:, :Tb][m]
        return Yb, wb

    def _score_arrays(self, X, lengths, Y, w):
        raise NotImplementedError

    def _predict_padded(self, X, lengths=None):
        check_is_fitted(self, "stack_")
        self._check_same_network("predicting uses that network")
        Xp, lengths = self._input(X, reset=False, lengths=lengths)
        out = self._forward_logits(Xp, lengths)
        return out, lengths

    def _predict_decoded(self, X, lengths=None, proba=False):
        """Predictions (``proba``: probabilities) in the user's shape: the head's outputs
        decoded by the subclass's ``_decode_logits``, per step back to (n, T, ...) or a ragged
        list (:meth:`_unpad`)."""
        out, lengths = self._predict_padded(X, lengths)
        out = self._decode_logits(out, proba)
        if self.output == "each_step":
            return self._unpad(out, lengths, X)
        return out

    def _unpad(self, rows, lengths, X):
        """Per-step predictions back to the user's shape: (n, T, ...) with the input's T (zeros
        past each length), or a ragged list."""
        T = int(lengths.max())
        if not _data.is_ragged_list(X):
            T = max(T, int(np.shape(X)[1]))
        full = np.zeros((len(lengths), T) + rows.shape[1:], dtype=rows.dtype)
        full[_data.valid_mask(lengths, T)] = rows
        if _data.is_ragged_list(X):
            return [full[i, : lengths[i]] for i in range(len(lengths))]
        return full

    def stream(self, n_streams=1):
        """Stateful streaming inference: feed sequences a chunk of steps at a time.

        Parameters
        ----------
        n_streams : int, default=1
            Number of sequences fed side by side (each chunk holds the next steps of each).

        Returns
        -------
        numgru._stream.Stream
            ``s.update(X_chunk)`` runs the next steps from the state the previous chunks left
            and returns, for ``output="each_step"``, the predictions of the new steps, else the
            prediction given all steps so far (any ``pooling``); feeding a
            sequence in chunks gives what :meth:`predict` gives on the whole sequence.
            ``s.reset()`` starts every stream afresh. Classifiers: ``s.update(X_chunk,
            proba=True)`` for probabilities.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If the model is bidirectional (its reverse direction needs the whole sequence) or
            ``n_streams`` is not a positive integer.

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((32, 12, 2))
        >>> y = np.cumsum(X[:, :, 0], axis=1)
        >>> reg = GRURegressor(hidden_layer_sizes=(8,), output="each_step", max_iter=3,
        ...                    random_state=0).fit(X, y)
        >>> s = reg.stream()
        >>> parts = [s.update(X[0, :5]), s.update(X[0, 5:])]     # two chunks of one stream
        >>> np.allclose(np.concatenate(parts, axis=1)[0], reg.predict(X[:1])[0])
        True
        """
        check_is_fitted(self, "stack_")
        self._check_same_network("a stream uses that network")
        attention = ((self.attention_coef_, self.attention_intercept_, self.attention_vector_)
                     if self._attention_pooled() else None)
        skip = ((self.skip_coef_, self.skip_intercept_, self.skip_steps_)
                if self._has_skip() else None)
        model = _stream.ReadOut(
            stack=self.stack_, output=self.output, pooling=self.pooling,
            bidirectional=self.bidirectional, n_inputs=self._n_inputs,
            univariate=self._input_kind == "2d", last_from_out=self._last_from_out(),
            head=(self.head_coef_, self.head_intercept_), attention=attention, skip=skip,
            scale_inputs=self._scale_inputs, decode=self._decode_logits, name=type(self).__name__)
        return _stream.Stream(model, n_streams)

    def attention_weights(self, X, lengths=None):
        """The attention pooling's weights alpha over the timesteps of each sequence.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for ``predict``.
        lengths : array-like of int of shape (n_samples,), default=None
            Valid lengths of right-padded sequences in a 3-D or 2-D ``X``.

        Returns
        -------
        alpha : ndarray of shape (n_samples, n_timesteps) or list of ndarray
            For array input, one row per sequence that sums to 1 over its valid steps and is 0
            past its length; for a ragged list, one 1-D array of length n_timesteps_i per
            sequence.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If the model does not pool with attention (``pooling="attention"`` and
            ``output="last"``).

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((20, 6, 2))
        >>> reg = GRURegressor(hidden_layer_sizes=(4,), pooling="attention", max_iter=2,
        ...                    random_state=0).fit(X, X[:, :, 0].max(axis=1))
        >>> alpha = reg.attention_weights(X)
        >>> alpha.shape, bool(np.allclose(alpha.sum(axis=1), 1))
        ((20, 6), True)
        >>> [a.shape for a in reg.attention_weights([X[0, :3], X[1]])]
        [(3,), (6,)]
        """
        check_is_fitted(self, "stack_")
        self._check_same_network("attention_weights reads that network")
        if not self._attention_pooled():
            raise ValueError("attention_weights needs a model fitted with pooling='attention' "
                             f"and output='last'; this one has pooling={self.pooling!r}, "
                             f"output={self.output!r}")
        Xp, lengths = self._input(X, reset=False, lengths=lengths)
        be = self.stack_.backend
        with compute_threads:
            out, _ = self.stack_.forward(be.upload(Xp), lengths)
            _, alpha, _ = _attention.attention_forward(
                be.to_host(out), lengths, self.attention_coef_, self.attention_intercept_,
                self.attention_vector_)
        if _data.is_ragged_list(X):
            return [alpha[i, : lengths[i]].copy() for i in range(len(lengths))]
        return alpha

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save the fitted estimator to one ``.npz`` file that loads without pickle.

        The file holds the weights as plain arrays and the parameters as JSON; read it back
        with :func:`numgru.load` (which never unpickles anything).

        The write is atomic (a temporary file in the same directory, flushed to disk, then
        renamed onto ``path``): a failure or an interruption while saving never leaves a
        partial file at ``path`` nor loses the file that was there. See
        :func:`numgru.io.save`.

        Parameters
        ----------
        path : str or path-like
            Destination file, written exactly there (no extension is added).

        Returns
        -------
        None

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        TypeError
            If a parameter or a class label cannot be stored without pickle.

        See Also
        --------
        numgru.load : Load a saved estimator.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import numgru
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((20, 6, 2))
        >>> y = X[:, -1, 0]
        >>> reg = numgru.GRURegressor(hidden_layer_sizes=(4,), max_iter=2,
        ...                           random_state=0).fit(X, y)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "model.npz")
        ...     reg.save(path)
        ...     loaded = numgru.load(path)
        >>> np.array_equal(loaded.predict(X), reg.predict(X))
        True
        """
        _io.save(self, path)

    # the fitted-state format: numgru._fitted_state
    _FITTED_ATTRIBUTES = _fitted_state.FITTED_ATTRIBUTES
    _FITTED_REQUIRED = _fitted_state.FITTED_REQUIRED
    _OUT_ACTIVATION = None      # the subclass's out_activation_ (a model file must hold it)

    def _get_fitted_state(self):
        """What a model file keeps of a fitted estimator: ``(fitted, arrays)``.

        ``fitted`` is a JSON-able dict of the fitted scalars (``_FITTED_ATTRIBUTES`` and the
        compute dtype as ``"_dtype"``), ``arrays`` a dict of name -> ndarray (the network's,
        from :meth:`_network_arrays`). :meth:`_set_fitted_state` is the inverse; ``numgru.io``
        writes and reads them.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        check_is_fitted(self, "stack_")
        fitted = {name: _io.jsonable(getattr(self, name))
                  for name in self._FITTED_ATTRIBUTES if hasattr(self, name)}
        fitted["_dtype"] = np.dtype(self._dtype).name
        return fitted, self._network_arrays()

    def _set_fitted_state(self, fitted, arrays, device=None):
        """Make this (new) estimator the fitted one described by :meth:`_get_fitted_state`'s
        ``fitted`` and ``arrays``, with the network on ``device`` (default: ``self.device``).

        Names in ``fitted`` that are not fitted attributes are ignored. The random streams are
        seeded afresh from ``random_state`` and there is no optimiser state: a ``partial_fit``
        or a warm-started ``fit`` continues from the loaded weights with a new optimiser.

        Raises
        ------
        ValueError
            If a required fitted attribute or a network array is missing or has the wrong shape.
        """
        if not isinstance(fitted, dict):
            raise ValueError(f"fitted attributes must be a dict, got {type(fitted).__name__}")
        fitted = dict(fitted)
        missing = [name for name in self._FITTED_REQUIRED + ("_dtype",) if name not in fitted]
        if missing:
            raise ValueError(f"fitted attributes {missing} are missing")
        _fitted_state.check_fitted_values(fitted, self._OUT_ACTIVATION)
        self._validate_params()      # parameters that fit would refuse are refused here too
        for name in self._FITTED_ATTRIBUTES:
            if name in fitted:
                setattr(self, name, fitted[name])
        if "feature_names_in_" in fitted:     # as _check_feature_names sets it
            self.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        self._dtype = np.dtype(fitted["_dtype"])
        self._load_network_arrays(arrays, self.device if device is None else device)
        self._built_with = self._network_signature()
        self._random_state = check_random_state(self.random_state)
        self._rng = np.random.default_rng(self._random_state.randint(2 ** 31))
        self._optimizer = None
        self._schedule = None
        self._no_improvement_count = 0

    # The two methods below are the network's side of persistence (like _init_network and
    # _params for training): they know how the network holds its weights.
    def _network_arrays(self):
        """The network's weights by file name (:func:`numgru._fitted_state.network_arrays`):
        ``"gru{i}.{name}"`` for each GRU layer ``i`` (``"rnn{i}.{name}"`` for the RNN cells;
        PyTorch ``state_dict`` names), ``"head_coef"`` and ``"head_intercept"``, the
        standardisation, the attention pooling's and the linear skip's arrays."""
        layers = [(lay.cell, layer.state_dict())       # one-layer views of stack_
                  for lay, layer in zip(self.stack_.recurrent_layers, self.layers_)]
        scaling = {name: getattr(self, name + "_", None) for name in _fitted_state.SCALING_ARRAYS}
        attention = ({name: getattr(self, name + "_") for name in _fitted_state.ATTENTION_ARRAYS}
                     if self._attention_pooled() else {})
        skip = ({name: getattr(self, name + "_") for name in _fitted_state.SKIP_ARRAYS}
                if self._has_skip() else {})
        return _fitted_state.network_arrays(layers, self.head_coef_, self.head_intercept_,
                                            scaling, attention, skip)

    def _load_network_arrays(self, arrays, device):
        """Build the network on ``device`` from :meth:`_network_arrays`'s ``arrays`` (other
        names are ignored), for the parameters, ``_n_inputs``, ``n_outputs_`` and ``_dtype``
        already set. Raises ValueError (KeyError for a missing head) if the arrays do not fit."""
        _fitted_state.check_recurrent_arrays(arrays, self.cell, self._n_inputs, self._sizes(),
                                             2 if self.bidirectional else 1)
        self.stack_ = self._build_stack(self._n_inputs, device, np.random.default_rng(0))
        self._drop_skip()          # only the file's skip
        for i, layer in enumerate(self.layers_):      # strict: every weight is replaced
            layer.load_state_dict(_fitted_state.layer_arrays(arrays, self.cell, i))
        self.stack_.params_changed()
        size_in = self.stack_.output_size
        self.head_coef_, self.head_intercept_ = _fitted_state.read_head(
            arrays, self.n_outputs_, size_in, self._dtype)
        sizes = {"input": self._n_inputs}
        if isinstance(self, RegressorMixin):       # a classifier has no target scaling
            sizes["target"] = self.n_outputs_
        for name, value in _fitted_state.read_scaling(arrays, sizes).items():
            setattr(self, name, value)
        if self._attention_pooled():
            for name, value in _fitted_state.read_attention(arrays, size_in, self._dtype).items():
                setattr(self, name, value)
        for name, value in _fitted_state.read_skip(arrays, self.n_outputs_, self._n_inputs,
                                                   self._dtype).items():
            setattr(self, name, value)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags



@_io.register_estimator
class GRURegressor(RegressorMixin, _BaseRecurrentEstimator):
    __doc__ = _docs.sequence_estimator_doc(
        "Sequence regression with a GRU or RNN stack and a linear head (squared error).",
        head="linear head", mlp="MLPRegressor",
        early_stopping_auto=_docs.EARLY_STOPPING_AUTO_REGRESSOR,
        extra_parameters=_docs.VALIDATION_HOLDOUT_REGRESSOR + _linear_skip.PARAMETER_DOC,
        extra_attributes=_docs.TARGET_SCALING + _linear_skip.ATTRIBUTES_DOC,
        see_also_and_examples="""\
    See Also
    --------
    GRUClassifier : The same network with a softmax head, for labels.
    numgru.GRU : The GRU engine the layers are made of.
    numgru.RNN : The vanilla RNN the layers are made of with ``cell="rnn_tanh"`` or
        ``"rnn_relu"``.

    Examples
    --------
    >>> import numpy as np
    >>> from numgru import GRURegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((64, 10, 2))
    >>> y = X[:, :, 0].sum(axis=1)
    >>> reg = GRURegressor(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> len(reg.loss_curve_), reg.n_features_in_
    (5, 2)
    """)

    _FITTED_REQUIRED = _BaseRecurrentEstimator._FITTED_REQUIRED + ("_single_output",)
    _OUT_ACTIVATION = "identity"

    _parameter_constraints = {
        **_BaseRecurrentEstimator._parameter_constraints,
        "linear_skip": ["boolean", StrOptions({"auto"})],
        "validation_holdout": [StrOptions({"last", "random"})],
    }

    def __init__(self, hidden_layer_sizes=(64,), *, cell="gru", bidirectional=False, dropout=0.0,
                 residual=False, layer_norm=False, recurrent_dropout=0.0, reset_after=True,
                 pooling="last", output="last", solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate="constant", learning_rate_init=1e-3,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose="auto", warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping="auto", validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, clip_grad_norm=1.0, device="cpu",
                 dtype="float32", standardize=True, linear_skip="auto",
                 validation_holdout="last"):
        _store_parameters(self, locals())

    def _holds_out(self, n_samples, first_pass):
        """Whether a fit of ``n_samples`` sequences uses early stopping: ``early_stopping``,
        and for "auto" on a first pass with ``linear_skip="auto"`` and ``output="last"``
        whenever 2 sequences or more are held out (the fewest an R^2 scores), otherwise the
        base class's rule (at least ``AUTO_EARLY_STOPPING_MIN_VAL``)."""
        # On a first pass the skip's ridge model is a candidate of early stopping, so a few
        # held-out sequences choose between the network's part and the ridge model rather
        # than stop a network at a noisy epoch. Measured (docs, training page): ShampooSales
        # (24 windows, 3 held out) scored RMSE 130-210 over 5 seeds trained 200 epochs
        # without them, 110-115 with the choice, 107.5-110 with the choice refitted on all 24
        # (the ridge model alone 120.5); on 24 and 40 sequences of noisy nonlinear functions
        # of the last step (|x|, sin 2x, tanh 3x, x^2, x; 4 seeds, R^2 on 400 new sequences)
        # the 200-epoch joint model's median R^2 fell 0-1.5 below the ridge model's, the
        # refitted choice's 0-0.13 (at these sizes no network beat the ridge model by more
        # than 0.002)
        if (first_pass and self.early_stopping == "auto" and self.linear_skip == "auto"
                and self.output == "last"):
            return int(np.ceil(self.validation_fraction * n_samples)) >= 2
        return self._early_stopping(n_samples)

    def _holdout(self, n_samples, Y):
        """``(train, held)`` indices of early stopping's split of ``n_samples`` sequences:
        ``validation_holdout="last"`` holds out the last ``validation_fraction`` of them (in
        ``train_test_split``'s count, the fraction of n rounded up), "random" a random draw
        from ``_random_state`` (the base class's split)."""
        if self.validation_holdout == "random":
            return super()._holdout(n_samples, Y)
        n_held = int(np.ceil(self.validation_fraction * n_samples))
        return np.arange(n_samples - n_held), np.arange(n_samples - n_held, n_samples)

    def _run_epochs(self, data, val, everything, incremental, first_pass):
        """The base class's loop, with ``linear_skip="auto"``'s start as a candidate of early
        stopping: when no epoch scores above the ridge model alone (the skip at its start,
        head zero) on the held-out sequences, the fit ends there (:mod:`numgru._linear_skip`).

        A held-out part that only the first pass's 2-sequence rule allows (fewer than
        ``AUTO_EARLY_STOPPING_MIN_VAL``; :meth:`_holds_out`) only chooses, as a grid search's
        held-out fold does: the ridge model or the network and its number of epochs; that
        choice is then refitted on all sequences (:meth:`_refit_on_all`), as a set that small
        cannot spare them.
        """
        start = ((self.skip_coef_.copy(), self.skip_intercept_.copy())
                 if val is not None and first_pass and self._gates_skip() else None)
        super()._run_epochs(data, val, everything, incremental, first_pass)
        ridge_won = start is not None and self._ridge_beats_network(start, val)
        if val is not None and not self._early_stopping(everything[0].shape[0]):
            self._refit_on_all(*everything, 0 if ridge_won else
                               int(np.argmax(self.validation_scores_)) + 1)

    def _ridge_beats_network(self, start, val):
        """Early stopping's last candidate: True, with the model made the ridge model alone
        (the head at zero, the skip at ``start``), when that scores at least the best epoch's
        validation score on ``val``; False, the best epoch kept, otherwise."""
        parts = (self.head_coef_, self.head_intercept_, self.skip_coef_, self.skip_intercept_)
        fitted = [a.copy() for a in parts]
        self._keep_skip_alone(*start)
        if self._score_arrays(*val) >= self.best_validation_score_:
            return True
        for a, saved in zip(parts, fitted):
            a[...] = saved
        return False

    def _refit_on_all(self, X, lengths, Y, sample_weight, epochs):
        """Refit on all sequences what the held-out ones chose: the skip's ridge model, and
        with ``epochs`` > 0 a new network trained that many epochs with it (no held-out part,
        no stopping rule). With a network the training history becomes that fit's, and
        ``validation_scores_`` and ``best_validation_score_`` stay those of the choice; the
        ridge model keeps the choice's whole history."""
        if epochs:
            scores, best = self.validation_scores_, self.best_validation_score_
            self._init_network(self._n_inputs, self.n_outputs_, self._random_state)
            _training.start_history(self)
        self._init_skip(X, lengths, Y, sample_weight)
        if not epochs:
            return
        problem = self._problem(X, lengths, Y, sample_weight, None)
        settings = _training.Settings.from_estimator(self, max_iter=epochs,
                                                     n_iter_no_change=epochs + 1)
        with warnings.catch_warnings():     # it runs the epochs chosen, not max_iter's
            warnings.simplefilter("ignore", ConvergenceWarning)
            _training.train(self, problem, settings)
        self.validation_scores_, self.best_validation_score_ = scores, best

    def _gates_skip(self):
        """True when the network's part must beat the skip alone on held-out data
        (``linear_skip="auto"`` and the fitted network has a skip)."""
        return self.linear_skip == "auto" and self._has_skip()

    def _keep_skip_alone(self, coef, intercept):
        """Make the fitted model the ridge model alone: the head at zero, the skip's
        ``coef`` and ``intercept`` those of its start."""
        self.head_coef_[...] = 0
        self.head_intercept_[...] = 0
        self.skip_coef_[...] = coef
        self.skip_intercept_[...] = intercept

    def _wants_skip(self):
        if self.linear_skip == "auto":
            return self.output == "last"
        if self.linear_skip and self.output != "last":
            raise ValueError("linear_skip=True needs output='last' (one prediction per "
                             "sequence, read from its last steps); with output='each_step' "
                             "use linear_skip=False or 'auto'")
        return bool(self.linear_skip)

    def _encode_targets(self, y, lengths, sample_weight, first, classes):
        each_step = self.output == "each_step"
        Y, single = _targets.regression_targets(y, lengths, each_step)
        if first:
            self.n_outputs_ = Y.shape[-1]
            self._single_output = single
            self.out_activation_ = "identity"
            self.target_mean_, self.target_scale_ = standardizer(
                _targets.valid_rows(Y, lengths, each_step), self.standardize)
        elif Y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[-1]} outputs, but the model was fitted with "
                             f"{self.n_outputs_}")
        w = _weights.check_sample_weight(sample_weight, len(lengths))
        # the network learns standardised targets (models from before standardisation: as is)
        Yc = _targets.scaled_targets(Y, getattr(self, "target_mean_", None),
                                     getattr(self, "target_scale_", None), self._dtype, lengths,
                                     each_step)
        return Yc, w

    def _loss(self, logits, Y, w):
        return squared_error(logits.astype(np.float64), Y, w)

    def _score_arrays(self, X, lengths, Y, w):
        pred = self._forward_logits(X, lengths)
        if self.output == "each_step":
            Y = Y[:, : X.shape[1]]
            m = _data.valid_mask(lengths, Y.shape[1])
            return r2_score(Y[m], pred, sample_weight=np.broadcast_to(w[:, None], m.shape)[m])
        return r2_score(Y, pred, sample_weight=w)

    @_fit_context(prefer_skip_nested_validation=True)
    @_docs.fill_doc
    def fit(self, X, y, sample_weight=None, lengths=None):
        """Fit the model to sequences ``X`` and targets ``y``.

        Parameters
        ----------
        {X}

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; with ``output="each_step"`` an array (n_samples, n_timesteps[, n_outputs])
            or a list of per-sequence arrays matching a ragged ``X``.

        {sample_weight}

        {lengths}

        Returns
        -------
        self : GRURegressor
            The fitted estimator.

        Raises
        ------
        ValueError
            If a parameter is invalid, or ``X``, ``y``, ``sample_weight`` or ``lengths`` have
            wrong shapes or non-finite values.
        RuntimeError
            If ``device="cuda"`` and no usable CUDA GPU is available.

        Examples
        --------
        A 2-D ``X`` holds univariate sequences (here sliding windows of a sine):

        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> s = np.sin(np.arange(120) / 4)
        >>> X = np.stack([s[i:i + 12] for i in range(100)])
        >>> y = s[12:112]
        >>> reg = GRURegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=5,
        ...                    random_state=0).fit(X, y)
        >>> reg.n_iter_, reg.n_features_in_
        (5, 12)
        """
        return self._fit(X, y, sample_weight, incremental=False, lengths=lengths)

    @_fit_context(prefer_skip_nested_validation=True)
    @_docs.fill_doc
    def partial_fit(self, X, y, sample_weight=None, lengths=None):
        """Run one epoch over ``(X, y)``, continuing from the current weights.

        The first call initialises the network; later calls keep the weights and the state of
        the optimiser. Early stopping does not apply.

        Parameters
        ----------
        {X}

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets, as in :meth:`fit`.

        {sample_weight}

        {lengths}

        Returns
        -------
        self : GRURegressor
            The updated estimator.

        Raises
        ------
        ValueError
            If the input is invalid or does not match the data of earlier calls.

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((32, 8, 2))
        >>> y = X[:, :, 1].mean(axis=1)
        >>> reg = GRURegressor(hidden_layer_sizes=(4,), random_state=0)
        >>> for _ in range(3):
        ...     reg = reg.partial_fit(X, y)
        >>> reg.n_iter_
        3
        """
        return self._fit(X, y, sample_weight, incremental=True, lengths=lengths)

    @_docs.fill_doc
    def predict(self, X, lengths=None):
        """Predict targets of sequences.

        Parameters
        ----------
        {X}

        {lengths}

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs), or per step
            With ``output="each_step"``: an array (n_samples, n_timesteps[, n_outputs]) for
            array input (0 past each sequence's length), a list of per-sequence arrays for a
            ragged list.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If ``X`` does not have the number of features the model was fitted with.

        Examples
        --------
        One target per timestep with ``output="each_step"`` (a running mean):

        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 10, 1))
        >>> y = np.cumsum(X[:, :, 0], axis=1) / np.arange(1, 11)
        >>> reg = GRURegressor(hidden_layer_sizes=(8,), output="each_step", max_iter=3,
        ...                    random_state=0).fit(X, y)
        >>> reg.predict(X[:2]).shape
        (2, 10)
        >>> [p.shape for p in reg.predict([X[0, :4], X[1, :7]])]
        [(4,), (7,)]
        """
        return self._predict_decoded(X, lengths)

    def _decode_logits(self, logits, proba=False):
        """Head outputs (rows, n_outputs) -> predictions: float64, one column raveled."""
        if proba:
            raise ValueError("proba=True is for classifiers; a regressor predicts values")
        out = logits.astype(np.float64)
        mean = getattr(self, "target_mean_", None)
        if mean is not None:            # back to the units of y
            out = out * self.target_scale_ + mean
        return out[:, 0] if self._single_output else out

    @_docs.fill_doc
    def score(self, X, y, sample_weight=None, lengths=None):
        """Coefficient of determination R^2 of the predictions.

        Parameters
        ----------
        {X}

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True targets (per step with ``output="each_step"``).

        {score_sample_weight}

        {score_lengths}

        Returns
        -------
        score : float
            R^2, over all valid timesteps with ``output="each_step"`` (as ``r2_score`` of the
            targets and predictions of every valid step, averaged uniformly over outputs).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRURegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((100, 8, 1))
        >>> y = X[:, -1, 0]
        >>> reg = GRURegressor(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=40,
        ...                    random_state=0).fit(X, y)
        >>> reg.score(X, y) > 0.9
        True
        """
        if self.output == "each_step":
            pred, lengths = self._predict_padded(X, lengths)
            pred = pred.astype(np.float64)
            if getattr(self, "target_mean_", None) is not None:     # in the units of y
                pred = pred * self.target_scale_ + self.target_mean_
            Y = _data.step_values(y, lengths).astype(np.float64).reshape(len(pred), -1)
            return r2_score(Y, pred, sample_weight=_weights.step_weights(sample_weight, lengths))
        pred = self.predict(X, lengths=lengths)
        if sample_weight is not None:     # checked as fit checks it
            sample_weight = _weights.check_sample_weight(sample_weight, len(pred))
        return r2_score(y, pred, sample_weight=sample_weight)


@_io.register_estimator
class GRUClassifier(ClassifierMixin, _BaseRecurrentEstimator):
    __doc__ = _docs.sequence_estimator_doc(
        "Sequence classification with a GRU or RNN stack and a softmax head (cross-entropy).",
        head="linear head and softmax", mlp="MLPClassifier",
        early_stopping_auto=_docs.EARLY_STOPPING_AUTO_CLASSIFIER,
        extra_parameters=_docs.CLASS_WEIGHT, first_attributes=_docs.CLASSES,
        see_also_and_examples="""\
    See Also
    --------
    GRURegressor : The same network with a linear output, for real-valued targets.
    numgru.GRU : The GRU engine the layers are made of.
    numgru.RNN : The vanilla RNN the layers are made of with ``cell="rnn_tanh"`` or
        ``"rnn_relu"``.

    Examples
    --------
    >>> import numpy as np
    >>> from numgru import GRUClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((64, 10, 2))
    >>> y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> clf = GRUClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    >>> clf.classes_
    array([0, 1])

    Sequences of different lengths are passed as a list of 2-D arrays:

    >>> from numgru.datasets import make_sequence_classification
    >>> X, y = make_sequence_classification(n_samples=60, max_length=30, random_state=0)
    >>> [x.shape for x in X[:3]]
    [(27, 3), (27, 3), (26, 3)]
    >>> clf = GRUClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    >>> clf.predict(X[:4]).shape
    (4,)
    """)

    _parameter_constraints = {
        **_BaseRecurrentEstimator._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }
    _OUT_ACTIVATION = "softmax"

    def __init__(self, hidden_layer_sizes=(64,), *, cell="gru", bidirectional=False, dropout=0.0,
                 residual=False, layer_norm=False, recurrent_dropout=0.0, reset_after=True,
                 pooling="last", output="last", solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate="constant", learning_rate_init=1e-3,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose="auto", warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping="auto", validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, clip_grad_norm=1.0, device="cpu",
                 dtype="float32", standardize=True, class_weight=None):
        _store_parameters(self, locals())

    def _encode_targets(self, y, lengths, sample_weight, first, classes):
        each_step = self.output == "each_step"
        labels, valid = _targets.class_labels(y, lengths, each_step)
        if first:
            if classes is not None:
                self._encoder = LabelEncoder().fit(np.asarray(classes))
            else:
                self._encoder = LabelEncoder().fit(valid)
            self.classes_ = self._encoder.classes_
            self.n_outputs_ = len(self.classes_)
            self.out_activation_ = "softmax"
        Y = _targets.one_hot(labels, valid, self._encoder, self.classes_, lengths, each_step,
                             self._dtype)
        w = _weights.check_sample_weight(sample_weight, len(lengths))
        if self.class_weight is not None:
            _weights.check_class_weight(self.class_weight)
            w = _weights.class_weighted(w, self.class_weight, labels, valid, lengths, each_step)
        return Y, w

    def _stratify(self, Y):
        counts = Y.sum(axis=0)
        return Y.argmax(axis=1) if counts.min() >= 2 else None

    def _loss(self, logits, Y, w):
        if len(self.classes_) == 1:
            return 0.0, np.zeros_like(logits)
        return softmax_cross_entropy(logits, Y, w)

    def _score_arrays(self, X, lengths, Y, w):
        pred = self._forward_logits(X, lengths).argmax(axis=1)
        if self.output == "each_step":
            m = _data.valid_mask(lengths, Y.shape[1])
            wr = w[m] if w.ndim == 2 else np.broadcast_to(w[:, None], m.shape)[m]
            return accuracy_score(Y[m].argmax(axis=1), pred, sample_weight=wr)
        return accuracy_score(Y.argmax(axis=1), pred, sample_weight=w)

    def _get_fitted_state(self):
        fitted, arrays = super()._get_fitted_state()
        arrays["classes"] = _fitted_state.storable_classes(self.classes_)
        return fitted, arrays

    def _set_fitted_state(self, fitted, arrays, device=None):
        if self.class_weight is not None:       # what fit refuses, a model file may not hold
            _weights.check_class_weight(self.class_weight)
        super()._set_fitted_state(fitted, arrays, device)
        classes = _fitted_state.read_classes(arrays, self.n_outputs_)
        self._encoder = LabelEncoder()
        self._encoder.classes_ = classes
        self.classes_ = classes

    @_fit_context(prefer_skip_nested_validation=True)
    @_docs.fill_doc
    def fit(self, X, y, sample_weight=None, lengths=None):
        """Fit the model to sequences ``X`` and labels ``y``.

        Parameters
        ----------
        {X}

        y : array-like of shape (n_samples,)
            Class labels; with ``output="each_step"`` an array (n_samples, n_timesteps) or a
            list of per-sequence label arrays matching a ragged ``X``.

        {sample_weight}

        {lengths}

        Returns
        -------
        self : GRUClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            If a parameter is invalid, the targets are not binary or multiclass labels, or
            ``X``, ``y``, ``sample_weight`` or ``lengths`` have wrong shapes or non-finite
            values.
        RuntimeError
            If ``device="cuda"`` and no usable CUDA GPU is available.

        Examples
        --------
        Right-padded sequences in a 3-D array, with their true lengths:

        >>> import numpy as np
        >>> from numgru import GRUClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 12, 2))
        >>> lengths = rng.integers(4, 13, size=40)
        >>> X[np.arange(12) >= lengths[:, None]] = 0.0
        >>> y = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
        >>> clf = GRUClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
        >>> clf = clf.fit(X, y, lengths=lengths)
        >>> clf.classes_
        array(['down', 'up'], dtype='<U4')
        """
        return self._fit(X, y, sample_weight, incremental=False, lengths=lengths)

    @_fit_context(prefer_skip_nested_validation=True)
    @_docs.fill_doc
    def partial_fit(self, X, y, classes=None, sample_weight=None, lengths=None):
        """Run one epoch over ``(X, y)``, continuing from the current weights.

        Parameters
        ----------
        {X}

        y : array-like of shape (n_samples,)
            Class labels, as in :meth:`fit`.

        classes : array-like of shape (n_classes,), default=None
            Every label that will ever appear. Required on the first call, ignored (but
            checked) afterwards.

        {sample_weight}

        {lengths}

        Returns
        -------
        self : GRUClassifier
            The updated estimator.

        Raises
        ------
        ValueError
            If ``classes`` is missing on the first call or differs from the first call's, or
            ``y`` holds labels not in ``classes``.

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRUClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((30, 6, 2))
        >>> y = (X[:, :, 0].mean(axis=1) > 0).astype(int)
        >>> clf = GRUClassifier(hidden_layer_sizes=(4,), random_state=0)
        >>> clf = clf.partial_fit(X[:15], y[:15], classes=[0, 1])
        >>> clf = clf.partial_fit(X[15:], y[15:])
        >>> clf.n_iter_, clf.classes_
        (2, array([0, 1]))
        """
        if classes is not None:
            arr = np.asarray(classes)
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"classes must be a non-empty 1-D array-like of labels, got "
                                 f"shape {arr.shape}")
            if arr.dtype.kind == "c" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
                raise ValueError(f"classes must be finite real numbers or strings, got "
                                 f"{arr.tolist()}")
        if not hasattr(self, "stack_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={list(classes)}` is not the same as on the first call to "
                             f"partial_fit, which was {self.classes_.tolist()}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes, lengths=lengths)

    @_docs.fill_doc
    def predict_proba(self, X, lengths=None):
        """Class probabilities of sequences.

        Parameters
        ----------
        {X}

        {lengths}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), or per step
            Columns in the order of ``classes_``. With ``output="each_step"``: an array
            (n_samples, n_timesteps, n_classes) for array input, a list of
            (n_timesteps_i, n_classes) arrays for a ragged list.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRUClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((30, 6, 2))
        >>> y = rng.integers(3, size=30)
        >>> clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
        >>> proba = clf.predict_proba(X[:5])
        >>> proba.shape, np.allclose(proba.sum(axis=1), 1.0)
        ((5, 3), True)
        """
        return self._predict_decoded(X, lengths, proba=True)

    @_docs.fill_doc
    def predict_log_proba(self, X, lengths=None):
        """Logarithm of the class probabilities of :meth:`predict_proba`.

        Parameters
        ----------
        {X}

        {lengths}

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), or per step
            As :meth:`predict_proba`, element-wise logarithm.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        >>> import numpy as np
        >>> from numgru import GRUClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((30, 6, 2))
        >>> y = rng.integers(2, size=30)
        >>> clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
        >>> np.allclose(np.exp(clf.predict_log_proba(X[:5])), clf.predict_proba(X[:5]))
        True
        """
        p = self.predict_proba(X, lengths)
        if isinstance(p, list):
            return [np.log(np.maximum(q, np.finfo(np.float64).tiny)) for q in p]
        return np.log(np.maximum(p, np.finfo(np.float64).tiny))

    @_docs.fill_doc
    def predict(self, X, lengths=None):
        """Predict class labels of sequences.

        Parameters
        ----------
        {X}

        {lengths}

        Returns
        -------
        y_pred : ndarray of shape (n_samples,), or per step
            With ``output="each_step"``: an array (n_samples, n_timesteps) for array input, a
            list of per-sequence label arrays for a ragged list.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        Sequence labelling with ``output="each_step"``: is the running sum positive?

        >>> import numpy as np
        >>> from numgru import GRUClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 10, 1))
        >>> y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
        >>> clf = GRUClassifier(hidden_layer_sizes=(8,), output="each_step", max_iter=3,
        ...                     random_state=0).fit(X, y)
        >>> clf.predict(X[:2]).shape
        (2, 10)
        >>> [p.shape for p in clf.predict([X[0, :3], X[1, :6]])]
        [(3,), (6,)]
        """
        return self._predict_decoded(X, lengths)

    def _decode_logits(self, logits, proba=False):
        """Head outputs (rows, n_classes) -> class labels, or probabilities with ``proba``."""
        if proba:
            return softmax(logits.astype(np.float64))
        return self.classes_[logits.argmax(axis=1)]

    @_docs.fill_doc
    def score(self, X, y, sample_weight=None, lengths=None):
        """Mean accuracy of the predictions.

        Parameters
        ----------
        {X}

        y : array-like of shape (n_samples,)
            True labels (per step with ``output="each_step"``).

        {score_sample_weight}

        {score_lengths}

        Returns
        -------
        score : float
            Accuracy, over all valid timesteps with ``output="each_step"``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        >>> from numgru import GRUClassifier
        >>> from numgru.datasets import make_sequence_classification
        >>> X, y = make_sequence_classification(n_samples=200, max_length=40, random_state=0)
        >>> clf = GRUClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=25,
        ...                     random_state=0).fit(X[:150], y[:150])
        >>> clf.score(X[150:], y[150:]) > 0.5     # three classes: chance is 1/3
        True
        """
        if self.output == "each_step":
            out, lengths = self._predict_padded(X, lengths)
            y_true = _data.step_values(y, lengths)
            if y_true.ndim != 1:
                raise ValueError(f"with output='each_step', y must hold one label per timestep; "
                                 f"got {y_true.shape[1:]} values per timestep")
            y_pred = self.classes_[out.argmax(axis=1)]
            return accuracy_score(y_true, y_pred,
                                  sample_weight=_weights.step_weights(sample_weight, lengths))
        pred = self.predict(X, lengths=lengths)
        if sample_weight is not None:     # checked as fit checks it
            sample_weight = _weights.check_sample_weight(sample_weight, len(pred))
        return accuracy_score(y, pred, sample_weight=sample_weight)
