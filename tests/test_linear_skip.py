"""GRURegressor's linear skip (numgru._linear_skip): its inputs, its ridge start and its
gradient against NumPy / scikit-learn oracles written here, and the skip through every path
that reads a fitted regressor (predict, stream, save/load, ONNX, warm start)."""

import os
import warnings

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

import numgru
from numgru import GRURegressor, _linear_skip


def _last_steps_loop(X, lengths, k):
    """Oracle: the last k valid steps of each sequence, oldest first, zeros before its start."""
    B, _, F = X.shape
    Z = np.zeros((B, k, F))
    for i in range(B):
        for j in range(k):
            t = lengths[i] - k + j
            if t >= 0:
                Z[i, j] = X[i, t]
    return Z.reshape(B, k * F)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_features_are_the_last_steps(k):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 6, 2))
    lengths = np.array([6, 1, 3, 5, 2])
    np.testing.assert_array_equal(_linear_skip.features(X, lengths, k),
                                  _last_steps_loop(X, lengths, k))


def test_n_steps_is_the_shortest_sequence_within_the_input_cap():
    assert _linear_skip.n_steps(np.array([12, 9, 30]), 1) == 9
    assert _linear_skip.n_steps(np.array([500, 400]), 1) == _linear_skip.MAX_INPUTS
    assert _linear_skip.n_steps(np.array([500, 400]), 16) == _linear_skip.MAX_INPUTS // 16
    assert _linear_skip.n_steps(np.array([50]), 1000) == 1


def test_fit_ridge_solves_the_weighted_normal_equations():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((40, 5))
    Y = Z @ rng.standard_normal((5, 2)) + 0.3 * rng.standard_normal((40, 2)) + 1.5
    w = rng.uniform(0.5, 2.0, 40)
    coef, intercept, alpha = _linear_skip.fit_ridge(Z, Y, w)
    assert alpha in _linear_skip.ALPHAS
    # oracle: weighted centring, then (Zc' W Zc + alpha I) b = Zc' W Yc
    zm, ym = w @ Z / w.sum(), w @ Y / w.sum()
    Zc, Yc = Z - zm, Y - ym
    b = np.linalg.solve(Zc.T @ (w[:, None] * Zc) + alpha * np.eye(5), Zc.T @ (w[:, None] * Yc))
    np.testing.assert_allclose(coef, b.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(intercept, ym - zm @ b, rtol=1e-8, atol=1e-10)


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((7, 4))
    Y = rng.standard_normal((7, 3))
    coef, intercept = rng.standard_normal((3, 4)), rng.standard_normal(3)

    def loss(c, b):
        return 0.5 * np.sum((_linear_skip.forward(Z, c, b) - Y) ** 2)

    d_coef, d_b = _linear_skip.backward(Z, _linear_skip.forward(Z, coef, intercept) - Y)
    eps = 1e-6
    for (i, j) in [(0, 0), (2, 3), (1, 2)]:
        e = np.zeros_like(coef)
        e[i, j] = eps
        fd = (loss(coef + e, intercept) - loss(coef - e, intercept)) / (2 * eps)
        assert d_coef[i, j] == pytest.approx(fd, rel=1e-6)
    for i in range(3):
        e = np.zeros(3)
        e[i] = eps
        fd = (loss(coef, intercept + e) - loss(coef, intercept - e)) / (2 * eps)
        assert d_b[i] == pytest.approx(fd, rel=1e-6)


def _series_windows(n=160, window=8, seed=0):
    rng = np.random.default_rng(seed)
    s = np.cumsum(0.5 + rng.standard_normal(n + window))        # a random walk with drift
    X = np.lib.stride_tricks.sliding_window_view(s[:-1], window)[:n]
    return np.ascontiguousarray(X), s[window:window + n]


def test_the_fit_starts_from_the_ridge_model_of_the_standardised_windows():
    """With a vanishing learning rate the fitted regressor is its start: the ridge model that
    scikit-learn's RidgeCV fits on the standardised windows (computed here, not by numgru)."""
    X, y = _series_windows()
    reg = GRURegressor(hidden_layer_sizes=(4,), max_iter=1, learning_rate_init=1e-12,
                       early_stopping=False, dtype="float64", random_state=0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y)
    mx, sx = X.mean(), X.std()
    my, sy = y.mean(), y.std()
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit((X - mx) / sx, (y - my) / sy)
    assert reg.skip_steps_ == 8
    np.testing.assert_allclose(reg.skip_coef_[0], ridge.coef_, rtol=1e-6, atol=1e-9)
    X_new = X[-10:] + 50.0                     # far above the training range
    np.testing.assert_allclose(reg.predict(X_new),
                               ridge.predict((X_new - mx) / sx) * sy + my, rtol=1e-6)


def _fitted(three_d=False, **params):
    X, y = _series_windows(n=120)
    if three_d:
        X = X[:, :, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GRURegressor(hidden_layer_sizes=(6,), max_iter=4, random_state=0, verbose=0,
                            **params).fit(X, y), X, y


def test_auto_is_on_for_one_output_per_sequence_and_off_per_step():
    reg, X, y = _fitted()
    assert reg.skip_coef_.shape == (1, 8) and reg.skip_intercept_.shape == (1,)
    reg, _, _ = _fitted(linear_skip=False)
    assert not hasattr(reg, "skip_coef_")
    Xs = X[:30, :, None]
    ys = np.cumsum(Xs[:, :, 0], axis=1)
    each = GRURegressor(hidden_layer_sizes=(4,), output="each_step", max_iter=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        each.fit(Xs, ys)
    assert not hasattr(each, "skip_coef_")
    with pytest.raises(ValueError, match="linear_skip=True needs output='last'"):
        each.set_params(linear_skip=True).fit(Xs, ys)


def test_the_skip_adds_to_the_networks_output():
    reg, X, _ = _fitted()
    skip = (_linear_skip.features(((X - reg.input_mean_) / reg.input_scale_)[:, :, None],
                                  np.full(len(X), X.shape[1]), reg.skip_steps_)
            @ reg.skip_coef_.T.astype(np.float64) + reg.skip_intercept_)
    without = reg.predict(X) - skip[:, 0] * reg.target_scale_[0]
    reg.skip_coef_[...] = 0
    reg.skip_intercept_[...] = 0
    np.testing.assert_allclose(reg.predict(X), without, rtol=1e-4, atol=1e-4)


def test_a_second_fit_starts_a_new_skip_and_warm_start_keeps_it():
    reg, X, y = _fitted()
    first = reg.skip_coef_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X[::-1][:60], y[::-1][:60])                       # a new network, new data
        assert not np.array_equal(reg.skip_coef_, first)
        kept = reg.skip_coef_.copy()
        reg.set_params(warm_start=True, max_iter=1).fit(X, y)
    assert reg.skip_coef_.shape == kept.shape and not np.array_equal(reg.skip_coef_, kept)
    with pytest.raises(ValueError, match="linear_skip"):
        reg.set_params(linear_skip=False).fit(X, y)


def test_stream_gives_predict_with_the_skip():
    reg, X, _ = _fitted(three_d=True)
    s = reg.stream(n_streams=3)
    parts = [s.update(X[:3, :2]), s.update(X[:3, 2:5])]      # shorter than skip_steps_ so far
    np.testing.assert_allclose(parts[1], reg.predict(X[:3, :5]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.update(X[:3, 5:]), reg.predict(X[:3]), rtol=1e-5, atol=1e-5)


def test_save_load_keeps_the_skip_and_refuses_a_broken_one(tmp_path):
    reg, X, _ = _fitted()
    path = os.path.join(tmp_path, "m.npz")
    reg.save(path)
    loaded = numgru.load(path)
    assert loaded.skip_steps_ == reg.skip_steps_
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    fitted, arrays = reg._get_fitted_state()
    for broken, match in [({"skip_intercept": None}, "'skip_intercept' is missing"),
                          ({"skip_coef": np.zeros((2, 8))}, "'skip_coef' has shape"),
                          ({"skip_coef": np.full((1, 8), np.nan)}, "skip_coef")]:
        bad = dict(arrays)
        for name, value in broken.items():
            if value is None:
                bad.pop(name)
            else:
                bad[name] = value
        with pytest.raises(ValueError, match=match):
            GRURegressor(**reg.get_params())._set_fitted_state(fitted, bad)


def test_onnx_export_includes_the_skip():
    ort = pytest.importorskip("onnxruntime")
    from numgru.onnx import to_onnx
    reg, X, _ = _fitted()
    lengths = np.array([8, 5, 3, 8, 1, 2])
    for with_lengths in (False, True):
        session = ort.InferenceSession(to_onnx(reg, lengths=with_lengths).SerializeToString())
        feed = {"X": X[:6, :, None].astype(np.float32)}
        if with_lengths:
            feed["lengths"] = lengths
        got = session.run(None, feed)[0].ravel()
        want = reg.predict(X[:6], lengths=lengths if with_lengths else None)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the held-out part and the
# choice between the network and the ridge model alone (linear_skip="auto")

def _standardised_ridge(X, y, rows):
    """Oracle: scikit-learn's RidgeCV on ``rows`` of the windows, both standardised with the
    mean and standard deviation of all of them (as the regressor standardises its input)."""
    mx, sx, my, sy = X.mean(), X.std(), y.mean(), y.std()
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit((X[rows] - mx) / sx, (y[rows] - my) / sy)
    return ridge, lambda Xn: ridge.predict((Xn - mx) / sx) * sy + my


def test_early_stopping_holds_out_the_last_sequences():
    """validation_holdout="last": the skip is the ridge model of the first 90% of the windows,
    and the epoch's validation score is the R^2 of the last 10% (ceil(0.1 * 160) = 16)."""
    from sklearn.metrics import r2_score
    X, y = _series_windows()
    reg = GRURegressor(hidden_layer_sizes=(4,), max_iter=1, learning_rate_init=1e-12,
                       early_stopping=True, linear_skip=True, dtype="float64", random_state=0,
                       verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y)
    ridge, predict = _standardised_ridge(X, y, np.arange(144))
    np.testing.assert_allclose(reg.skip_coef_[0], ridge.coef_, rtol=1e-6, atol=1e-9)
    assert reg.validation_scores_[0] == pytest.approx(r2_score(y[144:], reg.predict(X[144:])),
                                                      rel=1e-9)
    assert reg.validation_scores_[0] == pytest.approx(r2_score(y[144:], predict(X[144:])),
                                                      rel=1e-6)


def _wrecking(**params):
    """A regressor whose training can only spoil its ridge start: Adam at a learning rate of
    0.5 on a random walk, whose best one-step forecast is linear in the window (in batches of
    32: smaller ones take enough steps at that rate to diverge, and the divergence guard then
    restores the start, which is not the spoilt joint model this needs)."""
    return GRURegressor(hidden_layer_sizes=(8,), max_iter=5, learning_rate_init=0.5, batch_size=32,
                        dtype="float64", random_state=0, verbose=0, **params)


def _fit_quietly(reg, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reg.fit(X, y)


@pytest.mark.parametrize("n, early_stopping, trained_on", [
    (160, "auto", 144),      # early stopping: the first 144 windows, 16 held out
    (160, True, 144),
    (24, "auto", 24),        # 3 held out only choose: the ridge model refitted on all 24
])
def test_auto_keeps_the_ridge_model_alone_when_the_network_does_not_beat_it(n, early_stopping,
                                                                            trained_on):
    """Where training only spoils the start, "auto" ends at the ridge model (RidgeCV's
    predictions, the head at zero) of the windows it trains on. linear_skip=True keeps the
    spoilt joint model."""
    X, y = _series_windows(n=n)
    reg = _fit_quietly(_wrecking(early_stopping=early_stopping), X, y)
    ridge, predict = _standardised_ridge(X, y, np.arange(trained_on))
    assert not reg.head_coef_.any() and not reg.head_intercept_.any()
    np.testing.assert_allclose(reg.skip_coef_[0], ridge.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(reg.predict(X), predict(X), rtol=1e-6)
    joint = _fit_quietly(_wrecking(early_stopping=early_stopping, linear_skip=True), X, y)
    assert joint.head_coef_.any()
    assert np.mean((joint.predict(X) - y) ** 2) > np.mean((predict(X) - y) ** 2)


def test_auto_keeps_the_network_where_it_beats_the_ridge_model():
    """A target no linear model fits (the square of the last value): the network stays (its
    head is not zero), and the fit scores above the ridge model alone on the windows."""
    from sklearn.metrics import r2_score
    rng = np.random.default_rng(3)
    n = 160
    X = rng.standard_normal((n, 6))
    y = X[:, -1] ** 2
    reg = _fit_quietly(GRURegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01,
                                    max_iter=150, dtype="float64", random_state=0, verbose=0),
                       X, y)
    _, predict = _standardised_ridge(X, y, np.arange(n))
    assert reg.head_coef_.any()
    assert r2_score(y, reg.predict(X)) > r2_score(y, predict(X)) + 0.3


@pytest.mark.parametrize("n, linear_skip, holds_out", [
    (24, "auto", True),       # ceil(2.4) = 3 held out: the ridge model is a candidate
    (11, "auto", True),       # ceil(1.1) = 2
    (10, "auto", False),      # 1: too few to score
    (24, False, False),       # without the skip the base rule: 5 held out or more
    (24, True, False),
])
def test_auto_early_stopping_from_two_held_out_sequences_with_the_auto_skip(n, linear_skip,
                                                                           holds_out):
    X, y = _series_windows(n=n)
    reg = _fit_quietly(GRURegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                                    verbose=0, linear_skip=linear_skip), X, y)
    assert (reg.validation_scores_ is not None) == holds_out


def test_a_small_held_out_part_chooses_and_the_choice_is_refitted_on_all_sequences():
    """40 sequences hold out 4 (fewer than early stopping's 5): the network won there at its
    best epoch b, and the fitted model is a network trained b epochs on all 40 (t_ counts
    the sequences of every epoch), its validation scores those of the choice."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6))
    y = np.abs(X[:, -1])
    reg = _fit_quietly(GRURegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01,
                                    max_iter=60, dtype="float64", random_state=0, verbose=0),
                       X, y)
    best = int(np.argmax(reg.validation_scores_)) + 1
    assert reg.head_coef_.any()
    assert len(reg.validation_scores_) > best
    assert reg.n_iter_ == len(reg.loss_curve_) == best
    assert reg.t_ == best * 40
