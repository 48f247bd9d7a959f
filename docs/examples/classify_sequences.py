"""Classify variable-length multivariate sequences (three classes) with GRUClassifier."""
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import ConfusionMatrixDisplay

from numgru import GRUClassifier
from numgru.datasets import make_sequence_classification
from numgru.plotting import LossCurveDisplay

# 300 sequences of 20-60 steps with 3 features: a ragged list of (T_i, 3) arrays.
X, y = make_sequence_classification(n_samples=300, min_length=20, max_length=60,
                                    random_state=0)
X = [x.astype(np.float32) for x in X]            # float32 input -> float32 model
X_train, y_train, X_test, y_test = X[:240], y[:240], X[240:], y[240:]

clf = GRUClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=20,
                    batch_size=32, early_stopping=True, validation_fraction=0.2,
                    n_iter_no_change=20, random_state=0)
with warnings.catch_warnings():                  # a fixed epoch budget, on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X_train, y_train)

accuracy = clf.score(X_test, y_test)
majority = np.mean(y_test == np.bincount(y_train).argmax())
print(f"test accuracy {accuracy:.3f} (majority class {majority:.3f})")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for c, style in zip(range(3), ["C0", "C1", "C2"]):
    i = int(np.flatnonzero(y_train == c)[0])
    axes[0].plot(X_train[i][:, 0], color=style, label=f"class {c} (T={len(X_train[i])})")
axes[0].set_title("feature 0 of one sequence per class")
axes[0].set_xlabel("time step")
axes[0].legend(fontsize=8)
LossCurveDisplay.from_estimator(clf, ax=axes[1], name="")
axes[1].set_title("training loss and validation accuracy")
ConfusionMatrixDisplay.from_predictions(y_test, clf.predict(X_test), ax=axes[2],
                                        colorbar=False)
axes[2].set_title(f"test accuracy {accuracy:.2f} (majority {majority:.2f})")
