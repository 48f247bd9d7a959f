"""CPU kernels: one GRU layer (both directions) forward and backward through time.

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2),
G = D*3H (the width of the input projections of all directions), O = D*H (the layer's output).

The layer is computed the way cuDNN does it:

1. ``gi = x @ W_ih^T + b_ih`` for every timestep and both directions: one large GEMM, done by the
   caller (``numgru.gru``) through NumPy's BLAS.
2. :func:`gru_layer_forward`: the recurrence. Only the recurrent product ``h @ W_hh^T`` is per
   step. Batch rows are independent, so the batch is split into one chunk per thread (times the
   two directions) and each thread runs *all* timesteps of its chunk: one parallel launch per
   layer, no barrier per step. Within a chunk, :func:`_mm_nt` computes the recurrent product with
   a register-blocked kernel and the gate loop is vectorised (see ``_math``).
3. :func:`gru_layer_backward`: the backward recurrence; it writes the pre-activation gradients
   ``dgi`` (input side) and ``dgh`` (recurrent side) for every step. The caller then forms every
   weight gradient as one large GEMM over all timesteps (``dW_ih = dgi^T x``,
   ``dW_hh = dgh^T h_prev``) and ``dx = dgi @ W_ih``.

Gate order is PyTorch's: r, z, n. ``reset_after=True`` (PyTorch, cuDNN)::

    r = σ(gi_r + W_hr h + b_hr)     z = σ(gi_z + W_hz h + b_hz)
    n = tanh(gi_n + r * (W_hn h + b_hn))        h' = n + z * (h - n)

``reset_after=False`` (Cho et al. 2014)::

    n = tanh(gi_n + W_hn (r * h))               (no recurrent bias on n)
"""

import numpy as np
from numba import njit, prange

from ._config import CACHE, FASTMATH
from ._math import sigmoid, tanh

_JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=CACHE, nogil=True)


@njit(inline="always", **_JIT)
def _mm_nt(A, a_off, Bm, b_off, K, C, c_off, M, N):
    """C[i, c_off+j] = sum_k A[i, a_off+k] * Bm[j, b_off+k] for i < M, j < N, k < K.

    A (M, *), Bm (N, *), C (M, *) are C-contiguous. Blocks of 4 rows x 2 columns keep eight
    vector accumulators in registers and load each row of Bm once per four rows of A.
    """
    zero = C.dtype.type(0)
    i = 0
    while i + 4 <= M:
        a0 = A[i, a_off:a_off + K]
        a1 = A[i + 1, a_off:a_off + K]
        a2 = A[i + 2, a_off:a_off + K]
        a3 = A[i + 3, a_off:a_off + K]
        j = 0
        while j + 2 <= N:
            b0 = Bm[j, b_off:b_off + K]
            b1 = Bm[j + 1, b_off:b_off + K]
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
            c = c_off + j
            C[i, c] = s00
            C[i, c + 1] = s01
            C[i + 1, c] = s10
            C[i + 1, c + 1] = s11
            C[i + 2, c] = s20
            C[i + 2, c + 1] = s21
            C[i + 3, c] = s30
            C[i + 3, c + 1] = s31
            j += 2
        if j < N:
            b0 = Bm[j, b_off:b_off + K]
            s00 = s10 = s20 = s30 = zero
            for k in range(K):
                w0 = b0[k]
                s00 += a0[k] * w0
                s10 += a1[k] * w0
                s20 += a2[k] * w0
                s30 += a3[k] * w0
            c = c_off + j
            C[i, c] = s00
            C[i + 1, c] = s10
            C[i + 2, c] = s20
            C[i + 3, c] = s30
        i += 4
    while i < M:
        a0 = A[i, a_off:a_off + K]
        j = 0
        while j + 4 <= N:
            b0 = Bm[j, b_off:b_off + K]
            b1 = Bm[j + 1, b_off:b_off + K]
            b2 = Bm[j + 2, b_off:b_off + K]
            b3 = Bm[j + 3, b_off:b_off + K]
            s0 = s1 = s2 = s3 = zero
            for k in range(K):
                x = a0[k]
                s0 += x * b0[k]
                s1 += x * b1[k]
                s2 += x * b2[k]
                s3 += x * b3[k]
            c = c_off + j
            C[i, c] = s0
            C[i, c + 1] = s1
            C[i, c + 2] = s2
            C[i, c + 3] = s3
            j += 4
        while j < N:
            b0 = Bm[j, b_off:b_off + K]
            s0 = zero
            for k in range(K):
                s0 += a0[k] * b0[k]
            C[i, c_off + j] = s0
            j += 1
        i += 1


@njit(parallel=True, **_JIT)
def gru_layer_forward(gi, whh, bhh, h0, lengths, reset_after, nchunks,
                      out, h_n, store, gates, hn_s, hprev_s):
    """Forward recurrence of one layer, all directions.

    gi       (B, T, D*3H)  input projections x @ W_ih^T + b_ih, direction d at columns d*3H
    whh      (D, 3H, H)    recurrent weights
    bhh      (D, 3H)       recurrent biases (n part 0 and unused when reset_after is False)
    h0       (D, B, H)     initial states
    lengths  (B,)          valid lengths (1..T), right padding
    nchunks  int           batch chunks per direction (one per thread)
    out      (B, T, D*H)   written: hidden states, direction d at columns d*H, 0 past the end
    h_n      (D, B, H)     written: state after each sequence's last valid step
    store    bool          save what backward needs:
    gates    (D, B, T, 3H) r, z, n after their activations
    hn_s     (D, B, T, H)  W_hn h + b_hn (reset_after=True only)
    hprev_s  (D, B, T, H)  the state each step started from
    """
    D = whh.shape[0]
    H = whh.shape[2]
    B = gi.shape[0]
    T = gi.shape[1]
    H2 = 2 * H
    H3 = 3 * H
    for task in prange(D * nchunks):
        d = task // nchunks
        c = task % nchunks
        b0 = (c * B) // nchunks
        b1 = ((c + 1) * B) // nchunks
        nb = b1 - b0
        if nb == 0:
            continue
        w = whh[d]
        bias = bhh[d]
        goff = d * H3
        ooff = d * H
        h = np.empty((nb, H), dtype=gi.dtype)
        gh = np.empty((nb, H3), dtype=gi.dtype)
        rh = np.empty((nb, H), dtype=gi.dtype)
        for i in range(nb):
            h[i, :] = h0[d, b0 + i]
        for s in range(T):
            t = T - 1 - s if d == 1 else s
            if reset_after:
                _mm_nt(h, 0, w, 0, H, gh, 0, nb, H3)
            else:
                _mm_nt(h, 0, w, 0, H, gh, 0, nb, H2)
                for i in range(nb):
                    hi = h[i]
                    gir = gi[b0 + i, t, goff:goff + H]
                    giz = gi[b0 + i, t, goff + H:goff + H2]
                    ghi = gh[i]
                    rhi = rh[i]
                    for j in range(H):
                        r = sigmoid(gir[j] + ghi[j] + bias[j])
                        z = sigmoid(giz[j] + ghi[H + j] + bias[H + j])
                        ghi[j] = r
                        ghi[H + j] = z
                        rhi[j] = r * hi[j]
                _mm_nt(rh, 0, w, H2, H, gh, H2, nb, H)
            for i in range(nb):
                b = b0 + i
                hi = h[i]
                o = out[b, t, ooff:ooff + H]
                if t >= lengths[b]:
                    o[:] = 0
                    if store:
                        hprev_s[d, b, t, :] = hi
                    continue
                gib = gi[b, t, goff:goff + H3]
                ghi = gh[i]
                if store:
                    hp = hprev_s[d, b, t]
                    hp[:] = hi
                    g = gates[d, b, t]
                if reset_after:
                    if store:
                        hns = hn_s[d, b, t]
                    for j in range(H):
                        r = sigmoid(gib[j] + ghi[j] + bias[j])
                        z = sigmoid(gib[H + j] + ghi[H + j] + bias[H + j])
                        hn = ghi[H2 + j] + bias[H2 + j]
                        n = tanh(gib[H2 + j] + r * hn)
                        hv = n + z * (hi[j] - n)
                        o[j] = hv
                        hi[j] = hv
                        if store:
                            g[j] = r
                            g[H + j] = z
                            g[H2 + j] = n
                            hns[j] = hn
                else:
                    for j in range(H):
                        r = ghi[j]
                        z = ghi[H + j]
                        n = tanh(gib[H2 + j] + ghi[H2 + j])
                        hv = n + z * (hi[j] - n)
                        o[j] = hv
                        hi[j] = hv
                        if store:
                            g[j] = r
                            g[H + j] = z
                            g[H2 + j] = n
        for i in range(nb):
            h_n[d, b0 + i, :] = h[i]


@njit(parallel=True, **_JIT)
def gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev_s, whhT, lengths, reset_after, nchunks,
                       dgi, dgh, dh0):
    """Backward recurrence of one layer, all directions (adds nothing: every output is written).

    d_out    (B, T, D*H)   gradient arriving at the layer's outputs (ignored past each length)
    d_h_n    (D, B, H)     gradient arriving at the final states
    gates, hn_s, hprev_s   saved by gru_layer_forward(store=True)
    whhT     (D, H, 3H)    recurrent weights, transposed
    dgi      (B, T, D*3H)  written: d loss / d (input-side pre-activations) — da_r, da_z, da_n
    dgh      (D, B, T, 3H) written: d loss / d (W_hh h + b_hh) — da_r, da_z, and for the n gate
                           r*da_n (reset_after) or da_n (Cho: its weight gradient uses r*h)
    dh0      (D, B, H)     written: gradient of the initial states
    Positions past a sequence's end get zeros in dgi and dgh.
    """
    D = whhT.shape[0]
    H = whhT.shape[1]
    B = d_out.shape[0]
    T = d_out.shape[1]
    H2 = 2 * H
    H3 = 3 * H
    one = dgi.dtype.type(1)
    for task in prange(D * nchunks):
        d = task // nchunks
        c = task % nchunks
        b0 = (c * B) // nchunks
        b1 = ((c + 1) * B) // nchunks
        nb = b1 - b0
        if nb == 0:
            continue
        wT = whhT[d]
        goff = d * H3
        ooff = d * H
        dh = np.empty((nb, H), dtype=dgi.dtype)      # gradient carried into the step
        dd = np.empty((nb, H), dtype=dgi.dtype)      # direct part z * dh (+ r * d(rh))
        drh = np.empty((nb, H), dtype=dgi.dtype)     # Cho: d loss / d (r * h)
        dg = np.empty((nb, H3), dtype=dgi.dtype)     # this step's dgh rows
        for i in range(nb):
            dh[i, :] = d_h_n[d, b0 + i]
        for s in range(T):
            t = s if d == 1 else T - 1 - s
            for i in range(nb):
                b = b0 + i
                dgib = dgi[b, t, goff:goff + H3]
                dgr = dg[i]
                dhi = dh[i]
                ddi = dd[i]
                if t >= lengths[b]:
                    dgib[:] = 0
                    dgr[:] = 0
                    ddi[:] = dhi
                    continue
                do = d_out[b, t, ooff:ooff + H]
                g = gates[d, b, t]
                hp = hprev_s[d, b, t]
                if reset_after:
                    hns = hn_s[d, b, t]
                    for j in range(H):
                        r = g[j]
                        z = g[H + j]
                        n = g[H2 + j]
                        gh = dhi[j] + do[j]
                        da_n = gh * (one - z) * (one - n * n)
                        da_r = da_n * hns[j] * r * (one - r)
                        da_z = gh * (hp[j] - n) * z * (one - z)
                        dgib[j] = da_r
                        dgib[H + j] = da_z
                        dgib[H2 + j] = da_n
                        dgr[j] = da_r
                        dgr[H + j] = da_z
                        dgr[H2 + j] = da_n * r
                        ddi[j] = gh * z
                else:
                    for j in range(H):
                        z = g[H + j]
                        n = g[H2 + j]
                        gh = dhi[j] + do[j]
                        da_n = gh * (one - z) * (one - n * n)
                        da_z = gh * (hp[j] - n) * z * (one - z)
                        dgib[H + j] = da_z
                        dgib[H2 + j] = da_n
                        dgr[H + j] = da_z
                        dgr[H2 + j] = da_n
                        ddi[j] = gh * z
            if not reset_after:
                # d(r*h) = da_n @ W_hn ; then r's gradient and the direct path through r*h
                _mm_nt(dg, H2, wT, H2, H, drh, 0, nb, H)
                for i in range(nb):
                    b = b0 + i
                    if t >= lengths[b]:
                        continue
                    g = gates[d, b, t]
                    hp = hprev_s[d, b, t]
                    dgib = dgi[b, t, goff:goff + H3]
                    dgr = dg[i]
                    ddi = dd[i]
                    dri = drh[i]
                    for j in range(H):
                        r = g[j]
                        da_r = dri[j] * hp[j] * r * (one - r)
                        dgib[j] = da_r
                        dgr[j] = da_r
                        ddi[j] += dri[j] * r
                _mm_nt(dg, 0, wT, 0, H2, dh, 0, nb, H)
            else:
                _mm_nt(dg, 0, wT, 0, H3, dh, 0, nb, H)
            for i in range(nb):
                dhi = dh[i]
                ddi = dd[i]
                for j in range(H):
                    dhi[j] += ddi[j]
                dgh[d, b0 + i, t, :] = dg[i]
        for i in range(nb):
            dh0[d, b0 + i, :] = dh[i]
