"""numgru's sequence estimators as aeon collection estimators (``pip install "numgru[aeon]"``).

Shape legend: n cases, C channels, T timepoints (T_i per case when lengths differ).

:class:`GRUClassifier` and :class:`GRURegressor` are built on aeon's ``BaseClassifier`` /
``BaseRegressor``: they take aeon's collections, a 3-D array (n, C, T) or a list of (C, T_i)
arrays of unequal lengths (aeon also converts its other collection types to these), hand them
to :class:`numgru.GRUClassifier` / :class:`numgru.GRURegressor` as sequences of timesteps
((T_i, C) each), and keep that fitted numgru estimator as ``estimator_``. Their tags are the
true ones: multivariate and unequal-length series are handled (the recurrent network reads
every channel at every step, and ragged batches are masked in the kernels); missing values
are not.

Without aeon installed the classes still exist (so that the API documentation builds) but
constructing one raises ``ImportError`` naming the extra.
"""

import numpy as np

try:
    from aeon.classification.base import BaseClassifier
    from aeon.regression.base import BaseRegressor
except ImportError:  # aeon is optional

    class _NeedsAeon:
        _tags = {}

        def __init__(self, *args, **kwargs):
            raise ImportError(f"numgru.aeon.{type(self).__name__} needs aeon: "
                              'pip install "numgru[aeon]"')

    BaseClassifier = BaseRegressor = _NeedsAeon

__all__ = ["GRUClassifier", "GRURegressor"]

# aeon's collection tags that are true of both estimators
_TAGS = {
    "X_inner_type": ["np-list", "numpy3D"],
    "capability:multivariate": True,
    "capability:unequal_length": True,
    "capability:missing_values": False,
    "algorithm_type": "deeplearning",
}


def _as_sequences(X):
    """aeon's inner collection -> numgru's sequences: (n, C, T) -> (n, T, C); a list of
    (C, T_i) arrays -> a list of (T_i, C) arrays."""
    if isinstance(X, np.ndarray):
        return np.ascontiguousarray(X.transpose(0, 2, 1))
    return [np.ascontiguousarray(np.asarray(x).T) for x in X]


class _AeonGRU:
    """What both estimators share: the numgru parameters they expose (their one explicit
    ``__init__``, which aeon's ``get_params`` reads) and the conversion."""

    def __init__(self, hidden_layer_sizes=(64,), *, cell="gru", bidirectional=False,
                 pooling="last", learning_rate_init=1e-3, max_iter=200, batch_size="auto",
                 alpha=1e-4, early_stopping="auto", random_state=None, dtype="float32",
                 numgru_params=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.cell = cell
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.dtype = dtype
        self.numgru_params = numgru_params
        super().__init__()

    def _numgru_params(self):
        params = dict(hidden_layer_sizes=self.hidden_layer_sizes, cell=self.cell,
                      bidirectional=self.bidirectional, pooling=self.pooling,
                      learning_rate_init=self.learning_rate_init, max_iter=self.max_iter,
                      batch_size=self.batch_size, alpha=self.alpha,
                      early_stopping=self.early_stopping, random_state=self.random_state,
                      dtype=self.dtype)
        extra = dict(self.numgru_params or {})
        clash = sorted(set(extra) & set(params))
        if clash:
            raise ValueError(f"numgru_params repeats parameters of this estimator: {clash}; "
                             "set them directly")
        if extra.get("output", "last") != "last":
            raise ValueError("numgru_params output must be 'last': aeon's estimators predict "
                             "one value per series")
        params.update(extra)
        return params

    def _fit(self, X, y):
        self.estimator_ = self._numgru_class()(**self._numgru_params())
        self.estimator_.fit(_as_sequences(X), y)
        self.n_iter_ = self.estimator_.n_iter_
        self.loss_curve_ = self.estimator_.loss_curve_
        return self

    def _predict(self, X):
        return self.estimator_.predict(_as_sequences(X))

    @classmethod
    def _get_test_params(cls, parameter_set="default"):
        """Small, fast settings for aeon's ``check_estimator``."""
        return {"hidden_layer_sizes": (4,), "max_iter": 3, "batch_size": 8,
                "learning_rate_init": 0.01, "random_state": 0}


_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(64,)
        Hidden units of each recurrent layer.
    cell : {"gru", "rnn_tanh", "rnn_relu"}, default="gru"
        The recurrent cell.
    bidirectional : bool, default=False
        Read each series in both directions.
    pooling : {"last", "mean", "attention"}, default="last"
        How the outputs over the timepoints become one feature vector per series.
    learning_rate_init : float, default=1e-3
    max_iter : int, default=200
        Epochs.
    batch_size : int or "auto", default="auto"
    alpha : float, default=1e-4
        L2 penalty.
    early_stopping : bool or "auto", default="auto"
    random_state : int or None, default=None
    dtype : {"float32", "float64", "auto"}, default="float32"
    numgru_params : dict or None, default=None
        Any other parameter of the numgru estimator (``solver``, ``dropout``, ``residual``,
        ``clip_grad_norm``, ``n_iter_no_change``, ...), passed as it is.
"""


class GRUClassifier(_AeonGRU, BaseClassifier):
    __doc__ = """A GRU (or vanilla RNN) network classifying time series, as an aeon classifier.

    Wraps :class:`numgru.GRUClassifier`: aeon's collections in, numgru's Numba kernels inside
    (no TensorFlow). Takes (n_cases, n_channels, n_timepoints) arrays, (n_cases, n_timepoints)
    univariate ones, and lists of (n_channels, n_timepoints_i) arrays of unequal lengths.
    """ + _PARAMETERS + """
    Attributes
    ----------
    estimator_ : numgru.GRUClassifier
        The fitted numgru estimator.
    classes_ : ndarray
        Class labels (aeon's ``np.unique(y)``, the order of ``predict_proba``'s columns).
    n_iter_ : int
    loss_curve_ : list of float

    Examples
    --------
    >>> from aeon.datasets import load_basic_motions        # doctest: +SKIP
    >>> from numgru.aeon import GRUClassifier                # doctest: +SKIP
    >>> X, y = load_basic_motions(split="train")             # (40, 6, 100)   # doctest: +SKIP
    >>> clf = GRUClassifier(hidden_layer_sizes=(16,), max_iter=30).fit(X, y)  # doctest: +SKIP
    >>> clf.predict(X[:3]).shape                             # doctest: +SKIP
    (3,)
    """

    _tags = dict(_TAGS)

    @staticmethod
    def _numgru_class():
        from .estimators import GRUClassifier as NumgruClassifier
        return NumgruClassifier

    def _fit(self, X, y):
        super()._fit(X, y)
        # aeon's classes_ is np.unique(y), the LabelEncoder order numgru's columns follow
        if not np.array_equal(np.asarray(self.estimator_.classes_), np.asarray(self.classes_)):
            raise RuntimeError("numgru's classes differ from aeon's: "
                               f"{self.estimator_.classes_} vs {self.classes_}")
        return self

    def _predict_proba(self, X):
        return self.estimator_.predict_proba(_as_sequences(X))


class GRURegressor(_AeonGRU, BaseRegressor):
    __doc__ = """A GRU (or vanilla RNN) network regressing time series, as an aeon regressor.

    Wraps :class:`numgru.GRURegressor`: aeon's collections in, one value per series out.
    Takes (n_cases, n_channels, n_timepoints) arrays, (n_cases, n_timepoints) univariate ones,
    and lists of (n_channels, n_timepoints_i) arrays of unequal lengths.
    """ + _PARAMETERS + """
    Attributes
    ----------
    estimator_ : numgru.GRURegressor
        The fitted numgru estimator.
    n_iter_ : int
    loss_curve_ : list of float

    Examples
    --------
    >>> import numpy as np                                   # doctest: +SKIP
    >>> from numgru.aeon import GRURegressor                 # doctest: +SKIP
    >>> X = np.random.default_rng(0).standard_normal((20, 2, 12))   # doctest: +SKIP
    >>> reg = GRURegressor(hidden_layer_sizes=(8,), max_iter=5)     # doctest: +SKIP
    >>> reg.fit(X, X[:, 0].sum(axis=1)).predict(X[:4]).shape      # doctest: +SKIP
    (4,)
    """

    _tags = dict(_TAGS)

    @staticmethod
    def _numgru_class():
        from .estimators import GRURegressor as NumgruRegressor
        return NumgruRegressor

    def _predict(self, X):
        return np.asarray(super()._predict(X), dtype=np.float64)
