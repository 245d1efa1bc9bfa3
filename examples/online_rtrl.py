"""Online learning of a 100-step dependency: RTRL against truncated BPTT.

A stream that never ends: each step brings a value, a cue marker and a query
marker. At a cue the value is +-1; at every other step it is a distractor,
+-0.3 at random. At a query the model must say the sign of the value that
came with the cue D ~ 100 steps earlier (90..110). A memory that lets every
step in (an untrained LSTM) holds the cue under ~100 distractors, so the
write must be learned: open the input gate at the cue, only there. Both
learners see the same stream, the same model and initial weights, the same
optimizer, and update every 20 steps from that chunk's gradient:

- RTRL (rnnkit.rtrl.OnlineLearner, exact mode) carries the sensitivities
  forward, so the gradient at a query reaches back to the cue;
- truncated BPTT (the layer's forward/backward over 20-step chunks, the state
  carried) cannot: the cue is 5 windows back, and nothing in the last 20
  steps says which value to keep.

Prints both error curves (the fraction of queries answered with the wrong
sign, per block of steps); --plot draws them (matplotlib, optional). RTRL
sits on a plateau at chance, then drops to ~0% within a few thousand steps;
where the drop comes depends on the seed (seen: 8k to 37k steps at N=32),
while truncated BPTT stays at chance throughout. Not a benchmark: rnnkit
bench --rtrl times the modes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from rnnkit import nn
from rnnkit.rtrl import OnlineLearner

C = 3  # value, cue marker, query marker


def make_stream(steps, N, rng, delay=(90, 110), noise=0.3):
    """x [steps, N, 3] and target [steps, N, 2] = (value to recall, 1 at a query).
    The value channel carries a distractor (+-noise) at every other step."""
    x = np.zeros((steps, N, C))
    x[:, :, 0] = noise * rng.choice([-1.0, 1.0], size=(steps, N))
    target = np.zeros((steps, N, 2))
    for n in range(N):
        t = int(rng.integers(0, delay[1]))  # streams out of phase
        while t < steps:
            x[t, n, 0] = rng.choice([-1.0, 1.0])
            x[t, n, 1] = 1.0
            q = t + int(rng.integers(delay[0], delay[1] + 1))
            if q < steps:
                x[q, n, 2] = 1.0
                target[q, n] = (x[t, n, 0], 1.0)
            t = q + int(rng.integers(1, 10))
    return x, target


def query_loss(pred, target):
    """0.5 * squared error at the query steps only, summed, over N: (loss, dpred)."""
    value, mask = target[..., 0:1], target[..., 1:2]
    N = pred.shape[1]
    diff = (pred - value) * mask
    return 0.5 * float(np.sum(diff * diff)) / N, diff / N


def make_model(args, dtype):
    layer = rnnkit.LSTM(C, args.hidden, dtype=dtype, seed=args.seed)
    H = args.hidden
    # A long memory to start from (forget gate ~ sigmoid(5) = 0.993), the
    # usual initialisation for long dependencies; both learners get it.
    layer.parameters["bias_ih_l0"][H : 2 * H] = 5.0
    # Input gates mostly closed (sigmoid(-3) = 0.05): the distractors then
    # write little, and what to let in at a cue is what has to be learned.
    layer.parameters["bias_ih_l0"][:H] = args.input_bias
    readout = nn.Linear(H, 1, dtype=dtype, seed=args.seed + 1)
    return layer, readout


def copy_model(layer, readout, args, dtype):
    l2, r2 = make_model(args, dtype)
    l2.load_state_dict(layer.state_dict())
    r2.load_state_dict(readout.state_dict())
    return l2, r2


class Errors:
    """Wrong-sign answers at queries, per block of steps."""

    def __init__(self):
        self.wrong, self.total, self.curve = 0, 0, []

    def add(self, pred, target):
        mask = target[..., 1] > 0
        self.wrong += int(np.sum(np.sign(pred[..., 0][mask]) != target[..., 0][mask]))
        self.total += int(mask.sum())

    def close_block(self):
        self.curve.append(self.wrong / max(1, self.total))
        self.wrong, self.total = 0, 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50_000, help="stream length (default 50000)")
    p.add_argument("--batch", type=int, default=32, help="parallel streams N (default 32)")
    p.add_argument("--hidden", type=int, default=4, help="LSTM units H (default 4)")
    p.add_argument("--lr", type=float, default=3e-2, help="Adam learning rate (3e-2)")
    p.add_argument("--window", type=int, default=20, help="truncation window and update interval")
    p.add_argument("--block", type=int, default=1000, help="steps per point of the error curve")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.3, help="distractor amplitude (0.3; cues are +-1)")
    p.add_argument("--delay", type=int, nargs=2, default=(90, 110), metavar=("MIN", "MAX"),
                   help="steps from a cue to its query (90 110)")
    p.add_argument("--input-bias", type=float, default=-3.0, help="initial input-gate bias (-3)")
    p.add_argument("--plot", action="store_true", help="draw the curves (needs matplotlib)")
    args = p.parse_args(argv)
    dtype = np.float64
    rng = np.random.default_rng(args.seed)
    x, target = make_stream(args.steps, args.batch, rng, tuple(args.delay), args.noise)
    W = args.window

    layer, readout = make_model(args, dtype)
    t_layer, t_readout = copy_model(layer, readout, args, dtype)

    # RTRL: exact sensitivities, an update every W steps.
    learner = OnlineLearner(layer, lambda ps: nn.Adam(ps, lr=args.lr), mode="exact", update_every=W,
                            readout=readout, loss=query_loss)
    # Truncated BPTT over W-step chunks: same model, optimizer and schedule.
    t_params = dict(t_layer.parameters, **{"readout." + k: v for k, v in t_readout.parameters.items()})
    t_opt = nn.Adam(t_params, lr=args.lr)

    rtrl_err, tbptt_err = Errors(), Errors()
    rtrl_time = tbptt_time = 0.0
    t_state = None
    for t0 in range(0, args.steps, W):
        xc, tc = x[t0 : t0 + W], target[t0 : t0 + W]
        rtrl_err.add(learner.predict(xc), tc)
        t1 = time.perf_counter()
        learner.step(xc, tc)
        rtrl_time += time.perf_counter() - t1

        t1 = time.perf_counter()
        y, t_state, tape = t_layer.forward(xc, state=t_state)
        pred, rtape = t_readout.forward(y)
        _, dpred = query_loss(pred, tc)
        t_layer.zero_grad()
        t_readout.zero_grad()
        t_layer.backward(tape, t_readout.backward(rtape, dpred))
        grads = dict(t_layer.grads, **{"readout." + k: v for k, v in t_readout.grads.items()})
        t_opt.step(grads)
        tbptt_time += time.perf_counter() - t1
        tbptt_err.add(pred, tc)

        if (t0 + W) % args.block == 0 or t0 + W >= args.steps:
            rtrl_err.close_block()
            tbptt_err.close_block()
            i = len(rtrl_err.curve)
            print(f"steps {min(t0 + W, args.steps):6d}   wrong-sign answers: "
                  f"RTRL {rtrl_err.curve[-1]:5.1%}   TBPTT({W}) {tbptt_err.curve[-1]:5.1%}", flush=True)
            del i

    print(f"final error (last block): RTRL {rtrl_err.curve[-1]:.1%}, TBPTT({W}) {tbptt_err.curve[-1]:.1%}"
          f" (chance 50%)")
    print(f"time per step (N={args.batch} streams, H={args.hidden}): RTRL {rtrl_time / args.steps * 1e3:.3f} ms,"
          f" TBPTT({W}) {tbptt_time / args.steps * 1e3:.3f} ms")
    if args.plot:
        import matplotlib.pyplot as plt

        steps = np.arange(1, len(rtrl_err.curve) + 1) * args.block
        plt.plot(steps, rtrl_err.curve, label="RTRL (exact)")
        plt.plot(steps, tbptt_err.curve, label=f"truncated BPTT ({W} steps)")
        plt.axhline(0.5, color="gray", ls=":", label="chance")
        plt.xlabel("stream steps")
        plt.ylabel("wrong-sign answers at queries")
        plt.title("Recall of a cue ~100 steps back, learned online")
        plt.legend()
        plt.show()
    return rtrl_err.curve, tbptt_err.curve


if __name__ == "__main__":
    main()
