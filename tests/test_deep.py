"""Deep recurrent stacks: residual connections (engines and estimators) and attention pooling.

Exactness: the engines against the NumPy oracle (tests/reference.py, which gains ``residual``),
the estimators' whole loss against central finite differences in float64.
"""

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import numgru
from numgru import GRUClassifier, GRURegressor
from numgru import _attention, _linear_skip
from numgru._stack import residual_layers

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 7, 2))
LENGTHS = np.array([7, 3, 1, 7, 5, 2, 6, 4])
RAGGED = [X[i, :n] for i, n in enumerate(LENGTHS)]


def fit(make, X, y, **kw):
    params = dict(hidden_layer_sizes=(4, 4), max_iter=2, random_state=0, dtype="float64")
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(**params).fit(X, y)


# ------------------------------------------------------------------------------ engines
@pytest.mark.parametrize("cell", ["gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_engine_residual_matches_the_oracle(cell, bidirectional):
    """Forward and backward of a 3-layer residual stack with dropout and ragged lengths."""
    if cell == "gru":
        net = numgru.GRU(3, 4, 3, bidirectional=bidirectional, dropout=0.3, residual=True,
                         dtype="float64", random_state=0)
        fwd, bwd, kw = R.gru_forward, R.gru_backward, {}
    else:
        net = numgru.RNN(3, 4, 3, bidirectional=bidirectional, dropout=0.3, residual=True,
                         dtype="float64", random_state=0)
        fwd, bwd, kw = R.rnn_forward, R.rnn_backward, {"nonlinearity": "tanh"}
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 3))
    lengths = [6, 3, 1, 6, 2]
    out, h_n = net.forward(x, lengths=lengths, training=True)
    ref_out, ref_h_n, cache = fwd(x, net.state_dict(), num_layers=3, hidden_size=4,
                                  bidirectional=bidirectional, lengths=lengths,
                                  dropout_masks=net.dropout_masks_, residual=True, **kw)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)
    np.testing.assert_allclose(h_n, ref_h_n, atol=1e-12)
    assert (out[2, 1:] == 0).all()                       # still 0 past each length
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx, dh0, grads = net.backward(d_out, d_h_n)
    ref_dx, ref_dh0, ref_grads = bwd(cache, d_out, d_h_n)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-12)
    np.testing.assert_allclose(dh0, ref_dh0, atol=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], atol=1e-11, err_msg=name)
    # and the skip really is there
    plain = fwd(x, net.state_dict(), num_layers=3, hidden_size=4, bidirectional=bidirectional,
                lengths=lengths, dropout_masks=net.dropout_masks_, **kw)[0]
    assert not np.allclose(out, plain)


def test_engine_residual_float32_and_repr():
    g64 = numgru.GRU(2, 5, 3, residual=True, dtype="float64", random_state=0)
    g32 = numgru.GRU(2, 5, 3, residual=True, dtype="float32", random_state=0)
    g32.load_state_dict(g64.state_dict())
    x = RNG.standard_normal((3, 9, 2))
    np.testing.assert_allclose(g32.forward(x)[0], g64.forward(x)[0], rtol=1e-5, atol=1e-5)
    assert "residual=True" in repr(g32)
    assert g32.residual and not numgru.GRU(2, 5, 3).residual
    g2 = pickle.loads(pickle.dumps(g32))
    assert g2.residual
    np.testing.assert_array_equal(g2.forward(x)[0], g32.forward(x)[0])


@pytest.mark.parametrize("make", [numgru.GRU, numgru.RNN])
def test_engine_residual_needs_two_layers(make):
    with pytest.raises(ValueError, match=r"residual=True needs at least two recurrent layers.*"
                                         r"input width 3, output width 4"):
        make(3, 4, 1, residual=True)


def test_which_layers_get_a_skip():
    assert residual_layers(3, [4, 4, 6, 6], 1) == [1, 3]
    assert residual_layers(3, [4, 4], 2) == [1]
    with pytest.raises(ValueError, match=r"layer 1: input width 8, output width 10.*"
                                         r"layer 2: input width 10, output width 12"):
        residual_layers(3, [4, 5, 6], 2)


def test_estimator_residual_errors_and_layers():
    y = X[:, :, 0].sum(axis=1)
    with pytest.raises(ValueError, match="needs at least two recurrent layers"):
        fit(GRURegressor, X, y, hidden_layer_sizes=(4,), residual=True)
    with pytest.raises(ValueError, match="no layer after the first has equal input and output"):
        fit(GRURegressor, X, y, hidden_layer_sizes=(4, 3), residual=True)
    reg = fit(GRURegressor, X, y, hidden_layer_sizes=(5, 5, 3, 3), residual=True)
    assert reg.stack_.residual_layers == [1, 3]


# ------------------------------------------------------------------------------ exact gradients
def _loss_and_grads(est, Xp, lengths, Y, w):
    feats, top = est._features(Xp, lengths, True, np.random.default_rng(0))
    skip, Z = est._skip_outputs(Xp, lengths)          # a regressor's linear skip (0, None: none)
    logits = feats @ est.head_coef_.T + est.head_intercept_ + skip
    loss, dlogits = est._loss(logits, Y, w)
    grads = est._backward(lengths, feats, top, dlogits)
    if Z is not None:
        grads += _linear_skip.backward(Z, dlogits)
    return loss, grads


CONFIGS = [
    dict(pooling="attention"),
    dict(pooling="attention", residual=True, bidirectional=True),
    dict(pooling="attention", residual=True, cell="rnn_tanh"),
    dict(pooling="last", residual=True, bidirectional=True),
    dict(pooling="last", residual=True, cell="rnn_tanh"),
    dict(pooling="mean", residual=True),
    dict(output="each_step", residual=True, bidirectional=True),
]


@pytest.mark.parametrize("make", [GRURegressor, GRUClassifier])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_estimator_loss_finite_differences(make, cfg):
    """Central differences of the whole loss (ragged lengths) for a sample of every parameter."""
    each = cfg.get("output") == "each_step"
    if make is GRUClassifier:
        y = (X[:, :, 0] > 0).astype(int) if each else np.arange(8) % 3
    else:
        y = X[:, :, 0].cumsum(axis=1) if each else X[:, :, 0].sum(axis=1)
    est = fit(make, X, y, max_iter=1, **cfg)
    Xp, lengths = est._input(RAGGED, reset=False)
    Y, w = est._encode_targets(y if not each else [y[i, :n] for i, n in enumerate(LENGTHS)],
                               lengths, None, False, None)
    Y, w = est._rows(Y, w, lengths, Xp.shape[1])
    params = est._params()
    _, grads = _loss_and_grads(est, Xp, lengths, Y, w)
    assert len(grads) == len(params)
    rng = np.random.default_rng(2)
    eps = 1e-6
    for p, g in zip(params, grads):
        assert g.shape == p.shape
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for j in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            old = flat[j]
            flat[j] = old + eps
            lp = _loss_and_grads(est, Xp, lengths, Y, w)[0]
            flat[j] = old - eps
            lm = _loss_and_grads(est, Xp, lengths, Y, w)[0]
            flat[j] = old
            np.testing.assert_allclose(gflat[j], (lp - lm) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_attention_pooling_function_finite_differences_and_padding():
    """The pooling pair on its own, padding steps included (their h must get no gradient)."""
    rng = np.random.default_rng(3)
    B, T, F, A = 3, 5, 4, 4
    lengths = np.array([5, 2, 1])
    h = rng.standard_normal((B, T, F))
    h[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    W, b, v = _attention.init_attention(rng, F, A, np.float64)
    b = rng.standard_normal(A)
    c = rng.standard_normal((B, F))

    def loss(h, W, b, v):
        return float((_attention.attention_forward(h, lengths, W, b, v)[0] * c).sum())

    feats, alpha, saved = _attention.attention_forward(h, lengths, W, b, v)
    assert (alpha[1, 2:] == 0).all() and (alpha[2, 1:] == 0).all() and alpha[2, 0] == 1
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0)
    d_h, dW, db, dv = _attention.attention_backward(saved, c, W, v)
    assert (d_h[1, 2:] == 0).all()
    for arr, g in ((h, d_h), (W, dW), (b, db), (v, dv)):
        num = np.zeros_like(arr)
        for j in range(arr.size):
            old = arr.flat[j]
            arr.flat[j] = old + 1e-6
            lp = loss(h, W, b, v)
            arr.flat[j] = old - 1e-6
            lm = loss(h, W, b, v)
            arr.flat[j] = old
            num.flat[j] = (lp - lm) / 2e-6
        valid = np.ones(arr.shape, bool) if arr is not h else \
            np.broadcast_to((np.arange(T)[None, :] < lengths[:, None])[:, :, None], h.shape)
        np.testing.assert_allclose(g[valid], num[valid], rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------ attention API
def test_attention_weights_shapes_padding_and_ragged():
    y = X[:, :, 0].max(axis=1)
    reg = fit(GRURegressor, RAGGED, y[:8], pooling="attention", residual=True)
    ragged = reg.attention_weights(RAGGED)
    assert [a.shape for a in ragged] == [(n,) for n in LENGTHS]
    padded = reg.attention_weights(X, lengths=LENGTHS)
    assert padded.shape == (8, 7)
    for i, n in enumerate(LENGTHS):
        np.testing.assert_allclose(padded[i, :n], ragged[i], rtol=1e-12)
        assert (padded[i, n:] == 0).all()
        assert np.isclose(padded[i].sum(), 1.0)
    # padding values never matter: garbage past the lengths gives the same predictions
    Xg = X.copy()
    Xg[np.arange(7)[None, :] >= LENGTHS[:, None]] = 1e3
    np.testing.assert_allclose(reg.predict(Xg, lengths=LENGTHS), reg.predict(RAGGED))
    # univariate 2-D input
    reg2 = fit(GRURegressor, X[:, :, 0], y, pooling="attention")
    assert reg2.attention_weights(X[:3, :, 0]).shape == (3, 7)


def test_attention_parameters_are_trained_penalised_and_enumerated():
    y = np.arange(8) % 2
    clf = fit(GRUClassifier, X, y, pooling="attention", hidden_layer_sizes=(3, 3),
              bidirectional=True, max_iter=3)
    F = 6
    assert clf.attention_coef_.shape == (F, F)
    assert clf.attention_intercept_.shape == (F,) and clf.attention_vector_.shape == (F,)
    n_stack = len(clf.stack_.parameters())
    assert len(clf._params()) == n_stack + 5
    assert clf._is_weight()[n_stack:] == [True, False, True, True, False]
    assert any(p is clf.attention_vector_ for p in clf._params())
    untrained = fit(GRUClassifier, X, y, pooling="attention", hidden_layer_sizes=(3, 3),
                    bidirectional=True, max_iter=1, learning_rate_init=1e-12)
    assert not np.allclose(untrained.attention_vector_, clf.attention_vector_)
    # the same seed gives the same initialisation
    again = fit(GRUClassifier, X, y, pooling="attention", hidden_layer_sizes=(3, 3),
                bidirectional=True, max_iter=3)
    np.testing.assert_array_equal(again.attention_coef_, clf.attention_coef_)
    # early stopping restores the best weights, attention included
    es = fit(GRUClassifier, np.concatenate([X] * 4), np.concatenate([y] * 4),
             pooling="attention", early_stopping=True, max_iter=4, validation_fraction=0.25)
    assert es.attention_coef_.shape == (4, 4)


def test_attention_weights_errors():
    with pytest.raises(NotFittedError):
        GRURegressor(pooling="attention").attention_weights(X)
    reg = fit(GRURegressor, X, X[:, 0, 0])
    with pytest.raises(ValueError, match="pooling='attention'.*this one has pooling='last'"):
        reg.attention_weights(X)
    each = fit(GRURegressor, X, X[:, :, 0], pooling="attention", output="each_step")
    assert not hasattr(each, "attention_coef_")
    with pytest.raises(ValueError, match="output='each_step'"):
        each.attention_weights(X)
    with pytest.raises(ValueError, match="'pooling' parameter"):
        fit(GRURegressor, X, X[:, 0, 0], pooling="max")


# ----------------------------------------------------------------------------- dtypes, persistence
@pytest.mark.parametrize("make", [GRURegressor, GRUClassifier])
def test_float32_model_agrees_with_float64(make):
    y = X[:, :, 0].sum(axis=1) if make is GRURegressor else np.arange(8) % 3
    e64 = fit(make, RAGGED, y, pooling="attention", residual=True, bidirectional=True,
              hidden_layer_sizes=(4, 4, 4))
    fitted, arrays = e64._get_fitted_state()
    fitted["_dtype"] = "float32"
    e32 = clone(e64).set_params(dtype="float32")
    e32._set_fitted_state(fitted, arrays)
    assert e32.attention_coef_.dtype == np.float32
    if make is GRURegressor:
        np.testing.assert_allclose(e32.predict(RAGGED), e64.predict(RAGGED), rtol=1e-4,
                                   atol=1e-5)
    else:
        np.testing.assert_allclose(e32.predict_proba(RAGGED), e64.predict_proba(RAGGED),
                                   atol=1e-5)
    np.testing.assert_allclose(np.concatenate(e32.attention_weights(RAGGED)),
                               np.concatenate(e64.attention_weights(RAGGED)), atol=1e-5)
    # a float32 fit trains
    f32 = fit(make, X.astype(np.float32), y, pooling="attention", residual=True,
              dtype="float32")
    assert f32.attention_coef_.dtype == np.float32 and np.isfinite(f32.loss_)


@pytest.mark.parametrize("cfg", [dict(pooling="attention", residual=True),
                                 dict(pooling="last", residual=True, bidirectional=True)])
def test_save_load_pickle_clone_round_trip(tmp_path, cfg):
    y = np.array(["a", "b", "c", "a"] * 2)
    clf = fit(GRUClassifier, RAGGED, y, **cfg)
    path = tmp_path / "m.npz"
    clf.save(path)
    loaded = numgru.load(path)
    assert loaded.residual is True and loaded.pooling == cfg["pooling"]
    assert loaded.stack_.residual_layers == [1]
    np.testing.assert_array_equal(loaded.predict_proba(RAGGED), clf.predict_proba(RAGGED))
    unpickled = pickle.loads(pickle.dumps(clf))
    assert unpickled.stack_.residual_layers == [1]
    np.testing.assert_array_equal(unpickled.predict_proba(RAGGED), clf.predict_proba(RAGGED))
    if cfg["pooling"] == "attention":
        for name in ("attention_coef_", "attention_intercept_", "attention_vector_"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(clf, name))
        np.testing.assert_array_equal(np.concatenate(loaded.attention_weights(RAGGED)),
                                      np.concatenate(clf.attention_weights(RAGGED)))
    c = clone(clf)
    assert c.get_params()["residual"] is True and not hasattr(c, "stack_")
    refit = fit(GRUClassifier, RAGGED, y, **cfg)
    np.testing.assert_array_equal(refit.predict_proba(RAGGED), clf.predict_proba(RAGGED))


def test_model_file_without_attention_arrays_is_refused(tmp_path):
    clf = fit(GRUClassifier, X, np.arange(8) % 2, pooling="attention")
    fitted, arrays = clf._get_fitted_state()
    del arrays["attention_vector"]
    with pytest.raises(ValueError, match="'attention_vector' is missing"):
        clone(clf)._set_fitted_state(fitted, arrays)
    fitted, arrays = clf._get_fitted_state()
    arrays["attention_coef"] = np.zeros((3, 4))
    with pytest.raises(ValueError,
                       match=r"'attention_coef' has shape \(3, 4\), expected \(4, 4\)"):
        clone(clf)._set_fitted_state(fitted, arrays)


# ------------------------------------------------------------------------------ streaming
CHUNKS = [1, 3, 2, 1]


@pytest.mark.parametrize("cfg", [dict(pooling="attention"),
                                 dict(pooling="attention", residual=True, dropout=0.3),
                                 dict(pooling="last", residual=True),
                                 dict(pooling="mean", residual=True, cell="rnn_tanh"),
                                 dict(output="each_step", residual=True)])
def test_stream_equals_predict_on_the_prefix(cfg):
    each = cfg.get("output") == "each_step"
    reg = fit(GRURegressor, X, X[:, :, 0].cumsum(axis=1) if each else X[:, :, 0].sum(axis=1),
              **cfg)
    s = reg.stream(n_streams=8)
    t = 0
    for c in CHUNKS:
        out = s.update(X[:, t:t + c])
        t += c
        want = reg.predict(X[:, :t])[:, t - c:t] if each else reg.predict(X[:, :t])
        np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    s.reset()
    np.testing.assert_allclose(s.update(X[:, :2]), reg.predict(X[:, :2])[:, :2] if each
                               else reg.predict(X[:, :2]), rtol=1e-10, atol=1e-12)


def test_stream_attention_float32_classifier():
    y = np.arange(8) % 2
    clf = fit(GRUClassifier, X.astype(np.float32), y, pooling="attention", dtype="float32")
    s = clf.stream(n_streams=8)
    s.update(X[:, :4])
    np.testing.assert_allclose(s.update(X[:, 4:], proba=True), clf.predict_proba(X),
                               atol=1e-5)


# ------------------------------------------------------------------------------ the adding problem
def test_make_adding_problem():
    from numgru.datasets import make_adding_problem

    X, y = make_adding_problem(n_samples=50, n_timesteps=101, random_state=0)
    assert X.shape == (50, 101, 2) and y.shape == (50,) and X.dtype == y.dtype == np.float64
    markers = X[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers[:, :50].sum(axis=1) == 1).all() and (markers[:, 50:].sum(axis=1) == 1).all()
    assert ((X[:, :, 0] >= 0) & (X[:, :, 0] < 1)).all()
    np.testing.assert_allclose(y, (X[:, :, 0] * markers).sum(axis=1))
    X2, y2 = make_adding_problem(n_samples=50, n_timesteps=101, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(make_adding_problem(50, 101, random_state=1)[1], y)
    for kw in (dict(n_samples=0), dict(n_timesteps=1), dict(n_timesteps=2.5),
               dict(n_samples=True)):
        with pytest.raises(ValueError, match="must be an integer"):
            make_adding_problem(**{"n_samples": 5, "n_timesteps": 10, **kw})


def test_last_step_outputs_equal_the_final_states_without_a_skip():
    """pooling="last" with a top skip reads the outputs; without one they are h_n exactly."""
    from numgru._heads import last_step_outputs as _last_step_outputs

    reg = fit(GRURegressor, RAGGED, X[:, 0, 0], bidirectional=True)
    assert not reg._last_from_out()
    Xp, lengths = reg._input(RAGGED, reset=False)
    feats, top = reg._features(Xp, lengths, training=False)
    np.testing.assert_array_equal(_last_step_outputs(top, lengths, 2), feats)
