"""rnnkit.text: a character-level language model (Embedding -> stacked LSTM,
GRU or RNN -> Linear) trained with truncated BPTT, evaluated in nats per
character, sampled step by step, and saved as one pickle-free ``.npz``.

The recurrent layers run on the layers' default backend unless told otherwise;
this file only arranges the calls. Generation skips the layer wrapper and
calls the backend's cell function one step at a time.
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import os
import time
import zipfile
from collections.abc import Callable

import numpy as np

from . import nn
from .data import TokenBatcher, build_vocab, chunk_for_evaluation, split_validation
from .layers import BACKENDS, GRU, LSTM, RNN
from .seq import decode_ids, encode_text, pad_ids

__all__ = ["CharModel", "CheckpointError"]

_CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
_FORMAT = "rnnkit.CharModel"
_FORMAT_VERSION = 2  # 2 adds the training state (optimizer, RNG, data position)
_PARAM_PREFIX = "param."
_OPTIM_PREFIX = "optim."  # Adam's moments, by parameter
_STATE_PREFIX = "train.state."  # the recurrent state carried into the next window


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: corrupt, truncated, or not an
    rnnkit.CharModel checkpoint of a version this rnnkit understands."""


def _check_int(name, value, lo=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _check_float(name, value, lo=0.0, hi=math.inf, lo_open=False, hi_open=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi) and not math.isnan(v)
    if not ok:
        raise ValueError(
            f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
            f"got {value!r}"
        )
    return v


class CharModel:
    """A character-level language model.

    ``Embedding(V, embedding_dim)`` -> ``num_layers`` stacked ``cell`` layers of
    ``hidden_size`` units -> ``Linear(hidden_size, V)``, where ``V`` is the
    number of distinct characters. The vocabulary is fixed by the first
    :meth:`fit` (or passed in as ``vocab``); later fits continue training.

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}
    hidden_size, num_layers : int
    embedding_dim : int
    dropout : float
        Between recurrent layers, during training only.
    seq_len : int
        T, the truncated-BPTT window: gradients flow back at most this many steps.
    batch_size : int
        N, parallel lanes of the text.
    lr : float
        Adam's learning rate, constant. The default (5e-3, above the usual
        2e-3) is tuned for short runs: on the default corpus it reaches a lower
        validation loss in 150 steps than 2e-3 does, and clipping keeps it stable.
    clip : float or None
        Clip the global gradient norm to this value (None: no clipping).
    validation_fraction : float
        The part of the text :meth:`fit` holds out (from its end) when no
        ``validation_text`` is given; 0 trains on everything.
    dtype : "float32" or "float64"
    seed : int or None
        Seeds the weights, the batcher's offsets and dropout.
    backend : str or None
        The recurrent layers' backend (None: their default). A runtime choice,
        not saved in checkpoints.
    vocab : str, optional
        The characters, in id order. Default: those of the first training text.

    Attributes
    ----------
    history : list of dict
        One entry per evaluation during :meth:`fit`: ``step``, ``chars``,
        ``elapsed``, ``train_loss`` (mean over the steps since the last entry)
        and ``val_loss`` (None without validation text).
    steps_trained : int
    """

    def __init__(
        self,
        cell="lstm",
        hidden_size=256,
        num_layers=2,
        *,
        embedding_dim=64,
        dropout=0.0,
        seq_len=100,
        batch_size=32,
        lr=5e-3,
        clip=5.0,
        validation_fraction=0.1,
        dtype="float32",
        seed=None,
        backend=None,
        vocab=None,
    ):
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.cell = cell
        self.hidden_size = _check_int("hidden_size", hidden_size)
        self.num_layers = _check_int("num_layers", num_layers)
        self.embedding_dim = _check_int("embedding_dim", embedding_dim)
        self.dropout = _check_float("dropout", dropout, 0.0, 1.0)
        self.seq_len = _check_int("seq_len", seq_len)
        self.batch_size = _check_int("batch_size", batch_size)
        self.lr = _check_float("lr", lr, 0.0, math.inf, lo_open=True)
        self.clip = (
            None if clip is None else _check_float("clip", clip, 0.0, math.inf, lo_open=True)
        )
        self.validation_fraction = _check_float(
            "validation_fraction", validation_fraction, 0.0, 1.0
        )
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.backend = backend
        self.vocab: str | None = None
        self.history: list[dict] = []
        self.steps_trained = 0
        self.optimizer: nn.Adam | None = None
        self._batcher_seed = None
        # Where training stands (set by fit after every step, read by save):
        # the batcher, the state carried into the next window, the training
        # data's digest and the seconds trained. _resume: the same, restored by
        # load, for the next fit on the same text to continue from.
        self._live = None
        self._resume = None
        self.train_seconds = 0.0
        if vocab is not None:
            self._build(vocab)

    # ---- construction ----

    def get_config(self) -> dict:
        """The constructor arguments that shape the model and its training (JSON-able)."""
        return {
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "clip": self.clip,
            "validation_fraction": self.validation_fraction,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    def _build(self, vocab: str) -> None:
        if not isinstance(vocab, str) or not vocab:
            raise ValueError("vocab must be a non-empty string of distinct characters")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab must hold distinct characters")
        self.vocab = vocab
        V = len(vocab)
        ss = np.random.SeedSequence(self.seed)
        s_emb, s_rnn, s_head, s_batch = ss.spawn(4)
        self.embedding = nn.Embedding(V, self.embedding_dim, dtype=self.dtype, seed=s_emb)
        self.rnn = _CELLS[self.cell](
            self.embedding_dim,
            self.hidden_size,
            self.num_layers,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
            dtype=self.dtype,
            seed=s_rnn,
            backend=self.backend,
        )
        self.head = nn.Linear(self.hidden_size, V, dtype=self.dtype, seed=s_head)
        self._batcher_seed = s_batch
        self._modules = {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}
        self._params = nn.named_parameters(self._modules)
        self._grads = nn.named_grads(self._modules)
        self.optimizer = None

    @property
    def built(self) -> bool:
        return self.vocab is not None

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """Flat dict ``"embedding.weight"``, ``"rnn.weight_ih_l0"``, ..., ``"head.bias"``
        -> the live arrays."""
        self._require_built()
        return dict(self._params)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters.values()))

    def _require_built(self) -> None:
        if not self.built:
            raise RuntimeError(
                "the model has no vocabulary and no weights yet: call fit() or load() first"
            )

    def encode(self, text: str, name: str = "text") -> np.ndarray:
        """Ids of the characters of ``text`` (ValueError names characters not in the vocabulary)."""
        self._require_built()
        try:
            return encode_text(text, self.vocab)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None

    def decode(self, ids) -> str:
        self._require_built()
        return decode_ids(np.asarray(ids), self.vocab)

    # ---- training ----

    def fit(
        self,
        text: str,
        steps: int | None = None,
        minutes: float | None = None,
        validation_text: str | None = None,
        *,
        eval_every: int | None = None,
        eval_chars: int = 25_000,
        callback: Callable | None = None,
        eval_progress: Callable | None = None,
        _trainer: Callable | None = None,
    ) -> CharModel:
        """Train on ``text`` with truncated BPTT and Adam.

        The text is cut into ``batch_size`` lanes that are read ``seq_len``
        characters at a time; the state carries over from one window to the
        next, and gradients flow back within a window only.

        Parameters
        ----------
        text : str
        steps : int, optional
            Stop after this many optimizer steps.
        minutes : float, optional
            Stop once this much wall-clock time has passed (checked after each
            step; periodic evaluations count). With neither budget, one pass
            over the training text.
        validation_text : str, optional
            Default: the last ``validation_fraction`` of ``text``, held out.
        eval_every : int, optional
            Evaluate on (the first ``eval_chars`` characters of) the validation
            text every this many steps; by default about ten times per budget.
            The final evaluation, when training stops, uses all of it.
        callback : callable, optional
            ``callback(model, info)`` after every step, ``info`` a dict with
            ``step``, ``steps`` (the budget, or None), ``loss`` (this step's
            training loss), ``smooth_loss``, ``val_loss`` (float when this step
            was evaluated, else None), ``chars``, ``elapsed``,
            ``chars_per_sec`` (training throughput), ``final`` (the last call).
            A truthy return stops training.
        eval_progress : callable, optional
            ``eval_progress(done, total, final)`` during each evaluation, after
            each window of the validation text: ``done`` of ``total``
            characters predicted; ``final`` is True for the evaluation on all
            of it when training stops (the long one).
        _trainer : callable, optional (private)
            ``_trainer(model, batcher)`` returns the step function to use instead
            of one-process training, ``step(x, y, state) -> (loss, state)``:
            the hook by which ``rnnkit.dask.fit_text`` trains on a cluster.

        Returns
        -------
        self
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text is empty: there is nothing to train on")
        if steps is not None:
            steps = _check_int("steps", steps)
        if minutes is not None:
            minutes = _check_float("minutes", minutes, 0.0, math.inf, lo_open=True)
        if eval_every is not None:
            eval_every = _check_int("eval_every", eval_every)
        eval_chars = _check_int("eval_chars", eval_chars, lo=2)
        if validation_text is None:
            if self.validation_fraction > 0:
                train_text, val_text = split_validation(text, self.validation_fraction)
            else:
                train_text, val_text = text, ""
        else:
            if not isinstance(validation_text, str):
                raise TypeError(
                    f"validation_text must be a str, got {type(validation_text).__name__}"
                )
            train_text, val_text = text, validation_text
        if not self.built:
            self._build(build_vocab(text + val_text))
        train_ids = self.encode(train_text)
        val_ids = self.encode(val_text, "validation_text") if len(val_text) >= 2 else None

        digest = _data_digest(train_ids, self.seq_len, self.batch_size)
        resume, self._resume = self._resume, None
        batcher = TokenBatcher(
            train_ids, self.seq_len, self.batch_size, seed=self._batcher_seed.spawn(1)[0]
        )
        state = None
        if resume is not None and resume["data"] != digest:
            import warnings

            warnings.warn(
                "this model was loaded from a checkpoint of a run on other training data "
                "(text or validation split differ): its data position does not apply, so "
                "training starts a fresh pass over this text (call reset_data_position() "
                "first to say so and silence this)",
                RuntimeWarning,
                stacklevel=2,
            )
        elif resume is not None:
            _restore_batcher(batcher, resume["batcher"])
            state = resume["state"]
        if steps is None and minutes is None:
            steps = batcher.windows_per_pass
        if eval_every is None:
            eval_every = max(1, (steps or 10**9) // 10)
        eval_seconds = minutes * 6.0 if (minutes is not None and steps is None) else None
        if self.optimizer is None:
            self.optimizer = nn.Adam(self._params, lr=self.lr)
        self.optimizer.lr = self.lr
        train_step = self._train_step if _trainer is None else _trainer(self, batcher)
        # A trainer of its own (rnnkit.dask) keeps the optimizer state and the
        # lanes' states in its own form: save() then writes the weights only,
        # since a training state from here could not resume the run exactly.
        self._external_trainer = _trainer is not None

        start = time.perf_counter()
        next_eval_time = start + eval_seconds if eval_seconds is not None else math.inf
        train_time, chars = 0.0, 0
        self._live = {"batcher": batcher, "state": state, "data": digest}
        ema, since_eval, since_eval_n = 0.0, 0.0, 0
        step = 0
        stop = False
        while not stop:
            t0 = time.perf_counter()
            batch = next(batcher)
            if batch.reset:
                state = None
            loss, state = train_step(batch.x, batch.y, state)
            step += 1
            self.steps_trained += 1
            chars += batch.x.size
            now = time.perf_counter()
            train_time += now - t0
            self.train_seconds += now - t0
            self._live["state"] = state  # a checkpoint from here resumes at the next window
            ema = 0.9 * ema + 0.1 * loss  # bias-corrected below, as Adam's moments
            smooth = ema / (1.0 - 0.9**step)
            since_eval += loss
            since_eval_n += 1
            elapsed = now - start
            stop = (steps is not None and step >= steps) or (
                minutes is not None and elapsed >= minutes * 60
            )
            do_eval = stop or (
                step % eval_every == 0 if eval_seconds is None else now >= next_eval_time
            )
            val_loss = None
            if do_eval:
                if val_ids is not None:
                    val_loss = self._evaluate_ids(
                        val_ids if stop else val_ids[:eval_chars],
                        progress=_bind_final(eval_progress, stop),
                    )
                self.history.append(
                    {
                        "step": self.steps_trained,
                        "chars": chars,
                        "elapsed": time.perf_counter() - start,
                        "train_loss": since_eval / since_eval_n,
                        "val_loss": val_loss,
                    }
                )
                since_eval, since_eval_n = 0.0, 0
                next_eval_time = time.perf_counter() + (eval_seconds or math.inf)
            if callback is not None:
                info = {
                    "step": step,
                    "steps": steps,
                    "loss": loss,
                    "smooth_loss": smooth,
                    "val_loss": val_loss,
                    "chars": chars,
                    "elapsed": time.perf_counter() - start,
                    "chars_per_sec": chars / train_time if train_time > 0 else 0.0,
                    "final": stop,
                }
                if callback(self, info) and not stop:
                    stop = True
                    if val_ids is not None:  # a final evaluation on all of it
                        val_loss = self._evaluate_ids(
                            val_ids, progress=_bind_final(eval_progress, True)
                        )
                        self.history.append(
                            {
                                "step": self.steps_trained,
                                "chars": chars,
                                "elapsed": time.perf_counter() - start,
                                "train_loss": since_eval / max(since_eval_n, 1),
                                "val_loss": val_loss,
                            }
                        )
        return self

    def _loss_and_grads(self, x: np.ndarray, y: np.ndarray, state):
        """Forward and backward on one window ``x, y`` ``[T, N]`` from ``state``
        (no gradient flows into it). Leaves the gradients in ``self._grads``;
        returns ``(mean loss, final state)``."""
        emb, etape = self.embedding.forward(x)  # T,N,E
        out, state, rtape = self.rnn.forward(emb, state)  # T,N,H
        logits, htape = self.head.forward(out)  # T,N,V
        loss, dlogits = nn.softmax_cross_entropy(logits, y)
        for m in self._modules.values():
            m.zero_grad()
        dout = self.head.backward(htape, dlogits)
        demb, _ = self.rnn.backward(rtape, dout)
        self.embedding.backward(etape, demb)
        return loss, state

    def _train_step(self, x: np.ndarray, y: np.ndarray, state):
        """One window: forward, loss, backward, clip, Adam. Returns (loss, final state)."""
        loss, state = self._loss_and_grads(x, y, state)
        if self.clip is not None:
            norm = nn.clip_grad_norm(self._grads, self.clip)
        else:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in self._grads.values()))
        if not math.isfinite(norm) or not math.isfinite(loss):
            raise FloatingPointError(
                f"training diverged at step {self.steps_trained + 1}: loss {loss}, gradient norm {norm}; "
                "lower the learning rate or set clip"
            )
        self.optimizer.step(self._grads)
        return loss, state

    # ---- evaluation ----

    def evaluate(self, text: str) -> float:
        """Mean cross-entropy of predicting each next character of ``text``, in
        nats per character (divide by ln 2 for bits).

        Every character after the first is predicted once. The text is read as
        up to 64 parallel chunks of at least 2000 characters, each starting
        from a zero state, so the number is slightly pessimistic for long texts.
        """
        self._require_built()
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if len(text) < 2:
            raise ValueError(
                f"text must have at least 2 characters to predict one, got {len(text)}"
            )
        return self._evaluate_ids(self.encode(text))

    def _evaluate_ids(self, ids: np.ndarray, window: int = 256, progress=None) -> float:
        n = ids.size - 1  # predictions
        chunks = chunk_for_evaluation(n, min_chunk=2000, max_chunks=64)
        X, lengths = pad_ids([ids[a:b] for a, b in chunks])  # L,N
        Y, _ = pad_ids([ids[a + 1 : b + 1] for a, b in chunks])  # L,N
        L = X.shape[0]
        mask = np.arange(L)[:, None] < lengths[None, :]  # L,N
        total, state = 0.0, None
        for t0 in range(0, L, window):
            sl = slice(t0, t0 + window)
            out, state = self.rnn(self.embedding(X[sl]), state)
            logits = self.head(out)  # w,N,V
            total += _cross_entropy_sum(logits, Y[sl], mask[sl])
            if progress is not None:
                progress(int(mask[: t0 + window].sum()), n)
        return total / n

    # ---- generation ----

    def sample(
        self,
        prime: str | None = None,
        length: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed=None,
    ) -> str:
        """Generate ``length`` characters after ``prime``, one at a time.

        The prime runs through the layers in one call; then each step runs the
        backend's cell function directly on a single character, so the Python
        work per character is a handful of calls and the sampling itself.

        Parameters
        ----------
        prime : str, optional
            Text to condition on (not included in the result). Default: a
            newline if the vocabulary has one, else its first character.
        length : int >= 0
        temperature : float >= 0
            Divides the logits; 0 picks the most likely character every time.
        top_k : int, optional
            Sample among the ``top_k`` most likely characters only.
        seed : int, Generator or None

        Returns
        -------
        str, ``length`` characters
        """
        self._require_built()
        if prime is None:
            prime = "\n" if "\n" in self.vocab else self.vocab[0]
        if not isinstance(prime, str):
            raise TypeError(f"prime must be a str, got {type(prime).__name__}")
        if not prime:
            raise ValueError("prime must hold at least one character (or be None for the default)")
        length = _check_int("length", length, lo=0)
        try:
            result = np.empty(length, dtype=np.int64)
        except (ValueError, MemoryError):
            raise ValueError(f"length must fit in memory, got {length}") from None
        temperature = _check_float("temperature", temperature)
        if top_k is not None:
            top_k = _check_int("top_k", top_k)
        rng = np.random.default_rng(seed)
        prime_ids = self.encode(prime, "prime")
        V = len(self.vocab)

        out, state = self.rnn(self.embedding(prime_ids[:, None]), None)  # P,1,H
        logits = self.head(out[-1, 0])  # V
        h_n, c_n = state if self.cell == "lstm" else (state, None)  # each L,1,H
        hs = [h_n[k].copy() for k in range(self.num_layers)]  # 1,H each
        cs = None if c_n is None else [c_n[k].copy() for k in range(self.num_layers)]
        fwd = getattr(importlib.import_module(BACKENDS[self.rnn.backend]), f"{self.cell}_forward")
        P = self.rnn.parameters
        weights = [
            tuple(P[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for k in range(self.num_layers)
        ]
        E = self.embedding.parameters["weight"]
        W, b = self.head.parameters["weight"], self.head.parameters["bias"]
        for i in range(length):
            tok = _draw(logits, temperature, top_k, rng, V)
            result[i] = tok
            if i == length - 1:
                break
            x = E[tok : tok + 1][None]  # 1,1,E
            for k in range(self.num_layers):
                if cs is not None:
                    x, hs[k], cs[k], _ = fwd(x, hs[k], cs[k], *weights[k], training=False)
                else:
                    x, hs[k], _ = fwd(x, hs[k], *weights[k], training=False)
            logits = W @ x[0, 0] + b  # V
        return self.decode(result)

    # ---- checkpoints ----

    def save(self, path) -> None:
        """Write one ``.npz``: a JSON header (format, version, config) as uint8,
        the vocabulary as uint32 code points and every parameter as
        ``param.<name>``; once trained, also the training state that lets a
        later :meth:`fit` on the same text continue exactly (bitwise) where this
        one stands: Adam's moments (``optim.*``) and step, the dropout
        generator's state, the data position and the recurrent state carried
        into the next window (``train.state.*``). No pickles. The file is
        written whole to a temporary name, then renamed over ``path``, so a
        crash mid-save leaves the previous checkpoint intact."""
        self._require_built()
        from ._version import __version__

        header = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "rnnkit": __version__,
            "config": self.get_config(),
            "steps_trained": self.steps_trained,
        }
        train_arrays = {}
        if self.optimizer is not None and not getattr(self, "_external_trainer", False):
            # What an exact resume needs besides the weights: Adam's moments and
            # step, the dropout generator, and where the data stands.
            osd = self.optimizer.state_dict()
            train = {
                "optimizer_steps": int(osd["steps"]),
                "lr": float(osd["lr"]),
                "dropout_rng": self.rnn.generator.bit_generator.state,
                "seconds": float(self.train_seconds),
            }
            for k, v in osd.items():
                if k not in ("steps", "lr"):
                    train_arrays[_OPTIM_PREFIX + k] = v
            live = self._live if self._live is not None else self._resume
            if live is not None:
                train["data"] = live["data"]
                train["batcher"] = _batcher_state(live["batcher"]) if "batcher" in live and not isinstance(live["batcher"], dict) else live.get("batcher")
                st = live["state"]
                parts = () if st is None else (st if isinstance(st, tuple) else (st,))
                train["state_parts"] = len(parts) if st is not None else None
                for i, a in enumerate(parts):
                    train_arrays[f"{_STATE_PREFIX}{i}"] = a
            header["train"] = train
        arrays = {
            "header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            "vocab": np.frombuffer(
                self.vocab.encode("utf-32-le", "surrogatepass"), dtype=np.uint32
            ),
        }
        for k, v in self._params.items():
            arrays[_PARAM_PREFIX + k] = v
        arrays.update(train_arrays)
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path, *, backend=None) -> CharModel:
        """Read a checkpoint written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No such file.
        CheckpointError (a ValueError)
            The file is not a complete rnnkit.CharModel checkpoint: not a zip
            archive, truncated or corrupt, another format or version, or its
            weights do not match its config; the message says which.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such checkpoint: {path!r}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path!r} is a directory, not a checkpoint file")
        what = f"{path!r} is not a valid rnnkit checkpoint"
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{what}: it is a single .npy array, not an .npz archive")
            with z:
                data = {k: z[k] for k in z.files}
        except CheckpointError:
            raise
        except ValueError as err:
            if "pickle" not in str(err):
                raise CheckpointError(
                    f"{what}: the file is unreadable, truncated or corrupt (ValueError: {err})"
                ) from None
            # NumPy's message advises allow_pickle=True, which would run code
            # from the file: our checkpoints never hold Python objects.
            raise CheckpointError(
                f"{what}: it holds pickled Python objects, which rnnkit checkpoints never "
                "contain (rnnkit does not unpickle files)"
            ) from None
        except (
            zipfile.BadZipFile,
            ValueError,
            OSError,
            EOFError,
            KeyError,
            AttributeError,
            TypeError,
        ) as err:
            raise CheckpointError(
                f"{what}: the file is unreadable, truncated or corrupt "
                f"({type(err).__name__}: {err})"
            ) from None
        except Exception as err:
            raise CheckpointError(
                f"{what}: the archive cannot be read ({type(err).__name__}: {err})"
            ) from None
        if "header" not in data:
            raise CheckpointError(f"{what}: it has no 'header' entry (entries: {sorted(data)[:8]})")
        raw = data["header"]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise CheckpointError(
                f"{what}: 'header' must be 1-D uint8 JSON, got {raw.dtype} {raw.shape}"
            )
        try:
            header = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{what}: its header is not UTF-8 JSON ({err})") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            fmt = header.get("format") if isinstance(header, dict) else header
            raise CheckpointError(f"{what}: format {fmt!r}, expected {_FORMAT!r}")
        version = header.get("version")
        if not isinstance(version, int) or version > _FORMAT_VERSION or version < 1:
            raise CheckpointError(
                f"{path!r} has checkpoint format version {version!r}; this rnnkit "
                f"reads versions 1..{_FORMAT_VERSION}, so upgrade rnnkit"
            )
        config = header.get("config")
        expected = set(cls(vocab=None).get_config())
        if not isinstance(config, dict) or set(config) != expected:
            got = sorted(config) if isinstance(config, dict) else config
            raise CheckpointError(
                f"{what}: its config must have the keys {sorted(expected)}, got {got}"
            )
        vocab_cps = data.get("vocab")
        if (
            vocab_cps is None
            or vocab_cps.dtype != np.uint32
            or vocab_cps.ndim != 1
            or vocab_cps.size == 0
        ):
            raise CheckpointError(
                f"{what}: 'vocab' must be a non-empty 1-D uint32 array of code points"
            )
        try:
            vocab = vocab_cps.tobytes().decode("utf-32-le", "surrogatepass")
        except UnicodeDecodeError as err:
            raise CheckpointError(f"{what}: 'vocab' holds invalid code points ({err})") from None
        params = {
            k[len(_PARAM_PREFIX) :]: v for k, v in data.items() if k.startswith(_PARAM_PREFIX)
        }
        # Before building: the config's sizes must match the stored weights, so a
        # header that claims hidden_size=10**6 cannot make us allocate terabytes.
        cls._check_sizes(what, config, params, len(vocab))
        try:
            model = cls(**config, backend=backend, vocab=vocab)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{what}: its config or vocabulary is invalid ({err})") from None
        others = sorted(
            k
            for k in data
            if not k.startswith((_PARAM_PREFIX, _OPTIM_PREFIX, _STATE_PREFIX))
            and k not in ("header", "vocab")
        )
        missing = sorted(set(model._params) - set(params))
        unexpected = sorted(set(params) - set(model._params))
        if missing or unexpected or others:
            raise CheckpointError(
                f"{what}: its weights do not match its config: missing {missing}, "
                f"unexpected {unexpected + others}"
            )
        for k, p in model._params.items():
            v = params[k]
            if v.shape != p.shape:
                raise CheckpointError(
                    f"{what}: weight {k!r} has shape {v.shape} but the config "
                    f"(and vocabulary of {len(vocab)}) needs {p.shape}"
                )
            if v.dtype != p.dtype:
                raise CheckpointError(
                    f"{what}: weight {k!r} has dtype {v.dtype}, the config says {p.dtype}"
                )
            if not np.isfinite(v).all():  # a model that samples one character forever
                i = tuple(int(j) for j in np.unravel_index(np.flatnonzero(~np.isfinite(v))[0], v.shape))
                raise CheckpointError(
                    f"{what}: weight {k!r} has non-finite values (NaN or inf), e.g. {v[i]!r} at {i}"
                )
        for k, p in model._params.items():
            np.copyto(p, params[k])
        steps = header.get("steps_trained", 0)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise CheckpointError(f"{what}: 'steps_trained' must be an integer >= 0, got {steps!r}")
        model.steps_trained = steps
        train = header.get("train")
        if train is not None:
            model._load_training_state(what, train, data)
        return model

    def _load_training_state(self, what: str, train, data: dict) -> None:
        """Restore what save() wrote under header["train"] (CheckpointError if
        anything is missing, malformed or not finite)."""
        if not isinstance(train, dict):
            raise CheckpointError(f"{what}: 'train' must be a JSON object, got {type(train).__name__}")
        try:
            opt = nn.Adam(self._params, lr=self.lr)
            osd = {"steps": train["optimizer_steps"], "lr": train["lr"]}
            for k in opt.state_dict():
                if k not in ("steps", "lr"):
                    osd[k] = data[_OPTIM_PREFIX + k]
            if isinstance(osd["steps"], bool) or not isinstance(osd["steps"], int):
                raise TypeError(f"optimizer_steps must be an int, got {osd['steps']!r}")
            for k, v in osd.items():
                if k not in ("steps", "lr") and v.dtype != self.dtype:
                    raise TypeError(f"{_OPTIM_PREFIX}{k} has dtype {v.dtype}, the model {self.dtype}")
            opt.load_state_dict(osd)
            gen = np.random.default_rng()
            gen.bit_generator.state = train["dropout_rng"]
            seconds = float(train.get("seconds", 0.0))
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
            resume = None
            if "data" in train:
                if not isinstance(train["data"], str):
                    raise TypeError("data must be a digest string")
                n = train.get("state_parts")
                if n is None:
                    state = None
                else:
                    parts = [data[f"{_STATE_PREFIX}{i}"] for i in range(int(n))]
                    want = (self.num_layers, self.batch_size, self.hidden_size)
                    for i, a in enumerate(parts):
                        if a.shape != want or a.dtype != self.dtype or not np.isfinite(a).all():
                            raise ValueError(
                                f"{_STATE_PREFIX}{i} must be a finite {self.dtype} array {want}, "
                                f"got {a.dtype} {a.shape}"
                            )
                    if len(parts) != (2 if self.cell == "lstm" else 1):
                        raise ValueError(f"state_parts is {n} for a {self.cell}")
                    state = tuple(parts) if self.cell == "lstm" else parts[0]
                batcher = train["batcher"]
                _check_batcher_state(batcher)
                resume = {"data": train["data"], "batcher": batcher, "state": state}
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise CheckpointError(
                f"{what}: its training state is incomplete or invalid ({type(err).__name__}: {err})"
            ) from None
        self.optimizer = opt
        self.rnn.generator.bit_generator.state = gen.bit_generator.state
        self.train_seconds = seconds
        self._resume = resume

    def reset_data_position(self) -> None:
        """Forget the data position a checkpoint restored, so that the next
        :meth:`fit` starts a fresh pass (say, on another text). The optimizer
        state and the dropout generator are kept."""
        self._resume = None
        self._live = None

    @property
    def resumable(self) -> bool:
        """True when :meth:`fit` on the same text would continue a run exactly:
        the model was loaded from a checkpoint that carries a data position."""
        return self._resume is not None

    @staticmethod
    def _check_sizes(what: str, config: dict, params: dict, V: int) -> None:
        """Refuse a config whose sizes disagree with the stored weights' shapes.

        Only the sizes that set how much memory the model takes are compared
        (the rest is checked after building); a config whose values are not
        even integers is left to the constructor's own message.
        """
        H, E, L = (config.get(k) for k in ("hidden_size", "embedding_dim", "num_layers"))
        G = {"lstm": 4, "gru": 3, "rnn": 1}.get(config.get("cell"))
        if G is None or not all(type(v) is int and v >= 1 for v in (H, E, L)):
            return
        # The model the config describes (an upper bound: both directions' worth
        # of layer inputs, biases) against what the file holds. Ordinary
        # mismatches are left to the checks after building, whose messages
        # compare every weight; this only stops a model far bigger than the file.
        implied = V * E + V * (H + 1) + L * G * H * (max(E, H) + H + 2)
        stored = sum(int(v.size) for v in params.values())
        if implied <= 4 * stored + 2**20:
            return
        expected = {
            "embedding.weight": (V, E),
            "rnn.weight_hh_l0": (G * H, H),
            "head.weight": (V, H),
        }
        for k, shape in expected.items():
            got = params[k].shape if k in params else None
            if got != shape:
                raise CheckpointError(
                    f"{what}: its config (cell {config['cell']!r}, hidden_size {H}, "
                    f"embedding_dim {E}, vocabulary of {V}) needs weight {k!r} of shape "
                    f"{shape}, but the file has {'none' if got is None else got}"
                )
        stored = sum(1 for k in params if k.startswith("rnn.weight_ih_l"))
        if stored != L:
            raise CheckpointError(
                f"{what}: its config says num_layers {L}, but the file holds the weights "
                f"of {stored} layer(s)"
            )

    def __repr__(self) -> str:
        v = f"vocab={len(self.vocab)}" if self.built else "unbuilt"
        return (
            f"CharModel(cell={self.cell!r}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"embedding_dim={self.embedding_dim}, {v})"
        )


def _data_digest(train_ids: np.ndarray, seq_len: int, batch_size: int) -> str:
    """What identifies a run's training data: the ids and the window geometry."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(train_ids, dtype=np.int32).tobytes())
    h.update(f"|{seq_len}|{batch_size}".encode())
    return h.hexdigest()


def _batcher_state(b: TokenBatcher) -> dict:
    """A TokenBatcher's position, JSON-able: where each lane stands, the pass
    and the generator that draws the next pass's offset."""
    return {
        "starts": [int(v) for v in b._starts],
        "left": int(b._left),
        "reset": bool(b._reset),
        "epoch": int(b.epoch),
        "rng": b._rng.bit_generator.state,
    }


def _check_batcher_state(st) -> None:
    if not isinstance(st, dict) or set(st) != {"starts", "left", "reset", "epoch", "rng"}:
        raise ValueError(f"the data position must have starts, left, reset, epoch and rng, got {st!r:.200}")
    if not isinstance(st["starts"], list) or not all(type(v) is int for v in st["starts"]):
        raise ValueError("the data position's starts must be a list of ints")
    for k in ("left", "epoch"):
        if type(st[k]) is not int:
            raise ValueError(f"the data position's {k} must be an int, got {st[k]!r}")
    if not isinstance(st["reset"], bool):
        raise ValueError("the data position's reset must be a bool")
    np.random.default_rng().bit_generator.state = st["rng"]  # raises if malformed


def _restore_batcher(b: TokenBatcher, st: dict) -> None:
    starts = np.array(st["starts"], dtype=np.int64)
    if starts.shape != b._starts.shape or not (0 <= st["left"] <= b.lane_len):
        raise ValueError("the checkpoint's data position does not fit this text")
    lo = np.arange(b.batch_size, dtype=np.int64) * b.lane_len
    if ((starts < lo) | (starts + st["left"] > lo + b.lane_len)).any():
        raise ValueError("the checkpoint's data position does not fit this text")
    b._starts = starts
    b._left = int(st["left"])
    b._reset = bool(st["reset"])
    b.epoch = int(st["epoch"])
    b._rng.bit_generator.state = st["rng"]
def _bind_final(eval_progress, final: bool):
    """eval_progress(done, total, final) as progress(done, total), or None."""
    if eval_progress is None:
        return None
    return lambda done, total: eval_progress(done, total, final)


def _cross_entropy_sum(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float:
    """Sum over masked positions of -log softmax(logits)[target], in float64."""
    z = logits.reshape(-1, logits.shape[-1]).astype(np.float64)  # M,V
    t = targets.reshape(-1)
    m = mask.reshape(-1)
    z, t = z[m], t[m]
    zmax = z.max(axis=1)
    lse = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax
    return float((lse - z[np.arange(t.size), t]).sum())


def _draw(logits: np.ndarray, temperature: float, top_k: int | None, rng, V: int) -> int:
    z = logits.astype(np.float64)
    if temperature == 0.0:
        return int(np.argmax(z))
    z /= temperature
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k)[V - top_k]
        z[z < kth] = -np.inf
    z -= z.max()
    p = np.exp(z)
    cdf = np.cumsum(p)
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), V - 1)
