"""LSTM over one direction of one layer, in NumPy: the executable spec of the
native LSTM cell (docs/cells.md), in every memory mode (docs/training.md).
Gate order i, f, g, o, as PyTorch.

i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x W_ih^T + b_ih + h W_hh^T + b_hh)
c' = f*c + i*g;  h' = o*tanh(c')
"""

from __future__ import annotations

import numpy as np

from .._checks import check_backward, check_forward
from .._memory import cache_plan, check_memory, run_backward, run_forward
from ._common import (
    dsigmoid,
    dtanh,
    segment_run,
    shift_prev,
    sigmoid,
    steps,
    training_cache,
)

__all__ = ["lstm_forward", "lstm_backward"]


def _steps(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, keep):
    """The time loop of lstm_forward over x: y, h_n, c_n and the arrays kept
    ("full": h, c, tanh_c, gates; "states": h, c; None: nothing). The input
    side runs a step at a time in every mode, so that a replayed segment
    computes exactly the sums of the whole sequence."""
    T, N, _ = x.shape
    H = w_hh.shape[1]
    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    kept = {}
    if keep is not None:
        kept["h"] = np.empty((T, N, H), x.dtype)  # T,N,H
        kept["c"] = np.empty((T, N, H), x.dtype)  # T,N,H
    if keep == "full":
        kept["tanh_c"] = np.zeros((T, N, H), x.dtype)  # T,N,H
        kept["gates"] = np.zeros((T, N, 4 * H), x.dtype)  # T,N,4H

    h, c = h0, c0  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        xW_t = x[t] @ w_ih.T + b_ih  # N,4H
        i, f, g, o = np.split(xW_t + h @ w_hh.T + b_hh, 4, axis=1)  # N,H each
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_new = f * c + i * g  # N,H
        tanh_c = np.tanh(c_new)  # N,H
        h = np.where(active, o * tanh_c, h)  # N,H: inactive carries h and c
        c = np.where(active, c_new, c)  # N,H
        y[t] = np.where(active, h, 0)
        if keep is not None:
            kept["h"][t], kept["c"][t] = h, c
        if keep == "full":
            kept["tanh_c"][t] = np.where(active, tanh_c, 0)
            kept["gates"][t] = np.where(active, np.concatenate([i, f, g, o], axis=1), 0)
    return y, h, c, kept


def _bptt(dy, dh, dc, x, h0, c0, w_hh, w_ih, lengths, reverse, kept, grads, dx):
    """BPTT through the steps of one full cache (``kept``) of x: writes dx and
    adds into grads (w_ih, w_hh, b) a step at a time, in processing order
    from the last step, the order every memory mode shares. Returns dh0, dc0."""
    T = x.shape[0]
    h_prev = shift_prev(kept["h"], h0, reverse)  # T,N,H
    c_prev = shift_prev(kept["c"], c0, reverse)  # T,N,H
    for t in reversed(steps(T, reverse)):
        active = (t < lengths)[:, None]  # N,1
        i, f, g, o = np.split(kept["gates"][t], 4, axis=1)  # N,H each
        tanh_c = kept["tanh_c"][t]  # N,H
        dh = dh + np.where(active, dy[t], 0)  # N,H: dy at inactive steps is ignored
        do_ = dh * tanh_c * dsigmoid(o)  # N,H
        dc_total = dc + dh * o * dtanh(tanh_c)  # N,H
        di = dc_total * g * dsigmoid(i)  # N,H
        df = dc_total * c_prev[t] * dsigmoid(f)  # N,H
        dg = dc_total * i * dtanh(g)  # N,H
        dgates = np.where(active, np.concatenate([di, df, dg, do_], axis=1), 0)  # N,4H: 0 at inactive
        dx[t] = dgates @ w_ih  # N,C
        # x past a sequence's length is zeroed: 0 * NaN would be NaN.
        grads["w_ih"] += dgates.T @ np.where(active, x[t], 0)  # 4H,C
        grads["w_hh"] += dgates.T @ h_prev[t]  # 4H,H
        grads["b"] += dgates.sum(axis=0)  # 4H
        dh = np.where(active, dgates @ w_hh, dh)  # N,H: inactive passes dh, dc through
        dc = np.where(active, dc_total * f, dc)  # N,H
    return dh, dc


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True,
                 memory="full", segment=None, max_bytes=None):
    """y [T,N,H], h_n [N,H], c_n [N,H], cache (None when training=False).
    ``memory``: what the cache stores for backward ("full", "recompute",
    "checkpoint"; ``segment`` or ``max_bytes`` set the segment length)."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, _, training = check_forward(
        "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    T, N, _ = x.shape
    H = w_hh.shape[1]
    plan = check_memory(memory, segment, max_bytes, "lstm", T, N, H, x.dtype.itemsize)
    if not training:
        y, h, c, _ = _steps(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None)
        return y, h, c, None

    run = segment_run(_steps, x, (w_ih, w_hh, b_ih, b_hh), reverse)
    y, (h, c), kept = run_forward(plan, "lstm", T, N, H, x.dtype, reverse, lengths, (h0, c0), run)
    cache = training_cache("lstm", plan, kept, x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                           lengths=lengths, reverse=reverse)
    return y, h, c, cache


def lstm_backward(dy, dh_n, dc_n, cache):
    """dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh: BPTT through lstm_forward's
    cache (replaying segments first in the "recompute" and "checkpoint" modes)."""
    dy, dh_n, dc_n = check_backward("lstm", cache, dy, dh_n, dc_n)
    x, lengths, w_ih, w_hh, b_ih, b_hh = cache.x, cache.lengths, cache.w_ih, cache.w_hh, cache.b_ih, cache.b_hh
    T = x.shape[0]
    reverse = bool(cache.reverse)
    grads = {"w_ih": np.zeros_like(w_ih), "w_hh": np.zeros_like(w_hh), "b": np.zeros_like(b_ih)}
    dx = np.empty_like(x)  # T,N,C

    run = segment_run(_steps, x, (w_ih, w_hh, b_ih, b_hh), reverse)

    def back(t0, t1, len_seg, states, kept, dstates):
        return _bptt(dy[t0:t1], *dstates, x[t0:t1], *states, w_hh, w_ih, len_seg, reverse, kept, grads, dx[t0:t1])

    plan = cache_plan(cache)
    dh, dc = run_backward(plan, "lstm", T, reverse, lengths, cache.as_dict(), (cache.h0, cache.c0), (dh_n, dc_n),
                          run, back)
    return dx, dh, dc, grads["w_ih"], grads["w_hh"], grads["b"], grads["b"].copy()
