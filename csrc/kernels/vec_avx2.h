// Vec<float> and Vec<double> for AVX2 + FMA: 8 floats or 4 doubles per
// register, 16 registers. Every op mirrors Scalar<Real> (vec_scalar.h), the spec.
// Included only by csrc/dispatch/isa_avx2.cpp, inside namespace rnnkit::avx2.
#pragma once

#include "kernels/vec_scalar.h"

namespace rnnkit {
namespace RNNKIT_ISA {

template <class Real> struct Vec;

template <>
struct Vec<float> {
    using T = float;
    using Mask = __m256;
    static constexpr int W = 8;
    __m256 v;

    static Vec load(const float* p) { return {_mm256_load_ps(p)}; }
    static Vec loadu(const float* p) { return {_mm256_loadu_ps(p)}; }
    static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
    static Vec zero() { return {_mm256_setzero_ps()}; }
    void store(float* p) const { _mm256_store_ps(p, v); }
    void storeu(float* p) const { _mm256_storeu_ps(p, v); }

    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a) { return {_mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f))}; }
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
    friend Vec fnma(Vec a, Vec b, Vec c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
    friend Vec abs(Vec a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
    friend Mask lt(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
    friend Mask gt(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ); }
    friend Mask isnan(Vec a) { return _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q); }
    friend Vec select(Mask m, Vec a, Vec b) { return {_mm256_blendv_ps(b.v, a.v, m)}; }
    friend Vec shift_into_exponent(Vec a) {
        return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(a.v), 23))};
    }

    // dst[j*ldd + i] = src[i*lds + j] for i, j < 8: one 8x8 block in
    // registers (pack_gate_panel's transposes; element by element, packing
    // the weights took 10% of an LSTM N=1 H=256 call). Moves values only.
    static void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
        __m256 r[8], t[8], s[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);       // a0 b0 a1 b1 | a4 b4 a5 b5
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);   // a2 b2 a3 b3 | a6 b6 a7 b7
        }
        for (int i = 0; i < 8; i += 4) {
            s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);      // col 0 (| 4) of 4 rows
            s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);  // col 1 (| 5)
            s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);  // col 2 (| 6)
            s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);  // col 3 (| 7)
        }
        for (int j = 0; j < 4; ++j) {
            _mm256_storeu_ps(dst + j * ldd, _mm256_permute2f128_ps(s[j], s[j + 4], 0x20));
            _mm256_storeu_ps(dst + (j + 4) * ldd, _mm256_permute2f128_ps(s[j], s[j + 4], 0x31));
        }
    }
};

template <>
struct Vec<double> {
    using T = double;
    using Mask = __m256d;
    static constexpr int W = 4;
    __m256d v;

    static Vec load(const double* p) { return {_mm256_load_pd(p)}; }
    static Vec loadu(const double* p) { return {_mm256_loadu_pd(p)}; }
    static Vec set1(double x) { return {_mm256_set1_pd(x)}; }
    static Vec zero() { return {_mm256_setzero_pd()}; }
    void store(double* p) const { _mm256_store_pd(p, v); }
    void storeu(double* p) const { _mm256_storeu_pd(p, v); }

    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_pd(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_pd(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm256_div_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a) { return {_mm256_xor_pd(a.v, _mm256_set1_pd(-0.0))}; }
    friend Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
    friend Vec fnma(Vec a, Vec b, Vec c) { return {_mm256_fnmadd_pd(a.v, b.v, c.v)}; }
    friend Vec min(Vec a, Vec b) { return {_mm256_min_pd(a.v, b.v)}; }
    friend Vec max(Vec a, Vec b) { return {_mm256_max_pd(a.v, b.v)}; }
    friend Vec abs(Vec a) { return {_mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v)}; }
    friend Mask lt(Vec a, Vec b) { return _mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ); }
    friend Mask gt(Vec a, Vec b) { return _mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ); }
    friend Mask isnan(Vec a) { return _mm256_cmp_pd(a.v, a.v, _CMP_UNORD_Q); }
    friend Vec select(Mask m, Vec a, Vec b) { return {_mm256_blendv_pd(b.v, a.v, m)}; }
    friend Vec shift_into_exponent(Vec a) {
        return {_mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(a.v), 52))};
    }
};

// Register budget of the micro-kernels (gemm.h): 16 ymm registers hold at most
// 12 accumulators beside the B vectors and one broadcast.
struct Tiling {
    static constexpr int acc_regs = 12;
    static constexpr int gate_vecs = 2;   // vectors of one gate tile when G = 1
    static constexpr int plain_nv = 4;    // vectors per row of a plain GEMM tile: 3 x 4 (see below)
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
