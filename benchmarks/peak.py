"""The machine's measured peak for float32 products: NumPy's BLAS sgemm and numgru's own packed
product (``numgru._gemm.mm_packed``), in GFLOP/s, on the same threads, at the shapes that
matter to numgru.

Usage::

    python benchmarks/peak.py [--threads 2] [--budget SECONDS]

Shapes (M, K, N), C = A @ W^T with A (M, K) and W (N, K):

- ``square``: 1024 x 1024 x 1024, the BLAS's best case (what "sgemm peak" means in
  docs/performance.md);
- ``lm decoder``: 208 x 512 x 10000, one block of the language model's logits at the seed
  configuration (8 MiB of logits, the size of the softmax's block before 2026-12-03);
- ``gru large``/``gru mid``: 128 x 256 x 768 and 32 x 128 x 384, the recurrent product of one
  step of compare_torch's large and mid shapes (all batch rows).

NumPy's ``np.dot`` runs with its BLAS held to ``--threads`` threads (threadpoolctl if it is
installed, else the ``OPENBLAS_NUM_THREADS`` that this script sets before importing NumPy).
numgru's product runs on ``--threads`` Python threads (``mm_packed`` releases the GIL), each
over its share of the rows (multiples of 8), the packed weight shared: the same split
numgru's kernels use. The packing (once per weight and layer call in numgru) is not timed.
Figures are medians of repetitions; each repetition runs the product enough times to last
about 20 ms.
"""

import argparse
import os
import statistics
import sys
import threading
import time

SHAPES = {
    "square": (1024, 1024, 1024),
    "lm decoder": (208, 512, 10000),
    "gru large": (128, 256, 768),
    "gru mid": (32, 128, 384),
}


def _median_gflops(run, flops, budget):
    """Median GFLOP/s of ``run(n)`` (n products per call), for about ``budget`` seconds."""
    run(1)                                        # warm (compilation, page faults)
    t0 = time.perf_counter()
    run(1)
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(1, int(0.02 / one))
    rates = []
    end = time.perf_counter() + budget
    while time.perf_counter() < end or len(rates) < 5:
        t0 = time.perf_counter()
        run(n)
        rates.append(n * flops / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def _numpy_runner(np, A, W, C):
    Wt = W.T

    def run(n):
        for _ in range(n):
            np.dot(A, Wt, out=C)
    return run


def _numgru_runner(np, gemm, A, W, C, threads):
    Wp = gemm.pack_nt(W)
    nc = Wp.shape[2]
    M = A.shape[0]
    Cp = np.zeros((M, Wp.shape[0] * nc), dtype=C.dtype)
    # rows per thread: multiples of 8 (mm_packed's contract), as even as they come
    tiles = M // gemm.ROWS
    bounds = [gemm.ROWS * (tiles * i // threads) for i in range(threads + 1)]
    parts = [(A[r0:r1], Cp[r0:r1]) for r0, r1 in zip(bounds, bounds[1:]) if r1 > r0]
    mm = gemm.mm_packed

    def work(a, c, n):
        for _ in range(n):
            mm(a, Wp, c)

    def run(n):
        ts = [threading.Thread(target=work, args=(a, c, n)) for a, c in parts[1:]]
        for t in ts:
            t.start()
        work(*parts[0], n)
        for t in ts:
            t.join()
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=2.0, help="seconds per shape and product")
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np

    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(args.threads)     # NumPy imported: limit its BLAS now
    except ImportError:
        limit = None
    from numgru import _gemm
    import llvmlite.binding as llvm

    print(f"float32 products, {args.threads} threads; numgru's packed product: "
          f"{_gemm.VECTOR_BYTES * 8}-bit vectors ({_gemm.MM_PACKED_IMPL}); "
          f"CPU {llvm.get_host_cpu_name()}")
    print(f"{'shape':12s} {'M x K x N':>18s} {'numpy sgemm':>12s} {'numgru packed':>14s}")
    rng = np.random.default_rng(0)
    for name, (M, K, N) in SHAPES.items():
        A = rng.standard_normal((M, K)).astype(np.float32)
        W = rng.standard_normal((N, K)).astype(np.float32)
        C = np.empty((M, N), np.float32)
        flops = 2.0 * M * K * N
        g_np = _median_gflops(_numpy_runner(np, A, W, C), flops, args.budget)
        g_ng = _median_gflops(_numgru_runner(np, _gemm, A, W, C, args.threads), flops,
                              args.budget)
        print(f"{name:12s} {f'{M} x {K} x {N}':>18s} {g_np:9.0f} GF {g_ng:11.0f} GF")
    del limit                                     # held to the end on purpose
    return 0


if __name__ == "__main__":
    sys.exit(main())
