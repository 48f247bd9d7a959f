"""numgru.GRULanguageModel: PyTorch parity (committed RNNModel fixtures), exact gradients,
truncated BPTT bookkeeping, scoring, generation, persistence and bad input."""

import glob
import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone

import numgru
from numgru import GRULanguageModel
from numgru import lm as lm_mod

DATA = os.path.join(os.path.dirname(__file__), "data")
FIXTURES = sorted(glob.glob(os.path.join(DATA, "lm_torch_*.npz")))
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog. " * 8


def small(**kw):
    opts = dict(embedding_dim=6, hidden_layer_sizes=(7,), batch_size=3, bptt=5, max_iter=2,
                learning_rate_init=0.01, random_state=0, dtype="float64")
    opts.update(kw)
    return GRULanguageModel(**opts)


def from_fixture(path, dtype="float64"):
    fx = np.load(path)
    V, E, H, L, tie = (int(v) for v in fx["config"])
    sd = {k[3:]: fx[k] for k in fx.files if k.startswith("sd.")}
    lm = GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(H,) * L, level="tokens",
                          tie_weights=bool(tie), dtype=dtype).load_state_dict(sd)
    return lm, fx


def window_grads(lm, ids, targets, h0, lengths=None):
    B, T = ids.shape
    if lengths is None:
        lengths = np.full(B, T, np.int64)
    h0 = [np.ascontiguousarray(h[None]) for h in h0]
    loss, n, sg, hg, h_n = lm._window_step(ids, targets, lengths, h0)
    return loss, lm._named_grads(sg, hg), [lm.stack_.backend.to_host(h) for h in h_n]


# ----------------------------------------------------------------------------------------------
# PyTorch parity
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p) for p in FIXTURES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_window_matches_torch_rnnmodel(path, dtype):
    lm, fx = from_fixture(path, dtype)
    ids, targets = fx["ids"].T.copy(), fx["targets"].T.copy()        # torch is (T, B)
    h0 = list(fx["hidden0"].astype(dtype))
    loss, grads, h_n = window_grads(lm, ids, targets, h0)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(loss, fx["loss"], **tol)
    np.testing.assert_allclose(np.concatenate(h_n), fx["hidden_n"], **tol)
    expected = {k[5:]: fx[k] for k in fx.files if k.startswith("grad.")}
    assert sorted(grads) == sorted(expected)
    for name, g in grads.items():
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, expected[name], err_msg=name, **tol)


@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p) for p in FIXTURES])
def test_score_matches_torch_rnnmodel(path):
    lm, fx = from_fixture(path)
    docs = [fx["doc0"], fx["doc1"]]
    np.testing.assert_allclose(lm.score(docs), fx["score"], rtol=1e-12)
    np.testing.assert_allclose(lm.perplexity(docs), np.exp(-fx["score"]), rtol=1e-12)


@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p) for p in FIXTURES])
def test_state_dict_round_trip_and_torch_tensors(path):
    lm, fx = from_fixture(path)
    sd = lm.state_dict()
    assert sorted(sd) == sorted(k[3:] for k in fx.files if k.startswith("sd."))
    for k, v in sd.items():
        np.testing.assert_array_equal(v, fx["sd." + k])
    torch = pytest.importorskip("torch")
    tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
    lm2 = clone(lm).load_state_dict(tensors)
    assert lm2.score([fx["doc0"], fx["doc1"]]) == lm.score([fx["doc0"], fx["doc1"]])


# ----------------------------------------------------------------------------------------------
# exact gradients
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [False, True])
def test_gradients_match_finite_differences(tie):
    rng = np.random.default_rng(3)
    V, E = 9, 5
    lm = GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(4, E) if tie else (4, 3),
                          level="tokens", tie_weights=tie, dtype="float64")
    sd = {}
    lm.load_state_dict(_random_sd(lm, V, rng))
    B, T = 3, 6
    ids = rng.integers(V, size=(B, T))
    targets = rng.integers(V, size=(B, T))
    lengths = np.array([6, 2, 4])
    h0 = [rng.standard_normal((B, H)) * 0.3 for H in lm._sizes()]
    loss, grads, _ = window_grads(lm, ids, targets, h0, lengths)
    sd = lm.state_dict()
    for name, g in grads.items():
        flat = sd[name].reshape(-1)
        for idx in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            eps = 1e-6
            vals = []
            for sign in (1, -1):
                pert = {k: v.copy() for k, v in sd.items()}
                pert[name].reshape(-1)[idx] += sign * eps
                if tie and name in ("encoder.weight", "decoder.weight"):
                    other = "decoder.weight" if name == "encoder.weight" else "encoder.weight"
                    pert[other] = pert[name]
                lm.load_state_dict(pert)
                vals.append(window_grads(lm, ids, targets, h0, lengths)[0])
            lm.load_state_dict(sd)
            fd = (vals[0] - vals[1]) / (2 * eps)
            np.testing.assert_allclose(g.reshape(-1)[idx], fd, rtol=1e-6, atol=1e-9,
                                       err_msg=f"{name}[{idx}]")


def _random_sd(lm, V, rng):
    sizes = lm._sizes()
    sd = {"encoder.weight": rng.uniform(-0.5, 0.5, (V, lm.embedding_dim))}
    size = lm.embedding_dim
    for k, H in enumerate(sizes):
        sd[f"rnn.weight_ih_l{k}"] = rng.uniform(-0.5, 0.5, (3 * H, size))
        sd[f"rnn.weight_hh_l{k}"] = rng.uniform(-0.5, 0.5, (3 * H, H))
        sd[f"rnn.bias_ih_l{k}"] = rng.uniform(-0.5, 0.5, 3 * H)
        sd[f"rnn.bias_hh_l{k}"] = rng.uniform(-0.5, 0.5, 3 * H)
        size = H
    sd["decoder.weight"] = (sd["encoder.weight"] if lm.tie_weights
                            else rng.uniform(-0.5, 0.5, (V, size)))
    sd["decoder.bias"] = rng.uniform(-0.5, 0.5, V)
    return sd


# ----------------------------------------------------------------------------------------------
# streams, windows, scoring
# ----------------------------------------------------------------------------------------------
def _oracle_pairs(docs, n_streams):
    """(input, target) pairs batchify over the joined documents trains on, without the pairs
    that cross a document end or a stream end (a NumPy oracle: no numgru code)."""
    text = np.concatenate(docs)
    doc_of = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    size, extra = divmod(len(text), n_streams)
    lens = [size + (s < extra) for s in range(n_streams)]
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    pairs = []
    for s, (a, n) in enumerate(zip(starts, lens)):
        for p in range(a, a + n - 1):
            if doc_of[p] == doc_of[p + 1]:
                pairs.append((int(text[p]), int(text[p + 1])))
    return pairs, lens


@pytest.mark.parametrize("n_streams, bptt", [(4, 6), (3, 5), (20, 35)])
def test_windows_cover_batchify_pairs_once_and_reset_state_at_document_starts(n_streams, bptt):
    docs = [np.arange(1000 * (i + 1), 1000 * (i + 1) + n)
            for i, n in enumerate((23, 5, 1, 11, 40, 2, 17))]
    text, starts, ends, doc_ends = lm_mod._streams(docs, n_streams)
    pairs, lens = _oracle_pairs(docs, min(n_streams, len(text) // 2))
    # equal streams (+-1 token) covering the whole text in order, as batchify
    np.testing.assert_array_equal(ends - starts, lens)
    assert (ends - starts).max() - (ends - starts).min() <= 1
    windows = list(lm_mod._windows(text, starts, ends, doc_ends, bptt))
    assert len(windows) == -(-(max(lens) - 1) // bptt)          # windows per epoch
    seen, carried_last = [], {}
    doc_of = {int(t): i for i, d in enumerate(docs) for t in d}
    for ids, targets, lengths, stream, carried, carries in windows:
        last = {}
        for r in range(len(lengths)):
            L = int(lengths[r])
            assert 1 <= L <= bptt
            np.testing.assert_array_equal(targets[r, :L - 1], ids[r, 1:L])
            # one document per row: the state resets where a document starts
            assert len({doc_of[int(t)] for t in ids[r, :L]} | {doc_of[int(targets[r, L - 1])]}) == 1
            if carried[r]:                 # continues the same stream's previous row
                assert carried_last[int(stream[r])] == int(ids[r, 0])
            else:                          # a document's (or a stream's) first token
                t = int(ids[r, 0])
                first_of_doc = t in {int(d[0]) for d in docs}
                first_of_stream = t in {int(text[a]) for a in starts}
                assert first_of_doc or first_of_stream
            if carries[r]:
                last[int(stream[r])] = int(targets[r, L - 1])
            seen.extend(zip(ids[r, :L].tolist(), targets[r, :L].tolist()))
        carried_last = last
    assert sorted(seen) == sorted(pairs)


def test_a_single_text_is_cut_like_torch_batchify():
    text, starts, ends, doc_ends = lm_mod._streams([np.arange(100)], 4)
    np.testing.assert_array_equal(starts, [0, 25, 50, 75])
    np.testing.assert_array_equal(ends, [25, 50, 75, 100])
    windows = list(lm_mod._windows(text, starts, ends, doc_ends, 10))
    # batchify (100 // 4 = 25 rows, bptt 10): windows of 10, 10 and 4 steps, every stream in each
    assert [w[0].shape for w in windows] == [(4, 10), (4, 10), (4, 4)]
    np.testing.assert_array_equal(windows[1][0][:, 0], [10, 35, 60, 85])
    assert all(w[4].all() for w in windows[1:]) and not windows[0][4].any()


def test_a_list_of_documents_fills_every_window_but_the_last():
    docs = [np.arange(1000 * (i + 1), 1000 * (i + 1) + 30 + 7 * i) for i in range(12)]
    text, starts, ends, doc_ends = lm_mod._streams(docs, 5)
    windows = list(lm_mod._windows(text, starts, ends, doc_ends, 8))
    for ids, targets, lengths, stream, carried, carries in windows[:-1]:
        # every stream is in every window, with 8 steps minus the document ends it meets
        assert set(stream.tolist()) == set(range(5))
        per_stream = np.bincount(stream, weights=lengths, minlength=5)
        assert (per_stream >= 8 - np.bincount(stream, minlength=5)).all()


def test_score_is_exact_whatever_the_window(monkeypatch):
    lm = small().fit(TEXT)
    full = lm.score(TEXT)
    monkeypatch.setattr(lm_mod, "_SCORE_WINDOW", 3)
    monkeypatch.setattr(lm_mod, "_SCORE_BATCH", 2)
    np.testing.assert_allclose(lm.score(TEXT), full, rtol=1e-12)
    # documents are independent sequences from a zero state
    a, b = TEXT[:50], TEXT[50:81]
    both = lm.score([a, b])
    np.testing.assert_allclose(both, (lm.score(a) * 49 + lm.score(b) * 30) / 79, rtol=1e-12)


def test_training_learns_a_repetitive_text():
    lm = small(hidden_layer_sizes=(24,), embedding_dim=8, max_iter=8, batch_size=4, bptt=10,
               learning_rate_init=0.02)
    lm.fit(TEXT)
    assert len(lm.loss_curve_) == lm.n_iter_ and lm.loss_curve_[-1] < lm.loss_curve_[0]
    assert lm.perplexity(TEXT) < 0.7 * lm.unigram_perplexity(TEXT)


def test_early_stopping_scores_validation_and_keeps_best():
    lm = small(early_stopping=True, validation_fraction=0.2, max_iter=4)
    lm.fit(TEXT)
    assert len(lm.validation_scores_) == lm.n_iter_
    assert lm.best_validation_score_ == max(lm.validation_scores_)


def test_vocabulary_covers_the_validation_part():
    text = TEXT[:200] + "xyz xyz"            # x, y, z only in the held-out tail
    lm = small(early_stopping=True, validation_fraction=0.05, max_iter=1).fit(text)
    assert {"x", "y", "z"} <= set(lm.vocabulary_) and "<unk>" not in lm.vocabulary_
    assert lm.token_counts_[lm.vocabulary_.index("x")] == 0     # counts: training part only
    assert np.isfinite(lm.validation_scores_[0])


def test_float32_close_to_float64():
    a = small(dtype="float64", max_iter=1).fit(TEXT)
    b = small(dtype="float32", max_iter=1).fit(TEXT)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(a.score(TEXT[:80]), b.score(TEXT[:80]), rtol=1e-4)


def test_reproducible_under_random_state():
    a = small(dropout=0.3).fit(TEXT)
    b = small(dropout=0.3).fit(TEXT)
    assert a.loss_curve_ == b.loss_curve_
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


# ----------------------------------------------------------------------------------------------
# vocabulary and levels
# ----------------------------------------------------------------------------------------------
def test_vocabulary_char_word_tokens():
    lm = small(max_iter=1).fit("abcab")
    assert lm.vocabulary_ == ["a", "b", "c"]
    np.testing.assert_array_equal(lm.encode("cab"), [2, 0, 1])
    assert lm.decode([2, 0, 1]) == "cab"
    w = small(level="word", max_iter=1).fit("Hello, world! hello world")
    assert w.vocabulary_[0] == "<unk>"
    assert w.decode(w.encode("hello, world")) == "hello , world"
    assert w.decode(w.encode("goodbye")) == "<unk>"
    t = small(level="tokens", max_iter=1).fit([[0, 3, 2, 3], [1, 2]])
    assert t.vocabulary_ == [0, 1, 2, 3]
    assert isinstance(t.generate(5, random_state=0), np.ndarray)


def test_min_frequency_and_max_vocabulary_make_unk():
    lm = small(max_iter=1, min_frequency=2).fit("aaabbc")
    assert lm.vocabulary_ == ["<unk>", "a", "b"]
    np.testing.assert_array_equal(lm.encode("cz"), [0, 0])
    lm = small(max_iter=1, max_vocabulary=2).fit("aaabbc")
    assert lm.vocabulary_ == ["<unk>", "a"]


# ----------------------------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------------------------
def test_generate_reproducible_greedy_and_top_k():
    lm = small().fit(TEXT)
    a = lm.generate(30, prefix="the ", random_state=5)
    assert a == lm.generate(30, prefix="the ", random_state=5)
    assert len(a) == 30 and set(a) <= set(lm.vocabulary_)
    greedy = lm.generate(15, prefix="the c", temperature=0)
    assert greedy == lm.generate(15, prefix="the c", top_k=1, random_state=1)
    assert lm.generate(0) == ""
    # the prefix conditions the first token: greedy continuation equals argmax of the model
    ids = lm.encode("the c")
    lp = lm.head_.log_softmax(*_ctx(lm), _last_output(lm, ids))
    assert greedy[0] == lm.vocabulary_[int(np.argmax(lp[0]))]


def _ctx(lm):
    return lm.stack_.context(), lm.head_.native(lm.stack_.backend)


def _last_output(lm, ids):
    out, _ = lm.stack_.forward(ids[None], np.array([ids.size]))
    return np.ascontiguousarray(out[0, -1:])


# ----------------------------------------------------------------------------------------------
# persistence
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(tie_weights=True, embedding_dim=7),
                                dict(level="tokens"), dict(level="word")])
def test_save_load_pickle_clone(tmp_path, kw):
    X = [[1, 2, 3, 1, 2, 3, 4]] * 3 if kw.get("level") == "tokens" else TEXT
    lm = small(**kw).fit(X)
    path = tmp_path / "lm.npz"
    lm.save(path)
    loaded = numgru.load(path)
    assert type(loaded) is GRULanguageModel and loaded.get_params() == lm.get_params()
    assert loaded.vocabulary_ == lm.vocabulary_
    assert loaded.score(X) == lm.score(X)
    assert loaded.generate(10, random_state=0) == lm.generate(10, random_state=0) \
        if kw.get("level") != "tokens" else \
        np.array_equal(loaded.generate(10, random_state=0), lm.generate(10, random_state=0))
    again = pickle.loads(pickle.dumps(lm))
    assert again.score(X) == lm.score(X)
    assert clone(lm).get_params() == lm.get_params()


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_bad_input_errors():
    with pytest.raises(ValueError, match="empty"):
        small().fit("")
    with pytest.raises(ValueError, match="at least two tokens"):
        small().fit("a")
    with pytest.raises(TypeError, match="bytes"):
        small().fit(b"abc")
    with pytest.raises(TypeError, match="str"):
        small().fit([1, 2, 3])
    with pytest.raises(ValueError, match="tie_weights"):
        small(tie_weights=True).fit(TEXT)
    with pytest.raises(ValueError, match="negative"):
        small(level="tokens").fit([[1, -2, 3]])
    with pytest.raises(ValueError, match="integer"):
        small(level="tokens").fit([[1.5, 2.0]])
    lm = small(max_iter=1).fit("abcabc")
    with pytest.raises(ValueError, match=r"not in the vocabulary.*'z'"):
        lm.score("abz")
    with pytest.raises(ValueError, match=r"not in the vocabulary.*'q'"):
        lm.generate(3, prefix="aq")
    with pytest.raises(ValueError, match="out of range"):
        lm.decode([0, 7])
    with pytest.raises(ValueError, match="n_tokens"):
        lm.generate(-1)
    with pytest.raises(ValueError, match="temperature"):
        lm.generate(2, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        lm.generate(2, top_k=0)
    with pytest.raises(ValueError, match="two or more tokens"):
        lm.score("a")
    t = small(level="tokens", max_iter=1).fit([[0, 1, 2, 1]])
    with pytest.raises(ValueError, match=r"not in the vocabulary \[5\]"):
        t.score([[0, 5]])
    with pytest.raises(ValueError, match=r"not in the vocabulary \[9\]"):
        t.generate(2, prefix=[9])
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        small().score("abc")
    with pytest.raises(NotFittedError):
        small().generate(3)


def test_load_state_dict_errors():
    lm, fx = from_fixture(FIXTURES[0])
    sd = lm.state_dict()
    with pytest.raises(ValueError, match="missing keys"):
        clone(lm).load_state_dict({k: v for k, v in sd.items() if k != "decoder.bias"})
    bad = dict(sd, **{"rnn.weight_hh_l0": sd["rnn.weight_hh_l0"][:, :-1]})
    with pytest.raises(ValueError, match="shape"):
        clone(lm).load_state_dict(bad)
    nan = dict(sd, **{"decoder.bias": np.full_like(sd["decoder.bias"], np.nan)})
    before = lm.score([fx["doc0"]])
    with pytest.raises(ValueError, match="non-finite|NaN"):
        lm.load_state_dict(nan)
    assert lm.score([fx["doc0"]]) == before          # nothing changed
    with pytest.raises(ValueError, match="vocabulary="):
        GRULanguageModel(embedding_dim=6, hidden_layer_sizes=(5, 5)).load_state_dict(sd)


# ----------------------------------------------------------------------------------------------
# the CUDA backend (a real GPU, or the simulator that tests/conftest.py turns on): same numbers
# ----------------------------------------------------------------------------------------------
def test_cuda_language_model_matches_cpu(monkeypatch):
    from numgru import _config, _cuda

    if _cuda.unavailable_reason() is not None:
        pytest.skip(f"CUDA unusable here: {_cuda.unavailable_reason()}")
    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(_config, "CUDA_TILE", 4)
    text = "abcab cab bca" * 2
    kw = dict(embedding_dim=3, hidden_layer_sizes=(4,), batch_size=2, bptt=4, max_iter=1,
              learning_rate_init=0.05, random_state=0, dtype="float64", dropout=0.2)
    cpu = GRULanguageModel(**kw).fit(text)
    gpu = GRULanguageModel(device="cuda", **kw).fit(text)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-10)
    for k, v in cpu.state_dict().items():
        np.testing.assert_allclose(gpu.state_dict()[k], v, rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(gpu.score("cab ab"), cpu.score("cab ab"), rtol=1e-10)
    assert gpu.generate(5, prefix="ab", random_state=0) == cpu.generate(5, prefix="ab",
                                                                         random_state=0)
