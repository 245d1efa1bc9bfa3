"""Determinism and thread safety of the native cells: bitwise-identical outputs,
caches and gradients at 1, 2 and 3 threads on every ISA (the work is split
over outputs only, each output computed in one fixed order), and two Python
threads running layers at once get exactly what they get one after the other."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rnnkit
from rnnkit import _core
from rnnkit import functional as F

from _native_util import (
    CELL_IDS,
    CELLS,
    ISAS,
    assert_identical,
    fresh_seed,
    isa,
    make_args,
    random_lengths,
    run,
    threads,
)

# Big enough that every cell really runs 3 threads in forward and backward
# (>= 100k flops per thread per step, >= 2 MFLOP per thread per call).
T, N, C, H = 20, 24, 64, 129


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity,G", CELLS, ids=CELL_IDS)
def test_bitwise_identical_across_thread_counts(cell, nonlinearity, G, dtype, isa_name):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    lengths = random_lengths(rng, T, N)
    pos, kw, grads = make_args(cell, G, T, N, C, H, dtype, rng, lengths=lengths)
    extra = {} if nonlinearity is None else {"nonlinearity": nonlinearity}
    results = {}
    with isa(isa_name):
        for n in (1, 2, 3):
            with threads(n):
                for reverse in (False, True):
                    res, _ = run(F, cell, nonlinearity, pos, kw, grads, reverse=reverse)
                    team_backward = _core.counters()["last_team_size"]
                    *inf, _ = getattr(F, f"{cell}_forward")(
                        *pos, **kw, **extra, reverse=reverse, training=False
                    )
                    team_forward = _core.counters()["last_team_size"]
                    assert (team_forward, team_backward) == (n, n), (
                        "the shape should use every thread"
                    )
                    res.update({f"inference.{i}": a for i, a in enumerate(inf)})
                    results[n, reverse] = res
    for n in (2, 3):
        for reverse in (False, True):
            assert_identical(
                results[n, reverse],
                results[1, reverse],
                f"{cell} {np.dtype(dtype).name} isa={isa_name} {n} vs 1 threads "
                f"reverse={reverse} seed={seed}",
            )


# Small shapes: tiny calls (T*N <= 4) read unpacked weights, N = 1 runs one-row
# tiles over several blocks; teams as large as the work allows (maybe 1).
SMALL = [
    (1, 1, 256, 300),
    (2, 2, 256, 300),
    (1, 1, 3, 1),
    (6, 1, 256, 300),
    (3, 1, 64, 17),
    (1, 1, 64, 129),
]


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity,G", CELLS, ids=CELL_IDS)
def test_small_shapes_bitwise_identical_across_thread_counts(
    cell, nonlinearity, G, dtype, isa_name
):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    extra = {} if nonlinearity is None else {"nonlinearity": nonlinearity}
    with isa(isa_name):
        for shape in SMALL:
            t, n_, c, h = shape
            lengths = random_lengths(rng, t, n_)
            pos, kw, grads = make_args(cell, G, t, n_, c, h, dtype, rng, lengths=lengths)
            results = {}
            for n in (1, 2, 3):
                with threads(n):
                    res, _ = run(F, cell, nonlinearity, pos, kw, grads)
                    *inf, _ = getattr(F, f"{cell}_forward")(*pos, **kw, **extra, training=False)
                    res.update({f"inference.{i}": a for i, a in enumerate(inf)})
                    results[n] = res
            for n in (2, 3):
                assert_identical(
                    results[n],
                    results[1],
                    f"{cell} {np.dtype(dtype).name} isa={isa_name} {shape} {n} vs 1 threads "
                    f"seed={seed}",
                )


def _layer_work(layer, x, lengths, dy, repeats=1):
    out = None
    for _ in range(repeats):
        layer.zero_grad()
        y, state, tape = layer.forward(x, lengths=lengths)
        dx, dstate = layer.backward(tape, dy)
        out = {"y": y, "dx": dx}
        out.update(
            {f"state{i}": s for i, s in enumerate(state if isinstance(state, tuple) else (state,))}
        )
        out.update(
            {
                f"dstate{i}": s
                for i, s in enumerate(dstate if isinstance(dstate, tuple) else (dstate,))
            }
        )
        out.update({"grad." + k: v.copy() for k, v in layer.grads.items()})
    return out


def test_two_python_threads_match_sequential():
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    jobs = []
    for k, (cls, dtype) in enumerate([(rnnkit.LSTM, np.float32), (rnnkit.GRU, np.float64)]):
        layer = cls(
            12, 33, num_layers=2, bidirectional=True, dtype=dtype, seed=seed + k, backend="native"
        )
        x = rng.standard_normal((7, 5, 12)).astype(dtype)
        lengths = random_lengths(rng, 7, 5)
        dy = rng.standard_normal((7, 5, 66)).astype(dtype)
        jobs.append((layer, x, lengths, dy))
    with threads(2):
        sequential = [_layer_work(*job) for job in jobs]
        results = [None, None]
        start = threading.Barrier(2)

        def worker(i):
            start.wait()
            results[i] = _layer_work(*jobs[i], repeats=5)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for i in range(2):
        assert_identical(results[i], sequential[i], f"python thread {i} seed={seed}")


# The team's barrier spins for a while, then sleeps on a futex. With more
# threads than cores the spin runs out at most barriers, so this runs the sleep
# and wake-up path many times (T steps, one barrier each, forward and backward).
@pytest.mark.parametrize("cell,nonlinearity,G", CELLS, ids=CELL_IDS)
def test_oversubscribed_team_is_bitwise_identical(cell, nonlinearity, G):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    steps = 60
    lengths = random_lengths(rng, steps, N)
    pos, kw, grads = make_args(cell, G, steps, N, C, H, np.float32, rng, lengths=lengths)
    results = {}
    for n in (1, 7):
        with threads(n):
            before = _core.counters()["barriers"]
            results[n], _ = run(F, cell, nonlinearity, pos, kw, grads)
            barriers = _core.counters()["barriers"] - before
            team = _core.counters()["last_team_size"]
        if cell != "indrnn":
            assert team == n, "the shape should use every thread"
            # forward: steps - 1 barriers; backward: steps + 1
            assert barriers == 2 * steps, barriers
    assert_identical(results[7], results[1], f"{cell} 7 vs 1 threads, seed={seed}")


_GRANTED_FEWER = r"""
import numpy as np, rnnkit
from rnnkit import _core, functional as F
rng = np.random.default_rng(0)
T, N, C, H = 40, 24, 64, 129
x = rng.standard_normal((T, N, C)).astype(np.float32)
h0 = np.zeros((N, H), np.float32)
w_ih = (rng.standard_normal((4 * H, C)) * 0.2).astype(np.float32)
w_hh = (rng.standard_normal((4 * H, H)) * 0.2).astype(np.float32)
b = np.zeros(4 * H, np.float32)
out = {}
for n in (1, 4):
    rnnkit.set_num_threads(n)
    y, h, c = F.lstm_forward(x, h0, h0, w_ih, w_hh, b, b, training=False)[:3]
    out[n] = (y, h, c, _core.counters()["last_team_size"])
assert out[4][3] == 2, out[4][3]
for a, b_ in zip(out[1][:3], out[4][:3]):
    assert np.array_equal(a, b_)
print("ok")
"""


def test_team_granted_fewer_threads_than_asked():
    """OMP_THREAD_LIMIT=2 with 4 threads asked: OpenMP grants 2; the team
    falls back to omp barriers and still computes the same bits."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_THREAD_LIMIT="2")
    proc = subprocess.run(
        [sys.executable, "-c", _GRANTED_FEWER], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_small_calls_do_not_start_a_team():
    """Starting a team wakes sleeping workers (10-40 us in a VM): a call
    with under ~2 MFLOP per thread runs on the calling thread alone, and the
    same layer over many steps uses the team."""
    rng = np.random.default_rng(0)
    H = 256
    w = (rng.standard_normal((H, H)) / 16).astype(np.float32)
    b = np.zeros(H, np.float32)
    h0 = np.zeros((1, H), np.float32)
    with threads(2):
        for steps, team in ((1, 1), (2, 1), (100, 2)):
            x = rng.standard_normal((steps, 1, H)).astype(np.float32)
            F.rnn_forward(x, h0, w, w, b, b, training=False)
            assert _core.counters()["last_team_size"] == team, steps
