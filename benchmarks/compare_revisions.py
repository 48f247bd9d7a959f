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
torch/new. Use it to check that a change keeps every speed where it was. On a shared machine
pass ``--pause 0.05``: without it torch's OpenMP workers and numgru's pool spin against each
other after every call (seen on a 2-vCPU VM at load 2-4: torch's mid-shape inference 1.8 s
instead of 33 ms).

``--lm seed`` (or ``small``) times the language model's training window the same way, instead of
the GRU shapes: each tree's ``GRULanguageModel`` and torch's word_language_model ``RNNModel``
(``benchmarks/_lm_compare.py``) on the same weights and windows, each step a window step,
gradient clipping and the SGD update (numgru: its own ``SGDOptimizer``, momentum 0), with a
pause of ``_lm_compare.PAUSE`` between calls (outside the timed regions) so that torch's
spinning OpenMP workers do not slow whatever runs next. The trees' gradients must agree with
torch's first (max scaled error 1e-4).
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
    import _lm_compare
    from _reference import SHAPES, max_scaled_error
except ImportError:  # pragma: no cover - imported as part of the package
    from . import _lm_compare
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
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds to sleep before each timed call (outside the timing), so that "
                        "torch's spinning OpenMP workers (or numgru's) do not slow the next call")
    p.add_argument("--lm", choices=sorted(_lm_compare.CONFIGS),
                   help="time the language model's training window instead of the shapes")
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
    if args.lm:
        return compare_lm(args, {"base": base, "new": new}, torch)
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
                    if args.pause:
                        time.sleep(args.pause)
                    t0 = time.perf_counter()
                    fns[k]()
                    times[k].append(time.perf_counter() - t0)
                order = order[1:] + order[:1]      # rotate: no one always follows torch
            med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            print(f"{name:6s} {mode:9s} {med['base']:9.3f} {med['new']:9.3f} {med['torch']:9.3f} "
                  f"{med['base'] / med['new']:9.3f} {med['torch'] / med['new']:9.3f}", flush=True)


def compare_lm(args, trees, torch):
    """The language model's training window of each tree and of torch, interleaved."""
    cfg = _lm_compare.CONFIGS[args.lm]
    V, E, H, L, B, T = (cfg[k] for k in "VEHLBT")
    torch.manual_seed(0)
    tm = _lm_compare.torch_model(torch, V, E, H, L).float()
    sd = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    rng = np.random.default_rng(0)
    ids = rng.integers(V, size=(B, T))
    targets = rng.integers(V, size=(B, T))
    lengths = np.full(B, T, np.int64)
    h0 = rng.standard_normal((L, B, H)).astype(np.float32) * 0.1
    crit = torch.nn.CrossEntropyLoss()
    t_ids = torch.from_numpy(ids.T.copy())
    t_tg = torch.from_numpy(targets.T.reshape(-1).copy())
    tm.zero_grad(set_to_none=True)
    out, _ = tm(t_ids, torch.from_numpy(h0))
    crit(out, t_tg).backward()
    want = {k: p.grad.numpy().copy() for k, p in tm.named_parameters()}

    def numgru_step(mod):
        lm = mod.GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(H,) * L, level="tokens",
                                  dtype="float32").load_state_dict(sd)
        with mod._config.compute_threads:
            _, _, sg, hg, _ = lm._window_step(ids, targets, lengths, [h[None] for h in h0])
        named = lm._named_grads(sg, hg)
        for k, g in want.items():
            err = max_scaled_error(named[k], g)
            if err > 1e-4:
                sys.exit(f"{mod.__name__} disagrees with torch on the gradient of {k}: {err:.2e}")
        params = lm._params()
        opt = mod._optim.SGDOptimizer(params, learning_rate_init=_lm_compare.LR, momentum=0.0)
        state = [[h[None].copy() for h in h0]]

        def step():
            with mod._config.compute_threads:
                _, _, sg, hg, h_n = lm._window_step(ids, targets, lengths, state[0])
                grads = lm._grads(sg, hg)
                mod._optim.clip_grad_norm(grads, _lm_compare.CLIP)
                opt.update_params(params, grads)
            state[0] = [np.asarray(x) for x in h_n]
        return step

    t_state = [torch.from_numpy(h0.copy())]

    def torch_step():
        tm.zero_grad(set_to_none=True)
        out, h_n = tm(t_ids, t_state[0])
        crit(out, t_tg).backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), _lm_compare.CLIP)
        with torch.no_grad():
            for p in tm.parameters():
                p.add_(p.grad, alpha=-_lm_compare.LR)
        t_state[0] = h_n.detach()

    fns = {label: numgru_step(mod) for label, mod in trees.items()}
    fns["torch"] = torch_step
    for fn in fns.values():               # warm-up (compilation is never timed)
        fn()
    times = {k: [] for k in fns}
    t_end = time.perf_counter() + args.budget
    order = list(fns)
    while (time.perf_counter() < t_end and len(times["new"]) < 500) or len(times["new"]) < 5:
        for k in order:
            time.sleep(_lm_compare.PAUSE)
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
        order = order[1:] + order[:1]
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(f"{'lm ' + args.lm:6s} {'window':9s} {med['base']:9.3f} {med['new']:9.3f} "
          f"{med['torch']:9.3f} {med['base'] / med['new']:9.3f} {med['torch'] / med['new']:9.3f}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
