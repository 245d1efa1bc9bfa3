// Vec<float> and Vec<double> for the x86-64 baseline (SSE2): 4 floats or 2
// doubles per register, 16 registers, no FMA. The baseline translation unit
// (isa_scalar.cpp) runs its kernels on these on x86-64, and on Scalar<Real>
// elsewhere. Every lane computes exactly what Scalar<Real> computes in that
// TU (vec_scalar.h): fma(a, b, c) is a*b rounded, then + c rounded, since the
// baseline has no fused multiply-add; min and max return the second operand
// when either is NaN. So the vector lanes and the Scalar tails of one loop
// agree bit for bit, as they do on AVX2.
// Included only by csrc/dispatch/isa_scalar.cpp, inside namespace rnnkit::scalar.
#pragma once

#include <emmintrin.h>

#include "kernels/vec_scalar.h"

namespace rnnkit {
namespace RNNKIT_ISA {

template <class Real> struct Sse2;

template <>
struct Sse2<float> {
    using T = float;
    using Mask = __m128;
    static constexpr int W = 4;
    __m128 v;

    static Sse2 load(const float* p) { return {_mm_load_ps(p)}; }
    static Sse2 loadu(const float* p) { return {_mm_loadu_ps(p)}; }
    static Sse2 set1(float x) { return {_mm_set1_ps(x)}; }
    static Sse2 zero() { return {_mm_setzero_ps()}; }
    void store(float* p) const { _mm_store_ps(p, v); }
    void storeu(float* p) const { _mm_storeu_ps(p, v); }

    friend Sse2 operator+(Sse2 a, Sse2 b) { return {_mm_add_ps(a.v, b.v)}; }
    friend Sse2 operator-(Sse2 a, Sse2 b) { return {_mm_sub_ps(a.v, b.v)}; }
    friend Sse2 operator*(Sse2 a, Sse2 b) { return {_mm_mul_ps(a.v, b.v)}; }
    friend Sse2 operator/(Sse2 a, Sse2 b) { return {_mm_div_ps(a.v, b.v)}; }
    friend Sse2 operator-(Sse2 a) { return {_mm_xor_ps(a.v, _mm_set1_ps(-0.0f))}; }
    friend Sse2 fma(Sse2 a, Sse2 b, Sse2 c) { return {_mm_add_ps(_mm_mul_ps(a.v, b.v), c.v)}; }
    friend Sse2 fnma(Sse2 a, Sse2 b, Sse2 c) { return fma(-a, b, c); }
    friend Sse2 min(Sse2 a, Sse2 b) { return {_mm_min_ps(a.v, b.v)}; }
    friend Sse2 max(Sse2 a, Sse2 b) { return {_mm_max_ps(a.v, b.v)}; }
    friend Sse2 abs(Sse2 a) { return {_mm_andnot_ps(_mm_set1_ps(-0.0f), a.v)}; }
    friend Mask lt(Sse2 a, Sse2 b) { return _mm_cmplt_ps(a.v, b.v); }
    friend Mask gt(Sse2 a, Sse2 b) { return _mm_cmpgt_ps(a.v, b.v); }
    friend Mask isnan(Sse2 a) { return _mm_cmpunord_ps(a.v, a.v); }
    friend Sse2 select(Mask m, Sse2 a, Sse2 b) { return {_mm_or_ps(_mm_and_ps(m, a.v), _mm_andnot_ps(m, b.v))}; }
    friend Sse2 shift_into_exponent(Sse2 a) {
        return {_mm_castsi128_ps(_mm_slli_epi32(_mm_castps_si128(a.v), 23))};
    }
};

template <>
struct Sse2<double> {
    using T = double;
    using Mask = __m128d;
    static constexpr int W = 2;
    __m128d v;

    static Sse2 load(const double* p) { return {_mm_load_pd(p)}; }
    static Sse2 loadu(const double* p) { return {_mm_loadu_pd(p)}; }
    static Sse2 set1(double x) { return {_mm_set1_pd(x)}; }
    static Sse2 zero() { return {_mm_setzero_pd()}; }
    void store(double* p) const { _mm_store_pd(p, v); }
    void storeu(double* p) const { _mm_storeu_pd(p, v); }

    friend Sse2 operator+(Sse2 a, Sse2 b) { return {_mm_add_pd(a.v, b.v)}; }
    friend Sse2 operator-(Sse2 a, Sse2 b) { return {_mm_sub_pd(a.v, b.v)}; }
    friend Sse2 operator*(Sse2 a, Sse2 b) { return {_mm_mul_pd(a.v, b.v)}; }
    friend Sse2 operator/(Sse2 a, Sse2 b) { return {_mm_div_pd(a.v, b.v)}; }
    friend Sse2 operator-(Sse2 a) { return {_mm_xor_pd(a.v, _mm_set1_pd(-0.0))}; }
    friend Sse2 fma(Sse2 a, Sse2 b, Sse2 c) { return {_mm_add_pd(_mm_mul_pd(a.v, b.v), c.v)}; }
    friend Sse2 fnma(Sse2 a, Sse2 b, Sse2 c) { return fma(-a, b, c); }
    friend Sse2 min(Sse2 a, Sse2 b) { return {_mm_min_pd(a.v, b.v)}; }
    friend Sse2 max(Sse2 a, Sse2 b) { return {_mm_max_pd(a.v, b.v)}; }
    friend Sse2 abs(Sse2 a) { return {_mm_andnot_pd(_mm_set1_pd(-0.0), a.v)}; }
    friend Mask lt(Sse2 a, Sse2 b) { return _mm_cmplt_pd(a.v, b.v); }
    friend Mask gt(Sse2 a, Sse2 b) { return _mm_cmpgt_pd(a.v, b.v); }
    friend Mask isnan(Sse2 a) { return _mm_cmpunord_pd(a.v, a.v); }
    friend Sse2 select(Mask m, Sse2 a, Sse2 b) { return {_mm_or_pd(_mm_and_pd(m, a.v), _mm_andnot_pd(m, b.v))}; }
    friend Sse2 shift_into_exponent(Sse2 a) {
        return {_mm_castsi128_pd(_mm_slli_epi64(_mm_castpd_si128(a.v), 52))};
    }
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
