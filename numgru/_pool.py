"""numgru's native worker pool, one of the two task runtimes that run the CPU kernels' tasks, and
the control block of the runtime in use (:func:`ctl`).

How a task kernel launches itself, and the control block a launch goes through, are in
:mod:`numgru._tasks`; :mod:`numgru._threading` chooses between this pool and Numba's parallel
runtime (:mod:`numgru._numba_runtime`) and makes its block the one :func:`ctl` returns. Here
is the pool's launch function (:func:`_pool_main`, whose address native control blocks hold in
``RUN``) and its workers.

The native pool:

- Its launch publishes (entry address, argument address, ntasks) in the control block, runs
  tasks itself and waits until every task has finished. No Python runs between a launch's
  start and its end, so the workers never need the GIL.
- The workers are Python threads that call :func:`_pool_main` once and stay in it (compiled,
  entered through ctypes, so the GIL is released for their whole life): they poll the control
  block for a new launch for ``WORKER_SPIN_POLLS`` polls (~200 us) after each launch, then sleep
  on a Linux futex until the next launch wakes them.
  Tasks are taken from one shared counter (``NEXT``: launch number << 32 | next task) with a
  compare-and-swap, so a worker that arrives late at a launch can never take a task of the next.
- Which thread runs a task does not change its result (every task writes its own part), so
  results are bit-identical for any number of threads.
- A launch of one task, a launch while another Python thread's launch holds the pool, and every
  launch where there are no workers run all tasks on the calling thread.
- A task that raises: the launch finishes every task, then runs the failing task again on the
  calling thread so that its exception propagates with its own message.

Why a native pool beside Numba's runtime: a ``prange`` launcher per kernel costs as much
compile time as the kernel it launches (the shared launcher of ``_numba_runtime`` does not), and
Numba's OpenMP/TBB workers spin for milliseconds after every region, which on a machine shared
with other busy processes costs every launch a scheduling delay (measured side by side in
docs/changelog.md, "Task runtimes"). Why not Python threads that call ``nogil`` kernels
(this module until 2026-12-01): each launch then costs a wake-up and a GIL hand-over to the
worker, ~30 us on a 2-vCPU VM, and a collision on the GIL (the caller and a worker both back in
Python) costs 100+ us on a VM whose idle vCPU halts. Here an empty launch costs under a
microsecond when the worker is polling (measured in docs/changelog.md, 2026-12-01).

- Thread-safe: concurrent launches from several Python threads are correct (one holds the pool,
  the others run their tasks on their own threads).
- The pool has ``NUMBA_NUM_THREADS - 1`` workers (the caller is the other thread), started on
  the first call of :func:`native_ctl`; how many tasks a launch has is the caller's choice
  (``numba.get_num_threads()`` of the calling thread, see ``_cpu.CPUBackend``). After a ``fork``
  the child starts its own workers. At exit the workers are stopped before the interpreter
  finalises.
- Waiting: Linux (x86-64, aarch64) sleeps on a futex; elsewhere idle workers and waiting
  callers sleep in steps (POSIX: ``POLL_SLEEP_US``; Windows: 1 ms when idle, a yield while a
  launch waits). Only Linux x86-64 has run; elsewhere the default runtime is Numba's.
  ``NUMGRU_POOL_WAIT=poll`` selects the stepped sleep on Linux too (tests run it there),
  ``NUMGRU_POOL_WAIT=none`` starts no workers.
"""

import atexit
import ctypes
import os
import platform
import sys
import threading
import time

from llvmlite import binding as llvm
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import CACHE
from ._tasks import (ALIVE, ARG, BUSY, CALLER_SLEEPING, CLOSED, CSPIN, DONE, ERR, FN, I32, I64,
                     MODE, MODE_FUTEX, MODE_POLL, NEXT, NT, NWORKERS, SEQ, SEQ_MASK, SLEEPERS,
                     STOP, WSPIN, new_ctl)
# the control block's atomics, under the short names the pool's compiled code (and scripts that
# drive the pool by hand) use
from ._tasks import atomic_add as _add
from ._tasks import call_entry as _call_entry
from ._tasks import cas as _cas
from ._tasks import field_ptr as _elem_ptr
from ._tasks import load as _load
from ._tasks import store as _store
# the launch of numgru._tasks and the block layout's RUN, named here too: scripts and tests that
# drive the native pool by hand take them from this module
from ._tasks import RUN, launch  # noqa: F401

# how long an idle worker polls for the next launch before it sleeps, and how long a caller
# whose own tasks are done polls for the others' before it sleeps, in polls (one poll with its
# ``pause`` took 25 ns on the 2-vCPU AMD EPYC development VM: ~200 and ~100 us; Intel's
# ``pause`` is longer). Launches of one fit follow each other within tens of microseconds; a
# short poll keeps an idle numgru from taking CPU time from other processes.
WORKER_SPIN_POLLS = 8000
CALLER_SPIN_POLLS = 4000
POLL_SLEEP_US = 50          # the sleep step where there is no futex (POSIX ``usleep``)
# the sleep steps as the platform's sleep function takes them: an idle worker's, and a caller's
# waiting for the last tasks of its launch (Windows' ``Sleep`` counts milliseconds: 1 ms when
# idle, and 0, a yield, while a launch waits)
_IDLE_SLEEP, _WAIT_SLEEP = (1, 0) if sys.platform == "win32" else (POLL_SLEEP_US, POLL_SLEEP_US)

_MACHINE = platform.machine().lower()
_SYS_FUTEX = ({"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(_MACHINE)
              if sys.platform.startswith("linux") else None)
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129


def _register_symbols():
    """Give the compiled code its two system calls by name (resolved when a kernel is loaded,
    from the compile cache too): ``numgru_syscall`` (Linux's futex) and ``numgru_usleep`` (POSIX
    ``usleep``; Windows' ``Sleep``). Returns libc (None on Windows) and what must stay alive."""
    keep = []
    libc = None
    if sys.platform == "win32":
        dummy = ctypes.CFUNCTYPE(None)(lambda: None)      # never called: no futex on Windows
        keep.append(dummy)
        sys_addr = ctypes.cast(dummy, ctypes.c_void_p).value
        sleep_addr = ctypes.cast(ctypes.windll.kernel32.Sleep, ctypes.c_void_p).value
    else:
        libc = ctypes.CDLL(None)            # the process's symbols, libc's among them (no
                                            # find_library: it runs ldconfig, ~50 ms of import)
        sleep_addr = ctypes.cast(libc.usleep, ctypes.c_void_p).value
        sys_addr = (ctypes.cast(libc.syscall, ctypes.c_void_p).value
                    if hasattr(libc, "syscall") else sleep_addr)
    llvm.add_symbol("numgru_syscall", sys_addr)
    llvm.add_symbol("numgru_usleep", sleep_addr)
    return libc, keep


_LIBC, _KEEP = None, []     # set by _compiled(), with the symbols, before the pool compiles


@intrinsic
def _pause(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``, ARM ``yield``), else nothing."""
    def codegen(context, builder, sig, args):
        if _MACHINE in ("x86_64", "amd64"):
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        elif _MACHINE in ("aarch64", "arm64"):
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [I32]), "llvm.aarch64.hint")
            builder.call(fn, [I32(1)])
        return context.get_dummy_value()
    return types.void(), codegen


def _futex(context, builder, sig, args, op):
    fnty = ir.FunctionType(I64, [I64], var_arg=True)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "numgru_syscall")
    p = builder.ptrtoint(_elem_ptr(context, builder, sig.args[0], args[0], args[1]), I64)
    builder.call(fn, [I64(_SYS_FUTEX or 0), p, I32(op), builder.trunc(args[2], I32), I64(0),
                      I64(0), I32(0)])
    return context.get_dummy_value()


@intrinsic
def _futex_wait(typingctx, ctl, i, expected):
    """Sleep while the low 32 bits of ctl[i] equal ``expected`` (may return early)."""
    def codegen(context, builder, sig, args):
        return _futex(context, builder, sig, args, _FUTEX_WAIT_PRIVATE)
    return types.void(ctl, i, types.int64), codegen


@intrinsic
def _futex_wake(typingctx, ctl, i, n):
    """Wake up to ``n`` threads sleeping on ctl[i]."""
    def codegen(context, builder, sig, args):
        return _futex(context, builder, sig, args, _FUTEX_WAKE_PRIVATE)
    return types.void(ctl, i, types.int64), codegen


@intrinsic
def _usleep(typingctx, us):
    """Sleep ``us`` microseconds (POSIX ``usleep``; on Windows ``Sleep``, in milliseconds)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(I32, [I32]),
                                            "numgru_usleep")
        builder.call(fn, [builder.trunc(args[0], I32)])
        return context.get_dummy_value()
    return types.void(types.int64), codegen


def _pool_main(ctl, ntasks, fn, argp):
    """The native pool's one C function (one function, so that a cold start compiles one small
    thing). Two roles:

    - ``ntasks >= 0``: the calling thread's side of a launch of ``ntasks`` tasks of the entry
      ``fn`` on the arguments at ``argp``: publish it, take tasks, wait for the rest; returns
      0, or 1 + the first task that raised.
    - ``ntasks < 0``: a worker's whole life: take tasks of each new launch; poll, then sleep,
      in between; returns when the pool is stopped.
    """
    caller = ntasks >= 0
    if caller:
        if ntasks == 0:
            return 0
        if ntasks == 1 or _load(ctl, ALIVE) == 0 or _cas(ctl, BUSY, 0, 1) != 0:
            err = 0                              # on this thread alone
            for t in range(ntasks):
                if _call_entry(fn, t, ntasks, argp) != 0 and err == 0:
                    err = t + 1
            return err
        seq = (_load(ctl, SEQ) + 1) & SEQ_MASK
        _store(ctl, NEXT, (seq << 32) | CLOSED)  # first: no late worker takes a task of it
        _store(ctl, FN, fn)
        _store(ctl, ARG, argp)
        _store(ctl, NT, ntasks)
        _store(ctl, DONE, 0)
        _store(ctl, ERR, 0)
        _store(ctl, NEXT, seq << 32)
        _store(ctl, SEQ, seq)
        if _load(ctl, SLEEPERS) > 0 and _load(ctl, MODE) == MODE_FUTEX:
            _futex_wake(ctl, SEQ, min(ntasks - 1, _load(ctl, NWORKERS)))
    else:
        _add(ctl, ALIVE, 1)
        seq = _load(ctl, SEQ)
    while True:
        if not caller:                           # wait for the next launch
            i = 0
            spin = _load(ctl, WSPIN)
            s = _load(ctl, SEQ)
            while s == seq:
                i += 1
                if i > spin:
                    _add(ctl, SLEEPERS, 1)
                    if _load(ctl, SEQ) == seq:
                        if _load(ctl, MODE) == MODE_FUTEX:
                            _futex_wait(ctl, SEQ, seq)
                        else:
                            _usleep(_IDLE_SLEEP)
                    _add(ctl, SLEEPERS, -1)
                    i = 0
                else:
                    _pause()
                s = _load(ctl, SEQ)
            seq = s
            if _load(ctl, STOP) != 0:
                break
        while True:                              # take tasks of launch seq until none is left
            w = _load(ctl, NEXT)
            if (w >> 32) != seq:
                break
            t = w & CLOSED
            f = _load(ctl, FN)
            a = _load(ctl, ARG)
            n = _load(ctl, NT)
            if t >= n:
                break
            # NEXT changes first whenever a launch is published: if it is still w, the three
            # fields just read belong to launch seq, and task t is this thread's
            if _cas(ctl, NEXT, w, w + 1) != w:
                continue
            if _call_entry(f, t, n, a) != 0:
                _cas(ctl, ERR, 0, t + 1)
            if _add(ctl, DONE, 1) + 1 == n and _load(ctl, CALLER_SLEEPING) != 0:
                if _load(ctl, MODE) == MODE_FUTEX:
                    _futex_wake(ctl, DONE, 1)
        if caller:
            break
    if not caller:
        _add(ctl, ALIVE, -1)
        return 0
    i = 0                                        # wait for the others' tasks
    spin = _load(ctl, CSPIN)
    while True:
        d = _load(ctl, DONE)
        if d >= ntasks:
            break
        i += 1
        if i > spin:
            _store(ctl, CALLER_SLEEPING, 1)
            d = _load(ctl, DONE)
            if d < ntasks:
                if _load(ctl, MODE) == MODE_FUTEX:
                    _futex_wait(ctl, DONE, d)
                else:
                    _usleep(_WAIT_SLEEP)
            _store(ctl, CALLER_SLEEPING, 0)
        else:
            _pause()
    err = _load(ctl, ERR)
    _store(ctl, BUSY, 0)
    return err


# ---------------------------------------------------------------------------------------------
# The runtime in use
# ---------------------------------------------------------------------------------------------

_active = None       # the control block of the runtime in use (see use())
_starter = None      # starts the runtime to use and returns its block (see start_with())


def ctl():
    """The control block of the task runtime in use, for a launcher's first argument: the
    native pool's or Numba's parallel runtime's. The first call starts the runtime to use
    (through the function given to :func:`start_with`), and so does the first after
    ``use(None)``, :func:`stop` or a fork."""
    c = _active
    if c is not None:
        return c
    return _starter()


def active():
    """The control block :func:`ctl` returns now, or None when no runtime is started."""
    return _active


def use(c):
    """Make ``c`` the control block every launch uses (None: start one at the next launch)."""
    global _active
    _active = c


def start_with(starter):
    """Install the function that starts the runtime to use and returns its control block.

    :mod:`numgru._threading` installs its ``activate`` when it is imported (which
    ``import numgru`` does): it knows both runtimes and how to choose between them, and this
    module is one of them, so the choice is handed down rather than imported up.
    """
    global _starter
    _starter = starter


# ---------------------------------------------------------------------------------------------
# The workers
# ---------------------------------------------------------------------------------------------

_ctl = None          # the native pool's control block, once started
_threads = []
_lock = threading.Lock()


def wait_mode():
    """"futex", "poll" or "none" (no workers: every launch runs on the calling thread)."""
    mode = os.environ.get("NUMGRU_POOL_WAIT", "").strip().lower()
    if mode in ("poll", "none"):
        return mode
    return "futex" if _SYS_FUTEX is not None else "poll"


_CFUNCS = {}


def _compiled():
    """The pool's compiled entry point, once per process (from the on-disk cache when there):
    :func:`_pool_main` as a C function with a pointer argument, whose address native control
    blocks hold (``RUN``) for every launch to call (nothing of the pool is compiled into each
    kernel). A worker thread enters it through ctypes, which releases the GIL for the call."""
    global _LIBC, _KEEP
    if not _CFUNCS:
        if _LIBC is None and not _KEEP:
            _LIBC, _KEEP = _register_symbols()
        ptr = types.CPointer(types.int64)
        run = cfunc(types.int64(ptr, types.int64, types.int64, types.int64), nogil=True,
                    cache=CACHE)(_pool_main)
        _CFUNCS["ctypes"] = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                             ctypes.c_int64, ctypes.c_int64)(run.address)
        _CFUNCS["run"] = run
    return _CFUNCS


def native_ctl():
    """The native pool's control block; starts its workers on the first call (and after
    :func:`stop` or a fork). Raises if the pool's compiled code cannot be built here."""
    c = _ctl
    return c if c is not None else _start()


def _start():
    global _ctl
    with _lock:
        if _ctl is None:
            import numba

            funcs = _compiled()
            c = new_ctl(funcs["run"].address)
            mode = wait_mode()
            c[MODE] = MODE_FUTEX if mode == "futex" else MODE_POLL
            nworkers = 0 if mode == "none" else max(0, numba.config.NUMBA_NUM_THREADS - 1)
            c[NWORKERS] = nworkers
            c[WSPIN] = WORKER_SPIN_POLLS
            c[CSPIN] = CALLER_SPIN_POLLS
            for k in range(nworkers):
                t = threading.Thread(target=funcs["ctypes"], args=(c.ctypes.data, -1, 0, 0),
                                     daemon=True, name=f"numgru-worker-{k}")
                t.start()
                _threads.append(t)
            _ctl = c
        return _ctl


def _wake_all(c):
    """Wake every worker sleeping on the control block ``c`` (futex mode)."""
    if c[MODE] == MODE_FUTEX and _LIBC is not None:
        _LIBC.syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(c.ctypes.data + 8 * SEQ),
                      ctypes.c_int(_FUTEX_WAKE_PRIVATE), ctypes.c_int(1 << 30),
                      ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_int(0))


def stop(timeout=2.0):
    """Stop the native pool's workers (at exit: none may still run compiled code while the
    interpreter finalises). Later launches start new ones."""
    global _ctl, _active
    with _lock:
        c = _ctl
        if c is None:
            return
        _ctl = None
        if _active is c:
            _active = None
        threads = list(_threads)
        _threads.clear()
        if not threads:
            return
        c[STOP] = 1
        c[SEQ] = (c[SEQ] + 1) & SEQ_MASK
        _wake_all(c)
        t0 = time.monotonic()
        while c[ALIVE] > 0 and time.monotonic() - t0 < timeout:
            time.sleep(0.0005)
        for t in threads:
            t.join(max(0.0, timeout - (time.monotonic() - t0)))


def _after_fork():
    global _ctl, _lock, _active
    _ctl = None
    _active = None
    _threads.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(stop)
