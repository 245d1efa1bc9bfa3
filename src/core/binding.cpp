// The generic forward/backward bindings behind the per-cell files: check every
// array against the shapes implied by x and w_hh, allocate the outputs, release
// the GIL around the core call only.
#include "binding.h"

namespace rnnkit_py {

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

bool kernel_ready(const py::array& a) {
    const int flags = a.flags();
    if (!(flags & py::array::c_style) || !(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) return false;
    // NumPy writes native order as '=' (or '|' for one byte); an explicit '<'
    // or '>' can still be native.
    const char order = a.dtype().byteorder();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return order != '<';
#else
    return order != '>';
#endif
}

py::array kernel_copy(const py::array& a, const py::dtype& native) {
    py::array out(native, std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
    // np.copyto reads any layout, alignment and byte order; "equiv" allows the
    // byte swap and nothing else.
    py::module_::import("numpy").attr("copyto")(out, a, py::arg("casting") = "equiv");
    py::detail::loader_life_support::add_patient(out);
    return out;
}

namespace {
bool fork_warned = false;   // guarded by the GIL
}  // namespace

void note_fork_warning_given() { fork_warned = true; }

void warn_if_fork_limited() {
    if (fork_warned || !rnnkit::threads_limited_by_fork()) return;
    fork_warned = true;
    if (PyErr_WarnEx(PyExc_RuntimeWarning,
                     "rnnkit: this process was forked after a multi-threaded rnnkit call; GCC's OpenMP "
                     "runtime (libgomp) cannot start threads in such a child, so rnnkit runs every call "
                     "here on 1 thread (results are bitwise the same). Use the 'spawn' or 'forkserver' "
                     "start method for multi-threaded workers (docs/install.md).",
                     1) != 0)
        throw py::error_already_set();
}

const int64_t* lengths_input(py::handle obj, int64_t T, int64_t N) {
    if (py::isinstance<py::array>(obj) && !has_dtype_of<int64_t>(py::reinterpret_borrow<py::array>(obj)))
        throw py::type_error("lengths must have dtype int64, got " +
                             std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype())));
    const int64_t* p = input<int64_t>(obj, "lengths", {N});
    for (int64_t n = 0; n < N; ++n)
        if (p[n] < 0 || p[n] > T)
            throw py::value_error("lengths[" + std::to_string(n) + "] = " + std::to_string(p[n]) +
                                  " is outside 0..T = 0.." + std::to_string(T));
    return p;
}

Act parse_act(const std::string& nonlinearity) {
    if (nonlinearity == "tanh") return Act::tanh;
    if (nonlinearity == "relu") return Act::relu;
    throw py::value_error("nonlinearity must be 'tanh' or 'relu', got '" + nonlinearity + "'");
}

namespace {

bool is_f64(py::handle x, const char* name) {
    if (!py::isinstance<py::array>(x)) throw py::type_error(std::string(name) + " must be a numpy.ndarray");
    const auto a = py::reinterpret_borrow<py::array>(x);
    if (has_dtype_of<double>(a)) return true;
    if (has_dtype_of<float>(a)) return false;
    throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " +
                         std::string(py::str(py::reinterpret_borrow<py::array>(x).dtype())));
}

// H from w_hh ([G*H, H], or IndRNN's [H]), checked against G.
template <class Real>
int64_t hidden_size(Cell cell, py::handle w_hh) {
    const int64_t G = rnnkit::gates_of(cell);
    if (cell == Cell::indrnn) {
        const auto s = checked_shape<Real>(w_hh, "w_hh", 1);
        if (s[0] < 1) throw py::value_error("w_hh must have H >= 1");
        return s[0];
    }
    const auto s = checked_shape<Real>(w_hh, "w_hh", 2);
    if (s[1] < 1 || s[0] != G * s[1])
        throw py::value_error("w_hh must have shape (" + std::to_string(G) + "*H, H), got " + shape_str(s));
    return s[1];
}

template <class Real>
py::tuple forward_typed(Cell cell, const ForwardArgs& a) {
    const auto xs = checked_shape<Real>(a.x, "x", 3);
    const int64_t T = xs[0], N = xs[1], C = xs[2];
    if (T < 1 || N < 1 || C < 1) throw py::value_error("x must have T, N and C all >= 1, got " + shape_str(xs));
    const int64_t H = hidden_size<Real>(cell, a.w_hh), G = rnnkit::gates_of(cell), GH = G * H;
    const bool lstm = cell == Cell::lstm, gru = cell == Cell::gru;

    rnnkit::ForwardIO<Real> io{};
    io.x = input<Real>(a.x, "x", {T, N, C});
    io.h0 = input<Real>(a.h0, "h0", {N, H});
    io.c0 = lstm ? input<Real>(a.c0, "c0", {N, H}) : nullptr;
    io.w_ih = input<Real>(a.w_ih, "w_ih", {GH, C});
    io.w_hh = cell == Cell::indrnn ? input<Real>(a.w_hh, "w_hh", {H}) : input<Real>(a.w_hh, "w_hh", {GH, H});
    io.b_ih = input<Real>(a.b_ih, "b_ih", {GH});
    io.b_hh = input<Real>(a.b_hh, "b_hh", {GH});
    io.lengths = lengths_input(a.lengths, T, N);
    io.reverse = a.reverse;
    io.act = a.act;
    if (a.weights < 0 || a.weights > 2)
        throw py::value_error("weights must be 0 (by shape), 1 (in place) or 2 (packed), got " +
                              std::to_string(a.weights));
    io.weights = a.weights;
    warn_if_fork_limited();

    auto y = empty<Real>({T, N, H});
    auto h_n = empty<Real>({N, H});
    py::array_t<Real> c_n, h, c, tanh_c, gates, hn;
    io.y = y.mutable_data();
    io.h_n = h_n.mutable_data();
    if (lstm) {
        c_n = empty<Real>({N, H});
        io.c_n = c_n.mutable_data();
    }
    py::object cache = py::none();
    if (a.training) {
        py::dict d;
        h = empty<Real>({T, N, H});
        io.h = h.mutable_data();
        d["h"] = h;
        if (lstm) {
            c = empty<Real>({T, N, H});
            tanh_c = empty<Real>({T, N, H});
            io.c = c.mutable_data();
            io.tanh_c = tanh_c.mutable_data();
            d["c"] = c;
            d["tanh_c"] = tanh_c;
        }
        if (lstm || gru) {
            gates = empty<Real>({T, N, GH});
            io.gates = gates.mutable_data();
            d["gates"] = gates;
        }
        if (gru) {
            hn = empty<Real>({T, N, H});
            io.hn = hn.mutable_data();
            d["hn"] = hn;
        }
        cache = d;
    }
    {
        py::gil_scoped_release release;
        rnnkit::forward<Real>(cell, {T, N, C, H}, io);
    }
    if (lstm) return py::make_tuple(y, h_n, c_n, cache);
    return py::make_tuple(y, h_n, cache);
}

// An output array the caller passed: exactly Real, `shape`, C-contiguous,
// aligned, native order and writeable (no copy: the kernel writes into it).
template <class Real>
py::array_t<Real> output(py::handle obj, const char* name, const std::vector<int64_t>& shape) {
    const auto got = checked_shape<Real>(obj, name, static_cast<int>(shape.size()));
    if (got != shape)
        throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " + shape_str(got));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!kernel_ready(a) || !a.writeable())
        throw py::value_error(std::string(name) + " must be C-contiguous, aligned, native-order and writeable");
    return py::reinterpret_borrow<py::array_t<Real>>(obj);
}

template <class Real>
py::tuple backward_typed(Cell cell, const BackwardArgs& a) {
    const auto xs = checked_shape<Real>(a.x, "x", 3);
    const int64_t T = xs[0], N = xs[1], C = xs[2];
    if (T < 1 || N < 1 || C < 1) throw py::value_error("x must have T, N and C all >= 1, got " + shape_str(xs));
    const int64_t H = hidden_size<Real>(cell, a.w_hh), G = rnnkit::gates_of(cell), GH = G * H;
    const bool lstm = cell == Cell::lstm, gru = cell == Cell::gru;

    rnnkit::BackwardIO<Real> io{};
    io.dy = input<Real>(a.dy, "dy", {T, N, H});
    io.dh_n = input<Real>(a.dh_n, "dh_n", {N, H});
    io.dc_n = lstm ? input<Real>(a.dc_n, "dc_n", {N, H}) : nullptr;
    io.x = input<Real>(a.x, "x", {T, N, C});
    io.h0 = input<Real>(a.h0, "h0", {N, H});
    io.c0 = lstm ? input<Real>(a.c0, "c0", {N, H}) : nullptr;
    io.w_ih = input<Real>(a.w_ih, "w_ih", {GH, C});
    io.w_hh = cell == Cell::indrnn ? input<Real>(a.w_hh, "w_hh", {H}) : input<Real>(a.w_hh, "w_hh", {GH, H});
    io.lengths = lengths_input(a.lengths, T, N);
    io.reverse = a.reverse;
    io.act = a.act;
    io.h = input<Real>(a.h, "h", {T, N, H});
    io.c = lstm ? input<Real>(a.c, "c", {T, N, H}) : nullptr;
    io.tanh_c = lstm ? input<Real>(a.tanh_c, "tanh_c", {T, N, H}) : nullptr;
    io.gates = lstm || gru ? input<Real>(a.gates, "gates", {T, N, GH}) : nullptr;
    io.hn = gru ? input<Real>(a.hn, "hn", {T, N, H}) : nullptr;
    warn_if_fork_limited();

    py::array_t<Real> dx, dw_ih, dw_hh, db_ih, db_hh;
    const std::vector<int64_t> dw_hh_shape =
        cell == Cell::indrnn ? std::vector<int64_t>{H} : std::vector<int64_t>{GH, H};
    if (a.out.is_none()) {
        dx = empty<Real>({T, N, C});
        dw_ih = empty<Real>({GH, C});
        dw_hh = cell == Cell::indrnn ? empty<Real>({H}) : empty<Real>({GH, H});
        db_ih = empty<Real>({GH});
        db_hh = empty<Real>({GH});
    } else {
        if (!py::isinstance<py::tuple>(a.out) || py::len(a.out) != 5)
            throw py::type_error("out must be None or a tuple (dx, dw_ih, dw_hh, db_ih, db_hh)");
        const auto t = py::reinterpret_borrow<py::tuple>(a.out);
        dx = output<Real>(t[0], "out[0] (dx)", {T, N, C});
        dw_ih = output<Real>(t[1], "out[1] (dw_ih)", {GH, C});
        dw_hh = output<Real>(t[2], "out[2] (dw_hh)", dw_hh_shape);
        db_ih = output<Real>(t[3], "out[3] (db_ih)", {GH});
        db_hh = output<Real>(t[4], "out[4] (db_hh)", {GH});
        io.accumulate = true;
    }
    auto dh0 = empty<Real>({N, H});
    py::array_t<Real> dc0;
    io.dx = dx.mutable_data();
    io.dh0 = dh0.mutable_data();
    if (lstm) {
        dc0 = empty<Real>({N, H});
        io.dc0 = dc0.mutable_data();
    }
    io.dw_ih = dw_ih.mutable_data();
    io.dw_hh = dw_hh.mutable_data();
    io.db_ih = db_ih.mutable_data();
    io.db_hh = db_hh.mutable_data();
    {
        py::gil_scoped_release release;
        rnnkit::backward<Real>(cell, {T, N, C, H}, io);
    }
    if (lstm) return py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh);
    return py::make_tuple(dx, dh0, dw_ih, dw_hh, db_ih, db_hh);
}

}  // namespace

py::tuple forward(Cell cell, const ForwardArgs& a) {
    return is_f64(a.x, "x") ? forward_typed<double>(cell, a) : forward_typed<float>(cell, a);
}

py::tuple backward(Cell cell, const BackwardArgs& a) {
    return is_f64(a.x, "x") ? backward_typed<double>(cell, a) : backward_typed<float>(cell, a);
}

}  // namespace rnnkit_py
