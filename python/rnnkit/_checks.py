"""Input validation shared by every backend, so that the NumPy reference and the
native bindings reject the same inputs with the same messages.

It checks and normalises (C-contiguous copies of strided inputs, zeros for
missing states, int64 lengths); it computes nothing and never modifies an input.
Non-finite values in x or the weights are not errors: the numerics propagate them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._cache import Cache
from ._memory import MODES, STATE_NAMES

__all__ = [
    "GATES",
    "NONLINEARITIES",
    "ForwardArgs",
    "BackwardArgs",
    "check_forward",
    "check_backward",
    "check_tape",
    "RTRLArgs",
    "check_rtrl",
]

GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}  # G per cell
NONLINEARITIES = ("tanh", "relu")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class ForwardArgs(NamedTuple):
    """The arguments of a ``*_forward`` call, checked and normalised."""

    x: np.ndarray  # T,N,C
    h0: np.ndarray  # N,H (zeros when None was given)
    c0: np.ndarray | None  # N,H for LSTM (zeros when None was given), else None
    w_ih: np.ndarray  # G*H,C
    w_hh: np.ndarray  # G*H,H (IndRNN: H)
    b_ih: np.ndarray  # G*H
    b_hh: np.ndarray  # G*H
    lengths: np.ndarray  # N, int64 (T when None was given)
    reverse: bool
    nonlinearity: str | None  # RNN and IndRNN only, else None
    training: bool


class BackwardArgs(NamedTuple):
    """The gradients given to a ``*_backward`` call, checked; zeros for None."""

    dy: np.ndarray  # T,N,H
    dh_n: np.ndarray  # N,H
    dc_n: np.ndarray | None  # N,H for LSTM, else None


def check_forward(
    cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, *, training=True
) -> ForwardArgs:
    """Validate the arguments of ``<cell>_forward``; raise TypeError or ValueError
    naming the argument, else return them normalised.

    H comes from ``w_hh`` (``w_hh.shape[1]``, or ``w_hh.shape[0]`` for IndRNN's
    vector) and C from ``x``; every other shape is checked against them.
    ``c0`` must be None for cells without a cell state, and ``nonlinearity``
    None for LSTM and GRU (callers pass what their signature has).
    """
    G = _gates(cell)

    x = _ndarray("x", x)
    if x.dtype not in _FLOATS:
        raise TypeError(f"x must have dtype float32 or float64, got {x.dtype}{_byteorder_hint(x)}")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, N, C), a 3-D array, got shape {x.shape}")
    T, N, C = x.shape
    if min(T, N, C) < 1:
        raise ValueError(f"x must have T, N and C all >= 1, got shape (T, N, C) = {x.shape}")
    dtype = x.dtype

    w_hh = _ndarray("w_hh", w_hh)
    _same_dtype("w_hh", w_hh, dtype)
    if cell == "indrnn":
        if w_hh.ndim != 1 or w_hh.shape[0] < 1:
            raise ValueError(f"w_hh must have shape (H,) with H >= 1, got {w_hh.shape}")
        H = w_hh.shape[0]
        from_h = "H = w_hh.shape[0]"
    else:
        if w_hh.ndim != 2 or w_hh.shape[1] < 1:
            raise ValueError(
                f"w_hh must have shape ({_g(G)}H, H), a 2-D array with H >= 1, got {w_hh.shape}"
            )
        H = w_hh.shape[1]
        from_h = "H = w_hh.shape[1]"
        _shape("w_hh", w_hh, f"({_g(G)}H, H)", (G * H, H), from_h)

    w_ih = _float("w_ih", w_ih, dtype, f"({_g(G)}H, C)", (G * H, C), f"{from_h}, C = x.shape[2]")
    b_ih = _float("b_ih", b_ih, dtype, f"({_g(G)}H,)", (G * H,), from_h)
    b_hh = _float("b_hh", b_hh, dtype, f"({_g(G)}H,)", (G * H,), from_h)
    h0 = _state("h0", h0, dtype, N, H, from_h)
    if cell == "lstm":
        c0 = _state("c0", c0, dtype, N, H, from_h)
    elif c0 is not None:
        raise TypeError(f"{cell} has no cell state; c0 must be None")

    lengths = _lengths(lengths, T, N)
    reverse = _flag("reverse", reverse)
    training = _flag("training", training)

    if cell in ("rnn", "indrnn"):
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    elif nonlinearity is not None:
        raise TypeError(f"{cell} takes no nonlinearity; it must be None")

    return ForwardArgs(
        np.ascontiguousarray(x),
        h0,
        c0,
        np.ascontiguousarray(w_ih),
        np.ascontiguousarray(w_hh),
        np.ascontiguousarray(b_ih),
        np.ascontiguousarray(b_hh),
        lengths,
        reverse,
        nonlinearity,
        training,
    )


def check_backward(cell, cache, dy, dh_n, dc_n) -> BackwardArgs:
    """Validate the arguments of ``<cell>_backward`` against the cache of the
    forward call; None gradients become zeros. ``dc_n`` must be None for cells
    without a cell state."""
    _gates(cell)
    if not isinstance(cache, Cache):
        raise TypeError(
            f"cache must be the Cache returned by {cell}_forward(..., training=True), "
            f"got {type(cache).__name__}"
        )
    # A Cache is a plain object: a caller may have deleted or replaced any field.
    source = getattr(cache, "cell", None)
    if not isinstance(source, str):
        raise ValueError(
            f"cache has no valid 'cell' field (got {source!r}): "
            f"it is not a complete cache of {cell}_forward"
        )
    if source != cell:
        raise ValueError(f"cache comes from {source}_forward, not {cell}_forward")
    T, N, H, dtype = _check_cache(cell, cache)
    dy = _optional("dy", dy, dtype, "(T, N, H)", (T, N, H))
    dh_n = _optional("dh_n", dh_n, dtype, "(N, H)", (N, H))
    if cell == "lstm":
        dc_n = _optional("dc_n", dc_n, dtype, "(N, H)", (N, H))
    elif dc_n is not None:
        raise TypeError(f"{cell} has no cell state; dc_n must be None")
    return BackwardArgs(dy, dh_n, dc_n)


def check_tape(tape, num_layers, num_directions, hidden_size, dtype, cache_type=None):
    """Check that a layer's tape still holds what its backward reads: (T, N),
    batch_first, one Cache per (layer, direction) and 0 or num_layers - 1
    dropout masks. A Tape is a plain object a caller can change; a missing
    piece is a ValueError naming it (the caches themselves are checked by the
    cell's backward), never a bare KeyError or IndexError. ``cache_type`` is
    the class each cache must be (default: Cache, what the fused kernels and
    the reference keep; a Python-step cell's layer passes its own)."""
    if cache_type is None:
        cache_type = Cache
    shape = getattr(tape, "shape", None)
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(_is_int(v) and v >= 1 for v in shape)
    ):
        raise ValueError(f"tape.shape must be (T, N) with T, N >= 1, got {shape!r}")
    T, N = shape
    if not isinstance(getattr(tape, "batch_first", None), (bool, np.bool_)):
        raise ValueError(f"tape.batch_first must be a bool, got {getattr(tape, 'batch_first', None)!r}")
    caches = getattr(tape, "caches", None)
    if not isinstance(caches, dict):
        raise ValueError(f"tape.caches must be a dict, got {type(caches).__name__}")
    for k in range(num_layers):
        for d in range(num_directions):
            if (k, d) not in caches:
                raise ValueError(
                    f"tape.caches has no cache for layer {k}, direction {d} (key {(k, d)}): "
                    f"the tape is not a complete record of forward (it has {sorted(caches)!r})"
                )
            if not isinstance(caches[(k, d)], cache_type):
                raise TypeError(
                    f"tape.caches[{(k, d)}] must be a {cache_type.__name__}, "
                    f"got {type(caches[(k, d)]).__name__}"
                )
    masks = getattr(tape, "masks", None)
    if not isinstance(masks, (list, tuple)) or len(masks) not in (0, num_layers - 1):
        n = len(masks) if isinstance(masks, (list, tuple)) else type(masks).__name__
        raise ValueError(
            f"tape.masks must be a list of 0 or num_layers - 1 = {num_layers - 1} arrays, got {n}"
        )
    want = (T, N, num_directions * hidden_size)
    for i, m in enumerate(masks):
        if not isinstance(m, np.ndarray) or m.shape != want or m.dtype != dtype:
            got = f"{m.dtype} {m.shape}" if isinstance(m, np.ndarray) else type(m).__name__
            raise ValueError(f"tape.masks[{i}] must be a {np.dtype(dtype)} array {want}, got {got}")


def _check_cache(cell, cache):
    """(T, N, H, dtype) of a cache, after checking every array backward reads.

    A cache is a plain object whose arrays a caller can replace or mutate;
    without this the reference would broadcast a wrong shape into a silently
    wrong gradient (or fail deep in NumPy), and the native side would reject
    it with a less helpful message. Caches of either backend pass (same layout).
    """
    G = GATES[cell]

    def field(name):
        try:
            return getattr(cache, name)
        except AttributeError:
            raise ValueError(
                f"cache has no {name!r}: it is not a complete cache of {cell}_forward"
            ) from None

    def array(name):
        a = field(name)
        if not isinstance(a, np.ndarray):
            raise TypeError(f"cache.{name} must be a numpy.ndarray, got {type(a).__name__}")
        return _ndarray(f"cache.{name}", a)  # refuses masked entries, as for inputs

    x = array("x")
    if x.dtype not in _FLOATS or x.ndim != 3 or min(x.shape) < 1:
        raise ValueError(
            f"cache.x must be a float32 or float64 array (T, N, C), got {x.dtype} {x.shape}"
        )
    T, N, C = x.shape
    dtype = x.dtype
    w_hh = array("w_hh")
    if cell == "indrnn":
        H = w_hh.shape[0] if w_hh.ndim == 1 else 0
        w_hh_shape = (H,)
    else:
        H = w_hh.shape[1] if w_hh.ndim == 2 else 0
        w_hh_shape = (G * H, H)
    if H < 1 or w_hh.shape != w_hh_shape:
        raise ValueError(
            f"cache.w_hh must have shape {'(H,)' if cell == 'indrnn' else f'({_g(G)}H, H)'}, "
            f"got {w_hh.shape}"
        )
    # What the cache stores depends on its memory mode (rnnkit._memory); a
    # cache made before the modes existed has none and is "full".
    memory = getattr(cache, "memory", "full")
    segment = getattr(cache, "segment", None)
    if memory not in MODES:
        raise ValueError(f"cache.memory must be one of {MODES}, got {memory!r}")
    if memory != "full" and (
        isinstance(segment, bool) or not isinstance(segment, (int, np.integer)) or not 1 <= segment <= T
    ):
        raise ValueError(f"cache.segment must be an int in 1..T = 1..{T} for memory={memory!r}, got {segment!r}")
    expected = {"w_hh": w_hh_shape, "w_ih": (G * H, C), "h0": (N, H)}
    if cell == "lstm":
        expected["c0"] = (N, H)
    if memory == "full":
        expected["h"] = (T, N, H)
        if cell == "lstm":
            expected.update(c=(T, N, H), tanh_c=(T, N, H), gates=(T, N, G * H))
        elif cell == "gru":
            expected.update(gates=(T, N, G * H), hn=(T, N, H))
    else:
        # A replay runs the forward again: the biases too.
        expected.update(b_ih=(G * H,), b_hh=(G * H,))
        S = T if memory == "recompute" else -(-T // segment)
        suffix = "" if memory == "recompute" else "_ckpt"
        for name in STATE_NAMES[cell]:
            expected[name + suffix] = (S, N, H)
    for name, shape in expected.items():
        a = array(name)
        if a.dtype != dtype:
            raise TypeError(f"cache.{name} has dtype {a.dtype} but cache.x has {dtype}")
        if a.shape != shape:
            raise ValueError(
                f"cache.{name} must have shape {shape} (T, N, C = cache.x.shape = {x.shape}, "
                f"H = {H} from cache.w_hh), got {a.shape}"
            )
    lengths = array("lengths")
    if lengths.dtype != np.int64:
        # forward always stores int64; the native core reads exactly that, so
        # both backends refuse anything else alike.
        raise TypeError(f"cache.lengths must have dtype int64 (as forward stores it), got {lengths.dtype}")
    if lengths.shape != (N,):
        raise ValueError(f"cache.lengths must have shape (N,) = ({N},), got {lengths.shape}")
    bad = np.flatnonzero((lengths < 0) | (lengths > T))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"cache.lengths[{i}] = {int(lengths[i])} is outside 0..T = 0..{T}")
    if not isinstance(field("reverse"), (bool, np.bool_)):
        raise TypeError(f"cache.reverse must be a bool, got {type(cache.reverse).__name__}")
    if cell in ("rnn", "indrnn"):
        nl = field("nonlinearity")
        if not isinstance(nl, str) or nl not in NONLINEARITIES:
            raise ValueError(f"cache.nonlinearity must be 'tanh' or 'relu', got {nl!r}")
    return T, N, H, dtype


# --- helpers: each raises with the argument's name, expected and actual values


def _gates(cell):
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
    return GATES[cell]


def _g(G):
    return "" if G == 1 else f"{G}*"


def _ndarray(name, a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if np.ma.is_masked(a):
        # np.ascontiguousarray would drop the mask and compute on the hidden data.
        raise TypeError(
            f"{name} is a masked array with masked entries; rnnkit does not read masks: "
            f"fill them ({name}.filled(0)) and give lengths for padded steps"
        )
    return a


def _byteorder_hint(a):
    """A hint for a float32/float64 array in non-native byte order, else ''."""
    if a.dtype.kind == "f" and a.dtype.newbyteorder("=") in _FLOATS and not a.dtype.isnative:
        return f" (non-native byte order: convert with .astype(np.{a.dtype.newbyteorder('=')}))"
    return ""


def _same_dtype(name, a, dtype):
    if a.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {a.dtype} but x has {dtype}; "
            f"all arrays of one call must share a dtype{_byteorder_hint(a)}"
        )


def _shape(name, a, letters, expected, where=""):
    if a.shape != expected:
        note = f" ({where})" if where else ""
        raise ValueError(f"{name} must have shape {letters} = {expected}{note}, got {a.shape}")


def _float(name, a, dtype, letters, expected, where=""):
    a = _ndarray(name, a)
    _same_dtype(name, a, dtype)
    _shape(name, a, letters, expected, where)
    return np.ascontiguousarray(a)


def _state(name, a, dtype, N, H, where):
    if a is None:
        return np.zeros((N, H), dtype)
    return _float(name, a, dtype, "(N, H)", (N, H), f"N = x.shape[1], {where}")


def _optional(name, a, dtype, letters, expected):
    if a is None:
        return np.zeros(expected, dtype)
    a = _ndarray(name, a)
    if a.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {a.dtype} but the forward call's x has {dtype}; "
            f"all arrays of one call must share a dtype{_byteorder_hint(a)}"
        )
    _shape(name, a, letters, expected)
    return np.ascontiguousarray(a)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _lengths(lengths, T, N):
    if lengths is None:
        return np.full(N, T, dtype=np.int64)
    if isinstance(lengths, (list, tuple)):
        for i, v in enumerate(lengths):
            if not _is_int(v):
                raise TypeError(
                    f"lengths must hold integers, got {type(v).__name__} at lengths[{i}]"
                )
        shape = (len(lengths),)
    elif isinstance(lengths, np.ndarray):
        _ndarray("lengths", lengths)  # refuses masked entries
        # A float array is refused even when integral: it says the caller lost track.
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}")
        shape = lengths.shape
    else:
        raise TypeError(
            "lengths must be None, a list or tuple of ints or an integer numpy.ndarray, "
            f"got {type(lengths).__name__}"
        )
    if shape != (N,):
        raise ValueError(f"lengths must have shape (N,) = ({N},) (N = x.shape[1]), got {shape}")
    if isinstance(lengths, np.ndarray):
        bad = np.flatnonzero((lengths < 0) | (lengths > T))
    else:
        bad = [i for i, v in enumerate(lengths) if not 0 <= v <= T]
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"lengths[{i}] = {int(lengths[i])} is outside 0..T = 0..{T}")
    return np.array(lengths, dtype=np.int64)


def _flag(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


# --- RTRL (docs/rtrl.md): the forward checks, then dy, mode, state and budget


class RTRLArgs(NamedTuple):
    """The arguments of a ``*_rtrl`` call, checked and normalised. h0 and c0
    are the stream's current state (state.h and state.c when a state was
    given), S its sensitivities (initial ones when state is None)."""

    fwd: ForwardArgs
    dy: np.ndarray  # T,N,H (zeros when None was given)
    mode: str
    S: np.ndarray


def check_rtrl(
    cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, nonlinearity, mode, state
) -> RTRLArgs:
    """Validate the arguments of ``<cell>_rtrl``; raise TypeError or ValueError
    naming the argument, else return them normalised. The sensitivity bytes are
    checked against the budget (RNNKIT_RTRL_MAX_BYTES) before anything is
    allocated."""
    from .rtrl._state import MODES, RTRLState, initial_sens, sens_budget, sens_shape

    _gates(cell)
    if state is not None:
        if not isinstance(state, RTRLState):
            raise TypeError(
                f"state must be None or the RTRLState returned by {cell}_rtrl, "
                f"got {type(state).__name__}"
            )
        if h0 is not None or c0 is not None:
            raise ValueError(
                "h0 and c0 must be None when a state is given: the state carries h (and c), "
                "and dh0 refers to the stream's first call"
            )
    a = check_forward(
        cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, nonlinearity, training=True
    )
    T, N, C = a.x.shape
    H = a.w_hh.shape[0] if cell == "indrnn" else a.w_hh.shape[1]
    dy = _optional("dy", dy, a.x.dtype, "(T, N, H)", (T, N, H))
    if not isinstance(mode, str) or mode not in MODES[cell]:
        raise ValueError(f"mode must be one of {MODES[cell]} for {cell}_rtrl, got {mode!r}")
    shape = sens_shape(cell, mode, N, H, C)
    need = int(np.prod(shape, dtype=np.int64)) * a.x.dtype.itemsize
    budget = sens_budget()
    if need > budget:
        raise ValueError(
            f"{cell}_rtrl(mode={mode!r}) needs {need} bytes ({need / 2**20:.1f} MiB) of "
            f"sensitivities {shape} for N={N}, H={H}, C={C} in {a.x.dtype}, over the budget "
            f"of {budget} bytes; set RNNKIT_RTRL_MAX_BYTES to allow it, or use a smaller "
            f"batch or an approximate mode"
        )
    if state is None:
        return RTRLArgs(a, dy, mode, initial_sens(cell, mode, N, H, C, a.x.dtype))

    if a.reverse:
        raise ValueError(
            "reverse=True cannot continue a stream (state given): the reverse direction "
            "starts at each sequence's own last step, which a stream does not know yet; "
            "run reverse over whole sequences with state=None"
        )
    if not state.continuable:
        raise ValueError("state comes from a reverse=True call and cannot be continued")
    if state.cell != cell:
        raise ValueError(f"state comes from {state.cell}_rtrl, not {cell}_rtrl")
    if state.mode != mode:
        raise ValueError(f"state was made with mode={state.mode!r}, this call has mode={mode!r}")
    if state.nonlinearity != a.nonlinearity:
        raise ValueError(
            f"state was made with nonlinearity={state.nonlinearity!r}, "
            f"this call has {a.nonlinearity!r}"
        )
    arrays = {"state.h": (state.h, (N, H)), "state.S": (state.S, shape)}
    if cell == "lstm":
        arrays["state.c"] = (state.c, (N, H))
    got = {}
    for name, (arr, expected) in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
        if arr.dtype != a.x.dtype:
            raise TypeError(f"{name} has dtype {arr.dtype} but x has {a.x.dtype}")
        if arr.shape != expected:
            raise ValueError(
                f"{name} must have shape {expected} (N = {N}, H = {H}, C = {C} from this "
                f"call's x and w_hh), got {arr.shape}"
            )
        got[name] = np.ascontiguousarray(arr)
    a = a._replace(h0=got["state.h"], c0=got.get("state.c"))
    return RTRLArgs(a, dy, mode, got["state.S"])
