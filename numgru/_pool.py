"""The CPU kernels' thread pool: native worker threads that run compiled tasks side by side.

A launch runs ``kernel(task, ntasks, *args)`` for every task in ``range(ntasks)`` (one chunk of
batch rows of a recurrence, one block of rows of a product, ...). It is written inside a small
compiled *launcher*, one per kernel::

    @njit(nogil=True, cache=CACHE)
    def _gemm_launch(ctl, ntasks, A, W, bias, C):
        _pool.launch(ctl, ntasks, _gemm_task, (A, W, bias, C))

and called from Python as ``_gemm_launch(_pool.ctl(), ntasks, A, W, bias, C)``. How it works:

- ``launch`` compiles the kernel's body into the launcher (it is never compiled on its own, so it
  costs its compile once) together with a small *entry* function ``int32(task, ntasks, argp)``
  that reads the argument tuple from ``argp`` and calls it. The launcher keeps the tuple on its
  stack, publishes (entry address, tuple address, ntasks) in the control block ``ctl``, runs
  tasks itself and waits until every task has finished. No Python runs between a launch's start
  and its end, so the workers never need the GIL.
- The workers are Python threads that call :func:`_worker_loop` once and stay in it (compiled,
  GIL released): they poll the control block for a new launch for ``~WORKER_SPIN_US``
  microseconds after each launch, then sleep on a Linux futex until the next launch wakes them.
  Tasks are taken from one shared counter (``NEXT``: launch number << 32 | next task) with a
  compare-and-swap, so a worker that arrives late at a launch can never take a task of the next.
- Which thread runs a task does not change its result (every task writes its own part), so
  results are bit-identical for any number of threads.
- A launch of one task, a launch while another Python thread's launch holds the pool, and every
  launch where there are no workers run all tasks on the calling thread.
- A task that raises: the launch finishes every task, then runs the failing task again on the
  calling thread so that its exception propagates with its own message.

Why not ``@njit(parallel=True)`` with ``prange``: the parallel launchers cost as much compile
time as the kernels they launch, and Numba's OpenMP/TBB workers spin for milliseconds after every
region, which on a machine shared with other busy processes costs every launch a scheduling
delay. Why not Python threads that call ``nogil`` kernels (this module until 2026-12-01): each
launch then costs a wake-up and a GIL hand-over to the worker, ~30 us on a 2-vCPU VM, and a
collision on the GIL (the caller and a worker both back in Python) costs 100+ us on a VM whose
idle vCPU halts. Here an empty launch costs under a microsecond when the worker is polling
(measured in docs/performance.md, 2026-12-01).

- Thread-safe: concurrent launches from several Python threads are correct (one holds the pool,
  the others run their tasks on their own threads).
- The pool has ``NUMBA_NUM_THREADS - 1`` workers (the caller is the other thread), started on
  the first call of :func:`ctl`; how many tasks a launch has is the caller's choice
  (``numba.get_num_threads()`` of the calling thread, see ``_cpu.CPUBackend``). After a ``fork``
  the child starts its own workers. At exit the workers are stopped before the interpreter
  finalises.
- Waiting: Linux (x86-64, aarch64) sleeps on a futex; other POSIX systems sleep in steps of
  ``POLL_SLEEP_US`` (``NUMGRU_POOL_WAIT=poll`` selects that on Linux too, for tests); on Windows
  there are no workers and every launch runs on the calling thread.
"""

import atexit
import ctypes
import ctypes.util
import os
import platform
import sys
import threading
import time

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, compiler
from numba.extending import intrinsic

from ._config import CACHE

# how long an idle worker polls for the next launch before it sleeps, and how long a caller
# whose own tasks are done polls for the others' before it sleeps (microseconds; converted to
# polls at start-up). Launches of one fit follow each other within tens of microseconds; a
# short poll keeps an idle numgru from taking CPU time from other processes.
WORKER_SPIN_US = 200
CALLER_SPIN_US = 100
POLL_SLEEP_US = 50          # the sleep step where there is no futex

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_I8P = ir.IntType(8).as_pointer()

# control block: int64 fields; the ones written per launch and per task on their own cache line
SEQ = 0              # launch number (futex word of sleeping workers)
NEXT = 8             # launch number << 32 | next task (CLOSED while a launch is published)
FN, ARG, NT = 9, 10, 11   # entry address, argument tuple address, number of tasks
DONE = 16            # tasks finished (futex word of a sleeping caller)
BUSY = 24            # 1 while a launch holds the pool
SLEEPERS = 32        # workers sleeping on SEQ
CALLER_SLEEPING = 40
ERR = 48             # 1 + the first task that raised, else 0
STOP, ALIVE, WSPIN, CSPIN, MODE, NWORKERS = 56, 57, 58, 59, 60, 61
CTL_SIZE = 64
CLOSED = 0xFFFFFFFF
SEQ_MASK = 0x7FFFFFFF
MODE_FUTEX, MODE_POLL = 0, 1

_MACHINE = platform.machine().lower()
_SYS_FUTEX = ({"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(_MACHINE)
              if sys.platform.startswith("linux") else None)
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129


def _register_symbols():
    """Give the compiled code its two system calls by name (resolved when a kernel is loaded,
    from the compile cache too): ``numgru_syscall`` (Linux's futex) and ``numgru_usleep``."""
    keep = []
    if sys.platform == "win32":
        dummy = ctypes.CFUNCTYPE(None)(lambda: None)      # never called: no workers on Windows
        keep.append(dummy)
        sys_addr = sleep_addr = ctypes.cast(dummy, ctypes.c_void_p).value
    else:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        sleep_addr = ctypes.cast(libc.usleep, ctypes.c_void_p).value
        sys_addr = (ctypes.cast(libc.syscall, ctypes.c_void_p).value
                    if hasattr(libc, "syscall") else sleep_addr)
    llvm.add_symbol("numgru_syscall", sys_addr)
    llvm.add_symbol("numgru_usleep", sleep_addr)
    return keep


_KEEP = _register_symbols()


def _elem_ptr(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return builder.gep(ary.data, [idx])


@intrinsic
def _load(typingctx, ctl, i):
    """ctl[i], an atomic (sequentially consistent) load."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_elem_ptr(context, builder, sig.args[0], *args), "seq_cst", 8)
    return types.int64(ctl, i), codegen


@intrinsic
def _store(typingctx, ctl, i, v):
    """ctl[i] = v, an atomic (sequentially consistent) store."""
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _elem_ptr(context, builder, sig.args[0], args[0], args[1]),
                             "seq_cst", 8)
        return context.get_dummy_value()
    return types.void(ctl, i, types.int64), codegen


@intrinsic
def _add(typingctx, ctl, i, v):
    """ctl[i] += v, atomically; returns the old value."""
    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _elem_ptr(context, builder, sig.args[0], args[0],
                                                   args[1]), args[2], "seq_cst")
    return types.int64(ctl, i, types.int64), codegen


@intrinsic
def _cas(typingctx, ctl, i, expected, new):
    """ctl[i] = new if ctl[i] == expected, atomically; returns the old value."""
    def codegen(context, builder, sig, args):
        res = builder.cmpxchg(_elem_ptr(context, builder, sig.args[0], args[0], args[1]),
                              args[2], args[3], "seq_cst", "seq_cst")
        return builder.extract_value(res, 0)
    return types.int64(ctl, i, types.int64, types.int64), codegen


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
                builder.module, ir.FunctionType(ir.VoidType(), [_I32]), "llvm.aarch64.hint")
            builder.call(fn, [_I32(1)])
        return context.get_dummy_value()
    return types.void(), codegen


def _futex(context, builder, sig, args, op):
    fnty = ir.FunctionType(_I64, [_I64], var_arg=True)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "numgru_syscall")
    p = builder.ptrtoint(_elem_ptr(context, builder, sig.args[0], args[0], args[1]), _I64)
    builder.call(fn, [_I64(_SYS_FUTEX or 0), p, _I32(op), builder.trunc(args[2], _I32), _I64(0),
                      _I64(0), _I32(0)])
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
    """Sleep ``us`` microseconds (POSIX ``usleep``)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_I32]),
                                            "numgru_usleep")
        builder.call(fn, [builder.trunc(args[0], _I32)])
        return context.get_dummy_value()
    return types.void(types.int64), codegen


_ENTRY_FNTY = ir.FunctionType(_I32, [_I64, _I64, _I8P])


@intrinsic
def _call_entry(typingctx, fn, task, ntasks, argp):
    """Call the entry at address ``fn`` for one task: returns 0, or 1 if the task raised."""
    def codegen(context, builder, sig, args):
        f = builder.inttoptr(args[0], _ENTRY_FNTY.as_pointer())
        st = builder.call(f, [args[1], args[2], builder.inttoptr(args[3], _I8P)])
        return builder.zext(st, _I64)
    return types.int64(types.int64, types.int64, types.int64, types.int64), codegen


@njit(nogil=True, cache=CACHE)
def _wait_change(ctl, i, old):
    """Sleep until ctl[i] differs from ``old`` (or may have: the callers re-check)."""
    if _load(ctl, MODE) == MODE_FUTEX:
        _futex_wait(ctl, i, old)
    else:
        _usleep(POLL_SLEEP_US)


@njit(nogil=True, cache=CACHE)
def _take_tasks(ctl, seq):
    """Run tasks of launch ``seq`` until none is left."""
    while True:
        w = _load(ctl, NEXT)
        if (w >> 32) != seq:
            return
        t = w & CLOSED
        fn = _load(ctl, FN)
        argp = _load(ctl, ARG)
        n = _load(ctl, NT)
        if t >= n:
            return
        # NEXT changes first whenever a launch is published: if it is still w, the three
        # fields just read belong to launch seq, and task t is this thread's
        if _cas(ctl, NEXT, w, w + 1) != w:
            continue
        if _call_entry(fn, t, n, argp) != 0:
            _cas(ctl, ERR, 0, t + 1)
        if _add(ctl, DONE, 1) + 1 == n and _load(ctl, CALLER_SLEEPING) != 0:
            if _load(ctl, MODE) == MODE_FUTEX:
                _futex_wake(ctl, DONE, 1)


@njit(nogil=True, cache=CACHE)
def _worker_loop(ctl):
    """A worker's whole life: take tasks of each new launch; poll, then sleep, in between."""
    _add(ctl, ALIVE, 1)
    seen = _load(ctl, SEQ)
    while True:
        i = 0
        spin = _load(ctl, WSPIN)
        while True:
            s = _load(ctl, SEQ)
            if s != seen:
                break
            i += 1
            if i > spin:
                _add(ctl, SLEEPERS, 1)
                if _load(ctl, SEQ) == seen:
                    _wait_change(ctl, SEQ, seen)
                _add(ctl, SLEEPERS, -1)
                i = 0
            else:
                _pause()
        seen = s
        if _load(ctl, STOP) != 0:
            break
        _take_tasks(ctl, s)
    _add(ctl, ALIVE, -1)


def _run_impl(ctl, ntasks, fn, argp):
    """The calling thread's side of a launch; returns 0, or 1 + the first task that raised."""
    if ntasks <= 0:
        return 0
    if ntasks == 1 or _load(ctl, ALIVE) == 0 or _cas(ctl, BUSY, 0, 1) != 0:
        err = 0
        for t in range(ntasks):
            if _call_entry(fn, t, ntasks, argp) != 0 and err == 0:
                err = t + 1
        return err
    seq = (_load(ctl, SEQ) + 1) & SEQ_MASK
    _store(ctl, NEXT, (seq << 32) | CLOSED)
    _store(ctl, FN, fn)
    _store(ctl, ARG, argp)
    _store(ctl, NT, ntasks)
    _store(ctl, DONE, 0)
    _store(ctl, ERR, 0)
    _store(ctl, NEXT, seq << 32)
    _store(ctl, SEQ, seq)
    if _load(ctl, SLEEPERS) > 0 and _load(ctl, MODE) == MODE_FUTEX:
        _futex_wake(ctl, SEQ, min(ntasks - 1, _load(ctl, NWORKERS)))
    _take_tasks(ctl, seq)
    i = 0
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
                _wait_change(ctl, DONE, d)
            _store(ctl, CALLER_SLEEPING, 0)
        else:
            _pause()
    err = _load(ctl, ERR)
    _store(ctl, BUSY, 0)
    return err


def _kernel_flags(disp):
    """The kernel's own compile options (fastmath, error model, ...) as compiler flags, for a
    body compiled into its launcher."""
    flags = compiler.Flags()
    disp.targetdescr.options.parse_as_flags(flags, disp.targetoptions)
    flags.no_compile = True
    flags.no_cpython_wrapper = True
    flags.no_cfunc_wrapper = True
    return flags


@intrinsic
def launch(typingctx, ctl, ntasks, kernel, args):
    """Run ``kernel(task, ntasks, *args)`` for task in range(ntasks) on the pool (see the module
    docstring). ``kernel`` is a global ``@njit`` function (its body is compiled here, not by its
    own dispatcher); ``args`` is a tuple."""
    if not isinstance(kernel, types.Dispatcher) or not isinstance(args, types.BaseTuple) \
            or not isinstance(ntasks, types.Integer):
        return None
    disp = kernel.dispatcher
    ksig = types.none(types.int64, types.int64, *args.types)
    sig = types.void(ctl, ntasks, kernel, args)

    def codegen(context, builder, signature, llargs):
        ctl_v, n_v, _, tup = llargs
        n_v = context.cast(builder, n_v, signature.args[1], types.int64)
        cres = context.compile_subroutine(builder, disp.py_func, ksig, flags=_kernel_flags(disp))
        mod = builder.module
        name = "numgru_entry." + cres.fndesc.mangled_name
        entry = mod.globals.get(name)
        if entry is None:
            entry = ir.Function(mod, _ENTRY_FNTY, name=name)
            entry.linkage = "internal"
            b = ir.IRBuilder(entry.append_basic_block("entry"))
            task, nt, argp = entry.args
            vals = b.load(b.bitcast(argp, context.get_value_type(args).as_pointer()))
            items = [b.extract_value(vals, k) for k in range(len(args))]
            status, _ = context.call_conv.call_function(
                b, context.declare_function(mod, cres.fndesc), types.none, ksig.args,
                [task, nt] + items)
            b.ret(b.select(status.is_error, _I32(1), _I32(0)))
        argp = cgutils.alloca_once_value(builder, tup)
        run_sig = types.int64(signature.args[0], types.int64, types.int64, types.int64)
        err = context.compile_internal(builder, _run_impl, run_sig,
                                       [ctl_v, n_v, builder.ptrtoint(entry, _I64),
                                        builder.ptrtoint(argp, _I64)])
        with cgutils.if_unlikely(builder, builder.icmp_signed("!=", err, _I64(0))):
            # every task has finished; run the failing one again here, so that its own
            # exception propagates (a task that fails only on a worker still raises, below)
            items = [builder.extract_value(tup, k) for k in range(len(args))]
            context.call_internal(builder, cres.fndesc, ksig,
                                  [builder.sub(err, _I64(1)), n_v] + items)
            context.call_conv.return_user_exc(
                builder, RuntimeError, ("a numgru kernel task failed on a worker thread",))
        return context.get_dummy_value()

    return sig, codegen


# ---------------------------------------------------------------------------------------------
# The workers
# ---------------------------------------------------------------------------------------------

_ctl = None
_threads = []
_lock = threading.Lock()


def ctl():
    """The pool's control block, for a launcher's first argument (starts the workers once)."""
    c = _ctl
    return c if c is not None else _start()


def wait_mode():
    """"futex", "poll" or "none" (no workers: every launch runs on the calling thread)."""
    if sys.platform == "win32":
        return "none"
    mode = os.environ.get("NUMGRU_POOL_WAIT", "").strip().lower()
    if mode in ("poll", "none"):
        return mode
    return "futex" if _SYS_FUTEX is not None else "poll"


@njit(nogil=True, cache=CACHE)
def _probe(ctl, n):
    """n polls of the kind the waits make (to convert the spin times into counts)."""
    s = 0
    for i in range(n):
        s += _load(ctl, SEQ)
        _pause()
    return s


def _start():
    global _ctl
    with _lock:
        if _ctl is None:
            import numba

            c = np.zeros(CTL_SIZE, dtype=np.int64)
            mode = wait_mode()
            c[MODE] = MODE_FUTEX if mode == "futex" else MODE_POLL
            nworkers = 0 if mode == "none" else max(0, numba.config.NUMBA_NUM_THREADS - 1)
            c[NWORKERS] = nworkers
            if nworkers:
                _probe(c, 1000)
                t0 = time.perf_counter()
                _probe(c, 20000)
                per_poll_us = max((time.perf_counter() - t0) / 20000 * 1e6, 1e-3)
                c[WSPIN] = int(WORKER_SPIN_US / per_poll_us)
                c[CSPIN] = int(CALLER_SPIN_US / per_poll_us)
                for k in range(nworkers):
                    t = threading.Thread(target=_worker_loop, args=(c,), daemon=True,
                                         name=f"numgru-worker-{k}")
                    t.start()
                    _threads.append(t)
            _ctl = c
        return _ctl


@njit(nogil=True, cache=CACHE)
def _wake_all(ctl):
    if _load(ctl, MODE) == MODE_FUTEX:
        _futex_wake(ctl, SEQ, 1 << 30)


def stop(timeout=2.0):
    """Stop the workers (at exit: none may still run compiled code while the interpreter
    finalises). Later launches start new ones."""
    global _ctl
    with _lock:
        c = _ctl
        if c is None:
            return
        _ctl = None
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
    global _ctl, _lock
    _ctl = None
    _threads.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(stop)
