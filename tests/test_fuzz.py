"""Hostile input (issue 12): a table of bad and odd inputs to every public entry point.

Every case ends either in a clean exception of a given type whose message names the problem, or
in a result checked against a reference (a read-only, Fortran-ordered or float16 input gives
what its C-contiguous float64 copy gives). Nothing may crash in a kernel, leak an
IndexError/KeyError/AttributeError, or answer silently wrong.

Tables, in order: ``numgru.GRU`` (constructor, forward, backward, load_state_dict), the
estimators (X, y, sample_weight, lengths, partial_fit, output="each_step", predict/score),
``numgru.load`` on hand-made hostile files, byte flips and truncations of a real model file,
and the atomic ``save``. Then the second round (issue 21): files that cannot be opened, zip
bombs, fitted values at and beyond the edges of what a fit gives, every persisted field
round-tripped, warm starts after an architecture change, ``class_weight``, 2-D ``X`` shaped
like one multivariate sequence, DataFrame feature names, ``GRULanguageModel``'s token
vocabulary, its model files, entry points given nothing, public names and the command line.
Sizes are tiny (hidden 3, T = 4, max_iter 2); the fitted models are module fixtures.
"""

import collections
import contextlib
import io
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import types
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import numgru
import numgru.cli
from numgru import GRU, GRUClassifier, GRURegressor

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    # a result case must not get there by a training run that blew up
    pytest.mark.filterwarnings("error:The training loss became NaN:RuntimeWarning"),
]

N, T, F = 12, 4, 2                  # estimator data
B, I, H, L = 3, 2, 3, 2             # engine: GRU(I, H, L, bidirectional=True)
KW = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)


def R(**kw):
    return GRURegressor(**{**KW, **kw})


def C(**kw):
    return GRUClassifier(**{**KW, **kw})


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Data, fitted models and a saved model file, shared by every case (read-only use)."""
    rng = np.random.default_rng(0)
    c = types.SimpleNamespace()
    c.X = rng.standard_normal((N, T, F))
    c.yr = c.X[:, :, 0].sum(axis=1)
    c.yc = np.array([0, 1, 2] * (N // 3))
    c.Ys = c.X[:, :, 0].copy()                       # per-step regression targets
    c.Yl = (c.X[:, :, 0] > 0).astype(int)            # per-step labels
    c.reg = R().fit(c.X, c.yr)
    c.clf = C().fit(c.X, c.yc)
    c.reg32 = R(dtype="float32").fit(c.X, c.yr)
    c.es_reg = R(output="each_step").fit(c.X, c.Ys)
    c.es_clf = C(output="each_step").fit(c.X, c.Yl)
    c.gru = GRU(I, H, L, bidirectional=True, dtype="float64", random_state=0)
    c.gru32 = GRU(I, H, 1, random_state=0)
    c.x = rng.standard_normal((B, T, I))
    # a saved classifier with string labels: its arrays and metadata, edited by the file cases
    c.dir = tmp_path_factory.mktemp("models")
    c.sclf = C().fit(c.X, np.array(["a", "b", "c"])[c.yc])
    c.model = c.dir / "clf.npz"
    c.sclf.save(c.model)
    c.model_bytes = c.model.read_bytes()
    with np.load(c.model) as f:
        c.arrays = {k: f[k] for k in f.files}
    c.meta = json.loads(str(c.arrays["__meta__"]))
    c.proba = c.sclf.predict_proba(c.X)
    return c


def raises(exc, match):
    return ("raises", exc, match)


def run_case(c, call, expect):
    """``expect`` is ``raises(...)`` or a checker of the result, given ``(c, result)``."""
    if isinstance(expect, tuple):
        _, exc, match = expect
        with pytest.raises(exc, match=match):
            call(c)
    else:
        expect(c, call(c))


def same_arrays(a, b):
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same_arrays(u, v) for u, v in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_arrays(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b))


# =============================================================================================
# numgru.GRU: constructor
# =============================================================================================
GRU_CTOR_BAD = [
    (dict(input_size=0), ValueError, "input_size"),
    (dict(input_size=-1), ValueError, "input_size"),
    (dict(input_size=2.5), ValueError, "input_size"),
    (dict(input_size=2.0), ValueError, "input_size"),
    (dict(input_size="2"), ValueError, "input_size"),
    (dict(input_size=None), ValueError, "input_size"),
    (dict(input_size=True), ValueError, "input_size"),
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(hidden_size=3.0), ValueError, "hidden_size"),
    (dict(hidden_size=None), ValueError, "hidden_size"),
    (dict(hidden_size=np.float64(3)), ValueError, "hidden_size"),
    (dict(num_layers=0), ValueError, "num_layers"),
    (dict(num_layers=1.5), ValueError, "num_layers"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(dropout=float("nan")), ValueError, "dropout"),
    (dict(dropout="0.1"), ValueError, "dropout"),
    (dict(dropout=True), ValueError, "dropout"),
    (dict(dtype="float16"), TypeError, "dtype"),
    (dict(dtype="int32"), TypeError, "dtype"),
    (dict(dtype=None), TypeError, "dtype"),
    (dict(dtype="nope"), TypeError, "dtype"),
    (dict(dtype=np.complex128), TypeError, "dtype"),
    (dict(dtype=object), TypeError, "dtype"),
    (dict(device="tpu"), ValueError, "device"),
    (dict(device=None), ValueError, "device"),
    (dict(device=0), ValueError, "device"),
    (dict(random_state="x"), TypeError, "random_state"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(random_state=1.5), TypeError, "random_state"),
    (dict(residual=True), ValueError, "residual=True needs at least two recurrent layers"),
    (dict(recurrent_dropout=1.0), ValueError, "recurrent_dropout"),
    (dict(recurrent_dropout=-0.1), ValueError, "recurrent_dropout"),
    (dict(recurrent_dropout=float("nan")), ValueError, "recurrent_dropout"),
    (dict(recurrent_dropout="0.1"), ValueError, "recurrent_dropout"),
    (dict(recurrent_dropout=True), ValueError, "recurrent_dropout"),
    (dict(layer_norm=True, reset_after=False), ValueError, "layer_norm=True needs reset_after"),
    (dict(recurrent_dropout=0.1, reset_after=False), ValueError, "needs reset_after=True"),
]


@pytest.mark.parametrize("kw, exc, match", GRU_CTOR_BAD,
                         ids=["-".join(f"{k}={v!r}" for k, v in kw.items())
                              for kw, *_ in GRU_CTOR_BAD])
def test_gru_constructor_refuses(kw, exc, match):
    args = dict(input_size=2, hidden_size=3, **{"num_layers": 1})
    args.update(kw)
    with pytest.raises(exc, match=match):
        GRU(args.pop("input_size"), args.pop("hidden_size"), args.pop("num_layers"), **args)


@pytest.mark.parametrize("kw", [dict(input_size=np.int64(2), hidden_size=np.int32(3)),
                                dict(dtype=np.float32), dict(dtype=np.dtype("float64")),
                                dict(random_state=np.random.default_rng(1)),
                                dict(random_state=np.uint8(7))],
                         ids=["numpy-ints", "np.float32", "np.dtype", "Generator", "np.uint8-seed"])
def test_gru_constructor_accepts_numpy_scalars(kw):
    args = dict(input_size=2, hidden_size=3)
    args.update(kw)
    g = GRU(args.pop("input_size"), args.pop("hidden_size"), **args)
    assert type(g.input_size) is int and type(g.hidden_size) is int
    assert g.dtype in (np.float32, np.float64)
    out, h = g.forward(np.ones((1, 2, 2)))
    assert out.shape == (1, 2, 3) and np.isfinite(out).all()


# =============================================================================================
# numgru.GRU: forward
# =============================================================================================
def fwd_x(make):
    return lambda c: c.gru.forward(make(c.x))


def fwd_h0(make):
    return lambda c: c.gru.forward(c.x, h0=make(np.zeros((L * 2, B, H))))


def fwd_len(lengths):
    return lambda c: c.gru.forward(c.x, lengths=lengths)


def ragged_x(x):
    return [x[0].tolist(), x[1, :2].tolist(), x[2].tolist()]


def with_value(a, value, where=(0, 0, 0)):
    a = np.array(a, dtype=np.float64)
    a[where] = value
    return a


GRU_FORWARD_BAD = [
    ("x-2d", fwd_x(lambda x: x[0]), raises(ValueError, r"x must be 3-D.*2-D")),
    ("x-4d", fwd_x(lambda x: x[..., None]), raises(ValueError, r"x must be 3-D.*4-D")),
    ("x-1d", fwd_x(lambda x: x[0, 0]), raises(ValueError, r"x must be 3-D.*1-D")),
    ("x-0d", fwd_x(lambda x: 1.0), raises(ValueError, r"x must be 3-D.*0-D")),
    ("x-None", fwd_x(lambda x: None), raises(TypeError, r"x has non-numeric dtype object")),
    ("x-empty-batch", fwd_x(lambda x: x[:0]), raises(ValueError, r"x must have at least one")),
    ("x-empty-time", fwd_x(lambda x: x[:, :0]), raises(ValueError, r"x must have at least one")),
    ("x-zero-features", fwd_x(lambda x: x[:, :, :0]),
     raises(ValueError, r"0 features.*input_size")),
    ("x-wrong-features", fwd_x(lambda x: np.zeros((B, T, I + 1))),
     raises(ValueError, r"3 features.*input_size=2")),
    ("x-nan", fwd_x(lambda x: with_value(x, np.nan)), raises(ValueError, r"x contains NaN")),
    ("x-inf", fwd_x(lambda x: with_value(x, np.inf)), raises(ValueError, r"x contains inf")),
    ("x-neginf", fwd_x(lambda x: with_value(x, -np.inf, (2, 3, 1))),
     raises(ValueError, r"x contains inf")),
    ("x-complex", fwd_x(lambda x: x.astype(complex)), raises(TypeError, r"x has complex dtype")),
    ("x-bool", fwd_x(lambda x: x > 0), raises(TypeError, r"x has boolean dtype")),
    ("x-str", fwd_x(lambda x: x.astype(str)), raises(TypeError, r"x has non-numeric dtype")),
    ("x-object", fwd_x(lambda x: x.astype(object)), raises(TypeError, r"x has non-numeric dtype")),
    ("x-datetime", fwd_x(lambda x: np.zeros(x.shape, "datetime64[s]")),
     raises(TypeError, r"x has non-numeric dtype datetime")),
    ("x-structured", fwd_x(lambda x: np.zeros(x.shape, [("a", "f8")])),
     raises(TypeError, r"x has non-numeric dtype")),
    ("x-ragged-list", fwd_x(ragged_x), raises(ValueError, r"x could not be read as an array")),
    ("x-too-large-for-float32", lambda c: c.gru32.forward(with_value(np.zeros((1, 2, 2)), 1e300)),
     raises(ValueError, r"x has values too large for float32")),
    ("h0-wrong-hidden", fwd_h0(lambda h: np.zeros((L * 2, B, H + 1))),
     raises(ValueError, r"h0 must have shape")),
    ("h0-wrong-layers", fwd_h0(lambda h: np.zeros((L, B, H))),
     raises(ValueError, r"h0 must have shape")),
    ("h0-2d", fwd_h0(lambda h: h[0]), raises(ValueError, r"h0 must have shape")),
    ("h0-broadcastable", fwd_h0(lambda h: np.zeros((L * 2, 1, H))),
     raises(ValueError, r"h0 must have shape")),
    ("h0-scalar", fwd_h0(lambda h: 0.0), raises(ValueError, r"h0 must have shape .* got \(\)")),
    ("h0-nan", fwd_h0(lambda h: with_value(h, np.nan)), raises(ValueError, r"h0 contains NaN")),
    ("h0-inf", fwd_h0(lambda h: with_value(h, np.inf)), raises(ValueError, r"h0 contains inf")),
    ("h0-complex", fwd_h0(lambda h: h.astype(np.complex64)), raises(TypeError, r"h0 has complex")),
    ("h0-bool", fwd_h0(lambda h: h.astype(bool)), raises(TypeError, r"h0 has boolean")),
    ("h0-str", fwd_h0(lambda h: "zeros"), raises(TypeError, r"h0 has non-numeric")),
    ("h0-ragged", fwd_h0(lambda h: [[[0.0]], [[0.0, 0.0]]]),
     raises(ValueError, r"h0 could not be read")),
    ("lengths-zero", fwd_len([0, 2, 3]), raises(ValueError, r"lengths must lie in \[1, 4\]")),
    ("lengths-too-long", fwd_len([1, 2, T + 1]),
     raises(ValueError, r"lengths must lie in \[1, 4\]")),
    ("lengths-negative", fwd_len([-1, 2, 3]), raises(ValueError, r"lengths must lie in")),
    ("lengths-uint64-huge", fwd_len(np.array([1, 2, 2 ** 64 - 1], np.uint64)),
     raises(ValueError, r"lengths must lie in .*18446744073709551615")),
    ("lengths-too-few", fwd_len([1, 2]),
     raises(ValueError, r"lengths must have one entry per sequence")),
    ("lengths-too-many", fwd_len([1, 2, 3, 4]), raises(ValueError, r"lengths must have one entry")),
    ("lengths-2d", fwd_len([[1, 2, 3]]), raises(ValueError, r"lengths must have one entry")),
    ("lengths-scalar", fwd_len(3), raises(ValueError, r"lengths must have one entry")),
    ("lengths-fraction", fwd_len([1.5, 2, 3]), raises(ValueError, r"lengths must be integers")),
    ("lengths-nan", fwd_len([1, np.nan, 3]), raises(ValueError, r"lengths must be integers")),
    ("lengths-inf", fwd_len([1, np.inf, 3]), raises(ValueError, r"lengths must be integers")),
    ("lengths-str", fwd_len(np.array(["1", "2", "3"])),
     raises(ValueError, r"lengths must be integers")),
    ("lengths-bool", fwd_len([True, True, True]), raises(ValueError, r"lengths must be integers")),
    ("lengths-object", fwd_len([None, 1, 2]), raises(ValueError, r"lengths must be integers")),
    ("lengths-complex", fwd_len(np.array([1, 2, 3], complex)),
     raises(ValueError, r"lengths must be integers")),
    ("lengths-ragged", fwd_len([[1], [1, 2], 3]), raises(ValueError, r"lengths could not be read")),
]


@pytest.mark.parametrize("call, expect", [c[1:] for c in GRU_FORWARD_BAD],
                         ids=[c[0] for c in GRU_FORWARD_BAD])
def test_gru_forward_refuses(ctx, call, expect):
    run_case(ctx, call, expect)


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# input variants that must give exactly what the C-contiguous float64 array gives
X_LAYOUTS = [
    ("fortran", np.asfortranarray),
    ("read-only", _readonly),
    ("strided", lambda x: np.repeat(x, 2, axis=1)[:, ::2]),
    ("negative-strides", lambda x: np.ascontiguousarray(x[::-1])[::-1]),
    ("transposed-view", lambda x: np.ascontiguousarray(x.transpose(2, 1, 0)).transpose(2, 1, 0)),
    ("nested-list", lambda x: x.tolist()),
]
X_EXACT_DTYPES = [   # values exactly representable in both: the same numbers in another dtype
    ("float16", lambda x: np.round(x * 8).astype(np.float16)),
    ("float32", lambda x: x.astype(np.float32)),
    ("int64", lambda x: np.round(x * 4).astype(np.int64)),
    ("int8", lambda x: np.round(x * 4).astype(np.int8)),
    ("uint8", lambda x: np.abs(np.round(x * 4)).astype(np.uint8)),
]


@pytest.mark.parametrize("make", [m for _, m in X_LAYOUTS + X_EXACT_DTYPES],
                         ids=[n for n, _ in X_LAYOUTS + X_EXACT_DTYPES])
def test_gru_forward_any_layout_or_exact_dtype_gives_the_float64_result(ctx, make):
    x = make(ctx.x)
    before = np.array(x, copy=True)
    ref = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    assert same_arrays(ctx.gru.forward(x), ctx.gru.forward(ref))
    assert same_arrays(ctx.gru.forward(x, lengths=[4, 1, 2]), ctx.gru.forward(ref, lengths=[4, 1, 2]))
    assert same_arrays(np.asarray(x), before)            # the input is never written to


@pytest.mark.parametrize("make", [np.asfortranarray, _readonly, lambda h: h.tolist(),
                                  lambda h: np.repeat(h, 2, axis=2)[:, :, ::2],
                                  lambda h: h.astype(np.float32)],
                         ids=["fortran", "read-only", "list", "strided", "float32"])
def test_gru_forward_h0_layouts(ctx, make):
    h0 = np.round(np.random.default_rng(1).standard_normal((L * 2, B, H)) * 8) / 8
    ref = ctx.gru.forward(ctx.x, h0=h0)
    assert same_arrays(ctx.gru.forward(ctx.x, h0=make(h0)), ref)


@pytest.mark.parametrize("lengths", [[4, 1, 2], (4, 1, 2), np.array([4, 1, 2], np.int32),
                                     np.array([4, 1, 2], np.uint8), np.array([4.0, 1.0, 2.0]),
                                     _readonly([4, 1, 2]), np.array([4, 0, 1, 9, 2, 7])[::2]],
                         ids=["list", "tuple", "int32", "uint8", "integral-float", "read-only",
                              "strided"])
def test_gru_forward_lengths_forms(ctx, lengths):
    ref = ctx.gru.forward(ctx.x, lengths=np.array([4, 1, 2]))
    assert same_arrays(ctx.gru.forward(ctx.x, lengths=lengths), ref)


def test_gru_forward_padding_values_are_ignored(ctx):
    lengths = [4, 1, 2]
    x = ctx.x.copy()
    x[1, 1:] = 1e6
    x[2, 2:] = -3.0
    out, h = ctx.gru.forward(x, lengths=lengths)
    z = ctx.x.copy()
    z[1, 1:] = 0.0
    z[2, 2:] = 0.0
    assert same_arrays((out, h), ctx.gru.forward(z, lengths=lengths))
    assert (out[1, 1:] == 0).all() and (out[2, 2:] == 0).all()


# =============================================================================================
# numgru.GRU: backward
# =============================================================================================
def bwd(d_out=None, d_h_n=None):
    def call(c):
        c.gru.forward(c.x, training=True)
        do = np.ones((B, T, 2 * H)) if d_out is None else d_out(np.ones((B, T, 2 * H)))
        dh = None if d_h_n is None else d_h_n(np.ones((2 * L, B, H)))
        return c.gru.backward(do, dh)
    return call


def backward_without_training_forward(c):
    g = GRU(I, H, 1, dtype="float64", random_state=0)
    g.forward(c.x)
    g.backward(np.ones((B, T, H)))


def backward_after(then, net="gru"):
    """A training forward, then ``then(c, g)`` (an inference forward, ...), then backward:
    the gradients would be stale (those of the training forward), so backward must raise."""
    def call(c):
        if net == "gru":
            g = GRU(I, H, 2, bidirectional=True, dtype="float64", random_state=0)
        else:
            g = numgru.RNN(I, H, 2, nonlinearity=net, dtype="float64", random_state=0)
        out, _ = g.forward(c.x, training=True)
        then(c, g)
        g.backward(np.ones_like(out))
    return call


STALE = r"backward\(\) backpropagates through the last forward, which must be forward\(\.\.\., "


GRU_BACKWARD_BAD = [
    ("no-training-forward", backward_without_training_forward,
     raises(RuntimeError, r"forward\(\.\.\., training=True\)")),
    # issue 21: an inference forward after the training one used to leave its tape in place,
    # and backward silently returned the training forward's gradients
    ("after-inference-forward", backward_after(lambda c, g: g.forward(c.x[:1])),
     raises(RuntimeError, STALE + r".*an inference forward \(training=False\)")),
    ("after-inference-call", backward_after(lambda c, g: g(c.x)),
     raises(RuntimeError, STALE + r".*inference forward")),
    ("after-inference-forward-rnn-tanh", backward_after(lambda c, g: g.forward(c.x), "tanh"),
     raises(RuntimeError, STALE + r".*inference forward")),
    ("after-inference-forward-rnn-relu", backward_after(lambda c, g: g.forward(c.x), "relu"),
     raises(RuntimeError, STALE + r".*inference forward")),
    ("after-load_state_dict", backward_after(lambda c, g: g.load_state_dict(g.state_dict())),
     raises(RuntimeError, STALE + r".*parameters were replaced \(load_state_dict\)")),
    ("d_out-narrow", bwd(lambda d: d[:, :, :H]),
     raises(ValueError, r"d_out must have the shape of out")),
    ("d_out-long", bwd(lambda d: np.ones((B, T + 1, 2 * H))),
     raises(ValueError, r"d_out must have the shape")),
    ("d_out-2d", bwd(lambda d: d[0]), raises(ValueError, r"d_out must have the shape")),
    ("d_out-scalar", bwd(lambda d: 1.0), raises(ValueError, r"d_out must have the shape")),
    ("d_out-nan", bwd(lambda d: with_value(d, np.nan)), raises(ValueError, r"d_out contains NaN")),
    ("d_out-inf", bwd(lambda d: with_value(d, -np.inf)), raises(ValueError, r"d_out contains inf")),
    ("d_out-complex", bwd(lambda d: d.astype(complex)), raises(TypeError, r"d_out has complex")),
    ("d_out-bool", bwd(lambda d: d > 0), raises(TypeError, r"d_out has boolean")),
    ("d_out-None-values", bwd(lambda d: [None] * B), raises(TypeError, r"d_out has non-numeric")),
    ("d_out-str", bwd(lambda d: "ones"), raises(TypeError, r"d_out has non-numeric")),
    ("d_h_n-wrong-shape", bwd(None, lambda d: d[:L]), raises(ValueError, r"d_h_n must have shape")),
    ("d_h_n-nan", bwd(None, lambda d: with_value(d, np.nan)),
     raises(ValueError, r"d_h_n contains NaN")),
    ("d_h_n-bool", bwd(None, lambda d: d > 0), raises(TypeError, r"d_h_n has boolean")),
]


@pytest.mark.parametrize("call, expect", [c[1:] for c in GRU_BACKWARD_BAD],
                         ids=[c[0] for c in GRU_BACKWARD_BAD])
def test_gru_backward_refuses(ctx, call, expect):
    run_case(ctx, call, expect)


def test_backward_after_a_failed_inference_forward_still_gives_the_training_gradients(ctx):
    """A forward that refuses its input changes nothing: the training forward's tape is still
    the last forward's, and backward gives its gradients (equal to a fresh run's)."""
    g = GRU(I, H, 2, dtype="float64", random_state=0)
    out, _ = g.forward(ctx.x, training=True)
    ref = g.backward(np.ones_like(out))
    g.forward(ctx.x, training=True)
    with pytest.raises(ValueError, match="x contains NaN"):
        g.forward(with_value(ctx.x, np.nan))
    assert same_arrays(g.backward(np.ones_like(out)), ref)


@pytest.mark.parametrize("make", [np.asfortranarray, _readonly, lambda d: d.tolist(),
                                  lambda d: np.repeat(d, 2, axis=2)[:, :, ::2],
                                  lambda d: d.astype(np.float32), lambda d: d.astype(np.int16)],
                         ids=["fortran", "read-only", "list", "strided", "float32", "int16"])
def test_gru_backward_layouts_give_the_same_gradients(ctx, make):
    d_out = np.round(np.random.default_rng(2).standard_normal((B, T, 2 * H)) * 4)
    d_h_n = np.round(np.random.default_rng(3).standard_normal((2 * L, B, H)) * 4)
    ctx.gru.forward(ctx.x, training=True)
    ref = ctx.gru.backward(d_out, d_h_n)
    ctx.gru.forward(ctx.x, training=True)
    assert same_arrays(ctx.gru.backward(make(d_out), make(d_h_n)), ref)


# =============================================================================================
# numgru.GRU.load_state_dict
# =============================================================================================
class TorchLike:
    """What load_state_dict sees of a torch tensor: detach().cpu().numpy()."""

    def __init__(self, a):
        self.a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


class KeysOnly:
    def keys(self):
        return ["weight_ih_l0"]


def sd_edit(change):
    def call(c):
        sd = c.gru.state_dict()
        out = change(sd)
        return c.gru.load_state_dict(sd if out is None else out)
    return call


def sd_set(name, make):
    return sd_edit(lambda sd: sd.__setitem__(name, make(sd[name])))


LOAD_STATE_DICT_BAD = [
    ("None", lambda c: c.gru.load_state_dict(None),
     raises(TypeError, r"state_dict must be a mapping")),
    ("list-of-items", sd_edit(lambda sd: list(sd.items())),
     raises(TypeError, r"must be a mapping")),
    ("string", sd_edit(lambda sd: "weights.pt"), raises(TypeError, r"must be a mapping")),
    ("keys-only-object", sd_edit(lambda sd: KeysOnly()), raises(TypeError, r"must be a mapping")),
    ("missing-key", sd_edit(lambda sd: (sd.pop("bias_hh_l1_reverse"), None)[1]),
     raises(ValueError, r"missing keys \['bias_hh_l1_reverse'\]")),
    ("unexpected-key", sd_edit(lambda sd: sd.__setitem__("weight_ih_l2", np.zeros((9, 6)))),
     raises(ValueError, r"unexpected keys \['weight_ih_l2'\]")),
    ("renamed-keys", sd_edit(lambda sd: {k.replace("weight", "w"): v for k, v in sd.items()}),
     raises(ValueError, r"missing keys \['weight_ih_l0'")),
    ("int-keys", sd_edit(lambda sd: dict(enumerate(sd.values()))),
     raises(ValueError, r"unexpected keys \[0, 1")),
    ("empty", sd_edit(lambda sd: {}), raises(ValueError, r"missing keys")),
    ("prefixed-keys", sd_edit(lambda sd: {"gru." + k: v for k, v in sd.items()}),
     raises(ValueError, r"unexpected keys \['gru\.weight_ih_l0'")),
    ("transposed", sd_set("weight_ih_l0", lambda a: a.T),
     raises(ValueError, r"weight_ih_l0'\] has shape \(2, 9\)")),
    ("wrong-width", sd_set("weight_hh_l1", lambda a: a[:, :2]),
     raises(ValueError, r"weight_hh_l1'\] has shape")),
    ("bias-short", sd_set("bias_ih_l0", lambda a: a[:6]),
     raises(ValueError, r"bias_ih_l0'\] has shape \(6,\)")),
    ("bias-2d", sd_set("bias_hh_l0", lambda a: a[None]),
     raises(ValueError, r"bias_hh_l0'\] has shape \(1, 9\)")),
    ("bias-scalar", sd_set("bias_hh_l0", lambda a: 0.5),
     raises(ValueError, r"bias_hh_l0'\] has shape \(\)")),
    ("empty-array", sd_set("bias_ih_l1", lambda a: a[:0]),
     raises(ValueError, r"bias_ih_l1'\] has shape \(0,\)")),
    ("nan", sd_set("weight_hh_l0_reverse", lambda a: with_value(a, np.nan, (1, 1))),
     raises(ValueError, r"weight_hh_l0_reverse'\] contains NaN")),
    ("inf", sd_set("bias_ih_l1", lambda a: with_value(a, np.inf, 0)),
     raises(ValueError, r"bias_ih_l1'\] contains inf")),
    ("complex", sd_set("weight_ih_l0", lambda a: a.astype(complex)),
     raises(TypeError, r"weight_ih_l0'\] has complex")),
    ("bool", sd_set("weight_ih_l0", lambda a: a > 0),
     raises(TypeError, r"weight_ih_l0'\] has boolean")),
    ("str", sd_set("bias_ih_l0", lambda a: a.astype(str)),
     raises(TypeError, r"bias_ih_l0'\] has non-numeric")),
    ("None-value", sd_set("bias_ih_l0", lambda a: None),
     raises(TypeError, r"bias_ih_l0'\] has non-numeric")),
    ("object-values", sd_set("bias_ih_l0", lambda a: a.astype(object)),
     raises(TypeError, r"non-numeric dtype object")),
    ("ragged-list", sd_set("weight_ih_l0", lambda a: [[1.0, 2.0], [3.0]] * 3 + [[0.0]] * 3),
     raises(ValueError, r"weight_ih_l0'\] could not be read")),
    ("torch-like-nan", sd_set("bias_hh_l0", lambda a: TorchLike(with_value(a, np.nan, 2))),
     raises(ValueError, r"bias_hh_l0'\] contains NaN")),
    ("torch-like-wrong-shape", sd_set("bias_hh_l0", lambda a: TorchLike(a[:3])),
     raises(ValueError, r"bias_hh_l0'\] has shape \(3,\)")),
    ("too-large-for-float32", lambda c: c.gru32.load_state_dict(
        {**c.gru32.state_dict(), "bias_ih_l0": np.full(3 * H, 1e300)}),
     raises(ValueError, r"bias_ih_l0'\] has values too large for float32")),
]


@pytest.mark.parametrize("call, expect", [c[1:] for c in LOAD_STATE_DICT_BAD],
                         ids=[c[0] for c in LOAD_STATE_DICT_BAD])
def test_load_state_dict_refuses_and_changes_nothing(ctx, call, expect):
    before, before32 = ctx.gru.state_dict(), ctx.gru32.state_dict()
    run_case(ctx, call, expect)
    assert same_arrays(ctx.gru.state_dict(), before)
    assert same_arrays(ctx.gru32.state_dict(), before32)


LOAD_STATE_DICT_FORMS = [
    ("lists", lambda sd: {k: v.tolist() for k, v in sd.items()}),
    ("fortran", lambda sd: {k: np.asfortranarray(v) for k, v in sd.items()}),
    ("read-only", lambda sd: {k: _readonly(v) for k, v in sd.items()}),
    ("strided", lambda sd: {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in sd.items()}),
    ("float32", lambda sd: {k: v.astype(np.float32) for k, v in sd.items()}),
    ("torch-like", lambda sd: {k: TorchLike(v) for k, v in sd.items()}),
    ("OrderedDict-reversed", lambda sd: collections.OrderedDict(reversed(list(sd.items())))),
    ("mappingproxy", lambda sd: types.MappingProxyType(sd)),
    ("np.str_-keys", lambda sd: {np.str_(k): v for k, v in sd.items()}),
]


@pytest.mark.parametrize("make", [m for _, m in LOAD_STATE_DICT_FORMS],
                         ids=[n for n, _ in LOAD_STATE_DICT_FORMS])
def test_load_state_dict_forms_load_exactly(make):
    src = GRU(I, H, L, bidirectional=True, dtype="float64", random_state=5)
    sd = {k: np.round(v * 64) / 64 for k, v in src.state_dict().items()}  # exact in float32
    dst = GRU(I, H, L, bidirectional=True, dtype="float64", random_state=6)
    dst.load_state_dict(make(sd))
    assert same_arrays(dst.state_dict(), sd)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8])
def test_load_state_dict_converts_other_real_dtypes(dtype):
    src = GRU(I, H, 1, dtype="float64", random_state=5).state_dict()
    sd = {k: np.abs(np.round(v * 8)).astype(dtype) for k, v in src.items()}
    g = GRU(I, H, 1, dtype="float64", random_state=6)
    g.load_state_dict(sd)
    assert same_arrays(g.state_dict(), {k: v.astype(np.float64) for k, v in sd.items()})


# =============================================================================================
# estimators: X
# =============================================================================================
def ragged(*shapes, fill=0.0, dtype=None):
    return [np.full(s, fill, dtype=dtype) for s in shapes]


def fit_with_x(make_x):
    def call(c, est):
        X = make_x(c.X)
        n = len(X) if hasattr(X, "__len__") else 1
        y = c.yr[:n] if isinstance(est, GRURegressor) else c.yc[:n]
        if n > len(y):
            y = np.resize(y, n)
        return est.fit(X, y)
    return call


X_BAD = [
    ("1d", lambda X: X[0, :, 0], ValueError,
     r"X is 1-D \(shape \(4,\)\), but numgru needs sequences.*Reshape your data: "
     r"X.reshape\(1, -1\) if it is one univariate sequence"),
    ("0d", lambda X: np.float64(1.0), ValueError, r"X must hold sequences .* got a scalar"),
    ("4d", lambda X: X[..., None], ValueError, r"X must be 2-D .* got 4-D"),
    ("None", lambda X: None, ValueError, r"X must hold sequences .* got None"),
    ("empty-samples", lambda X: X[:0], ValueError, r"X holds no sequences: .*0 sample"),
    ("empty-list", lambda X: [], ValueError, r"X holds no sequences \(an empty list\)"),
    ("empty-tuple", lambda X: (), ValueError, r"X holds no sequences \(an empty tuple\)"),
    ("empty-1d-array", lambda X: np.zeros(0), ValueError, r"X holds no sequences"),
    ("empty-2d-array", lambda X: np.zeros((0, T)), ValueError, r"X holds no sequences"),
    ("1d-list", lambda X: [1.0, 2.0, 3.0], ValueError, r"X is 1-D \(shape \(3,\)\)"),
    ("str", lambda X: "abc", ValueError, r"X must hold sequences .* got a scalar str"),
    ("zero-timesteps", lambda X: X[:, :0], ValueError, r"X has zero timesteps"),
    ("zero-features", lambda X: X[:, :, :0], ValueError, r"X has zero features"),
    ("nan", lambda X: with_value(X, np.nan, (3, 2, 1)), ValueError, r"Input X contains NaN"),
    ("inf", lambda X: with_value(X, np.inf), ValueError, r"Input X contains infinity"),
    ("neg-inf", lambda X: with_value(X, -np.inf), ValueError, r"Input X contains infinity"),
    ("complex", lambda X: X.astype(complex), ValueError, r"Complex data not supported"),
    ("letters", lambda X: np.full(X.shape, "a"), ValueError, r"could not convert string to float"),
    ("object-None", lambda X: np.full(X.shape, None), ValueError, r"Input X contains NaN"),
    ("datetime", lambda X: np.zeros(X.shape, "datetime64[s]"), ValueError,
     r"X has non-numeric dtype datetime64"),
    ("timedelta", lambda X: np.zeros(X.shape, "timedelta64[s]"), ValueError,
     r"X has non-numeric dtype timedelta64"),
    ("ragged-features", lambda X: ragged((3, 2), (2, 3)), ValueError,
     r"same number of features, got \[2, 3\]"),
    ("ragged-zero-length", lambda X: ragged((3, 2), (0, 2)), ValueError,
     r"X\[1\] is a zero-length"),
    ("ragged-nan", lambda X: ragged((3, 2), (2, 2), fill=np.nan), ValueError,
     r"Input X contains NaN"),
    ("ragged-inf", lambda X: ragged((2, 2), (3, 2), fill=np.inf), ValueError,
     r"Input X contains NaN or inf"),
    ("ragged-str", lambda X: ragged((3, 2)) + [np.full((2, 2), "a")], ValueError,
     r"X\[1\] has non-numeric dtype"),
    ("ragged-complex", lambda X: ragged((3, 2), (2, 2), dtype=complex), ValueError,
     r"X\[0\] has non-numeric dtype complex"),
    ("ragged-object", lambda X: ragged((3, 2)) + [np.zeros((2, 2), object)], ValueError,
     r"X\[1\] has non-numeric dtype object"),
    ("ragged-3d-element", lambda X: ragged((3, 2), (2, 2, 1)), ValueError,
     r"X\[1\] must be a 2-D array"),
    ("ragged-None-element", lambda X: ragged((3, 2)) + [None], ValueError,
     r"X\[1\] has non-numeric"),
    ("ragged-scalar-element", lambda X: ragged((3, 2)) + [np.float64(5)], ValueError,
     r"X\[1\] must be a 2-D array"),
    ("ragged-lists-features", lambda X: [[[1, 2], [3, 4]], [[1, 2, 3]]], ValueError,
     r"same number of features"),
]


@pytest.mark.parametrize("est", ["reg", "clf"])
@pytest.mark.parametrize("make, exc, match", [c[1:] for c in X_BAD], ids=[c[0] for c in X_BAD])
def test_fit_refuses_bad_X(ctx, est, make, exc, match):
    with pytest.raises(exc, match=match):
        fit_with_x(make)(ctx, R() if est == "reg" else C())


def test_fit_refuses_X_too_large_for_float32(ctx):
    with pytest.raises(ValueError, match=r"X has values too large for float32"):
        R(dtype="float32").fit(with_value(ctx.X, 1e300), ctx.yr)
    with pytest.raises(ValueError, match=r"X contains NaN or infinity"):   # the ragged path
        R(dtype="float32").fit(ragged((3, 2), (2, 2), fill=1e300), [1.0, 2.0])


@pytest.mark.parametrize("make", [m for _, m in X_LAYOUTS + X_EXACT_DTYPES[:1] + X_EXACT_DTYPES[2:]],
                         ids=[n for n, _ in X_LAYOUTS + X_EXACT_DTYPES[:1] + X_EXACT_DTYPES[2:]])
def test_estimators_any_layout_or_exact_dtype_gives_the_float64_result(ctx, make):
    """A fit and a predict on any layout, or on a float16/int array, equal those on the
    C-contiguous float64 copy (dtype="auto" computes in float64 for these)."""
    X = make(ctx.X)
    ref = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    assert same_arrays(ctx.reg.predict(X), ctx.reg.predict(ref))
    assert same_arrays(ctx.clf.predict_proba(X), ctx.clf.predict_proba(ref))
    assert same_arrays(ctx.es_reg.predict(X), ctx.es_reg.predict(ref))
    a, b = R().fit(X, ctx.yr), R().fit(ref, ctx.yr)
    assert same_arrays(a.head_coef_, b.head_coef_) and same_arrays(a.predict(ref), b.predict(ref))


def test_float32_input_keeps_float32_and_matches_an_explicit_dtype(ctx):
    X32 = ctx.X.astype(np.float32)
    a = R().fit(X32, ctx.yr)
    b = R(dtype="float32").fit(ctx.X, ctx.yr)
    assert a.head_coef_.dtype == np.float32
    assert same_arrays(a.predict(X32), b.predict(X32))


def test_bool_X_is_read_as_zeros_and_ones(ctx):
    Xb = ctx.X > 0
    assert same_arrays(ctx.reg.predict(Xb), ctx.reg.predict(Xb.astype(np.float64)))


# =============================================================================================
# estimators: y
# =============================================================================================
Y_BAD = [
    ("reg", "None", lambda c: None, ValueError, r"requires y to be passed"),
    ("reg", "short", lambda c: c.yr[:5], ValueError, r"inconsistent numbers of samples: 12 and 5"),
    ("reg", "long", lambda c: np.r_[c.yr, 0.0], ValueError,
     r"inconsistent numbers of samples: 12 and 13"),
    ("reg", "nan", lambda c: with_value(c.yr, np.nan, 3), ValueError, r"Input y contains NaN"),
    ("reg", "inf", lambda c: with_value(c.yr, np.inf, 3), ValueError, r"Input y contains infinity"),
    ("reg", "letters", lambda c: np.array(["a"] * N), ValueError,
     r"could not convert string to float"),
    ("reg", "3d", lambda c: np.zeros((N, 2, 2)), ValueError, r"dim 3"),
    ("reg", "complex", lambda c: c.yr.astype(complex), ValueError, r"Complex data not supported"),
    ("reg", "scalar", lambda c: 1.0, TypeError, r"at least 1 dimension"),
    ("reg", "zero-outputs", lambda c: np.zeros((N, 0)), ValueError, r"0 feature"),
    ("reg", "object-None", lambda c: np.array([None] * N), ValueError, r"Input y contains NaN"),
    ("clf", "None", lambda c: None, ValueError, r"requires y to be passed"),
    ("clf", "short", lambda c: c.yc[:5], ValueError, r"inconsistent numbers of samples"),
    ("clf", "nan", lambda c: with_value(c.yc, np.nan, 0), ValueError, r"Input y contains NaN"),
    ("clf", "continuous", lambda c: c.yr, ValueError, r"Unknown label type: continuous"),
    ("clf", "multilabel-indicator", lambda c: np.eye(3)[c.yc], ValueError,
     r"y should be a 1d array"),
    ("clf", "multi-output", lambda c: np.stack([c.yc, c.yc], 1), ValueError,
     r"y should be a 1d array"),
    ("clf", "mixed-types", lambda c: np.array([0, "a"] * (N // 2), object), ValueError,
     r"Unknown label type: unknown"),
    ("clf", "None-labels", lambda c: np.array([None, 1] * (N // 2), object), ValueError,
     r"Unknown label type"),
    ("clf", "scalar", lambda c: 1, ValueError,
     r"y should be a 1d array, got an array of shape \(\)"),
    ("clf", "3d", lambda c: np.zeros((N, 2, 2)), ValueError, r"dim 3"),
    ("clf", "complex", lambda c: c.yc.astype(complex), ValueError, r"Complex data not supported"),
]


@pytest.mark.parametrize("est, make, exc, match", [(c[0],) + c[2:] for c in Y_BAD],
                         ids=[f"{c[0]}-{c[1]}" for c in Y_BAD])
def test_fit_refuses_bad_y(ctx, est, make, exc, match):
    with pytest.raises(exc, match=match):
        (R() if est == "reg" else C()).fit(ctx.X, make(ctx))


def test_fit_refuses_y_too_large_for_float32(ctx):
    with pytest.raises(ValueError, match=r"y has values too large for float32"):
        R(dtype="float32", standardize=False).fit(ctx.X, with_value(ctx.yr, 1e300, 0))
    # standardised first, the same targets are within float32's range: the fit is fine and
    # predicts in y's units
    reg = R(dtype="float32").fit(ctx.X, with_value(ctx.yr, 1e300, 0))
    assert np.isfinite(reg.predict(ctx.X)).all() and reg.target_scale_[0] > 1e298


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning")
@pytest.mark.parametrize("make", [lambda y: y.astype(np.int64), lambda y: y.astype(np.float32),
                                  lambda y: y.tolist(), lambda y: y[:, None], _readonly,
                                  lambda y: np.repeat(y, 2)[::2]],
                         ids=["int", "float32", "list", "column", "read-only", "strided"])
def test_regressor_y_forms_give_the_float64_model(ctx, make):
    y = np.round(ctx.yr * 2)            # exact in every form
    ref = R().fit(ctx.X, y)
    got = R().fit(ctx.X, make(y))
    assert same_arrays(got.head_coef_, ref.head_coef_)
    assert same_arrays(got.predict(ctx.X), ref.predict(ctx.X))


def test_classifier_single_class_predicts_it(ctx):
    clf = C().fit(ctx.X, np.full(N, "only"))
    assert list(clf.classes_) == ["only"]
    assert (clf.predict(ctx.X) == "only").all()
    assert np.allclose(clf.predict_proba(ctx.X), 1.0)


@pytest.mark.parametrize("labels", [lambda y: y > 0, lambda y: y.astype(float),
                                    lambda y: np.array(["x", "y", "z"])[y],
                                    lambda y: np.array(["x", "y", "z"], object)[y]],
                         ids=["bool", "integral-float", "str", "object-str"])
def test_classifier_label_types_give_the_same_model(ctx, labels):
    y = labels(ctx.yc)
    clf = C().fit(ctx.X, y)
    ref = C().fit(ctx.X, np.unique(y, return_inverse=True)[1])
    assert same_arrays(clf.predict_proba(ctx.X), ref.predict_proba(ctx.X))
    assert set(clf.predict(ctx.X)) <= set(np.unique(y))


# =============================================================================================
# estimators: sample_weight (fit of both, score of both)
# =============================================================================================
SW_BAD = [
    ("short", np.ones(5), r"sample_weight.shape == \(5,\), expected \(12,\)"),
    ("long", np.ones(N + 1), r"sample_weight.shape == \(13,\)"),
    ("2d", np.ones((N, 1)), r"sample_weight.shape == \(12, 1\)"),
    ("negative", np.r_[-1.0, np.ones(N - 1)], r"sample_weight must be finite and non-negative"),
    ("nan", np.r_[np.nan, np.ones(N - 1)], r"sample_weight must be finite"),
    ("inf", np.r_[np.inf, np.ones(N - 1)], r"sample_weight must be finite"),
    ("all-zero", np.zeros(N), r"sample_weight must not sum to zero"),
    ("scalar-negative", -1.0, r"sample_weight must be finite and non-negative"),
    ("scalar-zero", 0.0, r"sample_weight must not sum to zero"),
    ("scalar-nan", float("nan"), r"sample_weight must be finite"),
    ("letters", np.array(["a"] * N), r"sample_weight must hold real numbers"),
    ("complex", np.ones(N, complex), r"sample_weight must hold real numbers.*complex"),
    ("None-values", np.array([None] * N), r"sample_weight must be finite"),
    ("sum-overflows", np.full(N, 1e308), r"sample_weight sums to infinity"),
]


@pytest.mark.parametrize("where", ["reg-fit", "clf-fit", "reg-score", "clf-score"])
@pytest.mark.parametrize("w, match", [c[1:] for c in SW_BAD], ids=[c[0] for c in SW_BAD])
def test_bad_sample_weight_is_refused(ctx, where, w, match):
    call = {"reg-fit": lambda: R().fit(ctx.X, ctx.yr, sample_weight=w),
            "clf-fit": lambda: C().fit(ctx.X, ctx.yc, sample_weight=w),
            "reg-score": lambda: ctx.reg.score(ctx.X, ctx.yr, sample_weight=w),
            "clf-score": lambda: ctx.clf.score(ctx.X, ctx.yc, sample_weight=w)}[where]
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("w", [np.ones(N), [1] * N, np.ones(N, bool), _readonly(np.ones(N)),
                               np.ones(2 * N)[::2], np.ones(N, np.float32), 1.0],
                         ids=["ones", "int-list", "bool", "read-only", "strided", "float32",
                              "scalar-one"])
def test_unit_sample_weight_forms_equal_no_weights(ctx, w):
    ref = R().fit(ctx.X, ctx.yr)
    assert same_arrays(R().fit(ctx.X, ctx.yr, sample_weight=w).predict(ctx.X), ref.predict(ctx.X))
    assert ctx.reg.score(ctx.X, ctx.yr, sample_weight=w) == pytest.approx(
        ctx.reg.score(ctx.X, ctx.yr), rel=1e-12)


# =============================================================================================
# estimators: lengths
# =============================================================================================
LENGTHS_BAD = [
    ("short", [4] * 5, r"lengths must have one entry per sequence: expected shape \(12,\), got \(5,\)"),
    ("2d", np.full((N, 1), 4), r"lengths must have one entry per sequence"),
    ("scalar", 3, r"lengths must have one entry per sequence"),
    ("zero", [0] + [4] * (N - 1), r"lengths must lie in \[1, 4\]"),
    ("too-long", [5] + [4] * (N - 1), r"lengths must lie in \[1, 4\]"),
    ("negative", [-2] * N, r"lengths must lie in \[1, 4\]"),
    ("uint64-huge", np.full(N, 2 ** 64 - 1, np.uint64),
     r"lengths must lie in .*18446744073709551615"),
    ("fraction", [2.5] * N, r"lengths must be integers"),
    ("nan", [np.nan] * N, r"lengths must be integers"),
    ("str", ["4"] * N, r"lengths must be integers"),
    ("bool", [True] * N, r"lengths must be integers"),
    ("object", np.array([4] * N, object), r"lengths must be integers"),
    ("complex", np.full(N, 4, complex), r"lengths must be integers"),
]


@pytest.mark.parametrize("where", ["fit", "predict", "partial_fit"])
@pytest.mark.parametrize("lengths, match", [c[1:] for c in LENGTHS_BAD],
                         ids=[c[0] for c in LENGTHS_BAD])
def test_bad_lengths_are_refused(ctx, where, lengths, match):
    call = {"fit": lambda: R().fit(ctx.X, ctx.yr, lengths=lengths),
            "predict": lambda: ctx.reg.predict(ctx.X, lengths=lengths),
            "partial_fit": lambda: C().partial_fit(ctx.X, ctx.yc, classes=[0, 1, 2],
                                                   lengths=lengths)}[where]
    with pytest.raises(ValueError, match=match):
        call()


def test_lengths_with_a_ragged_list_are_refused(ctx):
    with pytest.raises(ValueError, match=r"lengths= is for padded arrays"):
        ctx.reg.predict([ctx.X[0], ctx.X[1, :2]], lengths=[4, 2])


@pytest.mark.parametrize("lengths", [[4, 1, 2] * 4, np.array([4, 1, 2] * 4, np.int32),
                                     np.array([4.0, 1.0, 2.0] * 4), _readonly([4, 1, 2] * 4)],
                         ids=["list", "int32", "integral-float", "read-only"])
def test_padded_X_with_lengths_equals_the_ragged_list(ctx, lengths):
    L_ = np.asarray(lengths).astype(int)
    Xg = ctx.X.copy()
    Xg[np.arange(T)[None, :] >= L_[:, None]] = 7.5          # garbage in the padding
    seqs = [ctx.X[i, :L_[i]] for i in range(N)]
    assert same_arrays(ctx.reg.predict(Xg, lengths=lengths), ctx.reg.predict(seqs))
    assert same_arrays(ctx.clf.predict_proba(Xg, lengths=lengths), ctx.clf.predict_proba(seqs))


# =============================================================================================
# estimators: partial_fit
# =============================================================================================
def pf_twice(first, second):
    def call(c):
        clf = C()
        clf.partial_fit(c.X, c.yc, classes=[0, 1, 2], **first)
        return second(c, clf)
    return call


PARTIAL_FIT_BAD = [
    ("no-classes", lambda c: C().partial_fit(c.X, c.yc), ValueError, r"classes must be passed"),
    ("classes-2d", lambda c: C().partial_fit(c.X, c.yc, classes=[[0, 1, 2]]), ValueError,
     r"classes must be a non-empty 1-D array-like"),
    ("classes-scalar", lambda c: C().partial_fit(c.X, c.yc, classes=3), ValueError,
     r"classes must be a non-empty 1-D"),
    ("classes-empty", lambda c: C().partial_fit(c.X, c.yc, classes=[]), ValueError,
     r"classes must be a non-empty 1-D"),
    ("classes-nan", lambda c: C().partial_fit(c.X, c.yc, classes=[0, 1, 2, np.nan]), ValueError,
     r"classes must be finite"),
    ("classes-complex", lambda c: C().partial_fit(c.X, c.yc, classes=np.array([0, 1, 2], complex)),
     ValueError, r"classes must be finite real numbers"),
    ("label-not-in-classes", lambda c: C().partial_fit(c.X, c.yc, classes=[0, 1]), ValueError,
     r"y contains labels not seen .*\[2\]"),
    ("unseen-label-later", pf_twice({}, lambda c, m: m.partial_fit(c.X, c.yc + 1)), ValueError,
     r"y contains labels not seen .*\[3\]"),
    ("other-classes-later", pf_twice({}, lambda c, m: m.partial_fit(c.X, c.yc, classes=[0, 1, 2, 3])),
     ValueError, r"is not the same as on the first call"),
    ("str-labels-for-int-classes", pf_twice({}, lambda c, m: m.partial_fit(c.X, c.yc.astype(str))),
     ValueError, r"y contains labels not seen"),
    ("other-features-later", pf_twice({}, lambda c, m: m.partial_fit(np.zeros((3, T, F + 1)), c.yc[:3])),
     ValueError, r"X has 3 features per timestep, but GRUClassifier is expecting 2"),
    ("2d-after-3d", pf_twice({}, lambda c, m: m.partial_fit(np.zeros((3, T)), c.yc[:3])),
     ValueError, r"X has 1 features per timestep"),
    ("reg-outputs-change", lambda c: R().partial_fit(c.X, c.yr).partial_fit(c.X, np.zeros((N, 2))),
     ValueError, r"y has 2 outputs, but the model was fitted with 1"),
    ("reg-2d-timesteps-change", lambda c: R().partial_fit(c.X[:, :, 0], c.yr).partial_fit(
        c.X[:, :3, 0], c.yr), ValueError, r"X has 3 features, but GRURegressor is expecting 4"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in PARTIAL_FIT_BAD],
                         ids=[c[0] for c in PARTIAL_FIT_BAD])
def test_partial_fit_refuses(ctx, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ctx)


def test_partial_fit_classes_with_duplicates_are_the_unique_labels(ctx):
    a = C().partial_fit(ctx.X, ctx.yc, classes=[2, 0, 1, 1, 0])
    b = C().partial_fit(ctx.X, ctx.yc, classes=[0, 1, 2])
    assert list(a.classes_) == [0, 1, 2]
    assert same_arrays(a.predict_proba(ctx.X), b.predict_proba(ctx.X))


# =============================================================================================
# estimators: output="each_step"
# =============================================================================================
def es(est, y, X=None, **kw):
    def call(c):
        m = (R if est == "reg" else C)(output="each_step")
        return m.fit(c.X if X is None else X, y(c), **kw)
    return call


RAGGED2 = ragged((3, 2), (2, 2))
SHAPE_MSG = r"with output='each_step', y must have shape \(n_samples, n_timesteps"
EACH_STEP_BAD = [
    ("reg-y-1d", es("reg", lambda c: c.yr), ValueError, SHAPE_MSG),
    ("reg-y-too-few-steps", es("reg", lambda c: c.Ys[:, :2]), ValueError,
     SHAPE_MSG + r".*\(12, 2\)"),
    ("reg-y-too-few-sequences", es("reg", lambda c: c.Ys[:5]), ValueError,
     SHAPE_MSG + r".*\(5, 4\)"),
    ("reg-y-4d", es("reg", lambda c: np.zeros((N, T, 2, 2))), ValueError,
     r"n_outputs >= 1; got shape \(12, 4, 2, 2\)"),
    ("reg-y-zero-outputs", es("reg", lambda c: np.zeros((N, T, 0))), ValueError,
     r"n_outputs >= 1; got shape \(12, 4, 0\)"),
    ("reg-y-nan-inside", es("reg", lambda c: with_value(c.Ys, np.nan, (2, 1))), ValueError,
     r"Input y contains NaN"),
    ("reg-y-inf-inside", es("reg", lambda c: with_value(c.Ys, np.inf, (2, 1))), ValueError,
     r"y contains NaN or inf"),
    ("reg-y-complex", es("reg", lambda c: c.Ys.astype(complex)), ValueError,
     r"Complex data not supported in y"),
    ("reg-y-letters", es("reg", lambda c: np.full((N, T), "a")), ValueError,
     r"y must hold real numbers"),
    ("reg-y-None", es("reg", lambda c: np.full((N, T), None)), ValueError,
     r"y contains NaN or inf"),
    ("reg-y-too-large-for-float32", lambda c: R(output="each_step", dtype="float32", standardize=False).fit(
        c.X, with_value(c.Ys, 1e300, (0, 0))), ValueError, r"y has values too large for float32"),
    ("reg-ragged-y-wrong-length", es("reg", lambda c: [np.zeros(3), np.zeros(3)], RAGGED2), ValueError,
     r"y\[1\] has shape \(3,\); expected \(2,\) to match sequence 1"),
    ("reg-ragged-y-count", es("reg", lambda c: [np.zeros(3)], RAGGED2), ValueError,
     r"y has 1 target sequences for 2 input sequences"),
    ("reg-ragged-y-outputs-differ", es("reg", lambda c: [np.zeros((3, 2)), np.zeros((2, 3))], RAGGED2),
     ValueError, r"y\[1\] has shape \(2, 3\); expected \(2, 2\)"),
    ("reg-ragged-y-scalar-element", es("reg", lambda c: [np.zeros(3), np.array(1.0)], RAGGED2),
     ValueError, r"y\[1\] has shape \(\); expected \(2,\)"),
    ("reg-ragged-y-letters", es("reg", lambda c: [np.array(["a"] * 3), np.array(["b"] * 2)], RAGGED2),
     ValueError, r"y must hold real numbers"),
    ("reg-ragged-y-numbers-and-strings", es("reg", lambda c: [np.zeros(3), np.array(["1", "2"])], RAGGED2),
     ValueError, r"target sequences in y mix dtypes"),
    ("reg-y-list-of-numbers", es("reg", lambda c: [1.0, 2.0], RAGGED2), ValueError, SHAPE_MSG),
    ("clf-y-1d", es("clf", lambda c: c.yc), ValueError, SHAPE_MSG),
    ("clf-y-3d", es("clf", lambda c: np.zeros((N, T, 2))), ValueError,
     r"one label per timestep.*\(12, 4, 2\)"),
    ("clf-y-nan", es("clf", lambda c: with_value(c.Yl, np.nan, (1, 1))), ValueError,
     r"Input y contains NaN"),
    ("clf-y-continuous", es("clf", lambda c: c.Ys), ValueError, r"Unknown label type: continuous"),
    ("clf-y-mixed-objects", es("clf", lambda c: np.array([[0, "a"] * 2] * N, object)), ValueError,
     r"Unknown label type"),
    ("clf-y-too-few-steps", es("clf", lambda c: c.Yl[:, :2]), ValueError, SHAPE_MSG),
    ("clf-ragged-y-wrong-length", es("clf", lambda c: [np.zeros(3, int), np.zeros(1, int)], RAGGED2),
     ValueError, r"y\[1\] has shape \(1,\); expected \(2,\)"),
    ("clf-ragged-y-ints-then-strings",
     es("clf", lambda c: [np.array([0, 1, 0]), np.array(["a", "b"])], RAGGED2),
     ValueError, r"target sequences in y mix dtypes \['<U1', 'int64'\]"),
    ("clf-sample-weight-per-step", es("clf", lambda c: c.Yl, sample_weight=np.ones((N, T))), ValueError,
     r"sample_weight.shape == \(12, 4\), expected \(12,\)"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in EACH_STEP_BAD],
                         ids=[c[0] for c in EACH_STEP_BAD])
def test_each_step_refuses(ctx, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ctx)


EACH_STEP_SCORE_BAD = [
    ("reg-y-1d", lambda c: c.es_reg.score(c.X, c.yr), SHAPE_MSG),
    ("reg-y-too-few-steps", lambda c: c.es_reg.score(c.X, c.Ys[:, :2]), SHAPE_MSG),
    ("reg-sample-weight-short", lambda c: c.es_reg.score(c.X, c.Ys, sample_weight=np.ones(3)),
     r"sample_weight.shape == \(3,\)"),
    ("reg-sample-weight-negative", lambda c: c.es_reg.score(c.X, c.Ys, sample_weight=-np.ones(N)),
     r"sample_weight must be finite and non-negative"),
    ("clf-y-1d", lambda c: c.es_clf.score(c.X, c.yc), SHAPE_MSG),
    ("clf-y-3d", lambda c: c.es_clf.score(c.X, np.zeros((N, T, 2))), r"one label per timestep"),
    ("clf-sample-weight-nan", lambda c: c.es_clf.score(c.X, c.Yl, sample_weight=np.full(N, np.nan)),
     r"sample_weight must be finite"),
]


@pytest.mark.parametrize("call, match", [c[1:] for c in EACH_STEP_SCORE_BAD],
                         ids=[c[0] for c in EACH_STEP_SCORE_BAD])
def test_each_step_score_refuses(ctx, call, match):
    with pytest.raises(ValueError, match=match):
        call(ctx)


def test_each_step_nan_in_the_padding_of_y_is_ignored(ctx):
    lengths = np.array([2, 3, 4] * 4)
    pad = np.arange(T)[None, :] >= lengths[:, None]
    y_nan, y_zero = ctx.Ys.copy(), ctx.Ys.copy()
    y_nan[pad], y_zero[pad] = np.nan, 0.0
    a = R(output="each_step").fit(ctx.X, y_nan, lengths=lengths)
    b = R(output="each_step").fit(ctx.X, y_zero, lengths=lengths)
    assert np.isfinite(a.head_coef_).all()
    assert same_arrays(a.predict(ctx.X, lengths=lengths), b.predict(ctx.X, lengths=lengths))


def test_each_step_ragged_y_of_ints_then_floats_is_not_truncated():
    """The padded copy of a ragged y used to take the first sequence's dtype: floats after an
    int sequence were silently truncated to integers."""
    X = ragged((3, 2), (2, 2), fill=0.5)
    y_mixed = [np.array([1, 2, 3]), np.array([0.25, 0.75])]
    y_float = [np.array([1.0, 2.0, 3.0]), np.array([0.25, 0.75])]
    a = R(output="each_step").fit(X, y_mixed)
    b = R(output="each_step").fit(X, y_float)
    assert same_arrays(a.predict(X), b.predict(X))
    assert a.score(X, y_mixed) == b.score(X, y_float)


# =============================================================================================
# estimators: predict / score
# =============================================================================================
PREDICT_BAD = [
    ("wrong-features", lambda c: c.reg.predict(np.zeros((3, T, F + 1))), ValueError,
     r"X has 3 features per timestep, but GRURegressor is expecting 2"),
    ("2d-for-3d-model", lambda c: c.reg.predict(np.zeros((3, T))), ValueError,
     r"X has 1 features per timestep"),
    ("ragged-wrong-features", lambda c: c.clf.predict(ragged((3, 3), (2, 3))), ValueError,
     r"X has 3 features per timestep, but GRUClassifier"),
    ("empty", lambda c: c.reg.predict(np.zeros((0, T, F))), ValueError, r"0 sample"),
    ("empty-list", lambda c: c.reg.predict([]), ValueError, r"X holds no sequences"),
    ("empty-list-proba", lambda c: c.clf.predict_proba([]), ValueError, r"X holds no sequences"),
    ("empty-list-score", lambda c: c.clf.score([], []), ValueError, r"X holds no sequences"),
    ("1d-predict", lambda c: c.reg.predict(c.X[0, :, 0]), ValueError,
     r"X is 1-D.*Reshape your data"),
    ("nan", lambda c: c.clf.predict_proba(with_value(c.X, np.nan)), ValueError,
     r"Input X contains NaN"),
    ("inf", lambda c: c.clf.predict(with_value(c.X, np.inf)), ValueError,
     r"Input X contains infinity"),
    ("4d", lambda c: c.reg.predict(c.X[..., None]), ValueError, r"got 4-D"),
    ("complex", lambda c: c.clf.predict_log_proba(c.X.astype(complex)), ValueError,
     r"Complex data"),
    ("too-large-for-float32", lambda c: c.reg32.predict(with_value(c.X, 1e300)), ValueError,
     r"X has values too large for float32"),
    ("unfitted-predict", lambda c: R().predict(c.X), NotFittedError, r"not fitted"),
    ("unfitted-proba", lambda c: C().predict_proba(c.X), NotFittedError, r"not fitted"),
    ("unfitted-score", lambda c: R().score(c.X, c.yr), NotFittedError, r"not fitted"),
    ("unfitted-each-step-score", lambda c: C(output="each_step").score(c.X, c.Yl), NotFittedError,
     r"not fitted"),
    ("unfitted-save", lambda c: C().save(c.dir / "never.npz"), NotFittedError, r"not fitted"),
    ("score-y-short", lambda c: c.reg.score(c.X, c.yr[:3]), ValueError,
     r"inconsistent numbers of samples"),
    ("score-y-nan", lambda c: c.reg.score(c.X, np.full(N, np.nan)), ValueError, r"contains NaN"),
    ("clf-score-y-short", lambda c: c.clf.score(c.X, c.yc[:3]), ValueError,
     r"inconsistent numbers of samples"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in PREDICT_BAD],
                         ids=[c[0] for c in PREDICT_BAD])
def test_predict_and_score_refuse(ctx, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ctx)
    assert not (ctx.dir / "never.npz").exists()


# =============================================================================================
# numgru.load: hand-made hostile files
# =============================================================================================
def npz(c, arrays, name="hostile.npz"):
    path = c.dir / name
    np.savez(path, **arrays)
    return path


def edit_arrays(changes):
    """Replace (value), add (new name) or drop (None) arrays of the saved model."""
    def make(c):
        arrays = dict(c.arrays)
        for k, v in changes.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v
        return npz(c, arrays)
    return make


def edit_meta(change=None, text=None):
    def make(c):
        meta = json.loads(json.dumps(c.meta))
        if change is not None:
            change(meta)
        value = text if text is not None else json.dumps(meta)
        return npz(c, {**c.arrays, "__meta__": value if isinstance(value, np.ndarray)
                       else np.array(value)})
    return make


def set_in(section, **kv):
    return edit_meta(lambda m: m[section].update(kv))


def drop_in(section, name):
    return edit_meta(lambda m: m[section].pop(name))


def raw_file(data):
    def make(c):
        path = c.dir / "raw.bin"
        path.write_bytes(data(c) if callable(data) else data)
        return path
    return make


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npy_header(shape, descr="<f8", payload=b""):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def zip_members(members):
    """The saved model's zip members (``name.npy``) with some replaced or added (bytes)."""
    def make(c):
        entries = {k + ".npy": npy_bytes(v) for k, v in c.arrays.items()}
        entries.update(members)
        path = c.dir / "members.npz"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
        return path
    return make


class Evil:
    """Unpickling this would run a shell command; numgru must never get that far."""

    def __reduce__(self):
        return (os.system, ("echo pwned > numgru_fuzz_pwned",))


def pickled(name):
    def make(c):
        arrays = dict(c.arrays)
        arrays[name] = np.array([Evil(), "b", "c"], dtype=object)
        return npz(c, arrays)
    return make


NOT_READABLE = r"is not a readable numgru model file"
NOT_MODEL = r"is not a numgru model file"
CORRUPT = r"is a corrupt numgru model file"
WEIGHT = "gru0.weight_ih_l0"
LOAD_BAD = [
    # not a zip / not an archive of arrays
    ("empty-file", raw_file(b""), NOT_READABLE + r".*not a zip file"),
    ("text-file", raw_file(b"hello, world\n"), NOT_READABLE + r".*not a zip file"),
    ("npy-file", raw_file(lambda c: npy_bytes(np.zeros(3))), NOT_READABLE + r".*not a zip file"),
    ("pickle-file", raw_file(lambda c: pickle.dumps(c.sclf)), NOT_READABLE),
    ("zip-with-text-member", zip_members({"readme.txt": b"hi"}),
     NOT_READABLE + r".*'readme.txt' is not a \.npy"),
    ("member-not-npy", zip_members({"head_coef.npy": b"not an array"}), NOT_READABLE),
    ("member-bad-header", zip_members({"head_coef.npy": b"\x93NUMPY\x01\x00garbage"}),
     NOT_READABLE),
    ("member-npy-version-3", zip_members({"head_coef.npy": b"\x93NUMPY\x03\x00" + b"\x00" * 60}),
     NOT_READABLE + r".*version"),
    ("member-truncated-data",
     zip_members({"head_coef.npy": npy_header((3, 3), payload=b"\x00" * 10)}), NOT_READABLE),
    # huge or impossible declared shapes: refused before anything is allocated
    ("huge-shape", zip_members({"head_coef.npy": npy_header((10 ** 6, 10 ** 6))}),
     NOT_READABLE + r".*head_coef.*declares shape \(1000000, 1000000\)"),
    ("huge-shape-overflowing",
     zip_members({"gru0.weight_ih_l0.npy": npy_header((2 ** 40, 2 ** 40))}),
     NOT_READABLE + r".*declares shape"),
    ("huge-string-meta", zip_members({"__meta__.npy": npy_header((10 ** 7,), "<U100000")}),
     NOT_READABLE + r".*__meta__.*declares shape"),
    ("negative-shape", zip_members({"head_coef.npy": npy_header((-1, 3))}),
     NOT_READABLE + r".*declares shape \(-1, 3\)"),
    # pickled objects: refused, never unpickled
    ("pickled-classes", pickled("classes"), NOT_READABLE + r".*'classes' holds Python objects"),
    ("pickled-meta", pickled("__meta__"), NOT_READABLE + r".*'__meta__' holds Python objects"),
    ("object-dtype-header", zip_members({"classes.npy": npy_header((3,), "|O")}),
     NOT_READABLE + r".*holds Python objects"),
    # the metadata
    ("no-meta", edit_arrays({"__meta__": None}), NOT_MODEL + r" \(no metadata\)"),
    ("meta-not-json", edit_meta(text="{not json"), NOT_READABLE + r".*property name"),
    ("meta-empty", edit_meta(text=""), NOT_READABLE + r".*Expecting value"),
    ("meta-json-list", edit_meta(text="[1, 2]"), NOT_MODEL + r" \(format None\)"),
    ("meta-json-string", edit_meta(text='"numgru-estimator"'), NOT_MODEL + r" \(format None\)"),
    ("meta-json-null", edit_meta(text="null"), NOT_MODEL + r" \(format None\)"),
    ("meta-json-number", edit_meta(text="3"), NOT_MODEL + r" \(format None\)"),
    ("meta-deep-nesting", edit_meta(text="[" * 100000 + "]" * 100000),
     NOT_READABLE + r".*recursion"),
    # Python >= 3.10.7 refuses a 5000-digit int; older ones read it (and the format is None)
    ("meta-huge-integer", edit_meta(text="1" * 5000), r"digits|format None"),
    ("meta-numeric-array", edit_meta(text=np.arange(3)),
     NOT_READABLE + r".*metadata is a int64 array"),
    ("meta-two-strings", edit_meta(text=np.array(["{}", "{}"])),
     NOT_READABLE + r".*not a JSON string"),
    ("meta-bytes", edit_meta(text=np.array(b"{}")), NOT_READABLE + r".*metadata is a \|S2 array"),
    ("format-other", edit_meta(lambda m: m.update(format="keras")),
     NOT_MODEL + r" \(format 'keras'\)"),
    ("format-missing", edit_meta(lambda m: m.pop("format")), NOT_MODEL + r" \(format None\)"),
    ("version-2", edit_meta(lambda m: m.update(version=2)),
     r"model format version 2; this numgru reads version 1"),
    ("version-str", edit_meta(lambda m: m.update(version="1")), r"model format version '1'"),
    ("version-true", edit_meta(lambda m: m.update(version=True)), r"model format version True"),
    ("version-float", edit_meta(lambda m: m.update(version=1.0)), r"model format version 1.0"),
    ("version-missing", edit_meta(lambda m: m.pop("version")), r"model format version None"),
    ("class-unknown", edit_meta(lambda m: m.update({"class": "MLPClassifier"})),
     r"unknown estimator class 'MLPClassifier'"),
    ("class-list", edit_meta(lambda m: m.update({"class": ["GRUClassifier"]})),
     r"unknown estimator class \['GRUClassifier'\]"),
    ("class-dunder", edit_meta(lambda m: m.update({"class": "__class__"})),
     r"unknown estimator class '__class__'"),
    ("class-missing", edit_meta(lambda m: m.pop("class")), r"unknown estimator class None"),
    ("class-regressor", edit_meta(lambda m: m.update({"class": "GRURegressor"})),
     CORRUPT + r".*class_weight"),
    ("params-missing", edit_meta(lambda m: m.pop("params")), CORRUPT + r".*'params'"),
    ("params-list", edit_meta(lambda m: m.update(params=[1, 2])),
     CORRUPT + r".*must be JSON objects, got list"),
    ("params-null", edit_meta(lambda m: m.update(params=None)),
     CORRUPT + r".*must be JSON objects, got NoneType"),
    ("dict-items-not-pairs", set_in("params", class_weight={"__dict_items__": [[0, 1.0, 2]]}),
     CORRUPT + r".*'class_weight' must be stored as a list of \[key, value\] pairs"),
    ("dict-items-list-key", set_in("params", class_weight={"__dict_items__": [[[0], 1.0]]}),
     CORRUPT + r".*'class_weight' must be stored as a list of \[key, value\] pairs"),
    ("dict-items-string", set_in("params", class_weight={"__dict_items__": "0:1"}),
     CORRUPT + r".*'class_weight' must be stored as a list of \[key, value\] pairs"),
    ("fitted-missing", edit_meta(lambda m: m.pop("fitted")), CORRUPT + r".*'fitted'"),
    ("fitted-string", edit_meta(lambda m: m.update(fitted="abc")), CORRUPT + r".*got dict and str"),
    # parameters the estimator refuses
    ("param-unknown", set_in("params", foo=1), CORRUPT + r".*unexpected keyword argument 'foo'"),
    ("param-solver", set_in("params", solver="lbfgs"), CORRUPT + r".*'solver' parameter"),
    ("param-dropout", set_in("params", dropout=2.0), CORRUPT + r".*'dropout' parameter"),
    ("param-dtype", set_in("params", dtype="float16"), CORRUPT + r".*'dtype' parameter"),
    ("param-device", set_in("params", device="tpu"), CORRUPT + r".*'device' parameter"),
    ("param-max-iter", set_in("params", max_iter=0), CORRUPT + r".*'max_iter' parameter"),
    ("param-bidirectional-str", set_in("params", bidirectional="yes"),
     CORRUPT + r".*'bidirectional' parameter"),
    ("param-random-state-str", set_in("params", random_state="x"),
     CORRUPT + r".*'random_state' parameter"),
    ("param-hidden-zero", set_in("params", hidden_layer_sizes=[0]),
     CORRUPT + r".*hidden_layer_sizes must be positive"),
    ("param-hidden-float", set_in("params", hidden_layer_sizes=[3.0]),
     CORRUPT + r".*hidden_layer_sizes"),
    ("param-hidden-str", set_in("params", hidden_layer_sizes="abc"),
     CORRUPT + r".*hidden_layer_sizes"),
    ("param-hidden-huge", set_in("params", hidden_layer_sizes=[10 ** 9]),
     CORRUPT + r".*'gru0.weight_ih_l0' has shape \(9, 2\), expected \(3000000000, 2\)"),
    ("param-hidden-other", set_in("params", hidden_layer_sizes=[4]),
     CORRUPT + r".*expected \(12, 2\)"),
    ("param-extra-layer", set_in("params", hidden_layer_sizes=[3, 3]),
     CORRUPT + r".*'gru1.weight_ih_l0' is missing"),
    ("param-bidirectional", set_in("params", bidirectional=True),
     CORRUPT + r".*missing keys \['weight_ih_l0_reverse'"),
    ("param-residual-str", set_in("params", residual="yes"), CORRUPT + r".*'residual' parameter"),
    ("param-residual-one-layer", set_in("params", residual=True),
     CORRUPT + r".*residual=True needs at least two recurrent layers"),
    ("param-pooling-unknown", set_in("params", pooling="max"), CORRUPT + r".*'pooling' parameter"),
    ("param-pooling-attention", set_in("params", pooling="attention"),
     CORRUPT + r".*'attention_coef' is missing"),
    ("param-reset-after", set_in("params", reset_after=False),
     CORRUPT + r".*bias_hh_l0'\] has shape \(9,\), expected \(6,\)"),
    # fitted values of the wrong types or values
    *[(f"fitted-missing-{name}", drop_in("fitted", name), CORRUPT + rf".*\['{name}'\] are missing")
      for name in ("n_features_in_", "n_outputs_", "_input_kind", "_n_inputs", "_dtype")],
    *[(f"fitted-{name}={value!r}", set_in("fitted", **{name: value}), CORRUPT + rf".*{match}")
      for name, value, match in [
          ("n_outputs_", 5, r"head weights have shape \(3, 3\), expected \(5, 3\)"),
          ("n_outputs_", 0, r"n_outputs_ must be a positive integer"),
          ("n_outputs_", -1, r"n_outputs_ must be a positive integer"),
          ("n_outputs_", 3.0, r"n_outputs_ must be a positive integer, got 3.0"),
          ("n_outputs_", "3", r"n_outputs_ must be a positive integer"),
          ("n_outputs_", None, r"n_outputs_ must be a positive integer"),
          ("n_outputs_", 10 ** 12, r"head weights have shape"),
          ("_n_inputs", 3, r"n_features_in_ \(2\) differs from _n_inputs \(3\)"),
          ("_n_inputs", 10 ** 15, r"differs from _n_inputs"),
          ("_n_inputs", True, r"_n_inputs must be a positive integer, got True"),
          ("_n_inputs", 2.5, r"_n_inputs must be a positive integer"),
          ("n_features_in_", 99, r"n_features_in_ \(99\) differs"),
          ("n_features_in_", "x", r"n_features_in_ must be a positive integer"),
          ("_input_kind", "4d", r"_input_kind must be '3d', '2d' or 'ragged'"),
          ("_input_kind", "2d", r"one input per timestep"),
          ("_dtype", "float16", r"_dtype must be 'float32' or 'float64', got 'float16'"),
          ("_dtype", "int64", r"_dtype must be"),
          ("_dtype", "complex128", r"_dtype must be"),
          ("_dtype", "O", r"_dtype must be"),
          ("_dtype", 5, r"_dtype must be"),
          ("loss_curve_", "abc", r"loss_curve_ must be a list of numbers"),
          ("loss_curve_", [1.0, "x"], r"loss_curve_ must be a list of numbers"),
          ("loss_", "x", r"loss_ must be a number"),
          ("n_iter_", -1, r"n_iter_ must be a non-negative integer"),
          ("t_", 1.5, r"t_ must be a non-negative integer"),
          ("out_activation_", 3, r"out_activation_ must be a string"),
          # issue 21: values of the right type, but not ones a fit gives
          ("out_activation_", "bogus", r"out_activation_ must be 'softmax' for this estimator, "
                                       r"got 'bogus'"),
          ("out_activation_", "identity", r"out_activation_ must be 'softmax'"),
          ("loss_", -1.0, r"loss_ must be a finite number >= 0"),
          ("loss_", float("inf"), r"loss_ must be a finite number >= 0"),
          ("best_loss_", -0.5, r"best_loss_ must be a number >= 0"),
          ("best_loss_", float("nan"), r"best_loss_ must be a number >= 0"),
          ("loss_curve_", [-1.0, 0.5], r"loss_curve_ must be a list of finite numbers >= 0"),
          ("loss_curve_", [float("nan"), 0.5], r"loss_curve_ must be a list of finite numbers"),
          ("loss_curve_", [0.5], r"loss_curve_ must be one loss per epoch, n_iter_ = 2"),
          ("n_iter_", 7, r"loss_curve_ must be one loss per epoch, n_iter_ = 7"),
          ("validation_scores_", [0.5, 1.5], r"validation_scores_ must be a list of finite "
                                             r"scores <= 1"),
          ("validation_scores_", [0.5, float("-inf")], r"validation_scores_ must be"),
          ("best_validation_score_", 2.0, r"best_validation_score_ must be a score <= 1"),
          ("t_", 1, r"t_ must be at least n_iter_ = 2"),
          ("feature_names_in_", ["a"], r"feature_names_in_ must be a list of 2 strings"),
          ("feature_names_in_", [1, 2], r"feature_names_in_ must be a list of 2 strings"),
          ("feature_names_in_", "ab", r"feature_names_in_ must be a list of 2 strings"),
      ]],
    # issue 21: a class_weight that fit refuses is refused in a file too
    *[(f"param-class_weight-{name}", set_in("params", class_weight={"a": w, "b": 1.0}),
       CORRUPT + r".*class_weight must map each class to a finite number > 0, got "
       + re.escape(repr(w)) + r" for class 'a'")
      for name, w in [("negative", -1.0), ("zero", 0), ("nan", float("nan")),
                      ("inf", float("inf")), ("str", "1"), ("bool", True), ("null", None)]],
    # the arrays
    ("missing-classes", edit_arrays({"classes": None}), CORRUPT + r".*'classes'"),
    ("missing-head", edit_arrays({"head_coef": None}), CORRUPT + r".*'head_coef'"),
    ("missing-weight", edit_arrays({"gru0.weight_hh_l0": None}),
     CORRUPT + r".*'gru0.weight_hh_l0' is missing"),
    ("missing-bias", edit_arrays({"gru0.bias_ih_l0": None}),
     CORRUPT + r".*missing keys \['bias_ih_l0'\]"),
    ("extra-array", edit_arrays({"extra": np.zeros(3)}),
     CORRUPT + r".*arrays \['extra'\] are not part of this GRUClassifier"),
    ("extra-layer-arrays", edit_arrays({"gru1.weight_ih_l0": np.zeros((9, 3))}),
     CORRUPT + r".*\['gru1.weight_ih_l0'\]"),
    ("extra-key-in-layer", edit_arrays({"gru0.weight_ih_l1": np.zeros((9, 3))}),
     CORRUPT + r".*unexpected keys \['weight_ih_l1'\]"),
    ("path-like-member", zip_members({"../evil.npy": npy_bytes(np.zeros(2))}),
     CORRUPT + r".*\['\.\./evil'\]"),
    ("classes-short", edit_arrays({"classes": np.array(["a", "b"])}),
     CORRUPT + r".*classes have shape \(2,\), expected \(3,\)"),
    ("classes-2d", edit_arrays({"classes": np.array([["a", "b", "c"]])}),
     CORRUPT + r".*classes have shape \(1, 3\)"),
    ("classes-duplicates", edit_arrays({"classes": np.array(["a", "a", "b"])}),
     CORRUPT + r".*classes must be sorted and unique"),
    ("classes-unsorted", edit_arrays({"classes": np.array(["c", "b", "a"])}),
     CORRUPT + r".*classes must be sorted and unique"),
    ("classes-nan", edit_arrays({"classes": np.array([0.0, 1.0, np.nan])}),
     CORRUPT + r".*classes must be finite numbers or strings"),
    ("classes-complex", edit_arrays({"classes": np.array([0j, 1j, 2j])}),
     CORRUPT + r".*classes must be finite"),
    ("classes-datetime", edit_arrays({"classes": np.arange(3).astype("datetime64[D]")}),
     CORRUPT + r".*classes must be finite"),
    ("classes-flagged-not-str", lambda c: npz(c, {
        **c.arrays, "classes": np.array([0, 1, 2]),
        "__meta__": np.array(json.dumps({**c.meta, "classes_object": True}))}),
     CORRUPT + r".*'classes' is flagged as strings but holds int64"),
    ("head-wrong-shape", edit_arrays({"head_coef": np.zeros((3, 4))}),
     CORRUPT + r".*head weights have shape \(3, 4\)"),
    ("head-scalar", edit_arrays({"head_coef": np.array(1.0)}),
     CORRUPT + r".*head weights have shape \(\)"),
    ("head-nan", edit_arrays({"head_coef": np.full((3, 3), np.nan)}),
     CORRUPT + r".*head_coef contains NaN"),
    ("head-inf", edit_arrays({"head_intercept": np.full(3, -np.inf)}),
     CORRUPT + r".*head_intercept contains inf"),
    ("head-str", edit_arrays({"head_coef": np.full((3, 3), "a")}),
     CORRUPT + r".*head_coef has non-numeric dtype"),
    ("head-complex", edit_arrays({"head_coef": np.zeros((3, 3), complex)}),
     CORRUPT + r".*head_coef has complex dtype"),
    ("head-bool", edit_arrays({"head_coef": np.zeros((3, 3), bool)}),
     CORRUPT + r".*head_coef has boolean dtype"),
    ("head-datetime", edit_arrays({"head_coef": np.zeros((3, 3), "datetime64[s]")}),
     CORRUPT + r".*head_coef has non-numeric"),
    ("head-structured", edit_arrays({"head_coef": np.zeros((3, 3), [("a", "f8")])}),
     CORRUPT + r".*head_coef has non-numeric"),
    ("weight-nan", edit_arrays({WEIGHT: np.full((9, 2), np.nan)}),
     CORRUPT + r".*weight_ih_l0'\] contains NaN"),
    ("weight-inf", edit_arrays({"gru0.bias_hh_l0": np.full(9, np.inf)}),
     CORRUPT + r".*bias_hh_l0'\] contains inf"),
    ("weight-shape", edit_arrays({WEIGHT: np.zeros((9, 3))}),
     CORRUPT + r".*has shape \(9, 3\), expected \(9, 2\)"),
    ("weight-str", edit_arrays({WEIGHT: np.full((9, 2), "a")}),
     CORRUPT + r".*weight_ih_l0'\] has non-numeric"),
    ("weight-complex", edit_arrays({WEIGHT: np.zeros((9, 2), complex)}),
     CORRUPT + r".*weight_ih_l0'\] has complex"),
]


@pytest.mark.parametrize("make, match", [c[1:] for c in LOAD_BAD], ids=[c[0] for c in LOAD_BAD])
def test_load_refuses_hostile_files(ctx, make, match, monkeypatch):
    monkeypatch.chdir(ctx.dir)                  # where Evil's command would write its file
    with pytest.raises(ValueError, match=match):
        numgru.load(make(ctx))
    assert not (ctx.dir / "numgru_fuzz_pwned").exists()


@pytest.mark.parametrize("path", [None, 3, 2.5, ["model.npz"]], ids=["None", "int", "float", "list"])
def test_load_refuses_a_path_that_is_no_path(path):
    with pytest.raises(TypeError, match=r"str, bytes or os.PathLike"):
        numgru.load(path)


LOAD_OK = [   # files that differ from what save writes but hold the same model
    ("as-saved", lambda c: c.model),
    ("file-object", lambda c: open(c.model, "rb")),
    ("fortran-arrays", lambda c: npz(c, {k: np.asfortranarray(v) if v.ndim > 1 else v
                                         for k, v in c.arrays.items()})),
    ("big-endian-arrays", lambda c: npz(c, {
        k: v.astype(v.dtype.newbyteorder(">")) if v.dtype.kind == "f" else v
        for k, v in c.arrays.items()})),
    ("compressed",
     lambda c: (np.savez_compressed(c.dir / "z.npz", **c.arrays), c.dir / "z.npz")[1]),
    ("meta-keys-reordered", edit_meta(lambda m: [m.update({k: m.pop(k)}) for k in list(m)[::-1]])),
]


@pytest.mark.parametrize("make", [m for _, m in LOAD_OK], ids=[n for n, _ in LOAD_OK])
def test_load_reads_equivalent_files_exactly(ctx, make):
    src = make(ctx)
    try:
        model = numgru.load(src)
    finally:
        if hasattr(src, "close"):
            src.close()
    assert same_arrays(model.predict_proba(ctx.X), ctx.proba)
    assert list(model.classes_) == ["a", "b", "c"]


# =============================================================================================
# numgru.load: byte flips and truncations of a real model file
# =============================================================================================
# Where to flip one byte of member k of the saved file (8 members: 4 GRU arrays, head_coef,
# head_intercept, classes, __meta__), and with which xor mask. zipfile reads the flags and the
# compression method from the central directory: damage there made it raise
# NotImplementedError (unknown compression, "patched data", zip version) or RuntimeError
# ("encrypted"); a ")" for the "(" of a .npy header's shape made numpy's header parser raise
# tokenize.TokenError. All of those leaked out of numgru.load before.
def _local(offset):
    return lambda z: z["local"] + offset


def _central(offset):
    return lambda z: z["central"] + offset


def _in_npy_header(needle):
    return lambda z: z["data"] + z["member"].index(needle)


FLIPS = [
    ("local-version-needed", _local(4), 0xFF), ("local-flags-encrypted", _local(6), 0x01),
    ("local-method", _local(8), 0x01), ("local-crc", _local(14), 0x01),
    ("local-name-length", _local(26), 0x01), ("local-name", _local(30), 0x01),
    ("central-version-made", _central(4), 0xFF), ("central-version-needed", _central(6), 0xFF),
    ("central-flags-encrypted", _central(8), 0x01), ("central-flags-patched", _central(8), 0x20),
    ("central-method", _central(10), 0x01), ("central-method-high", _central(11), 0x80),
    ("central-crc", _central(16), 0x01), ("central-compressed-size", _central(20), 0x01),
    ("central-size", _central(24), 0x10), ("central-name-length", _central(28), 0x01),
    ("central-extra-length", _central(30), 0x01), ("central-local-offset", _central(42), 0x01),
    ("central-name", _central(46), 0x01),
    ("npy-magic", _in_npy_header(b"NUMPY"), 0x01),
    ("npy-major-version", lambda z: z["data"] + z["member"].index(b"NUMPY") + 5, 0x07),
    ("npy-brace", _in_npy_header(b"{"), 0x01), ("npy-quote", _in_npy_header(b"'descr"), 0x01),
    ("npy-shape-paren", _in_npy_header(b"("), 0x01), ("npy-fortran", _in_npy_header(b"False"),
     0x01),
    ("npy-descr", _in_npy_header(b"<"), 0x02),
    ("data-last-byte", lambda z: z["data"] + z["size"] - 1, 0x01),
]


def _zip_layout(data, member):
    """Offsets of member ``member``: its local header, central directory entry and data."""
    eocd = data.rindex(b"PK\x05\x06")
    central = int.from_bytes(data[eocd + 16:eocd + 20], "little")
    for _ in range(member):     # walk the central directory to entry ``member``
        n, m, k = (int.from_bytes(data[central + o:central + o + 2], "little") for o in (28, 30, 32))
        central += 46 + n + m + k
    local = int.from_bytes(data[central + 42:central + 46], "little")
    size = int.from_bytes(data[central + 24:central + 28], "little")
    n, m = (int.from_bytes(data[local + o:local + o + 2], "little") for o in (26, 28))
    start = local + 30 + n + m
    return {"local": local, "central": central, "data": start, "size": size,
            "member": data[start:start + min(size, 128)]}


def _load_equal_or_refused(c, data):
    try:
        model = numgru.load(io.BytesIO(data))
    except ValueError as exc:
        assert re.search(f"{NOT_READABLE}|{NOT_MODEL}|{CORRUPT}|unknown estimator|version", str(exc))
        return "refused"
    assert same_arrays(model.predict_proba(c.X), c.proba)       # damage that does not matter
    assert list(model.classes_) == ["a", "b", "c"]
    return "same"


@pytest.mark.parametrize("member", range(10))
@pytest.mark.parametrize("where, mask", [f[1:] for f in FLIPS], ids=[f[0] for f in FLIPS])
def test_flipped_structure_byte_is_refused_or_harmless(ctx, member, where, mask):
    with zipfile.ZipFile(ctx.model) as zf:
        assert len(zf.infolist()) == 10 and zf.infolist()[member].compress_type == zipfile.ZIP_STORED
    data = bytearray(ctx.model_bytes)
    pos = where(_zip_layout(ctx.model_bytes, member))
    data[pos] ^= mask
    _load_equal_or_refused(ctx, bytes(data))


@pytest.mark.parametrize("frac", [i / 24 for i in range(24)])
def test_flipped_byte_anywhere_is_refused_or_harmless(ctx, frac):
    pos = int(frac * len(ctx.model_bytes))
    for mask in (0x01, 0x80, 0xFF):
        data = bytearray(ctx.model_bytes)
        data[pos] ^= mask
        _load_equal_or_refused(ctx, bytes(data))


@pytest.mark.parametrize("keep", [0, 1, 4, 30, 0.25, 0.5, 0.9, -22, -1])
def test_truncated_file_is_refused(ctx, keep):
    n = len(ctx.model_bytes)
    cut = int(keep * n) if isinstance(keep, float) else keep % n if keep < 0 else keep
    with pytest.raises(ValueError, match=NOT_READABLE):
        numgru.load(io.BytesIO(ctx.model_bytes[:cut]))


# =============================================================================================
# save: atomic
# =============================================================================================
def _tmp_files(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _failing_savez(exc):
    def savez(fh, **arrays):
        fh.write(b"PK\x03\x04 the first bytes of an archive")
        fh.flush()
        raise exc
    return savez


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt(),
                                 MemoryError()], ids=["disk-full", "ctrl-c", "memory"])
def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(ctx, tmp_path, monkeypatch, exc):
    path = tmp_path / "model.npz"
    ctx.sclf.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(numgru.io.np, "savez", _failing_savez(exc))
    with pytest.raises(type(exc)):
        ctx.reg.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert same_arrays(numgru.load(path).predict_proba(ctx.X), ctx.proba)


def test_a_failed_first_save_leaves_nothing(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(numgru.io.np, "savez", _failing_savez(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        ctx.sclf.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_keeps_the_previous_file(ctx, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    ctx.reg.save(path)
    before = path.read_bytes()

    def refuse(src, dst):
        raise PermissionError("read-only file system")
    monkeypatch.setattr(numgru.io.os, "replace", refuse)
    with pytest.raises(PermissionError):
        ctx.sclf.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and _tmp_files(tmp_path) == []


def test_save_writes_a_temporary_file_flushed_to_disk_then_renames_it(ctx, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    ctx.reg.save(path)
    before = path.read_bytes()
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(numgru.io.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])

    def replace(src, dst):
        calls.append(("replace", os.path.dirname(src), os.path.basename(src), dst))
        assert path.read_bytes() == before        # the old file is whole until the rename
        return real_replace(src, dst)
    monkeypatch.setattr(numgru.io.os, "replace", replace)
    ctx.sclf.save(path)
    monkeypatch.undo()
    assert calls[0] == "fsync"
    op, directory, name, dst = calls[1]
    assert op == "replace" and directory == str(tmp_path) and name.startswith(".model.npz.")
    assert name.endswith(".tmp") and dst == str(path)
    assert same_arrays(numgru.load(path).predict_proba(ctx.X), ctx.proba)
    assert _tmp_files(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symlinks")
def test_save_keeps_permissions_and_follows_symlinks(ctx, tmp_path):
    real = tmp_path / "real.npz"
    ctx.reg.save(real)
    os.chmod(real, 0o600)
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    ctx.sclf.save(link)
    assert link.is_symlink() and stat.S_IMODE(os.stat(real).st_mode) == 0o600
    assert same_arrays(numgru.load(real).predict_proba(ctx.X), ctx.proba)
    new = tmp_path / "new.npz"
    ctx.reg.save(new)                              # a new file gets what open() would give
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666 & ~umask


_KILLED_WRITER = r"""
import importlib.util, sys, time
import numpy as np
spec = importlib.util.spec_from_file_location("numgru_io_alone", sys.argv[1])
io_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io_module)

def stalled(fh):   # half an archive, then a writer that never finishes
    fh.write(b"PK\x03\x04 half of an archive")
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)

io_module._write_atomically(sys.argv[2], stalled)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_save_killed_mid_write_keeps_the_previous_file(ctx, tmp_path):
    """SIGKILL in the middle of the write that ``save`` makes (``io._write_atomically``, run
    in a fresh Python from numgru/io.py alone, so that it starts in well under a second): the
    old file is untouched; the kill can only leave the hidden temporary file behind."""
    path = tmp_path / "model.npz"
    ctx.sclf.save(path)
    before = path.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, numgru.io.__file__, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()           # the writer is in the middle of the file
        assert line == b"writing\n", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert path.read_bytes() == before
    leftovers = _tmp_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.npz.")
    assert (tmp_path / leftovers[0]).read_bytes().startswith(b"PK\x03\x04 half")
    assert same_arrays(numgru.load(path).predict_proba(ctx.X), ctx.proba)


def test_save_to_a_file_object_is_refused_as_before(ctx):
    with pytest.raises(TypeError, match=r"str, bytes or os.PathLike"):
        ctx.sclf.save(io.BytesIO())


# =============================================================================================
# issue 21: hostile input, second round
# =============================================================================================
# --- numgru.load: a file that cannot be opened raises what open() raises ----------------------
@pytest.mark.parametrize("make, exc", [
    (lambda c: c.dir / "no-such-file.npz", FileNotFoundError),
    (lambda c: str(c.dir / "no-such-dir" / "model.npz"), FileNotFoundError),
    (lambda c: os.fsencode(c.dir / "no-such-file.npz"), FileNotFoundError),
    (lambda c: c.dir, (IsADirectoryError, PermissionError)),
], ids=["missing", "missing-dir", "missing-bytes-path", "directory"])
def test_load_of_a_file_that_cannot_be_opened_raises_what_open_raises(ctx, make, exc):
    path = make(ctx)
    with pytest.raises(exc) as got:
        numgru.load(path)
    with pytest.raises(type(got.value)) as ref:
        open(path, "rb")
    assert not isinstance(got.value, ValueError)
    assert (got.value.errno, got.value.filename) == (ref.value.errno, ref.value.filename)


# --- numgru.load: zip bombs -------------------------------------------------------------------
def _zip(members, compression=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _zeros_member(n_bytes):
    """A .npy member of n_bytes zero bytes (float64) with an honest header."""
    return npy_header((n_bytes // 8,)) + bytes(n_bytes)


def _peak_bytes(call):
    """(result or exception, peak bytes traced while ``call`` ran) (numpy reports its data
    allocations to tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            out = call()
        except Exception as exc:             # noqa: BLE001 - returned to the test
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_budget(monkeypatch):
    """An inflate budget of max(1 MiB, 32 x the archive), so that bombs stay small here."""
    monkeypatch.setattr(numgru.io, "_INFLATE_FLOOR", 1 << 20)
    return 1 << 20


def test_the_inflate_budget_is_the_documented_one():
    assert (numgru.io._INFLATE_FLOOR, numgru.io._INFLATE_RATIO) == (64 << 20, 32)
    assert "max(64 MiB, 32 x the archive's size on disk)" in " ".join(numgru.load.__doc__.split())


BOMBS = [   # (members, which one is refused); every member deflates ~1000:1
    ("one-member", {"head_coef.npy": _zeros_member(16 << 20)}, "head_coef"),
    ("many-members-in-all", {f"m{i}.npy": _zeros_member(600 << 10) for i in range(8)}, "m1"),
    ("after-a-real-model", lambda c: {**{k + ".npy": npy_bytes(v) for k, v in c.arrays.items()},
                                      "zz.npy": _zeros_member(16 << 20)}, "zz"),
]


@pytest.mark.parametrize("members, refused", [b[1:] for b in BOMBS], ids=[b[0] for b in BOMBS])
def test_a_zip_bomb_is_refused_before_it_is_inflated(ctx, small_budget, members, refused):
    """An honest header (the member states its real inflated size): refused by the budget
    before the member is read, so memory stays within the budget (the members before it)
    however much the bomb would inflate to."""
    data = _zip(members(ctx) if callable(members) else members)
    total = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert len(data) * 32 < small_budget < total / 2
    out, peak = _peak_bytes(lambda: numgru.load(io.BytesIO(data)))
    assert isinstance(out, ValueError), out
    assert re.search(NOT_READABLE + rf".*array '{refused}' inflates to \d+ bytes, beyond the "
                     rf"{small_budget}-byte budget of a {len(data)}-byte archive", str(out))
    assert peak < 2 * small_budget < total, peak


def test_a_member_that_states_a_small_size_is_never_inflated_beyond_it(ctx, small_budget):
    """A lying central directory (16 MiB of data stated as 4 KiB): zipfile inflates no more
    than the stated size, the .npy header's shape does not fit in it, and the file is
    refused without the 16 MiB ever existing."""
    data = bytearray(_zip({"head_coef.npy": _zeros_member(16 << 20)}))
    central = _zip_layout(bytes(data), 0)["central"]
    data[central + 24:central + 28] = (4096).to_bytes(4, "little")
    out, peak = _peak_bytes(lambda: numgru.load(io.BytesIO(bytes(data))))
    assert isinstance(out, ValueError) and re.search(NOT_READABLE, str(out)), out
    assert peak < 1 << 20, peak


def test_the_inflated_bytes_are_counted_as_they_are_read(monkeypatch):
    """The reader charges what it hands out: past the budget it refuses, whatever the
    archive stated."""
    monkeypatch.setattr(numgru.io, "_INFLATE_FLOOR", 100)
    budget = numgru.io._InflateBudget(archive_size=2)           # max(100, 64) = 100 bytes
    reader = numgru.io._CountingReader(io.BytesIO(bytes(150)), budget, "a")
    assert len(reader.read(60)) == 60 and budget.left == 40
    with pytest.raises(ValueError, match=r"array 'a' inflates to 120 bytes, beyond the 100-byte "
                                         r"budget of a 2-byte archive"):
        reader.read(60)


def test_a_compressed_model_within_the_budget_loads_exactly(ctx, small_budget):
    data = _zip({k + ".npy": npy_bytes(v) for k, v in ctx.arrays.items()})
    model = numgru.load(io.BytesIO(data))
    assert same_arrays(model.predict_proba(ctx.X), ctx.proba)


# --- numgru.load: fitted values at the edges of what a fit gives load --------------------------
LOAD_EDGE_OK = [
    ("loss-nan", set_in("fitted", loss_=float("nan"))),           # no epoch finished
    ("best-loss-inf", set_in("fitted", best_loss_=float("inf"))),  # before the first epoch
    ("validation-before-first-epoch", set_in("fitted", validation_scores_=[],
                                             best_validation_score_=float("-inf"))),
    ("negative-r2-validation", set_in("fitted", validation_scores_=[-3.5, 0.25],
                                      best_validation_score_=0.25)),
    ("no-feature-names", drop_in("fitted", "out_activation_")),
]


@pytest.mark.parametrize("make", [m for _, m in LOAD_EDGE_OK], ids=[n for n, _ in LOAD_EDGE_OK])
def test_load_accepts_fitted_values_at_the_edges(ctx, make):
    model = numgru.load(make(ctx))
    assert same_arrays(model.predict_proba(ctx.X), ctx.proba)


# --- every persisted field round-trips --------------------------------------------------------
PERSISTED = [   # (estimator, X, y) whose every fitted field and array must come back equal
    ("ndarray-hidden-layer-sizes", lambda c: R(hidden_layer_sizes=np.array([4, 3])), "X", "yr"),
    ("numpy-int-sizes", lambda c: C(hidden_layer_sizes=(np.int64(3), np.int32(2))), "X", "yc"),
    ("early-stopping", lambda c: R(early_stopping=True, validation_fraction=0.25), "X", "yr"),
    ("class-weight", lambda c: C(class_weight={0: 2.0, 1: np.float32(0.5), 2: 1}), "X", "yc"),
    ("each-step", lambda c: C(output="each_step"), "X", "Yl"),
    ("2d-input", lambda c: R(), "X2", "yr"),
    ("attention-float32", lambda c: C(pooling="attention", dtype="float32"), "X", "yc"),
]


@pytest.mark.parametrize("make, xname, yname", [p[1:] for p in PERSISTED],
                         ids=[p[0] for p in PERSISTED])
def test_every_persisted_field_round_trips(ctx, tmp_path, make, xname, yname):
    X = ctx.X[:, :, 0] if xname == "X2" else ctx.X
    est = make(ctx).fit(X, getattr(ctx, yname))
    est.save(tmp_path / "m.npz")
    got = numgru.load(tmp_path / "m.npz")
    (f1, a1), (f2, a2) = est._get_fitted_state(), got._get_fitted_state()
    assert json.dumps(f1, sort_keys=True) == json.dumps(f2, sort_keys=True)
    assert same_arrays(a1, a2)
    assert got.get_params().keys() == est.get_params().keys()
    assert same_arrays(got.predict(X), est.predict(X))
    got.set_params(warm_start=True).fit(X, getattr(ctx, yname))     # and it trains on
    assert got.n_iter_ == 2 * est.n_iter_


# --- warm_start / partial_fit after an architecture change -------------------------------------
ARCH_CHANGES = [
    ("hidden_layer_sizes", dict(hidden_layer_sizes=(4,)),
     r"hidden_layer_sizes from \(3,\) to \(4,\)"),
    ("one-more-layer", dict(hidden_layer_sizes=(3, 3)),
     r"hidden_layer_sizes from \(3,\) to \(3, 3\)"),
    ("bidirectional", dict(bidirectional=True), r"bidirectional from False to True"),
    ("layer_norm", dict(layer_norm=True), r"layer_norm from False to True"),
    ("cell", dict(cell="rnn_relu"), r"cell from 'gru' to 'rnn_relu'"),
    ("reset_after", dict(reset_after=False), r"reset_after from True to False"),
    ("dropout", dict(dropout=0.5), r"dropout from 0.0 to 0.5"),
    ("recurrent_dropout", dict(recurrent_dropout=0.25), r"recurrent_dropout from 0.0 to 0.25"),
    ("pooling", dict(pooling="attention"), r"pooling from 'last' to 'attention'"),
    ("output", dict(output="each_step"), r"output from 'last' to 'each_step'"),
    ("dtype", dict(dtype="float64"), r"dtype from 'float32' to 'float64'"),
    ("two-at-once", dict(hidden_layer_sizes=5, bidirectional=True),
     r"bidirectional from False to True, hidden_layer_sizes from \(3,\) to \(5,\)"),
]


@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "loaded-then-warm_start"])
@pytest.mark.parametrize("change, match", [a[1:] for a in ARCH_CHANGES],
                         ids=[a[0] for a in ARCH_CHANGES])
def test_a_warm_start_refuses_a_changed_architecture_and_keeps_the_model(ctx, tmp_path, how,
                                                                          change, match):
    est = R(warm_start=how != "partial_fit")
    est.fit(ctx.X, ctx.yr) if how != "partial_fit" else est.partial_fit(ctx.X, ctx.yr)
    if how == "loaded-then-warm_start":
        est.save(tmp_path / "m.npz")
        est = numgru.load(tmp_path / "m.npz")
    before, n_iter = est.predict(ctx.X), est.n_iter_
    original = {k: v for k, v in est.get_params().items() if k in change}
    est.set_params(**change)
    what = "partial_fit continues" if how == "partial_fit" else "warm_start=True continues"
    tail = r".*set them back, or fit with warm_start=False for a new network"
    with pytest.raises(ValueError, match=rf"GRURegressor: {match} since the network was built; "
                                         rf".*{what}" + tail):
        est.partial_fit(ctx.X, ctx.yr) if how == "partial_fit" else est.fit(ctx.X, ctx.yr)
    for call, doing in [(lambda: est.predict(ctx.X), "predicting uses"),
                        (lambda: est.score(ctx.X, ctx.yr), "predicting uses"),
                        (lambda: est.stream(), "a stream uses"),
                        (lambda: est.attention_weights(ctx.X), "attention_weights reads")]:
        with pytest.raises(ValueError, match=rf"GRURegressor: {match} .*; {doing}" + tail):
            call()
    est.set_params(**original)                    # set back: the same model as before
    assert est.n_iter_ == n_iter and same_arrays(est.predict(ctx.X), before)
    est.set_params(**change, warm_start=False).fit(ctx.X, ctx.Ys if "output" in change else ctx.yr)
    est.save(tmp_path / "new.npz")             # a fresh network of the new kind saves and loads
    assert same_arrays(numgru.load(tmp_path / "new.npz").predict(ctx.X), est.predict(ctx.X))


@pytest.mark.parametrize("sizes", [[3], 3, np.array([3]), (np.int64(3),)],
                         ids=["list", "int", "ndarray", "numpy-int"])
def test_a_warm_start_with_the_same_sizes_written_otherwise_continues(ctx, sizes):
    ref = R(warm_start=True).fit(ctx.X, ctx.yr).fit(ctx.X, ctx.yr)
    est = R(warm_start=True).fit(ctx.X, ctx.yr)
    est.set_params(hidden_layer_sizes=sizes).fit(ctx.X, ctx.yr)
    assert est.n_iter_ == 4 and same_arrays(est._get_fitted_state()[1], ref._get_fitted_state()[1])


def test_a_warm_start_may_change_training_parameters(ctx):
    """Only the architecture is fixed: the solver's settings may change between fits."""
    est = R(warm_start=True).fit(ctx.X, ctx.yr)
    est.set_params(learning_rate_init=0.01, alpha=0.1, max_iter=3, batch_size=4).fit(ctx.X, ctx.yr)
    assert est.n_iter_ == 5


# --- class_weight -----------------------------------------------------------------------------
CLASS_WEIGHT_BAD = [("negative", -1.0), ("zero", 0), ("nan", float("nan")), ("inf", np.inf),
                    ("neg-inf", -np.inf), ("str", "2"), ("bool", True), ("None", None),
                    ("complex", 1j), ("array", np.ones(2))]


@pytest.mark.parametrize("output", ["last", "each_step"])
@pytest.mark.parametrize("weight", [w for _, w in CLASS_WEIGHT_BAD],
                         ids=[n for n, _ in CLASS_WEIGHT_BAD])
def test_a_class_weight_that_is_no_positive_number_is_refused(ctx, output, weight):
    y = ctx.yc if output == "last" else ctx.Yl
    clf = C(output=output, class_weight={0: 1.0, 1: weight, 2: 1.0})
    with pytest.raises(ValueError, match=r"class_weight must map each class to a finite number "
                                         r"> 0, got .* for class 1"):
        clf.fit(ctx.X, y)
    assert not hasattr(clf, "stack_")


def test_class_weight_equals_the_sample_weight_it_stands_for(ctx):
    cw = {0: 2.0, 1: 0.5, 2: np.float32(1.5)}
    a = C(class_weight=cw).fit(ctx.X, ctx.yc)
    b = C().fit(ctx.X, ctx.yc, sample_weight=np.array([2.0, 0.5, 1.5])[ctx.yc])
    assert same_arrays(a.predict_proba(ctx.X), b.predict_proba(ctx.X))
    ones = C(class_weight={0: 1, 1: 1, 2: 1}).fit(ctx.X, ctx.yc)
    assert same_arrays(ones.predict_proba(ctx.X), ctx.clf.predict_proba(ctx.X))


# --- 2-D X that looks like one multivariate sequence ------------------------------------------
@contextlib.contextmanager
def warnings_as_errors(category):
    with warnings.catch_warnings():
        warnings.simplefilter("error", category)
        yield


def _walk(n, f, seed=0):
    return np.cumsum(np.random.default_rng(seed).standard_normal((n, f)), axis=0)


def _windows(series, width, stride=1):
    return np.stack([series[i:i + width] for i in range(0, len(series) - width + 1, stride)])


ONE_SEQUENCE_2D = [   # (T, F) data: rows are timesteps of one sequence
    ("random-walk-100x3", lambda: _walk(100, 3)),
    ("smooth-sines-60x4", lambda: np.sin(np.linspace(0, 6, 60)[:, None] + np.arange(4))),
    ("trend-40x2", lambda: np.arange(40.0)[:, None] * [1.0, -2.0] + 0.01 * _walk(40, 2)),
]
SEQUENCES_2D = [      # (n, T) univariate data sets: no warning
    ("iid-rows", lambda: np.random.default_rng(0).standard_normal((100, 3))),
    ("sliding-windows", lambda: _windows(np.sin(np.linspace(0, 20, 200)), 12)),
    ("sliding-windows-stride-3", lambda: _windows(_walk(300, 1)[:, 0], 6, stride=3)),
    ("constant", lambda: np.ones((20, 3))),
    ("too-few-rows-to-judge", lambda: _walk(7, 3)),
    ("one-timestep", lambda: _walk(50, 1)),
]


@pytest.mark.parametrize("make", [m for _, m in ONE_SEQUENCE_2D],
                         ids=[n for n, _ in ONE_SEQUENCE_2D])
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_a_2d_X_shaped_like_one_sequence_warns_at_fit(make, how):
    from sklearn.exceptions import DataConversionWarning

    X = make()
    n, t = X.shape
    est = R()
    with pytest.warns(DataConversionWarning,
                      match=rf"X is 2-D of shape \({n}, {t}\): numgru reads it as {n} univariate "
                            rf"sequences of {t} timesteps each .* pass it as X\[None\]") as rec:
        getattr(est, how)(X, X[:, 0])
    assert all(w.filename == __file__ for w in rec if w.category is DataConversionWarning)
    with warnings_as_errors(DataConversionWarning):
        est.predict(X)                                   # predicting does not warn again
        R(output="each_step").fit(X[None], X[None, :, :1])   # the advice works, silently


@pytest.mark.parametrize("make", [m for _, m in SEQUENCES_2D], ids=[n for n, _ in SEQUENCES_2D])
def test_a_2d_data_set_of_univariate_sequences_does_not_warn(make):
    from sklearn.exceptions import DataConversionWarning

    X = make()
    with warnings_as_errors(DataConversionWarning):
        R().fit(X, X[:, -1])


# --- DataFrames: feature names ----------------------------------------------------------------
def test_a_dataframe_indexed_by_time_warns_and_feature_names_are_kept(tmp_path):
    pd = pytest.importorskip("pandas")
    from sklearn.exceptions import DataConversionWarning

    rng = np.random.default_rng(0)
    cols = ["t0", "t1", "t2", "t3"]
    df = pd.DataFrame(rng.standard_normal((12, 4)), columns=cols)
    y = df.to_numpy().sum(axis=1)
    with warnings_as_errors(DataConversionWarning):
        est = R().fit(df, y)
    assert list(est.feature_names_in_) == cols and est.feature_names_in_.dtype == object
    assert same_arrays(est.predict(df), R().fit(df.to_numpy(), y).predict(df.to_numpy()))
    est.save(tmp_path / "df.npz")
    got = numgru.load(tmp_path / "df.npz")
    assert list(got.feature_names_in_) == cols and got.feature_names_in_.dtype == object
    with pytest.raises(ValueError, match=r"feature names should match"):
        got.predict(df.rename(columns={"t0": "x"}))
    with pytest.warns(UserWarning, match=r"X does not have valid feature names"):
        got.predict(df.to_numpy())
    ts = pd.DataFrame(rng.standard_normal((30, 3)), columns=list("abc"),
                      index=pd.date_range("2020-01-01", periods=30, freq="D"))
    with pytest.warns(DataConversionWarning, match=r"its rows are indexed by time"):
        R().fit(ts, ts["a"])


# --- GRULanguageModel, level="tokens": the vocabulary is the ids that occur -------------------
LM_KW = dict(embedding_dim=4, hidden_layer_sizes=(5,), batch_size=2, bptt=4, max_iter=2,
             random_state=0, dtype="float64", level="tokens")
SPARSE = [[0, 7, 3_000_000, 7, 0, 10 ** 12, 7, 3_000_000, 0, 7], [10 ** 12, 0, 7, 7]]


def LM(**kw):
    return numgru.GRULanguageModel(**{**LM_KW, **kw})


@pytest.fixture(scope="module")
def lm_ctx(tmp_path_factory):
    c = types.SimpleNamespace()
    c.ids = np.unique(np.concatenate(SPARSE))
    c.dense = [np.searchsorted(c.ids, d) for d in SPARSE]        # the same text, ids 0..3
    c.lm = LM().fit(SPARSE)
    c.ref = LM().fit(c.dense)
    c.dir = tmp_path_factory.mktemp("lm")
    c.path = c.dir / "lm.npz"
    c.lm.save(c.path)
    with np.load(c.path) as f:
        c.arrays = {k: f[k] for k in f.files}
    c.meta = json.loads(str(c.arrays["__meta__"]))
    return c


def test_token_ids_of_any_size_make_one_row_per_distinct_id(lm_ctx):
    """Oracle: the same text with its ids relabelled 0..3 (in increasing order) gives the same
    model, weight for weight; only the ids the user sees differ."""
    lm, ref, ids = lm_ctx.lm, lm_ctx.ref, lm_ctx.ids
    assert lm.vocabulary_ == ids.tolist() == [0, 7, 3_000_000, 10 ** 12]
    assert lm.state_dict()["encoder.weight"].shape == (4, 4)
    assert same_arrays(lm.state_dict(), ref.state_dict())
    assert same_arrays(lm.token_counts_, ref.token_counts_)
    assert lm.score(SPARSE) == ref.score(lm_ctx.dense)
    assert same_arrays(lm.generate(6, random_state=1), ids[ref.generate(6, random_state=1)])
    assert same_arrays(lm.generate(4, prefix=[10 ** 12, 7], random_state=2),
                       ids[ref.generate(4, prefix=[3, 1], random_state=2)])
    assert same_arrays(lm.encode([10 ** 12, 0, 3_000_000]), [3, 0, 2])
    assert same_arrays(lm.decode([3, 0, 2]), [10 ** 12, 0, 3_000_000])
    assert same_arrays(ref.decode([3, 0, 2]), [3, 0, 2])     # ids 0..n-1 map to themselves


def test_a_token_model_round_trips_with_its_vocabulary(lm_ctx, tmp_path):
    got = numgru.load(lm_ctx.path)
    assert got.vocabulary_ == lm_ctx.lm.vocabulary_
    assert lm_ctx.arrays["vocabulary"].dtype == np.int64
    assert got.score(SPARSE) == lm_ctx.lm.score(SPARSE)
    assert same_arrays(got.generate(5, random_state=0), lm_ctx.lm.generate(5, random_state=0))
    lm_ctx.ref.save(tmp_path / "dense.npz")                  # ids 0..n-1: stored as n_tokens
    with np.load(tmp_path / "dense.npz") as f:
        assert "vocabulary" not in f.files
    assert numgru.load(tmp_path / "dense.npz").vocabulary_ == [0, 1, 2, 3]
    sd = LM().load_state_dict(lm_ctx.lm.state_dict(), vocabulary=lm_ctx.lm.vocabulary_)
    assert sd.score(SPARSE) == lm_ctx.lm.score(SPARSE)


def test_a_huge_token_id_costs_no_memory(lm_ctx):
    out, peak = _peak_bytes(lambda: LM(max_iter=1).fit([[0, 1, 10 ** 12, 1, 0]]))
    assert not isinstance(out, Exception), out
    assert out.vocabulary_ == [0, 1, 10 ** 12] and peak < 64 << 20


LM_BAD = [
    ("id-beyond-int64", lambda c: LM().fit([np.array([1, 2, 2 ** 64 - 1], np.uint64)]),
     r"X\[0\] holds the token id 18446744073709551615, larger than the largest token id "
     r"numgru takes, 2\*\*63 - 1"),
    ("id-python-int-too-big", lambda c: LM().fit([[0, 2 ** 70]]), r"X\[0\] must hold integer"),
    ("id-negative", lambda c: LM().fit([[0, -3, 1]]), r"negative token id -3"),
    ("score-unseen", lambda c: c.lm.score([[0, 5, 7]]),
     r"X holds 1 token id\(s\) not in the vocabulary \[5\]: this model knows the 4 ids seen "
     r"at fit \(from 0 to 1000000000000\)"),
    ("score-unseen-many", lambda c: c.lm.score([list(range(1, 40))]),
     r"not in the vocabulary \[1, 2, 3, 4, 5, 6, 8, 9, 10, 11\] \.\.\."),
    ("perplexity-unseen", lambda c: c.lm.perplexity([[0, 10 ** 12 + 1]]), r"not in the vocabulary"),
    ("unigram-unseen", lambda c: c.lm.unigram_perplexity([[0, 1]]), r"not in the vocabulary \[1\]"),
    ("encode-unseen", lambda c: c.lm.encode([2 ** 62]), r"text holds 1 token id\(s\) not in"),
    ("prefix-unseen", lambda c: c.lm.generate(3, prefix=[8]), r"prefix holds .* not in the "
                                                             r"vocabulary \[8\]"),
    ("generate-too-many", lambda c: c.lm.generate(10 ** 12),
     r"n_tokens=1000000000000 is more than generate makes in one call "
     r"\(numgru.lm.MAX_GENERATE = 100_000_000"),
    ("generate-one-too-many", lambda c: c.lm.generate(numgru.lm.MAX_GENERATE + 1),
     r"n_tokens=100000001 is more than generate makes"),
    ("decode-out-of-range", lambda c: c.lm.decode([0, 4]), r"token id 4 is out of range"),
    ("vocabulary-floats", lambda c: LM().load_state_dict(c.lm.state_dict(),
                                                         vocabulary=[0.0, 1.0, 2.0, 3.0]),
     r"the vocabulary of a level='tokens' model holds token ids, integers in \[0, 2\*\*63\); "
     r"got \[0.0"),
    ("vocabulary-negative", lambda c: LM().load_state_dict(c.lm.state_dict(),
                                                           vocabulary=[-1, 0, 1, 2]),
     r"holds token ids, integers in \[0, 2\*\*63\); got \[-1\]"),
    ("vocabulary-bools", lambda c: LM().load_state_dict(c.lm.state_dict(),
                                                        vocabulary=[True, 2, 3, 4]),
     r"holds token ids.*got \[True\]"),
    ("vocabulary-strings", lambda c: LM().load_state_dict(c.lm.state_dict(),
                                                          vocabulary=list("abcd")),
     r"holds token ids"),
    ("vocabulary-repeated", lambda c: LM().load_state_dict(c.lm.state_dict(),
                                                           vocabulary=[0, 1, 1, 2]),
     r"vocabulary has repeated tokens"),
    ("char-vocabulary-of-ints", lambda c: LM(level="char").load_state_dict(
        c.lm.state_dict(), vocabulary=[0, 1, 2, 3]),
     r"the vocabulary of a level='char' model holds strings; got \[0, 1, 2, 3\]"),
    ("no-rows", lambda c: LM().load_state_dict({**c.lm.state_dict(),
                                                "encoder.weight": np.zeros((0, 4))}),
     r"encoder.weight'\] has no rows"),
]


@pytest.mark.parametrize("call, match", [b[1:] for b in LM_BAD], ids=[b[0] for b in LM_BAD])
def test_language_model_refuses(lm_ctx, call, match):
    with pytest.raises(ValueError, match=match):
        call(lm_ctx)


def lm_file(change=None, arrays=None):
    """The saved token model with its metadata changed by ``change(meta)`` and arrays by
    ``arrays`` (value, or None to drop)."""
    def make(c):
        meta = json.loads(json.dumps(c.meta))
        if change is not None:
            change(meta)
        a = dict(c.arrays)
        for k, v in (arrays or {}).items():
            if v is None:
                a.pop(k)
            else:
                a[k] = v
        a["__meta__"] = np.array(json.dumps(meta))
        path = c.dir / "hostile_lm.npz"
        np.savez(path, **a)
        return path
    return make


def lm_fitted(**kv):
    return lm_file(lambda m: m["fitted"].update(kv))


LM_FILE_BAD = [
    ("vocabulary-floats", lm_file(arrays={"vocabulary": np.array([0.0, 7.0, 3e6, 1e12])}),
     r"must be 4 \(n_tokens\) integer token ids, got float64"),
    ("vocabulary-short", lm_file(arrays={"vocabulary": np.array([0, 7, 9])}),
     r"must be 4 \(n_tokens\) integer token ids, got int64 of shape \(3,\)"),
    ("vocabulary-2d", lm_file(arrays={"vocabulary": np.arange(4)[None]}), r"of shape \(1, 4\)"),
    ("vocabulary-repeated", lm_file(arrays={"vocabulary": np.array([0, 7, 7, 9])}),
     r"vocabulary has repeated tokens"),
    ("vocabulary-negative", lm_file(arrays={"vocabulary": np.array([-5, 0, 7, 9])}),
     r"integers in \[0, 2\*\*63\); got \[-5\]"),
    ("vocabulary-beyond-int64", lm_file(arrays={"vocabulary": np.array([0, 1, 2, 2 ** 64 - 1],
                                                                      np.uint64)}),
     r"integers in \[0, 2\*\*63\)"),
    ("vocabulary-strings", lm_file(arrays={"vocabulary": np.array(list("abcd"))}),
     r"integer token ids, got <U1"),
    ("n_tokens-other", lm_fitted(n_tokens=3), r"must be 3 \(n_tokens\) integer token ids"),
    ("n_tokens-zero", lm_fitted(n_tokens=0), r"n_tokens must be a positive integer"),
    ("token-counts-negative", lm_file(arrays={"token_counts": np.array([1, -1, 1, 1])}),
     r"token_counts must be 4 non-negative integers"),
    ("n_iter-negative", lm_fitted(n_iter_=-1), r"n_iter_ must be a non-negative integer"),
    ("n_iter-str", lm_fitted(n_iter_="2"), r"n_iter_ must be a non-negative integer"),
    ("loss-curve-short", lm_fitted(loss_curve_=[1.0]), r"loss_curve_ must be a list of 2 "
                                                       r"\(n_iter_\) finite losses >= 0"),
    ("loss-curve-negative", lm_fitted(loss_curve_=[1.0, -1.0], loss_=-1.0),
     r"loss_curve_ must be a list of 2"),
    ("loss-curve-nan", lm_fitted(loss_curve_=[1.0, float("nan")]), r"loss_curve_ must be"),
    ("loss-curve-str", lm_fitted(loss_curve_="ab"), r"loss_curve_ must be"),
    ("loss-not-last", lm_fitted(loss_=0.125), r"loss_ must be the last entry of loss_curve_"),
    ("validation-positive", lm_fitted(validation_scores_=[-1.0, 0.5]),
     r"validation_scores_ must be a list of 0 or 2 \(n_iter_\) finite log-likelihoods <= 0"),
    ("validation-short", lm_fitted(validation_scores_=[-1.0]), r"validation_scores_ must be"),
    ("best-validation-without-scores", lm_fitted(best_validation_score_=-1.0),
     r"best_validation_score_ must be None or the largest of validation_scores_"),
    ("best-validation-not-best", lm_fitted(validation_scores_=[-1.0, -2.0],
                                           best_validation_score_=-2.0),
     r"best_validation_score_ must be None or the largest"),
]


@pytest.mark.parametrize("make, match", [b[1:] for b in LM_FILE_BAD],
                         ids=[b[0] for b in LM_FILE_BAD])
def test_load_refuses_hostile_language_model_files(lm_ctx, make, match):
    with pytest.raises(ValueError, match=CORRUPT + ".*" + match):
        numgru.load(make(lm_ctx))


def test_a_language_model_file_with_early_stopping_values_loads(lm_ctx):
    make = lm_fitted(validation_scores_=[-2.0, -1.5], best_validation_score_=-1.5)
    got = numgru.load(make(lm_ctx))
    assert got.validation_scores_ == [-2.0, -1.5] and got.score(SPARSE) == lm_ctx.lm.score(SPARSE)


# --- other entry points: no sequences, no steps --------------------------------------------------
EMPTY_BAD = [
    ("stream-update-empty-list", lambda c: c.es_reg.stream(2).update([]),
     r"X_chunk holds no steps \(got \[\]\); a chunk is an array of shape \(n_streams, n_steps, "
     r"n_features\)"),
    ("stream-update-None", lambda c: c.es_reg.stream(2).update(None),
     r"X_chunk holds no steps \(got None\)"),
    ("stream-update-no-steps", lambda c: c.es_reg.stream(2).update(np.zeros((2, 0, F))),
     r"X_chunk has no steps"),
    ("attention-weights-empty", lambda c: C(pooling="attention").fit(c.X, c.yc)
     .attention_weights([]), r"X holds no sequences \(an empty list\)"),
    ("each-step-predict-empty", lambda c: c.es_clf.predict(np.zeros((0, T, F))),
     r"X holds no sequences"),
    ("partial-fit-empty", lambda c: C().partial_fit([], [], classes=[0, 1]),
     r"X holds no sequences"),
    ("lm-fit-empty", lambda c: LM().fit([]), r"X is empty: there is no text to learn from"),
    ("lm-fit-empty-document", lambda c: LM().fit([[]]), r"X is empty"),
    ("lm-fit-one-token", lambda c: LM().fit([[3]]), r"at least two tokens in one document"),
    ("lm-score-empty", lambda c: c.lm.score([]), r"scoring needs at least one document of two"),
]


@pytest.mark.parametrize("call, match", [b[1:] for b in EMPTY_BAD], ids=[b[0] for b in EMPTY_BAD])
def test_an_entry_point_given_nothing_says_so(ctx, lm_ctx, call, match):
    with pytest.raises(ValueError, match=match):
        call(types.SimpleNamespace(**vars(ctx), lm=lm_ctx.lm))


# --- public names -------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["numgru", "numgru.datasets", "numgru.plotting"])
def test_a_module_shows_only_its_public_names(module):
    import importlib

    m = importlib.import_module(module)
    shown = {n for n in dir(m) if not n.startswith("_")
             and not isinstance(getattr(m, n), types.ModuleType)}
    assert shown == {n for n in m.__all__ if not n.startswith("_")}
    assert all(hasattr(m, n) for n in m.__all__)


# --- the command line ---------------------------------------------------------------------------
def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        numgru.cli.main(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "numgru demo" in text and "numgru info" in text
    assert not re.search(r"``|:(func|class|meth|mod):`", text), text


def test_python_dash_m_numgru_runs_the_command():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run([sys.executable, "-m", "numgru", "--help"], capture_output=True,
                        text=True, timeout=120, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("usage: numgru"), ok.stderr
    bad = subprocess.run([sys.executable, "-m", "numgru", "nonsense"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "invalid choice: 'nonsense'" in bad.stderr


class _StopDemo(Exception):
    pass


@pytest.mark.parametrize("cached, first_line", [
    (True, f"numgru {numgru.__version__} demo"),
    (False, f"numgru {numgru.__version__} demo (a first run compiles the kernels: ~10 s more)"),
], ids=["warm", "cold"])
def test_the_demo_says_it_compiles_only_when_it_will(monkeypatch, cached, first_line):
    def stop(out, verbose):
        raise _StopDemo
    monkeypatch.setattr(numgru.cli, "_kernels_cached", lambda: cached)
    monkeypatch.setattr(numgru.cli, "_forecast_airline", stop)
    buf = io.StringIO()
    with pytest.raises(_StopDemo):
        numgru.cli.demo(out=buf)
    assert buf.getvalue().splitlines()[0] == first_line


def test_kernels_count_as_cached_after_a_float32_fit(ctx):
    """ctx fitted a float32 model: its forward and backward kernels are in Numba's cache now
    (when the cache is on), which is what the demo's first line looks for."""
    if not numgru._config.CACHE:
        assert numgru.cli._kernels_cached() is False
    else:
        assert ctx.reg32.head_coef_.dtype == np.float32
        assert numgru.cli._kernels_cached() is True
