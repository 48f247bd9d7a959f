"""asv benchmarks for the scikit-learn estimator ``numgru.GRUClassifier`` (fit / predict / accuracy).

Task: ``numgru.datasets.make_sequence_classification(n_samples=300, min_length=20,
max_length=60, n_features=3, random_state=0)`` -- variable-length sequences (a list of
``(T_i, 3)`` arrays) in three classes; a fixed split of the first 240 sequences for training and
the last 60 for testing.

Model: ``GRUClassifier(hidden_layer_sizes=(32,), batch_size=32, max_iter=10,
learning_rate_init=1e-2, random_state=0)`` (Adam, float32, the other parameters at their
defaults). A short fit (about 0.1 s on 2 cores) that still learns: with the default
learning_rate_init=1e-3, 5 epochs stay near chance (test accuracy ~0.4), whereas these settings
reach ~0.83. ``max_iter=10`` stops before convergence, so the ``ConvergenceWarning`` is silenced.

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
  ``random_state``), so that a speed change that breaks learning shows up in the history.

Threads: Numba runs with ``NUMGRU_BENCH_THREADS`` threads (default 2), as in ``bench_gru.py``.
"""

import warnings

import numba
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

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

