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


# numgru's task runtime for the whole run: ``pytest --numgru-threading=numba`` (or ``native``)
# runs every suite with that runtime (default: NUMGRU_THREADING, else the platform's default).
# tests/test_runtimes.py compares the two runtimes' results within one run whatever this is.
def pytest_addoption(parser):
    parser.addoption("--numgru-threading", default=None, choices=("numba", "native"),
                     help="numgru task runtime for the whole test run (numgru.set_threading)")


def pytest_configure(config):
    runtime = config.getoption("--numgru-threading", default=None)
    if runtime:
        os.environ["NUMGRU_THREADING"] = runtime      # subprocesses started by tests too


def pytest_report_header(config):
    try:
        import numgru

        info = numgru.get_threading()
        return (f"numgru task runtime: {info['runtime']} ({info['reason']}); numba threading "
                f"layer {info['layer']}, {info['threads']} threads")
    except Exception as exc:  # noqa: BLE001 -- the header must never fail the run
        return f"numgru task runtime: unknown ({type(exc).__name__}: {exc})"
