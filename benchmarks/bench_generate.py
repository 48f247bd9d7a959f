"""Generation speed: tokens per second of numgru.GRULanguageModel.generate against PyTorch's
word_language_model-style generation, at k = 1, 8, 64 sequences side by side, in one process.

    python benchmarks/bench_generate.py [--config seed,small] [--k 1,8,64] [--threads 2]
                                        [--steps 100] [--repeat 5] [--markdown]

Models: ``benchmarks/_lm_compare.py``'s (``seed``: V=10,000, E=300, 2 x 512; ``small``:
V=2,000, E=64, 2 x 128; float32); torch's ``RNNModel`` is built from ``torch.manual_seed(0)``
and its ``state_dict()`` loaded into numgru (``level="tokens"``), so both run the same weights.
Three generators, each making ``--steps`` steps of k sequences from one token, temperature 1:

- ``numgru``: ``generate(steps, prefix=[token], n_samples=k)`` (``n_samples=None`` at k=1):
  the single-step path (numgru._generate);
- ``numgru, old path``: what ``generate`` ran before it, per step: ``Stack.forward`` over one
  step of the k rows, the head's ``log_softmax`` and the same sampling;
- ``torch``: ``generate.py``'s loop with a batch of k: ``model(input, hidden)`` under
  ``no_grad``, ``exp(log_probs / temperature)``, ``torch.multinomial`` (one draw per row).

Tokens per second count every sequence's tokens (k * steps / seconds). The three run
interleaved, ``--repeat`` times each, with ``PAUSE`` seconds of sleep between two of them
(outside the timings: torch's OpenMP workers keep spinning a while after a call); medians.
Both libraries get ``--threads`` threads (``torch.set_num_threads``, ``numba.set_num_threads``).
The load average at the start and the end is printed with the table: on a shared machine, quote
only runs taken while it was low.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))          # the numgru of this source tree
sys.path.insert(1, HERE)

from _lm_compare import CONFIGS, PAUSE, torch_model  # noqa: E402


def old_path(lm, numgru, steps, k, seed):
    """``steps`` steps of k sequences as generate ran them before the single-step path: a
    ``Stack.forward`` of one step per token, then the head's log-softmax, then the draws."""
    from numgru import _generate

    rng = np.random.default_rng(seed)
    stack, head, be = lm.stack_, lm.head_, lm.stack_.backend
    V = head.vocab_size
    out = np.zeros((k, steps), np.int64)
    with numgru._config.compute_threads:
        p = head.native(be)
        ctx = stack.context()
        h = [be.upload(np.zeros((1, k, H), lm._dtype)) for H in lm._sizes()]
        current = np.full((k, 1), seed % V, np.int64)
        lengths = np.ones(k, np.int64)
        z, tokens = np.empty((k, V)), np.empty(k, np.int64)
        for i in range(steps):
            y, h = stack.forward(be.upload(current), lengths, h)
            logp = head.log_softmax(ctx, p, y.reshape(k, -1))
            _generate.sample_rows(logp, 1.0, None, rng, z, tokens)
            out[:, i] = tokens
            current = tokens[:, None].copy()
    return out


def new_path(lm, steps, k, seed):
    return lm.generate(steps, prefix=[seed % len(lm.vocabulary_)], random_state=seed,
                       n_samples=None if k == 1 else k)


def torch_generate(torch, tm, cfg, steps, k, seed):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.zeros(cfg["L"], k, cfg["H"])
    inp = torch.full((1, k), seed % cfg["V"], dtype=torch.long)
    with torch.no_grad():
        for _ in range(steps):
            output, hidden = tm(inp, hidden)
            weights = output.div(1.0).exp()                 # (k, V)
            idx = torch.multinomial(weights, 1, generator=gen)
            inp.copy_(idx.view(1, k))


def run_config(name, ks, args, numgru, torch):
    cfg = CONFIGS[name]
    V, E, H, L = (cfg[c] for c in "VEHL")
    torch.manual_seed(0)
    tm = torch_model(torch, V, E, H, L).float().eval()
    sd = {key: v.detach().numpy().copy() for key, v in tm.state_dict().items()}
    lm = numgru.GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(H,) * L, level="tokens",
                                 dtype="float32").load_state_dict(sd)
    rows = []
    for k in ks:
        runs = {"numgru": lambda s, k=k: new_path(lm, args.steps, k, s),
                "numgru, old path": lambda s, k=k: old_path(lm, numgru, args.steps, k, s),
                "torch": lambda s, k=k: torch_generate(torch, tm, cfg, args.steps, k, s)}
        for f in runs.values():                            # warm-up (compiles)
            f(0)
        rates = {what: [] for what in runs}
        for r in range(args.repeat):
            for what, f in runs.items():
                time.sleep(PAUSE)
                t0 = time.perf_counter()
                f(r + 1)
                rates[what].append(k * args.steps / (time.perf_counter() - t0))
        med = {what: statistics.median(v) for what, v in rates.items()}
        rows.append((name, k, med["numgru"], med["numgru, old path"], med["torch"]))
        print(f"  {name} k={k}: " + ", ".join(f"{w} {v:.0f}" for w, v in med.items()),
              file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="seed,small", help="comma-separated: seed, small")
    p.add_argument("--k", default="1,8,64", help="sequences side by side, comma-separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=100, help="steps per repetition")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    configs = [c.strip() for c in args.config.split(",") if c.strip()]
    ks = [int(k) for k in args.k.split(",")]
    if any(c not in CONFIGS for c in configs) or min(ks) < 1 or args.steps < 1 \
            or args.repeat < 1 or args.threads < 1:
        p.error(f"--config from {sorted(CONFIGS)}; --k, --steps, --repeat, --threads >= 1")
    import numba
    import torch

    import numgru

    threads = min(args.threads, numba.config.NUMBA_NUM_THREADS)
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    load_start = os.getloadavg()
    rows = []
    for name in configs:
        rows += run_config(name, ks, args, numgru, torch)
    print(f"generation, tokens/s (all k sequences' tokens), float32, {threads} threads, "
          f"{args.steps} steps x {args.repeat} repetitions, medians (numba {numba.__version__}, "
          f"torch {torch.__version__}, numgru from {os.path.dirname(numgru.__file__)})")
    print("load average (1, 5, 15 min) at start %.2f %.2f %.2f, at end %.2f %.2f %.2f"
          % (load_start + os.getloadavg()))
    head = ("config", "k", "numgru", "numgru old path", "torch", "numgru / torch", "new / old")
    cells = [(n, str(k), f"{a:.0f}", f"{b:.0f}", f"{c:.0f}", f"{a / c:.2f}x", f"{a / b:.2f}x")
             for n, k, a, b, c in rows]
    if args.markdown:
        print("\n| " + " | ".join(head) + " |\n|---|---:|---:|---:|---:|---:|---:|")
        for c in cells:
            print("| " + " | ".join(c) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *cells)]
        for line in (head, *cells):
            print("  ".join(x.rjust(w) for x, w in zip(line, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
