"""rnnkit.functional: the native cells, function for function the twins of
``rnnkit.reference`` (same names, signatures, caches; docs/cells.md).

Each function validates with ``rnnkit._checks`` (the very checks the reference
runs), then calls the C++ core, which checks shapes again, releases the GIL and
runs one OpenMP parallel region per call. No math happens here. The first
call of a process settles the kernels' per-CPU parameters (rnnkit._tune:
the cached autotune, or a short one; RNNKIT_TUNE=0 keeps the cpuid defaults).
"""

from __future__ import annotations

import numpy as np

from . import _core, _tune
from ._cache import Cache
from ._checks import check_backward, check_forward, check_rtrl

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "indrnn_forward",
    "indrnn_backward",
]

# The arrays each cell's forward produces, in the reference's order.
_ARRAYS = {
    "rnn": ("h",),
    "lstm": ("h", "c", "tanh_c", "gates"),
    "gru": ("h", "gates", "hn"),
    "indrnn": ("h",),
}


def _cache(cell, args, arrays):
    """The Cache of a training call: the checked inputs and the core's arrays."""
    if arrays is None:
        return None
    kept = dict(
        x=args.x,
        h0=args.h0,
        w_ih=args.w_ih,
        w_hh=args.w_hh,
        b_ih=args.b_ih,
        b_hh=args.b_hh,
        lengths=args.lengths,
        reverse=args.reverse,
    )
    if cell == "lstm":
        kept["c0"] = args.c0
    if args.nonlinearity is not None:
        kept["nonlinearity"] = args.nonlinearity
    return Cache(cell, "native", _ARRAYS[cell], **kept, **arrays)


def _c(a):
    # Caches are built contiguous; this guards a hand-made one (no copy otherwise).
    return np.ascontiguousarray(a)


# --- RNN ---------------------------------------------------------------------


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
):
    """y [T,N,H], h_n [N,H], cache (None when training=False)."""
    a = check_forward(
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
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    y, h_n, arrays = _core.rnn_forward(
        a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths, a.reverse, a.nonlinearity, a.training
    )
    return y, h_n, _cache("rnn", a, arrays)


def rnn_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through rnn_forward's cache."""
    dy, dh_n, _ = check_backward("rnn", cache, dy, dh_n, None)
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    return _core.rnn_backward(
        dy,
        dh_n,
        _c(cache.x),
        _c(cache.h0),
        _c(cache.w_ih),
        _c(cache.w_hh),
        _c(cache.lengths),
        bool(cache.reverse),
        cache.nonlinearity,
        _c(cache.h),
    )


# --- LSTM --------------------------------------------------------------------


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """y [T,N,H], h_n [N,H], c_n [N,H], cache (None when training=False)."""
    a = check_forward(
        "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    y, h_n, c_n, arrays = _core.lstm_forward(
        a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths, a.reverse, a.training
    )
    return y, h_n, c_n, _cache("lstm", a, arrays)


def lstm_backward(dy, dh_n, dc_n, cache):
    """dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh: BPTT through lstm_forward's cache."""
    dy, dh_n, dc_n = check_backward("lstm", cache, dy, dh_n, dc_n)
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    return _core.lstm_backward(
        dy,
        dh_n,
        dc_n,
        _c(cache.x),
        _c(cache.h0),
        _c(cache.c0),
        _c(cache.w_ih),
        _c(cache.w_hh),
        _c(cache.lengths),
        bool(cache.reverse),
        _c(cache.h),
        _c(cache.c),
        _c(cache.tanh_c),
        _c(cache.gates),
    )


# --- GRU ---------------------------------------------------------------------


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """y [T,N,H], h_n [N,H], cache (None when training=False)."""
    a = check_forward(
        "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    y, h_n, arrays = _core.gru_forward(
        a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths, a.reverse, a.training
    )
    return y, h_n, _cache("gru", a, arrays)


def gru_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through gru_forward's cache."""
    dy, dh_n, _ = check_backward("gru", cache, dy, dh_n, None)
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    return _core.gru_backward(
        dy,
        dh_n,
        _c(cache.x),
        _c(cache.h0),
        _c(cache.w_ih),
        _c(cache.w_hh),
        _c(cache.lengths),
        bool(cache.reverse),
        _c(cache.h),
        _c(cache.gates),
        _c(cache.hn),
    )


# --- IndRNN ------------------------------------------------------------------


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
    a = check_forward(
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
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    y, h_n, arrays = _core.indrnn_forward(
        a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths, a.reverse, a.nonlinearity, a.training
    )
    return y, h_n, _cache("indrnn", a, arrays)


def indrnn_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through indrnn_forward's cache."""
    dy, dh_n, _ = check_backward("indrnn", cache, dy, dh_n, None)
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    return _core.indrnn_backward(
        dy,
        dh_n,
        _c(cache.x),
        _c(cache.h0),
        _c(cache.w_ih),
        _c(cache.w_hh),
        _c(cache.lengths),
        bool(cache.reverse),
        cache.nonlinearity,
        _c(cache.h),
    )


# --- RTRL (docs/rtrl.md) ------------------------------------------------------
# Real-time recurrent learning: the same names and signatures as
# rnnkit.reference's *_rtrl, the same state layout. Validation is shared
# (rnnkit._checks.check_rtrl, with the sensitivity budget), then one core call.

__all__ += ["rnn_rtrl", "lstm_rtrl", "gru_rtrl", "indrnn_rtrl"]


def _rtrl_native(cell, r, nonlinearity):
    from .rtrl._state import RTRLState, sens_budget

    a = r.fwd
    out = _core.rtrl(
        cell, r.mode, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, r.dy, a.lengths, a.reverse,
        "tanh" if nonlinearity is None else nonlinearity, r.S, sens_budget(),
    )
    if cell == "lstm":
        y, h_n, c_n, grads, S = out
        state = RTRLState(cell, r.mode, None, h_n.copy(), c_n.copy(), S,
                          continuable=not a.reverse, backend="native")
        return y, h_n, c_n, tuple(grads), state
    y, h_n, grads, S = out
    state = RTRLState(cell, r.mode, a.nonlinearity, h_n.copy(), None, S,
                      continuable=not a.reverse, backend="native")
    return y, h_n, tuple(grads), state


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
    """y [T,N,H], h_n [N,H], grads (dh0, dw_ih, dw_hh, db_ih, db_hh), state:
    the gradient of sum_t <dy_t, y_t> by RTRL, natively (every mode). No dx:
    it would need future losses. Pass ``state`` back to continue the stream."""
    r = check_rtrl(
        "rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, nonlinearity, mode, state
    )
    return _rtrl_native("rnn", r, r.fwd.nonlinearity)


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
    """y [T,N,H], h_n [N,H], grads (dh0, dw_ih, dw_hh, db_ih, db_hh), state:
    IndRNN's exact (diagonal) RTRL, natively: O(H*C) per step. No dx: it would
    need future losses. Pass ``state`` back to continue the stream."""
    r = check_rtrl(
        "indrnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, nonlinearity, mode, state
    )
    return _rtrl_native("indrnn", r, r.fwd.nonlinearity)


def lstm_rtrl(
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, *, lengths=None, reverse=False, mode="exact", state=None
):
    """y, h_n, c_n, grads (dh0, dc0, dw_ih, dw_hh, db_ih, db_hh), state: the
    gradient of sum_t <dy_t, y_t> by RTRL, natively in both modes ("exact",
    and "diag", SnAp-1). No dx: it would need future losses. Pass ``state``
    back to continue the stream."""
    r = check_rtrl("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, None, mode, state)
    return _rtrl_native("lstm", r, None)


def gru_rtrl(
    x, h0, w_ih, w_hh, b_ih, b_hh, dy, *, lengths=None, reverse=False, mode="exact", state=None
):
    """y, h_n, grads (dh0, dw_ih, dw_hh, db_ih, db_hh), state: the gradient of
    sum_t <dy_t, y_t> by RTRL, natively in both modes ("exact", and "diag",
    SnAp-1). No dx: it would need future losses. Pass ``state`` back to
    continue the stream."""
    r = check_rtrl("gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, None, mode, state)
    return _rtrl_native("gru", r, None)
