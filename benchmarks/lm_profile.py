"""Where one training window of the language model at the seed configuration spends its time.

Usage::

    python benchmarks/lm_profile.py [REPETITIONS]   (default 10)

``GRULanguageModel`` (vocabulary 10,000, embedding 300, 2 x 512, batch 20, bptt 35, float32,
random weights) runs ``_window_step`` on 2 threads; the CPU backend's methods and the softmax's
parts (``numgru._cpu_lm``: the decoder's products ``_gemm`` (logits, then dy = g @ w), the row
pass ``softmax_xent_rows``, the weight gradient ``softmax_weight_grad``) are wrapped with timers.
Prints the window's median and each wrapped call's total per window (nested: ``be.softmax_xent``
holds the three ``lm.*`` rows; ``be.gemm``/``be.gemm_tn`` are the GRU's input and weight
gradients).
"""
import collections
import statistics
import sys
import time
import numba
import numpy as np

import numgru
from numgru import _config, _cpu, _cpu_lm

def main(argv):
    """Time ``argv[0]`` (default 10) windows and print the breakdown."""
    numba.set_num_threads(2)
    V, E, H, L, B, T = 10000, 300, 512, 2, 20, 35
    acc = collections.defaultdict(float)

    def wrap(obj, name, label):
        f = getattr(obj, name)

        def w(*a, **k):
            t0 = time.perf_counter()
            r = f(*a, **k)
            acc[label] += time.perf_counter() - t0
            return r
        setattr(obj, name, w)

    for n in ["embedding_forward", "embedding_backward", "softmax_xent", "gru_layer_forward",
              "gru_layer_backward", "gru_hh_weight_grad", "gemm", "gemm_tn", "mul", "add"]:
        if hasattr(_cpu.CPUBackend, n):
            wrap(_cpu.CPUBackend, n, "be." + n)
    for n in ["_gemm", "softmax_xent_rows", "softmax_weight_grad"]:
        wrap(_cpu_lm, n, "lm." + n)
    rng = np.random.default_rng(0)
    lm = numgru.GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(H,) * L, level="tokens",
                                 dtype="float32")
    sd = {"encoder.weight": rng.standard_normal((V, E)).astype(np.float32) * .1,
          "decoder.weight": rng.standard_normal((V, H)).astype(np.float32) * .1,
          "decoder.bias": np.zeros(V, np.float32)}
    for l in range(L):
        I = E if l == 0 else H
        sd[f"rnn.weight_ih_l{l}"] = rng.standard_normal((3 * H, I)).astype(np.float32) * .05
        sd[f"rnn.weight_hh_l{l}"] = rng.standard_normal((3 * H, H)).astype(np.float32) * .05
        sd[f"rnn.bias_ih_l{l}"] = np.zeros(3 * H, np.float32)
        sd[f"rnn.bias_hh_l{l}"] = np.zeros(3 * H, np.float32)
    lm.load_state_dict(sd)
    ids = rng.integers(V, size=(B, T)); tg = rng.integers(V, size=(B, T))
    lengths = np.full(B, T, np.int64)
    h0 = [np.zeros((1, B, H), np.float32) for _ in range(L)]
    tot = []
    with _config.compute_threads:
        for i in range(3):
            lm._window_step(ids, tg, lengths, h0)
        acc.clear()
        R = int(argv[0]) if argv else 10
        for i in range(R):
            t0 = time.perf_counter()
            lm._window_step(ids, tg, lengths, h0)
            tot.append(time.perf_counter() - t0)
    print(f"window median {1e3*statistics.median(tot):.1f} ms, min {1e3*min(tot):.1f}")
    for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {k:28s} {1e3*v/R:8.1f} ms/window")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
