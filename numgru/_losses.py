"""Losses and output activations, each with the gradient the estimators backpropagate.

Every loss takes predictions of shape (n, k), targets of the same shape and per-row weights
(n,) that sum to the effective number of rows, and returns ``(loss, d_loss / d_logits)``.
"""

import numpy as np
from numba import njit

from ._config import CACHE


def softmax(z):
    """Row-wise softmax, stable for large logits."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def squared_error(logits, y, w):
    """Half mean squared error (MLPRegressor's loss) and its gradient.

    loss = sum_i w_i * ||logits_i - y_i||^2 / (2 * sum_i w_i)
    """
    diff = logits - y
    wsum = w.sum()
    loss = float(np.sum(w[:, None] * diff * diff) / (2.0 * wsum))
    return loss, (w[:, None] * diff) / wsum


def softmax_cross_entropy(logits, y_onehot, w):
    """Mean categorical cross-entropy of softmax(logits) against one-hot targets.

    loss = -sum_i w_i * sum_j y_ij * log(max(p_ij, tiny)) / sum_i w_i, p = softmax(logits) in
    float64; the gradient ``w_i * (p_ij - y_ij) / sum_i w_i`` comes back in the logits' dtype.
    One Numba pass (:func:`_softmax_cross_entropy`): as some fifteen NumPy calls it took 20 us of
    a 300 us training step at the default classifier's batches of 4 (Zen 4, 2026-12-03), here
    2 us. The same operations per element; the sums over rows run in order.
    """
    loss, d = _softmax_cross_entropy(np.ascontiguousarray(logits),
                                     np.ascontiguousarray(y_onehot, dtype=np.float64),
                                     np.ascontiguousarray(w, dtype=np.float64))
    return float(loss), d


@njit(error_model="numpy", cache=CACHE, nogil=True)
def _softmax_cross_entropy(logits, y, w):
    n, k = logits.shape
    wsum = 0.0
    for i in range(n):
        wsum += w[i]
    tiny = np.finfo(np.float64).tiny
    p = np.empty(k)
    d = np.empty(logits.shape, logits.dtype)
    loss = 0.0
    for i in range(n):
        m = -np.inf
        for j in range(k):
            m = max(m, np.float64(logits[i, j]))
        s = 0.0
        for j in range(k):
            e = np.exp(np.float64(logits[i, j]) - m)
            p[j] = e
            s += e
        for j in range(k):
            pj = p[j] / s
            loss += w[i] * y[i, j] * np.log(max(pj, tiny))
            d[i, j] = (w[i] * (pj - y[i, j])) / wsum
    return -loss / wsum, d
