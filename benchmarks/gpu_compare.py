#!/usr/bin/env python3
"""numgru's CUDA backend against torch's cuDNN ``nn.GRU`` on the same GPU, side by side.

    python benchmarks/gpu_compare.py [--batches 1,8,64,256] [--hidden 128,512] [--repeat 50]
                                     [--packed] [--dtype float32] [--markdown]

For every (batch B, hidden H) with T = 100, 2 layers, input size 64 (float32 by default):

1. builds a seeded ``torch.nn.GRU(64, H, 2, batch_first=True).cuda()`` and loads its weights into
   ``numgru.GRU(64, H, 2, device="cuda")``; inputs live on the GPU as torch tensors, which numgru
   reads through ``__cuda_array_interface__`` (no host copy) and answers with device arrays;
2. checks that both agree before timing (out, h_n, dx, dh0 and every weight gradient within a
   scaled max error of 1e-3 in float32 / 1e-9 in float64); exits with status 1 otherwise. These
   calls are also the warm-up (Numba compilation is never timed);
3. times interleaved repetitions (numgru, torch, numgru, ...), each ended by a device
   synchronisation, and reports medians: inference (``forward``; torch under
   ``inference_mode``) and a training step (forward + backward to dx and every weight gradient;
   numgru's gradients are returned to the host as NumPy arrays and that copy is timed);
4. prints numgru ms, torch ms and speed-up = torch / numgru (> 1: numgru faster).

``--packed`` gives the sequences different lengths (uniform in [T/2, T]): numgru gets
``lengths=``, torch a ``pack_padded_sequence`` -- cuDNN then always runs its STANDARD algorithm.
Which path numgru took (persistent kernel or per-step launches) is printed per row.
"""

import argparse
import datetime
import statistics
import sys
import time

import numpy as np


def _need(ok, msg):
    if not ok:
        sys.exit(f"gpu_compare.py: {msg}")


def scaled_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--hidden", default="128,512")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--packed", action="store_true")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    import numgru
    from numgru import _cuda

    try:
        import torch
    except ImportError:
        sys.exit("gpu_compare.py: needs PyTorch with CUDA (the comparison is against cuDNN)")
    _need(torch.cuda.is_available(), "torch sees no CUDA device")
    _need(_cuda.gpu_present(), f"numgru cannot use the GPU: {_cuda.unavailable_reason() or 'simulator on'}")
    from numba import cuda

    dt = args.dtype
    tdt = getattr(torch, dt)
    tol = 1e-3 if dt == "float32" else 1e-9
    T, I, L = args.steps, 64, 2
    rows = []
    for H in [int(h) for h in args.hidden.split(",")]:
        for B in [int(b) for b in args.batches.split(",")]:
            torch.manual_seed(0)
            tg = torch.nn.GRU(I, H, L, batch_first=True).to(device="cuda", dtype=tdt)
            ng = numgru.GRU(I, H, L, dtype=dt, device="cuda")
            ng.load_state_dict({k: v.detach().cpu().numpy() for k, v in tg.state_dict().items()})
            gen = torch.Generator(device="cuda").manual_seed(1)
            x = torch.randn(B, T, I, device="cuda", dtype=tdt, generator=gen)
            g = torch.randn(B, T, H, device="cuda", dtype=tdt, generator=gen)
            lengths = None
            if args.packed:
                lengths = torch.randint(T // 2, T + 1, (B,), generator=torch.Generator().manual_seed(2))
                lengths[0] = T
                mask = (torch.arange(T)[None, :] < lengths[:, None]).to("cuda", tdt)[:, :, None]
                x = x * mask
                g = g * mask

            def torch_forward(xx):
                if lengths is None:
                    return tg(xx)
                packed = torch.nn.utils.rnn.pack_padded_sequence(xx, lengths, batch_first=True,
                                                                 enforce_sorted=False)
                out, h_n = tg(packed)
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                                total_length=T)
                return out, h_n

            def torch_infer():
                with torch.inference_mode():
                    torch_forward(x)
                torch.cuda.synchronize()

            def torch_train():
                xx = x.detach().requires_grad_(True)
                out, _ = torch_forward(xx)
                out.backward(g)
                torch.cuda.synchronize()

            nl = None if lengths is None else lengths.numpy()

            def ng_infer():
                ng.forward(x, lengths=nl)
                cuda.synchronize()

            def ng_train():
                ng.forward(x, lengths=nl, training=True)
                ng.backward(g)
                cuda.synchronize()

            # correctness (and warm-up) before anything is timed
            xx = x.detach().requires_grad_(True)
            t_out, t_hn = torch_forward(xx)
            t_out.backward(g)
            n_out, n_hn = ng.forward(x, lengths=nl, training=True)
            n_dx, n_dh0, n_grads = ng.backward(g)
            errs = {"out": scaled_error(n_out.copy_to_host(), t_out.detach().cpu().numpy()),
                    "h_n": scaled_error(n_hn.copy_to_host(), t_hn.detach().cpu().numpy()),
                    "dx": scaled_error(n_dx.copy_to_host(), xx.grad.cpu().numpy())}
            for name, p in tg.named_parameters():
                errs[name] = scaled_error(n_grads[name], p.grad.cpu().numpy())
            worst = max(errs, key=errs.get)
            if errs[worst] > tol:
                sys.exit(f"gpu_compare.py: B={B} H={H}: numgru and torch disagree on {worst} "
                         f"(scaled error {errs[worst]:.2e} > {tol})")
            tg.zero_grad(set_to_none=True)
            torch_infer()
            ng_infer()
            times = {k: [] for k in ("ni", "ti", "nt", "tt")}
            for _ in range(args.repeat):
                for key, fn in (("ni", ng_infer), ("ti", torch_infer), ("nt", ng_train),
                                ("tt", torch_train)):
                    t0 = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - t0)
                    if key == "tt":
                        tg.zero_grad(set_to_none=True)
            med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            path = "persistent" if _cuda.backend().uses_persistent(dt) else "per-step"
            rows.append((B, H, med["ni"], med["ti"], med["ti"] / med["ni"], med["nt"], med["tt"],
                         med["tt"] / med["nt"], path, errs[worst]))
            print(f"B={B:4d} H={H:4d}  infer {med['ni']:8.3f} ms vs {med['ti']:8.3f} ms "
                  f"({med['ti'] / med['ni']:5.2f}x)  train {med['nt']:8.3f} ms vs "
                  f"{med['tt']:8.3f} ms ({med['tt'] / med['nt']:5.2f}x)  [{path}]", flush=True)

    name = torch.cuda.get_device_name(0)
    head = (f"numgru CUDA vs torch {torch.__version__} cuDNN nn.GRU, {name}, {dt}, T={T}, "
            f"I={I}, L={L}, {'variable lengths (packed)' if args.packed else 'equal lengths'}, "
            f"medians of {args.repeat}, {datetime.date.today().isoformat()}")
    if args.markdown:
        print(f"\n{head}\n")
        print("| B | H | numgru infer ms | cuDNN infer ms | speed-up | numgru train ms | "
              "cuDNN train ms | speed-up | numgru path |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f}x | {r[5]:.3f} | "
                  f"{r[6]:.3f} | {r[7]:.2f}x | {r[8]} |")
    else:
        print(head)


if __name__ == "__main__":
    main()
