"""The kernels' own vectorised exp, tanh and sigmoid (csrc/kernels/vecmath.h)
against NumPy, on every ISA: the error bounds stated there, in units in the
last place, over the ranges where results are normal numbers; NaN and the
infinities; and every ISA agreeing with the scalar spec."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import _core

from _native_util import ISAS, fresh_seed, isa

# name -> ulp bound, as stated in csrc/kernels/vecmath.h
BOUNDS = {"exp": 2.0, "tanh": 3.0, "sigmoid": 3.0}
RANGES = {
    ("exp", "float32"): (-87.0, 88.0),
    ("exp", "float64"): (-700.0, 700.0),
    ("tanh", "float32"): (-12.0, 12.0),
    ("tanh", "float64"): (-25.0, 25.0),
    ("sigmoid", "float32"): (-80.0, 30.0),
    ("sigmoid", "float64"): (-700.0, 40.0),
}


def truth(name, x):
    """The function in NumPy's widest float (x87 extended on x86-64: 11 bits
    beyond float64), so that the reference's own rounding does not count
    against the kernels' float64 results."""
    xl = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        if name == "exp":
            return np.exp(xl)
        if name == "tanh":
            return np.tanh(xl)
        return 1 / (1 + np.exp(-xl))


def ulps(got, want, dtype):
    """|got - want| in ulps of want, computed in the reference's precision."""
    finfo = np.finfo(dtype)
    mag = np.maximum(np.abs(want), finfo.tiny).astype(np.float64)
    ulp = np.exp2(np.floor(np.log2(mag)) - (finfo.nmant)).astype(np.longdouble)
    return (np.abs(got.astype(np.longdouble) - want) / ulp).astype(np.float64)


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(BOUNDS))
def test_error_bound(name, dtype, isa_name):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    lo, hi = RANGES[(name, np.dtype(dtype).name)]
    x = np.concatenate(
        [
            rng.uniform(lo, hi, 50_000),
            rng.uniform(-1, 1, 10_000) * 10.0 ** rng.integers(-8, 1, 10_000),  # near 0, every scale
            [0.0, -0.0, 1e-30, -1e-30],
        ]
    ).astype(dtype)
    with isa(isa_name):
        got = _core.vector_math(name, x)
    want = truth(name, x)
    err = ulps(got, want, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= BOUNDS[name], (
        f"{name} {np.dtype(dtype).name} on {isa_name}: {err[worst]:.2f} ulp at x={x[worst]!r} "
        f"(got {got[worst]!r}, want {want[worst]!r}), bound {BOUNDS[name]}; seed={seed}"
    )


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_special_values(dtype, isa_name):
    x = np.array([np.nan, np.inf, -np.inf, 1e6, -1e6], dtype)
    with isa(isa_name):
        e, t, s = (_core.vector_math(n, x) for n in ("exp", "tanh", "sigmoid"))
    assert np.isnan(e[0]) and np.isnan(t[0]) and np.isnan(s[0])
    assert list(e[1:]) == [np.inf, 0, np.inf, 0]
    assert list(t[1:]) == [1, -1, 1, -1]
    assert list(s[1:]) == [1, 0, 1, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_vector_lanes_match_scalar_spec(dtype):
    """With FMA, a vector lane computes exactly what Scalar<Real> does: the AVX2
    and AVX-512 results agree bit for bit (both use FMA; the tails are scalar)."""
    isas = [i for i in ISAS if i != "scalar"]
    if len(isas) < 2:
        pytest.skip("needs two vector ISAs")
    seed = fresh_seed()
    x = np.random.default_rng(seed).uniform(-30, 30, 4099).astype(dtype)
    for name in BOUNDS:
        results = []
        for i in isas:
            with isa(i):
                results.append(_core.vector_math(name, x))
        assert all(np.array_equal(results[0], r) for r in results[1:]), f"{name} seed={seed}"
