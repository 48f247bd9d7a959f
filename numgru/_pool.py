"""The CPU kernels' thread pool: Python threads that run compiled ``nogil`` kernels side by side.

A launch of ``ntasks`` tasks (one chunk of batch rows of a recurrence, one block of rows of a
product, ...) calls ``fn(task)`` for every task in ``range(ntasks)``, each a call of a serial
Numba kernel compiled with ``nogil=True``, which releases the GIL while it runs. The calling
thread takes tasks itself; ``ntasks - 1`` wake-ups are posted to a shared pool of worker threads
that take tasks of the same launch until none is left. Which thread runs a task does not change
its result (every task writes its own part), so results are bit-identical for any number of
threads.

Why not ``@njit(parallel=True)`` with ``prange``: the parallel launchers cost as much compile
time as the kernels they launch (LLVM optimises the inlined chunk again in the parallel region)
and Numba's OpenMP/TBB workers spin while they wait, which on a machine shared with other busy
processes costs every launch a scheduling delay. These workers block (a passive wait): an idle
numgru costs no CPU and two numgru processes do not fight over spinning pools. Only a caller
whose own tasks are done spins, briefly and with the GIL released, for the rest of its launch
(``_SPIN``) before it blocks.

The cost: a launch here takes ~30 us more than on a spinning OpenMP pool when the machine is
quiet (a blocked worker's wake-up and the GIL hand-over to it), which shows where a task has
well under a millisecond of work; beside a busy process it is many times faster (measured in
docs/performance.md, 2026-12-01).

- Thread-safe: launches from several Python threads at once share the workers; each launch keeps
  its own state (a task counter, a completion lock, its first exception), and a caller whose
  wake-ups wait behind another launch's tasks runs its own tasks itself.
- An exception in a task is raised in the caller after every task of the launch has finished
  (no task still writes into the caller's arrays once it returns).
- The pool has ``NUMBA_NUM_THREADS - 1`` workers (the caller is the other thread), started on
  the first launch of more than one task; how many tasks a launch has is the caller's choice
  (``numba.get_num_threads()`` of the calling thread, see ``_cpu.CPUBackend``). After a
  ``fork`` the child starts its own workers.
"""

import itertools
import os
import queue
import threading

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ._config import CACHE

_lock = threading.Lock()
_queue = None          # wake-ups for the workers: a launch object, or None to stop
_workers = []


class _Launch:
    """One launch: tasks 0..ntasks-1 of ``fn``; taken through a shared counter."""

    __slots__ = ("fn", "ntasks", "next", "done", "finished", "error", "flag")

    def __init__(self, fn, ntasks):
        self.fn = fn
        self.ntasks = ntasks
        self.next = itertools.count()            # next() is atomic under the GIL
        self.done = itertools.count(1)
        self.finished = threading.Lock()
        self.finished.acquire()                  # released by whoever finishes the last task
        self.error = None
        self.flag = np.zeros(1, dtype=np.int64)  # 1 once every task has finished

    def work(self):
        n = self.ntasks
        while True:
            task = next(self.next)
            if task >= n:
                return
            try:
                self.fn(task)
            except BaseException as exc:  # noqa: B036 - re-raised in the caller
                if self.error is None:
                    self.error = exc
            if next(self.done) == n:
                self.finished.release()
                self.flag[0] = 1


def _worker(q):
    while True:
        launch = q.get()
        if launch is None:
            return
        launch.work()


def _start():
    """Start the workers (once per process); returns the queue."""
    global _queue
    with _lock:
        if _queue is None:
            import numba

            q = queue.SimpleQueue()
            for i in range(max(0, numba.config.NUMBA_NUM_THREADS - 1)):
                t = threading.Thread(target=_worker, args=(q,), name=f"numgru-worker-{i}",
                                     daemon=True)
                t.start()
                _workers.append(t)
            _queue = q
        return _queue


def _after_fork():
    global _queue, _lock
    _queue = None
    _workers.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def run(ntasks, fn):
    """Call ``fn(task)`` for task in ``range(ntasks)`` on the calling thread and the pool's
    workers; return when all have finished, raising the first exception one of them raised."""
    if ntasks <= 1:
        if ntasks == 1:
            fn(0)
        return
    q = _queue if _queue is not None else _start()
    launch = _Launch(fn, ntasks)
    for _ in range(min(ntasks - 1, len(_workers))):
        q.put(launch)
    launch.work()
    if not launch.finished.acquire(False):
        # spin (GIL released) a little before blocking: a blocked caller's wake-up costs a
        # thread switch at the end of every launch (15-40 us; with the spin, ~5)
        _spin(launch.flag, _SPIN)
        launch.finished.acquire()
    if launch.error is not None:
        raise launch.error


# polls of the completion flag before the caller blocks (~1 ns each, so some tens of
# microseconds: about the lag of a woken worker behind the caller, measured 15-40 us on a 2-vCPU
# VM; kept short, because a caller spinning on its core keeps a descheduled worker from moving
# there when another process is busy on the other)
_SPIN = 50_000


@intrinsic
def _load_acquire(typingctx, flag):
    """flag[0] read with an atomic (acquire) load: never hoisted out of a polling loop."""
    sig = types.int64(flag)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ld = builder.load_atomic(ary.data, "acquire", 8)
        return ld

    return sig, codegen


@njit(nogil=True, cache=CACHE)
def _spin(flag, n):
    """Poll flag[0] (GIL released) until it is set or n polls have passed; then a few more
    polls, so that the thread that set it has released the GIL when the caller returns."""
    for i in range(n):
        if _load_acquire(flag) != 0:
            for j in range(2000):
                _load_acquire(flag)
            return True
    return False
