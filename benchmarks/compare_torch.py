#!/usr/bin/env python3
"""Side-by-side timing of ``numgru.GRU`` / ``torch.nn.GRU`` (and ``numgru.RNN`` /
``torch.nn.RNN``) on the CPU, in one process.

    python benchmarks/compare_torch.py [--threads 2] [--repeat N] [--shapes small,mid,large]
                                       [--rnn-shapes small,mid] [--budget SECONDS]
                                       [--pause SECONDS] [--markdown]
    python benchmarks/compare_torch.py --fit [--epochs 200] [--threads 2] [--markdown]
    python benchmarks/compare_torch.py --lm [--lm-config seed|small] [--threads 2] [--markdown]

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

The same is done for the vanilla tanh RNN -- ``torch.nn.RNN(I, H, L, nonlinearity="tanh",
batch_first=True)`` against ``numgru.RNN(I, H, L, nonlinearity="tanh")`` -- at the shapes of
``--rnn-shapes`` (default small,mid; an empty string skips them), in rows labelled "RNN tanh"
beside the "GRU" rows. Its FLOPs are a third of the GRU's (one gate block instead of three).

FLOPs: forward = sum over layers of 2*B*T*3H*(I_k + H) (the matrix products; the element-wise
gate arithmetic, ~15*B*T*H per layer, is ignored -- under 3% here); a training step is counted
as 3x the forward (forward + two matrix products of the same size per weight in backward).

Both libraries get the same number of threads: ``torch.set_num_threads(threads)`` and
``numba.set_num_threads(threads)``.  Repetitions: ``--repeat N`` runs exactly N per shape and
mode; by default each (shape, mode) runs for about ``--budget`` seconds (default 8; at least 5,
at most 500 repetitions), i.e. about 1-2 minutes for the three shapes on 2 cores.

``--fit`` instead compares a whole estimator fit (see ``run_fit``):
``numgru.GRUClassifier(hidden_layer_sizes=(64, 64), solver="adam", batch_size=32, max_iter=E, dtype="float32",
learning_rate_init=1e-3, n_iter_no_change=E+1, random_state=0)`` against an equivalent PyTorch CPU
training loop (two stacked layers ``nn.GRU(num_layers=2)`` of 64, packed variable-length
sequences, the last layer's final hidden state -> ``nn.Linear`` -> cross-entropy, Adam lr 1e-3,
batch 32, E epochs, reshuffled every epoch) on ``make_sequence_classification(n_samples=400,
min_length=20, max_length=150, n_features=3, random_state=0)``: the first 320 sequences train,
the last 80 test.  It reports the wall time of each whole fit (after an untimed one-epoch
warm-up of each library on the same data, so Numba compilation and torch's first-call costs
are not timed), the ratio torch / numgru and the test accuracy of each.

``--lm`` compares ``numgru.GRULanguageModel`` with PyTorch's word_language_model ``RNNModel``
(training step and token-by-token generation; see ``benchmarks/_lm_compare.py``).
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


MODELS = {"GRU": 3, "RNN tanh": 1}      # model label -> gate blocks (FLOPs relative to H)


def build(shape_name, numgru, torch, model="GRU"):
    """The torch module and the numgru engine of ``model`` ("GRU" or "RNN tanh") with the same
    weights, an input and an upstream gradient."""
    B, T, I, H, L = SHAPES[shape_name]
    torch.manual_seed(0)
    if model == "GRU":
        tgru = torch.nn.GRU(I, H, num_layers=L, batch_first=True)  # float32
        ngru = numgru.GRU(I, H, num_layers=L, dtype="float32", random_state=0)
    else:
        tgru = torch.nn.RNN(I, H, num_layers=L, nonlinearity="tanh", batch_first=True)
        ngru = numgru.RNN(I, H, num_layers=L, nonlinearity="tanh", dtype="float32",
                          random_state=0)
    tgru.train()  # dropout=0, so train/eval modes compute the same thing
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


def run_shape(shape_name, tgru, ngru, x, g, repeat, budget, torch, pause=0.0):
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
            if pause:                   # outside the timing: let the other pool's workers sleep
                time.sleep(pause)
            t0 = time.perf_counter()
            n_fn()
            n_times.append(time.perf_counter() - t0)
            if t_prep is not None:
                t_prep()
            if pause:
                time.sleep(pause)
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
    header = ["model", "shape (B, T, I, H, L)", "mode", "numgru ms", "torch ms",
              "speed-up (torch/numgru)", "numgru GFLOP/s", "reps"]
    body = []
    for model, shape_name, dims, mode, n_s, t_s, reps, flops in rows:
        body.append([model, f"{shape_name} {dims}", mode, f"{n_s * 1e3:.2f}", f"{t_s * 1e3:.2f}",
                     f"{t_s / n_s:.2f}x", f"{flops / n_s / 1e9:.1f}", str(reps)])
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])

# --------------------------------------------------------------------------- estimator fit
FIT_DATA = dict(n_samples=400, min_length=20, max_length=150, n_features=3, random_state=0)
FIT_N_TRAIN = 320
FIT_HIDDEN = (64, 64)
FIT_BATCH = 32
FIT_LR = 1e-3


def fit_data():
    from numgru.datasets import make_sequence_classification

    X, y = make_sequence_classification(**FIT_DATA)
    return X[:FIT_N_TRAIN], y[:FIT_N_TRAIN], X[FIT_N_TRAIN:], y[FIT_N_TRAIN:]


def numgru_classifier(numgru, epochs):
    return numgru.GRUClassifier(hidden_layer_sizes=FIT_HIDDEN, solver="adam",
                                batch_size=FIT_BATCH, max_iter=epochs, learning_rate_init=FIT_LR,
                                n_iter_no_change=epochs + 1, random_state=0, dtype="float32")


def numgru_fit(numgru, epochs, X_train, y_train, X_test, y_test):
    """Time ``GRUClassifier.fit``; return (seconds, test accuracy, final training loss, epochs)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    est = numgru_classifier(numgru, epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gc.collect()
        t0 = time.perf_counter()
        est.fit(X_train, y_train)
        seconds = time.perf_counter() - t0
    acc = float(np.mean(est.predict(X_test) == y_test))
    return seconds, acc, float(est.loss_curve_[-1]), int(est.n_iter_)


class TorchGRUClassifier:
    """The PyTorch twin: ``nn.GRU(I, 64, num_layers=2)`` -> h_n[-1] -> ``nn.Linear(64, C)``."""

    def __init__(self, torch, n_inputs, n_classes, hidden=FIT_HIDDEN):
        if len(set(hidden)) != 1:
            raise ValueError("the torch twin uses one nn.GRU(num_layers=L): equal sizes only")
        self.torch = torch
        self.gru = torch.nn.GRU(n_inputs, hidden[0], num_layers=len(hidden), batch_first=True)
        self.head = torch.nn.Linear(hidden[0], n_classes)

    def parameters(self):
        return list(self.gru.parameters()) + list(self.head.parameters())

    def logits(self, x, lengths):
        packed = self.torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                              enforce_sorted=False)
        _, h_n = self.gru(packed)  # h_n: (layers, B, H), each sequence's own last valid step
        return self.head(h_n[-1])


def pad(X, torch):
    lengths = np.array([len(x) for x in X], dtype=np.int64)
    out = np.zeros((len(X), lengths.max(), X[0].shape[1]), dtype=np.float32)
    for i, x in enumerate(X):
        out[i, :len(x)] = x
    return torch.from_numpy(out), torch.from_numpy(lengths)


def torch_fit(torch, epochs, X_train, y_train, X_test, y_test, seed=0):
    """Time the PyTorch training loop; return (seconds, test accuracy, last epoch loss, epochs).

    Timed: padding the training list into one tensor, building the model and the optimizer, and
    E epochs of: a fresh random permutation, batches of 32 in that order, each cut to its own
    longest sequence and packed (``pack_padded_sequence``, ``enforce_sorted=False``), forward,
    mean cross-entropy, ``zero_grad`` / ``backward`` / ``Adam.step``.
    """
    F = torch.nn.functional
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_classes = int(np.max(y_train)) + 1
    gc.collect()
    t0 = time.perf_counter()
    x_all, len_all = pad(X_train, torch)
    y_all = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    model = TorchGRUClassifier(torch, x_all.shape[2], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=FIT_LR, weight_decay=0.0)
    n = len(X_train)
    loss_epoch = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for b0 in range(0, n, FIT_BATCH):
            idx = perm[b0:b0 + FIT_BATCH]
            lb = len_all[idx]
            xb = x_all[idx, :int(lb.max())]
            loss = F.cross_entropy(model.logits(xb, lb), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        loss_epoch = total / n
    seconds = time.perf_counter() - t0
    with torch.inference_mode():
        x_te, len_te = pad(X_test, torch)
        pred = model.logits(x_te, len_te).argmax(dim=1).numpy()
    return seconds, float(np.mean(pred == y_test)), loss_epoch, epochs


def run_fit(args, numgru, numba, torch, threads):
    X_train, y_train, X_test, y_test = fit_data()
    load_at_start = load_average()
    # Untimed warm-up: one epoch of each on the same data (Numba kernels compiled or loaded from
    # the cache, torch's lazy initialisation), so that only steady-state training is timed.
    numgru_fit(numgru, 1, X_train, y_train, X_test, y_test)
    torch_fit(torch, 1, X_train, y_train, X_test, y_test)
    print("  warm-up done", file=sys.stderr, flush=True)
    E = args.epochs
    n_res = numgru_fit(numgru, E, X_train, y_train, X_test, y_test)
    print(f"  numgru fit done: {n_res[0]:.1f} s", file=sys.stderr, flush=True)
    t_res = torch_fit(torch, E, X_train, y_train, X_test, y_test)
    print(f"  torch fit done: {t_res[0]:.1f} s", file=sys.stderr, flush=True)

    info = machine_info(threads, numgru, numba, torch, load_at_start)
    lengths = [len(x) for x in X_train]
    config = [
        ("data", f"make_sequence_classification({', '.join(f'{k}={v}' for k, v in FIT_DATA.items())}); "
                 f"{len(X_train)} train / {len(X_test)} test (first / last), train lengths "
                 f"{min(lengths)}-{max(lengths)} (mean {np.mean(lengths):.0f}), 3 classes"),
        ("numgru", f"GRUClassifier(hidden_layer_sizes={FIT_HIDDEN}, solver='adam', "
                   f"batch_size={FIT_BATCH}, max_iter={E}, learning_rate_init={FIT_LR}, "
                   f"n_iter_no_change={E + 1}, random_state=0, dtype='float32'); defaults "
                   "otherwise (alpha=1e-4 L2 on weights, shuffle=True with length-grouped batches)"),
        ("torch", f"nn.GRU(3, 64, num_layers=2, batch_first=True) on packed sequences "
                  f"(enforce_sorted=False) -> h_n[-1] -> nn.Linear(64, 3) -> cross_entropy; "
                  f"Adam(lr={FIT_LR}, weight_decay=0, i.e. no L2); batch {FIT_BATCH}, random "
                  f"permutation each epoch; float32; default torch init, torch.manual_seed(0)"),
        ("epochs", f"{E} for both (numgru ran {n_res[3]}, torch {t_res[3]})"),
    ]
    header = ["library", "fit wall s", "s / epoch", "test accuracy", "final train loss"]
    body = [[name, f"{r[0]:.2f}", f"{r[0] / max(r[3], 1):.3f}", f"{r[1]:.3f}", f"{r[2]:.4f}"]
            for name, r in (("numgru", n_res), ("torch", t_res))]
    ratio = t_res[0] / n_res[0]
    target = ratio >= 3.0 and n_res[1] >= t_res[1]
    verdict = (f"speed-up = torch s / numgru s = {ratio:.2f}x; test accuracy numgru "
               f"{n_res[1]:.3f} vs torch {t_res[1]:.3f}. Target (numgru >= 3x faster at equal "
               f"or better test accuracy): {'MET' if target else 'NOT met'}.")
    notes = ("Wall time of one whole fit each, after an untimed one-epoch warm-up of each; numgru "
             "first, then torch, in one process. numgru's loss includes its L2 term "
             "(alpha=1e-4), torch's does not (weight_decay=0). Accuracy is on the 80 held-out "
             "sequences.")
    if args.markdown:
        print("\n".join(f"- {k}: {v}" for k, v in info + config))
        print()
        print("| " + " | ".join(header) + " |")
        print("|---|" + "|".join(["---:"] * (len(header) - 1)) + "|")
        for r in body:
            print("| " + " | ".join(r) + " |")
        print()
        print(verdict)
        print()
        print(notes)
    else:
        width = max(len(k) for k, _ in info + config)
        print("\n".join(f"{k.ljust(width)} : {v}" for k, v in info + config))
        print()
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        fmt = lambda r: "  ".join(  # noqa: E731
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        print("\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]))
        print()
        print(textwrap.fill(verdict, width=100))
        print(textwrap.fill(notes, width=100))
    return 0


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
    p.add_argument("--rnn-shapes", default="small,mid",
                   help="shapes of the torch.nn.RNN (tanh) rows, comma-separated subset of "
                        + ",".join(SHAPES) + " (default small,mid; '' for none)")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds to sleep before each timed GRU/RNN call (outside the timing): "
                        "on a shared machine torch's spinning OpenMP workers and numgru's pool "
                        "otherwise slow each other's next call (compare_revisions --pause)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--fit", action="store_true",
                   help="compare a whole GRUClassifier fit with an equivalent torch training loop")
    p.add_argument("--lm", action="store_true",
                   help="compare GRULanguageModel with word_language_model's RNNModel "
                        "(train step and generation; see benchmarks/_lm_compare.py)")
    p.add_argument("--lm-config", default="seed", choices=["seed", "small"],
                   help="--lm sizes: seed (V=10000, E=300, 2x512, B=20, bptt=35) or small")
    p.add_argument("--lm-tokens", type=int, default=200,
                   help="tokens per --lm generation repetition (default 200)")
    p.add_argument("--epochs", type=int, default=200,
                   help="epochs of the --fit comparison (default 200)")
    args = p.parse_args(argv)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    args.rnn_shapes = [s.strip() for s in args.rnn_shapes.split(",") if s.strip()]
    unknown = [s for s in args.shapes + args.rnn_shapes if s not in SHAPES]
    if unknown or not args.shapes:
        p.error(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    if args.threads < 1 or args.epochs < 1 or (args.repeat is not None and args.repeat < 1):
        p.error("--threads, --epochs and --repeat must be >= 1")
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
    if args.fit:
        return run_fit(args, numgru, numba, torch, threads)
    if args.lm:
        try:
            from _lm_compare import run_lm
        except ImportError:
            from ._lm_compare import run_lm
        return run_lm(args, numgru, numba, torch, threads)

    load_at_start = load_average()
    rows, check_errs = [], {}
    runs = [("GRU", s) for s in args.shapes] + [("RNN tanh", s) for s in args.rnn_shapes]
    for model, shape_name in runs:
        dims = SHAPES[shape_name]
        tgru, ngru, x, g = build(shape_name, numgru, torch, model)
        try:
            err = verify(f"{model} {shape_name}", tgru, ngru, x, g, torch)
        except Mismatch as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 1
        check_errs[model, shape_name] = err
        res = run_shape(shape_name, tgru, ngru, x, g, args.repeat, args.budget, torch,
                        args.pause)
        fwd = gru_flops(*dims) * MODELS[model] // 3
        for mode, flops in (("inference", fwd), ("train", 3 * fwd)):
            n_s, t_s, reps = res[mode]
            rows.append((model, shape_name, dims, mode, n_s, t_s, reps, flops))
        print(f"  done {model} {shape_name} (max scaled error vs torch {err:.1e})",
              file=sys.stderr, flush=True)

    info = machine_info(threads, numgru, numba, torch, load_at_start)
    notes = ("Medians of interleaved repetitions (numgru, torch, numgru, ...), float32, CPU. "
             "speed-up = torch ms / numgru ms. GFLOP/s counts the matrix products only: forward "
             "2*B*T*3H*(I_k+H) per layer (RNN: 2*B*T*H*(I_k+H)), train step = 3x forward. "
             "Outputs and gradients were "
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
