"""rnnkit: recurrent neural networks (RNN, LSTM, GRU, IndRNN) for NumPy, with
forward passes and backpropagation through time in SIMD C++ and OpenMP.

``rnnkit.reference`` is the pure-NumPy twin of every native function; the
layers (``rnnkit.LSTM`` and friends) run on either backend.
"""

from __future__ import annotations

from ._cache import Cache
from ._version import __version__
from .layers import GRU, LSTM, RNN, IndRNN
from . import reference

__all__ = [
    "__version__",
    "Cache",
    "RNN",
    "LSTM",
    "GRU",
    "IndRNN",
    "reference",
    "show_config",
    "cpu_features",
]


def cpu_features() -> dict[str, bool]:
    """The instruction-set features this CPU has and the OS enables (cpuid + XCR0)."""
    from . import _core

    return dict(_core.cpu_features())


def show_config(file=None) -> None:
    """Print rnnkit's version, compiler, CPU features and thread count."""
    from ._config import show_config as _show

    _show(file=file)

# Training on top of the layers (NumPy only; scikit-learn and tqdm stay optional
# and are imported only by the code that uses them).
from . import nn, data, text, sklearn  # noqa: E402

__all__ += ["nn", "data", "text", "sklearn"]
