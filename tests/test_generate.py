"""GRULanguageModel.generate through the single-step path (numgru._generate): the same tokens as
the generate it replaced (committed fixture), ``n_samples=k`` against a NumPy oracle of the model,
the layout of the random draws, and bad input."""

import json
import os

import numba
import numpy as np
import pytest

import numgru
import reference as ref
from numgru import GRULanguageModel, _generate
from numgru._config import compute_threads

DATA = os.path.join(os.path.dirname(__file__), "data")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
with open(os.path.join(DATA, "lm_generate_ids.json")) as _f:
    RECORDED = json.load(_f)
MODELS = {}


def model(name):
    """The fixture model ``lm_generate_<name>.npz`` (tests/data/make_generate_fixture.py)."""
    if name not in MODELS:
        MODELS[name] = numgru.load(os.path.join(DATA, f"lm_generate_{name}.npz"))
    return MODELS[name]


def as_list(lm, out):
    return np.asarray(out).tolist() if lm.level == "tokens" else out


def call(lm, case, **kw):
    return lm.generate(case["n_tokens"], prefix=case["prefix"], temperature=case["temperature"],
                       top_k=case["top_k"], random_state=case["random_state"], **kw)


# ----------------------------------------------------------------------------------------------
# the same tokens as the generate that ran Stack.forward per token (recorded before the change)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(RECORDED["cases"]))
def test_generate_draws_the_recorded_tokens(name):
    threads = RECORDED["threads"]
    with compute_threads:
        available = numba.get_num_threads()
    if name == "tok" and available != threads:
        # its one-row kernels split their products over the threads: other sums, other numbers
        pytest.skip(f"the 'tok' ids were recorded on {threads} threads, {available} here")
    lm = model(name)
    for case in RECORDED["cases"][name]:
        assert as_list(lm, call(lm, case)) == case["output"], case
        assert [as_list(lm, o) for o in call(lm, case, n_samples=1)] == [case["output"]], case


# ----------------------------------------------------------------------------------------------
# n_samples=k
# ----------------------------------------------------------------------------------------------
def test_greedy_samples_are_copies_of_the_greedy_sequence():
    for name in ("f32", "f64"):
        lm = model(name)
        one = lm.generate(30, prefix="the c", temperature=0)
        assert lm.generate(30, prefix="the c", temperature=0, n_samples=5) == [one] * 5
    tok = model("tok")
    one = tok.generate(25, prefix=[7, 3], temperature=0)
    many = tok.generate(25, prefix=[7, 3], temperature=0, n_samples=4)
    assert len(many) == 4
    for row in many:
        assert row.dtype == np.int64 and np.array_equal(row, one)


def oracle_logprobs(lm, ids):
    """log softmax of the next token after every position of ``ids`` (T,), from the model's
    state_dict alone: embedding -> each GRU layer (tests/reference.py) -> decoder: (T, V)."""
    sd = lm.state_dict()
    x = ref.embedding_forward(np.asarray(ids)[None], sd["encoder.weight"])
    for k, H in enumerate(lm._sizes()):
        p = {f"{kind}_l0": sd[f"rnn.{kind}_l{k}"]
             for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        x, _, _ = ref.forward(x, p, cell="gru", num_layers=1, hidden_size=H)
    return ref.log_softmax(x[0], sd["decoder.weight"], sd["decoder.bias"])


@pytest.mark.parametrize("name, prefix, temperature, top_k, rtol", [
    ("f64", "the ", 1.0, None, 1e-10), ("f64", "a", 0.8, 4, 1e-10),
    ("f32", "the ", 1.2, None, 2e-4), ("tok", [5, 17, 3], 1.0, None, 2e-4)])
def test_sampled_sequences_follow_the_numpy_oracle(monkeypatch, name, prefix, temperature,
                                                   top_k, rtol):
    """Every row's log-probabilities at every step are the oracle's for that row's own tokens,
    and each token is the inverse CDF of the oracle's distribution at the uniform the draw
    layout gives it (step t, row i: the i-th of the t-th ``rng.random(k)``)."""
    lm = model(name)
    k, n, seed = 6, 20, 11
    seen = []
    real = _generate.sample_rows

    def spy(logp, *args):
        seen.append(np.array(logp, np.float64))
        return real(logp, *args)

    monkeypatch.setattr(_generate, "sample_rows", spy)
    outs = lm.generate(n, prefix=prefix, temperature=temperature, top_k=top_k, random_state=seed,
                       n_samples=k)
    assert len(outs) == k and len(seen) == n
    pre = lm._ids(lm._one_document(prefix, "prefix"), "prefix")
    rng = np.random.default_rng(np.random.RandomState(seed).randint(2 ** 31))
    uniforms = [rng.random(k) for _ in range(n)]
    rows = [lm._ids(lm._one_document(o, "X"), "X") for o in outs]      # tokens -> model rows
    assert len({tuple(r) for r in rows}) > 1          # the rows are drawn independently
    for i, row in enumerate(rows):
        assert row.shape == (n,)
        want = oracle_logprobs(lm, np.concatenate([pre, row[:-1]]))[pre.size - 1:]
        got = np.array([s[i] for s in seen])
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
        for t in range(n):
            z = want[t] / temperature
            if top_k is not None:
                z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
            c = np.cumsum(np.exp(z - z.max()))
            assert row[t] == np.searchsorted(c, uniforms[t][i] * c[-1], side="right"), (i, t)


def test_samples_reproducible_and_one_sample_is_the_single_sequence():
    lm = model("f32")
    for prefix, top_k in (("the ", None), (None, 3), ("a", None)):
        a = lm.generate(25, prefix=prefix, top_k=top_k, random_state=4, n_samples=7)
        assert a == lm.generate(25, prefix=prefix, top_k=top_k, random_state=4, n_samples=7)
        assert all(isinstance(s, str) and len(s) == 25 for s in a)
        assert lm.generate(25, prefix=prefix, top_k=top_k, random_state=4, n_samples=1) == \
            [lm.generate(25, prefix=prefix, top_k=top_k, random_state=4)]
    gen = np.random.default_rng(3)
    first = lm.generate(10, random_state=gen, n_samples=2)
    assert first != lm.generate(10, random_state=gen, n_samples=2)   # the Generator advanced
    assert lm.generate(0, prefix="the", n_samples=3) == ["", "", ""]
    tok = model("tok")
    out = tok.generate(6, random_state=0, n_samples=3)
    assert isinstance(out, list) and all(o.dtype == np.int64 and o.shape == (6,) for o in out)
    assert all(set(o.tolist()) <= set(tok.vocabulary_) for o in out)


def test_n_samples_rejected():
    lm = model("f64")
    for bad in (0, -2, 1.0, True, "3", _generate.MAX_SAMPLES + 1):
        with pytest.raises(ValueError, match="n_samples must be None or an integer from 1"):
            lm.generate(3, n_samples=bad)
    with pytest.raises(ValueError, match="n_samples=4 is more than generate makes"):
        lm.generate(numgru.lm.MAX_GENERATE // 4 + 1, n_samples=4)
    assert len(lm.generate(2, n_samples=np.int64(2))) == 2


def test_stepper_runs_gru_stacks_only():
    """The single-step path refuses a stack it would run wrongly (not the language model's)."""
    from numgru._cells import Embedding
    from numgru._cpu import backend
    from numgru._stack import Stack, build_recurrent_layers

    layers, _ = build_recurrent_layers(4, (5,), cell="rnn_tanh", dtype=np.float64,
                                       rngs=np.random.default_rng(0))
    stack = Stack([Embedding(7, 4, np.float64)] + layers, backend, np.float64)
    with pytest.raises(TypeError, match="reset_after GRU layers only"):
        _generate.Stepper(stack, model("f64").head_, 2)


# ----------------------------------------------------------------------------------------------
# the CUDA backend (a real GPU, or the simulator that tests/conftest.py turns on)
# ----------------------------------------------------------------------------------------------
def test_cuda_samples_match_cpu(monkeypatch):
    from numgru import _config, _cuda

    if _cuda.unavailable_reason() is not None:
        pytest.skip(f"CUDA unusable here: {_cuda.unavailable_reason()}")
    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(_config, "CUDA_TILE", 4)
    kw = dict(embedding_dim=3, hidden_layer_sizes=(4, 3), batch_size=2, bptt=4, max_iter=1,
              learning_rate_init=0.05, random_state=0, dtype="float64")
    cpu = GRULanguageModel(**kw).fit("abcab cab bca" * 2)
    gpu = GRULanguageModel(device="cuda", **kw).load_state_dict(cpu.state_dict(),
                                                                 cpu.vocabulary_)
    for n_samples in (None, 3):
        assert gpu.generate(5, prefix="ab", random_state=0, n_samples=n_samples) == \
            cpu.generate(5, prefix="ab", random_state=0, n_samples=n_samples)
