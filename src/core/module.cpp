// rnnkit._core: the one pybind11 module. This file only assembles it; each
// area of the binding lives in its own init_* function. Users never import
// _core directly: python/rnnkit re-exports what they need.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "rnnkit/rnnkit.h"

#ifdef RNNKIT_HAVE_OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace {

py::dict cpu_features_dict() {
    const auto& f = rnnkit::cpu_features();
    py::dict d;
    d["x86_64"] = f.x86_64;
    d["sse2"] = f.sse2;
    d["sse4_2"] = f.sse4_2;
    d["avx"] = f.avx;
    d["fma"] = f.fma;
    d["avx2"] = f.avx2;
    d["avx512f"] = f.avx512f;
    d["avx512dq"] = f.avx512dq;
    d["avx512bw"] = f.avx512bw;
    d["avx512vl"] = f.avx512vl;
    d["os_saves_ymm"] = f.os_saves_ymm;
    d["os_saves_zmm"] = f.os_saves_zmm;
    return d;
}

py::dict build_info() {
    const auto& f = rnnkit::cpu_features();
    py::dict d;
    d["version"] = RNNKIT_VERSION;
    d["compiler"] = RNNKIT_COMPILER;
#ifdef RNNKIT_HAVE_OPENMP
    d["openmp"] = py::int_(_OPENMP);
#else
    d["openmp"] = py::none();
#endif
    d["scalar_target"] = rnnkit::scalar_target();
    d["cpu_vendor"] = f.vendor;
    d["cpu_brand"] = f.brand;
    return d;
}

}  // namespace

void init_runtime(py::module_& m);
void init_rnn(py::module_& m);
void init_lstm(py::module_& m);
void init_gru(py::module_& m);
void init_indrnn(py::module_& m);
void init_user_cell(py::module_& m);
void init_rtrl(py::module_& m);

void init_cpu(py::module_& m) {
    m.def("cpu_features", &cpu_features_dict,
          "Features the CPU has and the OS enables (cpuid + XCR0), as a dict of bools.");
    m.def("build_info", &build_info, "Version, compiler and OpenMP version of this build.");
    m.def("has_avx2_fma", [] { return rnnkit::has_avx2_fma(rnnkit::cpu_features()); });
    m.def("has_avx512", [] { return rnnkit::has_avx512(rnnkit::cpu_features()); });
}

PYBIND11_MODULE(_core, m) {
    m.doc() = "rnnkit's native core (private: use the rnnkit package).";
    init_cpu(m);
    init_runtime(m);
    init_rnn(m);
    init_lstm(m);
    init_gru(m);
    init_indrnn(m);
    init_user_cell(m);
    init_rtrl(m);
    // Choose the ISA now, so that an RNNKIT_ISA this CPU lacks fails the import
    // with a clear message instead of the first call.
    rnnkit::isa();
}
