"""The native GEMMs behind rnnkit.Recurrent (_core.UserWeight, user_gemm_tn,
user_colsum, user_math): against NumPy formulas on every ISA this machine has,
float32 and float64, bitwise across 1, 2 and 3 threads, with T=1, N=1, H=1 and
sizes that are not multiples of 8 or 16; plus the boundary checks. The layer
itself: test_cells.py."""

from __future__ import annotations

import numpy as np
import pytest
import rnnkit
from _native_util import ISAS, TOL, fresh_seed, isa, threads
from rnnkit import _core, cells

DTYPES = [np.float32, np.float64]
# (M rows, R weight rows, K weight cols): T*N = 1, H = 1, odd sizes, a real LSTM shape
SHAPES = [(1, 1, 1), (1, 4, 1), (1, 37, 19), (3, 12, 5), (7, 13, 300), (64, 40, 17), (100, 1024, 256)]


def rel(a, b):
    scale = max(np.linalg.norm(b), 1e-300)
    return np.linalg.norm(np.asarray(a, np.float64) - b) / scale


def run_all(rng, dtype, M, R, K):
    w = rng.standard_normal((R, K)).astype(dtype)
    W = _core.UserWeight(w)
    a = rng.standard_normal((M, K)).astype(dtype)
    bias = rng.standard_normal(R).astype(dtype)
    g = rng.standard_normal((M, R)).astype(dtype)
    init = rng.standard_normal((M, K)).astype(dtype)
    out_t = np.empty((M, R), dtype)
    W.matmul_t(a, out_t, bias)
    out_n = init.copy()
    W.matmul(g, out_n, accumulate=True)
    out_tn = np.empty((R, K), dtype)
    _core.user_gemm_tn(g, init, out_tn)
    out_cs = np.empty(R, dtype)
    _core.user_colsum(g, out_cs)
    a64, w64, g64, i64 = (v.astype(np.float64) for v in (a, w, g, init))
    expected = {
        "a @ w.T + b": a64 @ w64.T + bias,
        "init + g @ w": i64 + g64 @ w64,
        "g.T @ init": g64.T @ i64,
        "g.sum(0)": g64.sum(0),
    }
    got = {"a @ w.T + b": out_t, "init + g @ w": out_n, "g.T @ init": out_tn, "g.sum(0)": out_cs}
    return got, expected


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_user_gemms_match_numpy_and_are_bitwise_across_threads(isa_name, dtype, shape):
    seed = fresh_seed()
    with isa(isa_name):
        runs = []
        for n in (1, 2, 3):
            with threads(n):
                got, expected = run_all(np.random.default_rng(seed), dtype, *shape)
            runs.append(got)
    tol = TOL[np.dtype(dtype)] * (10 if shape[2] >= 256 or shape[0] >= 64 else 1)
    for name in expected:
        err = rel(runs[0][name], expected[name])
        assert err <= tol, f"{name} {isa_name} {np.dtype(dtype)} {shape}: rel {err:.2e} (seed {seed})"
        for n, r in zip((2, 3), runs[1:]):
            assert np.array_equal(r[name], runs[0][name]), f"{name}: {n} threads differ from 1 (seed {seed})"


@pytest.mark.parametrize("isa_name", ISAS)
def test_user_weight_strided_views_and_repacking_after_an_isa_change(isa_name):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 5))
    W = _core.UserWeight(w)
    big = rng.standard_normal((4, 30))
    out = np.zeros((4, 30))
    with isa(isa_name):
        W.matmul_t(big[:, 3:8], out[:, 10:22])  # column blocks: row stride 30
    np.testing.assert_allclose(out[:, 10:22], big[:, 3:8] @ w.T, rtol=1e-12, atol=1e-14)
    assert not out[:, :10].any() and not out[:, 22:].any()
    for other in ISAS:  # packed panels follow the ISA in use
        with isa(other):
            o = np.empty((4, 12))
            W.matmul_t(big[:, :5], o)
            np.testing.assert_allclose(o, big[:, :5] @ w.T, rtol=1e-12, atol=1e-14)


def test_user_kernels_check_their_arguments():
    W = _core.UserWeight(np.zeros((4, 3)))
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4\), got \(2, 5\)"):
        W.matmul_t(a, np.zeros((2, 5)))
    with pytest.raises(TypeError, match="a must have dtype float64, got float32"):
        W.matmul_t(a.astype(np.float32), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="contiguous last axis"):
        W.matmul_t(np.zeros((3, 2)).T, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="out must not share memory with a"):
        buf = np.zeros((2, 8))
        W.matmul_t(buf[:, :3], buf[:, 4:])
    ro = np.zeros((2, 4))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writable"):
        W.matmul_t(a, ro)
    with pytest.raises(TypeError, match="w must have dtype float32 or float64"):
        _core.UserWeight(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="w must be 2-D"):
        _core.UserWeight(np.zeros(3))
    with pytest.raises(ValueError, match=r"b must have shape"):
        _core.user_gemm_tn(np.zeros((3, 2)), np.zeros((4, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="name must be"):
        _core.user_math("relu", np.zeros(3), np.zeros(3))


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_python_step_layer_is_bitwise_across_threads(isa_name, dtype):
    rng = np.random.default_rng(fresh_seed())
    x = rng.standard_normal((5, 3, 7)).astype(dtype)
    lengths = np.array([5, 2, 0])
    results = []
    with isa(isa_name):
        for n in (1, 2, 3):
            with threads(n):
                layer = rnnkit.Recurrent(cells.LSTMCell(), 7, 19, 2, bidirectional=True, dtype=dtype, seed=1,
                                         fused=False)
                y, (h, c), tape = layer.forward(x, None, lengths)
                dx, _ = layer.backward(tape, np.ones_like(y))
                results.append([y, h, c, dx] + [g.copy() for g in layer.grads.values()])
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            assert np.array_equal(a, b)


def test_steps_allocate_no_workspace_and_release_the_gil():
    import threading
    import time

    rng = np.random.default_rng(1)
    W = _core.UserWeight(rng.standard_normal((1024, 512)).astype(np.float32))
    h = rng.standard_normal((64, 512)).astype(np.float32)
    gh = np.empty((64, 1024), np.float32)
    dh = np.empty((64, 512), np.float32)
    W.matmul_t(h, gh)  # first use packs
    W.matmul(gh, dh)
    before = _core.counters()["workspace_allocations"]
    for _ in range(20):  # what a step calls: nothing allocated in C++
        W.matmul_t(h, gh)
        W.matmul(gh, dh, accumulate=True)
    assert _core.counters()["workspace_allocations"] == before

    big = rng.standard_normal((4096, 512)).astype(np.float32)
    out = np.empty((4096, 1024), np.float32)
    spinning, done, duration = threading.Event(), threading.Event(), []

    def work():
        spinning.wait()
        t0 = time.perf_counter()
        for _ in range(3):
            W.matmul_t(big, out)
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
