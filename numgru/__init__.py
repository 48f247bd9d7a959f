"""numgru: multi-layer GRU (and vanilla RNN) networks with Numba kernels and scikit-learn
estimators."""

from ._cache_guard import check as _check_kernel_cache
from ._config import select_threading_layer as _select_threading_layer

_check_kernel_cache()       # cached kernels compiled from other sources than these go
_select_threading_layer()

from .estimators import GRUClassifier, GRURegressor  # noqa: E402
from .gru import GRU  # noqa: E402
from .io import load  # noqa: E402
from .lm import GRULanguageModel  # noqa: E402
from .rnn import RNN  # noqa: E402
from ._threading import get_threading, set_threading  # noqa: E402

__version__ = "0.1.0"
__all__ = ["GRU", "GRUClassifier", "GRULanguageModel", "GRURegressor", "RNN", "load",
           "__version__"]
__all__ += ["get_threading", "set_threading"]
