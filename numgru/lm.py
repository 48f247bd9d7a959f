"""Token-sequence language models: embedding in, GRU stack, softmax over the vocabulary per step.

:class:`GRULanguageModel` is PyTorch's ``word_language_model`` ``RNNModel`` (GRU variant) as a
scikit-learn estimator::

    ids (B, T) -> Embedding (V, E) -> dropout -> GRU layers (with dropout between)
               -> dropout -> decoder (V, H_last) + bias -> softmax cross-entropy

Shape legend: V vocabulary size, E embedding width, H_k hidden size of GRU layer k, B parallel
streams (``batch_size``), T steps per window (``bptt``), M = B*T rows.

Everything runs on the engine: the embedding and the GRU layers are one
:class:`numgru._stack.Stack` (:class:`numgru._cells.Embedding` first), the decoder is
:class:`numgru._cells.SoftmaxHead`, whose kernels fuse the output projection with the softmax
cross-entropy over blocks of rows, so that the (M, V) logits never exist at once.

Training is PyTorch's ``batchify``: the training documents, one after the other, are cut into
``batch_size`` parallel streams of equal length (+-1 token), each trained by truncated
backpropagation through time over windows of ``bptt`` steps with its hidden state carried from
window to window, so that every window but the last is full. Documents (a list of texts) never
share a state: where a document ends inside a window, the stream's row is split there and the
next document continues in a row of its own from a zero state (:func:`_windows`), so the state
resets at that step, exactly as ``score`` scores each document from a zero state. No
end-of-document token is added (``word_language_model`` appends ``<eos>`` to each line): the
vocabulary, the scores and the generated text stay those of the documents themselves.
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _fitted_state, _generate, _layout, _text, _training
from . import io as _io
from ._backend import get_backend
from ._cells import Dropout, Embedding, SoftmaxHead
from ._config import compute_threads
from ._stack import Stack, build_recurrent_layers
from ._text import streams as _streams, windows as _windows
from ._validation import as_dtype, to_numpy

# steps per window when scoring (exact: the state is carried, only memory is bounded)
_SCORE_WINDOW = 512
# documents scored side by side in one forward (exact too: each has its own row and state).
# It bounds a window's rows to 64 * 512 = 32768, so the head's per-row work and the stack's
# activations stay a few MB per unit of width; chosen with _SCORE_WINDOW, not tuned by a
# measurement (tests set both to 2-3 and get the same scores)
_SCORE_BATCH = 64
#: The most tokens one ``generate`` call makes (it makes them one at a time: 1e8 is hours).
MAX_GENERATE = 100_000_000



@_io.register_estimator
class GRULanguageModel(BaseEstimator):
    """A GRU language model over characters, words or integer tokens.

    Embedding, a stack of GRU layers, and a linear decoder with a softmax over the vocabulary
    at every step; trained on a text (or a list of documents) by truncated backpropagation
    through time with the hidden state carried from window to window, as PyTorch's
    ``word_language_model`` example does. Its parameters have that example's names
    (:meth:`state_dict`), so a language model trained there runs here.

    Parameters
    ----------
    embedding_dim : int, default=64
        Width E of the token vectors.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden size of each GRU layer.
    level : {"char", "word", "tokens"}, default="char"
        What a token is. "char": every character. "word": runs of letters/digits/underscore
        and every other non-space character (punctuation) on its own; :meth:`decode` joins
        words with single spaces. "tokens": the input is already integer ids (a sequence of
        ints, or a list of them); the vocabulary is the ids that occur at fit, in increasing
        order (``vocabulary_``; any ids >= 0, however large: the model has one row per distinct
        id), and scoring or prompting with an id that did not occur raises a ValueError.
    min_frequency : int, default=1
        Tokens seen fewer times at fit are replaced by ``"<unk>"`` (char and word levels).
    max_vocabulary : int or None, default=None
        Keep at most this many tokens (the most frequent; ``"<unk>"`` counts as one).
    dropout : float, default=0.0
        Dropout on the embeddings, between GRU layers and on the top layer's output
        (``RNNModel``'s single ``dropout``), training only.
    tie_weights : bool, default=False
        Use the embedding matrix as the decoder's weight (Press & Wolf 2016); needs
        ``hidden_layer_sizes[-1] == embedding_dim``.
    bptt : int, default=35
        Steps per truncated-backpropagation window.
    batch_size : int, default=20
        Parallel streams the training text is cut into.
    solver : {"adam", "rmsprop", "sgd"}, default="adam"
    learning_rate_init : float, default=0.002
    momentum : float, default=0.0
        Momentum of the "sgd" solver (``word_language_model`` uses plain SGD, 0).
    clip_grad_norm : float or None, default=0.25
        Largest global L2 norm of the gradients of one window (``word_language_model``'s
        ``--clip``); None for no clipping.
    max_iter : int, default=10
        Epochs (passes over the training text).
    early_stopping : bool, default=False
        Hold out the last ``validation_fraction`` of the tokens, score it after every epoch,
        stop after ``n_iter_no_change`` epochs without an improvement of ``tol`` and restore
        the best epoch's weights.
    validation_fraction : float, default=0.1
    tol : float, default=1e-4
        Least improvement of the training loss (or, with early stopping, of the validation
        score: mean log-likelihood per token) that counts.
    n_iter_no_change : int, default=3
    random_state : int, RandomState instance or None, default=None
        Initialisation, the order of the training pieces and dropout masks.
    verbose : "auto", bool or int, default="auto"
        "auto": a progress line with an estimate of the time left, on a terminal, once a fit
        has run a few seconds (nothing when the output is not a terminal); 0/False: silent;
        1: one line per epoch; 2: the progress line from the start.
    dtype : {"float32", "float64"}, default="float32"
    device : {"cpu", "cuda", "auto"}, default="cpu"
    alpha : float, default=0.0
        L2 penalty on the weight matrices (embedding, GRU, decoder; not the biases), as the
        sequence estimators' ``alpha``: ``0.5 * alpha * ||W||^2 / n`` with n the tokens of a
        window. ``word_language_model`` has none (0).

    Attributes
    ----------
    vocabulary_ : list
        The tokens; a token's id (its row in the embedding and the decoder) is its index
        (``"<unk>"``, when present, is id 0). For level="tokens", the token ids seen at fit
        (ints, increasing): the model's row of token id ``t`` is ``vocabulary_.index(t)``.
    token_counts_ : ndarray of shape (V,)
        How often each token occurred in the training text (the unigram baseline; None when
        the weights came from :meth:`load_state_dict` without a fit).
    stack_ : numgru._stack.Stack
        The embedding and GRU layers (the engine).
    head_ : numgru._cells.SoftmaxHead
        The decoder.
    loss_ : float
        Mean training cross-entropy per token (nats) of the last epoch.
    loss_curve_ : list of float
        ``loss_`` of every epoch.
    best_loss_ : float
        Lowest ``loss_`` of the fit.
    validation_scores_ : list of float
        With early stopping: the validation score (mean log-likelihood per token) after each
        epoch (empty without). Perplexity is ``exp(-score)``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run.
    t_ : int
        Tokens trained on (each epoch adds the training text's).

    Examples
    --------
    >>> from numgru import GRULanguageModel
    >>> text = "the cat sat on the mat. the dog sat on the log. " * 20
    >>> lm = GRULanguageModel(embedding_dim=8, hidden_layer_sizes=(16,), batch_size=4,
    ...                       max_iter=3, learning_rate_init=0.01, random_state=0).fit(text)
    >>> lm.perplexity("the cat sat on the log.") < len(lm.vocabulary_)
    True
    >>> len(lm.generate(20, prefix="the ", random_state=0))
    20
    """

    _parameter_constraints = {
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "level": [StrOptions({"char", "word", "tokens"})],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "max_vocabulary": [None, Interval(Integral, 2, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "tie_weights": ["boolean"],
        "bptt": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions({"adam", "rmsprop", "sgd"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "clip_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": [StrOptions({"auto"}), "verbose"],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "dtype": [StrOptions({"float32", "float64"})],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
    }

    def __init__(self, embedding_dim=64, hidden_layer_sizes=(256, 256), *, level="char",
                 min_frequency=1, max_vocabulary=None, dropout=0.0, tie_weights=False, bptt=35,
                 batch_size=20, solver="adam", learning_rate_init=0.002, momentum=0.0,
                 clip_grad_norm=0.25, max_iter=10, early_stopping=False, validation_fraction=0.1,
                 tol=1e-4, n_iter_no_change=3, random_state=None, verbose="auto",
                 dtype="float32", device="cpu", alpha=0.0):
        self.embedding_dim = embedding_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.level = level
        self.min_frequency = min_frequency
        self.max_vocabulary = max_vocabulary
        self.dropout = dropout
        self.tie_weights = tie_weights
        self.bptt = bptt
        self.batch_size = batch_size
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.clip_grad_norm = clip_grad_norm
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.device = device
        self.alpha = alpha

    # ------------------------------------------------------------------ configuration
    def _sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (Integral, np.integer)) and not isinstance(sizes, bool):
            sizes = (sizes,)
        sizes = tuple(sizes)
        if not sizes or any(isinstance(h, (bool, np.bool_)) or not isinstance(h, (Integral, np.integer))
                            or h < 1 for h in sizes):
            raise ValueError(f"hidden_layer_sizes must be a non-empty sequence of positive "
                             f"integers, got {self.hidden_layer_sizes!r}")
        if self.tie_weights and sizes[-1] != self.embedding_dim:
            raise ValueError(f"tie_weights=True needs the last hidden size to equal embedding_dim "
                             f"(the decoder then uses the embedding matrix), got "
                             f"hidden_layer_sizes[-1]={sizes[-1]} and "
                             f"embedding_dim={self.embedding_dim}")
        return tuple(int(h) for h in sizes)

    def _build(self, V, rng, backend):
        """The network for a vocabulary of V tokens, initialised from ``rng``."""
        dt = as_dtype(self.dtype)
        sizes = self._sizes()
        emb = Embedding(V, self.embedding_dim, dt)
        emb.init_params(rng)
        layers = [emb]
        if self.dropout > 0:
            layers.append(Dropout(self.embedding_dim, self.dropout, dt))
        # the GRU layers with dropout between them, as the estimators' stack (no skips)
        layers += build_recurrent_layers(self.embedding_dim, sizes, cell="gru",
                                         dropout=self.dropout, dtype=dt, rngs=rng)[0]
        size = sizes[-1]
        if self.dropout > 0:
            layers.append(Dropout(size, self.dropout, dt))
        head = SoftmaxHead(size, V, dt)
        head.init_params(rng)
        if self.tie_weights:
            head.params["weight"] = emb.params["weight"]
        self.stack_ = Stack(layers, backend, dt)
        self.head_ = head
        self._dtype = dt

    @property
    def _embedding(self):
        return self.stack_.layers[0]

    def _params(self):
        """Every distinct parameter array (the tied decoder weight is the embedding's)."""
        params = [a for a, _ in self.stack_.parameters()]
        if not self.tie_weights:
            params.append(self.head_.params["weight"])
        params.append(self.head_.params["bias"])
        return params

    def _is_weight(self):
        """Which of :meth:`_params` get the L2 penalty (weight matrices, not biases)."""
        flags = [flag for _, flag in self.stack_.parameters()]
        if not self.tie_weights:
            flags.append(True)
        return flags + [False]

    def _grads(self, stack_grads, head_grads):
        """Gradients in the order of :meth:`_params` (tied: the decoder's added to the
        embedding's)."""
        grads = self.stack_.flat_grads(stack_grads)
        if self.tie_weights:
            grads[0] = grads[0] + head_grads["weight"]
            grads.append(head_grads["bias"])
        else:
            grads.extend([head_grads["weight"], head_grads["bias"]])
        return grads

    # ------------------------------------------------------------------ text <-> ids
    def _documents(self, X, what="X"):
        """X as a list of token lists (char/word) or int64 arrays (tokens)."""
        return _text.documents(X, self.level, what)

    def _build_vocabulary(self, docs):
        return _text.build_vocabulary(docs, self.level, self.min_frequency, self.max_vocabulary)

    def _index(self):
        """char/word: token -> id of ``vocabulary_`` (cached)."""
        index = getattr(self, "_index_cache", None)
        if index is None or index[0] is not self.vocabulary_:
            index = (self.vocabulary_, _text.token_index(self.vocabulary_))
            self._index_cache = index
        return index[1]

    def _token_lookup(self):
        """level="tokens": ``(sorted token ids, their rows)`` of ``vocabulary_`` (cached)."""
        lookup = getattr(self, "_token_lookup_cache", None)
        if lookup is None or lookup[0] is not self.vocabulary_:
            lookup = (self.vocabulary_,) + _text.token_lookup(self.vocabulary_)
            self._token_lookup_cache = lookup
        return lookup[1], lookup[2]

    def _ids(self, tokens, what):
        """Token list (char/word) or ids (tokens) -> int64 ids, with the clear errors."""
        if self.level == "tokens":
            return _text.rows_of_token_ids(tokens, *self._token_lookup(), what)
        return _text.token_ids(tokens, self._index(), what)

    def encode(self, text):
        """Token ids of ``text``: each token's index in ``vocabulary_`` (for level="tokens",
        ``text`` is a sequence of token ids, and each is mapped to its index).

        Returns
        -------
        ids : ndarray of int64
        """
        check_is_fitted(self, "vocabulary_")
        return self._ids(self._one_document(text, "text"), "text")

    def _one_document(self, text, what):
        """The tokens of one text (char/word) or one sequence of ids (tokens)."""
        if self.level == "tokens":
            return _text.token_documents([text], what)[0]
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str for level={self.level!r}, got "
                            f"{type(text).__name__}")
        return _text.tokenize(text, self.level)

    def decode(self, ids):
        """The text of token ids (indices in ``vocabulary_``): characters joined (char), words
        joined by single spaces (word); for level="tokens" the token ids as an int64 array."""
        check_is_fitted(self, "vocabulary_")
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(f"ids must be a 1-D sequence of integers, got {arr.dtype} of shape "
                             f"{arr.shape}")
        V = len(self.vocabulary_)
        if arr.size and (arr.min() < 0 or arr.max() >= V):
            bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise ValueError(f"token id {bad} is out of range for a vocabulary of {V} tokens")
        arr = arr.astype(np.int64)
        if self.level == "tokens":
            return np.asarray(self.vocabulary_, dtype=np.int64)[arr]
        toks = [self.vocabulary_[i] for i in arr]
        return "".join(toks) if self.level == "char" else " ".join(toks)

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the vocabulary and train the network on ``X``.

        Parameters
        ----------
        X : str, list of str, or (level="tokens") sequence(s) of int ids
            The training text; a list is a list of documents, each starting from a zero state.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        self._sizes()
        docs = self._documents(X)
        if sum(len(d) for d in docs) == 0:
            raise ValueError("X is empty: there is no text to learn from")
        rs = check_random_state(self.random_state)
        self._rng = np.random.default_rng(rs.randint(2 ** 31))
        init_rng = np.random.default_rng(rs.randint(2 ** 31))
        train, val = docs, []
        if self.early_stopping:
            train, val = _text.split_tail(docs, self.validation_fraction)
            if sum(max(len(d) - 1, 0) for d in val) == 0:
                raise ValueError(f"early_stopping needs a validation part with at least two "
                                 f"tokens; validation_fraction={self.validation_fraction} of "
                                 f"{sum(len(d) for d in docs)} tokens leaves none")
        # the vocabulary is the whole X's (a character seen only in the validation part is
        # still a character of the text); the counts, the unigram baseline, are the training
        # part's
        if sum(max(len(d) - 1, 0) for d in train) == 0:
            raise ValueError("X needs at least two tokens in one document to learn from "
                             "(a model predicts each token from the ones before it)")
        vocab, _ = self._build_vocabulary(docs)
        self.vocabulary_ = vocab
        train_ids = [self._ids(d, "X") for d in train]
        val_ids = [self._ids(d, "X") for d in val]
        counts = np.zeros(len(vocab), np.int64)
        for d in train_ids:
            counts += np.bincount(d, minlength=len(vocab))
        self.token_counts_ = counts
        backend = get_backend(self.device)
        self._build(len(vocab), init_rng, backend)
        _training.start_history(self)
        self.validation_scores_ = []          # a list here, empty without early stopping
        with compute_threads:
            problem = _TextProblem(self, train_ids, val_ids)
            settings = _training.Settings.from_estimator(
                self, learning_rate="constant", nesterovs_momentum=False)
            try:
                _training.train(self, problem, settings, name="GRULanguageModel")
            finally:
                self.stack_.updates_done()
        return self

    def _window_step(self, ids, targets, lengths, h0):
        """Forward and backward of one window:
        ``(mean loss, tokens, stack grads, head grads, h_n)``.

        ids, targets (B, T) int64 host, lengths (B,) int64, h0 list of (1, B, H_k) host arrays.
        The loss is the mean cross-entropy over the valid (b, t) positions.
        """
        stack, head, be = self.stack_, self.head_, self.stack_.backend
        B, T = ids.shape
        valid = np.arange(T)[None, :] < lengths[:, None]
        n = int(valid.sum())
        weights = (valid / n).astype(self._dtype).reshape(-1)
        out, h_n = stack.forward(be.upload(ids), lengths, [be.upload(h) for h in h0],
                                 training=True, rng=self._rng)
        ctx = stack.context(training=True)
        H = out.shape[2]
        loss, dy, head_grads = head.loss_and_grad(ctx, head.native(be), out.reshape(B * T, H),
                                                  be.upload(targets.reshape(-1)),
                                                  be.upload(weights))
        _, _, stack_grads = stack.backward(dy.reshape(B, T, H), need_dx=False)
        return loss, n, stack_grads, head_grads, h_n

    def _named_grads(self, stack_grads, head_grads):
        """Gradients under :meth:`state_dict`'s names (tied: encoder and decoder weight both
        hold the total, as PyTorch's shared parameter does)."""
        emb = stack_grads[0]["weight"]
        dec = head_grads["weight"]
        if self.tie_weights:
            emb = dec = emb + dec
        named = {"encoder.weight": emb}
        named.update({f"rnn.{k}": v
                      for k, v in _layout.named_grads(self.stack_, stack_grads).items()})
        named["decoder.weight"] = dec
        named["decoder.bias"] = head_grads["bias"]
        return named

    # ------------------------------------------------------------------ scoring
    def _score_ids(self, docs):
        """Mean log-likelihood per predicted token over documents of ids (exact, each from a
        zero state; the state is carried across windows, so windows only bound memory)."""
        total, count = self._loglik_ids(docs)
        if count == 0:
            raise ValueError("scoring needs at least one document of two or more tokens "
                             "(each token is predicted from the ones before it)")
        return total / count

    def _loglik_ids(self, docs):
        stack, head, be = self.stack_, self.head_, self.stack_.backend
        docs = [d for d in docs if len(d) >= 2]
        order = sorted(range(len(docs)), key=lambda i: -len(docs[i]))
        total, count = 0.0, 0
        sizes = self._sizes()
        p = head.native(be)
        ctx = stack.context()
        for start in range(0, len(order), _SCORE_BATCH):
            batch = [docs[i] for i in order[start:start + _SCORE_BATCH]]
            npred = np.array([len(d) - 1 for d in batch])
            h = [np.zeros((1, len(batch), H), self._dtype) for H in sizes]
            for s in range(0, int(npred[0]), _SCORE_WINDOW):
                nb = int((npred > s).sum())             # sorted by length: a prefix is active
                lengths = np.minimum(npred[:nb] - s, _SCORE_WINDOW).astype(np.int64)
                T = int(lengths.max())
                ids = np.zeros((nb, T), np.int64)
                tg = np.zeros((nb, T), np.int64)
                for r in range(nb):
                    L = int(lengths[r])
                    ids[r, :L] = batch[r][s:s + L]
                    tg[r, :L] = batch[r][s + 1:s + 1 + L]
                out, h_n = stack.forward(be.upload(ids), lengths,
                                         [be.upload(np.ascontiguousarray(x[:, :nb])) for x in h])
                for x, hn in zip(h, h_n):
                    x[:, :nb] = be.to_host(hn)
                H = out.shape[2]
                lp = head.logprob(ctx, p, out.reshape(nb * T, H), be.upload(tg.reshape(-1)))
                valid = (np.arange(T)[None, :] < lengths[:, None]).reshape(-1)
                total += float(lp[valid].astype(np.float64).sum())
                count += int(valid.sum())
        return total, count

    def score(self, X, y=None):
        """Mean log-likelihood per token (nats; higher is better).

        Each document is one sequence from a zero state, scored exactly (no truncation): every
        token after a document's first is predicted from all the tokens before it.

        Parameters
        ----------
        X : str, list of str, or token ids
        y : None
            Ignored.

        Returns
        -------
        score : float

        Examples
        --------
        >>> import math
        >>> from numgru import GRULanguageModel
        >>> lm = GRULanguageModel(embedding_dim=4, hidden_layer_sizes=(8,), max_iter=2,
        ...                       random_state=0).fit(["abcabc", "cbacba"])
        >>> s = lm.score(["abcab", "cba"])      # 4 + 2 predicted characters
        >>> s < 0, math.isclose(lm.perplexity(["abcab", "cba"]), math.exp(-s))
        (True, True)
        """
        check_is_fitted(self, "stack_")
        docs = [self._ids(d, "X") for d in self._documents(X)]
        with compute_threads:
            return self._score_ids(docs)

    def perplexity(self, X):
        """``exp(-score(X))``: the model's perplexity per token on ``X``."""
        return math.exp(-self.score(X))

    def unigram_perplexity(self, X):
        """Perplexity on ``X`` of the unigram model of the training text (token frequencies
        with add-one smoothing), counting the same tokens as :meth:`perplexity`: the baseline
        a language model must beat."""
        check_is_fitted(self, "stack_")
        if self.token_counts_ is None:
            raise ValueError("this model has no token counts (its weights were loaded with "
                             "load_state_dict, not fitted)")
        logp = np.log((self.token_counts_ + 1.0) / (self.token_counts_.sum() + len(self.vocabulary_)))
        docs = [self._ids(d, "X") for d in self._documents(X)]
        tok = np.concatenate([d[1:] for d in docs if len(d) >= 2] or [np.zeros(0, np.int64)])
        if tok.size == 0:
            raise ValueError("scoring needs at least one document of two or more tokens")
        return math.exp(-float(logp[tok].mean()))

    # ------------------------------------------------------------------ generation
    def generate(self, n_tokens, prefix=None, temperature=1.0, top_k=None, random_state=None,
                 n_samples=None):
        """Sample ``n_tokens`` tokens, one at a time, each fed back as the next input.

        Parameters
        ----------
        n_tokens : int
            How many tokens to generate (not counting ``prefix``).
        prefix : str, token ids or None
            Text the model reads first (its tokens must be in the vocabulary, or map to
            ``"<unk>"``). None: the first token is drawn from the training text's token
            frequencies (uniformly when there are none).
        temperature : float, default=1.0
            Divides the logits; 0 means greedy (always the most likely token).
        top_k : int or None
            Sample only among the ``top_k`` most likely tokens.
        random_state : int, Generator, RandomState or None
            Same value, same text.
        n_samples : int or None, default=None
            None: one sequence. An int k (1 to ``numgru._generate.MAX_SAMPLES``, 1024): k
            sequences drawn side by side in one batched pass (every step of the GRU layers and
            the decoder runs on k rows), all continuing the same ``prefix``. Every step draws
            ``k`` uniforms at once (``rng.random(k)``, sequence i takes the i-th), so
            ``n_samples=1`` gives ``[generate(...)]`` with the same ``random_state``. For
            k > 1 a row's probabilities are those of a single sequence up to rounding (the
            batched kernels add in another order), not bit for bit.

        Returns
        -------
        str (char and word levels) or ndarray of int64 (level="tokens"), or a list of k of them
            The generated tokens only (without ``prefix``); a list when ``n_samples`` is given.

        Raises
        ------
        ValueError
            If ``n_tokens`` is negative, not an integer or above ``numgru.lm.MAX_GENERATE``
            (100,000,000; with ``n_samples``, ``n_tokens * n_samples`` is), ``temperature``,
            ``top_k`` or ``n_samples`` is invalid, or ``prefix`` holds tokens the model cannot
            read.

        Examples
        --------
        >>> from numgru import GRULanguageModel
        >>> lm = GRULanguageModel(embedding_dim=4, hidden_layer_sizes=(8,), max_iter=1,
        ...                       random_state=0).fit("abab abba " * 10)
        >>> a = lm.generate(12, prefix="ab", temperature=0.8, random_state=1)
        >>> a == lm.generate(12, prefix="ab", temperature=0.8, random_state=1), len(a)
        (True, 12)
        >>> set(lm.generate(12, top_k=2, random_state=0)) <= set(lm.vocabulary_)
        True
        >>> three = lm.generate(12, prefix="ab", random_state=1, n_samples=3)
        >>> len(three), [len(t) for t in three]
        (3, [12, 12, 12])
        >>> one = lm.generate(12, prefix="ab", random_state=1)
        >>> lm.generate(12, prefix="ab", random_state=1, n_samples=1) == [one]
        True
        """
        check_is_fitted(self, "stack_")
        if isinstance(n_tokens, (bool, np.bool_)) or not isinstance(n_tokens, (Integral, np.integer)) \
                or n_tokens < 0:
            raise ValueError(f"n_tokens must be a non-negative integer, got {n_tokens!r}")
        if n_samples is not None and (isinstance(n_samples, (bool, np.bool_))
                                      or not isinstance(n_samples, (Integral, np.integer))
                                      or not 1 <= n_samples <= _generate.MAX_SAMPLES):
            raise ValueError(f"n_samples must be None or an integer from 1 to "
                             f"{_generate.MAX_SAMPLES} (numgru._generate.MAX_SAMPLES: the "
                             f"sequences drawn side by side in one call), got {n_samples!r}")
        k = 1 if n_samples is None else int(n_samples)
        if n_tokens * k > MAX_GENERATE:
            raise ValueError(f"n_tokens={n_tokens}" + (f" x n_samples={k}" if k > 1 else "")
                             + f" is more than generate makes in one call "
                             f"(numgru.lm.MAX_GENERATE = {MAX_GENERATE:_}, one token at a time); "
                             "generate fewer, or continue with the last tokens as prefix")
        if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, (Real, np.floating)) \
                or not np.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, (bool, np.bool_))
                                  or not isinstance(top_k, (Integral, np.integer)) or top_k < 1):
            raise ValueError(f"top_k must be None or a positive integer, got {top_k!r}")
        if isinstance(random_state, np.random.Generator):
            rng = random_state
        else:
            rng = np.random.default_rng(check_random_state(random_state).randint(2 ** 31))
        if prefix is not None:
            pre = self._ids(self._one_document(prefix, "prefix"), "prefix")
            if pre.size == 0:
                prefix = None
        out = np.zeros((k, n_tokens), np.int64)
        if n_tokens > 0:
            with compute_threads:
                self._generate_ids(out, pre if prefix is not None else None, temperature,
                                   top_k, rng)
        if n_samples is None:
            return self._as_output(out[0])
        return [self._as_output(row) for row in out]

    def _generate_ids(self, out, pre, temperature, top_k, rng):
        """Fill ``out`` (k, n_tokens) with k sequences continuing ``pre`` (ids, or None: the
        first token drawn from the token frequencies), one step of the k rows at a time
        (:class:`numgru._generate.Stepper`)."""
        k, n_tokens = out.shape
        V = len(self.vocabulary_)
        stack, be = self.stack_, self.stack_.backend
        sampler = _generate.Sampler(k, V, temperature, top_k)
        states = None                # the state after the prefix; None: zero
        if pre is None:
            counts = self.token_counts_
            w = (np.ones(V) if counts is None or counts.sum() == 0
                 else counts.astype(np.float64))
            with np.errstate(divide="ignore"):
                logw = np.log(w)
            first = _generate.Sampler(k, V, 1.0, None)
            out[:, 0] = first(np.broadcast_to(logw, (k, V)), rng)
            start = 1
        else:
            if pre.size > 1:
                # the prefix but its last token in one forward of one row (the state every
                # sequence starts from), then copied to the k rows
                h = [be.upload(np.zeros((1, 1, H), self._dtype)) for H in self._sizes()]
                _, h = stack.forward(be.upload(pre[None, :-1].copy()),
                                     np.array([pre.size - 1], np.int64), h)
                states = [np.repeat(be.to_host(s), k, axis=1) for s in h]
            start = 0
        if n_tokens <= start:
            return
        stepper = _generate.Stepper(stack, self.head_, k)
        if states is not None:
            stepper.set_state(states)
        stepper.ids[:, 0] = out[:, 0] if pre is None else pre[-1]
        for i in range(start, n_tokens):
            tokens = sampler(stepper.step(), rng)
            out[:, i] = tokens
            stepper.ids[:, 0] = tokens

    def _as_output(self, ids):
        return self.decode(ids)

    # ------------------------------------------------------------------ parameters by name
    def state_dict(self):
        """Copies of every parameter under the names of PyTorch's word_language_model
        ``RNNModel``: ``encoder.weight``, ``rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}``,
        ``decoder.weight``, ``decoder.bias`` (with tied weights, ``decoder.weight`` equals
        ``encoder.weight``, as in PyTorch)."""
        check_is_fitted(self, "stack_")
        sd = {"encoder.weight": self._embedding.params["weight"].copy()}
        sd.update({f"rnn.{k}": v for k, v in _layout.state_dict(self.stack_).items()})
        sd["decoder.weight"] = self.head_.params["weight"].copy()
        sd["decoder.bias"] = self.head_.params["bias"].copy()
        return sd

    def load_state_dict(self, state_dict, vocabulary=None):
        """Load weights named as :meth:`state_dict` (numpy arrays or torch tensors as they are).

        The model's ``embedding_dim`` and ``hidden_layer_sizes`` must match the arrays. An
        unfitted model becomes a fitted one: ``vocabulary`` (a list, index = id) is required
        for level "char" and "word" and must have ``encoder.weight.shape[0]`` entries; for
        level "tokens" it defaults to ``range(V)``. A fitted model keeps its vocabulary (a
        given one must be equal). Nothing changes unless every array is valid.

        Returns
        -------
        self
        """
        if not (hasattr(state_dict, "keys") and hasattr(state_dict, "__getitem__")):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        self._validate_params()
        sizes = self._sizes()
        if "encoder.weight" not in state_dict:
            raise ValueError("state_dict has no 'encoder.weight'")
        enc = to_numpy(state_dict["encoder.weight"])
        if enc.ndim != 2:
            raise ValueError(f"state_dict['encoder.weight'] must be 2-D (V, E), got shape {enc.shape}")
        V = enc.shape[0]
        fitted = hasattr(self, "stack_")
        if vocabulary is None:
            if fitted:
                vocabulary = self.vocabulary_
            elif self.level == "tokens":
                vocabulary = list(range(V))
            else:
                raise ValueError(f"load_state_dict on an unfitted level={self.level!r} model "
                                 "needs vocabulary= (the token of every id)")
        vocabulary = _text.check_vocabulary(vocabulary, self.level)
        if V == 0:
            raise ValueError("state_dict['encoder.weight'] has no rows: a vocabulary needs at "
                             "least one token")
        if len(vocabulary) != V:
            raise ValueError(f"vocabulary has {len(vocabulary)} tokens but encoder.weight has "
                             f"{V} rows")
        if len(set(vocabulary)) != V:
            raise ValueError("vocabulary has repeated tokens")
        if fitted and vocabulary != list(self.vocabulary_):
            raise ValueError("vocabulary differs from this fitted model's vocabulary_")
        rng = np.random.default_rng(0)
        old = {k: getattr(self, k) for k in ("stack_", "head_", "_dtype") if hasattr(self, k)}
        self._build(V, rng, get_backend(self.device) if not fitted else self.stack_.backend)
        try:
            self._load_arrays(state_dict, sizes)
        except Exception:
            for k in ("stack_", "head_", "_dtype"):
                if k in old:
                    setattr(self, k, old[k])
                elif hasattr(self, k):
                    delattr(self, k)
            raise
        self.vocabulary_ = vocabulary
        if not fitted:
            self.token_counts_ = None
            self.loss_curve_ = []
            self.validation_scores_ = []
            self.best_validation_score_ = None
            self.n_iter_ = 0
            self._rng = np.random.default_rng(check_random_state(self.random_state).randint(2 ** 31))
        return self

    def _load_arrays(self, state_dict, sizes):
        expected = {"encoder.weight", "decoder.weight", "decoder.bias"}
        rnn = {f"rnn.{name}" for name, *_ in _layout.names(self.stack_)}
        given = set(state_dict.keys())
        missing = sorted((expected | rnn) - given)
        unexpected = sorted(given - expected - rnn)
        if missing or unexpected:
            raise ValueError(f"state_dict does not match this GRULanguageModel "
                             f"(embedding_dim={self.embedding_dim}, hidden_layer_sizes={sizes}): "
                             f"missing keys {missing}, unexpected keys {unexpected}")
        def read(name, shape):
            return _layout.read_entry(state_dict, name, shape, self._dtype)

        V, E = self._embedding.params["weight"].shape
        enc = read("encoder.weight", (V, E))
        dec = read("decoder.weight", self.head_.params["weight"].shape)
        bias = read("decoder.bias", (V,))
        if self.tie_weights and not np.array_equal(enc, dec):
            raise ValueError("tie_weights=True but state_dict's decoder.weight differs from "
                             "encoder.weight")
        _layout.load_state_dict(self.stack_, {k[4:]: state_dict[k] for k in rnn},
                                what="GRULanguageModel's GRU stack")
        self._embedding.params["weight"][...] = enc
        if not self.tie_weights:
            self.head_.params["weight"][...] = dec
        self.head_.params["bias"][...] = bias
        self.stack_.updates_done()

    # ------------------------------------------------------------------ save / load
    def save(self, path):
        """Write the fitted model to ``path`` (one .npz file, read back by :func:`numgru.load`
        without pickle; the write is atomic)."""
        _io.save(self, path)

    _FITTED = _fitted_state.LM_FITTED_ATTRIBUTES

    def _get_fitted_state(self):
        check_is_fitted(self, "stack_")
        fitted = {k: _io.jsonable(getattr(self, k)) for k in self._FITTED if hasattr(self, k)}
        fitted["_dtype"] = self._dtype.name
        arrays = dict(self.state_dict())
        if self.tie_weights:
            del arrays["decoder.weight"]
        if self.level == "tokens":
            fitted["n_tokens"] = len(self.vocabulary_)
            if self.vocabulary_ != list(range(len(self.vocabulary_))):   # else: ids 0..n-1
                arrays["vocabulary"] = np.asarray(self.vocabulary_, dtype=np.int64)
        else:
            arrays["vocabulary"] = np.array(self.vocabulary_, dtype=object)
        if self.token_counts_ is not None:
            arrays["token_counts"] = np.asarray(self.token_counts_, np.int64)
        return fitted, arrays

    def _set_fitted_state(self, fitted, arrays, device=None):
        if device is not None:
            self.device = device
        self._validate_params()
        if fitted.get("_dtype") != self.dtype:
            raise ValueError(f"the stored dtype {fitted.get('_dtype')!r} differs from the "
                             f"parameter dtype={self.dtype!r}")
        _fitted_state.check_lm_fitted_values(fitted)
        if self.level == "tokens":
            n = fitted.get("n_tokens")
            if type(n) is not int or n < 1:
                raise ValueError(f"n_tokens must be a positive integer, got {n!r}")
            voc = arrays.get("vocabulary")
            if voc is None:
                vocabulary = list(range(n))
            elif voc.shape != (n,) or voc.dtype.kind not in "iu":
                raise ValueError(f"the vocabulary of a level='tokens' model must be {n} (n_tokens) "
                                 f"integer token ids, got {voc.dtype} of shape {voc.shape}")
            else:
                vocabulary = voc.tolist()
        else:
            voc = arrays.get("vocabulary")
            if voc is None or voc.ndim != 1 or not all(isinstance(v, str) for v in voc):
                raise ValueError("the vocabulary must be a 1-D array of strings")
            vocabulary = [str(v) for v in voc]
        sd = {k: v for k, v in arrays.items() if k not in ("vocabulary", "token_counts")}
        if self.tie_weights and "encoder.weight" in sd:
            sd["decoder.weight"] = sd["encoder.weight"]
        self.load_state_dict(sd, vocabulary=vocabulary)
        counts = arrays.get("token_counts")
        if counts is not None:
            if counts.shape != (len(vocabulary),) or counts.dtype.kind not in "iu" or (counts < 0).any():
                raise ValueError(f"token_counts must be {len(vocabulary)} non-negative integers")
            self.token_counts_ = counts.astype(np.int64)
        for k in self._FITTED:
            if k in fitted:
                setattr(self, k, fitted[k])
        rs = check_random_state(self.random_state)
        self._rng = np.random.default_rng(rs.randint(2 ** 31))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags


class _TextProblem(_training.Problem):
    """The language model as :func:`numgru._training.train` sees it: an epoch is the windows
    of :func:`_windows` over the :func:`_streams` of the training documents, with each
    stream's state carried from window to window."""

    def __init__(self, lm, train_ids, val_ids):
        self.lm = lm
        self.params = lm._params()
        self.is_weight = lm._is_weight()
        self.text, self.starts, self.ends, self.doc_ends = _streams(train_ids, lm.batch_size)
        self.n_samples = int(self.text.size)
        self.val_ids = val_ids
        self.has_validation = bool(val_ids)

    def epoch(self):
        lm = self.lm
        B = len(self.starts)
        states = [np.zeros((1, B, H), lm._dtype) for H in lm._sizes()]
        for window in _windows(self.text, self.starts, self.ends, self.doc_ends, lm.bptt):
            yield states, window

    def step(self, batch):
        states, (ids, targets, lengths, stream, carried, carries) = batch
        lm = self.lm
        h0 = []                      # the carried state, or zero where a document starts
        for s in states:
            h = np.zeros((1, len(stream), s.shape[2]), s.dtype)
            h[:, carried] = s[:, stream[carried]]
            h0.append(h)
        loss, n, stack_grads, head_grads, h_n = lm._window_step(ids, targets, lengths, h0)
        for s, h in zip(states, h_n):
            s[...] = 0
            s[:, stream[carries]] = lm.stack_.backend.to_host(h)[:, carries]
        return loss, lm._grads(stack_grads, head_grads), n, n

    def validation_score(self):
        return self.lm._score_ids(self.val_ids)

    def params_changed(self):
        self.lm.stack_.params_changed()

