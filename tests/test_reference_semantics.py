"""What the NumPy reference promises besides correct gradients (docs/cells.md):
the exported API, lengths and direction, the cache layout, dtypes, inputs left
alone, inference mode, and each cell's step equations written out by hand.
Gradients against finite differences are in test_reference_gradcheck.py.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from rnnkit import Cache
from rnnkit import reference as ref

CELLS = ["rnn", "lstm", "gru", "indrnn"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
CACHE_ARRAYS = {
    "rnn": ("h",),
    "lstm": ("h", "c", "tanh_c", "gates"),
    "gru": ("h", "gates", "hn"),
    "indrnn": ("h",),
}
LENGTHS = [3, 0, 5, 1]  # T = 5: shuffled, with 0 and T


def make_inputs(cell, T, N, C, H, seed=0, dtype=np.float64):
    rng = np.random.default_rng([seed, GATES[cell], T, N, C, H])
    G = GATES[cell]
    d = {
        "x": rng.standard_normal((T, N, C)),
        "h0": rng.uniform(-0.8, 0.8, (N, H)),
        "c0": rng.uniform(-0.8, 0.8, (N, H)) if cell == "lstm" else None,
        "w_ih": rng.uniform(-1, 1, (G * H, C)),
        "w_hh": rng.uniform(-1, 1, (H,) if cell == "indrnn" else (G * H, H)),
        "b_ih": rng.uniform(-0.5, 0.5, G * H),
        "b_hh": rng.uniform(-0.5, 0.5, G * H),
    }
    return {k: None if v is None else v.astype(dtype) for k, v in d.items()}


def forward(cell, d, **kw):
    """(y, h_n, c_n or None, cache) for any cell."""
    f = getattr(ref, f"{cell}_forward")
    states = (d["h0"], d["c0"]) if cell == "lstm" else (d["h0"],)
    out = f(d["x"], *states, d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], **kw)
    if cell == "lstm":
        return out
    y, h_n, cache = out
    return y, h_n, None, cache


def backward(cell, cache, dy, dh_n, dc_n=None):
    """(dx, dh0, dc0 or None, dw_ih, dw_hh, db_ih, db_hh) for any cell."""
    b = getattr(ref, f"{cell}_backward")
    if cell == "lstm":
        return b(dy, dh_n, dc_n, cache)
    dx, dh0, *rest = b(dy, dh_n, cache)
    return (dx, dh0, None, *rest)


def random_grads(cell, T, N, H, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal((T, N, H)).astype(dtype)
    dh_n = rng.standard_normal((N, H)).astype(dtype)
    dc_n = rng.standard_normal((N, H)).astype(dtype) if cell == "lstm" else None
    return dy, dh_n, dc_n


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny)


# --- the API ------------------------------------------------------------------


def test_exports_exactly_the_twelve_functions():
    """Forward and backward per cell, plus the four *_rtrl (docs/rtrl.md);
    nothing else, and no name twice."""
    names = {f"{c}_{p}" for c in CELLS for p in ("forward", "backward")}
    names |= {"rnn_rtrl", "lstm_rtrl", "gru_rtrl", "indrnn_rtrl"}
    assert set(ref.__all__) == names
    assert len(ref.__all__) == 12
    for name in names:
        assert callable(getattr(ref, name))


def _sig(f):
    return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]


def test_signatures_match_docs():
    P, K, E = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.empty,
    )

    def pos(*names):
        return [(n, P, E) for n in names]

    common = ["w_ih", "w_hh", "b_ih", "b_hh"]
    kw = [("lengths", K, None), ("reverse", K, False)]
    # docs/training.md: what the training cache stores.
    mem = [("memory", K, "full"), ("segment", K, None), ("max_bytes", K, None)]
    assert _sig(ref.rnn_forward) == pos("x", "h0", *common) + kw + [
        ("nonlinearity", K, "tanh"),
        ("training", K, True),
    ] + mem
    assert _sig(ref.lstm_forward) == pos("x", "h0", "c0", *common) + kw + [("training", K, True)] + mem
    assert _sig(ref.gru_forward) == pos("x", "h0", *common) + kw + [("training", K, True)] + mem
    assert _sig(ref.indrnn_forward) == pos("x", "h0", *common) + kw + [
        ("nonlinearity", K, "relu"),
        ("training", K, True),
    ] + mem
    assert _sig(ref.lstm_backward) == pos("dy", "dh_n", "dc_n", "cache")
    for cell in ("rnn", "gru", "indrnn"):
        assert _sig(getattr(ref, f"{cell}_backward")) == pos("dy", "dh_n", "cache")


# --- lengths and direction ----------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_inactive_steps_write_zero_and_carry_state(cell, reverse):
    T, N, C, H = 5, 4, 3, 6
    d = make_inputs(cell, T, N, C, H)
    y, h_n, c_n, cache = forward(cell, d, lengths=LENGTHS, reverse=reverse)
    for n, L in enumerate(LENGTHS):
        assert np.all(y[L:, n] == 0), f"y nonzero past length {L} of sequence {n}"
        assert np.array_equal(y[:L, n], cache.h[:L, n]), "y is not the state at active steps"
        if cell != "indrnn":  # relu, IndRNN's default, may give exact zeros
            assert np.all(y[:L, n] != 0), f"y zero at an active step of sequence {n}"
        # Past its length a sequence holds, forward, its final state and,
        # reverse, the initial state (its processing has not started yet).
        carried = h_n[n] if not reverse else d["h0"][n]
        assert np.array_equal(cache.h[L:, n], np.broadcast_to(carried, (T - L, H)))
        if cell == "lstm":
            carried_c = c_n[n] if not reverse else d["c0"][n]
            assert np.array_equal(cache.c[L:, n], np.broadcast_to(carried_c, (T - L, H)))
            assert np.all(cache.tanh_c[L:, n] == 0) and np.all(cache.gates[L:, n] == 0)
            assert np.all(cache.tanh_c[:L, n] != 0)
        if cell == "gru":
            assert np.all(cache.gates[L:, n] == 0) and np.all(cache.hn[L:, n] == 0)
            assert np.all(cache.hn[:L, n] != 0)
        if cell in ("lstm", "gru"):
            assert np.all(cache.gates[:L, n] != 0)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_each_sequence_is_its_own_prefix(cell, reverse):
    """With lengths, sequence n gives what running it alone on x[:L_n] gives;
    reverse with lengths is the forward direction on the flipped prefix (ONNX)."""
    T, N, C, H = 5, 4, 3, 6
    d = make_inputs(cell, T, N, C, H)
    y, h_n, c_n, _ = forward(cell, d, lengths=np.array(LENGTHS), reverse=reverse)
    for n, L in enumerate(LENGTHS):
        if L == 0:
            continue  # T >= 1 is required; length 0 has its own test
        x_n = d["x"][:L, n : n + 1]
        alone = dict(
            d,
            x=x_n[::-1] if reverse else x_n,
            h0=d["h0"][n : n + 1],
            c0=None if cell != "lstm" else d["c0"][n : n + 1],
        )
        y1, h1, c1, _ = forward(cell, alone)  # forward direction, no lengths
        y1 = y1[::-1] if reverse else y1
        # One sequence against a batch of four: the BLAS may sum in another order.
        np.testing.assert_allclose(y[:L, n], y1[:, 0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[n], h1[0], rtol=1e-12, atol=1e-14)
        if cell == "lstm":
            np.testing.assert_allclose(c_n[n], c1[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_length_zero_keeps_initial_state_and_gradients(cell, reverse):
    T, N, C, H = 4, 3, 2, 5
    d = make_inputs(cell, T, N, C, H)
    lengths = [0, 4, 0]
    y, h_n, c_n, cache = forward(cell, d, lengths=lengths, reverse=reverse)
    for n in (0, 2):
        assert np.all(y[:, n] == 0)
        assert np.array_equal(h_n[n], d["h0"][n])
        if cell == "lstm":
            assert np.array_equal(c_n[n], d["c0"][n])
    dy, dh_n, dc_n = random_grads(cell, T, N, H)
    dx, dh0, dc0, *_ = backward(cell, cache, dy, dh_n, dc_n)
    for n in (0, 2):
        assert np.all(dx[:, n] == 0)
        assert np.array_equal(dh0[n], dh_n[n])
        if cell == "lstm":
            assert np.array_equal(dc0[n], dc_n[n])


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_ignore_dy_at_inactive_steps(cell, reverse):
    T, N, C, H = 5, 4, 3, 6
    d = make_inputs(cell, T, N, C, H)
    _, _, _, cache = forward(cell, d, lengths=LENGTHS, reverse=reverse)
    dy, dh_n, dc_n = random_grads(cell, T, N, H)
    inactive = np.arange(T)[:, None] >= np.array(LENGTHS)[None, :]  # T,N
    clean = backward(cell, cache, np.where(inactive[..., None], 0, dy), dh_n, dc_n)
    poisoned = backward(cell, cache, np.where(inactive[..., None], np.nan, dy), dh_n, dc_n)
    for a, b in zip(clean, poisoned):
        if a is not None:
            assert np.array_equal(a, b), "dy at an inactive step leaked into a gradient"
    dx = clean[0]
    assert np.all(dx[inactive] == 0) and np.all(dx[~inactive] != 0)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_none_equals_all_T(cell):
    T, N, C, H = 3, 2, 2, 4
    d = make_inputs(cell, T, N, C, H)
    for reverse in (False, True):
        a = forward(cell, d, reverse=reverse)
        b = forward(cell, d, lengths=(T, T), reverse=reverse)
        for u, v in zip(a[:3], b[:3]):
            if u is not None:
                assert np.array_equal(u, v)
        assert a[3].lengths.dtype == np.int64 and list(a[3].lengths) == [T, T]


@pytest.mark.parametrize("cell", CELLS)
def test_none_gradients_mean_zero(cell):
    T, N, C, H = 3, 2, 2, 4
    d = make_inputs(cell, T, N, C, H)
    *_, cache = forward(cell, d, lengths=[2, 3])
    zeros = np.zeros((N, H))
    dy, dh_n, dc_n = random_grads(cell, T, N, H)
    a = backward(cell, cache, None, None, None)
    b = backward(cell, cache, np.zeros((T, N, H)), zeros, zeros if cell == "lstm" else None)
    for u, v in zip(a, b):
        if u is not None:
            assert np.array_equal(u, v) and not np.any(u)
    for u, v in zip(
        backward(cell, cache, None, dh_n, dc_n), backward(cell, cache, 0 * dy, dh_n, dc_n)
    ):
        if u is not None:
            assert np.array_equal(u, v)


# --- cache, dtypes, inputs ----------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_cache_names_and_shapes(cell):
    T, N, C, H = 4, 3, 2, 5
    G = GATES[cell]
    d = make_inputs(cell, T, N, C, H)
    *_, cache = forward(cell, d, lengths=[4, 1, 0], reverse=True)
    assert isinstance(cache, Cache)
    assert cache.cell == cell and cache.backend == "reference"
    assert cache.arrays == CACHE_ARRAYS[cell]
    shapes = {
        "h": (T, N, H),
        "c": (T, N, H),
        "tanh_c": (T, N, H),
        "gates": (T, N, G * H),
        "hn": (T, N, H),
    }
    for name, a in cache.as_dict().items():
        assert a.shape == shapes[name], f"cache.{name}: {a.shape}"
        assert a.dtype == np.float64 and a.flags.c_contiguous, f"cache.{name}"
    kept = ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"] + (["c0"] if cell == "lstm" else [])
    for name in kept:
        assert np.array_equal(getattr(cache, name), d[name]), f"cache.{name}"
    assert cache.lengths.dtype == np.int64 and list(cache.lengths) == [4, 1, 0]
    assert cache.reverse is True
    if cell in ("rnn", "indrnn"):
        assert cache.nonlinearity == {"rnn": "tanh", "indrnn": "relu"}[cell]


@pytest.mark.parametrize("cell", CELLS)
def test_float32_end_to_end(cell):
    T, N, C, H = 5, 4, 3, 6
    d32 = make_inputs(cell, T, N, C, H, dtype=np.float32)
    d64 = {k: None if v is None else v.astype(np.float64) for k, v in d32.items()}
    g32 = random_grads(cell, T, N, H, dtype=np.float32)
    g64 = tuple(None if g is None else g.astype(np.float64) for g in g32)
    for reverse in (False, True):
        *out32, cache32 = forward(cell, d32, lengths=LENGTHS, reverse=reverse)
        *out64, cache64 = forward(cell, d64, lengths=LENGTHS, reverse=reverse)
        grads32 = backward(cell, cache32, *g32)
        grads64 = backward(cell, cache64, *g64)
        arrays32 = {
            **dict(zip(["y", "h_n", "c_n"], out32)),
            **cache32.as_dict(),
            **dict(zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"], grads32)),
        }
        arrays64 = {
            **dict(zip(["y", "h_n", "c_n"], out64)),
            **cache64.as_dict(),
            **dict(zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"], grads64)),
        }
        for name, a in arrays32.items():
            if a is None:
                continue
            assert a.dtype == np.float32, f"{name} is {a.dtype}"
            err = rel(a.astype(np.float64), arrays64[name])
            assert err < 1e-5, f"{name}: float32 vs float64 relative error {err:.2e}"
        for name in ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths"):
            assert getattr(cache32, name).dtype == (np.int64 if name == "lengths" else np.float32)
        # Defaults (zeros) for missing states and gradients take the call's dtype too.
        f32 = forward(cell, dict(d32, h0=None, c0=None))
        assert all(a.dtype == np.float32 for a in f32[:3] if a is not None)
        assert f32[3].h0.dtype == np.float32
        assert all(
            g.dtype == np.float32 for g in backward(cell, f32[3], None, None) if g is not None
        )


@pytest.mark.parametrize("cell", CELLS)
def test_inputs_are_not_modified_nor_aliased(cell):
    T, N, C, H = 4, 3, 2, 5
    d = make_inputs(cell, T, N, C, H)
    dy, dh_n, dc_n = random_grads(cell, T, N, H)
    lengths = np.array([4, 0, 2])
    before = {k: v.copy() for k, v in d.items() if v is not None}
    grads_before = [g.copy() for g in (dy, dh_n, dc_n) if g is not None]
    for reverse in (False, True):
        y, h_n, c_n, cache = forward(cell, d, lengths=lengths, reverse=reverse)
        grads = backward(cell, cache, dy, dh_n, dc_n)
        outputs = [y, h_n, c_n, *grads]
        for k, v in before.items():
            assert np.array_equal(d[k], v), f"{k} was modified"
        for g, v in zip([g for g in (dy, dh_n, dc_n) if g is not None], grads_before):
            assert np.array_equal(g, v), "a gradient input was modified"
        assert list(lengths) == [4, 0, 2]
        # Outputs are fresh arrays: writing to them cannot reach an input.
        inputs = [*before.keys()]
        for out in outputs:
            if out is None:
                continue
            for k in inputs:
                assert not np.shares_memory(out, d[k]), f"an output shares memory with {k}"
            for g in (dy, dh_n, dc_n):
                assert g is None or not np.shares_memory(out, g)
        assert not np.shares_memory(cache.lengths, lengths)


def strided(v):
    """The same values as v, in a non-contiguous view (every other element)."""
    big = np.zeros(tuple(2 * s for s in v.shape), v.dtype)
    view = big[tuple(slice(None, None, 2) for _ in v.shape)]
    view[...] = v
    assert not view.flags.c_contiguous and np.array_equal(view, v)
    return view


@pytest.mark.parametrize("cell", CELLS)
def test_non_contiguous_inputs_give_the_same_result(cell):
    T, N, C, H = 4, 3, 2, 5
    d = make_inputs(cell, T, N, C, H)
    d_strided = {k: None if v is None else strided(v) for k, v in d.items()}
    d_strided["w_ih"] = np.asfortranarray(d["w_ih"])
    grads = random_grads(cell, T, N, H)
    grads_strided = [None if g is None else strided(g) for g in grads]
    lengths = np.array([4, 0, 2])
    lengths_strided = np.array([4, 9, 0, 9, 2, 9])[::2]
    a = forward(cell, d, lengths=lengths, reverse=True)
    b = forward(cell, d_strided, lengths=lengths_strided, reverse=True)
    ga = backward(cell, a[3], *grads)
    gb = backward(cell, b[3], *grads_strided)
    for u, v in zip([*a[:3], *ga], [*b[:3], *gb]):
        if u is not None:
            assert np.array_equal(u, v)
    for name in CACHE_ARRAYS[cell]:
        assert np.array_equal(getattr(a[3], name), getattr(b[3], name))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_matches_training(cell, dtype, reverse):
    T, N, C, H = 6, 3, 4, 5
    d = make_inputs(cell, T, N, C, H, dtype=dtype)
    lengths = [6, 0, 3]
    train = forward(cell, d, lengths=lengths, reverse=reverse)
    infer = forward(cell, d, lengths=lengths, reverse=reverse, training=False)
    assert infer[3] is None
    # Inference projects the input one step at a time (O(N*H) memory), training
    # in one GEMM over all T: the BLAS may round those differently in the last
    # bit, so "identical" means within a few ulps, and zeros stay exact zeros.
    tol = 1e-13 if dtype == np.float64 else 1e-5
    for name, u, v in zip(["y", "h_n", "c_n"], train[:3], infer[:3]):
        if u is None:
            assert v is None
            continue
        assert v.dtype == dtype and v.shape == u.shape
        assert rel(v, u) <= tol, f"{name}: inference vs training relative error {rel(v, u):.2e}"
        if name == "y":
            assert np.array_equal(u == 0, v == 0)


# --- the step equations by hand -------------------------------------------------


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def hand_step(cell, x, h, c, w_ih, w_hh, b_ih, b_hh, act="tanh"):
    """One step of docs/cells.md for one sequence, gate by gate from explicit
    weight slices, written apart from the reference. x [C], h and c [H]."""
    H = h.shape[0]
    if cell == "rnn":
        pre = w_ih @ x + b_ih + w_hh @ h + b_hh
        return (np.tanh(pre) if act == "tanh" else np.maximum(pre, 0.0)), None, {}
    if cell == "indrnn":
        pre = w_ih @ x + b_ih + w_hh * h + b_hh
        return (np.tanh(pre) if act == "tanh" else np.maximum(pre, 0.0)), None, {}

    def gate(k):  # pre-activation parts of gate k: input side, recurrent side
        rows = slice(k * H, (k + 1) * H)
        return w_ih[rows] @ x + b_ih[rows], w_hh[rows] @ h + b_hh[rows]

    if cell == "lstm":
        i = _sigmoid(sum(gate(0)))
        f = _sigmoid(sum(gate(1)))
        g = np.tanh(sum(gate(2)))
        o = _sigmoid(sum(gate(3)))
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        return (h_new, c_new, {"gates": np.concatenate([i, f, g, o]), "tanh_c": np.tanh(c_new)})
    if cell == "gru":
        r = _sigmoid(sum(gate(0)))
        z = _sigmoid(sum(gate(1)))
        xn, hn = gate(2)
        n = np.tanh(xn + r * hn)
        h_new = (1 - z) * n + z * h
        return h_new, None, {"gates": np.concatenate([r, z, n]), "hn": hn}
    raise AssertionError(cell)


@pytest.mark.parametrize(
    "cell,act",
    [
        ("rnn", "tanh"),
        ("rnn", "relu"),
        ("lstm", None),
        ("gru", None),
        ("indrnn", "tanh"),
        ("indrnn", "relu"),
    ],
)
def test_single_step_by_hand(cell, act):
    T, N, C, H = 1, 2, 3, 4
    d = make_inputs(cell, T, N, C, H)
    kw = {"nonlinearity": act} if act else {}
    y, h_n, c_n, cache = forward(cell, d, **kw)
    for n in range(N):
        c = d["c0"][n] if cell == "lstm" else None
        h1, c1, saved = hand_step(
            cell, d["x"][0, n], d["h0"][n], c, d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], act
        )
        np.testing.assert_allclose(y[0, n], h1, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(h_n[n], h1, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(cache.h[0, n], h1, rtol=1e-13, atol=1e-15)
        if cell == "lstm":
            np.testing.assert_allclose(c_n[n], c1, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(cache.c[0, n], c1, rtol=1e-13, atol=1e-15)
        for name, v in saved.items():
            np.testing.assert_allclose(
                getattr(cache, name)[0, n], v, rtol=1e-13, atol=1e-15, err_msg=f"cache.{name}"
            )
    if act == "relu":  # the case must exercise both sides of the kink
        assert np.any(y > 0) and np.any(y == 0)


@pytest.mark.parametrize("cell", CELLS)
def test_two_steps_by_hand_reverse_with_lengths(cell):
    """Reverse with lengths [1, 2]: sequence 0 sees only t = 0; sequence 1 runs
    t = 1 then t = 0. Composed from the hand-written step."""
    T, N, C, H = 2, 2, 3, 4
    d = make_inputs(cell, T, N, C, H)
    act = {"rnn": "tanh", "indrnn": "relu"}.get(cell)
    y, h_n, c_n, _ = forward(cell, d, lengths=[1, 2], reverse=True)

    def step(t, n, h, c):
        return hand_step(cell, d["x"][t, n], h, c, d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], act)

    c0 = d["c0"] if cell == "lstm" else [None, None]
    h_a, c_a, _ = step(0, 0, d["h0"][0], c0[0])
    h_b1, c_b1, _ = step(1, 1, d["h0"][1], c0[1])
    h_b0, c_b0, _ = step(0, 1, h_b1, c_b1)
    expect_y = np.array([[h_a, h_b0], [np.zeros(H), h_b1]])
    np.testing.assert_allclose(y, expect_y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h_n, np.array([h_a, h_b0]), rtol=1e-13, atol=1e-15)
    if cell == "lstm":
        np.testing.assert_allclose(c_n, np.array([c_a, c_b0]), rtol=1e-13, atol=1e-15)


# --- extremes -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_saturating_inputs_stay_finite_and_quiet(cell, dtype):
    """Huge pre-activations saturate the gates without overflow warnings or NaN."""
    T, N, C, H = 3, 2, 2, 3
    d = make_inputs(cell, T, N, C, H, dtype=dtype)
    d["x"] = (d["x"] * 1e4).astype(dtype)
    kw = {"nonlinearity": "tanh"} if cell in ("rnn", "indrnn") else {}
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        y, h_n, c_n, cache = forward(cell, d, **kw)
        grads = backward(cell, cache, *random_grads(cell, T, N, H, dtype=dtype))
    for a in (y, h_n, c_n, *grads):
        assert a is None or np.all(np.isfinite(a))


@pytest.mark.parametrize("cell", CELLS)
def test_non_finite_values_propagate(cell):
    T, N, C, H = 3, 2, 2, 3
    d = make_inputs(cell, T, N, C, H)
    d["x"][1, 0, 0] = np.nan
    y, h_n, _, _ = forward(cell, d, lengths=[3, 3])
    assert np.all(np.isnan(y[1:, 0])) and np.all(np.isnan(h_n[0]))
    assert np.all(np.isfinite(y[:, 1])) and np.all(np.isfinite(y[0]))


# --- PyTorch, where installed: same weights, same numbers -------------------------


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_matches_pytorch_packed_bidirectional(cell):
    """Forward direction and reverse-with-lengths against torch.nn's packed
    bidirectional layer; gradients through autograd. Lengths >= 1 (torch's rule)."""
    torch = pytest.importorskip("torch")
    T, N, C, H = 5, 4, 3, 4
    lengths = [3, 5, 1, 4]
    name = cell.split("_")[0]
    kw = {"nonlinearity": cell.split("_")[1]} if name == "rnn" else {}
    layer_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name]
    torch.manual_seed(0)
    layer = layer_cls(C, H, bidirectional=True, dtype=torch.float64, **kw)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, N, C))
    h0 = rng.uniform(-0.5, 0.5, (2, N, H))
    c0 = rng.uniform(-0.5, 0.5, (2, N, H))
    Ry = rng.standard_normal((T, N, 2 * H))
    Rh = rng.standard_normal((2, N, H))
    Rc = rng.standard_normal((2, N, H))

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.tensor(lengths), enforce_sorted=False
    )
    state = (h0t, c0t) if name == "lstm" else h0t
    out, st = layer(packed, state)
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    h_nt = st[0] if name == "lstm" else st
    L = (yt * torch.tensor(Ry)).sum() + (h_nt * torch.tensor(Rh)).sum()
    if name == "lstm":
        L = L + (st[1] * torch.tensor(Rc)).sum()
    L.backward()

    dx = np.zeros_like(x)
    for k, (suffix, reverse) in enumerate([("", False), ("_reverse", True)]):
        w = {
            p: getattr(layer, f"{p}_l0{suffix}").detach().numpy()
            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
        d = {
            "x": x,
            "h0": h0[k],
            "c0": c0[k] if name == "lstm" else None,
            "w_ih": w["weight_ih"],
            "w_hh": w["weight_hh"],
            "b_ih": w["bias_ih"],
            "b_hh": w["bias_hh"],
        }
        y, h_n, c_n, cache = forward(name, d, lengths=lengths, reverse=reverse, **kw)
        half = slice(k * H, (k + 1) * H)
        np.testing.assert_allclose(y, yt.detach().numpy()[:, :, half], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h_n, h_nt.detach().numpy()[k], rtol=1e-10, atol=1e-12)
        if name == "lstm":
            np.testing.assert_allclose(c_n, st[1].detach().numpy()[k], rtol=1e-10, atol=1e-12)
        grads = backward(name, cache, Ry[:, :, half], Rh[k], Rc[k] if name == "lstm" else None)
        gx, gh0, gc0, gw_ih, gw_hh, gb_ih, gb_hh = grads
        dx += gx
        np.testing.assert_allclose(gh0, h0t.grad.numpy()[k], rtol=1e-10, atol=1e-12)
        if name == "lstm":
            np.testing.assert_allclose(gc0, c0t.grad.numpy()[k], rtol=1e-10, atol=1e-12)
        for ours, p in zip(
            [gw_ih, gw_hh, gb_ih, gb_hh], ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        ):
            theirs = getattr(layer, f"{p}_l0{suffix}").grad.numpy()
            np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=f"{p}{suffix}")
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
