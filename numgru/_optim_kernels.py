"""One training step's arithmetic after the gradients, fused: L2, the norm, clipping, the update.

The NumPy path of :func:`numgru._training._step` (``l2_penalty``, ``clip_grad_norm``, an
optimizer's ``update_params`` and the finiteness checks around them) makes about 11 passes of
NumPy calls over every parameter array per step: Adam alone is 11 ufunc calls per array. At the
small batches a default estimator fit takes (4-32 sequences), that was 0.25-0.3 ms of a 0.6 ms
step (ItalyPowerDemand, batches of 4; AMD EPYC Zen 4, 2026-12-03), more than the GRU kernels.
Here each array takes two passes:

1. :func:`grad_stats`: the L2 gradient ``g += scale * p`` added in place (weights only), and the
   sums of ``p**2`` (the L2 value) and ``g**2`` (the global norm for clipping; a non-finite sum
   also says that a gradient is NaN or infinite), accumulated in float64;
2. the optimizer's update (:func:`adam`, :func:`rmsprop`, :func:`sgd_momentum`, :func:`sgd`)
   with the clipping factor applied to each gradient element as it is read, which returns a
   flag that is True when every updated parameter is finite (``abs(p) <= big``, the
   dtype's largest value: an integer reduction, which vectorises without reordering sums).

The updates are NumPy's arithmetic step for step: the same operations in the same order and the
array's dtype (a scalar such as ``1 - beta_1`` rounded to float32 first, as NumPy does with a
Python float), no fused multiply-add (no ``contract`` flag; the update kernels have no fast-math flag at all), so an update
is bit for bit the NumPy optimizer's given the same clipped gradients (``tests/test_optim_fused.py``).
The sums differ from the NumPy path's float32 ``vdot`` in rounding only: they are float64.

Memory-bound, so they run on the calling thread and launch nothing on the pool: the in-place SGD
update of :mod:`numgru._math` ran as fast on one thread as on two at the language model's
5M-element arrays. At its 25M weights the fit's check, clip and update went from about 11 ms
(NumPy) to 5 ms per window here.
"""

import numpy as np
from numba import njit

from ._config import CACHE

_JIT = dict(error_model="numpy", cache=CACHE, nogil=True)

# The sums of squares may be reordered (LLVM's ``reassoc``: vector partial sums; without it a
# float sum is one serial chain of adds, ~4 cycles an element). Nothing else in grad_stats can
# be reassociated, and no ``contract``: ``g + scale * p`` is NumPy's two roundings.
_JIT_SUMS = dict(_JIT, fastmath={"reassoc"})


@njit(**_JIT_SUMS)
def grad_stats(p, g, is_weight, scale):
    """``g += scale * p`` when ``is_weight``; returns ``(sum p**2 if is_weight else 0, sum g**2)``
    (g after the L2 term) in float64. p, g: flat arrays of one dtype; scale of that dtype."""
    sp = 0.0
    sg = 0.0
    if is_weight:
        for i in range(p.shape[0]):
            pi = p[i]
            gi = g[i] + scale * pi
            g[i] = gi
            sp += np.float64(pi) * np.float64(pi)
            sg += np.float64(gi) * np.float64(gi)
    else:
        for i in range(g.shape[0]):
            gi = np.float64(g[i])
            sg += gi * gi
    return sp, sg


@njit(**_JIT)
def adam(p, g, m, v, big, clip, coef, c1, b2, c2, bc2, eps, step):
    """One Adam step in place (``AdamOptimizer._step``'s operations): ``gi = g * coef`` when
    ``clip``; ``m += c1 * (gi - m)``; ``v = v * b2 + c2 * (gi * gi)``;
    ``p -= (m / (sqrt(v) / bc2 + eps)) * step``. Returns True when every new p is finite."""
    ok = True
    for i in range(p.shape[0]):
        gi = g[i] * coef if clip else g[i]
        mi = m[i] + c1 * (gi - m[i])
        m[i] = mi
        vi = v[i] * b2 + c2 * (gi * gi)
        v[i] = vi
        pi = p[i] - (mi / (np.sqrt(vi) / bc2 + eps)) * step
        p[i] = pi
        ok &= abs(pi) <= big
    return ok


@njit(**_JIT)
def rmsprop(p, g, s, buf, big, clip, coef, rho, c, eps, lr, mu):
    """One RMSprop step in place (``RMSpropOptimizer._step``'s operations); ``mu > 0`` uses
    the momentum buffer. Returns True when every new p is finite."""
    ok = True
    zero = mu - mu
    for i in range(p.shape[0]):
        gi = g[i] * coef if clip else g[i]
        si = s[i] * rho + c * (gi * gi)
        s[i] = si
        a = gi / (np.sqrt(si) + eps)
        if mu > zero:
            bi = buf[i] * mu + a
            buf[i] = bi
            a = bi * lr
        else:
            a = a * lr
        pi = p[i] - a
        p[i] = pi
        ok &= abs(pi) <= big
    return ok


@njit(**_JIT)
def sgd_momentum(p, g, buf, big, clip, coef, lr, mu, nesterov):
    """One SGD step with momentum in place (``SGDOptimizer._step``'s operations):
    ``buf = buf * mu + gi``, then ``p -= (mu * buf + gi) * lr`` (Nesterov) or
    ``p -= buf * lr``. Returns True when every new p is finite."""
    ok = True
    for i in range(p.shape[0]):
        gi = g[i] * coef if clip else g[i]
        bi = buf[i] * mu + gi
        buf[i] = bi
        d = (mu * bi + gi) * lr if nesterov else bi * lr
        pi = p[i] - d
        p[i] = pi
        ok &= abs(pi) <= big
    return ok


@njit(**_JIT)
def sgd(p, g, big, clip, coef, lr):
    """``p -= lr * (g * coef)`` in place (plain SGD). Returns True when every new p is finite."""
    ok = True
    for i in range(p.shape[0]):
        gi = g[i] * coef if clip else g[i]
        pi = p[i] - lr * gi
        p[i] = pi
        ok &= abs(pi) <= big
    return ok
