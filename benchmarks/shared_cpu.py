#!/usr/bin/env python3
"""A numgru fit on a shared machine: alone, beside a busy process, and two fits at once.

    python benchmarks/shared_cpu.py [--tree CHECKOUT ...] [--rounds 3] [--epochs 4]

Each fit is a fresh process (the kernels already in the on-disk cache: a warm-up fit runs
first) fitting the default ``GRURegressor`` (64 units, float32) on 512 sequences of 50 steps.
Per round and tree, wall times of: the fit alone; the fit while ``python -c "while True:
pass"`` runs beside it (a busy neighbour); two fits started together (until both end). Trees
(``--tree``, each a checkout whose numgru/ is imported) are measured in a rotating order within
each round. Reported: medians over rounds, and the ratios busy/alone (a fair share of two
cores would allow 2 on a 2-core machine... with one core taken, fair is at most 2) and
together/(2 x alone) (<= 1: two fits at once finish no later than one after the other).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

FIT = r"""
import sys, warnings
import numpy as np
import numgru
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X = rng.standard_normal((512, 50, 3)).astype(np.float32)
y = X[:, :, 0].sum(axis=1)
numgru.GRURegressor(max_iter=int(sys.argv[1]), random_state=0, tol=0.0).fit(X, y).predict(X)
"""


def start_fit(tree, epochs):
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.path.abspath(tree)
    return subprocess.Popen([sys.executable, "-c", FIT, str(epochs)], env=env)


def timed(procs):
    t0 = time.perf_counter()
    for p in procs:
        if p.wait() != 0:
            sys.exit("a fit failed")
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    trees = args.tree or [None]
    for tree in trees:                                 # warm-up: compile into the caches
        timed([start_fit(tree, 1)])
    res = {t: {"alone": [], "busy": [], "two": []} for t in trees}
    for r in range(args.rounds):
        order = trees[r % len(trees):] + trees[:r % len(trees)]
        for tree in order:
            res[tree]["alone"].append(timed([start_fit(tree, args.epochs)]))
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
            res[tree]["busy"].append(timed([start_fit(tree, args.epochs)]))
            hog.kill()
            hog.wait()
            res[tree]["two"].append(timed([start_fit(tree, args.epochs),
                                           start_fit(tree, args.epochs)]))
            print(f"round {r} {tree}: " + ", ".join(f"{k} {v[-1]:.2f} s"
                                                    for k, v in res[tree].items()), flush=True)
    print(f"{'tree':30s} {'alone s':>8s} {'busy s':>8s} {'two s':>8s} {'busy/alone':>10s} "
          f"{'two/(2 alone)':>13s}")
    for tree, v in res.items():
        m = {k: statistics.median(x) for k, x in v.items()}
        print(f"{str(tree):30s} {m['alone']:8.2f} {m['busy']:8.2f} {m['two']:8.2f} "
              f"{m['busy'] / m['alone']:10.2f} {m['two'] / (2 * m['alone']):13.2f}")


if __name__ == "__main__":
    main()
