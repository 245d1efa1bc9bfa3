"""rnnkit.dask.fit: synchronous data-parallel training on a Dask cluster.

Each step the driver ships the weights once (one scattered object), every
shard that holds rows of the global batch computes the gradient of the sum
of its rows' losses, a reduction tree of fixed shape adds them in shard
order, and the driver divides by the batch's count, clips, and applies one
optimizer step. X and y stay where they were loaded. This file does not
change the model's math: forward, backward, losses, clipping and optimizers
are rnnkit's own (rnnkit.nn, the layers, the estimators' _forward/_backward).
"""

from __future__ import annotations

import math
import time
import uuid

import dask
import dask.array as da
import numpy as np

from .. import nn
from . import _checkpoint
from ._checks import (
    check_N_chunks,
    check_X,
    get_client,
    lengths_like,
    positive_int,
    worker_addresses,
)
from ._models import (
    Chain,
    ChainProgram,
    Weights,
    _is_estimator,
    add,
    check_loss,
    make_shard,
    shard_grad,
)


class FitResult:
    """What :func:`fit` returns for a module model: ``steps`` (optimizer steps
    taken), ``losses`` (each step's mean batch loss) and ``epoch_losses``
    (mean loss per epoch, weighted by batch rows)."""

    def __init__(self, steps, losses, epoch_losses):
        self.steps, self.losses, self.epoch_losses = steps, losses, epoch_losses

    def __repr__(self):
        last = f", last loss {self.losses[-1]:.6g}" if self.losses else ""
        return f"FitResult(steps={self.steps}{last})"


def _value(obj):
    return obj


class _Cluster:
    """The data and the replica on the cluster, and one synchronous step."""

    def __init__(self, client, program, shards, bounds, timeout):
        self.client = client
        self.timeout = timeout
        self.run = uuid.uuid4().hex[:8]
        workers = worker_addresses(client)
        self.bounds = bounds  # [(lo, hi)] rows of each shard, in order
        # Shard j lives on worker j mod P; its gradient tasks prefer that worker
        # (loosely: a lost worker's shards are recomputed wherever Dask likes).
        self.placement = [workers[j % len(workers)] for j in range(len(shards))]
        # The replica and each step's weights enter the graph as tasks that return
        # a value, not as scattered data: if every worker holding one dies, the
        # scheduler recomputes it from its task (scattered data would be lost).
        self.template = client.submit(_value, program, key=f"rnnkit-model-{self.run}", pure=False)
        self.shards = [
            client.compute(s, workers=[w], allow_other_workers=True)
            for s, w in zip(shards, self.placement)
        ]
        self.params = program.parameters  # the driver's live arrays

    def wait_for_data(self):
        import distributed

        try:
            distributed.wait(self.shards, timeout=self.timeout)
        except TimeoutError:
            raise TimeoutError(
                f"loading the shards onto the workers took more than {self.timeout:g} s"
            ) from None
        for f in self.shards:
            if f.status == "error":
                f.result()  # raises the task's own exception, with its message

    def step(self, step, idx, seed):
        """``GradSum`` of the global batch ``idx`` (row indices into X) at the
        current weights: the fixed-order total over the shards."""
        c = self.client
        weights = Weights(step, {k: p.copy() for k, p in self.params.items()})
        wf = c.submit(_value, weights, key=f"rnnkit-weights-{self.run}-{step}", pure=False)
        parts = []
        for j, (lo, hi) in enumerate(self.bounds):
            rows = idx[(idx >= lo) & (idx < hi)] - lo  # this shard's rows, in batch order
            if rows.size == 0:
                continue
            parts.append(
                c.submit(
                    shard_grad,
                    self.template,
                    wf,
                    self.shards[j],
                    rows,
                    (seed, step, j),
                    key=f"rnnkit-grad-{self.run}-{step}-{j}",
                    workers=[self.placement[j]],
                    allow_other_workers=True,
                    pure=False,
                )
            )
        # A binary tree whose shape depends only on which shards hold rows:
        # ((g0 + g1) + (g2 + g3)) + ..., whatever order the tasks finish in.
        # Its lower levels run on the workers (partial sums travel, never
        # shards); the last <= 4 partial sums come to the driver, which adds
        # them in the same tree: one hop less per step, the same association.
        level = 0
        while len(parts) > 4:
            nxt = [
                c.submit(
                    add,
                    parts[i],
                    parts[i + 1],
                    pure=False,
                    key=f"rnnkit-sum-{self.run}-{step}-{level}-{i // 2}",
                )
                for i in range(0, len(parts) - 1, 2)
            ]
            if len(parts) % 2:
                nxt.append(parts[-1])
            parts, level = nxt, level + 1
        deadline = time.monotonic() + self.timeout  # one budget for the whole step
        try:
            parts = [f.result(timeout=max(deadline - time.monotonic(), 0.001)) for f in parts]
        except TimeoutError:
            raise TimeoutError(
                f"training step {step} did not finish within timeout={self.timeout:g} s "
                "(workers lost, or the cluster too busy)"
            ) from None
        while len(parts) > 1:
            nxt = [add(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
            if len(parts) % 2:
                nxt.append(parts[-1])
            parts = nxt
        return parts[0]

    def close(self):
        for f in self.shards:
            f.release()
        self.template.release()


def _apply(total, params, opt, opt_keys, clip, step):
    """Divide the summed gradient by the batch's count, clip the result, one
    optimizer step: exactly what one process does with the mean gradient."""
    denom = total.denom
    scale = 1.0 / denom if denom > 0 else 0.0
    grads = {k: (g * params[k].dtype.type(scale)) for k, g in total.grads.items()}
    loss = total.loss * scale
    if clip is not None:
        norm = nn.clip_grad_norm(grads, clip)
    else:
        norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise FloatingPointError(
            f"training diverged at step {step}: loss {loss}, gradient norm {norm}; "
            "lower the learning rate or set clip"
        )
    opt.step({opt_keys[k]: g for k, g in grads.items()})
    return loss


def _optimizer_for(optimizer, params):
    """``(optimizer, {param name: the optimizer's key})``; the optimizer must
    update exactly the model's live arrays."""
    if optimizer is None:
        raise ValueError(
            "optimizer is required: an rnnkit.nn optimizer over the model's parameters, "
            "or a factory such as lambda params: rnnkit.nn.Adam(params, lr=1e-3)"
        )
    if not isinstance(optimizer, nn.Optimizer):
        if not callable(optimizer):
            raise TypeError(
                f"optimizer must be an rnnkit.nn.Optimizer or a factory params -> Optimizer, "
                f"got {type(optimizer).__name__}"
            )
        optimizer = optimizer(dict(params))
        if not isinstance(optimizer, nn.Optimizer):
            raise TypeError(
                f"optimizer factory must return an rnnkit.nn.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
    by_id = {id(v): k for k, v in optimizer.params.items()}
    keys = {}
    for name, p in params.items():
        if id(p) not in by_id:
            raise ValueError(
                f"optimizer does not update the model's parameter {name!r}: build it over "
                "the model's own arrays (e.g. rnnkit.nn.named_parameters)"
            )
        keys[name] = by_id[id(p)]
    if len(keys) != len(optimizer.params):
        extra = sorted(set(optimizer.params) - set(keys.values()))
        raise ValueError(f"optimizer updates arrays that are not the model's: {extra}")
    return optimizer, keys


def _shards(X, y, lengths):
    xd = X.to_delayed().ravel()
    yd = y.to_delayed().ravel()
    ld = [None] * len(xd) if lengths is None else lengths.to_delayed().ravel()
    shards = [dask.delayed(make_shard)(a, b, c) for a, b, c in zip(xd, yd, ld)]
    ends = np.cumsum((0,) + X.chunks[0])
    return shards, [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


def _check_y(y, X):
    if isinstance(y, da.Array):
        check_N_chunks(y, "y", X)
    else:
        y = np.asarray(y)
        if y.ndim < 1:
            raise ValueError(f"y must have one entry per sequence of X, got shape {y.shape}")
        y = da.from_array(y, chunks=(X.chunks[0],) + y.shape[1:])
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have one entry per sequence of X ({X.shape[0]}), got shape {y.shape}"
        )
    return y


def _check_common(timeout, checkpoint_every, checkpoint_path, clip):
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if checkpoint_every is not None:
        positive_int("checkpoint_every", checkpoint_every)
        if checkpoint_path is None:
            raise ValueError("checkpoint_every needs checkpoint_path (where to write)")
    if clip is not None and (
        isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0
    ):
        raise ValueError(f"clip must be a positive number or None, got {clip!r}")


class _Schedule:
    """Global batches: a permutation of the rows per epoch (drawn from ``rng``
    at the epoch's start) cut into ``batch_size`` slices. Its position (epoch,
    batch, the generator's state at the epoch's start) is what a checkpoint
    stores to resume exactly."""

    def __init__(self, rng, N, B, epochs, shuffle=True):
        self.rng, self.N, self.B, self.epochs, self.shuffle = rng, N, B, epochs, shuffle
        self.epoch, self.batch = 0, 0
        self.epoch_total, self.epoch_count = 0.0, 0

    def position(self):
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "epoch_total": self.epoch_total,
            "epoch_count": self.epoch_count,
        }

    def restore(self, pos, rng_state):
        self.rng.bit_generator.state = rng_state
        self.epoch, self.batch = pos["epoch"], pos["batch"]
        self.epoch_total, self.epoch_count = pos["epoch_total"], pos["epoch_count"]

    def __iter__(self):
        """Yields ``(epoch, batch, idx, last_of_epoch)``."""
        while self.epoch < self.epochs:
            self.rng_state = self.rng.bit_generator.state
            order = self.rng.permutation(self.N) if self.shuffle else np.arange(self.N)
            nb = -(-self.N // self.B)
            while self.batch < nb:
                idx = order[self.batch * self.B : (self.batch + 1) * self.B]
                yield self.epoch, self.batch, idx, self.batch == nb - 1
            self.epoch, self.batch = self.epoch + 1, 0
            self.epoch_total, self.epoch_count = 0.0, 0


def _train_loop(
    cluster,
    program,
    schedule,
    opt,
    opt_keys,
    clip,
    seed,
    *,
    checkpoint_every,
    checkpoint_path,
    resume_from,
    kind,
    callback,
    on_epoch,
    start_step=0,
):
    params = program.parameters
    losses, epoch_losses = [], []
    step = start_step
    if resume_from is not None:
        ck = _checkpoint.load(resume_from, kind, params, schedule.N, schedule.B)
        for k, p in params.items():
            np.copyto(p, ck["params"][k])
        opt.load_state_dict(ck["optimizer"])
        schedule.restore(ck["position"], ck["rng_state"])
        losses = list(ck["losses"])
        epoch_losses = list(ck["extra"].get("epoch_losses", []))
        step = ck["step"]
    cluster.wait_for_data()
    for epoch, batch, idx, last in schedule:
        total = cluster.step(step, idx, seed)
        step += 1
        loss = _apply(total, params, opt, opt_keys, clip, step)
        losses.append(loss)
        schedule.epoch_total += loss * idx.size
        schedule.epoch_count += idx.size
        schedule.batch = batch + 1
        if last:
            epoch_losses.append(schedule.epoch_total / schedule.epoch_count)
            on_epoch(epoch, epoch_losses[-1])
        if checkpoint_every is not None and step % checkpoint_every == 0:
            pos = schedule.position()
            rng_state = schedule.rng_state
            if last:  # the next epoch starts from the generator as it is now
                pos = {"epoch": epoch + 1, "batch": 0, "epoch_total": 0.0, "epoch_count": 0}
                rng_state = schedule.rng.bit_generator.state
            _checkpoint.save(
                checkpoint_path,
                kind,
                params,
                opt,
                step,
                pos,
                rng_state,
                losses,
                extra={"N": schedule.N, "batch_size": schedule.B, "epoch_losses": epoch_losses},
            )
        if callback is not None and callback({"step": step, "epoch": epoch, "loss": loss}):
            break
    return step, losses, epoch_losses


def fit(
    model,
    X,
    y,
    *,
    client=None,
    optimizer=None,
    loss=None,
    batch_size=None,
    epochs=None,
    lengths=None,
    output="sequence",
    clip=None,
    shuffle=True,
    seed=0,
    checkpoint_every=None,
    checkpoint_path=None,
    resume_from=None,
    callback=None,
    timeout=300.0,
):
    """Synchronous data-parallel SGD on a Dask cluster.

    Every global batch (``batch_size`` rows of a per-epoch permutation of the
    N sequences, drawn from ``seed``) is split by the chunks of ``X``: the
    worker holding a chunk computes the gradient of the summed loss of that
    chunk's rows of the batch at the current weights. The partial gradients
    are added by a reduction tree of fixed shape (shard order, whatever the
    finishing order), divided by the batch's count (rows, or real steps with
    ``lengths``), clipped to ``clip`` (global norm, as
    :func:`rnnkit.nn.clip_grad_norm`), and ``optimizer`` takes one step on
    the driver. The next step ships the new weights. The model is updated in
    place; the result is that of one process training on the same batches, up
    to the rounding of the summation order, and bitwise the same run to run.

    Parameters
    ----------
    model : a layer, an ``rnnkit.nn`` module, a list/dict of them (a
        :class:`Chain`), or an ``RNNClassifier`` / ``RNNRegressor`` (then
        optimizer, loss, batch_size, epochs, output, clip and shuffle come
        from the estimator and must be left out; returns the fitted estimator).
    X : dask.array ``[N, T, C]`` chunked along N only; the chunks are the
        shards, spread over the workers (use at least as many as workers).
    y : dask or NumPy array, one entry per sequence, chunked like X along N.
        ``output="sequence"``: ``[N, T, K]`` targets (mse) or ``[N, T]`` class
        ids (cross_entropy), steps past ``lengths`` left out of the loss.
        ``output="last"``: ``[N, K]`` / ``[N]``, against each sequence's
        output at its last real step.
    client : distributed.Client, a scheduler address, or None (the default client).
    optimizer : an ``rnnkit.nn.Optimizer`` over the model's parameters, or a
        factory ``params -> Optimizer``.
    loss : ``"mse"``, ``"cross_entropy"`` (or ``rnnkit.nn.mse_loss`` /
        ``rnnkit.nn.softmax_cross_entropy``).
    batch_size, epochs : int
    lengths : dask or NumPy integer array ``[N]``, optional
    clip : float or None
    shuffle : bool; seed : int (the permutations and the dropout masks)
    checkpoint_every : int, optional
        Write ``checkpoint_path`` (one pickle-free ``.npz``: weights, optimizer
        state, position in the schedule) every this many steps.
    resume_from : path, optional
        Continue a run from its checkpoint, exactly: the same remaining
        batches, the same weights after each step as the uninterrupted run.
    callback : ``callback(info)`` after each step (``step``, ``epoch``,
        ``loss``); a truthy return stops training.
    timeout : float
        Seconds any one step (or loading the data, or connecting) may take
        before TimeoutError; a lost worker's tasks are rerun within it.

    Returns
    -------
    :class:`FitResult` (modules) or the estimator.
    """
    if _is_estimator(model):
        given = {
            "optimizer": optimizer,
            "loss": loss,
            "batch_size": batch_size,
            "epochs": epochs,
            "clip": clip,
        }
        bad = [k for k, v in given.items() if v is not None]
        if bad or output != "sequence" or shuffle is not True:
            raise ValueError(
                f"{type(model).__name__} brings its own optimizer, loss, batch_size, epochs, "
                f"clip, output and shuffling; set them on the estimator, not here (got {bad})"
            )
        from ._estimators import fit_estimator

        return fit_estimator(
            model,
            X,
            y,
            lengths,
            client=client,
            checkpoint_every=checkpoint_every,
            checkpoint_path=checkpoint_path,
            resume_from=resume_from,
            callback=callback,
            timeout=timeout,
        )
    chain = Chain(model)
    loss = check_loss(loss)
    if output not in ("sequence", "last"):
        raise ValueError(f"output must be 'sequence' or 'last', got {output!r}")
    B = positive_int("batch_size", batch_size)
    E = positive_int("epochs", epochs)
    _check_common(timeout, checkpoint_every, checkpoint_path, clip)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    X = check_X(X, "X")
    check_N_chunks(X, "X")
    y = _check_y(y, X)
    L = lengths_like(lengths, X)
    opt, opt_keys = _optimizer_for(optimizer, chain.parameters)
    # The model's own checks (dtype, shapes) on one zero row, before any work.
    probe = np.zeros((1,) + X.shape[1:], dtype=X.dtype)
    chain(probe, None)
    client = get_client(client, timeout)
    program = ChainProgram(chain, loss, output)
    shards, bounds = _shards(X, y, L)
    cluster = _Cluster(client, program, shards, bounds, timeout)
    schedule = _Schedule(np.random.default_rng(int(seed)), X.shape[0], B, E, bool(shuffle))
    try:
        steps, losses, epoch_losses = _train_loop(
            cluster,
            program,
            schedule,
            opt,
            opt_keys,
            None if clip is None else float(clip),
            int(seed),
            checkpoint_every=checkpoint_every,
            checkpoint_path=checkpoint_path,
            resume_from=resume_from,
            kind="modules",
            callback=callback,
            on_epoch=lambda e, v: None,
        )
    finally:
        cluster.close()
    return FitResult(steps, losses, epoch_losses)
