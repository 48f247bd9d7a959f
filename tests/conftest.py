"""Make the helper modules of tests/ (reference.py, helpers.py) importable whatever pytest's
import mode, and run the CUDA tests under Numba's CUDA simulator when this machine has no NVIDIA
driver (the simulator must be chosen before numba.cuda is first imported, hence here)."""

import glob
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _nvidia_driver_present():
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _nvidia_driver_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
