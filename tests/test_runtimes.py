"""numgru's two task runtimes (numgru._threading): Numba's parallel runtime and the native pool.

- every kernel family and the estimators give the same bits under both (same thread count),
  and the Numba runtime's results match the NumPy oracle (tests/reference.py);
- a launch under the Numba runtime runs every task once and propagates a task's exception;
- the choice: ``set_threading``, ``NUMGRU_THREADING`` (bad values named), the platform default,
  and a fallback with one warning when the chosen runtime cannot be built;
- Numba internals: a failed self-check switches compile-ahead off with one warning;
- a user's own ``parallel=True`` code keeps working beside numgru (also concurrently, on layers
  that allow it); a forked child computes the parent's bits under both runtimes; the workqueue
  layer (one parallel region at a time) survives concurrent launches from Python threads.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numba
import numpy as np
import pytest
import reference
from numba import njit, prange

import numgru
from numgru import _compile_ahead, _numba_internals, _pool, _threading

RUNTIMES = ("native", "numba")
needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one Numba thread here")


@pytest.fixture
def restore_runtime():
    """Put the runtime choice back as it was (the run's ``--numgru-threading``) afterwards."""
    before = _threading._setting
    yield
    _threading.set_threading(before)


def _under(runtime, fn):
    _threading.set_threading(runtime)
    assert numgru.get_threading()["runtime"] == runtime
    return fn()


def _both(fn):
    return [_under(rt, fn) for rt in RUNTIMES]


def _assert_same(a, b, path="result"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for k, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{path}[{k}]")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)


# ----------------------------------------------------------------------------------------------
# the same bits under both runtimes
# ----------------------------------------------------------------------------------------------

# (B, H) with B * 3 * H * H >= PARALLEL_MIN_WORK: recurrences split into one chunk per thread
_NETS = {
    "gru": lambda: numgru.GRU(5, 32, 2, bidirectional=True, dtype="float64", random_state=0),
    "gru_cho": lambda: numgru.GRU(5, 32, 2, reset_after=False, dtype="float32", random_state=1),
    "rnn_relu": lambda: numgru.RNN(5, 48, 2, nonlinearity="relu", dtype="float64",
                                   random_state=2),
    "gru_layer_norm": lambda: numgru.GRU(5, 32, 2, layer_norm=True, dtype="float64",
                                         random_state=3),
    "rnn_recurrent_dropout": lambda: numgru.RNN(5, 48, 1, recurrent_dropout=0.25,
                                                dtype="float32", random_state=4),
}


@needs_two
@pytest.mark.parametrize("net", sorted(_NETS))
def test_kernels_give_the_same_bits_under_both_runtimes(net, restore_runtime):
    rng = np.random.default_rng(7)
    first = _NETS[net]()
    x = rng.standard_normal((24, 11, 5)).astype(first.dtype)
    lengths = rng.integers(1, 12, size=24)
    g = rng.standard_normal((24, 11, first.hidden_size * first.num_directions))
    g = g.astype(first.dtype)

    def run():
        model = _NETS[net]()                     # the same weights and dropout masks each time
        inference = model.forward(x, lengths=lengths)
        out, h_n = model.forward(x, lengths=lengths, training=True)
        return inference, (out, h_n), model.backward(g)

    native, numba_rt = _both(run)
    _assert_same(native, numba_rt)


@needs_two
def test_numba_runtime_matches_the_numpy_oracle(restore_runtime):
    rng = np.random.default_rng(3)
    B, T, I, H, L = 24, 9, 4, 32, 2
    params = reference.init_params(rng, I, H, L, bidirectional=True)
    x = rng.standard_normal((B, T, I))
    lengths = rng.integers(1, T + 1, size=B)
    d_out = rng.standard_normal((B, T, 2 * H))
    net = numgru.GRU(I, H, L, bidirectional=True, dtype="float64")
    net.load_state_dict(params)
    _threading.set_threading("numba")
    out, h_n = net.forward(x, lengths=lengths, training=True)
    dx, dh0, grads = net.backward(d_out)
    r_out, r_hn, cache = reference.gru_forward(x, params, num_layers=L, hidden_size=H,
                                               bidirectional=True, lengths=lengths)
    r_dx, r_dh0, r_grads = reference.gru_backward(cache, d_out)
    np.testing.assert_allclose(out, r_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n, r_hn, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, r_dx, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dh0, r_dh0, rtol=1e-9, atol=1e-11)
    for k in r_grads:
        np.testing.assert_allclose(grads[k], r_grads[k], rtol=1e-9, atol=1e-10, err_msg=k)


@needs_two
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_give_the_same_bits_under_both_runtimes(restore_runtime):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((160, 12, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    text = ["the cat sat on the mat. " * 6, "a dog ran in the park. " * 6]

    def fit():
        clf = numgru.GRUClassifier(hidden_layer_sizes=(32,), max_iter=3, batch_size=80,
                                   dtype="float32", random_state=0).fit(X, y)
        reg = numgru.GRURegressor(hidden_layer_sizes=(24, 24), max_iter=2, batch_size=80,
                                  random_state=0).fit(X, X[:, -1, 1])
        lm = numgru.GRULanguageModel(embedding_dim=8, hidden_layer_sizes=(32,), bptt=8,
                                     batch_size=4, max_iter=2, random_state=0).fit(text)
        return (clf.predict_proba(X), clf.loss_curve_, reg.predict(X), reg.loss_curve_,
                lm.score(text), lm.loss_curve_)

    native, numba_rt = _both(fit)
    _assert_same(native, numba_rt)


# ----------------------------------------------------------------------------------------------
# launches on the Numba runtime
# ----------------------------------------------------------------------------------------------


@njit(nogil=True)
def _count_launch(ctl, ntasks, task, counts, fail_at):
    if task < 0:
        _pool.launch(ctl, ntasks, task, (counts, fail_at))
        return
    if task == fail_at:
        raise ValueError("task failed on purpose")
    counts[task] += 1


def test_numba_runtime_runs_every_task_once_and_raises_a_tasks_exception(restore_runtime):
    _threading.set_threading("numba")
    ctl = _pool.ctl()
    assert ctl[_pool.RUN] != 0 and ctl is not _pool._ctl       # not the native pool's block
    for n in (0, 1, 2, 3, 17, 200):
        counts = np.zeros(max(n, 1), dtype=np.int64)
        _count_launch(ctl, n, -1, counts, -1)
        assert counts[:n].tolist() == [1] * n
    counts = np.zeros(5, dtype=np.int64)
    with pytest.raises(ValueError, match="task failed on purpose"):
        _count_launch(ctl, 5, -1, counts, 3)
    assert counts.tolist() == [1, 1, 1, 0, 1]
    counts[:] = 0
    _count_launch(ctl, 4, -1, counts, -1)
    assert counts.tolist() == [1, 1, 1, 1, 0]


# ----------------------------------------------------------------------------------------------
# choosing a runtime
# ----------------------------------------------------------------------------------------------


def test_set_threading_and_the_environment(monkeypatch, restore_runtime):
    monkeypatch.setenv("NUMGRU_THREADING", "numba")
    _threading.set_threading(None)
    info = numgru.get_threading()
    assert (info["runtime"], info["reason"]) == ("numba", "NUMGRU_THREADING")
    assert info["layer"] == numba.threading_layer()
    assert numgru.set_threading("native") == "numba"             # returns the one before
    assert numgru.get_threading()["reason"] == "set by numgru.set_threading"
    monkeypatch.setenv("NUMGRU_THREADING", "openmp")
    _threading.set_threading(None)
    with pytest.raises(ValueError, match="NUMGRU_THREADING must be one of numba, native"):
        _pool.ctl()
    with pytest.raises(ValueError, match="runtime must be one of numba, native; got 'tbb'"):
        numgru.set_threading("tbb")


@pytest.mark.parametrize("plat, machine, want", [("linux", "x86_64", "native"),
                                                 ("linux", "aarch64", "numba"),
                                                 ("darwin", "arm64", "numba"),
                                                 ("win32", "AMD64", "numba")])
def test_platform_default(monkeypatch, plat, machine, want):
    monkeypatch.setattr(_threading.sys, "platform", plat)
    monkeypatch.setattr(_threading.platform, "machine", lambda: machine)
    assert _threading.default_runtime()[0] == want


def test_a_runtime_that_cannot_be_built_falls_back_with_one_warning(monkeypatch,
                                                                   restore_runtime):
    def broken():
        raise OSError("no futex here")

    monkeypatch.setattr(_pool, "native_ctl", broken)
    monkeypatch.setattr(_threading, "_warned", set())
    for k in range(2):
        _threading.set_threading("native")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gru = numgru.GRU(2, 3, random_state=0)
            out, _ = gru.forward(np.ones((2, 4, 2), dtype=np.float32))
        info = numgru.get_threading()
        assert info["runtime"] == "numba" and "fallback" in info["reason"]
        assert "no futex here" in info["reason"]
        fallback = [w for w in caught if "cannot be used here" in str(w.message)]
        assert len(fallback) == (1 if k == 0 else 0)            # one warning per process
    _threading.set_threading("numba")
    np.testing.assert_array_equal(gru.forward(np.ones((2, 4, 2), dtype=np.float32))[0], out)


def test_changed_cache_internals_switch_compile_ahead_off_with_one_warning(monkeypatch):
    def changed():
        raise _numba_internals.InternalsChanged("numba x.y: Cache has no load_overload")

    monkeypatch.setitem(_numba_internals._CHECKS, "cache", changed)
    monkeypatch.setattr(_numba_internals, "_results", {})
    monkeypatch.setattr(_compile_ahead, "_WARNED", [])
    monkeypatch.delenv("NUMGRU_COMPILE_AHEAD", raising=False)
    with pytest.warns(RuntimeWarning, match="compile-ahead is off .*load_overload"):
        assert _compile_ahead.enabled(2) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _compile_ahead.enabled(2) is False                # no second warning
    with pytest.raises(_numba_internals.InternalsChanged):
        _numba_internals.load_cached(_pool._compiled, ())


def test_changed_launch_internals_are_a_clear_error(monkeypatch, restore_runtime):
    def changed():
        raise _numba_internals.InternalsChanged("numba x.y: CPUCallConv has no call_function")

    monkeypatch.setitem(_numba_internals._CHECKS, "launch", changed)
    monkeypatch.setattr(_numba_internals, "_results", {})
    _threading.set_threading("numba")
    with pytest.raises(_numba_internals.InternalsChanged, match="call_function"):
        _pool.ctl()


def test_the_self_checks_pass_on_this_numba():
    for group in _numba_internals._CHECKS:
        _numba_internals.check(group)
    lo, hi = _numba_internals.TESTED_NUMBA
    version = tuple(int(p) for p in numba.__version__.split(".")[:2])
    assert tuple(int(p) for p in lo.split(".")) <= version < tuple(int(p) for p in hi.split("."))


# ----------------------------------------------------------------------------------------------
# beside a user's own parallel code, in forked children, on the workqueue layer
# ----------------------------------------------------------------------------------------------


@njit(parallel=True)
def _user_parallel(a):
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[i] = a[i] * a[i] + 1.0
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_users_parallel_code_keeps_working(runtime, restore_runtime):
    _threading.set_threading(runtime)
    a = np.arange(10_000, dtype=np.float64)
    np.testing.assert_array_equal(_user_parallel(a), a * a + 1.0)
    gru = numgru.GRU(3, 32, 2, dtype="float64", random_state=0)
    x = np.random.default_rng(0).standard_normal((24, 7, 3))
    want = gru.forward(x)[0]
    np.testing.assert_array_equal(_user_parallel(a), a * a + 1.0)
    np.testing.assert_array_equal(gru.forward(x)[0], want)
    if numba.threading_layer() == "workqueue":
        return                       # workqueue: one parallel region at a time, process-wide
    errors = []

    def user_loop():
        try:
            for _ in range(50):
                np.testing.assert_array_equal(_user_parallel(a), a * a + 1.0)
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    t = threading.Thread(target=user_loop)
    t.start()
    for _ in range(10):
        np.testing.assert_array_equal(gru.forward(x)[0], want)
    t.join()
    assert not errors, errors


def _forward_in_child(runtime, gru, x):
    from numgru import _threading as th

    th.set_threading(runtime)
    out = gru.forward(x)[0]
    return out, th.get_threading()


@needs_two
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_forked_child_uses_numgru(runtime, restore_runtime):
    """A forked child (multiprocessing's fork start, as joblib's and dask's may be) computes the
    parent's bits under either runtime, after the parent ran kernels on it."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    _threading.set_threading(runtime)
    gru = numgru.GRU(4, 32, 2, dtype="float32", random_state=0)
    x = np.random.default_rng(1).standard_normal((16, 10, 4)).astype(np.float32)
    want = gru.forward(x)[0]
    _user_parallel(np.ones(100))                 # the parent ran a parallel region too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # fork of a threaded process
        with multiprocessing.get_context("fork").Pool(1) as p:
            got, info = p.apply(_forward_in_child, (runtime, gru, x))
    np.testing.assert_array_equal(got, want)
    assert info["runtime"] == runtime


_WORKQUEUE = textwrap.dedent("""
    import json, threading
    import numpy as np
    import numgru
    gru = numgru.GRU(4, 32, 2, bidirectional=True, dtype="float32", random_state=0)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((24, 9, 4)).astype(np.float32) for _ in range(4)]
    want = [gru.forward(x)[0] for x in xs]
    got = [None] * 4
    def work(k):
        for _ in range(5):
            got[k] = gru.forward(xs[k])[0]
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(json.dumps({"info": numgru.get_threading(),
                      "same": all(np.array_equal(g, w) for g, w in zip(got, want))}))
""")


@needs_two
@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
def test_numba_runtime_on_each_layer_with_concurrent_callers(layer, tmp_path):
    """Concurrent launches from Python threads on each threading layer that loads here: the
    workqueue layer (which aborts the process on two parallel regions at once) is serialised."""
    env = dict(os.environ, NUMGRU_THREADING="numba", NUMBA_THREADING_LAYER=layer)
    # pip's tbb package puts libtbb in <prefix>/lib, which the loader does not search itself
    lib = os.path.join(sys.prefix, "lib")
    env["LD_LIBRARY_PATH"] = lib + (os.pathsep + env["LD_LIBRARY_PATH"]
                                    if env.get("LD_LIBRARY_PATH") else "")
    res = subprocess.run([sys.executable, "-c", _WORKQUEUE], env=env, capture_output=True,
                         text=True, timeout=600, cwd=str(tmp_path), check=False)
    if res.returncode != 0 and "No threading layer could be loaded" in res.stderr:
        pytest.skip(f"Numba's {layer} layer does not load here")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["info"]["runtime"] == "numba" and out["info"]["layer"] == layer
    assert out["same"]
