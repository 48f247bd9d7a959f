"""numgru._cache_guard: cached kernels compiled from other kernel sources are dropped (Numba's
cache keys a kernel on its own file only, numba/numba#1833)."""

import os
import subprocess
import sys

from numgru import _cache_guard


def _package(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "kern.py").write_text("from numba import njit\n\n@njit\ndef f(x):\n    return x\n")
    (pkg / "helper.py").write_text("import llvmlite\nK = 3\n")
    (pkg / "front.py").write_text("def g():\n    return 1\n")
    cache = pkg / "__pycache__"
    cache.mkdir()
    return pkg, cache


def _fill(cache):
    names = ["kern.f-3.py311.nbi", "kern.f-3.py311.1.nbc", "helper.h-1.py311.nbi",
             "other_pkg.f-1.py311.nbi", "kern.cpython-311.pyc"]
    for name in names:
        (cache / name).write_text("x")
    return names


def test_only_numba_and_llvmlite_modules_are_kernel_sources(tmp_path):
    pkg, _ = _package(tmp_path)
    assert _cache_guard.kernel_sources(pkg) == ["helper.py", "kern.py"]


def test_a_changed_kernel_source_drops_the_package_cache(tmp_path):
    pkg, cache = _package(tmp_path)
    _fill(cache)
    # no stamp yet: the cache's sources are unknown, so the package's kernels go
    deleted = _cache_guard.refresh(cache, pkg)
    assert sorted(deleted) == ["helper.h-1.py311.nbi", "kern.f-3.py311.1.nbc",
                               "kern.f-3.py311.nbi"]
    left = sorted(os.listdir(cache))
    assert left == sorted(["other_pkg.f-1.py311.nbi", "kern.cpython-311.pyc",
                           _cache_guard.STAMP])
    assert (cache / _cache_guard.STAMP).read_text().strip() == _cache_guard.digest(pkg)
    # the same sources: nothing goes
    _fill(cache)
    assert _cache_guard.refresh(cache, pkg) == []
    # a non-kernel module changes: nothing goes
    (pkg / "front.py").write_text("def g():\n    return 2\n")
    assert _cache_guard.refresh(cache, pkg) == []
    # a helper the kernels compile in changes (a constant): every cached kernel goes, the
    # kernel module's own file untouched (Numba alone would keep kern's kernels)
    (pkg / "helper.py").write_text("import llvmlite\nK = 4\n")
    assert sorted(_cache_guard.refresh(cache, pkg)) == [
        "helper.h-1.py311.nbi", "kern.f-3.py311.1.nbc", "kern.f-3.py311.nbi"]
    assert _cache_guard.refresh(cache, pkg) == []


def test_digest_follows_content_not_timestamps(tmp_path):
    pkg, _ = _package(tmp_path)
    before = _cache_guard.digest(pkg)
    os.utime(pkg / "kern.py", (1, 1))
    assert _cache_guard.digest(pkg) == before
    (pkg / "kern.py").write_text("from numba import njit\n# a comment\n")
    assert _cache_guard.digest(pkg) != before


def test_importing_numgru_stamps_its_cache(tmp_path):
    """A fresh process with its own cache directory: importing numgru stamps it with the
    package's digest; with the cache off nothing is written."""
    code = ("import numgru, os; from numgru import _cache_guard as g; "
            "from numba.core.caching import FunctionCache; "
            "d = FunctionCache(g._probe)._cache_path; "
            "p = os.path.join(d, g.STAMP); "
            "print(open(p).read().strip() == g.digest(os.path.dirname(g.__file__)) "
            "if os.path.exists(p) else 'none')")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMGRU_NO_CACHE", None)
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True).stdout.strip()
    assert run() == "True"
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "cache_off"), NUMGRU_NO_CACHE="1")
    assert run() == "none"
