"""The NumPy reference's BPTT against central finite differences, in float64,
for every gradient of every cell: both directions, lengths in any order with 0
and T among them, and the smallest shapes. This is what makes the reference the
spec; the native core is then held to the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import reference as ref

EPS = 1e-6
RTOL = 1e-6
KINK = 1e-4  # relu cases need every active pre-activation this far from 0

GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
VARIANTS = [
    ("rnn", "tanh"),
    ("rnn", "relu"),
    ("lstm", None),
    ("gru", None),
    ("indrnn", "relu"),
    ("indrnn", "tanh"),
]
# (T, N, C, H, lengths): lengths in shuffled order, with 0, T and values between
SHAPES = [
    (4, 4, 2, 3, [3, 0, 4, 1]),
    (5, 3, 3, 2, [2, 5, 0]),
    (4, 3, 2, 3, None),
    (1, 1, 1, 1, None),
    (1, 1, 2, 1, [1]),
    (1, 1, 1, 1, [0]),
]


def make_inputs(cell, T, N, C, H, rng):
    G = GATES[cell]
    inputs = {
        "x": rng.standard_normal((T, N, C)),
        "h0": rng.uniform(-0.8, 0.8, (N, H)),
        "w_ih": rng.uniform(-1, 1, (G * H, C)),
        "w_hh": rng.uniform(-1, 1, (H,) if cell == "indrnn" else (G * H, H)),
        "b_ih": rng.uniform(-0.5, 0.5, G * H),
        "b_hh": rng.uniform(-0.5, 0.5, G * H),
    }
    if cell == "lstm":
        inputs["c0"] = rng.uniform(-0.8, 0.8, (N, H))
    return inputs


def forward(cell, nonlinearity, inputs, lengths, reverse):
    """(outputs, cache): outputs are y, h_n and, for LSTM, c_n."""
    f = getattr(ref, f"{cell}_forward")
    states = (inputs["h0"], inputs["c0"]) if cell == "lstm" else (inputs["h0"],)
    kw = {"lengths": lengths, "reverse": reverse}
    if nonlinearity is not None:
        kw["nonlinearity"] = nonlinearity
    out = f(
        inputs["x"], *states, inputs["w_ih"], inputs["w_hh"], inputs["b_ih"], inputs["b_hh"], **kw
    )
    return out[:-1], out[-1]


def loss(outputs, weights):
    """L = sum(y*Ry) + sum(h_n*Rh) (+ sum(c_n*Rc)): exercises dy, dh_n and dc_n."""
    return sum(float(np.sum(o * r)) for o, r in zip(outputs, weights))


def numerical_grad(cell, nonlinearity, inputs, lengths, reverse, weights, name):
    a = inputs[name]
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        saved = a[idx]
        a[idx] = saved + EPS
        plus = loss(forward(cell, nonlinearity, inputs, lengths, reverse)[0], weights)
        a[idx] = saved - EPS
        minus = loss(forward(cell, nonlinearity, inputs, lengths, reverse)[0], weights)
        a[idx] = saved
        grad[idx] = (plus - minus) / (2 * EPS)
    return grad


def pre_activations(cell, inputs, cache):
    """The RNN/IndRNN pre-activations at every step, recomputed independently
    of the reference (which does not keep them): T,N,H"""
    x, h0 = inputs["x"], inputs["h0"]
    h = cache.h
    h_prev = (
        np.concatenate([h[1:], h0[None]]) if cache.reverse else np.concatenate([h0[None], h[:-1]])
    )
    rec = inputs["w_hh"] * h_prev if cell == "indrnn" else h_prev @ inputs["w_hh"].T
    return x @ inputs["w_ih"].T + inputs["b_ih"] + rec + inputs["b_hh"]


def relu_usable(cell, inputs, lengths, reverse):
    """Every active pre-activation at least KINK from 0, and a quarter of them
    positive, so that gradients flow and finite differences are meaningful."""
    _, cache = forward(cell, "relu", inputs, lengths, reverse)
    pre = pre_activations(cell, inputs, cache)
    active = np.arange(pre.shape[0])[:, None] < cache.lengths[None, :]  # T,N
    pre = pre[active]
    return pre.size == 0 or (np.min(np.abs(pre)) > KINK and np.mean(pre > 0) >= 0.25)


def relative_error(analytic, numerical):
    return np.linalg.norm(analytic - numerical) / max(
        np.linalg.norm(numerical), np.finfo(float).tiny
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}N{}C{}H{}-lengths{}".format(*s))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell,nonlinearity", VARIANTS, ids=lambda v: str(v))
def test_gradients_match_finite_differences(cell, nonlinearity, reverse, shape):
    T, N, C, H, lengths = shape
    # relu has a kink at 0 where finite differences are meaningless: take the
    # first seed whose active pre-activations all stay clear of it.
    for seed in range(100):
        rng = np.random.default_rng([seed, T, N, C, H, GATES[cell]])
        inputs = make_inputs(cell, T, N, C, H, rng)
        if nonlinearity != "relu" or relu_usable(cell, inputs, lengths, reverse):
            break
    else:
        pytest.fail("no seed keeps the relu pre-activations away from the kink")

    outputs, cache = forward(cell, nonlinearity, inputs, lengths, reverse)
    weights = [rng.standard_normal(o.shape) for o in outputs]  # Ry, Rh (, Rc)
    backward = getattr(ref, f"{cell}_backward")
    grads = backward(*weights, cache)

    names = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]
    if cell != "lstm":
        names.remove("c0")
    assert len(grads) == len(names)
    any_active = lengths is None or max(lengths) > 0
    for name, analytic in zip(names, grads):
        numerical = numerical_grad(cell, nonlinearity, inputs, lengths, reverse, weights, name)
        assert analytic.shape == inputs[name].shape, f"d{name}: shape {analytic.shape}"
        assert analytic.dtype == np.float64, f"d{name}: dtype {analytic.dtype}"
        err = relative_error(analytic, numerical)
        diff = np.max(np.abs(analytic - numerical))
        assert err <= RTOL, f"d{name}: relative error {err:.3e}, max abs diff {diff:.3e}"
        if any_active or name in ("h0", "c0"):
            # Guard against a vacuous pass: this gradient must be exercised.
            assert np.linalg.norm(numerical) > 1e-3, f"d{name} is ~0: the case tests nothing"
        else:
            # No step is active: only the initial states reach the loss.
            assert not np.any(analytic), f"d{name} should be exactly 0, max {diff:.3e}"


def test_relative_error_flags_a_wrong_gradient():
    """The criterion is tight enough to see a small error in one entry."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal((4, 3))
    wrong = g.copy()
    wrong[1, 2] += 1e-4 * np.linalg.norm(g)
    assert relative_error(g, g) == 0
    assert relative_error(wrong, g) > RTOL
