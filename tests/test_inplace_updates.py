"""numgru._math.sub_scaled (the SGD step without momentum) gives NumPy's bits, on one thread or
two, through the kernel and through NumPy's fallback."""

import math

import numba
import numpy as np
import pytest

from numgru import _math, _optim

SIZES = [10, _math.INPLACE_MIN_SIZE - 1, 3 * _math.INPLACE_MIN_SIZE + 7]


def _pair(dtype, n, seed=0):
    rng = np.random.default_rng(seed + n)
    return (rng.standard_normal(n).astype(dtype) * 3, rng.standard_normal(n).astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("threads", [1, 2])
def test_sub_scaled_gives_numpy_bits(dtype, n, threads):
    p, g = _pair(dtype, n)
    a = 0.123456789123                      # not exact in float32: the rounding must match
    want = p.copy()
    want -= a * g
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        got = p.copy()
        _math.sub_scaled(got, g, a)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, p)       # it did move


def test_shapes_views_and_numpy_scalars_fall_back_to_numpy():
    n = 2 * _math.INPLACE_MIN_SIZE
    p, g = _pair("float32", 2 * n)
    p2 = p.reshape(2, n)
    g2 = g.reshape(2, n)
    # a 2-D contiguous array takes the kernel on its flat view; a strided view NumPy
    for a in (0.5, np.float64(0.3), np.float32(0.3)):  # NumPy scalars: NumPy's own casting
        for pv, gv in ((p2.copy(), g2), (p2.copy()[:, ::2], g2[:, ::2])):
            want = pv.copy()
            want -= a * gv
            _math.sub_scaled(pv, gv, a)
            np.testing.assert_array_equal(pv, want)
    # float32 parameters and a float64 gradient: NumPy's mixed arithmetic
    pv, g64 = p2.copy(), g2.astype(np.float64)
    want = pv.copy()
    want -= 0.7 * g64
    _math.sub_scaled(pv, g64, 0.7)
    np.testing.assert_array_equal(pv, want)


def test_sgd_and_clipping_steps_are_numpys():
    n = 3 * _math.INPLACE_MIN_SIZE
    params = [_pair("float32", n, s)[0].reshape(3, -1) for s in range(2)] + [np.ones(5, np.float32)]
    grads = [_pair("float32", n, s)[1].reshape(3, -1) for s in range(2)] + [np.ones(5, np.float32)]
    want_p = [p.copy() for p in params]
    want_g = [g.copy() for g in grads]
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in want_g))   # a Python float, as there
    for g in want_g:
        g *= 0.25 / (norm + 1e-6)
    for p, g in zip(want_p, want_g):
        p -= 0.1 * g
    assert _optim.clip_grad_norm(grads, 0.25) == norm
    _optim.SGDOptimizer(params, learning_rate_init=0.1, momentum=0.0).update_params(params, grads)
    for got, want in zip(grads + params, want_g + want_p):
        np.testing.assert_array_equal(got, want)
