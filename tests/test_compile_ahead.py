"""numgru._compile_ahead: a helper process compiles the backward kernel during a cold first fit.

- the backward kernel's argument types predicted at the training forward are exactly those its
  launch then compiles for (every cell form, dtype, direction count, with and without lengths,
  through the estimators and the language model);
- in a fresh process with an empty cache the backward kernel is loaded from the helper's cache
  entry, not compiled there, and the results are the same bits as here;
- a failing, hanging or unneeded helper costs nothing but its time: waits time out and kill it,
  exit stops it, and it is not started when threads, the cache or the environment say no.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numba
import numpy as np
import pytest
from numba import types

import numgru
from numgru import _compile_ahead, _cpu

needs_helper = pytest.mark.skipif(not _compile_ahead.enabled(numba.config.NUMBA_NUM_THREADS),
                                  reason="compile-ahead disabled here (one CPU, or no cache)")


@pytest.fixture
def recorded(monkeypatch):
    """The (kernel name, argument types) each training forward predicts, nothing started."""
    calls = []
    monkeypatch.setattr(_cpu, "_AHEAD_ASKED", set())
    monkeypatch.setattr(_cpu, "_compile_ahead", SimpleNamespace(
        ahead=lambda module, name, argtypes, threads: calls.append((module, name, argtypes)),
        wait=_compile_ahead.wait))
    return calls


def _check_predicted(calls):
    assert calls
    for module, name, argtypes in calls:
        sigs = getattr(importlib.import_module(module), name).signatures
        assert tuple(argtypes) in sigs, (name, argtypes, sigs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["gru", "gru_cho", "rnn_tanh", "rnn_relu", "gru_layer_norm",
                                  "rnn_tanh_recurrent_dropout"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_predicted_backward_types_are_the_launched_ones(recorded, dtype, cell, bidirectional):
    rng = np.random.default_rng(0)
    general = dict(layer_norm=cell.endswith("layer_norm"),
                   recurrent_dropout=0.3 if cell.endswith("recurrent_dropout") else 0.0)
    if cell.startswith("gru"):
        net = numgru.GRU(3, 5, num_layers=2, bidirectional=bidirectional,
                         reset_after=cell != "gru_cho", dtype=dtype, random_state=0, **general)
    else:
        net = numgru.RNN(3, 5, num_layers=2, bidirectional=bidirectional,
                         nonlinearity=cell.split("_")[1], dtype=dtype, random_state=0, **general)
    x = rng.standard_normal((6, 4, 3)).astype(dtype)
    out, _ = net.forward(x, lengths=np.array([4, 3, 1, 4, 2, 4]), training=True)
    net.backward(np.ones_like(out))
    _check_predicted(recorded)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predicted_backward_types_through_estimators_and_language_model(recorded):
    rng = np.random.default_rng(0)
    ragged = [rng.standard_normal((n, 2)) for n in (3, 5, 4, 2, 6, 5)]
    numgru.GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(
        ragged, [0, 1, 0, 1, 0, 1])
    numgru.GRURegressor(hidden_layer_sizes=(4, 3), max_iter=2, output="each_step",
                        dtype="float32", random_state=0).fit(
        rng.standard_normal((5, 4, 2)).astype("float32"),
        rng.standard_normal((5, 4)).astype("float32"))
    numgru.GRULanguageModel(embedding_dim=3, hidden_layer_sizes=(4,), bptt=4, batch_size=2,
                            max_iter=1, random_state=0).fit(["abcab cab", "bca abc"])
    _check_predicted(recorded)


_COLD = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import numgru
    from numgru import _compile_ahead, _cpu
    os.environ["NUMBA_CACHE_DIR"] = sys.argv[1]    # changed after import: Numba keeps the first
    x = np.random.default_rng(1).standard_normal((5, 4, 3))
    net = numgru.GRU(3, 6, random_state=0)
    out, h_n = net.forward(x, training=True)
    dx, dh0, grads = net.backward(np.ones_like(out))
    st = _cpu._gru_backward_after.stats
    print(json.dumps({"hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values()),
                      "pending": len(_compile_ahead._pending),
                      "out": out.tolist(), "dx": dx.tolist(),
                      "g": {k: v.tolist() for k, v in grads.items()}}))
""")


@needs_helper
def test_cold_process_loads_the_helpers_backward_and_gets_the_same_bits(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMGRU_NO_CACHE", "NUMBA_DISABLE_JIT")}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMGRU_COMPILE_AHEAD="1")
    proc = subprocess.run([sys.executable, "-c", _COLD, str(tmp_path / "other")], env=env,
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (res["hits"], res["misses"]) == (1, 0)        # loaded from the helper's cache entry
    assert res["pending"] == 0
    x = np.random.default_rng(1).standard_normal((5, 4, 3))
    net = numgru.GRU(3, 6, random_state=0)
    out, _ = net.forward(x, training=True)
    dx, _, grads = net.backward(np.ones_like(out))
    assert np.array_equal(np.array(res["out"]), out)
    assert np.array_equal(np.array(res["dx"]), dx)
    for k, v in grads.items():
        assert np.array_equal(np.array(res["g"][k]), v), k


def _fresh_signature():
    """Argument types no process has compiled: a helper started for them fails to type them."""
    return (types.int64, types.int64, types.int64, types.float32)


@pytest.fixture
def idle(monkeypatch):
    """As if a CPU were idle (the tests must not depend on this machine's other work)."""
    monkeypatch.setattr(_compile_ahead, "cpu_free", lambda: True)


@needs_helper
def test_a_failing_helper_is_waited_for_and_forgotten(idle):
    assert _compile_ahead.ahead("numgru._cpu", "_rnn_backward_chunk", _fresh_signature(),
                                numba.config.NUMBA_NUM_THREADS)
    (_, _, proc), = [e for e in _compile_ahead._pending if e[1] is _cpu._rnn_backward_chunk]
    _compile_ahead.wait(_cpu._rnn_backward_chunk)
    assert proc.returncode != 0                          # it could not compile those types
    assert not _compile_ahead._pending


@needs_helper
def test_a_hanging_helper_is_killed_by_the_wait_timeout_and_at_exit(monkeypatch, idle):
    monkeypatch.setattr(_compile_ahead, "_CHILD", "import time; time.sleep(120)")
    monkeypatch.setattr(_compile_ahead, "WAIT_TIMEOUT_S", 0.5)
    threads = numba.config.NUMBA_NUM_THREADS
    assert _compile_ahead.ahead("numgru._cpu", "_rnn_backward_chunk", _fresh_signature(), threads)
    # one helper per kernel at a time
    assert not _compile_ahead.ahead("numgru._cpu", "_rnn_backward_chunk", _fresh_signature(),
                                    threads)
    (_, _, hung), = _compile_ahead._pending
    _compile_ahead.wait(_cpu._rnn_backward_chunk)
    # the wait's timeout killed it (a helper that slept to its end would have exited with 0)
    killed = -signal.SIGKILL if os.name == "posix" else 1         # Windows: TerminateProcess
    assert hung.returncode == killed, hung.returncode
    assert not _compile_ahead._pending
    assert _compile_ahead.ahead("numgru._cpu", "_gru_backward_cho", _fresh_signature(), threads)
    (_, _, proc), = _compile_ahead._pending
    _compile_ahead._stop_all()                           # what runs at exit
    assert proc.returncode is not None and not _compile_ahead._pending


@needs_helper
def test_no_helper_beside_busy_cpus_unless_forced(monkeypatch):
    """Every usable CPU running something (this thread included): no helper, unless
    NUMGRU_COMPILE_AHEAD=1; the running count is read from this machine where it can be."""
    monkeypatch.delenv("NUMGRU_COMPILE_AHEAD", raising=False)
    n = _compile_ahead._usable_cpus()
    monkeypatch.setattr(_compile_ahead, "running_now", lambda: n)
    assert not _compile_ahead.cpu_free()
    assert not _compile_ahead.ahead("numgru._cpu", "_rnn_backward_chunk", _fresh_signature(), n)
    assert not _compile_ahead._pending
    monkeypatch.setenv("NUMGRU_COMPILE_AHEAD", "1")
    assert _compile_ahead.ahead("numgru._cpu", "_rnn_backward_chunk", _fresh_signature(), n)
    _compile_ahead.wait(_cpu._rnn_backward_chunk)
    monkeypatch.setattr(_compile_ahead, "running_now", lambda: n - 1)
    assert _compile_ahead.cpu_free()


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="no /proc/loadavg")
def test_running_now_counts_this_thread():
    assert 1 <= _compile_ahead.running_now() < 100000


def test_no_helper_when_limited_to_one_thread_or_disabled(monkeypatch):
    assert not _compile_ahead.enabled(1)
    monkeypatch.setenv("NUMGRU_COMPILE_AHEAD", "0")
    assert not _compile_ahead.enabled(8)
    assert not _compile_ahead.ahead("numgru._cpu", "_rnn_backward_chunk", _fresh_signature(), 8)
    monkeypatch.delenv("NUMGRU_COMPILE_AHEAD")
    monkeypatch.setattr("numgru._config.CACHE", False)
    assert not _compile_ahead.enabled(8)


@needs_helper
@pytest.mark.parametrize("exe, frozen", [("/opt/app/myapp", False), ("/usr/bin/uwsgi", False),
                                         (sys.executable, True), ("", False)])
def test_no_helper_from_a_frozen_or_embedding_program(monkeypatch, exe, frozen):
    monkeypatch.setattr(sys, "executable", exe)
    if frozen:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert not _compile_ahead.enabled(8)


@needs_helper
def test_no_helper_for_a_compiled_specialization(recorded, idle):
    x = np.ones((2, 3, 3))
    net = numgru.GRU(3, 4, random_state=0)
    out, _ = net.forward(x, training=True)
    net.backward(np.ones_like(out))
    (module, name, argtypes), = recorded
    # already compiled (or loaded) here: nothing to start
    assert not _compile_ahead.ahead(module, name, argtypes, 8)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one Numba thread here")
def test_thread_limits_reach_the_helper_decision(monkeypatch):
    """A fit held to one thread (threadpoolctl, as OMP_NUM_THREADS) asks with 1 thread: no helper."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []
    monkeypatch.setattr(_cpu, "_AHEAD_ASKED", set())
    monkeypatch.setattr(_cpu, "_compile_ahead", SimpleNamespace(
        ahead=lambda module, name, argtypes, threads: seen.append(threads),
        wait=_compile_ahead.wait))
    X = np.random.default_rng(0).standard_normal((6, 3, 2))
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        numgru.GRURegressor(hidden_layer_sizes=(3,), max_iter=1).fit(X, X[:, 0, 0])
    assert seen and set(seen) == {1}
    assert not _compile_ahead.enabled(1)
