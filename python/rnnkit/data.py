"""Data for training on text: the default corpus, vocabularies, and the
truncated-BPTT batcher that cuts one long token stream into ``[T, N]`` windows
whose state carries over from one window to the next.

Nothing here is downloaded: the default corpus is Python source read from the
running interpreter's standard library.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
from collections import Counter
from typing import NamedTuple

import numpy as np

from .seq import windows

__all__ = [
    "DEFAULT_CORPUS_MODULES",
    "default_corpus",
    "read_text",
    "build_vocab",
    "unigram_entropy",
    "split_validation",
    "Batch",
    "TokenBatcher",
]

#: Standard-library modules whose source makes the default corpus (about
#: 1 MB of Python). Those missing from an interpreter are skipped.
DEFAULT_CORPUS_MODULES = (
    "argparse",
    "collections",
    "dataclasses",
    "functools",
    "inspect",
    "textwrap",
    "typing",
    "enum",
    "string",
    "tokenize",
    "random",
    "statistics",
    "fractions",
    "difflib",
    "pprint",
    "shutil",
    "tempfile",
    "configparser",
    "csv",
    "heapq",
    "bisect",
    "abc",
)


def _module_source_path(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not origin or not origin.endswith(".py") or not os.path.isfile(origin):
        return None
    return origin


def default_corpus(modules=DEFAULT_CORPUS_MODULES) -> str:
    """The source code of some standard-library modules, concatenated.

    Read from the running interpreter's own files (``importlib`` finds them),
    so nothing is downloaded. Each module's source is preceded by a comment
    line naming it.

    Raises
    ------
    RuntimeError
        None of the modules has Python source installed (some minimal
        distributions ship only bytecode).
    """
    parts = []
    for name in modules:
        path = _module_source_path(name)
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            parts.append(f"# ---- {name} ----\n" + f.read())
    if not parts:
        raise RuntimeError(
            "the default corpus is the source of standard-library modules, but this "
            "interpreter has none of them as .py files; pass a text file instead"
        )
    return "\n".join(parts)


def read_text(path) -> str:
    """Read a UTF-8 text file, with errors that say what is wrong.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        With the path in the message.
    ValueError
        The file is not valid UTF-8 (the message gives the byte offset), or
        it is empty.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory, not a text file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path!r} is not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start} "
            f"cannot be decoded ({err.reason}); convert it first, e.g. with iconv"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte-order mark is not part of the text
    if not text:
        raise ValueError(f"{path!r} is empty: there is nothing to train on")
    return text


def build_vocab(text: str) -> str:
    """The distinct characters of ``text``, sorted by code point, as one string."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return "".join(sorted(set(text)))


def unigram_entropy(text: str) -> float:
    """Entropy of the character frequencies of ``text``, in nats per character:
    the cross-entropy of the best model that ignores context."""
    if not text:
        raise ValueError("text is empty")
    counts = np.array(list(Counter(text).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def split_validation(text: str, fraction: float) -> tuple[str, str]:
    """``(train, validation)``: the last ``fraction`` of the text is held out."""
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0.0 < fraction < 1.0
    ):
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
    cut = len(text) - int(round(len(text) * fraction))
    return text[:cut], text[cut:]


class Batch(NamedTuple):
    """One truncated-BPTT window: inputs, next-token targets, and whether the
    state must be reset (True at the first window of each pass)."""

    x: np.ndarray  # [T, N] int32 ids
    y: np.ndarray  # [T, N] int32 ids: x shifted by one step
    reset: bool


class TokenBatcher:
    """Cut a long id stream into ``[T, N]`` windows for truncated BPTT.

    The stream is split into ``N`` contiguous lanes of equal length; window
    ``k`` holds steps ``k*T .. k*T+T-1`` of every lane, so lane ``n`` of window
    ``k+1`` continues exactly where lane ``n`` of window ``k`` stopped, and the
    final state of one window is the right initial state of the next. A pass
    ends when a lane has fewer than ``T+1`` ids left; the next pass starts the
    lanes at a new random offset in ``0..T-1`` (so windows do not always cut
    the text at the same places) and its first batch has ``reset=True``.

    Parameters
    ----------
    ids : 1-D integer array, at least ``N*(T+1)`` long
    seq_len : int, T
    batch_size : int, N
    seed : int or None, for the offsets of later passes (the first pass starts at 0)
    """

    def __init__(self, ids, seq_len: int, batch_size: int, *, seed=None):
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)
        if self.ids.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {self.ids.shape}")
        for name, v in (("seq_len", seq_len), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.seq_len, self.batch_size = int(seq_len), int(batch_size)
        need = self.batch_size * (self.seq_len + 1)
        if self.ids.size < need:
            raise ValueError(
                f"the text is too short for batch_size={self.batch_size} lanes of seq_len="
                f"{self.seq_len}: it has {self.ids.size} characters, and needs at least "
                f"batch_size * (seq_len + 1) = {need}; use a smaller batch size or sequence length"
            )
        self.lane_len = self.ids.size // self.batch_size
        self._rng = np.random.default_rng(seed)
        self.epoch = 0
        self._start_pass(offset=0)

    @property
    def windows_per_pass(self) -> int:
        """Windows in a pass that starts at offset 0."""
        return (self.lane_len - 1) // self.seq_len

    def _start_pass(self, offset: int) -> None:
        self._starts = np.arange(self.batch_size, dtype=np.int64) * self.lane_len + offset
        self._left = self.lane_len - offset  # ids left in each lane
        self._reset = True

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        T = self.seq_len
        if self._left < T + 1:
            self.epoch += 1
            self._start_pass(offset=int(self._rng.integers(0, min(T, self.lane_len - T))))
        both = windows(self.ids, self._starts, T + 1)  # T+1,N
        batch = Batch(both[:-1], both[1:], self._reset)
        self._starts += T
        self._left -= T
        self._reset = False
        return batch


def chunk_for_evaluation(n: int, min_chunk: int, max_chunks: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``max_chunks`` contiguous ``(start, stop)``
    pieces, each at least ``min_chunk`` long (except a single short piece)."""
    k = max(1, min(max_chunks, n // max(min_chunk, 1)))
    bounds = np.linspace(0, n, k + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
