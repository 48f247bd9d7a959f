"""Dump small PyTorch GRU and RNN fixtures (forward and backward) as .npz files next to this script.

Regenerate with (needs torch, CPU build is enough; generated with torch 2.13.0):

    python3 tests/data/make_torch_fixtures.py            # all
    python3 tests/data/make_torch_fixtures.py rnn        # only the torch.nn.RNN ones (or: gru)
    python3 tests/data/make_torch_fixtures.py l3_uni_len_f64 rnn_tanh_l3_bi_h0_f64   # by file name

GRU cases are written as ``torch_<name>.npz``, ``torch.nn.RNN`` cases as ``torch_rnn_<name>.npz``
(those also hold ``cell``: "rnn_tanh" or "rnn_relu").

Every file holds:
  config : num_layers, hidden_size, input_size, bidirectional, has_h0, has_lengths, dtype name
  x (B,T,I), h0 (L*D,B,H) (zeros when has_h0 is False), lengths (B,) (all T when unused),
  p.<name> : every parameter, named as in torch's state_dict (== numgru's state_dict),
  out (B,T,D*H), h_n (L*D,B,H),
  d_out, d_h_n : random upstream gradients, loss = sum(out * d_out) + sum(h_n * d_h_n),
  dx, dh0, g.<name> : the resulting gradients.
Variable lengths go through pack_padded_sequence(enforce_sorted=False) and
pad_packed_sequence(total_length=T), so gradients arriving at padded positions of d_out are ignored.
torch only has the reset_after=True convention.
"""

import os
import sys

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))

# name, dtype, B, T, I, H, L, bidirectional, with_h0, lengths (None = full), seed
CASES = [
    ("l1_uni_f64", torch.float64, 3, 5, 4, 5, 1, False, False, None, 1),
    ("l1_uni_f32", torch.float32, 3, 5, 4, 5, 1, False, True, None, 2),
    ("l2_bi_h0_f64", torch.float64, 2, 4, 3, 3, 2, True, True, None, 3),
    ("l2_bi_h0_f32", torch.float32, 2, 4, 3, 4, 2, True, True, None, 4),
    ("l2_uni_len_f64", torch.float64, 4, 6, 5, 4, 2, False, True, [6, 2, 4, 1], 5),
    ("l2_bi_len_f64", torch.float64, 4, 7, 3, 3, 2, True, True, [3, 7, 1, 5], 6),
    ("l2_bi_len_f32", torch.float32, 3, 5, 4, 3, 2, True, False, [2, 5, 4], 7),
    # three layers, and H > 16: the live torch tests cover these shapes only where torch is
    # installed, these committed twins cover them everywhere
    ("l3_uni_len_f64", torch.float64, 3, 5, 2, 3, 3, False, True, [5, 2, 4], 8),
    ("l3_bi_h0_f64", torch.float64, 2, 4, 3, 3, 3, True, True, None, 9),
    ("l1_bi_h17_len_f64", torch.float64, 3, 4, 3, 17, 1, True, False, [4, 1, 3], 10),
]

# torch.nn.RNN: name, nonlinearity, dtype, B, T, I, H, L, bidirectional, with_h0, lengths, seed
RNN_CASES = [
    ("tanh_l2_bi_len_f64", "tanh", torch.float64, 4, 6, 3, 4, 2, True, True, [3, 6, 1, 5], 11),
    ("relu_l2_bi_len_f64", "relu", torch.float64, 4, 6, 3, 4, 2, True, True, [6, 2, 4, 1], 12),
    ("tanh_l2_bi_len_f32", "tanh", torch.float32, 3, 5, 4, 3, 2, True, False, [2, 5, 4], 13),
    ("relu_l1_uni_h0_f32", "relu", torch.float32, 3, 5, 4, 5, 1, False, True, None, 14),
    ("relu_l3_uni_len_f64", "relu", torch.float64, 3, 5, 2, 3, 3, False, True, [5, 2, 4], 15),
    ("tanh_l3_bi_h0_f64", "tanh", torch.float64, 2, 4, 3, 3, 3, True, True, None, 16),
    ("tanh_l2_bi_h17_len_f64", "tanh", torch.float64, 3, 4, 3, 17, 2, True, True,
     [4, 1, 3], 17),
]


def run_case(name, dtype, B, T, I, H, L, bidir, with_h0, lengths, seed, nonlinearity=None):
    """One fixture: a torch.nn.GRU, or a torch.nn.RNN when ``nonlinearity`` is given."""
    torch.manual_seed(seed)
    D = 2 if bidir else 1
    if nonlinearity is None:
        gru = torch.nn.GRU(I, H, num_layers=L, bidirectional=bidir, batch_first=True).to(dtype)
    else:
        gru = torch.nn.RNN(I, H, num_layers=L, nonlinearity=nonlinearity, bidirectional=bidir,
                           batch_first=True).to(dtype)
    # make the parameters a little more interesting than the default init
    with torch.no_grad():
        for p in gru.parameters():
            p.uniform_(-0.7, 0.7)
    x = torch.randn(B, T, I, dtype=dtype)
    h0 = (0.5 * torch.randn(L * D, B, H, dtype=dtype)) if with_h0 else torch.zeros(L * D, B, H,
                                                                                 dtype=dtype)
    x.requires_grad_(True)
    h0.requires_grad_(True)
    if lengths is None:
        out, h_n = gru(x, h0)
        lens = np.full(B, T, dtype=np.int64)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                      enforce_sorted=False)
        out_p, h_n = gru(packed, h0)
        out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
        lens = np.asarray(lengths, dtype=np.int64)
    d_out = torch.randn(B, T, D * H, dtype=dtype)
    d_h_n = torch.randn(L * D, B, H, dtype=dtype)
    loss = (out * d_out).sum() + (h_n * d_h_n).sum()
    loss.backward()

    arrays = dict(
        num_layers=np.int64(L), hidden_size=np.int64(H), input_size=np.int64(I),
        bidirectional=np.bool_(bidir), has_h0=np.bool_(with_h0),
        has_lengths=np.bool_(lengths is not None), dtype=np.str_(str(dtype).split(".")[-1]),
        x=x.detach().numpy(), h0=h0.detach().numpy(), lengths=lens,
        out=out.detach().numpy(), h_n=h_n.detach().numpy(),
        d_out=d_out.numpy(), d_h_n=d_h_n.numpy(),
        dx=x.grad.numpy(), dh0=h0.grad.numpy(),
    )
    for pname, p in gru.named_parameters():
        arrays["p." + pname] = p.detach().numpy()
        arrays["g." + pname] = p.grad.numpy()
    if nonlinearity is not None:
        arrays["cell"] = np.str_(f"rnn_{nonlinearity}")
        name = f"rnn_{name}"
    path = os.path.join(HERE, f"torch_{name}.npz")
    np.savez_compressed(path, **arrays)
    return path


def main(*which):
    """Write the chosen fixtures: "all" (the default), "gru", "rnn", or file names without the
    ``torch_`` prefix (writing only new cases leaves the committed files' bytes alone)."""
    torch.set_num_threads(1)
    which = which or ("all",)
    gru = [(case, {}) for case in CASES]
    rnn = [((name, *rest), {"nonlinearity": act}) for name, act, *rest in RNN_CASES]
    by_name = {case[0]: (case, kw) for case, kw in gru}
    by_name.update({f"rnn_{case[0]}": (case, kw) for case, kw in rnn})
    cases = []
    for w in which:
        if w in ("all", "gru"):
            cases += gru
        if w in ("all", "rnn"):
            cases += rnn
        if w in by_name:
            cases.append(by_name[w])
        elif w not in ("all", "gru", "rnn"):
            raise SystemExit(f"usage: make_torch_fixtures.py [all|gru|rnn|NAME ...], got {w!r}")
    for case, kw in cases:
        path = run_case(*case, **kw)
        print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
