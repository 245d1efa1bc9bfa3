"""Real-time recurrent learning (RTRL) in NumPy: the executable spec of the
native ``*_rtrl`` functions (docs/rtrl.md has the equations). It carries the
sensitivities dh_t/dtheta forward and is held to BPTT by the tests; not fast.

Every function returns the gradient of sum_t <dy_t, y_t> with respect to the
initial state and the weights. There is no dx: the input's gradient needs the
losses of later steps, which a forward-only method has not seen yet.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_rtrl
from ..rtrl._state import RTRLState, columns
from ._common import _nonlinearity, dsigmoid, dtanh, sigmoid, steps

__all__ = ["rnn_rtrl", "lstm_rtrl", "gru_rtrl", "indrnn_rtrl"]


def _state(cell, a, h, c, S, reverse, nonlinearity=None):
    return RTRLState(cell, a.mode, nonlinearity, h, c, S, continuable=not reverse, backend="reference")


def _own_rows(A, G, H, K):
    """View of A[..., r, r*K:(r+1)*K] for every weight row r of an exact
    sensitivity A [N, G*H, P]: the entries where a row's own inputs enter. N,GH,K"""
    N = A.shape[0]
    rows = A[:, :, : G * H * K].reshape(N, G * H, G * H, K)
    r = np.arange(G * H)
    return rows, r


def _split_rows(w_rows, H, C, cell):
    """dw_ih, dw_hh, db_ih, db_hh from the [G*H, K] row gradients."""
    dw_hh = w_rows[:, :H].copy()
    dw_ih = w_rows[:, H : H + C].copy()
    db_ih = w_rows[:, H + C].copy()
    db_hh = w_rows[:, H + C + 1].copy() if cell == "gru" else db_ih.copy()
    return dw_ih, dw_hh, db_ih, db_hh


def _unit_rows_to_weight_rows(g_rows, G, H, K):
    """[H, G*K] per-unit row gradients (unit k, gate g at g*K) as [G*H, K]
    weight rows (row g*H + k, PyTorch's gate-major order)."""
    return g_rows[:, : G * K].reshape(H, G, K).transpose(1, 0, 2).reshape(G * H, K)


# --- RNN ---------------------------------------------------------------------


def rnn_rtrl(
    x,
    h0,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    dy,
    *,
    lengths=None,
    reverse=False,
    nonlinearity="tanh",
    mode="exact",
    state=None,
):
    """y [T,N,H], h_n [N,H], grads (dh0, dw_ih, dw_hh, db_ih, db_hh), state.

    grads is the gradient of sum_t <dy_t, y_t> (exact in mode="exact";
    docs/rtrl.md defines the approximate modes). No dx: RTRL runs forward and
    the input's gradient would need future losses. Pass ``state`` back to
    continue the stream (then h0 must be None; reverse cannot be continued).
    """
    r = check_rtrl(
        "rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, nonlinearity, mode, state
    )
    a, dy = r.fwd, r.dy
    act, dact = _nonlinearity(a.nonlinearity)
    x, w_ih, w_hh, b_ih, b_hh, lengths = a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths
    T, N, C = x.shape
    H = w_hh.shape[1]
    K = columns("rnn", H, C)
    ones = np.ones((N, 1), x.dtype)
    w_diag = np.diagonal(w_hh)  # H

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    h, S = a.h0, r.S.copy()
    w_rows = np.zeros((H, K), x.dtype)  # H,K: gradient of every weight row
    dh0 = np.zeros((N, H), x.dtype)  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        z = np.concatenate([h, x[t], ones], axis=1)  # N,K
        h_new = act(x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)  # N,H
        d = dact(h_new)  # N,H: dh_t/da_t
        dy_t = np.where(active, dy[t], 0)  # N,H
        if r.mode == "exact":
            # S [N,H,P]: S_t = d_t * (W_hh S_{t-1} + [row i's own z]) (one GEMM)
            R = w_hh @ S  # N,H,P
            rows, i = _own_rows(R, 1, H, K)
            rows[:, i, i, :] += z[:, None, :]
            S = np.where(active[:, :, None], d[:, :, None] * R, S)
            w_rows += np.einsum("nk,nkp->p", dy_t, S[:, :, : H * K]).reshape(H, K)
            dh0 += np.einsum("nk,nkm->nm", dy_t, S[:, :, H * K :])
        else:
            # S [N,H,1,K+1]: p (unit i's sensitivity to its own row) and q (dh_t/dh0, diagonal)
            p, q = S[:, :, 0, :K], S[:, :, 0, K]  # N,H,K and N,H
            p_new = d[:, :, None] * (w_diag[None, :, None] * p + z[:, None, :])  # N,H,K
            q_new = d * w_diag * q  # N,H
            w_rows += np.einsum("ni,nij->ij", dy_t, p_new)
            if r.mode == "simplified":
                # The other units k != i see p one hop away: P[k,i,j] = d_k W_hh[k,i] p_{t-1}[i,j].
                e = (dy_t * d) @ w_hh  # N,H: e_i = sum_k dy_k d_k W_hh[k,i]
                w_rows += np.einsum("ni,nij->ij", e - dy_t * d * w_diag, p)
            dh0 += dy_t * q_new
            S_new = np.concatenate([p_new, q_new[:, :, None]], axis=2)[:, :, None, :]
            S = np.where(active[:, :, None, None], S_new, S)
        h = np.where(active, h_new, h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)

    grads = (dh0,) + _split_rows(w_rows, H, C, "rnn")
    return y, h, grads, _state("rnn", r, h, None, S, a.reverse, a.nonlinearity)


# --- LSTM --------------------------------------------------------------------


def lstm_rtrl(
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, *, lengths=None, reverse=False, mode="exact", state=None
):
    """y [T,N,H], h_n [N,H], c_n [N,H], grads (dh0, dc0, dw_ih, dw_hh, db_ih,
    db_hh), state: the gradient of sum_t <dy_t, y_t> by RTRL (docs/rtrl.md).
    No dx: it would need future losses. Pass ``state`` back to continue."""
    r = check_rtrl(
        "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, None, mode, state
    )
    a, dy = r.fwd, r.dy
    x, w_ih, w_hh, b_ih, b_hh, lengths = a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths
    T, N, C = x.shape
    H = w_hh.shape[1]
    K = columns("lstm", H, C)
    ones = np.ones((N, 1), x.dtype)
    u = np.arange(H)
    w_diag = w_hh.reshape(4, H, H)[:, u, u].T  # H,4: w_hh[g*H+k, k]

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    h, c, S = a.h0, a.c0, r.S.copy()
    exact = r.mode == "exact"
    w_rows = np.zeros((4 * H, K) if exact else (H, 4 * K + 2), x.dtype)
    dh0 = np.zeros((N, H), x.dtype)  # N,H
    dc0 = np.zeros((N, H), x.dtype)  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        z = np.concatenate([h, x[t], ones], axis=1)  # N,K
        i, f, g, o = np.split(x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)  # N,H each
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_new = f * c + i * g  # N,H
        tanh_c = np.tanh(c_new)  # N,H
        dy_t = np.where(active, dy[t], 0)  # N,H
        if exact:
            # S [N,2H,P]: rows h then c; A = d a_t / d theta = W_hh Sh + [row r's own z]
            Sh, Sc = S[:, :H], S[:, H:]  # N,H,P
            A = w_hh @ Sh  # N,4H,P
            rows, rr = _own_rows(A, 4, H, K)
            rows[:, rr, rr, :] += z[:, None, :]
            Ai, Af, Ag, Ao = np.split(A, 4, axis=1)  # N,H,P each
            e = (lambda v: v[:, :, None])  # N,H -> N,H,1
        else:
            # S [N,H,2,4K+2]: unit k's (h, c) w.r.t. its 4 own rows, then h0[k], c0[k]
            Sh, Sc = S[:, :, 0], S[:, :, 1]  # N,H,Q
            A = w_diag[None, :, :, None] * Sh[:, :, None, :]  # N,H,4,Q
            for gate in range(4):
                A[:, :, gate, gate * K : (gate + 1) * K] += z[:, None, :]
            Ai, Af, Ag, Ao = A[:, :, 0], A[:, :, 1], A[:, :, 2], A[:, :, 3]  # N,H,Q each
            e = (lambda v: v[:, :, None])
        Sc_new = (
            e(f) * Sc
            + e(c * dsigmoid(f)) * Af
            + e(g * dsigmoid(i)) * Ai
            + e(i * dtanh(g)) * Ag
        )
        Sh_new = e(tanh_c * dsigmoid(o)) * Ao + e(o * dtanh(tanh_c)) * Sc_new
        if exact:
            S_new = np.concatenate([Sh_new, Sc_new], axis=1)
            S = np.where(active[:, :, None], S_new, S)
            Sh = S[:, :H]
            w_rows += np.einsum("nk,nkp->p", dy_t, Sh[:, :, : 4 * H * K]).reshape(4 * H, K)
            dh0 += np.einsum("nk,nkm->nm", dy_t, Sh[:, :, 4 * H * K : 4 * H * K + H])
            dc0 += np.einsum("nk,nkm->nm", dy_t, Sh[:, :, 4 * H * K + H :])
        else:
            S_new = np.stack([Sh_new, Sc_new], axis=2)  # N,H,2,Q
            S = np.where(active[:, :, None, None], S_new, S)
            w_rows += np.einsum("nk,nkq->kq", dy_t, S[:, :, 0])
            dh0 += dy_t * S[:, :, 0, 4 * K]
            dc0 += dy_t * S[:, :, 0, 4 * K + 1]
        h = np.where(active, o * tanh_c, h)  # N,H: inactive carries h and c
        c = np.where(active, c_new, c)
        y[t] = np.where(active, h, 0)

    if not exact:
        w_rows = _unit_rows_to_weight_rows(w_rows, 4, H, K)
    grads = (dh0, dc0) + _split_rows(w_rows, H, C, "lstm")
    return y, h, c, grads, _state("lstm", r, h, c, S, a.reverse)


# --- GRU ---------------------------------------------------------------------


def gru_rtrl(
    x, h0, w_ih, w_hh, b_ih, b_hh, dy, *, lengths=None, reverse=False, mode="exact", state=None
):
    """y [T,N,H], h_n [N,H], grads (dh0, dw_ih, dw_hh, db_ih, db_hh), state:
    the gradient of sum_t <dy_t, y_t> by RTRL (docs/rtrl.md). No dx: it would
    need future losses. Pass ``state`` back to continue."""
    r = check_rtrl("gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, None, mode, state)
    a, dy = r.fwd, r.dy
    x, w_ih, w_hh, b_ih, b_hh, lengths = a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths
    T, N, C = x.shape
    H = w_hh.shape[1]
    K = columns("gru", H, C)
    zeros_h = np.zeros((N, H), x.dtype)
    zeros_c = np.zeros((N, C), x.dtype)
    ones, zero = np.ones((N, 1), x.dtype), np.zeros((N, 1), x.dtype)
    u = np.arange(H)
    w_diag = w_hh.reshape(3, H, H)[:, u, u].T  # H,3: w_hh[g*H+k, k]

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    h, S = a.h0, r.S.copy()
    exact = r.mode == "exact"
    w_rows = np.zeros((3 * H, K) if exact else (H, 3 * K + 1), x.dtype)
    dh0 = np.zeros((N, H), x.dtype)  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        # A row's columns [h_prev; x; 1_ih; 1_hh]: x and 1_ih enter xW, h_prev and 1_hh enter hW.
        z_x = np.concatenate([zeros_h, x[t], ones, zero], axis=1)  # N,K
        z_h = np.concatenate([h, zeros_c, zero, ones], axis=1)  # N,K
        xr, xz, xn = np.split(x[t] @ w_ih.T + b_ih, 3, axis=1)  # N,H each
        hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=1)  # N,H each
        rg = sigmoid(xr + hr)  # N,H
        zg = sigmoid(xz + hz)  # N,H
        n = np.tanh(xn + rg * hn)  # N,H
        dy_t = np.where(active, dy[t], 0)  # N,H
        e = (lambda v: v[:, :, None])
        if exact:
            # S [N,H,P]; AX = d xW / d theta (own rows only), AH = W_hh S + own rows
            AH = w_hh @ S  # N,3H,P
            AX = np.zeros_like(AH)
            rows_h, rr = _own_rows(AH, 3, H, K)
            rows_x, _ = _own_rows(AX, 3, H, K)
            rows_h[:, rr, rr, :] += z_h[:, None, :]
            rows_x[:, rr, rr, :] = z_x[:, None, :]
            AXr, AXz, AXn = np.split(AX, 3, axis=1)  # N,H,P each
            AHr, AHz, AHn = np.split(AH, 3, axis=1)
        else:
            # S [N,H,1,3K+1]: unit k's h w.r.t. its 3 own rows, then h0[k]
            Sk = S[:, :, 0]  # N,H,Q
            AH = w_diag[None, :, :, None] * Sk[:, :, None, :]  # N,H,3,Q
            AX = np.zeros_like(AH)
            for gate in range(3):
                AH[:, :, gate, gate * K : (gate + 1) * K] += z_h[:, None, :]
                AX[:, :, gate, gate * K : (gate + 1) * K] = z_x[:, None, :]
            AXr, AXz, AXn = AX[:, :, 0], AX[:, :, 1], AX[:, :, 2]
            AHr, AHz, AHn = AH[:, :, 0], AH[:, :, 1], AH[:, :, 2]
        S_prev = S if exact else S[:, :, 0]
        dr = e(dsigmoid(rg)) * (AXr + AHr)
        dz = e(dsigmoid(zg)) * (AXz + AHz)
        dn = e(dtanh(n)) * (AXn + e(rg) * AHn + e(hn) * dr)
        S_new = e(1 - zg) * dn + e(h - n) * dz + e(zg) * S_prev
        if exact:
            S = np.where(active[:, :, None], S_new, S)
            w_rows += np.einsum("nk,nkp->p", dy_t, S[:, :, : 3 * H * K]).reshape(3 * H, K)
            dh0 += np.einsum("nk,nkm->nm", dy_t, S[:, :, 3 * H * K :])
        else:
            S = np.where(active[:, :, None, None], S_new[:, :, None, :], S)
            w_rows += np.einsum("nk,nkq->kq", dy_t, S[:, :, 0])
            dh0 += dy_t * S[:, :, 0, 3 * K]
        h = np.where(active, (1 - zg) * n + zg * h, h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)

    if not exact:
        w_rows = _unit_rows_to_weight_rows(w_rows, 3, H, K)
    grads = (dh0,) + _split_rows(w_rows, H, C, "gru")
    return y, h, grads, _state("gru", r, h, None, S, a.reverse)


# --- IndRNN ------------------------------------------------------------------


def indrnn_rtrl(
    x,
    h0,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    dy,
    *,
    lengths=None,
    reverse=False,
    nonlinearity="relu",
    mode="exact",
    state=None,
):
    """y [T,N,H], h_n [N,H], grads (dh0, dw_ih, dw_hh, db_ih, db_hh), state.

    IndRNN's recurrence is elementwise, so its exact RTRL is diagonal: unit k
    depends on its own w_hh[k], w_ih[k], b[k] and h0[k] only, O(H*C) per step.
    No dx: it would need future losses. Pass ``state`` back to continue."""
    r = check_rtrl(
        "indrnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, nonlinearity, mode, state
    )
    a, dy = r.fwd, r.dy
    act, dact = _nonlinearity(a.nonlinearity)
    x, w_ih, w_hh, b_ih, b_hh, lengths = a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths
    T, N, C = x.shape
    H = w_hh.shape[0]
    K = columns("indrnn", H, C)  # [h_prev[k]; x; 1]

    y = np.zeros((T, N, H), x.dtype)  # T,N,H
    h, S = a.h0, r.S.copy()  # S [N,H,1,K+1]: unit k w.r.t. w_hh[k], w_ih[k], b[k], h0[k]
    w_rows = np.zeros((H, K), x.dtype)  # H,K
    dh0 = np.zeros((N, H), x.dtype)  # N,H
    for t in steps(T, reverse):
        active = (t < lengths)[:, None]  # N,1
        h_new = act(x[t] @ w_ih.T + b_ih + w_hh * h + b_hh)  # N,H
        d = dact(h_new)  # N,H
        z = np.concatenate(
            [h[:, :, None], np.broadcast_to(x[t][:, None, :], (N, H, C)),
             np.ones((N, H, 1), x.dtype), np.zeros((N, H, 1), x.dtype)],
            axis=2,
        )  # N,H,K+1: unit k's own inputs (none for h0)
        S_new = d[:, :, None] * (w_hh[None, :, None] * S[:, :, 0] + z)  # N,H,K+1
        S = np.where(active[:, :, None, None], S_new[:, :, None, :], S)
        dy_t = np.where(active, dy[t], 0)  # N,H
        w_rows += np.einsum("nk,nkq->kq", dy_t, S[:, :, 0, :K])
        dh0 += dy_t * S[:, :, 0, K]
        h = np.where(active, h_new, h)  # N,H: inactive carries h
        y[t] = np.where(active, h, 0)

    dw_hh = w_rows[:, 0].copy()
    dw_ih = w_rows[:, 1 : 1 + C].copy()
    db_ih = w_rows[:, 1 + C].copy()
    grads = (dh0, dw_ih, dw_hh, db_ih, db_ih.copy())
    return y, h, grads, _state("indrnn", r, h, None, S, a.reverse, a.nonlinearity)
