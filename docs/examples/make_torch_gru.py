"""Make ``torch_gru.npz``, the PyTorch fixture of the "Importing a PyTorch GRU" example.

The docs build has no torch: it reads what this script saved. Regenerate (needs torch; the
committed file was made with torch 2.13.0, CPU build) with::

    python docs/examples/make_torch_gru.py

The file holds ``p.<name>`` for every entry of the torch GRU's ``state_dict()``, the input
``x`` (B, T, I) and its ``lengths`` (B,), and torch's outputs ``out`` (B, T, 2H) and ``h_n``
(2L, B, H), computed on packed sequences (``pack_padded_sequence``) in float32.
"""

import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    B, T, I, H, L = 4, 40, 3, 16, 2
    gru = torch.nn.GRU(I, H, num_layers=L, bidirectional=True, batch_first=True)
    t = torch.arange(T, dtype=torch.float32)
    x = torch.stack([torch.stack([torch.sin(t / (3 + b)), torch.cos(t / (5 + b)),
                                  0.3 * torch.randn(T)], dim=1) for b in range(B)])
    lengths = torch.tensor([40, 31, 22, 13])
    with torch.no_grad():
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    arrays = {f"p.{k}": v.numpy() for k, v in gru.state_dict().items()}
    arrays.update(x=x.numpy(), lengths=lengths.numpy(), out=out.numpy(), h_n=h_n.numpy(),
                  torch_version=np.array(torch.__version__))
    path = os.path.join(HERE, "torch_gru.npz")
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
