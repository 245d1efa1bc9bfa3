// The per-row views a cell's pointwise code reads and writes: one batch row n
// at one step t. The sequence drivers (forward.h, backward.h) fill them; the
// cells (lstm.h, gru.h, rnn.h) compute lanes [u, u + W) of them.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

template <class Real>
struct ForwardRow {
    const Real* acc;     // [G][U] the recurrent GEMM tile's row: gate g of lane a at acc[g*U + a]
    int64_t U;           // units per tile block
    const Real* xw;      // [G*H] input side: x @ w_ih.T + biases (fused steps: the biases alone)
    const Real* h_prev;  // [H]
    Real* h;             // [H] state after the step
    Real* y;             // [H]
    const Real* c_prev;  // [H] LSTM
    Real* c;             // [H] LSTM
    Real* gates;         // [G*H] cache (training)
    Real* tanh_c;        // [H] LSTM cache (training)
    Real* hn;            // [H] GRU cache (training)
    const Real* w;       // IndRNN: w_hh [H]; GRU: b_hh [3H] (b_hn at 2H)
    int64_t H;
    Act act;
};

template <class Real>
struct BackwardRow {
    const Real* dy;       // [H] at t
    Real* dh;             // [H] running gradient of the state
    Real* dc;             // [H] LSTM: running gradient of the cell state
    Real* dh_z;           // [H] GRU: dh*z, the direct path to h_prev
    const Real* gates;    // [G*H] cache at t
    const Real* tanh_c;   // [H] LSTM
    const Real* c_prev;   // [H] LSTM
    const Real* h;        // [H] RNN, IndRNN: the output at t
    const Real* h_prev;   // [H] GRU
    const Real* hn;       // [H] GRU
    const Real* w;        // [H] IndRNN w_hh
    Real* dgates;         // [G*H] d(pre-activation), input side
    Real* dgates_hh;      // [G*H] GRU: d(pre-activation), recurrent side
    int64_t H;
    Act act;
};

// Derivatives from the saved output (STYLE: the name says so).
template <class Vx> inline Vx dsigmoid(Vx y) { return y * (Vx::set1(1) - y); }
template <class Vx> inline Vx dtanh(Vx y) { return Vx::set1(1) - y * y; }
template <class Vx> inline Vx drelu(Vx y) { return select(gt(y, Vx::zero()), Vx::set1(1), Vx::zero()); }

template <class Vx> inline Vx activate(Act act, Vx a) { return act == Act::tanh ? vtanh(a) : vrelu(a); }
template <class Vx> inline Vx dactivate(Act act, Vx y) { return act == Act::tanh ? dtanh(y) : drelu(y); }

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
