"""Helpers the native test files share: random cell arguments, running a
cell through a backend, and comparing results by name with the max diff in the
failure message. Every test draws a fresh seed and prints it on failure
(RNNKIT_TEST_SEED=<n> replays one)."""

from __future__ import annotations

import contextlib
import os
import secrets

import numpy as np

from rnnkit import _core

# (cell, nonlinearity or None, G)
CELLS = [
    ("rnn", "tanh", 1),
    ("rnn", "relu", 1),
    ("lstm", None, 4),
    ("gru", None, 3),
    ("indrnn", "relu", 1),
    ("indrnn", "tanh", 1),
]
CELL_IDS = [c if nl is None else f"{c}-{nl}" for c, nl, _ in CELLS]
ISAS = list(_core.supported_isas())
TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


def fresh_seed() -> int:
    env = os.environ.get("RNNKIT_TEST_SEED")
    return int(env) if env else secrets.randbits(32)


@contextlib.contextmanager
def isa(name):
    """Run the block on the kernels of one ISA, then restore the previous one."""
    before = _core.get_isa()
    _core.set_isa(name)
    try:
        yield
    finally:
        _core.set_isa(before)


@contextlib.contextmanager
def threads(n):
    before = _core.get_num_threads()
    _core.set_num_threads(n)
    try:
        yield
    finally:
        _core.set_num_threads(before)


def make_args(cell, G, T, N, C, H, dtype, rng, *, lengths=None, scale=0.5):
    """Positional and keyword arguments of <cell>_forward, and a matching dy,
    dh_n (and dc_n for LSTM)."""
    dtype = np.dtype(dtype)

    def r(*shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(dtype)

    w_hh = r(H, s=scale) if cell == "indrnn" else r(G * H, H, s=scale / np.sqrt(H))
    pos = [r(T, N, C), r(N, H)]
    if cell == "lstm":
        pos.append(r(N, H))
    pos += [r(G * H, C, s=scale / np.sqrt(C)), w_hh, r(G * H, s=0.3), r(G * H, s=0.3)]
    grads = [r(T, N, H), r(N, H)] + ([r(N, H)] if cell == "lstm" else [])
    return pos, {"lengths": lengths}, grads


def random_lengths(rng, T, N, zeros=True):
    """Lengths in 0..T, any order, with a zero and a full length when N allows."""
    lengths = rng.integers(0, T + 1, size=N)
    if zeros and N >= 2:
        lengths[rng.integers(N)] = 0
    if N >= 3:
        lengths[rng.integers(N)] = T
    return lengths


def run(module, cell, nonlinearity, pos, kw, grads, *, reverse=False):
    """Forward (training) and backward through one backend; results by name."""
    kw = dict(kw, reverse=reverse)
    if nonlinearity is not None:
        kw["nonlinearity"] = nonlinearity
    out = getattr(module, f"{cell}_forward")(*pos, **kw)
    *outs, cache = out
    names = ["y", "h_n", "c_n"] if cell == "lstm" else ["y", "h_n"]
    res = dict(zip(names, outs))
    for name, a in cache.as_dict().items():
        res["cache." + name] = a
    back = getattr(module, f"{cell}_backward")(*grads, cache)
    gnames = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    if cell != "lstm":
        gnames.remove("dc0")
    res.update(zip(gnames, back))
    return res, cache


def rel_err(a, b, floor: float = 0.0) -> float:
    """Norm-wise relative error ||a - b|| / ||b||, the norm of b floored at
    floor * sqrt(size) (an RMS value) when floor > 0."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = np.linalg.norm(a - b)
    den = max(np.linalg.norm(b), floor * np.sqrt(b.size))
    return float(num / den) if den > 0 else float(num)


# float32 only: the RMS below which an array is judged by its absolute error
# (norm-wise relative error with ||b|| floored at FLOOR * sqrt(size)). A tiny
# array (T = N = 1, H or C = 1) can cancel to nearly zero: a dot product of a
# few O(1) terms, a saturated tanh's 1 - h*h. There float32 rounding of the O(1)
# terms (the reference's as much as ours: NumPy's tanh is 1 ulp, ours 2.5) is
# far above 1e-5 of the result, and no float32 code could meet a purely
# relative 1e-5. The inputs are O(1); arrays of any size have RMS well above
# the floor, so for them this is the plain relative test. float64 stays purely
# relative at 1e-10.
FLOOR = {np.dtype(np.float64): 0.0, np.dtype(np.float32): 0.25}


def assert_close(actual: dict, expected: dict, tol: float, context: str, floor: float = 0.0):
    """Every array by name: same keys, shapes and dtype, norm-wise relative error <= tol."""
    assert actual.keys() == expected.keys(), (
        f"{context}: names {sorted(actual)} != {sorted(expected)}"
    )
    bad = []
    for name, e in expected.items():
        a = actual[name]
        assert a.shape == e.shape, f"{context}: {name} shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"{context}: {name} dtype {a.dtype} != {e.dtype}"
        err = rel_err(a, e, floor)
        if not err <= tol:
            diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
            bad.append(f"{name}: rel err {err:.2e} (max abs diff {np.nanmax(diff):.2e})")
    assert not bad, f"{context}: tol {tol:g}: " + "; ".join(bad)


def assert_identical(actual: dict, expected: dict, context: str):
    """Bit for bit, by name."""
    bad = []
    for name, e in expected.items():
        a = actual[name]
        if a.shape != e.shape or a.dtype != e.dtype or a.tobytes() != e.tobytes():
            diff = (
                np.abs(a.astype(np.float64) - e.astype(np.float64)) if a.shape == e.shape else None
            )
            bad.append(f"{name} (max abs diff {np.nanmax(diff) if diff is not None else 'shape'})")
    assert not bad, f"{context}: not bitwise identical: " + ", ".join(bad)
