#!/usr/bin/env python3
"""Side-by-side timing of ``numgru.GRU`` and ``torch.nn.GRU`` on the CPU, in one process.

    python benchmarks/compare_torch.py [--threads 2] [--repeat N] [--shapes small,mid,large]
                                       [--budget SECONDS] [--markdown]

For every shape (B, T, I, H, L) -- small (1, 100, 16, 64, 2), mid (32, 100, 32, 128, 2),
large (128, 100, 64, 256, 2) -- the script

1. builds a float32 ``torch.nn.GRU(I, H, L, batch_first=True)`` (seeded) and loads its
   ``state_dict()`` into a float32 ``numgru.GRU``, so both compute the same function;
2. checks that they agree before timing anything: forward output and ``h_n`` (and, for the
   training step, ``dx``, ``dh0`` and every parameter gradient) must match within a scaled
   max error of 1e-4 (``max|a - b| / max(1, max|b|)``), otherwise it exits with status 1.
   These calls are also the warm-up (Numba JIT compilation is never timed);
3. times, interleaved (numgru, torch, numgru, torch, ...), so that drift of the machine hits
   both alike:
   * ``inference``: numgru ``forward(x)``; torch ``gru(x)`` under ``torch.inference_mode()``;
   * ``train``: numgru ``forward(x, training=True)`` + ``backward(g)``; torch ``out, h_n = gru(x)``
     with ``x.requires_grad=True`` (both compute dx) + ``out.backward(g)``, where ``g`` is the
     same random upstream gradient for both; torch's ``.grad`` fields are reset to ``None``
     before each step (outside the timed region), numgru returns fresh gradient arrays;
4. reports medians: numgru ms, torch ms, speed-up = torch ms / numgru ms (> 1: numgru faster)
   and numgru GFLOP/s.

FLOPs: forward = sum over layers of 2*B*T*3H*(I_k + H) (the matrix products; the element-wise
gate arithmetic, ~15*B*T*H per layer, is ignored -- under 3% here); a training step is counted
as 3x the forward (forward + two matrix products of the same size per weight in backward).

Both libraries get the same number of threads: ``torch.set_num_threads(threads)`` and
``numba.set_num_threads(threads)``.  Repetitions: ``--repeat N`` runs exactly N per shape and
mode; by default each (shape, mode) runs for about ``--budget`` seconds (default 8; at least 5,
at most 500 repetitions), i.e. about 1-2 minutes for the three shapes on 2 cores.
"""

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import textwrap
import time

import numpy as np

try:  # ``python benchmarks/compare_torch.py`` puts benchmarks/ first on sys.path
    from _reference import SHAPES, gru_flops, max_scaled_error
except ImportError:  # imported as part of the package (asv discovery)
    from ._reference import SHAPES, gru_flops, max_scaled_error

TOLERANCE = 1e-4
MIN_REPEAT, MAX_REPEAT = 5, 500


def _import_numgru():
    try:
        import numgru
    except ImportError:
        # Not installed: fall back to the source tree this script lives in.
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import numgru
    return numgru


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"
    except (AttributeError, OSError):
        return "n/a"


def machine_info(threads, numgru, numba, torch, load_at_start):
    return [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("CPU", f"{cpu_model()} ({os.cpu_count()} logical CPUs)"),
        ("threads", f"{threads} (torch.set_num_threads, numba.set_num_threads)"),
        ("load average", f"{load_at_start} at start; {load_average()} at end"),
        ("Python", platform.python_version()),
        ("numgru", getattr(numgru, "__version__", "?")),
        ("numba", f"{numba.__version__} (threading layer {_threading_layer(numba)})"),
        ("numpy", np.__version__),
        ("torch", torch.__version__),
        ("OS", platform.platform()),
    ]


def _threading_layer(numba):
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "not initialised"


class Mismatch(AssertionError):
    pass


def check(what, actual, expected, shape_name):
    err = max_scaled_error(actual, expected)
    if not err <= TOLERANCE:
        raise Mismatch(f"{shape_name}: numgru {what} differs from torch: scaled max error "
                       f"{err:.3e} > {TOLERANCE:.0e}")
    return err


def build(shape_name, numgru, torch):
    B, T, I, H, L = SHAPES[shape_name]
    torch.manual_seed(0)
    tgru = torch.nn.GRU(I, H, num_layers=L, batch_first=True)  # float32
    tgru.train()  # dropout=0, so train/eval modes compute the same thing
    ngru = numgru.GRU(I, H, num_layers=L, dtype="float32", random_state=0)
    ngru.load_state_dict({k: v.detach().cpu().numpy() for k, v in tgru.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    g = rng.standard_normal((B, T, H)).astype(np.float32)
    return tgru, ngru, x, g


def verify(shape_name, tgru, ngru, x, g, torch):
    """Correctness checks (also the warm-up of every timed call)."""
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        t_out, t_hn = tgru(xt)
    n_out, n_hn = ngru.forward(x)
    errs = [check("forward output", n_out, t_out.numpy(), shape_name),
            check("h_n", n_hn, t_hn.numpy(), shape_name)]

    xg = torch.from_numpy(x.copy()).requires_grad_(True)
    h0 = torch.zeros(tgru.num_layers, x.shape[0], tgru.hidden_size, requires_grad=True)
    t_out, _ = tgru(xg, h0)
    t_out.backward(torch.from_numpy(g))
    n_out, _ = ngru.forward(x, training=True)
    dx, dh0, grads = ngru.backward(g)
    errs.append(check("training forward output", n_out, t_out.detach().numpy(), shape_name))
    errs.append(check("dx", dx, xg.grad.numpy(), shape_name))
    errs.append(check("dh0", dh0, h0.grad.numpy(), shape_name))
    for name, p in tgru.named_parameters():
        errs.append(check(f"grad {name}", grads[name], p.grad.numpy(), shape_name))
    return max(errs)


def run_shape(shape_name, tgru, ngru, x, g, repeat, budget, torch):
    params = list(tgru.parameters())
    xt = torch.from_numpy(x)
    xg = torch.from_numpy(x.copy()).requires_grad_(True)
    gt = torch.from_numpy(g)

    def numgru_inference():
        ngru.forward(x)

    def torch_inference():
        with torch.inference_mode():
            tgru(xt)

    def numgru_train():
        ngru.forward(x, training=True)
        ngru.backward(g)

    def torch_train():
        out, _ = tgru(xg)
        out.backward(gt)

    def torch_zero():
        xg.grad = None
        for p in params:
            p.grad = None

    results = {}
    for mode, n_fn, t_fn, t_prep in (("inference", numgru_inference, torch_inference, None),
                                     ("train", numgru_train, torch_train, torch_zero)):
        n_times, t_times = [], []
        gc.collect()
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            n_fn()
            n_times.append(time.perf_counter() - t0)
            if t_prep is not None:
                t_prep()
            t0 = time.perf_counter()
            t_fn()
            t_times.append(time.perf_counter() - t0)
            done = len(n_times)
            if repeat is not None:
                if done >= repeat:
                    break
            elif done >= MAX_REPEAT or (done >= MIN_REPEAT
                                         and time.perf_counter() - start >= budget):
                break
        results[mode] = (statistics.median(n_times), statistics.median(t_times), len(n_times))
    return results


def format_rows(rows, markdown):
    header = ["shape (B, T, I, H, L)", "mode", "numgru ms", "torch ms",
              "speed-up (torch/numgru)", "numgru GFLOP/s", "reps"]
    body = []
    for shape_name, dims, mode, n_s, t_s, reps, flops in rows:
        body.append([f"{shape_name} {dims}", mode, f"{n_s * 1e3:.2f}", f"{t_s * 1e3:.2f}",
                     f"{t_s / n_s:.2f}x", f"{flops / n_s / 1e9:.1f}", str(reps)])
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2,
                   help="threads for both torch and numba (default 2)")
    p.add_argument("--repeat", type=int, default=None,
                   help="exact repetitions per shape and mode (default: time budget)")
    p.add_argument("--budget", type=float, default=8.0,
                   help="seconds per shape and mode when --repeat is not given (default 8)")
    p.add_argument("--shapes", default="small,mid,large",
                   help="comma-separated subset of " + ",".join(SHAPES))
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args(argv)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown or not args.shapes:
        p.error(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    if args.threads < 1 or (args.repeat is not None and args.repeat < 1):
        p.error("--threads and --repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    import numba
    import torch

    numgru = _import_numgru()
    threads = args.threads
    if threads > numba.config.NUMBA_NUM_THREADS:
        print(f"note: numba allows at most {numba.config.NUMBA_NUM_THREADS} threads "
              f"(NUMBA_NUM_THREADS); using that", file=sys.stderr)
        threads = numba.config.NUMBA_NUM_THREADS
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)

    load_at_start = load_average()
    rows, check_errs = [], {}
    for shape_name in args.shapes:
        dims = SHAPES[shape_name]
        tgru, ngru, x, g = build(shape_name, numgru, torch)
        try:
            check_errs[shape_name] = verify(shape_name, tgru, ngru, x, g, torch)
        except Mismatch as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
        res = run_shape(shape_name, tgru, ngru, x, g, args.repeat, args.budget, torch)
        fwd = gru_flops(*dims)
        for mode, flops in (("inference", fwd), ("train", 3 * fwd)):
            n_s, t_s, reps = res[mode]
            rows.append((shape_name, dims, mode, n_s, t_s, reps, flops))
        print(f"  done {shape_name} (max scaled error vs torch {check_errs[shape_name]:.1e})",
              file=sys.stderr, flush=True)

    info = machine_info(threads, numgru, numba, torch, load_at_start)
    notes = ("Medians of interleaved repetitions (numgru, torch, numgru, ...), float32, CPU. "
             "speed-up = torch ms / numgru ms. GFLOP/s counts the matrix products only: forward "
             "2*B*T*3H*(I_k+H) per layer, train step = 3x forward. Outputs and gradients were "
             f"checked to agree with torch within {TOLERANCE:.0e} (scaled max error) first.")
    if args.markdown:
        print("\n".join(f"- {k}: {v}" for k, v in info))
        print()
        print(format_rows(rows, markdown=True))
        print()
        print(notes)
    else:
        width = max(len(k) for k, _ in info)
        print("\n".join(f"{k.ljust(width)} : {v}" for k, v in info))
        print()
        print(format_rows(rows, markdown=False))
        print()
        print(textwrap.fill(notes, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
