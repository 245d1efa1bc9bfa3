"""User-defined cells: rnnkit.Cell, rnnkit.Recurrent and rnnkit.cells.

The built-in cells through the Python-step path against the fused layers
(float64, 1e-10), every shipped cell through check_cell, a sabotaged backward
that check_cell must catch, extra-parameter gradients through whole layers,
the new cells' forward math against direct NumPy loops, the layer API, and
clear errors for bad cells. The native GEMMs themselves: test_cells_native.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import rnnkit
from rnnkit import cells

F64 = np.float64

BUILTINS = [
    (rnnkit.LSTM, lambda: cells.LSTMCell(), {}),
    (rnnkit.GRU, lambda: cells.GRUCell(), {}),
    (rnnkit.RNN, lambda: cells.RNNCell("tanh"), {"nonlinearity": "tanh"}),
    (rnnkit.RNN, lambda: cells.RNNCell("relu"), {"nonlinearity": "relu"}),
    (rnnkit.IndRNN, lambda: cells.IndRNNCell("relu"), {"nonlinearity": "relu"}),
    (rnnkit.IndRNN, lambda: cells.IndRNNCell("tanh"), {"nonlinearity": "tanh"}),
]
BUILTIN_IDS = ["lstm", "gru", "rnn-tanh", "rnn-relu", "indrnn-relu", "indrnn-tanh"]

ALL_CELLS = [
    cells.LSTMCell(),
    cells.GRUCell(),
    cells.RNNCell("tanh"),
    cells.RNNCell("relu"),
    cells.IndRNNCell("relu"),
    cells.IndRNNCell("tanh"),
    cells.PeepholeLSTMCell(),
    cells.LayerNormLSTMCell(),
    cells.GRUResetBeforeCell(),
    cells.MGUCell(),
]


def as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


def pack(states):
    return tuple(states) if len(states) > 1 else states[0]


def rel(a, b):
    a, b = np.asarray(a, F64), np.asarray(b, F64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else np.linalg.norm(a - b) / scale


def train_pass(layer, x, state, lengths, dy_seed=3):
    y, s_n, tape = layer.forward(x, state, lengths)
    rng = np.random.default_rng(dy_seed)
    dy = rng.standard_normal(y.shape).astype(y.dtype)
    ds = pack([rng.standard_normal(a.shape).astype(y.dtype) for a in as_list(s_n)])
    layer.zero_grad()
    dx, d0 = layer.backward(tape, dy, ds)
    return {"y": y, **{f"state{i}": a for i, a in enumerate(as_list(s_n))}, "dx": dx,
            **{f"dstate{i}": a for i, a in enumerate(as_list(d0))},
            **{f"grad {k}": g.copy() for k, g in layer.grads.items()}}


@pytest.mark.parametrize("cls,make,kw", BUILTINS, ids=BUILTIN_IDS)
@pytest.mark.parametrize("batch_first,bias", [(False, True), (True, True), (False, False)],
                         ids=["time-major", "batch-first", "no-bias"])
def test_builtin_cells_through_the_protocol_equal_the_fused_layers(cls, make, kw, batch_first, bias):
    rng = np.random.default_rng(11)
    T, N, C, H, L = 5, 4, 3, 6, 2
    fused = cls(C, H, L, bidirectional=True, batch_first=batch_first, dtype=F64, seed=1, bias=bias, **kw)
    steps = rnnkit.Recurrent(make(), C, H, L, bidirectional=True, batch_first=batch_first, dtype=F64, seed=2,
                             bias=bias, fused=False)
    assert fused.fused and not steps.fused
    steps.load_state_dict(fused.state_dict())
    x = rng.standard_normal((N, T, C) if batch_first else (T, N, C))
    lengths = np.array([5, 0, 3, 1])  # any order, with 0 and T
    S = len(make().states)
    state = pack([rng.standard_normal((L * 2, N, H)) for _ in range(S)])
    a = train_pass(fused, x, state, lengths)
    b = train_pass(steps, x, state, lengths)
    assert a.keys() == b.keys()
    for k in a:
        assert rel(b[k], a[k]) <= 1e-10, f"{k}: rel {rel(b[k], a[k]):.2e}"


def test_recurrent_with_a_builtin_cell_is_fused_by_default_and_equals_lstm():
    layer = rnnkit.Recurrent(cells.LSTMCell(), 3, 4, dtype=F64)
    assert layer.fused
    ref = rnnkit.LSTM(3, 4, dtype=F64, seed=0)
    layer.load_state_dict(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    np.testing.assert_array_equal(layer(x)[0], ref(x)[0])
    with pytest.raises(ValueError, match="fused=True needs one of the built-in cells.*PeepholeLSTMCell"):
        rnnkit.Recurrent(cells.PeepholeLSTMCell(), 3, 4, fused=True)

    class MyLSTM(cells.LSTMCell):  # a subclass may change the math: never fused
        pass

    assert not rnnkit.Recurrent(MyLSTM(), 3, 4).fused
    with pytest.raises(ValueError, match="backend"):
        rnnkit.Recurrent(cells.MGUCell(), 3, 4, backend="reference")


@pytest.mark.parametrize("cell", ALL_CELLS, ids=lambda c: repr(c))
def test_every_cell_passes_check_cell(cell):
    cells.check_cell(cell, 3, 4, max_entries=6)


class SabotagedLSTMCell(cells.LSTMCell):
    """dc_prev 1% off: a backward that is almost right."""

    def backward(self, dstate, saved, params):
        dgx, dgh, (dh, dc), dp = super().backward(dstate, saved, params)
        return dgx, dgh, (dh, dc * 1.01), dp


class SabotagedPeepholeCell(cells.PeepholeLSTMCell):
    """The peephole gradient's rows swapped (i <-> f): only dparams is wrong."""

    def backward(self, dstate, saved, params):
        dgx, dgh, dprev, dp = super().backward(dstate, saved, params)
        return dgx, dgh, dprev, {"peephole": dp["peephole"][[2, 1, 0]]}


class SabotagedGRUResetBefore(cells.GRUResetBeforeCell):
    """recurrent_input_backward forgets the path to h."""

    def recurrent_input_backward(self, j, du, saved, params):
        dgx, dgh, _, dp = super().recurrent_input_backward(j, du, saved, params)
        return dgx, dgh, None, dp


@pytest.mark.parametrize(
    "cell,what",
    [
        (SabotagedLSTMCell(), r"dstate_prev\[1\] \(c\)"),
        (SabotagedPeepholeCell(), r"dparams\['peephole'\]"),
        (SabotagedGRUResetBefore(), r"dstate_prev\[0\] \(h\).*recurrent_input"),
    ],
    ids=["lstm-dc", "peephole-dparams", "gru-reset-before-dh"],
)
def test_check_cell_catches_a_sabotaged_backward(cell, what):
    with pytest.raises(cells.CellGradientError, match=what) as info:
        cells.check_cell(cell, 3, 4, max_entries=6)
    assert isinstance(info.value, AssertionError)
    assert type(cell).__name__ in str(info.value) and "relative error" in str(info.value)


def test_check_cell_catches_a_sabotage_that_only_the_layer_reveals():
    # One step is right; the layer check must still run (and here pass) for it.
    # A cell whose step is right but whose params are initialised to the wrong
    # shape is refused when the layer is built.
    class BadInit(cells.PeepholeLSTMCell):
        def init_param(self, name, shape, generator, bound):
            return np.zeros((2, 2))

    with pytest.raises(rnnkit.CellError, match=r"BadInit.init_param.*peephole"):
        rnnkit.Recurrent(BadInit(), 3, 4)


def test_extra_param_grads_through_the_whole_layer_match_finite_differences():
    rng = np.random.default_rng(5)
    T, N, C, H, L = 4, 3, 2, 3, 2
    layer = rnnkit.Recurrent(cells.PeepholeLSTMCell(), C, H, L, bidirectional=True, dtype=F64, seed=2)
    x = rng.standard_normal((T, N, C))
    lengths = np.array([2, 4, 0])
    wy = rng.standard_normal((T, N, 2 * H))
    wc = rng.standard_normal((L * 2, N, H))

    def loss():
        y, (h, c) = layer(x, None, lengths)
        return np.sum(wy * y) + np.sum(wc * c)

    y, _, tape = layer.forward(x, None, lengths)
    layer.backward(tape, wy, (None, wc))
    for name in ("peephole_l0", "peephole_l0_reverse", "peephole_l1", "peephole_l1_reverse"):
        p, g = layer.parameters[name], layer.grads[name]
        num = np.empty_like(p)
        for i in range(p.size):
            v = p.flat[i]
            p.flat[i] = v + 1e-6
            fp = loss()
            p.flat[i] = v - 1e-6
            fm = loss()
            p.flat[i] = v
            num.flat[i] = (fp - fm) / 2e-6
        assert rel(g, num) <= 1e-6, f"{name}: rel {rel(g, num):.2e}"
        assert np.abs(g).max() > 0


# --- the new cells' forward math, against direct NumPy loops over one layer


def sig(a):
    return 1 / (1 + np.exp(-a))


def _loop(step, x, p, H, S):
    T, N, _ = x.shape
    st = [np.zeros((N, H)) for _ in range(S)]
    ys = []
    for t in range(T):
        st = step(x[t], st, p)
        ys.append(st[0])
    return np.stack(ys), st


def _peephole(xt, st, p):
    h, c = st
    H = h.shape[1]
    a = xt @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    P = p["peephole_l0"]
    i = sig(a[:, :H] + P[0] * c)
    f = sig(a[:, H : 2 * H] + P[2] * c)
    g = np.tanh(a[:, 2 * H : 3 * H])
    c2 = f * c + i * g
    o = sig(a[:, 3 * H :] + P[1] * c2)
    return [o * np.tanh(c2), c2]


def _ln(v, g, b=0.0):
    m = v.mean(1, keepdims=True)
    return g * (v - m) / np.sqrt(((v - m) ** 2).mean(1, keepdims=True) + 1e-5) + b


def _layernorm(xt, st, p):
    h, c = st
    H = h.shape[1]
    gam = p["gamma_l0"]
    a = _ln(xt @ p["weight_ih_l0"].T, gam[0]) + _ln(h @ p["weight_hh_l0"].T, gam[1]) + p["bias_l0"]
    i, f, g, o = sig(a[:, :H]), sig(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sig(a[:, 3 * H :])
    c2 = f * c + i * g
    return [o * np.tanh(_ln(c2, p["gamma_h_l0"], p["beta_h_l0"])), c2]


def _gru_reset_before(xt, st, p):
    (h,) = st
    H = h.shape[1]
    W, R, bi, bh = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    r = sig(xt @ W[:H].T + bi[:H] + h @ R[:H].T + bh[:H])
    z = sig(xt @ W[H : 2 * H].T + bi[H : 2 * H] + h @ R[H : 2 * H].T + bh[H : 2 * H])
    n = np.tanh(xt @ W[2 * H :].T + bi[2 * H :] + (r * h) @ R[2 * H :].T + bh[2 * H :])
    return [(1 - z) * n + z * h]


def _mgu(xt, st, p):
    (h,) = st
    H = h.shape[1]
    W, R, bi, bh = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    f = sig(xt @ W[:H].T + bi[:H] + h @ R[:H].T + bh[:H])
    ht = np.tanh(xt @ W[H:].T + bi[H:] + (f * h) @ R[H:].T + bh[H:])
    return [(1 - f) * h + f * ht]


@pytest.mark.parametrize(
    "cell,step",
    [
        (cells.PeepholeLSTMCell(), _peephole),
        (cells.LayerNormLSTMCell(), _layernorm),
        (cells.GRUResetBeforeCell(), _gru_reset_before),
        (cells.MGUCell(), _mgu),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, cells.Cell) else "",
)
def test_new_cells_compute_their_documented_equations(cell, step):
    rng = np.random.default_rng(9)
    T, N, C, H = 6, 3, 5, 7
    layer = rnnkit.Recurrent(cell, C, H, dtype=F64, seed=4)
    for p in layer.parameters.values():
        p += 0.3 * rng.standard_normal(p.shape)
    x = rng.standard_normal((T, N, C))
    y, s_n = layer(x)
    y_ref, s_ref = _loop(step, x, dict(layer.parameters), H, len(cell.states))
    assert rel(y, y_ref) <= 1e-12
    for a, b in zip(as_list(s_n), s_ref):
        assert rel(a[0], b) <= 1e-12


def test_gru_reset_before_has_pytorch_like_layout():
    layer = rnnkit.Recurrent(cells.GRUResetBeforeCell(), 5, 4)
    shapes = {k: v.shape for k, v in layer.parameters.items()}
    assert shapes == {"weight_ih_l0": (12, 5), "weight_hh_l0": (12, 4), "bias_ih_l0": (12,), "bias_hh_l0": (12,)}


# --- the layer API of a Python-step cell


def test_state_dict_names_extra_params_per_layer_and_direction():
    layer = rnnkit.Recurrent(cells.PeepholeLSTMCell(), 3, 4, 2, bidirectional=True)
    names = list(layer.state_dict())
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "peephole_l0"]
    assert "peephole_l1_reverse" in names and layer.parameters["peephole_l1"].shape == (3, 4)
    assert layer.parameters["weight_ih_l1"].shape == (16, 8)
    other = rnnkit.Recurrent(cells.PeepholeLSTMCell(), 3, 4, 2, bidirectional=True, seed=7)
    other.load_state_dict(layer.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(other(x)[0], layer(x)[0])
    with pytest.raises(ValueError, match="peephole_l1_reverse"):
        other.load_state_dict({k: v for k, v in layer.state_dict().items() if k != "peephole_l1_reverse"})
    ln = rnnkit.Recurrent(cells.LayerNormLSTMCell(), 3, 4)
    assert "bias_ih_l0" not in ln.parameters and ln.parameters["bias_l0"].shape == (16,)
    np.testing.assert_array_equal(ln.parameters["gamma_l0"], 1)


def test_one_state_cells_take_bare_arrays_and_truncated_bptt_carries_state():
    rng = np.random.default_rng(3)
    layer = rnnkit.Recurrent(cells.MGUCell(), 3, 4, 2, dtype=F64, seed=0)
    x = rng.standard_normal((8, 2, 3))
    y, h = layer(x)
    assert isinstance(h, np.ndarray) and h.shape == (2, 2, 4)
    # two chunks, the state carried, equal one run; dstate flows back across the cut
    y1, h1, t1 = layer.forward(x[:5])
    y2, h2, t2 = layer.forward(x[5:], h1)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y, rtol=1e-13, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    _, dh1 = layer.backward(t2, dy[5:])
    layer.backward(t1, dy[:5], dh1)
    g_chunks = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    _, _, t = layer.forward(x)
    layer.backward(t, dy)
    for k in g_chunks:
        assert rel(g_chunks[k], layer.grads[k]) <= 1e-12, k


def test_lengths_rule_padding_is_ignored_and_reverse_is_per_sequence():
    rng = np.random.default_rng(8)
    layer = rnnkit.Recurrent(cells.GRUResetBeforeCell(), 3, 4, bidirectional=True, dtype=F64, seed=0)
    x = rng.standard_normal((6, 3, 3))
    lengths = np.array([2, 6, 0])
    y, h = layer(x, lengths=lengths)
    x_nan = x.copy()
    x_nan[2:, 0] = np.nan
    y2, h2 = layer(x_nan, lengths=lengths)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(h, h2)
    assert np.all(y[2:, 0] == 0) and np.all(y[:, 2] == 0) and np.all(h[:, 2] == 0)
    # sequence 0 alone, of length 2, gives the same outputs (reverse starts at its own end)
    y0, h0 = layer(np.ascontiguousarray(x[:2, :1]))
    np.testing.assert_allclose(y[:2, :1], y0, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(h[:, :1], h0, rtol=1e-13, atol=1e-14)
    _, _, tape = layer.forward(x_nan, lengths=lengths)
    dx, dh = layer.backward(tape, np.ones_like(y))
    assert np.all(np.isfinite(dx)) and np.all(dx[2:, 0] == 0) and np.all(dx[:, 2] == 0)


@pytest.mark.parametrize("cell", ALL_CELLS, ids=lambda c: repr(c))
def test_a_tape_backpropagates_twice_to_the_same_gradients(cell):
    rng = np.random.default_rng(6)
    layer = rnnkit.Recurrent(cell, 3, 4, 2, bidirectional=True, dtype=F64, seed=0, fused=False)
    x = rng.standard_normal((4, 2, 3))
    y, _, tape = layer.forward(x, None, np.array([4, 2]))
    dy = rng.standard_normal(y.shape)
    dx1, _ = layer.backward(tape, dy)
    g1 = {k: v.copy() for k, v in layer.grads.items()}
    dx2, _ = layer.backward(tape, dy)
    np.testing.assert_array_equal(dx1, dx2)
    for k, v in layer.grads.items():
        np.testing.assert_allclose(v, 2 * g1[k], rtol=1e-14, atol=1e-300)


def test_dropout_between_layers_replays_with_the_generator_state():
    layer = rnnkit.Recurrent(cells.MGUCell(), 3, 4, 2, dropout=0.5, dtype=F64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    st = layer.generator.bit_generator.state
    y1, _, t1 = layer.forward(x)
    layer.generator.bit_generator.state = st
    y2, _, t2 = layer.forward(x)
    np.testing.assert_array_equal(y1, y2)
    assert len(t1.masks) == 1 and (t1.masks[0] == 0).any()
    assert not np.array_equal(layer(x)[0], y1)  # inference: no dropout


def test_float32_python_step_layer_agrees_with_float64():
    rng = np.random.default_rng(2)
    l64 = rnnkit.Recurrent(cells.PeepholeLSTMCell(), 3, 5, 2, bidirectional=True, dtype=F64, seed=3)
    l32 = rnnkit.Recurrent(cells.PeepholeLSTMCell(), 3, 5, 2, bidirectional=True, dtype=np.float32, seed=3)
    x = rng.standard_normal((4, 2, 3))
    a = train_pass(l64, x, None, np.array([4, 1]))
    b = train_pass(l32, x.astype(np.float32), None, np.array([4, 1]))
    for k in a:
        assert b[k].dtype == np.float32
        assert rel(b[k], a[k]) <= 1e-5, k


def test_inputs_are_not_modified_and_tape_keeps_its_weights():
    rng = np.random.default_rng(4)
    layer = rnnkit.Recurrent(cells.PeepholeLSTMCell(), 3, 4, dtype=F64, seed=0)
    x = rng.standard_normal((3, 2, 3))
    x0 = x.copy()
    y, st, tape = layer.forward(x)
    np.testing.assert_array_equal(x, x0)
    before = train_pass(layer, x, None, None)
    _, _, tape = layer.forward(x)
    for name in ("peephole_l0", "weight_ih_l0", "weight_hh_l0", "bias_hh_l0"):
        layer.parameters[name] += 1.0  # after forward: backward must not see it
    layer.zero_grad()
    rng2 = np.random.default_rng(3)
    dy = rng2.standard_normal(y.shape)
    ds = tuple(rng2.standard_normal(a.shape) for a in st)
    layer.backward(tape, dy, ds)
    for name in layer.grads:
        assert rel(layer.grads[name], before[f"grad {name}"]) <= 1e-14, name
    diag = rnnkit.Recurrent(cells.IndRNNCell(), 3, 4, dtype=F64, seed=0, fused=False)
    want = train_pass(diag, x, None, None)
    _, _, tape = diag.forward(x)
    diag.parameters["weight_hh_l0"] += 1.0
    diag.zero_grad()
    rng2 = np.random.default_rng(3)
    diag.backward(tape, rng2.standard_normal(y.shape), rng2.standard_normal(st[0].shape))
    for name in diag.grads:
        assert rel(diag.grads[name], want[f"grad {name}"]) <= 1e-14, name


# --- bad cells: clear errors naming the cell and the method


class _Base(cells.Cell):
    gates, recurrence, states = 1, "gemm", ("h",)

    def forward(self, gx, gh, state, params):
        h = np.tanh(gx + gh)
        return (h,), h

    def backward(self, dstate, saved, params):
        da = dstate[0] * (1 - saved * saved)
        return da, da, (None,), {}


class TwoStatesFromOne(_Base):
    def forward(self, gx, gh, state, params):
        h = np.tanh(gx + gh)
        return (h, h), h


class WrongShape(_Base):
    def forward(self, gx, gh, state, params):
        return (np.tanh(gx + gh)[:, :-1],), None


class WrongDtype(_Base):
    def forward(self, gx, gh, state, params):
        h = np.tanh(gx + gh)
        return (h.astype(np.float64),), h


class BackwardWrongShape(_Base):
    def backward(self, dstate, saved, params):
        da = dstate[0] * (1 - saved * saved)
        return da[:1], da, (None,), {}


class BackwardWrongDtype(_Base):
    def backward(self, dstate, saved, params):
        da = dstate[0] * (1 - saved * saved)
        return da, da.astype(np.float64), (None,), {}


class BackwardTooManyStates(_Base):
    def backward(self, dstate, saved, params):
        da = dstate[0] * (1 - saved * saved)
        return da, da, (None, None), {}


class BackwardNotATuple(_Base):
    def backward(self, dstate, saved, params):
        return None


class MissingDparams(_Base):
    def params(self, input_size, hidden_size):
        return {"scale": (hidden_size,)}


class NoBackward(cells.Cell):
    gates, states = 1, ("h",)

    def forward(self, gx, gh, state, params):
        return (gx,), None


class GroupsWithoutInput(_Base):
    gates, groups = 2, (1, 1)


@pytest.mark.parametrize(
    "cell,exc,match,when",
    [
        (TwoStatesFromOne(), TypeError, r"TwoStatesFromOne\.forward.*2 states.*1 \(h\)", "call"),
        (WrongShape(), ValueError, r"WrongShape\.forward.*new_state\[0\] \(h\) of shape \(2, 3\), expected \(2, 4\)", "call"),
        (WrongDtype(), TypeError, r"WrongDtype\.forward.*dtype float64, expected float32", "call"),
        (BackwardWrongShape(), ValueError, r"BackwardWrongShape\.backward.*dgx of shape \(1, 4\)", "backward"),
        (BackwardWrongDtype(), TypeError, r"BackwardWrongDtype\.backward returned dgh of dtype float64", "backward"),
        (BackwardTooManyStates(), TypeError, r"BackwardTooManyStates\.backward returned dstate_prev with 2 states", "backward"),
        (BackwardNotATuple(), TypeError, r"BackwardNotATuple\.backward must return", "backward"),
        (MissingDparams(), TypeError, r"MissingDparams\.backward.*dparams.*scale", "backward"),
        (NoBackward(), TypeError, r"NoBackward\.backward is missing", "build"),
        (GroupsWithoutInput(), TypeError, r"GroupsWithoutInput\.recurrent_input is missing", "build"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, cells.Cell) else None,
)
def test_bad_cells_get_clear_errors(cell, exc, match, when):
    x = np.zeros((3, 2, 3), np.float32)
    with pytest.raises(exc, match=match) as info:
        layer = rnnkit.Recurrent(cell, 3, 4)
        if when == "call":
            layer(x)
        _, _, tape = layer.forward(x)
        layer.backward(tape, np.ones((3, 2, 4), np.float32))
    assert isinstance(info.value, rnnkit.CellError)


def test_bad_declarations_are_refused():
    class NoGates:
        recurrence, states = "gemm", ("h",)

        def forward(self, *a):
            pass

        def backward(self, *a):
            pass

    with pytest.raises(rnnkit.CellError, match="NoGates is missing the attribute 'gates'"):
        rnnkit.Recurrent(NoGates(), 3, 4)
    with pytest.raises(rnnkit.CellError, match="recurrence must be one of"):
        rnnkit.Recurrent(type("Bad", (_Base,), {"recurrence": "full"})(), 3, 4)
    with pytest.raises(rnnkit.CellError, match="states must be a non-empty tuple"):
        rnnkit.Recurrent(type("Bad", (_Base,), {"states": "h"})(), 3, 4)
    with pytest.raises(rnnkit.CellError, match="cell instance"):
        rnnkit.Recurrent(cells.LSTMCell, 3, 4)


# --- ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_match_numpy_and_allow_in_place(dtype):
    rng = np.random.default_rng(0)
    a = (3 * rng.standard_normal((5, 37))).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(cells.ops.sigmoid(a), 1 / (1 + np.exp(-a.astype(F64))), rtol=tol, atol=tol)
    np.testing.assert_allclose(cells.ops.tanh(a), np.tanh(a.astype(F64)), rtol=tol, atol=tol)
    b = a.copy()
    cells.ops.tanh(b[:, 3:20], out=b[:, 3:20])  # a strided column block, in place
    np.testing.assert_allclose(b[:, 3:20], np.tanh(a[:, 3:20]), rtol=tol, atol=tol)
    np.testing.assert_array_equal(b[:, :3], a[:, :3])
    y, dy = cells.ops.sigmoid(a), rng.standard_normal(a.shape).astype(dtype)
    np.testing.assert_allclose(cells.ops.dsigmoid(y, dy), dy * y * (1 - y), rtol=tol)
    np.testing.assert_allclose(cells.ops.dtanh(y, dy), dy * (1 - y * y), rtol=tol)
    c = rng.standard_normal((2, 3, 4)).astype(dtype)  # 3-D: the NumPy fallback
    np.testing.assert_allclose(cells.ops.tanh(c), np.tanh(c), rtol=tol)


def test_python_step_tape_damage_is_a_value_error():
    layer = rnnkit.Recurrent(rnnkit.cells.PeepholeLSTMCell(), 3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _, tape = layer.forward(x)
    layer.backward(tape, np.ones_like(y))
    tape.caches[(1, 0)] = (tape.caches[(1, 0)][0],)
    with pytest.raises(ValueError, match="damaged"):
        layer.backward(tape, np.ones_like(y))
    del tape.caches[(0, 0)]
    with pytest.raises(ValueError, match="no cache for layer 0"):
        layer.backward(tape, np.ones_like(y))
    y, _, tape = layer.forward(x)
    tape.caches[(0, 0)] = "junk"
    with pytest.raises(TypeError, match="must be a tuple"):
        layer.backward(tape, np.ones_like(y))
