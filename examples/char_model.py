"""Train a character-level LSTM on the source code of some Python standard-library
modules (read from this interpreter, nothing is downloaded), then print its
validation loss beside the corpus's unigram entropy, and a sample.

    python examples/char_model.py --steps 150
    python examples/char_model.py --minutes 2 --out model.npz

The `rnnkit train-text` command does the same with a progress bar.
"""

import argparse
import math
import time

from rnnkit.data import default_corpus, split_validation, unigram_entropy
from rnnkit.text import CharModel


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default: 150 without --minutes)"
    )
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--out", default=None, help="save the model here")
    args = p.parse_args()
    steps = args.steps if (args.steps or args.minutes) else 150

    text = default_corpus()
    train, val = split_validation(text, 0.1)
    print(
        f"corpus: {len(text):,} characters of Python, {len(set(text))} distinct; "
        f"validation: the last {len(val):,}"
    )
    h = unigram_entropy(text)
    print(f"unigram entropy: {h:.3f} nats/char")

    model = CharModel(args.cell, args.hidden, args.layers, seed=0)
    t0 = time.perf_counter()

    def log(m, info):
        if info["val_loss"] is not None:
            print(
                f"step {info['step']:5d}  train {info['smooth_loss']:.3f}  val {info['val_loss']:.3f}  "
                f"{info['chars_per_sec']:,.0f} chars/s",
                flush=True,
            )

    model.fit(text, steps=steps, minutes=args.minutes, callback=log)
    elapsed = time.perf_counter() - t0
    val_loss = model.history[-1]["val_loss"]
    print(f"trained {model.steps_trained} steps in {elapsed:.0f}s (backend: {model.rnn.backend})")
    print(
        f"validation loss: {val_loss:.3f} nats/char ({val_loss / math.log(2):.3f} bits/char) "
        f"vs unigram entropy {h:.3f}"
    )
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")
    print("--- sample (temperature 0.8) ---")
    print("def " + model.sample("def ", 400, temperature=0.8, seed=0))


if __name__ == "__main__":
    main()
