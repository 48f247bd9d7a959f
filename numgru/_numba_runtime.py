"""Numba's parallel runtime as a task runtime: one ``prange`` launcher for every task kernel.

A task kernel launches itself through :func:`numgru._tasks.launch`, which calls the function
whose address is in the control block's ``RUN`` field with (control block, ntasks, entry
address, argument address). Here that function is :func:`_numba_run`, a C function that calls
one ``@njit(parallel=True)`` launcher, :func:`_prange_tasks`, whose ``prange`` over the tasks
calls the kernel's compiled *entry* through its address. So there is one parallel launcher,
compiled once (and cached), for every kernel: no kernel body is compiled a second time into a
launcher of its own, and the same compiled kernels run under either runtime. Measured
(``benchmarks/launcher_compile.py``, docs/changelog.md "Task runtimes"): this launcher
compiles in 0.7 CPU s once per process; a ``prange`` launcher of the GRU forward chunk kernel
alone took 12.6 CPU s, the kernel's body compiled again into it.

The tasks then run on whichever threading layer Numba selected (``numba.threading_layer()``:
tbb, omp or workqueue), with ``numba.get_num_threads()`` threads of the calling thread, and
Numba's own settings (``NUMBA_THREADING_LAYER``, ``numba.set_num_threads``,
``NUMBA_NUM_THREADS``) govern them. Rules per layer:

- ``tbb``, ``omp``: launches from several Python threads at once are safe; they run
  concurrently.
- ``workqueue`` cannot run two parallel regions at once (it aborts the process), so launches
  are serialised: one launch at a time runs as a parallel region, a launch that finds it busy
  (another Python thread's, or a task's nested launch) runs its tasks on its own thread. A
  user's own ``parallel=True`` code running *at the same moment* in another thread is outside
  numgru's reach: use tbb or omp for that.
- ``omp`` with GNU OpenMP cannot run a parallel region in a forked child of a process that ran
  one (libgomp is not fork-safe; Numba terminates the child). In such a child every launch runs
  its tasks on the calling thread (correct, one thread).

Results are the bits of the native pool's for the same number of tasks: every task writes its
own part, whichever thread runs it.
"""

import numpy as np
from numba import cfunc, njit, prange, types

from ._config import CACHE
from ._tasks import BUSY, EXCLUSIVE, SERIAL, call_entry, cas, load, new_ctl, store


@njit(parallel=True, nogil=True, cache=CACHE)
def _prange_tasks(ntasks, fn, argp):
    """Run tasks 0..ntasks-1 of the entry ``fn`` on the arguments at ``argp`` as one parallel
    region; returns 0, or 1 + the first task that raised."""
    errs = np.zeros(ntasks, dtype=np.int64)
    for t in prange(ntasks):
        errs[t] = call_entry(fn, t, ntasks, argp)
    for t in range(ntasks):
        if errs[t] != 0:
            return t + 1
    return 0


def _numba_run(ctl, ntasks, fn, argp):
    """A launch of ``ntasks`` tasks (the ``RUN`` function of a Numba-runtime control block):
    one parallel region, or the tasks on the calling thread when there is one task, when
    parallel regions are off (``SERIAL``) or when the layer allows one region at once
    (``EXCLUSIVE``) and another launch holds it."""
    if ntasks <= 0:
        return 0
    held = False
    serial = ntasks == 1 or load(ctl, SERIAL) != 0
    if not serial and load(ctl, EXCLUSIVE) != 0:
        if cas(ctl, BUSY, 0, 1) == 0:
            held = True
        else:
            serial = True
    if serial:
        err = 0
        for t in range(ntasks):
            if call_entry(fn, t, ntasks, argp) != 0 and err == 0:
                err = t + 1
        return err
    err = _prange_tasks(ntasks, fn, argp)
    if held:
        store(ctl, BUSY, 0)
    return err


_CFUNCS = {}


def run_address():
    """The address of the compiled :func:`_numba_run` (compiled or loaded once per process)."""
    if not _CFUNCS:
        import numba

        numba.get_num_threads()                         # Numba's threading layer is loaded
        ptr = types.CPointer(types.int64)
        _CFUNCS["run"] = cfunc(types.int64(ptr, types.int64, types.int64, types.int64),
                               nogil=True, cache=CACHE)(_numba_run)
    return _CFUNCS["run"].address


def new(exclusive, serial):
    """A control block for launches on Numba's parallel runtime."""
    c = new_ctl(run_address())
    c[EXCLUSIVE] = int(bool(exclusive))
    c[SERIAL] = int(bool(serial))
    return c
