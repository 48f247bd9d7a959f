"""asv benchmarks for ``numgru.GRU`` (forward / training step / peak memory).

Parameters: shape in ``small`` (1, 100, 16, 64, 2), ``mid`` (32, 100, 32, 128, 2) and ``large``
(128, 100, 64, 256, 2) as (B, T, I, H, L), and dtype float32 / float64.

Before anything is timed, every ``setup``:

* checks correctness against a plain-NumPy float64 GRU (``benchmarks/_reference.py``) on the
  first ``min(B, 4)`` sequences of the batch -- the forward output and ``h_n`` for
  :class:`GRUForward`; additionally ``dx`` / ``dh0`` of the full-batch backward and every
  parameter gradient (from a backward on the slice) for :class:`GRUTrainStep`.  The maximum
  error, scaled by ``max(1, max|reference|)``, must be <= 1e-4 for float32 (1e-9 for float64),
  otherwise ``setup`` raises :class:`CorrectnessError` (an ``AssertionError``) and asv reports the
  benchmark as failed instead of timing a wrong kernel;
* warms up: the checks above run the exact timed calls once on the full-size inputs, so Numba
  JIT compilation (or loading from its on-disk cache) is never part of a measurement.

Threads: Numba is pinned to ``NUMGRU_BENCH_THREADS`` threads (default 2, clipped to
``numba.config.NUMBA_NUM_THREADS``) so that results from different machines and CI runners stay
comparable.  Set ``NUMGRU_BENCH_THREADS=$(nproc)`` to measure a whole machine.

``peakmem_train_step`` reports the peak resident set size of the benchmark process, which
includes the interpreter, NumPy/Numba/LLVM and the setup's own training step (same shapes), so it
tracks the footprint of a training step plus a roughly constant offset.
"""

import os

import numba
import numpy as np

import numgru

from ._reference import (
    SHAPES,
    max_scaled_error,
    reference_backward,
    reference_forward,
)

CHECK_BATCH = 4
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def bench_threads():
    """Number of Numba threads the benchmarks run with (see module docstring)."""
    requested = int(os.environ.get("NUMGRU_BENCH_THREADS", "2") or 2)
    return max(1, min(requested, numba.config.NUMBA_NUM_THREADS))


class CorrectnessError(AssertionError):
    """numgru disagrees with the float64 NumPy reference; the benchmark must not be timed."""


def _check(what, actual, expected, dtype, shape_name):
    err = max_scaled_error(actual, expected)
    tol = TOLERANCE[dtype]
    if not err <= tol:  # also catches NaN
        raise CorrectnessError(
            f"numgru {what} ({shape_name}, {dtype}) differs from the float64 NumPy reference: "
            f"scaled max error {err:.3e} > {tol:.0e}"
        )


class _GRUBench:
    params = (list(SHAPES), ["float32", "float64"])
    param_names = ["shape", "dtype"]
    # Setup may have to JIT-compile the kernels (cold Numba cache): allow for it.
    timeout = 900
    # At least 2 samples, at most 10, and stop adding samples after ~20 s per benchmark.
    repeat = (2, 10, 20.0)
    warmup_time = 0.5

    def setup(self, shape, dtype):
        numba.set_num_threads(bench_threads())
        B, T, I, H, L = SHAPES[shape]
        self.dims = (B, T, I, H, L)
        self.gru = numgru.GRU(I, H, num_layers=L, dtype=dtype, random_state=0)
        rng = np.random.default_rng(1234)
        self.x = rng.standard_normal((B, T, I)).astype(dtype)
        self.d_out = np.ones((B, T, H), dtype=dtype)
        self.sd = self.gru.state_dict()
        self.b = min(B, CHECK_BATCH)

        # Forward check (this is also the warm-up of the inference path).
        out, h_n = self.gru.forward(self.x)
        if out.dtype != np.dtype(dtype):
            raise CorrectnessError(f"forward returned {out.dtype}, expected {dtype}")
        self.ref_out, ref_hn, self.ref_cache = reference_forward(self.sd, self.x[: self.b], L)
        _check("forward output", out[: self.b], self.ref_out, dtype, shape)
        _check("h_n", h_n[:, : self.b], ref_hn, dtype, shape)


class GRUForward(_GRUBench):
    """Inference: ``gru.forward(x)`` (training=False, h0 = 0)."""

    def time_forward(self, shape, dtype):
        self.gru.forward(self.x)


class GRUTrainStep(_GRUBench):
    """Training step: ``gru.forward(x, training=True)`` + ``gru.backward(ones_like(out))``."""

    def setup(self, shape, dtype):
        super().setup(shape, dtype)
        b = self.b
        ref_dx, ref_dh0, ref_grads = reference_backward(self.sd, self.ref_cache, self.d_out[:b])

        # Full-size training step (warm-up of the timed calls); rows of dx / dh0 only depend on
        # the same rows of x and d_out, so the slice can be compared with the reference.
        out, _ = self.gru.forward(self.x, training=True)
        dx, dh0, _ = self.gru.backward(self.d_out)
        _check("training forward output", out[:b], self.ref_out, dtype, shape)
        _check("dx", dx[:b], ref_dx, dtype, shape)
        _check("dh0", dh0[:, :b], ref_dh0, dtype, shape)

        # Parameter gradients sum over the batch: compare a backward on the slice itself.
        self.gru.forward(self.x[:b], training=True)
        _, _, grads = self.gru.backward(self.d_out[:b])
        if list(grads) != list(ref_grads):
            raise CorrectnessError(f"gradient keys {list(grads)} != {list(ref_grads)}")
        for name, ref in ref_grads.items():
            _check(f"grad {name}", grads[name], ref, dtype, shape)

        # Leave the model in the same state as a timed call would (full-size training cache).
        self.gru.forward(self.x, training=True)
        self.gru.backward(self.d_out)

    def time_train_step(self, shape, dtype):
        self.gru.forward(self.x, training=True)
        self.gru.backward(self.d_out)

    def peakmem_train_step(self, shape, dtype):
        self.gru.forward(self.x, training=True)
        self.gru.backward(self.d_out)
