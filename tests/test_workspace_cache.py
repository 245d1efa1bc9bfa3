"""Large blocks (>= 2 MiB: workspaces, and the arrays calls return) are kept
when freed and reused by later calls (rnnkit.release_memory() frees them).
Reused memory is dirty: these tests fill the kept blocks with non-finite
garbage first, then check that a call of the same shape gives bitwise what it
gives on fresh memory, on every ISA and both dtypes, with the tails (H, C not
multiples of a tile) that padding covers: every output element is written."""

from __future__ import annotations

import threading
import time

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
)

# backward's dgates: T * N * G * 129 values, 4-16 MB; the cache arrays and y
# (T * N * 129 values, 1-2 MB) reach 2 MiB in float64 or with G > 1
T, N, C, H = 40, 48, 65, 129


def _batch(G):
    return N if G > 1 else 5 * N  # one-gate cells need more rows to reach 2 MiB


def _poison(cell, nonlinearity, G, dtype):
    """Run the same shapes on inputs that fill every workspace with inf/NaN."""
    rng = np.random.default_rng(0)
    pos, kw, grads = make_args(cell, G, T, _batch(G), C, H, dtype, rng)
    pos = [np.full_like(a, np.nan) if i == 0 else a for i, a in enumerate(pos)]
    grads = [np.full_like(g, np.inf) for g in grads]
    with np.errstate(all="ignore"):
        run(F, cell, nonlinearity, pos, kw, grads)
        run(F, cell, nonlinearity, pos, kw, grads, reverse=True)
        getattr(F, f"{cell}_forward")(
            *pos,
            **kw,
            training=False,
            **({} if nonlinearity is None else {"nonlinearity": nonlinearity}),
        )


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity,G", CELLS, ids=CELL_IDS)
def test_reused_workspace_gives_the_fresh_memory_result(cell, nonlinearity, G, dtype, isa_name):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    lengths = random_lengths(rng, T, _batch(G))
    pos, kw, grads = make_args(cell, G, T, _batch(G), C, H, dtype, rng, lengths=lengths)
    extra = {} if nonlinearity is None else {"nonlinearity": nonlinearity}

    def everything():
        res = {}
        for reverse in (False, True):
            r, _ = run(F, cell, nonlinearity, pos, kw, grads, reverse=reverse)
            res.update({f"{k}.{reverse}": v for k, v in r.items()})
            inf = getattr(F, f"{cell}_forward")(
                *pos, **kw, **extra, reverse=reverse, training=False
            )
            res.update({f"inference.{i}.{reverse}": a for i, a in enumerate(inf)})
        return {k: v for k, v in res.items() if v is not None}

    with isa(isa_name):
        rnnkit.release_memory()
        fresh = everything()
        _poison(cell, nonlinearity, G, dtype)
        assert _core.workspace_cache_bytes() > 0, "this shape should keep its workspace"
        reused = everything()
    for k, v in fresh.items():
        v = np.asarray(v)
        if v.dtype.kind == "f":
            assert np.all(np.isfinite(v)), k
    assert_identical(reused, fresh, f"{cell} {np.dtype(dtype).name} isa={isa_name} seed={seed}")


def test_release_memory_frees_what_is_kept():
    rng = np.random.default_rng(1)
    pos, kw, grads = make_args("lstm", 4, T, N, C, H, np.float64, rng)
    run(F, "lstm", None, pos, kw, grads)
    kept = _core.workspace_cache_bytes()
    assert kept >= 2 << 20
    assert rnnkit.release_memory() == kept
    assert _core.workspace_cache_bytes() == 0
    assert rnnkit.release_memory() == 0
    # small calls keep nothing
    pos, kw, grads = make_args("lstm", 4, 3, 2, 5, 7, np.float64, rng)
    run(F, "lstm", None, pos, kw, grads)
    assert _core.workspace_cache_bytes() == 0


def test_returned_arrays_use_kept_blocks_and_outlive_release():
    rng = np.random.default_rng(5)
    pos, kw, grads = make_args("lstm", 4, T, N, C, H, np.float64, rng)
    rnnkit.release_memory()
    y, h_n, c_n, cache = F.lstm_forward(*pos, **kw)
    gates = cache.as_dict()["gates"]
    assert gates.nbytes >= 2 << 20 and y.flags.writeable and gates.flags.c_contiguous
    expected_y = y.copy()
    rnnkit.release_memory()  # frees only what is kept, never what is in use
    np.testing.assert_array_equal(y, expected_y)
    y[...] = 0.0  # the caller's to write
    del y, h_n, c_n, cache, gates
    assert _core.workspace_cache_bytes() >= T * N * 4 * H * 8  # gates came back
    rnnkit.release_memory()


def test_kept_memory_is_bounded():
    rng = np.random.default_rng(2)
    for h in (129, 200, 257, 300, 333, 400):  # six different workspace sizes
        pos, kw, grads = make_args("gru", 3, 20, 16, 64, h, np.float64, rng)
        run(F, "gru", None, pos, kw, grads)
    assert 0 < _core.workspace_cache_bytes() <= 1 << 30
    rnnkit.release_memory()


def test_concurrent_calls_with_releases_are_safe():
    """Python threads calling backward while another releases the cache: each
    call owns its block; results stay the sequential ones."""
    rng = np.random.default_rng(3)
    pos, kw, grads = make_args("lstm", 4, T, N, C, H, np.float32, rng)
    expected, _ = run(F, "lstm", None, pos, kw, grads)
    results, stop = [], threading.Event()

    def worker():
        for _ in range(4):
            results.append(run(F, "lstm", None, pos, kw, grads)[0])

    def releaser():
        while not stop.is_set():
            rnnkit.release_memory()

    rel = threading.Thread(target=releaser)
    rel.start()
    workers = [threading.Thread(target=worker) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    rel.join()
    assert len(results) == 8
    for r in results:
        assert_identical(r, expected, "concurrent")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_fork_while_other_threads_use_the_cache():
    """A child forked while another thread allocates and frees kept blocks
    runs a large backward itself and gets the parent's bits. (The lock is
    held across fork() by a pthread_atfork handler; the window in which a
    fork would catch it held is too short for this test to hit reliably, so
    this checks fork with the cache in use, not the race itself.)"""
    import os
    import warnings

    rng = np.random.default_rng(4)
    pos, kw, grads = make_args("lstm", 4, T, N, C, H, np.float32, rng)
    expected, _ = run(F, "lstm", None, pos, kw, grads)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            run(F, "lstm", None, pos, kw, grads)
            rnnkit.release_memory()

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(8):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
                pid = os.fork()
            if pid == 0:  # child: one thread, the cache must be usable
                code = 1
                try:
                    rnnkit.set_num_threads(1)
                    got, _ = run(F, "lstm", None, pos, kw, grads)
                    code = 0 if all(np.array_equal(got[k], expected[k]) for k in expected) else 3
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 60
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    pytest.fail("the forked child hung")
                time.sleep(0.01)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        stop.set()
        worker.join()
