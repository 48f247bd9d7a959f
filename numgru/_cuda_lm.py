"""CUDA twins of :mod:`numgru._cpu_lm`: the language model's embedding and its softmax over the
vocabulary with the loss, with the arguments and array layouts of the backend contract
(:mod:`numgru._contract`, "Language-model layers").

Shape legend: V vocabulary size, E embedding width, M rows (flattened (b, t) positions),
K features, n rows of one block of logits.

- Embedding: forward one thread per output element; backward deterministic: the ids (tiny)
  are sorted stably on the host, and one thread per (distinct id, column) sums its rows in
  (b, t) order from 0 (the same sums, in the same order, as the CPU kernel).
- Softmax: by blocks of rows whose (rows, V) logits fit ``_config.SOFTMAX_BLOCK_BYTES``; per
  block the logits as one tiled GEMM, then a row kernel with one *block* per row (the row's
  max and sum of exps as tree reductions in shared memory, the sum in float64).

Kernels are built per (dtype, threads per block) on first use (:func:`lm_kernels`; the block
size sizes the shared reduction buffers). Importing this module does not import ``numba.cuda``.
"""

import functools
import math

import numpy as np

from . import _config
from ._cuda_launch import (add_into, blocks, colsum, device_empty, fill, gemm_any, load,
                           row_grid, to_device)

cuda = None     # numba.cuda, bound on first use (a module global: the simulator swaps it)


@functools.lru_cache(maxsize=None)
def lm_kernels(dtype_name, tpb):
    """The language-model kernels of one dtype and block size, by name:
    ``embedding_forward``, ``embedding_backward``, and the row-wise softmax kernels (one block
    per row) ``softmax_xent_rows``, ``softmax_logprob_rows``, ``log_softmax_rows``."""
    import numba

    global cuda
    cuda = load()
    nbt = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def k_embedding_forward(ids, weight, out):
        """out[m, j] = weight[ids[m], j]: ids (M,) int64, weight (V, E), out (M, E)."""
        E = weight.shape[1]
        for idx in range(cuda.grid(1), ids.shape[0] * E, cuda.gridsize(1)):
            m = idx // E
            out[m, idx - m * E] = weight[ids[m], idx - m * E]

    @cuda.jit
    def k_embedding_backward(order, seg_ids, seg_starts, d_out, d_weight):
        """One thread per (distinct id u, column j): d_weight[seg_ids[u], j] = the sum, from 0
        and in order, of d_out[order[p], j] for p in seg_starts[u]..seg_starts[u+1]-1.

        order (M,) int64 a stable argsort of the ids, seg_ids (U,) the distinct ids, seg_starts
        (U+1,) where each run of equal ids starts in ``order``; d_out (M, E), d_weight (V, E)
        (rows of unused ids are not written: the caller zeroes them).
        """
        E = d_weight.shape[1]
        for idx in range(cuda.grid(1), seg_ids.shape[0] * E, cuda.gridsize(1)):
            u = idx // E
            j = idx - u * E
            acc = nbt(0)
            for p in range(seg_starts[u], seg_starts[u + 1]):
                acc += d_out[order[p], j]
            d_weight[seg_ids[u], j] = acc

    @cuda.jit(device=True)
    def block_reduce(buf, is_max):
        """Tree reduction of buf[:blockDim.x] into buf[0] (max or sum), fixed order."""
        tid = cuda.threadIdx.x
        nth = cuda.blockDim.x
        cuda.syncthreads()
        s = 1
        while s < nth:
            if tid % (2 * s) == 0 and tid + s < nth:
                if is_max:
                    if buf[tid + s] > buf[tid]:
                        buf[tid] = buf[tid + s]
                else:
                    buf[tid] += buf[tid + s]
            cuda.syncthreads()
            s *= 2
        return buf[0]

    @cuda.jit(device=True)
    def row_stats(row, smax, ssum):
        """(max, sum of exp(x - max)) of one row by all threads of the block; the sum in
        float64 whatever the dtype. Ends with a barrier, so the shared buffers may be reused."""
        tid = cuda.threadIdx.x
        nth = cuda.blockDim.x
        mx = row[0]
        for v in range(tid, row.shape[0], nth):
            if row[v] > mx:
                mx = row[v]
        smax[tid] = mx
        mx = block_reduce(smax, True)
        acc = 0.0
        for v in range(tid, row.shape[0], nth):
            acc += math.exp(row[v] - mx)
        ssum[tid] = acc
        s = block_reduce(ssum, False)
        cuda.syncthreads()
        return mx, s

    @cuda.jit
    def k_softmax_xent_rows(L, targets, weights, loss):
        """One block per row of a block of logits (grid-stride over rows): loss and, in place,
        the gradient of the logits.

        L (n, V) logits in, (softmax - onehot(target)) * weight out; targets (n,) int64,
        weights (n,); loss (n,) float64 written: weight * (logsumexp(L[m]) - L[m, target]).
        A row of weight 0 gets a zero gradient and loss.
        """
        smax = cuda.shared.array(tpb, nbt)
        ssum = cuda.shared.array(tpb, numba.float64)
        tid = cuda.threadIdx.x
        nth = cuda.blockDim.x
        V = L.shape[1]
        for m in range(cuda.blockIdx.x, L.shape[0], cuda.gridDim.x):
            row = L[m]
            wm = weights[m]
            t = targets[m]
            if wm == 0:
                for v in range(tid, V, nth):
                    row[v] = 0
                if tid == 0:
                    loss[m] = 0.0
                continue
            lt = row[t]                          # read before row_stats' barriers
            mx, s = row_stats(row, smax, ssum)
            scale = nbt(wm / s)
            for v in range(tid, V, nth):
                g = nbt(math.exp(row[v] - mx)) * scale
                if v == t:
                    g -= wm
                row[v] = g
            if tid == 0:
                loss[m] = wm * (mx + math.log(s) - lt)

    @cuda.jit
    def k_softmax_logprob_rows(L, targets, out):
        """out[m] = L[m, targets[m]] - logsumexp(L[m]); one block per row. L (n, V) unchanged."""
        smax = cuda.shared.array(tpb, nbt)
        ssum = cuda.shared.array(tpb, numba.float64)
        for m in range(cuda.blockIdx.x, L.shape[0], cuda.gridDim.x):
            row = L[m]
            lt = row[targets[m]]
            mx, s = row_stats(row, smax, ssum)
            if cuda.threadIdx.x == 0:
                out[m] = lt - (mx + math.log(s))

    @cuda.jit
    def k_log_softmax_rows(L):
        """L[m] -= logsumexp(L[m]) in place (L (M, V) logits -> log-probabilities); one block
        per row."""
        smax = cuda.shared.array(tpb, nbt)
        ssum = cuda.shared.array(tpb, numba.float64)
        for m in range(cuda.blockIdx.x, L.shape[0], cuda.gridDim.x):
            row = L[m]
            mx, s = row_stats(row, smax, ssum)
            lse = nbt(mx + math.log(s))
            for v in range(cuda.threadIdx.x, row.shape[0], cuda.blockDim.x):
                row[v] -= lse

    return dict(embedding_forward=k_embedding_forward, embedding_backward=k_embedding_backward,
                softmax_xent_rows=k_softmax_xent_rows,
                softmax_logprob_rows=k_softmax_logprob_rows, log_softmax_rows=k_log_softmax_rows)


def _kl(dtype):
    """The language-model kernels for ``dtype`` at the current block size."""
    return lm_kernels(np.dtype(dtype).name, _config.CUDA_THREADS_PER_BLOCK)


# ---------------------------------------------------------------------------------------------
# Launchers (arrays and layouts as on the CPU: numgru._contract)
# ---------------------------------------------------------------------------------------------


def _softmax_block_rows(M, V, dtype):
    """Rows per block of logits: (rows, V) within ``_config.SOFTMAX_BLOCK_BYTES``, 1..M."""
    rows = max(1, _config.SOFTMAX_BLOCK_BYTES // (V * np.dtype(dtype).itemsize))
    return max(1, min(M, rows))


def embedding_forward(ids, weight, out):
    """out (B, T, E) = weight[ids]: one thread per output element."""
    M, E = ids.size, weight.shape[1]
    if M:
        tpb = _config.CUDA_THREADS_PER_BLOCK
        _kl(weight.dtype)["embedding_forward"][blocks(M * E, tpb), tpb](
            ids.reshape(M), weight, out.reshape(M, E))


def embedding_backward(ids, d_out, d_weight):
    """d_weight (V, E) = per-id sums of d_out's rows, deterministically: the ids (tiny) are
    sorted stably on the host, and one thread per (distinct id, column) sums its rows in
    (b, t) order from 0 (the same sums, in the same order, as the CPU kernel)."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M, E = ids.size, d_weight.shape[1]
    fill(d_weight, 0)
    if M == 0:
        return
    flat = ids.copy_to_host().reshape(M)
    order = np.argsort(flat, kind="stable")
    ids_sorted = flat[order]
    starts = np.flatnonzero(np.concatenate([[True], ids_sorted[1:] != ids_sorted[:-1]]))
    seg_starts = np.append(starts, M).astype(np.int64)
    U = starts.shape[0]
    _kl(d_weight.dtype)["embedding_backward"][blocks(U * E, tpb), tpb](
        to_device(order.astype(np.int64)), to_device(ids_sorted[starts].astype(np.int64)),
        to_device(seg_starts), d_out.reshape(M, E), d_weight)


def softmax_xent(y, w, b, targets, weights, dy, dw, db):
    """Loss and gradients of the weighted softmax cross-entropy, by blocks of rows: per block
    the logits (tiled GEMM), the row kernel (gradient in place), then dy = g @ w and
    dw += g^T y, db += column sums of g (into scratch and added after the first block).
    Rows of weight 0 get zero gradients (they still take part in the products: their y must be
    finite). Returns the loss, summed on the host in row order."""
    dt = y.dtype
    K = _kl(dt)
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M = y.shape[0]
    V = w.shape[0]
    if M == 0:
        fill(dy, 0)
        fill(dw, 0)
        fill(db, 0)
        return 0.0
    rows = _softmax_block_rows(M, V, dt)
    L = device_empty((rows, V), dt)
    loss = device_empty(M, np.float64)
    none = device_empty(0, dt)
    dw_part = device_empty(dw.shape, dt) if rows < M else None
    db_part = device_empty(db.shape, dt) if rows < M else None
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        G = L[: r1 - r0]
        yb = y[r0:r1]
        gemm_any(yb, w, b, G, False, True)                          # logits = y w^T + b
        K["softmax_xent_rows"][row_grid(r1 - r0), tpb](G, targets[r0:r1], weights[r0:r1],
                                                       loss[r0:r1])
        gemm_any(G, w, none, dy[r0:r1], False, False)               # dy = g @ w
        if r0 == 0:
            gemm_any(G, yb, none, dw, True, False)                  # dw = g^T y
            colsum(G, db)
        else:
            gemm_any(G, yb, none, dw_part, True, False)
            add_into(dw_part, dw)
            colsum(G, db_part)
            add_into(db_part, db)
    return float(loss.copy_to_host().sum())


def softmax_logprob(y, w, b, targets, out):
    """out (M,) = log softmax(y w^T + b)[targets], by blocks of rows."""
    dt = y.dtype
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M, V = y.shape[0], w.shape[0]
    if M == 0:
        return
    rows = _softmax_block_rows(M, V, dt)
    L = device_empty((rows, V), dt)
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        gemm_any(y[r0:r1], w, b, L[: r1 - r0], False, True)
        _kl(dt)["softmax_logprob_rows"][row_grid(r1 - r0), tpb](L[: r1 - r0], targets[r0:r1],
                                                                out[r0:r1])


def log_softmax(y, w, b, out):
    """out (M, V) = log softmax(y w^T + b): the logits into ``out``, then in place."""
    M = y.shape[0]
    if M == 0:
        return
    gemm_any(y, w, b, out, False, True)
    _kl(y.dtype)["log_softmax_rows"][row_grid(M), _config.CUDA_THREADS_PER_BLOCK](out)
