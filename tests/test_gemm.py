"""numgru._gemm against NumPy (float64 reference): the packed micro-kernel for both vector widths
(AVX2 and AVX-512, whatever this machine has), its plain Numba reference, the contract checks,
the environment flag that selects the reference, and the unpacked and BLAS products."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from numgru import _gemm

WIDTHS = [pytest.param(vb, id=f"{vb * 8}bit") for vb in _gemm.VECTOR_WIDTHS]
DTYPES = ["float32", "float64"]
SHAPES = [(8, 1, 1), (8, 5, 7), (16, 13, 33), (24, 64, 96), (64, 256, 768), (8, 0, 5)]


def _tol(dtype, want, K):
    tol = 1e-12 if dtype == "float64" else 2e-6
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    return dict(rtol=tol, atol=tol * scale * max(K, 1))


def _operands(dtype, M, K, N, seed=0):
    rng = np.random.default_rng(seed + M * 1000 + K * 10 + N)
    return rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)


def _packed(ns, A, W):
    Wp = ns.pack_nt(W)
    return Wp, np.full((A.shape[0], Wp.shape[0] * Wp.shape[2]), np.nan, dtype=A.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_mm_packed_matches_numpy(dtype, M, K, N):
    A, W = _operands(dtype, M, K, N)
    Wp = _gemm.pack_nt(W)
    nc = _gemm.panel_width(np.dtype(dtype).itemsize)
    assert Wp.shape == (-(-N // nc), K, nc)
    C = np.full((M, Wp.shape[0] * nc), np.nan, dtype=dtype)
    _gemm.mm_packed(A, Wp, C)
    want = A.astype(np.float64) @ W.T.astype(np.float64)
    np.testing.assert_allclose(C[:, :N], want, **_tol(dtype, want, K))
    assert np.all(C[:, N:] == 0)            # zero-padded panel columns give zeros


@pytest.mark.parametrize("vb", WIDTHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_kernel_and_reference_match_numpy_for_both_widths(vb, dtype, M, K, N):
    ns = _gemm.make_packed_gemm(vb)
    A, W = _operands(dtype, M, K, N, seed=vb)
    Wp, C = _packed(ns, A, W)
    nc = 2 * vb // np.dtype(dtype).itemsize
    assert ns.panel_width(np.dtype(dtype).itemsize) == nc
    assert Wp.shape == (-(-N // nc), K, nc)
    for j in range(N):                       # the packed layout: Wp[p, k, c] = W[p*NC + c, k]
        np.testing.assert_array_equal(Wp[j // nc, :, j % nc], W[j])
    C_ref = C.copy()
    ns.mm_packed_kernel(A, Wp, C)
    ns.mm_packed_reference(A, Wp, C_ref)
    want = A.astype(np.float64) @ W.T.astype(np.float64)
    for got in (C, C_ref):
        np.testing.assert_allclose(got[:, :N], want, **_tol(dtype, want, K))
        assert np.all(got[:, N:] == 0)
    np.testing.assert_allclose(C, C_ref, **_tol(dtype, want, K))


def test_default_names_are_the_host_width():
    ns = _gemm.make_packed_gemm(_gemm.VECTOR_BYTES)
    assert _gemm.VECTOR_BYTES in _gemm.VECTOR_WIDTHS
    assert ns is _gemm.make_packed_gemm(_gemm.VECTOR_BYTES)           # built once per width
    assert (_gemm.pack_nt, _gemm.panel_width) == (ns.pack_nt, ns.panel_width)
    assert _gemm._mm_packed_kernel is ns.mm_packed_kernel
    assert _gemm._mm_packed_reference is ns.mm_packed_reference
    active = ns.mm_packed_reference if _gemm.MM_PACKED_IMPL == "reference" else ns.mm_packed_kernel
    assert _gemm.mm_packed is ns.mm_packed is active
    # Numba's on-disk cache keys a closure by its cell contents: an int hashes the same in
    # every process, a dispatcher or an intrinsic would not (and the cache would never hit)
    for fn in (ns.panel_width, ns.pack_nt, ns.mm_packed_kernel, ns.mm_packed_reference):
        assert [c.cell_contents for c in fn.py_func.__closure__] == [_gemm.VECTOR_BYTES]
    with pytest.raises(ValueError, match="vector_bytes must be one of"):
        _gemm.make_packed_gemm(48)


@pytest.mark.parametrize("features,width", [("+avx,+avx2,+fma,-avx512f", 32),
                                            ("+avx2,+fma,+avx512f,+avx512bw", 64)])
def test_vector_width_follows_numba_cpu_features(features, width):
    """NUMBA_CPU_FEATURES (what Numba compiles for) sets the micro-kernel's width, whatever the
    host has (only the width is read here: nothing is compiled)."""
    env = dict(os.environ, NUMBA_CPU_FEATURES=features)
    code = "from numgru import _gemm; print(_gemm.VECTOR_BYTES)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          check=True)
    assert int(proc.stdout.strip().splitlines()[-1]) == width


@njit(fastmath=True)
def _fastmath_caller(A, Wp, C):
    _gemm._mm_packed_reference(A, Wp, C)


def test_reference_ignores_its_callers_fastmath():
    # A callee that leaves fastmath unset inherits its caller's: the reference must not (it
    # would be fused into FMAs when compiled from numgru._cpu, and cached that way)
    assert _gemm._mm_packed_reference.targetoptions["fastmath"] is False
    A, W = _operands("float64", 16, 24, 40)
    Wp, C = _packed(_gemm, A, W)
    C2 = C.copy()
    _fastmath_caller(A, Wp, C)
    _gemm._mm_packed_reference(A, Wp, C2)
    np.testing.assert_array_equal(C, C2)


def test_padded_rows_and_row_slices():
    assert [_gemm.padded_rows(m) for m in (1, 8, 9, 16, 17)] == [8, 8, 16, 16, 24]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((24, 9)).astype(np.float32)
    W = rng.standard_normal((10, 9)).astype(np.float32)
    Wp = _gemm.pack_nt(W)
    for mm in (_gemm.mm_packed, _gemm._mm_packed_kernel, _gemm._mm_packed_reference):
        C = np.zeros((24, Wp.shape[0] * Wp.shape[2]), dtype=np.float32)
        mm(A[:16], Wp, C)                   # a leading-row slice: only its rows are written
        np.testing.assert_allclose(C[:16, :10], A[:16] @ W.T, rtol=1e-5, atol=1e-5)
        assert np.all(C[16:] == 0)


@pytest.mark.parametrize("vb", WIDTHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,N", [(64, 192), (5, 33), (17, 7)])
def test_mm_packed_rows_gives_mm_packed_bits_for_every_row_count(vb, dtype, K, N):
    """Row tiles, full tiles and the padded last tile sum every output in the same order:
    the first m rows are mm_packed's bits, for any m, and the reference agrees to rounding.
    Panel counts odd and even (a row tile of two panels, then one)."""
    ns = _gemm.make_packed_gemm(vb)
    for m in range(0, 2 * _gemm.ROWS + 2):
        M = _gemm.padded_rows(max(m, 1))
        A, W = _operands(dtype, M, K, N, seed=m)
        Wp, C_all = _packed(ns, A, W)
        ns.mm_packed_kernel(A, Wp, C_all)
        C = np.full_like(C_all, np.nan)
        ns.mm_packed_rows_kernel(A, Wp, C, m)
        np.testing.assert_array_equal(C[:m], C_all[:m])
        C_ref = np.full_like(C_all, np.nan)
        ns.mm_packed_rows_reference(A, Wp, C_ref, m)
        want = A[:m].astype(np.float64) @ W.T.astype(np.float64)
        np.testing.assert_allclose(C_ref[:m, :N], want, **_tol(dtype, want, K))
        assert np.all(C_ref[:m, N:] == 0)
        assert np.isnan(C_ref[m:]).all()           # the reference writes the m rows only
    for mm in (ns.mm_packed_rows_kernel, ns.mm_packed_rows_reference):
        with pytest.raises(ValueError, match="m must be in"):
            mm(A, Wp, C, M + 1)
        with pytest.raises(ValueError, match="multiple of ROWS"):
            mm(A[:M - 1], Wp, C, 1)


def test_mm_packed_rows_is_the_active_one():
    ns = _gemm.make_packed_gemm(_gemm.VECTOR_BYTES)
    active = (ns.mm_packed_rows_reference if _gemm.MM_PACKED_IMPL == "reference"
              else ns.mm_packed_rows_kernel)
    assert _gemm.mm_packed_rows is ns.mm_packed_rows is active
    for fn in (ns.mm_packed_rows_kernel, ns.mm_packed_rows_reference):
        assert [c.cell_contents for c in fn.py_func.__closure__] == [_gemm.VECTOR_BYTES]


# --- the contract -----------------------------------------------------------------------------

def _contract_cases():
    A = np.ones((16, 9), np.float32)
    W = np.ones((10, 9), np.float32)
    Wp = _gemm.pack_nt(W)
    ncols = Wp.shape[0] * Wp.shape[2]
    other = _gemm.make_packed_gemm(96 - _gemm.VECTOR_BYTES)  # the other width
    C = np.zeros((16, ncols), np.float32)
    return [
        ("rows", (A[:12], Wp, C), "multiple of ROWS"),
        ("K", (A[:, :8].copy(), Wp, C), r"A.shape\[1\] must equal Wp.shape\[1\]"),
        ("width", (A, other.pack_nt(W), np.zeros((16, 64), np.float32)), "panel width"),
        ("C rows", (A, Wp, C[:8]), "at least as many rows as A"),
        ("C cols", (A, Wp, np.zeros((16, ncols - 1), np.float32)), r"P \* NC"),
    ]


@pytest.mark.parametrize("which", ["kernel", "reference"])
def test_contract_violations_raise_value_error(which):
    mm = _gemm._mm_packed_kernel if which == "kernel" else _gemm._mm_packed_reference
    for name, args, message in _contract_cases():
        before = args[2].copy()
        with pytest.raises(ValueError, match="mm_packed: .*" + message):
            mm(*args)
        np.testing.assert_array_equal(args[2], before, err_msg=name)   # nothing written


def _type_cases():
    A = np.ones((16, 8), np.float32)
    Wp = _gemm.pack_nt(np.ones((5, 8), np.float32))
    C = np.zeros((16, Wp.shape[0] * Wp.shape[2]), np.float32)
    wide = np.ones((16, 16), np.float32)
    ro = C.copy()
    ro.setflags(write=False)
    return [
        ((A[0], Wp, C), "A must be a 2-D array"),
        ((wide[:, :8], Wp, C), "A must be C-contiguous.*layout 'A'"),      # a column slice
        ((wide[::2, :8], Wp, C[:8]), "A must be C-contiguous.*layout 'A'"),
        ((np.asfortranarray(A), Wp, C), "A must be C-contiguous.*layout 'F'"),
        ((A.astype(np.int64), Wp, C), "A must be float32 or float64"),
        ((A.astype(np.float64), Wp, C), "Wp must have A's dtype float64"),
        ((A, Wp[0], C), "Wp must be a 3-D array"),
        ((A, np.asfortranarray(Wp), C), "Wp must be C-contiguous"),
        ((A, Wp, C[:, :8]), "C must be C-contiguous"),                  # a column slice
        ((A, Wp, C.astype(np.float64)), "C must have A's dtype float32"),
        ((A, Wp, C[None]), "C must be a 2-D array"),
        ((A, Wp, ro), "C must be writable"),
    ]


@pytest.mark.parametrize("which", ["kernel", "reference"])
def test_wrong_operand_types_raise_typing_error(which):
    mm = _gemm._mm_packed_kernel if which == "kernel" else _gemm._mm_packed_reference
    for args, message in _type_cases():
        with pytest.raises(TypingError, match="mm_packed: " + message):
            mm(*args)


@njit
def _tile_literal(A, i0, Wp, p, C):
    _gemm._tile(A, i0, Wp, p, C, 32)


@njit
def _tile_runtime_width(A, i0, Wp, p, C, vb):
    _gemm._tile(A, i0, Wp, p, C, vb)


def test_tile_typing_guard():
    A = np.ones((8, 4), np.float32)
    Wp = _gemm.make_packed_gemm(32).pack_nt(np.ones((3, 4), np.float32))
    C = np.zeros((8, 16), np.float32)
    _tile_literal(A, 0, Wp, 0, C)
    np.testing.assert_array_equal(C[:, :3], 4.0)
    np.testing.assert_array_equal(C[:, 3:], 0.0)
    wide = np.ones((8, 8), np.float32)
    for args, message in [((A, 0.0, Wp, 0, C), "i0 must be an integer"),
                          ((A, 0, Wp, 0.0, C), "p must be an integer"),
                          ((wide[:, :4], 0, Wp, 0, C), "A must be C-contiguous"),
                          ((A, 0, Wp.astype(np.float64), 0, C), "Wp must have A's dtype")]:
        with pytest.raises(TypingError, match="_tile: " + message):
            _tile_literal(*args)
    with pytest.raises(TypingError, match="_tile: vector_bytes must be a compile-time constant"):
        _tile_runtime_width(A, 0, Wp, 0, C, 32)


# --- NUMGRU_GEMM_REFERENCE --------------------------------------------------------------------

FLAG_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numgru import _config, _gemm
    assert _gemm.__file__.startswith(sys.argv[1]), _gemm.__file__
    rng = np.random.default_rng(1)
    A = rng.standard_normal((16, 7))
    W = rng.standard_normal((11, 7))
    Wp = _gemm.pack_nt(W)
    C = np.full((16, Wp.shape[0] * Wp.shape[2]), np.nan)
    _gemm.mm_packed(A, Wp, C)
    print(json.dumps({
        "flag": _config.GEMM_REFERENCE, "impl": _gemm.MM_PACKED_IMPL,
        "is_reference": _gemm.mm_packed is _gemm._mm_packed_reference,
        "ran_reference": len(_gemm._mm_packed_reference.signatures),
        "ran_kernel": len(_gemm._mm_packed_kernel.signatures),
        "err": float(np.abs(C[:, :11] - A @ W.T).max()),
        "pad_zero": bool((C[:, 11:] == 0).all())}))
""")


@pytest.mark.parametrize("value", ["1", ""])
def test_environment_flag_selects_the_reference(value):
    root = os.path.dirname(os.path.dirname(os.path.abspath(_gemm.__file__)))
    env = dict(os.environ, NUMGRU_GEMM_REFERENCE=value, NUMGRU_NO_CACHE="1",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", FLAG_SCRIPT, root], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    ref = value == "1"
    assert got["flag"] is ref and got["is_reference"] is ref
    assert got["impl"] == ("reference" if ref else "kernel")
    # only the selected one was compiled (and so ran)
    assert (got["ran_reference"], got["ran_kernel"]) == ((1, 0) if ref else (0, 1)), got
    assert got["err"] < 1e-12 and got["pad_zero"], got


# --- the unpacked and BLAS products -----------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 5, 7), (4, 6, 2), (7, 9, 5), (8, 16, 2),
                                   (13, 17, 9), (16, 32, 48), (19, 3, 1), (5, 0, 3)])
def test_mm_nt_matches_numpy(dtype, M, K, N):
    A, Bm = _operands(dtype, M, K, N)
    C = np.full((M, N), np.nan, dtype=dtype)
    _gemm.mm_nt(A, Bm, C)
    want = A.astype(np.float64) @ Bm.T.astype(np.float64)
    np.testing.assert_allclose(C, want, **_tol(dtype, want, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("bias", [True, False])
def test_gemm_matches_numpy(dtype, layout, bias):
    rng = np.random.default_rng(3)
    M, K, N = 37, 11, 13
    A = rng.standard_normal((M, K)).astype(dtype)
    # W (K, N) C-contiguous, or F-contiguous as the transposed weight ``w.T`` callers pass
    W = rng.standard_normal((K, N)).astype(dtype)
    if layout == "F":
        W = np.ascontiguousarray(W.T).T
        assert W.flags.f_contiguous and not W.flags.c_contiguous
    b = rng.standard_normal(N).astype(dtype) if bias else np.zeros(0, dtype)
    want = A.astype(np.float64) @ W.astype(np.float64) + (b if bias else 0)
    for ntasks in (1, 3, 50):                 # more tasks than rows: empty blocks
        C = np.full((M, N), np.nan, dtype=dtype)
        _gemm.gemm(A, W, b, C, ntasks)
        np.testing.assert_allclose(C, want, **_tol(dtype, want, K))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_tn_matches_numpy(dtype):
    rng = np.random.default_rng(4)
    M, N1, N2 = 41, 6, 9
    A = rng.standard_normal((M, N1)).astype(dtype)
    X = rng.standard_normal((M, N2)).astype(dtype)
    want = A.T.astype(np.float64) @ X.astype(np.float64)
    for ntasks in (1, 4, 50):
        C = np.full((N1, N2), np.nan, dtype=dtype)
        _gemm.gemm_tn(A, X, C, ntasks)
        np.testing.assert_allclose(C, want, **_tol(dtype, want, M))


TN_SHAPES = [(1, 1, 1), (41, 13, 37), (300, 24, 64), (257, 96, 33), (0, 9, 5)]


@pytest.mark.parametrize("vb", WIDTHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N1,N2", TN_SHAPES)
def test_mm_tn_rows_kernel_and_reference_match_numpy(vb, dtype, M, N1, N2):
    """Every row range of C (tails of fewer than 8 rows, partial panels, several blocks of
    TN_BLOCK rows, M = 0) against a float64 product; a row's bits do not depend on the range
    that computed it."""
    ns = _gemm.make_packed_gemm(vb)
    rng = np.random.default_rng(M + 7 * N1 + 31 * N2)
    A = rng.standard_normal((M, N1)).astype(dtype)
    X = rng.standard_normal((M, N2)).astype(dtype)
    want = A.T.astype(np.float64) @ X.astype(np.float64)
    whole = np.full((N1, N2), np.nan, dtype=dtype)
    ns.mm_tn_rows_kernel(A, X, whole, 0, N1)
    ref = np.full((N1, N2), np.nan, dtype=dtype)
    ns.mm_tn_rows_reference(A, X, ref, 0, N1)
    for got in (whole, ref):
        np.testing.assert_allclose(got, want, **_tol(dtype, want, M))
    split = np.full((N1, N2), np.nan, dtype=dtype)
    a, b = min(N1, 8), max(min(N1, 8), min(N1, N1 // 2 + 3))
    for r0, r1 in ((0, a), (a, b), (b, N1)):
        if r0 < r1:
            ns.mm_tn_rows_kernel(A, X, split, r0, r1)
    np.testing.assert_array_equal(split, whole)


def _tn_operands(dtype, M, N1, N2, seed):
    """A (M, N1), a non-contiguous X (M, N2) and their float64 product A^T X."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, N1)).astype(dtype)
    X = rng.standard_normal((M, 2 * N2)).astype(dtype)[:, ::2]
    return A, X, A.T.astype(np.float64) @ X.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_tn_bits_do_not_depend_on_tasks(dtype):
    """gemm_tn shares out C's rows (not the reduction), so any task count gives the same bits;
    non-contiguous operands and output go through contiguous copies."""
    M, N1, N2 = 700, 72, 40
    A, X, want = _tn_operands(dtype, M, N1, N2, seed=5)
    C1 = np.full((N1, N2), np.nan, dtype=dtype)
    _gemm.gemm_tn(A, X, C1, 1)
    np.testing.assert_allclose(C1, want, **_tol(dtype, want, M))
    for ntasks in (2, 3, 9, 50):
        C = np.full((N1, 2 * N2), np.nan, dtype=dtype)[:, ::2]           # not contiguous
        _gemm.gemm_tn(A, X, C, ntasks)
        np.testing.assert_array_equal(C, C1)


def test_tn_tile_typing_guard():
    with pytest.raises(TypingError, match="_move"):
        @njit
        def bad(a, b):
            _gemm._move(a, 0, b, 0, 8)
        bad(np.zeros(8, np.float32), np.zeros(8, np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N1,N2", [(1, 1, 1), (96, 192, 1), (300, 24, 3), (257, 33, 4),
                                     (0, 9, 2)])
def test_narrow_weight_gradients_match_numpy_and_the_packed_kernel(dtype, M, N1, N2):
    """gemm_tn with at most TN_NARROW columns of X (a univariate series' input weights) runs
    tn_rows_narrow: against a float64 product, every row range, and as accurate as the packed
    kernel it replaces there (the same blocked sums)."""
    assert N2 <= _gemm.TN_NARROW
    A, X, want = _tn_operands(dtype, M, N1, N2, seed=M + N1 + N2)
    C = np.full((N1, N2), np.nan, dtype=dtype)
    _gemm.gemm_tn(A, X, C, 2)
    np.testing.assert_allclose(C, want, **_tol(dtype, want, M))
    Xc = np.ascontiguousarray(X)
    split = np.full((N1, N2), np.nan, dtype=dtype)
    for r0, r1 in ((0, N1 // 3), (N1 // 3, N1)):
        _gemm.tn_rows_narrow(A, Xc, split, r0, r1)
    np.testing.assert_array_equal(split, C)
    packed = np.full((N1, N2), np.nan, dtype=dtype)
    _gemm.mm_tn_rows(A, Xc, packed, 0, N1)
    err = np.abs(C - want).max(initial=0.0)
    assert err <= 2 * np.abs(packed - want).max(initial=0.0) + np.finfo(dtype).tiny
    with pytest.raises(ValueError, match="tn_rows_narrow"):
        _gemm.tn_rows_narrow(A, Xc, np.empty((N1 + 1, N2), dtype), 0, N1 + 1)
