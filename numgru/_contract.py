"""The backend contract: one object per device that owns memory and the layer kernels.

The engine (:mod:`numgru._stack`, :mod:`numgru._cells`) never asks which device it runs on: it
calls the methods below on a backend object, and both backends honour the same contract with
the same array layouts. ``numgru._cpu.backend`` runs Numba CPU kernels on NumPy arrays;
``numgru._cuda.backend()`` runs their ``@cuda.jit`` twins on device arrays;
:func:`numgru._backend.get_backend` picks one for a ``device`` argument.

Shape legend: B batch, T time, I input size, H hidden size, D directions (1 or 2).
"native" means an array of the backend's own kind: a NumPy array on the CPU, a Numba device
array on CUDA. Every array handed to a kernel method is native and C-contiguous.

Memory
    ``empty(shape, dtype)``, ``zeros(shape, dtype)``: fresh native arrays.
    ``upload(a)``: a host (NumPy, C-contiguous) array as a native array (the CPU returns ``a``).
    ``to_host(a)``: a native array as NumPy (the CPU returns ``a``).
    ``is_native(a)``: True when a *caller* handed in an array that already lives on this device
    (CUDA: anything with ``__cuda_array_interface__``); always False on the CPU, whose input is
    validated and converted on the host like any array-like.
    ``as_native(a)``: a view of such an array without a copy.
    ``is_contiguous(a)``, ``has_nonfinite(a)``: checks the engine's validators need on the
    device (no copy to the host).

Elementwise
    ``mul(a, b, out) -> out``: ``out = a * b`` (dropout masks).
    ``add(a, b, out) -> out``: ``out = a + b`` (residual connections); same shapes, and ``out``
    may be ``a`` or ``b`` (in place).

Products over all timesteps (the large ones; the recurrences' own products live in the layer
kernels)
    ``gemm(A, W, bias, C)``: ``C = A @ W + bias``; A (M, K), W (K, N), bias (N,) or (0,) for none.
    ``gemm_tn(A, X, C)``: ``C = A^T @ X``; A (M, N1), X (M, N2), C (N1, N2) (weight gradients).

GRU cell (one layer, all directions; gate order r, z, n; documented in full on the CPU kernels)
    ``gru_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, reset_after, out, h_n, store,
    gates, hn_s, hprev)``: x (B, T, I), w_ih (D*3H, I), b_ih (D*3H,), whh (D, 3H, H),
    bhh (D, 3H), h0 (D, B, H), lengths (B,) int64; writes out (B, T, D*H), h_n (D, B, H) and,
    when ``store``, gates (D, T, B, 3H), hn_s (D, T, B, H) (reset_after only), hprev (D, T, B, H).
    ``gru_layer_backward(d_out, d_h_n, gates, hn_s, hprev, whh, lengths, reset_after, dgi, dgh,
    dh0) -> dbias``: writes dgi (B, T, D*3H), dgh (D, T, B, 3H), dh0 (D, B, H) and returns the
    bias gradients already reduced over rows and steps, a NumPy array (D, 2, 3H): [d, 0] of
    ``b_ih``, [d, 1] of ``b_hh`` (n part unused with reset_after=False).
    ``gru_hh_weight_grad(dgh_d, hprev_d, gates_d, reset_after, out)``: dW_hh of one direction,
    dgh_d (M, 3H), hprev_d (M, H), gates_d (M, 3H) -> out (3H, H) native.

Vanilla RNN cell (``torch.nn.RNN``: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act tanh or
relu; documented in full on the CPU kernels)
    ``rnn_layer_forward(x, w_ih, b_ih, whh, bhh, h0, lengths, relu, out, h_n, store, states)``:
    x (B, T, I), w_ih (D*H, I), b_ih (D*H,), whh (D, H, H), bhh (D, H), h0 (D, B, H),
    lengths (B,) int64, relu bool (False: tanh); writes out (B, T, D*H), h_n (D, B, H) and,
    when ``store``, states (D, T+1, B, H): every state in time order (direction 0: step t
    reads slot t and writes slot t+1; direction 1: reads slot t+1 and writes slot t).
    ``rnn_layer_backward(d_out, d_h_n, states, whh, lengths, relu, dgi, dgh, dh0) -> dbias``:
    writes dgi (B, T, D*H) and dgh (D, T, B, H) (the same pre-activation gradients, batch- and
    time-major), dh0 (D, B, H), and returns the bias gradients already reduced over rows and
    steps, a NumPy array (D, 2, H): [d, 0] of ``b_ih``, [d, 1] of ``b_hh`` (equal).

General recurrent layers: layer normalisation and recurrent dropout (GRU reset_after form and
vanilla RNN; N gate blocks (GRU 3, RNN 1), G = N*H, M = B*T; equations and arrays documented in
full on the CPU kernels in ``numgru._cpu_norm``; ``kind`` one of ``numgru._cell_kinds``:
KIND_GRU, KIND_RNN_TANH, KIND_RNN_RELU)
    ``ln_rows_forward(v, gain, beta, bias, layer_norm, xhat, rstd, y)``: v (M, D, G) = W_ih x,
    gain/beta/bias (D, G); writes y (M, D, G) = LN(v; gain, beta) + bias (``v + bias`` without
    layer_norm; y may be v) and, with layer_norm, xhat (M, D, G), rstd (M, D).
    ``ln_rows_backward(dy, xhat, rstd, gain, dv) -> dgain``: writes dv (M, D, G) (may be dy);
    returns sum over rows of dy * xhat, a NumPy array (D, G).
    ``norm_layer_forward(gi, whh, bhh, ln_g, ln_b, masks, h0, lengths, kind, layer_norm, out,
    h_n, store, gates, ahn, xh, rstd, hprev, hm)``: gi (B, T, D*G) = a_i, whh (D, G, H),
    bhh/ln_g/ln_b (D, G), masks (D, N, B, H) or (D, 0, 0, 0) for none, h0 (D, B, H); writes out
    (B, T, D*H), h_n (D, B, H) and, when ``store``, gates (D, T, B, G), ahn (D, T, B, H) (GRU),
    xh (D, T, B, G) and rstd (D, T, B) (layer_norm), hprev (D, T, B, H), hm (D, T, B, G)
    (masked states, with masks).
    ``norm_layer_backward(d_out, d_h_n, gates, ahn, xh, rstd, hprev, whh, ln_g, masks, lengths,
    kind, layer_norm, dgi, dgh, dh0) -> sums``: writes dgi (B, T, D*G) (gradient of a_i),
    dgh (D, T, B, G) (of the raw recurrent products), dh0 (D, B, H); returns a NumPy array
    (D, 3, G): sums over rows and steps of dgi, of d a_h, and of d a_h * xh.

Language-model layers (V vocabulary size, E embedding width, M rows = flattened (b, t)
positions, K features)
    ``embedding_forward(ids, weight, out)``: ids (B, T) int64 native, weight (V, E),
    out (B, T, E): ``out[b, t] = weight[ids[b, t]]`` (ids are validated by the caller:
    0 <= id < V).
    ``embedding_backward(ids, d_out, d_weight)``: d_weight (V, E) overwritten with
    ``d_weight[v]`` = the sum of ``d_out[b, t]`` over the (b, t) with ``ids[b, t] == v``, added
    in row-major (b, t) order: deterministic, bit-identical whatever the thread count; rows
    never used are 0.
    ``softmax_xent(y, w, b, targets, weights, dy, dw, db) -> float``: y (M, K), w (V, K),
    b (V,), targets (M,) int64, weights (M,) of the dtype (0 for masked rows);
    ``loss = sum_m weights[m] * (logsumexp_v(l[m, v]) - l[m, targets[m]])`` with
    ``l = y @ w.T + b``; writes dy (M, K), dw (V, K), db (V,) (overwritten) = the gradients of
    that loss and returns the loss as a Python float. Never materialises all (M, V) logits at
    once: works on blocks of rows whose (rows, V) logits fit ``_config.SOFTMAX_BLOCK_BYTES``
    (environment ``NUMGRU_SOFTMAX_BLOCK_BYTES``, default 32 MiB; at least 1 row per block). Per
    block: logits = y_blk @ w.T + b; row-wise max, logsumexp and loss; in place the gradient
    (softmax - onehot) * weight; then dy_blk = g @ w, dw += g.T @ y_blk, db += column sums of
    g. Rows of weight 0 contribute nothing (the CPU leaves them out of every product; CUDA
    zeroes their gradient rows, so their y must be finite there).
    ``softmax_logprob(y, w, b, targets, out)``: out (M,) =
    ``log softmax(y[m] @ w.T + b)[targets[m]]``, blocked the same way (scoring a long text: M
    can be 10^5 rows).
    ``log_softmax(y, w, b, out)``: out (M, V) = the full log-probabilities (generation, M
    small).
    Numerics: the logsumexp subtracts the row max; its sum of exps is accumulated in float64
    for both dtypes. float32 and float64.

How the work is shared out among threads (CPU) or blocks (CUDA) is each backend's own business.
"""



class Backend:
    """Base class of the backends: the contract is the module docstring above.

    Subclasses implement every method. A backend pickles as its device name: unpickled, it is
    that device's default backend in the process that unpickles it; each subclass's
    ``__reduce__`` names the function of its own module that returns it.
    """

    name = None

    def __reduce__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __reduce__")

    def __repr__(self):
        return f"<numgru backend {self.name!r}>"
