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
//     (IndRNN, the approximate modes). Each piece runs all sequences and all
//     steps of the call while its slice of S stays in L1, and accumulates its
//     own gradient entries over sequences and steps in a fixed order.
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
    static constexpr int64_t UB = 8;                     // units per IndRNN piece (2 register blocks)

    // out[m][c] = sum_k x[m][k] * w[c][k] for m < M, c < Hc: the input side,
    // one FMA chain in k order per element (never dependent on M or tiling,
    // so a chunk of a stream gets the bits of the whole). panels: ceil(Hc/BW)*C*BW.
    static void input_gemm(const Team& tm, int64_t M, int64_t C, int64_t Hc, const Real* x, const Real* w,
                           Real* panels, Real* out) {
        const int64_t nbc = ceil_div(Hc, BW);
        const Range pr = share(nbc, tm.id(), tm.size());
        for (int64_t b = pr.begin; b < pr.end; ++b) pack_gate_panel<V>(w, 1, Hc, C, BW, b * BW, panels + b * C * BW);
        tm.barrier();
        const int64_t nrt = ceil_div(M, MR);
        const Range r = share(nrt * nbc, tm.id(), tm.size());
        alignas(64) Real tile[MR * BW];
        for (int64_t it = r.begin; it < r.end; ++it) {
            const int64_t rt = it / nbc, b = it % nbc;
            const int64_t m0 = rt * MR, c0 = b * BW;
            const int mr = static_cast<int>(min_i(MR, M - m0));
            const int64_t valid = min_i(BW, Hc - c0);
            gemm_tile<V, MR, NV, false, false>(mr, C, x + m0 * C, C, panels + b * C * BW, BW, tile, BW);
            for (int i = 0; i < mr; ++i)
                for (int64_t u = 0; u < valid; ++u) out[(m0 + i) * Hc + c0 + u] = tile[i * BW + u];
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

    // Phase 2, exact IndRNN: units [u0, u1). S [N,H,1,C+3]: unit k w.r.t.
    // w_hh[k], w_ih[k,:], b[k], then h0[k]; K = C + 2 gradient columns.
    // Within a call the recursion runs on r = da_t/dtheta, the sensitivity of
    // the pre-activation: r_t = (w d_{t-1}) r_{t-1} + z_t, s_t = d_t r_t, and
    // the gradient row gains (dy_t d_t) r_t: two FMAs per entry and step.
    // Vectorised over units (a vector holds one column of W units): the
    // per-unit factors w d and dy d are one vector load each per step, the
    // column's input x_t[j] one broadcast shared by the JB columns' FMA pairs
    // in registers across all steps of a sequence; columns h_prev[k] (own
    // input per unit), the bias and h0 run through the same kernel, so no
    // column goes one scalar at a time. A unit's arithmetic does not depend on
    // its lane or block, so neither do the results (threads, chunking).
    static constexpr int JB = 6;   // 12 accumulators + factors + x: 16 registers

    // The buffers of one block of Vx::W units for sequence n (all [.][W]):
    // al/be [n_act] factors, hz [n_act] h_prev, st [Q] S of the block
    // transposed, gT [K] the block's gradient rows transposed.
    struct IndBlock {
        const Real* al;
        const Real* be;
        const Real* hz;
        const Real* dlast;
        Real* st;
        Real* gT;
        Real w[64];
    };

    // Columns [q, q + NB) of a block: Z = 0 x-broadcast (xz [n_act][C+1]
    // column q - 1), 1 per-unit h_prev, 2 none (h0: gradient into dh0v).
    template <class Vx, int NB, int Z>
    static void ind_cols(const IndBlock& b, int64_t q, int64_t n_act, const Real* xz, int64_t CZ, Real* dh0v) {
        constexpr int W = Vx::W;
        const Vx w = Vx::loadu(b.w);
        Vx r[NB], g[NB];
        auto zin = [&](int64_t a, int c) {
            if constexpr (Z == 0) return Vx::set1(xz[a * CZ + q - 1 + c]);
            else if constexpr (Z == 1) return Vx::loadu(b.hz + a * W);
            else return Vx::zero();
        };
        {
            const Vx be = Vx::loadu(b.be);
            for (int c = 0; c < NB; ++c) {
                g[c] = Z == 2 ? Vx::zero() : Vx::loadu(b.gT + (q + c) * W);
                r[c] = Z == 2 ? w * Vx::loadu(b.st + (q + c) * W)
                              : w * Vx::loadu(b.st + (q + c) * W) + zin(0, c);
                g[c] = fma(be, r[c], g[c]);
            }
        }
        for (int64_t a = 1; a < n_act; ++a) {
            const Vx al = Vx::loadu(b.al + (a - 1) * W);   // w * d of the previous active step
            const Vx be = Vx::loadu(b.be + a * W);         // dy * d
            for (int c = 0; c < NB; ++c) {
                r[c] = Z == 2 ? al * r[c] : fma(al, r[c], zin(a, c));
                g[c] = fma(be, r[c], g[c]);
            }
        }
        const Vx dl = Vx::loadu(b.dlast);
        for (int c = 0; c < NB; ++c) {
            if constexpr (Z == 2) g[c].storeu(dh0v);
            else g[c].storeu(b.gT + (q + c) * W);
            (dl * r[c]).storeu(b.st + (q + c) * W);   // S = d of the last active step times r
        }
    }

    // One block of Vx::W units [k0, k0 + W) for sequence n.
    template <class Vx>
    static void ind_block(const Dims& dm, const RtrlIO<Real>& io, int64_t n, int64_t k0, int64_t n_act,
                          const int64_t* act_t, const Real* hp, const Real* dd, const Real* xz, Real* blk,
                          Real* gT) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H, Q = C + 3;
        constexpr int W = Vx::W;
        Real* al = blk;
        Real* be = al + T * W;
        Real* hz = be + T * W;
        Real* st = hz + T * W;
        Real dlast[W];
        IndBlock b{al, be, hz, dlast, st, gT, {}};
        for (int u = 0; u < W; ++u) b.w[u] = io.w_hh[k0 + u];
        for (int64_t a = 0; a < n_act; ++a) {
            const int64_t row = (act_t[a] * N + n) * H + k0;
            for (int u = 0; u < W; ++u) {
                const Real d = dd[row + u];
                al[a * W + u] = b.w[u] * d;
                be[a * W + u] = io.dy[row + u] * d;
                hz[a * W + u] = hp[row + u];
            }
        }
        for (int u = 0; u < W; ++u) dlast[u] = dd[(act_t[n_act - 1] * N + n) * H + k0 + u];
        for (int u = 0; u < W; ++u)
            for (int64_t q = 0; q < Q; ++q) st[q * W + u] = io.S0[(n * H + k0 + u) * Q + q];
        ind_cols<Vx, 1, 1>(b, 0, n_act, xz, C + 1, nullptr);   // h_prev[k]
        int64_t q = 1;                                         // x columns, then the bias (xz's last, 1)
        for (; q + JB <= C + 2; q += JB) ind_cols<Vx, JB, 0>(b, q, n_act, xz, C + 1, nullptr);
        for (; q < C + 2; ++q) ind_cols<Vx, 1, 0>(b, q, n_act, xz, C + 1, nullptr);
        Real dh0v[W];
        ind_cols<Vx, 1, 2>(b, C + 2, n_act, xz, C + 1, dh0v);
        for (int u = 0; u < W; ++u) {
            io.dh0[n * H + k0 + u] = dh0v[u];
            for (int64_t qq = 0; qq < Q; ++qq) io.S[(n * H + k0 + u) * Q + qq] = st[qq * W + u];
        }
    }

    // w_rows (units [u0, u1)) from gT: blocks of V::W units, then single units.
    static void indrnn_units(const Dims& dm, const RtrlIO<Real>& io, const Real* hp, const Real* dd, int64_t u0,
                             int64_t u1, Real* w_rows, Real* gT, int64_t* act_t, Real* xz, Real* blk) {
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const int64_t K = C + 2, Q = K + 1;
        constexpr int VW = V::W;
        const int64_t u_vec = u0 + (u1 - u0) / VW * VW;
        for (int64_t j = 0; j < (u1 - u0) * K; ++j) gT[j] = Real(0);
        for (int64_t n = 0; n < N; ++n) {
            int64_t n_act = 0;
            for (int64_t s = 0; s < T; ++s) {
                const int64_t t = t_of(s, T, io.reverse);
                if (t < io.lengths[n]) act_t[n_act++] = t;
            }
            if (n_act == 0) {   // S carried unchanged
                for (int64_t k = u0; k < u1; ++k) io.dh0[n * H + k] = Real(0);
                for (int64_t j = 0; j < (u1 - u0) * Q; ++j) io.S[(n * H + u0) * Q + j] = io.S0[(n * H + u0) * Q + j];
                continue;
            }
            // Sequence n's active rows of x gathered once, with a last column
            // of ones (the bias's input): rows are N*C apart in x.
            for (int64_t a = 0; a < n_act; ++a) {
                const Real* xr = io.x + (act_t[a] * N + n) * C;
                for (int64_t c = 0; c < C; ++c) xz[a * (C + 1) + c] = xr[c];
                xz[a * (C + 1) + C] = Real(1);
            }
            for (int64_t k0 = u0; k0 < u_vec; k0 += VW)
                ind_block<V>(dm, io, n, k0, n_act, act_t, hp, dd, xz, blk, gT + (k0 - u0) * K);
            for (int64_t k0 = u_vec; k0 < u1; ++k0)
                ind_block<Scalar<Real>>(dm, io, n, k0, n_act, act_t, hp, dd, xz, blk, gT + (k0 - u0) * K);
        }
        // gT block [K][W] -> w_rows [unit][K]
        for (int64_t k0 = u0; k0 < u1;) {
            const int64_t W = k0 < u_vec ? VW : 1;
            const Real* g = gT + (k0 - u0) * K;
            for (int64_t u = 0; u < W; ++u)
                for (int64_t j = 0; j < K; ++j) w_rows[(k0 + u) * K + j] = g[j * W + u];
            k0 += W;
        }
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
        const int64_t T = dm.T, N = dm.N, C = dm.C, H = dm.H;
        const bool exact_rnn = cell == Cell::rnn && mode == RtrlMode::exact;
        const int64_t K = cell == Cell::indrnn ? C + 2 : H + C + 1;
        const int64_t P = H * K + H;
        const int64_t pieces = exact_rnn ? ceil_div(P, BW) : cell == Cell::indrnn ? ceil_div(H, UB) : H;
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
        const size_t o_act = ws.reserve<int64_t>(T * team);
        // IndRNN: per thread x rows with a ones column, one unit block's
        // factors and transposed S; gT: all units' transposed gradient rows.
        const int64_t per_thread_xn = T * (C + 1) + (3 * T + C + 3) * V::W;
        const size_t o_xn = ws.reserve<Real>(cell == Cell::indrnn ? per_thread_xn * team : 1);
        const size_t o_gT = ws.reserve<Real>(cell == Cell::indrnn ? H * K : 1);
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
            if (cell == Cell::indrnn) {
                // One range of units per thread: x's rows of a sequence are
                // gathered once for all of them (each unit's arithmetic is
                // the same whatever the range, so the results are too).
                const Range ur = share(H, tm.id(), tm.size());
                if (ur.end > ur.begin)
                    indrnn_units(dm, io, hp, dd, ur.begin, ur.end, w_rows, ws.at<Real>(o_gT) + ur.begin * K,
                                 ws.at<int64_t>(o_act) + T * tm.id(), ws.at<Real>(o_xn) + per_thread_xn * tm.id(),
                                 ws.at<Real>(o_xn) + per_thread_xn * tm.id() + T * (C + 1));
            }
            for (int64_t p = r.begin; p < r.end && cell != Cell::indrnn; ++p) {
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
                if (cell == Cell::indrnn) {
                    io.dw_hh[i] = g[0];
                    for (int64_t c = 0; c < C; ++c) io.dw_ih[i * C + c] = g[1 + c];
                    io.db_ih[i] = io.db_hh[i] = g[1 + C];
                } else {
                    for (int64_t m = 0; m < H; ++m) io.dw_hh[i * H + m] = g[m];
                    for (int64_t c = 0; c < C; ++c) io.dw_ih[i * C + c] = g[H + c];
                    io.db_ih[i] = io.db_hh[i] = g[H + C];
                }
            }
        });
    }
};

template <class Real>
void rtrl_entry(Cell cell, RtrlMode mode, const Dims& d, const RtrlIO<Real>& io, int threads) {
    RtrlKernels<Vec<Real>>::run(cell, mode, d, io, threads);
}

const RtrlTable& rtrl_table() {
    static constexpr RtrlTable table{rtrl_entry<float>, rtrl_entry<double>};
    return table;
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
