"""Pieces the four reference cells share: activations, their derivatives taken
from the saved output, the processing order of steps and the state before each
step, and the segment runner and training cache of the memory modes. Nothing
here knows about a particular cell.
"""

from __future__ import annotations

import numpy as np

from .._cache import Cache
from .._memory import cache_arrays

__all__ = [
    "sigmoid",
    "dsigmoid",
    "dtanh",
    "relu",
    "drelu",
    "steps",
    "shift_prev",
    "flat",
    "zero_padding",
    "segment_run",
    "training_cache",
]


def sigmoid(a):
    # exp(-a) overflows to inf for very negative a, and 1/(1+inf) = 0 is the limit.
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-a))


def dsigmoid(y):
    """Derivative of sigmoid, from its output y."""
    return y * (1 - y)


def dtanh(y):
    """Derivative of tanh, from its output y."""
    return 1 - y * y


def relu(a):
    return np.maximum(a, 0)


def drelu(y):
    """Derivative of relu, from its output y (0 at the kink, as PyTorch)."""
    return (y > 0).astype(y.dtype)


def _nonlinearity(name):
    """The activation of RNN and IndRNN and its derivative from the output."""
    return {"tanh": (np.tanh, dtanh), "relu": (relu, drelu)}[name]


def steps(T, reverse):
    """Time steps in processing order."""
    return range(T - 1, -1, -1) if reverse else range(T)


def shift_prev(h, h0, reverse):
    """The state before each step t, from the states after each step: h[t-1]
    (h0 at t = 0) forward, h[t+1] (h0 at t = T-1) reverse. T,N,H"""
    if reverse:
        return np.concatenate([h[1:], h0[None]])
    return np.concatenate([h0[None], h[:-1]])


def flat(a):
    """[T, N, K] as [T*N, K], for the whole-sequence GEMMs."""
    return a.reshape(-1, a.shape[-1])


def zero_padding(x, lengths):
    """x with the rows at or past each sequence's length set to 0 (a copy only
    when there is padding). The weight gradients multiply x by dgates, which is
    0 there, but 0 * NaN is NaN: whatever the caller left in the padding must
    not reach them. T,N,K"""
    T = x.shape[0]
    if (lengths >= T).all():
        return x
    return np.where((np.arange(T)[:, None] < lengths)[:, :, None], x, 0)


def segment_run(loop, x, weights, reverse, *extra):
    """The ``run(t0, t1, lengths_seg, states, keep)`` that _memory.run_forward
    and run_backward replay segments with: the cell's time loop ``loop`` over
    x[t0:t1] from ``states``, called as loop(x_seg, *states, *weights,
    lengths_seg, reverse, *extra, keep) and returning (y, *states, kept);
    gives back (y_seg, states after it, kept)."""

    def run(t0, t1, len_seg, states, keep):
        y_s, *states_s, kept_s = loop(x[t0:t1], *states, *weights, len_seg, reverse, *extra, keep)
        return y_s, tuple(states_s), kept_s

    return run


def training_cache(cell, plan, kept, **inputs):
    """The reference Cache of a training forward under ``plan``: the inputs
    backward needs (x, the initial states, weights, lengths, reverse...), the
    memory mode and segment, and the arrays run_forward kept."""
    return Cache(cell, "reference", cache_arrays(cell, plan.mode), **inputs, memory=plan.mode,
                 segment=plan.segment, **kept)
