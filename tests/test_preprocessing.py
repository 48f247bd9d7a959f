"""numgru.preprocessing: SequenceScaler and sliding_windows against plain-NumPy oracles."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline

from numgru import GRUClassifier, GRURegressor
from numgru.preprocessing import SequenceScaler, sliding_windows


def _ragged(rng, F=3):
    return [rng.normal(5.0, 3.0, (T, F)) * [1.0, 100.0, 0.01][:F] for T in (4, 9, 1, 6)]


# ---------------------------------------------------------------------- SequenceScaler
def test_statistics_over_all_steps_of_ragged_sequences():
    rng = np.random.default_rng(0)
    X = _ragged(rng)
    steps = np.vstack(X)                      # every timestep of every sequence, no padding
    scaler = SequenceScaler().fit(X)
    np.testing.assert_allclose(scaler.mean_, steps.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(scaler.scale_, steps.std(axis=0), rtol=1e-13)
    assert scaler.n_steps_seen_ == 20 and scaler.n_features_per_timestep_ == 3
    Z = scaler.transform(X)
    assert [z.shape for z in Z] == [x.shape for x in X]
    np.testing.assert_allclose(np.vstack(Z).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.vstack(Z).std(axis=0), 1, rtol=1e-12)
    for x, z in zip(X, Z):
        np.testing.assert_allclose(z, (x - steps.mean(axis=0)) / steps.std(axis=0), rtol=1e-12)
    back = scaler.inverse_transform(Z)
    for x, b in zip(X, back):
        np.testing.assert_allclose(b, x, rtol=1e-12)


def test_arrays_keep_their_shape_and_float32():
    rng = np.random.default_rng(1)
    X3 = rng.normal(2.0, 4.0, (5, 7, 2)).astype(np.float32)
    scaler = SequenceScaler().fit(X3)
    flat = X3.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(scaler.mean_, flat.mean(axis=0), rtol=1e-12)
    Z = scaler.transform(X3)
    assert Z.shape == X3.shape and Z.dtype == np.float32
    np.testing.assert_allclose(Z.reshape(-1, 2), (flat - flat.mean(0)) / flat.std(0),
                               rtol=1e-5, atol=1e-5)
    X2 = rng.normal(-3.0, 0.5, (4, 6))        # univariate sequences (n, T)
    s2 = SequenceScaler().fit(X2)
    assert s2.n_features_per_timestep_ == 1 and s2.n_features_in_ == 6
    Z2 = s2.transform(X2)
    assert Z2.shape == X2.shape
    np.testing.assert_allclose(Z2, (X2 - X2.mean()) / X2.std(), rtol=1e-12)
    np.testing.assert_allclose(s2.inverse_transform(Z2), X2, rtol=1e-12)
    # 1-D sequences in a list stay 1-D
    Z1 = s2.transform([X2[0], X2[1, :3]])
    assert [z.shape for z in Z1] == [(6,), (3,)]


def test_constant_feature_and_options():
    X = [np.array([[1.0, 7.0], [2.0, 7.0]]), np.array([[3.0, 7.0]])]
    scaler = SequenceScaler().fit(X)
    assert scaler.scale_[1] == 1.0                      # never varies: divided by 1
    np.testing.assert_allclose(scaler.transform(X)[1], [[np.sqrt(1.5), 0.0]])
    raw = SequenceScaler(with_mean=False, with_std=False).fit(X)
    np.testing.assert_array_equal(raw.transform(X)[0], X[0])
    centred = SequenceScaler(with_std=False).fit(X)
    np.testing.assert_allclose(centred.transform(X)[0], [[-1.0, 0.0], [0.0, 0.0]])


def test_scaler_errors():
    with pytest.raises(NotFittedError):
        SequenceScaler().transform(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="same number of features"):
        SequenceScaler().fit([np.zeros((3, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="NaN or infinity"):
        SequenceScaler().fit(np.array([[[np.nan]]]))
    scaler = SequenceScaler().fit(np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="3 features per timestep"):
        scaler.transform(np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="3-D array"):
        scaler.transform(np.ones(4))


def test_pipeline_equals_scaling_by_hand():
    """In a Pipeline the estimator sees exactly the scaled sequences."""
    rng = np.random.default_rng(2)
    X = 50 + 10 * rng.standard_normal((24, 6, 2))
    y = (X[:, :, 0].mean(axis=1) > 50).astype(int)
    params = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(SequenceScaler(), GRUClassifier(**params)).fit(X, y)
        Z = SequenceScaler().fit_transform(X)
        by_hand = GRUClassifier(**params).fit(Z, y)
    np.testing.assert_array_equal(pipe.predict_proba(X), by_hand.predict_proba(Z))


# ---------------------------------------------------------------------- sliding_windows
def _windows_oracle(data, window, horizon, step):
    X, y = [], []
    start = 0
    while start + window + horizon <= len(data):
        X.append(data[start:start + window])
        y.append(data[start + window:start + window + horizon])
        start += step
    return np.array(X), np.array(y)


@pytest.mark.parametrize("window,horizon,step", [(1, 1, 1), (4, 2, 3), (5, 0, 2), (12, 1, 1)])
def test_windows_match_loop(window, horizon, step):
    series = np.random.default_rng(3).standard_normal(13)
    X, y = sliding_windows(series, window, horizon, step)
    Xo, yo = _windows_oracle(series, window, horizon, step)
    np.testing.assert_array_equal(X[:, :, 0], Xo)
    np.testing.assert_array_equal(y, yo.reshape(len(Xo), horizon))
    multi = np.random.default_rng(4).standard_normal((13, 3))
    X, y = sliding_windows(multi, window, horizon, step)
    Xo, yo = _windows_oracle(multi, window, horizon, step)
    np.testing.assert_array_equal(X, Xo)
    np.testing.assert_array_equal(y, yo.reshape(len(Xo), horizon, 3))


def test_windows_take_pandas():
    pd = pytest.importorskip("pandas")
    idx = pd.date_range("2020-01-01", periods=8, freq="D")
    s = pd.Series(np.arange(8.0), index=idx)
    X, y = sliding_windows(s, 3, 1)
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[:, 0], np.arange(3.0, 8.0))
    df = pd.DataFrame({"a": np.arange(8.0), "b": -np.arange(8.0)}, index=idx)
    X, y = sliding_windows(df, 3, 2)
    assert X.shape == (4, 3, 2) and y.shape == (4, 2, 2)
    np.testing.assert_array_equal(y[0], [[3.0, -3.0], [4.0, -4.0]])


def test_windows_errors():
    with pytest.raises(ValueError, match="fewer than window"):
        sliding_windows(np.arange(5.0), 4, 2)
    for kw, name in (({"window": 0, "horizon": 1}, "window"),
                     ({"window": 2, "horizon": -1}, "horizon"),
                     ({"window": 2, "horizon": 1, "step": 0}, "step"),
                     ({"window": 2.0, "horizon": 1}, "window")):
        with pytest.raises(ValueError, match=name):
            sliding_windows(np.arange(5.0), **kw)
    with pytest.raises(ValueError, match="1-D"):
        sliding_windows(np.zeros((4, 2, 2)), 2, 1)
    with pytest.raises(ValueError, match="numbers"):
        sliding_windows(np.array(["a", "b", "c"]), 1, 1)


def test_forecasting_round_trip():
    """Windows of a scaled series train a regressor; inverse_transform brings its forecasts
    back to the series' units (smoke test of the forecasting recipe)."""
    t = np.arange(120.0)
    series = 300 + 50 * np.sin(2 * np.pi * t / 12)
    scaler = SequenceScaler().fit(series[None, :])
    z = scaler.transform(series[None, :])[0]
    X, y = sliding_windows(z, 12, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = GRURegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y[:, 0])
    pred = scaler.inverse_transform(reg.predict(X)[None, :])[0]
    assert pred.shape == (len(X),) and np.isfinite(pred).all()
