"""Gate orders and weight layouts: rnnkit's (PyTorch's) against ONNX's.

Pure NumPy and shared by export and InferenceSession; it knows nothing of
graphs. rnnkit: LSTM i, f, g, o and GRU r, z, n; ONNX: LSTM i, o, f, c and
GRU z, r, h. Reordering whole blocks of rows is a permutation, so a round trip
is bitwise.
"""

from __future__ import annotations

import numpy as np

# ONNX block j holds rnnkit block ONNX_FROM_RNNKIT[cell][j].
ONNX_FROM_RNNKIT = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _blocks(a: np.ndarray, order, H: int) -> np.ndarray:
    return np.concatenate([a[g * H : (g + 1) * H] for g in order], axis=0)


def to_onnx_order(cell: str, a: np.ndarray, H: int) -> np.ndarray:
    """Rows of ``a`` ([G*H, ...]) from rnnkit's gate order to ONNX's."""
    return _blocks(a, ONNX_FROM_RNNKIT[cell], H)


def from_onnx_order(cell: str, a: np.ndarray, H: int) -> np.ndarray:
    """Rows of ``a`` ([G*H, ...]) from ONNX's gate order to rnnkit's."""
    order = ONNX_FROM_RNNKIT[cell]
    inverse = [order.index(g) for g in range(len(order))]
    return _blocks(a, inverse, H)
