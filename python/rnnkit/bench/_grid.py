"""The benchmark grid, the FLOP counts and the inputs: one definition shared by
``rnnkit bench`` and the pytest-benchmark suites in the source tree's bench/.

Pure NumPy; importing it pulls in no peer library.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "CELLS",
    "GATES",
    "MODES",
    "ROW_MODES",
    "T_DEFAULT",
    "GRID",
    "QUICK_GRID",
    "REFERENCE_MAX_NH",
    "Shape",
    "forward_flops",
    "mode_flops",
    "make_inputs",
    "functional_args",
]

CELLS = ("rnn", "lstm", "gru", "indrnn")
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}  # G per cell
MODES = ("inference", "training")
# What a mode reports: training is timed as forward then backward in each call,
# so its two halves come for free as rows of their own.
ROW_MODES = {
    "inference": ("inference",),
    "training": ("training", "training-forward", "training-backward"),
}
FLOP_FACTOR = {"inference": 1, "training": 3, "training-forward": 1, "training-backward": 2}

T_DEFAULT = 100


class Shape(NamedTuple):
    T: int
    N: int
    C: int
    H: int

    def label(self) -> str:
        return f"T{self.T}-N{self.N}-C{self.C}-H{self.H}"


GRID = tuple(Shape(T_DEFAULT, n, h, h) for h in (64, 256, 1024) for n in (1, 16, 64))
# Runs in under a minute with every peer on one core: a latency-bound (N=1) and a
# GEMM-bound (N=16) shape per small size, and the memory-bound N=1, H=1024.
QUICK_GRID = tuple(Shape(T_DEFAULT, n, h, h) for h in (64, 256) for n in (1, 16)) + (
    Shape(T_DEFAULT, 1, 1024, 1024),
)
# The NumPy reference takes minutes per round above this N*H, so it runs only the
# small shapes (it is there to show the distance to plain NumPy, not to race).
REFERENCE_MAX_NH = 16 * 256


def forward_flops(cell: str, T: int, N: int, C: int, H: int) -> float:
    """Forward FLOPs: 2*T*N*G*H*(C+H) with G = 1, 4, 3 for RNN, LSTM, GRU.

    IndRNN's recurrence is elementwise, so it counts 2*T*N*H*(C+1).
    Gate math (sigmoid, tanh, the elementwise products) is not counted: it is
    O(T*N*H), small beside the GEMMs once C+H is in the tens.
    """
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}: expected one of {CELLS}")
    if cell == "indrnn":
        return 2.0 * T * N * H * (C + 1)
    return 2.0 * T * N * GATES[cell] * H * (C + H)


def mode_flops(cell: str, mode: str, shape: Shape) -> float:
    """FLOPs of one call in a row mode: training = 3x forward (backward = 2x)."""
    return FLOP_FACTOR[mode] * forward_flops(cell, *shape)


def make_inputs(cell: str, T: int, N: int, C: int, H: int, dtype=np.float32, seed: int = 0) -> dict:
    """Named inputs of one call: x, h0 (c0 for LSTM), the weights in PyTorch's
    layout and init range U(-1/sqrt(H), 1/sqrt(H)), and dy for backward.

    The initial state is random rather than zero so that the agreement check
    also covers the state path.
    """
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}: expected one of {CELLS}")
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    inputs = {
        "x": rng.standard_normal((T, N, C)).astype(dtype),  # T,N,C
        "h0": (0.5 * rng.standard_normal((N, H))).astype(dtype),  # N,H
        "w_ih": u(G * H, C),  # G*H,C
        "w_hh": u(H) if cell == "indrnn" else u(G * H, H),  # G*H,H (IndRNN: H)
        "b_ih": u(G * H),  # G*H
        "b_hh": u(G * H),  # G*H
        "dy": rng.standard_normal((T, N, H)).astype(dtype),  # T,N,H
    }
    if cell == "lstm":
        inputs["c0"] = (0.5 * rng.standard_normal((N, H))).astype(dtype)  # N,H
    return inputs


def functional_args(cell: str, inputs: dict) -> list:
    """The positional arguments of ``<cell>_forward`` in the functional API."""
    states = [inputs["h0"], inputs["c0"]] if cell == "lstm" else [inputs["h0"]]
    return [inputs["x"], *states, inputs["w_ih"], inputs["w_hh"], inputs["b_ih"], inputs["b_hh"]]
