"""A list of documents against the same text joined into one: held-out perplexity, side by side.

``GRULanguageModel`` lays its training text out like PyTorch's ``batchify`` (equal streams,
full windows) and resets the state where a document ends. At equal hyperparameters a list of
documents must then train to the perplexity the joined text reaches (within 3%: issue
"Train as well as PyTorch does"). This script measures it on the shipped sonnets (or any text
file, split into documents at blank lines): the same model fitted on the documents as a list
and on their concatenation, scored on held-out documents, median over seeds.

    python benchmarks/lm_layout.py [--text FILE] [--level char|word] [--seeds 3]
"""

import argparse
import statistics
import time
import warnings

from numgru import GRULanguageModel
from numgru.datasets import load_sonnets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default=None, help="a text file; documents split at blank lines")
    ap.add_argument("--level", default="char", choices=["char", "word"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--held-out", type=int, default=2, help="documents kept for scoring")
    ap.add_argument("--max-iter", type=int, default=15)
    args = ap.parse_args(argv)
    if args.text:
        docs = [d.strip() for d in open(args.text).read().split("\n\n") if d.strip()]
    else:
        docs = load_sonnets()
    train, test = docs[:-args.held_out], docs[-args.held_out:]
    params = dict(embedding_dim=32, hidden_layer_sizes=(128,), batch_size=20, bptt=35,
                  learning_rate_init=0.005, clip_grad_norm=0.25, max_iter=args.max_iter,
                  level=args.level, verbose=0)
    print(f"{len(train)} training documents ({sum(map(len, train))} characters), "
          f"{len(test)} held out; {params}")
    rows = {"list": [], "joined": []}
    for seed in range(args.seeds):
        for layout, X in (("list", train), ("joined", "\n\n".join(train))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                lm = GRULanguageModel(random_state=seed, **params).fit(X)
                seconds = time.perf_counter() - t0
            ppl = lm.perplexity(test)
            rows[layout].append(ppl)
            print(f"seed {seed} {layout:6s}: held-out perplexity {ppl:.4f}, {lm.n_iter_} epochs, "
                  f"{seconds:.1f} s", flush=True)
    a, b = statistics.median(rows["list"]), statistics.median(rows["joined"])
    print(f"median held-out perplexity: list {a:.4f}, joined {b:.4f}, ratio {a / b:.4f}")


if __name__ == "__main__":
    main()
