"""rnnkit.rtrl.OnlineLearner: its update is the loss's exact gradient (held to
the layer's own BPTT over the same chunk), it continues streams, accumulates
over update_every steps, and refuses what RTRL cannot do. Not here: the
*_rtrl functions themselves (test_rtrl.py)."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.rtrl import OnlineLearner

from _native_util import fresh_seed, rel_err

LAYERS = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.IndRNN]


def _bptt_grads(layer, readout, x, target):
    """The gradient of mse(readout(layer(x))) by the layer's BPTT, by name."""
    layer.zero_grad()
    readout.zero_grad()
    y, _, tape = layer.forward(x)
    pred, rtape = readout.forward(y)
    _, dpred = nn.mse_loss(pred, target)
    layer.backward(tape, readout.backward(rtape, dpred))
    return dict(layer.grads, **{"readout." + k: v for k, v in readout.grads.items()})


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_update_is_the_exact_gradient(cls, backend):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    T, N, C, H, O = 5, 3, 4, 6, 2
    layer = cls(C, H, dtype=np.float64, seed=seed % 1000, backend=backend)
    readout = nn.Linear(H, O, dtype=np.float64, seed=1)
    x = rng.standard_normal((T, N, C))
    target = rng.standard_normal((T, N, O))
    want = _bptt_grads(layer, readout, x, target)
    before = {k: v.copy() for k, v in dict(layer.parameters, **{"readout." + k: v for k, v in readout.parameters.items()}).items()}
    lr = 0.1
    learner = OnlineLearner(layer, lambda p: nn.SGD(p, lr=lr), update_every=T, readout=readout, loss="mse")
    loss = learner.step(x, target)
    assert np.isfinite(loss) and loss > 0
    for k, p in learner.parameters.items():
        got = (before[k] - p) / lr
        assert rel_err(got, want[k]) < 1e-9, f"seed {seed} {cls.__name__} {k}"


def test_steps_accumulate_until_update_every():
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    layer = rnnkit.RNN(3, 4, dtype=np.float64, seed=0)
    learner = OnlineLearner(layer, lambda p: nn.SGD(p, lr=0.1), update_every=3, out_features=1)
    w0 = layer.parameters["weight_hh_l0"].copy()
    for i in range(2):
        learner.step(rng.standard_normal((2, 3)), rng.standard_normal((2, 1)))
        assert np.array_equal(layer.parameters["weight_hh_l0"], w0), "updated before update_every steps"
    learner.step(rng.standard_normal((2, 3)), rng.standard_normal((2, 1)))
    assert not np.array_equal(layer.parameters["weight_hh_l0"], w0)
    assert learner.steps == 3 and learner.state is not None


def test_chunked_and_stepwise_streams_agree_without_updates():
    """With lr = 0 a stream fed step by step and in one chunk carries the same state."""
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 2, 3))
    tg = rng.standard_normal((6, 2, 1))
    states = []
    for chunked in (False, True):
        layer = rnnkit.LSTM(3, 4, dtype=np.float64, seed=0)
        ln = OnlineLearner(layer, lambda p: nn.SGD(p, lr=0.0), mode="diag", out_features=1, seed=2)
        if chunked:
            ln.step(x, tg)
        else:
            for t in range(6):
                ln.step(x[t], tg[t])
        states.append(ln.state)
    assert np.allclose(states[0].S, states[1].S, rtol=1e-12, atol=1e-14)
    assert np.allclose(states[0].h, states[1].h, rtol=1e-12, atol=1e-14)


def test_refusals():
    opt = lambda p: nn.SGD(p, lr=0.1)  # noqa: E731
    with pytest.raises(ValueError, match="bidirectional"):
        OnlineLearner(rnnkit.RNN(3, 4, bidirectional=True), opt)
    with pytest.raises(ValueError, match="num_layers=2"):
        OnlineLearner(rnnkit.GRU(3, 4, num_layers=2), opt)
    with pytest.raises(TypeError, match="layer must be"):
        OnlineLearner(nn.Linear(3, 4), opt)
    with pytest.raises(ValueError, match="mode must be one of"):
        OnlineLearner(rnnkit.IndRNN(3, 4), opt, mode="diag")
    with pytest.raises(ValueError, match="update_every"):
        OnlineLearner(rnnkit.RNN(3, 4), opt, update_every=0)
    layer = rnnkit.RNN(3, 4)
    with pytest.raises(ValueError, match="optimizer must be over"):
        OnlineLearner(layer, nn.SGD(layer.parameters, lr=0.1))
