"""Regressions of the off-contract behaviour issue 14 found by fuzzing, each
reduced to its smallest case: mutated caches and tapes (a ValueError or
TypeError naming the argument, never KeyError/AttributeError), masked input to
rnnkit.nn, non-finite weights at load, and _core's private functions handed
objects that are not arrays (never a crash). Not here: the random campaign.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit import reference as R

try:
    import rnnkit._core  # noqa: F401

    HAVE_NATIVE = True
except ImportError:
    HAVE_NATIVE = False
BACKENDS = ["reference"] + (["native"] if HAVE_NATIVE else [])


def _fwd(mod):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4))
    w = [rng.standard_normal(s) * 0.3 for s in [(8, 4), (8, 2), (8,), (8,)]]
    return mod.lstm_forward(x, None, None, *w)


def _mod(backend):
    if backend == "reference":
        return R
    from rnnkit import functional

    return functional


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("field", ["cell", "x", "h", "gates", "lengths", "reverse", "w_hh", "c0"])
def test_backward_on_cache_that_lost_a_field(backend, field):
    mod = _mod(backend)
    *_, cache = _fwd(mod)
    delattr(cache, field)
    with pytest.raises(ValueError, match=f"cache.*{field}|{field}.*cache"):
        mod.lstm_backward(None, None, None, cache)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_on_cache_with_replaced_fields(backend):
    mod = _mod(backend)
    *_, cache = _fwd(mod)
    cache.cell = 3
    with pytest.raises(ValueError, match="cell"):
        mod.lstm_backward(None, None, None, cache)
    *_, cache = _fwd(mod)
    cache.h = [1.0]
    with pytest.raises(TypeError, match="cache.h"):
        mod.lstm_backward(None, None, None, cache)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "damage",
    ["empty", "lost_key", "not_a_cache", "masks", "shape", "batch_first", "caches_none"],
)
def test_layer_backward_on_damaged_tape(backend, damage):
    layer = rnnkit.GRU(4, 3, num_layers=2, bidirectional=True, backend=backend, dropout=0.5, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(np.float32)
    y, _, tape = layer.forward(x)
    if damage == "empty":
        tape.caches.clear()
    elif damage == "lost_key":
        del tape.caches[(1, 0)]
    elif damage == "not_a_cache":
        tape.caches[(0, 1)] = {"h": None}
    elif damage == "masks":
        tape.masks = []  # dropout was on: one mask expected... or none; a wrong count:
        tape.masks = [tape] * 3
    elif damage == "shape":
        tape.shape = (5,)
    elif damage == "batch_first":
        tape.batch_first = None
    elif damage == "caches_none":
        tape.caches = None
    before = {k: v.copy() for k, v in layer.grads.items()}
    with pytest.raises((ValueError, TypeError), match="tape"):
        layer.backward(tape, np.ones_like(y))
    for k, v in layer.grads.items():  # nothing was added
        np.testing.assert_array_equal(v, before[k])


def test_linear_refuses_masked_arrays():
    lin = nn.Linear(3, 2, seed=0)
    x = np.ma.array(np.ones((4, 3), np.float32), mask=np.eye(4, 3, dtype=bool))
    with pytest.raises(TypeError, match="x is a masked array"):
        lin(x)
    with pytest.raises(TypeError, match="x is a masked array"):
        lin.forward(x)
    y, tape = lin.forward(np.ones((4, 3), np.float32))
    dy = np.ma.array(np.ones_like(y), mask=np.eye(4, 2, dtype=bool))
    with pytest.raises(TypeError, match="dy is a masked array"):
        lin.backward(tape, dy)
    emb = nn.Embedding(5, 2, seed=0)
    with pytest.raises(TypeError, match="ids is a masked array"):
        emb(np.ma.array([1, 2], mask=[0, 1]))
    # A masked array with nothing masked is an ordinary array.
    np.testing.assert_array_equal(lin(np.ma.array(np.ones((4, 3), np.float32))), lin(np.ones((4, 3), np.float32)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_modules_refuse_non_finite_state(bad):
    lin = nn.Linear(3, 2, seed=0)
    sd = lin.state_dict()
    sd["weight"][1, 2] = bad
    with pytest.raises(ValueError, match=r"state_dict\['weight'\].*non-finite"):
        lin.load_state_dict(sd)
    opt = nn.Adam(lin.parameters)
    osd = opt.state_dict()
    osd["exp_avg.bias"] = osd["exp_avg.bias"] + bad
    with pytest.raises(ValueError, match="exp_avg.bias.*non-finite"):
        opt.load_state_dict(osd)
    del osd["exp_avg.bias"]
    with pytest.raises(ValueError, match="missing keys"):
        opt.load_state_dict(osd)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_charmodel_checkpoint_with_non_finite_weights_is_refused(tmp_path, bad):
    from rnnkit.text import CharModel, CheckpointError

    m = CharModel("gru", 8, 1, embedding_dim=4, seq_len=5, batch_size=2, seed=0, vocab="abc\n")
    path = tmp_path / "m.npz"
    m.save(path)
    z = dict(np.load(path))
    z["param.rnn.weight_hh_l0"] = z["param.rnn.weight_hh_l0"].copy()
    z["param.rnn.weight_hh_l0"][0, 0] = bad
    np.savez(path, **z)
    with pytest.raises(CheckpointError, match="rnn.weight_hh_l0.*(NaN|inf|non-finite)"):
        CharModel.load(path)


_CORE_PROBE = r"""
import itertools, numpy as np
from rnnkit import _core
odd = [None, 1, 1.5, "x", b"x", [1.0], (1,), {}, object(), np.float32(1), np.array(1.0),
       np.zeros(0), np.zeros((2, 0)), np.zeros(3, ">f8"), np.zeros(3, np.int32),
       np.zeros(3, object), np.ma.array([1.0], mask=[1]), np.zeros((2, 2)).T,
       np.frombuffer(bytearray(17), "f8", 2, 1), 10**30, -1, True]
names = [n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))]
skip = {"core_round_trip_ns", "release_workspace_cache", "note_fork_warning_given"}
n = 0
for name in names:
    if name in skip:
        continue
    f = getattr(_core, name)
    for nargs in range(0, 4):
        for args in itertools.product(odd, repeat=nargs) if nargs < 2 else [
            tuple(odd[(i * 7 + j) % len(odd)] for j in range(nargs)) for i in range(len(odd))
        ]:
            try:
                f(*args)
            except (TypeError, ValueError, RuntimeError):
                pass
            n += 1
    # the math function with every odd x
    if name == "vector_math":
        for x in odd:
            for fn in ("exp", "tanh", "sigmoid", "nope", None):
                try:
                    f(fn, x)
                except (TypeError, ValueError):
                    pass
                n += 1
# The cell bindings: a valid call, then each argument in turn replaced by
# every odd value (the functional API's checks are bypassed here).
rng = np.random.default_rng(0)
T, N, C, H = 3, 2, 4, 5
for cell, G in (("rnn", 1), ("lstm", 4), ("gru", 3), ("indrnn", 1)):
    x = rng.standard_normal((T, N, C))
    h0 = np.zeros((N, H))
    w_hh = rng.standard_normal((H,) if cell == "indrnn" else (G * H, H)) * 0.3
    w = [rng.standard_normal((G * H, C)) * 0.3, w_hh, np.zeros(G * H), np.zeros(G * H)]
    lengths = np.array([T, 1], np.int64)
    nl = ["tanh"] if cell in ("rnn", "indrnn") else []
    fargs = [x, h0] + ([h0] if cell == "lstm" else []) + w + [lengths, False] + nl + [True]
    fwd, bwd = getattr(_core, cell + "_forward"), getattr(_core, cell + "_backward")
    out = fwd(*fargs)
    y, h_n, cache = out[0], out[1], out[-1]
    extra = {"rnn": ["h"], "indrnn": ["h"], "lstm": ["h", "c", "tanh_c", "gates"], "gru": ["h", "gates", "hn"]}[cell]
    bargs = [y, h_n] + ([h_n] if cell == "lstm" else []) + [x, h0] + ([h0] if cell == "lstm" else []) + [w[0], w[1], lengths, False] + nl + [cache[k] for k in extra]
    bwd(*bargs)
    for f, args in ((fwd, fargs), (bwd, bargs)):
        for i in range(len(args)):
            for v in odd[::3] + [args[i][..., :1] if isinstance(args[i], np.ndarray) and args[i].ndim else None]:
                a = list(args)
                a[i] = v
                try:
                    f(*a)
                except (TypeError, ValueError):
                    pass
                n += 1
_core.set_num_threads(1)
_core.set_isa(_core.supported_isas()[0])
print("ok", n)
"""


@pytest.mark.skipif(not HAVE_NATIVE, reason="needs the native core")
def test_core_functions_never_crash_on_odd_arguments():
    """Every _core function, with objects that are not what it expects: only
    TypeError/ValueError/RuntimeError, never a crash (run in a child process,
    so a crash fails this test instead of killing pytest)."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg)
    out = subprocess.run(
        [sys.executable, "-c", _CORE_PROBE], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-3000:])
    assert out.stdout.startswith("ok"), out.stdout
