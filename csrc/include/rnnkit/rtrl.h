// Real-time recurrent learning (RTRL): the argument block and entry point of
// the native *_rtrl functions. docs/rtrl.md is the contract (equations, the
// sensitivity layout S, lengths and chunking); python/rnnkit/reference/rtrl.py
// is the executable spec. Shape letters as in rnnkit.h; K = H + C + 1 (RNN),
// C + 2 (IndRNN), H + C + 2 (GRU); V = 2 state vectors for LSTM, else 1.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rnnkit/cells.h"

namespace rnnkit {

enum class RtrlMode : int { exact = 0, simplified = 1, diag = 2 };

// <cell>_rtrl(x, h0, [c0,] w_ih, w_hh, b_ih, b_hh, dy, *, lengths, reverse, nonlinearity, mode, state)
//   -> y, h_n, [c_n,] grads (dh0, [dc0,] dw_ih, dw_hh, db_ih, db_hh), state (h, [c,] S)
template <class Real>
struct RtrlIO {
    const Real* x;             // [T,N,C]
    const Real* h0;            // [N,H] the stream's current state
    const Real* c0;            // [N,H] LSTM, else null
    const Real* w_ih;          // [G*H,C]
    const Real* w_hh;          // [G*H,H]; IndRNN [H]
    const Real* b_ih;          // [G*H]
    const Real* b_hh;          // [G*H]
    const Real* dy;            // [T,N,H]
    const int64_t* lengths;    // [N], each in 0..T
    bool reverse;
    Act act;
    const Real* S0;            // sensitivities in: exact RNN/LSTM/GRU [N,V*H,G*H*K+V*H]; else [N,H,1,K+1]
    Real* y;                   // [T,N,H]
    Real* h_n;                 // [N,H]
    Real* c_n;                 // [N,H] LSTM, else null
    Real* dh0;                 // [N,H]
    Real* dc0;                 // [N,H] LSTM, else null
    Real* dw_ih;               // [G*H,C]
    Real* dw_hh;               // [G*H,H]; IndRNN [H]
    Real* db_ih;               // [G*H]
    Real* db_hh;               // [G*H]
    Real* S;                   // sensitivities out, S0's shape
};

// Elements of the sensitivity tensor S of one call, and the bytes of the
// workspace that the budget counts beside it on the active ISA with `threads`
// threads: IndRNN exact's block buffers (O(min(T, 128)*N*(H + C) + H*C), never
// growing with T); 0 for the other kernels, whose per-step buffers the budget
// does not count (docs/rtrl.md).
int64_t rtrl_sens_count(Cell cell, RtrlMode mode, const Dims& d);
std::size_t rtrl_workspace_bytes(Cell cell, RtrlMode mode, const Dims& d, std::size_t real_size, int threads);

// Whether the native core implements (cell, mode).
bool rtrl_native(Cell cell, RtrlMode mode);

// Runs one call on num_threads() threads; bitwise identical for any thread
// count. Callers validate (src/core/rtrl.cpp does) and check the budget.
template <class Real> void rtrl(Cell cell, RtrlMode mode, const Dims& d, const RtrlIO<Real>& io);

}  // namespace rnnkit
