"""CPU kernels of the language model: the embedding, and the softmax over the vocabulary with
its loss (the contract is :mod:`numgru._contract`, "Language-model layers").

Shape legend: V vocabulary size, E embedding width, M rows (flattened (b, t) positions),
K features, n rows of one block of logits.

- Embedding forward: rows shared out in blocks; backward: blocks of columns, each element
  summed in row-major (b, t) order from 0, so the result does not depend on the thread count.
- Softmax: never all (M, V) logits at once: blocks of rows whose (rows, V) logits fit
  ``_config.SOFTMAX_BLOCK_BYTES``. Per block the logits as one product (``numgru._gemm``),
  then a row pass (max, logsumexp, loss, the gradient in place), then the gradients' products.
- One row (generation): the decoder's product split over the vocabulary's rows
  (:func:`matvec`), so that both cores stream weights.

Every kernel runs as tasks (``kernel(ctl, ntasks, task, ...)``, :mod:`numgru._tasks`); how many
is decided here from the thread count the caller passes (``numgru._cpu.CPUBackend``).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from . import _config, _pool, _tasks
from ._config import CACHE, FASTMATH, SPLIT_STEP_MIN_WORK
from ._gemm import gemm, product_tasks
from ._math import add_into, copy_into, exp_f32

_JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=CACHE, nogil=True)

# element operations per task below which a language-model kernel gets fewer tasks (one, below
# this in all): the GRU step's split threshold, taken over when these kernels came in
# (2026-12-01) and not measured for them separately
LM_MIN_WORK = 1 << 15
# at least this many columns of the embedding gradient per task (16 float32 are one 64-byte
# cache line, so two tasks never write the same line of a row); chosen, not measured
EMBEDDING_MIN_COLUMNS = 16
# at least this many vocabulary rows of the decoder's gradients per task (one BLAS call per
# task over a column slice of the logits' gradient); chosen, not measured
DECODER_MIN_ROWS = 256


def _exp(x):
    """exp(x) inside Numba: the vectorisable ``_math.exp_f32`` for float32 (a few ulp; no
    libm call, so a loop over it vectorises), libm for float64."""
    return np.exp(x)


@overload(_exp)
def _ol_exp(x):
    if x == types.float32:
        return lambda x: exp_f32(x)
    if x == types.float64:
        return lambda x: math.exp(x)
    return None


@njit(**_JIT)
def _embedding_forward_task(ctl, ntasks, task, ids, weight, out):
    """out[m] = weight[ids[m]] for the rows m = r0..r1-1 of block ``task``.

    ids     (M,)    int64, 0 <= id < V (validated by the caller)
    weight  (V, E)  the embedding table
    out     (M, E)  written
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (ids, weight, out))
        return
    r0, r1 = _tasks.task_block(task, ntasks, ids.shape[0])
    for m in range(r0, r1):
        copy_into(weight[ids[m]], out[m])


def embedding_forward(ids, weight, out, ntasks):
    """out[m] = weight[ids[m]]: ids (M,) int64, weight (V, E), out (M, E); rows shared out in
    ``ntasks`` blocks."""
    _embedding_forward_task(_pool.ctl(), ntasks, -1, ids, weight, out)


@njit(**_JIT)
def _embedding_backward_task(ctl, ntasks, task, ids, d_out, d_weight):
    """Block ``task`` (columns c0..c1-1) of the embedding gradient: d_weight[:, c0:c1] = 0, then
    for m in order
    d_weight[ids[m], c0:c1] += d_out[m, c0:c1].

    ids       (M,)    int64
    d_out     (M, E)  gradient arriving at the embedding's output
    d_weight  (V, E)  written (these columns): each element summed in row-major (b, t) order
                      starting from 0, whoever owns its column, so the result does not depend
                      on the number of tasks
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (ids, d_out, d_weight))
        return
    c0, c1 = _tasks.task_block(task, ntasks, d_weight.shape[1])
    V = d_weight.shape[0]
    for v in range(V):
        d_weight[v, c0:c1] = 0
    for m in range(ids.shape[0]):
        add_into(d_out[m, c0:c1], d_weight[ids[m], c0:c1])


def embedding_backward(ids, d_out, d_weight, ntasks):
    """d_weight (V, E) = per-id sums of the rows of d_out (M, E) (ids (M,) int64), parallel over
    ``ntasks`` blocks of columns; deterministic, bit-identical for any ``ntasks``.

    Chosen over a stable sort of ids then parallel over runs of equal ids (same sums in the
    same order, so the same bits): at V=10000, E=300, M=700, float32, best of 20 on the 2-vCPU
    development VM, 0.21 ms (1 task) against 0.26 ms for the sorted variant (argsort included),
    and 6.1 ms against 14.6 ms with 2 tasks (that VM's second vCPU was busy with other work:
    waking it dominated both).
    """
    _embedding_backward_task(_pool.ctl(), ntasks, -1, ids, d_out, d_weight)


@njit(inline="always", **_JIT)
def _row_max(row):
    mx = row[0]
    for v in range(1, row.shape[0]):
        x = row[v]
        mx = x if x > mx else mx
    return mx


@njit(inline="always", **_JIT)
def _row_add_max(row, b):
    """row += b (the decoder bias, added here rather than in a separate pass after the
    product), and the row's max."""
    mx = row[0] + b[0]
    for v in range(row.shape[0]):
        x = row[v] + b[v]
        row[v] = x
        mx = x if x > mx else mx
    return mx


@njit(inline="always", **_JIT)
def _row_sumexp(row, mx):
    """sum_v exp(row[v] - mx), accumulated in float64 (each exp of a non-positive number)."""
    s = 0.0
    for v in range(row.shape[0]):
        s += _exp(row[v] - mx)
    return s


@njit(**_JIT)
def _softmax_xent_task(ctl, ntasks, task, L, b, targets, weights, loss):
    """Rows r0..r1-1 (block ``task``) of a block of logits: loss and, in place, the gradient of
    the logits.

    L        (n, V)  y @ w^T in (logits without the bias); out: (softmax - onehot(target))
                     * weight
    b        (V,)    the bias, added to the logits here
    targets  (n,)    int64
    weights  (n,)    row weights (the caller leaves out rows of weight 0)
    loss     (n,)    float64, written: weight * (logsumexp(L[m]) - L[m, target])

    Stable: exp of (logit - row max) only; the sum of exps is float64 whatever the dtype. One
    exp per element (the exps are stored, then scaled by weight / sum).
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (L, b, targets, weights, loss))
        return
    r0, r1 = _tasks.task_block(task, ntasks, L.shape[0])
    for m in range(r0, r1):
        row = L[m]
        t = targets[m]
        wm = weights[m]
        mx = _row_add_max(row, b)
        lt = row[t]
        s = 0.0
        for v in range(row.shape[0]):
            e = _exp(row[v] - mx)
            row[v] = e
            s += e
        loss[m] = wm * (mx + math.log(s) - lt)
        scale = row.dtype.type(wm / s)
        for v in range(row.shape[0]):
            row[v] *= scale
        row[t] -= wm


def softmax_xent_rows(L, b, targets, weights, loss, ntasks):
    """:func:`_softmax_xent_task` over all rows of the block, in ``ntasks`` blocks of rows."""
    _softmax_xent_task(_pool.ctl(), ntasks, -1, L, b, targets, weights, loss)


@intrinsic
def _gemm_tn_cols(typingctx, G, v0, v1, Y, C, beta):
    """C[:v1-v0] = beta * C[:v1-v0] + G[:, v0:v1]^T @ Y in one BLAS call (``?gemm``, beta
    applied by BLAS, no copy of the column slice of G: it is read through its leading
    dimension).

    G (n, V), Y (n, K), C (>= v1-v0, K), all C-contiguous of one float dtype; ``beta`` 0 or 1
    (any float). No shape checks: the caller guarantees them.
    """
    from numba.np.linalg import ensure_blas

    for name, arr in (("G", G), ("Y", Y), ("C", C)):
        if (not isinstance(arr, types.Array) or arr.ndim != 2 or arr.layout != "C"
                or arr.dtype != G.dtype or arr.dtype not in (types.float32, types.float64)):
            raise TypingError(f"_gemm_tn_cols: {name} must be a C-contiguous 2-D float32 or "
                              f"float64 array of G's dtype, got {arr}")
    ensure_blas()
    sig = types.void(G, v0, v1, Y, C, beta)

    def codegen(context, builder, signature, args):
        from numba.np.linalg import (check_blas_return, get_blas_kind, ll_char, ll_void_p,
                                     make_constant_slot)

        g_arg, v0_arg, v1_arg, y_arg, c_arg, beta_arg = args
        dtype = signature.args[0].dtype
        intp = context.get_value_type(types.intp)
        g = context.make_array(signature.args[0])(context, builder, g_arg)
        y = context.make_array(signature.args[3])(context, builder, y_arg)
        c = context.make_array(signature.args[4])(context, builder, c_arg)
        v0v = context.cast(builder, v0_arg, signature.args[1], types.intp)
        v1v = context.cast(builder, v1_arg, signature.args[2], types.intp)
        n = builder.extract_value(g.shape, 0)
        V = builder.extract_value(g.shape, 1)
        K = builder.extract_value(y.shape, 1)
        fnty = ir.FunctionType(ir.IntType(32), [ll_char, ll_char, ll_char, intp, intp, intp,
                                                ll_void_p, ll_void_p, intp, ll_void_p, intp,
                                                ll_void_p, ll_void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        alpha = make_constant_slot(context, builder, dtype, 1.0)
        beta_val = context.cast(builder, beta_arg, signature.args[5], dtype)
        beta_slot = cgutils.alloca_once_value(builder, beta_val)
        # column-major view: C^T (K, c) = Y^T (K, n, ld K) @ (G[:, v0:v1]^T)^T, the slice read
        # as the transpose of a (c, n) column-major block of leading dimension V
        res = builder.call(fn, (
            ir.Constant(ll_char, ord(get_blas_kind(dtype))),
            ir.Constant(ll_char, ord("n")), ir.Constant(ll_char, ord("t")),
            K, builder.sub(v1v, v0v), n,
            builder.bitcast(alpha, ll_void_p),
            builder.bitcast(y.data, ll_void_p), K,
            builder.bitcast(builder.gep(g.data, [v0v]), ll_void_p), V,
            builder.bitcast(beta_slot, ll_void_p),
            builder.bitcast(c.data, ll_void_p), K))
        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return sig, codegen


@njit(**_JIT)
def _softmax_weight_grad_task(ctl, ntasks, task, G, Y, dw, db, accumulate):
    """Rows v0..v1-1 (block ``task``) of the decoder's gradients from one block of rows.

    G           (n, V)  gradient of the block's logits
    Y           (n, K)  the block's features
    dw          (V, K)  dw[v0:v1] = G[:, v0:v1]^T @ Y, added to it when ``accumulate``
    db          (V,)    db[v0:v1] = column sums of G[:, v0:v1] (rows in order), likewise

    ``gemm_tn`` would reduce over the n rows with a private (V, K) partial per task; splitting
    over V instead needs none, and BLAS adds into dw itself (beta = 1) and reads the column
    slice of G in place (:func:`_gemm_tn_cols`). Measured at V=10000, K=512, n=209, float32,
    one thread: 24.0 ms with the column sums, against 22.5 ms for ``np.dot(G.T, Y)`` alone;
    the first version (a contiguous copy of each 256-column slice, ``np.dot`` into scratch,
    then an add) took 27.6 ms.
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (G, Y, dw, db, accumulate))
        return
    v0, v1 = _tasks.task_block(task, ntasks, G.shape[1])
    if v1 <= v0:
        return
    dbv = db[v0:v1]
    if not accumulate:
        dbv[:] = 0
    for m in range(G.shape[0]):
        add_into(G[m, v0:v1], dbv)
    if Y.shape[1] == 0:                          # BLAS refuses a leading dimension of 0
        return
    _gemm_tn_cols(G, v0, v1, Y, dw[v0:], 1.0 if accumulate else 0.0)


def softmax_weight_grad(G, Y, dw, db, accumulate, ntasks):
    """:func:`_softmax_weight_grad_task` over all V rows of dw, in ``ntasks`` blocks of rows."""
    _softmax_weight_grad_task(_pool.ctl(), ntasks, -1, G, Y, dw, db, accumulate)


@njit(**_JIT)
def _softmax_logprob_task(ctl, ntasks, task, L, b, targets, out):
    """out[m] = l[m, targets[m]] - logsumexp(l[m]) for rows r0..r1-1 (block ``task``) of a
    block, l = L + b.

    L (n, V) y @ w^T (b is added to it in place), b (V,), targets (n,) int64, out (n,) written.
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (L, b, targets, out))
        return
    r0, r1 = _tasks.task_block(task, ntasks, L.shape[0])
    for m in range(r0, r1):
        row = L[m]
        mx = _row_add_max(row, b)
        out[m] = row[targets[m]] - (mx + math.log(_row_sumexp(row, mx)))


def softmax_logprob_rows(L, b, targets, out, ntasks):
    _softmax_logprob_task(_pool.ctl(), ntasks, -1, L, b, targets, out)


@njit(**_JIT)
def _log_softmax_task(ctl, ntasks, task, L):
    """L[m] -= logsumexp(L[m]) in place for rows r0..r1-1 (block ``task``): L (M, V) logits ->
    log-probabilities."""
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (L,))
        return
    r0, r1 = _tasks.task_block(task, ntasks, L.shape[0])
    for m in range(r0, r1):
        row = L[m]
        mx = _row_max(row)
        lse = row.dtype.type(mx + math.log(_row_sumexp(row, mx)))
        for v in range(row.shape[0]):
            row[v] -= lse


def log_softmax_rows(L, ntasks):
    _log_softmax_task(_pool.ctl(), ntasks, -1, L)


# ---------------------------------------------------------------------------------------------
# One row: the decoder's product split over the vocabulary's rows
# ---------------------------------------------------------------------------------------------


@njit(**_JIT)
def _matvec_task(ctl, ntasks, task, W, v, bias, out):
    """out[r0:r1] = W[r0:r1] @ v (+ bias[r0:r1]) for block ``task`` of the N rows: W (N, K)
    C-contiguous, v (K,), bias (N,) or (0,) for none, out (N,)."""
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (W, v, bias, out))
        return
    r0, r1 = _tasks.task_block(task, ntasks, W.shape[0])
    if r1 <= r0:
        return
    np.dot(W[r0:r1], v, out[r0:r1])
    if bias.shape[0] == out.shape[0]:
        for i in range(r0, r1):
            out[i] += bias[i]



def matvec(W, v, bias, out, ntasks):
    """out = W @ v (+ bias) in ``ntasks`` blocks of W's rows (:func:`_matvec_task`)."""
    _matvec_task(_pool.ctl(), ntasks, -1, W, v, bias, out)


# ---------------------------------------------------------------------------------------------
# The layers, by blocks of rows (what the backend's methods run)
# ---------------------------------------------------------------------------------------------


def lm_tasks(n, work, nthreads):
    """Tasks for ``n`` independent items of ``work`` element operations in all: one per
    thread (of ``nthreads``), but at most one per ``LM_MIN_WORK`` elements (and per item)."""
    return max(1, min(nthreads, n, work // LM_MIN_WORK))


def softmax_block_rows(V, dtype):
    """Rows per block of logits: (rows, V) of ``dtype`` within SOFTMAX_BLOCK_BYTES, >= 1."""
    return max(1, _config.SOFTMAX_BLOCK_BYTES // (V * np.dtype(dtype).itemsize))


def _gemm(A, W, bias, C, nthreads):
    """C = A @ W + bias on ``nthreads`` threads (the backend's products over all rows)."""
    gemm(A, W, bias, C, product_tasks(A.shape[0], nthreads))


def softmax_xent(y, w, b, targets, weights, dy, dw, db, nthreads):
    """The backend's ``softmax_xent`` (:mod:`numgru._contract`) on ``nthreads`` threads:
    returns the loss; rows of weight 0 are left out of every product."""
    M, K = y.shape
    V = w.shape[0]
    keep = np.flatnonzero(weights)                # rows of weight 0 are left out
    if keep.shape[0] < M:
        dy[:] = 0
        y, targets, weights = y[keep], targets[keep], weights[keep]
        dy_k = np.empty((keep.shape[0], K), dtype=dy.dtype)
    else:
        dy_k = dy
    Mk = keep.shape[0]
    if Mk == 0:
        dw[:] = 0
        db[:] = 0
        return 0.0
    loss = np.empty(Mk, dtype=np.float64)        # per row, summed in order at the end
    rows = min(Mk, softmax_block_rows(V, y.dtype))
    L = np.empty((rows, V), dtype=y.dtype)       # the block's logits, then their gradient
    no_bias = np.empty(0, dtype=y.dtype)
    tasks_v = lm_tasks(V // DECODER_MIN_ROWS, V * rows, nthreads)
    for r0 in range(0, Mk, rows):
        r1 = min(Mk, r0 + rows)
        n = r1 - r0
        G = L[:n]
        yb = y[r0:r1]
        _gemm(yb, w.T, no_bias, G, nthreads)                        # logits, less b
        softmax_xent_rows(G, b, targets[r0:r1], weights[r0:r1], loss[r0:r1],
                          lm_tasks(n, n * V, nthreads))
        _gemm(G, w, no_bias, dy_k[r0:r1], nthreads)                 # dy = g @ w
        softmax_weight_grad(G, yb, dw, db, r0 > 0, tasks_v)        # dw, db (+)= g^T y, sums
    if Mk < M:
        dy[keep] = dy_k
    return float(loss.sum())


def softmax_logprob(y, w, b, targets, out, nthreads):
    """The backend's ``softmax_logprob`` (:mod:`numgru._contract`) on ``nthreads`` threads."""
    M = y.shape[0]
    V = w.shape[0]
    if M == 0:
        return
    rows = min(M, softmax_block_rows(V, y.dtype))
    L = np.empty((rows, V), dtype=y.dtype)
    no_bias = np.empty(0, dtype=y.dtype)
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        n = r1 - r0
        _gemm(y[r0:r1], w.T, no_bias, L[:n], nthreads)             # logits, less b
        softmax_logprob_rows(L[:n], b, targets[r0:r1], out[r0:r1], lm_tasks(n, n * V, nthreads))


def log_softmax(y, w, b, out, nthreads):
    """The backend's ``log_softmax`` (:mod:`numgru._contract`) on ``nthreads`` threads."""
    M = y.shape[0]
    V = w.shape[0]
    if M == 0:
        return
    nsplit = max(1, min(nthreads, V * y.shape[1] // SPLIT_STEP_MIN_WORK))
    if M == 1 and nsplit > 1:
        # one row (generation): the decoder product split over the vocabulary's rows
        matvec(w, y[0], b, out[0], nsplit)
    else:
        _gemm(y, w.T, b, out, nthreads)
    log_softmax_rows(out, lm_tasks(M, M * V, nthreads))
