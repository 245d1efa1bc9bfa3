// The forward sequence level, shared by all cells: pack the weights once, one
// GEMM for the input side of all T steps (inference: of a chunk of steps, to
// keep O(N*H) memory), then per step the recurrent GEMM with the cell's gate
// math in its epilogue. Where fuse_input() says so (LSTM and Elman, N >= 16,
// small panels), there is no input GEMM: each step's tiles run over
// [x_t, h_prev] against one packed [w_ih; w_hh] panel. One parallel region
// per call; each thread owns a fixed range of blocks of hidden units (all G
// gates of them: the packed panels interleave gates by unit block), computes
// their input side, gates, c and h itself, and meets the others at one
// barrier per step.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

// Block b's panel (panels panel_stride values apart, K rows of ldp values)
// against every row tile of rt, in k slices of kb rows: A packed per tile
// (a_stride values from one tile to the next, MR per k), the sums in out's
// rows rt.begin(t) (ldp apart), started by the first slice and continued by
// the others (one FMA chain in k order). Each slice's tiles but the last
// prefetch the slice after it (next_bytes of it, spread by prefetch_spread
// where all blocks' panels come to streamed_bytes): the rest of this panel,
// else the first rows of the next own block's.
template <class V, int MR, int NV, class Real>
inline void panel_tiles(const RowTiles<MR>& rt, const Real* apack, int64_t a_stride, const Real* panels,
                        int64_t panel_stride, int64_t b, Range own, int64_t K, int64_t kb, int64_t ldp, Real* out,
                        int64_t next_bytes, int64_t streamed_bytes) {
    const Real* panel = panels + b * panel_stride;
    for (int64_t k0 = 0; k0 < K;) {
        const int64_t k1 = min_i(K, k0 + kb);
        const Real* next = k1 < K ? panel + k1 * ldp : b + 1 < own.end ? panels + (b + 1) * panel_stride : nullptr;
        const int shift = prefetch_spread(next_bytes, rt.tiles, k1 - k0, streamed_bytes);
        for (int64_t t = 0; t < rt.tiles; ++t) {
            const int mr = rt.count(t);
            const char* pf = prefetch_slice(next, next_bytes, t, k1 - k0, shift);
            const Real* a = apack + t * a_stride + k0 * MR;
            Real* o = out + rt.begin(t) * ldp;
            if (k0 == 0)
                gemm_tile<V, MR, NV, true, false>(mr, k1 - k0, a, MR, panel + k0 * ldp, ldp, o, ldp, pf, shift);
            else
                gemm_tile<V, MR, NV, true, true>(mr, k1 - k0, a, MR, panel + k0 * ldp, ldp, o, ldp, pf, shift);
        }
        k0 = k1;
    }
}

// xw[m][g*H + u] = x[m] . w_ih[g*H + u] + bias[g*H + u] for rows m in [0, rows)
// and the units of blocks `own`. apack: this thread's [MC/MR][C][MR] (the
// chunk's rows of x, packed), acc: its [MC][G][U] sums; kb: the k slice
// (step_k_block over C, 0 = all of C).
template <class V, int G, class Real>
void input_gemm(Range own, int64_t rows, int64_t C, int64_t H, const Real* x, const Real* w_ih_p,
                const Real* bias, Real* xw, int64_t KI, int64_t kb, Real* apack, Real* acc) {
    using Tile = GateTile<V, G>;
    constexpr int U = Tile::U, NV = Tile::NV, MR = Tile::MR;
    constexpr int64_t MC = input_chunk_rows<MR>();
    const int64_t GH = G * H;
    if (kb <= 0) kb = C;
    // Rows in chunks of MC, packed once per chunk ([tile][C][MR]: one stream
    // per tile; in place the rows lie C values apart, 4 KB at C = 1024, all
    // in one L1 set). For each own block, its panel ([C][G][U], 256 KB at
    // C = 1024) in k slices of kb rows (16 KB: L1) that every row tile of the
    // chunk reads before the next slice, the sums waiting in acc; all tiles
    // but the last prefetch the next slice into L2, a share each
    // (prefetch_spread). Read whole by each tile instead, the panel
    // streamed from L2 once per tile (the step tiles' k slices, see
    // step_k_block; A/B in docs/performance.md, round 6). Every output is
    // still one FMA chain over k ascending, bitwise the unsliced one.
    for (int64_t mc = 0; mc < rows; mc += MC) {
        const RowTiles<MR> rt(min_i(MC, rows - mc));
        pack_a_tiles<MR>(x + mc * C, C, rt, C, apack);
        for (int64_t b = own.begin; b < own.end; ++b) {
            panel_tiles<V, MR, NV>(rt, apack, C * MR, w_ih_p, KI * G * U, b, own, C, kb, G * U, acc,
                                   min_i(kb, C) * G * U * int64_t{sizeof(Real)},
                                   ceil_div(H, U) * C * G * U * int64_t{sizeof(Real)});
            const int64_t u0 = b * U, valid = min_i(U, H - u0);
            for (int64_t r = 0; r < rt.rows; ++r)
                for (int g = 0; g < G; ++g) {
                    const Real* acc_g = acc + r * G * U + g * U;
                    const Real* bias_g = bias + g * H + u0;
                    Real* out = xw + (mc + r) * GH + g * H + u0;
                    for_lanes<V>(valid, [&](auto vx, int64_t a) {
                        using Vx = decltype(vx);
                        (Vx::loadu(acc_g + a) + Vx::loadu(bias_g + a)).storeu(out + a);
                    });
                }
        }
    }
}

// The same for tiny calls (direct_weights): dot products with the rows of the
// unpacked w_ih [G*H, C].
template <class V, int G, class Real>
void input_dot(Range own, int64_t rows, int64_t C, int64_t H, const Real* x, const Real* w_ih,
               const Real* bias, Real* xw) {
    constexpr int U = GateTile<V, G>::U;
    const int64_t GH = G * H;
    for (int64_t m = 0; m < rows; ++m)
        for (int64_t b = own.begin; b < own.end; ++b) {
            const int64_t u0 = b * U, valid = min_i(U, H - u0);
            for (int g = 0; g < G; ++g) {
                Real* out = xw + m * GH + g * H + u0;
                dot_rows_n<V>(valid, C, x + m * C, w_ih + (g * H + u0) * C, C, out);
                const Real* bias_g = bias + g * H + u0;
                for_lanes<V>(valid, [&](auto vx, int64_t a) {
                    using Vx = decltype(vx);
                    (Vx::loadu(out + a) + Vx::loadu(bias_g + a)).storeu(out + a);
                });
            }
        }
}

template <class V, class Cell, bool Training>
void sequence_forward(const Dims& d, const ForwardIO<typename V::T>& io, int threads) {
    using Real = typename V::T;
    constexpr int G = Cell::G;
    using Tile = GateTile<V, G>;
    constexpr int U = Tile::U, NV = Tile::NV, MR = Tile::MR;
    const int64_t T = d.T, N = d.N, C = d.C, H = d.H, GH = G * H;
    const int64_t blocks = ceil_div(H, U);
    const int64_t Tc = Training ? T : chunk_steps(T, N);
    // No packing: dot products with w_ih, w_hh (or the caller's choice, see ForwardIO::weights).
    const bool direct = io.weights == 0 ? direct_weights(T, N) : io.weights == 1;
    // Fused: each step's tiles also do the input side (no input GEMM ahead).
    const bool fused = Cell::fusable && !direct && fuse_input(N, C, H, G * U * sizeof(Real), G, sizeof(Real));
    const int64_t KI = fused ? C + H : C;   // rows of a packed input panel: [x; h] when fused

    Workspace ws;
    const size_t at_w_ih = ws.reserve<Real>(direct ? 0 : blocks * KI * G * U);   // [blocks][KI][G][U]
    const size_t at_w_hh = ws.reserve<Real>(Cell::recurrent_gemm && !direct && !fused ? blocks * H * G * U : 0);
    const size_t at_bias = ws.reserve<Real>(GH);                   // [G*H] input-side bias
    const size_t at_xw = ws.reserve<Real>(Training || fused ? 0 : Tc * N * GH);
    const size_t at_hbuf = ws.reserve<Real>(Training ? 0 : 2 * N * H);
    const size_t at_cbuf = ws.reserve<Real>(!Training && Cell::has_c ? N * H : 0);
    // K-blocked step tiles (step_k_block): per thread, one block's sums for all N rows.
    const KernelParams kp = kernel_params();
    const int64_t kb = Cell::recurrent_gemm && !direct && N > 1
                           ? step_k_block(kp, fused ? C + H : H, G * U * int64_t{sizeof(Real)})
                           : 0;
    const size_t at_kacc = ws.reserve<Real>(kb > 0 ? int64_t{threads < 1 ? 1 : threads} * N * G * U : 0);
    // The sliced tiles' A operand ([x_t; h_prev] rows, or h_prev), packed per
    // step and thread as [N/MR][K][MR] (pack_a_rows): one sequential stream
    // per tile instead of MR rows C or H values apart, which at C = H = 1024
    // lie 4 KB apart (one L1 set) and, read 1.5 KB per slice, are too short
    // for the prefetchers.
    const int64_t K_step = fused ? C + H : H;
    const int64_t a_tiles = ceil_div(N, MR);
    const size_t at_apack = ws.reserve<Real>(kb > 0 ? int64_t{threads < 1 ? 1 : threads} * a_tiles * K_step * MR : 0);
    // The input GEMM's per-thread packed rows of x and sums (input_gemm).
    const bool in_gemm = !fused && !direct;
    const int64_t team_max = threads < 1 ? 1 : threads;
    const int64_t in_kb = in_gemm ? step_k_block(kp, C, G * U * int64_t{sizeof(Real)}) : 0;
    const size_t at_in_apack = ws.reserve<Real>(in_gemm ? team_max * input_chunk_rows<MR>() * C : 0);
    const size_t at_in_acc = ws.reserve<Real>(in_gemm ? team_max * input_chunk_rows<MR>() * G * U : 0);
    ws.allocate();
    Real* w_ih_p = ws.at<Real>(at_w_ih);
    Real* w_hh_p = ws.at<Real>(at_w_hh);
    Real* bias = ws.at<Real>(at_bias);
    Real* xw_buf = Training ? Cell::xw_cache(io) : ws.at<Real>(at_xw);
    Real* hbuf = ws.at<Real>(at_hbuf);     // inference: two [N,H] states, ping-pong
    Real* cbuf = ws.at<Real>(at_cbuf);     // inference LSTM: [N,H], updated in place
    Real* kacc_all = ws.at<Real>(at_kacc);
    Real* apack_all = ws.at<Real>(at_apack);
    Real* in_apack_all = ws.at<Real>(at_in_apack);
    Real* in_acc_all = ws.at<Real>(at_in_acc);

    const double flops_per_step = 2.0 * N * GH * (C + (Cell::recurrent_gemm ? H : 1));
    [[maybe_unused]] const int team = choose_threads(threads, blocks, flops_per_step, T);
    run_team(team, [&](const Team& tm) {
        const FlushDenormals ftz;
        if (tm.id() == 0) note_parallel_region(tm.size());
        const Range own = share(blocks, tm.id(), tm.size());
        const int64_t u_lo = min_i(own.begin * U, H), u_hi = min_i(own.end * U, H);

        // Pack what this thread will read: its own panels only.
        for (int64_t b = own.begin; b < own.end && !direct; ++b) {
            pack_gate_panel<V>(io.w_ih, G, H, C, U, b * U, w_ih_p + b * KI * G * U);
            if (fused)
                pack_gate_panel<V>(io.w_hh, G, H, H, U, b * U, w_ih_p + b * KI * G * U + C * G * U);
            else if (Cell::recurrent_gemm)
                pack_gate_panel<V>(io.w_hh, G, H, H, U, b * U, w_hh_p + b * H * G * U);
        }
        for (int64_t g = 0; g < G; ++g)
            for (int64_t j = u_lo; j < u_hi; ++j) bias[g * H + j] = Cell::input_bias(io.b_ih, io.b_hh, g * H + j, H);

        int64_t chunk_t0 = 0;  // first time step whose input side is in xw_buf
        for (int64_t s = 0; s < T; ++s) {
            const int64_t t = t_of(s, T, io.reverse);
            if (s % Tc == 0 && !fused) {
                const int64_t steps = min_i(Tc, T - s);
                chunk_t0 = io.reverse ? t - steps + 1 : t;
                Real* xw_chunk = xw_buf + (Training ? chunk_t0 * N * GH : 0);
                if (direct)
                    input_dot<V, G>(own, steps * N, C, H, io.x + chunk_t0 * N * C, io.w_ih, bias, xw_chunk);
                else
                    input_gemm<V, G>(own, steps * N, C, H, io.x + chunk_t0 * N * C, w_ih_p, bias, xw_chunk, KI,
                                     in_kb, in_apack_all + tm.id() * input_chunk_rows<MR>() * C,
                                     in_acc_all + tm.id() * input_chunk_rows<MR>() * G * U);
            }
            // The input side of row n is xw[n * xw_ld]: x_t @ w_ih.T + biases
            // ([N][G*H]), or when fused the biases alone (the sums hold x_t @ w_ih.T).
            const Real* xw = fused ? bias : xw_buf + (Training ? t : t - chunk_t0) * N * GH;
            const int64_t xw_ld = fused ? 0 : GH;
            const int64_t t_prev = s == 0 ? -1 : t_of(s - 1, T, io.reverse);
            const Real* h_prev = s == 0 ? io.h0 : Training ? io.h + t_prev * N * H : hbuf + (s % 2) * N * H;
            Real* h_out = Training ? io.h + t * N * H : hbuf + ((s + 1) % 2) * N * H;
            const Real* c_prev = nullptr;
            Real* c_out = nullptr;
            if (Cell::has_c) {
                c_prev = s == 0 ? io.c0 : Training ? io.c + t_prev * N * H : cbuf;
                c_out = Training ? io.c + t * N * H : cbuf;
            }

            // The epilogue of one row of one tile: the cell's gate math on lanes
            // [u0, u0 + valid), or the carry of an inactive step.
            auto step_row = [&](int64_t n, int64_t b, const Real* acc_row) {
                ForwardRow<Real> p;
                p.acc = acc_row;
                p.U = U;
                p.xw = xw + n * xw_ld;
                p.h_prev = h_prev + n * H;
                p.h = h_out + n * H;
                p.y = io.y + (t * N + n) * H;
                p.c_prev = Cell::has_c ? c_prev + n * H : nullptr;
                p.c = Cell::has_c ? c_out + n * H : nullptr;
                p.gates = Training && G > 1 ? io.gates + (t * N + n) * GH : nullptr;
                p.tanh_c = Training && Cell::has_c ? io.tanh_c + (t * N + n) * H : nullptr;
                p.hn = Training && io.hn ? io.hn + (t * N + n) * H : nullptr;
                p.w = Cell::recurrent_gemm ? io.b_hh : io.w_hh;
                p.H = H;
                p.act = io.act;
                const int64_t u0 = b * U, valid = min_i(U, H - u0);
                if (t < io.lengths[n]) {
                    for_lanes<V>(valid, [&](auto vx, int64_t a) {
                        Cell::template forward<Training, decltype(vx)>(p, u0 + a, a);
                    });
                } else {
                    for_lanes<V>(valid, [&](auto vx, int64_t a) {
                        Cell::template carry<Training, decltype(vx)>(p, u0 + a);
                    });
                }
            };

            if constexpr (Cell::recurrent_gemm) {
                if (direct) {
                    // acc[g*U + u] = h_prev[n] . w_hh[g*H + u0 + u], unpacked rows.
                    for (int64_t n = 0; n < N; ++n)
                        for (int64_t b = own.begin; b < own.end; ++b) {
                            alignas(64) Real acc[G * U] = {};
                            const int64_t u0 = b * U, valid = min_i(U, H - u0);
                            for (int g = 0; g < G; ++g)
                                dot_rows_n<V>(valid, H, h_prev + n * H, io.w_hh + (g * H + u0) * H, H,
                                              acc + g * U);
                            step_row(n, b, acc);
                        }
                } else if (N == 1) {
                    // In a team, the other threads wrote part of h_prev: ask
                    // for all its lines now, so that their transfers overlap
                    // instead of stalling the k loop one by one. A/B, 2
                    // threads, inference N=1 H=256: RNN +6.6 to 7.8%, GRU
                    // +9.4% with the two vCPUs 400 ns apart; within 2.5%
                    // either way at 70-90 ns. (The same for backward's
                    // dgates row, or for N > 1: within 1% at 80-90 ns.)
                    if (tm.size() > 1)
                        for (int64_t k = 0; k < H; k += 64 / int64_t{sizeof(Real)})
                            __builtin_prefetch(h_prev + k, 0, 3);
                    // One row: up to NB blocks per tile, NB*NV independent FMA
                    // chains (bitwise the one-block tiles' results).
                    constexpr int NB = Tiling::acc_regs / NV > 1 ? Tiling::acc_regs / NV : 1;
                    // Odd steps walk the blocks backwards: the panels read
                    // last are read first next step, while still in L2 (a
                    // cyclic sweep of a w_hh as large as L2, 1 MiB at LSTM
                    // H = 256, would miss on every line). Which thread and
                    // which order never change a unit's sums.
                    for_block_groups<NB>(own, s & 1, [&](int64_t b, int nb) {
                        alignas(64) Real acc[NB * NV * V::W];
                        row_tile_upto<V, NB, NV>(nb, H, h_prev, w_hh_p + b * H * G * U, G * U, H * G * U, acc);
                        for (int i = 0; i < nb; ++i) step_row(0, b + i, acc + i * G * U);
                    });
                } else if (kb > 0) {
                // K-blocked: for each own block, the k rows of its panel in
                // slices of kb (kb*G*U values, 16 KB at LSTM floats with
                // kb = 128: L1) serve every row tile before the next slice;
                // the sums of all N rows wait in kacc between slices. The
                // FMA chain of every output still runs k ascending over
                // [x_t; h_prev] (fused) or h_prev, bitwise the unblocked one.
                Real* kacc = kacc_all + tm.id() * N * G * U;
                const int64_t K_all = K_step;
                const Real* panels = fused ? w_ih_p : w_hh_p;
                const int64_t panel_k = fused ? KI : H;
                Real* apack = apack_all + tm.id() * a_tiles * K_step * MR;
                const RowTiles<MR> rt(N);
                if (fused) {
                    pack_a_tiles<MR>(io.x + t * N * C, C, rt, C, apack, K_step * MR);
                    pack_a_tiles<MR>(h_prev, H, rt, H, apack + C * MR, K_step * MR);
                } else {
                    pack_a_tiles<MR>(h_prev, H, rt, H, apack, K_step * MR);
                }
                for (int64_t b = own.begin; b < own.end; ++b) {
                    panel_tiles<V, MR, NV>(rt, apack, K_step * MR, panels, panel_k * G * U, b, own, K_all, kb,
                                           G * U, kacc, kb * G * U * int64_t{sizeof(Real)},
                                           blocks * panel_k * G * U * int64_t{sizeof(Real)});
                    for (int64_t n = 0; n < N; ++n) step_row(n, b, kacc + n * G * U);
                }
                } else {
                // Block-outer: one block's panel ([H][G][U]) stays in L1/L2 for
                // every row tile, and h_prev ([N,H]) stays in L2; the first
                // tiles prefetch the next block's panel.
                for (int64_t b = own.begin; b < own.end; ++b) {
                    const Real* next = b + 1 < own.end && !fused ? w_hh_p + (b + 1) * H * G * U : nullptr;
                    const RowTiles<MR> rt(N);
                    for (int64_t ti = 0; ti < rt.tiles; ++ti) {
                        const int64_t n0 = rt.begin(ti);
                        const char* pf = prefetch_slice(next, H * G * U * int64_t{sizeof(Real)}, ti, H);
                        const int mr = rt.count(ti);
                        alignas(64) Real acc[MR * NV * V::W];   // h_prev @ w_hh.T, rows n0.., block b
                        if (fused) {
                            // x_t @ w_ih.T, then h_prev @ w_hh.T into the same
                            // sums: one FMA chain per output over k < C + H.
                            const Real* panel = w_ih_p + b * KI * G * U;
                            gemm_tile<V, MR, NV, false, false>(mr, C, io.x + (t * N + n0) * C, C, panel,
                                                               G * U, acc, G * U);
                            gemm_tile<V, MR, NV, false, true>(mr, H, h_prev + n0 * H, H, panel + C * G * U,
                                                              G * U, acc, G * U);
                        } else {
                            gemm_tile<V, MR, NV, false, false>(mr, H, h_prev + n0 * H, H,
                                                               w_hh_p + b * H * G * U, G * U, acc, G * U, pf);
                        }
                        for (int r = 0; r < mr; ++r) step_row(n0 + r, b, acc + r * G * U);
                    }
                }
                }
                if (s + 1 < T) tm.barrier();   // the next step reads every unit of h
            } else {
                for (int64_t n = 0; n < N; ++n)
                    for (int64_t b = own.begin; b < own.end; ++b) step_row(n, b, nullptr);
            }
        }

        // The final state: this thread's units of the state after the last step.
        const int64_t t_last = t_of(T - 1, T, io.reverse);
        const Real* h_last = Training ? io.h + t_last * N * H : hbuf + (T % 2) * N * H;
        const Real* c_last = Cell::has_c ? (Training ? io.c + t_last * N * H : cbuf) : nullptr;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t j = u_lo; j < u_hi; ++j) {
                io.h_n[n * H + j] = h_last[n * H + j];
                if (Cell::has_c) io.c_n[n * H + j] = c_last[n * H + j];
            }
    });
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
