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

// Whether V has a 16x16 in-register transpose (AVX-512 floats).
template <class V> constexpr auto has_transpose16(int) -> decltype(&V::transpose16x16, bool()) { return true; }
template <class V> constexpr bool has_transpose16(long) { return false; }
// Whether V has an 8x8 in-register transpose (AVX2 floats).
template <class V> constexpr auto has_transpose8(int) -> decltype(&V::transpose8x8, bool()) { return true; }
template <class V> constexpr bool has_transpose8(long) { return false; }


// micro_kernel's prefetches at step k, 128 >> shift bytes per k from the
// tile's prefetch pointer: whether step k asks (shift 0: every step, 2
// lines; else one line every 2^(shift-1) steps), and the first line's offset.
inline bool prefetch_due(int shift, int64_t k) {
    return shift == 0 || (k & ((int64_t{1} << (shift - 1)) - 1)) == 0;
}
inline int64_t prefetch_offset(int shift, int64_t k) { return shift == 0 ? k * 128 : (k >> (shift - 1)) * 64; }
// Always inlined: GCC 12 counts __builtin_prefetch as free of side effects,
// so a helper made only of prefetches is found const (ipa-pure-const) and a
// call to it, not yet inlined, is deleted as dead: every prefetch gone.
inline __attribute__((always_inline)) void prefetch_at_k(const char* pf, int shift, int64_t k) {
    if (!prefetch_due(shift, k)) return;
    __builtin_prefetch(pf + prefetch_offset(shift, k), 0, 2);
    if (shift == 0) __builtin_prefetch(pf + prefetch_offset(shift, k) + 64, 0, 2);
}

// out[r][v*W ..] (+)= sum_k A(r, k) * B(k, v*W ..)
//   A(r, k) = a[r*lda + k] (row-major), or a[k*lda + r] when ATrans
//   B(k, .) = b + k*ldb, NV vectors
//   out: MR rows of NV vectors, row stride ldo
//   pf: if not null, a later tile's panel is prefetched into L2 from pf on,
//   128 >> pf_shift bytes per k: 2 cache lines at each k (pf_shift 0), one
//   (1), one every second k (2), ... (see prefetch_slice); no effect on results
template <class V, int MR, int NV, bool ATrans, bool Accumulate>
inline void micro_kernel(int64_t K, const typename V::T* a, int64_t lda, const typename V::T* b,
                         int64_t ldb, typename V::T* out, int64_t ldo, const char* pf = nullptr,
                         int pf_shift = 0) {
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
            if (pf != nullptr) prefetch_at_k(pf, pf_shift, k);
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
            if (pf != nullptr) prefetch_at_k(pf, pf_shift, k);
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

// The slice of the next block's packed panel that row tile `tile` of the
// current block prefetches while it runs (K * (128 >> shift) bytes from
// tile * K * (128 >> shift) on), or null once it is covered. Large panels
// (H = 1024: 256 KB each, 16 MiB in all) stream from L3 or DRAM, and a tile
// that starts on a cold panel waits on it: same-process A/B, 1 thread,
// inference: LSTM N=64 H=1024 +2.7 to 6.2%, N=16 H=1024 +4.8 to 5.5%, GRU
// N=64 H=1024 +4.1%; training (forward and the backward dh and dx GEMMs)
// LSTM N=64 H=1024 +3.2%, N=16 +4.1%, GRU N=64 +1.6%; no change (+-1%) at
// H <= 256 or for the Elman cell (all with shift 0: the first tile alone
// prefetching a whole 16 KB k slice).
inline const char* prefetch_slice(const void* next_panel, int64_t panel_bytes, int64_t tile, int64_t K,
                                  int shift = 0) {
    const int64_t at = tile * K * (128 >> shift);
    return next_panel != nullptr && at < panel_bytes ? static_cast<const char*>(next_panel) + at : nullptr;
}

// The shift that spreads the prefetch of panel_bytes over all but the last
// of `tiles` row tiles of K steps each (the sparsest of 128, 64, ..., 2 bytes
// per k that covers it), where shift 0 puts 256 prefetches of a 16 KB slice
// into the first tile's 128 steps. Issued that fast from DRAM, they fill the
// core's miss buffers and the first tile stalls on them (Zen 3 profile, LSTM
// N=64 H=1024 inference: the first tile of each slice ran at about half the
// speed of the others, 13% of the input GEMM's samples for 6% of its work).
// Only where the panels the loop cycles through, all threads' together
// (streamed_bytes), reach 4 MiB: smaller ones stay in L2 or L3, whose
// latency one tile's steps hide. Same-process A/B against shift 0 (builds
// side by side, bitwise equal), AMD EPYC Zen 3, AVX2, 1 thread, two rounds:
// inference LSTM N=64 H=1024 1.07-1.11x, N=16 H=1024 1.12-1.17x, GRU N=64
// H=1024 1.10x, Elman N=64 H=1024 1.02-1.05x; training forward LSTM N=64
// H=1024 1.08-1.11x; backward (dh and dx GEMMs) 1.00-1.03x. Spread at H=256
// too (0.5-2 MiB of panels), paired medians were 0.90-1.04x, within this
// VM's noise but not a gain, so those keep shift 0. Spread over half the
// tiles instead: 1.04-1.11x; over a quarter: 1.04-1.06x. The AVX-512 and
// SSE2 kernels take the same rule, unmeasured (no such A/B on their CPUs).
constexpr int64_t kSpreadMinBytes = int64_t{4} << 20;
inline int prefetch_spread(int64_t panel_bytes, int64_t tiles, int64_t K, int64_t streamed_bytes) {
    int shift = 0;
    if (streamed_bytes < kSpreadMinBytes) return shift;
    while (shift < 6 && (tiles - 1) * K * (128 >> (shift + 1)) >= panel_bytes) ++shift;
    return shift;
}

// The same tile for mr <= MR valid rows: a kernel compiled for exactly mr rows
// (N = 1 runs a 1-row kernel, not a 6-row one with 5 wasted).
template <class V, int MR, int NV, bool ATrans, bool Accumulate>
inline void gemm_tile(int mr, int64_t K, const typename V::T* a, int64_t lda,
                      const typename V::T* b, int64_t ldb, typename V::T* out, int64_t ldo,
                      const char* pf = nullptr, int pf_shift = 0) {
    if constexpr (MR > 1) {
        if (mr < MR) {
            gemm_tile<V, MR - 1, NV, ATrans, Accumulate>(mr, K, a, lda, b, ldb, out, ldo, pf, pf_shift);
            return;
        }
    }
    micro_kernel<V, MR, NV, ATrans, Accumulate>(K, a, lda, b, ldb, out, ldo, pf, pf_shift);
}

// One row of NB gate tiles side by side: out[nb*NV*W + v*W ..] = sum_k a[k] *
// B_nb(k, v*W ..), B_nb(k, .) = b + nb*bstride + k*ldb. Each output is the same
// FMA chain in k order as micro_kernel's, so results are bitwise those of NB
// one-row tiles; NB*NV independent chains instead of NV hide the FMA latency
// of a single row (N = 1), and one broadcast of a[k] serves every block.
template <class V, int NB, int NV>
inline void row_tile_blocks(int64_t K, const typename V::T* a, const typename V::T* b, int64_t ldb,
                            int64_t bstride, typename V::T* out) {
    constexpr int W = V::W;
    V acc[NB][NV];
#pragma GCC unroll 32
    for (int nb = 0; nb < NB; ++nb)
#pragma GCC unroll 32
        for (int v = 0; v < NV; ++v) acc[nb][v] = V::zero();
    for (int64_t k = 0; k < K; ++k) {
        const V av = V::set1(a[k]);
#pragma GCC unroll 32
        for (int nb = 0; nb < NB; ++nb)
#pragma GCC unroll 32
            for (int v = 0; v < NV; ++v) acc[nb][v] = fma(av, V::loadu(b + nb * bstride + v * W), acc[nb][v]);
        b += ldb;
    }
#pragma GCC unroll 32
    for (int nb = 0; nb < NB; ++nb)
#pragma GCC unroll 32
        for (int v = 0; v < NV; ++v) acc[nb][v].storeu(out + (nb * NV + v) * W);
}

// row_tile_blocks for nb <= NB blocks: a kernel compiled for exactly nb.
template <class V, int NB, int NV>
inline void row_tile_upto(int nb, int64_t K, const typename V::T* a, const typename V::T* b, int64_t ldb,
                          int64_t bstride, typename V::T* out) {
    if constexpr (NB > 1) {
        if (nb < NB) {
            row_tile_upto<V, NB - 1, NV>(nb, K, a, b, ldb, bstride, out);
            return;
        }
    }
    row_tile_blocks<V, NB, NV>(K, a, b, ldb, bstride, out);
}

// out[i] = sum_k a[k] * w[i*ldw + k] for i in [0, R): R dot products of
// unpacked rows (PyTorch's [G*H, K] weights read in place, no packing). Each
// is W lane sums, an FMA chain over whole vectors of k, its lanes added in
// lane order, then the k % W tail in k order: a fixed sequence per (K, ISA).
template <class V, int R>
inline void dot_rows(int64_t K, const typename V::T* a, const typename V::T* w, int64_t ldw,
                     typename V::T* out) {
    using Real = typename V::T;
    using S = Scalar<Real>;
    constexpr int W = V::W;
    V acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = V::zero();
    int64_t k = 0;
    for (; k + W <= K; k += W) {
        const V av = V::loadu(a + k);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r] = fma(V::loadu(w + r * ldw + k), av, acc[r]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        alignas(64) Real lanes[W];
        acc[r].storeu(lanes);
        S s = S::set1(lanes[0]);
        for (int i = 1; i < W; ++i) s = s + S::set1(lanes[i]);
        for (int64_t kt = k; kt < K; ++kt) s = fma(S::loadu(w + r * ldw + kt), S::loadu(a + kt), s);
        out[r] = s.v;
    }
}

// dot_rows for R = 16 rows of AVX-512 floats: the same sums, bitwise, with
// the lane sums done as one 16x16 transpose and 15 vector adds (lane order
// kept: lane i of the sum adds row i's lanes 0, 1, ..., 15 in turn).
template <class V>
inline void dot_rows16(int64_t K, const typename V::T* a, const typename V::T* w, int64_t ldw,
                       typename V::T* out) {
    using Real = typename V::T;
    using S = Scalar<Real>;
    static_assert(V::W == 16, "16 lanes");
    V acc[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) acc[r] = V::zero();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        const V av = V::loadu(a + k);
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r) acc[r] = fma(V::loadu(w + r * ldw + k), av, acc[r]);
    }
    alignas(64) Real lanes[16 * 16], lanes_t[16 * 16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) acc[r].storeu(lanes + 16 * r);
    V::transpose16x16(lanes, 16, lanes_t, 16);   // lanes_t[i*16 + r] = lane i of row r
    V sum = V::loadu(lanes_t);
    for (int i = 1; i < 16; ++i) sum = sum + V::loadu(lanes_t + 16 * i);
    sum.storeu(out);
    for (int r = 0; r < 16; ++r) {
        S s = S::set1(out[r]);
        for (int64_t kt = k; kt < K; ++kt) s = fma(S::loadu(w + r * ldw + kt), S::loadu(a + kt), s);
        out[r] = s.v;
    }
}

// out[i] = a . w[i] for i in [0, count), rows of w with stride ldw.
template <class V>
inline void dot_rows_n(int64_t count, int64_t K, const typename V::T* a, const typename V::T* w,
                       int64_t ldw, typename V::T* out) {
    int64_t i = 0;
    if constexpr (has_transpose16<V>(0))
        for (; i + 16 <= count; i += 16) dot_rows16<V>(K, a, w + i * ldw, ldw, out + i);
    for (; i + 8 <= count; i += 8) dot_rows<V, 8>(K, a, w + i * ldw, ldw, out + i);
    for (; i + 4 <= count; i += 4) dot_rows<V, 4>(K, a, w + i * ldw, ldw, out + i);
    for (; i < count; ++i) dot_rows<V, 1>(K, a, w + i * ldw, ldw, out + i);
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

// A operands packed for the ATrans kernels: tile t of MR rows as [kc][MR]
// (apack[(t*kc + k)*MR + r] = A(t*MR + r, k), zero past `rows`), so that a
// tile reads its A block as one contiguous stream. Read in place, the backward
// GEMMs' A rows lie G*H values apart (16 KB at LSTM H = 1024 floats, a
// multiple of 4 KB and of the L2's 64 KB set period over 4): every k of a
// tile fell into the same few cache sets, and the A blocks streamed from L3
// on each reuse. Packing moves values only: every output is the same FMA
// chain in k order as before, bitwise.
//
// From row-major A (A(r, k) = a[r*lda + k], e.g. dgates rows).
// tile_stride: values from one tile's block to the next (kc*MR by default;
// larger when several sources fill one tile's k range side by side).
// One tile: rows [r0, r0 + mr) of A into dst [kc][MR], zero past mr.
template <int MR, class Real>
inline void pack_a_tile(const Real* a, int64_t lda, int64_t r0, int64_t mr, int64_t kc, Real* dst) {
    for (int64_t r = 0; r < MR; ++r) {
        if (r < mr) {
            const Real* src = a + (r0 + r) * lda;
            for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
        } else {
            for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = Real(0);
        }
    }
}

template <int MR, class Real>
inline void pack_a_rows(const Real* a, int64_t lda, int64_t rows, int64_t kc, Real* apack,
                        int64_t tile_stride = 0) {
    if (tile_stride == 0) tile_stride = kc * MR;
    for (int64_t t = 0; t * MR < rows; ++t)
        pack_a_tile<MR>(a, lda, t * MR, min_i(MR, rows - t * MR), kc, apack + t * tile_stride);
}

// The row tiles of `rows` rows: ceil(rows / MR) tiles of MR rows, except
// that where one row would be left over (rows % MR == 1), the last two tiles
// share MR + 1 rows (3 + 1 -> 2 + 2 at MR = 3). A one-row tile has NV FMA
// chains, too few to cover the FMA latency (4 cycles on two pipes wants 8):
// on AVX2 a 3-row tile takes 6 cycles per k and a 1-row one 4, two 2-row
// tiles 4 each, so N = 16 costs 32 cycles per k instead of 34. Which rows
// share a tile never changes an output (one FMA chain in k order each).
template <int MR>
struct RowTiles {
    int64_t rows, tiles;
    explicit RowTiles(int64_t r) : rows(r), tiles(ceil_div(r, MR)) {}
    bool split() const { return MR >= 3 && rows > MR && rows % MR == 1; }
    int64_t begin(int64_t t) const {
        return split() && t == tiles - 1 ? (tiles - 2) * MR + (MR + 2) / 2 : t * MR;
    }
    int count(int64_t t) const {
        if (split() && t == tiles - 2) return (MR + 2) / 2;
        return static_cast<int>(min_i(MR, rows - begin(t)));
    }
};

// pack_a_rows for the tiles of RowTiles<MR>(rows): tile t holds rows
// [begin(t), begin(t) + count(t)), zero past them.
template <int MR, class Real>
inline void pack_a_tiles(const Real* a, int64_t lda, const RowTiles<MR>& rt, int64_t kc, Real* apack,
                         int64_t tile_stride = 0) {
    if (tile_stride == 0) tile_stride = kc * MR;
    for (int64_t t = 0; t < rt.tiles; ++t) pack_a_tile<MR>(a, lda, rt.begin(t), rt.count(t), kc, apack + t * tile_stride);
}

// From column-major A (A(r, k) = a[k*lda + r], e.g. dgates^T): `tiles` tiles
// starting at row r0, of `rows` rows in all.
template <int MR, class Real>
inline void pack_a_cols(const Real* a, int64_t lda, int64_t r0, int64_t tiles, int64_t rows, int64_t kc,
                        Real* apack) {
    for (int64_t k = 0; k < kc; ++k) {
        const Real* src = a + k * lda;
        for (int64_t t = 0; t < tiles; ++t) {
            const int64_t base = r0 + t * MR, mr = min_i(MR, rows - base);
            Real* dst = apack + (t * kc + k) * MR;
            if (mr == MR) {   // a whole tile: MR values, no test per value
                for (int r = 0; r < MR; ++r) dst[r] = src[base + r];
                continue;
            }
            int64_t r = 0;
            for (; r < mr; ++r) dst[r] = src[base + r];
            for (; r < MR; ++r) dst[r] = Real(0);
        }
    }
}

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
                // B whole rows at once: BxB blocks in registers (16 for
                // AVX-512 floats, 8 for AVX2), the rest of k by element.
                auto rows_at_once = [&](auto block, auto transpose) {
                    constexpr int64_t B = decltype(block)::value;
                    if (u % B != 0 || u + B > valid) return false;
                    const Real* src = w + (g * H + u0 + u) * K;
                    int64_t k = k0;
                    for (; k + B <= k1; k += B) transpose(src + k, K, dst + k * G * U, G * U);
                    for (; k < k1; ++k)
                        for (int64_t i = 0; i < B; ++i) dst[k * G * U + i] = src[i * K + k];
                    u += B - 1;
                    return true;
                };
                if constexpr (has_transpose16<V>(0)) {
                    if (rows_at_once(std::integral_constant<int64_t, 16>{},
                                     [](const Real* a, int64_t la, Real* d, int64_t ld) { V::transpose16x16(a, la, d, ld); }))
                        continue;
                }
                if constexpr (has_transpose8<V>(0)) {
                    if (rows_at_once(std::integral_constant<int64_t, 8>{},
                                     [](const Real* a, int64_t la, Real* d, int64_t ld) { V::transpose8x8(a, la, d, ld); }))
                        continue;
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
