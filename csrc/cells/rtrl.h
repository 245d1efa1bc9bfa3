// RTRL at the sequence level for the Elman RNN (exact, simplified, diag),
// IndRNN (exact), LSTM and GRU (exact, diag): the native twin of
// python/rnnkit/reference/rtrl.py, the equations in docs/rtrl.md. Not BPTT:
// nothing here runs backward in time.
//
// A call runs in two phases, in one parallel region:
//  1. the forward recurrence (the input side as one GEMM over all T*N rows,
//     then the steps, threads owning sequences), keeping per step the state
//     before it (h_prev) and the activation's derivative d = dh/da;
//  2. the sensitivity recursion, which given d and h_prev is linear and splits
//     into independent pieces: columns of S (exact Elman: a column block of
//     one GEMM per step, S_t = d_t * (W_hh S_{t-1} + own z)) or units
//     (the approximate modes). Each piece runs all sequences and all
//     steps of the call while its slice of S stays in L1, and accumulates its
//     own gradient entries over sequences and steps in a fixed order.
// IndRNN exact runs its own loop instead (run_indrnn): blocks of steps, each
// a forward, a backward sweep and two GEMMs over the block.
// Work is split over outputs only, so results never depend on the team size.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

template <class V>
struct RtrlKernels {
    using Real = typename V::T;
    static constexpr int NV = Tiling::plain_nv;
    static constexpr int BW = NV * V::W;                 // columns of a GEMM tile / S block
    static constexpr int MR = Tiling::acc_regs / NV;     // rows of a GEMM tile

    // out[m][c] = sum_k x[m][k] * w[c][k] for m < M, c < Hc: the input side,
    // one FMA chain in k order per element (never dependent on M or tiling,
    // so a chunk of a stream gets the bits of the whole). panels: ceil(Hc/BW)*C*BW.
    static void input_gemm(const Team& tm, int64_t M, int64_t C, int64_t Hc, const Real* x, const Real* w,
                           Real* panels, Real* out) {
        const int64_t nbc = ceil_div(Hc, BW);
        const Range pr = share(nbc, tm.id(), tm.size());
        for (int64_t b = pr.begin; b < pr.end; ++b) pack_gate_panel<V>(w, 1, Hc, C, BW, b * BW, panels + b * C * BW);
        tm.barrier();
        // Work items: chunks of MC rows by column blocks, the chunk outer so
        // its rows of x (MC*C values) stay in L2 while it sweeps the blocks;
        // within an item, k slices of KC outer and the chunk's row tiles
        // inner, so the panel's slice (KC*BW values, 16 KB) stays in L1 for
        // all of them. It streamed from L2 once per row tile when the tiles
        // ran whole-K (a 32 KB panel at C = 256 floats). A slice continues
        // the chain of the one before (acc stored, reloaded: exact), so each
        // output is still one FMA chain in k order.
        constexpr int64_t MC = 16 * MR;
        constexpr int64_t KC = (int64_t{16} << 10) / (BW * int64_t{sizeof(Real)});
        const int64_t nch = ceil_div(M, MC);
        const Range r = share(nch * nbc, tm.id(), tm.size());
        alignas(64) Real cb[MC * BW];
        for (int64_t it = r.begin; it < r.end; ++it) {
            const int64_t ch = it / nbc, b = it % nbc;
            const int64_t mlo = ch * MC, mrows = min_i(MC, M - mlo), c0 = b * BW;
            const int64_t valid = min_i(BW, Hc - c0);
            const Real* pan = panels + b * C * BW;
            // A whole block's tiles go straight to out (a copy per row from a
            // buffer cost 14% of this GEMM); the last, partial one through cb.
            const bool direct = valid == BW;
            Real* dst = direct ? out + mlo * Hc + c0 : cb;
            const int64_t ldd = direct ? Hc : BW;
            for (int64_t k0 = 0; k0 < C; k0 += KC) {
                const int64_t kc = min_i(KC, C - k0);
                for (int64_t m0 = 0; m0 < mrows; m0 += MR) {
                    const int mr = static_cast<int>(min_i(MR, mrows - m0));
                    const Real* a = x + (mlo + m0) * C + k0;
                    if (k0 == 0)
                        gemm_tile<V, MR, NV, false, false>(mr, kc, a, C, pan, BW, dst + m0 * ldd, ldd);
                    else
                        gemm_tile<V, MR, NV, false, true>(mr, kc, a, C, pan + k0 * BW, BW, dst + m0 * ldd, ldd);
                }
            }
            if (!direct)
                for (int64_t i = 0; i < mrows; ++i)
                    for (int64_t u = 0; u < valid; ++u) out[(mlo + i) * Hc + c0 + u] = cb[i * BW + u];
        }
        tm.barrier();
    }

    // h = act(a), d = act'(h) from the output, over H lanes.
    static void activate(Act act, int64_t H, const Real* a, Real* h, Real* d) {
        for_lanes<V>(H, [&](auto vx, int64_t i) {
            using Vx = decltype(vx);
            const Vx v = Vx::loadu(a + i);
            const Vx one = Vx::set1(Real(1));
            if (act == Act::tanh) {
                const Vx y = vtanh(v);
                y.storeu(h + i);
                (one - y * y).storeu(d + i);
            } else {
                const Vx y = max(v, Vx::zero());
                y.storeu(h + i);
                select(gt(y, Vx::zero()), one, Vx::zero()).storeu(d + i);
            }
        });
    }

    // Phase 1 for sequences [r.begin, r.end): y, h_n, and per step h_prev,
    // d (and e = W_hh^T (dy * d) for the simplified mode). buf: 4*H per thread.
    static void forward(Cell cell, RtrlMode mode, const Dims& dm, const RtrlIO<Real>& io, const Real* xw,
                        Real* hp, Real* dd, Real* ee, Range r, Real* buf) {
        const int64_t T = dm.T, N = dm.N, H = dm.H;
        Real* h = buf;
        Real* a = buf + H;
        Real* hw = buf + 2 * H;
        Real* hn = buf + 3 * H;
        for (int64_t n = r.begin; n < r.end; ++n) {
            for (int64_t k = 0; k < H; ++k) h[k] = io.h0[n * H + k];
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                const int64_t row = (t * N + n) * H;
                for (int64_t k = 0; k < H; ++k) hp[row + k] = h[k];
                if (t >= io.lengths[n]) {
                    for (int64_t k = 0; k < H; ++k) io.y[row + k] = Real(0), dd[row + k] = Real(0);
                    continue;
                }
                // a = ((x W_ih^T + b_ih) + h W_hh^T) + b_hh, the reference's order
                if (cell == Cell::rnn) {
                    dot_rows_n<V>(H, H, h, io.w_hh, H, hw);
                    for (int64_t k = 0; k < H; ++k) a[k] = ((xw[row + k] + io.b_ih[k]) + hw[k]) + io.b_hh[k];
                } else {
                    for (int64_t k = 0; k < H; ++k)
                        a[k] = ((xw[row + k] + io.b_ih[k]) + io.w_hh[k] * h[k]) + io.b_hh[k];
                }
                activate(io.act, H, a, hn, dd + row);
                for (int64_t k = 0; k < H; ++k) io.y[row + k] = hn[k], h[k] = hn[k];
                if (mode == RtrlMode::simplified) {
                    // e_i = sum_k (dy_k d_k) W_hh[k,i], k in order
                    Real* e = ee + row;
                    for (int64_t i = 0; i < H; ++i) e[i] = Real(0);
                    for (int64_t k = 0; k < H; ++k) {
                        const Real coef = io.dy[row + k] * dd[row + k];
                        const Real* wk = io.w_hh + k * H;
                        for_lanes<V>(H, [&](auto vx, int64_t i) {
                            using Vx = decltype(vx);
                            fma(Vx::set1(coef), Vx::loadu(wk + i), Vx::loadu(e + i)).storeu(e + i);
                        });
                    }
                }
            }
            for (int64_t k = 0; k < H; ++k) io.h_n[n * H + k] = h[k];
        }
    }

    // Phase 2, exact Elman: column block b of S [N,H,P], P = H*K + H.
    // S_t = d_t * (W_hh S_{t-1} + own z), one [H,H]x[H,BW] GEMM per step;
    // w_rows[c] (c < H*K) and dh0 collect sum_t dy_t^T S_t.
    static void exact_block(const Dims& dm, const RtrlIO<Real>& io, const Real* hp, const Real* dd, int64_t b,
                            Real* blk, Real* tmp, Real* acc, Real* w_rows) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const int64_t K = H + C + 1, HK = H * K, P = HK + H;
        const int64_t c0 = b * BW, valid = min_i(BW, P - c0);
        // Each column's own row and z index, once per block (not a division per step).
        int64_t own_i[BW], own_j[BW], n_own = 0;
        for (int64_t u = 0; u < valid && c0 + u < HK; ++u, ++n_own) own_i[u] = (c0 + u) / K, own_j[u] = (c0 + u) % K;
        for (int u = 0; u < BW; ++u) acc[u] = Real(0);
        for (int64_t n = 0; n < N; ++n) {
            for (int64_t k = 0; k < H; ++k)
                for (int64_t u = 0; u < BW; ++u) blk[k * BW + u] = u < valid ? io.S0[(n * H + k) * P + c0 + u] : Real(0);
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                if (t >= io.lengths[n]) continue;   // inactive: S carried
                const int64_t row = (t * N + n) * H;
                const Real* h_prev = hp + row;
                const Real* x_t = io.x + (t * N + n) * C;
                const Real* d = dd + row;
                const Real* dy = io.dy + row;
                for (int64_t k0 = 0; k0 < H; k0 += MR)
                    gemm_tile<V, MR, NV, false, false>(static_cast<int>(min_i(MR, H - k0)), H, io.w_hh + k0 * H, H,
                                                       blk, BW, tmp + k0 * BW, BW);
                // own z: row i of column (i, j) gets z_j = [h_prev; x; 1]_j
                for (int64_t u = 0; u < n_own; ++u) {
                    const int64_t j = own_j[u];
                    tmp[own_i[u] * BW + u] += j < H ? h_prev[j] : j < H + C ? x_t[j - H] : Real(1);
                }
                V g[NV];
                for (int v = 0; v < NV; ++v) g[v] = V::loadu(acc + v * V::W);
                for (int64_t k = 0; k < H; ++k) {
                    const V dk = V::set1(d[k]), yk = V::set1(dy[k]);
                    for (int v = 0; v < NV; ++v) {
                        const V sv = dk * V::loadu(tmp + k * BW + v * V::W);
                        sv.storeu(blk + k * BW + v * V::W);
                        g[v] = fma(yk, sv, g[v]);
                    }
                }
                for (int v = 0; v < NV; ++v) g[v].storeu(acc + v * V::W);
            }
            for (int64_t k = 0; k < H; ++k)
                for (int64_t u = 0; u < valid; ++u) io.S[(n * H + k) * P + c0 + u] = blk[k * BW + u];
            for (int64_t u = 0; u < valid; ++u)
                if (c0 + u >= HK) io.dh0[n * H + (c0 + u - HK)] = acc[u], acc[u] = Real(0);
        }
        for (int64_t u = 0; u < valid; ++u)
            if (c0 + u < HK) w_rows[c0 + u] = acc[u];
    }

    // p[j] = d * (w * p[j] + z[j]) and the gradient row's acc[j] += dy * p[j]
    // (+ coef * p_prev[j], the simplified mode's one-hop term), j < count.
    template <bool OneHop>
    static void unit_update(int64_t count, Real* p, const Real* z, Real dz_one, bool z_is_one, Real d, Real w,
                            Real dy, Real coef, Real* acc) {
        for_lanes<V>(count, [&](auto vx, int64_t j) {
            using Vx = decltype(vx);
            const Vx po = Vx::loadu(p + j);
            const Vx zj = z_is_one ? Vx::set1(dz_one) : Vx::loadu(z + j);
            const Vx pn = Vx::set1(d) * (Vx::set1(w) * po + zj);
            Vx g = fma(Vx::set1(dy), pn, Vx::loadu(acc + j));
            if constexpr (OneHop) g = fma(Vx::set1(coef), po, g);
            g.storeu(acc + j);
            pn.storeu(p + j);
        });
    }

    // Phase 2, approximate Elman (simplified, diag): unit i. S [N,H,1,K+1]:
    // p = unit i's sensitivity to its own row, then q = dh_t[i]/dh0[i].
    template <bool OneHop>
    static void approx_unit(const Dims& dm, const RtrlIO<Real>& io, const Real* hp, const Real* dd, const Real* ee,
                            int64_t i, Real* w_rows) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const int64_t K = H + C + 1, Q = K + 1;
        Real* acc = w_rows + i * K;
        for (int64_t j = 0; j < K; ++j) acc[j] = Real(0);
        const Real w = io.w_hh[i * H + i];
        for (int64_t n = 0; n < N; ++n) {
            Real* p = io.S + (n * H + i) * Q;
            for (int64_t j = 0; j < Q; ++j) p[j] = io.S0[(n * H + i) * Q + j];
            Real dh0 = Real(0);
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                if (t >= io.lengths[n]) continue;
                const int64_t row = (t * N + n) * H;
                const Real d = dd[row + i], dy = io.dy[row + i];
                const Real coef = OneHop ? ee[row + i] - dy * d * w : Real(0);
                unit_update<OneHop>(H, p, hp + row, 0, false, d, w, dy, coef, acc);
                unit_update<OneHop>(C, p + H, io.x + (t * N + n) * C, 0, false, d, w, dy, coef, acc + H);
                unit_update<OneHop>(1, p + H + C, nullptr, Real(1), true, d, w, dy, coef, acc + H + C);
                p[K] = d * w * p[K];   // q: the diagonal of dh_t/dh0
                dh0 = dh0 + dy * p[K];
            }
            io.dh0[n * H + i] = dh0;
        }
    }

    // --- IndRNN exact: the block algorithm (docs/rtrl.md, "IndRNN"). Unit k
    // sees only its own parameters, so s_t[k] = d_t (w s_{t-1} + z_t) is a
    // scalar linear recursion per entry. Over a block of steps (at most IB,
    // in processing order) it sums in closed form. With alpha_t = w d_t (1 at
    // an inactive step, whose d and dy count 0), q_t = prod_{u>t} alpha_u,
    // e_t = d_t q_t, P = prod_t alpha_t, and the block's BPTT deltas
    // rho_t = dy_t + alpha_{t+1} rho_{t+1}, delta_t = d_t rho_t, c = alpha_0 rho_0:
    //   S_end = P S_0 + sum_t e_t z_t,   grad += c S_0 + sum_t delta_t z_t.
    // The x columns of both sums are GEMMs over the block (e^T X per sequence,
    // delta^T X over all of them), run by gemm.h's micro-kernel; the other
    // columns (h_prev[k], the bias, h0) are O(H) per step. Work splits over
    // tiles of MR units, the same for every phase but the input GEMM, so a
    // unit's arithmetic never depends on the team size.
    static constexpr int64_t IB = 128;   // steps per block: S streams once per block
    // Units per group of the x-column GEMMs (a multiple of MR): a group's
    // rows of S_0 and S (UG*(C+3) values each) stay in L2 while its tiles
    // sweep the column blocks, and each column block's packed x (Tb*BW, 16 KB
    // at most in floats) stays in L1 across the group's tiles.
    static constexpr int64_t UG = 8 * MR;

    // Per thread, units [u0, u0 + U): a [IB][ld] h_prev, then delta in place;
    // b [IB][ld] d, then e; dyb [IB][ld] dy's rows (gathered while their lines
    // stream in, so the backward sweep reads only this); P, c and the block
    // sums of the scalar columns [U]; one GEMM tile. The row stride ld is an
    // odd number of cache lines: the GEMMs read a and b down a column (MR
    // units per step), and rows a power of two apart would share L1 sets.
    struct IndScratch {
        int64_t ld;
        Real* a;
        Real* b;
        Real* dyb;
        Real* P;
        Real* c;
        Real* se0;   // sum e h_prev
        Real* seb;   // sum e
        Real* sd0;   // sum delta h_prev
        Real* sdb;   // sum delta
        Real* tile;
        Real* ep;    // one group's e, packed per tile of MR units: [UG/MR][Ka][MR]
        Real* dp;    // and delta
        static int64_t stride(int64_t U) {
            constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(Real));
            const int64_t lines = ceil_div(U, line);
            return (lines % 2 == 1 ? lines : lines + 1) * line;
        }
        static int64_t count(int64_t U) { return 3 * IB * stride(U) + 6 * U + MR * BW + 2 * IB * UG + 16 * 12; }
        IndScratch(Real* p, int64_t U) : ld(stride(U)) {
            auto take = [&](int64_t n) { Real* r = p; p += (n + 15) / 16 * 16; return r; };
            a = take(IB * ld), b = take(IB * ld), dyb = take(IB * ld), P = take(U), c = take(U);
            se0 = take(U), seb = take(U), sd0 = take(U), sdb = take(U), tile = take(MR * BW);
            ep = take(IB * UG), dp = take(IB * UG);
        }
    };

    // run_indrnn's team, and its workspace: the sizes of its reservations,
    // in order, and their total in elements (what the budget counts beside S;
    // Workspace rounds each reservation up to 64 bytes).
    static int ind_team(const Dims& dm, int threads) {
        return static_cast<int>(max_i(1, min_i(threads, max_i(ceil_div(dm.H, MR), dm.N))));
    }
    static void ind_sizes(const Dims& dm, int team, int64_t out[7], int64_t& per_thread) {
        const int64_t N = dm.N, C = dm.C, H = dm.H;
        const int64_t U_max = ceil_div(ceil_div(H, MR), team) * MR;
        per_thread = (IndScratch::count(U_max) + 15) / 16 * 16;
        out[0] = min_i(dm.T, IB) * N * H;          // xw, one block's rows
        out[1] = ceil_div(H, BW) * C * BW;         // w_ih's packed panels
        out[2] = H * ceil_div(C, BW) * BW;         // gx, the dw_ih rows
        out[3] = out[4] = H;                       // gw, gb
        out[5] = per_thread * team;                // IndScratch per thread
        out[6] = min_i(dm.T, IB) * N * ceil_div(C, BW) * BW;   // xp, one block's x packed
    }
    static int64_t ind_workspace(const Dims& dm, int team) {
        int64_t sz[7], per_thread, total = 0;
        ind_sizes(dm, team, sz, per_thread);
        const int64_t line = 64 / static_cast<int64_t>(sizeof(Real));
        for (int64_t v : sz) total += ceil_div(v, line) * line;
        return total;
    }

    // Sequence n over block [s0, s0 + Tb) for units [u0, u0 + U): the
    // forward steps (y, h_n, and h_prev, d, dy kept), the backward sweep (e,
    // delta, P, c and the scalar columns' sums), then S and the gradients.
    // Sb: S at the block's start (S0 for the first block, else S in place);
    // xp: the block's x packed per sequence and column block, [N][nbj][Tb][BW].
    static void ind_sequence(const Dims& dm, const RtrlIO<Real>& io, const Real* xw, const Real* xp, int64_t s0,
                             int64_t Tb, int64_t tlo, int64_t n, int64_t u0, int64_t U, const Real* Sb, bool first,
                             const IndScratch& w, Real* gx, int64_t Cp, Real* gw, Real* gb) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H, Q = C + 3;
        const bool rev = io.reverse;
        const int64_t L = io.lengths[n];
        // Active steps of n in this block: a prefix (forward) or a suffix (reverse).
        const int64_t lo = rev ? min_i(Tb, max_i(0, T - s0 - L)) : 0;
        const int64_t hi = rev ? Tb : min_i(Tb, max_i(0, L - s0));
        Real* hn = io.h_n + n * H + u0;
        const Real* wv = io.w_hh + u0;
        for (int64_t tau = 0; tau < Tb; ++tau) {
            if (tau >= lo && tau < hi) continue;
            Real* yr = io.y + (t_of(s0 + tau, T, rev) * N + n) * H + u0;
            for (int64_t i = 0; i < U; ++i) yr[i] = Real(0);
        }
        if (lo == hi) {   // nothing active: S carried, no gradient
            if (first) {
                for (int64_t i = 0; i < U; ++i) io.dh0[n * H + u0 + i] = Real(0);
                for (int64_t j = 0; j < U * Q; ++j) io.S[(n * H + u0) * Q + j] = Sb[(n * H + u0) * Q + j];
            }
            return;
        }
        // Forward: a = ((xw + b_ih) + w h) + b_hh, the reference's order. The
        // rows of xw and dy are N*H apart: the next steps' rows are
        // prefetched, and dy's kept for the backward sweep.
        constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(Real)), ahead = 8;
        auto xw_row = [&](int64_t tau) { return xw + ((t_of(s0 + tau, T, rev) - tlo) * N + n) * H + u0; };
        auto dy_row = [&](int64_t tau) { return io.dy + (t_of(s0 + tau, T, rev) * N + n) * H + u0; };
        for (int64_t tau = lo; tau < hi; ++tau) {
            if (tau + ahead < hi) {   // into L2, far enough ahead to cover a miss to memory
                const Real* px = xw_row(tau + ahead);
                const Real* pd = dy_row(tau + ahead);
                const Real* py = io.y + (t_of(s0 + tau + ahead, T, rev) * N + n) * H + u0;
                for (int64_t i = 0; i < U; i += line)
                    __builtin_prefetch(px + i, 0, 1), __builtin_prefetch(pd + i, 0, 1), __builtin_prefetch(py + i, 1, 1);
            }
            const int64_t t = t_of(s0 + tau, T, rev);
            const Real* xr = xw_row(tau);
            const Real* dyr = dy_row(tau);
            Real* yr = io.y + (t * N + n) * H + u0;
            Real* hp = w.a + tau * w.ld;
            Real* dd = w.b + tau * w.ld;
            Real* dk = w.dyb + tau * w.ld;
            for_lanes<V>(U, [&](auto vx, int64_t i) {
                using Vx = decltype(vx);
                const Vx one = Vx::set1(Real(1));
                const Vx h = Vx::loadu(hn + i);
                const Vx pre = ((Vx::loadu(xr + i) + Vx::loadu(io.b_ih + u0 + i)) + Vx::loadu(wv + i) * h) +
                               Vx::loadu(io.b_hh + u0 + i);
                Vx y, d;
                if (io.act == Act::tanh) {
                    y = vtanh(pre);
                    d = one - y * y;
                } else {
                    y = max(pre, Vx::zero());
                    d = select(gt(y, Vx::zero()), one, Vx::zero());
                }
                h.storeu(hp + i);
                d.storeu(dd + i);
                Vx::loadu(dyr + i).storeu(dk + i);
                y.storeu(yr + i);
                y.storeu(hn + i);
            });
        }
        // Backward sweep over the active steps, last first.
        for_lanes<V>(U, [&](auto vx, int64_t i) {
            using Vx = decltype(vx);
            const Vx wk = Vx::loadu(wv + i);
            Vx q = Vx::set1(Real(1)), g = Vx::zero();
            Vx se0 = Vx::zero(), seb = Vx::zero(), sd0 = Vx::zero(), sdb = Vx::zero();
            for (int64_t tau = hi - 1; tau >= lo; --tau) {
                Real* ap = w.a + tau * w.ld + i;
                Real* bp = w.b + tau * w.ld + i;
                const Vx d = Vx::loadu(bp), hp = Vx::loadu(ap);
                const Vx e = d * q;
                const Vx rho = Vx::loadu(w.dyb + tau * w.ld + i) + g;
                const Vx de = d * rho;
                const Vx al = wk * d;
                e.storeu(bp);
                de.storeu(ap);
                se0 = fma(e, hp, se0);
                seb = seb + e;
                sd0 = fma(de, hp, sd0);
                sdb = sdb + de;
                q = q * al;
                g = al * rho;
            }
            q.storeu(w.P + i);
            g.storeu(w.c + i);
            se0.storeu(w.se0 + i);
            seb.storeu(w.seb + i);
            sd0.storeu(w.sd0 + i);
            sdb.storeu(w.sdb + i);
        });
        // The x columns: e^T X into S (plus P S_0) and delta^T X into the
        // gradient rows gx (plus c S_0), per group of UG units: its e and
        // delta packed per tile of MR units ([Ka][MR], contiguous: the tile
        // streams them from L2), then column blocks outer and the group's
        // tiles inner, so the block's packed x stays in L1 (it streamed from
        // L2 once per tile when the tiles were outer: 8.6 MB per sequence at
        // H = C = 256 against 1 MB now). e_t = d_t q_t is exactly 0 before
        // the last step whose alpha is 0 (relu: any inactive step; Zen 3,
        // the bench's relu data: 85% of e's steps for a tile of 3 units), so
        // a tile's e^T X chain starts at its first step with a nonzero e:
        // the skipped terms are fma(+-0, x, +0) = +0 onto a chain that starts
        // at +0, the same bits for finite x.
        const int64_t Ka = hi - lo, nbj = ceil_div(C, BW);
        const Real* ea = w.b + lo * w.ld;
        const Real* da = w.a + lo * w.ld;
        const Real* xn = xp + n * nbj * Tb * BW + lo * BW;
        int64_t ks[UG / MR];
        for (int64_t g0 = 0; g0 < U; g0 += UG) {
            const int64_t gu = min_i(UG, U - g0), nt = ceil_div(gu, MR);
            // The scalar columns of the group's rows: h_prev[k] (0), the bias
            // (C + 1), h0 (C + 2). Here, not over all U first: the rows are
            // in L2 now (prefetched during the group before), where a pass
            // over all rows ahead of the GEMMs waited on memory for each
            // (3 ms of a 36 ms call at N=64 H=C=256).
            for (int64_t i = g0; i < g0 + gu; ++i) {
                const int64_t k = u0 + i;
                const Real* si = Sb + (n * H + k) * Q;
                Real* so = io.S + (n * H + k) * Q;
                const Real P = w.P[i], c = w.c[i];
                const Real s_w = si[0], s_b = si[C + 1], s_h = si[C + 2];
                so[0] = P * s_w + w.se0[i];
                so[C + 1] = P * s_b + w.seb[i];
                so[C + 2] = P * s_h;
                gw[k] = (gw[k] + c * s_w) + w.sd0[i];
                gb[k] = (gb[k] + c * s_b) + w.sdb[i];
                io.dh0[n * H + k] = first ? c * s_h : io.dh0[n * H + k] + c * s_h;
            }
            for (int64_t t = 0; t < nt; ++t) {
                const int64_t k0 = g0 + t * MR, mr = min_i(MR, U - k0);
                int64_t k = 0;   // the tile's first step with a nonzero e
                for (; k < Ka; ++k) {
                    bool any = false;
                    for (int64_t r = 0; r < mr; ++r) any = any || ea[k * w.ld + k0 + r] != Real(0);
                    if (any) break;
                }
                ks[t] = k;
            }
            pack_a_cols<MR>(ea, w.ld, g0, nt, U, Ka, w.ep);   // tile t at t*Ka*MR
            pack_a_cols<MR>(da, w.ld, g0, nt, U, Ka, w.dp);
            // The next group: of this sequence, else the first of the next.
            const int64_t pf_row = g0 + UG < U ? n * H + u0 + g0 + UG : (n + 1 < N ? (n + 1) * H + u0 : -1);
            const int64_t pf_rows = g0 + UG < U ? min_i(UG, U - g0 - UG) : min_i(UG, U);
            const int64_t pf_lines =
                pf_row < 0 ? 0 : ceil_div(pf_rows * Q * int64_t{sizeof(Real)}, 64) + 1;
            const int64_t pf_per = ceil_div(pf_lines, nbj * nt);
            for (int64_t jb = 0; jb < nbj; ++jb) {
                const int64_t j0 = jb * BW, valid = min_i(BW, C - j0);
                const Real* bp = xn + jb * Tb * BW;
                for (int64_t t = 0; t < nt; ++t) {
                    const int64_t k0 = g0 + t * MR;
                    const int mr = static_cast<int>(min_i(MR, U - k0));
                    gemm_tile<V, MR, NV, true, false>(mr, Ka - ks[t], w.ep + (t * Ka + ks[t]) * MR, MR,
                                                      bp + ks[t] * BW, BW, w.tile, BW);
                    Real* gr = gx + (u0 + k0) * Cp + j0;
                    gemm_tile<V, MR, NV, true, true>(mr, Ka, w.dp + t * Ka * MR, MR, bp, BW, gr, Cp);
                    // Into L2 while this group computes: the next group's rows
                    // of S_0 and S (one contiguous span each: the rows of a
                    // group follow each other), spread over the group's
                    // tiles. A tile's rows start mid-line (rows are C + 3
                    // values), so prefetching per tile row missed lines.
                    if (pf_lines > 0) {
                        const int64_t it = jb * nt + t, l0 = it * pf_per, l1 = min_i(pf_lines, l0 + pf_per);
                        for (int64_t l = l0; l < l1; ++l) {
                            __builtin_prefetch(reinterpret_cast<const char*>(Sb + pf_row * Q) + l * 64, 0, 1);
                            __builtin_prefetch(reinterpret_cast<const char*>(io.S + pf_row * Q) + l * 64, 1, 1);
                        }
                    }
                    for (int r = 0; r < mr; ++r) {
                        const int64_t k = u0 + k0 + r;
                        const Real* si = Sb + (n * H + k) * Q + 1 + j0;
                        Real* so = io.S + (n * H + k) * Q + 1 + j0;
                        const Real* tr = w.tile + r * BW;
                        Real* g = gr + r * Cp;
                        const Real P = w.P[k0 + r], c = w.c[k0 + r];
                        for_lanes<V>(valid, [&](auto vx, int64_t u) {
                            using Vx = decltype(vx);
                            const Vx s = Vx::loadu(si + u);   // read before the in-place write
                            fma(Vx::set1(P), s, Vx::loadu(tr + u)).storeu(so + u);
                            fma(Vx::set1(c), s, Vx::loadu(g + u)).storeu(g + u);
                        });
                    }
                }
            }
        }
    }

    // x's rows of block [s0, s0 + Tb) (x rows from tlo) into xp
    // [N][nbj][Tb][BW], zero past C; steps [r.begin, r.end) of the block.
    static void ind_pack_x(const Dims& dm, const RtrlIO<Real>& io, int64_t s0, int64_t Tb, Range r, Real* xp) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, nbj = ceil_div(C, BW);
        for (int64_t tau = r.begin; tau < r.end; ++tau) {
            const int64_t t = t_of(s0 + tau, T, io.reverse);
            for (int64_t n = 0; n < N; ++n) {
                const Real* xr = io.x + (t * N + n) * C;
                for (int64_t jb = 0; jb < nbj; ++jb) {
                    Real* dst = xp + ((n * nbj + jb) * Tb + tau) * BW;
                    const int64_t j0 = jb * BW, valid = min_i(BW, C - j0);
                    int64_t u = 0;
                    for (; u < valid; ++u) dst[u] = xr[j0 + u];
                    for (; u < BW; ++u) dst[u] = Real(0);
                }
            }
        }
    }

    static void run_indrnn(const Dims& dm, const RtrlIO<Real>& io, int threads) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const int64_t n_ut = ceil_div(H, MR), Cp = ceil_div(C, BW) * BW;
        const int team = ind_team(dm, threads);
        int64_t sz[7], per_thread;
        ind_sizes(dm, team, sz, per_thread);
        Workspace ws;
        const size_t o_xw = ws.reserve<Real>(sz[0]);
        const size_t o_pan = ws.reserve<Real>(sz[1]);
        const size_t o_gx = ws.reserve<Real>(sz[2]);
        const size_t o_gw = ws.reserve<Real>(sz[3]);
        const size_t o_gb = ws.reserve<Real>(sz[4]);
        const size_t o_thr = ws.reserve<Real>(sz[5]);
        const size_t o_xp = ws.reserve<Real>(sz[6]);
        ws.allocate();
        Real* xw = ws.at<Real>(o_xw);
        Real* xp = ws.at<Real>(o_xp);
        Real* gx = ws.at<Real>(o_gx);
        Real* gw = ws.at<Real>(o_gw);
        Real* gb = ws.at<Real>(o_gb);
        run_team(team, [&](const Team& tm) {
            const FlushDenormals ftz;
            if (tm.id() == 0) note_parallel_region(tm.size());
            const Range ur = share(n_ut, tm.id(), tm.size());
            const int64_t u0 = ur.begin * MR, u1 = min_i(ur.end * MR, H), U = max_i(0, u1 - u0);
            const IndScratch scr(ws.at<Real>(o_thr) + per_thread * tm.id(), max_i(U, 1));
            for (int64_t k = u0; k < u1; ++k) {
                gw[k] = gb[k] = Real(0);
                for (int64_t j = 0; j < Cp; ++j) gx[k * Cp + j] = Real(0);
                for (int64_t n = 0; n < N; ++n) io.h_n[n * H + k] = io.h0[n * H + k];
            }
            for (int64_t s0 = 0; s0 < T; s0 += IB) {
                const int64_t Tb = min_i(IB, T - s0);
                const int64_t tlo = io.reverse ? T - s0 - Tb : s0;   // the block's rows of x are contiguous
                tm.barrier();   // the previous block's reads of xp and xw are done
                ind_pack_x(dm, io, s0, Tb, share(Tb, tm.id(), tm.size()), xp);
                // ends with a barrier; its first barrier also orders xp's packing
                input_gemm(tm, Tb * N, C, H, io.x + tlo * N * C, io.w_ih, ws.at<Real>(o_pan), xw);
                if (U == 0) continue;
                const Real* Sb = s0 == 0 ? io.S0 : io.S;
                for (int64_t n = 0; n < N; ++n)
                    ind_sequence(dm, io, xw, xp, s0, Tb, tlo, n, u0, U, Sb, s0 == 0, scr, gx, Cp, gw, gb);
            }
            for (int64_t k = u0; k < u1; ++k) {
                io.dw_hh[k] = gw[k];
                for (int64_t c = 0; c < C; ++c) io.dw_ih[k * C + c] = gx[k * Cp + c];
                io.db_ih[k] = io.db_hh[k] = gb[k];
            }
        });
    }

    // --- LSTM and GRU, exact: phase 1 keeps per step h_prev, the activated
    // gates, and c_prev, tanh(c) (LSTM) or hn = h_prev W_hn^T + b_hn (GRU).
    // buf: 2*H + 2*G*H per thread.
    static void gated_forward(Cell cell, const Dims& dm, const RtrlIO<Real>& io, const Real* xw, Real* hp,
                              Real* gates, Real* aux1, Real* aux2, Range r, Real* buf) {
        const int64_t T = dm.T, N = dm.N, H = dm.H;
        const bool lstm = cell == Cell::lstm;
        const int64_t G = lstm ? 4 : 3, GH = G * H;
        Real* h = buf;
        Real* c = buf + H;
        Real* a = buf + 2 * H;
        Real* hw = buf + 2 * H + GH;
        auto sigmoid_into = [&](const Real* in, Real* out, int64_t count) {
            for_lanes<V>(count, [&](auto vx, int64_t i) {
                using Vx = decltype(vx);
                vsigmoid(Vx::loadu(in + i)).storeu(out + i);
            });
        };
        auto tanh_into = [&](const Real* in, Real* out, int64_t count) {
            for_lanes<V>(count, [&](auto vx, int64_t i) {
                using Vx = decltype(vx);
                vtanh(Vx::loadu(in + i)).storeu(out + i);
            });
        };
        for (int64_t n = r.begin; n < r.end; ++n) {
            for (int64_t k = 0; k < H; ++k) h[k] = io.h0[n * H + k], c[k] = lstm ? io.c0[n * H + k] : Real(0);
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                const int64_t row = (t * N + n) * H, grow = (t * N + n) * GH;
                for (int64_t k = 0; k < H; ++k) hp[row + k] = h[k];
                if (lstm) for (int64_t k = 0; k < H; ++k) aux1[row + k] = c[k];
                if (t >= io.lengths[n]) {
                    for (int64_t k = 0; k < H; ++k) io.y[row + k] = Real(0);
                    continue;
                }
                dot_rows_n<V>(GH, H, h, io.w_hh, H, hw);
                Real* gt = gates + grow;
                if (lstm) {
                    // ((x W_ih^T + b_ih) + h W_hh^T) + b_hh, then i, f, g, o
                    for (int64_t q = 0; q < GH; ++q) a[q] = ((xw[grow + q] + io.b_ih[q]) + hw[q]) + io.b_hh[q];
                    sigmoid_into(a, gt, 2 * H);
                    tanh_into(a + 2 * H, gt + 2 * H, H);
                    sigmoid_into(a + 3 * H, gt + 3 * H, H);
                    for (int64_t k = 0; k < H; ++k) c[k] = gt[H + k] * c[k] + gt[k] * gt[2 * H + k];
                    tanh_into(c, aux2 + row, H);
                    for (int64_t k = 0; k < H; ++k) h[k] = gt[3 * H + k] * aux2[row + k];
                } else {
                    // r, z = sigmoid(xW + hW); n = tanh(xW_n + r * hW_n), hW = h W_hh^T + b_hh
                    for (int64_t q = 0; q < GH; ++q) hw[q] = hw[q] + io.b_hh[q];
                    for (int64_t q = 0; q < 2 * H; ++q) a[q] = (xw[grow + q] + io.b_ih[q]) + hw[q];
                    sigmoid_into(a, gt, 2 * H);
                    for (int64_t k = 0; k < H; ++k)
                        a[2 * H + k] = (xw[grow + 2 * H + k] + io.b_ih[2 * H + k]) + gt[k] * hw[2 * H + k];
                    tanh_into(a + 2 * H, gt + 2 * H, H);
                    for (int64_t k = 0; k < H; ++k) {
                        aux1[row + k] = hw[2 * H + k];
                        const Real z = gt[H + k];
                        h[k] = (Real(1) - z) * gt[2 * H + k] + z * h[k];
                    }
                }
                for (int64_t k = 0; k < H; ++k) io.y[row + k] = h[k];
            }
            for (int64_t k = 0; k < H; ++k) io.h_n[n * H + k] = h[k];
            if (lstm) for (int64_t k = 0; k < H; ++k) io.c_n[n * H + k] = c[k];
        }
    }

    // Phase 2, exact LSTM / GRU: column block b of S. LSTM: S [N,2H,P],
    // P = 4H*K + 2H, A = W_hh Sh + own z, then Sc and Sh per unit (docs/rtrl.md).
    // GRU: S [N,H,P], P = 3H*K + H, K = H + C + 2; AH = W_hh S + own hidden
    // side, AX the own input side (one entry per column).
    // blk: Sh, Sc [H][BW]; A, AX [GH][BW]; acc [BW].
    static void gated_block(Cell cell, const Dims& dm, const RtrlIO<Real>& io, const Real* hp, const Real* gates,
                            const Real* aux1, const Real* aux2, int64_t b, Real* blk, Real* w_rows) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const bool lstm = cell == Cell::lstm;
        const int64_t G = lstm ? 4 : 3, GH = G * H, V_ = lstm ? 2 : 1;
        const int64_t K = lstm ? H + C + 1 : H + C + 2, GHK = GH * K, P = GHK + V_ * H;
        const int64_t c0 = b * BW, valid = min_i(BW, P - c0);
        Real* Sh = blk;
        Real* Sc = blk + H * BW;
        Real* A = blk + 2 * H * BW;
        Real* AX = A + GH * BW;
        Real* acc = AX + GH * BW;
        for (int64_t q = 0; q < GH * BW; ++q) AX[q] = Real(0);
        for (int u = 0; u < BW; ++u) acc[u] = Real(0);
        int64_t own_r[BW], own_j[BW], n_own = 0;
        for (int64_t u = 0; u < valid && c0 + u < GHK; ++u, ++n_own) own_r[u] = (c0 + u) / K, own_j[u] = (c0 + u) % K;
        for (int64_t n = 0; n < N; ++n) {
            for (int64_t k = 0; k < H; ++k)
                for (int64_t u = 0; u < BW; ++u) {
                    Sh[k * BW + u] = u < valid ? io.S0[(n * V_ * H + k) * P + c0 + u] : Real(0);
                    if (lstm) Sc[k * BW + u] = u < valid ? io.S0[(n * V_ * H + H + k) * P + c0 + u] : Real(0);
                }
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                if (t >= io.lengths[n]) continue;
                const int64_t row = (t * N + n) * H;
                const Real* h_prev = hp + row;
                const Real* x_t = io.x + (t * N + n) * C;
                const Real* gt = gates + (t * N + n) * GH;
                const Real* dy = io.dy + row;
                for (int64_t k0 = 0; k0 < GH; k0 += MR)
                    gemm_tile<V, MR, NV, false, false>(static_cast<int>(min_i(MR, GH - k0)), H, io.w_hh + k0 * H, H,
                                                       Sh, BW, A + k0 * BW, BW);
                for (int64_t u = 0; u < n_own; ++u) {
                    const int64_t r = own_r[u], j = own_j[u];
                    if (j < H) A[r * BW + u] += h_prev[j];
                    else if (j < H + C) (lstm ? A : AX)[r * BW + u] += x_t[j - H];
                    else if (j == H + C) (lstm ? A : AX)[r * BW + u] += Real(1);
                    else A[r * BW + u] += Real(1);   // GRU's 1_hh
                }
                V g[NV];
                for (int v = 0; v < NV; ++v) g[v] = V::loadu(acc + v * V::W);
                for (int64_t k = 0; k < H; ++k) {
                    const V yk = V::set1(dy[k]);
                    if (lstm) {
                        const Real i = gt[k], f = gt[H + k], gg = gt[2 * H + k], o = gt[3 * H + k];
                        const Real tc = aux2[row + k], cp = aux1[row + k];
                        const V vf = V::set1(f), vAf = V::set1(cp * (f * (Real(1) - f)));
                        const V vAi = V::set1(gg * (i * (Real(1) - i))), vAg = V::set1(i * (Real(1) - gg * gg));
                        const V vAo = V::set1(tc * (o * (Real(1) - o))), vSc = V::set1(o * (Real(1) - tc * tc));
                        for (int v = 0; v < NV; ++v) {
                            const int64_t at = k * BW + v * V::W;
                            const V sc = ((vf * V::loadu(Sc + at) + vAf * V::loadu(A + H * BW + at)) +
                                          vAi * V::loadu(A + at)) + vAg * V::loadu(A + 2 * H * BW + at);
                            const V sh = vAo * V::loadu(A + 3 * H * BW + at) + vSc * sc;
                            sc.storeu(Sc + at);
                            sh.storeu(Sh + at);
                            g[v] = fma(yk, sh, g[v]);
                        }
                    } else {
                        const Real r = gt[k], z = gt[H + k], nn = gt[2 * H + k];
                        const V vr = V::set1(r * (Real(1) - r)), vz = V::set1(z * (Real(1) - z));
                        const V vn = V::set1(Real(1) - nn * nn), vrg = V::set1(r), vhn = V::set1(aux1[row + k]);
                        const V v1z = V::set1(Real(1) - z), vhz = V::set1(h_prev[k] - nn), vzz = V::set1(z);
                        for (int v = 0; v < NV; ++v) {
                            const int64_t at = k * BW + v * V::W;
                            const V dr = vr * (V::loadu(AX + at) + V::loadu(A + at));
                            const V dz = vz * (V::loadu(AX + H * BW + at) + V::loadu(A + H * BW + at));
                            const V dn = vn * ((V::loadu(AX + 2 * H * BW + at) + vrg * V::loadu(A + 2 * H * BW + at)) +
                                               vhn * dr);
                            const V sn = (v1z * dn + vhz * dz) + vzz * V::loadu(Sh + at);
                            sn.storeu(Sh + at);
                            g[v] = fma(yk, sn, g[v]);
                        }
                    }
                }
                for (int v = 0; v < NV; ++v) g[v].storeu(acc + v * V::W);
                if (!lstm)   // clear AX's entries for the next step
                    for (int64_t u = 0; u < n_own; ++u) AX[own_r[u] * BW + u] = Real(0);
            }
            for (int64_t k = 0; k < H; ++k)
                for (int64_t u = 0; u < valid; ++u) {
                    io.S[(n * V_ * H + k) * P + c0 + u] = Sh[k * BW + u];
                    if (lstm) io.S[(n * V_ * H + H + k) * P + c0 + u] = Sc[k * BW + u];
                }
            for (int64_t u = 0; u < valid; ++u) {
                const int64_t c = c0 + u;
                if (c < GHK) continue;
                if (c < GHK + H) io.dh0[n * H + (c - GHK)] = acc[u];
                else io.dc0[n * H + (c - GHK - H)] = acc[u];
                acc[u] = Real(0);
            }
        }
        for (int64_t u = 0; u < valid; ++u)
            if (c0 + u < GHK) w_rows[c0 + u] = acc[u];
    }

    // --- LSTM and GRU, diag (SnAp-1): unit k's state w.r.t. its own G weight
    // rows only, so the recursion splits over units. S [N,H,V,Q], Q = G*K +
    // V: columns q < G*K are gate q/K's row entry q%K, then h0[k] (, c0[k]).
    // Each gate's pre-activation sensitivity is w_diag[g] * Sh[q], plus z in
    // the gate's own block (docs/rtrl.md). Per-unit row gradients go to
    // u_rows [H][Q]; the write-out moves them to PyTorch's gate-major rows.
    struct DiagCoef {
        Real w[4];        // w_hh[g*H + k, k]
        Real c[8];        // the step's per-unit coefficients (below)
        Real dy;
    };

    // Columns [q0, q0 + count) of unit k's block `own` (-1: no own block, the
    // h0/c0 columns). z: the own inputs (null: the constant zc); GRU: xside
    // says z enters the input side AX (x, 1_ih) rather than AH (h, 1_hh).
    template <bool Lstm>
    static void diag_cols(int64_t count, Real* sh, Real* sc, const Real* z, Real zc, int own, bool xside,
                          const DiagCoef& k, Real* acc) {
        for_lanes<V>(count, [&](auto vx, int64_t j) {
            using Vx = decltype(vx);
            const Vx zero = Vx::zero();
            const Vx zv = own < 0 ? zero : z ? Vx::loadu(z + j) : Vx::set1(zc);
            const Vx s = Vx::loadu(sh + j);
            if constexpr (Lstm) {
                // c: f, c_prev f', g i', i g'; h: tanh(c) o', o tanh'(c)
                Vx A[4];
                for (int g = 0; g < 4; ++g) A[g] = Vx::set1(k.w[g]) * s;
                if (own >= 0) A[own] = A[own] + zv;
                const Vx scn = ((Vx::set1(k.c[0]) * Vx::loadu(sc + j) + Vx::set1(k.c[1]) * A[1]) +
                                Vx::set1(k.c[2]) * A[0]) + Vx::set1(k.c[3]) * A[2];
                const Vx shn = Vx::set1(k.c[4]) * A[3] + Vx::set1(k.c[5]) * scn;
                scn.storeu(sc + j);
                shn.storeu(sh + j);
                fma(Vx::set1(k.dy), shn, Vx::loadu(acc + j)).storeu(acc + j);
            } else {
                // r', z', n', r, hn, 1 - z, h_prev - n, z
                Vx AH[3], AX[3] = {zero, zero, zero};
                for (int g = 0; g < 3; ++g) AH[g] = Vx::set1(k.w[g]) * s;
                if (own >= 0) {
                    if (xside) AX[own] = zv;
                    else AH[own] = AH[own] + zv;
                }
                const Vx dr = Vx::set1(k.c[0]) * (AX[0] + AH[0]);
                const Vx dz = Vx::set1(k.c[1]) * (AX[1] + AH[1]);
                const Vx dn = Vx::set1(k.c[2]) * ((AX[2] + Vx::set1(k.c[3]) * AH[2]) + Vx::set1(k.c[4]) * dr);
                const Vx sn = (Vx::set1(k.c[5]) * dn + Vx::set1(k.c[6]) * dz) + Vx::set1(k.c[7]) * s;
                sn.storeu(sh + j);
                fma(Vx::set1(k.dy), sn, Vx::loadu(acc + j)).storeu(acc + j);
            }
        });
    }

    // Phase 2, diag LSTM / GRU: unit k over all sequences and steps.
    static void gated_diag_unit(Cell cell, const Dims& dm, const RtrlIO<Real>& io, const Real* hp,
                                const Real* gates, const Real* aux1, const Real* aux2, int64_t k, Real* u_rows) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const bool lstm = cell == Cell::lstm;
        const int64_t G = lstm ? 4 : 3, GH = G * H, V_ = lstm ? 2 : 1;
        const int64_t K = lstm ? H + C + 1 : H + C + 2, GK = G * K, Q = GK + V_;
        Real* acc = u_rows + k * Q;
        for (int64_t q = 0; q < Q; ++q) acc[q] = Real(0);
        DiagCoef cf{};
        for (int64_t g = 0; g < G; ++g) cf.w[g] = io.w_hh[(g * H + k) * H + k];
        for (int64_t n = 0; n < N; ++n) {
            const int64_t base = (n * H + k) * V_ * Q;
            Real* sh = io.S + base;
            Real* sc = lstm ? sh + Q : nullptr;
            for (int64_t q = 0; q < V_ * Q; ++q) sh[q] = io.S0[base + q];
            Real dh0 = Real(0), dc0 = Real(0);
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                if (t >= io.lengths[n]) continue;   // inactive: S carried, dy counts 0
                const int64_t row = (t * N + n) * H;
                const Real* gt = gates + (t * N + n) * GH;
                const Real* h_prev = hp + row;
                const Real* x_t = io.x + (t * N + n) * C;
                cf.dy = io.dy[row + k];
                if (lstm) {
                    const Real i = gt[k], f = gt[H + k], gg = gt[2 * H + k], o = gt[3 * H + k];
                    const Real tc = aux2[row + k], cp = aux1[row + k];
                    cf.c[0] = f;
                    cf.c[1] = cp * (f * (Real(1) - f));
                    cf.c[2] = gg * (i * (Real(1) - i));
                    cf.c[3] = i * (Real(1) - gg * gg);
                    cf.c[4] = tc * (o * (Real(1) - o));
                    cf.c[5] = o * (Real(1) - tc * tc);
                    for (int g = 0; g < 4; ++g) {
                        const int64_t q0 = g * K;
                        diag_cols<true>(H, sh + q0, sc + q0, h_prev, 0, g, false, cf, acc + q0);
                        diag_cols<true>(C, sh + q0 + H, sc + q0 + H, x_t, 0, g, false, cf, acc + q0 + H);
                        diag_cols<true>(1, sh + q0 + H + C, sc + q0 + H + C, nullptr, Real(1), g, false, cf,
                                        acc + q0 + H + C);
                    }
                    diag_cols<true>(2, sh + GK, sc + GK, nullptr, 0, -1, false, cf, acc + GK);
                    dh0 = dh0 + cf.dy * sh[GK];
                    dc0 = dc0 + cf.dy * sh[GK + 1];
                } else {
                    const Real r = gt[k], z = gt[H + k], nn = gt[2 * H + k];
                    cf.c[0] = r * (Real(1) - r);
                    cf.c[1] = z * (Real(1) - z);
                    cf.c[2] = Real(1) - nn * nn;
                    cf.c[3] = r;
                    cf.c[4] = aux1[row + k];
                    cf.c[5] = Real(1) - z;
                    cf.c[6] = h_prev[k] - nn;
                    cf.c[7] = z;
                    for (int g = 0; g < 3; ++g) {
                        const int64_t q0 = g * K;
                        diag_cols<false>(H, sh + q0, nullptr, h_prev, 0, g, false, cf, acc + q0);
                        diag_cols<false>(C, sh + q0 + H, nullptr, x_t, 0, g, true, cf, acc + q0 + H);
                        diag_cols<false>(1, sh + q0 + H + C, nullptr, nullptr, Real(1), g, true, cf,
                                         acc + q0 + H + C);
                        diag_cols<false>(1, sh + q0 + H + C + 1, nullptr, nullptr, Real(1), g, false, cf,
                                         acc + q0 + H + C + 1);
                    }
                    diag_cols<false>(1, sh + GK, nullptr, nullptr, 0, -1, false, cf, acc + GK);
                    dh0 = dh0 + cf.dy * sh[GK];
                }
            }
            io.dh0[n * H + k] = dh0;
            if (lstm) io.dc0[n * H + k] = dc0;
        }
    }

    // exact: pieces are column blocks of S; diag: units (w_rows then holds
    // per-unit rows [H][G*K + V], moved to gate-major rows at the end).
    static void run_gated(Cell cell, RtrlMode mode, const Dims& dm, const RtrlIO<Real>& io, int threads) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const bool lstm = cell == Cell::lstm, diag = mode == RtrlMode::diag;
        const int64_t G = lstm ? 4 : 3, GH = G * H, V_ = lstm ? 2 : 1;
        const int64_t K = lstm ? H + C + 1 : H + C + 2, P = GH * K + V_ * H, Q = G * K + V_;
        const int64_t pieces = diag ? H : ceil_div(P, BW);
        const int team = static_cast<int>(max_i(1, min_i(threads, max_i(pieces, N))));
        Workspace ws;
        const size_t o_xw = ws.reserve<Real>(T * N * GH);
        const size_t o_pan = ws.reserve<Real>(ceil_div(GH, BW) * C * BW);
        const size_t o_hp = ws.reserve<Real>(T * N * H);
        const size_t o_gates = ws.reserve<Real>(T * N * GH);
        const size_t o_aux1 = ws.reserve<Real>(T * N * H);
        const size_t o_aux2 = ws.reserve<Real>(lstm ? T * N * H : 1);
        const size_t o_rows = ws.reserve<Real>(diag ? H * Q : GH * K);
        const int64_t per_thread = 2 * H + 2 * GH + 2 * H * BW + 2 * GH * BW + BW;
        const size_t o_thr = ws.reserve<Real>(per_thread * team);
        ws.allocate();
        Real* hp = ws.at<Real>(o_hp);
        Real* gates = ws.at<Real>(o_gates);
        Real* aux1 = ws.at<Real>(o_aux1);
        Real* aux2 = ws.at<Real>(o_aux2);
        Real* w_rows = ws.at<Real>(o_rows);
        run_team(team, [&](const Team& tm) {
            const FlushDenormals ftz;
            if (tm.id() == 0) note_parallel_region(tm.size());
            Real* buf = ws.at<Real>(o_thr) + per_thread * tm.id();
            input_gemm(tm, T * N, C, GH, io.x, io.w_ih, ws.at<Real>(o_pan), ws.at<Real>(o_xw));
            gated_forward(cell, dm, io, ws.at<Real>(o_xw), hp, gates, aux1, aux2, share(N, tm.id(), tm.size()), buf);
            tm.barrier();
            const Range r = share(pieces, tm.id(), tm.size());
            for (int64_t p = r.begin; p < r.end; ++p) {
                if (diag) gated_diag_unit(cell, dm, io, hp, gates, aux1, aux2, p, w_rows);
                else gated_block(cell, dm, io, hp, gates, aux1, aux2, p, buf + 2 * H + 2 * GH, w_rows);
            }
            tm.barrier();
            const Range gr = share(GH, tm.id(), tm.size());
            for (int64_t q = gr.begin; q < gr.end; ++q) {
                // weight row q = gate g of unit k
                const Real* g = diag ? w_rows + (q % H) * Q + (q / H) * K : w_rows + q * K;
                for (int64_t m = 0; m < H; ++m) io.dw_hh[q * H + m] = g[m];
                for (int64_t c = 0; c < C; ++c) io.dw_ih[q * C + c] = g[H + c];
                io.db_ih[q] = g[H + C];
                io.db_hh[q] = lstm ? g[H + C] : g[H + C + 1];
            }
        });
    }

    static void run(Cell cell, RtrlMode mode, const Dims& dm, const RtrlIO<Real>& io, int threads) {
        if (cell == Cell::lstm || cell == Cell::gru) {
            run_gated(cell, mode, dm, io, threads);
            return;
        }
        if (cell == Cell::indrnn) {
            run_indrnn(dm, io, threads);
            return;
        }
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const bool exact_rnn = cell == Cell::rnn && mode == RtrlMode::exact;
        const int64_t K = H + C + 1;
        const int64_t P = H * K + H;
        const int64_t pieces = exact_rnn ? ceil_div(P, BW) : H;
        const int team = static_cast<int>(max_i(1, min_i(threads, max_i(pieces, N))));

        Workspace ws;
        const size_t o_xw = ws.reserve<Real>(T * N * H);
        const size_t o_pan = ws.reserve<Real>(ceil_div(H, BW) * C * BW);
        const size_t o_hp = ws.reserve<Real>(T * N * H);
        const size_t o_dd = ws.reserve<Real>(T * N * H);
        const size_t o_ee = ws.reserve<Real>(mode == RtrlMode::simplified ? T * N * H : 1);
        const size_t o_rows = ws.reserve<Real>(H * K);
        const int64_t per_thread = 4 * H + 2 * H * BW + BW;
        const size_t o_thr = ws.reserve<Real>(per_thread * team);
        ws.allocate();
        Real* xw = ws.at<Real>(o_xw);
        Real* hp = ws.at<Real>(o_hp);
        Real* dd = ws.at<Real>(o_dd);
        Real* ee = ws.at<Real>(o_ee);
        Real* w_rows = ws.at<Real>(o_rows);

        run_team(team, [&](const Team& tm) {
            const FlushDenormals ftz;
            if (tm.id() == 0) note_parallel_region(tm.size());
            Real* buf = ws.at<Real>(o_thr) + per_thread * tm.id();
            input_gemm(tm, T * N, C, H, io.x, io.w_ih, ws.at<Real>(o_pan), xw);
            forward(cell, mode, dm, io, xw, hp, dd, ee, share(N, tm.id(), tm.size()), buf);
            tm.barrier();
            const Range r = share(pieces, tm.id(), tm.size());
            for (int64_t p = r.begin; p < r.end; ++p) {
                if (exact_rnn)
                    exact_block(dm, io, hp, dd, p, buf + 4 * H, buf + 4 * H + H * BW, buf + 4 * H + 2 * H * BW, w_rows);
                else if (mode == RtrlMode::simplified)
                    approx_unit<true>(dm, io, hp, dd, ee, p, w_rows);
                else
                    approx_unit<false>(dm, io, hp, dd, ee, p, w_rows);
            }
            tm.barrier();
            // The weight rows' gradients into PyTorch's arrays, split over units.
            const Range ur = share(H, tm.id(), tm.size());
            for (int64_t i = ur.begin; i < ur.end; ++i) {
                const Real* g = w_rows + i * K;
                for (int64_t m = 0; m < H; ++m) io.dw_hh[i * H + m] = g[m];
                for (int64_t c = 0; c < C; ++c) io.dw_ih[i * C + c] = g[H + c];
                io.db_ih[i] = io.db_hh[i] = g[H + C];
            }
        });
    }
};

template <class Real>
void rtrl_entry(Cell cell, RtrlMode mode, const Dims& d, const RtrlIO<Real>& io, int threads) {
    RtrlKernels<Vec<Real>>::run(cell, mode, d, io, threads);
}

template <class Real>
int64_t rtrl_work(Cell cell, RtrlMode mode, const Dims& d, int threads) {
    if (cell != Cell::indrnn || mode != RtrlMode::exact) return 0;
    return RtrlKernels<Vec<Real>>::ind_workspace(d, RtrlKernels<Vec<Real>>::ind_team(d, threads));
}

const RtrlTable& rtrl_table() {
    static constexpr RtrlTable table{rtrl_entry<float>, rtrl_entry<double>, rtrl_work<float>, rtrl_work<double>};
    return table;
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
