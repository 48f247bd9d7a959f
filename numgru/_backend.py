"""Which backend runs a model: :func:`get_backend` maps a ``device`` argument to a backend object.

The contract every backend honours (memory, elementwise operations, products, the layer
kernels, with their array layouts) is in :mod:`numgru._contract`; ``numgru._cpu.backend`` runs
Numba CPU kernels on NumPy arrays, ``numgru._cuda.backend()`` their ``@cuda.jit`` twins on
device arrays. This module sits above both: neither imports it.
"""

from . import _cpu, _cuda
from ._contract import Backend

_DEVICES = ("cpu", "cuda", "auto")


def get_backend(device):
    """The backend object for a ``device`` argument: "cpu", "cuda" or "auto" (or a backend
    object, returned as it is).

    "auto" takes a real GPU when there is one (never the simulator), else the CPU. "cuda" raises
    ``RuntimeError`` naming the reason when CUDA cannot be used here.
    """
    if isinstance(device, Backend):
        return device
    if device not in _DEVICES:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "auto":
        device = "cuda" if _cuda.gpu_present() else "cpu"
    if device == "cuda":
        return _cuda.usable_backend()
    return _cpu.backend
