"""numgru on a ``dask.distributed`` cluster of real worker processes (``pip install ".[dask]"``).

One LocalCluster (two worker processes, one thread each) serves the module. Its workers get
``numgru.dask.worker_env`` in their environment, so each sizes Numba's pool to its share of the
cores, and they import the numgru the tests import (multiprocessing's spawn hands the workers
this process's ``sys.path``; PYTHONPATH is set as well, and the tests check the file).

The local reference runs before the cluster starts: it compiles the kernels into Numba's
on-disk cache, which the workers then load instead of compiling them twice more.
Skipped without dask and distributed.
"""

import logging
import os
import time

import numpy as np
import pytest

pytest.importorskip("dask.array")
pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import joblib  # noqa: E402
import numba  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import numgru  # noqa: E402
from numgru import GRUClassifier  # noqa: E402
from numgru.dask import predict, worker_env  # noqa: E402

N_WORKERS = 2
ENV = worker_env(n_workers=N_WORKERS, threads_per_worker=1)
GRID = {"hidden_layer_sizes": [(3,), (8,)], "learning_rate_init": [0.003, 0.03]}


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 10, 2))
    y = (X[:, :, 0].sum(axis=1) + 0.5 * X[:, -1, 1] > 0).astype(int)
    return X, y


def _search():
    return GridSearchCV(GRUClassifier(max_iter=8, random_state=0), GRID, cv=2)


@pytest.fixture(scope="module")
def local_search():
    """GridSearchCV in this process (n_jobs=1) with the workers' Numba thread count, so that
    both runs add the same partial sums in the same order."""
    X, y = _data()
    before = numba.get_num_threads()
    numba.set_num_threads(min(before, int(ENV["NUMBA_NUM_THREADS"])))
    try:
        t0 = time.perf_counter()
        search = _search().set_params(n_jobs=1).fit(X, y)
        search.wall_s_ = time.perf_counter() - t0
    finally:
        numba.set_num_threads(before)
    return search


@pytest.fixture(scope="module")
def client(local_search):
    root = os.path.dirname(os.path.dirname(os.path.abspath(numgru.__file__)))
    env = dict(ENV, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    # the Nanny writes its pre-spawn variables (OMP_NUM_THREADS=1, ...) into this process's
    # environment and never takes them back: restore it afterwards, for the other tests
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]      # in place when the workers are spawned
    cluster = None
    try:
        cluster = LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True,
                               memory_limit="1GiB", env=env, dashboard_address=None,
                               silence_logs=logging.ERROR)
        with Client(cluster) as c:
            c.wait_for_workers(N_WORKERS, timeout=60)
            yield c
    finally:
        if cluster is not None:
            cluster.close()
        os.environ.clear()
        os.environ.update(saved)


def test_workers_import_this_numgru_with_their_thread_share(client):
    def report():  # nested: cloudpickle ships it by value, not by name from this module
        import os

        import numba as nb

        import numgru as ng

        return {"file": ng.__file__, "threads": nb.get_num_threads(),
                "pool": nb.config.NUMBA_NUM_THREADS, "omp": os.environ.get("OMP_NUM_THREADS")}

    want = int(ENV["NUMBA_NUM_THREADS"])
    # client.run: each worker's event-loop thread
    on_loop = client.run(report)
    # a task: the worker thread that runs fits and predictions (numba's count is per thread)
    in_tasks = client.gather([client.submit(report, pure=False, workers=[w])
                              for w in on_loop])
    assert len(on_loop) == N_WORKERS
    for r in list(on_loop.values()) + in_tasks:
        assert r["file"] == numgru.__file__
        assert r["pool"] == want and r["threads"] == want
        assert r["omp"] == "1"


def test_grid_search_on_dask_matches_local(client, local_search):
    X, y = _data()
    t0 = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search = _search().fit(X, y)
    wall = time.perf_counter() - t0
    print(f"GridSearchCV {len(GRID['hidden_layer_sizes']) * len(GRID['learning_rate_init'])} "
          f"candidates x 2 folds: local {local_search.wall_s_:.2f} s, dask {wall:.2f} s")
    assert search.best_params_ == local_search.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(search.cv_results_[key], local_search.cv_results_[key])
    # the scores differ between candidates, so the best params are not a tie broken by order
    assert len(set(local_search.cv_results_["mean_test_score"])) > 1


def test_predict_over_dask_array_matches_local(client, local_search):
    X, y = _data()
    clf = local_search.best_estimator_
    dX = da.from_array(X, chunks=(50, 10, 2))        # blocks of 50, 50 and 20 sequences
    lengths = np.random.default_rng(1).integers(3, 11, size=len(X))
    labels = predict(clf, dX)
    proba = predict(clf, dX, method="predict_proba", lengths=lengths)
    assert labels.chunks[0] == (50, 50, 20) and proba.shape == (120, 2)
    got_labels, got_proba = client.compute([labels, proba], sync=True)   # on the workers
    np.testing.assert_array_equal(got_labels, clf.predict(X))
    assert got_proba.dtype == np.float64
    np.testing.assert_allclose(got_proba, clf.predict_proba(X, lengths=lengths),
                               rtol=0, atol=1e-12)


def test_predict_each_step_over_dask_array(client):
    X, y = _data()
    Y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
    clf = GRUClassifier(hidden_layer_sizes=(4,), output="each_step", max_iter=2,
                        random_state=0).fit(X, Y)
    lengths = np.random.default_rng(2).integers(2, 9, size=len(X))     # longest 8 of 10 steps
    dX = da.from_array(X, chunks=(32, 10, 2))
    proba = predict(clf, dX, method="predict_proba", lengths=da.from_array(lengths, chunks=60))
    want = clf.predict_proba(X, lengths=lengths)
    assert proba.shape == want.shape == (120, 10, 2)         # the input's steps, zeros past
    np.testing.assert_allclose(client.compute(proba, sync=True), want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(client.compute(predict(clf, dX), sync=True), clf.predict(X))
