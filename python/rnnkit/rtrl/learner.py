"""OnlineLearner: learn from an endless stream with RTRL, one step (or chunk)
at a time, memory independent of the stream's length (docs/rtrl.md).

It owns a linear readout (rnnkit.nn.Linear) on the layer's output and a
loss on the readout's output; it is not a general trainer (no multi-layer
or bidirectional layers, no BPTT).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..layers import GRU, LSTM, RNN, IndRNN

__all__ = ["OnlineLearner"]

_CELLS = {RNN: "rnn", LSTM: "lstm", GRU: "gru", IndRNN: "indrnn"}


def _mse(pred, target):
    return nn.mse_loss(pred, target)


def _xent(logits, target):
    return nn.softmax_cross_entropy(logits, target)


_LOSSES = {"mse": _mse, "cross_entropy": _xent}


class OnlineLearner:
    """Online learning with real-time recurrent learning.

    Parameters
    ----------
    layer : rnnkit.RNN, LSTM, GRU or IndRNN
        One layer, one direction (num_layers=1, bidirectional=False): RTRL
        carries the sensitivities of one recurrence; a stack would need the
        sensitivities of every layer to every lower layer's weights, and a
        reverse direction the future. Both are refused. Its parameters are
        updated in place; its backend ("native" or "reference") runs the RTRL.
    optimizer : rnnkit.nn.Optimizer, or a callable params -> Optimizer
        Over :attr:`parameters` (the layer's names, then ``readout.weight`` and
        ``readout.bias``). A callable (``lambda p: nn.Adam(p, lr=1e-3)``) is
        the easy way, since the readout is created here.
    mode : "exact", "simplified" (RNN), "diag" (RNN, LSTM, GRU)
    update_every : int
        Steps whose gradients are summed before one optimizer step.
    out_features : int, optional
        Size of the readout (``readout`` wins when given); default: hidden size.
    readout : rnnkit.nn.Linear, optional
    loss : "mse" (default), "cross_entropy", or a callable
        ``loss(logits [T,N,O], target) -> (loss, dlogits)``. "mse" is
        ``nn.mse_loss`` (mean over T, N and outputs), "cross_entropy" is
        ``nn.softmax_cross_entropy`` (integer targets [T,N], mean).
    seed : readout initialisation.

    ``step(x, target)`` takes one step (``x`` [N,C], ``target`` [N,...]) or a
    chunk (``x`` [T,N,C], ``target`` [T,N,...]), time-major. It runs the
    layer forward from the carried state, applies the readout and the loss,
    gets dy = dloss/dy from the readout, runs ``*_rtrl`` on the chunk with
    that dy (so the gradient is the loss's exact gradient for the current
    weights, in exact mode), and every ``update_every`` steps applies the
    optimizer. It returns the loss. The weights change while the
    sensitivities carry over, the usual online-RTRL approximation
    (Williams and Zipser 1989): with a small learning rate it tracks the
    gradient of the stream's loss.
    """

    def __init__(
        self,
        layer,
        optimizer,
        mode="exact",
        update_every=1,
        *,
        out_features=None,
        readout=None,
        loss="mse",
        seed=None,
    ):
        cell = _CELLS.get(type(layer))
        if cell is None:
            raise TypeError(
                f"layer must be an rnnkit.RNN, LSTM, GRU or IndRNN, got {type(layer).__name__}"
            )
        if layer.bidirectional:
            raise ValueError("OnlineLearner refuses bidirectional layers: the reverse direction needs the future")
        if layer.num_layers != 1:
            raise ValueError(
                f"OnlineLearner takes a one-layer layer, got num_layers={layer.num_layers}: "
                "RTRL through a stack needs every layer's sensitivity to the weights below it"
            )
        if layer.batch_first:
            raise ValueError("OnlineLearner takes time-major layers (batch_first=False)")
        if not layer.bias:
            raise ValueError("OnlineLearner needs a layer with biases (bias=True)")
        from ._state import MODES

        if not isinstance(mode, str) or mode not in MODES[cell]:
            raise ValueError(f"mode must be one of {MODES[cell]} for {type(layer).__name__}, got {mode!r}")
        if isinstance(update_every, bool) or not isinstance(update_every, (int, np.integer)) or update_every < 1:
            raise ValueError(f"update_every must be an int >= 1, got {update_every!r}")
        self.layer, self.cell, self.mode = layer, cell, mode
        self.update_every = int(update_every)
        H = layer.hidden_size
        if readout is None:
            readout = nn.Linear(H, H if out_features is None else out_features, dtype=layer.dtype, seed=seed)
        if not isinstance(readout, nn.Linear) or readout.in_features != H or readout.dtype != layer.dtype:
            raise ValueError(
                f"readout must be an rnnkit.nn.Linear({H}, ...) of dtype {layer.dtype}, got {readout!r}"
            )
        self.readout = readout
        if callable(loss):
            self._loss = loss
        elif loss in _LOSSES:
            self._loss = _LOSSES[loss]
        else:
            raise ValueError(f"loss must be 'mse', 'cross_entropy' or a callable, got {loss!r}")
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        self._names = names
        self.parameters = dict(layer.parameters)
        for k, v in readout.parameters.items():
            self.parameters["readout." + k] = v
        if isinstance(optimizer, nn.Optimizer):
            self.optimizer = optimizer
        elif callable(optimizer):
            self.optimizer = optimizer(self.parameters)
        else:
            raise TypeError(f"optimizer must be an rnnkit.nn.Optimizer or a callable, got {type(optimizer).__name__}")
        if not isinstance(self.optimizer, nn.Optimizer) or self.optimizer.params.keys() != self.parameters.keys():
            raise ValueError(
                f"optimizer must be over the learner's parameters {list(self.parameters)}"
            )
        module = self._module()
        self._rtrl = getattr(module, f"{cell}_rtrl")
        self._forward = getattr(module, f"{cell}_forward")
        self._acc = {k: np.zeros_like(v) for k, v in self.parameters.items()}
        self._pending = 0
        self.state = None
        self.steps = 0

    def _module(self):
        if self.layer.backend == "reference":
            from .. import reference

            return reference
        from .. import functional

        return functional

    def reset(self):
        """Start a new stream: zero state, sensitivities and pending gradients."""
        self.state = None
        self._pending = 0
        for v in self._acc.values():
            v[...] = 0

    def _kw(self):
        return {} if self.layer.nonlinearity is None else {"nonlinearity": self.layer.nonlinearity}

    def predict(self, x):
        """The readout's output for a step or chunk, from the carried state,
        without learning or advancing the stream."""
        return self.readout(self._run_forward(x)[0])

    def _run_forward(self, x):
        single = isinstance(x, np.ndarray) and x.ndim == 2
        xs = x[None] if single else x
        p = self.layer.parameters
        w = [p[n] for n in self._names]
        if self.state is None:
            states = [None, None] if self.cell == "lstm" else [None]
        else:
            states = [self.state.h, self.state.c] if self.cell == "lstm" else [self.state.h]
        out = self._forward(xs, *states, *w, training=False, **self._kw())
        return out[0], single, xs, w

    def step(self, x, target):
        """One step (x [N,C]) or chunk (x [T,N,C]): loss, RTRL gradient, maybe an update. Returns the loss."""
        y, single, xs, w = self._run_forward(x)
        target = np.asarray(target)
        tgt = target[None] if single else target
        logits, tape = self.readout.forward(y)  # T,N,O
        loss, dlogits = self._loss(logits, tgt)
        self.readout.zero_grad()
        dy = self.readout.backward(tape, dlogits)  # T,N,H
        states = [None, None] if self.cell == "lstm" else [None]  # h0 (c0): zeros, or the state's
        out = self._rtrl(xs, *states, *w, dy, mode=self.mode, state=self.state, **self._kw())
        grads, self.state = out[-2], out[-1]
        n_state = 2 if self.cell == "lstm" else 1
        for name, g in zip(self._names, grads[n_state:]):
            self._acc[name] += g
        for k, g in self.readout.grads.items():
            self._acc["readout." + k] += g
        self._pending += xs.shape[0]
        self.steps += xs.shape[0]
        if self._pending >= self.update_every:
            self.optimizer.step(self._acc)
            for v in self._acc.values():
                v[...] = 0
            self._pending = 0
        return float(loss)
