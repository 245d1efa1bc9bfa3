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
