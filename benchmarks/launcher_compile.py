#!/usr/bin/env python3
"""Compile time of the ways to launch a task kernel on Numba's parallel runtime.

    python benchmarks/launcher_compile.py [--rounds 3]

Each measurement is a fresh process with the on-disk cache off (``NUMGRU_NO_CACHE=1``), which
first compiles the GRU forward chunk kernel (``numgru._cpu._gru_forward_after``, float32, a
training forward's types) and then, timed (CPU seconds of this process, so that other work on
a shared machine counts little):

- ``shared``: numgru's Numba runtime (``numgru._numba_runtime``): one ``prange`` launcher plus
  its C function, compiled once per process for every kernel;
- ``per-kernel``: a ``@njit(parallel=True)`` launcher of this one kernel, ``for t in
  prange(ntasks): kernel(ctl, ntasks, t, ...)``, the alternative that needs a launcher per
  kernel (and per specialization).

Rounds alternate the order. Reported: the median CPU seconds of each.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import numpy as np
import numba
from numba import njit, prange
import numgru
from numgru import _cpu, _numba_runtime, _pool
B, T, I, H = 8, 5, 3, 16
f = np.float32
x = np.zeros((B, T, I), f); w_ih = np.zeros((3 * H, I), f); b_ih = np.zeros(3 * H, f)
whh = np.zeros((1, 3 * H, H), f); bhh = np.zeros((1, 3 * H), f); h0 = np.zeros((1, B, H), f)
lengths = np.full(B, T, np.int64); out = np.zeros((B, T, H), f); h_n = np.zeros((1, B, H), f)
gates = np.zeros((1, T, B, 3 * H), f); hn_s = np.zeros((1, T, B, H), f)
hprev = np.zeros((1, T, B, H), f)
args = (x, w_ih, b_ih, whh, bhh, h0, lengths, out, h_n, True, gates, hn_s, hprev, 2)
ctl = _pool.native_ctl()
kernel = _cpu._gru_forward_after
kernel.compile(tuple(numba.typeof(a) for a in (ctl, 2, -1) + args))
t0 = time.process_time()
if sys.argv[1] == "shared":
    _numba_runtime.run_address()
else:
    @njit(parallel=True, nogil=True)
    def per_kernel(ctl, ntasks, x, w_ih, b_ih, whh, bhh, h0, lengths, out, h_n, store, gates,
                   hn_s, hprev, nchunks):
        for t in prange(ntasks):
            kernel(ctl, ntasks, t, x, w_ih, b_ih, whh, bhh, h0, lengths, out, h_n, store, gates,
                   hn_s, hprev, nchunks)
    per_kernel.compile(tuple(numba.typeof(a) for a in (ctl, 2) + args))
print("COMPILE " + json.dumps({"cpu_s": time.process_time() - t0}))
"""


def run(kind):
    env = dict(os.environ, NUMGRU_NO_CACHE="1", PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", CHILD, kind], env=env, capture_output=True,
                         text=True, timeout=900, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("COMPILE ")][-1]
    return json.loads(line[len("COMPILE "):])["cpu_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    kinds = ["shared", "per-kernel"]
    res = {k: [] for k in kinds}
    for r in range(args.rounds):
        for k in (kinds if r % 2 == 0 else kinds[::-1]):
            res[k].append(run(k))
            print(f"round {r} {k}: {res[k][-1]:.2f} CPU s", flush=True)
    for k in kinds:
        print(f"{k}: median {statistics.median(res[k]):.2f} CPU s over {len(res[k])} "
              f"({', '.join(f'{v:.2f}' for v in res[k])})")


if __name__ == "__main__":
    main()
