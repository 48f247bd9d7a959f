"""numgru.aeon: numgru's estimators as aeon collection estimators.

With aeon (``pip install ".[aeon]"``, not in the test extra: aeon 1.6 pins older numba and
numpy) these run aeon's own ``check_estimator`` and compare the wrappers with numgru's
estimators on the same sequences; without it only the clear ImportError is checked.
"""

import importlib.util
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import numgru
import numgru.aeon

HAVE_AEON = importlib.util.find_spec("aeon") is not None
needs_aeon = pytest.mark.skipif(not HAVE_AEON, reason='aeon is not installed '
                                '(pip install "numgru[aeon]")')
PARAMS = dict(hidden_layer_sizes=(4,), max_iter=3, batch_size=8, random_state=0)


@pytest.mark.skipif(HAVE_AEON, reason="aeon is installed")
def test_without_aeon_the_classes_say_what_to_install():
    for cls in (numgru.aeon.GRUClassifier, numgru.aeon.GRURegressor):
        with pytest.raises(ImportError, match=r"numgru\[aeon\]"):
            cls()


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args)


@needs_aeon
@pytest.mark.parametrize("name", ["GRUClassifier", "GRURegressor"])
def test_aeon_check_estimator(name):
    from aeon.testing.estimator_checking import check_estimator
    cls = getattr(numgru.aeon, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = check_estimator(cls, raise_exceptions=True)
    assert results and all(v == "PASSED" for v in results.values()), results


@needs_aeon
def test_tags_are_the_true_ones():
    for cls in (numgru.aeon.GRUClassifier, numgru.aeon.GRURegressor):
        assert cls.get_class_tag("capability:multivariate") is True
        assert cls.get_class_tag("capability:unequal_length") is True
        assert cls.get_class_tag("capability:missing_values") is False


@needs_aeon
def test_classifier_equals_numgru_on_transposed_collections():
    """aeon's (n, C, T) arrays and lists of (C, T_i) give numgru's (T_i, C) sequences."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3, 9))
    y = np.array(["up", "down"])[rng.integers(0, 2, 16)]
    clf = _quiet(numgru.aeon.GRUClassifier(**PARAMS).fit, X, y)
    ref = _quiet(numgru.GRUClassifier(**PARAMS).fit, X.transpose(0, 2, 1), y)
    np.testing.assert_array_equal(clf.classes_, ref.classes_)
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X.transpose(0, 2, 1)))
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X.transpose(0, 2, 1)))
    # unequal lengths: a list of (C, T_i)
    Xl = [rng.standard_normal((3, T)) for T in (4, 9, 6, 2, 7, 5, 8, 3)]
    yl = np.array(["a", "b"] * 4)
    clf = _quiet(numgru.aeon.GRUClassifier(**PARAMS).fit, Xl, yl)
    ref = _quiet(numgru.GRUClassifier(**PARAMS).fit, [x.T for x in Xl], yl)
    np.testing.assert_array_equal(clf.predict_proba(Xl), ref.predict_proba([x.T for x in Xl]))


@needs_aeon
def test_regressor_equals_numgru_and_runs_in_aeon_resampling():
    from aeon.benchmarking.resampling import stratified_resample_data
    from aeon.datasets import load_unit_test

    X_train, y_train = load_unit_test(split="train")           # (20, 1, 24), ships with aeon
    X_test, y_test = load_unit_test(split="test")
    X_tr, y_tr, X_te, y_te = stratified_resample_data(X_train, y_train, X_test, y_test,
                                                      random_state=1)
    clf = _quiet(numgru.aeon.GRUClassifier(**PARAMS).fit, X_tr, y_tr)
    assert clf.fit_time_millis_ >= 0                            # aeon's own fit timer
    assert set(clf.predict(X_te)) <= set(y_tr)
    target = X_tr[:, 0].mean(axis=1)
    reg = _quiet(numgru.aeon.GRURegressor(**PARAMS).fit, X_tr, target)
    ref = _quiet(numgru.GRURegressor(**PARAMS).fit, X_tr.transpose(0, 2, 1), target)
    np.testing.assert_array_equal(reg.predict(X_te), ref.predict(X_te.transpose(0, 2, 1)))


@needs_aeon
def test_numgru_params_pass_through_and_clash():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 2, 5))
    y = rng.standard_normal(10)
    reg = _quiet(numgru.aeon.GRURegressor(numgru_params={"solver": "sgd"}, **PARAMS).fit, X, y)
    assert reg.estimator_.solver == "sgd"
    with pytest.raises(ValueError, match="repeats parameters"):
        numgru.aeon.GRURegressor(numgru_params={"max_iter": 5}).fit(X, y)
    with pytest.raises(ValueError, match="output must be 'last'"):
        numgru.aeon.GRURegressor(numgru_params={"output": "each_step"}).fit(X, y)
