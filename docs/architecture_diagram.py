"""The rooms of numgru and who calls whom (drawn for docs/architecture.rst)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

fig, ax = plt.subplots(figsize=(10.0, 6.4))
ax.set_xlim(0, 100)
ax.set_ylim(0, 66)
ax.axis("off")

TIERS = {  # y of each tier, label and colour
    "api": (56, "public API", "#dbe9f6"),
    "engine": (40, "engine (device-free)", "#e5f2dc"),
    "backend": (24, "backends (one contract)", "#fbeed5"),
    "kernels": (8, "kernels", "#f6dede"),
}
BOXES = {  # name: (tier, x, width, title, file)
    "est": ("api", 2, 30, "GRURegressor / GRUClassifier", "estimators.py"),
    "io": ("api", 36, 14, "save / load", "io.py"),
    "gru": ("api", 54, 20, "numgru.GRU / RNN", "gru.py, rnn.py, _facade"),
    "misc": ("api", 78, 20, "cli, plotting, datasets", "cli.py ..."),
    "train": ("engine", 2, 21, "data, losses, optimizers", "_data, _losses, _optim"),
    "stack": ("engine", 26, 20, "Stack", "_stack.py"),
    "cells": ("engine", 49, 21, "GRU/RNN layers, Dropout", "_cells.py (registry)"),
    "layout": ("engine", 73, 25, "names, import; validators", "_layout.py, _validation.py"),
    "contract": ("backend", 26, 20, "Backend contract", "_contract.py"),
    "cpub": ("backend", 49, 21, "CPUBackend", "_cpu.py"),
    "cudab": ("backend", 73, 25, "CUDABackend", "_cuda.py"),
    "cpuk": ("kernels", 40, 30, "@njit task kernels", "_cpu, _cpu_lm, _cpu_norm, _gemm"),
    "cudak": ("kernels", 73, 25, "@cuda.jit twins", "_cuda, _cuda_lm, _cuda_norm"),
    "config": ("kernels", 2, 30, "knobs: fastmath, cache, launch", "_config.py"),
}
H = 10
centre = {}
for tier, (y, label, colour) in TIERS.items():
    ax.text(-1, y + H / 2, label, rotation=90, va="center", ha="right", fontsize=8,
            color="#555555")
for name, (tier, x, w, title, path) in BOXES.items():
    y, _, colour = TIERS[tier]
    ax.add_patch(FancyBboxPatch((x, y), w, H, boxstyle="round,pad=0.3,rounding_size=1.2",
                                facecolor=colour, edgecolor="#444444", linewidth=0.8))
    ax.text(x + w / 2, y + H * 0.62, title, ha="center", va="center", fontsize=8.5,
            weight="bold")
    ax.text(x + w / 2, y + H * 0.28, path, ha="center", va="center", fontsize=7.5,
            family="monospace", color="#333333")
    centre[name] = (x + w / 2, y, y + H)


def arrow(a, b, label=None, dx_a=0.0, dx_b=0.0, both=False):
    """From box a down to box b, or sideways when they share a tier."""
    style = "<|-|>" if both else "-|>"
    props = dict(arrowstyle=style, color="#333333", lw=0.9, shrinkA=0, shrinkB=0)
    ta, xa0, wa = BOXES[a][0], BOXES[a][1], BOXES[a][2]
    tb, xb0, wb = BOXES[b][0], BOXES[b][1], BOXES[b][2]
    if ta == tb:
        y = TIERS[ta][0] + H / 2
        start, end = (xa0 + wa + 0.4, y), (xb0 - 0.4, y)
        ax.annotate("", xy=end, xytext=start, arrowprops=props)
        if label:
            ax.text((start[0] + end[0]) / 2, y + 1.0, label, fontsize=7, ha="center",
                    color="#333333")
        return
    xa, ya0, _ = centre[a]
    xb, _, yb1 = centre[b]
    ax.annotate("", xy=(xb + dx_b, yb1 + 0.4), xytext=(xa + dx_a, ya0 - 0.4), arrowprops=props)
    if label:
        ax.text((xa + dx_a + xb + dx_b) / 2 + 0.8, (ya0 + yb1) / 2, label, fontsize=7,
                color="#333333")


arrow("est", "io", both=True)
arrow("est", "stack", "one stack, all layers", dx_a=6, dx_b=-4)
arrow("est", "train", dx_a=-6)
arrow("gru", "stack", dx_a=-4, dx_b=4)
arrow("gru", "layout", "PyTorch / Keras", dx_a=4, dx_b=-6)
arrow("stack", "cells")
arrow("cells", "contract", "backend methods", dx_a=-4, dx_b=4)
arrow("contract", "cpub")
_y = TIERS["backend"][0] - 0.4
ax.annotate("", xy=(centre["cudab"][0] - 6, _y), xytext=(centre["contract"][0], _y),
            arrowprops=dict(arrowstyle="-|>", color="#333333", lw=0.9,
                            connectionstyle="arc3,rad=0.18"))
arrow("cpub", "cpuk")
arrow("cudab", "cudak")
arrow("config", "cpuk", "read")
ax.set_title("numgru: who may call whom (arrows point to the callee)", fontsize=10)
fig.tight_layout()
