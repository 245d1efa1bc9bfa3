"""The ``rnnkit`` command line: ``train-text``, ``sample``, ``info``, ``tune`` and ``bench``.

Errors in what the user gave (a missing file, an empty corpus, a file that is
not UTF-8, a bad checkpoint) end the command with a one-line message on stderr
and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import re
import shutil
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
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="rnnkit: RNN, LSTM, GRU and IndRNN layers for NumPy, with a SIMD C++ core.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
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
    t.add_argument(
        "--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell (lstm)"
    )
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
    t.add_argument(
        "--seed", type=_nonneg_int, default=0, help="seeds the weights, batches and samples (0)"
    )
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
        "--resume",
        metavar="MODEL.npz",
        default=None,
        help="continue the run saved in this checkpoint, on the same FILE, exactly where it "
        "stopped (optimizer, RNG and data position included): --steps and --minutes are then "
        "the whole run's budget, and the checkpoint's model settings are used",
    )
    t.add_argument(
        "--checkpoint-every",
        type=_nonneg_int,
        default=0,
        metavar="STEPS",
        help="also save --out every this many steps (0, the default: at each evaluation); "
        "a run killed in between resumes from the last one",
    )
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
    s.add_argument("checkpoint", metavar="MODEL.npz", help="a model saved by train-text")
    s.add_argument(
        "--prime",
        default=None,
        help="text to start from, printed before the sample (default: a newline)",
    )
    s.add_argument(
        "--length", type=_nonneg_int, default=500, help="characters to generate (default: 500)"
    )
    s.add_argument(
        "--temperature",
        type=_nonneg_float,
        default=0.8,
        help="divides the logits; 0 = always the likeliest character (default: 0.8)",
    )
    s.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        help="sample among the K likeliest characters only (default: all)",
    )
    s.add_argument(
        "--seed",
        type=_nonneg_int,
        default=None,
        help="seed of the sampling, for a repeatable sample (default: fresh each run)",
    )
    s.add_argument(
        "--backend",
        choices=("reference", "native"),
        default=None,
        help="recurrent layers' backend (default: the layers' default, native)",
    )

    sub.add_parser("info", help="print rnnkit's build and CPU configuration")
    tu = sub.add_parser(
        "tune",
        help="measure the kernels' per-CPU blocking parameters and cache them for this CPU model "
        "(docs/performance.md, 'Per-CPU parameters')",
    )
    tu.add_argument(
        "--budget",
        type=_positive_float,
        default=20.0,
        metavar="SECONDS",
        help="about how long the measurement may take (default: 20)",
    )
    tu.add_argument("--show", action="store_true", help="print what is cached and in use; tune nothing")
    tu.add_argument("--reset", action="store_true", help="delete this CPU model's cached file; tune nothing")
    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark against the peers installed: the NumPy reference (numpy-ref), "
        "PyTorch (torch) and ONNX Runtime (onnxruntime); rnnkit bench --help",
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


class _TextBar:
    """A one-line progress bar for a terminal when tqdm is not installed (it
    is optional): the same facts as tqdm's bar, redrawn in place with ``\\r``
    at most every ``every`` seconds."""

    def __init__(self, total, unit, stream, every: float = 0.2):
        self.total, self.unit, self.stream, self.every = total, unit, stream, every
        self.n, self.postfix, self.start, self.last = 0, "", time.perf_counter(), -math.inf
        self.width = 0

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text
        self.refresh(force=refresh)

    def refresh(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = _hms(now - self.start)
        if self.total:
            frac = min(max(self.n / self.total, 0.0), 1.0)
            filled = round(24 * frac)
            bar = f"{frac:4.0%} |{'#' * filled}{'.' * (24 - filled)}| {self.n:.0f}/{self.total:.0f} {self.unit}"
        else:
            bar = f"{self.n:.0f} {self.unit}"
        line = f"{bar} [{elapsed}] {self.postfix}".rstrip()
        # one terminal row: a wrapped line could not be redrawn in place
        line = line[: max(shutil.get_terminal_size((100, 24)).columns - 1, 20)]
        pad = " " * max(self.width - len(line), 0)
        self.width = len(line)
        self.stream.write("\r" + line + pad)
        self.stream.flush()

    def write(self, msg: str, file=None) -> None:
        self.stream.write("\r" + " " * self.width + "\r")
        print(msg, file=file or sys.stdout, flush=True)
        self.width = 0
        self.refresh(force=True)

    def close(self) -> None:
        self.refresh(force=True)
        self.stream.write("\n")
        self.stream.flush()


class _Progress:
    """A progress bar (tqdm's when installed, else rnnkit's own on a terminal)
    unless ``plain``, else a log line every ``every`` seconds and at each
    evaluation. Messages (samples) go to stdout. The throughput shown is of the
    training steps alone ("train chars/s"), evaluations excluded."""

    def __init__(self, steps, minutes, plain: bool, out, every: float = 10.0, bar_stream=None):
        self.out = out
        self.steps, self.minutes = steps, minutes
        self.bar = None
        self.val = None
        self.every = every
        self.last_line = -math.inf
        self.post = {}
        if plain:
            return
        tqdm = _import_tqdm()
        stream = sys.stderr if bar_stream is None else bar_stream
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
        elif getattr(stream, "isatty", lambda: False)():
            if minutes is not None and steps is None:
                self.bar = _TextBar(round(minutes * 60), "s", stream)
            else:
                self.bar = _TextBar(steps, "steps", stream)

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
            post["train chars/s"] = f"{info['chars_per_sec']:,.0f}"
            self.post = post
            self.bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in post.items()), refresh=True)
            return
        now = info["elapsed"]
        if info["val_loss"] is not None or info["final"] or now - self.last_line >= self.every:
            self.last_line = now
            total = f"/{self.steps}" if self.steps is not None else ""
            val = f"  val {self.val:.3f}" if self.val is not None else ""
            print(
                f"step {info['step']}{total}  loss {info['smooth_loss']:.3f}{val}  "
                f"{info['chars_per_sec']:,.0f} train chars/s  {_hms(now)}",
                file=self.out,
                flush=True,
            )

    def eval_progress(self, done: int, total: int, final: bool) -> None:
        """During an evaluation: the final one (all of the held-out text) can
        take a while, so it reports how far it is."""
        if not final:
            return
        pct = 100.0 * done / max(total, 1)
        if self.bar is not None:
            items = ", ".join(f"{k}={v}" for k, v in self.post.items())
            self.bar.set_postfix_str(
                f"{items}, final validation {pct:.0f}% of {total:,} chars".lstrip(", "),
                refresh=True,
            )
            return
        now = time.perf_counter()
        last = getattr(self, "_eval_last", -math.inf)
        if done == total or now - last >= self.every:
            self._eval_last = now
            print(
                f"final validation: {done:,}/{total:,} characters ({pct:.0f}%)",
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


def _check_writable(path: str) -> None:
    """Refuse an --out that cannot be written, before any training is spent.

    Creates (and removes) a scratch file beside it, as model.save() will."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise _UserError(f"--out {path!r} is a directory; give a file name such as model.npz")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise _UserError(f"--out {path!r}: the folder {folder!r} does not exist")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise _UserError(f"--out {path!r} exists and is not writable")
    probe = os.path.join(folder, f".{os.path.basename(target)}.rnnkit-probe{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
    except OSError as err:
        raise _UserError(
            f"cannot write --out {path!r}: {err.strerror or err}; nothing was trained"
        ) from None
    finally:
        if os.path.exists(probe):
            os.remove(probe)


def _corpus_prime(text: str, rng) -> str | None:
    """A prime taken from the corpus: the start of one of its lines (its
    indentation and first word), so it reads like the text trained on."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    line = lines[int(rng.integers(len(lines)))]
    m = re.match(r"\s*\S+\s?", line)
    return m.group(0)[:32] if m else None


def _train_text(args) -> int:
    import numpy as np

    from .data import default_corpus, read_text, split_validation, unigram_entropy
    from .text import CharModel

    out = sys.stdout
    if args.dask is not None and (args.resume is not None or args.checkpoint_every):
        # The cluster's optimizer state lives in rnnkit.dask's trainer, not in the model
        # that --out saves: a checkpoint of it could not resume exactly.
        raise _UserError(
            "--resume and --checkpoint-every are for one-process runs; with --dask use "
            "rnnkit.dask.fit_text(checkpoint_every=..., resume_from=...)"
        )
    _check_writable(args.out)
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
    resumed_from = None
    if args.resume is not None:
        from .text import CheckpointError, _data_digest

        try:
            model = CharModel.load(args.resume, backend=args.backend)
        except (OSError, CheckpointError) as err:
            raise _UserError(f"--resume: {err}") from None
        if not model.resumable:
            raise _UserError(
                f"--resume: {args.resume!r} holds no training state to continue (it was saved "
                "before any training, or by rnnkit < 0.2): train a new model instead"
            )
        tr, vt = (
            split_validation(text, model.validation_fraction)
            if model.validation_fraction > 0
            else (text, "")
        )
        try:
            ids = model.encode(tr)
        except ValueError as err:
            raise _UserError(f"--resume: {source} is not the text of that run ({err})") from None
        if _data_digest(ids, model.seq_len, model.batch_size) != model._resume["data"]:
            raise _UserError(
                f"--resume: {source} is not the text that run trained on (its training part "
                "differs); resume with the same FILE and --validation-fraction"
            )
        resumed_from = model.steps_trained
        train_text, val_text = tr, vt
        args.cell, args.layers, args.hidden = model.cell, model.num_layers, model.hidden_size
        args.embedding, args.seq_len, args.batch = model.embedding_dim, model.seq_len, model.batch_size
        args.lr, args.clip = model.lr, model.clip or 0.0
    else:
        model = None
    try:
        model = model or CharModel(
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

    steps, minutes = args.steps, args.minutes
    if resumed_from is not None:
        # The budget is the whole run's: what is left of it.
        print(
            f"resuming {args.resume!r} at step {resumed_from} "
            f"({_hms(model.train_seconds)} trained)",
            file=out,
        )
        if steps is not None:
            steps = steps - resumed_from
        elif minutes is not None:
            minutes = minutes - model.train_seconds / 60
        else:
            raise _UserError("--resume needs --steps or --minutes: the budget of the whole run")
        if (steps is not None and steps <= 0) or (minutes is not None and minutes <= 0):
            print("the run's budget is already spent: nothing to train", file=out)
            model.save(args.out)
            print(f"saved {args.out}", file=out)
            return 0

    fit = model.fit
    if args.dask is not None:
        fit = _dask_fit(args, model)
    progress = _Progress(steps, minutes, args.no_progress, out)
    rng = np.random.default_rng(args.seed)
    stop_requested = []

    def save_checkpoint(m):
        try:
            m.save(args.out)
        except OSError as err:
            raise _UserError(f"cannot write {args.out!r}: {err.strerror or err}") from None

    last_info = {}

    def callback(m, info):
        last_info.update(info)
        progress.update(info)
        # Checkpoints at step boundaries only, where the weights, the optimizer
        # and the data position agree: a resumed run continues exactly.
        every = args.checkpoint_every
        if not info["final"] and (
            (every and info["step"] % every == 0) or (not every and info["val_loss"] is not None)
        ):
            save_checkpoint(m)
        if stop_requested:
            return True
        if info["val_loss"] is not None and args.sample_length and not info["final"]:
            sample = m.sample(None, args.sample_length, temperature=args.temperature, seed=rng)
            progress.write(
                f"--- sample at step {info['step']} (val {info['val_loss']:.3f}) ---\n{sample}\n---"
            )

    interrupted = False
    started = time.perf_counter()
    import signal

    def on_signal(signum, frame):
        # The first Ctrl-C (or SIGTERM) stops at the end of the current step,
        # so that the checkpoint saved below resumes exactly; a second one
        # interrupts at once.
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[sig] = signal.signal(sig, on_signal)
        except (ValueError, OSError):  # not the main thread: no handler
            pass
    try:
        if resumed_from is not None:
            fit(train_text, steps=steps, minutes=minutes, validation_text=val_text or None,
                      callback=callback, eval_progress=progress.eval_progress)
        else:
            fit(text, steps=steps, minutes=minutes, callback=callback,
                      eval_progress=progress.eval_progress)
        interrupted = bool(stop_requested)
    except KeyboardInterrupt:
        interrupted = True
    except (FloatingPointError, ValueError, TimeoutError, ConnectionError) as err:
        raise _UserError(str(err)) from None  # e.g. sizes past memory, a lost cluster
    finally:
        progress.close()
        for sig, h in handlers.items():
            signal.signal(sig, h)
    elapsed = time.perf_counter() - started
    if not model.built:
        raise _UserError("interrupted before the first step; nothing saved")
    last = model.history[-1] if model.history else None
    if interrupted:
        print("interrupted: saving the model as it is", file=out)
    steps_done = model.steps_trained - (resumed_from or 0)
    chars = steps_done * args.seq_len * args.batch
    train_rate = last_info.get("chars_per_sec")
    in_steps = f"{train_rate:,.0f} train chars/s (the steps alone), " if train_rate else ""
    print(
        f"trained {steps_done} steps ({chars:,} characters) in {_hms(elapsed)}: {in_steps}"
        f"{chars / max(elapsed, 1e-9):,.0f} chars/s overall (with evaluations and samples)",
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
        prime = _corpus_prime(text, rng)
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


def _tune_cmd(args) -> int:
    from . import _core, _tune
    from ._config import _text

    if args.show and args.reset:
        raise _UserError("--show and --reset are exclusive")
    if args.reset:
        if not _tune.enabled():
            raise _UserError("RNNKIT_TUNE=0 is set: no tune file is read or written")
        path = _tune.remove_cache()
        print(f"removed {path}" if path else f"nothing cached at {_tune.cache_path()}")
        return 0
    if args.show:
        if _tune.pending:
            _tune.first_use(tune_if_missing=False)
        path = _tune.cache_path()
        doc = _tune.read_cache(path, _tune.cpu_key()) if _tune.enabled() else None
        print(f"file   : {path} ({'valid' if doc else 'none or not for this CPU, ISA and version'})")
        if doc:
            print(f"tuned  : {doc.get('date')}, {doc.get('threads')} threads, rnnkit {doc.get('rnnkit')}")
        print(f"in use : {_text('kernel_params', dict(_core.kernel_params()))}")
        print(f"from   : {_tune.describe_source()}")
        print(f"cpuid  : {_text('kernel_params', dict(_core.cpuid_params()))}")
        return 0
    try:
        doc = _tune.run_and_cache(args.budget)
    except RuntimeError as err:
        raise _UserError(str(err)) from None
    except OSError as err:
        raise _UserError(f"could not write the tune file: {err}") from None
    print(f"tuned at {doc['threads']} threads in {doc['elapsed_s']:.1f} s; wrote {doc['path']}")
    print(f"{'parameter':<16} {'cpuid':>8} {'chosen':>8}  measured")
    for name in _tune.PARAMS:
        m = doc["measurements"][name]
        if "skipped" in m:
            note = "not measured (budget)"
        else:
            ratios = ", ".join(f"{v}: {1 / r:.3f}x" for v, r in zip(m["candidates"], m["ratio_of_min"]))
            note = f"{m['speedup']:.3f}x over cpuid ({m['rounds']} rounds; by min time {ratios})"
            c = m.get("confirm")
            if c and "skipped" in c:
                note += "; the best one not re-measured (budget): cpuid kept"
            elif c:
                again = 1 / max(c["ratio_of_min"], c["paired_ratio_median"])
                best = m["candidates"][min(range(len(m["candidates"])), key=lambda i: max(
                    m["ratio_of_min"][i], m["paired_ratio_median"][i]))]
                note += f"; {best} re-measured head to head: {again:.3f}x" + (
                    "" if m["chosen"] == best else ", not enough: cpuid kept")
        print(f"{name:<16} {doc['cpuid_params'][name]:>8} {doc['params'][name]:>8}  {note}")
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
    if not argv:  # bare `rnnkit`: the help, not an error
        build_parser().print_help()
        return 0
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
        return {"train-text": _train_text, "sample": _sample, "info": _info, "tune": _tune_cmd}[args.command](args)
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
