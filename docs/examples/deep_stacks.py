"""Deep recurrent stacks on the adding problem: 8 layers, plain vs ``residual=True`` vs
``residual=True, layer_norm=True``.

Trains six regressors (an 8-layer tanh RNN and an 8-layer GRU, each plain, with residual
connections, and with residual connections and layer-normalised cells; hidden size 32) on the
adding problem with T = 100 steps and draws their training loss curves side by side into
``docs/deep_stacks.png``. Unlike the examples of the gallery, it is not run while the
documentation builds (about 7 minutes on two cores; the layer-normalised cells run the general
kernels, slower than the plain ones); run it by hand::

    python docs/examples/deep_stacks.py [output.png]

``DEEP_STACKS_QUICK=1`` runs every variant on a tiny budget (a check that it works, seconds).
The asv benchmarks ``benchmarks/bench_deep.py`` track the final training loss of the same six
variants on a smaller budget.
"""
import os
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from numgru import GRURegressor  # noqa: E402
from numgru.datasets import make_adding_problem  # noqa: E402

N_LAYERS, HIDDEN, T = 8, 32, 100
N_TRAIN, EPOCHS = 2000, 40
if os.environ.get("DEEP_STACKS_QUICK"):
    N_LAYERS, HIDDEN, T, N_TRAIN, EPOCHS = 8, 16, 30, 200, 3
X, y = make_adding_problem(n_samples=N_TRAIN + 200, n_timesteps=T, random_state=0)
X = X.astype(np.float32)                          # float32 input -> float32 model
X_train, y_train, X_test, y_test = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]
# the loss is half the mean squared error; predicting the mean target (1) gives about 1/12
baseline = 0.5 * np.mean((y_test - y_train.mean()) ** 2)

# (residual, layer_norm) per cell: plain, residual, residual + layer normalisation
STYLES = {(False, False): ("plain", "C0"), (True, False): ("residual", "C1"),
          (True, True): ("residual + layer_norm", "C2")}
VARIANTS = [(cell, residual, ln) for cell in ("rnn_tanh", "gru") for residual, ln in STYLES]
models = {}
for cell, residual, ln in VARIANTS:
    reg = GRURegressor(hidden_layer_sizes=(HIDDEN,) * N_LAYERS, cell=cell, residual=residual,
                       layer_norm=ln, learning_rate_init=3e-3, batch_size=32, max_iter=EPOCHS,
                       n_iter_no_change=EPOCHS, clip_grad_norm=1.0, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():               # a fixed epoch budget, on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, y_train)
    test = 0.5 * np.mean((reg.predict(X_test) - y_test) ** 2)
    print(f"{cell:8s} {STYLES[residual, ln][0]:22s} final training loss {reg.loss_:.4f}  "
          f"test loss {test:.4f}  ({time.perf_counter() - t0:.0f} s)")
    models[cell, residual, ln] = (reg, test)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, cell, title in zip(axes, ("rnn_tanh", "gru"), ("8-layer tanh RNN", "8-layer GRU")):
    for (residual, ln), (label, style) in STYLES.items():
        reg, test = models[cell, residual, ln]
        ax.plot(np.arange(1, len(reg.loss_curve_) + 1), reg.loss_curve_, color=style,
                label=f"{label} (test {test:.3f})")
    ax.axhline(baseline, color="gray", ls="--", lw=1, label="predict the mean")
    ax.set_title(f"{title}, H={HIDDEN}, adding problem T={T}")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
axes[0].set_ylabel("training loss (half MSE)")
fig.tight_layout()
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "deep_stacks.png"
fig.savefig(out, dpi=100)
print(f"saved {out}")
