"""Vectorisable, overflow-free activation functions for the Numba kernels.

libm's scalar ``expf``/``tanhf`` are opaque calls that stop LLVM from vectorising the gate loop.
For float32 the functions here are written in plain arithmetic (Cody-Waite range reduction, a
Cephes minimax polynomial and an exponent built with an integer shift), so LLVM turns a loop over
them into AVX2/AVX-512 code. They are accurate to a few float32 ulp (tested against NumPy).
For float64 they call libm, which is exact to an ulp; speed targets are for float32.

Every function clamps its argument, so pre-activations of any finite size (1e4, 1e30) give
finite, correctly saturated results and no overflow.

Also here: the elementwise helpers of the kernels (:func:`copy_into`, :func:`add_into`) and the
in-place SGD step the optimizers use (:func:`sub_scaled`: NumPy's bits, without its temporary).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ._config import CACHE, FASTMATH

_F = np.float32
_LOG2E = _F(1.44269504088896341)
_LN2_HI = _F(0.693359375)
_LN2_LO = _F(-2.12194440e-4)
_EXP_HI = _F(88.0)
_EXP_LO = _F(-87.0)
_HALF = _F(0.5)
_ONE = _F(1.0)
_TWO = _F(2.0)
_P0 = _F(1.9875691500e-4)
_P1 = _F(1.3981999507e-3)
_P2 = _F(8.3334519073e-3)
_P3 = _F(4.1665795894e-2)
_P4 = _F(1.6666665459e-1)
_P5 = _F(5.0000001201e-1)
_T0 = _F(-5.70498872745e-3)
_T1 = _F(2.06390887954e-2)
_T2 = _F(-5.37397155531e-2)
_T3 = _F(1.33314422036e-1)
_T4 = _F(-3.33332819422e-1)
_TANH_SMALL = _F(0.625)


@intrinsic
def _int32_bits_as_float32(typingctx, i):
    """Reinterpret the low 32 bits of an integer as a float32 (trunc + bitcast, vectorisable)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width != 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@njit
def exp_f32(x):
    # clamp: exp(88) < FLT_MAX and exp(-87) > FLT_MIN, so 2**n stays a normal number
    x = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(x * _LOG2E + _HALF)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    y = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    y = y * (r * r) + r + _ONE
    scale = _int32_bits_as_float32((np.int32(n) + 127) << 23)
    return y * scale


@njit
def _sigmoid_f32(x):
    return _ONE / (_ONE + exp_f32(-x))


@njit
def _tanh_f32(x):
    ax = abs(x)
    z = x * x
    small = x + x * z * ((((_T0 * z + _T1) * z + _T2) * z + _T3) * z + _T4)
    big = _ONE - _TWO / (exp_f32(ax + ax) + _ONE)
    big = big if x >= 0 else -big
    return small if ax < _TANH_SMALL else big


@njit
def _sigmoid_f64(x):
    x = min(max(x, -745.0), 745.0)
    return 1.0 / (1.0 + math.exp(-x))


@njit
def _tanh_f64(x):
    return math.tanh(x)


@njit
def copy_into(a, out):
    """out = a, elementwise (1-D, same length).

    The kernels copy with this loop rather than a slice assignment (``out[:] = a``): a slice
    assignment from an array compiles NumPy's broadcasting error path, with its string
    formatting (~2 s of a cold start's compile), which no shape in the kernels can reach.
    """
    for j in range(out.shape[0]):
        out[j] = a[j]


@njit(fastmath=FASTMATH, error_model="numpy", cache=CACHE, nogil=True)
def add_into(a, out):
    """out += a, elementwise (1-D, same length)."""
    for j in range(out.shape[0]):
        out[j] += a[j]


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x)) (dispatches on float32/float64 inside Numba)."""
    x = np.clip(x, -745.0, 745.0)
    return 1.0 / (1.0 + np.exp(-x))


def tanh(x):
    """Hyperbolic tangent (dispatches on float32/float64 inside Numba)."""
    return np.tanh(x)


@overload(sigmoid)
def _ol_sigmoid(x):
    if x == types.float32:
        return lambda x: _sigmoid_f32(x)
    if x == types.float64:
        return lambda x: _sigmoid_f64(x)
    return None


@overload(tanh)
def _ol_tanh(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    if x == types.float64:
        return lambda x: _tanh_f64(x)
    return None


# ---------------------------------------------------------------------------------------------
# In-place update of whole parameter arrays (the SGD step)
# ---------------------------------------------------------------------------------------------

# Arrays of fewer elements take NumPy's own loop (their temporary is small, and a compiled
# call costs a microsecond or two).
INPLACE_MIN_SIZE = 1 << 16


# No fastmath, no FMA: ``p - a * g`` is NumPy's multiply rounded, then its subtract (LLVM does
# not contract a multiply and a subtract without the ``contract`` flag). A loop from 0: no
# negative-index checks, so LLVM vectorises it (a loop from an offset ran 3.5x slower).
@njit(error_model="numpy", cache=CACHE, nogil=True)
def _sub_scaled_flat(p, g, a):
    """p -= a * g over flat arrays."""
    for i in range(p.shape[0]):
        p[i] = p[i] - a * g[i]


def _flat_or_none(*arrays):
    """Flat views of same-dtype float32/float64 C-contiguous arrays of one size, or None."""
    first = arrays[0]
    if first.dtype not in (np.float32, np.float64) or first.size < INPLACE_MIN_SIZE:
        return None
    for a in arrays:
        if (not isinstance(a, np.ndarray) or a.dtype != first.dtype or a.size != first.size
                or not a.flags.c_contiguous or not a.flags.writeable):
            return None
    return [a.reshape(-1) for a in arrays]


def sub_scaled(p, g, a):
    """``p -= a * g`` in place, bit for bit NumPy's (``a`` a Python float: NumPy rounds it to
    ``p``'s dtype, multiplies, then subtracts), without NumPy's temporary ``a * g`` (a fresh
    array of p's size: page faults on every step). Measured on 5.1M float32 elements (Zen 4,
    2026-12-03): 2.5-2.6 ms through NumPy, 1.2 ms here; as fast on one thread as on two (it is
    bound by memory), so it runs on the calling thread and wakes no pool thread. Anything else
    (small, non-contiguous, mixed dtypes, a NumPy scalar ``a``) goes through NumPy."""
    flat = _flat_or_none(p, g) if type(a) is float else None
    if flat is None:
        p -= a * g
        return
    _sub_scaled_flat(flat[0], flat[1], p.dtype.type(a))

