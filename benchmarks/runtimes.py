#!/usr/bin/env python3
"""numgru's task runtimes side by side: the native pool and Numba's runtime on each layer.

    python benchmarks/runtimes.py [--parts cold,warm,shared] [--rounds 3]
                                  [--configs native,numba-omp,numba-workqueue,numba-tbb]

A *configuration* is a task runtime (``NUMGRU_THREADING``) and, for Numba's, a threading layer
(``NUMBA_THREADING_LAYER``); ``numba-tbb`` needs the ``tbb`` package (pip; its library is found
through ``LD_LIBRARY_PATH=<prefix>/lib``, which this script sets) and is left out if it does not
load. Every measurement is a fresh child process; within a round the configurations run in a
rotating order, so that drift of a shared machine hits all alike. Reported: medians over rounds.

- ``cold``: first ``GRURegressor`` fit + predict in a process with an empty Numba cache (the
  child of ``cold_fit.py``: 256 x 20 x 3, float32, 2 epochs; compile-ahead at its default).
- ``warm``: ms per call at ``compare_torch.py``'s three shapes (float32, kernels cached, median
  of a budget of calls), inference and training step (forward + backward), alone and beside a
  busy process (``python -c "while True: pass"``).
- ``shared``: the fit of ``shared_cpu.py`` (512 x 50 x 3, default ``GRURegressor``, warm
  cache): alone, beside a busy process, and two at once (until both end).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from cold_fit import CHILD as COLD_CHILD
from shared_cpu import FIT as SHARED_FIT

CONFIGS = {"native": ("native", None), "numba-omp": ("numba", "omp"),
           "numba-workqueue": ("numba", "workqueue"), "numba-tbb": ("numba", "tbb")}

WARM = r"""
import json, statistics, sys, time
import numpy as np
import numgru
sys.path.insert(0, sys.argv[2])
from _reference import SHAPES
budget = float(sys.argv[1])
out = {"runtime": numgru.get_threading()}
for name in ("small", "mid", "large"):
    B, T, I, H, L = SHAPES[name]
    net = numgru.GRU(I, H, num_layers=L, dtype="float32", random_state=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    g = rng.standard_normal((B, T, H)).astype(np.float32)
    def inference():
        net.forward(x)
    def train():
        net.forward(x, training=True)
        net.backward(g)
    for mode, fn in (("inference", inference), ("train", train)):
        fn()
        times = []
        t_end = time.perf_counter() + budget
        while len(times) < 5 or (time.perf_counter() < t_end and len(times) < 500):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[f"{name} {mode}"] = statistics.median(times) * 1e3
print("WARM " + json.dumps(out))
"""


def env_for(config, cache_dir=None):
    runtime, layer = CONFIGS[config]
    env = dict(os.environ, NUMGRU_THREADING=runtime, PYTHONPATH=ROOT)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    lib = os.path.join(sys.prefix, "lib")
    env["LD_LIBRARY_PATH"] = lib + (os.pathsep + env["LD_LIBRARY_PATH"]
                                    if env.get("LD_LIBRARY_PATH") else "")
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


def child(code, args, env, tag):
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=900, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child failed:\n{res.stderr[-3000:]}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith(tag)][-1]
    return json.loads(line[len(tag):])


def layer_works(config):
    code = ("import numba\nfrom numba import njit, prange\n"
            "@njit(parallel=True)\ndef f(n):\n    s = 0\n    for i in prange(n): s += i\n"
            "    return s\nf(10)\nprint('LAYER ' + repr(numba.threading_layer()))")
    res = subprocess.run([sys.executable, "-c", code], env=env_for(config),
                         capture_output=True, text=True, timeout=300, check=False)
    return res.returncode == 0


class Hog:
    """A busy process beside the measurement."""

    def __enter__(self):
        self.p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def timed_fits(config, n, epochs, cache_dir):
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", SHARED_FIT, str(epochs)],
                              env=env_for(config, cache_dir)) for _ in range(n)]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("a fit failed")
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="cold,warm,shared")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--budget", type=float, default=1.5, help="seconds per warm shape and mode")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the shared fit")
    args = p.parse_args()
    configs = [c for c in args.configs.split(",") if layer_works(c)]
    print("configurations:", ", ".join(configs), flush=True)
    parts = args.parts.split(",")
    res = {c: {} for c in configs}

    def add(c, key, v):
        res[c].setdefault(key, []).append(v)

    warm_cache = tempfile.mkdtemp(prefix="numgru-rt-")
    for c in configs:                              # fill the warm cache (every runtime)
        child(COLD_CHILD, ["float32"], env_for(c, warm_cache), "COLD_FIT ")
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for c in order:
            if "cold" in parts:
                with tempfile.TemporaryDirectory(prefix="numgru-cold-") as d:
                    add(c, "cold first fit+predict s",
                        child(COLD_CHILD, ["float32"], env_for(c, d), "COLD_FIT ")["first"])
            if "warm" in parts:
                w = child(WARM, [str(args.budget), HERE], env_for(c, warm_cache), "WARM ")
                for k, v in w.items():
                    if k != "runtime":
                        add(c, f"{k} ms", v)
                with Hog():
                    w = child(WARM, [str(args.budget), HERE], env_for(c, warm_cache), "WARM ")
                for k, v in w.items():
                    if k != "runtime":
                        add(c, f"{k} ms, busy", v)
            if "shared" in parts:
                add(c, "fit alone s", timed_fits(c, 1, args.epochs, warm_cache))
                with Hog():
                    add(c, "fit beside busy s", timed_fits(c, 1, args.epochs, warm_cache))
                add(c, "two fits at once s", timed_fits(c, 2, args.epochs, warm_cache))
            print(f"round {r} {c}: " + json.dumps({k: round(v[-1], 3)
                                                   for k, v in res[c].items()}), flush=True)
    keys = list(res[configs[0]])
    print("| measurement | " + " | ".join(configs) + " |")
    print("|---|" + "---:|" * len(configs))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{statistics.median(res[c][k]):.3g}" for c in configs)
              + " |")
    print("JSON " + json.dumps(res))


if __name__ == "__main__":
    main()
