"""RTRLState: what a ``*_rtrl`` call hands to the next one so that a stream can
be cut into chunks, and the sensitivity layout both backends share
(docs/rtrl.md). A plain container of named arrays; it computes nothing.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["RTRLState", "MODES", "sens_shape", "initial_sens", "sens_budget", "columns"]

# The modes each cell has. IndRNN's exact RTRL is already diagonal.
MODES = {
    "rnn": ("exact", "simplified", "diag"),
    "lstm": ("exact", "diag"),
    "gru": ("exact", "diag"),
    "indrnn": ("exact",),
}
_G = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
_V = {"rnn": 1, "lstm": 2, "gru": 1, "indrnn": 1}  # state vectors per unit: h (and c)

# The default budget for the sensitivity tensor of one call (bytes);
# RNNKIT_RTRL_MAX_BYTES overrides it.
DEFAULT_BUDGET = 2 << 30


def columns(cell, H, C):
    """K: the columns of one weight row's sensitivity, z = [h_prev; x; 1] (RNN,
    LSTM), [h_prev; x; 1_ih; 1_hh] (GRU); IndRNN: [h_prev[k]; x; 1]."""
    if cell == "gru":
        return H + C + 2
    if cell == "indrnn":
        return C + 2
    return H + C + 1


def sens_shape(cell, mode, N, H, C):
    """Shape of the sensitivity array ``S`` of a state.

    exact (RNN, LSTM, GRU): [N, V*H, G*H*K + V*H]: rows are the state entries
    (h, then c for LSTM), columns every weight row's K columns (row r of the
    stacked [W_hh | W_ih | b], gate-major as PyTorch), then the initial state
    (h0, then c0).
    diag, simplified, and IndRNN exact: [N, H, V, G*K + V]: unit k's own
    sensitivities to its own G rows and to its own initial state entries.
    """
    G, V, K = _G[cell], _V[cell], columns(cell, H, C)
    if mode == "exact" and cell != "indrnn":
        return (N, V * H, G * H * K + V * H)
    return (N, H, V, G * K + V)


def initial_sens(cell, mode, N, H, C, dtype):
    """The sensitivities at the start of a stream: zero for every weight, the
    identity for the initial state (dh0/dh0 = 1)."""
    G, V, K = _G[cell], _V[cell], columns(cell, H, C)
    S = np.zeros(sens_shape(cell, mode, N, H, C), dtype)
    if mode == "exact" and cell != "indrnn":
        base = G * H * K
        idx = np.arange(V * H)
        S[:, idx, base + idx] = 1
    else:
        for v in range(V):
            S[:, :, v, G * K + v] = 1
    return S


def sens_budget():
    """Bytes one call's sensitivities may take (RNNKIT_RTRL_MAX_BYTES, default 2 GiB)."""
    env = os.environ.get("RNNKIT_RTRL_MAX_BYTES")
    if env is None or env.strip() == "":
        return DEFAULT_BUDGET
    try:
        value = int(env)
    except ValueError:
        raise ValueError(f"RNNKIT_RTRL_MAX_BYTES must be an integer byte count, got {env!r}") from None
    if value < 0:
        raise ValueError(f"RNNKIT_RTRL_MAX_BYTES must be >= 0, got {value}")
    return value


class RTRLState:
    """The carried state of an RTRL stream: ``h`` [N,H] (and ``c`` for LSTM),
    the sensitivities ``S`` (layout: ``sens_shape``), and what identifies the
    stream (cell, mode, nonlinearity, dtype, sizes).

    Pass it as ``state=`` to the next call of the same function to continue
    the stream: y and h_n come out bit for bit as from one call over the
    whole stream, and the gradients of the chunks sum to the one-call
    gradients (dh0 and dc0 always refer to the first call's h0 and c0).
    A state from a ``reverse=True`` call cannot be continued (``continuable``
    is False): the reverse direction starts at each sequence's end, which a
    stream does not know yet. A call never modifies the state it is given.
    """

    def __init__(self, cell, mode, nonlinearity, h, c, S, *, continuable, backend):
        self.cell = cell
        self.mode = mode
        self.nonlinearity = nonlinearity
        self.h = h
        self.c = c
        self.S = S
        self.continuable = bool(continuable)
        self.backend = backend

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.h, self.c, self.S) if a is not None))

    def as_dict(self) -> dict:
        """The arrays, by name (what tests compare across backends)."""
        d = {"h": self.h, "S": self.S}
        if self.c is not None:
            d["c"] = self.c
        return d

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.as_dict().items())
        return f"RTRLState({self.cell}, mode={self.mode!r}, {self.backend}: {shapes})"
