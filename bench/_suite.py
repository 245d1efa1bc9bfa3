"""The three timed passes of one cell, shared by bench_<cell>.py.

Forward (training, keeps the cache), backward (BPTT from a kept cache) and
inference are timed separately, on float32, at T=100 and the grid in
conftest.py. The NumPy reference runs only the small shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import GRID, REFERENCE_MAX_NH, forward_flops, grid_ids, make_inputs, record

REFERENCE_MAX_WORK = REFERENCE_MAX_NH  # N*H above this is minutes per round in NumPy


def _skip_if_too_big(backend_name, N, H):
    if backend_name == "reference" and N * H > REFERENCE_MAX_WORK:
        pytest.skip("the NumPy reference runs only the small shapes")


def make_suite(cell: str):
    """Return the three benchmark test functions for one cell."""

    def fwd(backend):
        return getattr(backend[1], f"{cell}_forward")

    def bwd(backend):
        return getattr(backend[1], f"{cell}_backward")

    @pytest.mark.parametrize("shape", GRID, ids=grid_ids)
    def test_forward(benchmark, backend, shape):
        T, N, H = shape
        _skip_if_too_big(backend[0], N, H)
        args = make_inputs(cell, T, N, H, H)
        forward = fwd(backend)
        benchmark(lambda: forward(*args, training=True))
        record(benchmark, forward_flops(cell, T, N, H, H))

    @pytest.mark.parametrize("shape", GRID, ids=grid_ids)
    def test_backward(benchmark, backend, shape):
        T, N, H = shape
        _skip_if_too_big(backend[0], N, H)
        args = make_inputs(cell, T, N, H, H)
        out = fwd(backend)(*args, training=True)
        cache = out[-1]
        dy = np.ones_like(out[0])
        backward = bwd(backend)
        if cell == "lstm":
            benchmark(lambda: backward(dy, None, None, cache))
        else:
            benchmark(lambda: backward(dy, None, cache))
        record(benchmark, 2 * forward_flops(cell, T, N, H, H))

    @pytest.mark.parametrize("shape", GRID, ids=grid_ids)
    def test_inference(benchmark, backend, shape):
        T, N, H = shape
        _skip_if_too_big(backend[0], N, H)
        args = make_inputs(cell, T, N, H, H)
        forward = fwd(backend)
        benchmark(lambda: forward(*args, training=False))
        record(benchmark, forward_flops(cell, T, N, H, H))

    return test_forward, test_backward, test_inference
