"""A packed, register-blocked matrix product for the recurrence: ``C = A @ W^T``.

Shape legend: M rows of A (a thread's batch rows, or timesteps x rows), K the reduction, N the
output width (3H for the gates). ``W`` (N, K) is constant for all T steps of a layer, so it is
packed once per call into panels of ``NC`` output columns (:func:`pack_nt`), and every step runs
:func:`mm_packed` over them.

Why not BLAS: SciPy's OpenBLAS repacks ``W`` on every call and is tuned for large products; at
the recurrence's shapes a single thread measured (this machine, float32, AVX-512):

=======================  ===========  ==============
(M, K, N)                OpenBLAS     mm_packed
=======================  ===========  ==============
(64, 256, 768) large     120 GFLOP/s  164 GFLOP/s
(16, 128, 384) mid        63 GFLOP/s  149 GFLOP/s
(256, 256, 768)          143 GFLOP/s  161 GFLOP/s
=======================  ===========  ==============

The micro-kernel (:func:`_tile`) is emitted as LLVM IR: a tile of ``ROWS`` = 8 rows by ``NC`` =
2 vectors of columns keeps its 16 vector accumulators in registers for the whole K loop; each
step of the loop loads two vectors of the packed panel, broadcasts one element of each of the 8
rows of A and issues 16 fused multiply-adds. The vector width is the machine's (16 float32 with
AVX-512, else 8), so ``NC`` is 32 (AVX-512) or 16 float32 columns, half that for float64.

Contract of :func:`mm_packed`: A is C-contiguous with a multiple of ``ROWS`` rows (callers pad
with rows they ignore), C is C-contiguous (at least A's rows, P * NC columns); columns of C past
N receive zeros (the packed panels are zero-padded).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import CACHE

ROWS = 8


def _host_vector_bytes():
    """64 with AVX-512 (``avx512f``), else 32 (AVX2 and most others)."""
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        return 64 if features.get("avx512f", False) else 32
    except Exception:  # pragma: no cover - unusual platforms
        return 32


VECTOR_BYTES = _host_vector_bytes()


@intrinsic
def _tile(typingctx, A, i0, Wp, p, C):
    """C[i0:i0+8, p*NC:(p+1)*NC] = A[i0:i0+8, :] @ Wp[p] for Wp[p] of shape (K, NC)."""
    if not (isinstance(A, types.Array) and isinstance(Wp, types.Array)
            and isinstance(C, types.Array)):
        return None
    sig = types.void(A, i0, Wp, p, C)

    def codegen(context, builder, signature, args):
        a_arg, i0_arg, w_arg, p_arg, c_arg = args
        a_arr = context.make_array(signature.args[0])(context, builder, a_arg)
        w_arr = context.make_array(signature.args[2])(context, builder, w_arg)
        c_arr = context.make_array(signature.args[4])(context, builder, c_arg)
        fty = context.get_value_type(signature.args[0].dtype)
        is32 = signature.args[0].dtype == types.float32
        vw = VECTOR_BYTES // (4 if is32 else 8)
        vty = ir.VectorType(fty, vw)
        vptr = vty.as_pointer()
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)

        def as64(v):
            return builder.sext(v, i64) if v.type.width < 64 else v

        K = builder.extract_value(a_arr.shape, 1)
        ldc = builder.extract_value(c_arr.shape, 1)
        i0v = as64(i0_arg)
        pv = as64(p_arg)
        nc = ir.Constant(i64, 2 * vw)
        a_rows = [builder.gep(a_arr.data, [builder.mul(builder.add(i0v, ir.Constant(i64, r)), K)])
                  for r in range(ROWS)]
        w_base = builder.gep(w_arr.data, [builder.mul(builder.mul(pv, K), nc)])
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]),
            f"llvm.fma.v{vw}{'f32' if is32 else 'f64'}")
        zero = ir.Constant(vty, None)
        splat = ir.Constant(ir.VectorType(i32, vw), [0] * vw)
        undef = ir.Constant(vty, ir.Undefined)

        entry = builder.block
        loop = builder.append_basic_block("mm_tile_loop")
        done = builder.append_basic_block("mm_tile_done")
        builder.cbranch(builder.icmp_signed(">", K, ir.Constant(i64, 0)), loop, done)

        builder.position_at_end(loop)
        k = builder.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), entry)
        accs = []
        for _ in range(2 * ROWS):
            acc = builder.phi(vty)
            acc.add_incoming(zero, entry)
            accs.append(acc)
        wk = builder.gep(w_base, [builder.mul(k, nc)])
        w0 = builder.load(builder.bitcast(wk, vptr), align=4)
        w1 = builder.load(builder.bitcast(builder.gep(wk, [ir.Constant(i64, vw)]), vptr), align=4)
        new = []
        for r in range(ROWS):
            a = builder.load(builder.gep(a_rows[r], [k]))
            va = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)),
                                        undef, splat)
            new.append(builder.call(fma, [va, w0, accs[2 * r]]))
            new.append(builder.call(fma, [va, w1, accs[2 * r + 1]]))
        k1 = builder.add(k, ir.Constant(i64, 1))
        tail = builder.block
        k.add_incoming(k1, tail)
        for acc, value in zip(accs, new):
            acc.add_incoming(value, tail)
        builder.cbranch(builder.icmp_signed("<", k1, K), loop, done)

        builder.position_at_end(done)
        finals = []
        for value in new:                        # all phi nodes first, at the top of the block
            final = builder.phi(vty)
            final.add_incoming(zero, entry)
            final.add_incoming(value, tail)
            finals.append(final)
        col0 = builder.mul(pv, nc)
        for r in range(ROWS):
            row = builder.add(i0v, ir.Constant(i64, r))
            cp = builder.gep(c_arr.data, [builder.add(builder.mul(row, ldc), col0)])
            builder.store(finals[2 * r], builder.bitcast(cp, vptr), align=4)
            builder.store(finals[2 * r + 1],
                          builder.bitcast(builder.gep(cp, [ir.Constant(i64, vw)]), vptr), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=CACHE, nogil=True)
def panel_width(dtype_itemsize):
    """Columns per packed panel: two vectors of the machine's width."""
    return 2 * VECTOR_BYTES // dtype_itemsize


@njit(cache=CACHE, nogil=True)
def pack_nt(W):
    """Pack W (N, K) for ``A @ W^T``: panels Wp[p, k, c] = W[p*NC + c, k], zero past N."""
    N, K = W.shape
    nc = panel_width(W.itemsize)
    P = (N + nc - 1) // nc
    Wp = np.zeros((P, K, nc), dtype=W.dtype)
    for p in range(P):
        for c in range(nc):
            j = p * nc + c
            if j < N:
                for k in range(K):
                    Wp[p, k, c] = W[j, k]
    return Wp


@njit(cache=CACHE, nogil=True)
def padded_rows(m):
    """The row count a :func:`mm_packed` operand of m rows is allocated with."""
    return ((m + ROWS - 1) // ROWS) * ROWS


@njit(cache=CACHE, nogil=True)
def mm_packed(A, Wp, C):
    """C = A @ W^T for Wp = pack_nt(W): A (M, K) with M a multiple of 8, C (M, >= P*NC).

    Panel-major order: one panel of W (K x NC, ~32 KB at K = 256) stays in L1 while every row
    tile of A streams past it.
    """
    P = Wp.shape[0]
    M = A.shape[0]
    for p in range(P):
        for i0 in range(0, M, ROWS):
            _tile(A, i0, Wp, p, C)
