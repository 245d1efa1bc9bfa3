"""Memory-budgeted BPTT (docs/training.md): memory="recompute" and
"checkpoint" give every output and gradient BITWISE equal to memory="full",
natively on every ISA at 1, 2 and 3 threads and in the reference, for all
cells, both dtypes, both directions, lengths with 0 and T, and segments of 1,
3, T and T+5 steps; the caches and tapes report their size; sabotaged
segmentations are caught by the same comparison. Not a speed or RSS test
(rnnkit bench --memory measures those)."""

from __future__ import annotations

import numpy as np
import pytest
import rnnkit
from _native_util import CELL_IDS, CELLS, ISAS, isa, make_args, threads
from rnnkit import _core, _memory
from rnnkit import functional as F
from rnnkit import reference as R

MODES = [("recompute", 1), ("recompute", 3), ("checkpoint", 1), ("checkpoint", 3), ("checkpoint", "T"),
         ("checkpoint", "T+5"), ("recompute", "T+5")]


def _run(backend, cell, nl, pos, kw, grads, **memory):
    fwd = getattr(backend, f"{cell}_forward")
    bwd = getattr(backend, f"{cell}_backward")
    extra = {} if nl is None else {"nonlinearity": nl}
    out = fwd(*pos, **kw, **extra, **memory)
    *outputs, cache = out
    dy, *dstates = grads
    return tuple(outputs), tuple(bwd(dy, *dstates, cache)), cache


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8)


def _first_difference(ref, got):
    """Name of the first output or gradient that differs in any bit, or None."""
    names = ["y", "h_n", "c_n"][: len(ref[0])] + [f"grad{i}" for i in range(len(ref[1]))]
    for name, a, b in zip(names, ref[0] + ref[1], got[0] + got[1]):
        if a.shape != b.shape or not np.array_equal(_bits(a), _bits(b)):
            diff = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) if a.shape == b.shape else "shape"
            return f"{name} (max diff {diff})"
    return None


def _segment(seg, T):
    return {"T": T, "T+5": T + 5}.get(seg, seg)


def _check_modes(backend, cell, nl, G, T, N, C, H, dtype, reverse, lengths, rng):
    pos, kw, grads = make_args(cell, G, T, N, C, H, dtype, rng, lengths=lengths)
    kw["reverse"] = reverse
    full = _run(backend, cell, nl, pos, kw, grads)
    for mode, seg in MODES:
        got = _run(backend, cell, nl, pos, kw, grads, memory=mode, segment=_segment(seg, T))
        bad = _first_difference(full[:2], got[:2])
        assert bad is None, f"{cell}-{nl} {np.dtype(dtype)} reverse={reverse} lengths={lengths} {mode} seg={seg}: {bad}"
        assert got[2].nbytes <= full[2].nbytes
    return full


LENGTHS = {1: [None, [0]], 3: [None, [0, "T", 2]]}


@pytest.mark.parametrize("cell,nl,G", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("isa_name", ISAS)
def test_native_bitwise_every_mode(cell, nl, G, isa_name):
    rng = np.random.default_rng(13)
    with isa(isa_name), threads(1):
        # T=5, N=1: the whole call packs its weights while a short segment alone
        # would read them in place (direct_weights): the segments must follow
        # the call. T=4, N=1: the whole call reads them in place, and so must
        # its segments.
        for T, N, C, H in [(7, 3, 5, 6), (5, 1, 3, 9), (4, 1, 2, 3)]:
            for dtype in (np.float32, np.float64):
                for reverse in (False, True):
                    for lengths in LENGTHS[N]:
                        ln = None if lengths is None else np.array([T if v == "T" else v for v in lengths])
                        _check_modes(F, cell, nl, G, T, N, C, H, dtype, reverse, ln, rng)


@pytest.mark.parametrize("cell,nl,G", [c for c in CELLS if c[1] != "relu"], ids=[i for i, c in zip(CELL_IDS, CELLS) if c[1] != "relu"])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_native_bitwise_threads(cell, nl, G, n_threads):
    # Large enough per step that a team of 2 or 3 really runs (choose_threads).
    rng = np.random.default_rng(7)
    T, N, C, H = 9, 16, 64, 128
    teams = set()
    with threads(n_threads):
        for dtype in (np.float32, np.float64):
            for reverse in (False, True):
                lengths = np.array([T, 0, 5] + [T - 1] * (N - 3))
                pos, kw, grads = make_args(cell, G, T, N, C, H, dtype, rng, lengths=lengths)
                kw["reverse"] = reverse
                full = _run(F, cell, nl, pos, kw, grads)
                teams.add(_core.counters()["last_team_size"])  # of the whole backward call
                for mode, seg in [("recompute", 4), ("checkpoint", 3), ("checkpoint", 1)]:
                    got = _run(F, cell, nl, pos, kw, grads, memory=mode, segment=seg)
                    bad = _first_difference(full[:2], got[:2])
                    assert bad is None, f"{cell} {n_threads} threads {np.dtype(dtype)} {mode} seg={seg}: {bad}"
    assert teams == {n_threads}


@pytest.mark.parametrize("cell,nl,G", CELLS, ids=CELL_IDS)
def test_reference_bitwise_every_mode(cell, nl, G):
    # The reference sums every gradient a step at a time in processing order,
    # in every mode: bitwise equal too, float64 and float32.
    rng = np.random.default_rng(5)
    T, N, C, H = 6, 3, 4, 5
    for dtype in (np.float32, np.float64):
        for reverse in (False, True):
            for lengths in (None, np.array([0, T, 2])):
                _check_modes(R, cell, nl, G, T, N, C, H, dtype, reverse, lengths, rng)


@pytest.mark.parametrize("cell,nl,G", [("lstm", None, 4), ("gru", None, 3), ("rnn", "tanh", 1)])
def test_native_matches_reference_in_new_modes(cell, nl, G):
    rng = np.random.default_rng(3)
    T, N, C, H = 8, 3, 5, 7
    pos, kw, grads = make_args(cell, G, T, N, C, H, np.float64, rng, lengths=np.array([8, 0, 3]))
    for mode in ("recompute", "checkpoint"):
        nat = _run(F, cell, nl, pos, kw, grads, memory=mode, segment=3)
        ref = _run(R, cell, nl, pos, kw, grads, memory=mode, segment=3)
        for a, b in zip(nat[0] + nat[1], ref[0] + ref[1]):
            assert np.linalg.norm(a - b) <= 1e-10 * max(1.0, np.linalg.norm(b))
        # Same cache layout in both backends.
        assert nat[2].arrays == ref[2].arrays
        for name in nat[2].arrays:
            np.testing.assert_allclose(getattr(nat[2], name), getattr(ref[2], name), rtol=1e-12, atol=1e-12)


def test_inference_forward_is_training_forward():
    # Checkpoint's first pass runs as inference: y and the final states must
    # be bitwise a training call's.
    rng = np.random.default_rng(11)
    for cell, nl, G in CELLS:
        for T, N, C, H in [(40, 16, 24, 40), (9, 2, 5, 6)]:
            pos, kw, _ = make_args(cell, G, T, N, C, H, np.float32, rng, lengths=None)
            extra = {} if nl is None else {"nonlinearity": nl}
            f = getattr(F, f"{cell}_forward")
            *train, _ = f(*pos, **kw, **extra)
            *infer, cache = f(*pos, **kw, **extra, training=False)
            assert cache is None
            for a, b in zip(train, infer):
                assert np.array_equal(_bits(a), _bits(b)), cell


def test_cache_and_tape_report_their_size():
    T, N, C, H = 20, 4, 6, 8
    x = np.random.default_rng(0).standard_normal((T, N, C)).astype(np.float32)
    sizes = {}
    for mode, seg in [("full", None), ("recompute", 4), ("checkpoint", 5)]:
        layer = rnnkit.LSTM(C, H, seed=0, memory=mode, segment=seg)
        y, _, tape = layer.forward(x)
        (cache,) = tape.caches.values()
        unit = N * H * 4
        stored = {"full": 7 * T * unit, "recompute": 2 * T * unit, "checkpoint": 2 * 4 * unit}[mode]
        assert cache.nbytes == stored == sum(getattr(cache, a).nbytes for a in cache.arrays)
        # The tape: the stored arrays, the copies of x, h0, c0 and the
        # weights, and lengths.
        inputs = x.nbytes + 2 * unit + 4 * H * (C + H + 2) * 4 + N * 8
        assert tape.nbytes == stored + inputs, mode
        sizes[mode] = tape.nbytes
        dx, _ = layer.backward(tape, np.ones_like(y))
        assert dx.shape == x.shape
    assert sizes["full"] > sizes["recompute"] > sizes["checkpoint"]


def test_layers_bitwise_and_budget():
    rng = np.random.default_rng(1)
    T, N, C, H = 12, 3, 5, 6
    x = rng.standard_normal((N, T, C))
    dy = rng.standard_normal((N, T, 2 * H))
    lengths = np.array([12, 0, 7])
    ref = None
    for kw in [{}, {"memory": "recompute", "segment": 5}, {"memory": "checkpoint", "max_bytes": 40000},
               {"memory": "checkpoint"}]:
        for backend in ("native", "reference"):
            layer = rnnkit.GRU(C, H, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64, seed=3,
                               backend=backend, **kw)
            y, state, tape = layer.forward(x, lengths=lengths)
            dx, dstate = layer.backward(tape, dy)
            got = [y, state, dx, dstate] + [layer.grads[k] for k in sorted(layer.grads)]
            if backend == "native":
                if ref is None:
                    ref = got
                for a, b in zip(ref, got):
                    assert np.array_equal(_bits(a), _bits(b)), kw
    assert "memory='checkpoint'" in repr(rnnkit.LSTM(2, 3, memory="checkpoint"))


def test_bad_arguments():
    rng = np.random.default_rng(0)
    pos, _, _ = make_args("lstm", 4, 5, 2, 3, 4, np.float32, rng)
    with pytest.raises(ValueError, match="memory"):
        F.lstm_forward(*pos, memory="none")
    with pytest.raises(ValueError, match="memory"):
        R.lstm_forward(*pos, memory="half")
    with pytest.raises(ValueError, match="segment"):
        F.lstm_forward(*pos, memory="checkpoint", segment=0)
    with pytest.raises(TypeError, match="segment"):
        F.lstm_forward(*pos, memory="checkpoint", segment=2.5)
    with pytest.raises(TypeError, match="segment"):
        R.lstm_forward(*pos, memory="checkpoint", segment=True)
    with pytest.raises(ValueError, match="max_bytes"):
        F.lstm_forward(*pos, memory="recompute", max_bytes=-1)
    with pytest.raises(ValueError, match="max_bytes=10 is below"):
        F.lstm_forward(*pos, memory="checkpoint", max_bytes=10)
    with pytest.raises(ValueError, match="not both"):
        F.lstm_forward(*pos, memory="checkpoint", segment=2, max_bytes=10**6)
    with pytest.raises(ValueError, match="memory='full'"):
        F.lstm_forward(*pos, segment=2)
    with pytest.raises(ValueError, match="memory"):
        rnnkit.LSTM(3, 4, memory="partial")
    with pytest.raises(ValueError, match="segment"):
        rnnkit.GRU(3, 4, memory="recompute", segment=-3)
    with pytest.raises(ValueError, match="fused path"):
        rnnkit.Recurrent(rnnkit.cells.LSTMCell(), 3, 4, fused=False, memory="checkpoint")
    # A damaged cache is refused by name.
    *_, cache = F.lstm_forward(*pos, memory="checkpoint", segment=2)
    cache.h_ckpt = cache.h_ckpt[:1]
    with pytest.raises(ValueError, match="h_ckpt"):
        F.lstm_backward(None, None, None, cache)


def test_budget_picks_the_largest_segment_that_fits():
    T, N, H = 100, 4, 8
    for mode in ("recompute", "checkpoint"):
        for budget in (20_000, 60_000, 10**6):
            try:
                plan = _memory.check_memory(mode, None, budget, "lstm", T, N, H, 4)
            except ValueError:
                continue
            assert _memory.plan_bytes("lstm", mode, T, N, H, 4, plan.segment) <= budget
            if plan.segment < T:
                assert _memory.plan_bytes("lstm", mode, T, N, H, 4, plan.segment + 1) > budget or mode == "checkpoint"
    assert _memory.check_memory("checkpoint", None, 10**9, "lstm", T, N, H, 4).segment == T


def test_sabotage_is_caught():
    """The comparison above catches a replay from the wrong checkpoint and
    weight gradients summed segment by segment from zero (not as one chain
    in processing order)."""
    rng = np.random.default_rng(2)
    T, N, C, H = 12, 3, 5, 6
    for dtype in (np.float32, np.float64):
        pos, kw, grads = make_args("lstm", 4, T, N, C, H, dtype, rng)
        full = _run(F, "lstm", None, pos, kw, grads)
        # 1. A replay that starts segment 2 from segment 1's checkpoint.
        *outputs, cache = F.lstm_forward(*pos, **kw, memory="checkpoint", segment=3)
        cache.h_ckpt = cache.h_ckpt.copy()
        cache.h_ckpt[2] = cache.h_ckpt[1]
        got = (tuple(outputs), tuple(F.lstm_backward(*grads, cache)))
        assert _first_difference(full[:2], got) is not None
        # 2. Each segment's weight gradients from zero, then added (the order
        # of the sums changes, nothing else).
        *outputs, cache = F.lstm_forward(*pos, **kw, memory="checkpoint", segment=3)
        x, _, _, w_ih, w_hh, b_ih, b_hh = pos
        dy, dh, dc = grads
        lengths = np.full(N, T, np.int64)
        total = [np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b_ih), np.zeros_like(b_hh)]
        dx = np.empty_like(x)
        for j, (s0, s1) in reversed(list(enumerate(_memory.segments(T, 3)))):
            st = (cache.h_ckpt[j], cache.c_ckpt[j])
            _, _, _, arrays = _core.lstm_forward(x[s0:s1], *st, w_ih, w_hh, b_ih, b_hh, lengths[:] * 0 + (s1 - s0),
                                                 False, True, 2)
            part = [np.zeros_like(a) for a in total]
            out = _core.lstm_backward(np.ascontiguousarray(dy[s0:s1]), dh, dc, x[s0:s1], *st, w_ih, w_hh,
                                      lengths * 0 + (s1 - s0), False, arrays["h"], arrays["c"], arrays["tanh_c"],
                                      arrays["gates"], out=(dx[s0:s1], *part))
            dh, dc = out[1], out[2]
            total = [a + b for a, b in zip(total, part)]
        got = (tuple(outputs), (dx, dh, dc, *total))
        bad = _first_difference(full[:2], got)
        assert bad is not None and bad.startswith("grad3"), bad  # dw_ih: the first weight gradient
        # ... while the same calls chained into one set of sums are exact.
        got_ok = _run(F, "lstm", None, pos, kw, grads, memory="checkpoint", segment=3)
        assert _first_difference(full[:2], got_ok[:2]) is None


def test_bench_memory_report():
    """rnnkit bench --memory at a small shape: each mode in its own process,
    the table produced, and the peaks ordered full > recompute > checkpoint
    (the full cache is 7 [N,H] arrays per step, recompute 2, checkpoint 2
    per 8 steps: 11, 3.3 and under 1 MiB at T=200, N=16, H=256, plus the
    backward workspaces)."""
    from rnnkit.bench import _cli
    from rnnkit.bench._memory import format_memory, measure

    assert _cli.build_parser().parse_args(["--memory"]).memory
    rows = measure((200, 16, 256, 256), 1, ["full", "recompute", "checkpoint"], timeout=120)
    table = format_memory(rows)
    for mode in ("full", "recompute", "checkpoint"):
        assert f"rnnkit {mode}" in table
    peak = {r["impl"]: r["peak_mib"] for r in rows}
    assert peak["full"] > peak["recompute"] > peak["checkpoint"] > 0, peak
    tape = {r["impl"]: r["tape_mib"] for r in rows}
    assert tape["full"] > tape["recompute"] > tape["checkpoint"], tape
