"""Every use numgru makes of Numba's internals (names without a stability promise), in one place.

numgru needs a few things Numba has no public API for:

- **Launch** (:mod:`numgru._tasks`): a task kernel's launch calls the kernel's own compiled
  function for one task with Numba's calling convention (``context.call_conv.call_function``,
  ``return_status_propagate``, ``return_user_exc``) and counts its LLVM arguments
  (``context.get_arg_packer``). Both runtimes (``numgru._threading``) launch this way.
- **Cache** (:mod:`numgru._compile_ahead`, ``numgru info``): load one specialization of a
  dispatcher from its on-disk cache without compiling (``disp._cache.load_overload``,
  ``disp._cache_hits``, ``disp.add_overload``, ``targetctx.insert_user_function``, under
  ``global_compiler_lock``), and the directory a dispatcher's cache was set up with
  (``disp._cache.cache_path``, ``disp._cache._impl.locator``).
- **Threading layers** (:mod:`numgru._config`): whether Numba's ``tbb`` and ``omp`` layers
  load (``numba.np.ufunc.tbbpool`` / ``omppool``) and which OpenMP runtime the latter uses.

Each group has a self-check, run once at the group's first use (:func:`check`): it looks for
every name the group uses, with the shape numgru expects, and raises :class:`InternalsChanged`
naming what is missing. The callers turn that into a fallback: compile-ahead switches itself
off, and the native pool falls back to Numba's parallel runtime, each with one warning. The
launch group has no fallback (both runtimes launch through it), so a changed calling
convention is a clear error at the first launch, naming the Numba version, rather than an
``AttributeError`` deep in a compile. ``TESTED_NUMBA`` is the range these checks and numgru's
test suite have run on (``pyproject.toml`` pins the same range).
"""

import os
import threading

import numba

#: The numba range numgru is tested on (lower inclusive, upper exclusive at the next minor):
#: CI runs the whole suite on the newest in range and, in a second environment with the
#: ``aeon`` extra (aeon 1.6 pins numba<0.64), the kernel, runtime, estimator and aeon suites on
#: numba 0.63 (``.ci/run``).
TESTED_NUMBA = ("0.63", "0.69")


class InternalsChanged(RuntimeError):
    """A Numba internal that numgru uses is missing or has changed."""


_results = {}
_lock = threading.Lock()


def _need(obj, *names, what):
    missing = [n for n in names if not callable(getattr(obj, n, None))]
    if missing:
        raise InternalsChanged(f"numba {numba.__version__}: {what} has no "
                               f"{', '.join(missing)} (numgru is tested with numba "
                               f">={TESTED_NUMBA[0]},<{TESTED_NUMBA[1]})")


def _check_launch():
    from numba.core import callconv, cpu

    _need(cpu.CPUContext, "get_arg_packer", "cast", "make_tuple", "get_value_type",
          "get_dummy_value", what="numba.core.cpu.CPUContext")
    _need(callconv.CPUCallConv, "call_function", "return_status_propagate", "return_user_exc",
          what="numba.core.callconv.CPUCallConv")
    from numba.core import datamodel

    if not hasattr(datamodel.ArgPacker, "argument_types"):
        raise InternalsChanged(f"numba {numba.__version__}: ArgPacker.argument_types missing")


def _check_cache():
    from numba.core import caching, dispatcher
    from numba.core.compiler_lock import global_compiler_lock  # noqa: F401

    _need(dispatcher.Dispatcher, "add_overload", what="numba.core.dispatcher.Dispatcher")
    _need(caching.Cache, "load_overload", what="numba.core.caching.Cache")
    _need(caching.UserProvidedCacheLocator, "get_cache_path",
          what="numba.core.caching.UserProvidedCacheLocator")
    if not isinstance(getattr(caching.Cache, "cache_path", None), property) or \
            not isinstance(getattr(caching.CacheImpl, "locator", None), property):
        raise InternalsChanged(f"numba {numba.__version__}: Cache.cache_path or "
                               "CacheImpl.locator missing")
    from numba.core import cpu

    _need(cpu.CPUContext, "insert_user_function", what="numba.core.cpu.CPUContext")


_CHECKS = {"launch": _check_launch, "cache": _check_cache}


def check(group):
    """Run the self-check of ``group`` ("launch" or "cache") once per process; raises
    :class:`InternalsChanged` (every time it is asked) if it failed."""
    res = _results.get(group)
    if res is None:
        with _lock:
            res = _results.get(group)
            if res is None:
                try:
                    _CHECKS[group]()
                    res = True
                except InternalsChanged as exc:
                    res = exc
                except Exception as exc:  # noqa: BLE001 -- an import error and the like
                    res = InternalsChanged(f"numba {numba.__version__}: {group} internals: "
                                           f"{type(exc).__name__}: {exc}")
                _results[group] = res
    if res is not True:
        raise res


def ok(group):
    """Whether the self-check of ``group`` passes (see :func:`check`)."""
    try:
        check(group)
    except InternalsChanged:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# launch: used inside the codegen of numgru._tasks.launch
# ---------------------------------------------------------------------------------------------


def llvm_arg_count(context, argtys):
    """How many LLVM arguments a Numba function of the front-end types ``argtys`` takes, not
    counting the calling convention's own (see :data:`CALL_CONV_EXTRA_ARGS`)."""
    return len(context.get_arg_packer(argtys).argument_types)


#: The calling convention's own leading arguments of a CPU function (return slot, exception
#: info).
CALL_CONV_EXTRA_ARGS = 2


def call_function(context, builder, fn, argtys, args):
    """Call the Numba-compiled LLVM function ``fn`` (returning None) on ``args``; returns the
    call's status (``.is_error`` an i1)."""
    status, _ = context.call_conv.call_function(builder, fn, numba.types.none, argtys, args)
    return status


def propagate(context, builder, status):
    """Return from the function being built with the exception of ``status``."""
    context.call_conv.return_status_propagate(builder, status)


def raise_runtime_error(context, builder, message):
    """Return from the function being built with ``RuntimeError(message)``."""
    context.call_conv.return_user_exc(builder, RuntimeError, (message,))


# ---------------------------------------------------------------------------------------------
# cache: numgru._compile_ahead and numgru info
# ---------------------------------------------------------------------------------------------


def load_cached(disp, argtypes):
    """True if the dispatcher ``disp`` has the specialization ``argtypes``, now or after
    loading it from its on-disk cache (what ``Dispatcher.compile`` does on a cache hit), False
    if it would compile, None if it has no on-disk cache. Raises :class:`InternalsChanged`."""
    check("cache")
    from numba.core.compiler_lock import global_compiler_lock

    argtypes = tuple(argtypes)
    with global_compiler_lock:
        if argtypes in disp.overloads:
            return True
        cache = getattr(disp, "_cache", None)
        if cache is None or type(cache).__name__ == "NullCache":
            return None
        cres = cache.load_overload(argtypes, disp.targetctx)
        if cres is None:
            return False
        disp._cache_hits[argtypes] += 1
        if not cres.objectmode:
            disp.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        disp.add_overload(cres)
        return True


def cache_path(disp):
    """The directory of ``disp``'s on-disk cache, or None when it has none."""
    cache = getattr(disp, "_cache", None)
    if cache is None or type(cache).__name__ == "NullCache":
        return None
    check("cache")
    return cache.cache_path


def cached_signatures(disp):
    """The argument types (as strings) of every specialization of ``disp`` in its on-disk cache
    index; empty when it has no cache, or the index is stale or missing. Never compiles."""
    cache = getattr(disp, "_cache", None)
    if cache is None or type(cache).__name__ == "NullCache":
        return []
    check("cache")
    index = cache._cache_file._load_index()             # {} when stale or missing
    return [str(key[0]) for key in index]


def user_cache_dir(disp):
    """The ``NUMBA_CACHE_DIR`` that ``disp``'s cache was set up with (Numba picks the directory
    when the kernel is defined, at import; the variable may have changed since), or None when
    it uses the default places (next to the source, or the user cache directory)."""
    cache = getattr(disp, "_cache", None)
    if cache is None or type(cache).__name__ == "NullCache":
        return None
    check("cache")
    locator = cache._impl.locator
    if type(locator).__name__ == "UserProvidedCacheLocator":
        return os.path.dirname(locator.get_cache_path())
    return None


# ---------------------------------------------------------------------------------------------
# threading layers: numgru._config
# ---------------------------------------------------------------------------------------------

_LAYER_MODULES = {"tbb": "numba.np.ufunc.tbbpool", "omp": "numba.np.ufunc.omppool"}


def layer_loads(name):
    """Whether Numba's threading layer ``name`` ("tbb" or "omp") can be loaded here."""
    try:
        __import__(_LAYER_MODULES[name])
        return True
    except Exception:  # noqa: BLE001 -- ImportError or a missing shared library
        return False


def openmp_vendor():
    """The OpenMP runtime of Numba's ``omp`` layer ("GNU", "Intel", "MS", ...), or None."""
    try:
        from numba.np.ufunc import omppool

        return getattr(omppool, "openmp_vendor", None)
    except Exception:  # noqa: BLE001
        return None
