"""Thread safety next to fork safety: Python threads calling layers at once,
while another thread keeps changing rnnkit's thread count, get results
bitwise equal to sequential runs. Not here: determinism across thread counts
in one thread (test_threads.py), fork (test_fork.py).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rnnkit

pytest.importorskip("rnnkit._core")


def _job(k):
    rng = np.random.default_rng(k)
    cls = [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN, rnnkit.IndRNN][k % 4]
    dtype = [np.float32, np.float64][k % 2]
    # Big enough for a team of 2-3 threads (>= ~100k flops per step).
    layer = cls(48, 64, num_layers=2, bidirectional=k % 3 == 0, dtype=dtype, seed=k, backend="native")
    x = rng.standard_normal((12, 24, 48)).astype(dtype)
    lengths = rng.integers(0, 13, 24)
    return layer, x, lengths


def _run(layer, x, lengths):
    layer.zero_grad()
    y, state, tape = layer.forward(x, lengths=lengths)
    dx, _ = layer.backward(tape, np.ones_like(y))
    return [y, dx] + [layer.grads[k].copy() for k in sorted(layer.grads)]


def test_concurrent_threads_with_changing_thread_count_match_sequential():
    before = rnnkit.get_num_threads()
    jobs = [_job(k) for k in range(4)]
    try:
        rnnkit.set_num_threads(1)
        sequential = [_run(*j) for j in jobs]
        results = [[] for _ in jobs]
        stop = threading.Event()
        errors = []

        def worker(i):
            try:
                for _ in range(3):
                    results[i].append(_run(*jobs[i]))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        def changer():
            n = 0
            while not stop.is_set():
                rnnkit.set_num_threads(1 + n % 3)
                n += 1
                stop.wait(0.001)

        ch = threading.Thread(target=changer)
        ch.start()
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=300)
        stop.set()
        ch.join()
        assert not any(t.is_alive() for t in ts), "a thread hung"
        assert not errors, errors
        for i, runs in enumerate(results):
            assert len(runs) == 3
            for r in runs:
                for a, b in zip(r, sequential[i]):
                    assert a.dtype == b.dtype and np.array_equal(a, b), f"job {i} differs"
    finally:
        rnnkit.set_num_threads(before)
