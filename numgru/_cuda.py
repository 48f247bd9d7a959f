"""CUDA kernels: the @cuda.jit twins of :mod:`numgru._cpu`, with the same launcher signatures.

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2),
G = D*3H (the width of the input projections of all directions), O = D*H (the layer's output).
Every array handed to a launcher is a device array with the layout documented on the CPU twin.

The layer is computed as on the CPU (and as cuDNN does it):

1. ``gi = x @ W_ih^T + b_ih`` for all timesteps and directions: one tiled shared-memory GEMM
   (:func:`gemm`; Numba has no cuBLAS binding).
2. :func:`gru_layer_forward`: the recurrence. Each step is split into *phases* separated by a
   barrier, because a step needs the whole previous state of its row:

   - ``reset_after=True``: one phase per step. A thread owns hidden unit ``j`` of a group of
     ``ROWS`` batch rows: it forms the three recurrent dot products ``W_h{r,z,n}[j] . h`` for
     those rows (reading ``W_hh^T`` so that neighbouring threads read neighbouring words), then
     the fused gates and ``h'``.
   - ``reset_after=False`` (Cho): phase 1 forms r, z and ``r * h``; phase 2 ``W_hn (r * h)``,
     n and ``h'``.

   Two launch strategies share these phase device functions:

   - *per step* (:func:`_phase_kernels`): one kernel launch per phase and step. Runs under
     Numba's CUDA simulator and is the reference for the persistent kernel.
   - *persistent* (:func:`_persistent_kernels`, Diamos et al. 2016): one launch per layer; all
     blocks stay resident for all timesteps and a grid-wide barrier (cooperative launch,
     ``cuda.cg.this_grid().sync()``) separates the phases; with a single block the barrier is
     ``syncthreads`` so that the simulator can run it too. The state is double-buffered in
     global memory (L2-resident for the sizes this is used at).
3. :func:`gru_layer_backward`: the backward recurrence with the same phase structure (one
   barrier per step, two for Cho), then the bias gradients as column sums; the weight
   gradients are one tiled GEMM over all timesteps each (:func:`gemm_tn`), as on the CPU.

Kernels are built per (dtype, threads per block, rows per thread, tile) by :func:`_kernels`, so
that tests can make blocks tiny (several blocks really run under the simulator) by changing
``_config.CUDA_THREADS_PER_BLOCK`` / ``CUDA_ROWS_PER_THREAD`` / ``CUDA_TILE``.
"""

import functools
import math

import numpy as np

from . import _config

cuda = None              # numba.cuda, imported on first use (it costs ~0.2 s): see _load()
_IMPORT_ERROR = None


def _load():
    """Import the CUDA target (NVIDIA's numba-cuda: ``pip install "numgru[cuda]"``) once."""
    global cuda, _IMPORT_ERROR
    if cuda is None and _IMPORT_ERROR is None:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from numba import cuda as target
            cuda = target
        except Exception as exc:  # pragma: no cover - depends on the installation
            _IMPORT_ERROR = exc
    return cuda


# ---------------------------------------------------------------------------------------------
# Availability
# ---------------------------------------------------------------------------------------------


def simulator_enabled():
    """True when Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) stands in for a GPU."""
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", False)) and _load() is not None


def unavailable_reason():
    """None when CUDA kernels can run here (a GPU or the simulator), else why not."""
    if _load() is None:
        return ("the CUDA target is not installed (pip install \"numgru[cuda]\" installs "
                f"numba-cuda): {type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}")
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # pragma: no cover - driver problems
        return f"the CUDA driver failed to initialise ({type(exc).__name__}: {exc})"
    return "no CUDA driver or no NVIDIA GPU was found (numba.cuda.is_available() is False)"


def gpu_present():
    """True only for a real GPU (not the simulator): what ``device="auto"`` picks."""
    return unavailable_reason() is None and not simulator_enabled()


def is_device_array(a):
    """Anything exposing ``__cuda_array_interface__`` (Numba device arrays, CuPy arrays)."""
    if hasattr(a, "__cuda_array_interface__"):
        return True
    return hasattr(a, "copy_to_host") and simulator_enabled()   # the simulator's fake arrays


def as_device(a):
    """A Numba view of a CUDA array (no copy)."""
    if hasattr(a, "copy_to_host"):           # already a Numba device array
        return a
    return _load().as_cuda_array(a)


def to_device(a):
    return _load().to_device(np.ascontiguousarray(a))


def device_empty(shape, dtype):
    return _load().device_array(shape, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Kernels, built per configuration
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _kernels(dtype_name, tpb, rows, tile):
    """Compile-on-first-use set of kernels for one dtype and launch geometry."""
    from numba import types

    _load()
    nbt = {"float32": types.float32, "float64": types.float64}[dtype_name]
    R = rows
    R3 = 3 * rows

    @cuda.jit(device=True, inline=True)
    def sigmoid(x):
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    @cuda.jit(device=True, inline=True)
    def barrier():
        if cuda.gridDim.x == 1:
            cuda.syncthreads()
        else:
            cuda.cg.this_grid().sync()

    @cuda.jit(device=True, inline=True)
    def step_time(s, d, T):
        return T - 1 - s if d == 1 else s

    # ----------------------------------------------------------------- forward phases
    @cuda.jit(device=True)
    def fwd_after(gid, gstride, s, gi, whhT, bhh, hsrc, hdst, lengths, out, store, gates,
                  hn_s, hprev_s):
        """reset_after=True: recurrent products, gates and h' for every (d, row group, j)."""
        D = hsrc.shape[0]
        B = hsrc.shape[1]
        H = hsrc.shape[2]
        T = gi.shape[1]
        ngroups = (B + R - 1) // R
        acc = cuda.local.array(R3, nbt)
        for item in range(gid, D * ngroups * H, gstride):
            j = item % H
            rest = item // H
            g = rest % ngroups
            d = rest // ngroups
            t = step_time(s, d, T)
            b0 = g * R
            for i in range(R):
                acc[3 * i] = bhh[d, j]
                acc[3 * i + 1] = bhh[d, H + j]
                acc[3 * i + 2] = bhh[d, 2 * H + j]
            for k in range(H):
                wr = whhT[d, k, j]
                wz = whhT[d, k, H + j]
                wn = whhT[d, k, 2 * H + j]
                for i in range(R):
                    if b0 + i < B:
                        hk = hsrc[d, b0 + i, k]
                        acc[3 * i] += hk * wr
                        acc[3 * i + 1] += hk * wz
                        acc[3 * i + 2] += hk * wn
            for i in range(R):
                b = b0 + i
                if b < B:
                    hp = hsrc[d, b, j]
                    if store:
                        hprev_s[d, t, b, j] = hp
                    if t >= lengths[b]:
                        out[b, t, d * H + j] = 0
                        hdst[d, b, j] = hp
                        if store:
                            gates[d, t, b, j] = 0
                            gates[d, t, b, H + j] = 0
                            gates[d, t, b, 2 * H + j] = 0
                            hn_s[d, t, b, j] = 0
                        continue
                    base = d * 3 * H
                    r = sigmoid(gi[b, t, base + j] + acc[3 * i])
                    z = sigmoid(gi[b, t, base + H + j] + acc[3 * i + 1])
                    n = math.tanh(gi[b, t, base + 2 * H + j] + r * acc[3 * i + 2])
                    hnew = n + z * (hp - n)
                    out[b, t, d * H + j] = hnew
                    hdst[d, b, j] = hnew
                    if store:
                        gates[d, t, b, j] = r
                        gates[d, t, b, H + j] = z
                        gates[d, t, b, 2 * H + j] = n
                        hn_s[d, t, b, j] = acc[3 * i + 2]

    @cuda.jit(device=True)
    def fwd_cho_rz(gid, gstride, s, gi, whhT, bhh, hsrc, lengths, rz, rh):
        """reset_after=False, phase 1: r, z (into rz (D, B, 2H)) and r * h (into rh (D, B, H))."""
        D = hsrc.shape[0]
        B = hsrc.shape[1]
        H = hsrc.shape[2]
        T = gi.shape[1]
        ngroups = (B + R - 1) // R
        acc = cuda.local.array(R3, nbt)
        for item in range(gid, D * ngroups * H, gstride):
            j = item % H
            rest = item // H
            g = rest % ngroups
            d = rest // ngroups
            t = step_time(s, d, T)
            b0 = g * R
            for i in range(R):
                acc[3 * i] = bhh[d, j]
                acc[3 * i + 1] = bhh[d, H + j]
            for k in range(H):
                wr = whhT[d, k, j]
                wz = whhT[d, k, H + j]
                for i in range(R):
                    if b0 + i < B:
                        hk = hsrc[d, b0 + i, k]
                        acc[3 * i] += hk * wr
                        acc[3 * i + 1] += hk * wz
            for i in range(R):
                b = b0 + i
                if b < B:
                    if t >= lengths[b]:
                        rz[d, b, j] = 0
                        rz[d, b, H + j] = 0
                        rh[d, b, j] = 0
                        continue
                    base = d * 3 * H
                    r = sigmoid(gi[b, t, base + j] + acc[3 * i])
                    rz[d, b, j] = r
                    rz[d, b, H + j] = sigmoid(gi[b, t, base + H + j] + acc[3 * i + 1])
                    rh[d, b, j] = r * hsrc[d, b, j]

    @cuda.jit(device=True)
    def fwd_cho_n(gid, gstride, s, gi, whhT, hsrc, hdst, lengths, rz, rh, out, store, gates,
                  hprev_s):
        """reset_after=False, phase 2: n = tanh(gi_n + W_hn (r * h)) and h'."""
        D = hsrc.shape[0]
        B = hsrc.shape[1]
        H = hsrc.shape[2]
        T = gi.shape[1]
        ngroups = (B + R - 1) // R
        acc = cuda.local.array(R3, nbt)
        for item in range(gid, D * ngroups * H, gstride):
            j = item % H
            rest = item // H
            g = rest % ngroups
            d = rest // ngroups
            t = step_time(s, d, T)
            b0 = g * R
            for i in range(R):
                acc[i] = 0
            for k in range(H):
                wn = whhT[d, k, 2 * H + j]
                for i in range(R):
                    if b0 + i < B:
                        acc[i] += rh[d, b0 + i, k] * wn
            for i in range(R):
                b = b0 + i
                if b < B:
                    hp = hsrc[d, b, j]
                    if store:
                        hprev_s[d, t, b, j] = hp
                    if t >= lengths[b]:
                        out[b, t, d * H + j] = 0
                        hdst[d, b, j] = hp
                        if store:
                            gates[d, t, b, j] = 0
                            gates[d, t, b, H + j] = 0
                            gates[d, t, b, 2 * H + j] = 0
                        continue
                    z = rz[d, b, H + j]
                    n = math.tanh(gi[b, t, d * 3 * H + 2 * H + j] + acc[i])
                    hnew = n + z * (hp - n)
                    out[b, t, d * H + j] = hnew
                    hdst[d, b, j] = hnew
                    if store:
                        gates[d, t, b, j] = rz[d, b, j]
                        gates[d, t, b, H + j] = z
                        gates[d, t, b, 2 * H + j] = n

    # ----------------------------------------------------------------- backward phases
    @cuda.jit(device=True)
    def bwd_gates(gid, gstride, s, reset_after, d_out, gates, hn_s, hprev_s, lengths, dhsrc,
                  dgi, dgh, direct):
        """Elementwise part of a backward step for every (d, b, k); needs only unit k's values.

        dh' = carried + d_out; da_n = dh'(1-z)(1-n^2); da_z = dh'(h-n)z(1-z); direct = dh' z;
        reset_after: da_r = da_n hn r(1-r), dgh = [da_r, da_z, r da_n]. Cho: da_r comes in
        phase 2; dgh = [., da_z, da_n].
        """
        D = dhsrc.shape[0]
        B = dhsrc.shape[1]
        H = dhsrc.shape[2]
        T = d_out.shape[1]
        for item in range(gid, D * B * H, gstride):
            k = item % H
            rest = item // H
            b = rest % B
            d = rest // B
            t = T - 1 - step_time(s, d, T)          # backward runs the forward order reversed
            base = d * 3 * H
            dh = dhsrc[d, b, k]
            if t >= lengths[b]:
                dgi[b, t, base + k] = 0
                dgi[b, t, base + H + k] = 0
                dgi[b, t, base + 2 * H + k] = 0
                dgh[d, t, b, k] = 0
                dgh[d, t, b, H + k] = 0
                dgh[d, t, b, 2 * H + k] = 0
                direct[d, b, k] = dh
                continue
            gs = dh + d_out[b, t, d * H + k]
            r = gates[d, t, b, k]
            z = gates[d, t, b, H + k]
            n = gates[d, t, b, 2 * H + k]
            hp = hprev_s[d, t, b, k]
            da_n = gs * (1 - z) * (1 - n * n)
            da_z = gs * (hp - n) * z * (1 - z)
            dgi[b, t, base + H + k] = da_z
            dgi[b, t, base + 2 * H + k] = da_n
            dgh[d, t, b, H + k] = da_z
            if reset_after:
                da_r = da_n * hn_s[d, t, b, k] * r * (1 - r)
                dgi[b, t, base + k] = da_r
                dgh[d, t, b, k] = da_r
                dgh[d, t, b, 2 * H + k] = r * da_n
            else:
                dgh[d, t, b, 2 * H + k] = da_n
            direct[d, b, k] = gs * z

    @cuda.jit(device=True)
    def bwd_cho_r(gid, gstride, s, whh, gates, hprev_s, lengths, dgi, dgh, direct):
        """Cho phase 2: d(rh) = da_n @ W_hn; da_r = d(rh) h r(1-r); direct += d(rh) r."""
        D = direct.shape[0]
        B = direct.shape[1]
        H = direct.shape[2]
        T = dgi.shape[1]
        ngroups = (B + R - 1) // R
        acc = cuda.local.array(R3, nbt)
        for item in range(gid, D * ngroups * H, gstride):
            k = item % H
            rest = item // H
            g = rest % ngroups
            d = rest // ngroups
            t = T - 1 - step_time(s, d, T)
            b0 = g * R
            for i in range(R):
                acc[i] = 0
            for jj in range(H):
                w = whh[d, 2 * H + jj, k]
                for i in range(R):
                    if b0 + i < B:
                        acc[i] += dgh[d, t, b0 + i, 2 * H + jj] * w
            for i in range(R):
                b = b0 + i
                if b < B and t < lengths[b]:
                    r = gates[d, t, b, k]
                    da_r = acc[i] * hprev_s[d, t, b, k] * r * (1 - r)
                    dgi[b, t, d * 3 * H + k] = da_r
                    dgh[d, t, b, k] = da_r
                    direct[d, b, k] += acc[i] * r

    @cuda.jit(device=True)
    def bwd_dh(gid, gstride, s, ngates, whh, dgh, direct, T, dhdst):
        """dh = direct + dgh[:, :ngates] @ W_hh[:ngates] for every (d, row group, k)."""
        D = direct.shape[0]
        B = direct.shape[1]
        H = direct.shape[2]
        ngroups = (B + R - 1) // R
        acc = cuda.local.array(R3, nbt)
        for item in range(gid, D * ngroups * H, gstride):
            k = item % H
            rest = item // H
            g = rest % ngroups
            d = rest // ngroups
            t = T - 1 - step_time(s, d, T)
            b0 = g * R
            for i in range(R):
                if b0 + i < B:
                    acc[i] = direct[d, b0 + i, k]
            for gg in range(ngates):
                w = whh[d, gg, k]
                for i in range(R):
                    if b0 + i < B:
                        acc[i] += dgh[d, t, b0 + i, gg] * w
            for i in range(R):
                if b0 + i < B:
                    dhdst[d, b0 + i, k] = acc[i]

    # ----------------------------------------------------------------- per-step kernels
    @cuda.jit
    def k_fwd_after(s, gi, whhT, bhh, hsrc, hdst, lengths, out, store, gates, hn_s, hprev_s):
        fwd_after(cuda.grid(1), cuda.gridsize(1), s, gi, whhT, bhh, hsrc, hdst, lengths, out,
                  store, gates, hn_s, hprev_s)

    @cuda.jit
    def k_fwd_cho_rz(s, gi, whhT, bhh, hsrc, lengths, rz, rh):
        fwd_cho_rz(cuda.grid(1), cuda.gridsize(1), s, gi, whhT, bhh, hsrc, lengths, rz, rh)

    @cuda.jit
    def k_fwd_cho_n(s, gi, whhT, hsrc, hdst, lengths, rz, rh, out, store, gates, hprev_s):
        fwd_cho_n(cuda.grid(1), cuda.gridsize(1), s, gi, whhT, hsrc, hdst, lengths, rz, rh, out,
                  store, gates, hprev_s)

    @cuda.jit
    def k_bwd_gates(s, reset_after, d_out, gates, hn_s, hprev_s, lengths, dhsrc, dgi, dgh,
                    direct):
        bwd_gates(cuda.grid(1), cuda.gridsize(1), s, reset_after, d_out, gates, hn_s, hprev_s,
                  lengths, dhsrc, dgi, dgh, direct)

    @cuda.jit
    def k_bwd_cho_r(s, whh, gates, hprev_s, lengths, dgi, dgh, direct):
        bwd_cho_r(cuda.grid(1), cuda.gridsize(1), s, whh, gates, hprev_s, lengths, dgi, dgh,
                  direct)

    @cuda.jit
    def k_bwd_dh(s, ngates, whh, dgh, direct, T, dhdst):
        bwd_dh(cuda.grid(1), cuda.gridsize(1), s, ngates, whh, dgh, direct, T, dhdst)

    # ----------------------------------------------------------------- persistent kernels
    @cuda.jit
    def p_forward(reset_after, gi, whhT, bhh, hbuf, lengths, out, store, gates, hn_s, hprev_s,
                  rz, rh):
        """All T steps in one launch; hbuf (2, D, B, H) holds h0 in slot 0 on entry."""
        gid = cuda.grid(1)
        gstride = cuda.gridsize(1)
        T = gi.shape[1]
        for s in range(T):
            src = hbuf[s % 2]
            dst = hbuf[(s + 1) % 2]
            if reset_after:
                fwd_after(gid, gstride, s, gi, whhT, bhh, src, dst, lengths, out, store, gates,
                          hn_s, hprev_s)
            else:
                fwd_cho_rz(gid, gstride, s, gi, whhT, bhh, src, lengths, rz, rh)
                barrier()
                fwd_cho_n(gid, gstride, s, gi, whhT, src, dst, lengths, rz, rh, out, store,
                          gates, hprev_s)
            barrier()

    @cuda.jit
    def p_backward(reset_after, d_out, gates, hn_s, hprev_s, whh, lengths, dgi, dgh, dhbuf,
                   direct):
        """All T backward steps in one launch; dhbuf (2, D, B, H) holds d_h_n in slot 0."""
        gid = cuda.grid(1)
        gstride = cuda.gridsize(1)
        T = d_out.shape[1]
        H = direct.shape[2]
        for s in range(T):
            src = dhbuf[s % 2]
            dst = dhbuf[(s + 1) % 2]
            bwd_gates(gid, gstride, s, reset_after, d_out, gates, hn_s, hprev_s, lengths, src,
                      dgi, dgh, direct)
            barrier()
            if reset_after:
                bwd_dh(gid, gstride, s, 3 * H, whh, dgh, direct, T, dst)
            else:
                bwd_cho_r(gid, gstride, s, whh, gates, hprev_s, lengths, dgi, dgh, direct)
                barrier()
                bwd_dh(gid, gstride, s, 2 * H, whh, dgh, direct, T, dst)
            barrier()

    # ----------------------------------------------------------------- dense helpers
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
        j = cuda.grid(1)
        if j < A.shape[1]:
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
    def k_copy(a, out):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            out[i] = a[i]

    @cuda.jit
    def k_transpose_last2(a, out):
        """out[d, j, i] = a[d, i, j]."""
        n1 = a.shape[1]
        n2 = a.shape[2]
        for idx in range(cuda.grid(1), a.shape[0] * n1 * n2, cuda.gridsize(1)):
            j = idx % n2
            i = (idx // n2) % n1
            d = idx // (n1 * n2)
            out[d, j, i] = a[d, i, j]

    @cuda.jit
    def k_rh(gates_d, hprev_d, H, out):
        """out (M, 2H) = [h_prev | r * h_prev] from gates_d (M, 3H), hprev_d (M, H)."""
        for idx in range(cuda.grid(1), hprev_d.shape[0] * H, cuda.gridsize(1)):
            j = idx % H
            m = idx // H
            hp = hprev_d[m, j]
            out[m, j] = hp
            out[m, H + j] = gates_d[m, j] * hp

    @cuda.jit
    def k_nonfinite(a, flag):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            v = a[i]
            if math.isnan(v) or math.isinf(v):
                flag[0] = 1

    return {name: obj for name, obj in locals().items() if name.startswith(("k_", "p_"))}


def _geometry():
    return (_config.CUDA_THREADS_PER_BLOCK, _config.CUDA_ROWS_PER_THREAD, _config.CUDA_TILE)


def _k(dtype):
    return _kernels(np.dtype(dtype).name, *_geometry())


def _blocks(n, tpb):
    return max(1, min((n + tpb - 1) // tpb, 65535))


# ---------------------------------------------------------------------------------------------
# Persistent-kernel policy
# ---------------------------------------------------------------------------------------------

#: None: persistent kernels on a real GPU when the grid fits (cooperative launch), per-step
#: launches otherwise and under the simulator. True / False force the choice (tests; True under
#: the simulator runs the persistent kernel with one block).
PERSISTENT = None


def _persistent_blocks(dispatcher, args, items, tpb, dtype):
    """Blocks for a persistent launch of ``dispatcher(*args)``, or 0 for per-step launches.

    On a GPU the grid is capped at what can be co-resident (a cooperative launch requires it);
    the kernel is compiled for ``args`` first, since occupancy is a property of the binary.
    """
    wanted = PERSISTENT
    if wanted is None:
        wanted = not simulator_enabled() and _config.CUDA_PERSISTENT
    if not wanted:
        return 0
    if simulator_enabled():
        return 1                                    # no grid barrier in the simulator
    try:
        kernel = dispatcher.compile(tuple(dispatcher.typeof_pyval(a) for a in args))
        limit = kernel.max_cooperative_grid_blocks(tpb)
    except Exception as exc:  # pragma: no cover - needs a GPU
        import warnings

        warnings.warn(f"numgru: no cooperative launch for the persistent CUDA kernel "
                      f"({type(exc).__name__}: {exc}); using per-step launches", RuntimeWarning,
                      stacklevel=3)
        return 0
    if limit <= 0 or (PERSISTENT is None and not _persistent_verified(dtype)):
        return 0
    return min(_blocks(items, tpb), limit)


_VERIFIED = {}
#: (B, T, H, D) of the self-check; None: (5, 6, 3 * threads per block + 7, 2), several blocks.
SELF_CHECK_SHAPE = None


def _persistent_verified(dtype):
    """On a real GPU, once per dtype and geometry: do the persistent kernels (multi-block grid
    barrier) give the per-step kernels' results? If not, warn and keep to per-step launches."""
    global PERSISTENT
    key = (np.dtype(dtype).name, _geometry())
    if key in _VERIFIED:
        return _VERIFIED[key]
    _VERIFIED[key] = False                          # while checking: per-step
    B, T, H, D = SELF_CHECK_SHAPE or (5, 6, 3 * _config.CUDA_THREADS_PER_BLOCK + 7, 2)
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    ok = True
    saved = PERSISTENT
    try:
        for reset_after in (True, False):
            res = []
            for persistent in (False, True):
                PERSISTENT = persistent
                res.append(_run_layer(np.random.default_rng(0), B, T, H, D, dtype, reset_after))
            ok = ok and all(np.allclose(a, b, rtol=tol, atol=tol) for a, b in zip(*res))
    finally:
        PERSISTENT = saved
    if not ok:
        import warnings

        warnings.warn("numgru: the persistent CUDA recurrence kernel disagrees with the per-step "
                      "kernels on this GPU; using per-step launches", RuntimeWarning, stacklevel=3)
    _VERIFIED[key] = ok
    return ok


def _run_layer(rng, B, T, H, D, dtype, reset_after):
    """One layer forward + backward on random data; the host copies of every result."""
    dt = np.dtype(dtype)
    I = 5
    x = to_device(rng.standard_normal((B, T, I)).astype(dt))
    w_ih = to_device(rng.standard_normal((D * 3 * H, I)).astype(dt))
    b_ih = to_device(rng.standard_normal(D * 3 * H).astype(dt))
    whh = to_device((rng.standard_normal((D, 3 * H, H)) / np.sqrt(H)).astype(dt))
    bhh = to_device(rng.standard_normal((D, 3 * H)).astype(dt))
    h0 = to_device(rng.standard_normal((D, B, H)).astype(dt))
    lengths = to_device(np.array([T, 1, max(1, T - 2), min(2, T), T][:B], dtype=np.int64))
    out, h_n = device_empty((B, T, D * H), dt), device_empty((D, B, H), dt)
    gates, hn_s = device_empty((D, T, B, 3 * H), dt), device_empty((D, T, B, H), dt)
    hprev = device_empty((D, T, B, H), dt)
    gru_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, 1, out, h_n, True,
                      gates, hn_s, hprev)
    d_out = to_device(rng.standard_normal((B, T, D * H)).astype(dt))
    d_h_n = to_device(rng.standard_normal((D, B, H)).astype(dt))
    dgi, dgh = device_empty((B, T, D * 3 * H), dt), device_empty((D, T, B, 3 * H), dt)
    dh0, dbias = device_empty((D, B, H), dt), device_empty((D, 2, 3 * H), dt)
    gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after, 1, dgi, dgh,
                       dh0, dbias)
    return [a.copy_to_host() for a in (out, h_n, dgi, dgh, dh0, dbias)]


# ---------------------------------------------------------------------------------------------
# Launchers: the same signatures as the CPU twins in numgru._cpu
# ---------------------------------------------------------------------------------------------


def _flat(a):
    return a.reshape(a.size)


def transpose_last2(a):
    """(D, M, N) device array -> (D, N, M) contiguous copy."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    out = device_empty((a.shape[0], a.shape[2], a.shape[1]), a.dtype)
    _k(a.dtype)["k_transpose_last2"][_blocks(a.size, tpb), tpb](a, out)
    return out


def copy(a, out):
    tpb = _config.CUDA_THREADS_PER_BLOCK
    _k(a.dtype)["k_copy"][_blocks(a.size, tpb), tpb](_flat(a), _flat(out))


def mul(a, b, out):
    """out = a * b (same shapes, contiguous): dropout masks."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    _k(a.dtype)["k_mul"][_blocks(a.size, tpb), tpb](_flat(a), _flat(b), _flat(out))
    return out


def has_nonfinite(a):
    """True when a device array holds NaN or inf."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    flag = to_device(np.zeros(1, dtype=np.int32))
    _k(a.dtype)["k_nonfinite"][_blocks(a.size, tpb), tpb](_flat(a), flag)
    return bool(flag.copy_to_host()[0])


def _gemm_any(A, Bm, bias, C, ta, tb):
    tile = _config.CUDA_TILE
    M, N = C.shape
    grid = ((N + tile - 1) // tile, (M + tile - 1) // tile)
    _k(C.dtype)["k_gemm"][grid, (tile, tile)](A, Bm, bias, C, ta, tb)


def gemm(A, W, bias, C, ntasks=1):
    """C = A @ W + bias: A (M, K), W (K, N) contiguous device arrays, bias (N,) or (0,)."""
    _gemm_any(A, W, bias, C, False, False)


def gemm_tn(A, X, C, ntasks=1):
    """C = A^T @ X: A (M, N1), X (M, N2), C (N1, N2): weight gradients over all timesteps."""
    empty = device_empty(0, C.dtype)
    _gemm_any(A, X, empty, C, True, False)


def hh_weight_grad(dgh_d, hprev_d, gates_d, reset_after, out, ntasks=1):
    """dW_hh of one direction: dgh_d (M, 3H), hprev_d (M, H), gates_d (M, 3H) -> out (3H, H).

    Cho: the n rows multiply r * h, not h, so one product over [h | r*h] columns is formed and
    its two diagonal blocks kept.
    """
    H = hprev_d.shape[1]
    if reset_after:
        gemm_tn(dgh_d, hprev_d, out)
        return
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M = hprev_d.shape[0]
    both_in = device_empty((M, 2 * H), out.dtype)
    _k(out.dtype)["k_rh"][_blocks(M * H, tpb), tpb](gates_d, hprev_d, H, both_in)
    both = device_empty((3 * H, 2 * H), out.dtype)
    gemm_tn(dgh_d, both_in, both)
    host = both.copy_to_host()
    res = np.empty((3 * H, H), dtype=host.dtype)
    res[: 2 * H] = host[: 2 * H, :H]
    res[2 * H:] = host[2 * H:, H:]
    out.copy_to_device(res)


def gru_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, nchunks,
                      out, h_n, store, gates, hn_s, hprev_s):
    """Forward of one layer, all directions: the twin of ``_cpu.gru_layer_forward``.

    Same arrays and layouts (device arrays); ``nchunks`` is accepted for the common signature
    and unused (the grid covers every (direction, row group, unit)). The input projection of
    all timesteps is one tiled GEMM into a (B, T, D*3H) buffer, then the recurrence runs.
    """
    dt = x.dtype
    K = _k(dt)
    tpb, rows, _ = _geometry()
    D, B, H = h0.shape
    T = x.shape[1]
    gi = device_empty((B, T, D * 3 * H), dt)
    _gemm_any(x.reshape(B * T, x.shape[2]), w_ih, b_ih, gi.reshape(B * T, D * 3 * H), False, True)
    whhT = transpose_last2(whh)                       # (D, H, 3H): coalesced reads over units
    hbuf = device_empty((2, D, B, H), dt)
    copy(h0, hbuf[0])
    dummy = device_empty((D, 1, 1, 1), dt)            # stands in for buffers not written
    g_, hp_ = (gates, hprev_s) if store else (dummy, dummy)
    hn_ = hn_s if (store and reset_after) else dummy
    rz = device_empty((D, B, 2 * H), dt) if not reset_after else device_empty((1, 1, 1), dt)
    rh = device_empty((D, B, H), dt) if not reset_after else device_empty((1, 1, 1), dt)
    items = D * ((B + rows - 1) // rows) * H
    args = (reset_after, gi, whhT, bhh, hbuf, lengths, out, store, g_, hn_, hp_, rz, rh)
    pblocks = _persistent_blocks(K["p_forward"], args, items, tpb, dt)
    if pblocks:
        K["p_forward"][pblocks, tpb](*args)
    else:
        grid = _blocks(items, tpb)
        for s in range(T):
            src, dst = hbuf[s % 2], hbuf[(s + 1) % 2]
            if reset_after:
                K["k_fwd_after"][grid, tpb](s, gi, whhT, bhh, src, dst, lengths, out, store,
                                            g_, hn_, hp_)
            else:
                K["k_fwd_cho_rz"][grid, tpb](s, gi, whhT, bhh, src, lengths, rz, rh)
                K["k_fwd_cho_n"][grid, tpb](s, gi, whhT, src, dst, lengths, rz, rh, out, store,
                                            g_, hp_)
    copy(hbuf[T % 2], h_n)


def gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev_s, whh, lengths, reset_after, nchunks,
                       dgi, dgh, dh0, dbias):
    """Backward recurrence of one layer: the twin of ``_cpu.gru_layer_backward``.

    dbias (D*nchunks, 2, 3H): the launcher writes the full sums into chunk 0 of each direction
    and zeros into the others, so that the caller's sum over chunks is the same as on the CPU.
    """
    dt = d_out.dtype
    K = _k(dt)
    tpb, rows, _ = _geometry()
    D, B, H = d_h_n.shape
    T = d_out.shape[1]
    dhbuf = device_empty((2, D, B, H), dt)
    copy(d_h_n, dhbuf[0])
    direct = device_empty((D, B, H), dt)
    if not reset_after:
        hn_s = device_empty((D, 1, 1, 1), dt)
    items_gates = D * B * H
    items = D * ((B + rows - 1) // rows) * H
    args = (reset_after, d_out, gates, hn_s, hprev_s, whh, lengths, dgi, dgh, dhbuf, direct)
    pblocks = _persistent_blocks(K["p_backward"], args, max(items, items_gates), tpb, dt)
    if pblocks:
        K["p_backward"][pblocks, tpb](*args)
    else:
        g_el = _blocks(items_gates, tpb)
        g_mm = _blocks(items, tpb)
        for s in range(T):
            src, dst = dhbuf[s % 2], dhbuf[(s + 1) % 2]
            K["k_bwd_gates"][g_el, tpb](s, reset_after, d_out, gates, hn_s, hprev_s, lengths,
                                        src, dgi, dgh, direct)
            if reset_after:
                K["k_bwd_dh"][g_mm, tpb](s, 3 * H, whh, dgh, direct, T, dst)
            else:
                K["k_bwd_cho_r"][g_mm, tpb](s, whh, gates, hprev_s, lengths, dgi, dgh, direct)
                K["k_bwd_dh"][g_mm, tpb](s, 2 * H, whh, dgh, direct, T, dst)
    copy(dhbuf[T % 2], dh0)
    # bias gradients: column sums of dgi (per direction) and dgh over all rows and steps
    sums_i = device_empty(D * 3 * H, dt)
    K["k_colsum"][_blocks(D * 3 * H, tpb), tpb](dgi.reshape(B * T, D * 3 * H), sums_i)
    sums_h = device_empty(3 * H, dt)
    host = np.zeros(dbias.shape, dtype=dt)
    host_i = sums_i.copy_to_host()
    nch = dbias.shape[0] // D
    for d in range(D):
        K["k_colsum"][_blocks(3 * H, tpb), tpb](dgh[d].reshape(T * B, 3 * H), sums_h)
        host[d * nch, 0] = host_i[d * 3 * H:(d + 1) * 3 * H]
        host[d * nch, 1] = sums_h.copy_to_host()
    dbias.copy_to_device(host)
