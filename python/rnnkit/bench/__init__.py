"""rnnkit.bench: the side-by-side benchmark behind ``rnnkit bench``.

It times rnnkit's cells against the NumPy reference, PyTorch and ONNX Runtime
(whichever are installed) in one process, at one thread count, interleaving the
runs, and prints ms, GFLOP/s and speedups (docs/performance.md). The grid, the
FLOP counts and the inputs defined here are shared with the pytest-benchmark
suites in the source tree's bench/ folder. Importing this package pulls in no
peer library; ``main`` does, for the peers it runs.
"""

from __future__ import annotations

from ._grid import (
    CELLS,
    GATES,
    GRID,
    MODES,
    QUICK_GRID,
    REFERENCE_MAX_NH,
    T_DEFAULT,
    Shape,
    forward_flops,
    functional_args,
    make_inputs,
    mode_flops,
)

__all__ = [
    "main",
    "CELLS",
    "GATES",
    "GRID",
    "MODES",
    "QUICK_GRID",
    "REFERENCE_MAX_NH",
    "T_DEFAULT",
    "Shape",
    "forward_flops",
    "mode_flops",
    "make_inputs",
    "functional_args",
]


def main(argv: list[str] | None = None) -> int:
    """Run ``rnnkit bench`` with ``argv`` (default: sys.argv[1:]); returns the
    exit status. Bad arguments raise SystemExit(2) with an argparse message."""
    from ._cli import main as _main

    return _main(argv)
