// Vec<float> and Vec<double> for AVX-512 (F, DQ, BW, VL): 16 floats or 8
// doubles per register, 32 registers, masks in k registers. Every op mirrors
// Scalar<Real> (vec_scalar.h), the spec.
// Included only by csrc/dispatch/isa_avx512.cpp, inside namespace rnnkit::avx512.
#pragma once

#include "kernels/vec_scalar.h"

namespace rnnkit {
namespace RNNKIT_ISA {

template <class Real> struct Vec;

template <>
struct Vec<float> {
    using T = float;
    using Mask = __mmask16;
    static constexpr int W = 16;
    __m512 v;

    static Vec load(const float* p) { return {_mm512_load_ps(p)}; }
    static Vec loadu(const float* p) { return {_mm512_loadu_ps(p)}; }
    static Vec set1(float x) { return {_mm512_set1_ps(x)}; }
    static Vec zero() { return {_mm512_setzero_ps()}; }
    void store(float* p) const { _mm512_store_ps(p, v); }
    void storeu(float* p) const { _mm512_storeu_ps(p, v); }

    friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a) { return {_mm512_xor_ps(a.v, _mm512_set1_ps(-0.0f))}; }
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
    friend Vec fnma(Vec a, Vec b, Vec c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
    friend Vec abs(Vec a) { return {_mm512_andnot_ps(_mm512_set1_ps(-0.0f), a.v)}; }
    friend Mask lt(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
    friend Mask gt(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ); }
    friend Mask isnan(Vec a) { return _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q); }
    friend Vec select(Mask m, Vec a, Vec b) { return {_mm512_mask_blend_ps(m, b.v, a.v)}; }
    friend Vec shift_into_exponent(Vec a) {
        return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(a.v), 23))};
    }

    // dst[j*ldd + i] = src[i*lds + j] for i, j < 16 (weight packing: a copy,
    // so any order of shuffles gives the same bits).
    static void transpose16x16(const float* src, int64_t lds, float* dst, int64_t ldd) {
        __m512 r[16], t[16];
        for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
            const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
            r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
            r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
            r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
            r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
        }
        for (int h = 0; h < 16; h += 8)
            for (int i = 0; i < 4; ++i) {
                t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
                t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
            }
        for (int i = 0; i < 8; ++i) {
            r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
            r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        }
        for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
    }
};

template <>
struct Vec<double> {
    using T = double;
    using Mask = __mmask8;
    static constexpr int W = 8;
    __m512d v;

    static Vec load(const double* p) { return {_mm512_load_pd(p)}; }
    static Vec loadu(const double* p) { return {_mm512_loadu_pd(p)}; }
    static Vec set1(double x) { return {_mm512_set1_pd(x)}; }
    static Vec zero() { return {_mm512_setzero_pd()}; }
    void store(double* p) const { _mm512_store_pd(p, v); }
    void storeu(double* p) const { _mm512_storeu_pd(p, v); }

    friend Vec operator+(Vec a, Vec b) { return {_mm512_add_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_pd(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_pd(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm512_div_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a) { return {_mm512_xor_pd(a.v, _mm512_set1_pd(-0.0))}; }
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
    friend Vec fnma(Vec a, Vec b, Vec c) { return {_mm512_fnmadd_pd(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm512_min_pd(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm512_max_pd(a.v, b.v)}; }
    friend Vec abs(Vec a) { return {_mm512_andnot_pd(_mm512_set1_pd(-0.0), a.v)}; }
    friend Mask lt(Vec a, Vec b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ); }
    friend Mask gt(Vec a, Vec b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ); }
    friend Mask isnan(Vec a) { return _mm512_cmp_pd_mask(a.v, a.v, _CMP_UNORD_Q); }
    friend Vec select(Mask m, Vec a, Vec b) { return {_mm512_mask_blend_pd(m, b.v, a.v)}; }
    friend Vec shift_into_exponent(Vec a) {
        return {_mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(a.v), 52))};
    }
};

// Register budget of the micro-kernels (gemm.h): 32 zmm registers hold 24
// accumulators beside the B vectors and one broadcast.
struct Tiling {
    static constexpr int acc_regs = 24;
    static constexpr int gate_vecs = 4;   // vectors of one gate tile when G = 1
    static constexpr int plain_nv = 4;    // vectors per row of a plain GEMM tile: 6 x 4
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
