"""LSTM over one direction of one layer, in NumPy: the executable spec of the
native LSTM cell (docs/cells.md). Gate order i, f, g, o, as PyTorch.

i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x W_ih^T + b_ih + h W_hh^T + b_hh)
c' = f*c + i*g;  h' = o*tanh(c')
"""

from __future__ import annotations

import numpy as np

from .._cache import Cache
from .._checks import check_backward, check_forward
from ._common import dsigmoid, dtanh, flat, shift_prev, sigmoid, steps, zero_padding

__all__ = ["lstm_forward", "lstm_backward"]


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """y [T,N,H], h_n [N,H], c_n [N,H], cache (None when training=False)."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, _, training = check_forward(
        "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    T, N, _ = x.shape
    H = w_hh.shape[1]

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    # Inference keeps O(N*H) beyond y: no cache and the input side one step at a time.
    xW = x @ w_ih.T + b_ih if training else None  # T,N,4H
    if training:
        h_all = np.empty((T, N, H), x.dtype)  # T,N,H
        c_all = np.empty((T, N, H), x.dtype)  # T,N,H
        tanh_c_all = np.zeros((T, N, H), x.dtype)  # T,N,H
        gates_all = np.zeros((T, N, 4 * H), x.dtype)  # T,N,4H

    h, c = h0, c0  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        xW_t = xW[t] if training else x[t] @ w_ih.T + b_ih  # N,4H
        i, f, g, o = np.split(xW_t + h @ w_hh.T + b_hh, 4, axis=1)  # N,H each
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_new = f * c + i * g  # N,H
        tanh_c = np.tanh(c_new)  # N,H
        h = np.where(active, o * tanh_c, h)  # N,H: inactive carries h and c
        c = np.where(active, c_new, c)  # N,H
        y[t] = np.where(active, h, 0)
        if training:
            h_all[t], c_all[t] = h, c
            tanh_c_all[t] = np.where(active, tanh_c, 0)
            gates_all[t] = np.where(active, np.concatenate([i, f, g, o], axis=1), 0)

    cache = None
    if training:
        cache = Cache(
            "lstm",
            "reference",
            ("h", "c", "tanh_c", "gates"),
            x=x,
            h0=h0,
            c0=c0,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            lengths=lengths,
            reverse=reverse,
            h=h_all,
            c=c_all,
            tanh_c=tanh_c_all,
            gates=gates_all,
        )
    return y, h, c, cache


def lstm_backward(dy, dh_n, dc_n, cache):
    """dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh: BPTT through lstm_forward's cache."""
    dy, dh_n, dc_n = check_backward("lstm", cache, dy, dh_n, dc_n)
    x, lengths, w_ih, w_hh = cache.x, cache.lengths, cache.w_ih, cache.w_hh
    T = x.shape[0]

    h_prev = shift_prev(cache.h, cache.h0, cache.reverse)  # T,N,H
    c_prev = shift_prev(cache.c, cache.c0, cache.reverse)  # T,N,H
    dgates = np.zeros_like(cache.gates)  # T,N,4H: d(pre-activations), 0 at inactive steps

    dh, dc = dh_n, dc_n  # N,H
    for t in reversed(steps(T, cache.reverse)):
        active = (t < lengths)[:, None]  # N,1
        i, f, g, o = np.split(cache.gates[t], 4, axis=1)  # N,H each
        tanh_c = cache.tanh_c[t]  # N,H
        dh = dh + np.where(active, dy[t], 0)  # N,H: dy at inactive steps is ignored
        do_ = dh * tanh_c * dsigmoid(o)  # N,H
        dc_total = dc + dh * o * dtanh(tanh_c)  # N,H
        di = dc_total * g * dsigmoid(i)  # N,H
        df = dc_total * c_prev[t] * dsigmoid(f)  # N,H
        dg = dc_total * i * dtanh(g)  # N,H
        dgates[t] = np.where(active, np.concatenate([di, df, dg, do_], axis=1), 0)
        dh = np.where(active, dgates[t] @ w_hh, dh)  # N,H: inactive passes dh, dc through
        dc = np.where(active, dc_total * f, dc)  # N,H

    dx = dgates @ w_ih  # T,N,C
    dw_ih = flat(dgates).T @ flat(zero_padding(x, lengths))  # 4H,C
    dw_hh = flat(dgates).T @ flat(h_prev)  # 4H,H
    db_ih = dgates.sum(axis=(0, 1))  # 4H
    db_hh = db_ih.copy()  # 4H
    return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh
