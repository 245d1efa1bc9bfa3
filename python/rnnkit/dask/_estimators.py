"""RNNClassifier / RNNRegressor ``fit`` on dask arrays: the estimators' own
preprocessing (standardization over the real steps, class codes, target
scaling) computed as dask reductions, then the estimator's own training
schedule (its random_state, Adam, clip, epochs, batch size) run by the
data-parallel step of _train.py. Mirrors ``_RNNEstimator._fit_batches`` and the
``fit`` methods in rnnkit/sklearn.py step for step, so that the same data
give the same model up to the rounding of the gradient sums.
"""

from __future__ import annotations

import time

import dask.array as da
import numpy as np

from .. import nn
from ._checks import check_N_chunks, check_X, get_client, lengths_like
from ._models import EstimatorProgram
from ._train import (
    _Cluster,
    _check_common,
    _check_y,
    _optimizer_for,
    _Schedule,
    _shards,
    _train_loop,
)


def _mask(lengths, N, T):
    # lengths: dask [N] or None -> dask bool [N, T]
    if lengths is None:
        return None
    return da.arange(T)[None, :] < lengths[:, None]


def _prep_X(x, lengths, mean, scale, dtype, T):
    """One chunk, as ``_as_batch`` + the standardization of ``_fit_X`` do it."""
    xb = np.array(x, dtype=np.float64)
    if lengths is not None:
        xb[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    if not np.all(np.isfinite(xb)):
        raise ValueError("X holds nan or inf (within the sequences' lengths)")
    out = np.ascontiguousarray(xb, dtype=dtype)
    if mean is not None:
        out = (out - mean) / scale
        if lengths is not None:
            out *= (np.arange(T)[None, :] < lengths[:, None])[:, :, None]
    return np.ascontiguousarray(out, dtype=dtype)


def fit_estimator(
    est, X, y, lengths, *, client, checkpoint_every, checkpoint_path, resume_from, callback, timeout
):
    dtype = est._check_params()
    _check_common(timeout, checkpoint_every, checkpoint_path, None)
    X = check_X(X, "X")
    if X.ndim != 3:
        raise ValueError(f"X must be 3-D [n_samples, n_timesteps, n_features], got shape {X.shape}")
    check_N_chunks(X, "X")
    if X.dtype == np.bool_ or X.dtype.kind not in "iuf":
        raise ValueError(f"X must be numeric, got dtype {X.dtype}")
    y = _check_y(y, X)
    L = lengths_like(lengths, X)
    N, T, F = X.shape
    if N == 0 or T == 0 or F == 0:
        raise ValueError(f"X must have at least one sample, step and feature, got shape {X.shape}")
    is_clf = est._estimator_type == "classifier"
    if not is_clf and est.output not in ("last", "sequence"):
        raise ValueError(f"output must be 'last' or 'sequence', got {est.output!r}")
    client = get_client(client, timeout)
    if L is not None:
        L = L.astype(np.int64)
        lo, hi = (int(v) for v in client.compute([L.min(), L.max()], sync=True))
        if lo < 1 or hi > T:
            raise ValueError(
                f"lengths must lie in 1..n_timesteps = 1..{T}, got values from {lo} to {hi}"
            )
    est._dtype = dtype
    est.n_features_in_ = F
    mask = _mask(L, N, T)
    mean = scale = None
    if est.standardize:
        x64 = X.astype(np.float64)
        if mask is not None:
            x64 = da.where(mask[:, :, None], x64, 0.0)
            count = mask.sum()
        else:
            count = N * T
        s1 = x64.sum(axis=(0, 1))
        mean64 = s1 / count
        dev = x64 - mean64
        if mask is not None:
            dev = da.where(mask[:, :, None], dev, 0.0)
        var = (dev * dev).sum(axis=(0, 1)) / count
        mean64, var = client.compute([mean64, var], sync=True)
        sc = np.sqrt(var)
        sc[sc == 0] = 1.0
        est.x_mean_ = mean64.astype(dtype)
        est.x_scale_ = sc.astype(dtype)
        mean, scale = est.x_mean_, est.x_scale_
    Xp = _map_prep(X, L, mean, scale, dtype, T)

    if is_clf:
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D with one label per sample ({N}), got shape {y.shape}")
        if y.dtype.kind == "f":
            if not bool(client.compute(da.isfinite(y).all(), sync=True)):
                raise ValueError("y holds nan or inf")
        classes = np.asarray(client.compute(da.unique(y), sync=True))
        if classes.size < 2:
            raise ValueError(f"y must hold at least 2 classes, got {classes.size}")
        est.classes_ = classes
        target = y.map_blocks(
            lambda b: np.searchsorted(classes, b).astype(np.int64), dtype=np.int64
        )
        K = classes.size
    else:
        target, K = _regression_target(est, y, mask, N, T, dtype, client)
    rng = est._rng()
    est._init_model(F, K, dtype, rng)
    program = EstimatorProgram(est)
    params = program.parameters
    opt, opt_keys = _optimizer_for(
        lambda p: nn.Adam(p, lr=float(est.lr), weight_decay=float(est.weight_decay)), params
    )
    shards, bounds = _shards(Xp, target, L)
    cluster = _Cluster(client, program, shards, bounds, timeout)
    B = min(int(est.batch_size), N)
    schedule = _Schedule(rng, N, B, int(est.epochs))
    start = time.perf_counter()

    def on_epoch(epoch, value):
        if est.verbose:
            print(
                f"epoch {epoch + 1}/{est.epochs}  loss {value:.5f}  "
                f"{time.perf_counter() - start:.1f}s",
                flush=True,
            )

    try:
        _, _, est.loss_curve_ = _train_loop(
            cluster,
            program,
            schedule,
            opt,
            opt_keys,
            None if est.clip is None else float(est.clip),
            0,
            checkpoint_every=checkpoint_every,
            checkpoint_path=checkpoint_path,
            resume_from=resume_from,
            kind=type(est).__name__,
            callback=callback,
            on_epoch=on_epoch,
        )
    finally:
        cluster.close()
    est.n_iter_ = int(est.epochs)
    return est


def _map_prep(X, L, mean, scale, dtype, T):
    if L is None:
        return X.map_blocks(_prep_X, None, mean, scale, dtype, T, dtype=dtype)
    return da.blockwise(
        _prep_X,
        "ntc",
        X,
        "ntc",
        L,
        "n",
        mean,
        None,
        scale,
        None,
        dtype,
        None,
        T,
        None,
        dtype=dtype,
        concatenate=True,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )


def _regression_target(est, y, mask, N, T, dtype, client):
    if y.dtype == np.bool_ or y.dtype.kind not in "iuf":
        raise ValueError(f"y must be numeric, got dtype {y.dtype}")
    y = y.astype(np.float64)
    if est.output == "last":
        if y.ndim not in (1, 2):
            raise ValueError(
                f"with output='last', y must be [n_samples] or [n_samples, n_outputs] "
                f"with n_samples = {N}, got shape {y.shape}"
            )
        est._squeeze = y.ndim == 1
        y2 = y.reshape(N, -1) if y.ndim == 1 else y
        valid_w = None
    else:
        if y.ndim not in (2, 3) or y.shape[:2] != (N, T):
            raise ValueError(
                f"with output='sequence', y must be [n_samples, n_timesteps] or "
                f"[n_samples, n_timesteps, n_outputs] = [{N}, {T}, ...], got shape {y.shape}"
            )
        est._squeeze = y.ndim == 2
        y2 = y[:, :, None] if y.ndim == 2 else y
        if mask is not None:
            y2 = da.where(mask[:, :, None], y2, 0.0)
        valid_w = mask
    K = y2.shape[-1]
    if not bool(client.compute(da.isfinite(y2).all(), sync=True)):
        raise ValueError("y holds nan or inf")
    if est.standardize:
        axes = (0,) if est.output == "last" else (0, 1)
        count = (N if est.output == "last" else N * T) if valid_w is None else valid_w.sum()
        mean = y2.sum(axis=axes) / count
        dev = y2 - mean
        if valid_w is not None:
            dev = da.where(valid_w[:, :, None], dev, 0.0)
        var = (dev * dev).sum(axis=axes) / count
        mean, var = client.compute([mean, var], sync=True)
        sc = np.sqrt(var)
        sc[sc == 0] = 1.0
        est.y_mean_, est.y_scale_ = mean, sc
    else:
        est.y_mean_, est.y_scale_ = np.zeros(K), np.ones(K)
    yt = ((y2 - est.y_mean_) / est.y_scale_).astype(dtype)
    if valid_w is not None:
        yt = yt * valid_w[:, :, None].astype(dtype)
    yt = yt.rechunk({i: -1 for i in range(1, yt.ndim)})
    return yt, K
