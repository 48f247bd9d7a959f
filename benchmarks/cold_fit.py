#!/usr/bin/env python3
"""Cold and warm first fit + predict of an estimator, each in a fresh process: CPU time and wall.

    python benchmarks/cold_fit.py [--tree CHECKOUT] [--dtype float32,float64] [--repeat 1]
                                  [--ahead on|off|both]

For each dtype a child process starts with an empty Numba cache (``NUMBA_CACHE_DIR`` a fresh
temporary directory, the cache on, as a new user meets it), imports numgru and runs a first
``GRURegressor`` fit + predict; then a second child with the same, now filled, cache runs it
again (the warm first call: kernels loaded from disk). The estimator is the default one (64
units) on 256 sequences of 20 steps and 3 features, 2 epochs: batches of 200 rows, so the
recurrences split into one chunk per thread, as in a real fit (the tiny fit of
``cold_start_profile.py`` runs on one chunk and compiles less).

Reported per child: the CPU seconds it used (user + sys, from ``getrusage(RUSAGE_CHILDREN)``:
compile work, which barely depends on what else runs on the machine), its wall time, and the
time of the first fit + predict inside it. ``--tree`` imports numgru from another checkout
(its ``PYTHONPATH``), to compare revisions under the same conditions. ``--ahead``: ``on``
is numgru's default (``NUMGRU_COMPILE_AHEAD`` unset: a helper process compiles the backward
kernel while the fit compiles the forward when a CPU is idle, ``numgru._compile_ahead``),
``off`` sets ``NUMGRU_COMPILE_AHEAD=0``, and
``both``, on and off in each round (in alternating order) so that both see the same machine. The CPU seconds
include the helper's (the child waits for it).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
import numgru
t_import = time.perf_counter() - t0
dt = sys.argv[1]
rng = np.random.default_rng(0)
X = rng.standard_normal((256, 20, 3)).astype(dt)
y = X[:, :, 0].sum(axis=1)
warnings.simplefilter("ignore")
t1 = time.perf_counter()
reg = numgru.GRURegressor(max_iter=2, random_state=0, dtype=dt).fit(X, y)
p = reg.predict(X)
t_first = time.perf_counter() - t1
assert np.isfinite(p).all()
print("COLD_FIT " + json.dumps({"import": t_import, "first": t_first,
                                "numgru": numgru.__file__}))
"""


def run_child(dtype, cache_dir, tree=None, ahead="on"):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMGRU_COMPILE_AHEAD", None)
    if ahead == "off":
        env["NUMGRU_COMPILE_AHEAD"] = "0"
    env.pop("NUMGRU_NO_CACHE", None)
    if tree:
        env["PYTHONPATH"] = os.path.abspath(tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CHILD, dtype], env=env, capture_output=True,
                         text=True, cwd=cache_dir)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.exit(res.stderr)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("COLD_FIT ")][-1]
    data = json.loads(line.split(" ", 1)[1])
    data["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data["wall"] = wall
    return data


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", default=None, help="checkout whose numgru/ to import")
    p.add_argument("--dtype", default="float32,float64")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--ahead", default="on", choices=["on", "off", "both"])
    args = p.parse_args()
    aheads = ["on", "off"] if args.ahead == "both" else [args.ahead]
    print(f"{'dtype':8s} {'ahead':5s} {'run':5s} {'cpu s':>7s} {'wall s':>7s} {'fit+pred s':>10s}")
    for dtype in args.dtype.split(","):
        rows = {(a, k): [] for a in aheads for k in ("cold", "warm")}
        for r in range(args.repeat):
            for ahead in (aheads if r % 2 == 0 else aheads[::-1]):      # alternate the order
                with tempfile.TemporaryDirectory(prefix="numgru-cold-") as tmp:
                    for kind in ("cold", "warm"):
                        d = run_child(dtype, tmp, args.tree, ahead)
                        rows[ahead, kind].append(d)
                        print(f"{dtype:8s} {ahead:5s} {kind:5s} {d['cpu']:7.2f} {d['wall']:7.2f} "
                              f"{d['first']:10.3f}", flush=True)
        if args.repeat > 1:
            for (ahead, kind), ds in rows.items():
                med = {k: statistics.median(d[k] for d in ds) for k in ("cpu", "wall", "first")}
                print(f"{dtype:8s} {ahead:5s} {kind:5s} {med['cpu']:7.2f} {med['wall']:7.2f} "
                      f"{med['first']:10.3f}  (median of {len(ds)})")
    print(f"numgru: {next(iter(rows.values()))[0]['numgru']}")


if __name__ == "__main__":
    main()
