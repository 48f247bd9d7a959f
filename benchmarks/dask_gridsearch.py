"""Time one GridSearchCV locally and on a dask.distributed LocalCluster (the scaling page).

Not an asv benchmark (asv finds no ``time_`` names here): a stand-alone script, run from the
repository root with dask installed (``pip install ".[dask]"``)::

    python benchmarks/dask_gridsearch.py [--workers 2] [--repeat 3]

It times, on the same data and grid: ``n_jobs=1`` in this process with all of Numba's threads;
``n_jobs=1`` with one Numba thread per fit's share (as each worker has); and the search under
``joblib.parallel_backend("dask")`` on a LocalCluster of ``--workers`` single-threaded worker
processes sized by :func:`numgru.dask.worker_env`. The cluster's start-up (spawning workers,
importing numgru, loading the compiled kernels from Numba's cache) is timed apart from the
searches. Every timing is the median of ``--repeat`` runs after one warm-up run; the best
parameters and mean scores of all three runs are checked to agree.
"""

import argparse
import logging
import os
import statistics
import time


def _data(n=240, T=20, F=3, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F))
    y = (X[:, :, 0].sum(axis=1) + X[:, -5:, 1].sum(axis=1) > 0).astype(int)
    return X, y


def _search():
    from sklearn.model_selection import GridSearchCV

    from numgru import GRUClassifier

    grid = {"hidden_layer_sizes": [(16,), (32,)], "learning_rate_init": [0.003, 0.01],
            "alpha": [1e-4, 1e-2]}
    return GridSearchCV(GRUClassifier(max_iter=10, random_state=0), grid, cv=3)


def _timed(fn, repeat):
    fn()                                           # warm-up: compile / load kernels
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import warnings

    import joblib
    import numba
    import numpy as np
    from distributed import Client, LocalCluster
    from sklearn.exceptions import ConvergenceWarning

    import numgru
    from numgru.dask import worker_env

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = _data()
    env = worker_env(n_workers=args.workers, threads_per_worker=1)
    share = int(env["NUMBA_NUM_THREADS"])
    print(f"numgru {numgru.__version__} from {numgru.__file__}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; X {X.shape}, "
          f"{len(list(_grid_points()))} candidates x 3 folds")

    full = numba.get_num_threads()
    res = {}
    res["local, n_jobs=1, %d Numba threads" % full] = _timed(
        lambda: _search().set_params(n_jobs=1).fit(X, y), args.repeat)
    numba.set_num_threads(share)
    try:
        res["local, n_jobs=1, %d Numba thread(s)" % share] = _timed(
            lambda: _search().set_params(n_jobs=1).fit(X, y), args.repeat)
    finally:
        numba.set_num_threads(full)

    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      env=env, dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(args.workers)
        client.run(lambda: __import__("numgru") and None)
        startup = time.perf_counter() - t0

        def on_dask():
            with joblib.parallel_backend("dask"):
                return _search().fit(X, y)

        res[f"dask, {args.workers} workers x 1 thread x {share} Numba thread(s)"] = _timed(
            on_dask, args.repeat)

    print(f"cluster start-up (spawn, import, first task): {startup:.2f} s")
    ref = None
    for name, (median, times, search) in res.items():
        print(f"{name:48s} median {median:6.2f} s  (runs: "
              + ", ".join(f"{t:.2f}" for t in times) + ")")
        scores = search.cv_results_["mean_test_score"]
        if ref is None:
            ref = (search.best_params_, scores)
        else:
            same = search.best_params_ == ref[0]
            print(f"    same best_params_ as the first: {same}; largest mean-score difference "
                  f"{np.max(np.abs(scores - ref[1])):.3g}")
    print(f"best_params_ {ref[0]}")


def _grid_points():
    from sklearn.model_selection import ParameterGrid

    return ParameterGrid(_search().param_grid)


if __name__ == "__main__":
    main()
