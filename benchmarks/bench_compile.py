"""asv benchmark of numgru's cold start: compile time of a first training step and a first fit.

numgru compiles its kernels on first use (and then keeps them in Numba's on-disk cache), so a
new user's -- or a fresh CI runner's -- first call pays for the compilation.  This suite measures
that cost in a **separate Python process** whose Numba cache is empty:

* ``NUMBA_CACHE_DIR`` points at a fresh temporary directory, which Numba consults before the
  cache files next to numgru's sources (``numgru/__pycache__``), so nothing cached by earlier
  runs, tests or other processes is reused; Numba's cache stays *on*, as for a user, so the
  measured time includes writing the new cache files;
* ``NUMGRU_NO_CACHE`` is removed from the child's environment (it would disable the cache);
* the compile-ahead helper (``numgru._compile_ahead``: a process that compiles the backward
  kernel while the child compiles the forward) runs as it would for a user, when a CPU is idle;
  ``NUMGRU_COMPILE_AHEAD=0`` in asv's environment measures without it. The child waits for the
  helper, so ``track_cold_fit_cpu`` includes the helper's CPU time.

The child imports numgru, builds ``numgru.GRU`` with the ``mid`` shape (B, T, I, H, L) =
(32, 100, 32, 128, 2) and the benchmark's dtype, and times its first
``forward(x, training=True)`` + ``backward(ones)``.  Benchmarks (``track_*``, unit "seconds",
one measurement each -- the child runs once per dtype, in ``setup_cache``):

* ``track_cold_train_step``: wall time of that first forward + backward (compilation of every
  kernel the training step uses, plus one mid-size step, ~0.03 s of it);
* ``track_import``: wall time of ``import numgru`` in the same child (nothing is compiled at
  import);
* ``track_cold_fit_predict``: in another fresh child with its own empty cache, the first
  ``GRURegressor`` fit + predict as a new user meets it (the default estimator, 64 units, on 256
  sequences of 20 steps and 3 features, 2 epochs, as ``cold_fit.py``): wall time of the fit +
  predict (the issue's target: 10 s for either dtype);
* ``track_cold_fit_cpu``: the CPU seconds (user + sys) that whole child used, import included:
  compile work, which depends far less on the machine's load than the wall time does;
* ``ColdDemo.track_cold_demo`` / ``track_cold_demo_cpu``: wall and CPU seconds of a whole
  ``numgru demo`` process with an empty cache (the issue's target: 20 s), and
  ``track_warm_demo``: the same process again with the cache it filled. The demo must exit 0
  (it beat every baseline) and the cold one must have written cache index files.

Before anything is reported, ``setup`` checks that

* the child really started cold: it wrote Numba cache index files (``*.nbi``) into the fresh
  ``NUMBA_CACHE_DIR``, which it would not have done had it loaded kernels from another cache;
* the results of the cold call are right: forward output, ``h_n``, ``dx``, ``dh0`` (first 4
  sequences) against the plain-NumPy float64 reference in ``_reference.py`` within 1e-4
  (float32) / 1e-9 (float64), and every parameter gradient of a second, 4-sequence training step.
  A mismatch raises ``CorrectnessError`` and asv reports the benchmark as failed.

The numbers are single samples and depend heavily on the machine's load (two compiling processes
on two cores take twice as long); read the history for jumps (a new kernel variant, a Numba
upgrade), not for small changes.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from ._reference import SHAPES, reference_backward, reference_forward
from .bench_gru import CHECK_BATCH, CorrectnessError, _check, bench_threads

SHAPE = "mid"
DTYPES = ["float32", "float64"]
CHILD_TIMEOUT = 1200  # seconds, per dtype

# Runs in the child process: argv = dtype, shape as JSON, threads, output .npz path.
_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numgru
t_import = time.perf_counter() - t0
import numba
import numpy as np

dtype, (B, T, I, H, L), threads, path = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
gru = numgru.GRU(I, H, num_layers=L, dtype=dtype, random_state=0)
x = np.random.default_rng(1234).standard_normal((B, T, I)).astype(dtype)
d_out = np.ones((B, T, H), dtype=dtype)

t0 = time.perf_counter()
out, h_n = gru.forward(x, training=True)
dx, dh0, _ = gru.backward(d_out)
t_cold = time.perf_counter() - t0

t0 = time.perf_counter()
gru.forward(x, training=True)
gru.backward(d_out)
t_warm = time.perf_counter() - t0

b = min(B, 4)
gru.forward(x[:b], training=True)
_, _, grads = gru.backward(d_out[:b])
arrays = {"x": x[:b], "out": out[:b], "h_n": h_n[:, :b], "dx": dx[:b], "dh0": dh0[:, :b]}
arrays.update({"sd/" + k: v for k, v in gru.state_dict().items()})
arrays.update({"grad/" + k: v for k, v in grads.items()})
np.savez(path, **arrays)

cache_dir = os.environ["NUMBA_CACHE_DIR"]
nbi = sum(f.endswith(".nbi") for _, _, files in os.walk(cache_dir) for f in files)
print("NUMGRU_COLD_RESULT " + json.dumps({"import": t_import, "cold": t_cold, "warm": t_warm,
                                          "nbi_files": nbi, "numba": numba.__version__}))
"""


# Runs in the child process: argv = dtype.
_FIT_CHILD = r"""
import json, os, sys, time, warnings
import numpy as np
import numgru

dt = sys.argv[1]
rng = np.random.default_rng(0)
X = rng.standard_normal((256, 20, 3)).astype(dt)
y = X[:, :, 0].sum(axis=1)
warnings.simplefilter("ignore")
t0 = time.perf_counter()
reg = numgru.GRURegressor(max_iter=2, random_state=0, dtype=dt).fit(X, y)
p = reg.predict(X)
t_fit = time.perf_counter() - t0
cache_dir = os.environ["NUMBA_CACHE_DIR"]
nbi = sum(f.endswith(".nbi") for _, _, files in os.walk(cache_dir) for f in files)
print("NUMGRU_COLD_FIT " + json.dumps({"fit": t_fit, "finite": bool(np.isfinite(p).all()),
                                       "nbi_files": nbi}))
"""


def run_cold_fit_child(dtype, timeout=CHILD_TIMEOUT):
    """First fit + predict in a fresh child with an empty cache: (fit wall s, child CPU s,
    cache index files written, predictions finite)."""
    import resource

    with tempfile.TemporaryDirectory(prefix="numgru-coldfit-") as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        env.pop("NUMGRU_NO_CACHE", None)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-c", _FIT_CHILD, dtype], env=env, cwd=tmp,
                              capture_output=True, text=True, timeout=timeout)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-fit child ({dtype}) failed with exit status "
                               f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NUMGRU_COLD_FIT ")]
        if not lines:
            raise RuntimeError(f"cold-fit child ({dtype}) printed no result:\n{proc.stdout}")
        res = json.loads(lines[-1].split(" ", 1)[1])
    res["cpu"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return res


def run_cold_child(dtype, shape=SHAPE, threads=None, timeout=CHILD_TIMEOUT):
    """Run the cold-start child for one dtype; return (timings dict, arrays dict)."""
    threads = bench_threads() if threads is None else threads
    with tempfile.TemporaryDirectory(prefix="numgru-cold-") as tmp:
        cache_dir = os.path.join(tmp, "numba_cache")
        os.mkdir(cache_dir)
        npz = os.path.join(tmp, "result.npz")
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        env.pop("NUMGRU_NO_CACHE", None)
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, dtype, json.dumps(SHAPES[shape]), str(threads), npz],
            env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start child ({dtype}) failed with exit status "
                               f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NUMGRU_COLD_RESULT ")]
        if not lines:
            raise RuntimeError(f"cold-start child ({dtype}) printed no result:\n{proc.stdout}")
        timings = json.loads(lines[-1].split(" ", 1)[1])
        with np.load(npz) as f:
            arrays = {k: f[k] for k in f.files}
    return timings, arrays


class ColdStart:
    """First forward + backward of a ``mid`` ``numgru.GRU`` in a fresh process, empty Numba cache."""

    params = [DTYPES]
    param_names = ["dtype"]
    # The children run in setup_cache (one per dtype, up to CHILD_TIMEOUT each); the track_
    # methods only read the numbers.
    timeout = 60

    def setup_cache(self):
        return {dtype: run_cold_child(dtype) + (run_cold_fit_child(dtype),) for dtype in DTYPES}

    setup_cache.timeout = 4 * CHILD_TIMEOUT + 60

    def setup(self, results, dtype):
        timings, a, fit = results[dtype]
        if not (fit["nbi_files"] > 0 and fit["finite"]):
            raise CorrectnessError(f"the cold-fit child did not compile into its fresh cache or "
                                   f"predicted non-finite values: {fit}")
        if not timings["nbi_files"] > 0:
            raise CorrectnessError(
                "the cold-start child wrote no Numba cache index into its fresh NUMBA_CACHE_DIR: "
                "its kernels did not come from a cold compile, the time is meaningless")
        L = SHAPES[SHAPE][4]
        sd = {k[3:]: v for k, v in a.items() if k.startswith("sd/")}
        ref_out, ref_hn, cache = reference_forward(sd, a["x"], L)
        d_out = np.ones_like(ref_out)
        ref_dx, ref_dh0, ref_grads = reference_backward(sd, cache, d_out)
        b = min(SHAPES[SHAPE][0], CHECK_BATCH)
        assert a["out"].shape[0] == b
        _check("cold forward output", a["out"], ref_out, dtype, SHAPE)
        _check("cold h_n", a["h_n"], ref_hn, dtype, SHAPE)
        _check("cold dx", a["dx"], ref_dx, dtype, SHAPE)
        _check("cold dh0", a["dh0"], ref_dh0, dtype, SHAPE)
        for name, ref in ref_grads.items():
            key = "grad/" + name
            if key not in a:
                raise CorrectnessError(f"cold-start child returned no gradient {name}")
            _check(f"cold grad {name}", a[key], ref, dtype, SHAPE)

    def track_cold_train_step(self, results, dtype):
        return results[dtype][0]["cold"]

    track_cold_train_step.unit = "seconds"

    def track_import(self, results, dtype):
        return results[dtype][0]["import"]

    track_import.unit = "seconds"

    def track_cold_fit_predict(self, results, dtype):
        return results[dtype][2]["fit"]

    track_cold_fit_predict.unit = "seconds"

    def track_cold_fit_cpu(self, results, dtype):
        return results[dtype][2]["cpu"]

    track_cold_fit_cpu.unit = "seconds"


def run_demo_child(cache_dir, timeout=CHILD_TIMEOUT):
    """``numgru demo`` (``numgru.cli.main(["demo"])``) in a fresh child with the cache in
    ``cache_dir``: (child wall s, child CPU s, exit status, cache index files, output)."""
    import resource
    import time

    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMGRU_NO_CACHE", None)
    code = "import sys; from numgru.cli import main; sys.exit(main(['demo']))"
    with tempfile.TemporaryDirectory(prefix="numgru-demo-") as cwd:      # its loss plot
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    nbi = sum(f.endswith(".nbi") for _, _, files in os.walk(cache_dir) for f in files)
    return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "status": proc.returncode, "nbi_files": nbi, "output": proc.stdout + proc.stderr}


class ColdDemo:
    """``numgru demo`` as a new user first runs it: a fresh process with an empty Numba cache
    (issue 12's target: 20 s on two cores), then again with the cache it filled."""

    timeout = 60

    def setup_cache(self):
        with tempfile.TemporaryDirectory(prefix="numgru-demo-cache-") as cache_dir:
            cold = run_demo_child(cache_dir)
            warm = run_demo_child(cache_dir)
        return {"cold": cold, "warm": warm}

    setup_cache.timeout = 2 * CHILD_TIMEOUT + 60

    def setup(self, results):
        for kind, r in results.items():
            if r["status"] != 0:
                raise CorrectnessError(f"{kind} numgru demo exited with status {r['status']} "
                                       f"(1: it did not beat its baselines):\n{r['output']}")
        if not results["cold"]["nbi_files"] > 0:
            raise CorrectnessError("the cold numgru demo wrote no Numba cache index into its "
                                   "fresh NUMBA_CACHE_DIR: it was not cold")

    def track_cold_demo(self, results):
        return results["cold"]["wall"]

    track_cold_demo.unit = "seconds"

    def track_cold_demo_cpu(self, results):
        return results["cold"]["cpu"]

    track_cold_demo_cpu.unit = "seconds"

    def track_warm_demo(self, results):
        return results["warm"]["wall"]

    track_warm_demo.unit = "seconds"
