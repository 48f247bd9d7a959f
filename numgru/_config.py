"""One place for the knobs that shape how kernels are compiled.

- ``FASTMATH``: the LLVM fast-math flags every CPU kernel is compiled with. ``reassoc`` lets LLVM
  vectorise the dot-product reductions of the recurrent matrix product; ``contract`` allows FMA.
  ``nnan``/``ninf`` are deliberately absent so that NaN/inf checks and the clamps in the
  activation functions are never optimised away.
- ``CACHE``: Numba's on-disk compile cache (``cache=True``). Numba writes it next to the module's
  source (``__pycache__``) or, if that directory is read-only, to ``NUMBA_CACHE_DIR`` or the
  user cache directory. ``NUMGRU_NO_CACHE=1`` turns it off.
- ``PARALLEL_MIN_WORK``: below this many multiply-adds per recurrent step the kernels run on one
  thread, because waking a second thread costs more than it saves.
"""

import os

FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}
CACHE = os.environ.get("NUMGRU_NO_CACHE", "") not in ("1", "true", "yes")
PARALLEL_MIN_WORK = 16384


def select_threading_layer():
    """Prefer a thread-safe Numba threading layer (TBB, else OpenMP) unless the user chose one.

    Numba's default fallback, ``workqueue``, aborts the process when two Python threads enter a
    parallel kernel at once; TBB and OpenMP do not. Called once at import, before any parallel
    kernel runs. Returns the name of the layer requested.
    """
    import numba

    if os.environ.get("NUMBA_THREADING_LAYER"):
        return numba.config.THREADING_LAYER
    available = []
    for name, module in (("tbb", "numba.np.ufunc.tbbpool"), ("omp", "numba.np.ufunc.omppool")):
        try:
            __import__(module)
            available.append(name)
        except Exception:  # ImportError or a missing shared library
            pass
    if available:
        numba.config.THREADING_LAYER = available[0]
    return numba.config.THREADING_LAYER
