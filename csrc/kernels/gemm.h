// The register-blocked GEMM micro-kernel and the packing routines it reads.
// One tile: out[MR][NV*W] (+)= A[MR][K] . B[K][NV*W], with MR*NV accumulators
// held in registers for the whole K loop (BLIS style), B read as NV vectors per
// k and A broadcast one element per row per k. B is either a packed panel
// (zero-padded to whole vectors, so tails cost nothing) or rows of a matrix
// read in place. Each output element is one chain of FMAs in k order, the
// same whatever the tile's row count: results never depend on the tiling.
// Not a general BLAS: no alpha/beta, no edge handling in B beyond padding.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t min_i(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i(int64_t a, int64_t b) { return a > b ? a : b; }

// out[r][v*W ..] (+)= sum_k A(r, k) * B(k, v*W ..)
//   A(r, k) = a[r*lda + k] (row-major), or a[k*lda + r] when ATrans
//   B(k, .) = b + k*ldb, NV vectors
//   out: MR rows of NV vectors, row stride ldo
template <class V, int MR, int NV, bool ATrans, bool Accumulate>
inline void micro_kernel(int64_t K, const typename V::T* a, int64_t lda, const typename V::T* b,
                         int64_t ldb, typename V::T* out, int64_t ldo) {
    using Real = typename V::T;
    constexpr int W = V::W;
    V acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 32
        for (int v = 0; v < NV; ++v)
            acc[r][v] = Accumulate ? V::loadu(out + r * ldo + v * W) : V::zero();

    if constexpr (!ATrans) {
        const Real* ar[MR];
#pragma GCC unroll 32
        for (int r = 0; r < MR; ++r) ar[r] = a + r * lda;
        for (int64_t k = 0; k < K; ++k) {
            V bv[NV];
#pragma GCC unroll 32
            for (int v = 0; v < NV; ++v) bv[v] = V::loadu(b + v * W);
#pragma GCC unroll 32
            for (int r = 0; r < MR; ++r) {
                const V av = V::set1(ar[r][k]);
#pragma GCC unroll 32
                for (int v = 0; v < NV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
            b += ldb;
        }
    } else {
        for (int64_t k = 0; k < K; ++k) {
            V bv[NV];
#pragma GCC unroll 32
            for (int v = 0; v < NV; ++v) bv[v] = V::loadu(b + v * W);
#pragma GCC unroll 32
            for (int r = 0; r < MR; ++r) {
                const V av = V::set1(a[r]);
#pragma GCC unroll 32
                for (int v = 0; v < NV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
            a += lda;
            b += ldb;
        }
    }

#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 32
        for (int v = 0; v < NV; ++v) acc[r][v].storeu(out + r * ldo + v * W);
}

// The same tile for mr <= MR valid rows: a kernel compiled for exactly mr rows
// (N = 1 runs a 1-row kernel, not a 6-row one with 5 wasted).
template <class V, int MR, int NV, bool ATrans, bool Accumulate>
inline void gemm_tile(int mr, int64_t K, const typename V::T* a, int64_t lda,
                      const typename V::T* b, int64_t ldb, typename V::T* out, int64_t ldo) {
    if constexpr (MR > 1) {
        if (mr < MR) {
            gemm_tile<V, MR - 1, NV, ATrans, Accumulate>(mr, K, a, lda, b, ldb, out, ldo);
            return;
        }
    }
    micro_kernel<V, MR, NV, ATrans, Accumulate>(K, a, lda, b, ldb, out, ldo);
}

// Calls f(Vx{}, i) over i in [0, count): Vx = V for whole vectors, then
// Vx = Scalar for the count % W tail. f uses Vx::W lanes from offset i.
template <class V, class F>
inline void for_lanes(int64_t count, F&& f) {
    using S = Scalar<typename V::T>;
    int64_t i = 0;
    for (; i + V::W <= count; i += V::W) f(V{}, i);
    for (; i < count; ++i) f(S{}, i);
}

// Whether V has a 16x16 in-register transpose (AVX-512 floats).
template <class V> constexpr auto has_transpose16(int) -> decltype(&V::transpose16x16, bool()) { return true; }
template <class V> constexpr bool has_transpose16(long) { return false; }

// Packs the gate rows of one block of hidden units of w [G*H, K] (PyTorch
// layout: gate g of unit j is row g*H + j) into a panel [K][G][U]:
// panel[k][g][u] = w[g*H + u0 + u][k], zero past H. A tile's row then holds all
// G gates of U units, which is what lets one thread own whole units.
template <class V, class Real>
inline void pack_gate_panel(const Real* w, int64_t G, int64_t H, int64_t K, int64_t U, int64_t u0,
                            Real* panel) {
    // In blocks of KB values of k: the block's destination rows ([KB][G][U],
    // 16 KB for LSTM floats) stay in L1 while each of the G*U source rows
    // contributes its KB contiguous values, so neither side streams strided.
    constexpr int64_t KB = 64;
    const int64_t valid = min_i(U, H - u0);
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
        const int64_t k1 = min_i(K, k0 + KB);
        for (int64_t g = 0; g < G; ++g)
            for (int64_t u = 0; u < U; ++u) {
                Real* dst = panel + g * U + u;
                if constexpr (has_transpose16<V>(0)) {
                    // 16 whole rows at once: 16x16 blocks in registers, the rest of k by element.
                    if (u % 16 == 0 && u + 16 <= valid) {
                        const Real* src = w + (g * H + u0 + u) * K;
                        int64_t k = k0;
                        for (; k + 16 <= k1; k += 16) V::transpose16x16(src + k, K, dst + k * G * U, G * U);
                        for (; k < k1; ++k)
                            for (int64_t i = 0; i < 16; ++i) dst[k * G * U + i] = src[i * K + k];
                        u += 15;
                        continue;
                    }
                }
                if (u < valid) {
                    const Real* src = w + (g * H + u0 + u) * K;
                    for (int64_t k = k0; k < k1; ++k) dst[k * G * U] = src[k];
                } else {
                    for (int64_t k = k0; k < k1; ++k) dst[k * G * U] = Real(0);
                }
            }
    }
}

// Packs columns [c0, c0 + U) of rows [0, K) of a row-major matrix b (row stride
// ldb, M columns) into a panel [K][U], zero past M.
template <class Real>
inline void pack_column_panel(const Real* b, int64_t ldb, int64_t K, int64_t M, int64_t U,
                              int64_t c0, Real* panel) {
    const int64_t valid = min_i(U, M - c0);
    for (int64_t k = 0; k < K; ++k) {
        const Real* src = b + k * ldb + c0;
        Real* dst = panel + k * U;
        int64_t u = 0;
        for (; u < valid; ++u) dst[u] = src[u];
        for (; u < U; ++u) dst[u] = Real(0);
    }
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
