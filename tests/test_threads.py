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
# numgru._pool: the native worker threads that run the CPU kernels' tasks
# ----------------------------------------------------------------------------------------------

from numba import njit  # noqa: E402

from numgru import _pool  # noqa: E402


@njit(nogil=True)
def _count_launch(ctl, ntasks, task, counts, fail_at):
    if task < 0:
        _pool.launch(ctl, ntasks, task, (counts, fail_at))
        return
    if task == fail_at:
        raise ValueError("task failed on purpose")
    counts[task] += 1


def test_pool_runs_every_task_once_and_raises_a_tasks_exception():
    ctl = _pool.native_ctl()                     # the native pool's, whatever runtime is in use
    for n in (0, 1, 2, 3, 17, 200):
        counts = np.zeros(max(n, 1), dtype=np.int64)
        _count_launch(ctl, n, -1, counts, -1)
        assert counts[:n].tolist() == [1] * n
    counts = np.zeros(5, dtype=np.int64)
    with pytest.raises(ValueError, match="task failed on purpose"):
        _count_launch(ctl, 5, -1, counts, 2)
    assert counts.tolist() == [1, 1, 0, 1, 1]   # every other task ran, once
    counts[:] = 0
    _count_launch(ctl, 4, -1, counts, -1)        # the pool still works afterwards
    assert counts.tolist() == [1, 1, 1, 1, 0]


# Tasks 0 and 1 each raise their own flag, then wait (atomic loads, no bound) for the other's:
# the launch returns only if two threads ran the two tasks at once; one thread running both
# would wait forever in whichever it took first.
_RENDEZVOUS_SCRIPT = """
import sys
import numba
import numpy as np
from numba import njit
from numgru import _numba_runtime, _pool


@njit(nogil=True)
def rendezvous(ctl, ntasks, task, flags):
    if task < 0:
        _pool.launch(ctl, ntasks, task, (flags,))
        return
    _pool._store(flags, task, 1)
    while _pool._load(flags, 1 - task) == 0:
        _pool._pause()
    _pool._add(flags, 2, 1)


runtime = sys.argv[1]
_pool.ctl()                 # starts the runtime of NUMGRU_THREADING (and Numba's layer)
ctl = (_pool.native_ctl() if runtime == "native"
       else _numba_runtime.new(exclusive=numba.threading_layer() == "workqueue", serial=False))
flags = np.zeros(3, dtype=np.int64)
rendezvous(ctl, 2, -1, flags)
print(flags.tolist())
"""


@needs_two
@pytest.mark.parametrize("runtime", ["native", "numba"])
def test_pool_runs_tasks_on_two_threads_at_once(runtime):
    """Both tasks of a two-task launch ran at once: each saw the other's flag (all three counts
    below). In a child process, so that a runtime that ran them on one thread fails the test
    (the child's timeout: a hang guard, not a measure of speed) instead of hanging the suite."""
    env = dict(os.environ, NUMGRU_THREADING=runtime)
    res = subprocess.run([sys.executable, "-c", _RENDEZVOUS_SCRIPT, runtime], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[-2] == "[1, 1, 2]", res.stdout


@needs_two
def test_pool_stop_and_restart():
    counts = np.zeros(8, dtype=np.int64)
    _count_launch(_pool.native_ctl(), 8, -1, counts, -1)
    _pool.stop()
    assert _pool._ctl is None and not _pool._threads
    _count_launch(_pool.native_ctl(), 8, -1, counts, -1)    # new workers
    assert counts.tolist() == [2] * 8
    assert _pool._ctl[_pool.ALIVE] >= 0


_MODE_SCRIPT = """
import json, numpy as np, numgru
from numgru import _pool
gru = numgru.GRU(3, 16, 2, bidirectional=True, dtype="float64", random_state=0)
x = np.random.default_rng(0).standard_normal((12, 9, 3))
y, h = gru.forward(x, training=True)
dx, dh0, g = gru.backward(np.ones_like(y))
print(json.dumps({"mode": _pool.wait_mode(), "workers": len(_pool._threads),
                  "y": float(np.abs(y).sum()), "dx": float(np.abs(dx).sum())}))
"""


@needs_two
@pytest.mark.parametrize("mode", ["poll", "none"])
def test_pool_wait_modes_give_the_same_results(mode):
    import json

    def run(env_mode):
        env = dict(os.environ, NUMGRU_THREADING="native")
        env.pop("NUMGRU_POOL_WAIT", None)
        if env_mode:
            env["NUMGRU_POOL_WAIT"] = env_mode
        out = subprocess.run([sys.executable, "-c", _MODE_SCRIPT], env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    default, other = run(None), run(mode)
    assert default["mode"] == ("futex" if sys.platform.startswith("linux") else "poll")
    assert other["mode"] == mode
    assert other["workers"] == (0 if mode == "none" else default["workers"])
    assert other["y"] == default["y"] and other["dx"] == default["dx"]


@needs_two
def test_pool_after_fork():
    """A forked child (multiprocessing's fork start, as joblib's and dask's may be) starts its
    own workers and computes the parent's results (tests/test_runtimes.py: both runtimes)."""
    import multiprocessing

    from numgru import _threading

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    before = _threading._setting
    _threading.set_threading("native")
    try:
        gru = numgru.GRU(4, 32, 2, dtype="float32", random_state=0)
        x = np.random.default_rng(1).standard_normal((16, 10, 4)).astype(np.float32)
        want = gru.forward(x)[0]
        with multiprocessing.get_context("fork").Pool(1) as p:
            got = p.apply(_forward_in_child, (gru, x))
    finally:
        _threading.set_threading(before)
    np.testing.assert_array_equal(got, want)


def _forward_in_child(gru, x):
    from numgru import _pool as pool

    out = gru.forward(x)[0]
    assert pool._active is pool._ctl
    assert pool._ctl is not None and len(pool._threads) == numba.config.NUMBA_NUM_THREADS - 1
    return out


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
