"""CUDA backend: the @cuda.jit twins of :mod:`numgru._cpu` behind the contract of
:mod:`numgru._contract` (:class:`CUDABackend`; :func:`backend` returns the default instance).

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2),
G = D*3H (the width of the input projections of all directions), O = D*H (the layer's output).
Every array handed to a kernel method is a C-contiguous device array with the layout documented
on the CPU twin.

The layer is computed as on the CPU (and as cuDNN does it):

1. ``gi = x @ W_ih^T + b_ih`` for all timesteps and directions: one tiled shared-memory GEMM
   (``K.gemm``; Numba has no cuBLAS binding).
2. The forward recurrence. Each step is split into *phases* separated by a barrier, because a
   step needs the whole previous state of its row:

   - ``reset_after=True``: one phase per step. A thread owns hidden unit ``j`` of a group of
     ``ROWS`` batch rows: it forms the three recurrent dot products ``W_h{r,z,n}[j] . h`` for
     those rows (reading ``W_hh^T`` so that neighbouring threads read neighbouring words), then
     the fused gates and ``h'``.
   - ``reset_after=False`` (Cho): phase 1 forms r, z and ``r * h``; phase 2 ``W_hn (r * h)``,
     n and ``h'``.

   Two launch strategies share these phase device functions:

   - *per step* (``K.fwd_after`` ...): one kernel launch per phase and step. Runs under Numba's
     CUDA simulator and is the reference for the persistent kernel.
   - *persistent* (``K.forward`` / ``K.backward``, Diamos et al. 2016): one launch per layer;
     all blocks stay resident for all timesteps and a grid-wide barrier (cooperative launch,
     ``cuda.cg.this_grid().sync()``) separates the phases; with a single block the barrier is
     ``syncthreads`` so that the simulator can run it too. The state is double-buffered in
     global memory (L2-resident for the sizes this is used at).

   Which one runs is a property of the backend object (``CUDABackend(persistent=...)``), passed
   down explicitly to the launchers; nothing module-wide changes at run time.
3. The backward recurrence with the same phase structure (one barrier per step, two for Cho),
   then the bias gradients as column sums, returned reduced; the weight gradients are one tiled
   GEMM over all timesteps each (``gemm_tn``), as on the CPU.

The vanilla RNN cell (``torch.nn.RNN``) has the same structure with one gate: the input
projection as one GEMM, then per step ``K.rnn_fwd`` (forward) or ``K.rnn_bwd_act`` and
``K.bwd_dh`` (backward). It always launches per step (there is no persistent twin).

Kernels are built per (dtype, threads per block, rows per thread, tile) by :func:`_kernels` and
reached as attributes of the object it returns (``K.fwd_after[grid, tpb](...)``). The launch
geometry and the persistent-kernel knobs live in :mod:`numgru._config` (``CUDA_*``); tests make
blocks tiny (several blocks really run under the simulator) by changing them there.

The rooms beside this one: :mod:`numgru._cuda_launch` (loading the CUDA target, launch
geometry, device memory, the dense kernels and the GEMM that every feature uses),
:mod:`numgru._cuda_norm` (layer normalisation and recurrent dropout) and :mod:`numgru._cuda_lm`
(language-model layers); this module holds the GRU and vanilla RNN layers and the backend
object, which hands each method to the room that holds it.

Importing this module does not import ``numba.cuda`` (~0.2 s): that happens on first use.
"""

import functools
import math
import threading
import warnings

import numpy as np

from . import _config, _cuda_lm, _cuda_norm
from ._contract import Backend
from ._cuda_launch import (add, as_device, blocks, copy, dense_kernels, device_empty, fill,
                           gemm, gemm_any, gemm_tn, has_nonfinite, import_error, load, mul,
                           to_device)
from ._cuda_launch import geometry as _geometry

cuda = None              # numba.cuda, bound by _load() (a module global: the simulator swaps it)


def _load():
    """The CUDA target (:func:`numgru._cuda_launch.load`), bound to this module's ``cuda``."""
    global cuda
    cuda = load()
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
                f"numba-cuda): {type(import_error()).__name__}: {import_error()}")
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # pragma: no cover - driver problems
        return f"the CUDA driver failed to initialise ({type(exc).__name__}: {exc})"
    return "no CUDA driver or no NVIDIA GPU was found (numba.cuda.is_available() is False)"


def gpu_present():
    """True only for a real GPU (not the simulator): what ``device="auto"`` picks."""
    return unavailable_reason() is None and not simulator_enabled()


# ---------------------------------------------------------------------------------------------
# Kernels, built per configuration
# ---------------------------------------------------------------------------------------------


class _Kernels:
    """The kernels of one dtype and launch geometry, as attributes (``K.gemm[grid, tpb](...)``).

    Per-step recurrence phases: ``fwd_after``, ``fwd_cho_rz``, ``fwd_cho_n`` (forward),
    ``bwd_gates``, ``bwd_cho_r``, ``bwd_dh`` (backward); the vanilla RNN's ``rnn_fwd``
    (forward) and ``rnn_bwd_act`` then ``bwd_dh`` (backward). Persistent (one launch per layer):
    ``forward``, ``backward``. Layer helpers: ``transpose_last2``, ``rh``. Dense kernels (built
    by :func:`numgru._cuda_launch.dense_kernels`): ``gemm``, ``colsum``, ``mul``, ``add``,
    ``copy``, ``fill``, ``nonfinite``. The language-model kernels are :mod:`numgru._cuda_lm`'s.
    """

    def __init__(self, dtype_name, geometry, **kernels):
        self.dtype_name = dtype_name
        self.geometry = geometry
        self.__dict__.update(kernels)

    def __repr__(self):
        return f"<numgru CUDA kernels {self.dtype_name} geometry={self.geometry}>"


@functools.lru_cache(maxsize=None)
def _recurrence_kernels(dtype_name, rows):
    """The GRU and vanilla RNN recurrence kernels of one dtype and rows per thread, by name
    (built on first use): the per-step phases, the persistent kernels and two layer helpers
    (``transpose_last2``, ``rh``)."""
    import numba

    _load()
    nbt = numba.from_dtype(np.dtype(dtype_name))
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

    @cuda.jit(device=True, inline=True)
    def work_item(item, H, ngroups, s, T, backward):
        """The work item of a recurrence phase: ``item`` (< D * ngroups * H) -> (unit, row
        group, direction, time, first row). Unit is the fastest index, so that neighbouring
        threads own neighbouring units of the same rows. Step ``s`` runs forward in time for
        direction 0 and backward for direction 1; ``backward`` reverses both (the backward
        pass runs the forward order reversed)."""
        u = item % H
        rest = item // H
        g = rest % ngroups
        d = rest // ngroups
        t = step_time(s, d, T)
        if backward:
            t = T - 1 - t
        return u, g, d, t, g * R

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
            j, g, d, t, b0 = work_item(item, H, ngroups, s, T, False)
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
            j, g, d, t, b0 = work_item(item, H, ngroups, s, T, False)
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
            j, g, d, t, b0 = work_item(item, H, ngroups, s, T, False)
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
            k, g, d, t, b0 = work_item(item, H, ngroups, s, T, True)
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
            k, g, d, t, b0 = work_item(item, H, ngroups, s, T, True)
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

    # ----------------------------------------------------------------- vanilla RNN phases
    @cuda.jit(device=True)
    def rnn_fwd(gid, gstride, s, relu, gi, whhT, bhh, hsrc, hdst, lengths, out, store, states):
        """One step of the vanilla RNN for every (d, row group, j): the recurrent dot product
        ``W_hh[j] . h`` for the group's rows, then ``h' = act(gi + b_hh + W_hh h)``. ``states``
        (D, T+1, B, H) as on the CPU: the first step also writes the slot it reads (h0)."""
        D = hsrc.shape[0]
        B = hsrc.shape[1]
        H = hsrc.shape[2]
        T = gi.shape[1]
        ngroups = (B + R - 1) // R
        acc = cuda.local.array(R3, nbt)
        zero = nbt(0)
        for item in range(gid, D * ngroups * H, gstride):
            j, g, d, t, b0 = work_item(item, H, ngroups, s, T, False)
            for i in range(R):
                acc[i] = bhh[d, j]
            for k in range(H):
                w = whhT[d, k, j]
                for i in range(R):
                    if b0 + i < B:
                        acc[i] += hsrc[d, b0 + i, k] * w
            for i in range(R):
                b = b0 + i
                if b < B:
                    hp = hsrc[d, b, j]
                    if store and s == 0:
                        states[d, t + 1 if d == 1 else t, b, j] = hp
                    if t >= lengths[b]:
                        out[b, t, d * H + j] = 0
                        hnew = hp
                    else:
                        a = gi[b, t, d * H + j] + acc[i]
                        if relu:
                            hnew = a if a > zero else zero
                        else:
                            hnew = math.tanh(a)
                        out[b, t, d * H + j] = hnew
                    hdst[d, b, j] = hnew
                    if store:
                        states[d, t if d == 1 else t + 1, b, j] = hnew

    @cuda.jit(device=True)
    def rnn_bwd_act(gid, gstride, s, relu, d_out, states, lengths, dhsrc, dgi, dgh, direct):
        """Elementwise part of a backward RNN step for every (d, b, k):
        da = (dh + d_out) act'(h') (tanh: 1 - h'^2, relu: h' > 0) into dgi and dgh; a padded
        step has da = 0 and passes dh on through ``direct``."""
        D = dhsrc.shape[0]
        B = dhsrc.shape[1]
        H = dhsrc.shape[2]
        T = d_out.shape[1]
        zero = nbt(0)
        for item in range(gid, D * B * H, gstride):
            k = item % H
            rest = item // H
            b = rest % B
            d = rest // B
            t = T - 1 - step_time(s, d, T)          # backward runs the forward order reversed
            dh = dhsrc[d, b, k]
            if t >= lengths[b]:
                dgi[b, t, d * H + k] = 0
                dgh[d, t, b, k] = 0
                direct[d, b, k] = dh
                continue
            gs = dh + d_out[b, t, d * H + k]
            hn = states[d, t if d == 1 else t + 1, b, k]
            if relu:
                da = gs if hn > zero else zero
            else:
                da = gs * (1 - hn * hn)
            dgi[b, t, d * H + k] = da
            dgh[d, t, b, k] = da
            direct[d, b, k] = 0

    # ----------------------------------------------------------------- per-step kernels
    @cuda.jit
    def k_rnn_fwd(s, relu, gi, whhT, bhh, hsrc, hdst, lengths, out, store, states):
        rnn_fwd(cuda.grid(1), cuda.gridsize(1), s, relu, gi, whhT, bhh, hsrc, hdst, lengths, out,
                store, states)

    @cuda.jit
    def k_rnn_bwd_act(s, relu, d_out, states, lengths, dhsrc, dgi, dgh, direct):
        rnn_bwd_act(cuda.grid(1), cuda.gridsize(1), s, relu, d_out, states, lengths, dhsrc, dgi,
                    dgh, direct)

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

    # ----------------------------------------------------------------- layer helpers
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
    def k_rh(gates_d, hprev_d, out):
        """out (M, H) = r * h_prev from gates_d (M, 3H) (r in the first H columns), hprev_d."""
        H = hprev_d.shape[1]
        for idx in range(cuda.grid(1), hprev_d.shape[0] * H, cuda.gridsize(1)):
            j = idx % H
            m = idx // H
            out[m, j] = gates_d[m, j] * hprev_d[m, j]

    return dict(fwd_after=k_fwd_after, fwd_cho_rz=k_fwd_cho_rz, fwd_cho_n=k_fwd_cho_n,
                bwd_gates=k_bwd_gates, bwd_cho_r=k_bwd_cho_r, bwd_dh=k_bwd_dh,
                rnn_fwd=k_rnn_fwd, rnn_bwd_act=k_rnn_bwd_act,
                forward=p_forward, backward=p_backward,
                transpose_last2=k_transpose_last2, rh=k_rh)


@functools.lru_cache(maxsize=None)
def _kernels(dtype_name, tpb, rows, tile):
    """The kernels of one dtype and launch geometry as one :class:`_Kernels`: the recurrences'
    (:func:`_recurrence_kernels`) and the dense ones of :mod:`numgru._cuda_launch` (``gemm``,
    ``colsum``, ``mul``, ``add``, ``copy``, ``fill``, ``nonfinite``).

    ``tpb`` is not compiled in (the launchers use it); it is part of the key so that each
    geometry gets its own object.
    """
    return _Kernels(dtype_name, (tpb, rows, tile), **_recurrence_kernels(dtype_name, rows),
                    **dense_kernels(dtype_name, tile))


def _k(dtype):
    """The kernels for ``dtype`` at the current geometry."""
    return _kernels(np.dtype(dtype).name, *_geometry())


# ---------------------------------------------------------------------------------------------
# Device arrays and layer helpers (memory, elementwise and products: numgru._cuda_launch)
# ---------------------------------------------------------------------------------------------


def is_device_array(a):
    """Anything exposing ``__cuda_array_interface__`` (Numba device arrays, CuPy arrays)."""
    if hasattr(a, "__cuda_array_interface__"):
        return True
    return hasattr(a, "copy_to_host") and simulator_enabled()   # the simulator's fake arrays


def transpose_last2(a):
    """(D, M, N) device array -> (D, N, M) contiguous copy."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    out = device_empty((a.shape[0], a.shape[2], a.shape[1]), a.dtype)
    _k(a.dtype).transpose_last2[blocks(a.size, tpb), tpb](a, out)
    return out


def _hh_weight_grad(dgh_d, hprev_d, gates_d, reset_after, out):
    """dW_hh of one direction: dgh_d (M, 3H), hprev_d (M, H), gates_d (M, 3H) -> out (3H, H).

    Cho: the n rows multiply r * h, not h: ``out[:2H] = dgh[:, :2H]^T h``,
    ``out[2H:] = dgh[:, 2H:]^T (r * h)``, all on the device.
    """
    if reset_after:
        gemm_tn(dgh_d, hprev_d, out)
        return
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M, H = hprev_d.shape
    rh = device_empty((M, H), out.dtype)
    _k(out.dtype).rh[blocks(M * H, tpb), tpb](gates_d, hprev_d, rh)
    gemm_tn(dgh_d[:, : 2 * H], hprev_d, out[: 2 * H])
    gemm_tn(dgh_d[:, 2 * H:], rh, out[2 * H:])


# ---------------------------------------------------------------------------------------------
# Layer launchers; ``persistent`` (True/False) is decided by the caller (the backend object)
# ---------------------------------------------------------------------------------------------


def _persistent_blocks(dispatcher, args, items, tpb, persistent):
    """Blocks for a persistent launch of ``dispatcher(*args)``, or 0 for per-step launches.

    ``persistent`` False: 0. True: one block under the simulator (it has no grid barrier); on
    a GPU the grid capped at what can be co-resident (a cooperative launch requires it), or 0
    when the kernel cannot be launched cooperatively. The kernel is compiled for ``args``
    first, since occupancy is a property of the binary.
    """
    if not persistent:
        return 0
    if simulator_enabled():
        return 1
    try:
        kernel = dispatcher.compile(tuple(dispatcher.typeof_pyval(a) for a in args))
        limit = kernel.max_cooperative_gridblocks(tpb)
    except Exception as exc:  # pragma: no cover - needs a GPU
        warnings.warn(f"numgru: no cooperative launch for the persistent CUDA kernel "
                      f"({type(exc).__name__}: {exc}); using per-step launches", RuntimeWarning,
                      stacklevel=4)
        return 0
    if limit <= 0:
        return 0
    return min(blocks(items, tpb), limit)


def _layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, out, h_n, store, gates,
                   hn_s, hprev_s, persistent):
    """Forward of one layer, all directions (arrays and layouts as ``_cpu.gru_layer_forward``).

    The input projection of all timesteps is one tiled GEMM into a (B, T, D*3H) buffer, then
    the recurrence runs: one persistent launch when ``persistent`` and it can, else per step.
    """
    dt = x.dtype
    K = _k(dt)
    tpb, rows, _ = _geometry()
    D, B, H = h0.shape
    T = x.shape[1]
    gi = device_empty((B, T, D * 3 * H), dt)
    gemm_any(x.reshape(B * T, x.shape[2]), w_ih, b_ih, gi.reshape(B * T, D * 3 * H), False, True)
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
    pblocks = _persistent_blocks(K.forward, args, items, tpb, persistent)
    if pblocks:
        K.forward[pblocks, tpb](*args)
    else:
        grid = blocks(items, tpb)
        for s in range(T):
            src, dst = hbuf[s % 2], hbuf[(s + 1) % 2]
            if reset_after:
                K.fwd_after[grid, tpb](s, gi, whhT, bhh, src, dst, lengths, out, store, g_, hn_,
                                       hp_)
            else:
                K.fwd_cho_rz[grid, tpb](s, gi, whhT, bhh, src, lengths, rz, rh)
                K.fwd_cho_n[grid, tpb](s, gi, whhT, src, dst, lengths, rz, rh, out, store, g_,
                                       hp_)
    copy(hbuf[T % 2], h_n)


def _layer_backward(d_out, d_h_n, gates, hn_s, hprev_s, whh, lengths, reset_after, dgi, dgh,
                    dh0, persistent):
    """Backward recurrence of one layer (arrays and layouts as ``_cpu.gru_layer_backward``).

    Returns the bias gradients reduced over rows and steps: a NumPy array (D, 2, 3H), [d, 0]
    of ``b_ih`` and [d, 1] of ``b_hh`` (column sums of dgi and dgh on the device).
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
    pblocks = _persistent_blocks(K.backward, args, max(items, items_gates), tpb, persistent)
    if pblocks:
        K.backward[pblocks, tpb](*args)
    else:
        g_el = blocks(items_gates, tpb)
        g_mm = blocks(items, tpb)
        for s in range(T):
            src, dst = dhbuf[s % 2], dhbuf[(s + 1) % 2]
            K.bwd_gates[g_el, tpb](s, reset_after, d_out, gates, hn_s, hprev_s, lengths, src,
                                   dgi, dgh, direct)
            if reset_after:
                K.bwd_dh[g_mm, tpb](s, 3 * H, whh, dgh, direct, T, dst)
            else:
                K.bwd_cho_r[g_mm, tpb](s, whh, gates, hprev_s, lengths, dgi, dgh, direct)
                K.bwd_dh[g_mm, tpb](s, 2 * H, whh, dgh, direct, T, dst)
    copy(dhbuf[T % 2], dh0)
    # bias gradients: column sums of dgi (all directions at once) and dgh (per direction)
    sums_i = device_empty(D * 3 * H, dt)
    K.colsum[blocks(D * 3 * H, tpb), tpb](dgi.reshape(B * T, D * 3 * H), sums_i)
    sums_h = device_empty((D, 3 * H), dt)
    for d in range(D):
        K.colsum[blocks(3 * H, tpb), tpb](dgh[d].reshape(T * B, 3 * H), sums_h[d])
    dbias = np.empty((D, 2, 3 * H), dtype=dt)
    dbias[:, 0] = sums_i.copy_to_host().reshape(D, 3 * H)
    dbias[:, 1] = sums_h.copy_to_host()
    return dbias


def _rnn_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n, store, states):
    """Forward of one vanilla RNN layer, all directions (arrays and layouts as
    ``_cpu.rnn_layer_forward``): the input projection of all timesteps as one tiled GEMM into a
    (B, T, D*H) buffer, then one launch per step (``K.rnn_fwd``)."""
    dt = x.dtype
    K = _k(dt)
    tpb, rows, _ = _geometry()
    D, B, H = h0.shape
    T = x.shape[1]
    gi = device_empty((B, T, D * H), dt)
    gemm_any(x.reshape(B * T, x.shape[2]), w_ih, b_ih, gi.reshape(B * T, D * H), False, True)
    whhT = transpose_last2(whh)                       # (D, H, H): coalesced reads over units
    hbuf = device_empty((2, D, B, H), dt)
    copy(h0, hbuf[0])
    st = states if store else device_empty((D, 1, 1, 1), dt)   # not written without store
    grid = blocks(D * ((B + rows - 1) // rows) * H, tpb)
    for s in range(T):
        K.rnn_fwd[grid, tpb](s, relu, gi, whhT, bhh, hbuf[s % 2], hbuf[(s + 1) % 2], lengths,
                             out, store, st)
    copy(hbuf[T % 2], h_n)


def _rnn_layer_backward(d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0):
    """Backward recurrence of one vanilla RNN layer (arrays and layouts as
    ``_cpu.rnn_layer_backward``): per step the elementwise ``K.rnn_bwd_act`` then
    ``dh = direct + da @ W_hh`` (``K.bwd_dh``). Returns the bias gradients reduced over rows
    and steps, a NumPy array (D, 2, H) (both rows the column sums of dgi)."""
    dt = d_out.dtype
    K = _k(dt)
    tpb, rows, _ = _geometry()
    D, B, H = d_h_n.shape
    T = d_out.shape[1]
    dhbuf = device_empty((2, D, B, H), dt)
    copy(d_h_n, dhbuf[0])
    direct = device_empty((D, B, H), dt)
    g_el = blocks(D * B * H, tpb)
    g_mm = blocks(D * ((B + rows - 1) // rows) * H, tpb)
    for s in range(T):
        src, dst = dhbuf[s % 2], dhbuf[(s + 1) % 2]
        K.rnn_bwd_act[g_el, tpb](s, relu, d_out, states, lengths, src, dgi, dgh, direct)
        K.bwd_dh[g_mm, tpb](s, H, whh, dgh, direct, T, dst)
    copy(dhbuf[T % 2], dh0)
    sums = device_empty(D * H, dt)
    K.colsum[blocks(D * H, tpb), tpb](dgi.reshape(B * T, D * H), sums)
    dbias = np.empty((D, 2, H), dtype=dt)
    dbias[:, 0] = dbias[:, 1] = sums.copy_to_host().reshape(D, H)
    return dbias


def _run_layer(rng, B, T, H, D, dtype, reset_after, persistent):
    """One layer forward + backward on random data with the given launch strategy; the host
    copies of every result (the persistent-kernel self-check)."""
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
    _layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, out, h_n, True, gates,
                   hn_s, hprev, persistent)
    d_out = to_device(rng.standard_normal((B, T, D * H)).astype(dt))
    d_h_n = to_device(rng.standard_normal((D, B, H)).astype(dt))
    dgi, dgh = device_empty((B, T, D * 3 * H), dt), device_empty((D, T, B, 3 * H), dt)
    dh0 = device_empty((D, B, H), dt)
    dbias = _layer_backward(d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after, dgi,
                            dgh, dh0, persistent)
    return [a.copy_to_host() for a in (out, h_n, dgi, dgh, dh0)] + [dbias]


# ---------------------------------------------------------------------------------------------
# The backend object (the contract is in numgru._contract)
# ---------------------------------------------------------------------------------------------


class CUDABackend(Backend):
    """The ``@cuda.jit`` kernels on Numba device arrays.

    Parameters
    ----------
    persistent : None, True or False
        How the recurrences are launched. ``None`` (the policy): one persistent cooperative
        launch per layer on a real GPU when ``_config.CUDA_PERSISTENT`` allows it (environment
        ``NUMGRU_CUDA_PERSISTENT``), the once-per-dtype-and-geometry self-check of this backend
        passes and the kernel can be launched cooperatively; one launch per phase and step
        under the simulator and otherwise. ``True`` forces the persistent kernel (under the
        simulator: one block, whose barrier is ``syncthreads``), ``False`` per-step launches.

    A backend pickles as its name: unpickled, it is the default backend of that process
    (:func:`backend`), whatever ``persistent`` was.
    """

    name = "cuda"

    def __reduce__(self):
        return (usable_backend, ())

    def __init__(self, persistent=None):
        if persistent is not None and not isinstance(persistent, (bool, np.bool_)):
            raise TypeError(f"persistent must be None, True or False, got {persistent!r}")
        self._persistent = None if persistent is None else bool(persistent)
        self._verified = {}                 # (dtype name, geometry) -> self-check result
        self._lock = threading.Lock()

    @property
    def persistent(self):
        """The launch choice this backend was made with: None (policy), True or False."""
        return self._persistent

    def __repr__(self):
        return f"<numgru backend 'cuda' persistent={self._persistent!r}>"

    # launch policy
    def uses_persistent(self, dtype):
        """Whether this backend's recurrences in ``dtype`` ask for the persistent kernel (it
        still falls back to per-step launches where a cooperative launch is impossible)."""
        if self._persistent is not None:
            return self._persistent
        if simulator_enabled() or not _config.CUDA_PERSISTENT:
            return False
        return self._persistent_verified(dtype)

    def _persistent_verified(self, dtype):
        """Once per dtype and geometry, for this backend: do the persistent kernels (a grid
        barrier across several blocks) give the per-step kernels' results? If not, warn; the
        policy then keeps to per-step launches. Changes nothing but this backend's record."""
        key = (np.dtype(dtype).name, _geometry())
        with self._lock:
            if key not in self._verified:
                self._verified[key] = _self_check(dtype)
            return self._verified[key]

    # memory
    def empty(self, shape, dtype):
        return device_empty(shape, dtype)

    def zeros(self, shape, dtype):
        return fill(device_empty(shape, dtype), 0)

    def upload(self, a):
        return to_device(a)

    def to_host(self, a):
        return a.copy_to_host()

    def is_native(self, a):
        return is_device_array(a)

    def as_native(self, a):
        return as_device(a)

    def is_contiguous(self, a):
        return as_device(a).is_c_contiguous()

    def has_nonfinite(self, a):
        return has_nonfinite(a)

    # elementwise and products
    def mul(self, a, b, out):
        return mul(a, b, out)

    def add(self, a, b, out):
        return add(a, b, out)

    def gemm(self, A, W, bias, C):
        gemm(A, W, bias, C)

    def gemm_tn(self, A, X, C):
        gemm_tn(A, X, C)

    # GRU layer
    def gru_layer_forward(self, x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, out, h_n,
                          store, gates, hn_s, hprev):
        _layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, out, h_n, store,
                       gates, hn_s, hprev, self.uses_persistent(x.dtype))

    def gru_layer_backward(self, d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after,
                           dgi, dgh, dh0):
        return _layer_backward(d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after,
                               dgi, dgh, dh0, self.uses_persistent(d_out.dtype))

    def gru_hh_weight_grad(self, dgh_d, hprev_d, gates_d, reset_after, out):
        _hh_weight_grad(dgh_d, hprev_d, gates_d, reset_after, out)

    # vanilla RNN layer (per-step launches whatever ``persistent`` says: no persistent twin)
    def rnn_layer_forward(self, x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n, store,
                          states):
        _rnn_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n, store, states)

    def rnn_layer_backward(self, d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0):
        return _rnn_layer_backward(d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0)

    # general layers: layer normalisation and recurrent dropout (numgru._cuda_norm)
    def ln_rows_forward(self, v, gain, beta, bias, layer_norm, xhat, rstd, y):
        _cuda_norm.ln_rows_forward(v, gain, beta, bias, layer_norm, xhat, rstd, y)

    def ln_rows_backward(self, dy, xhat, rstd, gain, dv):
        return _cuda_norm.ln_rows_backward(dy, xhat, rstd, gain, dv)

    def norm_layer_forward(self, gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind, layer_norm,
                           out, h_n, store, gates, ahn, xh, rstd, hprev, hm):
        _cuda_norm.norm_layer_forward(gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind,
                                      layer_norm, out, h_n, store, gates, ahn, xh, rstd, hprev,
                                      hm)

    def norm_layer_backward(self, d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g, masks,
                            lengths, kind, layer_norm, dgi, dgh, dh0):
        return _cuda_norm.norm_layer_backward(d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh,
                                              ln_g, masks, lengths, kind, layer_norm, dgi, dgh,
                                              dh0)

    # language-model layers
    def embedding_forward(self, ids, weight, out):
        _cuda_lm.embedding_forward(ids, weight, out)

    def embedding_backward(self, ids, d_out, d_weight):
        _cuda_lm.embedding_backward(ids, d_out, d_weight)

    def softmax_xent(self, y, w, b, targets, weights, dy, dw, db):
        return _cuda_lm.softmax_xent(y, w, b, targets, weights, dy, dw, db)

    def softmax_logprob(self, y, w, b, targets, out):
        _cuda_lm.softmax_logprob(y, w, b, targets, out)

    def log_softmax(self, y, w, b, out):
        _cuda_lm.log_softmax(y, w, b, out)


def _self_check(dtype):
    """Persistent vs per-step launches of one layer, forward and backward, both cell variants,
    at ``_config.CUDA_SELF_CHECK_SHAPE`` (several blocks by default). True when they agree to
    ``_config.CUDA_SELF_CHECK_TOL``; otherwise a warning and False."""
    dt = np.dtype(dtype)
    B, T, H, D = (_config.CUDA_SELF_CHECK_SHAPE
                  or (5, 6, 3 * _config.CUDA_THREADS_PER_BLOCK + 7, 2))
    tol = _config.CUDA_SELF_CHECK_TOL[dt.name]
    ok = True
    for reset_after in (True, False):
        res = [_run_layer(np.random.default_rng(0), B, T, H, D, dt, reset_after, persistent)
               for persistent in (False, True)]
        ok = ok and all(np.allclose(a, b, rtol=tol, atol=tol) for a, b in zip(*res))
    if not ok:
        warnings.warn("numgru: the persistent CUDA recurrence kernel disagrees with the per-step "
                      "kernels on this GPU; using per-step launches", RuntimeWarning, stacklevel=4)
    return ok


_default = None
_default_lock = threading.Lock()


def backend():
    """The default CUDA backend (``CUDABackend()``, the launch policy), created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = CUDABackend()
    return _default


def usable_backend():
    """The default CUDA backend, or ``RuntimeError`` naming why CUDA cannot be used here (what
    ``get_backend("cuda")`` returns, and what a pickled CUDA backend unpickles as)."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"device='cuda' cannot be used: {reason}")
    return backend()
