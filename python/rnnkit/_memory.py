"""Memory-budgeted BPTT, shared by both backends (docs/training.md): the
checks of ``memory=``, ``segment=`` and ``max_bytes=``, the memory formulas
the segment is chosen from, and the segment loops of forward and backward.

It decides what is stored and in which order segments run; it does no cell
math. Each backend passes its own step functions (NumPy in
``rnnkit.reference``, the C++ core in ``rnnkit.functional``), so the two run
the same plan.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

__all__ = [
    "MODES",
    "Plan",
    "check_memory_args",
    "check_memory",
    "plan_bytes",
    "segments",
    "time_range",
    "segment_lengths",
    "STATE_NAMES",
    "cache_arrays",
    "cache_plan",
    "run_forward",
    "run_backward",
]

MODES = ("full", "recompute", "checkpoint")

# [N, H] arrays per step, by cell: the states (h, and c for LSTM), the full
# cache of a training forward (states plus gates, tanh_c, GRU's hn), and the
# backward's dgates (GRU: both sides).
STATES = {"rnn": 1, "lstm": 2, "gru": 1, "indrnn": 1}
CACHE = {"rnn": 1, "lstm": 7, "gru": 5, "indrnn": 1}
DGATES = {"rnn": 1, "lstm": 4, "gru": 6, "indrnn": 1}


def _segment_step(cell):
    # What one step of a segment holds while it is replayed and differentiated:
    # the replay's cache and its y (dropped), and its dgates.
    return CACHE[cell] + 1 + DGATES[cell]


def plan_bytes(cell, mode, T, N, H, itemsize, segment=None):
    """Bytes a training call of ``mode`` keeps (its cache) plus the largest
    backward workspace, beyond the inputs, y, dx and the weights' packed
    copies (the same in every mode): in [N, H] arrays of ``itemsize`` bytes,

    - full: ``T * (cache + dgates)`` (LSTM: 7 + 4 per step);
    - recompute: ``T * states + k * (cache + 1 + dgates)`` (LSTM: 2 per step,
      and 12 per step of one segment of k steps);
    - checkpoint: ``ceil(T / k) * states + k * (cache + 1 + dgates)``.
    """
    unit = N * H * itemsize
    if mode == "full":
        return T * (CACHE[cell] + DGATES[cell]) * unit
    k = min(segment, T)
    stored = T if mode == "recompute" else math.ceil(T / k)
    return (stored * STATES[cell] + k * _segment_step(cell)) * unit


class Plan(NamedTuple):
    mode: str  # one of MODES
    segment: int | None  # steps per segment (None for "full")


def _default_segment(cell, mode, T):
    seg = _segment_step(cell)
    if mode == "checkpoint":
        # sqrt(T * states / seg) minimises ceil(T/k)*states + k*seg; at least
        # 8 steps so that each segment's calls (weights packed once per call)
        # stay a few percent of its work.
        k = round(math.sqrt(T * STATES[cell] / seg))
    else:
        # Segments small next to the states already stored (a quarter).
        k = math.ceil(T * STATES[cell] / (4 * seg))
    return max(1, min(T, max(8, k)))


def check_memory_args(memory, segment, max_bytes):
    """ValueError/TypeError naming the argument for a bad ``memory``,
    ``segment`` or ``max_bytes`` (what can be checked without the shapes)."""
    if not isinstance(memory, str) or memory not in MODES:
        raise ValueError(f"memory must be one of {MODES}, got {memory!r}")
    if segment is not None:
        if isinstance(segment, bool) or not isinstance(segment, numbers.Integral):
            raise TypeError(f"segment must be an int (steps per segment) or None, got {type(segment).__name__}")
        if segment < 1:
            raise ValueError(f"segment must be >= 1 (steps per segment), got {segment}")
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral):
            raise TypeError(f"max_bytes must be an int (bytes) or None, got {type(max_bytes).__name__}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    if memory == "full" and (segment is not None or max_bytes is not None):
        raise ValueError(
            "segment and max_bytes apply to memory='recompute' or 'checkpoint', "
            f"not memory='full' (got segment={segment!r}, max_bytes={max_bytes!r})"
        )
    if segment is not None and max_bytes is not None:
        raise ValueError(f"give segment or max_bytes, not both (got segment={segment}, max_bytes={max_bytes})")


def check_memory(memory, segment, max_bytes, cell, T, N, H, itemsize) -> Plan:
    """The checked plan of a training forward: ValueError/TypeError naming the
    argument for a bad value; the segment length from ``max_bytes`` (the
    largest that fits, see plan_bytes) when it is given, a default when
    neither is."""
    check_memory_args(memory, segment, max_bytes)
    if memory == "full":
        return Plan("full", None)
    if segment is not None:
        return Plan(memory, min(int(segment), T))
    if max_bytes is None:
        return Plan(memory, _default_segment(cell, memory, T))
    # The largest segment that fits: fewest calls, least time.
    fits = [k for k in range(T, 0, -1) if plan_bytes(cell, memory, T, N, H, itemsize, k) <= max_bytes]
    if not fits:
        least = min(plan_bytes(cell, memory, T, N, H, itemsize, k) for k in range(1, T + 1))
        raise ValueError(
            f"max_bytes={max_bytes} is below what memory={memory!r} needs at T={T}, N={N}, H={H} "
            f"({np.dtype(f'f{itemsize}')}): at least {least} bytes"
        )
    return Plan(memory, fits[0])


def segments(T, k):
    """Processing steps [s0, s1) of each segment, in processing order."""
    return [(s0, min(T, s0 + k)) for s0 in range(0, T, k)]


def time_range(s0, s1, T, reverse):
    """The time steps [t0, t1) that processing steps [s0, s1) cover."""
    return (T - s1, T - s0) if reverse else (s0, s1)


def segment_lengths(lengths, t0, t1):
    """lengths seen by the sub-sequence x[t0:t1]: step t is active iff
    t < lengths[n], so local step t - t0 is active iff t - t0 < lengths - t0,
    clipped to 0..t1-t0; the rule holds for either direction. N, int64"""
    return np.clip(lengths - t0, 0, t1 - t0).astype(np.int64)


STATE_NAMES = {"rnn": ("h",), "lstm": ("h", "c"), "gru": ("h",), "indrnn": ("h",)}


def cache_arrays(cell, mode):
    """The names of the arrays a training forward of ``mode`` stores (its
    Cache's ``arrays``): full, the cell's whole cache; recompute, the states
    of every step; checkpoint, ``h_ckpt`` (``c_ckpt``) [segments, N, H], the
    states before each segment in processing order."""
    full = {"rnn": ("h",), "lstm": ("h", "c", "tanh_c", "gates"), "gru": ("h", "gates", "hn"), "indrnn": ("h",)}
    if mode == "full":
        return full[cell]
    if mode == "recompute":
        return STATE_NAMES[cell]
    return tuple(n + "_ckpt" for n in STATE_NAMES[cell])


def cache_plan(cache) -> Plan:
    """The plan a cache was made under (a cache without one is "full")."""
    return Plan(getattr(cache, "memory", "full"), getattr(cache, "segment", None))


def run_forward(plan, cell, T, N, H, dtype, reverse, lengths, states0, run):
    """A training forward under ``plan``: (y, final states, stored arrays by
    name). ``run(t0, t1, lengths_seg, states, keep)`` runs the sub-sequence
    x[t0:t1] from ``states`` and returns (y_seg, states after it, arrays):
    keep "full" the whole training cache, "states" at least the states of
    every step, None nothing (inference)."""
    if plan.mode == "full":
        return run(0, T, lengths, states0, "full")
    names = STATE_NAMES[cell]
    parts = segments(T, plan.segment)
    y = np.empty((T, N, H), dtype)
    if plan.mode == "recompute":
        kept = {n: np.empty((T, N, H), dtype) for n in names}
    else:
        kept = {n + "_ckpt": np.empty((len(parts), N, H), dtype) for n in names}
    states = states0
    for j, (s0, s1) in enumerate(parts):
        t0, t1 = time_range(s0, s1, T, reverse)
        if plan.mode == "checkpoint":
            for n, a in zip(names, states):
                kept[n + "_ckpt"][j] = a
        y_seg, states, arrays = run(t0, t1, segment_lengths(lengths, t0, t1), states,
                                    "states" if plan.mode == "recompute" else None)
        y[t0:t1] = y_seg
        if plan.mode == "recompute":
            for n in names:
                kept[n][t0:t1] = arrays[n]
        del y_seg, arrays
    return y, states, kept


def run_backward(plan, cell, T, reverse, lengths, kept, states0, dstates_n, run, back):
    """BPTT under ``plan``. ``back(t0, t1, lengths_seg, states, arrays,
    dstates)`` differentiates the sub-sequence x[t0:t1] that ``run`` (as in
    run_forward) ran from ``states`` with cache ``arrays``, writes dx[t0:t1],
    adds its rows to the weight gradients (the running sums of the later
    steps: every chain runs in processing order) and returns the gradient of
    ``states``. Full: one call. Otherwise a segment at a time, the last
    processed first, each replayed first (training) from its checkpoint or
    from the stored states before it. Returns the gradient of states0."""
    if plan.mode == "full":
        return back(0, T, lengths, states0, kept, dstates_n)
    names = STATE_NAMES[cell]
    dstates = dstates_n
    for j, (s0, s1) in reversed(list(enumerate(segments(T, plan.segment)))):
        t0, t1 = time_range(s0, s1, T, reverse)
        len_seg = segment_lengths(lengths, t0, t1)
        if plan.mode == "checkpoint":
            states = tuple(kept[n + "_ckpt"][j] for n in names)
        elif s0 == 0:
            states = states0
        else:
            t_before = t1 if reverse else t0 - 1   # the time of processing step s0 - 1
            states = tuple(kept[n][t_before] for n in names)
        arrays = run(t0, t1, len_seg, states, "full")[2]  # the replay's y and final states: dropped now
        dstates = back(t0, t1, len_seg, states, arrays, dstates)
        del arrays
    return dstates
