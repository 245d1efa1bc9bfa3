"""rnnkit.dask.fit_text: a CharModel trained with truncated BPTT on a Dask
cluster. CharModel.fit runs the loop (batching, evaluation, callback,
progress); this file only replaces its step. The ``batch_size`` lanes of the
text are split among the workers, each holding its lanes' ids; a step sends
the weights and where each lane's window starts, and returns the shard's
gradient sum and its lanes' final states (N*H per layer, small next to the
gradient), which the next step sends back: tasks stay pure functions of
(weights, shard, state in), so a rerun after a lost worker gives the same step.
"""

from __future__ import annotations

import math
import time
import uuid

import numpy as np

from .. import nn
from ..seq import windows
from . import _checkpoint
from ._checks import get_client, positive_int, worker_addresses
from ._models import GradSum, _replica, add


def _value(obj):
    return obj


def text_grad(template, weights, ids, starts, state, seed):
    """The summed loss and gradient of one shard's lanes on one window, and
    those lanes' final state: CharModel._loss_and_grads (the mean over the
    shard's T*n positions) scaled back to a sum."""
    model = _replica(template)
    for k, p in model._params.items():
        np.copyto(p, weights.arrays[k])
    model.rnn.generator = np.random.default_rng(list(seed))  # dropout masks
    both = windows(ids, starts, model.seq_len + 1)  # T+1,n
    mean, state = model._loss_and_grads(both[:-1], both[1:], state)
    count = float(both[:-1].size)
    dt = model.dtype.type
    grads = {k: g * dt(count) for k, g in model._grads.items()}
    out = GradSum(mean * count, count, grads, int(starts.size))
    out_states = [state]
    return out, out_states


def _add_text(a, b):
    s = add(a[0], b[0])
    return s, a[1] + b[1]


class _TextTrainer:
    def __init__(
        self,
        client,
        model,
        batcher,
        timeout,
        seed,
        checkpoint_every=None,
        checkpoint_path=None,
        resume_from=None,
    ):
        self.client, self.model, self.batcher, self.timeout = client, model, batcher, timeout
        self.seed = seed
        self.run = uuid.uuid4().hex[:8]
        self.checkpoint_every, self.checkpoint_path = checkpoint_every, checkpoint_path
        self.pending = None  # the carried state a resumed run starts from
        workers = worker_addresses(client)
        N, lane = batcher.batch_size, batcher.lane_len
        P = min(len(workers), N)
        cuts = np.linspace(0, N, P + 1).round().astype(int)
        self.lanes = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]
        self.placement = [workers[j % len(workers)] for j in range(P)]
        self.shards = [
            client.submit(
                _value,
                batcher.ids[a * lane : b * lane],
                pure=False,
                key=f"rnnkit-text-{self.run}-{j}",
                workers=[w],
                allow_other_workers=True,
            )
            for j, ((a, b), w) in enumerate(zip(self.lanes, self.placement))
        ]
        template = _shallow_without_optimizer(model)
        self.template = client.submit(_value, template, pure=False, key=f"rnnkit-model-{self.run}")
        if resume_from is not None:
            self._resume(resume_from)

    def __call__(self, x, y, state):
        c, model, b = self.client, self.model, self.batcher
        step = model.steps_trained
        if self.pending is not None:
            # The first window after a resume continues the checkpoint's state,
            # unless the batcher has just started a new pass (a reset).
            if state is None and b.epoch == self.resume_epoch:
                state = self.pending
            self.pending = None
        # The window the batcher just cut starts here in every lane (it has
        # already moved its starts on by T).
        starts = b._starts - b.seq_len
        lane = b.lane_len
        weights = _Weights(step, {k: p.copy() for k, p in model._params.items()})
        wf = c.submit(_value, weights, key=f"rnnkit-weights-{self.run}-{step}", pure=False)
        parts = []
        for j, (lo, hi) in enumerate(self.lanes):
            st = None if state is None else state[j]
            parts.append(
                c.submit(
                    text_grad,
                    self.template,
                    wf,
                    self.shards[j],
                    starts[lo:hi] - lo * lane,
                    st,
                    (self.seed, step, j),
                    key=f"rnnkit-textgrad-{self.run}-{step}-{j}",
                    workers=[self.placement[j]],
                    allow_other_workers=True,
                    pure=False,
                )
            )
        deadline = time.monotonic() + self.timeout  # one budget for the whole step
        try:
            results = [f.result(timeout=max(deadline - time.monotonic(), 0.001)) for f in parts]
        except TimeoutError:
            raise TimeoutError(
                f"training step {step + 1} did not finish within timeout={self.timeout:g} s"
            ) from None
        while len(results) > 1:  # the fixed tree, in lane order
            nxt = [_add_text(results[i], results[i + 1]) for i in range(0, len(results) - 1, 2)]
            if len(results) % 2:
                nxt.append(results[-1])
            results = nxt
        total, states = results[0]
        scale = 1.0 / total.denom
        dt = model.dtype.type
        for k, g in model._grads.items():
            np.multiply(total.grads[k], dt(scale), out=g)
        loss = total.loss * scale
        if model.clip is not None:
            norm = nn.clip_grad_norm(model._grads, model.clip)
        else:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in model._grads.values()))
        if not math.isfinite(norm) or not math.isfinite(loss):
            raise FloatingPointError(
                f"training diverged at step {step + 1}: loss {loss}, gradient norm {norm}; "
                "lower the learning rate or set clip"
            )
        model.optimizer.step(model._grads)
        if self.checkpoint_every is not None and (step + 1) % self.checkpoint_every == 0:
            self._save(step + 1, states)
        return loss, states

    # ---- checkpoints: the model, Adam, the batcher's position, the carried state ----

    def _save(self, steps_done, states):
        b, m = self.batcher, self.model
        more = {"batcher.starts": b._starts}
        for j, st in enumerate(states):
            for i, a in enumerate(st if isinstance(st, tuple) else (st,)):
                more[f"state.{j}.{i}"] = a
        pos = {
            "left": int(b._left),
            "reset": bool(b._reset),
            "epoch": int(b.epoch),
            "lanes": self.lanes,
        }
        extra = {"config": m.get_config(), "vocab": m.vocab}
        _checkpoint.save(
            self.checkpoint_path,
            "CharModel",
            m._params,
            m.optimizer,
            steps_done,
            pos,
            b._rng.bit_generator.state,
            [],
            extra=extra,
            more=more,
        )

    def _resume(self, path):
        b, m = self.batcher, self.model
        ck = _checkpoint.load(path, "CharModel", m._params)
        what = f"resume_from={str(path)!r}"
        if ck["extra"].get("vocab") != m.vocab or ck["extra"].get("config") != m.get_config():
            raise ValueError(f"{what} was written by a CharModel of another config or vocabulary")
        if ck["position"]["lanes"] != [list(x) for x in self.lanes]:
            raise ValueError(
                f"{what} split the lanes as {ck['position']['lanes']}, this cluster as "
                f"{self.lanes}: resume on as many workers"
            )
        for k, p in m._params.items():
            np.copyto(p, ck["params"][k])
        m.optimizer.load_state_dict(ck["optimizer"])
        m.steps_trained = ck["step"]
        b._rng.bit_generator.state = ck["rng_state"]
        b._starts = np.array(ck["more"]["batcher.starts"], dtype=np.int64)
        b._left, b._reset, b.epoch = (ck["position"][k] for k in ("left", "reset", "epoch"))
        self.resume_epoch = b.epoch
        pending = []
        for j in range(len(self.lanes)):
            parts = [
                ck["more"][f"state.{j}.{i}"] for i in range(2) if f"state.{j}.{i}" in ck["more"]
            ]
            pending.append(tuple(parts) if len(parts) == 2 else parts[0])
        self.pending = pending

    def close(self):
        for f in self.shards:
            f.release()
        self.template.release()


class _Weights:
    __slots__ = ("version", "arrays")

    def __init__(self, version, arrays):
        self.version, self.arrays = version, arrays


def _shallow_without_optimizer(model):
    import copy

    t = copy.copy(model)
    t.optimizer = None  # the driver's alone: workers never step
    t.history = []
    return t


def fit_text(
    model,
    text,
    *,
    client=None,
    steps=None,
    minutes=None,
    validation_text=None,
    eval_every=None,
    eval_chars=25_000,
    callback=None,
    eval_progress=None,
    timeout=300.0,
    checkpoint_every=None,
    checkpoint_path=None,
    resume_from=None,
):
    """``model.fit(text, ...)`` (a :class:`rnnkit.text.CharModel`) with each
    optimizer step computed data-parallel on a Dask cluster.

    The model's ``batch_size`` lanes are split into one contiguous group per
    worker (at most one group per lane). Everything else is CharModel.fit:
    the same windows, state carry-over and resets, evaluation (on the
    driver), callback and history; the weights after each step equal one
    process's to rounding (the gradient is summed per worker, then in lane
    order). Returns the model.

    ``checkpoint_every=k`` writes ``checkpoint_path`` every k steps (the
    weights, Adam's state, the batcher's position and the carried lane
    states); ``resume_from`` continues such a run exactly, on a cluster with
    as many workers, for ``steps`` more steps.
    """
    from ..text import CharModel

    if not isinstance(model, CharModel):
        raise TypeError(f"model must be an rnnkit.text.CharModel, got {type(model).__name__}")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if checkpoint_every is not None:
        positive_int("checkpoint_every", checkpoint_every)
        if checkpoint_path is None:
            raise ValueError("checkpoint_every needs checkpoint_path (where to write)")
    client = get_client(client, timeout)
    holder = {}

    def trainer(m, batcher):
        holder["t"] = _TextTrainer(
            client,
            m,
            batcher,
            timeout,
            0 if m.seed is None else m.seed,
            checkpoint_every,
            checkpoint_path,
            resume_from,
        )
        return holder["t"]

    try:
        return model.fit(
            text,
            steps,
            minutes,
            validation_text,
            eval_every=eval_every,
            eval_chars=eval_chars,
            callback=callback,
            eval_progress=eval_progress,
            _trainer=trainer,
        )
    finally:
        if "t" in holder:
            holder["t"].close()
