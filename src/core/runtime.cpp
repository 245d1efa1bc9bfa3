// _core's runtime controls: the ISA in use, threads, the kernels' own math
// (for tests against NumPy) and the counters that tests use to check one
// parallel region per call, one barrier per step and no per-step allocation.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "binding.h"
#include "rnnkit/rnnkit.h"

namespace py = pybind11;

namespace {

// Any ndarray of Real (any layout, alignment, byte order: copied first where
// the kernels could not read it as it is; see binding.h).
template <class Real>
py::array_t<Real> math(rnnkit::MathFn fn, py::array x) {
    if (!rnnkit_py::kernel_ready(x)) x = rnnkit_py::kernel_copy(x, py::dtype::of<Real>());
    py::array_t<Real> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    const Real* in = static_cast<const Real*>(x.data());
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

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }

// fma_peak's arguments, checked here so that each error names its argument.
rnnkit::FmaPeak fma_peak_checked(py::handle isa, py::handle threads, py::handle seconds, py::handle dtype) {
    if (!py::isinstance<py::str>(isa)) throw py::type_error("isa must be a str, got " + type_name(isa));
    if (!py::isinstance<py::int_>(threads) || py::isinstance<py::bool_>(threads))
        throw py::type_error("threads must be an int, got " + type_name(threads));
    long long n = 0;
    try {
        n = threads.cast<long long>();
    } catch (const py::cast_error&) {   // beyond 64 bits
        n = -1;
    }
    if (n < 1 || n > 1024)
        throw py::value_error("threads must be in 1..1024, got " + std::string(py::str(threads)));
    if (py::isinstance<py::bool_>(seconds) ||
        !(py::isinstance<py::int_>(seconds) || py::isinstance<py::float_>(seconds)))
        throw py::type_error("seconds must be a number, got " + type_name(seconds));
    const double s = seconds.cast<double>();
    if (!(s > 0.0 && s <= 60.0))
        throw py::value_error("seconds must be in (0, 60], got " + std::string(py::str(seconds)));
    py::dtype dt;
    try {
        dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
    } catch (const py::error_already_set&) {
        throw py::type_error("dtype must be float32 or float64, got " + std::string(py::repr(dtype)));
    }
    const bool f64 = dt.is(py::dtype::of<double>()) || dt.equal(py::dtype::of<double>());
    if (!f64 && !dt.equal(py::dtype::of<float>()))
        throw py::value_error("dtype must be float32 or float64, got " + std::string(py::str(dt)));
    const std::string name = isa.cast<std::string>();
    try {
        py::gil_scoped_release release;
        return rnnkit::fma_peak(name, f64, static_cast<int>(n), s);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string("isa: ") + e.what());
    }
}

}  // namespace

namespace {

// KernelParams <-> dict, field by field (the names of rnnkit/params.h).
py::dict params_dict(const rnnkit::KernelParams& p) {
    py::dict d;
    d["fwd_slice_bytes"] = p.fwd_slice_bytes;
    d["bwd_b_bytes"] = p.bwd_b_bytes;
    d["dx_a_bytes"] = p.dx_a_bytes;
    d["wg_b_bytes"] = p.wg_b_bytes;
    d["wg_a_bytes"] = p.wg_a_bytes;
    return d;
}

void set_params(const py::dict& d, const std::string& source) {
    rnnkit::KernelParams p = rnnkit::kernel_params();
    int64_t* fields[] = {&p.fwd_slice_bytes, &p.bwd_b_bytes, &p.dx_a_bytes, &p.wg_b_bytes, &p.wg_a_bytes};
    const char* names[] = {"fwd_slice_bytes", "bwd_b_bytes", "dx_a_bytes", "wg_b_bytes", "wg_a_bytes"};
    for (auto item : d) {
        const std::string key = py::str(item.first);
        bool known = false;
        for (int i = 0; i < 5; ++i)
            if (key == names[i]) {
                if (!py::isinstance<py::int_>(item.second) || py::isinstance<py::bool_>(item.second))
                    throw py::type_error("kernel parameter " + key + " must be an int, got " +
                                         std::string(py::str(py::type::of(item.second).attr("__name__"))));
                *fields[i] = item.second.cast<int64_t>();
                known = true;
            }
        if (!known)
            throw py::value_error("unknown kernel parameter '" + key +
                                  "'; known: fwd_slice_bytes, bwd_b_bytes, dx_a_bytes, wg_b_bytes, wg_a_bytes");
    }
    try {
        rnnkit::set_kernel_params(p, source);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

}  // namespace

void init_runtime(py::module_& m) {
    m.def("kernel_params", [] { return params_dict(rnnkit::kernel_params()); },
          "The kernels' blocking parameters in use (cache budgets in bytes), as a dict.");
    m.def("cpuid_params", [] { return params_dict(rnnkit::cpuid_params()); },
          "The parameters derived from the CPU's cache sizes alone.");
    m.def("kernel_params_source", &rnnkit::kernel_params_source, "Where the parameters in use came from.");
    m.def("set_kernel_params", &set_params, py::arg("params"), py::arg("source") = "set",
          "Replace some or all parameters (dict of field: bytes); results never depend on them.");
    m.def("cache_sizes", [] {
        const rnnkit::CacheSizes& c = rnnkit::cache_sizes();
        py::dict d;
        d["l1d"] = c.l1d;
        d["l2"] = c.l2;
        d["l3"] = c.l3;
        return d;
    }, "Bytes of L1d, L2 (per core) and L3 (shared), from cpuid; 0 where unknown.");
    m.def("get_isa", &rnnkit::isa, "The instruction set the kernels use now: 'avx512', 'avx2' or 'scalar'.");
    m.def("set_isa", &rnnkit::set_isa, py::arg("name"),
          "Use the kernels of one ISA; ValueError if unknown or the CPU lacks it.");
    m.def("supported_isas", &rnnkit::supported_isas, "The ISAs this build and CPU can run, best first.");
    m.def("get_num_threads", &rnnkit::num_threads, "Threads per kernel call.");
    m.def("set_num_threads", &rnnkit::set_num_threads, py::arg("n"), "Threads per kernel call (n >= 1).");
    m.def("threads_limited_by_fork", &rnnkit::threads_limited_by_fork,
          "True in a child forked after a multi-threaded call: its calls run on 1 thread (libgomp).");
    m.def("note_fork_warning_given", &rnnkit_py::note_fork_warning_given,
          "rnnkit.set_num_threads warned about the forked child: calls need not warn again.");
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
        [](py::handle name, py::handle obj) -> py::array {
            // Plain handles, checked here: a clear TypeError for anything else.
            if (!py::isinstance<py::str>(name))
                throw py::type_error("name must be a str, got " +
                                     std::string(py::str(py::type::of(name).attr("__name__"))));
            const auto fn = math_fn(name.cast<std::string>());
            if (!py::isinstance<py::array>(obj))
                throw py::type_error("x must be a numpy.ndarray, got " +
                                     std::string(py::str(py::type::of(obj).attr("__name__"))));
            auto x = py::reinterpret_borrow<py::array>(obj);
            if (rnnkit_py::has_dtype_of<float>(x)) return math<float>(fn, x);
            if (rnnkit_py::has_dtype_of<double>(x)) return math<double>(fn, x);
            throw py::type_error("x must have dtype float32 or float64, got " + std::string(py::str(x.dtype())));
        },
        py::arg("name"), py::arg("x"), "The kernels' own exp, tanh or sigmoid, elementwise (tests).");
    m.def(
        "fma_peak",
        [](py::handle isa, py::handle threads, py::handle seconds, py::handle dtype) -> double {
            return fma_peak_checked(isa, threads, seconds, dtype).flops_per_s;
        },
        py::arg("isa"), py::arg("threads") = 1, py::arg("seconds") = 0.2, py::arg("dtype") = "float32",
        "Measured FMA peak of one ISA in FLOP/s of wall time: `threads` threads each run independent "
        "multiply-add chains on registers for `seconds` (2 FLOPs per multiply-add); fma_peak_info "
        "also gives the rate per CPU-second, which other load does not lower. Not a kernel: "
        "what rnnkit.bench's %FMA divides by. ValueError for an ISA unknown or missing on this CPU, "
        "threads outside 1..1024, seconds outside (0, 60], a dtype other than float32/float64.");
    m.def(
        "fma_peak_info",
        [](py::handle isa, py::handle threads, py::handle seconds, py::handle dtype) -> py::dict {
            const auto r = fma_peak_checked(isa, threads, seconds, dtype);
            py::dict d;
            d["flops_per_s"] = r.flops_per_s;
            d["flops_per_cpu_s"] = r.flops_per_cpu_s < 0 ? py::object(py::none()) : py::object(py::float_(r.flops_per_cpu_s));
            d["seconds"] = r.seconds;
            d["threads"] = r.threads;
            d["chains"] = r.chains;
            d["lanes"] = r.lanes;
            d["fused"] = r.fused;
            return d;
        },
        py::arg("isa"), py::arg("threads") = 1, py::arg("seconds") = 0.2, py::arg("dtype") = "float32",
        "fma_peak with the probe's description: a dict of flops_per_s (wall time), flops_per_cpu_s "
        "(per second of CPU time each thread got: other load does not lower it; None without that "
        "clock), seconds (the measured window), "
        "threads (the team run), chains and lanes (per thread) and fused (one FMA instruction per "
        "multiply-add; the baseline ISA has none).");
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
