"""Losses and output activations, each with the gradient the estimators backpropagate.

Every loss takes predictions of shape (n, k), targets of the same shape and per-row weights
(n,) that sum to the effective number of rows, and returns ``(loss, d_loss / d_logits)``.
"""

import numpy as np


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
    """Mean categorical cross-entropy of softmax(logits) against one-hot targets."""
    p = softmax(logits.astype(np.float64, copy=True))
    eps = np.finfo(np.float64).tiny
    wsum = w.sum()
    loss = float(-np.sum(w[:, None] * y_onehot * np.log(np.maximum(p, eps))) / wsum)
    return loss, ((w[:, None] * (p - y_onehot)) / wsum).astype(logits.dtype)
