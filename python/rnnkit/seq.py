"""Variable-length sequences and token streams.

- ``pack_sequences`` / ``unpack_sequences``: a list of ``[T_i, C]`` float
  arrays to a padded ``[T, N, C]`` batch with its lengths, and back.
- ``encode_text`` / ``decode_ids``: text to int32 ids over a vocabulary (a
  string of distinct characters, id = position), and back.
- ``windows``: ``[T, N]`` time-major windows cut from a 1-D id stream.
- ``pad_ids``: a list of 1-D id sequences to a padded ``[T, N]`` batch.

Validation and allocation happen here; the loops run in Cython
(``rnnkit._seq``) without the GIL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "pack_sequences",
    "unpack_sequences",
    "encode_text",
    "decode_ids",
    "windows",
    "pad_ids",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _count(name: str, value, lo: int = 0) -> int:
    """An integral ``value >= lo`` (int, NumPy integer or integral float) as an int;
    ValueError naming ``name`` otherwise (nan, inf, 2.5, "3", True...)."""
    ok = not isinstance(value, (bool, np.bool_, str, bytes))
    if ok:
        try:
            v = int(value)
            ok = v == value and v >= lo
        except (TypeError, ValueError, OverflowError):
            ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return v


def _kernel_ready(a, dtype) -> np.ndarray:
    """a as a C-contiguous, aligned array of dtype (a copy only when needed):
    Cython's typed memoryviews accept a view at an odd byte offset, and its
    loads would then be misaligned (undefined behaviour; UBSan reports it)."""
    return np.require(a, dtype=dtype, requirements=("C", "A"))


def _real(name: str, a: np.ndarray) -> np.ndarray:
    """Refuse what a float cast would silently drop: complex parts and masks."""
    if np.iscomplexobj(a):
        raise TypeError(
            f"{name} must be real, got dtype {a.dtype} (its imaginary part would be lost)"
        )
    if np.ma.is_masked(a):
        raise TypeError(
            f"{name} is a masked array with masked entries, which rnnkit would read as "
            "their data: fill them (a.filled(0)) and give lengths instead"
        )
    return a


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
        raise TypeError(
            "sequences must be a list of [T_i, C] arrays, got one ndarray of "
            f"shape {sequences.shape}"
        )
    seqs = list(sequences)
    if not seqs:
        raise ValueError("sequences must hold at least one sequence, got an empty list")
    arrays = [np.asarray(_real(f"sequences[{i}]", s)) for i, s in enumerate(seqs)]
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
        T = _total_length(total_length, T)
    N = len(arrays)
    shape = (N, T, C) if batch_first else (T, N, C)
    out = np.zeros(shape, dtype=dtype)
    contiguous = [_kernel_ready(a, dtype) for a in arrays]
    _seq.pack_into(contiguous, out, bool(batch_first))
    return out, lengths


def _total_length(total_length, T: int) -> int:
    try:
        return _count("total_length", total_length, lo=T)
    except ValueError:
        raise ValueError(
            f"total_length must be an integer >= the longest sequence ({T}), got {total_length!r}"
        ) from None


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
        raise ValueError(
            f"lengths must lie in 0..{T}, got values from {lengths_arr.min()} "
            f"to {lengths_arr.max()}"
        )
    outs = [np.empty((int(n), x.shape[2]), dtype=x.dtype) for n in lengths_arr]
    _seq.unpack_into(_kernel_ready(x, x.dtype), outs, bool(batch_first))
    return outs


# ---------------------------------------------------------------------------
# Token ids
# ---------------------------------------------------------------------------


def _codepoints(text: str, name: str) -> np.ndarray:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    # surrogatepass: a lone surrogate (from surrogateescape decoding) still
    # gets a code point, and so a clear "not in the vocabulary" error.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _vocab_table(vocab: str) -> np.ndarray:
    """Dense code point -> id table (-1 = not in the vocabulary)."""
    cps = _codepoints(vocab, "vocab")
    if cps.size == 0:
        raise ValueError("vocab must hold at least one character, got an empty string")
    if np.unique(cps).size != cps.size:
        seen, dup = set(), []
        for ch in vocab:
            if ch in seen:
                dup.append(ch)
            seen.add(ch)
        raise ValueError(f"vocab must hold distinct characters; repeated: {sorted(set(dup))!r}")
    table = np.full(int(cps.max()) + 1, -1, dtype=np.int32)
    table[cps] = np.arange(cps.size, dtype=np.int32)
    return table


def encode_text(text: str, vocab: str) -> np.ndarray:
    """Map every character of ``text`` to its index in ``vocab``.

    Parameters
    ----------
    text : str
    vocab : str
        Distinct characters; character ``vocab[i]`` has id ``i``.

    Returns
    -------
    ids : int32 ndarray ``[len(text)]``

    Raises
    ------
    ValueError
        A character of ``text`` is not in ``vocab``; the message names it and
        its position.
    """
    from . import _seq

    cps = _codepoints(text, "text")
    table = _vocab_table(vocab)
    ids = np.empty(cps.size, dtype=np.int32)
    bad = _seq.encode_into(cps, table, ids)
    if bad >= 0:
        missing = sorted(set(text) - set(vocab))
        shown = "".join(missing[:20]) + ("..." if len(missing) > 20 else "")
        raise ValueError(
            f"text holds {len(missing)} character(s) that are not in the vocabulary, first "
            f"{text[bad]!r} at position {bad}; all of them: {shown!r}"
        )
    return ids


def decode_ids(ids, vocab: str) -> str:
    """The text whose characters are ``vocab[i]`` for each id ``i`` (a 1-D array)."""
    cps = _codepoints(vocab, "vocab")
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return ""
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids must hold integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= cps.size:
        raise ValueError(
            f"ids must lie in 0..{cps.size - 1} (the vocabulary has {cps.size} "
            f"characters), got values from {arr.min()} to {arr.max()}"
        )
    return cps[arr].tobytes().decode("utf-32-le", "surrogatepass")


def _int32_ids(ids, name: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.dtype == np.bool_ or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{name} must fit in int32, got values from {arr.min()} to {arr.max()}")
    return _kernel_ready(arr, np.int32)


def windows(ids, starts, length: int) -> np.ndarray:
    """Cut one time-major window per start from a 1-D id stream.

    ``out[t, n] = ids[starts[n] + t]`` for ``t < length``.

    Parameters
    ----------
    ids : 1-D integer array (stored as int32)
    starts : 1-D integer array ``[N]``, each in ``0..len(ids) - length``
    length : int, T >= 0

    Returns
    -------
    out : int32 ndarray ``[T, N]``
    """
    from . import _seq

    stream = _int32_ids(ids, "ids")
    if stream.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {stream.shape}")
    st = np.asarray(starts)
    if st.ndim != 1:
        raise ValueError(f"starts must be 1-D [N], got shape {st.shape}")
    if st.dtype == np.bool_ or (st.size and st.dtype.kind not in "iu"):
        raise TypeError(f"starts must hold integers, got dtype {st.dtype}")
    try:
        T = _count("length", length)
    except ValueError:
        raise ValueError(f"length must be a non-negative integer, got {length!r}") from None
    # Compare as Python ints: st.max() + T in NumPy integers can wrap around
    # (uint64 near 2**64, int64 near 2**63) and let a window past the stream's
    # end through to the unchecked Cython loop.
    if st.size and (int(st.min()) < 0 or int(st.max()) + T > stream.size):
        raise ValueError(
            f"every window must fit in the stream: starts must lie in "
            f"0..{stream.size - T} for length={T} and len(ids)={stream.size}, "
            f"got values from {st.min()} to {st.max()}"
        )
    out = np.empty((T, st.size), dtype=np.int32)
    if T and st.size:
        _seq.window_into(stream, _kernel_ready(st, np.int64), out)
    return out


def pad_ids(
    sequences: Sequence,
    *,
    pad_value: int = 0,
    batch_first: bool = False,
    total_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pad 1-D id sequences into one batch.

    Returns
    -------
    ids : int32 ndarray ``[T, N]`` (``[N, T]`` with ``batch_first``), ``pad_value``
        past each sequence's end
    lengths : int64 ndarray ``[N]``
    """
    from . import _seq

    if isinstance(sequences, np.ndarray) and sequences.ndim != 1:
        raise TypeError(
            f"sequences must be a list of 1-D id arrays, got one ndarray of shape {sequences.shape}"
        )
    seqs = [_int32_ids(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
    if not seqs:
        raise ValueError("sequences must hold at least one sequence, got an empty list")
    for i, s in enumerate(seqs):
        if s.ndim != 1:
            raise ValueError(f"sequences[{i}] must be 1-D, got shape {s.shape}")
    lengths = np.array([s.size for s in seqs], dtype=np.int64)
    T = int(lengths.max())
    if total_length is not None:
        T = _total_length(total_length, T)
    N = len(seqs)
    i32 = np.iinfo(np.int32)
    try:
        pad = _count("pad_value", pad_value, lo=i32.min)
    except ValueError:
        pad = None
    if pad is None or pad > i32.max:
        raise ValueError(f"pad_value must be an integer that fits in int32, got {pad_value!r}")
    out = np.full((N, T) if batch_first else (T, N), pad, dtype=np.int32)
    _seq.pad_ids_into(seqs, out, bool(batch_first))
    return out, lengths
