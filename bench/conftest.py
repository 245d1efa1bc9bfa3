"""Shared grid and helpers for the pytest-benchmark suites (bench_<cell>.py).

Run with ``pytest bench --benchmark-only`` (add ``--rnnkit-threads 1`` to pin
every runtime to one thread); the default test run (``tests/``) never collects
these. Each row records GFLOP/s in ``extra_info``. The grid, the FLOP counts and
the inputs come from ``rnnkit.bench``, the harness behind ``rnnkit bench``, so
the two never drift apart.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnkit.bench import GATES, REFERENCE_MAX_NH, T_DEFAULT, functional_args
from rnnkit.bench import GRID as _GRID
from rnnkit.bench import QUICK_GRID as _QUICK_GRID
from rnnkit.bench import forward_flops as _forward_flops
from rnnkit.bench import make_inputs as _make_inputs

T = T_DEFAULT
# RNNKIT_BENCH_GRID=quick: the 5 shapes of `rnnkit bench --quick` (CI's smoke pass).
_SHAPES = _QUICK_GRID if os.environ.get("RNNKIT_BENCH_GRID") == "quick" else _GRID
GRID = [(s.T, s.N, s.H) for s in _SHAPES]  # (T, N, H) with C = H
__all__ = [
    "T",
    "GRID",
    "GATES",
    "REFERENCE_MAX_NH",
    "forward_flops",
    "make_inputs",
    "record",
    "grid_ids",
]


def pytest_addoption(parser):
    parser.addoption(
        "--rnnkit-threads",
        type=int,
        default=None,
        metavar="N",
        help="threads for rnnkit and NumPy's BLAS during the benchmarks",
    )


@pytest.fixture(scope="session", autouse=True)
def _threads(request):
    n = request.config.getoption("--rnnkit-threads")
    if n is None:
        yield
        return
    from rnnkit.bench._run import ThreadSettings

    with ThreadSettings(n):
        yield


def forward_flops(cell: str, T: int, N: int, C: int, H: int) -> float:
    """2*T*N*G*H*(C+H); IndRNN's recurrence is elementwise, so only C counts."""
    return _forward_flops(cell, T, N, C, H)


def make_inputs(cell: str, T: int, N: int, C: int, H: int, dtype=np.float32, seed: int = 0):
    """The positional arguments of ``<cell>_forward``, in the functional API's order."""
    return functional_args(cell, _make_inputs(cell, T, N, C, H, dtype=dtype, seed=seed))


def record(benchmark, flops: float) -> None:
    benchmark.extra_info["gflop"] = flops / 1e9
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None and stats.median > 0:
        benchmark.extra_info["gflops_per_s"] = flops / stats.median / 1e9
    try:
        import rnnkit

        benchmark.extra_info["threads"] = rnnkit.get_num_threads()
    except Exception:  # a build without the native core
        pass


def grid_ids(shape):
    T, N, H = shape
    return f"T{T}-N{N}-H{H}"


@pytest.fixture(params=["native", "reference"])
def backend(request):
    import importlib

    name = request.param
    try:
        mod = importlib.import_module(
            "rnnkit.functional" if name == "native" else "rnnkit.reference"
        )
    except ImportError as exc:  # the native backend is missing from this build
        pytest.skip(f"{name} backend unavailable: {exc}")
    return name, mod
