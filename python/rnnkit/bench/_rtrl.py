"""``rnnkit bench --rtrl``: time and memory per step of each RTRL mode against
BPTT, with the napkin arithmetic beside the measurements (docs/rtrl.md).

All rows run in one process, one after another, with the same thread count.
The GEMM ceiling is numpy.matmul's GFLOP/s, measured in the same run. This is
not the comparison grid of ``rnnkit bench``: RTRL has no peers to compare with.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["main_rtrl"]


def _best(fn, repeat, min_time=0.2):
    """The best wall time of fn() over `repeat` runs (at least `min_time` in all)."""
    fn()
    times, spent = [], 0.0
    while len(times) < repeat or spent < min_time:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        times.append(dt)
        spent += dt
        if len(times) >= 50:
            break
    return min(times)


def _interleaved(fa, fb, repeat):
    """Best times of fa() and fb(), run alternately, so that both see the same
    machine (these VMs are shared and noisy: only side-by-side ratios count)."""
    fa()
    fb()
    ta, tb = [], []
    for _ in range(max(repeat, 5)):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    return min(ta), min(tb)


def _args(cell, T, N, C, H, dtype, rng):
    G = {"rnn": 1, "lstm": 4, "gru": 3, "indrnn": 1}[cell]
    x = rng.standard_normal((T, N, C)).astype(dtype)
    w_ih = (rng.standard_normal((G * H, C)) / np.sqrt(C)).astype(dtype)
    if cell == "indrnn":
        w_hh = rng.uniform(0.5, 1.0, H).astype(dtype)
    else:
        w_hh = (rng.standard_normal((G * H, H)) * 0.5 / np.sqrt(H)).astype(dtype)
    b = np.zeros(G * H, dtype)
    h0 = np.zeros((N, H), dtype)
    states = [h0, h0.copy()] if cell == "lstm" else [h0]
    dy = rng.standard_normal((T, N, H)).astype(dtype)
    return x, states, [w_ih, w_hh, b, b.copy()], dy


def _matmul_fn(dtype):
    n = 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    return (lambda: a @ b), 2 * n**3


def _matmul_ceiling(dtype, repeat):
    fn, flops = _matmul_fn(dtype)
    return flops / _best(fn, repeat) / 1e9


def _flops_per_step(cell, mode, N, C, H):
    """The napkin count of one step (all N sequences), multiply-adds x 2."""
    if cell == "rnn" and mode == "exact":
        P = H * (H + C + 1) + H
        return 2 * N * (H * H * P + 2 * H * P + H * (H + C))
    if cell == "indrnn":
        # the forward's input GEMM, then the block algorithm's two GEMMs of the
        # same size (e^T X per sequence, delta^T X), plus O(H) per step
        return 2 * N * (3 * H * C + 8 * H)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    K = H + C + (2 if cell == "gru" else 1)
    if mode == "exact":
        V = 2 if cell == "lstm" else 1
        P = G * H * K + V * H
        return 2 * N * (G * H * H * P + 6 * G * H * P)
    return 2 * N * (G * H * (H + C) + 4 * G * H * K)


ROWS = [
    # cell, mode, T, N, C, H, backend
    ("rnn", "exact", 10, 16, 64, 64, "native"),
    ("rnn", "simplified", 10, 16, 64, 64, "native"),
    ("rnn", "diag", 10, 16, 64, 64, "native"),
    ("indrnn", "exact", 100, 64, 256, 256, "native"),   # issue 12's row: T=100
    ("lstm", "exact", 10, 16, 32, 32, "native"),
    ("lstm", "diag", 10, 16, 64, 64, "native"),
    ("gru", "exact", 10, 16, 32, 32, "native"),
    ("gru", "diag", 10, 16, 64, 64, "native"),
]
QUICK_ROWS = [
    ("rnn", "exact", 4, 16, 64, 64, "native"),
    ("indrnn", "exact", 4, 64, 256, 256, "native"),
    ("rnn", "diag", 4, 4, 16, 16, "native"),
    ("lstm", "diag", 4, 4, 16, 16, "native"),
    ("gru", "diag", 4, 4, 16, 16, "native"),
]


def main_rtrl(args) -> int:
    # The GEMM ceiling must run at the same thread count as rnnkit: NumPy's
    # BLAS would otherwise use every core, and a 1-thread row would be judged
    # against a 2-core ceiling.
    threads = args.threads
    if threads is None:
        import rnnkit

        threads = rnnkit.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl not installed: NumPy's BLAS threads left as they are "
              "(the ceiling may use more threads than rnnkit)")
        return _main_rtrl(args)
    with threadpool_limits(limits=threads, user_api="blas"):
        return _main_rtrl(args)


def _main_rtrl(args) -> int:
    import rnnkit
    from rnnkit import functional as F
    from rnnkit import reference as R

    threads = args.threads or rnnkit.get_num_threads()
    rnnkit.set_num_threads(threads)
    repeat = max(1, args.repeat if getattr(args, "repeat", None) else 3)
    quick = bool(getattr(args, "quick", False))
    dtype = np.float32
    rng = np.random.default_rng(args.seed)
    ceiling = _matmul_ceiling(dtype, repeat)
    print(f"rnnkit bench --rtrl: float32, {threads} thread(s), ISA {rnnkit.get_isa()}, "
          f"numpy.matmul ceiling {ceiling:.1f} GFLOP/s (1024^3, same run)")
    head = (f"{'cell':6s} {'mode':10s} {'T':>3s} {'N':>3s} {'C':>4s} {'H':>4s} {'backend':9s} "
            f"{'ms/step':>9s} {'GFLOP/s':>8s} {'BPTT ms/step':>12s} {'x BPTT':>7s} "
            f"{'S MiB':>8s} {'BPTT KiB/step':>13s}")
    print(head)
    print("-" * len(head))
    notes = []
    cells = set(getattr(args, "cells", None) or ("rnn", "lstm", "gru", "indrnn"))
    for cell, mode, T, N, C, H, backend in QUICK_ROWS if quick else ROWS:
        if cell not in cells:
            continue
        module = F if backend == "native" else R
        x, states, w, dy = _args(cell, T, N, C, H, dtype, rng)
        kw = {"nonlinearity": "relu" if cell == "indrnn" else "tanh"} if cell in ("rnn", "indrnn") else {}
        fn = getattr(module, f"{cell}_rtrl")
        *_, st = fn(x, *states, *w, dy, mode=mode, **kw)
        none = [None] * len(states)

        def rtrl_call():
            fn(x, *none, *w, dy, mode=mode, state=st, **kw)

        t_rtrl = _best(rtrl_call, repeat) / T
        fwd = getattr(module, f"{cell}_forward")
        bwd = getattr(module, f"{cell}_backward")

        def bptt_call():
            *_, cache = fwd(x, *states, *w, **kw)
            bwd(dy, *none, cache)

        t_bptt = _best(bptt_call, repeat) / T
        *_, cache = fwd(x, *states, *w, **kw)
        flops = _flops_per_step(cell, mode, N, C, H)
        print(f"{cell:6s} {mode:10s} {T:3d} {N:3d} {C:4d} {H:4d} {backend:9s} {t_rtrl * 1e3:9.3f} "
              f"{flops / t_rtrl / 1e9:8.1f} {t_bptt * 1e3:12.3f} {t_rtrl / t_bptt:7.1f} "
              f"{st.S.nbytes / 2**20:8.2f} {cache.nbytes / T / 2**10:13.1f}")
        if cell == "rnn" and mode == "exact":
            mm, mm_flops = _matmul_fn(dtype)
            t_call, t_mm = _interleaved(rtrl_call, mm, repeat)
            ceil_now = mm_flops / t_mm / 1e9
            ideal = flops / (ceil_now * 1e9)
            notes.append(
                f"exact Elman N={N} H={H} C={C}: the H^4 law, 2*N*H^2*P with P = H(H+C+1)+H = "
                f"{H * (H + C + 1) + H}, is {flops / 1e9:.3f} GFLOP/step; at the matmul ceiling "
                f"({ceil_now:.1f} GFLOP/s, timed alternately with the call) {ideal * 1e3:.3f} ms/step; "
                f"measured {t_call / T * 1e3:.3f} ms/step = {ideal / (t_call / T):.0%} of the ceiling"
            )
        if cell == "indrnn":
            def fwd_inf():
                fwd(x, *states, *w, training=False, **kw)

            def fwd_train():
                fwd(x, *states, *w, **kw)

            t_call, t_inf = _interleaved(rtrl_call, fwd_inf, repeat)
            t_call2, t_tr = _interleaved(rtrl_call, fwd_train, repeat)
            s_mb = st.S.nbytes / 1e6
            blocks = -(-T // 128)
            notes.append(
                f"exact IndRNN N={N} H={H} C={C} T={T}: the H*C law. The forward is one input GEMM, "
                f"2*N*H*C = {2 * N * H * C / 1e6:.1f} MFLOP/step; the block algorithm adds two GEMMs "
                f"of the same size per block of up to 128 steps (e^T X into S, delta^T X into dW_ih), "
                f"O(N*H) pointwise per step, and S ({s_mb:.1f} MB) read and written once per block "
                f"({blocks} here): napkin ratio 3x its forward plus S's traffic, less where e = d q "
                f"has exact zeros (relu: each tile's e^T X starts at its first nonzero e, after the "
                f"last inactive step); measured "
                f"(alternately) {t_call / t_inf:.2f}x indrnn_forward inference "
                f"({t_call / T * 1e3:.3f} vs {t_inf / T * 1e3:.3f} ms/step), {t_call2 / t_tr:.2f}x "
                f"its training forward ({t_tr / T * 1e3:.3f} ms/step)"
            )
    print()
    print("S MiB: the sensitivities a stream carries (constant in T). BPTT KiB/step: the cache")
    print("BPTT keeps per step (grows with the window). Every row runs the native core.")
    for n in notes:
        print("napkin:", n)
    return 0
