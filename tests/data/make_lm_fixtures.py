"""Make the PyTorch language-model fixtures tests/data/lm_torch_*.npz (run by hand; torch is
never a runtime dependency): ``python tests/data/make_lm_fixtures.py`` with torch 2.13.0 (CPU).

The model is PyTorch's examples/word_language_model ``RNNModel`` with ``rnn_type="GRU"``
(copied below, minus the LSTM/RNN branches): encoder -> dropout -> nn.GRU -> dropout -> decoder,
trained with ``CrossEntropyLoss`` (mean over the B*T positions of a window, fed as (T, B)).
Each fixture keeps, in float64:

- ``sd.<name>``: the state_dict (``encoder.weight``, ``rnn.*_l{k}``, ``decoder.weight``,
  ``decoder.bias``);
- one training window: ``ids``, ``targets`` (T, B), ``hidden0`` (L, B, H); ``loss``,
  ``hidden_n`` and ``grad.<name>`` for every parameter after ``loss.backward()``;
- two documents ``doc0``, ``doc1`` and ``score``: the mean log-likelihood per predicted token
  over both, each document run from a zero state (what ``GRULanguageModel.score`` computes).
"""

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    """word_language_model's RNNModel, GRU only."""

    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.GRU(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden


def make(name, ntoken, ninp, nhid, nlayers, tie, seed, T=7, B=3):
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    model = RNNModel(ntoken, ninp, nhid, nlayers, tie_weights=tie)
    with torch.no_grad():            # RNNModel starts the decoder bias at 0: make it non-trivial
        model.decoder.bias.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(ntoken, (T, B), generator=g)
    targets = torch.randint(ntoken, (T, B), generator=g)
    hidden0 = torch.randn(nlayers, B, nhid, generator=g) * 0.5
    out, hidden_n = model(ids, hidden0)
    loss = nn.CrossEntropyLoss()(out, targets.view(-1))     # NLL of log_softmax = CE
    model.zero_grad()
    loss.backward()
    docs = [torch.randint(ntoken, (9,), generator=g), torch.randint(ntoken, (4,), generator=g)]
    total, count = 0.0, 0
    with torch.no_grad():
        for d in docs:
            h = torch.zeros(nlayers, 1, nhid)
            logp, _ = model(d[:-1, None], h)
            total += float(logp[torch.arange(len(d) - 1), d[1:]].sum())
            count += len(d) - 1
    arrays = {"ids": ids.numpy(), "targets": targets.numpy(), "hidden0": hidden0.numpy(),
              "loss": np.array(loss.item()), "hidden_n": hidden_n.detach().numpy(),
              "doc0": docs[0].numpy(), "doc1": docs[1].numpy(), "score": np.array(total / count),
              "config": np.array([ntoken, ninp, nhid, nlayers, int(tie)])}
    for k, v in model.state_dict().items():
        arrays["sd." + k] = v.numpy()
    params = dict(model.named_parameters(remove_duplicate=False))
    for k, p in params.items():
        arrays["grad." + k] = p.grad.numpy()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"lm_torch_{name}.npz")
    np.savez(path, **arrays)
    print("wrote", path, "loss", loss.item(), "score", total / count)


if __name__ == "__main__":
    make("untied_l2", ntoken=13, ninp=6, nhid=5, nlayers=2, tie=False, seed=0)
    make("tied_l1", ntoken=11, ninp=6, nhid=6, nlayers=1, tie=True, seed=1)
