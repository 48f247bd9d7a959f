"""asv benchmarks for ``numgru.GRU(device="cuda")``; skipped where there is no real GPU.

Shapes as ``benchmarks/gpu_compare.py``: T = 100, 2 layers, input 64, float32, batch in
{1, 8, 64, 256} x hidden in {128, 512}. Inputs and outputs stay on the GPU (Numba device arrays);
every timed call ends with a device synchronisation. ``setup`` raises ``NotImplementedError``
(asv's "skip") without a GPU -- the CUDA simulator is far too slow to time -- and otherwise
checks the forward against the float64 NumPy reference on the first sequences before timing.
"""

import numpy as np

import numgru
from numgru import _cuda

from ._reference import max_scaled_error, reference_forward

T, I, L = 100, 64, 2


class CudaGRU:
    params = ([1, 8, 64, 256], [128, 512])
    param_names = ["batch", "hidden"]
    timeout = 300

    def setup(self, B, H):
        if not _cuda.gpu_present():
            raise NotImplementedError("no CUDA GPU here")
        from numba import cuda

        self.sync = cuda.synchronize
        self.gru = numgru.GRU(I, H, L, device="cuda", random_state=0)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        self.x = cuda.to_device(x)
        self.g = cuda.to_device(rng.standard_normal((B, T, H)).astype(np.float32))
        out, _ = self.gru.forward(self.x)
        n = min(B, 4)
        ref, _, _ = reference_forward(self.gru.state_dict(), x[:n], L)
        err = max_scaled_error(out.copy_to_host()[:n], ref)
        if not err <= 1e-4:
            raise AssertionError(f"CUDA forward differs from the NumPy reference by {err:.2e}")
        self.time_train_step(B, H)                      # warm-up: compile the backward too

    def time_forward(self, B, H):
        self.gru.forward(self.x)
        self.sync()

    def time_train_step(self, B, H):
        self.gru.forward(self.x, training=True)
        self.gru.backward(self.g)
        self.sync()
