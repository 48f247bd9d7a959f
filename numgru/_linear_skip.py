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

With ``linear_skip="auto"`` the network's part must earn its place on held-out sequences
(:meth:`numgru.GRURegressor._run_epochs`): the start (the ridge model alone) is a
candidate for early stopping's best epoch; where no epoch scores above it, the head is set
back to zero and the skip to its start, and the fitted model is the ridge model. A first fit
holds out from 2 sequences for that; below early stopping's usual 5 the held-out sequences
only choose (the ridge model, or the network and its number of epochs), and the choice is
then refitted on all sequences.

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
        start (the ridge model, head zero) is a candidate for early stopping's best epoch:
        where no epoch scores above it on the held-out sequences, the fitted head is zero
        (``head_coef_`` all zeros) and the skip is the ridge model. A first fit then holds
        out from 2 sequences (``early_stopping="auto"``); with fewer than 5 held out they
        only choose, the ridge model or the network and its number of epochs, and that
        choice is refitted on all the sequences (for the network, ``loss_curve_`` and
        ``n_iter_`` are then the refit's epochs and ``validation_scores_`` the choice's).
        True: the skip and the network trained together, without that choice.

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
