"""The layers (rnnkit.RNN, LSTM, GRU, IndRNN): parameters, stacking, directions,
batch_first, lengths, dropout, gradients against finite differences, and bad input.

PyTorch parity is in test_torch_parity.py; this file needs only NumPy.
"""

from __future__ import annotations

import copy
import importlib
import pickle
import warnings

import numpy as np
import pytest
import rnnkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rnnkit.layers import BACKENDS, DEFAULT_BACKEND, Tape

CLASSES = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.IndRNN]
GATES = {rnnkit.RNN: 1, rnnkit.LSTM: 4, rnnkit.GRU: 3, rnnkit.IndRNN: 1}


def ids(cls):
    return cls.__name__


def make(cls, C=3, H=4, L=1, **kw):
    kw.setdefault("seed", 0)
    return cls(C, H, L, **kw)


def rand_state(layer, N, rng):
    shape = (layer.num_layers * layer.num_directions, N, layer.hidden_size)
    h = rng.standard_normal(shape).astype(layer.dtype)
    if isinstance(layer, rnnkit.LSTM):
        return (h, rng.standard_normal(shape).astype(layer.dtype))
    return h


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def assert_close(name, actual, expected, rtol, atol=0.0):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    diff = np.abs(actual - expected)
    ok = np.all(diff <= atol + rtol * np.abs(expected))
    assert ok, (
        f"{name}: max abs diff {diff.max():.3e} (max |expected| {np.abs(expected).max():.3e})"
    )


def expected_names(L, D, bias):
    names = []
    for k in range(L):
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            names += [f"weight_ih{sfx}", f"weight_hh{sfx}"]
            if bias:
                names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
    return names


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("L", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameter_names_shapes_dtypes(cls, L, bidirectional, bias, dtype):
    C, H, G = 5, 7, GATES[cls]
    D = 2 if bidirectional else 1
    layer = cls(C, H, L, bidirectional=bidirectional, bias=bias, dtype=dtype, seed=1)
    assert list(layer.parameters) == expected_names(L, D, bias)  # PyTorch's state_dict order
    assert list(layer.grads) == list(layer.parameters)
    for name, p in layer.parameters.items():
        k = int(name.split("_l")[1].split("_")[0])
        C_k = C if k == 0 else D * H
        if name.startswith("weight_ih"):
            shape = (G * H, C_k)
        elif name.startswith("weight_hh"):
            shape = (H,) if cls is rnnkit.IndRNN else (G * H, H)
        else:
            shape = (G * H,)
        assert p.shape == shape, name
        assert p.dtype == np.dtype(dtype), name
        assert layer.grads[name].shape == shape and layer.grads[name].dtype == np.dtype(dtype)
        assert not np.any(layer.grads[name])


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_init_is_uniform_in_pytorch_bounds_and_seeded(cls):
    H = 16
    a = make(cls, C=10, H=H, L=2, bidirectional=True, seed=123, dtype=np.float64)
    bound = 1 / np.sqrt(H)
    values = np.concatenate([p.ravel() for p in a.parameters.values()])
    assert values.min() >= -bound and values.max() <= bound
    # Uniform on [-b, b], not a constant or a narrower range: check its spread.
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound
    assert abs(values.mean()) < 0.05 * bound
    # Same seed: same weights, in either dtype (drawn in float64, then cast).
    b = make(cls, C=10, H=H, L=2, bidirectional=True, seed=123, dtype=np.float64)
    c32 = make(cls, C=10, H=H, L=2, bidirectional=True, seed=123, dtype=np.float32)
    d = make(cls, C=10, H=H, L=2, bidirectional=True, seed=124, dtype=np.float64)
    for name, p in a.parameters.items():
        np.testing.assert_array_equal(p, b.parameters[name])
        np.testing.assert_array_equal(p.astype(np.float32), c32.parameters[name])
        assert not np.array_equal(p, d.parameters[name]), name


def test_parameters_and_grads_are_live_dicts_with_fixed_arrays():
    layer = make(rnnkit.GRU, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    y0, _ = layer(x)
    assert isinstance(layer.parameters, dict) and isinstance(layer.grads, dict)
    for d in (layer.parameters, layer.grads):
        w = d["weight_ih_l0"]
        with pytest.raises(TypeError, match="in place"):
            d["weight_ih_l0"] = np.zeros((12, 3))
        with pytest.raises(TypeError):
            d["new_key"] = np.zeros((12, 3))
        with pytest.raises(TypeError):
            del d["weight_ih_l0"]
        with pytest.raises(TypeError):
            d.pop("weight_ih_l0")
        with pytest.raises(TypeError):
            d.update({"weight_ih_l0": np.zeros((12, 3))})
        assert d["weight_ih_l0"] is w and len(d) == 4
        plain = d.copy()
        assert type(plain) is dict and plain["weight_ih_l0"] is w
    # The optimizer idiom: an augmented assignment updates the live array.
    w = layer.parameters["weight_ih_l0"]
    layer.parameters["weight_ih_l0"] *= 2
    assert layer.parameters["weight_ih_l0"] is w
    y1, _ = layer(x)
    assert not np.allclose(y0, y1)
    _, _, tape = layer.forward(x)
    layer.backward(tape, np.ones_like(y1))
    for k in layer.parameters:
        layer.parameters[k] -= 0.1 * layer.grads[k]
    y2, _ = layer(x)
    assert np.sum(y2) < np.sum(y1)  # one descent step on sum(y) lowers it
    with pytest.raises(AttributeError):
        layer.hidden_size = 8


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_zero_grad_and_grads_accumulate(cls):
    rng = np.random.default_rng(0)
    layer = make(cls, L=2, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((5, 3, 3))
    state = rand_state(layer, 3, rng)
    y, state_n, tape = layer.forward(x, state, lengths=[5, 2, 4])
    dy = rng.standard_normal(y.shape)
    dstate = tuple(rng.standard_normal(s.shape) for s in as_tuple(state_n))
    dstate = dstate if isinstance(layer, rnnkit.LSTM) else dstate[0]
    dx1, ds1 = layer.backward(tape, dy, dstate)
    once = {k: g.copy() for k, g in layer.grads.items()}
    assert all(np.any(g) for g in once.values())
    dx2, ds2 = layer.backward(tape, dy, dstate)  # the same tape again: fine, adds again
    np.testing.assert_array_equal(dx1, dx2)
    for a, b in zip(as_tuple(ds1), as_tuple(ds2)):
        np.testing.assert_array_equal(a, b)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-14, err_msg=k)
    arrays = dict(layer.grads)
    layer.zero_grad()
    for k, g in layer.grads.items():
        assert g is arrays[k]  # cleared in place
        assert not np.any(g), k


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_deepcopy_and_pickle_give_independent_equal_layers(cls):
    rng = np.random.default_rng(0)
    layer = make(cls, L=2, bidirectional=True, dropout=0.5, dtype=np.float64)
    x = rng.standard_normal((4, 2, 3))
    for clone in (copy.deepcopy, lambda a: pickle.loads(pickle.dumps(a))):
        other = clone(layer)
        assert type(other) is cls and repr(other) == repr(layer)
        for k, p in layer.parameters.items():
            assert other.parameters[k] is not p
            np.testing.assert_array_equal(other.parameters[k], p)
        y1, _, t1 = layer.forward(x)
        y2, _, t2 = other.forward(x)  # the generator state was copied too
        np.testing.assert_array_equal(y1, y2)
        with pytest.raises(ValueError, match="tape"):
            other.backward(t1, np.ones_like(y1))  # a copy is another layer
        other.parameters["weight_ih_l0"] += 1
        assert not np.array_equal(
            other.parameters["weight_ih_l0"], layer.parameters["weight_ih_l0"]
        )
        with pytest.raises(TypeError):
            other.parameters["weight_ih_l0"] = np.zeros(3)
        other.backward(t2, np.ones_like(y2))
        assert not any(np.any(g) for g in layer.grads.values())


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_non_contiguous_inputs_give_the_same_result(cls):
    rng = np.random.default_rng(1)
    layer = make(cls, L=2, bidirectional=True, dtype=np.float64)
    big = rng.standard_normal((8, 6, 6))
    x = big[::2, ::2, ::2]  # T=4, N=3, C=3, strided
    s_big = rand_state(layer, 6, rng)
    state = tuple(s[:, ::2] for s in as_tuple(s_big))
    state = state if cls is rnnkit.LSTM else state[0]
    assert not x.flags.c_contiguous
    y1, s1, t1 = layer.forward(x, state, [4, 1, 2])
    y2, s2, t2 = layer.forward(x.copy(), copy.deepcopy(state), [4, 1, 2])
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(as_tuple(s1), as_tuple(s2)):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal((4, 6, 8))[:, ::2]
    dx1, _ = layer.backward(t1, dy)
    dx2, _ = layer.backward(t2, dy.copy())
    np.testing.assert_array_equal(dx1, dx2)


# --------------------------------------------------------------------------
# state_dict
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_state_dict_round_trip(cls):
    rng = np.random.default_rng(0)
    a = make(cls, L=2, bidirectional=True, seed=1, dtype=np.float64)
    b = make(cls, L=2, bidirectional=True, seed=2, dtype=np.float64)
    sd = a.state_dict()
    assert list(sd) == list(a.parameters)
    for name, v in sd.items():
        assert v is not a.parameters[name]
        v += 1  # a copy: the layer does not change
        assert not np.array_equal(v, a.parameters[name])
    sd = a.state_dict()
    before = dict(b.parameters)
    b.load_state_dict(sd)
    for name in sd:
        assert b.parameters[name] is before[name]  # copied in, references stay valid
        np.testing.assert_array_equal(b.parameters[name], a.parameters[name])
    x = rng.standard_normal((4, 2, 3))
    for ya, yb in zip(as_tuple(a(x)[0]), as_tuple(b(x)[0])):
        np.testing.assert_array_equal(ya, yb)


def test_load_state_dict_casts_array_likes_to_layer_dtype():
    a = make(rnnkit.LSTM, dtype=np.float64, seed=3)
    b = make(rnnkit.LSTM, dtype=np.float32, seed=4)
    b.load_state_dict({k: v.tolist() for k, v in a.state_dict().items()})  # nested lists
    for name, p in b.parameters.items():
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p, a.parameters[name].astype(np.float32))


def test_load_state_dict_errors_name_the_key_and_change_nothing():
    layer = make(rnnkit.LSTM, L=2, bidirectional=True)
    good = layer.state_dict()
    snapshot = layer.state_dict()

    def check_unchanged():
        for k, v in layer.parameters.items():
            np.testing.assert_array_equal(v, snapshot[k])

    sd = dict(good)
    del sd["bias_hh_l1_reverse"]
    with pytest.raises(ValueError, match="bias_hh_l1_reverse"):
        layer.load_state_dict(sd)
    sd = {k: v + 1 for k, v in good.items()}
    sd["weight_ih_l2"] = np.zeros((16, 8), np.float32)
    with pytest.raises(ValueError, match="weight_ih_l2"):
        layer.load_state_dict(sd)
    check_unchanged()
    sd = {k: v + 1 for k, v in good.items()}
    sd["weight_hh_l1"] = np.zeros((16, 3), np.float32)  # wrong shape, after good keys
    with pytest.raises(ValueError, match=r"weight_hh_l1.*\(16, 4\).*\(16, 3\)"):
        layer.load_state_dict(sd)
    check_unchanged()  # nothing written before the bad key was found
    sd = {k: v + 1 for k, v in good.items()}
    sd["bias_ih_l0"] = np.array(["a"] * 16)
    with pytest.raises(TypeError, match="bias_ih_l0"):
        layer.load_state_dict(sd)
    sd["bias_ih_l0"] = np.ones(16, np.complex128)
    with pytest.raises(TypeError, match="bias_ih_l0"):
        layer.load_state_dict(sd)
    check_unchanged()
    with pytest.raises(TypeError, match="state_dict"):
        layer.load_state_dict([1, 2, 3])


# --------------------------------------------------------------------------
# Shapes, batch_first, bidirectional, lengths
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_and_gradient_shapes(cls, L, bidirectional):
    T, N, C, H = 4, 3, 5, 6
    D = 2 if bidirectional else 1
    layer = cls(C, H, L, bidirectional=bidirectional, seed=0)
    x = np.random.default_rng(0).standard_normal((T, N, C)).astype(np.float32)
    y, state = layer(x)
    assert y.shape == (T, N, D * H) and y.dtype == np.float32
    for s in as_tuple(state):
        assert s.shape == (L * D, N, H) and s.dtype == np.float32
    assert isinstance(state, tuple) == (cls is rnnkit.LSTM)
    y, state, tape = layer.forward(x)
    dx, dstate = layer.backward(tape, np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert isinstance(dstate, tuple) == (cls is rnnkit.LSTM)
    for s in as_tuple(dstate):
        assert s.shape == (L * D, N, H) and s.dtype == np.float32


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_bidirectional_is_forward_then_reverse_of_single_direction_layers(cls):
    # Layer 0 of a bidirectional stack equals two one-direction calls of the backend.
    rng = np.random.default_rng(5)
    layer = make(cls, C=3, H=4, L=1, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((6, 3, 3))
    lengths = np.array([6, 0, 3])
    y, state = layer(x, lengths=lengths)
    backend = importlib.import_module(BACKENDS[layer.backend])
    fwd = getattr(backend, f"{layer._cell}_forward")
    kw = {"nonlinearity": layer.nonlinearity} if layer.nonlinearity else {}
    c0 = (None,) if cls is rnnkit.LSTM else ()
    for d, sfx in enumerate(["_l0", "_l0_reverse"]):
        p = [layer.parameters[n + sfx] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        out = fwd(x, None, *c0, *p, lengths=lengths, reverse=bool(d), training=False, **kw)
        np.testing.assert_array_equal(y[:, :, d * 4 : (d + 1) * 4], out[0])
        for s, o in zip(as_tuple(state), out[1:-1]):
            np.testing.assert_array_equal(s[d], o)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_batch_first_equals_transposed_time_major(cls):
    rng = np.random.default_rng(1)
    kw = {"L": 2, "bidirectional": True, "dropout": 0.4, "dtype": np.float64, "seed": 9}
    tm, bf = make(cls, **kw), make(cls, batch_first=True, **kw)
    x = rng.standard_normal((5, 3, 3))  # T,N,C
    state = rand_state(tm, 3, rng)
    lengths = [2, 5, 0]
    y, s, tape = tm.forward(x, state, lengths)
    y_bf, s_bf, tape_bf = bf.forward(np.ascontiguousarray(x.transpose(1, 0, 2)), state, lengths)
    np.testing.assert_array_equal(y_bf, y.transpose(1, 0, 2))
    for a, b in zip(as_tuple(s), as_tuple(s_bf)):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal(y.shape)
    dx, ds = tm.backward(tape, dy)
    dx_bf, ds_bf = bf.backward(tape_bf, np.ascontiguousarray(dy.transpose(1, 0, 2)))
    np.testing.assert_array_equal(dx_bf, dx.transpose(1, 0, 2))
    for a, b in zip(as_tuple(ds), as_tuple(ds_bf)):
        np.testing.assert_array_equal(a, b)
    for k in tm.grads:
        np.testing.assert_array_equal(tm.grads[k], bf.grads[k])
    y_inf, _ = bf(np.ascontiguousarray(x.transpose(1, 0, 2)), state, lengths)
    assert y_inf.shape == (3, 5, 8)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_zero_past_the_end_and_equal_to_truncated_sequences(cls, bidirectional):
    rng = np.random.default_rng(2)
    T, N = 6, 4
    layer = make(cls, L=2, bidirectional=bidirectional, dtype=np.float64)
    x = rng.standard_normal((T, N, 3))
    state = rand_state(layer, N, rng)
    lengths = np.array([3, 6, 0, 1])
    y, state_n = layer(x, state, lengths)
    for n, l in enumerate(lengths):
        assert not np.any(y[l:, n]), f"y not zero past lengths[{n}] = {l}"
        if l == 0:  # the final state is the initial one
            for s, s0 in zip(as_tuple(state_n), as_tuple(state)):
                np.testing.assert_array_equal(s[:, n], s0[:, n])
            continue
        # Each sequence alone, cut to its length, gives the same outputs and state.
        state_one = tuple(s[:, n : n + 1] for s in as_tuple(state))
        y1, s1 = layer(x[:l, n : n + 1], state_one if cls is rnnkit.LSTM else state_one[0])
        assert_close(f"y[:, {n}]", y[:l, n], y1[:, 0], rtol=1e-13, atol=1e-15)
        for a, b in zip(as_tuple(state_n), as_tuple(s1)):
            assert_close(f"state[:, {n}]", a[:, n], b[:, 0], rtol=1e-13, atol=1e-15)
    # Without lengths, or with all lengths T, the result is the same.
    y_none, _ = layer(x, state)
    y_full, _ = layer(x, state, np.full(N, T))
    np.testing.assert_array_equal(y_none, y_full)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_lengths_gradients_are_zero_past_the_end(cls):
    rng = np.random.default_rng(3)
    layer = make(cls, L=2, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((5, 3, 3))
    lengths = [1, 5, 0]
    y, _, tape = layer.forward(x, lengths=lengths)
    dx, dstate = layer.backward(tape, rng.standard_normal(y.shape))  # dy past lengths ignored
    for n, l in enumerate(lengths):
        assert not np.any(dx[l:, n])
    assert np.any(dx[:1, 0]) and np.any(dx[:, 1])
    for s in as_tuple(dstate):
        assert not np.any(s[:, 2])  # length 0 and no dstate: h0 does not matter


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_bias_false_equals_zero_bias(cls):
    rng = np.random.default_rng(4)
    nb = make(cls, L=2, bidirectional=True, bias=False, dtype=np.float64)
    wb = make(cls, L=2, bidirectional=True, bias=True, dtype=np.float64)
    wb.load_state_dict(
        {
            k: (nb.parameters[k] if k in nb.parameters else np.zeros_like(v))
            for k, v in wb.parameters.items()
        }
    )
    x = rng.standard_normal((4, 2, 3))
    y1, s1, t1 = nb.forward(x, lengths=[4, 2])
    y2, s2, t2 = wb.forward(x, lengths=[4, 2])
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(as_tuple(s1), as_tuple(s2)):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal(y1.shape)
    dx1, _ = nb.backward(t1, dy)
    dx2, _ = wb.backward(t2, dy)
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in nb.grads.items():
        np.testing.assert_array_equal(g, wb.grads[k])
    assert not any(k.startswith("bias") for k in nb.grads)


# --------------------------------------------------------------------------
# Inference vs training, defaults, inputs never modified
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_call_equals_forward_without_dropout(cls, dtype):
    rng = np.random.default_rng(6)
    layer = make(cls, L=2, bidirectional=True, dtype=dtype)
    x = rng.standard_normal((5, 3, 3)).astype(dtype)
    state = rand_state(layer, 3, rng)
    y1, s1 = layer(x, state, [5, 1, 3])
    y2, s2, tape = layer.forward(x, state, [5, 1, 3])
    assert isinstance(tape, Tape) and not tape.masks
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(as_tuple(s1), as_tuple(s2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_none_state_and_dstate_mean_zeros(cls):
    rng = np.random.default_rng(7)
    layer = make(cls, L=2, dtype=np.float64)
    x = rng.standard_normal((4, 2, 3))
    zeros = rand_state(layer, 2, rng)
    zeros = tuple(np.zeros_like(z) for z in as_tuple(zeros))
    zs = zeros if cls is rnnkit.LSTM else zeros[0]
    y1, s1, t1 = layer.forward(x)
    y2, s2, t2 = layer.forward(x, zs)
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(as_tuple(s1), as_tuple(s2)):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal(y1.shape)
    r1 = layer.backward(t1, dy)
    r2 = layer.backward(t2, dy, zs)
    g1 = layer.backward(t1, None)
    np.testing.assert_array_equal(r1[0], r2[0])
    assert not np.any(g1[0])
    if cls is rnnkit.LSTM:  # tuple members may be None
        r3 = layer.backward(t1, dy, (None, zeros[1]))
        r4 = layer.backward(t1, dy, (zeros[0], None))
        for r in (r3, r4):
            np.testing.assert_array_equal(r[0], r1[0])
        y5, _ = layer(x, (None, zeros[1]))
        np.testing.assert_array_equal(y5, y1)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("batch_first", [False, True])
def test_inputs_are_never_modified(cls, batch_first):
    rng = np.random.default_rng(8)
    layer = make(
        cls, L=2, bidirectional=True, dropout=0.3, batch_first=batch_first, dtype=np.float64
    )
    x = rng.standard_normal((4, 3, 3))
    N = 4 if batch_first else 3
    state = rand_state(layer, N, rng)
    lengths = np.arange(N) % 3 + 1  # T = 3 or 4
    arrays = [x, *as_tuple(state), lengths]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False  # any write would raise
    y, s, tape = layer.forward(x, state, lengths)
    layer(x, state, lengths)
    dy = rng.standard_normal(y.shape)
    ds = tuple(rng.standard_normal(v.shape) for v in as_tuple(s))
    ds = ds if cls is rnnkit.LSTM else ds[0]
    more = [dy, *as_tuple(ds)]
    more_copies = [a.copy() for a in more]
    for a in more:
        a.flags.writeable = False
    layer.backward(tape, dy, ds)
    for a, c in zip(arrays + more, copies + more_copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_tape_keeps_the_forward_it_recorded(cls):
    # Changing weights or inputs in place after forward must not change what
    # backward differentiates (an optimizer step between forward and backward).
    rng = np.random.default_rng(9)
    a = make(cls, L=2, bidirectional=True, dtype=np.float64, seed=1)
    b = make(cls, L=2, bidirectional=True, dtype=np.float64, seed=1)
    x = rng.standard_normal((4, 2, 3))
    state = rand_state(a, 2, rng)
    y, _, ta = a.forward(x.copy(), state)
    xb = x.copy()
    sb = copy.deepcopy(state)
    _, _, tb = b.forward(xb, sb)
    for p in b.parameters.values():
        p *= 3
    xb *= 2
    for s in as_tuple(sb):
        s += 1
    dy = rng.standard_normal(y.shape)
    dxa, dsa = a.backward(ta, dy)
    dxb, dsb = b.backward(tb, dy)
    np.testing.assert_array_equal(dxa, dxb)
    for u, v in zip(as_tuple(dsa), as_tuple(dsb)):
        np.testing.assert_array_equal(u, v)
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_tape_from_another_layer_or_not_a_tape():
    rng = np.random.default_rng(10)
    a, b = make(rnnkit.LSTM, seed=1), make(rnnkit.LSTM, seed=1)
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    y, _, tape = a.forward(x)
    with pytest.raises(ValueError, match="tape"):
        b.backward(tape, np.ones_like(y))
    with pytest.raises(TypeError, match="tape"):
        a.backward(tape.caches, np.ones_like(y))
    with pytest.raises(TypeError, match="tape"):
        a.backward(None, np.ones_like(y))


# --------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_dropout_masks_seeded_scaled_and_only_in_training(cls):
    p = 0.3
    rng = np.random.default_rng(11)
    x = rng.standard_normal((20, 8, 3)).astype(np.float32)
    a = make(cls, H=8, L=3, bidirectional=True, dropout=p, seed=5)
    b = make(cls, H=8, L=3, bidirectional=True, dropout=p, seed=5)
    c = make(cls, H=8, L=3, bidirectional=True, dropout=p, seed=6)
    c.load_state_dict(a.state_dict())
    ya, _, ta = a.forward(x)
    yb, _, tb = b.forward(x)
    yc, _, tc = c.forward(x)
    assert len(ta.masks) == 2  # between layers, not after the last
    for ma, mb, mc in zip(ta.masks, tb.masks, tc.masks):
        assert ma.shape == (20, 8, 16) and ma.dtype == np.float32
        np.testing.assert_array_equal(ma, mb)  # same seed, same masks
        assert not np.array_equal(ma, mc)
        assert set(np.unique(ma)) == {np.float32(0), np.float32(1 / (1 - p))}
        assert abs((ma == 0).mean() - p) < 0.05  # 2560 draws: 5 sigma is 0.045
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)  # same weights, other masks
    # Masks are fresh on every call.
    ya2, _, ta2 = a.forward(x)
    assert not np.array_equal(ta.masks[0], ta2.masks[0])
    assert not np.array_equal(ya, ya2)
    # Inference: no dropout, and the generator is not touched.
    state = copy.deepcopy(a.generator.bit_generator.state)
    y_inf, _ = a(x)
    assert a.generator.bit_generator.state == state
    # Restoring the generator's state replays the masks (the finite-difference
    # test relies on it).
    _, _, t1 = a.forward(x)
    _, _, t2 = a.forward(x)
    a.generator.bit_generator.state = state
    _, _, t1_again = a.forward(x)
    for m1, m2, m1_again in zip(t1.masks, t2.masks, t1_again.masks):
        assert not np.array_equal(m1, m2)
        np.testing.assert_array_equal(m1, m1_again)
    nodrop = make(cls, H=8, L=3, bidirectional=True, seed=5)
    nodrop.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(y_inf, nodrop(x)[0])


def test_dropout_with_one_layer_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="dropout"):
        layer = rnnkit.GRU(3, 4, 1, dropout=0.5, seed=0)
    x = np.ones((3, 2, 3), np.float32)
    y, _, tape = layer.forward(x)
    assert tape.masks == []
    np.testing.assert_array_equal(y, layer(x)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rnnkit.GRU(3, 4, 2, dropout=0.5)
        rnnkit.GRU(3, 4, 1)


# --------------------------------------------------------------------------
# Gradients vs central finite differences (float64, whole layer, dropout on)
# --------------------------------------------------------------------------


def _numeric_gradient(f, a, eps=1e-6):
    """Central differences of scalar f() w.r.t. every entry of array a (in place)."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        fp = f()
        a[i] = old - eps
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize(
    "cls, kw",
    [
        (rnnkit.LSTM, {}),
        (rnnkit.GRU, {}),
        (rnnkit.RNN, {"nonlinearity": "tanh"}),
        (rnnkit.IndRNN, {"nonlinearity": "relu"}),
        (rnnkit.LSTM, {"batch_first": True}),
    ],
    ids=["LSTM", "GRU", "RNN", "IndRNN", "LSTM-batch_first"],
)
def test_gradients_match_finite_differences(cls, kw):
    """dx, d(initial state) and every parameter gradient of a 2-layer
    bidirectional layer with lengths and dropout, against central differences
    of L = sum(y*R) + sum(h_n*Rh) (+ sum(c_n*Rc)).

    Dropout masks are replayed by restoring the layer's generator state before
    each forward: the masks depend only on that state and the shapes.
    """
    rng = np.random.default_rng(12)
    T, N, C, H = 4, 3, 3, 3
    layer = cls(C, H, 2, bidirectional=True, dropout=0.4, dtype=np.float64, seed=3, **kw)
    for p in layer.parameters.values():  # larger weights: well inside the nonlinear regime
        p *= 2.0
    x = rng.standard_normal((N, T, C) if layer.batch_first else (T, N, C))
    state = rand_state(layer, N, rng)
    lengths = np.array([4, 0, 2])
    gen_state = copy.deepcopy(layer.generator.bit_generator.state)

    y, state_n, tape = layer.forward(x, state, lengths)
    assert any((m == 0).any() for m in tape.masks), "dropout must be active in this test"
    R = rng.standard_normal(y.shape)
    Rs = tuple(rng.standard_normal(s.shape) for s in as_tuple(state_n))

    def loss():
        layer.generator.bit_generator.state = gen_state
        y, s, _ = layer.forward(x, state, lengths)
        return np.sum(y * R) + sum(np.sum(a * r) for a, r in zip(as_tuple(s), Rs))

    np.testing.assert_allclose(
        loss(),
        np.sum(y * R) + sum(np.sum(a * r) for a, r in zip(as_tuple(state_n), Rs)),
        rtol=1e-14,
    )
    dx, dstate = layer.backward(tape, R, Rs if cls is rnnkit.LSTM else Rs[0])

    tol = {"rtol": 1e-6, "atol": 1e-8}
    assert_close("dx", dx, _numeric_gradient(loss, x), **tol)
    for i, (d, s) in enumerate(zip(as_tuple(dstate), as_tuple(state))):
        assert_close(f"dstate[{i}]", d, _numeric_gradient(loss, s), **tol)
    for name, p in layer.parameters.items():
        assert_close(f"grads[{name!r}]", layer.grads[name], _numeric_gradient(loss, p), **tol)
    assert np.any(dx) and all(np.any(g) for g in layer.grads.values())


# --------------------------------------------------------------------------
# repr, constructor and call errors
# --------------------------------------------------------------------------


def test_repr_like_pytorch():
    assert repr(rnnkit.LSTM(10, 20)) == "LSTM(10, 20)"
    assert (
        repr(rnnkit.LSTM(10, 20, 2, bidirectional=True, batch_first=True, dropout=0.5))
        == "LSTM(10, 20, num_layers=2, batch_first=True, dropout=0.5, bidirectional=True)"
    )
    assert repr(rnnkit.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"
    assert repr(rnnkit.IndRNN(3, 4)) == "IndRNN(3, 4)"
    assert repr(rnnkit.IndRNN(3, 4, nonlinearity="tanh")) == "IndRNN(3, 4, nonlinearity='tanh')"
    assert (
        repr(rnnkit.GRU(3, 4, bias=False, dtype=np.float64))
        == "GRU(3, 4, bias=False, dtype=float64)"
    )


@pytest.mark.parametrize(
    "args, kw, exc, match",
    [
        ((0, 4), {}, ValueError, "input_size"),
        ((3, 0), {}, ValueError, "hidden_size"),
        ((3, 4, 0), {}, ValueError, "num_layers"),
        ((3.0, 4), {}, TypeError, "input_size"),
        ((3, True), {}, TypeError, "hidden_size"),
        ((3, 4), {"dropout": 1.0}, ValueError, "dropout"),
        ((3, 4), {"dropout": -0.1}, ValueError, "dropout"),
        ((3, 4), {"dropout": float("nan")}, ValueError, "dropout"),
        ((3, 4), {"dropout": "0.5"}, TypeError, "dropout"),
        ((3, 4), {"dtype": np.float16}, TypeError, "dtype"),
        ((3, 4), {"dtype": np.int32}, TypeError, "dtype"),
        ((3, 4), {"dtype": None}, TypeError, "dtype"),
        ((3, 4), {"dtype": "complex64"}, TypeError, "dtype"),
        ((3, 4), {"bidirectional": "yes"}, TypeError, "bidirectional"),
        ((3, 4), {"batch_first": 1}, TypeError, "batch_first"),
        ((3, 4), {"bias": None}, TypeError, "bias"),
        ((3, 4), {"backend": "cuda"}, ValueError, "backend"),
        ((3, 4), {"backend": 1}, TypeError, "backend"),
    ],
)
@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_constructor_errors(cls, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(*args, **kw)


def test_constructor_nonlinearity_and_keyword_only():
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnkit.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnkit.IndRNN(3, 4, nonlinearity=None)
    with pytest.raises(TypeError):
        rnnkit.LSTM(3, 4, nonlinearity="relu")
    with pytest.raises(TypeError):  # PyTorch's 4th positional is bias, ours would differ: refuse
        rnnkit.LSTM(3, 4, 2, True)
    assert rnnkit.GRU(3, 4, dtype="float64").dtype == np.float64


def test_backend_resolution(monkeypatch):
    layer = rnnkit.GRU(3, 4)
    assert layer.backend == DEFAULT_BACKEND == "native"
    assert rnnkit.GRU(3, 4, backend="reference").backend == "reference"
    monkeypatch.setitem(BACKENDS, "native", "rnnkit._no_such_module_for_tests")
    with pytest.raises(ValueError, match="native.*not available"):
        rnnkit.GRU(3, 4, backend="native")
    with pytest.raises(ValueError, match="unknown backend"):
        rnnkit.GRU(3, 4, backend="Reference")


def _bad_call_cases():
    """(description, layer kwargs, call kwargs override, exception, text in message)."""
    f32 = np.float32
    x = np.zeros((5, 3, 3), f32)
    h = np.zeros((2, 3, 4), f32)  # L=2, D=1
    return [
        ("x 2-D", {}, {"x": x[0]}, ValueError, "x"),
        ("x 4-D", {}, {"x": x[None]}, ValueError, "x"),
        (
            "x wrong C",
            {},
            {"x": np.zeros((5, 3, 2), f32)},
            ValueError,
            r"x.*\(5, 3, 3\).*\(5, 3, 2\)",
        ),
        ("x float64", {}, {"x": x.astype(np.float64)}, TypeError, r"x.*float64.*float32"),
        ("x int", {}, {"x": x.astype(np.int64)}, TypeError, r"x.*int64"),
        ("x list", {}, {"x": x.tolist()}, TypeError, "x"),
        ("x T=0", {}, {"x": x[:0]}, ValueError, "x"),
        ("x N=0", {}, {"x": x[:, :0]}, ValueError, "x"),
        ("state wrong L", {}, {"state": h[:1]}, ValueError, r"state.*\(2, 3, 4\).*\(1, 3, 4\)"),
        ("state wrong N", {}, {"state": h[:, :2]}, ValueError, r"state.*\(2, 3, 4\)"),
        ("state wrong H", {}, {"state": h[..., :3]}, ValueError, r"state.*\(2, 3, 4\)"),
        ("state 2-D", {}, {"state": h[0]}, ValueError, "state"),
        ("state float64", {}, {"state": h.astype(np.float64)}, TypeError, r"state.*float64"),
        ("state 3-tuple", {}, {"state": (h, h, h)}, TypeError, "state"),
        ("state list", {}, {"state": h.tolist()}, TypeError, "state"),
        (
            "bidirectional state",
            {"bidirectional": True},
            {"state": h},
            ValueError,
            r"state.*\(4, 3, 4\)",
        ),
        ("lengths too long", {}, {"lengths": [1, 6, 2]}, ValueError, r"lengths.*0\.\.5"),
        ("lengths negative", {}, {"lengths": [1, -1, 2]}, ValueError, "lengths"),
        ("lengths float", {}, {"lengths": np.array([1.0, 2.0, 3.0])}, TypeError, "lengths"),
        ("lengths nan", {}, {"lengths": [1, float("nan"), 2]}, TypeError, "lengths"),
        ("lengths bool", {}, {"lengths": [True, False, True]}, TypeError, "lengths"),
        ("lengths size", {}, {"lengths": [1, 2]}, ValueError, r"lengths.*\(3,\)"),
        ("lengths 2-D", {}, {"lengths": [[1, 2, 3]]}, ValueError, "lengths"),
        ("lengths scalar", {}, {"lengths": 3}, ValueError, "lengths"),
        ("lengths ragged", {}, {"lengths": [[1], [2, 3], 4]}, TypeError, "lengths"),
        ("lengths strings", {}, {"lengths": ["1", "2", "3"]}, TypeError, "lengths"),
        (
            "lengths uint too big",
            {},
            {"lengths": np.array([1, 2, 2**63], np.uint64)},
            ValueError,
            "lengths",
        ),
        (
            "batch_first x as time-major",
            {"batch_first": True},
            {"x": np.zeros((5, 3, 2), f32)},
            ValueError,
            "x",
        ),
    ]


def _backend_must_not_be_called(*args, **kwargs):
    raise AssertionError("invalid input reached the backend")


@pytest.mark.parametrize("case", _bad_call_cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("training", [False, True])
def test_bad_call_inputs(cls, case, training):
    _, layer_kw, call, exc, match = case
    layer = cls(3, 4, 2, seed=0, **layer_kw)
    args = {"x": np.zeros((5, 3, 3), np.float32), "state": None, "lengths": None}
    args.update(call)
    if cls is rnnkit.LSTM and isinstance(args["state"], np.ndarray):
        args["state"] = (args["state"], np.zeros((2, 3, 4), np.float32))
    layer._forward_fn = _backend_must_not_be_called  # validated before any backend call
    run = layer.forward if training else layer
    with pytest.raises(exc, match=match):
        run(args["x"], args["state"], args["lengths"])


def test_bad_lstm_states_name_h_and_c():
    layer = rnnkit.LSTM(3, 4, 2, seed=0)
    x = np.zeros((5, 3, 3), np.float32)
    h = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match=r"state.*tuple"):
        layer(x, h)
    with pytest.raises(TypeError, match=r"state.*tuple"):
        layer(x, (h,))
    with pytest.raises(TypeError, match=r"state.*tuple"):
        layer(x, (h, h, h))
    with pytest.raises(ValueError, match=r"state\[1\] \(c\).*\(2, 3, 4\).*\(2, 3, 5\)"):
        layer(x, (h, np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(TypeError, match=r"state\[0\] \(h\).*float64"):
        layer(x, (h.astype(np.float64), h))


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("batch_first", [False, True])
def test_bad_backward_inputs(cls, batch_first):
    layer = cls(3, 4, 2, bidirectional=True, batch_first=batch_first, seed=0)
    x = np.zeros((5, 3, 3), np.float32)
    y, s, tape = layer.forward(x)
    with pytest.raises(ValueError, match="dy"):
        layer.backward(tape, y[:, :, :4])
    with pytest.raises(ValueError, match="dy"):
        layer.backward(tape, np.ascontiguousarray(y.transpose(1, 0, 2)))
    with pytest.raises(TypeError, match=r"dy.*float64.*float32"):
        layer.backward(tape, y.astype(np.float64))
    with pytest.raises(TypeError, match="dy"):
        layer.backward(tape, y.tolist())
    bad = np.zeros((4, tape.shape[1] + 2, 4), np.float32)  # wrong N
    with pytest.raises((ValueError, TypeError), match="dstate"):
        layer.backward(tape, y, (bad, bad) if cls is rnnkit.LSTM else bad)
    if cls is rnnkit.LSTM:
        with pytest.raises(TypeError, match="dstate"):
            layer.backward(tape, y, s[0])
        with pytest.raises(ValueError, match=r"dstate\[1\]"):
            layer.backward(tape, y, (None, bad))
    else:
        with pytest.raises(TypeError, match="dstate"):
            layer.backward(tape, y, (s, s))
    assert all(not np.any(g) for g in layer.grads.values())  # nothing accumulated


# --------------------------------------------------------------------------
# Property-based: valid inputs give finite outputs, zero past lengths;
# invalid inputs give ValueError or TypeError and nothing else.
# --------------------------------------------------------------------------


@st.composite
def layer_and_inputs(draw):
    cls = draw(st.sampled_from(CLASSES))
    T, N = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    C, H, L = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    kw = {
        "bidirectional": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "bias": draw(st.booleans()),
        "dropout": draw(st.sampled_from([0.0, 0.5])) if L > 1 else 0.0,
        "seed": draw(st.integers(0, 2**32 - 1)),
    }
    if cls in (rnnkit.RNN, rnnkit.IndRNN):
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    lengths = draw(st.none() | st.lists(st.integers(0, T), min_size=N, max_size=N))
    with_state = draw(st.booleans())
    return cls(C, H, L, **kw), T, N, lengths, with_state, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_and_inputs())
def test_property_valid_inputs(case):
    layer, T, N, lengths, with_state, data_seed = case
    rng = np.random.default_rng(data_seed)
    dt = layer.dtype
    x = (
        3
        * rng.standard_normal(
            (N, T, layer.input_size) if layer.batch_first else (T, N, layer.input_size)
        )
    ).astype(dt)
    state = rand_state(layer, N, rng) if with_state else None
    y, s = layer(x, state, lengths)
    y2, s2, tape = layer.forward(x, state, lengths)
    dy = rng.standard_normal(y2.shape).astype(dt)
    dx, ds = layer.backward(tape, dy)
    DH = layer.num_directions * layer.hidden_size
    assert y.shape == ((N, T, DH) if layer.batch_first else (T, N, DH))
    for a in [y, y2, dx, *as_tuple(s), *as_tuple(s2), *as_tuple(ds), *layer.grads.values()]:
        assert a.dtype == dt
        assert np.all(np.isfinite(a))
    if lengths is not None:
        yt = y.transpose(1, 0, 2) if layer.batch_first else y
        y2t = y2.transpose(1, 0, 2) if layer.batch_first else y2
        dxt = dx.transpose(1, 0, 2) if layer.batch_first else dx
        for n, l in enumerate(lengths):
            assert not np.any(yt[l:, n]) and not np.any(y2t[l:, n]) and not np.any(dxt[l:, n])


@st.composite
def invalid_call(draw):
    cls = draw(st.sampled_from(CLASSES))
    T, N, C, H, L = (draw(st.integers(1, 4)) for _ in range(5))
    bidirectional, batch_first = draw(st.booleans()), draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    other = np.float64 if dtype == np.float32 else np.float32
    layer = cls(C, H, L, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, seed=0)
    D = 2 if bidirectional else 1
    x_shape = [N, T, C] if batch_first else [T, N, C]
    s_shape = [L * D, N, H]
    lengths = None
    state_dtype = dtype
    x_dtype = dtype
    what = draw(
        st.sampled_from(
            [
                "x_rank",
                "x_axis",
                "x_dtype",
                "state_axis",
                "state_rank",
                "state_dtype",
                "lengths_range",
                "lengths_size",
                "lengths_float",
                "lengths_rank",
            ]
        )
    )
    if what == "x_rank":
        x_shape = (
            x_shape + [1] * draw(st.integers(1, 2))
            if draw(st.booleans())
            else x_shape[: draw(st.integers(0, 2))]
        )
    elif what == "x_axis":
        i = draw(st.sampled_from([0, 1, 2]))
        x_shape[i] = 0 if i < 2 else C + draw(st.sampled_from([-C, 1, 2]))
    elif what == "x_dtype":
        x_dtype = draw(
            st.sampled_from([other, np.int32, np.int64, np.float16, np.complex128, bool])
        )
    elif what == "state_axis":
        i = draw(st.integers(0, 2))
        s_shape[i] += draw(st.sampled_from([-1, 1, 3]))  # every axis is >= 1 before
    elif what == "state_rank":
        s_shape = s_shape[1:] if draw(st.booleans()) else s_shape + [1]
    elif what == "state_dtype":
        state_dtype = other
    elif what == "lengths_range":
        bad = draw(st.sampled_from([-1, T + 1, T + 100, -(2**40)]))
        lengths = [T] * N
        lengths[draw(st.integers(0, N - 1))] = bad
    elif what == "lengths_size":
        lengths = [1] * draw(st.sampled_from([0, N + 1, N + 2]))
    elif what == "lengths_float":
        lengths = np.full(N, 1.0)
    elif what == "lengths_rank":
        lengths = np.ones((N, 1), np.int64)
    x = np.zeros(x_shape, x_dtype)
    state = None
    if what.startswith("state"):
        h = np.zeros(s_shape, state_dtype)
        state = (h, np.zeros([L * D, N, H], dtype)) if cls is rnnkit.LSTM else h
        if cls is rnnkit.LSTM and draw(st.booleans()):
            state = state[::-1]  # the bad one as c
    return layer, x, state, lengths, what, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(invalid_call())
def test_property_invalid_inputs_raise_value_or_type_error(case):
    layer, x, state, lengths, what, training = case
    layer._forward_fn = _backend_must_not_be_called
    run = layer.forward if training else layer
    with pytest.raises((ValueError, TypeError)) as info:
        run(x, state, lengths)
    name = what.split("_")[0]
    assert name in str(info.value), f"{what}: message {str(info.value)!r} does not name {name}"


# --- found in review ----------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_masked_inputs_with_masked_entries_are_refused(cls):
    # np.ascontiguousarray dropped the mask: the layer computed on the hidden data.
    layer = make(cls, L=2)
    x = np.ones((4, 2, 3), np.float32)
    mask = np.zeros(x.shape, bool)
    mask[3] = True
    with pytest.raises(TypeError, match="x is a masked array"):
        layer(np.ma.masked_array(x, mask=mask))
    layer(np.ma.masked_array(x))  # nothing masked: just the data
    with pytest.raises(TypeError, match="lengths is a masked array"):
        layer(x, lengths=np.ma.masked_array([4, 9], mask=[0, 1]))
    if cls is not rnnkit.LSTM:
        h = np.zeros((2, 2, 4), np.float32)
        with pytest.raises(TypeError, match="state is a masked array"):
            layer(x, np.ma.masked_array(h, mask=True))
    sd = layer.state_dict()
    sd["weight_ih_l0"] = np.ma.masked_array(sd["weight_ih_l0"], mask=True)
    with pytest.raises(TypeError, match=r"state_dict\['weight_ih_l0'\] is a masked array"):
        layer.load_state_dict(sd)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_load_state_dict_refuses_values_that_overflow_the_dtype(cls):
    # 1e300 cast to float32 was inf, silently (a RuntimeWarning at most).
    layer = make(cls)
    before = layer.state_dict()
    sd = {k: v.astype(np.float64) for k, v in before.items()}
    sd["weight_hh_l0"] = sd["weight_hh_l0"].copy()
    sd["weight_hh_l0"].flat[1] = 1e300
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\].*too large for float32"):
        layer.load_state_dict(sd)
    for k, v in layer.parameters.items():  # nothing was written
        np.testing.assert_array_equal(v, before[k])
    sd["weight_hh_l0"].flat[1] = np.inf  # non-finite weights are refused too (issue 14)
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\].*non-finite"):
        layer.load_state_dict(sd)
    np.testing.assert_array_equal(layer.parameters["weight_hh_l0"], before["weight_hh_l0"])


@pytest.mark.parametrize("value", [np.array(["tanh", "relu"]), ["tanh"], b"tanh"])
def test_nonlinearity_that_is_not_a_str_names_it(value):
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        rnnkit.RNN(2, 3, nonlinearity=value)


@pytest.mark.parametrize("seed", [-1, 1.5, "x"])
def test_bad_seed_names_it(seed):
    with pytest.raises((TypeError, ValueError), match="seed must be"):
        rnnkit.GRU(2, 3, seed=seed)


@pytest.mark.parametrize(
    "sizes", [(3, 10**30), (2**40, 2**40), (3, 4, 10**20)], ids=["H", "C*H", "L"]
)
def test_sizes_too_large_for_memory_name_themselves(sizes):
    # hidden_size=10**30 failed in np.sqrt ("loop of ufunc does not support..."),
    # and num_layers=10**20 had to be refused without looping over the layers.
    with pytest.raises(ValueError, match="hidden_size=.*more than memory can hold"):
        rnnkit.LSTM(*sizes)


@pytest.mark.parametrize("lengths", ["12", {1: 2}, 2.0])
def test_lengths_of_the_wrong_kind_are_called_what_they_are(lengths):
    with pytest.raises(TypeError, match="lengths must be integers"):
        make(rnnkit.GRU)(np.zeros((3, 2, 3), np.float32), lengths=lengths)


def test_non_native_byte_order_input_says_how_to_convert():
    x = np.zeros((3, 2, 3), ">f4")
    with pytest.raises(TypeError, match=r"byte order; convert it with x.astype\(np.float32\)"):
        make(rnnkit.LSTM)(x)
