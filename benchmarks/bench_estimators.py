"""asv benchmarks for the scikit-learn estimators (fit / predict / quality on a fixed task).

:class:`GRUClassifierSuite` -- ``numgru.GRUClassifier``.

Task: ``numgru.datasets.make_sequence_classification(n_samples=300, min_length=20,
max_length=60, n_features=3, random_state=0)`` -- variable-length sequences (a list of
``(T_i, 3)`` arrays) in three classes; a fixed split of the first 240 sequences for training and
the last 60 for testing.

Model: ``GRUClassifier(hidden_layer_sizes=(32,), batch_size=32, max_iter=10,
learning_rate_init=1e-2, random_state=0)`` (Adam, float32, the other parameters at their
defaults). A short fit (about 0.1 s on 2 cores) that still learns: with the default
learning_rate_init=1e-3, 5 epochs stay near chance (test accuracy ~0.4), whereas these settings
reach ~0.85. ``max_iter=10`` stops before convergence, so the ``ConvergenceWarning`` is silenced.

Before anything is timed, ``setup``

* fits the model once (the warm-up: Numba JIT compilation, or loading from its on-disk cache, of
  every kernel a fit and a predict use is never part of a measurement), and
* checks that this fit learned something: the test accuracy must be at least ``MIN_ACCURACY``
  = 0.5 (chance is 1/3), otherwise ``setup`` raises :class:`LearningError` (an
  ``AssertionError``) and asv reports the benchmarks as failed instead of timing a broken fit.

Benchmarks:

* ``time_fit``: a whole ``fit`` (10 epochs, 8 mini-batches each) from a fresh clone;
* ``time_predict``: ``predict`` on the 60 test sequences with the fitted model;
* ``track_accuracy``: test accuracy of the fitted model (deterministic for a given
  ``random_state``), so that a speed change that breaks learning shows up in the history;
* ``track_error_rate``: ``1 - accuracy``; asv reads larger numbers as worse, so a drop in
  accuracy is flagged as a regression by ``asv continuous`` / ``asv compare``.


:class:`GRURegressorSuite` -- ``numgru.GRURegressor`` on a fixed one-step-ahead forecasting task.

Task: the series ``s_t = sin(2 pi t / 24) + 0.5 sin(2 pi t / 9 + 1) + 0.1 e_t`` for
``t = 0..599`` with ``e_t`` standard normal from ``numpy.random.default_rng(0)``; inputs are the
windows ``s[i:i+24]`` (shape ``(24, 1)``), the target is the next value ``s[i+24]``.  The first
400 windows train, the remaining 176 (later in time) test.  The naive forecast "next value =
last value of the window" scores R^2 ~0.83 on the test windows.

Model: ``GRURegressor(hidden_layer_sizes=(32,), batch_size=32, max_iter=10,
learning_rate_init=1e-2, random_state=0, dtype="float32")``, which reaches a test R^2 of ~0.98
(2026-12-03, with the default linear skip and held-out choice; ~0.96 before them).
``setup`` fits once (warm-up) and raises :class:`LearningError` unless the test R^2 is at least
``MIN_R2`` = 0.9 *and* above the naive forecast's.  Benchmarks: ``time_fit``, ``time_predict``
(the 176 test windows), ``track_r2`` (test R^2, unit "R^2") and ``track_mse`` (test mean
squared error, ~0.012; lower is better, as asv assumes).


:class:`DefaultEpochSuite` -- one epoch of ``GRUClassifier()`` with every default, on 64
univariate sequences of 24 steps (``make_sequence_classification(n_samples=64, min_length=24,
max_length=24, n_features=1, random_state=0)``): the default batch size is then 4, so the epoch is
16 small training steps, the regime whose per-step cost (kernels at a few rows, the Python around
them, the optimizer step) decides how long a default fit on a small UCR-size set takes
(docs/training.md). ``time_epoch``: one ``partial_fit`` of the fitted model, which continues
training (input checks included, as a user pays them).

Threads: Numba runs with ``NUMGRU_BENCH_THREADS`` threads (default 2), as in ``bench_gru.py``.
"""

import warnings

import numba
import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score

import numgru
from numgru.datasets import make_sequence_classification

from .bench_gru import bench_threads

N_SAMPLES, N_TRAIN = 300, 240
CHANCE = 1.0 / 3.0
MIN_ACCURACY = 0.5


class LearningError(AssertionError):
    """The warm-up fit did not beat chance; the benchmark must not be timed."""


def _data():
    X, y = make_sequence_classification(n_samples=N_SAMPLES, min_length=20, max_length=60,
                                        n_features=3, random_state=0)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def _model():
    return numgru.GRUClassifier(hidden_layer_sizes=(32,), batch_size=32, max_iter=10,
                                learning_rate_init=1e-2, random_state=0, dtype="float32")


class GRUClassifierSuite:
    """``GRUClassifier`` fit / predict on a mid-size variable-length classification task."""

    # A cold Numba cache may have to compile every kernel in setup.
    timeout = 600
    # At least 2 samples, at most 10, stop adding samples after ~20 s per benchmark.
    repeat = (2, 10, 20.0)
    number = 1
    warmup_time = 0.0

    def setup(self):
        numba.set_num_threads(bench_threads())
        self.X_train, self.y_train, self.X_test, self.y_test = _data()
        self.model = self._fit(_model())
        self.accuracy = float(self.model.score(self.X_test, self.y_test))
        if not self.accuracy >= MIN_ACCURACY:  # also catches NaN
            raise LearningError(
                f"GRUClassifier test accuracy after the warm-up fit is {self.accuracy:.3f}, "
                f"below {MIN_ACCURACY} (chance {CHANCE:.3f}): fitting is broken, nothing is timed")
        self.model.predict(self.X_test)  # warm-up of the inference path

    def _fit(self, est):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(self.X_train, self.y_train)

    def time_fit(self):
        self._fit(clone(self.model))

    def time_predict(self):
        self.model.predict(self.X_test)

    def track_accuracy(self):
        return self.accuracy

    track_accuracy.unit = "accuracy"

    def track_error_rate(self):
        # 1 - accuracy: asv treats larger values as worse, so a drop in accuracy shows up as a
        # regression ("+") in `asv continuous` / `asv compare` and on the Regressions page.
        return 1.0 - self.accuracy

    track_error_rate.unit = "error rate"



# --- GRURegressor ---------------------------------------------------------------------------

SERIES_LENGTH, WINDOW, N_TRAIN_WINDOWS = 600, 24, 400
MIN_R2 = 0.9


def forecasting_series(n=SERIES_LENGTH, seed=0):
    """Two sines (periods 24 and 9) plus Gaussian noise of standard deviation 0.1."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 9 + 1.0)
            + 0.1 * rng.standard_normal(n))


def _forecasting_data():
    s = forecasting_series()
    X = np.stack([s[i:i + WINDOW] for i in range(len(s) - WINDOW)])[:, :, None]
    y = s[WINDOW:]
    n = N_TRAIN_WINDOWS
    return X[:n], y[:n], X[n:], y[n:]


def _regressor():
    return numgru.GRURegressor(hidden_layer_sizes=(32,), batch_size=32, max_iter=10,
                               learning_rate_init=1e-2, random_state=0, dtype="float32")


class GRURegressorSuite:
    """``GRURegressor`` fit / predict / R^2 on a fixed one-step-ahead forecasting task."""

    timeout = 600
    repeat = (2, 10, 20.0)
    number = 1
    warmup_time = 0.0

    def setup(self):
        numba.set_num_threads(bench_threads())
        self.X_train, self.y_train, self.X_test, self.y_test = _forecasting_data()
        self.model = self._fit(_regressor())
        self.r2 = float(self.model.score(self.X_test, self.y_test))
        self.mse = float(np.mean((self.model.predict(self.X_test) - self.y_test) ** 2))
        naive = float(r2_score(self.y_test, self.X_test[:, -1, 0]))
        if not (self.r2 >= MIN_R2 and self.r2 > naive):  # also catches NaN
            raise LearningError(
                f"GRURegressor test R^2 after the warm-up fit is {self.r2:.3f} (must be >= "
                f"{MIN_R2} and above the naive last-value forecast's {naive:.3f}): fitting is "
                f"broken, nothing is timed")
        self.model.predict(self.X_test)  # warm-up of the inference path

    def _fit(self, est):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(self.X_train, self.y_train)

    def time_fit(self):
        self._fit(clone(self.model))

    def time_predict(self):
        self.model.predict(self.X_test)

    def track_r2(self):
        return self.r2

    track_r2.unit = "R^2"

    def track_mse(self):
        # Lower is better, as asv assumes: a loss of forecast quality is flagged as a regression.
        return self.mse

    track_mse.unit = "MSE"


# --- one epoch of the defaults at their small batches ------------------------------------------

class DefaultEpochSuite:
    """One training epoch of ``GRUClassifier()`` (all defaults: batches of 4 on 64 sequences)."""

    timeout = 600
    repeat = (3, 20, 20.0)
    number = 5
    warmup_time = 0.0

    def setup(self):
        numba.set_num_threads(bench_threads())
        self.X, self.y = make_sequence_classification(n_samples=64, min_length=24, max_length=24,
                                                      n_features=1, random_state=0)
        self.model = numgru.GRUClassifier(random_state=0, verbose=0)
        if self.model._batch_size(len(self.X)) != 4:
            raise AssertionError("the default batch size for 64 sequences is no longer 4: this "
                                 "suite times small batches, update it")
        self.model.partial_fit(self.X, self.y, classes=np.unique(self.y))   # warm-up

    def time_epoch(self):
        self.model.partial_fit(self.X, self.y)
