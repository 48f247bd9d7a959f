"""CPU kernels: one GRU or vanilla RNN layer (both directions) forward and backward through time,
and the CPU backend object (:class:`CPUBackend`, the contract is in :mod:`numgru._contract`).

The rooms beside this one: :mod:`numgru._cpu_norm` (the general layers: layer normalisation and
recurrent dropout), :mod:`numgru._cpu_lm` (the language model's embedding and softmax),
:mod:`numgru._gemm` (matrix products), :mod:`numgru._tasks` (launches). The backend object
decides how many tasks each call gets and hands it to the room that holds the kernel.

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2),
G = D*3H (the width of the input projections of all directions), O = D*H (the layer's output).

The layer is computed the way cuDNN does it:

1. ``gi = x @ W_ih^T + b_ih``: the input projections, independent of the recurrence, as
   products over blocks of ~``_PROJ_ROWS`` (timestep, batch row) pairs inside each thread's
   share, so that the (rows, 3H) result is consumed from cache by the next few steps instead of
   being written to memory for all T steps first (measured: 4-8% faster at the benchmark's mid
   and large shapes than one product over all B*T rows).
2. :func:`gru_layer_forward`: the recurrence. Only the recurrent product ``h @ W_hh^T`` is per
   step. Batch rows are independent, so the batch is split into one chunk per thread (times the
   two directions) and each thread runs *all* timesteps of its chunk: one launch per layer, no
   barrier per step. The gate loop is vectorised (see ``_math``).
3. :func:`gru_layer_backward`: the backward recurrence; it writes the pre-activation gradients
   ``dgi`` (input side) and ``dgh`` (recurrent side) for every step and per-chunk bias sums.
   The engine (:class:`numgru._cells.GRULayer`) then forms every weight gradient as one large
   product over all timesteps (``dW_ih = dgi^T x``, ``dW_hh = dgh^T h_prev``) and
   ``dx = dgi @ W_ih``.

Launches: every kernel that runs as tasks (chunks of batch rows, blocks of rows) is written as
``kernel(ctl, ntasks, task, ...)``; called from Python with ``task = -1`` it launches itself
(:func:`numgru._tasks.launch`) on the task runtime in use, which ``_pool.ctl()`` names
(:mod:`numgru._threading`): Numba's parallel runtime, through one shared ``prange`` launcher
that calls the kernel's compiled task entry by address, or numgru's native pool. A launch of
one task runs in the calling thread. No kernel here is compiled with ``parallel=True`` itself:
a ``prange`` launcher per kernel re-compiles the kernel's body into it (12.6 CPU s for the GRU
forward chunk kernel against 0.7 s for the shared launcher, docs/performance.md, "Task
runtimes").

Matrix products: every product runs on numgru's own threads (BLAS's own pool and another spin
against each other at each hand-over on a small machine: a (1, 100, 16, 64, 2) forward took
13 ms with both pools active, 0.2 ms with one). Which kernel computes which product is the
one dispatch rule of :mod:`numgru._gemm`: the packed micro-kernel for the per-step products
of a thread with at least ``PACK_MIN_ROWS`` rows (``mm_packed_rows``: tiles of 8 rows; a few
rows past the last full tile join it or run one at a time, so that 10 rows do not cost 16),
the small register-blocked ``mm_nt`` below that; for the products over all timesteps, the
micro-kernel per block of rows of the weight gradients (``gemm_tn``) and BLAS per block of rows
for ``dx`` (``gemm``).

Gate order is PyTorch's: r, z, n. ``reset_after=True`` (PyTorch, cuDNN)::

    r = σ(gi_r + W_hr h + b_hr)     z = σ(gi_z + W_hz h + b_hz)
    n = tanh(gi_n + r * (W_hn h + b_hn))        h' = n + z * (h - n)

``reset_after=False`` (Cho et al. 2014)::

    n = tanh(gi_n + W_hn (r * h))               (no recurrent bias on n)

The vanilla RNN cell (:func:`rnn_layer_forward` / :func:`rnn_layer_backward`, ``torch.nn.RNN``)
is computed the same way, with one gate::

    h' = act(W_ih x + b_ih + W_hh h + b_hh)     act = tanh or relu
"""

import numba
import numpy as np
from numba import njit, types

from . import _compile_ahead, _cpu_lm, _cpu_norm, _numba_internals, _pool, _tasks
from ._config import (CACHE, FASTMATH, INFERENCE_MIN_WORK, PARALLEL_MIN_WORK,
                      SPLIT_STEP_MIN_WORK)
from ._contract import Backend
from ._cpu_lm import embedding_backward, embedding_forward
from ._gemm import (PACK_MIN_ROWS, gemm, gemm_tn, mm_nt, mm_packed_rows, pack_nt, padded_rows,
                    product_tasks)
from ._math import add_into, copy_into, sigmoid, tanh

_JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=CACHE, nogil=True)

# Rows of one blocked input projection in the forward recurrence (tb timesteps x nb batch rows):
# enough for an efficient product, small enough that its (rows, 3H) result stays in cache.
_PROJ_ROWS = 256


# Gate loops. Each is its own small function over at most five arrays: LLVM vectorises a loop
# only when a bounded number of run-time checks proves its arrays do not overlap, and one loop
# over seven arrays stayed scalar (3 ns per element instead of under 1).


@njit(**_JIT)
def _sigmoid_sum3(x, a, b):
    """x = sigmoid(x + a + b), elementwise, in place."""
    for j in range(x.shape[0]):
        x[j] = sigmoid(x[j] + a[j] + b[j])


@njit(**_JIT)
def _tanh_sum3(x, a, b):
    """x = tanh(x + a + b), elementwise, in place."""
    for j in range(x.shape[0]):
        x[j] = tanh(x[j] + a[j] + b[j])


@njit(**_JIT)
def _n_gate_after(ghn, gin, bin_, r, bn, hn_out):
    """reset_after: hn = W_hn h + b_hn (saved), n = tanh(gi_n + b_in + r * hn) in place of ghn."""
    for j in range(ghn.shape[0]):
        hn = ghn[j] + bn[j]
        hn_out[j] = hn
        ghn[j] = tanh(gin[j] + bin_[j] + r[j] * hn)


@njit(**_JIT)
def _h_update(n, z, h, out):
    """h' = n + z * (h - n) = (1 - z) n + z h, into h and the output row."""
    for j in range(n.shape[0]):
        nj = n[j]
        hv = nj + z[j] * (h[j] - nj)
        h[j] = hv
        out[j] = hv


@njit(**_JIT)
def _sum2(a, b, out):
    for j in range(out.shape[0]):
        out[j] = a[j] + b[j]


@njit(**_JIT)
def _mul2(a, b, out):
    for j in range(out.shape[0]):
        out[j] = a[j] * b[j]


@njit(**_JIT)
def _fma_into(a, b, out):
    """out += a * b."""
    for j in range(out.shape[0]):
        out[j] += a[j] * b[j]


@njit(**_JIT)
def _bw_n(dh, z, n, out):
    """da_n = dh' (1 - z) (1 - n^2)."""
    one = out.dtype.type(1)
    for j in range(out.shape[0]):
        out[j] = dh[j] * (one - z[j]) * (one - n[j] * n[j])


@njit(**_JIT)
def _bw_z(dh, hp, n, z, out):
    """da_z = dh' (h - n) z (1 - z)."""
    one = out.dtype.type(1)
    for j in range(out.shape[0]):
        out[j] = dh[j] * (hp[j] - n[j]) * z[j] * (one - z[j])


@njit(**_JIT)
def _bw_r(dr, v, r, out):
    """da_r = dr v r (1 - r): v = W_hn h + b_hn with dr = da_n (reset_after), v = h with
    dr = d(r*h) (Cho)."""
    one = out.dtype.type(1)
    for j in range(out.shape[0]):
        out[j] = dr[j] * v[j] * r[j] * (one - r[j])


@njit(**_JIT)
def _relu_sum3(x, a, b):
    """x = max(x + a + b, 0), elementwise, in place."""
    zero = x.dtype.type(0)
    for j in range(x.shape[0]):
        v = x[j] + a[j] + b[j]
        x[j] = v if v > zero else zero


# Copies as loops rather than slice assignments (``out[:] = a``, see numgru._math.copy_into).


@njit(**_JIT)
def _copy_rows(a, out):
    """out = a, elementwise (2-D, same shape)."""
    for i in range(out.shape[0]):
        copy_into(a[i], out[i])


@njit(**_JIT)
def _zero_rows(out):
    """out = 0 (2-D)."""
    zero = out.dtype.type(0)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = zero


@njit(inline="always", **_JIT)
def _backward_task(task, nchunks, B, dbias_all):
    """A backward chunk task's rows (``numgru._tasks.task_rows``) and its bias-gradient sums
    ``dbias_all[task]``, zeroed when the chunk is empty."""
    d, b0, b1 = _tasks.task_rows(task, nchunks, B)
    dbias = dbias_all[task]
    if b1 <= b0:
        _zero_rows(dbias)
    return d, b0, b1, dbias


@njit(**_JIT)
def _copy_into2(a, out1, out2):
    """out1 = out2 = a."""
    for j in range(a.shape[0]):
        v = a[j]
        out1[j] = v
        out2[j] = v


@njit(**_JIT)
def _bw_tanh(dh, do, h, out):
    """da = (dh + d_out) (1 - h^2), h = tanh(a) the step's new state."""
    one = out.dtype.type(1)
    for j in range(out.shape[0]):
        out[j] = (dh[j] + do[j]) * (one - h[j] * h[j])


@njit(**_JIT)
def _bw_relu(dh, do, h, out):
    """da = (dh + d_out) [h > 0], h = relu(a) the step's new state (relu'(0) = 0, as torch)."""
    zero = out.dtype.type(0)
    for j in range(out.shape[0]):
        out[j] = (dh[j] + do[j]) if h[j] > zero else zero


def gru_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, nchunks,
                      out, h_n, store, gates, hn_s, hprev_s):
    """Forward of one layer, all directions: input projection and recurrence.

    x        (B, T, I)     the layer's input
    w_ih     (D*3H, I)     input weights, direction d at rows d*3H
    b_ih     (D*3H,)       input biases
    whh      (D, 3H, H)    recurrent weights
    bhh      (D, 3H)       recurrent biases (n part 0 and unused when reset_after is False)
    h0       (D, B, H)     initial states
    lengths  (B,)          valid lengths (1..T), right padding
    nchunks  int           batch chunks per direction (one per thread)
    out      (B, T, D*H)   written: hidden states, direction d at columns d*H, 0 past the end
    h_n      (D, B, H)     written: state after each sequence's last valid step
    store    bool          save what backward needs (else the three below may be empty):
    gates    (D, T, B, 3H) r, z, n after their activations (time-major)
    hn_s     (D, T, B, H)  W_hn h + b_hn (reset_after=True only)
    hprev_s  (D, T, B, H)  the state each step started from

    The input projection ``x @ W_ih^T`` is one product per block of timesteps inside each
    thread's share (see ``_make_forward_chunk``), so it never makes a round trip through
    memory.
    """
    kernel = _gru_forward_after if reset_after else _gru_forward_cho
    kernel(_pool.ctl(), whh.shape[0] * nchunks, -1, x, w_ih, b_ih, whh, bhh, h0, lengths, out,
           h_n, store, gates, hn_s, hprev_s, nchunks)


def _make_forward_chunk(reset_after):
    """The forward chunk kernel of one gate form (``reset_after`` a constant of the
    closure: each form compiles only its own branches, and only when first used)."""

    @njit(**_JIT)
    def _forward_chunk(ctl, ntasks, task, x, w_ih, b_ih, whh, bhh, h0, lengths, out, h_n, store,
                       gates, hn_s, hprev_s, nchunks):
        """Task ``task``: all timesteps of direction d for batch rows b0..b1-1 (chunk ``task %
        nchunks`` of direction ``task // nchunks``), one thread's share.

        A separate function (a task of :func:`gru_layer_forward`'s launch): compiled as the
        body of a prange loop, the same loop nest came out markedly slower. The saved buffers
        are time-major, so one step of this chunk is one contiguous (nb, .) block: the
        recurrent product is written straight into the saved gate block and the activations
        overwrite it in place (no copies).

        Input projection by time blocks: the inputs of ``tb`` consecutive steps of this chunk
        are gathered time-major and multiplied by ``W_ih^T`` in one product of ``tb * nb`` rows
        (about ``_PROJ_ROWS``), whose result (``gib``) stays in cache until those steps consume
        it. A projection of all timesteps at once (B*T rows of 3H: 39 MB at the large benchmark
        shape) went to memory and came back, which cost the gate loop as much as its
        arithmetic. Biases: b_ih + b_hh are added together for r and z, b_in with the n gate.
        """
        if task < 0:                                 # the launch (see numgru._tasks)
            _tasks.launch(ctl, ntasks, task, (x, w_ih, b_ih, whh, bhh, h0, lengths, out, h_n,
                                              store, gates, hn_s, hprev_s, nchunks))
            return
        d, b0, b1 = _tasks.task_rows(task, nchunks, x.shape[0])
        if b1 <= b0:
            return
        H = whh.shape[2]
        T = x.shape[1]
        I = x.shape[2]
        H2 = 2 * H
        H3 = 3 * H
        nb = b1 - b0
        dt = x.dtype
        w = whh[d]                                   # (3H, H)
        w_rz = np.ascontiguousarray(w[:H2])          # (2H, H)  Cho form: r and z rows
        w_n = np.ascontiguousarray(w[H2:])           # (H, H)   Cho form: n rows
        goff = d * H3
        ooff = d * H
        b_rz = b_ih[goff:goff + H2] + bhh[d, :H2]    # input + recurrent biases of r and z
        b_in = b_ih[goff + H2:goff + H3]
        b_hn = bhh[d, H2:]
        # weights packed once for all T steps (numgru._gemm); products then write padded rows
        packed = nb >= PACK_MIN_ROWS
        mp = padded_rows(nb) if packed else nb       # rows of the state and recurrent products
        wi_p = pack_nt(w_ih[goff:goff + H3])       # W_ih of direction d, (3H, I)
        wh_p = pack_nt((w if reset_after else w_rz) if packed else w[:0])
        wn_p = pack_nt(w_n if packed and not reset_after else w_n[:0])
        tb = min(T, max(1, _PROJ_ROWS // nb))
        xblk = np.zeros((padded_rows(tb * nb), I), dtype=dt)               # inputs, time-major
        gblk = np.empty((xblk.shape[0], wi_p.shape[0] * wi_p.shape[2]), dtype=dt)  # x @ W_ih^T
        h = np.zeros((mp, H), dtype=dt)
        # recurrent products: packed ones write whole panels (widths rounded up), _mm exact widths
        gh = np.empty((mp, wh_p.shape[0] * wh_p.shape[2] if packed
                       else (H3 if reset_after else H2)),
                      dtype=dt)                      # W_hh h (Cho: W_h[rz] h)
        gh_n = np.empty((mp, wn_p.shape[0] * wn_p.shape[2] if packed else H), dtype=dt)  # Cho
        hn_scratch = np.empty((nb, H), dtype=dt)     # W_hn h + b_hn when not storing
        rh = np.zeros((mp, H), dtype=dt)             # r * h             (Cho)
        for i in range(nb):
            copy_into(h0[d, b0 + i], h[i])
        for s0 in range(0, T, tb):
            ns = min(tb, T - s0)
            for q in range(ns):
                s = s0 + q
                t = T - 1 - s if d == 1 else s
                for i in range(nb):
                    copy_into(x[b0 + i, t], xblk[q * nb + i])
            mm_packed_rows(xblk[:padded_rows(ns * nb)], wi_p, gblk, ns * nb)
            for q in range(ns):
                s = s0 + q
                t = T - 1 - s if d == 1 else s
                GI = gblk[q * nb:(q + 1) * nb]       # (nb, >= 3H) this step's input projections
                if store:
                    _copy_rows(h[:nb], hprev_s[d, t, b0:b1])
                # G: pre-activations in, gate activations out (in place), rows of >= 3H columns
                if reset_after:
                    if packed:
                        mm_packed_rows(h, wh_p, gh, nb)  # W_hh h
                    else:
                        mm_nt(h, w, gh)
                    HN = hn_s[d, t, b0:b1] if store else hn_scratch
                else:
                    if packed:
                        mm_packed_rows(h, wh_p, gh, nb)  # W_h[rz] h
                    else:
                        mm_nt(h, w_rz, gh)
                    for i in range(nb):
                        grz = gh[i, :H2]
                        _sigmoid_sum3(grz, GI[i, :H2], b_rz)                     # r, z
                        _mul2(grz[:H], h[i], rh[i])                               # r * h
                    if packed:
                        mm_packed_rows(rh, wn_p, gh_n, nb)  # W_hn (r * h)
                    else:
                        mm_nt(rh, w_n, gh_n)
                    HN = hn_scratch
                for i in range(nb):
                    b = b0 + i
                    hi = h[i]
                    o = out[b, t, ooff:ooff + H]
                    if t >= lengths[b]:
                        o[:] = 0
                        if store:
                            gates[d, t, b, :] = 0    # finite where the weight products read
                        continue
                    gib = GI[i]
                    if reset_after:
                        gr = gh[i, :H3]
                        _sigmoid_sum3(gr[:H2], gib[:H2], b_rz)                        # r, z
                        _n_gate_after(gr[H2:], gib[H2:H3], b_in, gr[:H], b_hn, HN[i])  # n
                        if store:
                            copy_into(gr, gates[d, t, b])
                        _h_update(gr[H2:], gr[H:H2], hi, o)
                    else:
                        ghn = gh_n[i, :H]
                        _tanh_sum3(ghn, gib[H2:H3], b_in)                             # n
                        if store:
                            copy_into(gh[i, :H2], gates[d, t, b, :H2])
                            copy_into(ghn, gates[d, t, b, H2:])
                        _h_update(ghn, gh[i, H:H2], hi, o)
        for i in range(nb):
            copy_into(h[i], h_n[d, b0 + i])

    return _forward_chunk


# the forward chunk kernel of each gate form, by reset_after, and their launchers
_FORWARD_CHUNK = {True: _make_forward_chunk(True), False: _make_forward_chunk(False)}
_gru_forward_after = _FORWARD_CHUNK[True]
_gru_forward_cho = _FORWARD_CHUNK[False]


def gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev_s, whh, lengths, reset_after, nchunks,
                       dgi, dgh, dh0, dbias):
    """Backward recurrence of one layer, all directions (adds nothing: every output is written).

    d_out    (B, T, D*H)   gradient arriving at the layer's outputs (ignored past each length)
    d_h_n    (D, B, H)     gradient arriving at the final states
    gates, hn_s, hprev_s   saved by gru_layer_forward(store=True)
    whh      (D, 3H, H)    recurrent weights
    dgi      (B, T, D*3H)  written: d loss / d (input-side pre-activations) — da_r, da_z, da_n
    dgh      (D, T, B, 3H) written (time-major): d loss / d (W_hh h + b_hh) — da_r, da_z, and for the n gate
                           r*da_n (reset_after) or da_n (Cho: its weight gradient uses r*h)
    dh0      (D, B, H)     written: gradient of the initial states
    dbias    (D*nchunks, 2, 3H)  written: per-chunk sums over rows and steps of dgi (input
                           bias gradient) and dgh (recurrent bias gradient); the caller adds
                           the chunks of each direction
    Positions past a sequence's end get zeros in dgi and dgh.
    """
    kernel = _gru_backward_after if reset_after else _gru_backward_cho
    _compile_ahead.wait(kernel)
    kernel(_pool.ctl(), whh.shape[0] * nchunks, -1, d_out, d_h_n, gates, hn_s, hprev_s, whh,
           lengths, dgi, dgh, dh0, dbias, nchunks)


def _make_backward_chunk(reset_after):
    """The backward chunk kernel of one gate form (as :func:`_make_forward_chunk`)."""

    @njit(**_JIT)
    def _backward_chunk(ctl, ntasks, task, d_out, d_h_n, gates, hn_s, hprev_s, whh, lengths, dgi,
                        dgh,
                        dh0, dbias_all, nchunks):
        """All timesteps (in reverse processing order) of direction d for batch rows b0..b1-1.

        Per step: dh' = carried gradient + d_out; then (reset_after)
            dn = dh' (1 - z)      da_n = dn (1 - n^2)     da_z = dh' (h - n) z (1 - z)
            da_r = da_n (W_hn h + b_hn) r (1 - r)         dgh_n = r da_n
            dh = dh' z + [da_r, da_z, dgh_n] @ W_hh
        and (Cho) d(rh) = da_n @ W_hn, da_r = d(rh) h r (1 - r), dh = dh' z + d(rh) r + [da_r, da_z] @ W_h[rz].
        One step's dgh rows are formed in place in the time-major dgh when the product reads
        exactly the chunk's rows, else in a padded scratch block (the packed product reads whole
        tiles of 8 rows) and then copied into dgh.
        """
        if task < 0:                                 # the launch (see numgru._tasks)
            _tasks.launch(ctl, ntasks, task, (d_out, d_h_n, gates, hn_s, hprev_s, whh, lengths,
                                              dgi, dgh, dh0, dbias_all, nchunks))
            return
        d, b0, b1, dbias = _backward_task(task, nchunks, d_out.shape[0], dbias_all)
        if b1 <= b0:
            return
        H = whh.shape[2]
        T = d_out.shape[1]
        H2 = 2 * H
        H3 = 3 * H
        dt = dgi.dtype
        nb = b1 - b0
        w = whh[d]                                   # (3H, H)
        wT = np.ascontiguousarray(w.T)               # (H, 3H)
        w_rz = np.ascontiguousarray(w[:H2])          # (2H, H)
        w_rzT = np.ascontiguousarray(w_rz.T)         # (H, 2H)
        w_n = np.ascontiguousarray(w[H2:])           # (H, H)
        w_nT = np.ascontiguousarray(w_n.T)           # (H, H)
        # products with the packed micro-kernel (numgru._gemm) from PACK_MIN_ROWS rows on: their
        # operands get rows padded to a multiple of 8 and outputs whole panels of columns
        packed = nb >= PACK_MIN_ROWS
        mp = padded_rows(nb) if packed else nb
        # dh = dgh @ W_hh (Cho: [da_r, da_z] @ W_h[rz]); Cho: d(rh) = da_n @ W_hn
        wh_p = pack_nt((wT if reset_after else w_rzT) if packed else wT[:0])
        wn_p = pack_nt(w_nT if packed and not reset_after else w_nT[:0])
        goff = d * H3
        ooff = d * H
        dh = np.empty((mp, wh_p.shape[0] * wh_p.shape[2] if packed else H), dtype=dt)  # carried
        dd = np.empty((nb, H), dtype=dt)             # direct part z * dh' (+ r * d(rh))
        drh = np.empty((mp, wn_p.shape[0] * wn_p.shape[2] if packed else H), dtype=dt)  # Cho
        dgp = np.zeros((mp, H3), dtype=dt)           # this step's dgh rows (copied to dgh after)
        # without padded rows (nb a multiple of 8, or the unpacked product) a step's dgh block
        # is the product's operand itself: no scratch block and no copy of it (the same values)
        direct = mp == nb
        dg_rz = np.zeros((mp, H2), dtype=dt)         # Cho: r and z parts
        dg_n = np.zeros((mp, H), dtype=dt)           # Cho: n part (da_n)
        gsum = np.empty(H, dtype=dt)                 # dh' of one row
        db_i = dbias[0]                              # (3H,) running sum of dgi rows
        db_h = dbias[1]                              # (3H,) running sum of dgh rows
        db_i[:] = 0
        db_h[:] = 0
        for i in range(nb):
            copy_into(d_h_n[d, b0 + i], dh[i, :H])
        for s in range(T):
            t = s if d == 1 else T - 1 - s
            DGp = dgh[d, t, b0:b1] if direct else dgp   # (mp, 3H) the product's operand
            DG = DGp[:nb]                            # (nb, 3H)
            G = gates[d, t, b0:b1]
            HP = hprev_s[d, t, b0:b1]
            for i in range(nb):
                b = b0 + i
                dgib = dgi[b, t, goff:goff + H3]
                dhi = dh[i, :H]
                ddi = dd[i]
                dgr = DG[i]
                if t >= lengths[b]:
                    dgib[:] = 0
                    dgr[:] = 0
                    dg_rz[i, :] = 0
                    dg_n[i, :] = 0
                    copy_into(dhi, ddi)
                    continue
                do = d_out[b, t, ooff:ooff + H]
                g = G[i]
                hp = HP[i]
                r = g[:H]
                z = g[H:H2]
                n = g[H2:]
                _sum2(dhi, do, gsum)                                     # dh' = carried + d_out
                _bw_n(gsum, z, n, dgib[H2:])                             # da_n
                _bw_z(gsum, hp, n, z, dgib[H:H2])                        # da_z
                _mul2(gsum, z, ddi)                                      # direct path z * dh'
                if reset_after:
                    _bw_r(dgib[H2:], hn_s[d, t, b], r, dgib[:H])         # da_r
                    copy_into(dgib[:H2], dgr[:H2])
                    _mul2(dgib[H2:], r, dgr[H2:])                        # r * da_n
                else:
                    copy_into(dgib[H:H2], dg_rz[i, H:])
                    copy_into(dgib[H2:], dg_n[i])
            if reset_after:
                if packed:
                    mm_packed_rows(DGp, wh_p, dh, nb)
                else:
                    mm_nt(DGp, wT, dh)
            else:
                # d(r*h) = da_n @ W_hn ; then r's gradient and the direct path through r*h
                if packed:
                    mm_packed_rows(dg_n, wn_p, drh, nb)
                else:
                    mm_nt(dg_n, w_nT, drh)
                for i in range(nb):
                    b = b0 + i
                    if t >= lengths[b]:
                        continue
                    dgib = dgi[b, t, goff:goff + H3]
                    _bw_r(drh[i, :H], HP[i], G[i, :H], dgib[:H])             # da_r
                    copy_into(dgib[:H], dg_rz[i, :H])
                    _fma_into(drh[i, :H], G[i, :H], dd[i])                   # + r * d(rh)
                if packed:
                    mm_packed_rows(dg_rz, wh_p, dh, nb)
                else:
                    mm_nt(dg_rz, w_rzT, dh)
                _copy_rows(dg_rz[:nb], DG[:, :H2])
                _copy_rows(dg_n[:nb], DG[:, H2:])
            if not direct:
                _copy_rows(DG, dgh[d, t, b0:b1])
            for i in range(nb):
                add_into(dd[i], dh[i, :H])
                add_into(DG[i], db_h)
                add_into(dgi[b0 + i, t, goff:goff + H3], db_i)
        for i in range(nb):
            copy_into(dh[i, :H], dh0[d, b0 + i])

    return _backward_chunk


# the backward chunk kernel of each gate form, by reset_after
_BACKWARD_CHUNK = {True: _make_backward_chunk(True), False: _make_backward_chunk(False)}
_gru_backward_after = _BACKWARD_CHUNK[True]
_gru_backward_cho = _BACKWARD_CHUNK[False]


# ---------------------------------------------------------------------------------------------
# The vanilla RNN cell (torch.nn.RNN): h' = act(W_ih x + b_ih + W_hh h + b_hh)
# ---------------------------------------------------------------------------------------------


def rnn_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, relu, nchunks, out, h_n, store,
                      states):
    """Forward of one vanilla RNN layer, all directions: input projection and recurrence.

    x        (B, T, I)       the layer's input
    w_ih     (D*H, I)        input weights, direction d at rows d*H
    b_ih     (D*H,)          input biases
    whh      (D, H, H)       recurrent weights
    bhh      (D, H)          recurrent biases
    h0       (D, B, H)       initial states
    lengths  (B,)            valid lengths (1..T), right padding
    relu     bool            act = relu if True, else tanh
    nchunks  int             batch chunks per direction (one per thread)
    out      (B, T, D*H)     written: hidden states, direction d at columns d*H, 0 past the end
    h_n      (D, B, H)       written: state after each sequence's last valid step
    store    bool            save what backward needs (else ``states`` may be empty):
    states   (D, T+1, B, H)  every state of the recurrence in time order, time-major: for
                             direction 0 step t reads slot t and writes slot t+1 (slot 0 = h0),
                             for direction 1 (run backwards) step t reads slot t+1 and writes
                             slot t (slot T = h0). A padded step copies its state unchanged.

    ``states`` is exactly what backward needs: the state a step wrote gives the activation's
    derivative (tanh: 1 - h'^2, relu: h' > 0), the state it read the weight gradient
    ``dW_hh = sum_t da_t^T h_{t-1}`` (one product over the T slots that are read).
    """
    _rnn_forward_chunk(_pool.ctl(), whh.shape[0] * nchunks, -1, x, w_ih, b_ih, whh, bhh, h0,
                        lengths, relu, out, h_n, store, states, nchunks)


@njit(**_JIT)
def _rnn_forward_chunk(ctl, ntasks, task, x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n,
                       store,
                       states, nchunks):
    """Task ``task``: all timesteps of direction d for batch rows b0..b1-1 (see
    ``_make_forward_chunk``: the
    same
    input projection by blocks of steps, and the recurrent product through ``_gemm``).

    The recurrent product of a step is written into ``gh``; the activation overwrites it in
    place (with the step's input projection and b_ih + b_hh), and the result is the new state.
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n,
                                          store, states, nchunks))
        return
    d, b0, b1 = _tasks.task_rows(task, nchunks, x.shape[0])
    if b1 <= b0:
        return
    H = whh.shape[2]
    T = x.shape[1]
    I = x.shape[2]
    nb = b1 - b0
    dt = x.dtype
    w = whh[d]                                   # (H, H)
    goff = d * H
    bias = b_ih[goff:goff + H] + bhh[d]          # input + recurrent biases
    packed = nb >= PACK_MIN_ROWS
    mp = padded_rows(nb) if packed else nb       # rows of the state and recurrent products
    wi_p = pack_nt(w_ih[goff:goff + H])          # W_ih of direction d, (H, I)
    wh_p = pack_nt(w if packed else w[:0])
    tb = min(T, max(1, _PROJ_ROWS // nb))
    xblk = np.zeros((padded_rows(tb * nb), I), dtype=dt)               # inputs, time-major
    gblk = np.empty((xblk.shape[0], wi_p.shape[0] * wi_p.shape[2]), dtype=dt)  # x @ W_ih^T
    h = np.zeros((mp, H), dtype=dt)
    gh = np.empty((mp, wh_p.shape[0] * wh_p.shape[2] if packed else H), dtype=dt)  # W_hh h
    for i in range(nb):
        copy_into(h0[d, b0 + i], h[i])
    if store:
        _copy_rows(h[:nb], states[d, T if d == 1 else 0, b0:b1])
    for s0 in range(0, T, tb):
        ns = min(tb, T - s0)
        for q in range(ns):
            s = s0 + q
            t = T - 1 - s if d == 1 else s
            for i in range(nb):
                copy_into(x[b0 + i, t], xblk[q * nb + i])
        mm_packed_rows(xblk[:padded_rows(ns * nb)], wi_p, gblk, ns * nb)
        for q in range(ns):
            s = s0 + q
            t = T - 1 - s if d == 1 else s
            GI = gblk[q * nb:(q + 1) * nb]       # (nb, >= H) this step's input projections
            if packed:
                mm_packed_rows(h, wh_p, gh, nb)  # W_hh h
            else:
                mm_nt(h, w, gh)
            for i in range(nb):
                b = b0 + i
                o = out[b, t, goff:goff + H]
                if t >= lengths[b]:
                    o[:] = 0                     # the state is carried unchanged
                    continue
                a = gh[i, :H]
                if relu:
                    _relu_sum3(a, GI[i, :H], bias)
                else:
                    _tanh_sum3(a, GI[i, :H], bias)
                _copy_into2(a, h[i], o)
            if store:
                _copy_rows(h[:nb], states[d, t if d == 1 else t + 1, b0:b1])
    for i in range(nb):
        copy_into(h[i], h_n[d, b0 + i])


def rnn_layer_backward(d_out, d_h_n, states, whh, lengths, relu, nchunks, dgi, dgh, dh0, dbias):
    """Backward recurrence of one vanilla RNN layer, all directions (every output is written).

    d_out    (B, T, D*H)     gradient arriving at the layer's outputs (ignored past each length)
    d_h_n    (D, B, H)       gradient arriving at the final states
    states   (D, T+1, B, H)  saved by rnn_layer_forward(store=True)
    whh      (D, H, H)       recurrent weights
    relu     bool            act = relu if True, else tanh
    dgi      (B, T, D*H)     written: d loss / d (pre-activation) ``da``, batch-major (for
                             ``dW_ih = dgi^T x`` and ``dx = dgi @ W_ih``)
    dgh      (D, T, B, H)    written: the same ``da``, time-major (for ``dW_hh``, whose rows
                             are the time-major ``states``)
    dh0      (D, B, H)       written: gradient of the initial states
    dbias    (D*nchunks, 2, H)  written: per-chunk sums of ``da`` over rows and steps, [0] for
                             ``b_ih`` and [1] for ``b_hh`` (equal: both enter ``a`` once); the
                             caller adds the chunks of each direction
    Positions past a sequence's end get zeros in dgi and dgh.
    """
    _compile_ahead.wait(_rnn_backward_chunk)
    _rnn_backward_chunk(_pool.ctl(), whh.shape[0] * nchunks, -1, d_out, d_h_n, states, whh,
                         lengths, relu, dgi, dgh, dh0, dbias, nchunks)


@njit(**_JIT)
def _rnn_backward_chunk(ctl, ntasks, task, d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0,
                        dbias_all, nchunks):
    """Task ``task``: all timesteps (in reverse processing order) of direction d for batch rows
    b0..b1-1.

    Per valid step, with h' the state the step wrote::

        da = (dh + d_out) act'(h')        dh <- da @ W_hh

    At a padded step da = 0 and the carried dh passes through unchanged (kept aside while the
    product overwrites the block).
    """
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0,
                                          dbias_all, nchunks))
        return
    d, b0, b1, dbias = _backward_task(task, nchunks, d_out.shape[0], dbias_all)
    if b1 <= b0:
        return
    H = whh.shape[2]
    T = d_out.shape[1]
    dt = dgi.dtype
    nb = b1 - b0
    wT = np.ascontiguousarray(whh[d].T)          # (H, H): dh = da @ W_hh = da @ (W_hh^T)^T
    packed = nb >= PACK_MIN_ROWS
    mp = padded_rows(nb) if packed else nb
    wh_p = pack_nt(wT if packed else wT[:0])
    goff = d * H
    dh = np.empty((mp, wh_p.shape[0] * wh_p.shape[2] if packed else H), dtype=dt)  # carried
    da = np.zeros((mp, H), dtype=dt)             # this step's pre-activation gradients
    keep = np.empty((nb, H), dtype=dt)           # carried dh of padded rows
    db = dbias[0]                                # (H,) running sum of da
    db[:] = 0
    for i in range(nb):
        copy_into(d_h_n[d, b0 + i], dh[i, :H])
    for s in range(T):
        t = s if d == 1 else T - 1 - s
        HN = states[d, t if d == 1 else t + 1]   # (B, H) the states step t wrote
        any_padded = False
        for i in range(nb):
            b = b0 + i
            if t >= lengths[b]:
                da[i, :] = 0
                dgi[b, t, goff:goff + H] = 0
                copy_into(dh[i, :H], keep[i])
                any_padded = True
                continue
            if relu:
                _bw_relu(dh[i, :H], d_out[b, t, goff:goff + H], HN[b], da[i])
            else:
                _bw_tanh(dh[i, :H], d_out[b, t, goff:goff + H], HN[b], da[i])
            copy_into(da[i], dgi[b, t, goff:goff + H])
            add_into(da[i], db)
        if packed:
            mm_packed_rows(da, wh_p, dh, nb)
        else:
            mm_nt(da, wT, dh)
        if any_padded:
            for i in range(nb):
                if t >= lengths[b0 + i]:
                    copy_into(keep[i], dh[i, :H])
        _copy_rows(da[:nb], dgh[d, t, b0:b1])
    copy_into(db, dbias[1])
    for i in range(nb):
        copy_into(dh[i, :H], dh0[d, b0 + i])


# ---------------------------------------------------------------------------------------------
# One step of one sequence (token-by-token generation, streaming one step at a time): the
# matrix-vector products split over the rows of the weights, so that both cores stream weights
# (a batch of one row is otherwise a single chunk on one thread, bound by one core's bandwidth)
# ---------------------------------------------------------------------------------------------

@njit(**_JIT)
def _step_products_task(ctl, ntasks, task, w_ih, xv, whh, hv, gi, gh):
    """Rows r0:r1 (block ``task``) of gi = W_ih x and gh = W_hh h for one sequence: w_ih (3H, I),
    xv (I,), whh (3H, H), hv (H,) -> gi, gh (3H,)."""
    if task < 0:                                 # the launch (see numgru._tasks)
        _tasks.launch(ctl, ntasks, task, (w_ih, xv, whh, hv, gi, gh))
        return
    r0, r1 = _tasks.task_block(task, ntasks, gi.shape[0])
    if r1 <= r0:
        return
    np.dot(w_ih[r0:r1], xv, gi[r0:r1])
    np.dot(whh[r0:r1], hv, gh[r0:r1])


@njit(**_JIT)
def _gru_step_after(gi, gh, b_ih, bhh, h, out, h_n):
    """The gates of one reset_after step of one sequence from its products (biases not yet
    added): gi, gh (3H,), b_ih, bhh (3H,), h (H,) the state -> out, h_n (H,) the new state."""
    H = h.shape[0]
    for j in range(H):
        r = sigmoid(gi[j] + b_ih[j] + gh[j] + bhh[j])
        z = sigmoid(gi[H + j] + b_ih[H + j] + gh[H + j] + bhh[H + j])
        n = tanh(gi[2 * H + j] + b_ih[2 * H + j] + r * (gh[2 * H + j] + bhh[2 * H + j]))
        hv = n + z * (h[j] - n)
        out[j] = hv
        h_n[j] = hv


def gru_single_step(x, w_ih, b_ih, whh, bhh, h0, out, h_n, ntasks):
    """One timestep of one sequence, one direction, reset_after: x (1, 1, I), w_ih (3H, I),
    whh (1, 3H, H), h0 (1, 1, H) -> out (1, 1, H), h_n (1, 1, H); the two products split into
    ``ntasks`` blocks of rows on the pool."""
    G = whh.shape[1]
    gi = np.empty(G, dtype=out.dtype)
    gh = np.empty(G, dtype=out.dtype)
    hv = h0[0, 0]
    _step_products_task(_pool.ctl(), ntasks, -1, w_ih, x[0, 0], whh[0], hv, gi, gh)
    _gru_step_after(gi, gh, b_ih, bhh[0], hv, out[0, 0], h_n[0, 0])


def hh_weight_grad(dgh_d, hprev_d, gates_d, reset_after, out, ntasks):
    """dW_hh of one direction: dgh_d (M, 3H), hprev_d (M, H), gates_d (M, 3H) -> out (3H, H).

    ``reset_after``: ``dgh^T h_prev``. Cho: the n rows multiply r * h, not h, so one product
    over [h | r*h] columns is formed and its two diagonal blocks kept.
    """
    if reset_after:
        gemm_tn(dgh_d, hprev_d, out, ntasks)
        return
    H = hprev_d.shape[1]
    rh = gates_d[:, :H] * hprev_d
    both = np.empty((3 * H, 2 * H), dtype=out.dtype)
    gemm_tn(dgh_d, np.concatenate([hprev_d, rh], axis=1), both, ntasks)
    out[: 2 * H] = both[: 2 * H, :H]
    out[2 * H:] = both[2 * H:, H:]


def mul(a, b, out):
    """out = a * b (dropout masks)."""
    np.multiply(a, b, out=out)
    return out


def add(a, b, out):
    """out = a + b (residual connections; ``out`` may be ``a`` or ``b``)."""
    np.add(a, b, out=out)
    return out


# ---------------------------------------------------------------------------------------------
# The CPU backend object (the contract is in numgru._contract)
# ---------------------------------------------------------------------------------------------


_AHEAD_ASKED = set()


def _backward_ahead(name, dtype, *saved, module=__name__):
    """At a training forward: have the backward chunk kernel ``name`` compiled for this dtype
    by its first call, by a helper process while this one compiles the forward if it is not in
    the on-disk cache (``numgru._compile_ahead``). Once per kernel and dtype: its argument types
    are predicted from the forward's, ``(ctl, ntasks, task, d_out, d_h_n, *saved, dgi, dgh,
    dh0, dbias, nchunks)``, gradients being C-contiguous arrays of the dtype (``saved``: arrays
    and Numba types of the arguments in between; ``module``: the kernel's module)."""
    key = (name, dtype.str)
    if key in _AHEAD_ASKED:
        return
    _AHEAD_ASKED.add(key)
    _compile_ahead.ahead(module, name, _backward_argtypes(dtype, *saved), _num_threads())


def _backward_argtypes(dtype, *saved):
    """The Numba argument types of a backward chunk kernel's launch (see _backward_ahead)."""
    nt = numba.from_dtype(dtype)
    a3, a4 = types.Array(nt, 3, "C"), types.Array(nt, 4, "C")
    mid = tuple(v if isinstance(v, types.Type) else numba.typeof(v) for v in saved)
    return ((numba.typeof(_pool.ctl()), types.int64, types.int64, a3, a3) + mid
            + (a3, a4, a3, a3, types.int64))


def compile_cache_dir():
    """The directory of the CPU kernels' on-disk compile cache, or None when caching is off.
    Raises ``numgru._numba_internals.InternalsChanged`` when Numba's cache is not as expected."""
    return _numba_internals.cache_path(_gru_forward_after)


def gru_kernels_cached(dtype_name):
    """Whether the on-disk cache holds the reset_after GRU forward and backward kernels for
    ``dtype_name`` ("float32", "float64"): then a first fit starts without compiling them.
    Raises like :func:`compile_cache_dir`."""
    return all(any(dtype_name in sig for sig in _numba_internals.cached_signatures(disp))
               for disp in (_gru_forward_after, _gru_backward_after))


def _num_threads():
    return numba.get_num_threads()


class CPUBackend(Backend):
    """The Numba CPU kernels on NumPy arrays; how rows are shared among threads is decided here.

    Recurrences: one chunk of batch rows per thread and direction, or a single chunk when a step
    has fewer than ``PARALLEL_MIN_WORK`` multiply-adds (``INFERENCE_MIN_WORK`` for a forward
    that stores nothing for a backward; waking a second thread costs more).
    Products over all timesteps: one block of at least ``_gemm.PRODUCT_MIN_ROWS`` rows per
    thread. "Per thread": at most ``numba.get_num_threads()`` of the calling thread
    (``_config.compute_threads`` caps it at the OpenMP and threadpoolctl limits); the tasks run
    on the task runtime in use (:mod:`numgru._threading`).
    """

    name = "cpu"

    def __reduce__(self):
        return (default_backend, ())

    # memory: NumPy arrays are native, uploads and downloads are no-ops
    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def upload(self, a):
        return a

    def to_host(self, a):
        return a

    def is_native(self, a):
        return False

    def as_native(self, a):
        return np.asarray(a)

    def is_contiguous(self, a):
        return a.flags.c_contiguous

    def has_nonfinite(self, a):
        return not np.isfinite(a).all()

    def mul(self, a, b, out):
        return mul(a, b, out)

    def add(self, a, b, out):
        return add(a, b, out)

    @staticmethod
    def _ntasks(M):
        return product_tasks(M, _num_threads())

    @staticmethod
    def _nchunks(B, H, gates=3, store=True):
        """Batch chunks per direction; ``gates``: blocks of H rows in W_hh (GRU 3, RNN 1);
        ``store``: a training forward or a backward (else inference: less work is enough)."""
        if B * gates * H * H < (PARALLEL_MIN_WORK if store else INFERENCE_MIN_WORK):
            return 1
        return max(1, min(_num_threads(), B))

    # A launch with a single task runs in the calling thread, not as a parallel region: on a
    # machine whose cores are busy with other work, waking a pool thread for nothing costs
    # milliseconds (measured here with other processes running: 16 ms for a batch-1 forward
    # that takes 0.4 ms alone).
    def gemm(self, A, W, bias, C):
        gemm(A, W, bias, C, self._ntasks(A.shape[0]))

    def gemm_tn(self, A, X, C):
        gemm_tn(A, X, C, self._ntasks(A.shape[0]))

    def gru_layer_forward(self, x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, out, h_n,
                          store, gates, hn_s, hprev):
        B = x.shape[0]
        if store:
            _backward_ahead("_gru_backward_after" if reset_after else "_gru_backward_cho",
                            x.dtype, gates, hn_s, hprev, whh, lengths)
        if B == 1 and x.shape[1] == 1 and reset_after and not store and whh.shape[0] == 1:
            # one step of one sequence (generation): split the products by rows instead
            G = whh.shape[1]
            ntasks = max(1, min(_num_threads(), G * (x.shape[2] + whh.shape[2])
                                // SPLIT_STEP_MIN_WORK))
            if ntasks > 1:
                gru_single_step(x, w_ih, b_ih, whh, bhh, h0, out, h_n, ntasks)
                return
        gru_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after,
                          self._nchunks(B, whh.shape[2], store=store), out, h_n, store, gates,
                          hn_s, hprev)

    def gru_layer_backward(self, d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after,
                           dgi, dgh, dh0):
        D, B, H = d_h_n.shape
        nchunks = self._nchunks(B, H)
        dbias = np.empty((D * nchunks, 2, 3 * H), dtype=dgi.dtype)
        gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after,
                           nchunks, dgi, dgh, dh0, dbias)
        return dbias.reshape(D, nchunks, 2, 3 * H).sum(axis=1)

    def gru_hh_weight_grad(self, dgh_d, hprev_d, gates_d, reset_after, out):
        hh_weight_grad(dgh_d, hprev_d, gates_d, reset_after, out, self._ntasks(dgh_d.shape[0]))

    def rnn_layer_forward(self, x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n, store,
                          states):
        B = x.shape[0]
        if store:
            _backward_ahead("_rnn_backward_chunk", x.dtype, states, whh, lengths, types.boolean)
        rnn_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, relu,
                          self._nchunks(B, whh.shape[2], 1, store=store), out, h_n, store,
                          states)

    def rnn_layer_backward(self, d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0):
        D, B, H = d_h_n.shape
        nchunks = self._nchunks(B, H, 1)
        dbias = np.empty((D * nchunks, 2, H), dtype=dgi.dtype)
        rnn_layer_backward(d_out, d_h_n, states, whh, lengths, relu, nchunks, dgi, dgh, dh0,
                           dbias)
        return dbias.reshape(D, nchunks, 2, H).sum(axis=1)

    # general layers: layer normalisation and recurrent dropout (numgru._cpu_norm)
    def ln_rows_forward(self, v, gain, beta, bias, layer_norm, xhat, rstd, y):
        _cpu_norm.ln_rows_forward(v, gain, beta, bias, layer_norm, xhat, rstd, y)

    def ln_rows_backward(self, dy, xhat, rstd, gain, dv):
        dgain = np.empty(gain.shape, dtype=dy.dtype)
        _cpu_norm.ln_rows_backward(dy, xhat, rstd, gain, dv, dgain)
        return dgain

    def norm_layer_forward(self, gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind, layer_norm,
                           out, h_n, store, gates, ahn, xh, rstd, hprev, hm):
        D, B, H = h0.shape
        if store:
            _backward_ahead("norm_backward_chunk", gi.dtype, gates, ahn, xh, rstd, hprev, whh,
                            ln_g, masks, lengths, types.int64, types.boolean,
                            module=_cpu_norm.__name__)
        _cpu_norm.norm_layer_forward(gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind,
                                     layer_norm, out, h_n, store, gates, ahn, xh, rstd, hprev,
                                     hm, self._nchunks(B, H, whh.shape[1] // H))

    def norm_layer_backward(self, d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g, masks,
                            lengths, kind, layer_norm, dgi, dgh, dh0):
        D, B, H = d_h_n.shape
        return _cpu_norm.norm_layer_backward(d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh,
                                             ln_g, masks, lengths, kind, layer_norm, dgi, dgh,
                                             dh0, self._nchunks(B, H, whh.shape[1] // H))

    # language-model layers (numgru._cpu_lm)
    def embedding_forward(self, ids, weight, out):
        M = ids.size
        E = weight.shape[1]
        ids_f, out_f = ids.reshape(M), out.reshape(M, E)
        embedding_forward(ids_f, weight, out_f, _cpu_lm.lm_tasks(M, M * E, _num_threads()))

    def embedding_backward(self, ids, d_out, d_weight):
        M = ids.size
        V, E = d_weight.shape
        ids_f, d_f = ids.reshape(M), d_out.reshape(M, E)
        embedding_backward(ids_f, d_f, d_weight,
                           _cpu_lm.lm_tasks(E // _cpu_lm.EMBEDDING_MIN_COLUMNS, (V + M) * E,
                                            _num_threads()))

    @staticmethod
    def _softmax_block(V, dtype):
        """Rows per block of logits (``_cpu_lm.softmax_block_rows``)."""
        return _cpu_lm.softmax_block_rows(V, dtype)

    def softmax_xent(self, y, w, b, targets, weights, dy, dw, db):
        return _cpu_lm.softmax_xent(y, w, b, targets, weights, dy, dw, db, _num_threads())

    def softmax_logprob(self, y, w, b, targets, out):
        _cpu_lm.softmax_logprob(y, w, b, targets, out, _num_threads())

    def log_softmax(self, y, w, b, out):
        _cpu_lm.log_softmax(y, w, b, out, _num_threads())

backend = CPUBackend()


def default_backend():
    """The CPU backend of this process (what a pickled CPU backend unpickles as)."""
    return backend
