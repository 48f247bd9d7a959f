#!/usr/bin/env python3
"""Where a cold start's time goes: Numba compilation per function, in a fresh process.

    python benchmarks/cold_start_profile.py [--dtype float32|float64] [--fit default|tiny]
                                            [--top 25]

Runs itself again in a child process with an empty on-disk cache (``NUMBA_CACHE_DIR`` a fresh
temporary directory, so nothing is loaded from a previous run, but a backward kernel compiled by
the compile-ahead helper, ``numgru._compile_ahead``, is loaded from there), and times
``import numgru`` and a first ``GRURegressor`` fit + predict (what a new user meets first):
``--fit default`` the default estimator (64 units) on 256 sequences of 20 steps, 2 epochs, as
``cold_fit.py`` (batches of 200 rows: the recurrences split into one chunk per thread);
``--fit tiny`` 8 units on 20 sequences of 8 steps, 1 epoch (one chunk: compiles less). Numba's
compile events give each compiled function's time; nested compilations (a kernel typing its
callees) are counted inside their caller, so the table shows both the inclusive time and the
time of the function alone (exclusive). The asv benchmark ``bench_compile`` tracks the total;
this script says what to shorten.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
from numba.core import event
import numgru
t_import = time.perf_counter() - t0
dt, fit = sys.argv[1], sys.argv[2]
rec = event.install_recorder("numba:compile")
buf = rec.__enter__()
if fit == "tiny":
    X = np.random.default_rng(0).standard_normal((20, 8, 2)).astype(dt)
    kw = dict(hidden_layer_sizes=(8,), max_iter=1)
else:
    X = np.random.default_rng(0).standard_normal((256, 20, 3)).astype(dt)
    kw = dict(max_iter=2)
y = X[:, :, 0].sum(axis=1)
warnings.simplefilter("ignore")
t1 = time.perf_counter()
reg = numgru.GRURegressor(random_state=0, dtype=dt, **kw).fit(X, y)
reg.predict(X)
t_first = time.perf_counter() - t1
rec.__exit__(None, None, None)
events = [(ts, ev.is_start, ev.data["dispatcher"].py_func.__module__ + "." +
           ev.data["dispatcher"].py_func.__qualname__) for ts, ev in buf.buffer]
print(json.dumps({"import": t_import, "first": t_first, "events": events}))
"""


def exclusive_times(events):
    """(name, inclusive, exclusive) per compilation from nested start/end events."""
    stack, rows = [], []
    for ts, is_start, name in events:
        if is_start:
            stack.append([name, ts, 0.0])
        else:
            name0, t0, child = stack.pop()
            incl = ts - t0
            rows.append((name0, incl, incl - child))
            if stack:
                stack[-1][2] += incl
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--fit", default="default", choices=["default", "tiny"])
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp())
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run([sys.executable, "-c", CHILD, args.dtype, args.fit], env=env,
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    rows = exclusive_times(data["events"])
    by_name = {}
    for name, incl, excl in rows:
        agg = by_name.setdefault(name, [0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += incl
        agg[2] += excl
    print(f"child wall {wall:.1f} s, CPU {cpu:.1f} s: import numgru {data['import']:.2f} s, first fit+predict "
          f"({args.dtype}) {data['first']:.1f} s, {len(rows)} compilations, "
          f"{sum(r[2] for r in rows):.1f} s compiling")
    print(f"{'exclusive s':>11s} {'inclusive s':>11s} {'n':>3s}  function")
    for name, (n, incl, excl) in sorted(by_name.items(), key=lambda kv: -kv[1][2])[:args.top]:
        print(f"{excl:11.2f} {incl:11.2f} {n:3d}  {name}")


if __name__ == "__main__":
    main()
