"""rnnkit.dask.predict: batch inference over a dask array ``X [N, T, C]``
chunked along N. Builds a lazy dask array; computes nothing itself. The
model travels as one graph key that every task depends on (fetched once per
worker), never pickled into each task.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from ._checks import check_N_chunks, check_X, lengths_like
from ._models import Chain, _is_estimator

_EST_METHODS = ("predict", "predict_proba", "decision_function")
_EST_BATCH = 512  # the batch of _RNNEstimator._raw_predict


def _call(x, lengths, model, method):
    if method is None:
        return model(x, lengths)
    return getattr(model, method)(x, lengths)


def _plan(model, N):
    """The batches ``(start, size)`` one process runs ``model`` over all N rows in."""
    if _is_estimator(model):
        b = _EST_BATCH
        return [(i, min(b, N - i)) for i in range(0, N, b)]
    return [(0, N)]


def _run_block(rows, x, lengths, model, method, N):
    """One chunk: rows ``rows`` (global indices, contiguous) of X, computed so
    that every cell equals the single-process call bit for bit.

    A row's result depends only on the row and on the shape of the call it
    runs in (the native kernels pick their path by N: fused input side at
    N >= 16, packed weights for T*N > 4; OpenBLAS picks its GEMM kernel by M).
    So each part of the chunk runs in a call shaped like the one-process call
    it belongs to: rows of a batch of >= 16 rows through a layer or chain (the
    native kernels' rows do not depend on N there) in a call of >= 16 rows,
    anything else in a call of exactly its batch's size, at the same positions,
    the rest zero padding.
    """
    lo = int(rows[0])
    hi = lo + x.shape[0]
    T = x.shape[1]
    outs = []
    for start, size in _plan(model, N):
        a, b = max(lo, start), min(hi, start + size)
        if a >= b:
            continue
        xs = x[a - lo : b - lo]
        ls = None if lengths is None else lengths[a - lo : b - lo]
        if b - a == size:
            outs.append(np.asarray(_call(xs, ls, model, method)))
            continue
        invariant = size >= 16 and not _is_estimator(model)
        n = max(b - a, 16) if invariant else size
        off = 0 if invariant else a - start
        xp = np.zeros((n,) + xs.shape[1:], dtype=xs.dtype)
        xp[off : off + (b - a)] = xs
        lp = None
        if ls is not None:
            lp = np.full(n, T, dtype=ls.dtype)
            lp[off : off + (b - a)] = ls
        outs.append(np.asarray(_call(xp, lp, model, method))[off : off + (b - a)])
    return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)


def predict(model, X, lengths=None, *, method=None):
    """Run ``model`` over every sequence of ``X``; lazy, chunk by chunk.

    Parameters
    ----------
    model : an rnnkit layer (RNN, LSTM, GRU, IndRNN), an ``rnnkit.nn`` module,
        a list or dict of them applied in order (see :class:`rnnkit.dask.Chain`),
        or a fitted ``RNNClassifier`` / ``RNNRegressor``.
    X : dask.array ``[N, T, C]`` (``[N, T]`` ids for a model that starts with
        an Embedding), chunked along N only. Layers see it batch-major
        whatever their ``batch_first``.
    lengths : dask or NumPy integer array ``[N]``, optional
        Rechunked to X's chunks if it is not already.
    method : for an estimator: ``"predict"`` (default), ``"predict_proba"``
        or ``"decision_function"``. Must be None for other models.

    Returns
    -------
    dask.array, chunks ``(X.chunks[0], <whole trailing axes>)``: a layer's or
    chain's output ``[N, T, K]`` in its dtype, or the estimator method's
    result. Each cell equals the single-process result bit for bit: each
    chunk runs in calls shaped like the one-process call (see _run_block and
    docs/distributed.md), so chunks of >= 16 rows (layers, chains) or of a
    multiple of 512 rows (estimators) run unpadded.
    """
    X = check_X(X, "X")
    if _is_estimator(model):
        if method is None:
            method = "predict"
        if method not in _EST_METHODS or not hasattr(model, method):
            raise ValueError(
                f"method must be one of {[m for m in _EST_METHODS if hasattr(model, m)]} for "
                f"{type(model).__name__}, got {method!r}"
            )
        model._check_fitted()
        runner = model
    else:
        if method is not None:
            raise ValueError(f"method is only for estimators; got method={method!r} for a module")
        runner = Chain(model)
    check_N_chunks(X, "X")
    L = lengths_like(lengths, X)
    # One row of zeros through the model, here: the output's trailing shape and
    # dtype, and any dtype or shape error the model raises, before any graph.
    T = X.shape[1]
    probe = np.zeros((1,) + X.shape[1:], dtype=X.dtype)
    out = np.asarray(_call(probe, None if L is None else np.array([T], np.int64), runner, method))
    trail = out.shape[1:]
    letters = "abcdefgh"[: len(trail)]
    x_ind = "n" + "tcxyz"[: X.ndim - 1]
    model_key = dask.delayed(runner, pure=False)  # one key; every block depends on it
    args = [da.arange(X.shape[0], chunks=(X.chunks[0],)), "n", X, x_ind]
    args += [None, None] if L is None else [L, "n"]
    return da.blockwise(
        _run_block,
        "n" + letters,
        *args,
        model_key,
        None,
        method,
        None,
        X.shape[0],
        None,
        new_axes=dict(zip(letters, trail)),
        concatenate=True,
        dtype=out.dtype,
        meta=np.empty((0,) * (1 + len(trail)), dtype=out.dtype),
        name="rnnkit-predict-"
        + dask.base.tokenize(model_key.key, X.name, None if L is None else L.name, method),
    )
