"""Numba's on-disk cache against numgru's kernel sources: cached kernels of other sources go.

Numba keys a cached kernel on the source file that defines it (its modification time and size),
not on the modules whose code it compiled in: a kernel of ``_cpu.py`` inlines ``_gemm.py``'s
micro-kernel and ``_math.py``'s activations and reads ``_config.py``'s constants, and a change
to any of those leaves the cached kernel in use (numba/numba#1833, documented by Numba). A pip
upgrade rewrites every file, so it is safe; a git checkout, a pull or an edit of an editable
install is not: the old code keeps running, silently.

So at import, :func:`refresh` hashes the package's kernel sources (every module that imports
Numba or llvmlite: kernels, their helpers and code generators, ``_config``) and compares the
digest with the one stamped in the cache directory. When they differ (or there is no stamp),
numgru's cache files there are deleted and the new digest is stamped: the next call compiles
again (seconds) instead of running old code. About 1 ms per import. Off with the cache
(``NUMGRU_NO_CACHE=1``); a cache directory it cannot write is left alone.
"""

import hashlib
import os
import re

STAMP = "numgru-kernel-sources.sha256"
# a module with compiled code (or code that generates it) imports one of these
_KERNEL_SOURCE = re.compile(rb"^\s*(from|import)\s+(numba|llvmlite)\b", re.MULTILINE)


def _kernel_files(package_dir):
    """``[(name, bytes)]`` of the ``.py`` files of ``package_dir`` that import Numba or
    llvmlite, sorted by name."""
    out = []
    for name in sorted(os.listdir(package_dir)):
        if name.endswith(".py"):
            with open(os.path.join(package_dir, name), "rb") as f:
                data = f.read()
            if _KERNEL_SOURCE.search(data):
                out.append((name, data))
    return out


def kernel_sources(package_dir):
    """Sorted names of the ``.py`` files of ``package_dir`` that import Numba or llvmlite."""
    return [name for name, _ in _kernel_files(package_dir)]


def digest(package_dir):
    """SHA-256 over the names and bytes of the kernel sources of ``package_dir``."""
    h = hashlib.sha256()
    for name, data in _kernel_files(package_dir):
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def refresh(cache_dir, package_dir):
    """Delete the cached kernels of ``package_dir``'s modules in ``cache_dir`` unless the stamp
    there matches the sources' digest; then stamp it. Returns the deleted file names."""
    want = digest(package_dir)
    stamp = os.path.join(cache_dir, STAMP)
    try:
        with open(stamp) as f:
            if f.read().strip() == want:
                return []
    except OSError:
        pass
    modules = {name[:-3] for name in os.listdir(package_dir) if name.endswith(".py")}
    deleted = []
    for name in os.listdir(cache_dir):
        # Numba's files: <module>.<function>-<line>.py<version>.nbi, and .<n>.nbc beside it
        if name.endswith((".nbi", ".nbc")) and name.split(".", 1)[0] in modules:
            try:
                os.remove(os.path.join(cache_dir, name))
                deleted.append(name)
            except FileNotFoundError:          # another process got there first
                pass
    tmp = f"{stamp}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(want + "\n")
    os.replace(tmp, stamp)
    return deleted


def _probe():
    """A function of this package: where Numba would cache it is where numgru's kernels go."""


def check():
    """:func:`refresh` numgru's own cache directory (at import; silent, never raises)."""
    from ._config import CACHE

    if not CACHE:
        return
    try:
        from numba.core.caching import FunctionCache

        cache_dir = FunctionCache(_probe)._cache_path
        refresh(cache_dir, os.path.dirname(os.path.abspath(__file__)))
    except Exception:  # a read-only or vanished directory, or another Numba's internals
        pass
