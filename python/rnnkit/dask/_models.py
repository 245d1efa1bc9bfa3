"""What rnnkit.dask runs inside a task: a model as a chain of rnnkit modules
(or a fitted estimator), its forward/backward on one shard, and the
shard-gradient function. It imports NumPy and rnnkit only (never dask), so
that the functions pickle by reference and run on any worker.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping

import numpy as np

from .. import nn
from ..layers import _RNNBase

_LOSSES = ("mse", "cross_entropy")


def _is_layer(m) -> bool:
    return isinstance(m, _RNNBase)


def _is_module(m) -> bool:
    return _is_layer(m) or isinstance(m, nn.Module)


def _is_estimator(m) -> bool:
    from ..sklearn import _RNNEstimator

    return isinstance(m, _RNNEstimator)


class Chain:
    """A model made of rnnkit modules applied in order to ``x [N, T, C]``.

    ``model`` is one layer or ``nn`` module, a list/tuple of them, or a dict
    ``name -> module`` (names prefix the parameters, as
    :func:`rnnkit.nn.named_parameters`; a list uses ``"0"``, ``"1"``, ...).
    Recurrent layers get ``lengths`` and run batch-major whatever their
    ``batch_first`` (the dask arrays are always ``[N, T, C]``); ``nn.Linear``
    maps the last axis; ``nn.Embedding`` takes integer ids ``[N, T]``.
    """

    def __init__(self, model):
        if _is_module(model):
            items, self.single = [("", model)], True
        elif isinstance(model, Mapping):
            items, self.single = list(model.items()), False
        elif isinstance(model, (list, tuple)):
            items, self.single = [(str(i), m) for i, m in enumerate(model)], False
        else:
            raise TypeError(
                "model must be an rnnkit layer (RNN, LSTM, GRU, IndRNN), an rnnkit.nn module, "
                "a list or dict of them, or an rnnkit.sklearn estimator, got "
                f"{type(model).__name__}"
            )
        if not items:
            raise ValueError("model is an empty list/dict of modules")
        for name, m in items:
            if not _is_module(m):
                raise TypeError(
                    f"model[{name!r}] must be an rnnkit layer or rnnkit.nn module, got "
                    f"{type(m).__name__}"
                )
        self.items = items

    # -- parameters, under one flat naming --
    def _name(self, prefix, k):
        return k if self.single else f"{prefix}.{k}"

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        return {self._name(p, k): v for p, m in self.items for k, v in m.parameters.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {self._name(p, k): v for p, m in self.items for k, v in m.grads.items()}

    def zero_grad(self):
        for _, m in self.items:
            m.zero_grad()

    def layers(self):
        return [m for _, m in self.items if _is_layer(m)]

    # -- running --
    def __call__(self, x, lengths=None):
        h = x
        for _, m in self.items:
            if _is_layer(m):
                h = _layer_call(m, h, lengths)
            else:
                h = m(h)
        return h

    def forward(self, x, lengths=None):
        tapes, h = [], x
        for _, m in self.items:
            if _is_layer(m):
                h_in = h if m.batch_first else np.ascontiguousarray(h.transpose(1, 0, 2))
                y, _, tape = m.forward(h_in, None, lengths)
                h = y if m.batch_first else np.ascontiguousarray(y.transpose(1, 0, 2))
            else:
                h, tape = m.forward(h)
            tapes.append(tape)
        return h, tapes

    def backward(self, tapes, dout):
        g = dout
        for (_, m), tape in zip(reversed(self.items), reversed(tapes)):
            if _is_layer(m):
                g_in = g if m.batch_first else np.ascontiguousarray(g.transpose(1, 0, 2))
                dx, _ = m.backward(tape, g_in)
                g = dx if m.batch_first else np.ascontiguousarray(dx.transpose(1, 0, 2))
            else:
                g = m.backward(tape, g)
                if g is None:  # an Embedding: ids are not differentiable, nothing before it
                    break


def _layer_call(layer, x, lengths):
    """Inference through one layer, batch-major in and out."""
    if layer.batch_first:
        return layer(x, None, lengths)[0]
    y = layer(np.ascontiguousarray(x.transpose(1, 0, 2)), None, lengths)[0]
    return np.ascontiguousarray(y.transpose(1, 0, 2))


# ---------------------------------------------------------------------------
# Losses, as sums: each shard returns (loss sum, gradient of the sum, the
# count the mean divides by); the driver divides the fixed-order total.
# ---------------------------------------------------------------------------


def check_loss(loss) -> str:
    if loss is nn.mse_loss:
        return "mse"
    if loss is nn.softmax_cross_entropy:
        return "cross_entropy"
    if loss not in _LOSSES:
        raise ValueError(
            f"loss must be 'mse', 'cross_entropy', rnnkit.nn.mse_loss or "
            f"rnnkit.nn.softmax_cross_entropy, got {loss!r}"
        )
    return loss


def loss_sum(loss: str, out, target, mask):
    """``(sum of the loss, its gradient w.r.t. out, the mean's denominator)``."""
    if loss == "cross_entropy":
        value, dout = nn.softmax_cross_entropy(out, target, mask, reduction="sum")
        denom = float(target.size) if mask is None else float(np.sum(mask, dtype=np.float64))
    else:
        value, dout = nn.mse_loss(out, target, mask, reduction="sum")
        if mask is None:
            denom = float(out.size)
        else:
            per = int(np.prod(out.shape[np.ndim(mask) :], dtype=np.int64))
            denom = float(np.sum(mask, dtype=np.float64)) * per
    return value, dout, denom


def step_mask(lengths, N, T):
    if lengths is None:
        return None
    return np.arange(T)[None, :] < lengths[:, None]  # N,T


# ---------------------------------------------------------------------------
# The programs a replica runs: one for chains, one for the estimators
# ---------------------------------------------------------------------------


class ChainProgram:
    """Gradient of ``loss(chain(x), y)`` on a shard; ``output="last"`` reads
    each sequence's output at its last real step (many-to-one)."""

    def __init__(self, chain: Chain, loss: str, output: str):
        self.chain, self.loss, self.output = chain, loss, output

    @property
    def parameters(self):
        return self.chain.parameters

    def modules(self):
        return [m for _, m in self.chain.items]

    def grad(self, x, y, lengths):
        ch = self.chain
        ch.zero_grad()
        out, tapes = ch.forward(x, lengths)  # N,T,K
        N, T = out.shape[:2]
        if self.output == "last":
            last = (np.full(N, T, np.int64) if lengths is None else lengths) - 1
            if np.any(last < 0):
                raise ValueError("output='last' needs every length >= 1")
            rows = np.arange(N)
            value, dsel, denom = loss_sum(self.loss, out[rows, last], y, None)
            dout = np.zeros_like(out)
            dout[rows, last] = dsel
        else:
            value, dout, denom = loss_sum(self.loss, out, y, step_mask(lengths, N, T))
        ch.backward(tapes, dout)
        return value, denom


class EstimatorProgram:
    """An RNNClassifier/RNNRegressor's own forward/backward (many-to-one reads
    the final states) with its own loss, as sums."""

    def __init__(self, est):
        self.est = est

    @property
    def parameters(self):
        return nn.named_parameters(self.est._modules)

    def modules(self):
        return list(self.est._modules.values())

    def grad(self, x, y, lengths):
        est = self.est
        for m in est._modules.values():
            m.zero_grad()
        out, tapes = est._forward(x, lengths, training=True)
        if est._estimator_type == "classifier":
            value, dout, denom = loss_sum("cross_entropy", out, y, None)
        else:
            mask = step_mask(lengths, *x.shape[:2]) if est._many_to_many else None
            value, dout, denom = loss_sum("mse", out, y, mask)
        est._backward(tapes, dout)
        return value, denom


def program_grads(program) -> dict[str, np.ndarray]:
    if isinstance(program, EstimatorProgram):
        return nn.named_grads(program.est._modules)
    return program.chain.grads


# ---------------------------------------------------------------------------
# Worker side. A task never mutates anything a rerun would see: the replica is
# this thread's private copy of the shipped template, and every value it holds
# (weights, gradients, dropout generators) is overwritten from the task's
# arguments before use.
# ---------------------------------------------------------------------------

_local = threading.local()


def _replica(template):
    # One private copy per worker thread, so that threaded workers never share
    # mutable arrays; replaced when a new template (a new fit) arrives.
    cached = getattr(_local, "replica", None)
    if cached is None or cached[0] is not template:
        cached = (template, copy.deepcopy(template))
        _local.replica = cached
    return cached[1]


def shard_grad(template, weights, shard, rows, seed):
    """``(loss sum, denominator, {name: gradient sum})`` of the rows ``rows``
    of ``shard`` at ``weights``: a pure function of its arguments."""
    program = _replica(template)
    params = program.parameters
    for k, p in params.items():
        np.copyto(p, weights.arrays[k])
    for i, m in enumerate(program.modules()):
        if _is_layer(m):  # dropout masks: a function of (seed, step, shard), nothing else
            m.generator = np.random.default_rng(list(seed) + [i])
    x = shard["x"][rows]
    y = shard["y"][rows]
    lengths = None if shard["lengths"] is None else shard["lengths"][rows]
    value, denom = program.grad(x, y, lengths)
    grads = {k: g.copy() for k, g in program_grads(program).items()}
    return GradSum(value, denom, grads, int(len(rows)))


class GradSum:
    """A partial sum of shard gradients (and of their losses and counts)."""

    __slots__ = ("loss", "denom", "grads", "rows")

    def __init__(self, loss, denom, grads, rows):
        self.loss, self.denom, self.grads, self.rows = loss, denom, grads, rows


def add(a: GradSum, b: GradSum) -> GradSum:
    """``a + b``, key by key: one node of the fixed-shape reduction tree."""
    return GradSum(
        a.loss + b.loss,
        a.denom + b.denom,
        {k: a.grads[k] + b.grads[k] for k in a.grads},
        a.rows + b.rows,
    )


class Weights:
    """The weights of one step, shipped as one object (one key per step)."""

    __slots__ = ("version", "arrays")

    def __init__(self, version, arrays):
        self.version, self.arrays = version, arrays


def make_shard(x, y, lengths):
    return {"x": x, "y": y, "lengths": lengths}
