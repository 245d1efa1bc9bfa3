// Scalar<Real>: one lane. It is the readable spec of every vector op that the
// AVX2 and AVX-512 types implement, and the tail handler of every vector loop
// (vector loops cover n - n % W lanes, the same template at width 1 does the rest).
//
// Included once per ISA translation unit, inside namespace rnnkit::RNNKIT_ISA,
// so each ISA gets its own copy (no inline code is shared across ISAs: ODR).
// In a TU built with FMA, fma() is one fused instruction, exactly what the
// vector lanes do; in the baseline TU it is a*b + c (-ffp-contract=off keeps
// the compiler from fusing anything we did not ask for).
#pragma once

#ifndef RNNKIT_ISA
#error "include kernels/vec_scalar.h from an ISA translation unit (csrc/dispatch/isa_*.cpp)"
#endif

namespace rnnkit {
namespace RNNKIT_ISA {

// The integer type with a Real's width, for bit manipulation.
template <class Real> struct Bits;
template <> struct Bits<float> { using type = uint32_t; static constexpr int mantissa = 23; };
template <> struct Bits<double> { using type = uint64_t; static constexpr int mantissa = 52; };

template <class Real>
struct Scalar {
    using T = Real;
    using Mask = bool;
    static constexpr int W = 1;
    Real v;

    static Scalar load(const Real* p) { return {*p}; }
    static Scalar loadu(const Real* p) { return {*p}; }
    static Scalar set1(Real x) { return {x}; }
    static Scalar zero() { return {Real(0)}; }
    void store(Real* p) const { *p = v; }
    void storeu(Real* p) const { *p = v; }

    friend Scalar operator+(Scalar a, Scalar b) { return {a.v + b.v}; }
    friend Scalar operator-(Scalar a, Scalar b) { return {a.v - b.v}; }
    friend Scalar operator*(Scalar a, Scalar b) { return {a.v * b.v}; }
    friend Scalar operator/(Scalar a, Scalar b) { return {a.v / b.v}; }
    friend Scalar operator-(Scalar a) { return {-a.v}; }

    // a*b + c, rounded once where the ISA has FMA.
    friend Scalar fma(Scalar a, Scalar b, Scalar c) {
#ifdef __FMA__
        return {fused(a.v, b.v, c.v)};
#else
        return {a.v * b.v + c.v};
#endif
    }
    // c - a*b
    friend Scalar fnma(Scalar a, Scalar b, Scalar c) { return fma(-a, b, c); }

    // x86 semantics: when either operand is NaN, the second one is returned.
    friend Scalar min(Scalar a, Scalar b) { return {a.v < b.v ? a.v : b.v}; }
    friend Scalar max(Scalar a, Scalar b) { return {a.v > b.v ? a.v : b.v}; }
    friend Scalar abs(Scalar a) {  // clears the sign bit, as the vector types do
        typename Bits<Real>::type u;
        __builtin_memcpy(&u, &a.v, sizeof u);
        u &= ~(typename Bits<Real>::type(1) << (8 * sizeof(Real) - 1));
        Scalar r;
        __builtin_memcpy(&r.v, &u, sizeof u);
        return r;
    }

    friend Mask lt(Scalar a, Scalar b) { return a.v < b.v; }
    friend Mask gt(Scalar a, Scalar b) { return a.v > b.v; }
    friend Mask isnan(Scalar a) { return a.v != a.v; }
    // mask ? a : b, lane by lane
    friend Scalar select(Mask m, Scalar a, Scalar b) { return m ? a : b; }

    // The bits of a, as an integer, shifted left by the mantissa width, read
    // back as a Real: turns (magic + bias + k) into 2^k (see vecmath.h).
    friend Scalar shift_into_exponent(Scalar a) {
        typename Bits<Real>::type u;
        __builtin_memcpy(&u, &a.v, sizeof u);
        u <<= Bits<Real>::mantissa;
        Scalar r;
        __builtin_memcpy(&r.v, &u, sizeof u);
        return r;
    }

private:
    static float fused(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
    static double fused(double a, double b, double c) { return __builtin_fma(a, b, c); }
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
