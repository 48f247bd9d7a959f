"""CUDA twins of :mod:`numgru._cpu_norm`: the general GRU / RNN layers (layer normalisation and
recurrent dropout), with the same arguments and array layouts (documented on the CPU kernels).

Shape legend: B batch, T time, H hidden size, D directions (1 or 2), N gate blocks (GRU 3,
RNN 1), G = N*H, M = B*T rows.

Launches (one per step and phase, no persistent kernel):

- input side: ``ln_rows_fwd`` / ``ln_rows_bwd``, one thread per (row, direction);
- forward step: ``prod`` (one thread per (d, b, entry of G): the recurrent product of the
  masked state, ``P[d, b, g*H + j] = W_hh[d, g*H + j] . (h * m_g)``), then ``fwd_gates``
  (one *block* per (d, b): the LN of P over its G entries as two block reductions in shared
  memory, then the gates and h' with one thread per unit);
- backward step: ``bwd_gates`` (one block per (d, b): the gate gradients, d a_h, and the LN
  backward's two block reductions), then ``bwd_dh`` (one thread per (d, b, k):
  ``dh = direct + sum_g m_g * (dP_g @ W_g)``);
- the bias, gain and LN-bias gradients as column sums on the device (``colsum_prod`` for
  ``sum dy * xhat``).

Importing this module does not import ``numba.cuda``; the kernels are built on first use per
(dtype, threads per block).
"""

import functools
import math

import numpy as np

from . import _config
from ._cell_kinds import KIND_GRU, KIND_RNN_RELU
from ._cpu_norm import EPS
from ._cuda_launch import blocks, colsum, copy, device_empty, load, row_grid

cuda = None     # numba.cuda, bound on first use (a module global: the simulator swaps it)


@functools.lru_cache(maxsize=None)
def _norm_kernels(dtype_name, tpb):
    """The kernels of one dtype and block size (``tpb`` sizes the shared reduction buffer)."""
    import numba

    global cuda
    cuda = load()
    nbt = numba.from_dtype(np.dtype(dtype_name))
    f64 = numba.float64

    @cuda.jit(device=True, inline=True)
    def sigmoid(x):
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    @cuda.jit(device=True)
    def block_sum(val, sh, tot):
        """The sum of ``val`` over the block's threads (every thread gets it)."""
        tid = cuda.threadIdx.x
        sh[tid] = val
        cuda.syncthreads()
        if tid == 0:
            acc = f64(0)
            for i in range(cuda.blockDim.x):
                acc += sh[i]
            tot[0] = acc
        cuda.syncthreads()
        r = tot[0]
        cuda.syncthreads()
        return r

    @cuda.jit
    def ln_rows_fwd(v, gain, beta, bias, layer_norm, xhat, rstd, y):
        """One thread per (row, direction); see ``_cpu_norm.ln_rows_forward``."""
        M, D, G = v.shape
        for item in range(cuda.grid(1), M * D, cuda.gridsize(1)):
            m = item // D
            d = item % D
            if layer_norm:
                s = f64(0)
                for j in range(G):
                    s += v[m, d, j]
                mu = s / G
                q = f64(0)
                for j in range(G):
                    c = v[m, d, j] - mu
                    q += c * c
                rs = 1.0 / math.sqrt(q / G + EPS)
                rstd[m, d] = rs
                for j in range(G):
                    xv = (v[m, d, j] - mu) * rs
                    xhat[m, d, j] = xv
                    y[m, d, j] = gain[d, j] * xv + beta[d, j] + bias[d, j]
            else:
                for j in range(G):
                    y[m, d, j] = v[m, d, j] + bias[d, j]

    @cuda.jit
    def ln_rows_bwd(dy, xhat, rstd, gain, dv):
        """One thread per (row, direction); see ``_cpu_norm.ln_rows_backward`` (dv may be
        dy)."""
        M, D, G = dy.shape
        for item in range(cuda.grid(1), M * D, cuda.gridsize(1)):
            m = item // D
            d = item % D
            s1 = f64(0)
            s2 = f64(0)
            for j in range(G):
                g = dy[m, d, j] * gain[d, j]
                s1 += g
                s2 += g * xhat[m, d, j]
            m1 = s1 / G
            m2 = s2 / G
            rs = rstd[m, d]
            for j in range(G):
                dv[m, d, j] = rs * (dy[m, d, j] * gain[d, j] - m1 - xhat[m, d, j] * m2)

    @cuda.jit
    def colsum_prod(A, X, out):
        """out[j] = sum_i A[i, j] * X[i, j]."""
        for j in range(cuda.grid(1), A.shape[1], cuda.gridsize(1)):
            acc = nbt(0)
            for i in range(A.shape[0]):
                acc += A[i, j] * X[i, j]
            out[j] = acc

    @cuda.jit
    def prod(whh, hsrc, masks, use_mask, P):
        """P (D, B, G): P[d, b, i] = W_hh[d, i] . (h[d, b] * m[d, i // H, b])."""
        D, B, H = hsrc.shape
        G = whh.shape[1]
        for item in range(cuda.grid(1), D * B * G, cuda.gridsize(1)):
            i = item % G
            rest = item // G
            b = rest % B
            d = rest // B
            g = i // H
            acc = nbt(0)
            if use_mask:
                for k in range(H):
                    acc += whh[d, i, k] * (hsrc[d, b, k] * masks[d, g, b, k])
            else:
                for k in range(H):
                    acc += whh[d, i, k] * hsrc[d, b, k]
            P[d, b, i] = acc

    @cuda.jit
    def fwd_gates(s, gi, P, bhh, ln_g, ln_b, kind, layer_norm, masks, use_mask, hsrc, hdst,
                  lengths, out, store, gates, ahn, xh, rstd, hprev, hm):
        """One block per (d, b): the LN of P[d, b] (layer_norm), a_h, the gates and h'."""
        sh = cuda.shared.array(tpb, f64)
        tot = cuda.shared.array(1, f64)
        D, B, H = hsrc.shape
        G = P.shape[2]
        N = G // H
        T = gi.shape[1]
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for row in range(cuda.blockIdx.x, D * B, cuda.gridDim.x):
            d = row // B
            b = row % B
            t = T - 1 - s if d == 1 else s
            if store:
                for j in range(tid, H, nt):
                    hprev[d, t, b, j] = hsrc[d, b, j]
                    if use_mask:
                        for g in range(N):
                            hm[d, t, b, g * H + j] = hsrc[d, b, j] * masks[d, g, b, j]
            if t >= lengths[b]:
                for j in range(tid, H, nt):
                    out[b, t, d * H + j] = 0
                    hdst[d, b, j] = hsrc[d, b, j]
                if store:
                    for i in range(tid, G, nt):
                        gates[d, t, b, i] = 0
                        if layer_norm:
                            xh[d, t, b, i] = 0
                    if kind == KIND_GRU:
                        for j in range(tid, H, nt):
                            ahn[d, t, b, j] = 0
                    if layer_norm and tid == 0:
                        rstd[d, t, b] = 0
                continue
            mu = f64(0)
            rs = f64(1)
            if layer_norm:
                acc = f64(0)
                for i in range(tid, G, nt):
                    acc += P[d, b, i]
                mu = block_sum(acc, sh, tot) / G
                acc = f64(0)
                for i in range(tid, G, nt):
                    c = P[d, b, i] - mu
                    acc += c * c
                rs = 1.0 / math.sqrt(block_sum(acc, sh, tot) / G + EPS)
                if store and tid == 0:
                    rstd[d, t, b] = rs
            for j in range(tid, H, nt):
                hp = hsrc[d, b, j]
                if kind == KIND_GRU:
                    ir = d * G + j
                    if layer_norm:
                        xr = (P[d, b, j] - mu) * rs
                        xz = (P[d, b, H + j] - mu) * rs
                        xn = (P[d, b, 2 * H + j] - mu) * rs
                        ar = ln_g[d, j] * xr + ln_b[d, j] + bhh[d, j]
                        az = ln_g[d, H + j] * xz + ln_b[d, H + j] + bhh[d, H + j]
                        an = ln_g[d, 2 * H + j] * xn + ln_b[d, 2 * H + j] + bhh[d, 2 * H + j]
                        if store:
                            xh[d, t, b, j] = xr
                            xh[d, t, b, H + j] = xz
                            xh[d, t, b, 2 * H + j] = xn
                    else:
                        ar = P[d, b, j] + bhh[d, j]
                        az = P[d, b, H + j] + bhh[d, H + j]
                        an = P[d, b, 2 * H + j] + bhh[d, 2 * H + j]
                    r = sigmoid(gi[b, t, ir] + ar)
                    z = sigmoid(gi[b, t, ir + H] + az)
                    n = math.tanh(gi[b, t, ir + 2 * H] + r * an)
                    hnew = n + z * (hp - n)
                    if store:
                        gates[d, t, b, j] = r
                        gates[d, t, b, H + j] = z
                        gates[d, t, b, 2 * H + j] = n
                        ahn[d, t, b, j] = an
                else:
                    if layer_norm:
                        xv = (P[d, b, j] - mu) * rs
                        a = ln_g[d, j] * xv + ln_b[d, j] + bhh[d, j]
                        if store:
                            xh[d, t, b, j] = xv
                    else:
                        a = P[d, b, j] + bhh[d, j]
                    v = gi[b, t, d * G + j] + a
                    if kind == KIND_RNN_RELU:
                        hnew = v if v > 0 else nbt(0)
                    else:
                        hnew = math.tanh(v)
                    if store:
                        gates[d, t, b, j] = hnew
                out[b, t, d * H + j] = hnew
                hdst[d, b, j] = hnew

    @cuda.jit
    def bwd_gates(s, d_out, gates, ahn, xh, rstd, hprev, ln_g, kind, layer_norm, lengths, dhsrc,
                  dgi, dgh, dah, direct):
        """One block per (d, b): d a_i (into dgi), d a_h (into dah), the direct part of dh,
        and dP = LN backward of d a_h (into dgh)."""
        sh = cuda.shared.array(tpb, f64)
        tot = cuda.shared.array(1, f64)
        D, B, H = dhsrc.shape
        G = dgh.shape[3]
        N = G // H
        T = d_out.shape[1]
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for row in range(cuda.blockIdx.x, D * B, cuda.gridDim.x):
            d = row // B
            b = row % B
            t = s if d == 1 else T - 1 - s
            if t >= lengths[b]:
                for i in range(tid, G, nt):
                    dgi[b, t, d * G + i] = 0
                    dgh[d, t, b, i] = 0
                    dah[d, t, b, i] = 0
                for j in range(tid, H, nt):
                    direct[d, b, j] = dhsrc[d, b, j]
                continue
            for j in range(tid, H, nt):
                gs = dhsrc[d, b, j] + d_out[b, t, d * H + j]
                if kind == KIND_GRU:
                    r = gates[d, t, b, j]
                    z = gates[d, t, b, H + j]
                    n = gates[d, t, b, 2 * H + j]
                    dan = gs * (1 - z) * (1 - n * n)
                    daz = gs * (hprev[d, t, b, j] - n) * z * (1 - z)
                    dar = dan * ahn[d, t, b, j] * r * (1 - r)
                    dgi[b, t, d * G + j] = dar
                    dgi[b, t, d * G + H + j] = daz
                    dgi[b, t, d * G + 2 * H + j] = dan
                    dah[d, t, b, j] = dar
                    dah[d, t, b, H + j] = daz
                    dah[d, t, b, 2 * H + j] = r * dan
                    direct[d, b, j] = gs * z
                else:
                    hv = gates[d, t, b, j]
                    if kind == KIND_RNN_RELU:
                        da = gs if hv > 0 else nbt(0)
                    else:
                        da = gs * (1 - hv * hv)
                    dgi[b, t, d * G + j] = da
                    dah[d, t, b, j] = da
                    direct[d, b, j] = 0
            if layer_norm:
                a1 = f64(0)
                a2 = f64(0)
                for j in range(tid, H, nt):          # the entries this thread wrote
                    for g in range(N):
                        i = g * H + j
                        gv = dah[d, t, b, i] * ln_g[d, i]
                        a1 += gv
                        a2 += gv * xh[d, t, b, i]
                m1 = block_sum(a1, sh, tot) / G
                m2 = block_sum(a2, sh, tot) / G
                rs = rstd[d, t, b]
                for j in range(tid, H, nt):
                    for g in range(N):
                        i = g * H + j
                        dgh[d, t, b, i] = rs * (dah[d, t, b, i] * ln_g[d, i] - m1
                                                - xh[d, t, b, i] * m2)
            else:
                for j in range(tid, H, nt):
                    for g in range(N):
                        dgh[d, t, b, g * H + j] = dah[d, t, b, g * H + j]

    @cuda.jit
    def bwd_dh(s, whh, dgh, masks, use_mask, direct, dhdst):
        """dh[d, b, k] = direct + sum_g m_g[k] sum_j dP[g*H + j] W_hh[d, g*H + j, k]."""
        D, B, H = direct.shape
        G = whh.shape[1]
        N = G // H
        T = dgh.shape[1]
        for item in range(cuda.grid(1), D * B * H, cuda.gridsize(1)):
            k = item % H
            rest = item // H
            b = rest % B
            d = rest // B
            t = s if d == 1 else T - 1 - s
            acc = direct[d, b, k]
            for g in range(N):
                q = nbt(0)
                for j in range(H):
                    q += dgh[d, t, b, g * H + j] * whh[d, g * H + j, k]
                if use_mask:
                    q *= masks[d, g, b, k]
                acc += q
            dhdst[d, b, k] = acc

    return dict(ln_rows_fwd=ln_rows_fwd, ln_rows_bwd=ln_rows_bwd, colsum_prod=colsum_prod,
                prod=prod, fwd_gates=fwd_gates, bwd_gates=bwd_gates, bwd_dh=bwd_dh)


def _kn(dtype):
    return _norm_kernels(np.dtype(dtype).name, _config.CUDA_THREADS_PER_BLOCK)


def ln_rows_forward(v, gain, beta, bias, layer_norm, xhat, rstd, y):
    """Twin of ``_cpu_norm.ln_rows_forward``."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M, D, _ = v.shape
    _kn(v.dtype)["ln_rows_fwd"][blocks(M * D, tpb), tpb](v, gain, beta, bias, layer_norm,
                                                          xhat, rstd, y)


def ln_rows_backward(dy, xhat, rstd, gain, dv):
    """Twin of ``_cpu_norm.ln_rows_backward``; returns the gain gradient (D, G) on the host."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    M, D, G = dy.shape
    K = _kn(dy.dtype)
    dgain = device_empty(D * G, dy.dtype)
    K["colsum_prod"][blocks(D * G, tpb), tpb](dy.reshape(M, D * G), xhat.reshape(M, D * G),
                                              dgain)
    K["ln_rows_bwd"][blocks(M * D, tpb), tpb](dy, xhat, rstd, gain, dv)
    return dgain.copy_to_host().reshape(D, G)


def norm_layer_forward(gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind, layer_norm, out, h_n,
                       store, gates, ahn, xh, rstd, hprev, hm):
    """Twin of ``_cpu_norm.norm_layer_forward``: per step ``prod`` then ``fwd_gates``."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    dt = gi.dtype
    K = _kn(dt)
    D, B, H = h0.shape
    G = whh.shape[1]
    T = gi.shape[1]
    use_mask = masks.shape[1] > 0
    hbuf = device_empty((2, D, B, H), dt)
    copy(h0, hbuf[0])
    P = device_empty((D, B, G), dt)
    g_prod = blocks(D * B * G, tpb)
    g_rows = row_grid(D * B)
    for s in range(T):
        src, dst = hbuf[s % 2], hbuf[(s + 1) % 2]
        K["prod"][g_prod, tpb](whh, src, masks, use_mask, P)
        K["fwd_gates"][g_rows, tpb](s, gi, P, bhh, ln_g, ln_b, kind, layer_norm, masks, use_mask,
                                    src, dst, lengths, out, store, gates, ahn, xh, rstd, hprev,
                                    hm)
    copy(hbuf[T % 2], h_n)


def norm_layer_backward(d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g, masks, lengths,
                        kind, layer_norm, dgi, dgh, dh0):
    """Twin of ``_cpu_norm.norm_layer_backward``: per step ``bwd_gates`` then ``bwd_dh``;
    returns the (D, 3, G) sums on the host."""
    tpb = _config.CUDA_THREADS_PER_BLOCK
    dt = d_out.dtype
    K = _kn(dt)
    D, B, H = d_h_n.shape
    G = whh.shape[1]
    T = d_out.shape[1]
    use_mask = masks.shape[1] > 0
    dhbuf = device_empty((2, D, B, H), dt)
    copy(d_h_n, dhbuf[0])
    direct = device_empty((D, B, H), dt)
    dah = device_empty((D, T, B, G), dt)
    g_rows = row_grid(D * B)
    g_dh = blocks(D * B * H, tpb)
    for s in range(T):
        src, dst = dhbuf[s % 2], dhbuf[(s + 1) % 2]
        K["bwd_gates"][g_rows, tpb](s, d_out, gates, ahn, xh, rstd, hprev, ln_g, kind,
                                    layer_norm, lengths, src, dgi, dgh, dah, direct)
        K["bwd_dh"][g_dh, tpb](s, whh, dgh, masks, use_mask, direct, dst)
    copy(dhbuf[T % 2], dh0)
    sums_i = device_empty(D * G, dt)
    colsum(dgi.reshape(B * T, D * G), sums_i)
    out = np.zeros((D, 3, G), dtype=dt)
    out[:, 0] = sums_i.copy_to_host().reshape(D, G)
    for d in range(D):
        s1 = device_empty(G, dt)
        colsum(dah[d].reshape(T * B, G), s1)
        out[d, 1] = s1.copy_to_host()
        if layer_norm:
            s2 = device_empty(G, dt)
            K["colsum_prod"][blocks(G, tpb), tpb](dah[d].reshape(T * B, G),
                                                  xh[d].reshape(T * B, G), s2)
            out[d, 2] = s2.copy_to_host()
    return out
