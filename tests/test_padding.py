"""Padding never leaks: values in x and dy at or past a sequence's length (NaN,
inf, 1e30) change no output and no gradient, on both backends, every cell,
both dtypes, both directions. Not here: what the padded steps compute
(test_reference_semantics.py: state carried, y zero).
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import reference as R

try:
    from rnnkit import functional as F
except ImportError:  # no native core: the reference alone
    F = None

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None), ("indrnn", "relu")]
G = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
BACKENDS = ["reference"] + (["native"] if F is not None else [])
FILLS = [np.nan, np.inf, 1e30]


def run(mod, cell, nl, x, dy, w, lengths, reverse):
    fwd, bwd = getattr(mod, f"{cell}_forward"), getattr(mod, f"{cell}_backward")
    kw = dict(lengths=lengths, reverse=reverse)
    if nl is not None:
        kw["nonlinearity"] = nl
    N, H = x.shape[1], w["h0"].shape[1]
    if cell == "lstm":
        y, h, c, cache = fwd(x, w["h0"], w["c0"], w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"], **kw)
        grads = bwd(dy, np.ones((N, H), x.dtype), np.ones((N, H), x.dtype), cache)
        return [y, h, c, *grads]
    y, h, cache = fwd(x, w["h0"], w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"], **kw)
    grads = bwd(dy, np.ones((N, H), x.dtype), cache)
    return [y, h, *grads]


def case(cell, dtype, T=6, N=4, C=5, H=7, seed=0):
    """x, dy, weights, lengths (some full, some partial, one empty) and the padding mask."""
    rng = np.random.default_rng(seed)
    g = G[cell]

    def r(*shape, s=0.5):
        return (rng.standard_normal(shape) * s).astype(dtype)

    w = dict(
        h0=r(N, H),
        c0=r(N, H),
        w_ih=r(g * H, C),
        w_hh=r(H) if cell == "indrnn" else r(g * H, H),
        b_ih=r(g * H),
        b_hh=r(g * H),
    )
    lengths = np.array([T, 3, 0, 1] * (N // 4), np.int64)
    pad = np.arange(T)[:, None] >= lengths  # T,N: True at padding
    return r(T, N, C), r(T, N, H), w, lengths, pad


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,nl", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_changes_nothing(backend, cell, nl, dtype, reverse):
    mod = R if backend == "reference" else F
    x, dy, w, lengths, pad = case(cell, dtype)
    x[pad], dy[pad] = 0, 0
    want = run(mod, cell, nl, x, dy, w, lengths, reverse)
    assert all(np.isfinite(a).all() for a in want)
    for fill in FILLS:
        xf, dyf = x.copy(), dy.copy()
        xf[pad], dyf[pad] = fill, fill
        with np.errstate(all="ignore"):  # the reference may compute inf - inf at padding
            got = run(mod, cell, nl, xf, dyf, w, lengths, reverse)
        for i, (g_, w_) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(
                g_, w_, err_msg=f"{backend} {cell} {dtype.__name__} fill={fill} output {i}"
            )


# C past the kernels' column block (full panels, not only the padded tail) and
# T*N past the weight-gradient GEMM's K block (512 rows).
@pytest.mark.skipif(F is None, reason="needs the native core")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,nl", [("lstm", None), ("gru", None), ("rnn", "tanh")])
def test_native_padding_large_shape(cell, nl, dtype):
    x, dy, w, lengths, pad = case(cell, dtype, T=40, N=16, C=37, H=9)
    x[pad], dy[pad] = 0, 0
    want = run(F, cell, nl, x, dy, w, lengths, False)
    for fill in FILLS:
        xf, dyf = x.copy(), dy.copy()
        xf[pad], dyf[pad] = fill, fill
        got = run(F, cell, nl, xf, dyf, w, lengths, False)
        for i, (g_, w_) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(g_, w_, err_msg=f"{cell} fill={fill} output {i}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN, rnnkit.IndRNN])
def test_layer_padding_changes_nothing(backend, cls):
    """Two layers, both directions: the second layer's input at padding is the
    first's y there (0), and the gradients ignore dy there."""
    T, N, C, H = 6, 4, 5, 3
    layer = cls(C, H, num_layers=2, bidirectional=True, seed=1, backend=backend, dtype=np.float64)
    rng = np.random.default_rng(2)
    lengths = np.array([6, 2, 0, 4])
    pad = np.arange(T)[:, None] >= lengths
    x = rng.standard_normal((T, N, C))
    dy = rng.standard_normal((T, N, 2 * H))
    x[pad], dy[pad] = 0, 0
    results = []
    for fill in (0.0, np.nan, 1e30):
        xf, dyf = x.copy(), dy.copy()
        xf[pad], dyf[pad] = fill, fill
        layer.zero_grad()
        with np.errstate(all="ignore"):
            y, state, tape = layer.forward(xf, lengths=lengths)
            dx, _ = layer.backward(tape, dyf)
        results.append([y, dx, *(layer.grads[k].copy() for k in sorted(layer.grads))])
    for got in results[1:]:
        for g_, w_ in zip(got, results[0]):
            np.testing.assert_array_equal(g_, w_)
