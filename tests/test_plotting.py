"""numgru.plotting.LossCurveDisplay and AttentionDisplay: the sklearn ``*Display`` pattern,
matplotlib optional."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from numgru import GRUClassifier, GRURegressor
from numgru.plotting import AttentionDisplay, LossCurveDisplay


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    return X, y


def _fit(**kw):
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GRUClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, **kw).fit(X, y)


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


@pytest.fixture(scope="module")
def fitted():
    return _fit()


@pytest.fixture(scope="module")
def fitted_early():
    return _fit(early_stopping=True, validation_fraction=0.25)


def test_from_estimator_without_validation(pyplot, fitted):
    assert fitted.validation_scores_ is None
    disp = LossCurveDisplay.from_estimator(fitted)
    assert isinstance(disp, LossCurveDisplay)
    assert disp.validation_line_ is None and disp.validation_ax_ is None
    assert disp.lines_ == [disp.line_]
    x, y = disp.line_.get_data()
    np.testing.assert_array_equal(x, np.arange(1, len(fitted.loss_curve_) + 1))
    np.testing.assert_allclose(y, fitted.loss_curve_)
    assert len(fitted.loss_curve_) == 3
    assert disp.line_.get_label() == "GRUClassifier training loss"
    assert disp.ax_.get_xlabel() == "epoch"
    assert disp.ax_.get_ylabel() == "training loss"
    assert disp.figure_ is disp.ax_.figure
    assert len(disp.figure_.axes) == 1
    legend = disp.ax_.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["GRUClassifier training loss"]


def test_from_estimator_with_early_stopping(pyplot, fitted_early):
    est = fitted_early
    assert est.validation_scores_ is not None and len(est.validation_scores_) == 3
    disp = LossCurveDisplay.from_estimator(est, name="clf", color="k",
                                           validation_kwargs={"linestyle": "--"})
    assert disp.lines_ == [disp.line_, disp.validation_line_]
    np.testing.assert_allclose(disp.line_.get_ydata(), est.loss_curve_)
    x, y = disp.validation_line_.get_data()
    np.testing.assert_array_equal(x, np.arange(1, len(est.validation_scores_) + 1))
    np.testing.assert_allclose(y, est.validation_scores_)
    assert disp.line_.get_label() == "clf training loss"
    assert disp.validation_line_.get_label() == "clf validation score"
    assert disp.line_.get_color() == "k"
    assert disp.validation_line_.get_linestyle() == "--"
    # the validation score lives on a twin y axis sharing the x axis
    assert disp.validation_ax_ is not disp.ax_
    assert disp.validation_line_.axes is disp.validation_ax_
    assert disp.line_.axes is disp.ax_
    assert disp.validation_ax_.get_ylabel() == "validation score"
    assert len(disp.figure_.axes) == 2
    legend = disp.ax_.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["clf training loss",
                                                          "clf validation score"]


def test_plot_on_given_axes_returns_self(pyplot):
    fig, ax = pyplot.subplots()
    disp = LossCurveDisplay([1.0, 0.5], validation_scores=[0.2, 0.4], estimator_name="m")
    assert disp.plot(ax=ax, legend=False) is disp
    assert disp.ax_ is ax and disp.figure_ is fig
    assert ax.get_legend() is None
    # plot() can be called again, e.g. with another name
    disp.plot(name="other")
    assert disp.line_.get_label() == "other training loss"
    assert disp.ax_ is not ax


def test_from_estimator_unfitted_raises(pyplot):
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(GRUClassifier())


def test_plot_without_matplotlib_raises_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    disp = LossCurveDisplay([1.0, 0.5])  # creating the display does not need matplotlib
    with pytest.raises(ImportError, match="matplotlib"):
        disp.plot()
    with pytest.raises(ImportError, match="matplotlib"):
        LossCurveDisplay.from_estimator(GRUClassifier())


def test_attention_display_from_estimator(pyplot):
    X, y = _data()
    clf = _fit(pooling="attention")
    disp = AttentionDisplay.from_estimator(clf, X[3, :4])
    alpha = clf.attention_weights([X[3, :4]])[0]
    assert len(disp.bars_) == 4
    np.testing.assert_allclose([b.get_height() for b in disp.bars_], alpha)
    assert len(disp.values_lines_) == 2                      # one line per feature
    np.testing.assert_allclose(disp.values_lines_[1].get_ydata(), X[3, :4, 1])
    assert disp.ax_.get_title() == "GRUClassifier" and disp.values_ax_ is not None
    assert disp.figure_ is disp.ax_.figure
    fig, ax = pyplot.subplots()
    d2 = AttentionDisplay.from_estimator(clf, X[0], show_values=False, ax=ax, color="k")
    assert d2.ax_ is ax and d2.values_ax_ is None and d2.values_lines_ == []
    # univariate 2-D model: one sequence is a 1-D array
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = GRURegressor(hidden_layer_sizes=(3,), pooling="attention", max_iter=2,
                           random_state=0).fit(X[:, :, 0], y)
    d3 = AttentionDisplay.from_estimator(reg, X[0, :, 0])
    assert len(d3.bars_) == 5 and len(d3.values_lines_) == 1


def test_attention_display_errors(pyplot, fitted):
    X, _ = _data()
    with pytest.raises(ValueError, match="pooling='attention'"):
        AttentionDisplay.from_estimator(fitted, X[0])
    with pytest.raises(NotFittedError):
        AttentionDisplay.from_estimator(GRUClassifier(pooling="attention"), X[0])
    with pytest.raises(ValueError, match="one sequence"):
        AttentionDisplay.from_estimator(_fit(pooling="attention"), X[:2])
    with pytest.raises(ValueError, match="values have 3 timesteps"):
        AttentionDisplay([0.5, 0.5], values=[1, 2, 3]).plot()
