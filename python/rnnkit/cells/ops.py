"""Fast pointwise helpers for cells written in Python: the native core's own
vectorised sigmoid and tanh (the ones the fused LSTM/GRU kernels use), with
``out=``, and their derivatives from the saved output.

Not a general array library: 1-D or 2-D float32/float64 arrays whose last axis
is contiguous (column slices of a ``[N, G*H]`` gate block are fine). Anything
else falls back to NumPy, with the same meaning. ``out`` may be an input
exactly (the same memory, elementwise in place); a partial overlap raises
ValueError.
"""

from __future__ import annotations

import numpy as np

_core = None  # imported on first use: `import rnnkit` never loads the native core


def _load_core():
    global _core
    if _core is None:
        from rnnkit import _core as core

        _core = core
    return _core

__all__ = ["dsigmoid", "dtanh", "sigmoid", "tanh"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _native(*arrays) -> bool:
    _load_core()
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype not in _FLOATS or a.ndim not in (1, 2) or a.size == 0:
            return False
        if a.shape[-1] > 1 and a.strides[-1] != a.itemsize:
            return False
        if a.ndim == 2 and a.shape[0] > 1 and (a.strides[0] < a.shape[1] * a.itemsize or a.strides[0] % a.itemsize):
            return False
        if a.dtype != arrays[0].dtype or a.shape != arrays[0].shape:
            return False
    return True


def _out_for(x, out):
    if out is None:
        return np.empty(np.shape(x), dtype=x.dtype if isinstance(x, np.ndarray) else np.float64)
    return out


def sigmoid(x, out=None):
    """``1 / (1 + exp(-x))``, written to ``out`` (may be ``x``) and returned."""
    out = _out_for(x, out)
    if _native(x, out):
        _core.user_math("sigmoid", x, out)
    else:
        np.negative(x, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    return out


def tanh(x, out=None):
    """``tanh(x)``, written to ``out`` (may be ``x``) and returned."""
    out = _out_for(x, out)
    if _native(x, out):
        _core.user_math("tanh", x, out)
    else:
        np.tanh(x, out=out)
    return out


def dsigmoid(y, dy, out=None):
    """``dy * y * (1 - y)``: the gradient through ``y = sigmoid(a)`` from the saved ``y``."""
    out = _out_for(y, out)
    if _native(y, dy, out):
        _core.user_math_grad("sigmoid", y, dy, out)
    else:
        np.multiply(dy, y * (1 - y), out=out)
    return out


def dtanh(y, dy, out=None):
    """``dy * (1 - y*y)``: the gradient through ``y = tanh(a)`` from the saved ``y``."""
    out = _out_for(y, out)
    if _native(y, dy, out):
        _core.user_math_grad("tanh", y, dy, out)
    else:
        np.multiply(dy, 1 - y * y, out=out)
    return out

