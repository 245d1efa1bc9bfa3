"""GRU over one direction of one layer, in NumPy: the executable spec of the
native GRU cell (docs/cells.md). Gate order r, z, n, reset applied after the
recurrent matmul ("reset-after"), as PyTorch.

r = sigmoid(xW_r + hW_r);  z = sigmoid(xW_z + hW_z);  n = tanh(xW_n + r*hW_n)
h' = (1-z)*n + z*h,  with xW = x W_ih^T + b_ih and hW = h W_hh^T + b_hh.
"""

from __future__ import annotations

import numpy as np

from .._cache import Cache
from .._checks import check_backward, check_forward
from ._common import dsigmoid, dtanh, flat, shift_prev, sigmoid, steps, zero_padding

__all__ = ["gru_forward", "gru_backward"]


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """y [T,N,H], h_n [N,H], cache (None when training=False)."""
    x, h0, _, w_ih, w_hh, b_ih, b_hh, lengths, reverse, _, training = check_forward(
        "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    T, N, _ = x.shape
    H = w_hh.shape[1]

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    # Inference keeps O(N*H) beyond y: no cache and the input side one step at a time.
    xW = x @ w_ih.T + b_ih if training else None  # T,N,3H
    if training:
        h_all = np.empty((T, N, H), x.dtype)  # T,N,H
        gates_all = np.zeros((T, N, 3 * H), x.dtype)  # T,N,3H
        hn_all = np.zeros((T, N, H), x.dtype)  # T,N,H

    h = h0  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        xW_t = xW[t] if training else x[t] @ w_ih.T + b_ih  # N,3H
        xr, xz, xn = np.split(xW_t, 3, axis=1)  # N,H each
        hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=1)  # N,H each
        r = sigmoid(xr + hr)  # N,H
        z = sigmoid(xz + hz)  # N,H
        n = np.tanh(xn + r * hn)  # N,H
        h = np.where(active, (1 - z) * n + z * h, h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)
        if training:
            h_all[t] = h
            gates_all[t] = np.where(active, np.concatenate([r, z, n], axis=1), 0)
            hn_all[t] = np.where(active, hn, 0)

    cache = None
    if training:
        cache = Cache(
            "gru",
            "reference",
            ("h", "gates", "hn"),
            x=x,
            h0=h0,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            lengths=lengths,
            reverse=reverse,
            h=h_all,
            gates=gates_all,
            hn=hn_all,
        )
    return y, h, cache


def gru_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through gru_forward's cache."""
    dy, dh_n, _ = check_backward("gru", cache, dy, dh_n, None)
    x, lengths, w_ih, w_hh = cache.x, cache.lengths, cache.w_ih, cache.w_hh
    T = x.shape[0]

    h_prev = shift_prev(cache.h, cache.h0, cache.reverse)  # T,N,H
    # The input and recurrent sides differ in the n gate only: xW_n enters n's
    # pre-activation directly, hW_n through r*hW_n.
    dgates = np.zeros_like(cache.gates)  # T,N,3H: d(xW), 0 at inactive steps
    dgates_hh = np.zeros_like(cache.gates)  # T,N,3H: d(hW), 0 at inactive steps

    dh = dh_n  # N,H
    for t in reversed(steps(T, cache.reverse)):
        active = (t < lengths)[:, None]  # N,1
        r, z, n = np.split(cache.gates[t], 3, axis=1)  # N,H each
        hn = cache.hn[t]  # N,H
        dh = dh + np.where(active, dy[t], 0)  # N,H: dy at inactive steps is ignored
        dn = dh * (1 - z) * dtanh(n)  # N,H
        dz = dh * (h_prev[t] - n) * dsigmoid(z)  # N,H
        dr = dn * hn * dsigmoid(r)  # N,H
        dhn = dn * r  # N,H
        dgates[t] = np.where(active, np.concatenate([dr, dz, dn], axis=1), 0)
        dgates_hh[t] = np.where(active, np.concatenate([dr, dz, dhn], axis=1), 0)
        dh = np.where(active, dh * z + dgates_hh[t] @ w_hh, dh)  # N,H: inactive passes dh

    dx = dgates @ w_ih  # T,N,C
    dw_ih = flat(dgates).T @ flat(zero_padding(x, lengths))  # 3H,C
    dw_hh = flat(dgates_hh).T @ flat(h_prev)  # 3H,H
    db_ih = dgates.sum(axis=(0, 1))  # 3H
    db_hh = dgates_hh.sum(axis=(0, 1))  # 3H
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
