"""The ``rnnkit`` command line: ``train-text``, ``sample``, ``info`` and ``bench``.

Errors in what the user gave (a missing file, an empty corpus, a file that is
not UTF-8, a bad checkpoint) end the command with a one-line message on stderr
and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time

__all__ = ["main", "build_parser"]

PROG = "rnnkit"


class _UserError(Exception):
    """Something wrong with the user's input: reported as one line, exit status 1."""


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not (v > 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not (v >= 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def _fraction(s: str) -> float:
    v = _nonneg_float(s)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {s!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="rnnkit: RNN, LSTM, GRU and IndRNN layers for NumPy, with a SIMD C++ core.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser(
        "train-text",
        help="train a character-level language model on a text file",
        description="Train a character model (embedding, stacked recurrent layers, linear "
        "softmax) on a UTF-8 text file with truncated BPTT and Adam, then save it. "
        "Without FILE it trains on the source of some Python standard-library "
        "modules read from this interpreter. Without --steps or --minutes it makes "
        "one pass over the training text.",
    )
    t.add_argument(
        "file", nargs="?", metavar="FILE", help="UTF-8 text file (default: stdlib sources)"
    )
    t.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    t.add_argument("--hidden", type=_positive_int, default=256, help="hidden units per layer (256)")
    t.add_argument("--layers", type=_positive_int, default=2, help="stacked recurrent layers (2)")
    t.add_argument("--embedding", type=_positive_int, default=64, help="embedding size (64)")
    t.add_argument("--seq-len", type=_positive_int, default=100, help="BPTT window T (100)")
    t.add_argument("--batch", type=_positive_int, default=32, help="parallel lanes N (32)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="stop after this many optimizer steps")
    budget.add_argument(
        "--minutes", type=_positive_float, help="stop after this much wall-clock time"
    )
    t.add_argument("--lr", type=_positive_float, default=5e-3, help="Adam learning rate (5e-3)")
    t.add_argument(
        "--clip", type=_nonneg_float, default=5.0, help="global gradient-norm clip, 0 = off (5)"
    )
    t.add_argument("--dropout", type=_fraction, default=0.0, help="dropout between layers (0)")
    t.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.1,
        help="fraction of the text held out, from its end (0.1)",
    )
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument(
        "--backend",
        choices=("reference", "native"),
        default=None,
        help="recurrent layers' backend (default: the layers' default)",
    )
    t.add_argument(
        "--sample-length",
        type=_nonneg_int,
        default=200,
        help="characters per progress sample, 0 = none (200)",
    )
    t.add_argument("--temperature", type=_nonneg_float, default=0.8, help="for the samples (0.8)")
    t.add_argument(
        "--no-progress", action="store_true", help="plain log lines instead of a progress bar"
    )
    t.add_argument("--out", default="model.npz", help="checkpoint to write (model.npz)")
    t.add_argument(
        "--dask",
        metavar="SCHEDULER_ADDRESS",
        default=None,
        help="train data-parallel on this Dask cluster (tcp://host:8786; needs rnnkit[dask])",
    )
    t.add_argument(
        "--dask-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds to reach the scheduler, and x30 per training step (10)",
    )

    s = sub.add_parser(
        "sample",
        help="generate text from a saved character model",
        description="Print PRIME followed by LENGTH generated characters.",
    )
    s.add_argument("checkpoint", metavar="MODEL.npz")
    s.add_argument("--prime", default=None, help="text to start from (default: a newline)")
    s.add_argument("--length", type=_nonneg_int, default=500)
    s.add_argument(
        "--temperature", type=_nonneg_float, default=0.8, help="0 = always the likeliest"
    )
    s.add_argument("--top-k", type=_positive_int, default=None)
    s.add_argument("--seed", type=_nonneg_int, default=None)
    s.add_argument("--backend", choices=("reference", "native"), default=None)

    sub.add_parser("info", help="print rnnkit's build and CPU configuration")
    sub.add_parser(
        "bench", add_help=False, help="benchmark against the NumPy reference (rnnkit.bench)"
    )
    return parser


# ---------------------------------------------------------------------------
# train-text
# ---------------------------------------------------------------------------


def _import_tqdm():
    """tqdm.tqdm, or None when tqdm is not installed (it is optional)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class _Progress:
    """A tqdm bar when tqdm is installed and wanted, else a log line every
    ``every`` seconds and at each evaluation. Messages (samples) go to stdout."""

    def __init__(self, steps, minutes, plain: bool, out, every: float = 10.0):
        self.out = out
        self.steps, self.minutes = steps, minutes
        tqdm = None if plain else _import_tqdm()
        self.bar = None
        self.val = None
        self.every = every
        self.last_line = -math.inf
        if tqdm is not None:
            if steps is not None:
                self.bar = tqdm(total=steps, unit="step", dynamic_ncols=True)
            elif minutes is not None:
                self.bar = tqdm(
                    total=round(minutes * 60),
                    unit="s",
                    dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}{postfix}]",
                )
            else:
                self.bar = tqdm(unit="step", dynamic_ncols=True)

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=self.out)
        else:
            print(msg, file=self.out, flush=True)

    def update(self, info: dict) -> None:
        if info["val_loss"] is not None:
            self.val = info["val_loss"]
        if self.bar is not None:
            if self.steps is None and self.minutes is not None:
                self.bar.n = min(round(info["elapsed"], 1), self.bar.total)
            else:
                self.bar.n = info["step"]
            post = {"loss": f"{info['smooth_loss']:.3f}"}
            if self.val is not None:
                post["val"] = f"{self.val:.3f}"
            post["chars/s"] = f"{info['chars_per_sec']:,.0f}"
            self.bar.set_postfix(post, refresh=True)
            return
        now = info["elapsed"]
        if info["val_loss"] is not None or info["final"] or now - self.last_line >= self.every:
            self.last_line = now
            total = f"/{self.steps}" if self.steps is not None else ""
            val = f"  val {self.val:.3f}" if self.val is not None else ""
            print(
                f"step {info['step']}{total}  loss {info['smooth_loss']:.3f}{val}  "
                f"{info['chars_per_sec']:,.0f} chars/s  {_hms(now)}",
                file=self.out,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _train_text(args) -> int:
    import numpy as np

    from .data import default_corpus, read_text, split_validation, unigram_entropy
    from .text import CharModel

    out = sys.stdout
    if args.file is None:
        try:
            text = default_corpus()
        except RuntimeError as err:
            raise _UserError(str(err)) from None
        source = "the default corpus (Python standard-library sources)"
    else:
        try:
            text = read_text(args.file)
        except (OSError, ValueError) as err:
            raise _UserError(str(err)) from None
        source = repr(args.file)
    if args.validation_fraction > 0:
        train_text, val_text = split_validation(text, args.validation_fraction)
    else:
        train_text, val_text = text, ""
    need = args.batch * (args.seq_len + 1)
    if len(train_text) < need:
        raise _UserError(
            f"{source} has {len(train_text):,} training characters, but --batch {args.batch} lanes "
            f"of --seq-len {args.seq_len} need at least {need:,}; lower --batch or --seq-len"
        )
    try:
        model = CharModel(
            args.cell,
            args.hidden,
            args.layers,
            embedding_dim=args.embedding,
            dropout=args.dropout,
            seq_len=args.seq_len,
            batch_size=args.batch,
            lr=args.lr,
            clip=args.clip or None,
            validation_fraction=args.validation_fraction,
            seed=args.seed,
            backend=args.backend,
        )
    except ValueError as err:
        raise _UserError(str(err)) from None
    h_uni = unigram_entropy(text)
    print(
        f"corpus: {source}: {len(text):,} characters, {len(set(text))} distinct; "
        f"training on {len(train_text):,}, validating on {len(val_text):,}",
        file=out,
    )
    print(f"unigram entropy of the corpus: {h_uni:.3f} nats/char", file=out)
    budget = (
        f"{args.steps} steps"
        if args.steps
        else f"{args.minutes:g} minutes"
        if args.minutes
        else "one pass"
    )
    print(
        f"model: {args.cell} {args.layers}x{args.hidden}, embedding {args.embedding}, "
        f"T={args.seq_len} N={args.batch}, Adam lr={args.lr:g}, clip={args.clip:g}; budget: {budget}",
        file=out,
        flush=True,
    )

    fit = model.fit
    if args.dask is not None:
        fit = _dask_fit(args, model)
    progress = _Progress(args.steps, args.minutes, args.no_progress, out)
    rng = np.random.default_rng(args.seed)

    def callback(m, info):
        progress.update(info)
        if info["val_loss"] is not None and args.sample_length and not info["final"]:
            sample = m.sample(None, args.sample_length, temperature=args.temperature, seed=rng)
            progress.write(
                f"--- sample at step {info['step']} (val {info['val_loss']:.3f}) ---\n{sample}\n---"
            )

    interrupted = False
    started = time.perf_counter()
    try:
        fit(text, steps=args.steps, minutes=args.minutes, callback=callback)
    except KeyboardInterrupt:
        interrupted = True
    except (FloatingPointError, ValueError, TimeoutError, ConnectionError) as err:
        raise _UserError(str(err)) from None  # e.g. sizes past memory, a lost cluster
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    if not model.built:
        raise _UserError("interrupted before the first step; nothing saved")
    last = model.history[-1] if model.history else None
    if interrupted:
        print("interrupted: saving the model as it is", file=out)
    steps_done = model.steps_trained
    chars = steps_done * args.seq_len * args.batch
    print(
        f"trained {steps_done} steps ({chars:,} characters) in {_hms(elapsed)}, "
        f"{chars / max(elapsed, 1e-9):,.0f} chars/s overall",
        file=out,
    )
    if last is not None:
        print(f"final training loss: {last['train_loss']:.3f} nats/char", file=out)
    val = last["val_loss"] if last is not None else None
    if val is not None and not interrupted:
        print(
            f"validation loss: {val:.3f} nats/char ({val / math.log(2):.3f} bits/char); "
            f"unigram entropy: {h_uni:.3f} nats/char",
            file=out,
        )
    try:
        model.save(args.out)
    except OSError as err:
        raise _UserError(f"cannot write {args.out!r}: {err.strerror or err}") from None
    print(f"saved {args.out}", file=out)
    if args.sample_length:
        prime = "def "
        try:
            model.encode(prime)
        except ValueError:
            prime = None
        sample = model.sample(
            prime, max(args.sample_length, 400), temperature=args.temperature, seed=rng
        )
        print(f"--- sample (temperature {args.temperature:g}) ---\n{prime or ''}{sample}", file=out)
    return 130 if interrupted else 0


def _dask_fit(args, model):
    """model.fit's stand-in that trains on the cluster at --dask (rnnkit.dask.fit_text)."""
    try:
        import rnnkit.dask as rnnkit_dask
    except ImportError as err:
        raise _UserError(f"--dask needs the dask extra: {err}") from None
    try:
        client = rnnkit_dask.connect(args.dask, timeout=args.dask_timeout)
    except (ConnectionError, TypeError) as err:
        raise _UserError(str(err)) from None
    n = len(rnnkit_dask._checks.worker_addresses(client))
    print(f"dask: {args.dask}, {n} worker(s); the {args.batch} lanes are split among them",
          file=sys.stdout, flush=True)

    def fit(text, **kw):
        try:
            return rnnkit_dask.fit_text(
                model, text, client=client, timeout=30 * args.dask_timeout, **kw
            )
        finally:
            client.close()

    return fit


# ---------------------------------------------------------------------------
# sample, info, bench
# ---------------------------------------------------------------------------


def _sample(args) -> int:
    from .text import CharModel, CheckpointError

    try:
        model = CharModel.load(args.checkpoint, backend=args.backend)
    except (OSError, CheckpointError) as err:
        raise _UserError(str(err)) from None
    try:
        text = model.sample(
            args.prime, args.length, temperature=args.temperature, top_k=args.top_k, seed=args.seed
        )
    except ValueError as err:
        raise _UserError(str(err)) from None
    sys.stdout.write((args.prime or "") + text + "\n")
    return 0


def _info(args) -> int:
    from . import show_config

    show_config()
    return 0


def _bench(argv: list[str]) -> int:
    try:
        bench = importlib.import_module("rnnkit.bench")
    except ModuleNotFoundError as err:
        if err.name == "rnnkit.bench":
            raise _UserError(
                "the benchmark harness (rnnkit.bench) is not part of this installation "
                "of rnnkit; see bench/ in the source tree"
            ) from None
        raise _UserError(
            f"the benchmark harness needs the module {err.name!r}, which is not installed; "
            "pip install 'rnnkit[bench]'"
        ) from None
    rc = bench.main(argv)
    return 0 if rc is None else int(rc)


def main(argv: list[str] | None = None) -> int:
    """Run the command line. Returns the exit status (the console script
    passes it to ``sys.exit``); bad arguments raise ``SystemExit``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    # Generated text may hold characters the terminal's encoding lacks (an
    # ASCII locale, PYTHONIOENCODING=ascii): escape them rather than crash.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    try:
        if command == "bench":  # everything after it belongs to rnnkit.bench's own parser
            return _bench(argv[1:])
        args = build_parser().parse_args(argv)
        return {"train-text": _train_text, "sample": _sample, "info": _info}[args.command](args)
    except _UserError as err:
        print(f"{PROG} {command}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except MemoryError as err:  # e.g. --hidden 1000000: one line, not a traceback
        print(
            f"{PROG} {command}: error: out of memory ({err or 'MemoryError'}); "
            "choose smaller sizes",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    sys.exit(main())
