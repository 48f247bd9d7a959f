"""Make tests/data/lm_generate_*.npz and lm_generate_ids.json (run by hand, from the repository
root: ``python tests/data/make_generate_fixture.py``): three small language models trained a few
epochs with fixed seeds, saved with ``save``, and the ids ``generate`` gave for a few settings.

The ids were recorded with the ``generate`` that ran ``Stack.forward`` for every token (before
the single-step path of numgru._generate); tests/test_generate.py checks that generation still
draws exactly these tokens. They hold for the thread count recorded beside them (the one-row
kernels split their products over the threads when the model is wide enough: the "tokens" model
is, the two char models are not).

- ``lm_generate_f32``: char level, float32, two GRU layers (16, 24) with dropout between;
- ``lm_generate_f64``: char level, float64, one layer, tied weights;
- ``lm_generate_tok``: level "tokens", float32, V=400, E=32, one layer of 96 (its GRU step and
  its decoder are wide enough for the split one-row kernels on 2 threads).
"""

import json
import os
import sys

import numba
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import numgru  # noqa: E402
from numgru._config import compute_threads  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog ran far. " * 12

# (prefix, n_tokens, temperature, top_k, random_state)
CHAR_SETTINGS = [("the ", 40, 1.0, None, 0), (None, 40, 1.0, None, 1), ("the c", 30, 0.0, None, 0),
                 ("a", 40, 0.7, 3, 2), (None, 25, 1.3, 5, 3)]
TOK_SETTINGS = [([5, 17, 3], 40, 1.0, None, 0), (None, 40, 1.0, None, 1),
                ([7], 30, 0.0, None, 0), ([11, 2], 40, 0.8, 10, 2)]


def models():
    f32 = numgru.GRULanguageModel(embedding_dim=8, hidden_layer_sizes=(16, 24), dropout=0.1,
                                  batch_size=4, bptt=10, max_iter=4, learning_rate_init=0.01,
                                  random_state=0, verbose=0).fit(TEXT)
    f64 = numgru.GRULanguageModel(embedding_dim=12, hidden_layer_sizes=(12,), tie_weights=True,
                                  batch_size=4, bptt=10, max_iter=4, learning_rate_init=0.01,
                                  random_state=1, dtype="float64", verbose=0).fit(TEXT)
    rng = np.random.default_rng(0)
    toks = [int(t) for t in (rng.zipf(1.3, 6000) % 400)]
    tok = numgru.GRULanguageModel(embedding_dim=32, hidden_layer_sizes=(96,), level="tokens",
                                  batch_size=8, bptt=20, max_iter=2, learning_rate_init=0.005,
                                  random_state=2, verbose=0).fit(toks)
    return {"f32": (f32, CHAR_SETTINGS), "f64": (f64, CHAR_SETTINGS), "tok": (tok, TOK_SETTINGS)}


def main():
    with compute_threads:
        threads = numba.get_num_threads()
    record = {"threads": threads, "cases": {}}
    for name, (lm, settings) in models().items():
        lm.save(os.path.join(HERE, f"lm_generate_{name}.npz"))
        cases = []
        for prefix, n, temperature, top_k, seed in settings:
            out = lm.generate(n, prefix=prefix, temperature=temperature, top_k=top_k,
                              random_state=seed)
            ids = np.asarray(out).tolist() if lm.level == "tokens" else out
            cases.append(dict(prefix=prefix, n_tokens=n, temperature=temperature, top_k=top_k,
                              random_state=seed, output=ids))
        record["cases"][name] = cases
    with open(os.path.join(HERE, "lm_generate_ids.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
