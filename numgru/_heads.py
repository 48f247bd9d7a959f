"""The sequence estimators' heads: what the linear head reads from the top recurrent layer
(pooling), and the head itself, forward and backward.

Shape legend: B batch, T time (the batch's longest), D directions (1 or 2), H the top layer's
hidden size, F = D*H its output width, K outputs of the head, N rows the head sees (B
sequences, or the valid steps of all of them with ``output="each_step"``).

The features (N, F) are, with ``output="each_step"``, the top layer's output at every valid
step; with ``output="last"``, one row per sequence by ``pooling``: "last" (the output at the
end of each sequence, :func:`last_step_outputs`, or the final state ``h_n`` where that is the
same without a skip), "mean" (the mean output over the valid steps) or "attention"
(:mod:`numgru._attention`). Forward keeps what backward needs (``saved``); backward turns
d loss / d features into d loss / d outputs (and / d final state for "last" read from ``h_n``)
for the stack's backward.
"""

import numpy as np

from . import _attention
from ._data import valid_mask


def last_step_outputs(h, lengths, D):
    """(B, D*H) outputs at the end of each sequence: the forward half at step length-1, the
    reverse half (which ends there) at step 0."""
    B = h.shape[0]
    H = h.shape[2] // D
    feats = np.ascontiguousarray(h[np.arange(B), np.asarray(lengths) - 1])
    if D == 2:
        feats[:, H:] = h[:, 0, H:]
    return feats


def last_step_outputs_backward(d_feats, lengths, shape, D):
    """The gradient of :func:`last_step_outputs` as a (B, T, D*H) d_out."""
    B = shape[0]
    H = shape[2] // D
    d_out = np.zeros(shape, dtype=d_feats.dtype)
    d_out[np.arange(B), np.asarray(lengths) - 1, :H] = d_feats[:, :H]
    if D == 2:
        d_out[:, 0, H:] += d_feats[:, H:]
    return d_out


class Pooling:
    """How the head's features come from the top layer: ``output``, ``pooling``, ``D`` and
    ``last_from_out`` (pooling="last" reads the outputs, not ``h_n``: the top layer has a
    skip, so its output at the end is ``h_n`` plus the skip).

    ``attention`` is ``(W (F, F), b (F,), v (F,))`` for pooling="attention", else None.
    """

    def __init__(self, output, pooling, D, last_from_out, attention=None):
        self.output = output
        self.pooling = pooling
        self.D = D
        self.last_from_out = last_from_out
        self.attention = attention

    @property
    def reads_final_state(self):
        """True when :meth:`forward` needs the top layer's final state (pooling="last" without
        a skip on the top layer: ``h_n``, bit-identical to the last output)."""
        return self.output == "last" and self.pooling == "last" and not self.last_from_out

    def forward(self, h, lengths, final_state=None):
        """``(features (N, F), saved)`` from the top layer's outputs ``h`` (B, T, F) (host)
        and, when :attr:`reads_final_state`, its final state ``final_state`` (D, B, H) (host).

        ``saved`` is what :meth:`backward` needs: ``h``, or with attention pooling the saved
        state of :func:`numgru._attention.attention_forward` (its ``[0]`` is ``h``).
        """
        B = h.shape[0]
        if self.output == "each_step":
            feats = h[valid_mask(lengths, h.shape[1])]
        elif self.pooling == "attention":
            W, b, v = self.attention
            feats, _, saved = _attention.attention_forward(h, lengths, W, b, v)
            return feats, saved
        elif self.pooling == "last":
            if self.last_from_out:
                feats = last_step_outputs(h, lengths, self.D)
            else:
                feats = np.ascontiguousarray(final_state.transpose(1, 0, 2).reshape(B, -1))
        else:
            feats = h.sum(axis=1) / lengths[:, None].astype(h.dtype)
        return feats, h

    def backward(self, d_feats, saved, lengths):
        """``(d_out (B, T, F), d_final_state (D, B, H) or None, attention grads)``: the
        gradients with respect to the top layer's outputs and, when :attr:`reads_final_state`,
        its final state, given d loss / d features; attention grads are ``[dW, db, dv]`` with
        attention pooling, else ``[]``."""
        g_att = []
        top = saved
        if self.output == "last" and self.pooling == "attention":
            W, _, v = self.attention
            top = saved[0]
            with np.errstate(over="ignore", invalid="ignore"):
                d_top, dW, db, dv = _attention.attention_backward(saved, d_feats, W, v)
            g_att = [dW, db, dv]
        B, T = top.shape[0], top.shape[1]
        d_final = None
        if self.output == "each_step":
            d_out = np.zeros_like(top)
            d_out[valid_mask(lengths, T)] = d_feats
        elif self.pooling == "attention":
            d_out = d_top
        elif self.pooling == "last" and self.last_from_out:
            d_out = last_step_outputs_backward(d_feats, lengths, top.shape, self.D)
        elif self.pooling == "last":
            d_out = np.zeros_like(top)
            d_final = np.ascontiguousarray(d_feats.reshape(B, self.D, -1).transpose(1, 0, 2))
        else:
            d_out = np.repeat((d_feats / lengths[:, None].astype(top.dtype))[:, None, :], T,
                              axis=1)
        return d_out, d_final, g_att


def linear_head(feats, coef, intercept):
    """The head's outputs (logits) (N, K) of features (N, F): ``feats @ coef.T + intercept``."""
    return feats @ coef.T + intercept


def linear_head_backward(feats, dlogits, coef):
    """``(d_feats (N, F), [d coef (K, F), d intercept (K,)])`` given d loss / d logits (N, K).

    Raises ``FloatingPointError`` when d_feats or d coef is not finite (the step is then
    refused, as for a non-finite loss).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        d_feats = dlogits @ coef
        g_head = [dlogits.T @ feats, dlogits.sum(axis=0)]
    if not (np.isfinite(d_feats).all() and np.isfinite(g_head[0]).all()):
        raise FloatingPointError
    return d_feats, g_head
