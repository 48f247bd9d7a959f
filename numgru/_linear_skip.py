"""The linear skip of ``GRURegressor``: a linear autoregression on the last steps of each
sequence, added to the recurrent network's head (``linear_skip``).

A recurrent network's outputs are bounded by its last nonlinearity's reach from what it saw in
training; a series whose level leaves the training range (a trend) is then forecast at the
edge of that range, where a linear model on the same window extrapolates. The regressor's
output is ``head(features) + skip(Z)`` with ``Z`` the (standardised) inputs of the last
``k`` steps of each sequence, flattened, as LSTNet's autoregressive component (Lai et al.,
2018). The skip starts at the ridge regression of the standardised targets on ``Z`` (with the
ridge penalty chosen by leave-one-out over :data:`ALPHAS`, as scikit-learn's ``RidgeCV``)
and the network's head at zero, so training starts from the ridge model and both parts are
then trained together.

With ``linear_skip="auto"`` the network's part must then earn its place on held-out data, as
any model choice would: the start (the ridge model alone) is a candidate of early stopping
(:meth:`numgru.GRURegressor._fit_stochastic`), and a fit with too few sequences for early
stopping is compared with the ridge model alone by :data:`CV_FOLDS`-fold cross-validation
(:func:`skip_alone_wins`). Where the skip alone wins, the head is set to zero and the skip to
its start: the fitted model is the ridge model. Measured on the forecasting benchmark
(docs/training.md): trained from the ridge start, the network's part overfitted the 24
windows of ShampooSales on every seed (RMSE 130-210, the ridge model alone 120.5).

Shape legend: B sequences, T steps (the batch's longest), F input features, k steps the skip
reads, P = k*F its inputs, K outputs.
"""

import numpy as np

# The skip reads at most this many inputs (k*F): the ridge fit's cost grows as P^2 per
# sequence and P^3 once, and a forecasting window of a few seasons of a few series is far
# below it (the measured series used 6 to 60 steps of one feature: docs/training.md).
MAX_INPUTS = 256

# The ridge penalties tried by leave-one-out (scikit-learn's RidgeCV over the same grid was
# the baseline the skip was measured against).
ALPHAS = np.logspace(-3, 3, 13)

# The folds of the cross-validation that decides, without early stopping, whether the network's
# part stays (scikit-learn's default cv=5): contiguous blocks of the sequences in their given
# order (KFold without shuffling), so that for forecasting windows in time order each held-out
# block lies outside the range of the windows the fold trains on, as the future will
CV_FOLDS = 5


def n_steps(lengths, n_features):
    """k: the steps the skip reads, those of the shortest training sequence, at most
    ``MAX_INPUTS // n_features`` (and at least 1)."""
    return int(max(1, min(int(np.min(lengths)), MAX_INPUTS // max(1, n_features))))


def features(X, lengths, k):
    """Z (B, k*F): the last ``k`` valid steps of each sequence of X (B, T, F), oldest first,
    step-major; the steps before a sequence shorter than ``k`` begins are zeros (the
    standardised inputs' mean)."""
    X = np.asarray(X)
    B, _, F = X.shape
    steps = np.asarray(lengths, dtype=np.int64)[:, None] - k + np.arange(k)      # (B, k)
    valid = steps >= 0
    Z = X[np.arange(B)[:, None], np.maximum(steps, 0)]                          # (B, k, F)
    Z = np.where(valid[:, :, None], Z, 0)
    return np.ascontiguousarray(Z.reshape(B, k * F), dtype=X.dtype)


def fit_ridge(Z, Y, sample_weight=None):
    """``(coef (K, P), intercept (K,), alpha)``: the ridge regression of Y (B, K) on Z (B, P)
    with an unpenalised intercept, its penalty chosen by leave-one-out error over
    :data:`ALPHAS` (scikit-learn's ``RidgeCV``), computed in float64."""
    from sklearn.linear_model import RidgeCV
    Z = np.asarray(Z, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Z), -1)
    ridge = RidgeCV(alphas=ALPHAS).fit(Z, Y, sample_weight=sample_weight)
    coef = np.atleast_2d(ridge.coef_).reshape(Y.shape[1], Z.shape[1])
    intercept = np.atleast_1d(ridge.intercept_).reshape(Y.shape[1])
    return coef, intercept, float(ridge.alpha_)


def forward(Z, coef, intercept):
    """The skip's outputs (B, K): ``Z @ coef.T + intercept``."""
    return Z @ coef.T + intercept


def backward(Z, d_out):
    """``[d coef (K, P), d intercept (K,)]`` given d loss / d outputs (B, K)."""
    return [d_out.T @ Z, d_out.sum(axis=0)]


def skip_alone_wins(est, X, y, sample_weight, lengths):
    """True when the ridge model alone forecasts ``(X, y)`` better than ``est``'s fit with the
    network: :data:`CV_FOLDS` contiguous folds (KFold without shuffling), each fitted by a copy
    of ``est`` with ``linear_skip=True`` and scored twice on the held-out fold, as fitted and
    with its head at zero and its skip at its start; the sums of the (sample-weighted) squared
    errors over the folds decide, a tie for the ridge model (the simpler one).

    ``X``, ``y``, ``sample_weight``, ``lengths`` are ``fit``'s arguments; each copy draws its
    ``random_state`` from ``est._random_state``, and its warnings are not shown (the fit of
    ``est`` itself shows its own).
    """
    import warnings
    from sklearn.base import clone
    from sklearn.model_selection import KFold
    from sklearn.utils import _safe_indexing
    from sklearn.utils.validation import _num_samples

    n = _num_samples(X)
    take = lambda a, idx: None if a is None else _safe_indexing(a, idx)        # noqa: E731
    errors = np.zeros(2)                                    # [with the network, skip alone]
    for train, held in KFold(CV_FOLDS).split(np.arange(n)):
        fold = clone(est).set_params(linear_skip=True, early_stopping=False, warm_start=False,
                                     verbose=0, random_state=est._random_state.randint(2 ** 31))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fold.fit(take(X, train), take(y, train), take(sample_weight, train),
                     lengths=take(lengths, train))
        X_held, lengths_held = take(X, held), take(lengths, held)
        y_held = np.asarray(take(y, held), dtype=np.float64)
        w = (np.ones(len(held)) if sample_weight is None
             else np.asarray(take(sample_weight, held), dtype=np.float64))
        for i in range(2):
            if i == 1:
                fold._keep_skip_alone()
            pred = fold.predict(X_held, lengths=lengths_held).reshape(y_held.shape)
            errors[i] += float(np.sum(w[:, None] * ((pred - y_held) ** 2).reshape(len(held), -1)))
    return bool(errors[1] <= errors[0])


# GRURegressor's documentation of the skip (composed into its docstring by
# numgru._estimator_docs.sequence_estimator_doc)
PARAMETER_DOC = """\
    linear_skip : bool or "auto", default="auto"
        Add a linear autoregression on the last steps of each sequence to the network's output
        (as LSTNet's autoregressive component): it starts at the ridge regression of the
        standardised targets on the standardised inputs of the last ``skip_steps_`` steps
        (those of the shortest training sequence, at most 256 inputs in all; the penalty chosen
        by leave-one-out), the head starts at zero, and both are then trained together. A
        network alone forecasts a series that leaves its training range (a trend) at the edge
        of that range; the skip extrapolates as the ridge model does. "auto": on with
        ``output="last"``, off with ``output="each_step"`` (True there is an error), and the
        network's part must beat the ridge model alone on held-out data: with early stopping
        the start (the ridge model, head zero) is a candidate for the best epoch, and with
        ``early_stopping="auto"`` off (too few sequences) 5-fold cross-validation (contiguous
        folds) compares this fit with the ridge model alone, at the cost of 5 more fits on
        4/5 of the data. Where the ridge model wins, the fitted head is zero
        (``head_coef_`` all zeros) and the skip is the ridge model. True: the skip and the
        network, trained together, always.

"""

ATTRIBUTES_DOC = """\
    skip_coef_ : ndarray of shape (n_outputs, n_skip_inputs)
        The linear skip's weights on the last ``skip_steps_`` standardised input steps of each
        sequence, oldest first, step-major: ``n_skip_inputs`` is ``skip_steps_`` times the
        features per step (absent without a skip).

    skip_intercept_ : ndarray of shape (n_outputs,)
        The linear skip's intercept (absent without a skip).

    skip_steps_ : int
        The steps the linear skip reads (absent without a skip).

"""
