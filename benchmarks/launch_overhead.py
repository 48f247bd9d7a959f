#!/usr/bin/env python3
"""What one launch on numgru's task runtime costs: a kernel's tasks alone and on the runtime.

    python benchmarks/launch_overhead.py [--work 2,20,200,2000] [--tasks 2] [--seconds 2]

For each amount of work per task (microseconds, roughly: a serial loop calibrated once), the
median wall time of a launch of ``--tasks`` tasks (``numgru._pool.launch``), against one
task run on the calling thread. With as many threads as tasks, a perfect pool takes the time of
one task: the difference is the launch's overhead (posting it, a worker taking its task, the
caller waiting for the last one). The two are timed interleaved, in blocks, so that drift of a
noisy machine hits both alike. Compare revisions by running it in each checkout, and the task
runtimes with ``NUMGRU_THREADING=native`` / ``numba`` (and ``NUMBA_THREADING_LAYER``).
"""

import argparse
import statistics
import time

import numpy as np
from numba import njit

from numgru import _pool


@njit(nogil=True)
def _work_task(ctl, ntasks, task, out, n):
    if task < 0:
        _pool.launch(ctl, ntasks, task, (out, n))
        return
    s = 0.0
    x = 1.0 + task
    for i in range(n):
        x = x * 0.999999 + 1e-7            # a dependent chain: not vectorised away
        s += x
    out[task] = s


def _time(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="2,20,200,2000", help="microseconds of work per task")
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0, help="per amount of work")
    args = p.parse_args()
    ctl = _pool.ctl()
    out = np.zeros(max(args.tasks, 1))
    _work_task(ctl, args.tasks, -1, out, 10)
    time.sleep(0.5)                          # the workers are up
    # calibrate: iterations per microsecond on one thread
    n = 100_000
    per_us = n / (_time(lambda: _work_task(ctl, 1, -1, out, n), 20) * 1e6)
    import numba

    import numgru

    info = numgru.get_threading()                # NUMGRU_THREADING=numba|native picks it
    nthreads = len(_pool._threads) + 1 if info["runtime"] == "native" else numba.get_num_threads()
    print(f"task runtime: {info['runtime']} (Numba layer {info['layer']}), threads: {nthreads}"
          + (f", wait mode: {_pool.wait_mode()}" if info["runtime"] == "native" else ""))
    print(f"{'work/task us':>12s} {'1 task us':>10s} {f'{args.tasks} tasks us':>10s} "
          f"{'overhead us':>11s} {'speed-up':>8s}")
    for w in (float(v) for v in args.work.split(",")):
        iters = max(1, int(w * per_us))
        one = lambda: _work_task(ctl, 1, -1, out, iters)              # noqa: E731
        many = lambda: _work_task(ctl, args.tasks, -1, out, iters)    # noqa: E731
        reps = max(5, int(0.01 / max(w * 1e-6, 1e-7)))
        t1, tn = [], []
        t_end = time.perf_counter() + args.seconds
        while time.perf_counter() < t_end:
            t1.append(_time(one, reps))
            tn.append(_time(many, reps))
        m1, mn = statistics.median(t1) * 1e6, statistics.median(tn) * 1e6
        ideal = m1 * args.tasks / min(args.tasks, nthreads)
        print(f"{w:12.0f} {m1:10.1f} {mn:10.1f} {mn - ideal:11.1f} "
              f"{m1 * args.tasks / mn:8.2f}")


if __name__ == "__main__":
    main()
