"""``python -m rnnkit.dask.bench``: the measurements behind docs/distributed.md
on a LocalCluster of this machine: inference throughput on 1 and 2 workers
against one process at the same total thread count, and a training step's
time on the cluster against one process. A measuring command, not a test
(nothing here runs in CI); numbers are best-of-N and noisy on a shared box.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _best(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main(argv=None):
    import dask.array as da
    import distributed

    import rnnkit
    import rnnkit.dask as rd
    from rnnkit import nn

    ap = argparse.ArgumentParser(prog="python -m rnnkit.dask.bench")
    ap.add_argument("--N", type=int, default=1024)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--C", type=int, default=32)
    ap.add_argument("--H", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    # Generated chunk by chunk, so that a cluster holds the chunks spread over
    # its workers (from_array of one NumPy array would put them all on one).
    Xlazy = (
        da.random.default_rng(0)
        .standard_normal((a.N, a.T, a.C), chunks=(a.N // 8, a.T, a.C))
        .astype(np.float32)
    )
    x = Xlazy.compute(scheduler="sync")
    layer = rnnkit.LSTM(a.C, a.H, batch_first=True, seed=0)
    res = {"shape": vars(a)}

    # ---- inference: one process at 1 and 2 threads ----
    for threads in (1, 2):
        rnnkit.set_num_threads(threads)
        t = _best(lambda: layer(x)[0].sum(), a.reps)
        res[f"one_process_{threads}t_seq_per_s"] = a.N / t

    # ---- inference on 1 and 2 workers (1 thread each) ----
    for workers in (1, 2):
        with (
            distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cl,
            distributed.Client(cl) as c,
        ):
            c.run(rnnkit.set_num_threads, 1)
            X = c.persist(Xlazy)
            distributed.wait(X)
            where = c.who_has(X)
            res[f"dask_{workers}w_chunks_per_worker"] = sorted(
                sum(1 for v in where.values() if w in v)
                for w in {w for v in where.values() for w in v}
            )
            y = rd.predict(layer, X).sum(axis=(1, 2))
            y.compute()  # warm: the model reaches every worker
            t = _best(lambda: y.compute(), a.reps)
            res[f"dask_{workers}w_seq_per_s"] = a.N / t

            # ---- one training step: tiny (overhead) and this shape ----
            if workers == 2:
                for name, n, T, H in (("tiny", 16, 8, 8), ("base", 256, a.T, a.H)):
                    xs = rng.standard_normal((n, T, a.C))
                    ys = rng.standard_normal((n, T, 1))
                    model = {
                        "rnn": rnnkit.LSTM(a.C, H, batch_first=True, dtype=np.float64, seed=0),
                        "head": nn.Linear(H, 1, dtype=np.float64, seed=1),
                    }
                    XS = da.from_array(xs, chunks=(n // 2, T, a.C))
                    YS = da.from_array(ys, chunks=(n // 2, T, 1))
                    times = []
                    last = [None]

                    def cb(info):
                        now = time.perf_counter()
                        if last[0] is not None:
                            times.append(now - last[0])
                        last[0] = now

                    rd.fit(
                        model,
                        XS,
                        YS,
                        client=c,
                        optimizer=lambda p: nn.SGD(p, lr=1e-3),
                        loss="mse",
                        batch_size=n,
                        epochs=8,
                        callback=cb,
                    )
                    ch = rd.Chain(model)
                    opt = nn.SGD(ch.parameters, lr=1e-3)

                    def one():
                        ch.zero_grad()
                        out, tapes = ch.forward(xs)
                        _, d = nn.mse_loss(out, ys)
                        ch.backward(tapes, d)
                        opt.step(ch.grads)

                    rnnkit.set_num_threads(2)
                    t1 = _best(one, a.reps + 2)
                    grad_bytes = sum(p.nbytes for p in ch.parameters.values())
                    res[f"train_{name}"] = {
                        "N": n,
                        "T": T,
                        "H": H,
                        "grad_bytes": grad_bytes,
                        "cluster_step_s": float(np.median(times)),
                        "cluster_step_min_s": float(np.min(times)),
                        "one_process_2t_step_s": t1,
                    }
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
