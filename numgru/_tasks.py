"""Task launches of the CPU kernels: the control block, its atomics and the launch itself.

A launch runs a task kernel for every task in ``range(ntasks)`` (one chunk of batch rows of a
recurrence, one block of rows of a product, ...). A task kernel takes ``(ctl, ntasks, task,
*args)`` and launches itself::

    @njit(nogil=True, cache=CACHE)
    def _gemm_task(ctl, ntasks, task, A, W, bias, C):
        if task < 0:                              # called from Python: run every task
            _tasks.launch(ctl, ntasks, task, (A, W, bias, C))
            return
        ...                                       # the work of task ``task``

called from Python as ``_gemm_task(_pool.ctl(), ntasks, -1, A, W, bias, C)``. How it works:
:func:`launch` adds to the kernel a small *entry* function ``int32(task, ntasks, argp)`` that
reads the kernel's arguments from ``argp`` and calls the kernel itself for one task (the body is
compiled once: no second copy of it anywhere). The launching call keeps the arguments on its
stack and calls the function whose address is in the control block's ``RUN`` field with (ctl,
ntasks, entry address, argument address); it returns when every task has finished. Which
function that is, is the *task runtime*: numgru's native pool (:mod:`numgru._pool`) or Numba's
parallel runtime (:mod:`numgru._numba_runtime`); :mod:`numgru._threading` picks one and makes
its block the one ``numgru._pool.ctl()`` returns. The compiled kernels are the same for both.
The launch calls Numba's calling convention, through :mod:`numgru._numba_internals`.

This module is the floor both runtimes stand on: the control block's layout (one int64 array,
:func:`new_ctl`), the atomic operations on its fields (:func:`load`, :func:`store`,
:func:`atomic_add`, :func:`cas`), :func:`call_entry` (a runtime runs one task through it),
:func:`launch`, and :func:`task_block` / :func:`task_rows` (which items a task owns). It imports
neither runtime.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _numba_internals
from ._config import CACHE

I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8P = ir.IntType(8).as_pointer()

# control block: int64 fields; the ones written per launch and per task on their own cache line.
# SEQ .. NWORKERS and MODE are the native pool's (numgru._pool); RUN is every runtime's;
# EXCLUSIVE and SERIAL are Numba's runtime's (numgru._numba_runtime). One layout for both, so
# that a kernel's launch reads RUN at the same place whichever runtime made the block.
SEQ = 0              # launch number (futex word of sleeping workers)
NEXT = 8             # launch number << 32 | next task (CLOSED while a launch is published)
FN, ARG, NT = 9, 10, 11   # entry address, argument tuple address, number of tasks
DONE = 16            # tasks finished (futex word of a sleeping caller)
BUSY = 24            # 1 while a launch holds the pool
SLEEPERS = 32        # workers sleeping on SEQ
CALLER_SLEEPING = 40
ERR = 48             # 1 + the first task that raised, else 0
STOP, ALIVE, WSPIN, CSPIN, MODE, NWORKERS = 56, 57, 58, 59, 60, 61
RUN = 64             # address of the runtime's launch function, int64(ctl*, ntasks, entry, argp)
EXCLUSIVE = 65       # Numba runtime: 1 if its threading layer allows one parallel region at once
SERIAL = 66          # Numba runtime: 1 if no parallel region may run (every task on the caller)
CTL_SIZE = 72
CLOSED = 0xFFFFFFFF
SEQ_MASK = 0x7FFFFFFF
MODE_FUTEX, MODE_POLL = 0, 1


def field_ptr(context, builder, ctlty, ctl, idx):
    """Address of field ``idx`` of the control block: ``ctl`` an int64 array or pointer."""
    if isinstance(ctlty, types.Array):
        ctl = context.make_array(ctlty)(context, builder, ctl).data
    return builder.gep(ctl, [idx])


@intrinsic
def load(typingctx, ctl, i):
    """ctl[i], an atomic (sequentially consistent) load."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(field_ptr(context, builder, sig.args[0], *args), "seq_cst", 8)
    return types.int64(ctl, i), codegen


@intrinsic
def store(typingctx, ctl, i, v):
    """ctl[i] = v, an atomic (sequentially consistent) store."""
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], field_ptr(context, builder, sig.args[0], args[0], args[1]),
                             "seq_cst", 8)
        return context.get_dummy_value()
    return types.void(ctl, i, types.int64), codegen


@intrinsic
def atomic_add(typingctx, ctl, i, v):
    """ctl[i] += v, atomically; returns the old value."""
    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", field_ptr(context, builder, sig.args[0], args[0],
                                                   args[1]), args[2], "seq_cst")
    return types.int64(ctl, i, types.int64), codegen


@intrinsic
def cas(typingctx, ctl, i, expected, new):
    """ctl[i] = new if ctl[i] == expected, atomically; returns the old value."""
    def codegen(context, builder, sig, args):
        res = builder.cmpxchg(field_ptr(context, builder, sig.args[0], args[0], args[1]),
                              args[2], args[3], "seq_cst", "seq_cst")
        return builder.extract_value(res, 0)
    return types.int64(ctl, i, types.int64, types.int64), codegen



ENTRY_FNTY = ir.FunctionType(I32, [I64, I64, I8P])
RUN_FNTY = ir.FunctionType(I64, [I64.as_pointer(), I64, I64, I64])   # a runtime's launch function


@intrinsic
def call_entry(typingctx, fn, task, ntasks, argp):
    """Call the entry at address ``fn`` for one task: returns 0, or 1 if the task raised."""
    def codegen(context, builder, sig, args):
        f = builder.inttoptr(args[0], ENTRY_FNTY.as_pointer())
        st = builder.call(f, [args[1], args[2], builder.inttoptr(args[3], I8P)])
        return builder.zext(st, I64)
    return types.int64(types.int64, types.int64, types.int64, types.int64), codegen



_ALL_CTL = []       # every control block made: never freed


def new_ctl(run_address):
    """A zeroed control block whose launches call the function at ``run_address``."""
    c = np.zeros(CTL_SIZE, dtype=np.int64)
    c[RUN] = run_address
    _ALL_CTL.append(c)                   # never freed: a worker or a kernel may still read it
    return c



@njit(inline="always", nogil=True, cache=CACHE)
def task_block(task, ntasks, n):
    """Task ``task`` of a launch of ``ntasks`` over n items (rows, columns): items r0..r1-1."""
    return (task * n) // ntasks, ((task + 1) * n) // ntasks


@njit(inline="always", nogil=True, cache=CACHE)
def task_rows(task, nchunks, B):
    """Task ``task`` of a layer launch (``nchunks`` chunks of B batch rows per direction): its
    direction d and batch rows b0..b1-1 (chunk ``task % nchunks`` of direction ``task //
    nchunks``; empty when B < nchunks)."""
    d = task // nchunks
    c = task % nchunks
    return d, (c * B) // nchunks, ((c + 1) * B) // nchunks


@intrinsic
def launch(typingctx, ctl, ntasks, task, args):
    """Run the calling kernel for every task in ``range(ntasks)`` on the pool (see the module
    docstring). The kernel's parameters are ``(ctl, ntasks, task, *args)`` and ``args`` is the
    tuple of the rest, in order; it calls ``launch`` when ``task < 0`` and then returns."""
    if not isinstance(ntasks, types.Integer) or not isinstance(task, types.Integer) \
            or not isinstance(args, types.BaseTuple):
        return None
    argtys = (ctl, ntasks, task) + tuple(args.types)
    stored = types.Tuple(argtys)                 # what a task needs, kept on the caller's stack
    sig = types.void(ctl, ntasks, task, args)

    def codegen(context, builder, signature, llargs):
        _numba_internals.check("launch")
        ctl_v, n_v, task_v, tup = llargs
        kernel = builder.function                # the kernel that calls launch
        if len(kernel.args) != (_numba_internals.CALL_CONV_EXTRA_ARGS
                                + _numba_internals.llvm_arg_count(context, argtys)):
            raise TypeError(f"numgru._tasks.launch: {kernel.name} must take exactly "
                            f"(ctl, ntasks, task, *args), args as passed to launch")
        items = [builder.extract_value(tup, k) for k in range(len(args))]
        mod = builder.module
        name = "numgru_entry." + kernel.name
        entry = mod.globals.get(name)
        if entry is None:
            entry = ir.Function(mod, ENTRY_FNTY, name=name)
            entry.linkage = "internal"
            b = ir.IRBuilder(entry.append_basic_block("entry"))
            t, _, argp = entry.args
            vals = b.load(b.bitcast(argp, context.get_value_type(stored).as_pointer()))
            call_args = [b.extract_value(vals, k) for k in range(len(argtys))]
            call_args[2] = context.cast(b, t, types.int64, task)
            status = _numba_internals.call_function(context, b, kernel, argtys, call_args)
            b.ret(b.select(status.is_error, I32(1), I32(0)))
        packed = context.make_tuple(builder, stored, [ctl_v, n_v, task_v] + items)
        argp = cgutils.alloca_once_value(builder, packed)
        n64 = context.cast(builder, n_v, ntasks, types.int64)
        # the runtime's launch function: its address is in the control block (RUN), so that
        # the compiled kernel does not depend on which runtime runs its tasks
        ctl_p = field_ptr(context, builder, ctl, ctl_v, I64(0))
        run_addr = builder.load_atomic(builder.gep(ctl_p, [I64(RUN)]), "monotonic", 8)
        run = builder.inttoptr(run_addr, RUN_FNTY.as_pointer())
        err = builder.call(run, [ctl_p, n64, builder.ptrtoint(entry, I64),
                                 builder.ptrtoint(argp, I64)])
        with cgutils.if_unlikely(builder, builder.icmp_signed("!=", err, I64(0))):
            # every task has finished; run the failing one again here, so that its own
            # exception propagates (a task that fails only on a worker still raises, below)
            again = context.cast(builder, builder.sub(err, I64(1)), types.int64, task)
            status = _numba_internals.call_function(context, builder, kernel, argtys,
                                                    [ctl_v, n_v, again] + items)
            with cgutils.if_unlikely(builder, status.is_error):
                _numba_internals.propagate(context, builder, status)
            _numba_internals.raise_runtime_error(
                context, builder, "a numgru kernel task failed on a worker thread")
        return context.get_dummy_value()

    return sig, codegen

