"""Elman RNN over one direction of one layer, in NumPy: the executable spec of
the native RNN cell (docs/cells.md), in every memory mode (docs/training.md). Readable like the math, not fast.

h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_backward, check_forward
from .._memory import cache_plan, check_memory, run_backward, run_forward
from ._common import _nonlinearity, segment_run, shift_prev, steps, training_cache

__all__ = ["rnn_forward", "rnn_backward"]


def _steps(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, act, keep):
    """The time loop of rnn_forward over x: y, h_n and the arrays kept
    ("full" or "states": h; None: nothing). The input side runs a step at a
    time in every mode, so that a replayed segment computes exactly the sums
    of the whole sequence."""
    T, N, _ = x.shape
    H = w_hh.shape[1]
    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    kept = {} if keep is None else {"h": np.empty((T, N, H), x.dtype)}  # T,N,H

    h = h0  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        xW_t = x[t] @ w_ih.T + b_ih  # N,H
        h = np.where(active, act(xW_t + h @ w_hh.T + b_hh), h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)
        if keep is not None:
            kept["h"][t] = h
    return y, h, kept


def _bptt(dy, dh, x, h0, w_ih, w_hh, lengths, reverse, dact, kept, grads, dx):
    """BPTT through the steps of one cache (``kept``) of x: writes dx and adds
    into grads (w_ih, w_hh, b) a step at a time, in processing order from the
    last step, the order every memory mode shares. Returns dh0."""
    T = x.shape[0]
    h_all = kept["h"]  # T,N,H
    h_prev = shift_prev(h_all, h0, reverse)  # T,N,H
    for t in reversed(steps(T, reverse)):
        active = (t < lengths)[:, None]  # N,1
        dh = dh + np.where(active, dy[t], 0)  # N,H: dy at inactive steps is ignored
        dgates = np.where(active, dh * dact(h_all[t]), 0)  # N,H: d(pre-activation), 0 at inactive
        dx[t] = dgates @ w_ih  # N,C
        # x past a sequence's length is zeroed: 0 * NaN would be NaN.
        grads["w_ih"] += dgates.T @ np.where(active, x[t], 0)  # H,C
        grads["w_hh"] += dgates.T @ h_prev[t]  # H,H
        grads["b"] += dgates.sum(axis=0)  # H
        dh = np.where(active, dgates @ w_hh, dh)  # N,H: inactive passes dh through
    return dh


def rnn_forward(
    x,
    h0,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    *,
    lengths=None,
    reverse=False,
    nonlinearity="tanh",
    training=True,
    memory="full",
    segment=None,
    max_bytes=None,
):
    """y [T,N,H], h_n [N,H], cache (None when training=False). ``memory``:
    what the cache stores for backward ("full", "recompute", "checkpoint";
    ``segment`` or ``max_bytes`` set the segment length)."""
    x, h0, _, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, training = check_forward(
        "rnn",
        x,
        h0,
        None,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        lengths,
        reverse,
        nonlinearity,
        training=training,
    )
    act, _ = _nonlinearity(nonlinearity)
    T, N, _ = x.shape
    H = w_hh.shape[1]
    plan = check_memory(memory, segment, max_bytes, "rnn", T, N, H, x.dtype.itemsize)
    if not training:
        y, h, _ = _steps(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, act, None)
        return y, h, None

    run = segment_run(_steps, x, (w_ih, w_hh, b_ih, b_hh), reverse, act)
    y, (h,), kept = run_forward(plan, "rnn", T, N, H, x.dtype, reverse, lengths, (h0,), run)
    cache = training_cache("rnn", plan, kept, x=x, h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                           lengths=lengths, reverse=reverse, nonlinearity=nonlinearity)
    return y, h, cache


def rnn_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through rnn_forward's cache
    (replaying segments first in the "recompute" and "checkpoint" modes)."""
    dy, dh_n, _ = check_backward("rnn", cache, dy, dh_n, None)
    x, lengths, w_ih, w_hh, b_ih, b_hh = cache.x, cache.lengths, cache.w_ih, cache.w_hh, cache.b_ih, cache.b_hh
    act, dact = _nonlinearity(cache.nonlinearity)
    T = x.shape[0]
    reverse = bool(cache.reverse)
    grads = {"w_ih": np.zeros_like(w_ih), "w_hh": np.zeros_like(w_hh), "b": np.zeros_like(b_ih)}
    dx = np.empty_like(x)  # T,N,C

    run = segment_run(_steps, x, (w_ih, w_hh, b_ih, b_hh), reverse, act)

    def back(t0, t1, len_seg, states, kept, dstates):
        return (_bptt(dy[t0:t1], dstates[0], x[t0:t1], states[0], w_ih, w_hh, len_seg, reverse, dact, kept, grads,
                      dx[t0:t1]),)

    (dh,) = run_backward(cache_plan(cache), "rnn", T, reverse, lengths, cache.as_dict(), (cache.h0,), (dh_n,), run,
                         back)
    return dx, dh, grads["w_ih"], grads["w_hh"], grads["b"], grads["b"].copy()
