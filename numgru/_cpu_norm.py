"""CPU kernels of the *general* recurrent layers: layer normalisation and recurrent dropout.

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2), N gate
blocks (GRU 3, RNN 1), G = N*H (a direction's pre-activations), M = B*T rows.

A GRU or RNN layer with ``layer_norm=True`` or ``recurrent_dropout > 0`` runs these kernels;
plain layers keep the fast kernels of :mod:`numgru._cpu` (nothing here touches them). Per
direction (see docs/math.rst, "Layer normalisation and recurrent dropout")::

    LN(v; g, beta) = g * (v - mean(v)) / sqrt(var(v) + eps) + beta    over the G entries of v
    a_i = LN(W_ih x_t; g_ih, beta_ih) + b_ih                           (identity LN without
    a_h = LN([W_hr (h*m_r), W_hz (h*m_z), W_hn (h*m_n)]; g_hh, beta_hh) + b_hh     layer_norm)
    GRU (reset_after):  r = σ(a_i,r + a_h,r)  z = σ(a_i,z + a_h,z)
                        n = tanh(a_i,n + r * a_h,n)   h' = (1 - z) n + z h
    RNN:                h' = act(a_i + a_h)           (one block, one mask)

with ``eps = 1e-5`` and the biased variance (``torch.nn.LayerNorm``), masks m (B, H) per gate
block and direction, 1 without recurrent dropout; h' uses the unmasked h (Keras).

The layer (:class:`numgru._cells.GRULayer` / ``RNNLayer``) runs:

1. ``gi = x @ W_ih^T`` over all timesteps (``backend.gemm``);
2. :func:`ln_rows_forward`: the input-side LN (not recurrent: one pass over the M*D rows), with
   ``b_ih`` added (without layer_norm just ``+ b_ih``);
3. :func:`norm_layer_forward`: the recurrence, one task per (direction, chunk of batch rows);
4. backward: :func:`norm_layer_backward` (the recurrence backward: gates -> d a_h -> LN
   backward -> d of the recurrent products -> dh through W_hh^T and the masks), then
   :func:`ln_rows_backward` (input side), and the weight gradients as products over all
   timesteps in the layer (``dW_ih = dv^T x``, ``dW_hh`` from the masked states).

Kernel kinds (``kind``): :mod:`numgru._cell_kinds` (``KIND_GRU``, the reset_after form;
``KIND_RNN_TANH``; ``KIND_RNN_RELU``).

Tasks are launched on the task runtime in use (:func:`numgru._tasks.launch`,
:mod:`numgru._threading`): one task per (direction, chunk of batch rows); a launch of one task
runs in the calling thread.
"""

import numpy as np
from numba import njit

from . import _compile_ahead, _pool, _tasks
from ._cell_kinds import KIND_GRU, KIND_RNN_RELU
from ._config import CACHE, FASTMATH
from ._gemm import mm_nt
from ._math import copy_into, sigmoid, tanh

_JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=CACHE, nogil=True)

EPS = 1e-5           # LayerNorm's epsilon (torch.nn.LayerNorm's default)

# ---------------------------------------------------------------------------------------------
# Launching (one small place: direct call for one task, numgru's thread pool otherwise)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Row-wise layer normalisation (the input side)
# ---------------------------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _ln_row(v, eps, xhat):
    """xhat = (v - mean) / sqrt(var + eps) (biased variance, accumulated in float64);
    returns 1 / sqrt(var + eps)."""
    n = v.shape[0]
    s = 0.0
    for j in range(n):
        s += v[j]
    mu = s / n
    q = 0.0
    for j in range(n):
        c = v[j] - mu
        q += c * c
    rs = 1.0 / np.sqrt(q / n + eps)
    for j in range(n):
        xhat[j] = (v[j] - mu) * rs
    return rs


@njit(inline="always", **_JIT)
def _ln_row_backward(dy, gain, xhat, rs, dv):
    """dv = rs * (dxh - mean(dxh) - xhat * mean(dxh * xhat)) with dxh = dy * gain (dv may be
    dy)."""
    n = dy.shape[0]
    s1 = 0.0
    s2 = 0.0
    for j in range(n):
        g = dy[j] * gain[j]
        s1 += g
        s2 += g * xhat[j]
    m1 = s1 / n
    m2 = s2 / n
    for j in range(n):
        dv[j] = rs * (dy[j] * gain[j] - m1 - xhat[j] * m2)


@njit(**_JIT)
def ln_rows_forward(v, gain, beta, bias, layer_norm, xhat, rstd, y):
    """The input side of a general layer: ``y = LN(v; gain, beta) + bias`` row by row.

    v      (M, D, G)  W_ih x of every (row, direction)
    gain   (D, G)     LN gains (unused without layer_norm)
    beta   (D, G)     LN biases (unused without layer_norm)
    bias   (D, G)     b_ih
    layer_norm bool   False: ``y = v + bias`` (xhat, rstd untouched and may be empty)
    xhat   (M, D, G)  written: the normalised rows (what backward needs)
    rstd   (M, D)     written: 1 / sqrt(var + eps) per row
    y      (M, D, G)  written (may be v)
    """
    M, D, G = v.shape
    eps = EPS
    for m in range(M):
        for d in range(D):
            if layer_norm:
                xh = xhat[m, d]
                rstd[m, d] = _ln_row(v[m, d], eps, xh)
                for j in range(G):
                    y[m, d, j] = gain[d, j] * xh[j] + beta[d, j] + bias[d, j]
            else:
                for j in range(G):
                    y[m, d, j] = v[m, d, j] + bias[d, j]


@njit(**_JIT)
def ln_rows_backward(dy, xhat, rstd, gain, dv, dgain):
    """Backward of :func:`ln_rows_forward` (layer_norm=True).

    dy     (M, D, G)  gradient of y (the input-side pre-activations a_i)
    xhat, rstd        saved by the forward
    gain   (D, G)
    dv     (M, D, G)  written: gradient of v = W_ih x (may be dy)
    dgain  (D, G)     written: sum over rows of dy * xhat (the gain gradient; the gradients of
                      beta and of b_ih are the row sums of dy, which the recurrence has formed)
    """
    M, D, G = dy.shape
    dgain[:] = 0
    for m in range(M):
        for d in range(D):
            for j in range(G):
                dgain[d, j] += dy[m, d, j] * xhat[m, d, j]
            _ln_row_backward(dy[m, d], gain[d], xhat[m, d], rstd[m, d], dv[m, d])


# ---------------------------------------------------------------------------------------------
# The recurrence
# ---------------------------------------------------------------------------------------------


@njit(**_JIT)
def norm_forward_chunk(ctl, ntasks, task, gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind,
                       layer_norm, out, h_n, store, gates, ahn, xh, rstd, hprev, hm, nchunks):
    """Task ``task``: all timesteps of direction d for batch rows b0..b1-1 (one task of
    :func:`norm_layer_forward`, whose docstring has the arrays).

    Per step: the N recurrent products ``P_g = (h * m_g) @ W_g^T`` of the chunk (``mm_nt``),
    then per valid row the LN of ``P = [P_0 .. P_N-1]`` over its G entries, ``+ b_hh``, the
    gates and h'. Padded rows keep their state and write 0.
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind,
                                          layer_norm, out, h_n, store, gates, ahn, xh, rstd, hprev,
                                          hm, nchunks))
        return
    d, b0, b1 = _tasks.task_rows(task, nchunks, h0.shape[1])
    if b1 <= b0:
        return
    N = whh.shape[1] // whh.shape[2]
    H = whh.shape[2]
    G = N * H
    T = gi.shape[1]
    nb = b1 - b0
    dt = gi.dtype
    use_mask = masks.shape[1] > 0
    w = [np.ascontiguousarray(whh[d, g * H:(g + 1) * H]) for g in range(N)]   # (H, H) each
    h = np.empty((nb, H), dtype=dt)
    hmk = np.empty((N, nb, H), dtype=dt)         # the masked states the products read
    P = np.empty((N, nb, H), dtype=dt)           # the recurrent products
    prow = np.empty(G, dtype=dt)
    xrow = np.empty(G, dtype=dt)
    a = np.empty(G, dtype=dt)                    # a_h of one row
    eps = EPS
    for i in range(nb):
        copy_into(h0[d, b0 + i], h[i])
    for s in range(T):
        t = T - 1 - s if d == 1 else s
        for g in range(N):
            for i in range(nb):
                if use_mask:
                    for k in range(H):
                        hmk[g, i, k] = h[i, k] * masks[d, g, b0 + i, k]
                else:
                    copy_into(h[i], hmk[g, i])
            mm_nt(hmk[g], w[g], P[g])
        for i in range(nb):
            b = b0 + i
            o = out[b, t, d * H:(d + 1) * H]
            if store:
                copy_into(h[i], hprev[d, t, b])
                if use_mask:
                    for g in range(N):
                        copy_into(hmk[g, i], hm[d, t, b, g * H:(g + 1) * H])
            if t >= lengths[b]:
                o[:] = 0
                if store:
                    gates[d, t, b, :] = 0
                    if kind == KIND_GRU:
                        ahn[d, t, b, :] = 0
                    if layer_norm:
                        xh[d, t, b, :] = 0
                        rstd[d, t, b] = 0
                continue
            for g in range(N):
                copy_into(P[g, i], prow[g * H:(g + 1) * H])
            if layer_norm:
                rs = _ln_row(prow, eps, xrow)
                for j in range(G):
                    a[j] = ln_g[d, j] * xrow[j] + ln_b[d, j] + bhh[d, j]
                if store:
                    copy_into(xrow, xh[d, t, b])
                    rstd[d, t, b] = rs
            else:
                for j in range(G):
                    a[j] = prow[j] + bhh[d, j]
            ai = gi[b, t, d * G:(d + 1) * G]
            hi = h[i]
            if kind == KIND_GRU:
                for j in range(H):
                    r = sigmoid(ai[j] + a[j])
                    z = sigmoid(ai[H + j] + a[H + j])
                    n = tanh(ai[2 * H + j] + r * a[2 * H + j])
                    hv = n + z * (hi[j] - n)
                    if store:
                        gates[d, t, b, j] = r
                        gates[d, t, b, H + j] = z
                        gates[d, t, b, 2 * H + j] = n
                        ahn[d, t, b, j] = a[2 * H + j]
                    hi[j] = hv
                    o[j] = hv
            else:
                for j in range(H):
                    v = ai[j] + a[j]
                    if kind == KIND_RNN_RELU:
                        hv = v if v > 0 else dt.type(0)
                    else:
                        hv = tanh(v)
                    if store:
                        gates[d, t, b, j] = hv
                    hi[j] = hv
                    o[j] = hv
    for i in range(nb):
        copy_into(h[i], h_n[d, b0 + i])


def norm_layer_forward(gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind, layer_norm, out, h_n,
                       store, gates, ahn, xh, rstd, hprev, hm, nchunks):
    """The recurrence of a general layer, all directions.

    gi       (B, T, D*G)   a_i: the input-side pre-activations (after ln_rows_forward)
    whh      (D, G, H)     recurrent weights (gate blocks r, z, n for the GRU)
    bhh      (D, G)        recurrent biases
    ln_g     (D, G)        recurrent LN gains (unused without layer_norm)
    ln_b     (D, G)        recurrent LN biases (unused without layer_norm)
    masks    (D, N, B, H)  recurrent dropout masks, one per gate block, or (D, 0, 0, 0): none
    h0       (D, B, H)     initial states
    lengths  (B,)          valid lengths (1..T), right padding
    kind     int           KIND_GRU, KIND_RNN_TANH or KIND_RNN_RELU (numgru._cell_kinds)
    out      (B, T, D*H)   written: hidden states, 0 past the end
    h_n      (D, B, H)     written: the state after each sequence's last valid step
    store    bool          save what backward needs (else the arrays below may be empty):
    gates    (D, T, B, G)  GRU: r, z, n; RNN: h'
    ahn      (D, T, B, H)  GRU: a_h,n (the n block of a_h, multiplied by r)
    xh       (D, T, B, G)  layer_norm: the normalised recurrent products
    rstd     (D, T, B)     layer_norm: their 1 / sqrt(var + eps)
    hprev    (D, T, B, H)  the state each step read
    hm       (D, T, B, G)  with masks: the masked states per gate block (for dW_hh)
    nchunks  int           batch chunks per direction
    """
    norm_forward_chunk(_pool.ctl(), h0.shape[0] * nchunks, -1, gi, whh, bhh, ln_g, ln_b, masks,
                       h0, lengths, kind, layer_norm, out, h_n, store, gates, ahn, xh, rstd,
                       hprev, hm, nchunks)


@njit(**_JIT)
def norm_backward_chunk(ctl, ntasks, task, d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g,
                        masks, lengths, kind, layer_norm, dgi, dgh, dh0, sums_all, nchunks):
    """Task ``task``: all timesteps (in reverse processing order) of direction d for batch rows
    b0..b1-1 (one
    task of :func:`norm_layer_backward`).

    Per valid row, with dh' = carried + d_out:
        GRU: da_n = dh' (1-z)(1-n^2), da_z = dh' (h-n) z (1-z), da_r = da_n a_h,n r (1-r);
             d a_i = [da_r, da_z, da_n], d a_h = [da_r, da_z, r da_n], direct = dh' z
        RNN: da = dh' act'(h'); d a_i = d a_h = da; direct = 0
        dP = LN backward of d a_h (layer_norm) or d a_h
        dh = direct + sum_g (dP_g @ W_g) * m_g
    sums (3, G) of this task: [0] d a_i (b_ih), [1] d a_h (b_hh, beta_hh), [2] d a_h * xh (g_hh).
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g,
                                          masks, lengths, kind, layer_norm, dgi, dgh, dh0,
                                          sums_all, nchunks))
        return
    d, b0, b1 = _tasks.task_rows(task, nchunks, d_h_n.shape[1])
    if b1 <= b0:
        return                                   # its sums stay 0
    sums = sums_all[task]
    N = whh.shape[1] // whh.shape[2]
    H = whh.shape[2]
    G = N * H
    T = d_out.shape[1]
    nb = b1 - b0
    dt = dgi.dtype
    use_mask = masks.shape[1] > 0
    wT = [np.ascontiguousarray(whh[d, g * H:(g + 1) * H].T) for g in range(N)]  # (H, H) each
    dh = np.empty((nb, H), dtype=dt)
    direct = np.empty((nb, H), dtype=dt)
    DP = np.zeros((N, nb, H), dtype=dt)
    Q = np.empty((N, nb, H), dtype=dt)
    dah = np.empty(G, dtype=dt)
    dp = np.empty(G, dtype=dt)
    sums[:] = 0
    one = dt.type(1)
    for i in range(nb):
        copy_into(d_h_n[d, b0 + i], dh[i])
    for s in range(T):
        t = s if d == 1 else T - 1 - s
        for i in range(nb):
            b = b0 + i
            dgib = dgi[b, t, d * G:(d + 1) * G]
            if t >= lengths[b]:
                dgib[:] = 0
                dgh[d, t, b, :] = 0
                for g in range(N):
                    DP[g, i, :] = 0
                copy_into(dh[i], direct[i])
                continue
            do = d_out[b, t, d * H:(d + 1) * H]
            gt = gates[d, t, b]
            if kind == KIND_GRU:
                hp = hprev[d, t, b]
                an = ahn[d, t, b]
                for j in range(H):
                    gs = dh[i, j] + do[j]
                    r = gt[j]
                    z = gt[H + j]
                    n = gt[2 * H + j]
                    dan = gs * (one - z) * (one - n * n)
                    daz = gs * (hp[j] - n) * z * (one - z)
                    dar = dan * an[j] * r * (one - r)
                    dgib[j] = dar
                    dgib[H + j] = daz
                    dgib[2 * H + j] = dan
                    dah[j] = dar
                    dah[H + j] = daz
                    dah[2 * H + j] = r * dan
                    direct[i, j] = gs * z
            else:
                for j in range(H):
                    gs = dh[i, j] + do[j]
                    hv = gt[j]
                    if kind == KIND_RNN_RELU:
                        da = gs if hv > 0 else dt.type(0)
                    else:
                        da = gs * (one - hv * hv)
                    dgib[j] = da
                    dah[j] = da
                    direct[i, j] = 0
            for j in range(G):
                sums[0, j] += dgib[j]
                sums[1, j] += dah[j]
            if layer_norm:
                xr = xh[d, t, b]
                for j in range(G):
                    sums[2, j] += dah[j] * xr[j]
                _ln_row_backward(dah, ln_g[d], xr, rstd[d, t, b], dp)
            else:
                copy_into(dah, dp)
            copy_into(dp, dgh[d, t, b])
            for g in range(N):
                copy_into(dp[g * H:(g + 1) * H], DP[g, i])
        for g in range(N):
            mm_nt(DP[g], wT[g], Q[g])
        for i in range(nb):
            b = b0 + i
            if t >= lengths[b]:
                copy_into(direct[i], dh[i])
                continue
            for k in range(H):
                acc = direct[i, k]
                for g in range(N):
                    if use_mask:
                        acc += Q[g, i, k] * masks[d, g, b, k]
                    else:
                        acc += Q[g, i, k]
                dh[i, k] = acc
    for i in range(nb):
        copy_into(dh[i], dh0[d, b0 + i])


def norm_layer_backward(d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g, masks, lengths,
                        kind, layer_norm, dgi, dgh, dh0, nchunks):
    """Backward recurrence of a general layer, all directions (every output is written).

    d_out    (B, T, D*H)   gradient at the layer's outputs (ignored past each length)
    d_h_n    (D, B, H)     gradient at the final states
    gates, ahn, xh, rstd, hprev   saved by norm_layer_forward(store=True)
    whh      (D, G, H), ln_g (D, G), masks (D, N, B, H) or (D, 0, 0, 0), lengths, kind,
    layer_norm             as in the forward
    dgi      (B, T, D*G)   written: gradient of a_i (0 past the end)
    dgh      (D, T, B, G)  written: gradient of the raw recurrent products P (0 past the end)
    dh0      (D, B, H)     written: gradient of the initial states
    Returns (D, 3, G) host: [d, 0] sum of dgi (b_ih; also beta_ih with layer_norm),
    [d, 1] sum of d a_h (b_hh, beta_hh), [d, 2] sum of d a_h * xh (g_hh; 0 without layer_norm).
    """
    D = d_h_n.shape[0]
    G = whh.shape[1]
    sums = np.zeros((D * nchunks, 3, G), dtype=dgi.dtype)
    _compile_ahead.wait(norm_backward_chunk)
    norm_backward_chunk(_pool.ctl(), D * nchunks, -1, d_out, d_h_n, gates, ahn, xh, rstd, hprev,
                        whh, ln_g, masks, lengths, kind, layer_norm, dgi, dgh, dh0, sums, nchunks)
    out = np.zeros((D, 3, G), dtype=dgi.dtype)
    for q in range(D * nchunks):                 # chunks in order: the sums do not depend on
        out[q // nchunks] += sums[q]             # the pool
    return out
