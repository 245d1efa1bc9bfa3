"""rnnkit.cells: recurrent cells as ``rnnkit.Cell`` objects, for
``rnnkit.Recurrent(cell, ...)``.

The four built-ins (``LSTMCell``, ``GRUCell``, ``RNNCell``, ``IndRNNCell``:
the fused native kernels of rnnkit.LSTM & co. are their fast path) and new
cells stepped in Python with native GEMMs: ``PeepholeLSTMCell`` (ONNX),
``LayerNormLSTMCell`` (haste), ``GRUResetBeforeCell`` (Keras
``reset_after=False``, ONNX ``linear_before_reset=0``) and ``MGUCell``.
``ops`` has the fast pointwise helpers; ``check_cell`` checks a cell's
backward against finite differences. The protocol: docs/cells.md.
"""

from rnnkit.cells import ops
from rnnkit.cells._check import CellGradientError, check_cell
from rnnkit.cells._library import (
    GRUCell,
    GRUResetBeforeCell,
    IndRNNCell,
    LayerNormLSTMCell,
    LSTMCell,
    MGUCell,
    PeepholeLSTMCell,
    RNNCell,
)
from rnnkit.cells._protocol import Cell, CellError

__all__ = [
    "Cell",
    "CellError",
    "CellGradientError",
    "GRUCell",
    "GRUResetBeforeCell",
    "IndRNNCell",
    "LSTMCell",
    "LayerNormLSTMCell",
    "MGUCell",
    "PeepholeLSTMCell",
    "RNNCell",
    "check_cell",
    "ops",
]
