// What the per-cell binding files (rnn.cpp, lstm.cpp, gru.cpp, indrnn.cpp)
// share: the boundary checks (shape, dtype, contiguity, lengths in range:
// nothing reaches the core that could make it read out of bounds), output
// allocation and the GIL release around the core call only. Python-side
// validation (rnnkit._checks) gives the friendly messages; these checks are the
// second line and name the argument too.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "rnnkit/rnnkit.h"

namespace rnnkit {
// dispatch.cpp: true in a child forked after this process ran a team of 2+
// threads (its calls then run on 1 thread).
bool threads_limited_by_fork();
}  // namespace rnnkit

namespace rnnkit_py {

namespace py = pybind11;
using rnnkit::Act;
using rnnkit::Cell;

std::string shape_str(const std::vector<int64_t>& shape);

// True where obj's dtype is Real's kind and size (float32/float64, or int64
// for lengths), in any byte order: such arrays are accepted (and copied by
// input<>() when not native).
template <class Real>
bool has_dtype_of(const py::array& a) {
    const py::dtype dt = a.dtype();
    const char kind = std::is_floating_point<Real>::value ? 'f' : 'i';
    return dt.kind() == kind && dt.itemsize() == static_cast<py::ssize_t>(sizeof(Real));
}

// The array's shape, after checking it is an ndarray of Real (any layout,
// alignment or byte order: input<>() makes the kernels' copy) with `ndim`
// dimensions.
template <class Real>
std::vector<int64_t> checked_shape(py::handle obj, const char* name, int ndim) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!has_dtype_of<Real>(a))
        throw py::type_error(std::string(name) + " must have dtype " +
                             std::string(py::str(py::dtype::of<Real>())) + ", got " +
                             std::string(py::str(a.dtype())));
    if (a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                              " dimensions, got shape " +
                              shape_str(std::vector<int64_t>(a.shape(), a.shape() + a.ndim())));
    return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

// True where the kernels can read a's data as it is: C-contiguous, aligned to
// its itemsize (the kernels' loads assume it: UB otherwise) and native byte order.
bool kernel_ready(const py::array& a);

// An aligned, C-contiguous, native-order copy of a (the same values), kept
// alive until the bound function that called it returns (pybind11's
// loader_life_support, the mechanism that keeps argument conversions alive):
// callers need not hold it.
py::array kernel_copy(const py::array& a, const py::dtype& native);

// A read-only pointer to obj's data after checking it is exactly `shape`.
// An array the kernels cannot read as it is (misaligned, strided, byte-swapped)
// is copied first; the copy lives until the calling bound function returns.
template <class Real>
const Real* input(py::handle obj, const char* name, std::initializer_list<int64_t> shape) {
    const std::vector<int64_t> expected(shape);
    const auto got = checked_shape<Real>(obj, name, static_cast<int>(expected.size()));
    if (got != expected)
        throw py::value_error(std::string(name) + " must have shape " + shape_str(expected) + ", got " +
                              shape_str(got));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!kernel_ready(a)) a = kernel_copy(a, py::dtype::of<Real>());
    return static_cast<const Real*>(a.data());
}

// Once per process, where this process is a child forked after a
// multi-threaded call (its libgomp cannot start threads: every call runs on 1
// thread, see dispatch.cpp): a RuntimeWarning that says so. Entry points call
// it before releasing the GIL; a warnings filter that turns it into an error
// raises here.
void warn_if_fork_limited();
// rnnkit.set_num_threads gave its own warning: the calls need not repeat it.
void note_fork_warning_given();

// lengths: int64 [N], each in 0..T.
const int64_t* lengths_input(py::handle obj, int64_t T, int64_t N);

Act parse_act(const std::string& nonlinearity);

// An uninitialized C-contiguous array. Large ones live in rnnkit's kept
// blocks (rnnkit::array_alloc): when Python frees the array, its capsule
// hands the block back for the next call, instead of to the OS.
template <class Real>
py::array_t<Real> empty(std::initializer_list<int64_t> shape) {
    std::vector<py::ssize_t> dims(shape.begin(), shape.end());
    std::size_t count = 1;
    for (auto d : dims) count *= static_cast<std::size_t>(d);
    const std::size_t bytes = count * sizeof(Real);
    if (bytes < rnnkit::kKeptBlockMin) return py::array_t<Real>(dims);
    struct Block {
        void* p;
        std::size_t bytes;
    };
    auto* block = new Block{nullptr, bytes};
    try {
        block->p = rnnkit::array_alloc(bytes);
    } catch (...) {
        delete block;
        throw;
    }
    py::capsule owner(block, [](void* b) {
        auto* blk = static_cast<Block*>(b);
        rnnkit::array_free(blk->p, blk->bytes);
        delete blk;
    });
    return py::array_t<Real>(dims, static_cast<Real*>(block->p), owner);
}

// Forward of any cell: y, h_n, [c_n,] cache (a dict of named arrays, or None).
struct ForwardArgs {
    py::handle x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths;
    bool reverse;
    Act act;
    bool training;
    int weights = 0;   // ForwardIO::weights: 0 by shape, 1 in place, 2 packed
};
py::tuple forward(Cell cell, const ForwardArgs& a);

// Backward of any cell: dx, dh0, [dc0,] dw_ih, dw_hh, db_ih, db_hh.
struct BackwardArgs {
    py::handle dy, dh_n, dc_n;
    py::handle x, h0, c0, w_ih, w_hh, lengths;
    bool reverse;
    Act act;
    py::handle h, c, tanh_c, gates, hn;
    // None, or (dx, dw_ih, dw_hh, db_ih, db_hh): arrays of the outputs' shapes
    // and dtype (C-contiguous, writeable) that dx is written to and the
    // weight gradients added to (BackwardIO::accumulate).
    py::handle out = py::none();
};
py::tuple backward(Cell cell, const BackwardArgs& a);

}  // namespace rnnkit_py
