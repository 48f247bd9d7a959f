"""Attention pooling of the estimators (``pooling="attention"``): a forward/backward pair on the
host, plus the running form that streaming uses.

Shape legend: B batch, T time, F features per step of the top layer (D*H), A attention size.

    u_t = tanh(W h_t + b)          W (A, F), b (A,)
    s_t = v . u_t                  v (A,)
    alpha = softmax_t(s) over the valid steps t < length (padding steps get alpha = 0)
    features = sum_t alpha_t h_t   (B, F)

The estimators take A = F (the top layer's output width).
"""

import numpy as np


def init_attention(rng, F, A, dtype):
    """``(W, b, v)``: W and v Glorot-uniform from ``rng`` (a RandomState or Generator), b 0."""
    bound_w = np.sqrt(6.0 / (F + A))
    W = rng.uniform(-bound_w, bound_w, (A, F)).astype(dtype)
    bound_v = np.sqrt(6.0 / (A + 1))
    v = rng.uniform(-bound_v, bound_v, A).astype(dtype)
    return W, np.zeros(A, dtype=dtype), v


def _scores(h, W, b, v):
    """u (B, T, A) and s (B, T) of all steps (padding included)."""
    B, T, F = h.shape
    u = np.tanh(h.reshape(B * T, F) @ W.T + b).reshape(B, T, -1)
    return u, u @ v


def attention_forward(h, lengths, W, b, v):
    """Pool the top layer's outputs.

    h        (B, T, F) host, 0 past each length
    lengths  (B,) int
    Returns ``(features (B, F), alpha (B, T), saved)``; ``saved`` is what backward needs.
    """
    B, T, _ = h.shape
    u, s = _scores(h, W, b, v)
    valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    s = np.where(valid, s, -np.inf)
    e = np.exp(s - s.max(axis=1, keepdims=True))          # exp(-inf) = 0 at padding
    alpha = (e / e.sum(axis=1, keepdims=True)).astype(h.dtype)
    feats = np.einsum("bt,btf->bf", alpha, h)
    return feats, alpha, (h, u, alpha)


def attention_backward(saved, d_feats, W, v):
    """Gradients of :func:`attention_forward` given d loss / d features (B, F).

    Returns ``(d_h (B, T, F), dW (A, F), db (A,), dv (A,))``; d_h is 0 at padding steps.
    """
    h, u, alpha = saved
    B, T, F = h.shape
    d_h = alpha[:, :, None] * d_feats[:, None, :]                      # through sum_t alpha h
    d_alpha = np.einsum("btf,bf->bt", h, d_feats)
    d_s = alpha * (d_alpha - (alpha * d_alpha).sum(axis=1, keepdims=True))   # softmax
    dv = np.einsum("bt,bta->a", d_s, u)
    d_pre = (d_s[:, :, None] * v) * (1.0 - u * u)                      # (B, T, A), 0 at padding
    d_pre2 = d_pre.reshape(B * T, -1)
    dW = d_pre2.T @ h.reshape(B * T, F)
    db = d_pre2.sum(axis=0)
    d_h += (d_pre2 @ W).reshape(B, T, F)
    return d_h, dW, db, dv


class RunningAttention:
    """Attention pooling over all steps fed so far, one chunk at a time (streaming).

    Keeps per stream the running maximum score m and the max-shifted sums
    ``Z = sum_t exp(s_t - m)`` and ``N = sum_t exp(s_t - m) h_t`` (float64), so that
    ``N / Z`` equals :func:`attention_forward`'s features over the whole history.
    """

    def __init__(self, n_streams, F):
        self.m = np.full(n_streams, -np.inf)
        self.Z = np.zeros(n_streams)
        self.N = np.zeros((n_streams, F))

    def update(self, h, W, b, v):
        """Add the steps of ``h`` (S, t, F) and return the features (S, F) in h's dtype."""
        _, s = _scores(h, W, b, v)
        s = s.astype(np.float64)
        m_new = np.maximum(self.m, s.max(axis=1))
        scale = np.exp(self.m - m_new)                     # 0 on the first chunk
        e = np.exp(s - m_new[:, None])
        self.Z = self.Z * scale + e.sum(axis=1)
        self.N = self.N * scale[:, None] + np.einsum("st,stf->sf", e, h.astype(np.float64))
        self.m = m_new
        return (self.N / self.Z[:, None]).astype(h.dtype)
