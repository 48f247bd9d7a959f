"""numgru.GRU and numgru.RNN against PyTorch: the committed fixtures (tests/data/torch_*.npz,
three layers and H > 16 among them) always, and a live randomized comparison with torch.nn.GRU /
torch.nn.RNN (incl. packed sequences) when torch is importable; both parametrised by cell."""

import numpy as np
import pytest

from cells import make_net
from helpers import fixture_ids, fixture_paths, load_fixture


def assert_parity(actual, expected, dtype, what):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected))))
    if np.dtype(dtype) == np.float64:
        kw = dict(rtol=1e-10, atol=1e-12 * scale)
    else:
        kw = dict(rtol=2e-5, atol=2e-6 * scale)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, err_msg=what, **kw)


def check_engine(net, dtype, x, h0, lengths, d_out, d_h_n, expect):
    out, h_n = net.forward(x, h0=h0, lengths=lengths, training=True)
    dx, dh0, grads = net.backward(d_out, d_h_n)
    for name, got in (("out", out), ("h_n", h_n), ("dx", dx), ("dh0", dh0)):
        assert got.dtype == dtype, (name, got.dtype)
        assert_parity(got, expect[name], dtype, name)
    assert list(grads) == list(expect["grads"])
    for name, g in grads.items():
        assert g.dtype == dtype
        assert_parity(g, expect["grads"][name], dtype, "grad " + name)


# ----------------------------------------------------------------------------------------------
# committed fixtures (torch.nn.GRU and torch.nn.RNN)
# ----------------------------------------------------------------------------------------------
FIXTURES = fixture_paths("gru") + fixture_paths("rnn")
FIXTURE_IDS = fixture_ids("gru") + ["rnn_" + i for i in fixture_ids("rnn")]


@pytest.mark.parametrize("path", FIXTURES, ids=FIXTURE_IDS)
def test_engine_matches_torch_fixture(path):
    fx = load_fixture(path)
    dtype = np.dtype(fx["dtype"])
    net = make_net(fx["cell"], True, fx["input_size"], fx["hidden_size"], fx["num_layers"],
                   bidirectional=fx["bidirectional"], dtype=dtype.name, random_state=0)
    assert list(net.state_dict()) == list(fx["params"])
    net.load_state_dict(fx["params"])
    check_engine(net, dtype, fx["x"], fx["h0"] if fx["has_h0"] else None,
                 fx["lengths"] if fx["has_lengths"] else None, fx["d_out"], fx["d_h_n"], fx)


# ----------------------------------------------------------------------------------------------
# live comparison with torch (torch has the GRU's reset_after=True form only)
# ----------------------------------------------------------------------------------------------
TORCH_CELLS = ["gru", "rnn_tanh", "rnn_relu"]
# B, T, I, H, L, bidirectional, packed, h0, dtype
LIVE_SHAPES = [
    (4, 6, 3, 5, 1, False, False, False, "float64"),
    (5, 7, 4, 6, 2, True, True, True, "float64"),
    (3, 5, 2, 3, 3, False, True, True, "float64"),
    (6, 4, 5, 4, 2, True, False, True, "float64"),
    (4, 6, 3, 5, 2, True, True, True, "float32"),
    (9, 11, 6, 17, 2, True, True, False, "float64"),
    (9, 11, 6, 17, 2, True, True, False, "float32"),
]
LIVE = [(c, s) for c in range(len(TORCH_CELLS)) for s in range(len(LIVE_SHAPES))]


def _live_id(c, s):
    B, T, I, H, L, bidir, packed, with_h0, dtype_name = LIVE_SHAPES[s]
    return (f"{TORCH_CELLS[c]}-B{B}T{T}I{I}H{H}L{L}{'bi' if bidir else 'uni'}"
            f"{'_packed' if packed else ''}{'_h0' if with_h0 else ''}_{dtype_name}")


@pytest.mark.parametrize("c, s", LIVE, ids=[_live_id(c, s) for c, s in LIVE])
def test_live_against_torch(c, s):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    cell = TORCH_CELLS[c]
    B, T, I, H, L, bidir, packed, with_h0, dtype_name = LIVE_SHAPES[s]
    D = 2 if bidir else 1
    dtype = np.dtype(dtype_name)
    tdtype = getattr(torch, dtype_name)
    seed = 300 + 10 * s + c
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def torch_net():
        if cell == "gru":
            return torch.nn.GRU(I, H, num_layers=L, bidirectional=bidir,
                                batch_first=True).to(tdtype)
        return torch.nn.RNN(I, H, num_layers=L, nonlinearity=cell[len("rnn_"):],
                            bidirectional=bidir, batch_first=True).to(tdtype)

    tnet = torch_net()
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
        out_p, h_nt = tnet(seq, h0t)
        out_t, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    else:
        out_t, h_nt = tnet(xt, h0t)
    loss = (out_t * torch.tensor(d_out)).sum() + (h_nt * torch.tensor(d_h_n)).sum()
    loss.backward()
    expect = dict(out=out_t.detach().numpy(), h_n=h_nt.detach().numpy(),
                  dx=xt.grad.numpy(), dh0=h0t.grad.numpy(),
                  grads={n: p.grad.numpy() for n, p in tnet.named_parameters()})

    net = make_net(cell, True, I, H, L, bidirectional=bidir, dtype=dtype_name, random_state=s)
    assert list(net.state_dict()) == [n for n, _ in tnet.named_parameters()]
    assert {k: v.shape for k, v in net.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tnet.state_dict().items()}
    net.load_state_dict(tnet.state_dict())       # torch tensors are array-likes too
    check_engine(net, dtype, x, h0 if with_h0 else None, lengths, d_out, d_h_n, expect)

    # and the other way round: numgru's initialisation loads into torch
    torch_net().load_state_dict({k: torch.tensor(v) for k, v in net.state_dict().items()})
