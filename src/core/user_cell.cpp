// _core.UserWeight, user_gemm_tn, user_colsum, user_math, user_math_grad: the
// native GEMMs and pointwise helpers behind rnnkit.Recurrent (cells written in
// Python, rnnkit.cells). Not a cell: the cells' step math stays in Python.
// Arguments are checked here with the GIL held (dtype, 1-D or 2-D with a
// contiguous last axis, shapes, writable and non-overlapping outputs), then
// the GIL is released around the C++ call only. Outputs are the caller's
// preallocated arrays (out=), so a time step allocates nothing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "rnnkit/rnnkit.h"
#include "rnnkit/user_cell.h"

namespace py = pybind11;

namespace {

// A 1-D or 2-D array as rows of a contiguous last axis: data, rows, cols and
// the row stride in elements.
struct Mat {
    char* data;
    int64_t rows, cols, ld;
    int64_t itemsize;
    const char* begin() const { return data; }
    const char* end() const { return data + ((rows - 1) * ld + cols) * itemsize; }
};

std::string dims(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// The same dtype as NumPy counts it (native byte order; identity of dtype
// objects is not guaranteed).
bool same_dtype(py::handle obj, const py::dtype& dtype) {
    return dtype.itemsize() == 8 ? py::isinstance<py::array_t<double>>(obj) : py::isinstance<py::array_t<float>>(obj);
}

Mat as_mat(py::handle obj, const char* name, py::dtype dtype, bool writable) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!same_dtype(obj, dtype))
        throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(dtype)) + ", got " +
                             std::string(py::str(a.dtype())));
    if (a.ndim() != 1 && a.ndim() != 2)
        throw py::value_error(std::string(name) + " must be 1-D or 2-D, got shape " + dims(a));
    const int64_t item = a.itemsize();
    Mat m{static_cast<char*>(const_cast<void*>(a.data())), a.ndim() == 2 ? a.shape(0) : 1,
          a.shape(a.ndim() - 1), 0, item};
    if (m.rows == 0 || m.cols == 0) throw py::value_error(std::string(name) + " must not be empty, got shape " + dims(a));
    const int64_t s_last = a.strides(a.ndim() - 1);
    if (m.cols > 1 && s_last != item)
        throw py::value_error(std::string(name) + " must have a contiguous last axis (stride " + std::to_string(item) +
                              " bytes), got stride " + std::to_string(s_last));
    const int64_t s_row = a.ndim() == 2 ? a.strides(0) : m.cols * item;
    if (m.rows > 1 && (s_row < m.cols * item || s_row % item != 0))
        throw py::value_error(std::string(name) + " must have non-overlapping rows of whole elements, got row stride " +
                              std::to_string(s_row) + " bytes");
    m.ld = m.rows > 1 ? s_row / item : m.cols;
    if (writable && !a.writeable()) throw py::value_error(std::string(name) + " must be writable");
    return m;
}

void require_shape(const Mat& m, const char* name, int64_t rows, int64_t cols) {
    if (m.rows != rows || m.cols != cols)
        throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                              std::to_string(cols) + "), got (" + std::to_string(m.rows) + ", " +
                              std::to_string(m.cols) + ")");
}

void require_disjoint(const Mat& out, const Mat& in, const char* out_name, const char* in_name) {
    if (out.begin() < in.end() && in.begin() < out.end())
        throw py::value_error(std::string(out_name) + " must not share memory with " + in_name);
}

// Aligned, kept-block memory for packed panels (rnnkit::array_alloc).
struct Buffer {
    void* p = nullptr;
    std::size_t bytes = 0;
    Buffer() = default;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { release(); }
    void release() {
        if (p) rnnkit::array_free(p, bytes);
        p = nullptr;
        bytes = 0;
    }
    void resize(std::size_t n) {
        release();
        p = rnnkit::array_alloc(n ? n : 64);
        bytes = n ? n : 64;
    }
};

// A weight w [R, K], copied at construction and packed (once per ISA, on first
// use) for out = a @ w.T (matmul_t) and out = a @ w (matmul). Python keeps one
// per weight for a whole sequence: the steps reuse the packed panels.
class UserWeight {
public:
    explicit UserWeight(py::handle w) {
        if (!py::isinstance<py::array>(w))
            throw py::type_error("w must be a numpy.ndarray, got " +
                                 std::string(py::str(py::type::of(w).attr("__name__"))));
        auto a = py::reinterpret_borrow<py::array>(w);
        if (py::isinstance<py::array_t<float>>(w))
            double_ = false;
        else if (py::isinstance<py::array_t<double>>(w))
            double_ = true;
        else
            throw py::type_error("w must have dtype float32 or float64, got " + std::string(py::str(a.dtype())));
        if (a.ndim() != 2 || a.shape(0) < 1 || a.shape(1) < 1)
            throw py::value_error("w must be 2-D and non-empty, got shape " + dims(a));
        R_ = a.shape(0);
        K_ = a.shape(1);
        auto c = py::array::ensure(a, py::array::c_style);
        w_.resize(static_cast<std::size_t>(R_ * K_) * itemsize());
        std::memcpy(w_.p, c.data(), static_cast<std::size_t>(R_ * K_) * itemsize());
    }

    int64_t rows() const { return R_; }
    int64_t cols() const { return K_; }
    py::dtype dtype() const { return double_ ? py::dtype::of<double>() : py::dtype::of<float>(); }

    // out (+)= a @ w.T (+ bias): a [M, K], out [M, R], bias [R] or None.
    void matmul_t(py::handle a, py::handle out, py::handle bias, bool accumulate) {
        const Mat A = as_mat(a, "a", dtype(), false);
        const Mat O = as_mat(out, "out", dtype(), true);
        require_shape(A, "a", A.rows, K_);
        require_shape(O, "out", A.rows, R_);
        require_disjoint(O, A, "out", "a");
        const char* b = nullptr;
        if (!bias.is_none()) {
            const Mat B = as_mat(bias, "bias", dtype(), false);
            if (B.rows != 1 || B.cols != R_)
                throw py::value_error("bias must have shape (" + std::to_string(R_) + ",), got (" +
                                      std::to_string(B.rows) + ", " + std::to_string(B.cols) + ")");
            require_disjoint(O, B, "out", "bias");
            b = B.data;
        }
        run(true, A, O, b, accumulate);
    }

    // out (+)= a @ w: a [M, R], out [M, K].
    void matmul(py::handle a, py::handle out, bool accumulate) {
        const Mat A = as_mat(a, "a", dtype(), false);
        const Mat O = as_mat(out, "out", dtype(), true);
        require_shape(A, "a", A.rows, R_);
        require_shape(O, "out", A.rows, K_);
        require_disjoint(O, A, "out", "a");
        run(false, A, O, nullptr, accumulate);
    }

private:
    int64_t itemsize() const { return double_ ? 8 : 4; }

    template <class Real>
    void run_typed(bool t, const Mat& A, const Mat& O, const char* bias, bool accumulate) {
        // Each packing fills a fresh buffer, published (with the GIL held)
        // only once complete: two Python threads sharing a handle (one tape,
        // two backward calls) may both pack at first use, never into the
        // same buffer. Each call holds its own reference to the panels it
        // reads, so a repack after set_isa cannot free them under a GEMM.
        std::shared_ptr<Buffer>& slot = t ? t_ : n_;
        const void*& token = t ? t_token_ : n_token_;
        const void* now = rnnkit::user_isa_token();
        if (!slot || token != now) {
            const int64_t U = rnnkit::user_panel_width<Real>();
            const int64_t count = t ? (R_ + U - 1) / U * K_ * U : (K_ + U - 1) / U * R_ * U;
            auto fresh = std::make_shared<Buffer>();
            fresh->resize(static_cast<std::size_t>(count) * sizeof(Real));
            const Real* w = static_cast<const Real*>(w_.p);
            {
                py::gil_scoped_release release;
                if (t)
                    rnnkit::user_pack_t<Real>(w, R_, K_, static_cast<Real*>(fresh->p));
                else
                    rnnkit::user_pack_n<Real>(w, R_, K_, static_cast<Real*>(fresh->p));
            }
            slot = fresh;
            token = now;
        }
        const std::shared_ptr<Buffer> panels = slot;
        py::gil_scoped_release release;
        rnnkit::user_gemm<Real>(A.rows, t ? R_ : K_, t ? K_ : R_, reinterpret_cast<const Real*>(A.data), A.ld,
                                static_cast<const Real*>(panels->p), reinterpret_cast<const Real*>(bias),
                                reinterpret_cast<Real*>(O.data), O.ld, accumulate);
    }

    void run(bool t, const Mat& A, const Mat& O, const char* bias, bool accumulate) {
        if (double_)
            run_typed<double>(t, A, O, bias, accumulate);
        else
            run_typed<float>(t, A, O, bias, accumulate);
    }

    bool double_ = false;
    int64_t R_ = 0, K_ = 0;
    Buffer w_;
    std::shared_ptr<Buffer> t_, n_;
    const void* t_token_ = nullptr;
    const void* n_token_ = nullptr;
};

py::dtype float_dtype_of(py::handle obj, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto d = py::reinterpret_borrow<py::array>(obj).dtype();
    if (py::isinstance<py::array_t<double>>(obj)) return py::dtype::of<double>();
    if (py::isinstance<py::array_t<float>>(obj)) return py::dtype::of<float>();
    throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + std::string(py::str(d)));
}

// out = a.T @ b: a [M, R], b [M, Kc], out [R, Kc] (C-contiguous).
void gemm_tn(py::handle a, py::handle b, py::handle out) {
    const py::dtype dt = float_dtype_of(a, "a");
    const Mat A = as_mat(a, "a", dt, false), B = as_mat(b, "b", dt, false), O = as_mat(out, "out", dt, true);
    require_shape(B, "b", A.rows, B.cols);
    require_shape(O, "out", A.cols, B.cols);
    if (O.rows > 1 && O.ld != O.cols) throw py::value_error("out must be C-contiguous");
    require_disjoint(O, A, "out", "a");
    require_disjoint(O, B, "out", "b");
    py::gil_scoped_release release;
    if ((dt.itemsize() == 8))
        rnnkit::user_gemm_tn<double>(A.rows, A.cols, B.cols, reinterpret_cast<const double*>(A.data), A.ld,
                                     reinterpret_cast<const double*>(B.data), B.ld, reinterpret_cast<double*>(O.data));
    else
        rnnkit::user_gemm_tn<float>(A.rows, A.cols, B.cols, reinterpret_cast<const float*>(A.data), A.ld,
                                    reinterpret_cast<const float*>(B.data), B.ld, reinterpret_cast<float*>(O.data));
}

// out = a.sum(axis=0), rows in order: a [M, R], out [R].
void colsum(py::handle a, py::handle out) {
    const py::dtype dt = float_dtype_of(a, "a");
    const Mat A = as_mat(a, "a", dt, false), O = as_mat(out, "out", dt, true);
    if (O.rows != 1 || O.cols != A.cols)
        throw py::value_error("out must have shape (" + std::to_string(A.cols) + ",)");
    require_disjoint(O, A, "out", "a");
    py::gil_scoped_release release;
    if ((dt.itemsize() == 8))
        rnnkit::user_colsum<double>(A.rows, A.cols, reinterpret_cast<const double*>(A.data), A.ld,
                                    reinterpret_cast<double*>(O.data));
    else
        rnnkit::user_colsum<float>(A.rows, A.cols, reinterpret_cast<const float*>(A.data), A.ld,
                                   reinterpret_cast<float*>(O.data));
}

rnnkit::MathFn math_fn(const std::string& name) {
    if (name == "sigmoid") return rnnkit::MathFn::sigmoid;
    if (name == "tanh") return rnnkit::MathFn::tanh;
    if (name == "exp") return rnnkit::MathFn::exp;
    throw py::value_error("name must be 'sigmoid', 'tanh' or 'exp', got '" + name + "'");
}

// out = f(x), the kernels' own vectorised sigmoid/tanh/exp; out may be x.
void math(const std::string& name, py::handle x, py::handle out) {
    const auto fn = math_fn(name);
    const py::dtype dt = float_dtype_of(x, "x");
    const Mat X = as_mat(x, "x", dt, false), O = as_mat(out, "out", dt, true);
    require_shape(O, "out", X.rows, X.cols);
    const bool same = X.data == O.data && X.ld == O.ld;
    if (!same) require_disjoint(O, X, "out", "x (unless out is x)");
    py::gil_scoped_release release;
    for (int64_t r = 0; r < X.rows; ++r) {
        if ((dt.itemsize() == 8))
            rnnkit::vector_math<double>(fn, reinterpret_cast<const double*>(X.data) + r * X.ld,
                                        reinterpret_cast<double*>(O.data) + r * O.ld, X.cols);
        else
            rnnkit::vector_math<float>(fn, reinterpret_cast<const float*>(X.data) + r * X.ld,
                                       reinterpret_cast<float*>(O.data) + r * O.ld, X.cols);
    }
}

template <class Real>
void grad_rows(bool sigmoid, const Mat& Y, const Mat& D, const Mat& O) {
    for (int64_t r = 0; r < Y.rows; ++r) {
        const Real* y = reinterpret_cast<const Real*>(Y.data) + r * Y.ld;
        const Real* d = reinterpret_cast<const Real*>(D.data) + r * D.ld;
        Real* o = reinterpret_cast<Real*>(O.data) + r * O.ld;
        if (sigmoid)
            for (int64_t j = 0; j < Y.cols; ++j) o[j] = d[j] * (y[j] * (Real(1) - y[j]));
        else
            for (int64_t j = 0; j < Y.cols; ++j) o[j] = d[j] * (Real(1) - y[j] * y[j]);
    }
}

// out = dy * f'(.) from the saved output y: sigmoid y*(1-y), tanh 1-y*y.
// out may be dy or y (elementwise, same positions); otherwise disjoint.
void math_grad(const std::string& name, py::handle y, py::handle dy, py::handle out) {
    if (name != "sigmoid" && name != "tanh")
        throw py::value_error("name must be 'sigmoid' or 'tanh', got '" + name + "'");
    const py::dtype dt = float_dtype_of(y, "y");
    const Mat Y = as_mat(y, "y", dt, false), D = as_mat(dy, "dy", dt, false), O = as_mat(out, "out", dt, true);
    require_shape(D, "dy", Y.rows, Y.cols);
    require_shape(O, "out", Y.rows, Y.cols);
    if (!(O.data == D.data && O.ld == D.ld)) require_disjoint(O, D, "out", "dy (unless out is dy)");
    if (!(O.data == Y.data && O.ld == Y.ld)) require_disjoint(O, Y, "out", "y (unless out is y)");
    const bool sig = name == "sigmoid";
    py::gil_scoped_release release;
    if ((dt.itemsize() == 8))
        grad_rows<double>(sig, Y, D, O);
    else
        grad_rows<float>(sig, Y, D, O);
}

}  // namespace

void init_user_cell(py::module_& m) {
    // Choose the ISA before registering a class: a failed import (an RNNKIT_ISA
    // this CPU lacks) must fail the same way when Python retries it, and a
    // class registered by the first attempt would make the retry fail on that.
    rnnkit::isa();
    py::class_<UserWeight>(m, "UserWeight",
                           "A weight w [R, K] copied and packed once for out = a @ w.T and out = a @ w "
                           "(rnnkit.Recurrent keeps one per weight for a whole sequence).")
        .def(py::init<py::handle>(), py::arg("w"))
        .def_property_readonly("shape", [](const UserWeight& u) { return py::make_tuple(u.rows(), u.cols()); })
        .def_property_readonly("dtype", &UserWeight::dtype)
        .def("matmul_t", &UserWeight::matmul_t, py::arg("a"), py::arg("out"), py::arg("bias") = py::none(),
             py::arg("accumulate") = false, "out (+)= a @ w.T (+ bias); a [M, K], out [M, R].")
        .def("matmul", &UserWeight::matmul, py::arg("a"), py::arg("out"), py::arg("accumulate") = false,
             "out (+)= a @ w; a [M, R], out [M, K].");
    m.def("user_gemm_tn", &gemm_tn, py::arg("a"), py::arg("b"), py::arg("out"),
          "out = a.T @ b, one FMA chain per output over the rows in order.");
    m.def("user_colsum", &colsum, py::arg("a"), py::arg("out"), "out = a.sum(axis=0), rows in order.");
    m.def("user_math", &math, py::arg("name"), py::arg("x"), py::arg("out"),
          "out = sigmoid/tanh/exp(x) with the kernels' own vector math; out may be x.");
    m.def("user_math_grad", &math_grad, py::arg("name"), py::arg("y"), py::arg("dy"), py::arg("out"),
          "out = dy * f'(from the saved output y), f = sigmoid or tanh.");
}
