"""Bad input to the reference cells (through rnnkit._checks, which the native
bindings share): every bad argument raises ValueError or TypeError, and the
message names the argument with the expected and actual values. Property tests
draw random wrong shapes, dtypes and lengths and accept no other exception.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rnnkit import _checks
from rnnkit import reference as ref

CELLS = ["rnn", "lstm", "gru", "indrnn"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
ARG_NAMES = [
    "x",
    "h0",
    "c0",
    "w_ih",
    "w_hh",
    "b_ih",
    "b_hh",
    "lengths",
    "reverse",
    "nonlinearity",
    "training",
    "cache",
    "dy",
    "dh_n",
    "dc_n",
]
T, N, C, H = 4, 3, 2, 5


def valid_args(cell, T=T, N=N, C=C, H=H, dtype=np.float64):
    """Keyword arguments of a valid <cell>_forward call."""
    G = GATES[cell]
    rng = np.random.default_rng(0)
    args = {
        "x": rng.standard_normal((T, N, C)).astype(dtype),
        "h0": rng.standard_normal((N, H)).astype(dtype),
        "w_ih": rng.standard_normal((G * H, C)).astype(dtype),
        "w_hh": rng.standard_normal((H,) if cell == "indrnn" else (G * H, H)).astype(dtype),
        "b_ih": rng.standard_normal(G * H).astype(dtype),
        "b_hh": rng.standard_normal(G * H).astype(dtype),
    }
    if cell == "lstm":
        args["c0"] = rng.standard_normal((N, H)).astype(dtype)
    return args


def call(cell, args, **kw):
    return getattr(ref, f"{cell}_forward")(**args, **kw)


def backward_call(cell, cache, dy=None, dh_n=None, dc_n=None):
    b = getattr(ref, f"{cell}_backward")
    if cell == "lstm":
        return b(dy, dh_n, dc_n, cache)
    assert dc_n is None
    return b(dy, dh_n, cache)


def raises(exc, cell, args, name, *needles, **kw):
    """Assert the call raises exc and the message names `name` and contains each needle."""
    with pytest.raises(exc) as info:
        call(cell, args, **kw)
    msg = str(info.value)
    assert name in msg, f"message does not name {name}: {msg}"
    for needle in needles:
        assert str(needle) in msg, f"message lacks {needle!r}: {msg}"
    return msg


def arrays_of(cell):
    return ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"] + (["c0"] if cell == "lstm" else [])


# --- x ------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_x_type_dtype_rank_and_size(cell):
    args = valid_args(cell)
    raises(TypeError, cell, dict(args, x=args["x"].tolist()), "x", "list")
    raises(TypeError, cell, dict(args, x=args["x"].astype(np.int64)), "x", "int64")
    raises(TypeError, cell, dict(args, x=args["x"].astype(np.float16)), "x", "float16")
    raises(TypeError, cell, dict(args, x=args["x"].astype(np.complex128)), "x", "complex128")
    raises(TypeError, cell, dict(args, x=args["x"] > 0), "x", "bool")
    raises(ValueError, cell, dict(args, x=args["x"][0]), "x", "(T, N, C)", (N, C))
    raises(ValueError, cell, dict(args, x=args["x"][None]), "x", (1, T, N, C))
    raises(ValueError, cell, dict(args, x=args["x"][:0]), "x", (0, N, C))
    raises(
        ValueError,
        cell,
        dict(args, x=args["x"][:, :, :0], w_ih=args["w_ih"][:, :0]),
        "x",
        (T, N, 0),
    )
    raises(
        ValueError,
        cell,
        dict(args, x=args["x"][:, :0], h0=None, c0=None)
        if cell == "lstm"
        else dict(args, x=args["x"][:, :0], h0=None),
        "x",
        (T, 0, C),
    )


# --- dtypes: all arrays share x's dtype ------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_mixed_dtypes_name_both(cell):
    for name in arrays_of(cell):
        if name == "x":
            continue
        args = valid_args(cell)
        args[name] = args[name].astype(np.float32)
        msg = raises(TypeError, cell, args, name, "float32", "float64", "x")
        assert msg.startswith(f"{name} has dtype float32 but x has float64")
        args = valid_args(cell, dtype=np.float32)
        args[name] = args[name].astype(np.int32)
        raises(TypeError, cell, args, name, "int32", "float32")


@pytest.mark.parametrize("cell", CELLS)
def test_non_arrays_are_refused(cell):
    for name in arrays_of(cell):
        args = valid_args(cell)
        args[name] = args[name].tolist()
        raises(TypeError, cell, args, name, "numpy.ndarray", "list")
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        raises(TypeError, cell, dict(valid_args(cell), **{name: None}), name, "NoneType")


# --- shapes -------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_wrong_shapes_give_expected_and_actual(cell):
    G = GATES[cell]
    args = valid_args(cell)
    raises(
        ValueError,
        cell,
        dict(args, h0=np.zeros((N, H - 1))),
        "h0",
        f"(N, H) = {(N, H)}",
        f"got {(N, H - 1)}",
    )
    raises(ValueError, cell, dict(args, h0=np.zeros((N + 1, H))), "h0", (N, H), (N + 1, H))
    raises(ValueError, cell, dict(args, h0=np.zeros(N * H)), "h0", (N, H), (N * H,))
    raises(
        ValueError,
        cell,
        dict(args, w_ih=np.zeros((G * H, C + 1))),
        "w_ih",
        (G * H, C),
        (G * H, C + 1),
    )
    raises(ValueError, cell, dict(args, w_ih=np.zeros((G * H + 1, C))), "w_ih", (G * H, C))
    raises(ValueError, cell, dict(args, b_ih=np.zeros(G * H + 2)), "b_ih", (G * H,), (G * H + 2,))
    raises(ValueError, cell, dict(args, b_hh=np.zeros((G * H, 1))), "b_hh", (G * H,), (G * H, 1))
    if cell == "lstm":
        raises(ValueError, cell, dict(args, c0=np.zeros((N, H + 1))), "c0", (N, H), (N, H + 1))
    if cell == "indrnn":
        raises(ValueError, cell, dict(args, w_hh=np.zeros((H, H))), "w_hh", "(H,)", (H, H))
        raises(ValueError, cell, dict(args, w_hh=np.zeros(0)), "w_hh", "(0,)")
    else:
        raises(
            ValueError,
            cell,
            dict(args, w_hh=np.zeros((G * H + 1, H))),
            "w_hh",
            (G * H, H),
            (G * H + 1, H),
        )
        raises(ValueError, cell, dict(args, w_hh=np.zeros(G * H)), "w_hh", (G * H,))
        raises(ValueError, cell, dict(args, w_hh=np.zeros((0, 0))), "w_hh", "(0, 0)")


def test_h_comes_from_w_hh_and_the_message_says_so():
    args = valid_args("lstm")
    msg = raises(
        ValueError,
        "lstm",
        dict(args, w_hh=np.zeros((4 * (H + 1), H + 1))),
        "w_ih",
        (4 * (H + 1), C),
        (4 * H, C),
    )
    assert "w_hh.shape[1]" in msg


# --- lengths ------------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths,exc,needles",
    [
        (np.array([1.0, 2.0, 3.0]), TypeError, ["float64"]),  # integral floats too
        (np.array([1.0, np.nan, 3.0]), TypeError, ["float64"]),
        (np.array([1.0, np.inf, 3.0]), TypeError, ["float64"]),
        (np.array([True, False, True]), TypeError, ["bool"]),
        (np.array([1, 2, 3], dtype=object), TypeError, ["object"]),
        ([1, 2.0, 3], TypeError, ["float", "lengths[1]"]),
        ([1, True, 3], TypeError, ["bool", "lengths[1]"]),
        ([1, "2", 3], TypeError, ["str"]),
        ([[1], [2], [3]], TypeError, ["list"]),
        ("123", TypeError, ["str"]),
        (3, TypeError, ["int"]),
        (3.0, TypeError, ["float"]),
        (np.array([1, 2]), ValueError, ["(N,) = (3,)", "(2,)"]),
        ([1, 2, 3, 4], ValueError, ["(N,) = (3,)", "(4,)"]),
        ([], ValueError, ["(0,)"]),
        (np.array([[1, 2, 3]]), ValueError, ["(1, 3)"]),
        (np.array(3), ValueError, ["()"]),
        (np.array([1, -1, 3]), ValueError, ["lengths[1] = -1", f"0..{T}"]),
        ([1, 2, T + 1], ValueError, [f"lengths[2] = {T + 1}", f"0..{T}"]),
        (np.array([1, 2, 2**63 + 5], dtype=np.uint64), ValueError, [f"lengths[2] = {2**63 + 5}"]),
        ([1, 2**70, 3], ValueError, [f"lengths[1] = {2**70}"]),
        (np.array([1, 2, -128], dtype=np.int8), ValueError, ["lengths[2] = -128"]),
    ],
    ids=repr,
)
@pytest.mark.parametrize("cell", CELLS)
def test_bad_lengths(cell, lengths, exc, needles):
    raises(exc, cell, valid_args(cell), "lengths", *needles, lengths=lengths)


@pytest.mark.parametrize(
    "lengths",
    [
        [4, 0, 2],
        (4, 0, 2),
        np.array([4, 0, 2], dtype=np.int32),
        np.array([4, 0, 2], dtype=np.uint8),
        [np.int16(4), np.uint64(0), 2],
        np.array([4, 9, 0, 9, 2])[::2],
    ],
    ids=repr,
)
@pytest.mark.parametrize("cell", CELLS)
def test_good_lengths_are_normalised_to_int64(cell, lengths):
    *out, cache = call(cell, valid_args(cell), lengths=lengths)
    *ref_out, _ = call(cell, valid_args(cell), lengths=np.array([4, 0, 2], dtype=np.int64))
    assert cache.lengths.dtype == np.int64 and cache.lengths.tolist() == [4, 0, 2]
    for a, b in zip(out, ref_out):
        assert np.array_equal(a, b)


# --- flags and nonlinearity --------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_flags_must_be_bools(cell):
    args = valid_args(cell)
    for value in (1, 0, "yes", None, np.array([True])):
        raises(TypeError, cell, args, "reverse", "bool", reverse=value)
        raises(TypeError, cell, args, "training", "bool", training=value)
    call(cell, args, reverse=np.bool_(True), training=np.bool_(False))  # numpy bools are fine


@pytest.mark.parametrize("cell", ["rnn", "indrnn"])
def test_nonlinearity(cell):
    args = valid_args(cell)
    for value in ("sigmoid", "Tanh", "", None, 1):
        raises(
            ValueError,
            cell,
            args,
            "nonlinearity",
            "'tanh' or 'relu'",
            repr(value),
            nonlinearity=value,
        )


# --- backward ------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_backward_bad_gradients(cell):
    *_, cache = call(cell, valid_args(cell))
    cases = [
        (
            {"dy": np.zeros((T, N, H + 1))},
            ValueError,
            "dy",
            ["(T, N, H)", (T, N, H), (T, N, H + 1)],
        ),
        ({"dy": np.zeros((T, N, H), np.float32)}, TypeError, "dy", ["float32", "float64"]),
        ({"dy": np.zeros((T, N, H)).tolist()}, TypeError, "dy", ["list"]),
        ({"dh_n": np.zeros((N + 1, H))}, ValueError, "dh_n", [(N, H), (N + 1, H)]),
        ({"dh_n": np.zeros((N, H), np.int64)}, TypeError, "dh_n", ["int64"]),
    ]
    if cell == "lstm":
        cases += [
            ({"dc_n": np.zeros(H)}, ValueError, "dc_n", [(N, H), (H,)]),
            ({"dc_n": np.zeros((N, H), np.float32)}, TypeError, "dc_n", ["float32"]),
        ]
    for kw, exc, name, needles in cases:
        with pytest.raises(exc) as info:
            backward_call(cell, cache, **kw)
        msg = str(info.value)
        assert name in msg and all(str(n) in msg for n in needles), msg


@pytest.mark.parametrize("cell", CELLS)
def test_backward_needs_a_training_cache_from_the_same_cell(cell):
    out = call(cell, valid_args(cell), training=False)
    y, cache = out[0], out[-1]
    assert cache is None
    with pytest.raises(TypeError, match="cache.*training=True.*NoneType"):
        backward_call(cell, None)
    with pytest.raises(TypeError, match="cache"):
        backward_call(cell, {"h": y})
    other = "gru" if cell != "gru" else "lstm"
    *_, other_cache = call(other, valid_args(other))
    with pytest.raises(ValueError, match=f"cache comes from {other}_forward, not {cell}_forward"):
        backward_call(cell, other_cache)


# --- _checks directly: what the native bindings will rely on ------------------------


def test_check_forward_normalises():
    args = valid_args("lstm")
    x = np.asfortranarray(args["x"])
    out = _checks.check_forward(
        "lstm",
        x,
        None,
        None,
        args["w_ih"],
        args["w_hh"],
        args["b_ih"],
        args["b_hh"],
        [4, 0, 2],
        np.bool_(True),
        None,
    )
    assert isinstance(out, _checks.ForwardArgs)
    assert out.x.flags.c_contiguous and np.array_equal(out.x, x) and out.x is not x
    assert out.w_ih is args["w_ih"]  # contiguous inputs are used as they are, never written
    assert (
        out.h0.shape == (N, H) and out.c0.shape == (N, H) and not out.h0.any() and not out.c0.any()
    )
    assert out.lengths.dtype == np.int64 and out.lengths.tolist() == [4, 0, 2]
    assert out.reverse is True and out.training is True and out.nonlinearity is None


def test_check_forward_refuses_arguments_a_cell_does_not_have():
    args = valid_args("gru")
    common = (args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"], None, False)
    with pytest.raises(TypeError, match="c0"):
        _checks.check_forward("gru", args["x"], None, np.zeros((N, H)), *common, None)
    with pytest.raises(TypeError, match="nonlinearity"):
        _checks.check_forward("gru", args["x"], None, None, *common, "tanh")
    with pytest.raises(ValueError, match="cell"):
        _checks.check_forward("elman", args["x"], None, None, *common, None)


# --- property tests --------------------------------------------------------------

dims = st.integers(1, 4)
bad_dtypes = [
    np.float16,
    np.int8,
    np.int32,
    np.int64,
    np.uint16,
    np.bool_,
    np.complex64,
    np.complex128,
    object,
]


@st.composite
def bad_forward_call(draw):
    """A valid call with one argument made wrong; returns (cell, args, kw, name)."""
    cell = draw(st.sampled_from(CELLS))
    t, n, c, h = draw(dims), draw(dims), draw(dims), draw(dims)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    args = valid_args(cell, t, n, c, h, dtype)
    kw = {"lengths": None, "reverse": draw(st.booleans())}
    names = (
        arrays_of(cell)
        + ["lengths", "reverse", "training"]
        + (["nonlinearity"] if cell in ("rnn", "indrnn") else [])
    )
    name = draw(st.sampled_from(names))
    how = draw(st.sampled_from(["shape", "dtype", "type"]))

    if name in args:
        a = args[name]
        if how == "shape":
            shape = tuple(draw(st.lists(st.integers(0, 5), max_size=4)))
            if name == "x":  # other valid 3-D shapes would just move the error elsewhere
                assume(len(shape) != 3 or 0 in shape)
            assume(shape != a.shape)
            args[name] = np.zeros(shape, dtype)
        elif how == "dtype":
            bad = draw(
                st.sampled_from(bad_dtypes + [np.float32 if dtype == np.float64 else np.float64])
            )
            args[name] = a.astype(bad)
            if name == "x" and bad in (np.float32, np.float64):
                name = None  # x in the other float dtype: the error lands on w_hh
        else:
            choices = [a.tolist(), tuple(a.ravel().tolist()), 1.5, "abc"]
            if name in ("x", "w_ih", "w_hh", "b_ih", "b_hh"):
                choices.append(None)
            args[name] = draw(st.sampled_from(choices))
    elif name == "lengths":
        kw["lengths"] = draw(
            st.one_of(
                st.lists(st.integers(-3, t + 3), min_size=n, max_size=n).filter(
                    lambda v: min(v) < 0 or max(v) > t
                ),
                st.lists(st.integers(0, t), max_size=6).filter(lambda v: len(v) != n),
                st.lists(st.floats(allow_nan=True), min_size=n, max_size=n).map(np.array),
                st.lists(st.integers(0, t), min_size=n, max_size=n).map(
                    lambda v: np.array(v, float)
                ),
                st.lists(st.booleans(), min_size=n, max_size=n),
                st.lists(st.integers(0, t), min_size=n, max_size=n).map(lambda v: np.array([v])),
                st.sampled_from(["", "1", 1, 1.0, {}, object()]),
                st.lists(st.integers(-(2**80), 2**80), min_size=n, max_size=n).filter(
                    lambda v: min(v) < 0 or max(v) > t
                ),
            )
        )
    elif name in ("reverse", "training"):
        kw[name] = draw(st.sampled_from([0, 1, "True", None, 1.0, np.array([True, False])]))
    else:
        kw["nonlinearity"] = draw(st.sampled_from(["sigmoid", "RELU", "", None, 0, b"tanh"]))
    return cell, args, kw, name


@settings(max_examples=400, deadline=None)
@given(bad_forward_call())
def test_property_bad_forward_input_gets_a_clean_error(case):
    cell, args, kw, name = case
    with pytest.raises((ValueError, TypeError)) as info:  # any other exception fails the test
        call(cell, args, **kw)
    msg = str(info.value)
    assert any(arg in msg for arg in ARG_NAMES), msg
    # A wrong shape of w_hh changes H, so the error can land on another array;
    # anything else must be blamed on the argument that was made wrong.
    if name is not None and name != "w_hh":
        assert name in msg, f"{name} was made wrong, but the message says: {msg}"


@st.composite
def valid_call(draw):
    cell = draw(st.sampled_from(CELLS))
    t, n, c, h = draw(dims), draw(dims), draw(dims), draw(dims)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    args = valid_args(cell, t, n, c, h, dtype)
    if draw(st.booleans()):
        args["h0"] = None
        if cell == "lstm":
            args["c0"] = None
    lengths = draw(st.one_of(st.none(), st.lists(st.integers(0, t), min_size=n, max_size=n)))
    return cell, args, lengths, draw(st.booleans()), (t, n, h), dtype


@settings(max_examples=150, deadline=None)
@given(valid_call(), st.data())
def test_property_valid_input_passes_forward_and_backward(case, data):
    cell, args, lengths, reverse, (t, n, h), dtype = case
    *out, cache = call(cell, args, lengths=lengths, reverse=reverse)
    assert out[0].shape == (t, n, h) and all(o.shape == (n, h) for o in out[1:])
    assert all(o.dtype == dtype for o in out)
    grads = {}
    for name, shape in [("dy", (t, n, h)), ("dh_n", (n, h))] + (
        [("dc_n", (n, h))] if cell == "lstm" else []
    ):
        grads[name] = np.ones(shape, dtype) if data.draw(st.booleans()) else None
    result = backward_call(cell, cache, **grads)
    expected = (
        [args["x"].shape, (n, h)]
        + ([(n, h)] if cell == "lstm" else [])
        + [args[k].shape for k in ("w_ih", "w_hh", "b_ih", "b_hh")]
    )
    assert [g.shape for g in result] == expected
    assert all(g.dtype == dtype and np.all(np.isfinite(g)) for g in result)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CELLS),
    st.sampled_from(["dy", "dh_n", "dc_n"]),
    st.lists(st.integers(0, 5), max_size=4).map(tuple),
    st.sampled_from([np.float64, np.float32, np.int64, np.bool_, object]),
)
def test_property_bad_backward_input_gets_a_clean_error(cell, name, shape, dtype):
    if cell != "lstm" and name == "dc_n":
        name = "dh_n"
    *_, cache = call(cell, valid_args(cell))
    good = (T, N, H) if name == "dy" else (N, H)
    assume(shape != good or dtype != np.float64)
    with pytest.raises((ValueError, TypeError)) as info:
        backward_call(cell, cache, **{name: np.zeros(shape, dtype)})
    assert name in str(info.value)


# --- found in review: a mutated cache, masked arrays, non-native byte order ------------

# (field, how to spoil it, exception): each of these once reached the reference's
# math and gave a silently wrong gradient (or a NumPy broadcasting error).
SPOILED_CACHE = {
    "lengths-out-of-range": ("lengths", lambda c: np.full_like(c.lengths, 99), ValueError),
    "lengths-float": ("lengths", lambda c: c.lengths.astype(np.float64), TypeError),
    "reverse-int": ("reverse", lambda c: 1, TypeError),
    "x-float32": ("x", lambda c: c.x.astype(np.float32), TypeError),
    "h0-list": ("h0", lambda c: c.h0.tolist(), TypeError),
    "h-one-step-short": ("h", lambda c: c.h[1:], ValueError),
    "w_ih-extra-row": ("w_ih", lambda c: np.concatenate([c.w_ih, c.w_ih[:1]]), ValueError),
}


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("spoil", sorted(SPOILED_CACHE))
@pytest.mark.parametrize("cell", CELLS)
def test_backward_checks_every_array_of_the_cache(cell, spoil, backend):
    import copy
    import importlib

    mod = importlib.import_module(
        "rnnkit.functional" if backend == "native" else "rnnkit.reference"
    )
    *_, cache = getattr(mod, f"{cell}_forward")(**valid_args(cell), lengths=[4, 0, 2])
    field, how, exc = SPOILED_CACHE[spoil]
    bad = copy.copy(cache)
    setattr(bad, field, how(cache))
    b = getattr(mod, f"{cell}_backward")
    with pytest.raises(exc, match=f"cache.{field}|cache.h "):
        b(None, None, None, bad) if cell == "lstm" else b(None, None, bad)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_checks_the_cell_specific_cache_arrays(cell):
    import copy

    *_, cache = call(cell, valid_args(cell))
    names = ["c", "tanh_c", "c0", "gates"] if cell == "lstm" else ["gates", "hn"]
    for name in names:
        bad = copy.copy(cache)
        setattr(bad, name, getattr(cache, name)[..., 1:])
        with pytest.raises(ValueError, match=f"cache.{name} must have shape"):
            backward_call(cell, bad)
        delattr(bad, name)  # the instance attribute; a hand-made cache may lack it
        with pytest.raises(ValueError, match=f"cache has no '{name}'"):
            backward_call(cell, bad)


def test_cache_from_either_backend_works_with_the_other():
    from rnnkit import functional

    for cell in CELLS:
        args = valid_args(cell)
        *_, c_ref = call(cell, args, lengths=[4, 0, 2])
        *_, c_nat = getattr(functional, f"{cell}_forward")(**args, lengths=[4, 0, 2])
        for cache in (c_ref, c_nat):
            g_ref = backward_call(cell, cache)
            b = getattr(functional, f"{cell}_backward")
            g_nat = b(None, None, None, cache) if cell == "lstm" else b(None, None, cache)
            for a, b_ in zip(g_ref, g_nat):
                np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["x", "h0", "w_ih", "b_hh"])
@pytest.mark.parametrize("cell", CELLS)
def test_masked_arrays_with_masked_entries_are_refused(cell, name):
    # np.ascontiguousarray drops the mask: the cell would compute on hidden data.
    args = valid_args(cell)
    a = args[name]
    args[name] = np.ma.masked_array(a, mask=np.zeros(a.shape, bool))
    call(cell, args)  # nothing masked: just its data
    mask = np.zeros(a.shape, bool)
    mask.flat[0] = True
    args[name] = np.ma.masked_array(a, mask=mask)
    raises(TypeError, cell, args, name, "masked")


def test_masked_lengths_are_refused():
    with pytest.raises(TypeError, match="lengths is a masked array"):
        call("rnn", valid_args("rnn"), lengths=np.ma.masked_array([4, 1, 2], mask=[0, 1, 0]))


def test_non_native_byte_order_says_how_to_convert():
    args = valid_args("gru")
    bad = dict(args, x=args["x"].astype(">f8"))
    raises(TypeError, "gru", bad, "x", "byte order", "astype(np.float64)")
    bad = dict(args, w_hh=args["w_hh"].astype(">f8"))
    raises(TypeError, "gru", bad, "w_hh", "byte order")
