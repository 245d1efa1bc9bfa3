"""rnnkit.reference: the NumPy twins of the native cells, the executable spec.

Same names, signatures and cache layout as rnnkit.functional (docs/cells.md).
Written to be read beside the C++, not to be fast.
"""

from .gru import gru_backward, gru_forward
from .indrnn import indrnn_backward, indrnn_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward
from .rtrl import gru_rtrl, indrnn_rtrl, lstm_rtrl, rnn_rtrl

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "indrnn_forward",
    "indrnn_backward",
    "rnn_rtrl",
    "lstm_rtrl",
    "gru_rtrl",
    "indrnn_rtrl",
]
