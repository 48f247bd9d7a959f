"""Which runtime runs the CPU kernels' tasks: Numba's parallel runtime or numgru's native pool.

Every CPU task kernel launches itself through :func:`numgru._tasks.launch`; the control block it
is given (:func:`numgru._pool.ctl`) says which runtime runs the tasks:

- ``"numba"``: Numba's parallel runtime (:mod:`numgru._numba_runtime`): one ``prange``
  launcher on whichever threading layer Numba selected (tbb, omp, workqueue), governed by
  Numba's own settings. Portable: it runs wherever Numba's ``parallel=True`` does.
- ``"native"``: numgru's own worker pool (:mod:`numgru._pool`): workers that poll briefly after
  each launch and then sleep on a futex (Linux) or in short steps (elsewhere).

The choice, in order: :func:`set_threading` (a Python-level setting), else the environment
variable ``NUMGRU_THREADING`` (``numba`` or ``native``), else the platform's default
(:func:`default_runtime`): ``native`` on Linux x86-64, the one platform where it has run and
was measured faster (docs/changelog.md, "Task runtimes"), ``numba`` elsewhere. If the chosen
runtime cannot be built here (its compiled code fails to build or load, a platform it does not
know), numgru uses the other one and says so in one warning; ``numgru info`` shows the runtime
in use and why. Both give the same bits for the same number of threads.

This module is the one that knows both runtimes: it imports them, and hands :func:`activate`
down to :mod:`numgru._pool` (``_pool.start_with``) so that the first launch starts the chosen
one; neither runtime imports this module.
"""

import os
import platform
import sys
import threading
import warnings

from . import _numba_internals, _numba_runtime, _pool

RUNTIMES = ("numba", "native")

_lock = threading.RLock()
_setting = None            # set_threading's runtime, or None: the environment, else the default
_state = {"runtime": None, "reason": None}
_warned = set()
_forked = False            # this process is a forked child (of a process that imported numgru)


def default_runtime():
    """The platform's default runtime and why: ``("native", ...)`` where the native pool has
    run and measured faster than Numba's runtime (Linux x86-64), else ``("numba", ...)``."""
    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return "native", ("default on Linux x86-64, where it measured faster than Numba's "
                          "runtime (docs/performance.md)")
    return "numba", (f"default on {sys.platform} {machine}, where numgru's native pool has not "
                     "been measured")


def _validate(runtime, source):
    name = str(runtime).strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"{source} must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    return name


def requested():
    """The runtime asked for and why: :func:`set_threading`, ``NUMGRU_THREADING``, else the
    platform default. Raises ValueError for an unknown ``NUMGRU_THREADING``."""
    if _setting is not None:
        return _setting, "set by numgru.set_threading"
    env = os.environ.get("NUMGRU_THREADING", "").strip()
    if env:
        return _validate(env, "NUMGRU_THREADING"), "NUMGRU_THREADING"
    return default_runtime()


def set_threading(runtime=None):
    """Choose the runtime that runs numgru's CPU kernels' tasks, from the next launch on.

    Parameters
    ----------
    runtime : {"numba", "native"} or None, default=None
        ``"numba"``: Numba's parallel runtime (its threading layer, ``numba.set_num_threads``
        and ``NUMBA_THREADING_LAYER`` apply). ``"native"``: numgru's own worker pool. None:
        back to ``NUMGRU_THREADING``, else the platform's default.

    Returns
    -------
    str
        The runtime that was in use before (None if no kernel had launched yet).

    Notes
    -----
    Call it while no numgru computation runs in another thread. Results do not depend on the
    runtime (the same bits for the same number of threads); speed may (docs/performance.md).

    Examples
    --------
    >>> import numgru
    >>> previous = numgru.set_threading("numba")
    >>> numgru.get_threading()["runtime"]
    'numba'
    >>> _ = numgru.set_threading(None)
    """
    global _setting
    name = None if runtime is None else _validate(runtime, "runtime")
    with _lock:
        before = _state["runtime"]
        _setting = name
        _pool.use(None)
        _state.update(runtime=None, reason=None)
    return before


def get_threading():
    """The runtime that runs numgru's CPU kernels' tasks, and why (starts it if needed).

    Returns
    -------
    dict
        ``runtime`` ("numba" or "native"), ``reason`` (why this one), ``layer`` (Numba's
        threading layer: used by the "numba" runtime, and by a user's own ``parallel=True``
        code either way) and ``threads`` (``numba.get_num_threads()`` of this thread).

    Examples
    --------
    >>> import numgru
    >>> sorted(numgru.get_threading())
    ['layer', 'reason', 'runtime', 'threads']
    """
    import numba

    activate()
    threads = numba.get_num_threads()            # loads Numba's threading layer
    return {"runtime": _state["runtime"], "reason": _state["reason"],
            "layer": numba.threading_layer(), "threads": threads}


def _warn_once(message):
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _build(name):
    """The control block of runtime ``name`` (raises if it cannot be built here)."""
    if name == "native":
        return _pool.native_ctl(), None
    import numba

    numba.get_num_threads()                    # loads Numba's threading layer
    layer = numba.threading_layer()
    serial = None
    if _forked and layer == "omp" and _numba_internals.openmp_vendor() == "GNU":
        serial = ("in a forked child, GNU OpenMP cannot run parallel regions: tasks run on the "
                  "calling thread")
    return _numba_runtime.new(exclusive=layer == "workqueue", serial=serial is not None), serial


def activate():
    """Start the runtime to use (once; again after :func:`set_threading` or a fork) and return
    its control block. Falls back to the other runtime, with one warning, if it cannot be
    built; raises :class:`numgru._numba_internals.InternalsChanged` if Numba's calling
    convention, which both use, has changed."""
    with _lock:
        c = _pool.active()
        if c is not None:
            return c
        _numba_internals.check("launch")
        name, reason = requested()
        try:
            c, note = _build(name)
        except Exception as exc:  # noqa: BLE001 -- any failure to build: use the other one
            other = RUNTIMES[1 - RUNTIMES.index(name)]
            why = f"{type(exc).__name__}: {exc}"
            try:
                c, note = _build(other)
            except Exception as exc2:
                raise RuntimeError(f"numgru: neither task runtime can run here: {name} "
                                   f"({why}); {other} ({type(exc2).__name__}: {exc2})") from exc2
            _warn_once(f"numgru: the {name} task runtime ({reason}) cannot be used here "
                       f"({why}); using {other}")
            name, reason = other, f"fallback: the {name} runtime failed to build ({why})"
        if note:
            reason = f"{reason}; {note}"
        _state.update(runtime=name, reason=reason)
        _pool.use(c)
        return c


def _after_fork():
    global _forked, _lock
    _forked = True
    _lock = threading.RLock()
    _state.update(runtime=None, reason=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
_pool.start_with(activate)
