// CMake-only check of the kernels' vectorised exp, tanh and sigmoid on every
// ISA this CPU supports, against long double libm, in units in the last
// place. The bounds are the ones stated in csrc/kernels/vecmath.h.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "rnnkit/rnnkit.h"

namespace {

template <class Real>
long double ulp_error(Real got, long double want) {
    if (std::isnan(want)) return std::isnan(got) ? 0 : 1e30L;
    if (std::isinf(want)) return got == want ? 0 : 1e30L;
    // ulp of the exact result, at least the smallest normal's (denormals are flushed in kernels)
    const long double a = std::max(std::fabs(want), (long double)std::numeric_limits<Real>::min());
    int e;
    std::frexp(a, &e);
    const long double ulp = std::ldexp(1.0L, e - std::numeric_limits<Real>::digits);
    return std::fabs((long double)got - want) / ulp;
}

template <class Real>
int check(const std::string& isa, rnnkit::MathFn fn, const char* name, Real lo, Real hi, double bound) {
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> uni(lo, hi);
    std::vector<Real> x(20011), y(x.size());
    for (auto& v : x) v = static_cast<Real>(uni(rng));
    x[0] = 0;
    x[1] = static_cast<Real>(1e-6);
    x[2] = static_cast<Real>(-1e-6);
    rnnkit::vector_math<Real>(fn, x.data(), y.data(), static_cast<int64_t>(x.size()));
    long double worst = 0;
    Real at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const long double xi = x[i];
        const long double want = fn == rnnkit::MathFn::exp    ? std::exp(xi)
                                 : fn == rnnkit::MathFn::tanh ? std::tanh(xi)
                                                              : 1.0L / (1.0L + std::exp(-xi));
        // results below the smallest normal are flushed: skip them
        if (std::fabs(want) < std::numeric_limits<Real>::min() && want != 0) continue;
        const long double err = ulp_error(y[i], want);
        if (err > worst) {
            worst = err;
            at = x[i];
        }
    }
    const bool ok = worst <= bound;
    std::printf("%-7s %-8s %-6s max %.2Lf ulp (at %.9g) bound %.1f %s\n", isa.c_str(), name,
                sizeof(Real) == 4 ? "f32" : "f64", worst, (double)at, bound, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}

}  // namespace

int main() {
    int failures = 0;
    for (const auto& isa : rnnkit::supported_isas()) {
        rnnkit::set_isa(isa);
        failures += check<float>(isa, rnnkit::MathFn::exp, "exp", -87.0f, 88.0f, 2);
        failures += check<double>(isa, rnnkit::MathFn::exp, "exp", -700.0, 700.0, 2);
        failures += check<float>(isa, rnnkit::MathFn::tanh, "tanh", -10.0f, 10.0f, 3);
        failures += check<double>(isa, rnnkit::MathFn::tanh, "tanh", -20.0, 20.0, 3);
        failures += check<float>(isa, rnnkit::MathFn::tanh, "tanh", -0.1f, 0.1f, 3);
        failures += check<double>(isa, rnnkit::MathFn::tanh, "tanh", -0.1, 0.1, 3);
        failures += check<float>(isa, rnnkit::MathFn::sigmoid, "sigmoid", -80.0f, 30.0f, 3);
        failures += check<double>(isa, rnnkit::MathFn::sigmoid, "sigmoid", -700.0, 40.0, 3);
    }
    return failures == 0 ? 0 : 1;
}
