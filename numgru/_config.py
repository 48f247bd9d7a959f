"""One place for the knobs that shape how kernels are compiled.

- ``FASTMATH``: the LLVM fast-math flags every CPU kernel is compiled with. ``reassoc`` lets LLVM
  vectorise the dot-product reductions of the recurrent matrix product; ``contract`` allows FMA.
  ``nnan``/``ninf`` are deliberately absent so that NaN/inf checks and the clamps in the
  activation functions are never optimised away.
- ``CACHE``: Numba's on-disk compile cache (``cache=True``). Numba writes it next to the module's
  source (``__pycache__``) or, if that directory is read-only, to ``NUMBA_CACHE_DIR`` or the
  user cache directory. ``NUMGRU_NO_CACHE=1`` turns it off.
- ``GEMM_REFERENCE``: ``NUMGRU_GEMM_REFERENCE=1`` makes ``numgru._gemm.mm_packed`` the plain
  Numba reference product instead of the LLVM-IR micro-kernel (same contract and results, much
  slower): a fallback, and a way to rule the micro-kernel out when results look wrong. Read once
  at import. The kernels that call ``mm_packed`` are compiled with it, so while it is set the
  on-disk cache is off (a cached build would keep the other product).
- ``PARALLEL_MIN_WORK``: below this many multiply-adds per recurrent step the kernels run on one
  thread, because waking a second thread costs more than it saves. ``INFERENCE_MIN_WORK``: the
  same for a forward pass that saves nothing for a backward (inference), which gains from two
  threads from less work on (measured with the native pool, 2026-12-01: 1.2-1.7x at 1-4k
  multiply-adds per step; training steps did not gain, some lost up to 20%).
- ``SOFTMAX_BLOCK_BYTES``: the language-model softmax (``softmax_xent``, ``softmax_logprob``)
  never holds the logits of all rows at once: it works on blocks of rows whose (rows, V) logits
  take at most this many bytes (at least one row per block). Read on every call (not compiled
  in), so tests shrink it; environment ``NUMGRU_SOFTMAX_BLOCK_BYTES``, default 32 MiB (the
  language model's seed configuration, 700 rows of 10,000 float32 logits, in one block: its
  training window 227-237 ms against 246 with 8 MiB (four blocks), the decoder's products 79-82
  against 100 ms, 2-vCPU AMD EPYC, 2026-12-03: more rows per BLAS call, the weight read once).
- Matrix products: which kernel computes which product is one rule, documented in
  :mod:`numgru._gemm` (packed micro-kernel or small register-blocked kernel for the per-step
  recurrent products, BLAS per thread block for the products over all timesteps).

The kernels read these values at compile time. Numba's cache does not notice when they change,
but numgru does: :mod:`numgru._cache_guard` drops the cached kernels when this file or any other
kernel source changed.
"""

import os
import threading

FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}
# NUMGRU_GEMM_REFERENCE=1: numgru._gemm.mm_packed is the plain Numba reference, not the IR kernel
GEMM_REFERENCE = os.environ.get("NUMGRU_GEMM_REFERENCE", "") in ("1", "true", "yes")
# the cache is off with the reference product: cached kernels would keep the micro-kernel
CACHE = os.environ.get("NUMGRU_NO_CACHE", "") not in ("1", "true", "yes") and not GEMM_REFERENCE
# multiply-adds of one recurrent step (B * gates * H * H) below which a recurrence runs as one
# chunk on the calling thread (see the list above; 16384 = 1 << 14)
PARALLEL_MIN_WORK = 16384
# the same for an inference forward (it stores nothing for a backward), measured with the native
# pool 2026-12-01 (the list above): two threads gained 1.2-1.7x from 1-4k multiply-adds per step
INFERENCE_MIN_WORK = 1024
# multiply-adds of one step of one sequence (generation: batch 1, one timestep) below which its
# products stay on the calling thread instead of being split over the weights' rows (128 KB of
# float32 weights; 1 << 18 while a launch cost ~30 us: generation from a V=2000, 2 x 128 language
# model ran at 6.6k tokens/s with 1 << 18, 10.3k with 1 << 15 or 1 << 13, paired, 2026-12-01).
# numgru._cpu (the GRU step) and numgru._cpu_lm (the decoder's row) read it.
SPLIT_STEP_MIN_WORK = 1 << 15
# the language-model softmax's block of logits: (rows, V) * itemsize at most this many bytes
SOFTMAX_BLOCK_BYTES = int(os.environ.get("NUMGRU_SOFTMAX_BLOCK_BYTES", "") or 32 * 1024 * 1024)

# CUDA (numgru._cuda, _cuda_launch, _cuda_norm, _cuda_lm). The kernels are rebuilt per geometry, and every value is read when a
# kernel is launched, so tests shrink them (monkeypatch) to make several blocks run under the
# simulator.
# Launch geometry: threads per block of the recurrence and elementwise kernels, batch rows each
# recurrence thread carries (its weight reads are shared by them), the tile edge of the
# shared-memory GEMM, and the most blocks of a one-dimensional launch (grid-stride loops cover
# the rest). Chosen when the CUDA backend came in (2026-11-23: 128 threads, 4 rows, 16 x 16
# tiles; 65535 is CUDA's grid limit in y and z, kept for x too), not measured on a GPU: none has
# been lent yet (docs/performance.md, "GPU").
CUDA_THREADS_PER_BLOCK = 128
CUDA_ROWS_PER_THREAD = 4
CUDA_TILE = 16
CUDA_MAX_GRID_BLOCKS = 65535
# Persistent recurrence kernels (one cooperative launch per layer) on a real GPU: the default of
# CUDABackend(persistent=None). NUMGRU_CUDA_PERSISTENT=0 keeps to one launch per step; a backend
# made with persistent=True or False ignores this.
CUDA_PERSISTENT = os.environ.get("NUMGRU_CUDA_PERSISTENT", "1") not in ("0", "false", "no")
# The self-check each CUDABackend(persistent=None) runs once per dtype and geometry before using
# the persistent kernels: (B, T, H, D) of a random layer run both ways (None: (5, 6,
# 3 * CUDA_THREADS_PER_BLOCK + 7, 2), several blocks), and the tolerance (rtol = atol) by dtype
# within which persistent and per-step results must agree.
CUDA_SELF_CHECK_SHAPE = None
CUDA_SELF_CHECK_TOL = {"float32": 1e-4, "float64": 1e-10}


def select_threading_layer():
    """Prefer a thread-safe Numba threading layer (TBB, else OpenMP) unless the user chose one.

    The layer runs numgru's kernels' tasks under Numba's parallel runtime
    (``NUMGRU_THREADING=numba``, :mod:`numgru._threading`) and a user's own ``parallel=True``
    code in the same process either way. Numba's fallback, ``workqueue``, aborts the process
    when two Python threads enter a parallel region at once (numgru serialises its own launches
    there, but cannot serialise a user's); TBB and OpenMP do not. The layer matters to the
    native pool too: numgru reads the thread count from ``numba.get_num_threads`` (which starts
    the layer), and the OpenMP layer loads the OpenMP runtime through which
    ``threadpoolctl.threadpool_limits`` reaches numgru (see ``_ComputeThreads``). Called once at
    import; ``NUMBA_THREADING_LAYER`` (the user's choice) wins. Returns the name of the layer
    requested.
    """
    import numba

    from . import _numba_internals

    if os.environ.get("NUMBA_THREADING_LAYER"):
        return numba.config.THREADING_LAYER
    available = [name for name in ("tbb", "omp") if _numba_internals.layer_loads(name)]
    if available:
        numba.config.THREADING_LAYER = available[0]
    return numba.config.THREADING_LAYER


class _ComputeThreads:
    """The thread settings of a numgru computation, held while it runs and restored after.

    1. Every loaded BLAS is held to one thread. numgru calls BLAS (SciPy's, through Numba's
       ``np.dot``) from inside its task threads (the native pool's or Numba's, see
       :mod:`numgru._threading`), each on its own block of rows. A multi-threaded BLAS there, or
       NumPy's BLAS threads still spinning after a small product elsewhere in a training step,
       would fight numgru's task threads for the same cores: measured here, a float64 training
       epoch ran 20x slower that way. The previous thread counts are restored
       when the last concurrent user leaves, so the rest of the program keeps its BLAS settings.
    2. Numba's thread count for the calling thread is capped at the OpenMP limit in force:
       ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits(n)`` (which sets the OpenMP
       runtimes' limit) are honoured as scikit-learn's own OpenMP code honours them, and so is
       ``NUMBA_NUM_THREADS`` / ``numba.set_num_threads`` (the starting value). Numba's count is
       per calling thread, so concurrent calls from other Python threads are not affected; the
       CPU backend splits a launch into at most that many tasks.

    Re-entrant and thread-safe.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []
        self._libs = None
        self._omp = []
        self._env_limit = None
        self._local = threading.local()

    def _find(self):
        if self._libs is None:
            self._omp = []
            env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
            self._env_limit = int(env) if env.isdigit() and int(env) >= 1 else None
            try:
                import numba
                import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba uses)
                from threadpoolctl import ThreadpoolController

                numba.get_num_threads()          # starts Numba's threading layer (its OpenMP)
                controllers = ThreadpoolController().lib_controllers
                self._libs = [c for c in controllers if getattr(c, "user_api", None) == "blas"]
                for c in controllers:            # omp_get_max_threads of each OpenMP runtime
                    fn = getattr(getattr(c, "dynlib", None), "omp_get_max_threads", None)
                    if getattr(c, "user_api", None) == "openmp" and fn is not None:
                        self._omp.append(fn)
            except Exception:  # no threadpoolctl or an unknown library: nothing to hold
                self._libs = []
        return self._libs

    def limit(self, n=None):
        """The most threads a numgru kernel may use here and now (at least 1); ``n``: Numba's
        current count for this thread, if the caller has it."""
        self._find()
        if n is None:
            import numba

            n = numba.get_num_threads()
        for fn in self._omp:
            m = fn()
            if 0 < m < n:
                n = m
        if self._env_limit is not None and self._env_limit < n:
            n = self._env_limit
        return n

    def __enter__(self):
        import numba

        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        before = numba.get_num_threads()
        n = self.limit(before)
        if n < before:
            numba.set_num_threads(n)
            stack.append(before)
        else:
            stack.append(0)
        with self._lock:
            if self._depth == 0:
                self._saved = []
                for lib in self._libs:
                    try:
                        m = lib.get_num_threads()
                        if m != 1:
                            lib.set_num_threads(1)
                            self._saved.append((lib, m))
                    except Exception:
                        pass
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, n in self._saved:
                    try:
                        lib.set_num_threads(n)
                    except Exception:
                        pass
                self._saved = []
        before = self._local.stack.pop()
        if before:
            import numba

            numba.set_num_threads(before)
        return False


compute_threads = _ComputeThreads()
#: The former name of :data:`compute_threads` (it held BLAS only).
blas_single_threaded = compute_threads
