"""Model quality side by side: numgru's defaults, 200 fixed epochs, and a plain PyTorch loop.

The quality table of ``docs/training.md`` comes from here. Three jobs:

``classify``
    The UCR/UEA classification sets that the aeon package ships: for each, a numgru
    ``GRUClassifier`` under several named configurations (``--configs``) and, with torch
    installed, a plain PyTorch loop (``nn.GRU(64)`` -> last state -> ``nn.Linear``, Adam 1e-3,
    batch 32, 200 epochs, float32). Test accuracy, epochs run and fit seconds, median over
    ``--seeds``.
``forecast``
    One-step-ahead forecasts from sliding windows of raw-valued series (aeon's Airline,
    ShampooSales, Lynx, PBS, solar, and a noisy sine with trend): ``GRURegressor``
    configurations against the last-value baseline and a ridge regression on the same windows.
    RMSE on the last 20% of windows (chronological split).
``dump``
    Writes the data sets to ``--data-dir`` as .npz/.npy, run where aeon is installed. aeon 1.6
    needs numba < 0.64, so it often lives in another environment than numgru's; the other jobs
    read the dump (or aeon directly, when it imports).

Configurations are named sets of estimator parameters (``CONFIGS``): ``defaults`` is the
estimator as a user gets it; ``epochs200`` the same network trained exactly 200 epochs of
batch 32 at a constant learning rate (the standard procedure, as the plain PyTorch loop: the
reference the defaults must reach within 1 point, in a third of its time); ``epochs200_auto``
the same at the defaults' batch size;
``old_defaults`` is what the defaults were before the training-loop rework (run it against an
old checkout with ``PYTHONPATH``).

Usage::

    python benchmarks/quality.py dump --data-dir /tmp/ucr              # in an aeon environment
    python benchmarks/quality.py classify --data-dir /tmp/ucr --configs defaults epochs200 torch
    python benchmarks/quality.py forecast --data-dir /tmp/ucr --configs defaults

Results are printed as a Markdown table and appended as JSON lines to ``--out``.
"""

import argparse
import glob
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

CLASSIFICATION = ["ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels",
                  "OSULeaf", "PickupGestureWiimoteZ"]
SERIES = ["Airline", "ShampooSales", "Lynx", "PBS", "solar", "SineTrend"]

# named estimator configurations; "torch" is the plain PyTorch loop
CONFIGS = {
    "defaults": {},
    # the standard procedure (the plain PyTorch loop's): the same network for exactly 200 epochs
    # of batch 32 at a constant learning rate, no stopping rule (old and new code:
    # n_iter_no_change past max_iter never triggers; tol=0)
    "epochs200": dict(max_iter=200, n_iter_no_change=10_000, tol=0.0, batch_size=32),
    # the same, at the defaults' batch size ("auto")
    "epochs200_auto": dict(max_iter=200, n_iter_no_change=10_000, tol=0.0),
    "old_defaults": {},          # run against the old checkout: its defaults
    "old_epochs200": dict(max_iter=200, n_iter_no_change=10_000, tol=0.0),
}
NEW_ONLY = {  # parameters that exist only after the rework
    "epochs200": dict(learning_rate="constant", early_stopping=False, verbose=0),
    "epochs200_auto": dict(learning_rate="constant", early_stopping=False, verbose=0),
    "defaults": dict(verbose=0),
}


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        flags = open("/proc/cpuinfo").read()
        isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "SSE")
    except OSError:
        isa = "?"
    return f"{cpu} ({isa}, {os.cpu_count()} CPUs)"


# ------------------------------------------------------------------ data
def dump(data_dir):
    import aeon.datasets as ad
    os.makedirs(data_dir, exist_ok=True)
    for name in CLASSIFICATION:
        arrays = {}
        for split in ("train", "test"):
            X, y = ad.load_classification(name, split=split)
            seqs = [np.asarray(x, float).T for x in X]          # (T_i, channels)
            arrays.update({f"{split}_X_{i}": a for i, a in enumerate(seqs)})
            arrays[f"{split}_y"] = np.asarray(y).astype(str)
        np.savez(os.path.join(data_dir, f"{name}.npz"), **arrays)
    loaders = {"Airline": ad.load_airline, "ShampooSales": ad.load_shampoo_sales,
               "Lynx": ad.load_lynx, "PBS": ad.load_PBS_dataset, "solar": ad.load_solar}
    for name, load in loaders.items():
        np.save(os.path.join(data_dir, f"{name}_series.npy"), np.asarray(load(), float).ravel())


def load_classification(name, data_dir):
    z = np.load(os.path.join(data_dir, f"{name}.npz"))
    out = []
    for split in ("train", "test"):
        n = len([k for k in z.files if k.startswith(f"{split}_X_")])
        X = [z[f"{split}_X_{i}"] for i in range(n)]
        if len({x.shape for x in X}) == 1:
            X = np.stack(X)
        out += [X, z[f"{split}_y"].astype(str)]
    return out


def load_series(name, data_dir):
    if name == "SineTrend":      # the noisy sine with trend: 1200 points
        rng = np.random.default_rng(0)
        t = np.arange(1200)
        return np.sin(2 * np.pi * t / 50) + 0.002 * t + 0.3 * rng.standard_normal(1200)
    return np.load(os.path.join(data_dir, f"{name}_series.npy"))


def windows(series, window):
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], window)
    y = series[window:]
    return np.ascontiguousarray(X), y


# ------------------------------------------------------------------ models
def torch_classifier(Xtr, ytr, Xte, seed, epochs=200, hidden=64, batch=32, lr=1e-3):
    """A plain PyTorch loop: GRU -> last state -> Linear, Adam, cross-entropy, float32."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
    torch.manual_seed(seed)
    classes, yi = np.unique(ytr, return_inverse=True)

    def tensors(X):
        seqs = [torch.tensor(np.asarray(x, np.float32).reshape(len(x), -1)) for x in X]
        lens = torch.tensor([len(s) for s in seqs])
        return pad_sequence(seqs, batch_first=True), lens

    Xt, Lt = tensors(Xtr)
    yt = torch.tensor(yi)

    class Net(nn.Module):
        def __init__(self, F, K):
            super().__init__()
            self.gru = nn.GRU(F, hidden, batch_first=True)
            self.out = nn.Linear(hidden, K)

        def forward(self, x, lens):
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            _, h = self.gru(packed)
            return self.out(h[-1])

    net = Net(Xt.shape[2], len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        for s in range(0, len(yt), batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss_fn(net(Xt[idx], Lt[idx]), yt[idx]).backward()
            opt.step()
    seconds = time.perf_counter() - t0
    Xe, Le = tensors(Xte)
    with torch.no_grad():
        pred = classes[net(Xe, Le).argmax(1).numpy()]
    return pred, epochs, seconds


def numgru_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0


def warm_up():
    """Compile the kernels (both dtypes) before anything is timed."""
    from numgru import GRUClassifier, GRURegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 5, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dt in ("float32", "float64"):
            GRUClassifier(hidden_layer_sizes=(4,), max_iter=1, dtype=dt).fit(X, np.arange(8) % 2)
            GRURegressor(hidden_layer_sizes=(4,), max_iter=1, dtype=dt).fit(X, X[:, 0, 0])


def params_for(config, est_cls):
    import inspect
    p = dict(CONFIGS.get(config, {}))
    accepted = inspect.signature(est_cls.__init__).parameters
    p.update({k: v for k, v in NEW_ONLY.get(config, {}).items() if k in accepted})
    if config.startswith("json:"):
        p = json.loads(config[5:])
    return p


def classify(args):
    from numgru import GRUClassifier
    rows = []
    for name in args.datasets or CLASSIFICATION:
        Xtr, ytr, Xte, yte = load_classification(name, args.data_dir)
        runs = {config: ([], [], []) for config in args.configs}
        # seeds outermost, the configurations interleaved within each: a change of the
        # machine's load hits every configuration alike, so their seconds compare
        for seed in range(args.seeds):
            for config in args.configs:
                if config == "torch":
                    pred, ep, sec = torch_classifier(Xtr, ytr, Xte, seed)
                else:
                    est = GRUClassifier(random_state=seed, **params_for(config, GRUClassifier))
                    sec = numgru_fit(est, Xtr, ytr)
                    pred, ep = est.predict(Xte), est.n_iter_
                accs, epochs, secs = runs[config]
                accs.append(float(np.mean(pred == yte)))
                epochs.append(ep)
                secs.append(sec)
        for config, (accs, epochs, secs) in runs.items():
            row = dict(job="classify", dataset=name, config=config[:60], accuracy=float(np.median(accs)),
                       accuracies=accs, epochs=float(np.median(epochs)), epochs_each=epochs,
                       seconds=float(np.median(secs)), seconds_each=secs, machine=machine())
            rows.append(row)
            print(f"| {name} | {config} | {row['accuracy']:.3f} | {row['epochs']:.0f} | "
                  f"{row['seconds']:.1f} |", flush=True)
            _save(args.out, row)
    return rows


def forecast(args):
    from sklearn.linear_model import RidgeCV
    from numgru import GRURegressor
    rows = []
    for name in args.datasets or SERIES:
        s = load_series(name, args.data_dir)
        window = 60 if name == "SineTrend" else (12 if len(s) > 100 else 6)
        X, y = windows(s, window)
        n_test = max(4, len(y) // 5)
        Xtr, ytr, Xte, yte = X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]
        rmse = lambda p: float(np.sqrt(np.mean((np.asarray(p).ravel() - yte) ** 2)))  # noqa: E731
        base = rmse(Xte[:, -1])
        ridge = rmse(RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Xtr, ytr).predict(Xte))
        for config in args.configs:
            scores, epochs, secs = [], [], []
            for seed in range(args.seeds):
                est = GRURegressor(random_state=seed, **params_for(config, GRURegressor))
                secs.append(numgru_fit(est, Xtr, ytr))
                scores.append(rmse(est.predict(Xte)))
                epochs.append(est.n_iter_)
            row = dict(job="forecast", dataset=name, config=config[:60], rmse=float(np.median(scores)),
                       rmses=scores, last_value=base, ridge=ridge,
                       epochs=float(np.median(epochs)), seconds=float(np.median(secs)),
                       machine=machine())
            rows.append(row)
            seeds = ", ".join(f"{v:.4g}" for v in scores)
            print(f"| {name} | {config} | {row['rmse']:.4g} ({seeds}) | {base:.4g} | "
                  f"{ridge:.4g} | {row['epochs']:.0f} | {row['seconds']:.1f} |", flush=True)
            _save(args.out, row)
    return rows


def _save(path, row):
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("job", choices=["classify", "forecast", "dump"])
    ap.add_argument("--data-dir", default=os.environ.get("NUMGRU_QUALITY_DATA", "quality_data"))
    ap.add_argument("--configs", nargs="+", default=["defaults", "epochs200"])
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None, help="append JSON lines here")
    args = ap.parse_args(argv)
    if args.job == "dump":
        return dump(args.data_dir)
    if not glob.glob(os.path.join(args.data_dir, "*")):
        try:
            dump(args.data_dir)
        except ImportError:
            sys.exit(f"no data in {args.data_dir}: run the 'dump' job where aeon is installed")
    print(f"machine: {machine()}")
    warm_up()
    if args.job == "classify":
        print("| data set | configuration | accuracy | epochs | fit s |\n|---|---|---:|---:|---:|")
        classify(args)
    else:
        print("| series | configuration | RMSE | last value | ridge | epochs | fit s |\n"
              "|---|---|---:|---:|---:|---:|---:|")
        forecast(args)


if __name__ == "__main__":
    main()
