"""rnnkit.functional: the native cells, function for function the twins of
``rnnkit.reference`` (same names, signatures, caches; docs/cells.md).

Each function validates with ``rnnkit._checks`` (the very checks the reference
runs), then calls the C++ core, which checks shapes again, releases the GIL and
runs one OpenMP parallel region per call. No math happens here. The first
call of a process settles the kernels' per-CPU parameters (rnnkit._tune:
the cached autotune, or a short one; RNNKIT_TUNE=0 keeps the cpuid defaults). With
``memory="recompute"`` or ``"checkpoint"`` (docs/training.md) a forward or
backward is one core call per segment, orchestrated by rnnkit._memory.
"""

from __future__ import annotations

import numpy as np

from . import _core, _tune
from ._cache import Cache
from ._checks import check_backward, check_forward, check_rtrl
from ._memory import cache_arrays, cache_plan, check_memory, run_backward, run_forward

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


def _cache(cell, args, arrays, plan):
    """The Cache of a training call: the checked inputs and the stored arrays
    (rnnkit._memory.cache_arrays of the plan's mode)."""
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
        memory=plan.mode,
        segment=plan.segment,
    )
    if cell == "lstm":
        kept["c0"] = args.c0
    if args.nonlinearity is not None:
        kept["nonlinearity"] = args.nonlinearity
    return Cache(cell, "native", cache_arrays(cell, plan.mode), **kept, **arrays)


def _c(a):
    # Caches are built contiguous; this guards a hand-made one (no copy otherwise).
    return np.ascontiguousarray(a)


def _weights_path(T, N):
    """How a call of T steps reads the weights, for each of its segments: the
    core's direct_weights(T, N) (csrc/cells/sequence.h: T*N <= 4 reads them in
    place, 1; else packed, 2). A segment passes its whole call's choice down,
    so that its steps take the same path, bitwise."""
    return 1 if T * N <= 4 else 2


def _core_forward(cell, x, states, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, training,
                  weights=0):
    """One core forward call: (y, final states, cache arrays dict or None)."""
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    f = getattr(_core, f"{cell}_forward")
    if cell == "lstm":
        y, h_n, c_n, arrays = f(x, states[0], states[1], w_ih, w_hh, b_ih, b_hh, lengths, reverse, training,
                                weights)
        return y, (h_n, c_n), arrays
    extra = () if nonlinearity is None else (nonlinearity,)
    y, h_n, arrays = f(x, states[0], w_ih, w_hh, b_ih, b_hh, lengths, reverse, *extra, training, weights)
    return y, (h_n,), arrays


def _core_backward(cell, dy, dstates, x, states, w_ih, w_hh, lengths, reverse, nonlinearity, arrays, out=None):
    """One core backward call: dx, the gradients of the states, dw_ih, dw_hh,
    db_ih, db_hh (into ``out`` = (dx, dw_ih, dw_hh, db_ih, db_hh) when given:
    dx written, the rest added to)."""
    if _tune.pending:  # the first native call (and after set_isa): rnnkit._tune
        _tune.first_use()
    f = getattr(_core, f"{cell}_backward")
    cached = [_c(arrays[n]) for n in _ARRAYS[cell]]
    if cell == "lstm":
        return f(dy, dstates[0], dstates[1], x, states[0], states[1], w_ih, w_hh, lengths, reverse, *cached,
                 out=out)
    extra = () if nonlinearity is None else (nonlinearity,)
    return f(dy, dstates[0], x, states[0], w_ih, w_hh, lengths, reverse, *extra, *cached, out=out)


def _forward(cell, a, memory, segment, max_bytes):
    """A checked forward call under its memory plan (rnnkit._memory)."""
    T, N, _ = a.x.shape
    H = a.w_hh.shape[-1]
    plan = check_memory(memory, segment, max_bytes, cell, T, N, H, a.x.dtype.itemsize)
    states0 = (a.h0, a.c0) if cell == "lstm" else (a.h0,)
    if not a.training or plan.mode == "full":
        y, states, arrays = _core_forward(cell, a.x, states0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths,
                                          a.reverse, a.nonlinearity, a.training)
        return (y, *states, _cache(cell, a, arrays, plan))
    weights = _weights_path(T, N)

    def run(t0, t1, len_seg, states, keep):
        # keep None: an inference call (checkpoint's first pass stores nothing).
        return _core_forward(cell, a.x[t0:t1], states, a.w_ih, a.w_hh, a.b_ih, a.b_hh, len_seg, a.reverse,
                             a.nonlinearity, keep is not None, weights)

    y, states, kept = run_forward(plan, cell, T, N, H, a.x.dtype, a.reverse, a.lengths, states0, run)
    return (y, *states, _cache(cell, a, kept, plan))


def _backward(cell, cache, dy, dstates_n):
    """BPTT through a native cache: one core call ("full"), or a replay and
    a backward call per segment that write dx[t0:t1] and add into the weight
    gradients (bitwise the one-call result: docs/training.md)."""
    plan = cache_plan(cache)
    x, h0, w_ih, w_hh, lengths = _c(cache.x), _c(cache.h0), _c(cache.w_ih), _c(cache.w_hh), _c(cache.lengths)
    reverse = bool(cache.reverse)
    nonlinearity = getattr(cache, "nonlinearity", None) if cell in ("rnn", "indrnn") else None
    states0 = (h0, _c(cache.c0)) if cell == "lstm" else (h0,)
    S = len(states0)
    if plan.mode == "full":
        arrays = {n: getattr(cache, n) for n in _ARRAYS[cell]}
        return _core_backward(cell, dy, dstates_n, x, states0, w_ih, w_hh, lengths, reverse, nonlinearity,
                              arrays)
    T, N, _ = x.shape
    b_ih, b_hh = _c(cache.b_ih), _c(cache.b_hh)
    dy = _c(dy)
    dx = np.empty_like(x)
    grads = (np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh))
    weights = _weights_path(T, N)

    def run(t0, t1, len_seg, states, keep):
        return _core_forward(cell, x[t0:t1], states, w_ih, w_hh, b_ih, b_hh, len_seg, reverse, nonlinearity,
                             True, weights)

    def back(t0, t1, len_seg, states, arrays, dstates):
        # The replay's workspace (the packed weights), kept for reuse, would
        # sit beside the backward's own one (a different size) at the peak:
        # handed back first. That costs fresh pages per segment, ~1% of its
        # time at LSTM H=1024 (docs/training.md).
        _core.release_workspace_cache()
        out = _core_backward(cell, dy[t0:t1], dstates, x[t0:t1], states, w_ih, w_hh, len_seg, reverse,
                             nonlinearity, arrays, out=(dx[t0:t1], *grads))
        return tuple(out[1 : 1 + S])

    kept = {n: getattr(cache, n) for n in cache.arrays}
    dstates0 = run_backward(plan, cell, T, reverse, lengths, kept, states0, dstates_n, run, back)
    return (dx, *dstates0, *grads)


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
    memory="full",
    segment=None,
    max_bytes=None,
):
    """y [T,N,H], h_n [N,H], cache (None when training=False). ``memory``,
    ``segment``, ``max_bytes``: what the cache stores (docs/training.md)."""
    a = check_forward(
        "rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, training=training
    )
    return _forward("rnn", a, memory, segment, max_bytes)


def rnn_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through rnn_forward's cache."""
    dy, dh_n, _ = check_backward("rnn", cache, dy, dh_n, None)
    return _backward("rnn", cache, dy, (dh_n,))


# --- LSTM --------------------------------------------------------------------


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True,
                 memory="full", segment=None, max_bytes=None):
    """y [T,N,H], h_n [N,H], c_n [N,H], cache (None when training=False).
    ``memory``, ``segment``, ``max_bytes``: what the cache stores
    (docs/training.md)."""
    a = check_forward(
        "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    return _forward("lstm", a, memory, segment, max_bytes)


def lstm_backward(dy, dh_n, dc_n, cache):
    """dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh: BPTT through lstm_forward's cache."""
    dy, dh_n, dc_n = check_backward("lstm", cache, dy, dh_n, dc_n)
    return _backward("lstm", cache, dy, (dh_n, dc_n))


# --- GRU ---------------------------------------------------------------------


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True,
                memory="full", segment=None, max_bytes=None):
    """y [T,N,H], h_n [N,H], cache (None when training=False). ``memory``,
    ``segment``, ``max_bytes``: what the cache stores (docs/training.md)."""
    a = check_forward(
        "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, None, training=training
    )
    return _forward("gru", a, memory, segment, max_bytes)


def gru_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through gru_forward's cache."""
    dy, dh_n, _ = check_backward("gru", cache, dy, dh_n, None)
    return _backward("gru", cache, dy, (dh_n,))


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
    memory="full",
    segment=None,
    max_bytes=None,
):
    """y [T,N,H], h_n [N,H], cache (None when training=False). ``memory``,
    ``segment``, ``max_bytes``: what the cache stores (docs/training.md)."""
    a = check_forward(
        "indrnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, training=training
    )
    return _forward("indrnn", a, memory, segment, max_bytes)


def indrnn_backward(dy, dh_n, cache):
    """dx, dh0, dw_ih, dw_hh, db_ih, db_hh: BPTT through indrnn_forward's cache."""
    dy, dh_n, _ = check_backward("indrnn", cache, dy, dh_n, None)
    return _backward("indrnn", cache, dy, (dh_n,))


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
