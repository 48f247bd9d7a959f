"""ONNX export (``numgru.onnx.to_onnx``) against numgru's own predictions.

Two independent runtimes compute the exported graphs: onnxruntime (its own GRU / RNN kernels;
float32 only: onnxruntime 1.32 has no float64 GRU or RNN) and the onnx package's Python
reference evaluator (float64, full-length batches: it ignores ``sequence_lens``, and its RNN
knows no Relu). Tolerances: float32 1e-5, float64 1e-10.

Skipped without onnx (and the onnxruntime tests without onnxruntime): ``pip install ".[onnx]"``.
"""

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402

import numgru  # noqa: E402
from numgru._cells import Context  # noqa: E402
from numgru.onnx import to_onnx  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:  # pragma: no cover - onnxruntime is in the test extra
    ort = None
needs_ort = pytest.mark.skipif(ort is None, reason="onnxruntime is not installed")

F32 = dict(rtol=1e-5, atol=1e-5)
F64 = dict(rtol=1e-10, atol=1e-10)
LENGTHS = np.array([7, 2, 5, 1, 7, 3])


def _ort(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ref(proto, feeds):
    return ReferenceEvaluator(proto).run(None, feeds)


def _network(cell, bidirectional, residual, dtype="float32", layers=3):
    kw = dict(num_layers=layers, bidirectional=bidirectional, residual=residual, dtype=dtype,
              random_state=0)
    if cell == "gru":
        return numgru.GRU(3, 4, **kw)
    if cell == "gru_cho":
        return numgru.GRU(3, 4, reset_after=False, **kw)
    return numgru.RNN(3, 4, nonlinearity=cell.split("_")[1], **kw)


def _padded(rng, dtype, lengths=LENGTHS, features=3):
    """(B, T, features) with garbage (not zeros) past each length: the export must ignore it."""
    x = rng.standard_normal((len(lengths), int(lengths.max()), features)).astype(dtype)
    return x


# ---------------------------------------------------------------------- GRU / RNN
@needs_ort
@pytest.mark.parametrize("cell", ["gru", "gru_cho", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_network_matches_forward_float32(cell, bidirectional, residual):
    rng = np.random.default_rng(1)
    net = _network(cell, bidirectional, residual)
    x = _padded(rng, np.float32)
    h0 = rng.standard_normal((3 * net.num_directions, len(LENGTHS), 4)).astype(np.float32)
    out, h_n = net.forward(x, h0=h0, lengths=LENGTHS)
    proto = to_onnx(net, lengths=True, state=True)
    onnx.checker.check_model(proto, full_check=True)
    o, hn = _ort(proto, {"input": x, "lengths": LENGTHS, "h0": h0})
    np.testing.assert_allclose(o, out, **F32)
    np.testing.assert_allclose(hn, h_n, **F32)
    # without the optional inputs: full-length sequences from zero states
    out, h_n = net.forward(x)
    o, hn = _ort(to_onnx(net), {"input": x})
    np.testing.assert_allclose(o, out, **F32)
    np.testing.assert_allclose(hn, h_n, **F32)


@pytest.mark.parametrize("cell", ["gru", "gru_cho", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_network_matches_forward_float64(cell, bidirectional):
    rng = np.random.default_rng(2)
    net = _network(cell, bidirectional, residual=True, dtype="float64")
    x = rng.standard_normal((4, 6, 3))
    h0 = rng.standard_normal((3 * net.num_directions, 4, 4))
    out, h_n = net.forward(x, h0=h0)
    proto = to_onnx(net, state=True)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    o, hn = _ref(proto, {"input": x, "h0": h0})
    np.testing.assert_allclose(o, out, **F64)
    np.testing.assert_allclose(hn, h_n, **F64)


@needs_ort
def test_float64_model_exported_as_float32_runs_in_onnxruntime():
    rng = np.random.default_rng(3)
    net = _network("gru", True, False, dtype="float64", layers=2)
    x = rng.standard_normal((6, 7, 3))
    out, h_n = net.forward(x, lengths=LENGTHS)
    o, hn = _ort(to_onnx(net, lengths=True, dtype="float32"),
                 {"input": x.astype(np.float32), "lengths": LENGTHS})
    assert o.dtype == np.float32
    np.testing.assert_allclose(o, out, **F32)
    np.testing.assert_allclose(hn, h_n, **F32)


@needs_ort
def test_streaming_with_state_equals_one_pass():
    """Two chunks, the second starting from the first's h_n, give the one-pass outputs."""
    rng = np.random.default_rng(4)
    net = _network("gru", False, True)
    x = rng.standard_normal((3, 9, 3)).astype(np.float32)
    out, h_n = net.forward(x)
    proto = to_onnx(net, state=True)
    zeros = np.zeros((3, 3, 4), np.float32)
    o1, h1 = _ort(proto, {"input": x[:, :4], "h0": zeros})
    o2, h2 = _ort(proto, {"input": x[:, 4:], "h0": h1})
    np.testing.assert_allclose(np.concatenate([o1, o2], axis=1), out, **F32)
    np.testing.assert_allclose(h2, h_n, **F32)


# ---------------------------------------------------------------------- estimators
def _fit(cls, y, X, lengths, **kw):
    kw.setdefault("dtype", "auto")      # the model's dtype follows X's, as each test chose it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(hidden_layer_sizes=(4, 4), max_iter=2, random_state=0, **kw).fit(
            X, y, lengths=lengths)


def _targets(rng, output, classifier):
    n, T = len(LENGTHS), int(LENGTHS.max())
    if classifier:
        labels = np.array(["ant", "bee", "cat"])
        return labels[rng.integers(0, 3, (n, T) if output == "each_step" else n)]
    return rng.standard_normal((n, T) if output == "each_step" else (n, 2))


@needs_ort
@pytest.mark.parametrize("pooling,output", [("last", "last"), ("mean", "last"),
                                            ("attention", "last"), ("last", "each_step")])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_classifier_matches_predict_float32(pooling, output, bidirectional, residual):
    rng = np.random.default_rng(5)
    X = _padded(rng, np.float32, features=2)
    clf = _fit(numgru.GRUClassifier, _targets(rng, output, True), X, LENGTHS, pooling=pooling,
               output=output, bidirectional=bidirectional, residual=residual, dtype="float32")
    proto = to_onnx(clf, lengths=True)
    onnx.checker.check_model(proto, full_check=True)
    label, proba = _ort(proto, {"X": X, "lengths": LENGTHS})[:2]
    np.testing.assert_allclose(proba, clf.predict_proba(X, lengths=LENGTHS), **F32)
    np.testing.assert_array_equal(label, clf.predict(X, lengths=LENGTHS))
    # the ragged list of the same sequences: ONNX's sequence_lens equals the ragged predict
    ragged = [X[i, :n] for i, n in enumerate(LENGTHS)]
    want = clf.predict_proba(ragged)
    if output == "each_step":
        for i, n in enumerate(LENGTHS):
            np.testing.assert_allclose(proba[i, :n], want[i], **F32)
    else:
        np.testing.assert_allclose(proba, want, **F32)


@needs_ort
@pytest.mark.parametrize("pooling,output", [("last", "last"), ("mean", "last"),
                                            ("attention", "last"), ("mean", "each_step")])
@pytest.mark.parametrize("cell", ["gru", "rnn_tanh", "rnn_relu"])
def test_regressor_matches_predict_float32(pooling, output, cell):
    rng = np.random.default_rng(6)
    X = _padded(rng, np.float32, features=2)
    reg = _fit(numgru.GRURegressor, _targets(rng, output, False), X, LENGTHS, pooling=pooling,
               output=output, cell=cell, bidirectional=True, dtype="float32")
    proto = to_onnx(reg, lengths=True)
    onnx.checker.check_model(proto, full_check=True)
    value = _ort(proto, {"X": X, "lengths": LENGTHS})[0]
    want = reg.predict(X, lengths=LENGTHS)
    np.testing.assert_allclose(value.reshape(want.shape), want, **F32)


@needs_ort
@pytest.mark.parametrize("output", ["last", "each_step"])
def test_float_class_labels_keep_their_values(output):
    rng = np.random.default_rng(11)
    X = _padded(rng, np.float32, features=2)
    shape = (len(LENGTHS), int(LENGTHS.max())) if output == "each_step" else len(LENGTHS)
    y = np.array([-1.0, 3.0])[rng.integers(0, 2, shape)]      # float labels (whole numbers)
    clf = _fit(numgru.GRUClassifier, y, X, LENGTHS, output=output, dtype="float32")
    label = _ort(to_onnx(clf, lengths=True), {"X": X, "lengths": LENGTHS})[0]
    assert label.dtype == np.float64
    np.testing.assert_array_equal(label, clf.predict(X, lengths=LENGTHS))


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_estimators_match_predict_float64(pooling):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 5, 2))
    clf = _fit(numgru.GRUClassifier, rng.integers(0, 3, 6), X, None, pooling=pooling,
               bidirectional=True, residual=True)
    assert clf.stack_.dtype == np.float64
    label, proba = _ref(to_onnx(clf), {"X": X})[:2]
    np.testing.assert_allclose(proba, clf.predict_proba(X), **F64)
    np.testing.assert_array_equal(label, clf.predict(X))
    reg = _fit(numgru.GRURegressor, rng.standard_normal(6), X, None, pooling=pooling,
               cell="rnn_tanh")
    value = _ref(to_onnx(reg), {"X": X})[0]
    np.testing.assert_allclose(value[:, 0], reg.predict(X), **F64)


@needs_ort
def test_estimator_state_streams_each_step():
    """output="each_step": chunks carrying h0_l{k} -> h_n_l{k} give the one-pass predictions."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((6, 7, 2)).astype(np.float32)
    reg = _fit(numgru.GRURegressor, rng.standard_normal((6, 7)), X, None, output="each_step",
               dtype="float32")
    proto = to_onnx(reg, state=True)
    assert [i.name for i in proto.graph.input] == ["X", "h0_l0", "h0_l1"]
    feeds = {"h0_l0": np.zeros((1, 6, 4), np.float32), "h0_l1": np.zeros((1, 6, 4), np.float32)}
    v1, s0, s1 = _ort(proto, {"X": X[:, :3], **feeds})
    v2 = _ort(proto, {"X": X[:, 3:], "h0_l0": s0, "h0_l1": s1})[0]
    np.testing.assert_allclose(np.concatenate([v1, v2], axis=1)[..., 0], reg.predict(X), **F32)


def test_fitted_standardisation_is_applied():
    """The export applies input_mean_ / input_scale_ and target_mean_ / target_scale_ when the
    estimator has them: the same as the export without them, fed (x - mean) / scale, times
    target_scale_ plus target_mean_ (the hand-computed oracle)."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((6, 5, 2))
    reg = _fit(numgru.GRURegressor, rng.standard_normal((6, 2)), X, None)
    reg.input_mean_, reg.input_scale_ = np.zeros(2), np.ones(2)
    reg.target_mean_, reg.target_scale_ = np.zeros(2), np.ones(2)
    plain = _ref(to_onnx(reg), {"X": X})[0]
    np.testing.assert_allclose(plain, reg.predict(X), **F64)
    mean, scale = np.array([0.5, -2.0]), np.array([2.0, 0.25])
    t_mean, t_scale = np.array([10.0, -1.0]), np.array([3.0, 0.5])
    Xs = (X - mean) / scale
    want = _ref(to_onnx(reg), {"X": Xs})[0] * t_scale + t_mean
    reg.input_mean_, reg.input_scale_ = mean, scale
    reg.target_mean_, reg.target_scale_ = t_mean, t_scale
    np.testing.assert_allclose(_ref(to_onnx(reg), {"X": X})[0], want, **F64)


# ---------------------------------------------------------------------- language model
def _lm(texts, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return numgru.GRULanguageModel(embedding_dim=4, max_iter=1, random_state=0,
                                       **kw).fit(texts)


def _lm_logprobs(lm, ids, lengths):
    """numgru's log-probabilities of the next token at every position (engine forward and
    the decoder's log-softmax)."""
    stack, head, be = lm.stack_, lm.head_, lm.stack_.backend
    out, _ = stack.forward(be.upload(ids), lengths)
    ctx = Context(be, stack.dtype, None, False, None, stack._work)
    B, T, H = out.shape
    return head.log_softmax(ctx, head.native(be), out.reshape(B * T, H)).reshape(B, T, -1)


@needs_ort
def test_language_model_matches_float32():
    lm = _lm(["abcabcab", "cbacba", "aabbcc"], hidden_layer_sizes=(5, 6))
    ids = np.array([lm.encode("abcab"), lm.encode("cbacc")])
    lengths = np.array([5, 3])
    want = _lm_logprobs(lm, ids, lengths)
    proto = to_onnx(lm, lengths=True)
    onnx.checker.check_model(proto, full_check=True)
    got = _ort(proto, {"ids": ids, "lengths": lengths})[0]
    np.testing.assert_allclose(got[0], want[0], **F32)
    np.testing.assert_allclose(got[1, :3], want[1, :3], **F32)


def test_language_model_matches_float64():
    lm = _lm(["abcabcab", "cbacba"], hidden_layer_sizes=(5,), dtype="float64")
    ids = np.array([lm.encode("abcab"), lm.encode("cbaca")])
    want = _lm_logprobs(lm, ids, np.array([5, 5]))
    got = _ref(to_onnx(lm), {"ids": ids})[0]
    np.testing.assert_allclose(got, want, **F64)


# ---------------------------------------------------------------------- errors
def test_layer_norm_is_refused_by_name():
    with pytest.raises(ValueError, match="layer_norm=True cannot be exported"):
        to_onnx(numgru.GRU(2, 3, layer_norm=True, random_state=0))


def test_bad_arguments():
    with pytest.raises(TypeError, match="to_onnx exports"):
        to_onnx(object())
    with pytest.raises(NotFittedError):
        to_onnx(numgru.GRUClassifier())
    net = numgru.GRU(2, 3, random_state=0)
    with pytest.raises(ValueError, match="opset"):
        to_onnx(net, opset=9)
    with pytest.raises(ValueError, match="dtype"):
        to_onnx(net, dtype="float16")


# ---------------------------------------------------------------------- deployment
_DEPLOY = r'''
import sys


class _NoNumgru:                       # any attempt to import numgru fails in this process
    def find_spec(self, name, path=None, target=None):
        if name == "numgru" or name.startswith("numgru."):
            raise ImportError("numgru is not installed here")
        return None


sys.meta_path.insert(0, _NoNumgru())
import numpy as np
import onnxruntime as ort

model, data, out = sys.argv[1:4]
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
sequences = list(np.load(data).values())                  # (T_i, features) arrays
lengths = np.array([len(s) for s in sequences], dtype=np.int64)
X = np.zeros((len(sequences), lengths.max(), sequences[0].shape[1]), dtype=np.float32)
for i, s in enumerate(sequences):
    X[i, : len(s)] = s
label, probabilities = sess.run(["label", "probabilities"], {"X": X, "lengths": lengths})
np.savez(out, label=label, probabilities=probabilities)
print("numgru" in sys.modules)
'''


@needs_ort
def test_deployment_runs_without_numgru(tmp_path):
    """The docs' deployment code, in a process where ``import numgru`` fails."""
    import subprocess
    import sys

    rng = np.random.default_rng(10)
    seqs = [rng.standard_normal((n, 2)).astype(np.float32) for n in (5, 9, 3, 7, 2, 6)]
    y = np.array([3, 1, 3, 2, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = numgru.GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                                   dtype="float32").fit(seqs, y)
    onnx.save(to_onnx(clf, lengths=True), tmp_path / "clf.onnx")
    np.savez(tmp_path / "data.npz", *seqs)
    script = tmp_path / "deploy.py"
    script.write_text(_DEPLOY)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "clf.onnx"),
                           str(tmp_path / "data.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    got = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(got["label"], clf.predict(seqs))
    np.testing.assert_allclose(got["probabilities"], clf.predict_proba(seqs), **F32)
