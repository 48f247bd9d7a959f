"""Every matrix product of the CPU kernels, and the one rule that picks the kernel for each.

Shape legend: M rows of A (a thread's batch rows, or timesteps x rows), K the reduction, N the
output width (3H for the gates).

Dispatch rule. A product that reuses one weight for every timestep *inside a thread's share of
the recurrence* (``C = A @ W^T``: the recurrent products, forward and backward, and the
forward's input projection by blocks of timesteps) runs :func:`mm_packed_rows` over ``W``
packed once per layer call (:func:`pack_nt`) when the thread has at least ``PACK_MIN_ROWS`` = 8
rows: tiles of 8 rows over operands whose row count is padded to a multiple of 8
(:func:`padded_rows`); the rows past the last full tile join it (:func:`_tall_tile`, up to
``MERGE_ROWS``, AVX-512) or run one row at a time (:func:`_row_tile`, up to
``TAIL_ROW_TILES``), so that a thread with 10 rows does not pay for 16. Every output is the same
FMA chain (0, then one FMA per k in order) whichever tile computes it, so the bits are those of
one padded :func:`mm_packed`. With fewer rows it runs :func:`mm_nt` (register-blocked, no
packing, no padding: at one row, packing W_hh on every call cost what the row tiles saved).
The weight gradients, products *over all timesteps at once* (``C = A^T X``: ``dgi^T x``,
``dgh^T h_prev``; :func:`gemm_tn`), run :func:`mm_tn_rows`: the same micro-kernel (:func:`_tn_tile`)
over blocks of ``TN_BLOCK`` rows of A and X packed on the fly, each task computing whole rows
of C. The input gradients ``dx = dgi @ W_ih`` (:func:`gemm`) are one BLAS call (``np.dot``
inside Numba, SciPy's BLAS) per block of rows per Numba thread, with that BLAS held to one
thread (:func:`numgru._config.compute_threads`).

Why not BLAS in the recurrence: SciPy's OpenBLAS repacks ``W`` on every call and is tuned for
large products; at the recurrence's shapes a single thread measured (this machine, float32,
AVX-512):

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
rows of A and issues 16 fused multiply-adds. The vector width is the machine's by default
(``VECTOR_BYTES``: 64 with AVX-512, else 32), so ``NC`` is 32 (AVX-512) or 16 float32 columns,
half that for float64. :func:`make_packed_gemm` builds :func:`pack_nt`, :func:`panel_width` and
:func:`mm_packed` for either width on any machine (LLVM splits 512-bit vectors on an AVX2-only
machine: slower, same results), which is how the tests cover both.

Contract of :func:`mm_packed`: A (M, K) and C are C-contiguous, Wp = ``pack_nt(W)`` of the same
dtype (float32 or float64) and vector width, M a multiple of ``ROWS`` (callers pad with rows they
ignore), C at least M rows by P * NC columns (``Wp.shape[0] * Wp.shape[2]``); columns of C past N
receive zeros (the packed panels are zero-padded). Types are checked when it compiles (a
``TypingError`` naming the argument), shapes on every call (``ValueError``, a few comparisons).

``NUMGRU_GEMM_REFERENCE=1`` (:data:`numgru._config.GEMM_REFERENCE`, read at import) makes
:func:`mm_packed` a plain Numba loop nest with the same contract and the same results up to
rounding, about 5x slower (``MM_PACKED_IMPL`` says which is active): a fallback, and a way to
rule the IR kernel out. The kernels of :mod:`numgru._cpu` compile whichever is active into
themselves, so the on-disk cache is off while the flag is set (:data:`numgru._config.CACHE`).
"""

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from . import _pool, _tasks
from ._config import CACHE, FASTMATH, GEMM_REFERENCE

_JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=CACHE, nogil=True)

# rows of the micro-kernel's tile (``_tile``, module docstring: 8 rows of A by NC vector columns,
# 16 fused multiply-adds per step of k)
ROWS = 8
# The dispatch rule's threshold: from this many rows per thread, mm_packed_rows; below, mm_nt.
PACK_MIN_ROWS = ROWS
# mm_packed_rows: up to this many rows past the last full tile run as row tiles; more, as one
# padded tile of ROWS. A row tile reads the weights for its one row: at (K, N) = (64, 192) a
# row took 430 ns alone against 230 ns as one of a tile's 8 (Zen 4, float32), so from 4 rows on
# the padded tile is as fast.
TAIL_ROW_TILES = 3
# mm_packed_rows with AVX-512: up to this many rows past the last full tile join it (a tile of
# ROWS + 4 rows keeps 24 accumulators and its operands in the 32 vector registers).
MERGE_ROWS = 4
# mm_tn_rows (the weight gradients' ``A^T X``): rows of A (the reduction) per block. Each block's
# products run as FMA chains in registers from 0, and the blocks are added in order: every output
# is a sum of ceil(M / TN_BLOCK) chains of at most TN_BLOCK terms.
TN_BLOCK = 128
# gemm_tn with X this narrow (columns; the input weights' gradient of a univariate series has
# one) runs as a plain loop nest (:func:`tn_rows_narrow`): mm_tn_rows pads X to a panel of 16-32
# columns and packs A for it. Zen 4, float32, 2026-12-03, A (96, 192): 18.5 -> 1.6 us at one
# column, faster up to 4 columns at M = 96-3200 rows (16 columns: 1.5-2.8x slower).
TN_NARROW = 4
# rows of one packed panel of X in mm_tn_rows's buffer (TN_BLOCK and one of padding: panels
# 16 KB apart would all map to the same cache sets)
TN_PANEL_ROWS = TN_BLOCK + 1
# Vector widths the micro-kernel can be built for, in bytes: AVX2 and AVX-512.
VECTOR_WIDTHS = (32, 64)


def _host_vector_bytes():
    """64 when the code Numba compiles has AVX-512 (``avx512f``), else 32 (AVX2 and most others).

    Numba compiles for the host's features unless ``NUMBA_CPU_FEATURES`` names others (for
    code that must run on other machines, or to measure AVX2 code on an AVX-512 machine): the
    width follows what Numba compiles for, so that with ``-avx512f`` the micro-kernel is built
    for 256-bit vectors rather than 512-bit ones that LLVM would split.
    """
    try:
        import numba

        features = numba.config.CPU_FEATURES
        if features is not None:
            return 64 if "+avx512f" in features.replace(" ", "").split(",") else 32
        import llvmlite.binding as llvm

        return 64 if llvm.get_host_cpu_features().get("avx512f", False) else 32
    except Exception:  # pragma: no cover - unusual platforms
        return 32


VECTOR_BYTES = _host_vector_bytes()


# ---------------------------------------------------------------------------------------------
# The packed micro-kernel
# ---------------------------------------------------------------------------------------------


def _operand_type_error(A, Wp, C):
    """Why the operand types of a packed product are refused (a message), or None if fine."""
    if not isinstance(A, types.Array) or A.ndim != 2:
        return f"A must be a 2-D array, got {A}"
    if A.dtype not in (types.float32, types.float64):
        return f"A must be float32 or float64, got {A.dtype}"
    if A.layout != "C":
        return (f"A must be C-contiguous (Numba layout 'C'), got layout '{A.layout}': "
                f"pass np.ascontiguousarray(A)")
    for name, arr, ndim in (("Wp", Wp, 3), ("C", C, 2)):
        if not isinstance(arr, types.Array) or arr.ndim != ndim:
            return f"{name} must be a {ndim}-D array, got {arr}"
        if arr.dtype != A.dtype:
            return f"{name} must have A's dtype {A.dtype}, got {arr.dtype}"
        if arr.layout != "C":
            return f"{name} must be C-contiguous (Numba layout 'C'), got layout '{arr.layout}'"
    if not C.mutable:
        return "C must be writable, got a read-only array"
    return None


@intrinsic
def _check_operands(typingctx, A, Wp, C):
    """Refuse, when the caller compiles, operand types a packed product cannot take.

    Generates no code. The first statement of :func:`mm_packed` and its reference, so that the
    error names the argument instead of failing later on ``A.shape[1]`` or inside the kernel.
    """
    why = _operand_type_error(A, Wp, C)
    if why is not None:
        raise TypingError(f"mm_packed: {why}")

    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.void(A, Wp, C), codegen


def _check_tile_types(what, A, i0, Wp, p, C, vector_bytes):
    """Why a tile's argument types are refused (a TypingError), or nothing."""
    why = _operand_type_error(A, Wp, C)
    if why is None:
        for name, value in (("i0", i0), ("p", p)):
            if not isinstance(value, types.Integer):
                why = f"{name} must be an integer, got {value}"
                break
    if why is None and not (isinstance(vector_bytes, types.IntegerLiteral)
                            and vector_bytes.literal_value in VECTOR_WIDTHS):
        why = (f"vector_bytes must be a compile-time constant in {VECTOR_WIDTHS}, "
               f"got {vector_bytes}")
    if why is not None:
        raise TypingError(f"{what}: {why}")


def _ir_types(context, builder, signature, vbytes):
    """The IR types a tile is emitted with, its first argument's dtype deciding: ``(fty,
    is32, vw, vty, vptr, i64, i32, as64)``: the float, whether float32, the lanes of a
    ``vbytes`` vector, the vector and its pointer, the integers, and ``as64`` (an integer
    sign-extended to 64 bits)."""
    fty = context.get_value_type(signature.args[0].dtype)
    is32 = signature.args[0].dtype == types.float32
    vw = vbytes // (4 if is32 else 8)
    vty = ir.VectorType(fty, vw)
    i64 = ir.IntType(64)

    def as64(v):
        return builder.sext(v, i64) if v.type.width < 64 else v

    return fty, is32, vw, vty, vty.as_pointer(), i64, ir.IntType(32), as64


def _ir_fma(builder, vty, vw, is32, i32):
    """``(fma, zero, broadcast)`` of a tile's FMA chains: LLVM's vector fma, the zero vector,
    and ``broadcast(a)``, a scalar splat into every lane."""
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]),
        f"llvm.fma.v{vw}{'f32' if is32 else 'f64'}")
    splat = ir.Constant(ir.VectorType(i32, vw), [0] * vw)
    undef = ir.Constant(vty, ir.Undefined)

    def broadcast(a):
        return builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)),
                                      undef, splat)

    return fma, ir.Constant(vty, None), broadcast


def _ir_close_chain(builder, k, bound, accs, new, loop, done, entry, zero, vty):
    """Close a tile's loop over k (``accs``: its accumulator phis, ``new``: their values after
    step k): k + 1 < ``bound`` loops again, else on to ``done``. Returns the accumulators as
    ``done`` sees them (phi nodes, all at the top of the block; zero when the loop never ran)."""
    i64 = ir.IntType(64)
    k1 = builder.add(k, ir.Constant(i64, 1))
    tail = builder.block
    k.add_incoming(k1, tail)
    for acc, value in zip(accs, new):
        acc.add_incoming(value, tail)
    builder.cbranch(builder.icmp_signed("<", k1, bound), loop, done)
    builder.position_at_end(done)
    finals = []
    for value in new:
        final = builder.phi(vty)
        final.add_incoming(zero, entry)
        final.add_incoming(value, tail)
        finals.append(final)
    return finals


def _emit_tile(context, builder, signature, args, rows, panels, vbytes):
    """The IR of a tile: C[i0:i0+rows, p*NC:(p+panels)*NC] = A[i0:i0+rows, :] @ Wp[p:p+panels].

    ``rows * panels * 2`` vector accumulators stay in registers for the whole K loop; each step
    loads the two vectors of every panel, broadcasts one element of each row and issues the
    fused multiply-adds. Every output is the same chain whatever the tile's shape: 0, then one
    FMA per k in order, so a row gives the same bits in any tile (``rows = ROWS, panels = 1``
    is :func:`_tile`, whose IR this is exactly).
    """
    a_arg, i0_arg, w_arg, p_arg, c_arg = args[:5]
    a_arr = context.make_array(signature.args[0])(context, builder, a_arg)
    w_arr = context.make_array(signature.args[2])(context, builder, w_arg)
    c_arr = context.make_array(signature.args[4])(context, builder, c_arg)
    fty, is32, vw, vty, vptr, i64, i32, as64 = _ir_types(context, builder, signature, vbytes)

    K = builder.extract_value(a_arr.shape, 1)
    ldc = builder.extract_value(c_arr.shape, 1)
    i0v = as64(i0_arg)
    pv = as64(p_arg)
    nc = ir.Constant(i64, 2 * vw)
    a_rows = [builder.gep(a_arr.data, [builder.mul(builder.add(i0v, ir.Constant(i64, r)), K)])
              for r in range(rows)]
    w_bases = [builder.gep(w_arr.data, [builder.mul(builder.mul(pv, K), nc)])]
    for q in range(1, panels):
        pq = builder.add(pv, ir.Constant(i64, q))
        w_bases.append(builder.gep(w_arr.data, [builder.mul(builder.mul(pq, K), nc)]))
    fma, zero, broadcast = _ir_fma(builder, vty, vw, is32, i32)

    entry = builder.block
    loop = builder.append_basic_block("mm_tile_loop")
    done = builder.append_basic_block("mm_tile_done")
    builder.cbranch(builder.icmp_signed(">", K, ir.Constant(i64, 0)), loop, done)

    builder.position_at_end(loop)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), entry)
    accs = []                                # row-major: row r, panel q, vector v
    for _ in range(2 * rows * panels):
        acc = builder.phi(vty)
        acc.add_incoming(zero, entry)
        accs.append(acc)
    wv = []                                  # panel q's two vectors at step k
    for w_base in w_bases:
        wk = builder.gep(w_base, [builder.mul(k, nc)])
        wv.append((builder.load(builder.bitcast(wk, vptr), align=4),
                   builder.load(builder.bitcast(builder.gep(wk, [ir.Constant(i64, vw)]), vptr),
                                align=4)))
    new = []
    for r in range(rows):
        a = builder.load(builder.gep(a_rows[r], [k]))
        va = broadcast(a)
        for q in range(panels):
            j = 2 * (r * panels + q)
            new.append(builder.call(fma, [va, wv[q][0], accs[j]]))
            new.append(builder.call(fma, [va, wv[q][1], accs[j + 1]]))
    finals = _ir_close_chain(builder, k, K, accs, new, loop, done, entry, zero, vty)
    col0 = builder.mul(pv, nc)
    for r in range(rows):
        row = builder.add(i0v, ir.Constant(i64, r))
        cp = builder.gep(c_arr.data, [builder.add(builder.mul(row, ldc), col0)])
        for q in range(panels):
            j = 2 * (r * panels + q)
            cq = cp if q == 0 else builder.gep(cp, [ir.Constant(i64, q * 2 * vw)])
            builder.store(finals[j], builder.bitcast(cq, vptr), align=4)
            builder.store(finals[j + 1],
                          builder.bitcast(builder.gep(cq, [ir.Constant(i64, vw)]), vptr), align=4)
    return context.get_dummy_value()


@intrinsic(prefer_literal=True)
def _tile(typingctx, A, i0, Wp, p, C, vector_bytes):
    """C[i0:i0+8, p*NC:(p+1)*NC] = A[i0:i0+8, :] @ Wp[p] for Wp[p] of shape (K, NC).

    ``vector_bytes`` must be a compile-time integer constant, 32 or 64; NC is two vectors of
    that width (with 32, two tiles of 4 rows). No bounds checks: :func:`mm_packed` checks the
    shapes before the first tile.
    """
    _check_tile_types("_tile", A, i0, Wp, p, C, vector_bytes)
    vbytes = vector_bytes.literal_value

    def codegen(context, builder, signature, args):
        if vbytes == 64:
            return _emit_tile(context, builder, signature, args, ROWS, 1, vbytes)
        # AVX2 has 16 vector registers: 16 accumulators would spill, so the tile runs as two
        # halves of 4 rows (8 accumulators each; the panel is still in L1 for the second).
        # Same bits: every output is the same FMA chain.
        half = ROWS // 2
        _emit_tile(context, builder, signature, args, half, 1, vbytes)
        i0v = args[1]
        second = list(args)
        second[1] = builder.add(i0v, ir.Constant(i0v.type, half))
        return _emit_tile(context, builder, signature, second, half, 1, vbytes)

    return types.void(A, i0, Wp, p, C, vector_bytes), codegen


@intrinsic(prefer_literal=True)
def _tall_tile(typingctx, A, i0, Wp, p, C, vector_bytes, rows):
    """C[i0:i0+rows, p*NC:(p+1)*NC] = A[i0:i0+rows, :] @ Wp[p]: :func:`_tile` with ``rows`` (a
    compile-time constant, ROWS + 1 .. ROWS + MERGE_ROWS) rows, so that a thread's last rows
    join its last full tile instead of a padded one. 2 * rows accumulators: AVX-512 only (32
    vector registers; AVX2's 16 would spill). Same bits as :func:`_tile`. No bounds checks.
    """
    _check_tile_types("_tall_tile", A, i0, Wp, p, C, vector_bytes)
    if not (isinstance(rows, types.IntegerLiteral)
            and ROWS < rows.literal_value <= ROWS + MERGE_ROWS):
        raise TypingError(f"_tall_tile: rows must be a compile-time constant in "
                          f"{ROWS + 1}..{ROWS + MERGE_ROWS}, got {rows}")
    vbytes = vector_bytes.literal_value
    nrows = rows.literal_value

    def codegen(context, builder, signature, args):
        return _emit_tile(context, builder, signature, args, nrows, 1, vbytes)

    return types.void(A, i0, Wp, p, C, vector_bytes, rows), codegen


@intrinsic(prefer_literal=True)
def _row_tile(typingctx, A, i0, Wp, p, C, vector_bytes, panels):
    """C[i0, p*NC:(p+panels)*NC] = A[i0, :] @ Wp[p:p+panels]: one row against ``panels``
    (a compile-time constant, 1 or 2) panels, for the rows past a product's last full tile.

    Two panels keep four accumulator chains in flight (one panel's two chains would wait on
    the FMA latency). Same bits as the row's outputs from :func:`_tile`. No bounds checks.
    """
    _check_tile_types("_row_tile", A, i0, Wp, p, C, vector_bytes)
    if not (isinstance(panels, types.IntegerLiteral) and panels.literal_value in (1, 2)):
        raise TypingError(f"_row_tile: panels must be a compile-time constant 1 or 2, "
                          f"got {panels}")
    vbytes = vector_bytes.literal_value
    npanels = panels.literal_value

    def codegen(context, builder, signature, args):
        return _emit_tile(context, builder, signature, args, 1, npanels, vbytes)

    return types.void(A, i0, Wp, p, C, vector_bytes, panels), codegen


def _emit_tn_tile(context, builder, signature, args, rows, vbytes):
    """The IR of a TN tile (:func:`_tn_tile`): for r < rows and one panel p,

        C[ci0 + r, p*NC:(p+1)*NC] (+)= sum over k < kn of A[k0 + k, i0 + r] * Xp[p, k, :]

    ``2 * rows`` vector accumulators start at 0 and take one FMA per k in order; at the end
    they are stored (``beta`` 0) or added to C (``C + acc``, ``beta`` not 0). Row r of the
    tile reads column i0 + r of A, so the 8 rows of a step are 8 consecutive floats of A's row
    k0 + k: A is read as it lies, not transposed.
    """
    a_arg, i0_arg, k0_arg, kn_arg, x_arg, p_arg, c_arg, ci0_arg, beta_arg = args[:9]
    a_arr = context.make_array(signature.args[0])(context, builder, a_arg)
    x_arr = context.make_array(signature.args[4])(context, builder, x_arg)
    c_arr = context.make_array(signature.args[6])(context, builder, c_arg)
    fty, is32, vw, vty, vptr, i64, i32, as64 = _ir_types(context, builder, signature, vbytes)

    lda = builder.extract_value(a_arr.shape, 1)
    kb = ir.Constant(i64, TN_PANEL_ROWS)
    ldc = builder.extract_value(c_arr.shape, 1)
    i0v, k0v, knv, pv, ci0v = (as64(v) for v in (i0_arg, k0_arg, kn_arg, p_arg, ci0_arg))
    nc = ir.Constant(i64, 2 * vw)
    a_base = builder.gep(a_arr.data, [builder.add(builder.mul(k0v, lda), i0v)])
    x_base = builder.gep(x_arr.data, [builder.mul(builder.mul(pv, kb), nc)])
    fma, zero, broadcast = _ir_fma(builder, vty, vw, is32, i32)

    entry = builder.block
    loop = builder.append_basic_block("tn_tile_loop")
    done = builder.append_basic_block("tn_tile_done")
    builder.cbranch(builder.icmp_signed(">", knv, ir.Constant(i64, 0)), loop, done)

    builder.position_at_end(loop)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), entry)
    accs = []
    for _ in range(2 * rows):
        acc = builder.phi(vty)
        acc.add_incoming(zero, entry)
        accs.append(acc)
    xk = builder.gep(x_base, [builder.mul(k, nc)])
    x0 = builder.load(builder.bitcast(xk, vptr), align=4)
    x1 = builder.load(builder.bitcast(builder.gep(xk, [ir.Constant(i64, vw)]), vptr), align=4)
    ak = builder.gep(a_base, [builder.mul(k, lda)])
    new = []
    for r in range(rows):
        a = builder.load(builder.gep(ak, [ir.Constant(i64, r)]))
        va = broadcast(a)
        new.append(builder.call(fma, [va, x0, accs[2 * r]]))
        new.append(builder.call(fma, [va, x1, accs[2 * r + 1]]))
    finals = _ir_close_chain(builder, k, knv, accs, new, loop, done, entry, zero, vty)
    col0 = builder.mul(pv, nc)
    ptrs = []
    for r in range(rows):
        row = builder.add(ci0v, ir.Constant(i64, r))
        cp = builder.gep(c_arr.data, [builder.add(builder.mul(row, ldc), col0)])
        ptrs.append(builder.bitcast(cp, vptr))
        ptrs.append(builder.bitcast(builder.gep(cp, [ir.Constant(i64, vw)]), vptr))
    with builder.if_else(builder.icmp_signed("!=", as64(beta_arg), ir.Constant(i64, 0))) \
            as (accumulate, store):
        with accumulate:
            for ptr, value in zip(ptrs, finals):
                builder.store(builder.fadd(builder.load(ptr, align=4), value), ptr, align=4)
        with store:
            for ptr, value in zip(ptrs, finals):
                builder.store(value, ptr, align=4)
    return context.get_dummy_value()


@intrinsic(prefer_literal=True)
def _tn_tile(typingctx, A, i0, k0, kn, Xp, p, C, ci0, beta, vector_bytes):
    """C[ci0:ci0+8, p*NC:(p+1)*NC] (+)= A[k0:k0+kn, i0:i0+8]^T @ Xp[p*R : p*R+kn]: one tile of
    :func:`mm_tn_rows` (``beta`` 0 stores, else adds to C; Xp (P*R, NC) holds panel p from
    row p*R, R = ``TN_PANEL_ROWS``). With 32-byte vectors it runs as two
    tiles of 4 rows (AVX2's 16 registers; same bits). No bounds checks: :func:`mm_tn_rows`
    sizes its operands itself.
    """
    why = None
    for name, arr in (("A", A), ("Xp", Xp), ("C", C)):
        if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"
                and arr.dtype == A.dtype and arr.dtype in (types.float32, types.float64)):
            why = f"{name} must be a C-contiguous 2-D float array of A's dtype, got {arr}"
    if why is None and not C.mutable:
        why = "C must be writable"
    if why is None and not (isinstance(vector_bytes, types.IntegerLiteral)
                            and vector_bytes.literal_value in VECTOR_WIDTHS):
        why = f"vector_bytes must be a compile-time constant in {VECTOR_WIDTHS}"
    if why is not None:
        raise TypingError(f"_tn_tile: {why}")
    for name, value in (("i0", i0), ("k0", k0), ("kn", kn), ("p", p), ("ci0", ci0),
                        ("beta", beta)):
        if not isinstance(value, types.Integer):
            raise TypingError(f"_tn_tile: {name} must be an integer, got {value}")
    vbytes = vector_bytes.literal_value

    def codegen(context, builder, signature, args):
        if vbytes == 64:
            return _emit_tn_tile(context, builder, signature, args, ROWS, vbytes)
        half = ROWS // 2
        _emit_tn_tile(context, builder, signature, args, half, vbytes)
        second = list(args)
        second[1] = builder.add(args[1], ir.Constant(args[1].type, half))    # i0
        second[7] = builder.add(args[7], ir.Constant(args[7].type, half))    # ci0
        return _emit_tn_tile(context, builder, signature, second, half, vbytes)

    return types.void(A, i0, k0, kn, Xp, p, C, ci0, beta, vector_bytes), codegen


@intrinsic(prefer_literal=True)
def _move(typingctx, src, si, dst, di, width):
    """dst.flat[di:di+width] = src.flat[si:si+width] as one vector load and store (``width`` a
    compile-time constant; src, dst C-contiguous of one dtype). No bounds checks. The packing
    of :func:`mm_tn_rows` moves rows of 8 and NC elements this way: the same copy as a loop of
    Numba indexing (wrap-around of negative indices, no proof of consecutive addresses) stayed
    scalar, ~7 cycles per 8 floats."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array)
            and src.layout == "C" and dst.layout == "C" and src.dtype == dst.dtype
            and src.dtype in (types.float32, types.float64) and dst.mutable):
        raise TypingError(f"_move: src and dst must be C-contiguous float arrays of one dtype "
                          f"(dst writable), got {src} and {dst}")
    if not isinstance(width, types.IntegerLiteral) or width.literal_value < 1:
        raise TypingError(f"_move: width must be a positive compile-time constant, got {width}")
    n = width.literal_value

    def codegen(context, builder, signature, args):
        s_arr = context.make_array(signature.args[0])(context, builder, args[0])
        d_arr = context.make_array(signature.args[2])(context, builder, args[2])
        i64 = ir.IntType(64)
        vty = ir.VectorType(context.get_value_type(signature.args[0].dtype), n).as_pointer()

        def at(arr, off, ty):
            off = builder.sext(off, i64) if off.type.width < 64 else off
            return builder.bitcast(builder.gep(arr.data, [off]), vty)

        v = builder.load(at(s_arr, args[1], signature.args[1]), align=4)
        builder.store(v, at(d_arr, args[3], signature.args[3]), align=4)
        return context.get_dummy_value()

    return types.void(src, si, dst, di, width), codegen


@njit(inline="always", nogil=True)
def _check_contract(A, Wp, C, nc):
    """The shape part of mm_packed's contract: a few comparisons per call, ValueError if broken."""
    M = A.shape[0]
    if M % ROWS != 0:
        raise ValueError("mm_packed: A.shape[0] must be a multiple of ROWS (8): pad A's rows "
                         "(padded_rows)")
    if Wp.shape[1] != A.shape[1]:
        raise ValueError("mm_packed: A.shape[1] must equal Wp.shape[1] (K, the reduction)")
    if Wp.shape[2] != nc:
        raise ValueError("mm_packed: Wp.shape[2] must be the panel width for A's dtype and this "
                         "vector width (panel_width(itemsize)): Wp was packed for another one")
    if C.shape[0] < M:
        raise ValueError("mm_packed: C must have at least as many rows as A")
    if C.shape[1] < Wp.shape[0] * nc:
        raise ValueError("mm_packed: C must have at least Wp.shape[0] * Wp.shape[2] (P * NC) "
                         "columns")


class PackedGemm(NamedTuple):
    """The packed product for one vector width (see :func:`make_packed_gemm`)."""

    vector_bytes: int
    panel_width: object        # panel_width(dtype_itemsize) -> NC
    pack_nt: object            # pack_nt(W) -> Wp
    mm_packed: object          # the active one: mm_packed_kernel, or the reference if selected
    mm_packed_kernel: object   # the LLVM-IR micro-kernel
    mm_packed_reference: object  # the plain Numba loop nest: same contract, results to rounding
    mm_packed_rows: object     # the active one of the two below
    mm_packed_rows_kernel: object     # the first m rows only: full tiles, then row tiles
    mm_packed_rows_reference: object  # its plain Numba loop nest
    mm_tn_rows: object         # the active one of the two below
    mm_tn_rows_kernel: object  # C[r0:r1] = A[:, r0:r1]^T @ X by TN tiles
    mm_tn_rows_reference: object      # its plain Numba loop nest


@njit(cache=CACHE, nogil=True)
def _pack_tn_block(A, X, k0, kn, r0, r1, Ap, Xp):
    """Pack rows k0..k0+kn-1 of A and X for :func:`mm_tn_rows`: tile t of A's columns r0..
    as ``Ap[t*tb + k, :] = A[k0 + k, r0 + 8t : r0 + 8t + 8]`` (Ap (nt*tb, 8), tb rows per
    tile), panel p of X as ``Xp[p*R + k, :] = X[k0 + k, p*NC : (p+1)*NC]`` (Xp (P*R, NC), R =
    ``TN_PANEL_ROWS``). Entries past r1 and past N2 are left as they are (the caller zeroes
    them once).
    Whole tiles and panels move as vectors of 8 (:func:`_move`, offsets into the flat data)."""
    N1 = A.shape[1]
    N2 = X.shape[1]
    nc = Xp.shape[1]
    xb = TN_PANEL_ROWS
    nt_all = (r1 - r0 + ROWS - 1) // ROWS
    tb = Ap.shape[0] // nt_all
    pf = N2 // nc                                 # whole panels
    nt = (r1 - r0) // ROWS                        # whole tiles
    for k in range(kn):
        xo = (k0 + k) * N2
        for p in range(pf):
            for q in range(0, nc, ROWS):                 # NC is 8, 16 or 32
                _move(X, xo + p * nc + q, Xp, (p * xb + k) * nc + q, 8)
        for c in range(N2 - pf * nc):
            Xp[pf * xb + k, c] = X[k0 + k, pf * nc + c]
        ao = (k0 + k) * N1 + r0
        for t in range(nt):
            _move(A, ao + t * ROWS, Ap, (t * tb + k) * ROWS, 8)
        for r in range(r1 - r0 - nt * ROWS):
            Ap[nt * tb + k, r] = A[k0 + k, r0 + nt * ROWS + r]


@functools.lru_cache(maxsize=None)
def make_packed_gemm(vector_bytes):
    """Build :func:`panel_width`, :func:`pack_nt` and :func:`mm_packed` for a vector width.

    ``vector_bytes``: 32 (AVX2) or 64 (AVX-512); any machine runs both. Built once per width.
    The compiled functions are closures over the width alone (an int), so Numba's on-disk cache
    keeps one entry per width and loads it in the next process; keep it that way (a closure
    over another dispatcher or an intrinsic would hash differently in every process and never
    hit the cache). Other functions and helpers are module globals.
    """
    if vector_bytes not in VECTOR_WIDTHS:
        raise ValueError(f"vector_bytes must be one of {VECTOR_WIDTHS}, got {vector_bytes!r}")
    vb = int(vector_bytes)

    @njit(cache=CACHE, nogil=True)
    def panel_width(dtype_itemsize):
        """Columns per packed panel: two vectors of this width."""
        return 2 * vb // dtype_itemsize

    @njit(cache=CACHE, nogil=True)
    def pack_nt(W):
        """Pack W (N, K) for ``A @ W^T``: panels Wp[p, k, c] = W[p*NC + c, k], zero past N."""
        N, K = W.shape
        nc = 2 * vb // W.itemsize
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
    def mm_packed_kernel(A, Wp, C):
        """C = A @ W^T for Wp = pack_nt(W): A (M, K) with M a multiple of 8, C (>= M, >= P*NC).

        Panel-major order: one panel of W (K x NC, ~32 KB at K = 256) stays in L1 while every
        row tile of A streams past it.
        """
        _check_operands(A, Wp, C)
        _check_contract(A, Wp, C, 2 * vb // A.itemsize)
        P = Wp.shape[0]
        M = A.shape[0]
        for p in range(P):
            for i0 in range(0, M, ROWS):
                _tile(A, i0, Wp, p, C, vb)

    # Flags set explicitly: a callee that leaves fastmath unset inherits its caller's (the
    # fastmath kernels of numgru._cpu would let LLVM fuse it into FMAs), and the on-disk cache
    # keeps whichever variant compiled first. Unfused, it checks the kernel independently.
    @njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
    def mm_packed_reference(A, Wp, C):
        """mm_packed as a plain loop nest: same contract, same packed layout, same results up
        to rounding (each output summed over k in order, a multiply then an add; the kernel
        fuses each step into one FMA)."""
        _check_operands(A, Wp, C)
        nc = 2 * vb // A.itemsize
        _check_contract(A, Wp, C, nc)
        P, K = Wp.shape[0], Wp.shape[1]
        zero = A.dtype.type(0)
        for i in range(A.shape[0]):
            for p in range(P):
                c0 = p * nc
                for c in range(nc):
                    C[i, c0 + c] = zero
                for k in range(K):
                    a = A[i, k]
                    for c in range(nc):
                        C[i, c0 + c] += a * Wp[p, k, c]

    @njit(cache=CACHE, nogil=True)
    def mm_packed_rows_kernel(A, Wp, C, m):
        """C[:m] = A[:m] @ W^T for Wp = pack_nt(W): mm_packed's contract (A's rows padded to a
        multiple of 8), but only the first m rows are needed. The full tiles of 8 rows run as
        in mm_packed. The rows past them: with AVX-512 and at most ``MERGE_ROWS`` of them after
        at least one full tile, the last tile grows to take them (:func:`_tall_tile`); else
        as row tiles (:func:`_row_tile`) when there are at most ``TAIL_ROW_TILES``, else as one
        more (padded) tile. Rows m.. of C may or may not be written. The bits of every row are
        mm_packed's (the same FMA chain)."""
        _check_operands(A, Wp, C)
        _check_contract(A, Wp, C, 2 * vb // A.itemsize)
        if m < 0 or m > A.shape[0]:
            raise ValueError("mm_packed_rows: m must be in 0..A.shape[0]")
        P = Wp.shape[0]
        tail = m % ROWS
        if vb == 64 and m > ROWS and 0 < tail <= MERGE_ROWS:
            last = m - tail - ROWS                   # the last full tile takes the tail rows
            # (rows as literals, ROWS + tail: the tile's shape is fixed when it compiles)
            for p in range(P):
                for i0 in range(0, last, ROWS):
                    _tile(A, i0, Wp, p, C, vb)
                if tail == 1:
                    _tall_tile(A, last, Wp, p, C, vb, 9)
                elif tail == 2:
                    _tall_tile(A, last, Wp, p, C, vb, 10)
                elif tail == 3:
                    _tall_tile(A, last, Wp, p, C, vb, 11)
                else:
                    _tall_tile(A, last, Wp, p, C, vb, 12)
            return
        full = m - tail if tail <= TAIL_ROW_TILES else m - tail + ROWS
        for p in range(P):
            for i0 in range(0, full, ROWS):
                _tile(A, i0, Wp, p, C, vb)
        for i in range(full, m):
            p = 0
            while p + 2 <= P:
                _row_tile(A, i, Wp, p, C, vb, 2)
                p += 2
            if p < P:
                _row_tile(A, i, Wp, p, C, vb, 1)

    @njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
    def mm_packed_rows_reference(A, Wp, C, m):
        """mm_packed_rows as a plain loop nest (the first m rows of mm_packed_reference)."""
        _check_operands(A, Wp, C)
        nc = 2 * vb // A.itemsize
        _check_contract(A, Wp, C, nc)
        if m < 0 or m > A.shape[0]:
            raise ValueError("mm_packed_rows: m must be in 0..A.shape[0]")
        P, K = Wp.shape[0], Wp.shape[1]
        zero = A.dtype.type(0)
        for i in range(m):
            for p in range(P):
                c0 = p * nc
                for c in range(nc):
                    C[i, c0 + c] = zero
                for k in range(K):
                    a = A[i, k]
                    for c in range(nc):
                        C[i, c0 + c] += a * Wp[p, k, c]

    @njit(cache=CACHE, nogil=True)
    def mm_tn_rows_kernel(A, X, C, r0, r1):
        """C[r0:r1] = A[:, r0:r1]^T @ X: A (M, N1), X (M, N2), C (N1, N2), C-contiguous, one
        dtype; the reduction runs over the M rows of A and X.

        By blocks of ``TN_BLOCK`` rows of A and X. Each block is packed: X into panels as
        :func:`pack_nt` packs W (zero past N2), A's columns r0..r1-1 into tiles of 8 (``Ap[t, k,
        :] = A[k0 + k, r0 + 8t : r0 + 8t + 8]``, zero past r1), so that a tile reads both
        operands as contiguous streams. Every tile of 8 rows of C by one panel
        (:func:`_tn_tile`) runs its FMA chain over the block and adds it to C's padded copy
        ``Cp`` (the first block stores it). Each output is the in-order sum of its blocks'
        chains, whichever rows a call takes: a row's bits do not depend on r0, r1.
        """
        M = A.shape[0]
        N2 = X.shape[1]
        if X.shape[0] != M or C.shape[1] != N2 or r0 < 0 or r1 > C.shape[0] or \
                r1 > A.shape[1]:
            raise ValueError("mm_tn_rows: A (M, N1), X (M, N2), C (N1, N2) and "
                             "0 <= r0 <= r1 <= N1")
        n = r1 - r0
        if n <= 0:
            return
        if M == 0:
            zero = C.dtype.type(0)
            for i in range(r0, r1):
                for j in range(N2):
                    C[i, j] = zero
            return
        nc = 2 * vb // A.itemsize
        P = (N2 + nc - 1) // nc
        nt = (n + ROWS - 1) // ROWS
        # (P, TN_PANEL_ROWS, NC) and (nt, tb, 8), as 2-D arrays: the blocks are padded by a
        # row or two past TN_BLOCK, so that blocks 16 KB (4 KB) apart do not all map to the
        # same cache sets. Only the padding the tiles read (columns past N2 and r1) is zeroed;
        # np.empty rather than np.zeros: one allocation type to compile (cold start).
        tb = TN_BLOCK + 2
        Xp = np.empty((P * TN_PANEL_ROWS, nc), dtype=X.dtype)
        Ap = np.empty((nt * tb, ROWS), dtype=A.dtype)
        Cp = np.empty((nt * ROWS, P * nc), dtype=C.dtype)
        zero = A.dtype.type(0)
        for k in range(TN_BLOCK):
            for c in range(N2 - (P - 1) * nc, nc):
                Xp[(P - 1) * TN_PANEL_ROWS + k, c] = zero
            for c in range(n - (nt - 1) * ROWS, ROWS):
                Ap[(nt - 1) * tb + k, c] = zero
        for k0 in range(0, M, TN_BLOCK):
            kn = min(TN_BLOCK, M - k0)
            _pack_tn_block(A, X, k0, kn, r0, r1, Ap, Xp)
            beta = 1 if k0 > 0 else 0
            for p in range(P):
                for t in range(nt):
                    _tn_tile(Ap, 0, t * tb, kn, Xp, p, Cp, t * ROWS, beta, vb)
        for i in range(n):
            for j in range(N2):
                C[r0 + i, j] = Cp[i, j]

    @njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
    def mm_tn_rows_reference(A, X, C, r0, r1):
        """mm_tn_rows as a plain loop nest: the same blocks, each summed from 0 then added to
        C (a multiply then an add per term; the kernel fuses them into FMAs)."""
        M = A.shape[0]
        N2 = X.shape[1]
        if X.shape[0] != M or C.shape[1] != N2 or r0 < 0 or r1 > C.shape[0] or \
                r1 > A.shape[1]:
            raise ValueError("mm_tn_rows: A (M, N1), X (M, N2), C (N1, N2) and "
                             "0 <= r0 <= r1 <= N1")
        zero = C.dtype.type(0)
        acc = np.empty(N2, dtype=C.dtype)
        for i in range(r0, r1):
            for j in range(N2):
                C[i, j] = zero
            for k0 in range(0, M, TN_BLOCK):
                for j in range(N2):
                    acc[j] = zero
                for k in range(k0, min(k0 + TN_BLOCK, M)):
                    a = A[k, i]
                    for j in range(N2):
                        acc[j] += a * X[k, j]
                for j in range(N2):
                    C[i, j] += acc[j]

    active = mm_packed_reference if GEMM_REFERENCE else mm_packed_kernel
    rows_active = mm_packed_rows_reference if GEMM_REFERENCE else mm_packed_rows_kernel
    tn_active = mm_tn_rows_reference if GEMM_REFERENCE else mm_tn_rows_kernel
    return PackedGemm(vb, panel_width, pack_nt, active, mm_packed_kernel, mm_packed_reference,
                      rows_active, mm_packed_rows_kernel, mm_packed_rows_reference,
                      tn_active, mm_tn_rows_kernel, mm_tn_rows_reference)


_host = make_packed_gemm(VECTOR_BYTES)
#: Which product :func:`mm_packed` is: ``"reference"`` under ``NUMGRU_GEMM_REFERENCE=1``, else
#: ``"kernel"`` (the LLVM-IR micro-kernel).
MM_PACKED_IMPL = "reference" if GEMM_REFERENCE else "kernel"
panel_width = _host.panel_width
pack_nt = _host.pack_nt
mm_packed = _host.mm_packed
mm_packed_rows = _host.mm_packed_rows
mm_tn_rows = _host.mm_tn_rows
_mm_packed_kernel = _host.mm_packed_kernel
_mm_packed_reference = _host.mm_packed_reference


@njit(cache=CACHE, nogil=True)
def padded_rows(m):
    """The row count a :func:`mm_packed` operand of m rows is allocated with."""
    return ((m + ROWS - 1) // ROWS) * ROWS


# ---------------------------------------------------------------------------------------------
# The unpacked register-blocked product (fewer than PACK_MIN_ROWS rows per thread)
# ---------------------------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def mm_nt(A, Bm, C):
    """C = A @ Bm^T: C[i, j] = sum_k A[i, k] * Bm[j, k].

    A (M, K), Bm (N, K), C (M, N) are C-contiguous. Blocks of 8 (then 4) rows x 2 columns keep
    sixteen (eight) vector accumulators in registers and load each row of Bm once per eight
    (four) rows of A; measured 10-25% faster than 4x2 blocks at 16 rows.
    """
    M, K = A.shape
    N = Bm.shape[0]
    zero = C.dtype.type(0)
    i = 0
    while i + 8 <= M and N >= 2:
        a0 = A[i]
        a1 = A[i + 1]
        a2 = A[i + 2]
        a3 = A[i + 3]
        a4 = A[i + 4]
        a5 = A[i + 5]
        a6 = A[i + 6]
        a7 = A[i + 7]
        j = 0
        while j + 2 <= N:
            b0 = Bm[j]
            b1 = Bm[j + 1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
            s40 = s41 = s50 = s51 = s60 = s61 = s70 = s71 = zero
            for k in range(K):
                w0 = b0[k]
                w1 = b1[k]
                s00 += a0[k] * w0
                s01 += a0[k] * w1
                s10 += a1[k] * w0
                s11 += a1[k] * w1
                s20 += a2[k] * w0
                s21 += a2[k] * w1
                s30 += a3[k] * w0
                s31 += a3[k] * w1
                s40 += a4[k] * w0
                s41 += a4[k] * w1
                s50 += a5[k] * w0
                s51 += a5[k] * w1
                s60 += a6[k] * w0
                s61 += a6[k] * w1
                s70 += a7[k] * w0
                s71 += a7[k] * w1
            C[i, j] = s00
            C[i, j + 1] = s01
            C[i + 1, j] = s10
            C[i + 1, j + 1] = s11
            C[i + 2, j] = s20
            C[i + 2, j + 1] = s21
            C[i + 3, j] = s30
            C[i + 3, j + 1] = s31
            C[i + 4, j] = s40
            C[i + 4, j + 1] = s41
            C[i + 5, j] = s50
            C[i + 5, j + 1] = s51
            C[i + 6, j] = s60
            C[i + 6, j + 1] = s61
            C[i + 7, j] = s70
            C[i + 7, j + 1] = s71
            j += 2
        if j < N:  # odd N: the last column for these eight rows
            b0 = Bm[j]
            for ii in range(i, i + 8):
                ai = A[ii]
                s0 = zero
                for k in range(K):
                    s0 += ai[k] * b0[k]
                C[ii, j] = s0
        i += 8
    while i + 4 <= M:
        a0 = A[i]
        a1 = A[i + 1]
        a2 = A[i + 2]
        a3 = A[i + 3]
        j = 0
        while j + 2 <= N:
            b0 = Bm[j]
            b1 = Bm[j + 1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
            for k in range(K):
                w0 = b0[k]
                w1 = b1[k]
                s00 += a0[k] * w0
                s01 += a0[k] * w1
                s10 += a1[k] * w0
                s11 += a1[k] * w1
                s20 += a2[k] * w0
                s21 += a2[k] * w1
                s30 += a3[k] * w0
                s31 += a3[k] * w1
            C[i, j] = s00
            C[i, j + 1] = s01
            C[i + 1, j] = s10
            C[i + 1, j + 1] = s11
            C[i + 2, j] = s20
            C[i + 2, j + 1] = s21
            C[i + 3, j] = s30
            C[i + 3, j + 1] = s31
            j += 2
        if j < N:
            b0 = Bm[j]
            s00 = s10 = s20 = s30 = zero
            for k in range(K):
                w0 = b0[k]
                s00 += a0[k] * w0
                s10 += a1[k] * w0
                s20 += a2[k] * w0
                s30 += a3[k] * w0
            C[i, j] = s00
            C[i + 1, j] = s10
            C[i + 2, j] = s20
            C[i + 3, j] = s30
        i += 4
    while i < M:
        a0 = A[i]
        j = 0
        while j + 4 <= N:
            b0 = Bm[j]
            b1 = Bm[j + 1]
            b2 = Bm[j + 2]
            b3 = Bm[j + 3]
            s0 = s1 = s2 = s3 = zero
            for k in range(K):
                x = a0[k]
                s0 += x * b0[k]
                s1 += x * b1[k]
                s2 += x * b2[k]
                s3 += x * b3[k]
            C[i, j] = s0
            C[i, j + 1] = s1
            C[i, j + 2] = s2
            C[i, j + 3] = s3
            j += 4
        while j < N:
            b0 = Bm[j]
            s0 = zero
            for k in range(K):
                s0 += a0[k] * b0[k]
            C[i, j] = s0
            j += 1
        i += 1


# ---------------------------------------------------------------------------------------------
# Large products over all timesteps, as tasks (numgru._tasks): BLAS per block of rows (gemm),
# mm_tn_rows per block of C's rows (gemm_tn)
# ---------------------------------------------------------------------------------------------

# the fewest rows of A one task of a large product takes (fewer rows: fewer tasks, down to one).
# Chosen when the products moved onto numgru's threads (2026-11-23) so that a task's BLAS call
# has enough rows to be worth a thread; not measured since.
PRODUCT_MIN_ROWS = 64


def product_tasks(M, nthreads):
    """Tasks for a product over M rows on ``nthreads`` threads: one per thread, each of at
    least ``PRODUCT_MIN_ROWS`` rows (at least one task)."""
    return max(1, min(nthreads, M // PRODUCT_MIN_ROWS))


def gemm(A, W, bias, C, ntasks):
    """C = A @ W + bias: A (M, K) C-contiguous, W (K, N) C- or F-contiguous (a transposed
    weight is passed as ``w.T``), bias (N,) or (0,) for none, C (M, N). Rows are shared out
    in ``ntasks`` blocks (one block runs on the calling thread)."""
    _gemm_task(_pool.ctl(), ntasks, -1, A, W, bias, C)


@njit(**_JIT)
def _gemm_task(ctl, ntasks, task, A, W, bias, C):
    """Block ``task`` of ``ntasks`` of C's rows: C = A @ W + bias there."""
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (A, W, bias, C))
        return
    r0, r1 = _tasks.task_block(task, ntasks, A.shape[0])
    if r1 <= r0:
        return
    np.dot(A[r0:r1], W, C[r0:r1])
    N = C.shape[1]
    if bias.shape[0] == N:
        for i in range(r0, r1):
            c = C[i]
            for j in range(N):
                c[j] += bias[j]


def gemm_tn(A, X, C, ntasks):
    """C = A^T @ X, reducing over the M rows of A (M, N1) and X (M, N2): C (N1, N2).

    Weight gradients: the reduction runs over all B*T timesteps. :func:`mm_tn_rows` (numgru's
    own micro-kernel, not BLAS) with the rows of C shared out in ``ntasks`` blocks of whole
    tiles: each task reduces over all M rows for its rows of C, so no partial products are
    added afterwards and the bits do not depend on ``ntasks``. Measured against BLAS per
    block of rows (the partials then added; Zen 4, float32, 2 threads, 2026-12-03, side by
    side): 1.24-1.65x faster at the mid and large shapes' weight gradients (M = 3200 and
    12800 rows); one task's tiles alone run at 113-116 GFLOP/s, the packing costs 10-15%.
    """
    A = np.ascontiguousarray(A)
    X = np.ascontiguousarray(X)
    out = C if C.flags.c_contiguous else np.empty(C.shape, dtype=C.dtype)
    if X.shape[1] <= TN_NARROW:
        tn_rows_narrow(A, X, out, 0, A.shape[1])       # little work: the calling thread
        if out is not C:
            C[...] = out
        return
    ntasks = max(1, min(ntasks, -(-A.shape[1] // ROWS)))
    _gemm_tn_task(_pool.ctl(), ntasks, -1, A, X, out)
    if out is not C:
        C[...] = out


@njit(**_JIT)
def tn_rows_narrow(A, X, C, r0, r1):
    """C[r0:r1] = A[:, r0:r1]^T @ X for a narrow X (N2 <= ``TN_NARROW`` columns): for each
    column j, the products ``A[k, r0:r1] * X[k, j]`` of each block of ``TN_BLOCK`` rows summed
    in order from 0 (vectorised over C's rows), and the blocks' sums added in order, as
    :func:`mm_tn_rows` sums (one chain over all M rows was 10x less accurate at M = 3200)."""
    M = A.shape[0]
    N2 = X.shape[1]
    if X.shape[0] != M or C.shape[1] != N2 or r0 < 0 or r1 > C.shape[0] or r1 > A.shape[1]:
        raise ValueError("tn_rows_narrow: A (M, N1), X (M, N2), C (N1, N2) and "
                         "0 <= r0 <= r1 <= N1")
    n = r1 - r0
    if n <= 0:
        return
    acc = np.empty(n, dtype=C.dtype)
    total = np.empty(n, dtype=C.dtype)
    zero = C.dtype.type(0)
    for j in range(N2):
        for i in range(n):
            total[i] = zero
        for k0 in range(0, M, TN_BLOCK):
            for i in range(n):
                acc[i] = zero
            for k in range(k0, min(k0 + TN_BLOCK, M)):
                x = X[k, j]
                a = A[k, r0:r1]
                for i in range(n):
                    acc[i] += a[i] * x
            for i in range(n):
                total[i] += acc[i]
        for i in range(n):
            C[r0 + i, j] = total[i]


@njit(**_JIT)
def _gemm_tn_task(ctl, ntasks, task, A, X, C):
    """Block ``task`` of ``ntasks`` of C's tiles of rows: C[rows] = A[:, rows]^T @ X."""
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (A, X, C))
        return
    t0, t1 = _tasks.task_block(task, ntasks, (A.shape[1] + ROWS - 1) // ROWS)
    r1 = min(t1 * ROWS, A.shape[1])
    if r1 > t0 * ROWS:
        mm_tn_rows(A, X, C, t0 * ROWS, r1)
