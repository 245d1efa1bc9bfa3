// _core's runtime controls: the ISA in use, threads, the kernels' own math
// (for tests against NumPy) and the counters that tests use to check one
// parallel region per call, one barrier per step and no per-step allocation.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "rnnkit/rnnkit.h"

namespace py = pybind11;

namespace {

template <class Real>
py::array_t<Real> math(rnnkit::MathFn fn, const py::array_t<Real, py::array::c_style>& x) {
    py::array_t<Real> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    const Real* in = x.data();
    Real* out = y.mutable_data();
    const int64_t n = x.size();
    {
        py::gil_scoped_release release;
        rnnkit::vector_math<Real>(fn, in, out, n);
    }
    return y;
}

rnnkit::MathFn math_fn(const std::string& name) {
    if (name == "exp") return rnnkit::MathFn::exp;
    if (name == "tanh") return rnnkit::MathFn::tanh;
    if (name == "sigmoid") return rnnkit::MathFn::sigmoid;
    throw py::value_error("math function must be 'exp', 'tanh' or 'sigmoid', got '" + name + "'");
}

}  // namespace

void init_runtime(py::module_& m) {
    m.def("get_isa", &rnnkit::isa, "The instruction set the kernels use now: 'avx512', 'avx2' or 'scalar'.");
    m.def("set_isa", &rnnkit::set_isa, py::arg("name"),
          "Use the kernels of one ISA; ValueError if unknown or the CPU lacks it.");
    m.def("supported_isas", &rnnkit::supported_isas, "The ISAs this build and CPU can run, best first.");
    m.def("get_num_threads", &rnnkit::num_threads, "Threads per kernel call.");
    m.def("set_num_threads", &rnnkit::set_num_threads, py::arg("n"), "Threads per kernel call (n >= 1).");
    m.def("workspace_cache_bytes", &rnnkit::workspace_cached_bytes,
          "Bytes of large workspaces kept for reuse by later calls.");
    m.def("release_workspace_cache", &rnnkit::release_workspace_cache,
          "Free every workspace kept for reuse.");
    m.def(
        "core_round_trip_ns",
        []() -> py::object {
            double ns;
            {
                py::gil_scoped_release release;
                ns = rnnkit::core_round_trip_ns();
            }
            return ns < 0 ? py::object(py::none()) : py::object(py::float_(ns));
        },
        "Round trip of a cache line between the first two CPUs this process may use, in ns "
        "(median of 5 batches of 20,000), or None where it cannot be measured. What a "
        "team's per-step barrier costs at least.");
    m.def(
        "vector_math",
        [](const std::string& name, py::array x) -> py::array {
            const auto fn = math_fn(name);
            if (py::isinstance<py::array_t<float>>(x))
                return math<float>(fn, py::array_t<float, py::array::c_style>::ensure(x));
            if (py::isinstance<py::array_t<double>>(x))
                return math<double>(fn, py::array_t<double, py::array::c_style>::ensure(x));
            throw py::type_error("x must have dtype float32 or float64");
        },
        py::arg("name"), py::arg("x"), "The kernels' own exp, tanh or sigmoid, elementwise (tests).");
    m.def("counters", [] {
        const auto c = rnnkit::counters();
        py::dict d;
        d["parallel_regions"] = c.parallel_regions;
        d["barriers"] = c.barriers;
        d["workspace_allocations"] = c.workspace_allocations;
        d["last_team_size"] = c.last_team_size;
        return d;
    }, "Parallel regions, barriers and workspace allocations since the process started (tests).");
}
