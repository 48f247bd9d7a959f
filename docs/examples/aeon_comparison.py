"""numgru's aeon classifier beside aeon's own, on datasets that ship with aeon.

Run with ``pip install "numgru[aeon]"``: ``python docs/examples/aeon_comparison.py``. Prints a
Markdown table: mean test accuracy and median fit / predict time (seconds) over the resamples
of each dataset (resample 0 is the published train/test split; the others are aeon's
``stratified_resample_data`` with that seed). Every classifier gets the same raw series; none
is tuned. The numgru settings were chosen once, before the runs, and not adjusted after.
"""

import platform
import time
import warnings

import numpy as np
from aeon.benchmarking.resampling import stratified_resample_data
from aeon.classification.convolution_based import MiniRocketClassifier
from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
from aeon.classification.dummy import DummyClassifier
from aeon.datasets import (load_basic_motions, load_gunpoint, load_italy_power_demand,
                           load_japanese_vowels)

from numgru.aeon import GRUClassifier

DATASETS = {
    "ItalyPowerDemand": load_italy_power_demand,     # univariate, T = 24, 67 train cases
    "GunPoint": load_gunpoint,                       # univariate, T = 150, 50 train cases
    "BasicMotions": load_basic_motions,              # 6 channels, T = 100, 40 train cases
    "JapaneseVowels": load_japanese_vowels,          # 12 channels, T = 7..29 (unequal)
}
RESAMPLES = 3


def classifiers(seed):
    return {
        "numgru GRU": GRUClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01,
                                    max_iter=100, batch_size=16, random_state=seed,
                                    numgru_params={"n_iter_no_change": 100}),
        "MiniRocket": MiniRocketClassifier(random_state=seed),
        "1-NN DTW": KNeighborsTimeSeriesClassifier(distance="dtw"),
        "Dummy (prior)": DummyClassifier(),
    }


def warm_up():
    """Compile every classifier's Numba code once (numgru's kernels, MiniRocket's transform,
    DTW) on aeon's small UnitTest data, so that the timed fits do not include compilation."""
    from aeon.datasets import load_unit_test
    X, y = load_unit_test(split="train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for clf in classifiers(0).values():
            clf.fit(X, y).predict(X[:2])


def main():
    warm_up()
    rows = {}
    for name, load in DATASETS.items():
        X_train, y_train = load(split="train")
        X_test, y_test = load(split="test")
        for r in range(RESAMPLES):
            if r:
                X_tr, y_tr, X_te, y_te = stratified_resample_data(X_train, y_train, X_test,
                                                                  y_test, random_state=r)
            else:
                X_tr, y_tr, X_te, y_te = X_train, y_train, X_test, y_test
            for label, clf in classifiers(r).items():
                unequal = isinstance(X_tr, list)
                if unequal and not clf.get_tag("capability:unequal_length"):
                    rows.setdefault((name, label), None)
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    clf.fit(X_tr, y_tr)
                    t1 = time.perf_counter()
                    acc = float(np.mean(clf.predict(X_te) == y_te))
                    t2 = time.perf_counter()
                rows.setdefault((name, label), []).append((acc, t1 - t0, t2 - t1))
                print(f"{name:18s} r{r} {label:14s} acc {acc:.3f} fit {t1 - t0:7.2f}s "
                      f"predict {t2 - t1:7.2f}s", flush=True)
    print()
    print(f"machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}")
    print("| dataset | classifier | accuracy (mean) | fit s (median) | predict s (median) |")
    print("|---|---|---|---|---|")
    for (name, label), runs in rows.items():
        if runs is None:
            print(f"| {name} | {label} | n/a (no unequal-length capability) | | |")
            continue
        a = np.array(runs)
        print(f"| {name} | {label} | {a[:, 0].mean():.3f} | {np.median(a[:, 1]):.2f} | "
              f"{np.median(a[:, 2]):.2f} |")


if __name__ == "__main__":
    main()
