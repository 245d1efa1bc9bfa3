# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""rnnkit._seq: the data loops over NumPy buffers (packing variable-length
sequences into padded time-major batches and back).

Private: python/rnnkit/seq.py validates and allocates, these loops only copy,
without the GIL. Typed memoryviews only, so no NumPy headers are compiled in.
"""

ctypedef fused real:
    float
    double


cdef void _copy_in(const real[:, ::1] seq, real[:, :, ::1] out, Py_ssize_t n,
                   bint batch_first) noexcept nogil:
    cdef Py_ssize_t t, c
    cdef Py_ssize_t T = seq.shape[0]
    cdef Py_ssize_t C = seq.shape[1]
    if batch_first:
        for t in range(T):
            for c in range(C):
                out[n, t, c] = seq[t, c]
    else:
        for t in range(T):
            for c in range(C):
                out[t, n, c] = seq[t, c]


def pack_into(list seqs, real[:, :, ::1] out, bint batch_first):
    """Copy each [T_i, C] C-contiguous array of seqs into out, which is
    [T, N, C] (or [N, T, C] when batch_first) and already zero-filled."""
    cdef Py_ssize_t n
    cdef const real[:, ::1] seq
    for n in range(len(seqs)):
        seq = seqs[n]
        with nogil:
            _copy_in(seq, out, n, batch_first)


cdef void _copy_out(const real[:, :, ::1] x, real[:, ::1] seq, Py_ssize_t n,
                    bint batch_first) noexcept nogil:
    cdef Py_ssize_t t, c
    cdef Py_ssize_t T = seq.shape[0]
    cdef Py_ssize_t C = seq.shape[1]
    if batch_first:
        for t in range(T):
            for c in range(C):
                seq[t, c] = x[n, t, c]
    else:
        for t in range(T):
            for c in range(C):
                seq[t, c] = x[t, n, c]


def unpack_into(const real[:, :, ::1] x, list outs, bint batch_first):
    """Copy the first T_i steps of sequence n of x into outs[n], a [T_i, C]
    C-contiguous array, for every n."""
    cdef Py_ssize_t n
    cdef real[:, ::1] seq
    for n in range(len(outs)):
        seq = outs[n]
        with nogil:
            _copy_out(x, seq, n, batch_first)


# ---------------------------------------------------------------------------
# Token loops: text to ids, windows of a token stream, padding id sequences.
# Ids are int32 ('i'); code points are uint32 ('I'), as numpy.frombuffer of a
# UTF-32-LE encoding gives them.
# ---------------------------------------------------------------------------


def encode_into(const unsigned int[::1] codepoints, const int[::1] table, int[::1] out):
    """out[i] = table[codepoints[i]] for every i, where table maps a code point
    to its id (or -1 when it is not in the vocabulary). Code points at or past
    len(table) are not in the vocabulary either.

    Returns the index of the first code point not in the vocabulary, or -1
    when all of them are (out is then fully written).
    """
    cdef Py_ssize_t i
    cdef Py_ssize_t n = codepoints.shape[0]
    cdef Py_ssize_t size = table.shape[0]
    cdef Py_ssize_t bad = -1
    cdef unsigned int cp
    cdef int idx
    with nogil:
        for i in range(n):
            cp = codepoints[i]
            idx = table[cp] if cp < <size_t>size else -1
            if idx < 0:
                bad = i
                break
            out[i] = idx
    return bad


def window_into(const int[::1] ids, const long long[::1] starts, int[:, ::1] out):
    """out[t, n] = ids[starts[n] + t]: one [T, N] time-major window per call.

    The caller checks that 0 <= starts[n] and starts[n] + T <= len(ids).
    """
    cdef Py_ssize_t t, n
    cdef Py_ssize_t T = out.shape[0]
    cdef Py_ssize_t N = out.shape[1]
    with nogil:
        for t in range(T):
            for n in range(N):
                out[t, n] = ids[starts[n] + t]


cdef void _pad_one(const int[::1] seq, int[:, ::1] out, Py_ssize_t n,
                   bint batch_first) noexcept nogil:
    cdef Py_ssize_t t
    cdef Py_ssize_t T = seq.shape[0]
    if batch_first:
        for t in range(T):
            out[n, t] = seq[t]
    else:
        for t in range(T):
            out[t, n] = seq[t]


def pad_ids_into(list seqs, int[:, ::1] out, bint batch_first):
    """Copy each 1-D C-contiguous int32 array of seqs into column n of out,
    which is [T, N] (or [N, T] when batch_first) and already filled with the
    padding id."""
    cdef Py_ssize_t n
    cdef const int[::1] seq
    for n in range(len(seqs)):
        seq = seqs[n]
        with nogil:
            _pad_one(seq, out, n, batch_first)
