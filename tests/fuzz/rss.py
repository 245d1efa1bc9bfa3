"""RSS over many calls: ``python -m tests.fuzz.rss [--calls 10000]`` runs N
forward-backward calls of each layer (native), then N calls that raise
(bad shapes, a damaged cache, a masked array, a corrupt checkpoint), and
prints the resident set size growth after a warm-up; exits 1 when either grows
by 1 MiB or more. A script, not a test: 2 x 10,000 calls take about a minute.
"""

from __future__ import annotations

import argparse

import os
import sys

import numpy as np


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.rss")
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=500)
    a = p.parse_args(argv)

    import rnnkit
    from rnnkit import functional as F
    from rnnkit.text import CharModel

    backend = "native"
    layers = [
        cls(8, 16, num_layers=2, bidirectional=True, seed=0, backend=backend)
        for cls in (rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN, rnnkit.IndRNN)
    ]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 8)).astype(np.float32)
    lengths = np.array([6, 3, 0, 5])

    def fwd_bwd(i):
        layer = layers[i % 4]
        y, _, tape = layer.forward(x, lengths=lengths)
        layer.backward(tape, np.ones_like(y))

    *_, cache = F.gru_forward(x, None, *(layers[1].parameters[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")))
    del cache.gates
    bad_x = x[:, :, :5]
    masked = np.ma.array(x, mask=np.ones(x.shape, bool))
    import tempfile

    d = tempfile.mkdtemp()
    corrupt = os.path.join(d, "bad.npz")
    with open(corrupt, "wb") as f:
        f.write(b"PK\x03\x04 not a zip")

    def raising(i):
        k = i % 4
        try:
            if k == 0:
                layers[0].forward(bad_x)
            elif k == 1:
                F.gru_backward(None, None, cache)
            elif k == 2:
                layers[2](masked)
            else:
                CharModel.load(corrupt)
        except (ValueError, TypeError):
            return
        raise AssertionError(f"call {i} did not raise")

    worst = 0
    for name, fn in (("forward-backward", fwd_bwd), ("raising", raising)):
        for i in range(a.warmup):
            fn(i)
        start = rss_bytes()
        peak = start
        for i in range(a.calls):
            fn(i)
            if i % 500 == 0:
                peak = max(peak, rss_bytes())
        end = rss_bytes()
        growth = end - start
        worst = max(worst, growth)
        print(
            f"{name}: {a.calls} calls, RSS {start / 2**20:.2f} -> {end / 2**20:.2f} MiB "
            f"(growth {growth / 2**10:+.0f} KiB, peak {peak / 2**20:.2f} MiB)",
            flush=True,
        )
    return 1 if worst >= 2**20 else 0


if __name__ == "__main__":
    sys.exit(main())
