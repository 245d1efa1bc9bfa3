"""Variable-length sequences: pack a list of ``[T_i, C]`` arrays into a padded
``[T, N, C]`` batch with its lengths, and unpack it again.

Validation and allocation happen here; the copy loops run in Cython
(``rnnkit._seq``) without the GIL.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["pack_sequences", "unpack_sequences"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def pack_sequences(
    sequences: Sequence[np.ndarray],
    *,
    dtype=None,
    batch_first: bool = False,
    total_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pack ``[T_i, C]`` arrays into a zero-padded batch.

    Parameters
    ----------
    sequences : sequence of array_like, each ``[T_i, C]``
        The sequences, in batch order. ``T_i`` may be 0.
    dtype : float32 or float64, optional
        Output dtype. Defaults to the sequences' common float dtype (float64
        for non-float input).
    batch_first : bool
        Return ``[N, T, C]`` instead of ``[T, N, C]``.
    total_length : int, optional
        Pad to this many steps (at least the longest sequence).

    Returns
    -------
    x : ndarray ``[T, N, C]`` (or ``[N, T, C]``)
    lengths : int64 ndarray ``[N]``
    """
    from . import _seq

    if isinstance(sequences, np.ndarray) and sequences.ndim != 1:
        raise TypeError("sequences must be a list of [T_i, C] arrays, got one ndarray of "
                        f"shape {sequences.shape}")
    seqs = list(sequences)
    if not seqs:
        raise ValueError("sequences must hold at least one sequence, got an empty list")
    arrays = [np.asarray(s) for s in seqs]
    for i, a in enumerate(arrays):
        if a.ndim != 2:
            raise ValueError(f"sequences[{i}] must be 2-D [T_i, C], got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise TypeError(f"sequences[{i}] must be numeric, got dtype {a.dtype}")
    C = arrays[0].shape[1]
    for i, a in enumerate(arrays):
        if a.shape[1] != C:
            raise ValueError(f"sequences[{i}] has {a.shape[1]} features but sequences[0] has {C}")
    if dtype is None:
        dtype = np.result_type(*arrays)
        if dtype not in _FLOATS:
            dtype = np.float64
    dtype = np.dtype(dtype)
    if dtype not in _FLOATS:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    T = int(lengths.max())
    if total_length is not None:
        if int(total_length) != total_length or total_length < T:
            raise ValueError(f"total_length must be an integer >= the longest sequence ({T}), "
                             f"got {total_length}")
        T = int(total_length)
    N = len(arrays)
    shape = (N, T, C) if batch_first else (T, N, C)
    out = np.zeros(shape, dtype=dtype)
    contiguous = [np.ascontiguousarray(a, dtype=dtype) for a in arrays]
    _seq.pack_into(contiguous, out, bool(batch_first))
    return out, lengths


def unpack_sequences(x: np.ndarray, lengths, *, batch_first: bool = False) -> list[np.ndarray]:
    """Split a padded batch back into a list of ``[T_i, C]`` arrays (copies).

    ``x`` is ``[T, N, C]`` (``[N, T, C]`` with ``batch_first``) and ``lengths``
    ``[N]`` integers in ``0..T``.
    """
    from . import _seq

    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D, got shape {x.shape}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"x must be float32 or float64, got dtype {x.dtype}")
    N, T = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    lengths_arr = np.asarray(lengths)
    if lengths_arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {lengths_arr.dtype}")
    if lengths_arr.shape != (N,):
        raise ValueError(f"lengths must have shape ({N},), got {lengths_arr.shape}")
    if N and (lengths_arr.min() < 0 or lengths_arr.max() > T):
        raise ValueError(f"lengths must lie in 0..{T}, got values from {lengths_arr.min()} "
                         f"to {lengths_arr.max()}")
    outs = [np.empty((int(n), x.shape[2]), dtype=x.dtype) for n in lengths_arr]
    _seq.unpack_into(np.ascontiguousarray(x), outs, bool(batch_first))
    return outs
