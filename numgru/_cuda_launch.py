"""The launch helper of the CUDA twins: loading the CUDA target, launch geometry, device memory,
the dense kernels every feature uses (tiled GEMM, column sums, elementwise), and their
launchers. :mod:`numgru._cuda` (GRU and vanilla RNN layers), :mod:`numgru._cuda_norm`
(layer normalisation and recurrent dropout) and :mod:`numgru._cuda_lm` (language-model layers)
all build on it; it imports none of them.

Shape legend: M rows, K inner size, N columns. Every array is a Numba device array; the
launchers take contiguous ones unless they say otherwise.

The launch geometry lives in :mod:`numgru._config` (``CUDA_*``) and is read per call
(:func:`geometry`), so that tests can make blocks tiny (several blocks really run under the
simulator). Kernels are built per (dtype, GEMM tile) on first use (:func:`dense_kernels`).

Importing this module does not import ``numba.cuda`` (~0.2 s): :func:`load` does, once.
"""

import functools
import math
import warnings

import numpy as np

from . import _config

cuda = None              # numba.cuda once load() ran (a module global: the simulator swaps it)
_IMPORT_ERROR = None


def load():
    """Import the CUDA target (NVIDIA's numba-cuda: ``pip install "numgru[cuda]"``) once;
    returns ``numba.cuda``, or None when it cannot be imported (:func:`import_error` says why)."""
    global cuda, _IMPORT_ERROR
    if cuda is None and _IMPORT_ERROR is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from numba import cuda as target
            cuda = target
        except Exception as exc:  # pragma: no cover - depends on the installation
            _IMPORT_ERROR = exc
    return cuda


def import_error():
    """The exception that importing the CUDA target raised, or None."""
    return _IMPORT_ERROR


def geometry():
    """(threads per block, rows per thread, GEMM tile) from :mod:`numgru._config`, read per call."""
    return (_config.CUDA_THREADS_PER_BLOCK, _config.CUDA_ROWS_PER_THREAD, _config.CUDA_TILE)


def blocks(n, tpb):
    """Blocks of ``tpb`` threads covering ``n`` work items (grid-stride loops cover the rest)."""
    return max(1, min((n + tpb - 1) // tpb, _config.CUDA_MAX_GRID_BLOCKS))


def row_grid(n):
    """Blocks for a kernel that gives each of ``n`` rows a block (grid-stride over the rest)."""
    return max(1, min(n, _config.CUDA_MAX_GRID_BLOCKS))


# ---------------------------------------------------------------------------------------------
# Dense kernels, built per (dtype, tile)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def dense_kernels(dtype_name, tile):
    """The dense kernels of one dtype and GEMM tile, by name: ``gemm``, ``colsum``, ``mul``,
    ``add``, ``copy``, ``fill``, ``nonfinite`` (``K["gemm"][grid, tpb](...)``)."""
    import numba

    load()
    nbt = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def k_gemm(A, Bm, bias, C, ta, tb):
        """C = op(A) @ op(Bm) (+ bias): op(A) (M, K), op(Bm) (K, N); a tile of C per block."""
        sA = cuda.shared.array((tile, tile), nbt)
        sB = cuda.shared.array((tile, tile), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * tile + ty
        col = cuda.blockIdx.x * tile + tx
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if ta else A.shape[1]
        acc = nbt(0)
        for k0 in range(0, K, tile):
            ka = k0 + tx
            if row < M and ka < K:
                sA[ty, tx] = A[ka, row] if ta else A[row, ka]
            else:
                sA[ty, tx] = 0
            kb = k0 + ty
            if kb < K and col < N:
                sB[ty, tx] = Bm[col, kb] if tb else Bm[kb, col]
            else:
                sB[ty, tx] = 0
            cuda.syncthreads()
            for kk in range(tile):
                acc += sA[ty, kk] * sB[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            if bias.shape[0] == N:
                acc += bias[col]
            C[row, col] = acc

    @cuda.jit
    def k_colsum(A, out):
        """out[j] = sum_i A[i, j] (A (M, N))."""
        for j in range(cuda.grid(1), A.shape[1], cuda.gridsize(1)):
            acc = nbt(0)
            for i in range(A.shape[0]):
                acc += A[i, j]
            out[j] = acc

    @cuda.jit
    def k_mul(a, b, out):
        """out = a * b, elementwise over 1-D views."""
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            out[i] = a[i] * b[i]

    @cuda.jit
    def k_add(a, b, out):
        """out = a + b, elementwise over 1-D views (out may be a or b)."""
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            out[i] = a[i] + b[i]

    @cuda.jit
    def k_copy(a, out):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            out[i] = a[i]

    @cuda.jit
    def k_fill(out, value):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = value

    @cuda.jit
    def k_nonfinite(a, flag):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            v = a[i]
            if math.isnan(v) or math.isinf(v):
                flag[0] = 1

    return dict(gemm=k_gemm, colsum=k_colsum, mul=k_mul, add=k_add, copy=k_copy, fill=k_fill,
                nonfinite=k_nonfinite)


def _kd(dtype):
    """The dense kernels for ``dtype`` at the current tile."""
    return dense_kernels(np.dtype(dtype).name, _config.CUDA_TILE)


# ---------------------------------------------------------------------------------------------
# Device memory and elementwise helpers
# ---------------------------------------------------------------------------------------------


def as_device(a):
    """A Numba view of a CUDA array (no copy)."""
    if hasattr(a, "copy_to_host"):           # already a Numba device array
        return a
    return load().as_cuda_array(a)


def to_device(a):
    """A host array as a new C-contiguous device array."""
    return load().to_device(np.ascontiguousarray(a))


def device_empty(shape, dtype):
    """A new uninitialised device array."""
    return load().device_array(shape, dtype=dtype)


def flat(a):
    """A contiguous array as a 1-D view."""
    return a.reshape(a.size)


def copy(a, out):
    """out[...] = a (same shapes, contiguous)."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    _kd(a.dtype)["copy"][blocks(a.size, tpb), tpb](flat(a), flat(out))


def fill(out, value):
    """out[...] = value (contiguous); returns out."""
    if out.size:
        tpb = _config.CUDA_THREADS_PER_BLOCK
        _kd(out.dtype)["fill"][blocks(out.size, tpb), tpb](flat(out), out.dtype.type(value))
    return out


def mul(a, b, out):
    """out = a * b (same shapes, contiguous): dropout masks."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    _kd(a.dtype)["mul"][blocks(a.size, tpb), tpb](flat(a), flat(b), flat(out))
    return out


def add(a, b, out):
    """out = a + b (same shapes, contiguous; out may be a or b): residual connections."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    _kd(a.dtype)["add"][blocks(a.size, tpb), tpb](flat(a), flat(b), flat(out))
    return out


def add_into(a, out):
    """out += a (same shapes, contiguous)."""
    add(a, out, out)


def has_nonfinite(a):
    """True when a (contiguous) device array holds NaN or inf."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    flag = to_device(np.zeros(1, dtype=np.int32))
    _kd(a.dtype)["nonfinite"][blocks(a.size, tpb), tpb](flat(a), flag)
    return bool(flag.copy_to_host()[0])


def colsum(A, out):
    """out (N,) = the column sums of A (M, N), each in row order."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    _kd(A.dtype)["colsum"][blocks(A.shape[1], tpb), tpb](A, out)


# ---------------------------------------------------------------------------------------------
# Products (Numba has no cuBLAS binding: one tiled shared-memory GEMM)
# ---------------------------------------------------------------------------------------------


def gemm_any(A, Bm, bias, C, ta, tb):
    """C = op(A) @ op(Bm) (+ bias): op transposes when ``ta`` / ``tb``; bias (N,) or (0,)."""
    tile = _config.CUDA_TILE
    M, N = C.shape
    grid = ((N + tile - 1) // tile, (M + tile - 1) // tile)
    _kd(C.dtype)["gemm"][grid, (tile, tile)](A, Bm, bias, C, ta, tb)


def gemm(A, W, bias, C):
    """C = A @ W + bias: A (M, K), W (K, N) (any strides, e.g. ``w.T``), bias (N,) or (0,)."""
    gemm_any(A, W, bias, C, False, False)


def gemm_tn(A, X, C):
    """C = A^T @ X: A (M, N1), X (M, N2), C (N1, N2): weight gradients over all timesteps."""
    gemm_any(A, X, device_empty(0, C.dtype), C, True, False)
