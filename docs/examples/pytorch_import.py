"""Import a trained PyTorch GRU's weights and check numgru reproduces its outputs."""
import matplotlib.pyplot as plt
import numpy as np

import numgru

# Made by make_torch_gru.py with torch.nn.GRU(3, 16, num_layers=2, bidirectional=True,
# batch_first=True): its state_dict, an input batch with lengths, and torch's outputs.
with np.load("examples/torch_gru.npz", allow_pickle=False) as f:
    state_dict = {k[2:]: f[k] for k in f.files if k.startswith("p.")}
    x, lengths, out_torch, h_n_torch = f["x"], f["lengths"], f["out"], f["h_n"]
print(list(state_dict)[:4], "...")              # PyTorch's names: weight_ih_l0, ...

# The same architecture in numgru, then load_state_dict (torch tensors work as well).
gru = numgru.GRU(input_size=3, hidden_size=16, num_layers=2, bidirectional=True,
                 dtype="float32")
gru.load_state_dict(state_dict)
out, h_n = gru.forward(x, lengths=lengths)      # pack_padded_sequence semantics

err_out = np.abs(out - out_torch).max()
err_h = np.abs(h_n - h_n_torch).max()
print(f"max |numgru - torch|: out {err_out:.1e}, h_n {err_h:.1e}")
assert err_out < 1e-5 and err_h < 1e-5          # float32: agreement to rounding error

# The exported parameters are the torch ones, name for name.
assert all(np.array_equal(v, state_dict[k]) for k, v in gru.state_dict().items())

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
b = 1                                             # the sequence of length 31 (of 40)
for j, c in zip([0, 5, 16 + 3], ["C0", "C1", "C2"]):
    axes[0].plot(out_torch[b, :, j], color=c, lw=3, alpha=0.35)
    axes[0].plot(out[b, :, j], "--", color=c, lw=1.2,
                 label=f"unit {j} ({'forward' if j < 16 else 'reverse'})")
axes[0].axvline(lengths[b] - 0.5, color="0.5", lw=0.8)
axes[0].set_title(f"sequence {b} (length {lengths[b]}): torch (thick) vs numgru (dashed)")
axes[0].set_xlabel("time step")
axes[0].legend(fontsize=8)
axes[1].semilogy(np.maximum(np.abs(out - out_torch).reshape(-1), 1e-10), ".", ms=2)
axes[1].set_title(f"|numgru - torch| over all outputs (max {err_out:.1e}; 0 drawn at 1e-10)")
axes[1].set_xlabel("output element")
