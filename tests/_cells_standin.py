"""A test-only NumPy stand-in for the user-cells API (rnnkit.Recurrent and
rnnkit.cells.PeepholeLSTMCell / GRUResetBeforeCell), written from its stated
interface and equations, so that the ONNX and Keras mappings to those cells
can be checked in a tree that does not have them yet. It is not rnnkit's
implementation and is never installed; the real cells replace it after merging.
"""

from __future__ import annotations

import types

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class PeepholeLSTMCell:
    """LSTM (gates i, f, g, o in w_ih) with peepholes peephole_l{k} (3, H) in ONNX order i, o, f."""

    gates = 4
    extra = {"peephole": lambda H: (3, H)}

    @staticmethod
    def step(xw, h, c, w_hh, b_hh, extra):
        H = h.shape[1]
        p_i, p_o, p_f = extra["peephole"]
        a = xw + h @ w_hh.T + b_hh  # N,4H
        i = _sigmoid(a[:, :H] + p_i * c)
        f = _sigmoid(a[:, H : 2 * H] + p_f * c)
        g = np.tanh(a[:, 2 * H : 3 * H])
        c2 = f * c + i * g
        o = _sigmoid(a[:, 3 * H :] + p_o * c2)
        return o * np.tanh(c2), c2


class GRUResetBeforeCell:
    """GRU, gates r, z, n; n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)."""

    gates = 3
    extra = {}

    @staticmethod
    def step(xw, h, c, w_hh, b_hh, extra):
        H = h.shape[1]
        hr = h @ w_hh[: 2 * H].T + b_hh[: 2 * H]
        r = _sigmoid(xw[:, :H] + hr[:, :H])
        z = _sigmoid(xw[:, H : 2 * H] + hr[:, H:])
        n = np.tanh(xw[:, 2 * H :] + (r * h) @ w_hh[2 * H :].T + b_hh[2 * H :])
        return (1 - z) * n + z * h, None


class Recurrent:
    def __init__(
        self,
        cell,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        batch_first=False,
        dropout=0.0,
        dtype=np.float32,
        seed=None,
    ):
        self.cell = cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.batch_first, self.dtype = (
            bidirectional,
            batch_first,
            np.dtype(dtype),
        )
        self.num_directions = 2 if bidirectional else 1
        self.has_c = isinstance(cell, PeepholeLSTMCell)
        rng = np.random.default_rng(seed)
        G, H = cell.gates, hidden_size
        self.parameters = {}
        for k in range(num_layers):
            C = input_size if k == 0 else H * self.num_directions
            for d in range(self.num_directions):
                s = f"_l{k}" + ("_reverse" if d else "")
                shapes = {
                    "weight_ih": (G * H, C),
                    "weight_hh": (G * H, H),
                    "bias_ih": (G * H,),
                    "bias_hh": (G * H,),
                }
                shapes.update({n: f(H) for n, f in cell.extra.items()})
                for n, shp in shapes.items():
                    self.parameters[n + s] = rng.uniform(-0.3, 0.3, shp).astype(self.dtype)

    def state_dict(self):
        return {k: v.copy() for k, v in self.parameters.items()}

    def load_state_dict(self, sd):
        assert set(sd) == set(self.parameters), (sorted(sd), sorted(self.parameters))
        for k, v in sd.items():
            v = np.asarray(v)
            assert v.shape == self.parameters[k].shape, (k, v.shape)
            self.parameters[k][...] = v

    def _direction(self, x, h, c, s, lengths, reverse):
        T, N, _ = x.shape
        P = self.parameters
        extra = {n: P[n + s] for n in self.cell.extra}
        xw = x @ P["weight_ih" + s].T + P["bias_ih" + s]
        y = np.zeros((T, N, self.hidden_size), self.dtype)
        L = np.full(N, T) if lengths is None else np.asarray(lengths)
        for t in range(T - 1, -1, -1) if reverse else range(T):
            h2, c2 = self.cell.step(xw[t], h, c, P["weight_hh" + s], P["bias_hh" + s], extra)
            act = (t < L)[:, None]
            h = np.where(act, h2, h)
            if c is not None:
                c = np.where(act, c2, c)
            y[t] = np.where(act, h, 0)
        return y, h, c

    def __call__(self, x, state=None, lengths=None):
        x = x.transpose(1, 0, 2) if self.batch_first else x
        T, N, _ = x.shape
        D, H = self.num_directions, self.hidden_size
        shape = (self.num_layers * D, N, H)
        h0, c0 = (state if state is not None else (None, None)) if self.has_c else (state, None)
        h0 = np.zeros(shape, self.dtype) if h0 is None else h0
        c0 = np.zeros(shape, self.dtype) if c0 is None else c0
        hs, cs, inp = np.empty(shape, self.dtype), np.empty(shape, self.dtype), x
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                i = k * D + d
                y, hs[i], c = self._direction(
                    inp,
                    h0[i],
                    c0[i] if self.has_c else None,
                    f"_l{k}" + ("_reverse" if d else ""),
                    lengths,
                    d == 1,
                )
                if self.has_c:
                    cs[i] = c
                outs.append(y)
            inp = np.concatenate(outs, axis=2)
        y = inp.transpose(1, 0, 2) if self.batch_first else inp
        return y, ((hs, cs) if self.has_c else hs)


def install(monkeypatch, rnnkit):
    """Put the stand-in in place of the real API for one test (monkeypatch undoes it)."""
    monkeypatch.setattr(rnnkit, "Recurrent", Recurrent, raising=False)
    cells = types.SimpleNamespace(
        PeepholeLSTMCell=PeepholeLSTMCell, GRUResetBeforeCell=GRUResetBeforeCell
    )
    monkeypatch.setattr(rnnkit, "cells", cells, raising=False)
