"""Numba's on-disk compile cache works from a read-only install of numgru.

A copy of the package is made read-only (as in a system site-packages) and imported in a fresh
interpreter with ``NUMBA_CACHE_DIR`` set: the first run must compile and write its cache there,
the second must load the kernels from that cache instead of compiling them again; under each
task runtime (``NUMGRU_THREADING``), whose own compiled code is cached too.
"""

import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

import numgru

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import numgru
    from numgru import _cpu
    assert os.path.dirname(os.path.abspath(numgru.__file__)) == os.path.abspath(sys.argv[1]), \\
        numgru.__file__
    y, h = numgru.GRU(2, 3, dtype="float64", random_state=0).forward(np.ones((2, 4, 2)))
    assert np.isfinite(y).all() and y.shape == (2, 4, 3)
    # the forward's compiled kernel, and the task runtime's compiled code: the native pool's C
    # function (launch and worker loop), or the Numba runtime's C function and prange launcher
    from numgru import _numba_runtime, _pool
    assert numgru.get_threading()["runtime"] == sys.argv[2]
    kernels = (_cpu._gru_forward_after,)
    if sys.argv[2] == "native":
        cfuncs = [_pool._CFUNCS["run"]]
    else:
        cfuncs = [_numba_runtime._CFUNCS["run"]]
        kernels += (_numba_runtime._prange_tasks,)
    stats = [f.stats for f in kernels]
    print(json.dumps({"hits": sum(sum(s.cache_hits.values()) for s in stats)
                              + sum(f.cache_hits for f in cfuncs),
                      "misses": sum(sum(s.cache_misses.values()) for s in stats)
                                + sum(1 - f.cache_hits for f in cfuncs)}))
""")


def _set_mode(root, dir_mode, file_mode):
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), file_mode)
        os.chmod(dirpath, dir_mode)


def _run(site, pkg, cache_dir, cwd, runtime):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMGRU_NO_CACHE", "NUMBA_DISABLE_JIT", "PYTHONPATH")}
    env["NUMGRU_THREADING"] = runtime
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = str(site)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(pkg), runtime], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("runtime", ["native", "numba"])
def test_compile_cache_from_read_only_install(tmp_path, runtime):
    src = os.path.dirname(os.path.abspath(numgru.__file__))
    site = tmp_path / "site"
    pkg = site / "numgru"
    cache_dir = tmp_path / "numba_cache"
    work = tmp_path / "work"
    work.mkdir()
    cache_dir.mkdir()
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi",
                                                           "*.nbc"))
    ro_dir = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    ro_file = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    _set_mode(pkg, ro_dir, ro_file)
    try:
        first = _run(site, pkg, cache_dir, work, runtime)
        assert first["misses"] >= 1 and first["hits"] == 0, first
        cached = (glob.glob(str(cache_dir / "**" / "*.nbi"), recursive=True)
                  + glob.glob(str(cache_dir / "**" / "*.nbc"), recursive=True))
        assert any(p.endswith(".nbi") for p in cached), cached
        assert any(p.endswith(".nbc") for p in cached), cached
        # nothing was written into the read-only package (root ignores the mode bits, so
        # check it explicitly)
        assert not os.path.exists(pkg / "__pycache__")

        second = _run(site, pkg, cache_dir, work, runtime)
        # every kernel and runtime function of the second run was loaded, none compiled
        assert second["hits"] >= 1 and second["misses"] == 0, second
    finally:
        _set_mode(pkg, stat.S_IRWXU, stat.S_IRUSR | stat.S_IWUSR)
