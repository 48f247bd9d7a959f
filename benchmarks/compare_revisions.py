#!/usr/bin/env python3
"""Side-by-side timing of two numgru source trees (and torch), in one process.

    git worktree add /tmp/numgru-base <commit>          # the revision to compare against
    python benchmarks/compare_revisions.py --base /tmp/numgru-base [--threads 2] [--budget 8]

The ``numgru`` package of ``--base`` is imported under another name (``numgru_base``) next to the
numgru this script finds (the installed one, else this checkout), so both run in one process on
the same inputs, timed interleaved in a rotating order (base, new, torch; new, torch, base; ...):
drift of a noisy machine hits all three alike and none always runs right after another. Shapes are those of ``compare_torch.py``; both numgru trees load
the same torch ``nn.GRU`` weights and must agree with torch before timing (max scaled error
1e-4). Reports medians in ms and the ratios base/new (> 1: the new tree is faster) and
torch/new. Use it to check that a change keeps every speed where it was.
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

try:
    from _reference import SHAPES, max_scaled_error
except ImportError:  # pragma: no cover - imported as part of the package
    from ._reference import SHAPES, max_scaled_error


def import_tree(path, name):
    """Import the ``numgru`` package under ``path`` (a checkout) as module ``name``."""
    src = os.path.join(path, "numgru")
    tmp = tempfile.mkdtemp(prefix="numgru_rev_")
    dst = os.path.join(tmp, name)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(dst, "__init__.py"),
                                                  submodule_search_locations=[dst])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="checkout whose numgru/ is the baseline")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=8.0, help="seconds per shape and mode")
    p.add_argument("--shapes", default="small,mid,large",
                   help="comma-separated: small, mid, large, or BxTxIxHxL")
    args = p.parse_args()

    import numba
    import torch

    try:
        import numgru as new
    except ImportError:  # pragma: no cover
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import numgru as new
    base = import_tree(args.base, "numgru_base")
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    print(f"new: {new.__file__}\nbase: {args.base}\ntorch {torch.__version__}, "
          f"{args.threads} threads", flush=True)
    print(f"{'shape':6s} {'mode':9s} {'base ms':>9s} {'new ms':>9s} {'torch ms':>9s} "
          f"{'base/new':>9s} {'torch/new':>9s}")
    for name in args.shapes.split(","):
        # a named shape of compare_torch, or BxTxIxHxL (e.g. 8x100x16x64x2)
        B, T, I, H, L = SHAPES[name] if name in SHAPES else map(int, name.split("x"))
        torch.manual_seed(0)
        tg = torch.nn.GRU(I, H, L, batch_first=True)
        sd = tg.state_dict()
        grus = {}
        for label, mod in (("base", base), ("new", new)):
            g = mod.GRU(I, H, L, dtype="float32")
            g.load_state_dict(sd)
            grus[label] = g
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        d = rng.standard_normal((B, T, H)).astype(np.float32)
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            want = tg(xt)[0].numpy()
        for label, g in grus.items():
            err = max_scaled_error(g.forward(x)[0], want)
            if err > 1e-4:
                sys.exit(f"{label} disagrees with torch at {name}: {err:.2e}")

        def infer(g):
            return lambda: g.forward(x)

        def train(g):
            def run():
                out, _ = g.forward(x, training=True)
                g.backward(d)
            return run

        def t_infer():
            with torch.inference_mode():
                tg(xt)

        def t_train():
            xx = xt.clone().requires_grad_(True)
            out, _ = tg(xx)
            out.backward(torch.from_numpy(d))
            tg.zero_grad(set_to_none=True)

        for mode, make, tfn in (("inference", infer, t_infer), ("train", train, t_train)):
            fns = {"base": make(grus["base"]), "new": make(grus["new"]), "torch": tfn}
            for fn in fns.values():       # warm-up (compilation is never timed)
                fn()
            times = {k: [] for k in fns}
            t_end = time.perf_counter() + args.budget
            order = list(fns)
            while (time.perf_counter() < t_end and len(times["new"]) < 500) \
                    or len(times["new"]) < 5:
                for k in order:
                    t0 = time.perf_counter()
                    fns[k]()
                    times[k].append(time.perf_counter() - t0)
                order = order[1:] + order[:1]      # rotate: no one always follows torch
            med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            print(f"{name:6s} {mode:9s} {med['base']:9.3f} {med['new']:9.3f} {med['torch']:9.3f} "
                  f"{med['base'] / med['new']:9.3f} {med['torch'] / med['new']:9.3f}", flush=True)


if __name__ == "__main__":
    main()
