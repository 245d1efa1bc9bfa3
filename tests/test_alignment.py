"""Arrays the kernels cannot read as they are (data not aligned to the itemsize,
strided, non-native byte order) are copied by the binding first: every argument
of every functional entry point, and of the private _core functions, given such
a view gives bitwise the aligned call's results. Not here: the values of the
results themselves (test_native_parity.py); UB is caught by .ci/sanitize.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import Cache, functional as F

pytest.importorskip("rnnkit._core")
from rnnkit import _core  # noqa: E402

CELLS = ["rnn", "lstm", "gru", "indrnn"]
G = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}
T, N, C, H = 5, 3, 4, 6


def misaligned(a):
    """A copy of a whose data starts one byte past an aligned address."""
    a = np.asarray(a)
    buf = bytearray(a.nbytes + 1)
    v = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    v[...] = a
    assert not v.flags.aligned and v.flags.c_contiguous
    return v


def byteswapped(a):
    v = a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder in "=<" else "<"))
    assert not v.dtype.isnative and np.array_equal(v, a)
    return v


def strided(a):
    big = np.zeros(a.shape + (2,), a.dtype)
    big[..., 0] = a
    v = big[..., 0]
    assert not v.flags.c_contiguous
    return v


def args_for(cell, dtype, seed=0):
    rng = np.random.default_rng(seed)

    def r(*shape, s=0.5):
        return (rng.standard_normal(shape) * s).astype(dtype)

    g = G[cell]
    d = dict(
        x=r(T, N, C),
        h0=r(N, H),
        w_ih=r(g * H, C),
        w_hh=r(H) if cell == "indrnn" else r(g * H, H),
        b_ih=r(g * H),
        b_hh=r(g * H),
    )
    if cell == "lstm":
        d["c0"] = r(N, H)
    lengths = np.array([T, 2, 0], np.int64)
    return d, lengths


def forward(cell, d, lengths):
    fn = getattr(F, f"{cell}_forward")
    names = ["x", "h0"] + (["c0"] if cell == "lstm" else []) + ["w_ih", "w_hh", "b_ih", "b_hh"]
    return fn(*(d[n] for n in names), lengths=lengths)


def backward(cell, cache, dy, dh_n, dc_n):
    fn = getattr(F, f"{cell}_backward")
    return fn(dy, dh_n, dc_n, cache) if cell == "lstm" else fn(dy, dh_n, cache)


def assert_same(got, want, what):
    got = [g for g in got if isinstance(g, np.ndarray)]
    want = [w for w in want if isinstance(w, np.ndarray)]
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, what
        assert np.array_equal(g, w, equal_nan=True), f"{what}: output {i} differs"


def cache_copy(cache, **replace):
    fields = {k: v for k, v in vars(cache).items() if k not in ("cell", "backend", "arrays")}
    fields.update(replace)
    return Cache(cache.cell, cache.backend, cache.arrays, **fields)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("view", [misaligned, byteswapped, strided])
def test_every_forward_argument(cell, dtype, view):
    d, lengths = args_for(cell, dtype)
    want = forward(cell, d, lengths)
    for name in list(d) + ["lengths"]:
        if view is byteswapped and name != "lengths":
            continue  # the Python checks refuse a byte-swapped float (TypeError); _core below
        dd = dict(d)
        ll = lengths
        if name == "lengths":
            ll = view(lengths)
        else:
            dd[name] = view(d[name])
        kept = {k: v.copy() for k, v in dd.items()}
        got = forward(cell, dd, ll)
        assert_same(got[:-1], want[:-1], f"{cell} {view.__name__} {name}")
        assert_same(list(got[-1].as_dict().values()), list(want[-1].as_dict().values()), name)
        for k, v in dd.items():  # inputs are never modified
            assert np.array_equal(v, kept[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("view", [misaligned, strided])
def test_every_backward_argument(cell, dtype, view):
    d, lengths = args_for(cell, dtype)
    cache = forward(cell, d, lengths)[-1]
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((T, N, H)).astype(dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    dc = rng.standard_normal((N, H)).astype(dtype) if cell == "lstm" else None
    want = backward(cell, cache, dy, dh, dc)
    grads = {"dy": dy, "dh_n": dh} | ({"dc_n": dc} if cell == "lstm" else {})
    for name in grads:
        g = dict(grads, **{name: view(grads[name])})
        got = backward(cell, cache, g["dy"], g["dh_n"], g.get("dc_n"))
        assert_same(got, want, f"{cell} {view.__name__} {name}")
    fields = [
        k
        for k, v in vars(cache).items()
        if isinstance(v, np.ndarray) and k not in ("b_ih", "b_hh")
    ]
    assert {"x", "h0", "w_ih", "w_hh", "lengths", "h"} <= set(fields)
    for name in fields:
        c2 = cache_copy(cache, **{name: view(getattr(cache, name))})
        got = backward(cell, c2, dy, dh, dc)
        assert_same(got, want, f"{cell} {view.__name__} cache.{name}")


def core_forward_args(cell, d, lengths):
    pre = [d["x"], d["h0"]] + ([d["c0"]] if cell == "lstm" else [])
    rest = [d["w_ih"], d["w_hh"], d["b_ih"], d["b_hh"], lengths, False]
    nl = ["tanh"] if cell in ("rnn", "indrnn") else []
    return pre + rest + nl + [True]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("view", [misaligned, byteswapped, strided])
def test_core_copies_what_the_kernels_cannot_read(cell, dtype, view):
    """The private binding is the last line: it copies on its own."""
    d, lengths = args_for(cell, dtype)
    fn = getattr(_core, f"{cell}_forward")
    base = core_forward_args(cell, d, lengths)
    want = fn(*base)
    for i, a in enumerate(base):
        if not isinstance(a, np.ndarray):
            continue
        args = list(base)
        args[i] = view(a)
        got = fn(*args)
        assert_same(got[:-1], want[:-1], f"{cell} {view.__name__} arg {i}")
        for k in want[-1]:
            assert np.array_equal(got[-1][k], want[-1][k])


@pytest.mark.parametrize("view", [misaligned, byteswapped, strided])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_math_views(view, dtype):
    x = np.linspace(-3, 3, 37).astype(dtype)
    for fn in ("exp", "tanh", "sigmoid"):
        assert np.array_equal(_core.vector_math(fn, view(x)), _core.vector_math(fn, x))


def test_core_refuses_wrong_kinds_with_type_error():
    d, lengths = args_for("rnn", np.float64)
    base = core_forward_args("rnn", d, lengths)
    bad_lengths = list(base)
    bad_lengths[6] = lengths.astype(np.int32)
    with pytest.raises(TypeError, match="lengths"):
        _core.rnn_forward(*bad_lengths)
    bad_x = list(base)
    bad_x[0] = d["x"].astype(np.complex128)
    with pytest.raises(TypeError, match="x"):
        _core.rnn_forward(*bad_x)


def test_seq_functions_copy_misaligned_views():
    """rnnkit.seq hands arrays to Cython loops, which accept misaligned buffers:
    they get aligned copies first (a fuzz finding under UBSan)."""
    from rnnkit import seq

    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((k, 3)) for k in (4, 1, 3)]
    want = seq.pack_sequences(seqs)
    got = seq.pack_sequences([misaligned(s) for s in seqs])
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    x, lengths = want
    for a, b in zip(seq.unpack_sequences(misaligned(x), lengths), seq.unpack_sequences(x, lengths)):
        assert np.array_equal(a, b)
    ids = np.arange(20, dtype=np.int32)
    starts = np.array([0, 5, 9], np.int64)
    assert np.array_equal(seq.windows(misaligned(ids), misaligned(starts), 4), seq.windows(ids, starts, 4))
    pads = [np.arange(k, dtype=np.int32) for k in (3, 1)]
    assert np.array_equal(seq.pad_ids([misaligned(p) for p in pads])[0], seq.pad_ids(pads)[0])
