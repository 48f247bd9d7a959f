"""Preparing sequences: per-feature standardisation and forecasting windows.

Shape legend: n sequences, T timesteps (T_i per sequence), F features per timestep,
W window length, h horizon.

:class:`SequenceScaler` standardises each feature over all steps of all sequences (what
``StandardScaler`` would do to the (sum T_i, F) matrix of every timestep), for the sequence
inputs numgru's estimators take: 3-D arrays (n, T, F), 2-D arrays (n, T) of univariate
sequences, and ragged lists of (T_i, F) or (T_i,) arrays; it returns the same structure.
:func:`sliding_windows` cuts one long series into (window, next values) pairs for forecasting.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

__all__ = ["SequenceScaler", "sliding_windows"]


def _float_dtype(a):
    return a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _read_sequences(X, what="X"):
    """``(kind, arrays)``: kind "3d", "2d" or "list"; arrays a list of (T_i, F) float arrays
    (views where possible) with the input's float dtype (float64 for other input)."""
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError(f"{what} is an empty list; it needs at least one sequence")
        seqs = []
        for i, x in enumerate(X):
            a = np.asarray(x)
            if a.dtype.kind not in "fiub":
                raise ValueError(f"{what}[{i}] has non-numeric dtype {a.dtype}")
            if a.ndim not in (1, 2):
                raise ValueError(f"{what}[{i}] must be a (n_timesteps, n_features) array or a "
                                 f"1-D univariate sequence, got shape {a.shape}")
            a = a.astype(_float_dtype(a), copy=False)
            seqs.append(a[:, None] if a.ndim == 1 else a)
        features = sorted({a.shape[1] for a in seqs})
        if len(features) != 1:
            raise ValueError(f"all sequences in {what} must have the same number of features, "
                             f"got {features}")
        return "list", seqs
    a = np.asarray(X)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{what} has non-numeric dtype {a.dtype}")
    a = a.astype(_float_dtype(a), copy=False)
    if a.ndim == 3:
        return "3d", list(a)
    if a.ndim == 2:
        return "2d", list(a[:, :, None])
    raise ValueError(f"{what} must be a 3-D array (n_samples, n_timesteps, n_features), a 2-D "
                     f"array (n_samples, n_timesteps) of univariate sequences, or a list of "
                     f"sequences; got an array of shape {a.shape}")


class SequenceScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise each feature over all timesteps of all sequences.

    ``mean_`` and ``scale_`` are the mean and standard deviation of each feature over every
    timestep of every sequence seen in ``fit``; ``transform`` maps ``x -> (x - mean_) /
    scale_`` at every step, ``inverse_transform`` back. A ragged list counts each sequence's
    own steps (no padding), and comes back as a list of arrays of the same shapes; arrays come
    back as arrays of the same shape. float32 input stays float32 (the statistics are
    accumulated in float64). Put it before a numgru estimator in a ``Pipeline``.

    Parameters
    ----------
    with_mean : bool, default=True
        Subtract the mean.
    with_std : bool, default=True
        Divide by the standard deviation (a feature that never varies is divided by 1).
    copy : bool, default=True
        Kept for scikit-learn's API; transforms always return new arrays.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features_per_timestep,)
        Per-feature mean (zeros when ``with_mean=False``).
    var_ : ndarray of shape (n_features_per_timestep,)
        Per-feature variance (population, ddof=0).
    scale_ : ndarray of shape (n_features_per_timestep,)
        Per-feature standard deviation, 1 where it is 0 (ones when ``with_std=False``).
    n_features_per_timestep_ : int
    n_steps_seen_ : int
        Timesteps over all sequences in ``fit``.
    n_features_in_ : int
        As numgru's estimators set it: T for 2-D input, F otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from numgru.preprocessing import SequenceScaler
    >>> X = [np.array([[1.0, 10.0], [3.0, 10.0]]), np.array([[5.0, 10.0]])]   # ragged
    >>> scaler = SequenceScaler().fit(X)
    >>> scaler.mean_, scaler.scale_.round(4)
    (array([ 3., 10.]), array([1.633, 1.   ]))
    >>> [x.shape for x in scaler.transform(X)]
    [(2, 2), (1, 2)]
    >>> bool(np.allclose(scaler.inverse_transform(scaler.transform(X))[1], X[1]))
    True

    In a pipeline before an estimator:

    >>> from sklearn.pipeline import make_pipeline
    >>> from numgru import GRURegressor
    >>> rng = np.random.default_rng(0)
    >>> X = 100 + 20 * rng.standard_normal((30, 8, 2))
    >>> model = make_pipeline(SequenceScaler(), GRURegressor(hidden_layer_sizes=(4,),
    ...                                                      max_iter=2, random_state=0))
    >>> model.fit(X, X[:, -1, 0]).predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {"with_mean": ["boolean"], "with_std": ["boolean"],
                              "copy": ["boolean"]}

    def __init__(self, *, with_mean=True, with_std=True, copy=True):
        self.with_mean = with_mean
        self.with_std = with_std
        self.copy = copy

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the per-feature mean and standard deviation over all timesteps.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) / (T_i,) arrays
        y : None
            Ignored.

        Returns
        -------
        self : SequenceScaler

        Raises
        ------
        ValueError
            Non-numeric, NaN or infinite values, mixed feature counts, or no timestep.
        """
        kind, seqs = _read_sequences(X)
        if not seqs:
            raise ValueError("X has no sequences; SequenceScaler needs at least one")
        steps = np.concatenate([s.astype(np.float64) for s in seqs], axis=0)   # (sum T_i, F)
        if steps.shape[0] == 0:
            raise ValueError("X has no timesteps; SequenceScaler needs at least one")
        if not np.isfinite(steps).all():
            raise ValueError("Input X contains NaN or infinity.")
        F = steps.shape[1]
        self.n_features_per_timestep_ = F
        self.n_features_in_ = np.shape(X)[1] if kind == "2d" else F
        self.n_steps_seen_ = int(steps.shape[0])
        mean = steps.mean(axis=0)
        self.var_ = steps.var(axis=0)
        self.mean_ = mean if self.with_mean else np.zeros(F)
        std = np.sqrt(self.var_)
        # sklearn's rule for constant features: scale 1 where the spread is at rounding level
        eps = 10 * np.finfo(np.float64).eps
        constant = std <= eps * np.maximum(np.abs(mean), 1.0)
        self.scale_ = np.where(constant, 1.0, std) if self.with_std else np.ones(F)
        return self

    def _apply(self, X, inverse):
        check_is_fitted(self, "mean_")
        kind, seqs = _read_sequences(X)
        F = seqs[0].shape[1]
        if F != self.n_features_per_timestep_:
            raise ValueError(f"X has {F} features per timestep, but SequenceScaler was fitted "
                             f"with {self.n_features_per_timestep_}")
        out = []
        for s in seqs:
            mean = self.mean_.astype(s.dtype)
            scale = self.scale_.astype(s.dtype)
            out.append(s * scale + mean if inverse else (s - mean) / scale)
        if kind != "list" and not out:          # no sequences: nothing to scale
            return np.asarray(X).astype(_float_dtype(np.asarray(X)))
        if kind == "3d":
            return np.stack(out)
        if kind == "2d":
            return np.stack(out)[:, :, 0]
        return [o[:, 0] if np.ndim(x) == 1 else o for o, x in zip(out, X)]

    def transform(self, X):
        """Standardise ``X`` with the fitted statistics.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) / (T_i,) arrays

        Returns
        -------
        X_scaled : the same structure and shapes as ``X``

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the scaler is not fitted.
        ValueError
            If the number of features per timestep differs from ``fit``'s.
        """
        return self._apply(X, inverse=False)

    def inverse_transform(self, X):
        """Undo :meth:`transform`: ``x * scale_ + mean_`` at every step.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) / (T_i,) arrays

        Returns
        -------
        X_original : the same structure and shapes as ``X``
        """
        return self._apply(X, inverse=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = True
        return tags


def _positive_int(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def sliding_windows(series, window, horizon, step=1):
    """Cut one long series into input windows and the values that follow them.

    Window ``i`` holds the steps ``[i*step, i*step + window)`` and its target the next
    ``horizon`` steps ``[i*step + window, i*step + window + horizon)``: the (X, y) pairs a
    numgru regressor learns to forecast from.

    Parameters
    ----------
    series : array-like of shape (T,) or (T, F), pandas.Series or pandas.DataFrame
        One univariate or multivariate series in time order (a DataFrame's columns are the
        features; its index is not used).
    window : int
        Steps per input window (>= 1).
    horizon : int
        Steps to forecast after each window (>= 0). With 0 every window that fits is
        returned, the last one ending at the series' end (the input for forecasting past it),
        and ``y`` has no columns.
    step : int, default=1
        Steps between the starts of consecutive windows (>= 1).

    Returns
    -------
    X : ndarray of shape (n_windows, window, F)
        F = 1 for a univariate series (numgru's 3-D input).
    y : ndarray of shape (n_windows, horizon), or (n_windows, horizon, F) for a multivariate
        series
        For a regressor: ``y`` as it is (univariate; one output per step ahead), or
        ``y.reshape(len(y), -1)`` (multivariate).

    Raises
    ------
    ValueError
        If the series is not 1-D or 2-D numbers, or is shorter than ``window + horizon``, or
        ``window``, ``horizon`` or ``step`` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from numgru.preprocessing import sliding_windows
    >>> X, y = sliding_windows(np.arange(10.0), window=4, horizon=2, step=2)
    >>> X.shape, y.shape
    ((3, 4, 1), (3, 2))
    >>> X[1, :, 0], y[1]
    (array([2., 3., 4., 5.]), array([6., 7.]))
    >>> X, y = sliding_windows(np.arange(10.0), window=4, horizon=0)
    >>> X[-1, :, 0], y.shape          # the last window ends at the series' end
    (array([6., 7., 8., 9.]), (7, 0))
    """
    window = _positive_int(window, "window", 1)
    horizon = _positive_int(horizon, "horizon", 0)
    step = _positive_int(step, "step", 1)
    values = series.to_numpy() if hasattr(series, "to_numpy") else np.asarray(series)
    if values.dtype.kind not in "fiub":
        raise ValueError(f"series must hold numbers, got dtype {values.dtype}")
    if values.ndim not in (1, 2):
        raise ValueError(f"series must be 1-D (T,) or 2-D (T, n_features), got shape "
                         f"{values.shape}")
    univariate = values.ndim == 1
    values = values.astype(_float_dtype(values), copy=False)
    data = values[:, None] if univariate else values                     # (T, F)
    T, F = data.shape
    if T < window + horizon:
        raise ValueError(f"the series has {T} steps, fewer than window + horizon = "
                         f"{window} + {horizon}: no window fits")
    n = (T - window - horizon) // step + 1
    starts = np.arange(n) * step
    X = data[starts[:, None] + np.arange(window)[None, :]]               # (n, W, F) copy
    y = data[starts[:, None] + window + np.arange(horizon)[None, :]]     # (n, h, F) copy
    return X, (y[:, :, 0] if univariate else y)
