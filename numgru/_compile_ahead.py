"""Compile a kernel in a helper process while this process compiles another (cold starts).

A first training step (of the GRU and RNN layers, and of the general layer-norm and
recurrent-dropout layers) compiles the forward chunk kernel (~5 s on the reference 2-core
machine) and then the backward one (~4 s), one after the other, while the second core idles. At
the first training forward, :func:`ahead` asks: can the backward kernel's specialization (its
argument types, predicted from the forward's) be loaded from Numba's on-disk cache? If so it is
loaded now. If not, a helper process is started that imports only the kernel modules (~0.4 s,
not numgru's estimators), compiles that specialization and writes it to the cache, while this
process compiles the forward. Before its first call the backward waits for the helper
(:func:`wait`); Numba then finds the specialization in the cache and loads it (~0.1 s). A failed
or killed helper costs nothing but its time: Numba then compiles here as it would have.

Used only when it can help and is allowed to:

- the on-disk cache is on (not ``NUMGRU_NO_CACHE=1``) and writable;
- numgru may use at least 2 threads (``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS`` and
  threadpoolctl limits respected: a process limited to one CPU gets no helper) and the
  process may run on at least 2 CPUs;
- one of them is idle now (Linux: ``/proc/loadavg``'s count of running threads): beside a busy
  process a helper would only compete for the same cores;
- ``sys.executable`` is a Python interpreter (not a frozen or embedding application);
- ``NUMGRU_COMPILE_AHEAD`` is not ``0`` (``1`` skips the idle-CPU check; unset is the default).
- the Numba internals it uses to load a cached kernel pass their self-check
  (:mod:`numgru._numba_internals`); if they do not, compile-ahead is off, with one warning.

Helpers still running when the process exits are stopped. ``benchmarks/cold_fit.py`` measures
the cold first fit with and without (``NUMGRU_COMPILE_AHEAD=0``).
"""

import atexit
import importlib
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings

from . import _numba_internals

#: Longest wait for a helper before compiling here instead (a helper on a machine so busy
#: that it has not finished by then is abandoned: this process compiles the kernel itself).
WAIT_TIMEOUT_S = 300.0

# Windows: no console window for the helper (a GUI program's would flash one up)
_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)

_lock = threading.Lock()
_pending = []          # [(pid of this process, dispatcher, Popen)]


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                          # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def _setting():
    return os.environ.get("NUMGRU_COMPILE_AHEAD", "").strip().lower()


def _forced():
    return _setting() in ("1", "true", "yes")


def enabled(num_threads):
    """Whether a helper may be started, for a process allowed ``num_threads`` threads."""
    if _setting() in ("0", "false", "no"):
        return False
    if not _numba_internals.ok("cache"):
        _warn_unavailable()
        return False
    from ._config import CACHE
    return bool(CACHE and num_threads >= 2 and _python_executable() and _usable_cpus() >= 2)


_WARNED = []


def _warn_unavailable():
    """One warning per process: compile-ahead is off because Numba's cache internals changed."""
    if not _WARNED:
        _WARNED.append(True)
        try:
            _numba_internals.check("cache")
        except _numba_internals.InternalsChanged as exc:
            warnings.warn(f"numgru: compile-ahead is off ({exc}); cold first fits compile "
                          "every kernel in this process", RuntimeWarning, stacklevel=4)


def _python_executable():
    """Whether ``sys.executable`` is a Python interpreter that can run ``-c``: not a frozen
    application (PyInstaller and the like) or an embedding program (uWSGI, ...), which would
    start another copy of themselves."""
    exe = sys.executable or ""
    return (not getattr(sys, "frozen", False)
            and os.path.basename(exe).lower().startswith("python") and os.path.isfile(exe))


def running_now():
    """How many threads the system is running right now, this one included: the smallest of a
    few samples of ``/proc/loadavg``'s running count 2 ms apart (so a thread that runs for a
    moment is not counted). None where there is no ``/proc/loadavg`` (not Linux)."""
    samples = []
    try:
        for i in range(5):
            if i:
                time.sleep(0.002)
            with open("/proc/loadavg") as f:
                samples.append(int(f.read().split()[3].split("/")[0]))
    except (OSError, ValueError, IndexError):
        return None
    return min(samples)


def cpu_free():
    """Whether a CPU is idle beside this thread: a helper would not compete with other work.
    Measured: with a busy process on the second of two cores, a helper made a cold first fit
    ~5% slower (12.5 s against 11.8 s) instead of ~40% faster."""
    running = running_now()
    return running is None or running < _usable_cpus()


def _load_cached(disp, argtypes):
    """True if ``disp`` has the specialization ``argtypes``, now or after loading it from the
    on-disk cache, False if it would compile, None if it has no on-disk cache (a helper could
    not hand the kernel over). Numba's internals: :func:`numgru._numba_internals.load_cached`."""
    return _numba_internals.load_cached(disp, argtypes)


def _user_cache_dir(disp):
    """The ``NUMBA_CACHE_DIR`` that ``disp``'s cache was set up with, or None (see
    :func:`numgru._numba_internals.user_cache_dir`)."""
    return _numba_internals.user_cache_dir(disp)


def ahead(module, name, argtypes, num_threads):
    """Make sure the kernel ``module.name`` (a Numba dispatcher with ``cache=True``) has the
    specialization ``argtypes`` by its first call: load it from the cache now, or start a helper
    process compiling it into the cache. Returns True when a helper was started."""
    _reap()
    if not enabled(num_threads):
        return False
    disp = getattr(importlib.import_module(module), name)
    with _lock:                                        # one helper per kernel at a time
        if any(d is disp and pid == os.getpid() for pid, d, _ in _pending):
            return False
        try:
            if _load_cached(disp, argtypes) is not False:
                return False
            if not _forced() and not cpu_free():
                return False
            payload = pickle.dumps([(module, name, tuple(argtypes))])
        except Exception:                              # noqa: BLE001 -- an optimisation only
            return False
        env = dict(os.environ, NUMGRU_COMPILE_AHEAD="0")
        env.pop("NUMBA_CACHE_DIR", None)
        cache_dir = _user_cache_dir(disp)
        if cache_dir:                                  # the directory this kernel's cache reads
            env["NUMBA_CACHE_DIR"] = cache_dir
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
        try:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, root], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=env, creationflags=_NO_WINDOW)
            proc.stdin.write(payload)
            proc.stdin.close()
        except Exception:                              # noqa: BLE001 -- then compile here
            return False
        _pending.append((os.getpid(), disp, proc))
    return True


def wait(disp):
    """Before a first call of ``disp``: wait for any helper compiling it (nothing to do, and
    no cost beyond a list check, when there is none)."""
    if not _pending:
        return
    pid = os.getpid()
    with _lock:
        mine = [p for q, d, p in _pending if d is disp and q == pid]
    for proc in mine:
        try:
            proc.wait(timeout=WAIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _reap()


def _reap():
    """Forget finished helpers (and those of the parent of a forked process)."""
    if not _pending:
        return
    pid = os.getpid()
    with _lock:
        _pending[:] = [e for e in _pending if e[0] == pid and e[2].poll() is None]


@atexit.register
def _stop_all():
    pid = os.getpid()
    with _lock:
        procs = [p for q, _, p in _pending if q == pid]
        _pending.clear()
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The helper: numgru's kernel modules without the package's __init__ (which imports the
# estimators and scikit-learn: ~1 s more), then Dispatcher.compile, which writes the cache.
_CHILD = r"""
import os, pickle, sys, types
pkg = types.ModuleType("numgru")
pkg.__path__ = [os.path.join(sys.argv[1], "numgru")]
sys.modules["numgru"] = pkg
import importlib
for module, name, argtypes in pickle.loads(sys.stdin.buffer.read()):
    getattr(importlib.import_module(module), name).compile(argtypes)
"""
