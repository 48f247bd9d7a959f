"""numgru's thread settings (numgru._config.compute_threads): thread limits are honoured."""

import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest

import numgru
from numgru import _cpu
from numgru._config import compute_threads

threadpoolctl = pytest.importorskip("threadpoolctl")

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one Numba thread here")


@needs_two
def test_threadpool_limits_caps_numba_and_is_restored():
    start = numba.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        with compute_threads:
            assert numba.get_num_threads() == 1
            assert _cpu.CPUBackend._nchunks(64, 256) == 1     # one chunk: one thread's work
            with compute_threads:                              # re-entrant
                assert numba.get_num_threads() == 1
            assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == start
    with compute_threads:
        assert numba.get_num_threads() == start               # no limit: all threads


@needs_two
def test_blas_is_held_to_one_thread_and_restored():
    libs = [c for c in threadpoolctl.ThreadpoolController().lib_controllers
            if c.user_api == "blas"]
    if not libs:
        pytest.skip("no BLAS found by threadpoolctl")
    before = [c.get_num_threads() for c in libs]
    with compute_threads:
        assert all(c.get_num_threads() == 1 for c in libs)
    assert [c.get_num_threads() for c in libs] == before


@needs_two
def test_limit_is_per_calling_thread():
    """A limit set in one Python thread does not reach a concurrent call in another."""
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def limited():
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            with compute_threads:
                seen["limited"] = numba.get_num_threads()
                inside.set()
                release.wait(10)

    t = threading.Thread(target=limited)
    t.start()
    inside.wait(10)
    with compute_threads:
        seen["free"] = numba.get_num_threads()
    release.set()
    t.join()
    assert seen == {"limited": 1, "free": numba.config.NUMBA_NUM_THREADS}


@needs_two
@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "1"}, {"NUMBA_NUM_THREADS": "1"}])
def test_environment_limits_are_honoured(env, tmp_path):
    code = ("import numba, numpy as np, numgru\n"
            "from numgru._config import compute_threads\n"
            "with compute_threads: n = numba.get_num_threads()\n"
            "gru = numgru.GRU(2, 3, random_state=0)\n"
            "out, _ = gru.forward(np.ones((4, 5, 2), dtype=np.float32))\n"
            "print(n, out.shape)\n")
    res = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "1"


def test_results_do_not_depend_on_the_thread_limit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 3))
    gru = numgru.GRU(3, 5, 2, dtype="float64", random_state=0)
    free, _ = gru.forward(x)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        limited, _ = gru.forward(x)
    np.testing.assert_allclose(limited, free, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# numgru._pool: the Python threads that run the CPU kernels' tasks
# ----------------------------------------------------------------------------------------------


def test_pool_runs_every_task_once_and_raises_a_tasks_exception():
    from numgru import _pool

    for n in (0, 1, 2, 3, 17):
        seen = []
        _pool.run(n, seen.append)
        assert sorted(seen) == list(range(n))

    def fail(i):
        if i == 2:
            raise ValueError("task 2")

    with pytest.raises(ValueError, match="task 2"):
        _pool.run(5, fail)
    seen = []
    _pool.run(4, seen.append)                  # the pool still works afterwards
    assert sorted(seen) == [0, 1, 2, 3]


@needs_two
def test_concurrent_forward_from_threads_matches_serial():
    """Forward passes from several Python threads at once (sharing the pool's workers) give
    the bits of the same passes run one after the other."""
    rng = np.random.default_rng(5)
    gru = numgru.GRU(4, 32, 2, bidirectional=True, dtype="float32", random_state=0)
    xs = [rng.standard_normal((24, 15, 4)).astype(np.float32) for _ in range(6)]
    want = [gru.forward(x)[0] for x in xs]
    got = [None] * len(xs)
    errors = []

    def work(k):
        try:
            for _ in range(5):
                got[k] = gru.forward(xs[k])[0]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
