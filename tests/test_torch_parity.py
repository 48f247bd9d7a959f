"""numgru.GRU and numgru.RNN against PyTorch: the committed fixtures (tests/data/torch_*.npz)
always, and a live randomized comparison with torch.nn.GRU / torch.nn.RNN (incl. packed
sequences) when torch is importable."""

import numpy as np
import pytest

import numgru
from helpers import fixture_ids, fixture_paths, load_fixture


def assert_parity(actual, expected, dtype, what):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected))))
    if np.dtype(dtype) == np.float64:
        kw = dict(rtol=1e-10, atol=1e-12 * scale)
    else:
        kw = dict(rtol=2e-5, atol=2e-6 * scale)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, err_msg=what, **kw)


def check_engine(gru, dtype, x, h0, lengths, d_out, d_h_n, expect):
    out, h_n = gru.forward(x, h0=h0, lengths=lengths, training=True)
    dx, dh0, grads = gru.backward(d_out, d_h_n)
    for name, got in (("out", out), ("h_n", h_n), ("dx", dx), ("dh0", dh0)):
        assert got.dtype == dtype, (name, got.dtype)
        assert_parity(got, expect[name], dtype, name)
    assert list(grads) == list(expect["grads"])
    for name, g in grads.items():
        assert g.dtype == dtype
        assert_parity(g, expect["grads"][name], dtype, "grad " + name)


# ----------------------------------------------------------------------------------------------
# committed fixtures
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", fixture_paths(), ids=fixture_ids())
def test_engine_matches_torch_fixture(path):
    fx = load_fixture(path)
    dtype = np.dtype(fx["dtype"])
    gru = numgru.GRU(fx["input_size"], fx["hidden_size"], fx["num_layers"],
                     bidirectional=fx["bidirectional"], dtype=dtype.name, random_state=0)
    gru.load_state_dict(fx["params"])
    check_engine(gru, dtype, fx["x"], fx["h0"] if fx["has_h0"] else None,
                 fx["lengths"] if fx["has_lengths"] else None, fx["d_out"], fx["d_h_n"], fx)


# ----------------------------------------------------------------------------------------------
# live comparison with torch
# ----------------------------------------------------------------------------------------------
# B, T, I, H, L, bidirectional, packed, h0, dtype
LIVE = [
    (4, 6, 3, 5, 1, False, False, False, "float64"),
    (5, 7, 4, 6, 2, True, True, True, "float64"),
    (3, 5, 2, 3, 3, False, True, True, "float64"),
    (6, 4, 5, 4, 2, True, False, True, "float64"),
    (4, 6, 3, 5, 2, True, True, True, "float32"),
    (9, 11, 6, 17, 2, True, True, False, "float64"),
]


@pytest.mark.parametrize("seed, cfg", list(enumerate(LIVE)),
                         ids=[f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
                              f"{'_packed' if c[6] else ''}{'_h0' if c[7] else ''}_{c[8]}"
                              for c in LIVE])
def test_live_against_torch(seed, cfg):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    B, T, I, H, L, bidir, packed, with_h0, dtype_name = cfg
    D = 2 if bidir else 1
    dtype = np.dtype(dtype_name)
    tdtype = getattr(torch, dtype_name)
    rng = np.random.default_rng(300 + seed)
    torch.manual_seed(300 + seed)
    tg = torch.nn.GRU(I, H, num_layers=L, bidirectional=bidir, batch_first=True).to(tdtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(dtype)
    lengths = None
    if packed:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T
        lengths[rng.integers(B)] = 1
    d_out = rng.standard_normal((B, T, D * H)).astype(dtype)
    d_h_n = rng.standard_normal((L * D, B, H)).astype(dtype)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0 if with_h0 else np.zeros_like(h0), requires_grad=True)
    if packed:
        seq = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                   enforce_sorted=False)
        out_p, h_nt = tg(seq, h0t)
        out_t, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    else:
        out_t, h_nt = tg(xt, h0t)
    loss = (out_t * torch.tensor(d_out)).sum() + (h_nt * torch.tensor(d_h_n)).sum()
    loss.backward()
    expect = dict(out=out_t.detach().numpy(), h_n=h_nt.detach().numpy(),
                  dx=xt.grad.numpy(), dh0=h0t.grad.numpy(),
                  grads={n: p.grad.numpy() for n, p in tg.named_parameters()})

    gru = numgru.GRU(I, H, L, bidirectional=bidir, dtype=dtype_name, random_state=seed)
    assert list(gru.state_dict()) == [n for n, _ in tg.named_parameters()]
    gru.load_state_dict(tg.state_dict())       # torch tensors are array-likes too
    check_engine(gru, dtype, x, h0 if with_h0 else None, lengths, d_out, d_h_n, expect)

    # and the other way round: numgru's initialisation loads into torch
    tg2 = torch.nn.GRU(I, H, num_layers=L, bidirectional=bidir, batch_first=True).to(tdtype)
    tg2.load_state_dict({k: torch.tensor(v) for k, v in gru.state_dict().items()})


# ----------------------------------------------------------------------------------------------
# numgru.RNN against torch.nn.RNN
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", fixture_paths("rnn"), ids=fixture_ids("rnn"))
def test_rnn_matches_torch_fixture(path):
    fx = load_fixture(path)
    dtype = np.dtype(fx["dtype"])
    rnn = numgru.RNN(fx["input_size"], fx["hidden_size"], fx["num_layers"],
                     nonlinearity=fx["cell"][len("rnn_"):], bidirectional=fx["bidirectional"],
                     dtype=dtype.name, random_state=0)
    assert list(rnn.state_dict()) == list(fx["params"])
    rnn.load_state_dict(fx["params"])
    check_engine(rnn, dtype, fx["x"], fx["h0"] if fx["has_h0"] else None,
                 fx["lengths"] if fx["has_lengths"] else None, fx["d_out"], fx["d_h_n"], fx)


# B, T, I, H, L, bidirectional, nonlinearity, packed, h0, dtype
RNN_LIVE = [
    (4, 6, 3, 5, 1, False, "tanh", False, False, "float64"),
    (5, 7, 4, 6, 2, True, "tanh", True, True, "float64"),
    (5, 7, 4, 6, 2, True, "relu", True, True, "float64"),
    (3, 5, 2, 3, 3, False, "relu", True, True, "float64"),
    (4, 6, 3, 5, 2, True, "relu", True, True, "float32"),
    (9, 11, 6, 17, 2, True, "tanh", True, False, "float32"),
]


@pytest.mark.parametrize("seed, cfg", list(enumerate(RNN_LIVE)),
                         ids=[f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
                              f"_{c[6]}{'_packed' if c[7] else ''}{'_h0' if c[8] else ''}_{c[9]}"
                              for c in RNN_LIVE])
def test_rnn_live_against_torch(seed, cfg):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    B, T, I, H, L, bidir, act, packed, with_h0, dtype_name = cfg
    D = 2 if bidir else 1
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(600 + seed)
    torch.manual_seed(600 + seed)
    tr = torch.nn.RNN(I, H, num_layers=L, nonlinearity=act, bidirectional=bidir,
                      batch_first=True).to(getattr(torch, dtype_name))
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(dtype)
    lengths = None
    if packed:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T
        lengths[rng.integers(B)] = 1
    d_out = rng.standard_normal((B, T, D * H)).astype(dtype)
    d_h_n = rng.standard_normal((L * D, B, H)).astype(dtype)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0 if with_h0 else np.zeros_like(h0), requires_grad=True)
    if packed:
        seq = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                   enforce_sorted=False)
        out_p, h_nt = tr(seq, h0t)
        out_t, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    else:
        out_t, h_nt = tr(xt, h0t)
    loss = (out_t * torch.tensor(d_out)).sum() + (h_nt * torch.tensor(d_h_n)).sum()
    loss.backward()
    expect = dict(out=out_t.detach().numpy(), h_n=h_nt.detach().numpy(),
                  dx=xt.grad.numpy(), dh0=h0t.grad.numpy(),
                  grads={n: p.grad.numpy() for n, p in tr.named_parameters()})

    rnn = numgru.RNN(I, H, L, nonlinearity=act, bidirectional=bidir, dtype=dtype_name,
                     random_state=seed)
    assert list(rnn.state_dict()) == [n for n, _ in tr.named_parameters()]
    assert {k: v.shape for k, v in rnn.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tr.state_dict().items()}
    rnn.load_state_dict(tr.state_dict())       # torch tensors are array-likes too
    check_engine(rnn, dtype, x, h0 if with_h0 else None, lengths, d_out, d_h_n, expect)

    # and the other way round: numgru's initialisation loads into torch
    tr2 = torch.nn.RNN(I, H, num_layers=L, nonlinearity=act, bidirectional=bidir,
                       batch_first=True).to(getattr(torch, dtype_name))
    tr2.load_state_dict({k: torch.tensor(v) for k, v in rnn.state_dict().items()})
