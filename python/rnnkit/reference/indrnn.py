"""IndRNN (independently recurrent) over one direction of one layer, in NumPy:
the executable spec of the native IndRNN cell (docs/cells.md).

h' = act(x W_ih^T + b_ih + w_hh * h + b_hh): the recurrence is elementwise,
w_hh is a vector [H], act = relu (default) or tanh.
"""

from __future__ import annotations

import numpy as np

from .._cache import Cache
from .._checks import check_backward, check_forward
from ._common import _nonlinearity, flat, shift_prev, steps, zero_padding

__all__ = ["indrnn_forward", "indrnn_backward"]


def indrnn_forward(
    x,
    h0,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    *,
    lengths=None,
    reverse=False,
    nonlinearity="relu",
    training=True,
):
    """y [T,N,H], h_n [N,H], cache (None when training=False)."""
    x, h0, _, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, training = check_forward(
        "indrnn",
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
    H = w_hh.shape[0]

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    # Inference keeps O(N*H) beyond y: no cache and the input side one step at a time.
    xW = x @ w_ih.T + b_ih if training else None  # T,N,H
    h_all = np.empty((T, N, H), x.dtype) if training else None  # T,N,H

    h = h0  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        xW_t = xW[t] if training else x[t] @ w_ih.T + b_ih  # N,H
        h = np.where(active, act(xW_t + w_hh * h + b_hh), h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)
        if training:
            h_all[t] = h

    cache = None
    if training:
        cache = Cache(
            "indrnn",
            "reference",
            ("h",),
            x=x,
            h0=h0,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            lengths=lengths,
            reverse=reverse,
            nonlinearity=nonlinearity,
            h=h_all,
        )
    return y, h, cache


def indrnn_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through indrnn_forward's cache."""
    dy, dh_n, _ = check_backward("indrnn", cache, dy, dh_n, None)
    x, lengths, w_ih, w_hh = cache.x, cache.lengths, cache.w_ih, cache.w_hh
    _, dact = _nonlinearity(cache.nonlinearity)
    T = x.shape[0]

    h_prev = shift_prev(cache.h, cache.h0, cache.reverse)  # T,N,H
    dgates = np.zeros_like(cache.h)  # T,N,H: d(pre-activation), 0 at inactive steps

    dh = dh_n  # N,H
    for t in reversed(steps(T, cache.reverse)):
        active = (t < lengths)[:, None]  # N,1
        dh = dh + np.where(active, dy[t], 0)  # N,H: dy at inactive steps is ignored
        dgates[t] = np.where(active, dh * dact(cache.h[t]), 0)  # N,H
        dh = np.where(active, dgates[t] * w_hh, dh)  # N,H: inactive passes dh through

    dx = dgates @ w_ih  # T,N,C
    dw_ih = flat(dgates).T @ flat(zero_padding(x, lengths))  # H,C
    dw_hh = (dgates * h_prev).sum(axis=(0, 1))  # H
    db_ih = dgates.sum(axis=(0, 1))  # H
    db_hh = db_ih.copy()  # H
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
