// exp, expm1 (of non-positive arguments), tanh and sigmoid for any Vec type,
// written once over the ops of Scalar<Real> so that every ISA runs the same
// algorithm (and a vector lane and a scalar tail lane agree bit for bit where
// the ISA has FMA). Not a libm: no errno, no rounding modes other than the default.
//
// Algorithm (exp): k = round(x / ln2), r = x - k*ln2 in two parts (Cody-Waite),
// |r| <= ln2/2; e^r - 1 = r + r^2 * P(r) with P the Taylor series to r^7
// (float: remainder < 0.12 ulp) or r^13 (double: < 0.04 ulp); 2^k is built in
// the exponent bits. tanh(x) = sign(x) * -em / (2 + em), em = expm1(-2|x|), which
// has no cancellation near 0. sigmoid(x) = 1 / (1 + exp(-x)).
//
// Error bounds, measured against NumPy in extended precision (long double)
// by tests/test_native_math.py and csrc/tests/test_vecmath.cpp, in units in the
// last place of the result, over the ranges where the result is a normal number:
//   exp      <= 2 ulp   (x in [lo, hi]; exp = 0 below lo, +inf above hi;
//                         float lo, hi = -87.3, 88.3; double -708, 709)
//   tanh     <= 3 ulp
//   sigmoid  <= 3 ulp
// NaN in gives NaN out, +-inf give the limits.
#pragma once

// Forced inline: called from gate epilogues that hold a tile's values in
// registers, where a call would spill them (GCC otherwise keeps vtanh and
// vexp out of line: 10% of an LSTM step at N = 64, H = 256).
#ifndef RNNKIT_MATH_INLINE
#if defined(__GNUC__)
#define RNNKIT_MATH_INLINE inline __attribute__((always_inline))
#else
#define RNNKIT_MATH_INLINE inline
#endif
#endif

namespace rnnkit {
namespace RNNKIT_ISA {

template <class Real> struct MathConst;

template <>
struct MathConst<float> {
    static constexpr float log2e = 1.44269504088896341f;
    static constexpr float ln2_hi = 0.693359375f;        // few bits: k * ln2_hi is exact
    static constexpr float ln2_lo = -2.12194440e-4f;
    static constexpr float magic = 12582912.0f;          // 1.5 * 2^23: adding it rounds to an integer
    static constexpr float bias = 127.0f;
    static constexpr float exp_lo = -87.3f;              // exp(lo) ~ FLT_MIN; below, 0
    static constexpr float exp_hi = 88.3f;               // keeps k <= 127; above, +inf
    static constexpr float expm1_lo = -40.0f;            // expm1 is -1 to working precision below
    static constexpr int degree = 7;                     // e^r - 1 to r^degree
};

template <>
struct MathConst<double> {
    static constexpr double log2e = 1.44269504088896338700e+00;
    static constexpr double ln2_hi = 6.93147180369123816490e-01;  // fdlibm: 0x3fe62e42fee00000
    static constexpr double ln2_lo = 1.90821492927058770002e-10;
    static constexpr double magic = 6755399441055744.0;             // 1.5 * 2^52
    static constexpr double bias = 1023.0;
    static constexpr double exp_lo = -708.0;
    static constexpr double exp_hi = 709.0;
    static constexpr double expm1_lo = -40.0;
    static constexpr int degree = 13;
};

// 1/i! for i = 0..13: the Taylor coefficients of P(r) = (e^r - 1 - r) / r^2
// are c[2..degree]. Computed at compile time (i! is exact in Real up to 13!).
template <class Real>
struct InvFactorial {
    Real c[14] = {};
    constexpr InvFactorial() {
        Real f = 1;
        for (int i = 0; i < 14; ++i) {
            if (i > 1) f *= Real(i);
            c[i] = Real(1) / f;
        }
    }
};
template <class Real>
inline constexpr InvFactorial<Real> inv_factorial{};

// Split x (clamped so that k stays in range) into 2^k and e^r - 1.
template <class V>
RNNKIT_MATH_INLINE void exp_reduce(V x, V& two_k, V& em1_r) {
    using Real = typename V::T;
    using K = MathConst<Real>;
    const V magic = V::set1(K::magic);
    const V k = fma(x, V::set1(K::log2e), magic) - magic;   // round(x / ln2), ties to even
    V r = fnma(k, V::set1(K::ln2_hi), x);
    r = fnma(k, V::set1(K::ln2_lo), r);                      // |r| <= ln2/2
    V p = V::set1(inv_factorial<Real>.c[K::degree]);
#pragma GCC unroll 16
    for (int i = K::degree - 1; i >= 2; --i) p = fma(p, r, V::set1(inv_factorial<Real>.c[i]));
    em1_r = fma(p, r * r, r);                                // e^r - 1
    two_k = shift_into_exponent(k + V::set1(K::magic + K::bias));
}

// e^x
template <class V>
RNNKIT_MATH_INLINE V vexp(V x) {
    using Real = typename V::T;
    using K = MathConst<Real>;
    const V xc = max(min(x, V::set1(K::exp_hi)), V::set1(K::exp_lo));
    V two_k, em1_r;
    exp_reduce(xc, two_k, em1_r);
    V e = fma(two_k, em1_r, two_k);                          // 2^k * e^r
    e = select(gt(x, V::set1(K::exp_hi)), V::set1(__builtin_inf()), e);
    e = select(lt(x, V::set1(K::exp_lo)), V::zero(), e);
    return select(isnan(x), x, e);
}

// e^y - 1 for y <= 0 (the only case tanh needs), without cancellation near 0.
template <class V>
RNNKIT_MATH_INLINE V vexpm1_nonpositive(V y) {
    using Real = typename V::T;
    const V yc = max(y, V::set1(MathConst<Real>::expm1_lo));
    V two_k, em1_r;
    exp_reduce(yc, two_k, em1_r);
    return fma(two_k, em1_r, two_k - V::set1(Real(1)));     // 2^k e^r - 1; exact r branch when k = 0
}

template <class V>
RNNKIT_MATH_INLINE V vtanh(V x) {
    using Real = typename V::T;
    const V em = vexpm1_nonpositive(V::set1(Real(-2)) * abs(x));   // in (-1, 0]
    const V t = -em / (V::set1(Real(2)) + em);                      // tanh|x|
    const V signed_t = select(lt(x, V::zero()), -t, t);
    return select(isnan(x), x, signed_t);
}

template <class V>
RNNKIT_MATH_INLINE V vsigmoid(V x) {
    using Real = typename V::T;
    const V one = V::set1(Real(1));
    return one / (one + vexp(-x));
}

// relu propagates NaN, as np.maximum(a, 0) does.
template <class V>
RNNKIT_MATH_INLINE V vrelu(V x) {
    return select(lt(x, V::zero()), V::zero(), x);
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
