// The backward sequence level (BPTT), shared by all cells. In reverse
// processing order, each step runs the cell's pointwise backward on the units
// this thread owns (writing that step's dgates), meets the team at one
// barrier, then runs the recurrent GEMM dh = dgates @ w_hh for its own units.
// db_ih and db_hh are summed in the loop, column by column by the thread that
// owns the units. After the loop, dx, dw_ih and dw_hh are whole-sequence
// GEMMs over all T*N rows, split over outputs only, each output summed in one
// fixed order (k ascending, K blocks ascending).
//
// Rows of dgates are stored in processing order of the backward pass: row
// q = p*N + n holds step s = T-1-p (time t_of(s)), batch row n. The weight
// gradients' chains therefore run over the steps from the last processed
// forward to the first, as db's do: a call over a segment of the steps that
// adds into the running sums of the later segments (BackwardIO::accumulate)
// extends exactly those chains, so memory-budgeted BPTT (one call per
// segment, last segment first) gives bitwise the one-call result.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

// The K rows per block of a plain-tile GEMM ([KC][U] B blocks) from a budget
// in bytes, and with `floored` at least kMinKLanes vectors' lanes. Each K
// block reloads and stores every tile's partial sums: 2 * sizeof(Real) bytes
// per output, one output per lane of the KC vector FMAs that sum into it, so
// 2 * sizeof * W / KC bytes per vector FMA; KC >= 24 W holds that to a third
// of a byte. The longer block's B block lives in L2 (96 KiB at 384 x 64
// floats). Same chains, bitwise (each output sums k in order whatever KC).
// Where a CPU's L1d gives AVX2 less (AMD EPYC family 25 model 1, Zen 3:
// 32 KiB L1d, cpuid KC 128), the floor lifts both the weight-gradient and
// the dx/dh blocks to 192: 1 thread, backward, builds side by side (floor
// 24 W against 16 W), LSTM N=16 H=256 1.086x, N=64 H=256 1.073x, N=64
// H=1024 1.020x, N=16 H=1024 1.014x; GRU N=64 H=256 1.065x, H=1024 1.136x;
// Elman N=64 H=256 1.020x. A floor of 48 W (KC 384) there: 0.95-1.07x, mixed.
constexpr int64_t kMinKLanes = 24;
template <class V>
int64_t plain_k_block(int64_t budget_bytes, bool floored) {
    const int64_t row_bytes = PlainTile<V>::U * int64_t{sizeof(typename V::T)};
    const int64_t kc = block_from_bytes(budget_bytes, row_bytes, 16, 8192, 8);
    return floored ? max_i(kc, kMinKLanes * V::W) : kc;
}

// acc[i][c] (+)= sum_k dg[k][i] * B[k][c] over rows [r0, r0 + rows) of dg^T
// (its columns), B's row k given by a pointer per row (b_row). K is walked in
// blocks of KC so that the A and B blocks stay in cache across tiles. Tiles
// are numbered chunk by chunk of IC row tiles, column block by column block
// within a chunk: consecutive tiles share their B block ([KC][U], L1/L2)
// and a chunk's A columns ([KC][IC*MR], L2) serve every column block.
template <class V>
struct WeightGrad {
    using Real = typename V::T;
    using Tile = PlainTile<V>;
    static constexpr int MR = Tile::MR, NV = Tile::NV, U = Tile::U;
    // The blocks, from the CPU's budgets (KernelParams: wg_b_bytes, wg_a_bytes).
    //
    // Where the whole output (rows x cols) fits in L2 the partial sums' round
    // trip per K block (plain_k_block) is cheap, and the B block stays in L1
    // (wg_b_bytes). Where it does not (LSTM C = H = 1024 floats: 16 MiB), the
    // sums come back from L3 or DRAM, and KC takes the floor. Intel Xeon
    // (family 6 model 167: 48 KiB L1d, 2 MiB L2), 1 thread, LSTM N=64
    // C=H=1024 T=20 backward (and N=16 T=50), float32, by K block: AVX-512
    // (cpuid KC 96) KC 192 1.05-1.07x, 384 1.07-1.10x, 768 1.04x; AVX2 (cpuid
    // KC 192, already 24 W) KC 384 0.92-0.94x, 768 0.91-0.92x.
    static bool big_output(int64_t rows, int64_t cols) {
        return rows * cols * int64_t{sizeof(Real)} > assumed_l2();
    }
    int64_t KC, IC;
    WeightGrad(const KernelParams& kp, bool big)
        : KC(plain_k_block<V>(kp.wg_b_bytes, big)),
          IC(block_from_bytes(kp.wg_a_bytes, KC * MR * int64_t{sizeof(Real)}, 1, 4096, 1)) {}
    // The blocks for an output of rows x cols.
    WeightGrad(const KernelParams& kp, int64_t rows, int64_t cols) : WeightGrad(kp, big_output(rows, cols)) {}
    // Per-thread scratch: the B block [KC][U], then the chunk's packed A tiles [IC][KC][MR].
    int64_t scratch() const { return KC * U + IC * KC * MR; }

    // Row tile i and column block cb of tile number `tile`.
    void tile_at(int64_t tile, int64_t i_tiles, int64_t blocks, int64_t& i, int64_t& cb) const {
        const int64_t chunk = tile / (IC * blocks), r = tile % (IC * blocks);
        const int64_t i_begin = chunk * IC, ic = min_i(IC, i_tiles - i_begin);
        cb = r / ic;
        i = i_begin + r % ic;
    }

    // For each own tile (row tile i, column block cb) of the padded accumulator
    // acc [tiles_i*MR][blocks*U]: all K blocks, then copy the valid part to out.
    // When cols is a multiple of U, the tiles accumulate in out itself (a tile
    // writes only its mr valid rows) and acc is not touched. With `accumulate`,
    // the chains start from out's values (acc is loaded from out first).
    static bool direct(int64_t cols) { return cols % U == 0; }

    // bpack: this thread's [KC][U] buffer. Each B block is copied there,
    // contiguous, when the column block changes (every IC tiles at most): its
    // rows lie C or H values apart, a multiple of 4 KB for C, H = 1024, so
    // that read in place they fall into the same few L1 sets and the block
    // is evicted from L1 while the IC tiles that share it run.
    //
    // b_row(k, cb): B row k's U values of column block cb, or null for a row
    // of zeros (dw_ih's rows at or past a sequence's length: their dgates row
    // is 0 already, but the caller may have left NaN or inf in x there, and
    // 0 * NaN is NaN). Read once per packed B block (a call per row of KC,
    // next to MR*IC fmas per packed value), not in the tiles.
    //
    // The A tiles (columns of dg) are packed per K block and chunk into
    // apack ([IC][KC][MR], pack_a_cols), when the chunk changes.
    template <class BRow>
    void run(Range tiles, int64_t K, int64_t rows, int64_t cols, int64_t blocks, const Real* dg, int64_t ldg,
             BRow&& b_row, bool accumulate, Real* acc, Real* out, Real* scratch_p) const {
        if (direct(cols)) acc = out;
        Real* bpack = scratch_p;
        Real* apack = scratch_p + KC * U;
        const int64_t ldacc = blocks * U, i_tiles = ceil_div(rows, MR);
        if (accumulate && !direct(cols))
            for (int64_t tile = tiles.begin; tile < tiles.end; ++tile) {
                int64_t i, cb;
                tile_at(tile, i_tiles, blocks, i, cb);
                const int64_t r_end = min_i(rows, (i + 1) * MR), c0 = cb * U, c_end = min_i(cols, c0 + U);
                for (int64_t r = i * MR; r < r_end; ++r)
                    for (int64_t c = c0; c < c0 + U; ++c) acc[r * ldacc + c] = c < c_end ? out[r * cols + c] : Real(0);
            }
        for (int64_t k0 = 0; k0 < K;) {
            const int64_t k1 = min_i(K, k0 + KC);
            int64_t packed_cb = -1, packed_chunk = -1;
            for (int64_t tile = tiles.begin; tile < tiles.end; ++tile) {
                int64_t i, cb;
                tile_at(tile, i_tiles, blocks, i, cb);
                const int mr = static_cast<int>(min_i(MR, rows - i * MR));
                const int64_t chunk = tile / (IC * blocks), i_begin = chunk * IC;
                if (chunk != packed_chunk) {
                    pack_a_cols<MR>(dg + k0 * ldg, ldg, i_begin * MR, min_i(IC, i_tiles - i_begin), rows, k1 - k0,
                                    apack);
                    packed_chunk = chunk;
                }
                const Real* a_tile = apack + (i - i_begin) * (k1 - k0) * MR;
                if (cb != packed_cb) {
                    for (int64_t k = 0; k < k1 - k0; ++k) {
                        const Real* b = b_row(k0 + k, cb);
                        for (int v = 0; v < NV; ++v)
                            (b == nullptr ? V::zero() : V::loadu(b + v * V::W)).storeu(bpack + k * U + v * V::W);
                    }
                    packed_cb = cb;
                }
                Real* acc_tile = acc + i * MR * ldacc + cb * U;
                if (k0 > 0 && tile + 1 < tiles.end) {
                    // The next tile's partial sums were last touched a whole K
                    // block ago (16 MiB of them at G*H x C = 4096 x 1024): fetch
                    // them while this tile computes, not when it starts.
                    int64_t i2, cb2;
                    tile_at(tile + 1, i_tiles, blocks, i2, cb2);
                    const Real* next = acc + i2 * MR * ldacc + cb2 * U;
                    const int rows2 = static_cast<int>(min_i(MR, rows - i2 * MR));
                    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(Real));
                    for (int r = 0; r < rows2; ++r)
                        for (int64_t off = 0; off < U; off += line) __builtin_prefetch(next + r * ldacc + off, 1, 3);
                }
                if (k0 == 0 && !accumulate)
                    gemm_tile<V, MR, NV, true, false>(mr, k1 - k0, a_tile, MR, bpack, U, acc_tile, ldacc);
                else
                    gemm_tile<V, MR, NV, true, true>(mr, k1 - k0, a_tile, MR, bpack, U, acc_tile, ldacc);
            }
            k0 = k1;
        }
        if (direct(cols)) return;
        for (int64_t tile = tiles.begin; tile < tiles.end; ++tile) {
            int64_t i, cb;
            tile_at(tile, i_tiles, blocks, i, cb);
            const int64_t r_end = min_i(rows, (i + 1) * MR), c0 = cb * U, c_end = min_i(cols, c0 + U);
            for (int64_t r = i * MR; r < r_end; ++r)
                for (int64_t c = c0; c < c_end; ++c) out[r * cols + c] = acc[r * ldacc + c];
        }
    }
};

template <class V, class Cell>
void sequence_backward(const Dims& d, const BackwardIO<typename V::T>& io, int threads) {
    using Real = typename V::T;
    using Tile = PlainTile<V>;
    constexpr int MR = Tile::MR, NV = Tile::NV, U = Tile::U;
    constexpr int G = Cell::G;
    constexpr bool split_sides = G == 3;   // GRU: dgates (input side) != dgates_hh (recurrent side)
    const int64_t T = d.T, N = d.N, C = d.C, H = d.H, GH = G * H, TN = T * N;
    const int64_t unit_blocks = ceil_div(H, U);   // columns of dh, owned in the loop
    const int64_t c_blocks = ceil_div(C, U);      // columns of dx and dw_ih
    const int64_t g_tiles = ceil_div(GH, MR);     // row tiles of dw_ih and dw_hh
    const bool x_tail = C % U != 0, h_tail = Cell::recurrent_gemm && H % U != 0;

    // Rows of x at or past a sequence's length must not reach dw_ih (see
    // WeightGrad::run); nothing to mask when every sequence is T long.
    bool padded = false;
    for (int64_t n = 0; n < N; ++n) padded = padded || io.lengths[n] < T;

    const double flops_per_step = 4.0 * N * GH * (C + H);
    [[maybe_unused]] const int team = choose_threads(threads, max_i(unit_blocks, g_tiles), flops_per_step, T);
    // K (= G*H) of the recurrent and dx GEMMs runs in blocks of KC, rows of dx
    // in chunks of DX_TILES tiles, so that the operands of each block stay in
    // L2; partial sums live in padded accumulators (one chain per output, k
    // ascending, exactly as unblocked). KC takes plain_k_block's floor, as
    // the weight-gradient GEMMs of large outputs do, here whatever the size
    // (a dx chunk's partial sums are 4 MiB at KC 96, LSTM C = 1024). Intel Xeon
    // (family 6 model 167), AVX-512, 1 thread, backward, KC 384 against the
    // cpuid KC 96 (bwd_b_bytes 98304 against 24576): LSTM N=64 H=256 1.095x,
    // H=1024 1.036x; GRU N=64 H=256 1.089x, H=1024 1.049x; Elman N=64 H=256,
    // N=16 H=256 and H=64 within +-2%. AVX2 (192 = 24 x 8) and SSE2 keep theirs
    // there; on Zen 3 AVX2 moves from 128 to 192 (plain_k_block above).
    const KernelParams kp = kernel_params();
    const int64_t KC = plain_k_block<V>(kp.bwd_b_bytes, true);
    const int64_t DX_TILES = block_from_bytes(kp.dx_a_bytes, KC * MR * int64_t{sizeof(Real)}, 1, 4096, 1);
    const WeightGrad<V> wg_ih(kp, GH, C), wg_hh(kp, GH, H);
    const int64_t wg_scratch = max_i(wg_ih.scratch(), wg_hh.scratch());
    const int64_t ld_dh = unit_blocks * U, ld_dx = c_blocks * U;

    Workspace ws;
    const size_t at_dg = ws.reserve<Real>(TN * GH);                      // [T,N,G*H]
    const size_t at_dg_hh = ws.reserve<Real>(split_sides ? TN * GH : 0);  // [T,N,G*H]
    const size_t at_dh = ws.reserve<Real>(N * H);
    const size_t at_dc = ws.reserve<Real>(Cell::has_c ? N * H : 0);
    const size_t at_dh_z = ws.reserve<Real>(split_sides ? N * H : 0);
    const size_t at_w_hh = ws.reserve<Real>(Cell::recurrent_gemm ? unit_blocks * GH * U : 0);  // [blocks][G*H][U]
    const size_t at_w_ih = ws.reserve<Real>(c_blocks * GH * U);                                 // [blocks][G*H][U]
    const size_t at_x_tail = ws.reserve<Real>(x_tail ? TN * U : 0);       // last columns of x, padded
    const size_t at_h_tail = ws.reserve<Real>(h_tail ? TN * U : 0);       // last columns of h_prev, padded
    const size_t at_acc_ih = ws.reserve<Real>(WeightGrad<V>::direct(C) ? 0 : g_tiles * MR * c_blocks * U);
    const size_t at_acc_hh =
        ws.reserve<Real>(Cell::recurrent_gemm && !WeightGrad<V>::direct(H) ? g_tiles * MR * unit_blocks * U : 0);
    const size_t at_dh_acc = ws.reserve<Real>(Cell::recurrent_gemm ? N * ld_dh : 0);   // [N][blocks*U]
    const size_t at_dx_acc = ws.reserve<Real>(team * DX_TILES * MR * ld_dx);         // per thread
    const size_t at_bpack = ws.reserve<Real>(team * wg_scratch);            // per thread
    // Per thread: packed A tiles (pack_a_rows) of one K block of dgates rows,
    // all N rows of a step (dh) or one chunk of DX_TILES row tiles (dx).
    const int64_t apack_len = max_i(ceil_div(N, MR), DX_TILES) * KC * MR;
    const size_t at_apack = ws.reserve<Real>(team * apack_len);
    // Per dgates row q: its x row (null at padding) and its h_prev row, so that
    // packing a B block reads a pointer per row instead of recomputing m_of(q).
    const size_t at_x_rows = ws.reserve<const Real*>(TN);
    const size_t at_h_rows = ws.reserve<const Real*>(Cell::recurrent_gemm ? TN : 0);
    ws.allocate();
    Real* dg = ws.at<Real>(at_dg);
    Real* dg_hh = split_sides ? ws.at<Real>(at_dg_hh) : dg;
    Real* dh = ws.at<Real>(at_dh);
    Real* dc = ws.at<Real>(at_dc);
    Real* dh_z = ws.at<Real>(at_dh_z);
    Real* w_hh_p = ws.at<Real>(at_w_hh);
    Real* w_ih_p = ws.at<Real>(at_w_ih);
    Real* x_tail_p = ws.at<Real>(at_x_tail);
    Real* h_tail_p = ws.at<Real>(at_h_tail);
    Real* acc_ih = ws.at<Real>(at_acc_ih);
    Real* acc_hh = ws.at<Real>(at_acc_hh);
    Real* dh_acc = ws.at<Real>(at_dh_acc);
    Real* dx_acc_all = ws.at<Real>(at_dx_acc);
    Real* bpack_all = ws.at<Real>(at_bpack);
    Real* apack_all = ws.at<Real>(at_apack);
    const Real** x_rows = ws.at<const Real*>(at_x_rows);
    const Real** h_rows = ws.at<const Real*>(at_h_rows);

    // Row q of dgates (processing order, see the top of this file): step
    // s = T-1 - q/N, batch row n = q%N; its row of x, dy and dx is m_of(q),
    // its h_prev is h0 at s = 0, else the state after step s-1.
    auto m_of = [&](int64_t q) { return t_of(T - 1 - q / N, T, io.reverse) * N + q % N; };
    auto pad_row = [&](int64_t q) { return padded && io.lengths[q % N] <= m_of(q) / N; };
    auto h_prev_row = [&](int64_t q) -> const Real* {
        const int64_t s = T - 1 - q / N, n = q % N;
        return s == 0 ? io.h0 + n * H : io.h + (t_of(s - 1, T, io.reverse) * N + n) * H;
    };
    auto dg_step = [&](Real* base, int64_t s) { return base + (T - 1 - s) * N * GH; };

    run_team(team, [&](const Team& tm) {
        const FlushDenormals ftz;
        if (tm.id() == 0) note_parallel_region(tm.size());
        const int tid = tm.id(), nth = tm.size();
        const Range own = share(unit_blocks, tid, nth);
        const int64_t u_lo = min_i(own.begin * U, H), u_hi = min_i(own.end * U, H);
        Real* apack = apack_all + tid * apack_len;

        // Packing: w_hh's panels for own units; the rest shared out, read after the loop.
        if (Cell::recurrent_gemm)
            for (int64_t b = own.begin; b < own.end; ++b)
                pack_column_panel(io.w_hh, H, GH, H, U, b * U, w_hh_p + b * GH * U);
        const Range cb_share = share(c_blocks, tid, nth);
        for (int64_t cb = cb_share.begin; cb < cb_share.end; ++cb)
            pack_column_panel(io.w_ih, C, GH, C, U, cb * U, w_ih_p + cb * GH * U);
        const Range m_share = share(TN, tid, nth);
        for (int64_t q = m_share.begin; q < m_share.end; ++q) {
            x_rows[q] = pad_row(q) ? nullptr : io.x + m_of(q) * C;
            if (Cell::recurrent_gemm) h_rows[q] = h_prev_row(q);
            if (x_tail) {
                if (pad_row(q))
                    for (int64_t u = 0; u < U; ++u) x_tail_p[q * U + u] = Real(0);   // padding row: zeros
                else
                    pack_column_panel(io.x + m_of(q) * C, C, 1, C, U, (c_blocks - 1) * U, x_tail_p + q * U);
            }
            if (h_tail) pack_column_panel(h_prev_row(q), H, 1, H, U, (unit_blocks - 1) * U, h_tail_p + q * U);
        }

        for (int64_t n = 0; n < N; ++n)
            for (int64_t j = u_lo; j < u_hi; ++j) {
                dh[n * H + j] = io.dh_n[n * H + j];
                if (Cell::has_c) dc[n * H + j] = io.dc_n[n * H + j];
            }

        // The cell's pointwise backward of processing step s, own units.
        auto pointwise = [&](int64_t s) {
            const int64_t t = t_of(s, T, io.reverse);
            const int64_t t_prev = s == 0 ? -1 : t_of(s - 1, T, io.reverse);
            for (int64_t n = 0; n < N; ++n) {
                BackwardRow<Real> p;
                p.dy = io.dy + (t * N + n) * H;
                p.dh = dh + n * H;
                p.dc = dc + n * H;
                p.dh_z = dh_z + n * H;
                p.gates = G > 1 ? io.gates + (t * N + n) * GH : nullptr;
                p.tanh_c = Cell::has_c ? io.tanh_c + (t * N + n) * H : nullptr;
                p.c_prev = Cell::has_c ? (s == 0 ? io.c0 + n * H : io.c + (t_prev * N + n) * H) : nullptr;
                p.h = io.h + (t * N + n) * H;
                p.h_prev = s == 0 ? io.h0 + n * H : io.h + (t_prev * N + n) * H;
                p.hn = split_sides ? io.hn + (t * N + n) * H : nullptr;
                p.w = io.w_hh;
                p.dgates = dg_step(dg, s) + n * GH;
                p.dgates_hh = dg_step(dg_hh, s) + n * GH;
                p.H = H;
                p.act = io.act;
                if (t < io.lengths[n])
                    for_lanes<V>(u_hi - u_lo, [&](auto vx, int64_t a) {
                        Cell::template backward<decltype(vx)>(p, u_lo + a);
                    });
                else
                    for_lanes<V>(u_hi - u_lo, [&](auto vx, int64_t a) {
                        Cell::template backward_carry<decltype(vx)>(p, u_lo + a);
                    });
                // db_ih, db_hh: column sums of dgates (dgates_hh), added while
                // the row is in cache, in the order of the loop (steps in
                // processing order from the last, rows ascending): one order
                // per column whichever thread owns it.
                for (int64_t g = 0; g < G; ++g)
                    for_lanes<V>(u_hi - u_lo, [&](auto vx, int64_t a) {
                        using Vx = decltype(vx);
                        const int64_t j = g * H + u_lo + a;
                        (Vx::loadu(io.db_ih + j) + Vx::loadu(p.dgates + j)).storeu(io.db_ih + j);
                        if (split_sides)
                            (Vx::loadu(io.db_hh + j) + Vx::loadu(p.dgates_hh + j)).storeu(io.db_hh + j);
                    });
            }
        };

        // dh = dgates_hh @ w_hh (+ the cell's direct path) for own units, active rows.
        auto recurrent = [&](int64_t s) {
            const int64_t t = t_of(s, T, io.reverse);
            const Real* dg_t = dg_step(dg_hh, s);
            if (N == 1) {
                // One row: up to NB column blocks per tile over all of K,
                // NB*NV independent FMA chains where one block has NV (FMA
                // latency, not throughput, bounds a lone row). Each output is
                // the same chain in k order as the K-blocked tiles', bitwise.
                constexpr int NB = Tiling::acc_regs / NV > 1 ? Tiling::acc_regs / NV : 1;
                for_block_groups<NB>(own, false, [&](int64_t b, int nb) {
                    row_tile_upto<V, NB, NV>(nb, GH, dg_t, w_hh_p + b * GH * U, U, GH * U, dh_acc + b * U);
                });
            } else
            for (int64_t k0 = 0; k0 < GH; k0 += KC) {
                const int64_t kc = min_i(KC, GH - k0);
                pack_a_rows<MR>(dg_t + k0, GH, N, kc, apack);
                for (int64_t b = own.begin; b < own.end; ++b) {
                    // The panel slice the next (k0, b) reads, prefetched by the tiles but the last.
                    const Real* next = b + 1 < own.end ? w_hh_p + (b + 1) * GH * U + k0 * U
                                       : k0 + KC < GH  ? w_hh_p + own.begin * GH * U + (k0 + KC) * U
                                                       : nullptr;
                    const int shift = prefetch_spread(KC * U * int64_t{sizeof(Real)}, ceil_div(N, MR), kc,
                                                      unit_blocks * GH * U * int64_t{sizeof(Real)});
                    for (int64_t n0 = 0; n0 < N; n0 += MR) {
                        const int mr = static_cast<int>(min_i(MR, N - n0));
                        const Real* a = apack + (n0 / MR) * kc * MR;
                        const Real* bp = w_hh_p + b * GH * U + k0 * U;
                        Real* acc = dh_acc + n0 * ld_dh + b * U;
                        const char* pf = prefetch_slice(next, KC * U * int64_t{sizeof(Real)}, n0 / MR, kc, shift);
                        if (k0 == 0)
                            gemm_tile<V, MR, NV, true, false>(mr, kc, a, MR, bp, U, acc, ld_dh, pf, shift);
                        else
                            gemm_tile<V, MR, NV, true, true>(mr, kc, a, MR, bp, U, acc, ld_dh, pf, shift);
                    }
                }
            }
            for (int64_t b = own.begin; b < own.end; ++b) {
                const int64_t u0 = b * U, valid = min_i(U, H - u0);
                for (int64_t n = 0; n < N; ++n) {
                    if (!(t < io.lengths[n])) continue;
                    BackwardRow<Real> p;
                    p.dh = dh + n * H;
                    p.dh_z = dh_z + n * H;
                    const Real* acc_row = dh_acc + n * ld_dh + u0;
                    for_lanes<V>(valid, [&](auto vx, int64_t a) {
                        Cell::template backward_dh<decltype(vx)>(p, acc_row, u0 + a, a);
                    });
                }
            }
        };

        for (int64_t g = 0; g < G && !io.accumulate; ++g)
            for (int64_t j = g * H + u_lo; j < g * H + u_hi; ++j) {
                io.db_ih[j] = Real(0);
                io.db_hh[j] = Real(0);
            }
        pointwise(T - 1);
        for (int64_t s = T - 1; s >= 0; --s) {
            if constexpr (Cell::recurrent_gemm) {
                tm.barrier();   // dgates of step s complete, for every unit
                recurrent(s);
            }
            if (s > 0) pointwise(s - 1);
        }
        if (!split_sides)
            for (int64_t g = 0; g < G; ++g)
                for (int64_t j = g * H + u_lo; j < g * H + u_hi; ++j) io.db_hh[j] = io.db_ih[j];
        for (int64_t n = 0; n < N; ++n)
            for (int64_t j = u_lo; j < u_hi; ++j) {
                io.dh0[n * H + j] = dh[n * H + j];
                if (Cell::has_c) io.dc0[n * H + j] = dc[n * H + j];
            }
        tm.barrier();   // every dgates row and every packed panel is ready

        // dx = dgates @ w_ih: [T*N, C]. This thread's row tiles in chunks of
        // DX_TILES, K in blocks of KC, every column block per K block.
        const Range row_tiles = share(ceil_div(TN, MR), tid, nth);
        Real* dx_acc = dx_acc_all + tid * DX_TILES * MR * ld_dx;   // [DX_TILES*MR][c_blocks*U]
        for (int64_t i0 = row_tiles.begin; i0 < row_tiles.end; i0 += DX_TILES) {
            const int64_t i1 = min_i(row_tiles.end, i0 + DX_TILES);
            for (int64_t k0 = 0; k0 < GH; k0 += KC) {
                const int64_t kc = min_i(KC, GH - k0);
                pack_a_rows<MR>(dg + i0 * MR * GH + k0, GH, min_i(TN, i1 * MR) - i0 * MR, kc, apack);
                for (int64_t cb = 0; cb < c_blocks; ++cb) {
                    // The panel slice the next (k0, cb) reads, prefetched by the tiles but the last.
                    const Real* next = cb + 1 < c_blocks ? w_ih_p + (cb + 1) * GH * U + k0 * U
                                       : k0 + KC < GH    ? w_ih_p + (k0 + KC) * U
                                                         : nullptr;
                    const int shift = prefetch_spread(KC * U * int64_t{sizeof(Real)}, i1 - i0, kc,
                                                      c_blocks * GH * U * int64_t{sizeof(Real)});
                    for (int64_t i = i0; i < i1; ++i) {
                        const int64_t m0 = i * MR;
                        const int mr = static_cast<int>(min_i(MR, TN - m0));
                        const Real* a = apack + (i - i0) * kc * MR;
                        const Real* bp = w_ih_p + cb * GH * U + k0 * U;
                        Real* acc = dx_acc + (i - i0) * MR * ld_dx + cb * U;
                        const char* pf = prefetch_slice(next, KC * U * int64_t{sizeof(Real)}, i - i0, kc, shift);
                        if (k0 == 0)
                            gemm_tile<V, MR, NV, true, false>(mr, kc, a, MR, bp, U, acc, ld_dx, pf, shift);
                        else
                            gemm_tile<V, MR, NV, true, true>(mr, kc, a, MR, bp, U, acc, ld_dx, pf, shift);
                    }
                }
            }
            const int64_t q_end = min_i(TN, i1 * MR);
            for (int64_t q = i0 * MR; q < q_end; ++q) {
                const Real* acc_row = dx_acc + (q - i0 * MR) * ld_dx;
                Real* dx_row = io.dx + m_of(q) * C;
                for_lanes<V>(C, [&](auto vx, int64_t a) {
                    using Vx = decltype(vx);
                    Vx::loadu(acc_row + a).storeu(dx_row + a);
                });
            }
        }

        // dw_ih = dgates^T @ x: [G*H, C], rows of x in dgates' (processing) order
        wg_ih.run(share(g_tiles * c_blocks, tid, nth), TN, GH, C, c_blocks, dg, GH,
                           [&](int64_t q, int64_t cb) -> const Real* {
                               if (x_tail && cb == c_blocks - 1) return x_tail_p + q * U;
                               return x_rows[q] == nullptr ? nullptr : x_rows[q] + cb * U;
                           },
                           io.accumulate, acc_ih, io.dw_ih, bpack_all + tid * wg_scratch);

        // dw_hh = dgates_hh^T @ h_prev: [G*H, H]; IndRNN: sum over rows of dgates * h_prev: [H]
        if constexpr (Cell::recurrent_gemm) {
            wg_hh.run(share(g_tiles * unit_blocks, tid, nth), TN, GH, H, unit_blocks, dg_hh, GH,
                               [&](int64_t q, int64_t cb) -> const Real* {
                                   if (h_tail && cb == unit_blocks - 1) return h_tail_p + q * U;
                                   return h_rows[q] + cb * U;
                               },
                               io.accumulate, acc_hh, io.dw_hh, bpack_all + tid * wg_scratch);
        } else {
            const Range cols = share(unit_blocks, tid, nth);
            const int64_t j0 = min_i(cols.begin * U, H), j1 = min_i(cols.end * U, H);
            for_lanes<V>(j1 - j0, [&](auto vx, int64_t a) {
                using Vx = decltype(vx);
                Vx sum = io.accumulate ? Vx::loadu(io.dw_hh + j0 + a) : Vx::zero();
                for (int64_t q = 0; q < TN; ++q)
                    sum = fma(Vx::loadu(dg + q * H + j0 + a), Vx::loadu(h_prev_row(q) + j0 + a), sum);
                sum.storeu(io.dw_hh + j0 + a);
            });
        }
    });
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
