"""GRURegressor / GRUClassifier: learning, sklearn compatibility, persistence, robustness."""

import pickle
import threading
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import numgru
from numgru import GRUClassifier, GRURegressor
from numgru.datasets import make_sequence_classification

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def seq_data():
    X, y = make_sequence_classification(n_samples=300, min_length=10, max_length=40,
                                        random_state=0)
    return X, y


def adding_problem(n, T, rng):
    """The adding problem: sum the two values marked in the second channel."""
    X = np.zeros((n, T, 2))
    X[:, :, 0] = rng.uniform(0, 1, (n, T))
    for i in range(n):
        a, b = rng.choice(T, 2, replace=False)
        X[i, [a, b], 1] = 1
    y = (X[:, :, 0] * X[:, :, 1]).sum(axis=1)
    return X, y


# ----------------------------------------------------------------------------- learning
def test_classifier_learns_variable_length_sequences(seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=20,
                        batch_size=32, clip_grad_norm=None, random_state=0).fit(X[:240], y[:240])
    assert clf.score(X[240:], y[240:]) > 0.85
    assert clf.predict_proba(X[240:]).shape == (60, 3)
    assert np.allclose(clf.predict_proba(X[:5]).sum(axis=1), 1)
    assert clf.n_iter_ == 20 and len(clf.loss_curve_) == 20
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_regressor_solves_adding_problem():
    rng = np.random.default_rng(0)
    X, y = adding_problem(600, 20, rng)
    reg = GRURegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=40,
                       batch_size=32, random_state=0).fit(X[:500], y[:500])
    mse = np.mean((reg.predict(X[500:]) - y[500:]) ** 2)
    assert mse < 0.05 < np.var(y[500:])   # predicting the mean would give var(y) ~ 0.17


def test_stack_of_different_sizes_bidirectional_mean_pooling(seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(24, 16, 8), bidirectional=True, pooling="mean",
                        dropout=0.1, learning_rate_init=0.01, max_iter=15, batch_size=32,
                        random_state=0).fit(X[:240], y[:240])
    assert [g.hidden_size for g in clf.grus_] == [24, 16, 8]
    assert clf.grus_[1].input_size == 48
    assert clf.score(X[240:], y[240:]) > 0.7


def test_each_step_sequence_labelling_with_ragged_lists():
    rng = np.random.default_rng(1)
    X = [rng.standard_normal((int(rng.integers(5, 15)), 1)) for _ in range(200)]
    Y = [(np.cumsum(x[:, 0]) > 0).astype(int) for x in X]     # label: running sum positive
    clf = GRUClassifier(hidden_layer_sizes=(16,), output="each_step", learning_rate_init=0.02,
                        max_iter=40, batch_size=32, random_state=0).fit(X[:160], Y[:160])
    pred = clf.predict(X[160:])
    assert isinstance(pred, list) and all(p.shape == y.shape for p, y in zip(pred, Y[160:]))
    assert clf.score(X[160:], Y[160:]) > 0.9


def test_each_step_regression_on_3d_arrays():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 12, 1))
    Y = np.cumsum(X[:, :, 0], axis=1) / 3
    reg = GRURegressor(hidden_layer_sizes=(16,), output="each_step", learning_rate_init=0.01,
                       max_iter=60, batch_size=32, random_state=0).fit(X[:160], Y[:160])
    assert reg.predict(X[160:]).shape == (40, 12)
    assert reg.score(X[160:], Y[160:]) > 0.8


def test_univariate_2d_input_is_read_as_sequences():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 8))
    y = X.sum(axis=1)
    reg = GRURegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=30,
                       random_state=0).fit(X, y)
    assert reg.n_features_in_ == 8 and reg.grus_[0].input_size == 1
    np.testing.assert_allclose(reg.predict(X), reg.predict(X[:, :, None]), rtol=1e-6)


def test_ragged_list_of_equal_lengths_equals_3d_array():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 6, 2))
    y = rng.integers(0, 2, 40)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, shuffle=False)
    a = GRUClassifier(**kw).fit(X, y)
    b = GRUClassifier(**kw).fit(list(X), y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(list(X)))


def test_padding_does_not_change_a_sequences_prediction():
    rng = np.random.default_rng(5)
    X = [rng.standard_normal((int(n), 2)) for n in rng.integers(3, 12, 30)]
    y = rng.integers(0, 2, 30)
    clf = GRUClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    together = clf.predict_proba(X)
    alone = np.vstack([clf.predict_proba([x]) for x in X])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver", ["sgd", "rmsprop", "adam"])
def test_every_solver_reduces_the_loss(solver, seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(16,), solver=solver, learning_rate_init=0.01,
                        max_iter=8, batch_size=32, random_state=0, alpha=1e-3,
                        clip_grad_norm=5.0).fit(X[:200], y[:200])
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_early_stopping_records_validation_and_restores_best(seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=3,
                        learning_rate_init=0.01, max_iter=50, batch_size=32,
                        random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


# ----------------------------------------------------------------------------- sklearn API
def test_check_estimator_classifier():
    from sklearn.utils.estimator_checks import check_estimator

    # float64: scikit-learn compares predictions of subsets at rtol 1e-7, below float32's
    # resolution when a batch's size picks another product path
    check_estimator(GRUClassifier(hidden_layer_sizes=(16,), random_state=0, dtype="float64"),
                    expected_failed_checks=EXPECTED_FAILURES)


def test_check_estimator_regressor():
    from sklearn.utils.estimator_checks import check_estimator

    # early_stopping=False: check_regressors_train asserts a training R^2 > 0.5 on 200 noisy
    # samples, and early_stopping="auto" stops a regressor on its held-out score instead
    check_estimator(GRURegressor(random_state=0, dtype="float64", early_stopping=False),
                    expected_failed_checks=EXPECTED_FAILURES)


EXPECTED_FAILURES = {
    # as for sklearn's own MLPClassifier/MLPRegressor: minibatch stochastic training with a
    # weighted sample is not the same computation as training on a duplicated sample
    "check_sample_weight_equivalence_on_dense_data":
        "sample_weight is not equivalent to removing/repeating samples in minibatch training",
}


def test_pipeline_gridsearch_clone_cross_val(seq_data):
    X = np.random.default_rng(0).standard_normal((60, 5, 2))
    y = (X[:, :, 0].mean(axis=1) > 0).astype(int)
    pipe = make_pipeline(FunctionTransformer(lambda a: a * 2.0),
                         GRUClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0))
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (60,)
    gs = GridSearchCV(GRUClassifier(max_iter=2, random_state=0),
                      {"hidden_layer_sizes": [(4,), (8,)]}, cv=2, n_jobs=2).fit(X, y)
    assert gs.best_params_["hidden_layer_sizes"] in [(4,), (8,)]
    scores = cross_val_score(GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0),
                             X, y, cv=3)
    assert scores.shape == (3,)
    c = clone(gs.best_estimator_)
    assert not hasattr(c, "grus_")


def test_reproducible_under_random_state(seq_data):
    X, y = seq_data
    kw = dict(hidden_layer_sizes=(8,), dropout=0.2, max_iter=3, random_state=7)
    a = GRUClassifier(**kw).fit(X[:100], y[:100])
    b = GRUClassifier(**kw).fit(X[:100], y[:100])
    for p, q in zip(a._params(), b._params()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_concurrent_predict_is_safe_and_identical(seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(32,), max_iter=2, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    results, errors = [None] * 6, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = clf.predict_proba(X)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_verbose_prints_one_line_per_epoch(capsys, seq_data):
    X, y = seq_data
    GRUClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=1, random_state=0).fit(X[:50], y[:50])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Iteration")]
    assert len(lines) == 3 and "loss = " in lines[0]


# ----------------------------------------------------------------------------- persistence
def test_pickle_and_save_load_round_trips_are_bit_identical(tmp_path, seq_data):
    X, y = seq_data
    labels = np.array(["slow", "fast", "walk"])[y]
    clf = GRUClassifier(hidden_layer_sizes=(8, 4), bidirectional=True, max_iter=2,
                        random_state=0).fit(X[:100], labels[:100])
    p = clf.predict_proba(X)
    clf2 = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf2.predict_proba(X), p)
    path = tmp_path / "model.npz"
    clf.save(path)
    with np.load(path, allow_pickle=False) as f:      # opening the file needs no pickle
        assert "__meta__" in f.files
    clf3 = numgru.load(path)
    np.testing.assert_array_equal(clf3.predict_proba(X), p)
    assert list(clf3.predict(X[:5])) == list(clf.predict(X[:5]))
    reg = GRURegressor(hidden_layer_sizes=(4,), reset_after=False, max_iter=2,
                       random_state=0).fit(X[:50], y[:50].astype(float))
    reg.save(tmp_path / "reg.npz")
    np.testing.assert_array_equal(numgru.load(tmp_path / "reg.npz").predict(X), reg.predict(X))


def test_corrupt_or_foreign_model_files_raise(tmp_path, seq_data):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable numgru model file"):
        numgru.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a numgru model file"):
        numgru.load(other)
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X[:30], y[:30])
    path = tmp_path / "m.npz"
    clf.save(path)
    with np.load(path) as f:
        arrays = dict(f)
    import json
    meta = json.loads(str(arrays["__meta__"]))
    meta["version"] = 999
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="version"):
        numgru.load(tmp_path / "future.npz")


def test_class_weight_with_number_keys_survives_save_load(tmp_path, seq_data):
    """JSON keys are strings: class_weight={0: ..., 1: ...} must come back with int keys, so
    that the loaded model refits (it raised "classes [0, 1] are not in class_weight")."""
    X, y = seq_data[0][:60], np.asarray(seq_data[1])[:60]
    weights = {0: 1.0, 1: 3.0, 2: 2.0}
    clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                        class_weight=weights).fit(X, y)
    clf.save(tmp_path / "c.npz")
    loaded = numgru.load(tmp_path / "c.npz")
    assert loaded.class_weight == weights
    assert all(type(k) is int for k in loaded.class_weight)
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.fit(X, y).predict_proba(X), clf.fit(X, y).predict_proba(X))


def test_save_before_fit_raises(tmp_path):
    with pytest.raises(NotFittedError):
        GRUClassifier().save(tmp_path / "x.npz")


# ----------------------------------------------------------------------------- robustness
def test_bad_input_errors(seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    Xn = np.zeros((10, 5, 3))
    Xn[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, np.arange(10) % 2)
    with pytest.raises(ValueError, match="zero-length"):
        clf.fit([np.zeros((3, 2)), np.zeros((0, 2))], [0, 1])
    with pytest.raises(ValueError, match="same number of features"):
        clf.fit([np.zeros((3, 2)), np.zeros((4, 3))], [0, 1])
    with pytest.raises(ValueError, match="4-D"):
        clf.fit(np.zeros((4, 2, 2, 2)), [0, 1, 0, 1])
    clf.fit(X[:40], y[:40])
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((2, 5, 7)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        GRURegressor(max_iter=1).fit(np.zeros((5, 3, 1)), np.zeros(4))


def test_partial_fit_classes_and_unseen_labels(seq_data):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(4,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:20], y[:20])
    clf.partial_fit(X[:20], y[:20], classes=[0, 1, 2])
    clf.partial_fit(X[20:40], y[20:40])
    assert clf.n_iter_ == 2
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X[:5], np.array([0, 1, 2, 5, 0]))


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("dtype, scale", [("float32", 1e30), ("float64", 1e200)])
def test_divergence_restores_finite_weights_and_warns(dtype, scale, standardize):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 5, 1)) * 1e3
    y = rng.standard_normal(50) * scale
    # no clipping: clipped (the default, a norm summed in float64) these steps stay finite
    reg = GRURegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1e6, max_iter=20,
                       random_state=0, dtype=dtype, standardize=standardize, clip_grad_norm=None)
    with pytest.warns(RuntimeWarning, match="NaN or infinite|diverged"):
        reg.fit(X, y)
    assert np.isfinite(reg.predict(X)).all()
    assert all(np.isfinite(p).all() for p in reg._params())


def test_keyboard_interrupt_keeps_a_usable_model(seq_data, monkeypatch):
    X, y = seq_data
    clf = GRUClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    from numgru import _optim

    calls = {"n": 0}
    original = _optim.AdamOptimizer._fused         # the loop's update (numgru._optim.fused_step)

    def interrupting(self, *args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(_optim.AdamOptimizer, "_fused", interrupting)
    with pytest.raises(KeyboardInterrupt):          # passed on: a script or a search stops
        clf.fit(X[:100], y[:100])
    assert clf.n_iter_ < 50
    assert clf.predict(X[:10]).shape == (10,)


def test_convergence_warning_when_max_iter_reached(seq_data):
    X, y = seq_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X[:40], y[:40])


def test_ragged_list_and_padded_array_with_lengths_give_the_same_model():
    rng = np.random.default_rng(6)
    lengths = rng.integers(3, 12, 50)
    X = [rng.standard_normal((int(n), 2)) for n in lengths]
    y = rng.integers(0, 3, 50)
    padded = rng.standard_normal((50, int(lengths.max()), 2)) * 5   # garbage in the padding
    for i, x in enumerate(X):
        padded[i, : len(x)] = x
    kw = dict(hidden_layer_sizes=(8, 6), bidirectional=True, max_iter=3, random_state=0)
    a = GRUClassifier(**kw).fit(X, y)
    b = GRUClassifier(**kw).fit(padded, y, lengths=lengths)
    for p, q in zip(a._params(), b._params()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(padded, lengths=lengths))
    with pytest.raises(ValueError, match="lengths must lie in"):
        b.predict(padded, lengths=np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="ragged list already carries"):
        b.predict(X, lengths=lengths)


def test_each_step_with_padded_array_and_lengths():
    rng = np.random.default_rng(7)
    lengths = rng.integers(4, 10, 60)
    X = rng.standard_normal((60, 9, 1))
    Y = np.cumsum(X[:, :, 0], axis=1)
    reg = GRURegressor(hidden_layer_sizes=(8,), output="each_step", max_iter=3,
                       random_state=0).fit(X, Y, lengths=lengths)
    pred = reg.predict(X, lengths=lengths)
    assert pred.shape == (60, 9)
    assert np.all(pred[np.arange(9)[None, :] >= lengths[:, None]] == 0)
    # every length shorter than the padded array: still the input's T steps, zeros past each
    short = np.minimum(lengths, 6)
    pred = reg.predict(X, lengths=short)
    assert pred.shape == (60, 9)
    assert np.all(pred[:, 6:] == 0)
    np.testing.assert_allclose(pred[:, :6], reg.predict(X[:, :6], lengths=short), rtol=1e-12)
    clf = GRUClassifier(hidden_layer_sizes=(8,), output="each_step", max_iter=2,
                        random_state=0).fit(X, (Y > 0).astype(int), lengths=lengths)
    assert clf.predict(X, lengths=short).shape == (60, 9)
    assert clf.predict_proba(X, lengths=short).shape == (60, 9, 2)


def test_dtype_auto_follows_the_input_like_mlp():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((30, 4, 2))
    y = rng.integers(0, 2, 30)
    kw = dict(hidden_layer_sizes=(4,), max_iter=1, random_state=0, dtype="auto")
    assert GRUClassifier(**kw).fit(X, y).grus_[0].dtype == np.float64
    assert GRUClassifier(**kw).fit(X.astype(np.float32), y).grus_[0].dtype == np.float32
    assert GRUClassifier(**{**kw, "dtype": "float32"}).fit(X, y).grus_[0].dtype == np.float32
    assert GRUClassifier(**kw).fit([x.astype(np.float32) for x in X], y).grus_[0].dtype == np.float32


# ----------------------------------------------------------------------------- score per step
def _each_step_data(seed=11, n=40, T=8):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, T + 1, n)
    X = [rng.standard_normal((int(k), 1)) for k in lengths]
    y_clf = [(np.cumsum(x[:, 0]) > 0).astype(int) for x in X]
    y_reg = [np.cumsum(x[:, 0]) / 3 for x in X]
    return X, lengths, y_clf, y_reg, rng.uniform(0.1, 3.0, n)


def test_classifier_each_step_score_honours_sample_weight():
    X, lengths, y, _, w = _each_step_data()
    clf = GRUClassifier(hidden_layer_sizes=(4,), output="each_step", max_iter=2,
                        random_state=0).fit(X, y)
    pred = np.concatenate(clf.predict(X))
    truth = np.concatenate(y)
    per_step = np.repeat(w, lengths)                 # each sequence's weight on each of its steps
    expected = np.sum(per_step * (pred == truth)) / per_step.sum()
    assert clf.score(X, y, sample_weight=w) == pytest.approx(expected, rel=1e-12)
    assert clf.score(X, y) == np.mean(pred == truth)
    assert clf.score(X, y, sample_weight=np.ones(len(X))) == clf.score(X, y)
    assert clf.score(X, y, sample_weight=w) != clf.score(X, y)
    # weight only on the sequences that are predicted right at every step: accuracy 1
    right = np.array([np.array_equal(p, t) for p, t in zip(clf.predict(X), y)])
    assert right.any() and not right.all()
    assert clf.score(X, y, sample_weight=right.astype(float)) == 1.0
    # a 3-D array with per-step labels (n, T) gives the same as the list of its rows
    Xa = np.stack([np.resize(x, (8, 1)) for x in X])
    ya = (np.cumsum(Xa[:, :, 0], axis=1) > 0).astype(int)
    pa = clf.predict(Xa)
    wa = np.repeat(w[:, None], 8, axis=1)
    assert clf.score(Xa, ya, sample_weight=w) == pytest.approx(
        np.sum(wa * (pa == ya)) / wa.sum(), rel=1e-12)
    assert clf.score(Xa, ya, sample_weight=w) == clf.score(list(Xa), list(ya), sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.score(X, y, sample_weight=w[:-1])


def test_regressor_each_step_score_is_weighted_r2_over_valid_steps():
    from sklearn.metrics import r2_score

    X, lengths, _, y, w = _each_step_data()
    reg = GRURegressor(hidden_layer_sizes=(4,), output="each_step", learning_rate_init=0.01,
                       max_iter=5, random_state=0).fit(X, y)
    pred = np.concatenate(reg.predict(X))
    truth = np.concatenate(y)
    per_step = np.repeat(w, lengths)
    assert reg.score(X, y) == pytest.approx(r2_score(truth, pred), rel=1e-12)
    assert reg.score(X, y, sample_weight=w) == pytest.approx(
        r2_score(truth, pred, sample_weight=per_step), rel=1e-12)
    assert reg.score(X, y, sample_weight=w) != pytest.approx(reg.score(X, y), rel=1e-6)
    assert reg.score(X, y, sample_weight=np.ones(len(X))) == reg.score(X, y)
    # as the validation score of early stopping computes it
    Xp, Lp = reg._input(X, reset=False)
    Yp = numgru._data.step_targets(y, Lp)[:, :, None]
    Yp = (Yp - reg.target_mean_) / reg.target_scale_       # the encoded (standardised) targets
    assert reg.score(X, y, sample_weight=w) == pytest.approx(
        reg._score_arrays(Xp, Lp, Yp, w), rel=1e-6)
    # padded 3-D targets (the padding is ignored) and targets with more columns than X
    Ya = np.zeros((len(X), 8))
    for i, t in enumerate(y):
        Ya[i, : len(t)] = t
    Xa = np.stack([np.resize(x, (8, 1)) for x in X])
    assert reg.score(Xa, np.hstack([Ya, np.ones((len(X), 3))])) == reg.score(Xa, Ya)
    # a ragged list whose first sequence is integer-valued keeps the others' fractions
    yi = [np.round(y[0]).astype(int)] + y[1:]
    truth_i = np.concatenate([np.asarray(t, dtype=float) for t in yi])
    assert reg.score(X, yi) == pytest.approx(r2_score(truth_i, pred), rel=1e-12)


def test_each_step_score_of_an_unfitted_model_raises_not_fitted():
    X, _, yc, yr, _ = _each_step_data()
    with pytest.raises(NotFittedError):
        GRURegressor(output="each_step").score(X, yr)
    with pytest.raises(NotFittedError):
        GRUClassifier(output="each_step").score(X, yc)


# ----------------------------------------------------------------------------- fit structure
def test_fit_leaves_no_training_scratch_state(seq_data):
    X, y = seq_data
    for early in (False, True):
        clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=3, early_stopping=early,
                            random_state=0).fit(X[:60], y[:60])
        assert not hasattr(clf, "_best_params")
        assert len(clf.loss_curve_) == clf.n_iter_ == 3


def test_partial_fit_epochs_continue_a_fit_like_warm_start_epochs():
    """fit + partial_fit == fit with warm_start + one more epoch when neither shuffles:
    both continue from the same weights with the state of the same random streams."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((30, 5, 2))
    y = X[:, :, 0].sum(axis=1)
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0, solver="sgd",
              momentum=0.0, shuffle=False, dropout=0.0)
    a = GRURegressor(**kw).fit(X, y)
    a.partial_fit(X, y)
    b = GRURegressor(warm_start=True, **kw).fit(X, y)
    b.set_params(max_iter=1)
    b.fit(X, y)
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_ == 3
    for p, q in zip(a._params(), b._params()):
        np.testing.assert_array_equal(p, q)


# ----------------------------------------------------------------------------- fitted state
def test_fitted_state_round_trips_without_a_file(seq_data):
    X, y = seq_data
    labels = np.array(["slow", "fast", "walk"], dtype=object)[y]
    clf = GRUClassifier(hidden_layer_sizes=(5, 3), bidirectional=True, max_iter=2,
                        early_stopping=True, random_state=0, dtype="auto").fit(X[:80], labels[:80])
    fitted, arrays = clf._get_fitted_state()
    import json
    assert json.loads(json.dumps(fitted)) == fitted             # JSON-able as it is
    assert fitted["_dtype"] == "float64" and fitted["loss_curve_"] == clf.loss_curve_
    assert sorted(arrays) == sorted(
        [f"gru{i}.{k}{s}" for i in range(2) for k in ("weight_ih_l0", "weight_hh_l0",
                                                     "bias_ih_l0", "bias_hh_l0")
         for s in ("", "_reverse")] + ["head_coef", "head_intercept", "classes", "input_mean",
                                         "input_scale"])
    other = GRUClassifier(**clf.get_params())
    other._set_fitted_state(fitted, arrays)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    assert list(other.predict(X[:5])) == list(clf.predict(X[:5]))
    assert other.validation_scores_ == clf.validation_scores_
    with pytest.raises(ValueError, match="missing"):
        GRUClassifier(**clf.get_params())._set_fitted_state(
            {k: v for k, v in fitted.items() if k != "_n_inputs"}, arrays)
    with pytest.raises(NotFittedError):
        GRUClassifier()._get_fitted_state()


def test_io_module_does_not_import_the_estimators():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(numgru.io))
    imported = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for a in node.names]
    imported += [f"{node.module}.{a.name}" if node.module else a.name
                 for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names]
    assert not [m for m in imported if "estimators" in m or m in ("gru", "GRU")]
    assert numgru.io._ESTIMATOR_CLASSES == {"GRURegressor": GRURegressor,
                                            "GRUClassifier": GRUClassifier,
                                            "GRULanguageModel": numgru.GRULanguageModel}


def _old_format_file(path, est, classes=None, classes_object=False):
    """A model file laid out by hand as numgru's first save() wrote it (format version 1)."""
    import json

    params = est.get_params()
    params["hidden_layer_sizes"] = list(params["hidden_layer_sizes"])
    fitted = {name: getattr(est, name) for name in (
        "n_features_in_", "n_outputs_", "n_iter_", "t_", "loss_", "loss_curve_", "best_loss_",
        "validation_scores_", "best_validation_score_", "out_activation_", "_input_kind",
        "_n_inputs", "_single_output") if hasattr(est, name)}
    fitted["_dtype"] = est._dtype.name
    meta = {"format": "numgru-estimator", "version": 1, "class": type(est).__name__,
            "params": params, "fitted": fitted}
    arrays = {}
    for i, gru in enumerate(est.grus_):
        for name, value in gru.state_dict().items():
            arrays[f"gru{i}.{name}"] = value
    arrays["head_coef"], arrays["head_intercept"] = est.head_coef_, est.head_intercept_
    if classes is not None:
        arrays["classes"] = classes
        if classes_object:
            meta["classes_object"] = True
    arrays["__meta__"] = np.array(json.dumps(meta, default=float))
    np.savez(path, **arrays)


def test_files_in_the_first_format_load(tmp_path):
    rng = np.random.default_rng(13)
    X = rng.standard_normal((30, 6, 2))
    labels = np.array(["ab", "c", "de"], dtype=object)[rng.integers(0, 3, 30)]
    clf = GRUClassifier(hidden_layer_sizes=(4, 3), bidirectional=True, max_iter=2,
                        random_state=0, standardize=False).fit(X, labels)   # as models were then
    _old_format_file(tmp_path / "clf.npz", clf, clf.classes_.astype(str), classes_object=True)
    loaded = numgru.load(tmp_path / "clf.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.classes_.dtype == object and list(loaded.classes_) == ["ab", "c", "de"]
    reg = GRURegressor(hidden_layer_sizes=(3,), output="each_step", reset_after=False,
                       max_iter=2, random_state=0, dtype="float32",
                       standardize=False).fit(X, np.cumsum(X, axis=1))
    _old_format_file(tmp_path / "reg.npz", reg)
    loaded = numgru.load(tmp_path / "reg.npz")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    assert loaded.predict(X).shape == (30, 6, 2) and loaded.loss_curve_ == reg.loss_curve_
    # and save() still writes that layout (the same arrays and metadata), plus the
    # standardisation, which files of the first format lack (they load as the identity)
    reg.save(tmp_path / "new.npz")
    with np.load(tmp_path / "reg.npz") as old, np.load(tmp_path / "new.npz") as new:
        assert sorted(old.files + ["input_mean", "input_scale", "target_mean",
                                   "target_scale"]) == sorted(new.files)
        import json
        assert json.loads(str(old["__meta__"])) == json.loads(str(new["__meta__"]))
        for k in old.files:
            np.testing.assert_array_equal(old[k], new[k])


def test_corrupt_network_arrays_raise_value_error(tmp_path):
    rng = np.random.default_rng(14)
    X = rng.standard_normal((20, 4, 2))
    y = rng.integers(0, 2, 20)
    clf = GRUClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0).fit(X, y)
    clf.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        good = dict(f)

    def broken(change):
        arrays = dict(good)
        change(arrays)
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays)
        return path

    cases = [lambda a: a.pop("gru0.weight_hh_l0"),
             lambda a: a.update({"gru0.weight_ih_l0": np.zeros((9, 5))}),
             lambda a: a.update({"head_coef": np.zeros((2, 4))}),
             lambda a: a.update({"head_intercept": np.zeros(3)}),
             lambda a: a.pop("head_intercept"),
             lambda a: a.pop("classes"),
             lambda a: a.update({"classes": np.array([0, 1, 2])})]
    for change in cases:
        with pytest.raises(ValueError, match="corrupt numgru model file"):
            numgru.load(broken(change))
    import json
    meta = json.loads(str(good["__meta__"]))
    for edit in ({"class": "MLPClassifier"}, {"fitted": {}}, {"params": {"no_such": 1}}):
        arrays = dict(good)
        arrays["__meta__"] = np.array(json.dumps({**meta, **edit}))
        np.savez(tmp_path / "meta.npz", **arrays)
        with pytest.raises(ValueError, match="corrupt|unknown estimator class"):
            numgru.load(tmp_path / "meta.npz")


def test_saving_object_labels_that_are_not_strings_raises(tmp_path):
    rng = np.random.default_rng(15)
    X = rng.standard_normal((20, 4, 2))
    clf = GRUClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0)
    clf.fit(X, np.array(["a", "b"] * 10, dtype=object))
    clf.classes_ = clf._encoder.classes_ = np.array([1, "a"], dtype=object)  # as sklearn allows
    with pytest.raises(TypeError, match="class labels of mixed or object types"):
        clf.save(tmp_path / "x.npz")


# ----------------------------------------------------------------------------- cell="rnn_*"
@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu"])
def test_rnn_cells_fit_predict_save_load(cell, tmp_path):
    rng = np.random.default_rng(21)
    X = rng.standard_normal((40, 6, 2))
    labels = np.array(["lo", "hi"])[(X[:, :, 0].sum(axis=1) > 0).astype(int)]
    clf = GRUClassifier(hidden_layer_sizes=(5, 3), cell=cell, bidirectional=True, dropout=0.2,
                        max_iter=3, random_state=0).fit(X, labels)
    assert [type(layer) for layer in clf.layers_] == [numgru.RNN, numgru.RNN]
    assert [layer.nonlinearity for layer in clf.layers_] == [cell[4:]] * 2
    assert [layer.hidden_size for layer in clf.layers_] == [5, 3]
    assert clf.layers_[1].input_size == 10
    assert not hasattr(clf, "grus_")                   # grus_ is the GRU networks' name
    assert clf.layers_[0].state_dict()["weight_hh_l0"].shape == (5, 5)
    p = clf.predict_proba(X)
    assert p.shape == (40, 2) and np.allclose(p.sum(axis=1), 1)
    # persistence: pickle and the model file give bit-identical predictions
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), p)
    clf.save(tmp_path / "clf.npz")
    with np.load(tmp_path / "clf.npz", allow_pickle=False) as f:
        files = set(f.files)
    assert {"rnn0.weight_ih_l0", "rnn0.weight_hh_l0_reverse", "rnn1.bias_hh_l0"} <= files
    assert not any(name.startswith("gru") for name in files)
    loaded = numgru.load(tmp_path / "clf.npz")
    assert loaded.cell == cell
    np.testing.assert_array_equal(loaded.predict_proba(X), p)
    assert list(loaded.predict(X)) == list(clf.predict(X))
    # clone: same parameters, unfitted
    c = clone(clf)
    assert c.get_params()["cell"] == cell and not hasattr(c, "layers_")
    # a regressor, per-step output, float32
    reg = GRURegressor(hidden_layer_sizes=(4,), cell=cell, output="each_step", max_iter=2,
                       random_state=0, dtype="float32").fit(X, np.cumsum(X, axis=1))
    assert reg.layers_[0].dtype == np.float32 and reg.predict(X).shape == (40, 6, 2)
    reg.save(tmp_path / "reg.npz")
    np.testing.assert_array_equal(numgru.load(tmp_path / "reg.npz").predict(X), reg.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X))


def test_rnn_cell_learns_and_reset_after_is_ignored():
    rng = np.random.default_rng(0)
    X, y = adding_problem(200, 8, rng)
    # the network alone (the linear skip would start the loss at the ridge model's)
    kw = dict(hidden_layer_sizes=(16,), cell="rnn_tanh", learning_rate_init=0.01, max_iter=10,
              batch_size=32, random_state=0, early_stopping=False, linear_skip=False)
    reg = GRURegressor(**kw).fit(X, y)
    assert reg.loss_curve_[-1] < 0.5 * reg.loss_curve_[0]
    # reset_after configures the GRU only: the RNN network is the same whatever it says
    other = GRURegressor(reset_after=False, **kw).fit(X, y)
    np.testing.assert_array_equal(other.predict(X), reg.predict(X))


def test_gru_cell_is_the_default_and_keeps_its_file_names(tmp_path):
    rng = np.random.default_rng(22)
    X, y = rng.standard_normal((20, 4, 2)), rng.standard_normal(20)
    reg = GRURegressor(hidden_layer_sizes=(3, 2), max_iter=1, random_state=0).fit(X, y)
    assert reg.cell == "gru" and reg.get_params()["cell"] == "gru"
    assert [type(layer) for layer in reg.layers_] == [numgru.GRU, numgru.GRU]
    assert all(isinstance(g, numgru.GRU) for g in reg.grus_)
    reg.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert {n.split(".")[0] for n in f.files if "." in n} == {"gru0", "gru1"}
        # a file written before ``cell`` existed (no "cell" among its parameters) loads as gru
        arrays = dict(f)
    import json
    meta = json.loads(str(arrays["__meta__"]))
    del meta["params"]["cell"]
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    old = numgru.load(tmp_path / "old.npz")
    assert old.cell == "gru"
    np.testing.assert_array_equal(old.predict(X), reg.predict(X))


def test_invalid_cell_raises():
    from sklearn.utils._param_validation import InvalidParameterError

    X = np.zeros((4, 3, 2))
    with pytest.raises(InvalidParameterError, match="'cell' parameter"):
        GRURegressor(cell="lstm").fit(X, np.zeros(4))


def test_check_estimator_rnn_cell():
    """scikit-learn's checks with an RNN cell (small: the GRU regressor above covers the rest;
    ~80 s on a loaded 2-core machine)."""
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(GRURegressor(hidden_layer_sizes=(16,), cell="rnn_relu", random_state=0,
                                 dtype="float64", early_stopping=False),
                    expected_failed_checks=EXPECTED_FAILURES)


def test_score_takes_lengths_like_fit_and_predict():
    """score(X, y, lengths=...) scores what predict(X, lengths=...) predicts: pooled targets,
    and per-step targets over the valid steps only."""
    from sklearn.metrics import accuracy_score, r2_score

    rng = np.random.default_rng(21)
    n, T = 50, 9
    lengths = rng.integers(3, T + 1, n)
    X = rng.standard_normal((n, T, 2))
    X[np.arange(T)[None, :] >= lengths[:, None]] = 0
    y_last = X[np.arange(n), lengths - 1, 0]
    reg = GRURegressor(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    reg.fit(X, y_last, lengths=lengths)
    assert reg.score(X, y_last, lengths=lengths) == pytest.approx(
        r2_score(y_last, reg.predict(X, lengths=lengths)), rel=1e-12)
    assert reg.score(X, y_last, lengths=lengths) != reg.score(X, y_last)

    Y = np.cumsum(X[:, :, 0], axis=1)
    step = GRURegressor(hidden_layer_sizes=(6,), output="each_step", max_iter=3,
                        random_state=0).fit(X, Y, lengths=lengths)
    valid = np.arange(T)[None, :] < lengths[:, None]
    pred = step.predict(X, lengths=lengths)
    assert step.score(X, Y, lengths=lengths) == pytest.approx(r2_score(Y[valid], pred[valid]),
                                                              rel=1e-12)

    labels = (Y > 0).astype(int)
    clf = GRUClassifier(hidden_layer_sizes=(6,), output="each_step", max_iter=3,
                        random_state=0).fit(X, labels, lengths=lengths)
    pred = clf.predict(X, lengths=lengths)
    assert clf.score(X, labels, lengths=lengths) == pytest.approx(
        accuracy_score(labels[valid], pred[valid]), rel=1e-12)
    with pytest.raises(ValueError, match="lengths"):
        clf.score(X, labels, lengths=np.full(n, T + 1))
