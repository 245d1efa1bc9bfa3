"""The native API around the kernels: rnnkit.functional mirrors
rnnkit.reference name for name and signature for signature; ISA selection
(set_isa, RNNKIT_ISA) and thread settings; the binding's own checks at the C++
boundary; the GIL released during kernels; and the structure of a call: one
parallel region, one barrier per step, one workspace allocation, whatever T."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rnnkit
from rnnkit import _core
from rnnkit import functional as F
from rnnkit import reference as R

from _native_util import CELLS, ISAS, fresh_seed, isa, make_args, run, threads


def test_same_names_and_signatures():
    assert sorted(F.__all__) == sorted(R.__all__)
    for name in R.__all__:
        assert inspect.signature(getattr(F, name)) == inspect.signature(getattr(R, name)), name


def test_exports_and_config():
    for name in ("set_num_threads", "get_num_threads", "get_isa", "set_isa", "functional"):
        assert name in rnnkit.__all__ and hasattr(rnnkit, name), name
    assert rnnkit.functional is F
    from rnnkit._config import config

    cfg = config()
    assert cfg["isa"] == rnnkit.get_isa() and cfg["isa"] in ISAS
    assert cfg["num_threads"] == rnnkit.get_num_threads()
    assert ISAS[-1] == "scalar" and ISAS == [i for i in ("avx512", "avx2", "scalar") if i in ISAS]


def test_set_isa():
    for name in ISAS:
        with isa(name):
            assert rnnkit.get_isa() == name
    with pytest.raises(ValueError, match="unknown ISA 'neon'"):
        rnnkit.set_isa("neon")
    with pytest.raises(TypeError):
        rnnkit.set_isa(3)
    assert rnnkit.get_isa() == ISAS[0]


def test_set_num_threads():
    with threads(3):
        assert rnnkit.get_num_threads() == 3
    for bad in (0, -2):
        with pytest.raises(ValueError, match=">= 1"):
            rnnkit.set_num_threads(bad)
    for bad in ("2", 2.0, True):
        with pytest.raises(TypeError):
            rnnkit.set_num_threads(bad)


def _python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120
    )


def test_environment_forces_isa_and_threads():
    code = "import rnnkit; print(rnnkit.get_isa(), rnnkit.get_num_threads())"
    for name in ISAS:
        out = _python(code, RNNKIT_ISA=name, OMP_NUM_THREADS="3")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [name, "3"]


def test_environment_bad_isa_is_a_clear_error():
    code = (
        "import rnnkit\n"
        "try:\n    import rnnkit.functional\nexcept ImportError as e:\n    print('ImportError:', e)\n"
        "try:\n    rnnkit.LSTM(2, 3, backend='native')\nexcept ValueError as e:\n    print('ValueError:', e)\n"
    )
    out = _python(code, RNNKIT_ISA="avx1024")
    assert out.returncode == 0, out.stderr
    assert "ImportError: RNNKIT_ISA=avx1024: unknown ISA 'avx1024'" in out.stdout
    assert "ValueError:" in out.stdout


def test_native_cache():
    rng = np.random.default_rng(fresh_seed())
    for cell, nonlinearity, G in CELLS:
        pos, kw, grads = make_args(cell, G, 3, 2, 4, 5, np.float32, rng)
        _, native = run(F, cell, nonlinearity, pos, kw, grads)
        _, ref = run(R, cell, nonlinearity, pos, kw, grads)
        assert native.backend == "native" and ref.backend == "reference"
        assert native.arrays == ref.arrays
        for name in ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths"):
            assert np.array_equal(getattr(native, name), getattr(ref, name)), name
        assert native.reverse == ref.reverse
        assert getattr(native, "nonlinearity", None) == getattr(ref, "nonlinearity", None)


def test_same_validation_as_reference():
    rng = np.random.default_rng(0)
    pos, kw, _ = make_args("lstm", 4, 3, 2, 4, 5, np.float32, rng)
    bad = [
        (lambda p: [p[0].astype(np.float64)] + p[1:], {}),  # mixed dtypes
        (lambda p: [p[0][:, :, :2]] + p[1:], {}),  # C mismatch
        (lambda p: p, {"lengths": [1, 4]}),  # out of range
        (lambda p: p, {"lengths": np.array([1.0, 2.0])}),  # float lengths
    ]
    for change, extra in bad:
        errors = []
        for mod in (R, F):
            with pytest.raises((TypeError, ValueError)) as info:
                mod.lstm_forward(*change(list(pos)), **dict(kw, **extra))
            errors.append((type(info.value), str(info.value)))
        assert errors[0] == errors[1]


def test_binding_checks_at_the_boundary():
    """_core checks again: a bad array raises, never reaches C++ (no crash)."""
    rng = np.random.default_rng(0)
    (x, h0, w_ih, w_hh, b_ih, b_hh), _, _ = make_args("gru", 3, 3, 2, 4, 5, np.float32, rng)
    lengths = np.array([3, 1])
    good = dict(
        x=x,
        h0=h0,
        w_ih=w_ih,
        w_hh=w_hh,
        b_ih=b_ih,
        b_hh=b_hh,
        lengths=lengths,
        reverse=False,
        training=True,
    )
    _core.gru_forward(**good)
    cases = [
        ({"h0": h0[:1]}, ValueError, "h0 must have shape"),
        ({"w_hh": w_hh[:, :4].copy()}, ValueError, "w_hh"),
        ({"b_hh": b_hh.astype(np.float64)}, TypeError, "b_hh must have dtype float32"),
        ({"x": x.astype(np.int32)}, TypeError, "x must have dtype float32 or float64"),
        # A Fortran-order (or misaligned, byte-swapped) array is copied, not
        # refused: tests/test_alignment.py.
        ({"lengths": np.array([4, 1])}, ValueError, r"lengths\[0\] = 4 is outside 0..T"),
        ({"lengths": np.array([-1, 1])}, ValueError, "outside"),
        ({"lengths": np.array([3, 1], np.int32)}, TypeError, "lengths must have dtype int64"),
        ({"lengths": np.array([3])}, ValueError, "lengths must have shape"),
        ({"x": [[[1.0]]]}, TypeError, "x must be a numpy.ndarray"),
        ({"x": x[:0]}, ValueError, ">= 1"),
    ]
    for change, exc, match in cases:
        with pytest.raises(exc, match=match):
            _core.gru_forward(**dict(good, **change))
    y, h_n, cache = _core.gru_forward(**good)
    back = dict(
        dy=y,
        dh_n=h_n,
        x=x,
        h0=h0,
        w_ih=w_ih,
        w_hh=w_hh,
        lengths=lengths,
        reverse=False,
        h=cache["h"],
        gates=cache["gates"],
        hn=cache["hn"],
    )
    _core.gru_backward(**back)
    for change, exc in [
        ({"gates": cache["gates"][:, :, :5].copy()}, ValueError),
        ({"hn": cache["hn"][:2].copy()}, ValueError),
        ({"dy": y.astype(np.float64)}, TypeError),
    ]:
        with pytest.raises(exc):
            _core.gru_backward(**dict(back, **change))


def test_tampered_cache_is_refused():
    rng = np.random.default_rng(0)
    pos, kw, grads = make_args("lstm", 4, 3, 2, 4, 5, np.float64, rng)
    *_, cache = F.lstm_forward(*pos, **kw)
    cache.gates = cache.gates[:, :, :-1]
    with pytest.raises(ValueError, match="gates must have shape"):
        F.lstm_backward(*grads, cache)


def _lstm_problem(T, N=16, C=32, H=64, seed=0):
    rng = np.random.default_rng(seed)
    return make_args("lstm", 4, T, N, C, H, np.float32, rng)


def test_gil_released_during_kernels():
    """While one long kernel call runs in another thread, this thread keeps
    running Python: the longest pause between its loop iterations stays well
    below the call's duration (holding the GIL would stall it for all of it)."""
    pos, kw, _ = _lstm_problem(T=1000, N=32, C=256, H=256)
    F.lstm_forward(*_lstm_problem(T=2)[0], training=False)  # warm up
    spinning, done = threading.Event(), threading.Event()
    duration = []

    def work():
        spinning.wait()  # the loop below is running before the kernel starts
        t0 = time.perf_counter()
        F.lstm_forward(*pos, **kw, training=False)
        duration.append(time.perf_counter() - t0)
        done.set()

    with threads(1):
        t = threading.Thread(target=work)
        t.start()
        last, longest = time.perf_counter(), 0.0
        spinning.set()
        while not done.is_set():
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        t.join()
    assert longest < 0.5 * duration[0], (longest, duration[0])


@pytest.mark.parametrize("isa_name", ISAS)
def test_one_region_one_barrier_per_step_one_allocation(isa_name):
    """A call's structure does not depend on T: one parallel region (no fork/join
    per step), one workspace allocation (nothing per step), and T-1 forward / T+1
    backward barriers for the GEMM cells (none per step for IndRNN)."""
    with isa(isa_name), threads(2):
        for cell, nonlinearity, G in CELLS:
            for T in (1, 9):
                rng = np.random.default_rng(T)
                pos, kw, grads = make_args(cell, G, T, 16, 32, 64, np.float32, rng)
                extra = {} if nonlinearity is None else {"nonlinearity": nonlinearity}
                for training in (False, True):  # keep the training cache
                    c0 = _core.counters()
                    *_, cache = getattr(F, f"{cell}_forward")(
                        *pos, **kw, **extra, training=training
                    )
                    c1 = _core.counters()
                    assert c1["parallel_regions"] - c0["parallel_regions"] == 1
                    assert c1["workspace_allocations"] - c0["workspace_allocations"] == 1
                    per_step = 0 if cell == "indrnn" else 1
                    assert c1["barriers"] - c0["barriers"] == per_step * (T - 1), (cell, T)
                c0 = _core.counters()
                getattr(F, f"{cell}_backward")(*grads, cache)
                c1 = _core.counters()
                assert c1["parallel_regions"] - c0["parallel_regions"] == 1
                assert c1["workspace_allocations"] - c0["workspace_allocations"] == 1
                assert c1["barriers"] - c0["barriers"] == (per_step * T + 1), (cell, T)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_core_round_trip_is_measured_and_leaves_affinity_alone():
    """The bench's barrier floor: a positive time between two usable CPUs (None
    with one), and the calling thread keeps the CPUs it may run on."""
    before = os.sched_getaffinity(0)
    ns = _core.core_round_trip_ns()
    assert os.sched_getaffinity(0) == before
    if len(before) < 2:
        assert ns is None
    else:
        assert isinstance(ns, float) and 0 < ns < 1e6, ns
