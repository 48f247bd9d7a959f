"""asv tracking benchmarks for deep recurrent stacks: plain vs ``residual=True`` vs
``residual=True, layer_norm=True``.

Task: ``numgru.datasets.make_adding_problem(n_samples=256, n_timesteps=100, random_state=0)``
(two features per step, the target is the sum of the two marked values; predicting the mean
target gives a loss of about 1/12, the loss being half the mean squared error).

Model: ``GRURegressor(hidden_layer_sizes=(32,) * 8, cell=cell, residual=residual,
layer_norm=layer_norm, learning_rate_init=2e-3, batch_size=32, max_iter=3, clip_grad_norm=1.0,
random_state=0, dtype="float32")`` for ``cell`` in ("rnn_tanh", "gru") and ``variant`` in
("plain", "residual", "residual+layer_norm"): the six variants of
``docs/examples/deep_stacks.py`` on a budget of a few seconds each.

Benchmarks: ``track_final_training_loss`` -- ``loss_`` after the fit (deterministic for a given
``random_state`` and thread count; lower is better, as asv assumes). A change that breaks
training of deep, residual or layer-normalised stacks shows up in this history; nothing here
is timed.

Threads: Numba runs with ``NUMGRU_BENCH_THREADS`` threads (default 2), as in ``bench_gru.py``.
"""

import warnings

import numba
from sklearn.exceptions import ConvergenceWarning

import numgru
from numgru.datasets import make_adding_problem

from .bench_gru import bench_threads

N_SAMPLES, N_TIMESTEPS, N_LAYERS, HIDDEN = 256, 100, 8, 32
VARIANTS = {"plain": dict(residual=False, layer_norm=False),
            "residual": dict(residual=True, layer_norm=False),
            "residual+layer_norm": dict(residual=True, layer_norm=True)}


class DeepStacksSuite:
    """Final training loss of 8-layer tanh RNN / GRU stacks: plain, residual, and residual
    with layer normalisation."""

    params = [["rnn_tanh", "gru"], list(VARIANTS)]
    param_names = ["cell", "variant"]
    # A cold Numba cache may have to compile every kernel in setup.
    timeout = 600

    def setup(self, cell, variant):
        numba.set_num_threads(bench_threads())
        X, y = make_adding_problem(N_SAMPLES, N_TIMESTEPS, random_state=0)
        model = numgru.GRURegressor(hidden_layer_sizes=(HIDDEN,) * N_LAYERS, cell=cell,
                                    **VARIANTS[variant], learning_rate_init=2e-3, batch_size=32,
                                    max_iter=3, clip_grad_norm=1.0, random_state=0,
                                    dtype="float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X.astype("float32"), y)
        self.loss = float(model.loss_)

    def track_final_training_loss(self, cell, variant):
        return self.loss

    track_final_training_loss.unit = "loss (half MSE)"
