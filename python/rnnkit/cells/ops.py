"""Fast pointwise helpers for cells written in Python: the native core's own
vectorised sigmoid and tanh (the ones the fused LSTM/GRU kernels use), with
``out=``, and their derivatives from the saved output.

Not a general array library: the native path takes 1-D or 2-D float32/float64
arrays whose last axis is contiguous (column slices of a ``[N, G*H]`` gate
block are fine); anything else (other shapes, dtypes, partial overlaps of
``out`` with an input) runs the same formula in NumPy. ``out`` may be an
input exactly (elementwise, in place). The native core is imported on first
use, so `import rnnkit` never loads it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dsigmoid", "dtanh", "sigmoid", "tanh"]

_math = _grad = None


def _load():
    global _math, _grad
    from rnnkit import _core

    _math, _grad = _core.user_math, _core.user_math_grad


def sigmoid(x, out=None):
    """``1 / (1 + exp(-x))``, written to ``out`` (may be ``x``) and returned."""
    if out is None:
        out = np.empty_like(x, dtype=None if isinstance(x, np.ndarray) else np.float64)
    if _math is None:
        _load()
    try:
        _math("sigmoid", x, out)  # checks everything; refuses what it cannot run
    except (TypeError, ValueError):
        np.divide(1, 1 + np.exp(-np.asarray(x)), out=out)
    return out


def tanh(x, out=None):
    """``tanh(x)``, written to ``out`` (may be ``x``) and returned."""
    if out is None:
        out = np.empty_like(x, dtype=None if isinstance(x, np.ndarray) else np.float64)
    if _math is None:
        _load()
    try:
        _math("tanh", x, out)
    except (TypeError, ValueError):
        np.tanh(x, out=out)
    return out


def dsigmoid(y, dy, out=None):
    """``dy * y * (1 - y)``: the gradient through ``y = sigmoid(a)`` from the saved ``y``."""
    if out is None:
        out = np.empty_like(y, dtype=None if isinstance(y, np.ndarray) else np.float64)
    if _grad is None:
        _load()
    try:
        _grad("sigmoid", y, dy, out)
    except (TypeError, ValueError):
        y = np.asarray(y)
        np.multiply(dy, y * (1 - y), out=out)
    return out


def dtanh(y, dy, out=None):
    """``dy * (1 - y*y)``: the gradient through ``y = tanh(a)`` from the saved ``y``."""
    if out is None:
        out = np.empty_like(y, dtype=None if isinstance(y, np.ndarray) else np.float64)
    if _grad is None:
        _load()
    try:
        _grad("tanh", y, dy, out)
    except (TypeError, ValueError):
        y = np.asarray(y)
        np.multiply(dy, 1 - y * y, out=out)
    return out
