"""asv benchmarks for ``numgru.GRULanguageModel`` at the seed configuration of the language-model
issue (vocabulary 10,000, embedding 300, two GRU layers of 512, batch 20, bptt 35, float32) and
a small one (vocabulary 2,000, embedding 64, 2 x 128).

* ``time_train_step``: one window of truncated BPTT (forward from the carried state, fused
  decoder + softmax cross-entropy, backward, gradient clipping, SGD update), as
  ``GRULanguageModel.fit`` runs it.
* ``time_generate_100``: 100 tokens generated one at a time at batch 1.

``setup`` checks first that the untrained model's loss is within 0.1 nat of ``ln V`` (its
initial weights are small, so its predictions are near uniform) and warms up (JIT compilation
is never timed). The side-by-side comparison with PyTorch is ``compare_torch.py --lm``.
"""

import numpy as np

import numgru
from numgru import _config, _optim

from .bench_gru import bench_threads

CONFIGS = {"seed": dict(V=10000, E=300, H=512, L=2, B=20, T=35),
           "small": dict(V=2000, E=64, H=128, L=2, B=20, T=35)}


class LanguageModel:
    params = [list(CONFIGS)]
    param_names = ["config"]
    timeout = 300

    def setup(self, config):
        import numba

        numba.set_num_threads(bench_threads())
        c = CONFIGS[config]
        V, E, H, L, B, T = (c[k] for k in "VEHLBT")
        rng = np.random.default_rng(0)
        lm = numgru.GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(H,) * L,
                                     level="tokens", random_state=0, dtype="float32")
        sd = {"encoder.weight": rng.uniform(-0.1, 0.1, (V, E)),
              "decoder.weight": rng.uniform(-0.1, 0.1, (V, H)), "decoder.bias": np.zeros(V)}
        size, bound = E, 1 / np.sqrt(H)
        for k in range(L):
            sd[f"rnn.weight_ih_l{k}"] = rng.uniform(-bound, bound, (3 * H, size))
            sd[f"rnn.weight_hh_l{k}"] = rng.uniform(-bound, bound, (3 * H, H))
            sd[f"rnn.bias_ih_l{k}"] = rng.uniform(-bound, bound, 3 * H)
            sd[f"rnn.bias_hh_l{k}"] = rng.uniform(-bound, bound, 3 * H)
            size = H
        lm.load_state_dict(sd)                # ids 0..V-1, PyTorch's initialisation
        self.lm = lm
        self.ids = rng.integers(V, size=(B, T))
        self.targets = rng.integers(V, size=(B, T))
        self.lengths = np.full(B, T, np.int64)
        self.h0 = [np.zeros((1, B, H), np.float32) for _ in range(L)]
        self.params_list = lm._params()
        loss = self.train_step()
        if not abs(loss - np.log(V)) < 0.1:
            raise AssertionError(f"untrained loss {loss:.3f} is not near ln V = {np.log(V):.3f}")
        lm.generate(3, prefix=[1], random_state=0)

    def train_step(self):
        lm = self.lm
        with _config.compute_threads:
            loss, n, sg, hg, h_n = lm._window_step(self.ids, self.targets, self.lengths, self.h0)
            grads = lm._grads(sg, hg)
            _optim.clip_grad_norm(grads, 0.25)
            for p, g in zip(self.params_list, grads):
                p -= 1e-3 * g
        return loss

    def time_train_step(self, config):
        self.train_step()

    def time_generate_100(self, config):
        self.lm.generate(100, prefix=[1], random_state=0)
