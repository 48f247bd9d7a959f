"""Streaming inference (est.stream): chunks of a sequence give what predict gives on the whole."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from numgru import GRUClassifier, GRURegressor

RNG = np.random.default_rng(0)
X3 = RNG.standard_normal((6, 11, 2))
CHUNKS = [1, 3, 2, 5]                       # 11 steps


def fit(make, y, X=X3, **kw):
    params = dict(hidden_layer_sizes=(4, 3), max_iter=2, random_state=0, dtype="float64")
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(**params).fit(X, y)


def feed(s, X, chunks, **kw):
    outs, t0 = [], 0
    for c in chunks:
        outs.append(s.update(X[:, t0:t0 + c], **kw))
        t0 += c
    return outs


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_sequence_regressor_stream_equals_predict_on_the_prefix(pooling):
    reg = fit(GRURegressor, X3[:, :, 0].sum(axis=1), pooling=pooling, dropout=0.3)
    s = reg.stream(n_streams=6)
    t = 0
    for out, c in zip(feed(s, X3, CHUNKS), CHUNKS):
        t += c
        np.testing.assert_allclose(out, reg.predict(X3[:, :t]), rtol=1e-10, atol=1e-12)
    assert s.n_steps_ == 11


def test_each_step_models_stream_per_step_predictions():
    y = np.cumsum(X3[:, :, 0], axis=1)
    reg = fit(GRURegressor, y, output="each_step", reset_after=False)
    got = np.concatenate(feed(reg.stream(6), X3, CHUNKS), axis=1)
    np.testing.assert_allclose(got, reg.predict(X3), rtol=1e-10, atol=1e-12)
    labels = (y > 0).astype(int)
    clf = fit(GRUClassifier, labels, output="each_step")
    s = clf.stream(6)
    np.testing.assert_array_equal(np.concatenate(feed(s, X3, CHUNKS), axis=1), clf.predict(X3))
    s.reset()
    proba = np.concatenate(feed(s, X3, CHUNKS, proba=True), axis=1)
    np.testing.assert_allclose(proba, clf.predict_proba(X3), rtol=1e-10, atol=1e-12)


def test_one_stream_takes_2d_chunks_and_reset_forgets_history():
    clf = fit(GRUClassifier, (X3[:, :, 0].sum(axis=1) > 0).astype(int))
    s = clf.stream()
    first = s.update(X3[2, :4], proba=True)
    np.testing.assert_allclose(first, clf.predict_proba(X3[2:3, :4]), rtol=1e-10)
    s.update(X3[2, 4:])
    s.reset()
    np.testing.assert_allclose(s.update(X3[2, :4], proba=True), first, rtol=0, atol=0)


def test_univariate_2d_models_stream_1d_chunks():
    X2 = RNG.standard_normal((8, 9))
    reg = fit(GRURegressor, X2.sum(axis=1), X=X2)
    s = reg.stream()
    s.update(X2[0, :4])
    np.testing.assert_allclose(s.update(X2[0, 4:]), reg.predict(X2[:1]), rtol=1e-10)


def test_float32_stream_matches_predict():
    reg = fit(GRURegressor, X3[:, :, 0].sum(axis=1), dtype="float32")
    s = reg.stream(6)
    out = feed(s, X3, CHUNKS)[-1]
    np.testing.assert_allclose(out, reg.predict(X3), rtol=1e-5, atol=1e-6)


def test_stream_errors_name_the_problem():
    with pytest.raises(NotFittedError):
        GRURegressor().stream()
    reg = fit(GRURegressor, X3[:, :, 0].sum(axis=1))
    with pytest.raises(ValueError, match="n_streams must be a positive integer"):
        reg.stream(0)
    s = reg.stream(2)
    with pytest.raises(ValueError, match="3 streams but this stream was made with n_streams=2"):
        s.update(X3[:3, :2])
    with pytest.raises(ValueError, match="3 features per step"):
        s.update(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        s.update(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="proba=True is for classifiers"):
        s.update(X3[:2, :2], proba=True)
    bi = fit(GRURegressor, X3[:, :, 0].sum(axis=1), bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional model cannot stream"):
        bi.stream()
