"""GRU over one direction of one layer, in NumPy: the executable spec of the
native GRU cell (docs/cells.md), in every memory mode (docs/training.md). Gate order r, z, n, reset applied after the
recurrent matmul ("reset-after"), as PyTorch.

r = sigmoid(xW_r + hW_r);  z = sigmoid(xW_z + hW_z);  n = tanh(xW_n + r*hW_n)
h' = (1-z)*n + z*h,  with xW = x W_ih^T + b_ih and hW = h W_hh^T + b_hh.
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

__all__ = ["gru_forward", "gru_backward"]


def _steps(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, keep):
    """The time loop of gru_forward over x: y, h_n and the arrays kept
    ("full": h, gates, hn; "states": h; None: nothing). The input side runs a
    step at a time in every mode, so that a replayed segment computes exactly
    the sums of the whole sequence."""
    T, N, _ = x.shape
    H = w_hh.shape[1]
    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    kept = {}
    if keep is not None:
        kept["h"] = np.empty((T, N, H), x.dtype)  # T,N,H
    if keep == "full":
        kept["gates"] = np.zeros((T, N, 3 * H), x.dtype)  # T,N,3H
        kept["hn"] = np.zeros((T, N, H), x.dtype)  # T,N,H

    h = h0  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        xW_t = x[t] @ w_ih.T + b_ih  # N,3H
        xr, xz, xn = np.split(xW_t, 3, axis=1)  # N,H each
        hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=1)  # N,H each
        r = sigmoid(xr + hr)  # N,H
        z = sigmoid(xz + hz)  # N,H
        n = np.tanh(xn + r * hn)  # N,H
        h = np.where(active, (1 - z) * n + z * h, h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)
        if keep is not None:
            kept["h"][t] = h
        if keep == "full":
            kept["gates"][t] = np.where(active, np.concatenate([r, z, n], axis=1), 0)
            kept["hn"][t] = np.where(active, hn, 0)
    return y, h, kept


def _bptt(dy, dh, x, h0, w_ih, w_hh, lengths, reverse, kept, grads, dx):
    """BPTT through the steps of one full cache (``kept``) of x: writes dx and
    adds into grads (w_ih, w_hh, b_ih, b_hh) a step at a time, in processing
    order from the last step, the order every memory mode shares. Returns dh0."""
    T = x.shape[0]
    h_prev = shift_prev(kept["h"], h0, reverse)  # T,N,H
    for t in reversed(steps(T, reverse)):
        active = (t < lengths)[:, None]  # N,1
        r, z, n = np.split(kept["gates"][t], 3, axis=1)  # N,H each
        hn = kept["hn"][t]  # N,H
        dh = dh + np.where(active, dy[t], 0)  # N,H: dy at inactive steps is ignored
        dn = dh * (1 - z) * dtanh(n)  # N,H
        dz = dh * (h_prev[t] - n) * dsigmoid(z)  # N,H
        dr = dn * hn * dsigmoid(r)  # N,H
        dhn = dn * r  # N,H
        # The input and recurrent sides differ in the n gate only: xW_n enters
        # n's pre-activation directly, hW_n through r*hW_n.
        dgates = np.where(active, np.concatenate([dr, dz, dn], axis=1), 0)  # N,3H: d(xW)
        dgates_hh = np.where(active, np.concatenate([dr, dz, dhn], axis=1), 0)  # N,3H: d(hW)
        dx[t] = dgates @ w_ih  # N,C
        # x past a sequence's length is zeroed: 0 * NaN would be NaN.
        grads["w_ih"] += dgates.T @ np.where(active, x[t], 0)  # 3H,C
        grads["w_hh"] += dgates_hh.T @ h_prev[t]  # 3H,H
        grads["b_ih"] += dgates.sum(axis=0)  # 3H
        grads["b_hh"] += dgates_hh.sum(axis=0)  # 3H
        dh = np.where(active, dh * z + dgates_hh @ w_hh, dh)  # N,H: inactive passes dh
    return dh


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True,
                memory="full", segment=None, max_bytes=None):
    """y [T,N,H], h_n [N,H], cache (None when training=False). ``memory``:
    what the cache stores for backward ("full", "recompute", "checkpoint";
    ``segment`` or ``max_bytes`` set the segment length)."""
    x, h0, _, w_ih, w_hh, b_ih, b_hh, lengths, reverse, _, training = check_forward(
        "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    T, N, _ = x.shape
    H = w_hh.shape[1]
    plan = check_memory(memory, segment, max_bytes, "gru", T, N, H, x.dtype.itemsize)
    if not training:
        y, h, _ = _steps(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None)
        return y, h, None

    run = segment_run(_steps, x, (w_ih, w_hh, b_ih, b_hh), reverse)
    y, (h,), kept = run_forward(plan, "gru", T, N, H, x.dtype, reverse, lengths, (h0,), run)
    cache = training_cache("gru", plan, kept, x=x, h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                           lengths=lengths, reverse=reverse)
    return y, h, cache


def gru_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through gru_forward's cache
    (replaying segments first in the "recompute" and "checkpoint" modes)."""
    dy, dh_n, _ = check_backward("gru", cache, dy, dh_n, None)
    x, lengths, w_ih, w_hh, b_ih, b_hh = cache.x, cache.lengths, cache.w_ih, cache.w_hh, cache.b_ih, cache.b_hh
    T = x.shape[0]
    reverse = bool(cache.reverse)
    grads = {"w_ih": np.zeros_like(w_ih), "w_hh": np.zeros_like(w_hh),
             "b_ih": np.zeros_like(b_ih), "b_hh": np.zeros_like(b_hh)}
    dx = np.empty_like(x)  # T,N,C

    run = segment_run(_steps, x, (w_ih, w_hh, b_ih, b_hh), reverse)

    def back(t0, t1, len_seg, states, kept, dstates):
        return (_bptt(dy[t0:t1], dstates[0], x[t0:t1], states[0], w_ih, w_hh, len_seg, reverse, kept, grads,
                      dx[t0:t1]),)

    (dh,) = run_backward(cache_plan(cache), "gru", T, reverse, lengths, cache.as_dict(), (cache.h0,), (dh_n,), run,
                         back)
    return dx, dh, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"]
