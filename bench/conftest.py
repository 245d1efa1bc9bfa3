"""Shared grid and helpers for the pytest-benchmark suites (bench_<cell>.py).

Run with ``pytest bench --benchmark-only``; the default test run (``tests/``)
never collects these. Each row records GFLOP/s in ``extra_info``.
"""

from __future__ import annotations

import numpy as np
import pytest

T = 100
GRID = [(T, n, h) for h in (64, 256, 1024) for n in (1, 16, 64)]
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}


def forward_flops(cell: str, T: int, N: int, C: int, H: int) -> float:
    """2*T*N*G*H*(C+H); IndRNN's recurrence is elementwise, so only C counts."""
    G = GATES[cell]
    if cell == "indrnn":
        return 2.0 * T * N * H * (C + 1)
    return 2.0 * T * N * G * H * (C + H)


def make_inputs(cell: str, T: int, N: int, C: int, H: int, dtype=np.float32, seed: int = 0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    x = rng.standard_normal((T, N, C)).astype(dtype)
    h0 = np.zeros((N, H), dtype)
    w_hh = u(H) if cell == "indrnn" else u(G * H, H)
    args = [x, h0] + ([np.zeros((N, H), dtype)] if cell == "lstm" else [])
    args += [u(G * H, C), w_hh, u(G * H), u(G * H)]
    return args


def record(benchmark, flops: float) -> None:
    benchmark.extra_info["gflop"] = flops / 1e9
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None and stats.median > 0:
        benchmark.extra_info["gflops_per_s"] = flops / stats.median / 1e9


def grid_ids(shape):
    T, N, H = shape
    return f"T{T}-N{N}-H{H}"


@pytest.fixture(params=["native", "reference"])
def backend(request):
    import importlib

    name = request.param
    try:
        mod = importlib.import_module("rnnkit.functional" if name == "native" else "rnnkit.reference")
    except ImportError as exc:  # the native backend is missing from this build
        pytest.skip(f"{name} backend unavailable: {exc}")
    return name, mod
