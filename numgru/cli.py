"""Command line: ``numgru demo`` and ``numgru info``."""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np


def _cuda_status():
    """(available, reason) without ever raising: CUDA is optional."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from numba import cuda
        if cuda.is_available():
            return True, cuda.get_current_device().name.decode() if hasattr(
                cuda.get_current_device().name, "decode") else str(cuda.get_current_device().name)
        return False, "no CUDA driver or device found"
    except Exception as exc:  # the CUDA target is not installed or fails to load
        return False, f"CUDA target unavailable ({type(exc).__name__}: {exc})"


def _cache_dir():
    from . import _cpu

    try:
        return _cpu.gru_layer_forward._cache._cache_path
    except AttributeError:
        return "unknown (caching disabled)"


def info(out=sys.stdout):
    """Print versions, the Numba threading layer and thread count, CUDA and the compile cache."""
    import numba
    import scipy
    import sklearn

    import numgru

    # a tiny parallel call so that Numba loads (and reports) its threading layer
    numgru.GRU(1, 1).forward(np.zeros((1, 1, 1), dtype=np.float32))
    cuda_ok, cuda_msg = _cuda_status()
    rows = [
        ("numgru", numgru.__version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("scipy", scipy.__version__),
        ("scikit-learn", sklearn.__version__),
        ("platform", f"{platform.system()} {platform.machine()}"),
        ("numba threading layer", numba.threading_layer()),
        ("numba threads", str(numba.get_num_threads())),
        ("cpu count", str(os.cpu_count())),
        ("cuda available", f"{'yes' if cuda_ok else 'no'} ({cuda_msg})"),
        ("compile cache", _cache_dir()),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}", file=out)


def _loss_and_grad(gru, x, h0, lengths, R, S):
    out, h_n = gru.forward(x, h0, lengths=lengths, training=True)
    loss = float(np.sum(out * R) + np.sum(h_n * S))
    dx, dh0, grads = gru.backward(R, S)
    return loss, dx, dh0, grads


def _loss(gru, params, x, h0, lengths, R, S):
    gru.load_state_dict(params)
    out, h_n = gru.forward(x, h0, lengths=lengths)
    return float(np.sum(out * R) + np.sum(h_n * S))


def demo(out=sys.stdout):
    """Engine demo: forward and backward on random data, timing, and a finite-difference check."""
    import numgru

    rng = np.random.default_rng(0)
    B, T, I, H, L = 32, 100, 32, 128, 2
    print(f"numgru {numgru.__version__}: GRU forward + BPTT on random data", file=out)
    print(f"shape: batch={B} time={T} input={I} hidden={H} layers={L} bidirectional=True", file=out)
    gru = numgru.GRU(I, H, L, bidirectional=True, random_state=0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    lengths = rng.integers(T // 2, T + 1, B)
    t0 = time.perf_counter()
    out_, h_n = gru.forward(x, lengths=lengths)
    t_compile = time.perf_counter() - t0
    d_out = rng.standard_normal(out_.shape).astype(np.float32)
    gru.forward(x, lengths=lengths, training=True)
    gru.backward(d_out)
    times_f, times_b = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        gru.forward(x, lengths=lengths, training=True)
        t1 = time.perf_counter()
        dx, dh0, grads = gru.backward(d_out)
        times_f.append(t1 - t0)
        times_b.append(time.perf_counter() - t1)
    print(f"out {out_.shape}  h_n {h_n.shape}  dx {dx.shape}  dh0 {dh0.shape}  "
          f"{len(grads)} parameter gradients", file=out)
    print(f"first call (includes JIT compile or cache load): {t_compile:.2f} s", file=out)
    print(f"forward (training): {1e3 * np.median(times_f):.1f} ms   "
          f"backward: {1e3 * np.median(times_b):.1f} ms   (median of 5)", file=out)

    # central finite differences in float64 on a small model
    small = numgru.GRU(3, 4, 2, bidirectional=True, dtype="float64", random_state=1)
    xs = rng.standard_normal((2, 5, 3))
    h0 = rng.standard_normal((4, 2, 4))
    ls = np.array([5, 3])
    R = rng.standard_normal((2, 5, 8))
    S = rng.standard_normal((4, 2, 4))
    _, dx, dh0, grads = _loss_and_grad(small, xs, h0, ls, R, S)
    sd = small.state_dict()
    eps = 1e-6
    worst = 0.0
    for name in ("weight_hh_l0", "bias_ih_l1_reverse", "weight_ih_l1"):
        p = sd[name]
        for idx in [(0,) * p.ndim, tuple(s - 1 for s in p.shape)]:
            plus = {k: v.copy() for k, v in sd.items()}
            minus = {k: v.copy() for k, v in sd.items()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            lp = _loss(small, plus, xs, h0, ls, R, S)
            lm = _loss(small, minus, xs, h0, ls, R, S)
            fd = (lp - lm) / (2 * eps)
            worst = max(worst, abs(fd - grads[name][idx]) / max(1.0, abs(fd)))
    small.load_state_dict(sd)
    print(f"finite-difference gradient check (float64): max error {worst:.2e}", file=out)
    if worst > 1e-6:
        print("gradient check FAILED", file=out)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numgru", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the demo")
    sub.add_parser("info", help="print versions, threading, CUDA and cache information")
    args = parser.parse_args(argv)
    if args.command == "info":
        info()
        return 0
    return demo()


if __name__ == "__main__":
    sys.exit(main())
