// The plain GEMMs behind rnnkit.Recurrent (user-defined cells): packing a
// weight once per call, out (+)= a @ B against the packed panels (the input
// side over all T*N rows, the per-step recurrent product, the per-step dh and
// the whole-sequence dx), out = a^T @ b (dW) and column sums (db). Built on
// the register-blocked micro-kernels of gemm.h. Not cell math: the cells'
// pointwise code runs in Python (rnnkit.cells).
//
// Deterministic by construction: every output element is one FMA chain in k
// order, started from zero, and the work is split over output columns only
// (panels of U columns), so any thread count gives bitwise the same result.
// Included once per ISA translation unit, after gemm.h and sequence.h.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

// Panels for out = a @ w^T, w [R, K] (PyTorch's [G*H, C] read as is):
// panels [ceil(R/U)][K][U], panel p holding w's rows p*U .. p*U+U-1 as
// columns, zero past R.
template <class V>
void user_pack_t(const typename V::T* w, int64_t R, int64_t K, typename V::T* panels) {
    constexpr int U = PlainTile<V>::U;
    for (int64_t p = 0; p < ceil_div(R, U); ++p) pack_gate_panel<V>(w, 1, R, K, U, p * U, panels + p * K * U);
}

// Panels for out = a @ w, w [R, K] row-major (R is the reduction):
// panels [ceil(K/U)][R][U], panel p holding w's columns p*U .. p*U+U-1.
template <class V>
void user_pack_n(const typename V::T* w, int64_t R, int64_t K, typename V::T* panels) {
    constexpr int U = PlainTile<V>::U;
    for (int64_t p = 0; p < ceil_div(K, U); ++p) pack_column_panel(w, K, R, K, U, p * U, panels + p * R * U);
}

// The epilogue of one tile row: out[j] = acc[j] (+ out[j]) (+ bias[j]) for j
// in [0, valid). The chain (acc) always starts from zero, so accumulate adds
// the caller's value after it, as `out + a @ B` reads in NumPy.
template <class V>
inline void user_store_row(int64_t valid, const typename V::T* acc, const typename V::T* bias,
                           typename V::T* out, bool accumulate) {
    for_lanes<V>(valid, [&](auto vx, int64_t i) {
        using Vx = decltype(vx);
        Vx s = Vx::loadu(acc + i);
        if (accumulate) s = Vx::loadu(out + i) + s;
        if (bias != nullptr) s = s + Vx::loadu(bias + i);
        s.storeu(out + i);
    });
}

// out[m][j] = sum_k a[m*lda + k] * B(k, j) (+ out[m][j]) (+ bias[j]) for m in
// [0, M), j in [0, cols); B packed as [ceil(cols/U)][K][U] (user_pack_t or
// user_pack_n). out has row stride ldo.
template <class V>
void user_gemm(int64_t M, int64_t cols, int64_t K, const typename V::T* a, int64_t lda,
               const typename V::T* panels, const typename V::T* bias, typename V::T* out, int64_t ldo,
               bool accumulate, int threads) {
    using Real = typename V::T;
    using Tile = PlainTile<V>;
    constexpr int U = Tile::U, NV = Tile::NV, MR = Tile::MR;
    const int64_t np = ceil_div(cols, U);
    const int team = choose_threads(threads, np, 2.0 * M * cols * K, 1);
    run_team(team, [&](const Team& tm) {
        const FlushDenormals ftz;
        if (tm.id() == 0) note_parallel_region(tm.size());
        const Range own = share(np, tm.id(), tm.size());
        if (M == 1) {
            // One row: NB panels per pass, NB*NV independent chains (the same
            // chains as one-panel tiles, bitwise), as forward.h's N = 1 steps.
            constexpr int NB = Tiling::acc_regs / NV > 1 ? Tiling::acc_regs / NV : 1;
            for_block_groups<NB>(own, false, [&](int64_t p, int nb) {
                alignas(64) Real acc[NB * U];
                row_tile_upto<V, NB, NV>(nb, K, a, panels + p * K * U, U, K * U, acc);
                for (int i = 0; i < nb; ++i) {
                    const int64_t j0 = (p + i) * U;
                    user_store_row<V>(min_i(U, cols - j0), acc + i * U, bias ? bias + j0 : nullptr, out + j0,
                                      accumulate);
                }
            });
            return;
        }
        // Rows in chunks of MC: the chunk's rows of a stay in L2 while every
        // panel of this thread passes over them (a panel, K*U values, in L1/L2).
        constexpr int64_t MC = 16 * MR;
        for (int64_t mc = 0; mc < M; mc += MC)
            for (int64_t p = own.begin; p < own.end; ++p) {
                const int64_t j0 = p * U, valid = min_i(U, cols - j0);
                for (int64_t m0 = mc; m0 < min_i(M, mc + MC); m0 += MR) {
                    const int mr = static_cast<int>(min_i(MR, M - m0));
                    alignas(64) Real acc[MR * U];
                    gemm_tile<V, MR, NV, false, false>(mr, K, a + m0 * lda, lda, panels + p * K * U, U, acc, U);
                    for (int r = 0; r < mr; ++r)
                        user_store_row<V>(valid, acc + r * U, bias ? bias + j0 : nullptr, out + (m0 + r) * ldo + j0,
                                          accumulate);
                }
            }
    });
}

// out[r][c] = sum_m a[m*lda + r] * b[m*ldb + c] for r in [0, R), c in [0, Kc)
// (out = a^T @ b, row stride Kc): the weight gradients, on the fused
// backward's own blocked kernel (backward.h: WeightGrad, one chain per output
// over m in order, K blocks continuing it, tiles split over threads). A first
// version that swept all of R per column panel streamed a from L3 once per
// panel: 24 GFLOP/s against ~60 for the NT GEMM beside it (1 thread, R = 4096).
// b's last partial column block is copied, zero-padded, so no read passes a row.
template <class V>
void user_gemm_tn(int64_t M, int64_t R, int64_t Kc, const typename V::T* a, int64_t lda, const typename V::T* b,
                  int64_t ldb, typename V::T* out, int threads) {
    using Real = typename V::T;
    using WG = WeightGrad<V>;
    constexpr int U = WG::U, MR = WG::MR;
    const WG wg(kernel_params(), R, Kc);
    const int64_t blocks = ceil_div(Kc, U), i_tiles = ceil_div(R, MR);
    const bool tail = Kc % U != 0;
    const int team = choose_threads(threads, i_tiles * blocks, 2.0 * M * R * Kc, 1);
    Workspace ws;
    const size_t at_tail = ws.reserve<Real>(tail ? M * U : 0);                          // [M][U]
    const size_t at_acc = ws.reserve<Real>(WG::direct(Kc) ? 0 : i_tiles * MR * blocks * U);  // padded out
    const size_t at_bpack = ws.reserve<Real>(int64_t{team} * wg.scratch());
    ws.allocate();
    Real* tail_p = ws.at<Real>(at_tail);
    if (tail) {
        const int64_t c0 = (blocks - 1) * U;
        for (int64_t m = 0; m < M; ++m)
            for (int64_t u = 0; u < U; ++u) tail_p[m * U + u] = c0 + u < Kc ? b[m * ldb + c0 + u] : Real(0);
    }
    run_team(team, [&](const Team& tm) {
        const FlushDenormals ftz;
        if (tm.id() == 0) note_parallel_region(tm.size());
        wg.run(share(i_tiles * blocks, tm.id(), tm.size()), M, R, Kc, blocks, a, lda,
                [&](int64_t k, int64_t cb) -> const Real* {
                    if (tail && cb == blocks - 1) return tail_p + k * U;
                    return b + k * ldb + cb * U;
                },
                false, ws.at<Real>(at_acc), out, ws.at<Real>(at_bpack) + int64_t{tm.id()} * wg.scratch());
    });
}

// out[j] = sum_m a[m*lda + j] for j in [0, R), m in order (the bias gradients).
template <class V>
void user_colsum(int64_t M, int64_t R, const typename V::T* a, int64_t lda, typename V::T* out, int threads) {
    constexpr int U = PlainTile<V>::U;
    const int64_t np = ceil_div(R, U);
    const int team = choose_threads(threads, np, 1.0 * M * R, 1);
    run_team(team, [&](const Team& tm) {
        const FlushDenormals ftz;
        if (tm.id() == 0) note_parallel_region(tm.size());
        const Range own = share(np, tm.id(), tm.size());
        const int64_t j_lo = min_i(own.begin * U, R), j_hi = min_i(own.end * U, R);
        for_lanes<V>(j_hi - j_lo, [&](auto vx, int64_t i) {
            using Vx = decltype(vx);
            const int64_t j = j_lo + i;
            Vx s = Vx::zero();
            for (int64_t m = 0; m < M; ++m) s = s + Vx::loadu(a + m * lda + j);
            s.storeu(out + j);
        });
    });
}

// The table of one ISA (kernel_table.h: UserKernelsFor).
template <class Real>
constexpr UserKernelsFor<Real> user_kernels_for() {
    using V = Vec<Real>;
    return {PlainTile<V>::U, user_pack_t<V>, user_pack_n<V>, user_gemm<V>, user_gemm_tn<V>, user_colsum<V>};
}

const UserKernelTable& user_kernel_table() {
    static constexpr UserKernelTable table{RNNKIT_STR(RNNKIT_ISA), user_kernels_for<float>(),
                                           user_kernels_for<double>()};
    return table;
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
