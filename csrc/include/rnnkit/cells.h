// The argument blocks of the native cells: one per pass, fields in the
// reference function's order (inputs in parameter order, then outputs in
// return order), every pointer commented with its shape. docs/cells.md is the
// contract; python/rnnkit/reference is the executable spec.
#pragma once

#include <cstdint>

namespace rnnkit {

enum class Cell : int { rnn = 0, lstm = 1, gru = 2, indrnn = 3 };
constexpr int kCells = 4;
enum class Act : int { tanh = 0, relu = 1 };   // RNN and IndRNN nonlinearity
enum class MathFn : int { exp = 0, tanh = 1, sigmoid = 2 };   // the kernels' own, for tests

// Gates per hidden unit: G.
constexpr int64_t gates_of(Cell cell) {
    return cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1;
}

struct Dims {
    int64_t T;  // time steps, >= 1
    int64_t N;  // batch, >= 1
    int64_t C;  // input features, >= 1
    int64_t H;  // hidden units, >= 1
};

// <cell>_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths, reverse, nonlinearity, training)
//   -> y, h_n, c_n, cache
// Inference (training=False) passes null for every cache array.
template <class Real>
struct ForwardIO {
    const Real* x;             // [T,N,C]
    const Real* h0;            // [N,H]
    const Real* c0;            // [N,H] LSTM, else null
    const Real* w_ih;          // [G*H,C]
    const Real* w_hh;          // [G*H,H]; IndRNN [H]
    const Real* b_ih;          // [G*H]
    const Real* b_hh;          // [G*H]
    const int64_t* lengths;    // [N], each in 0..T
    bool reverse;
    Act act;                   // RNN, IndRNN
    Real* y;                   // [T,N,H]
    Real* h_n;                 // [N,H]
    Real* c_n;                 // [N,H] LSTM, else null
    // cache (training only)
    Real* h;                   // [T,N,H] state after step t
    Real* c;                   // [T,N,H] LSTM
    Real* tanh_c;              // [T,N,H] LSTM
    Real* gates;               // [T,N,G*H] LSTM (i,f,g,o), GRU (r,z,n): activated
    Real* hn;                  // [T,N,H] GRU: h_prev @ w_hn.T + b_hn
    // How the weights are read: 0 by shape (direct_weights(T, N)), 1 in place
    // (dot products), 2 packed. A segment of a longer call (memory-budgeted
    // BPTT replays one) passes the whole call's choice, so that its steps take
    // the same path, bitwise.
    int weights;
};

// <cell>_backward(dy, dh_n, dc_n, cache) -> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh
template <class Real>
struct BackwardIO {
    const Real* dy;            // [T,N,H]
    const Real* dh_n;          // [N,H]
    const Real* dc_n;          // [N,H] LSTM, else null
    // cache: the forward call's inputs
    const Real* x;             // [T,N,C]
    const Real* h0;            // [N,H]
    const Real* c0;            // [N,H] LSTM
    const Real* w_ih;          // [G*H,C]
    const Real* w_hh;          // [G*H,H]; IndRNN [H]
    const int64_t* lengths;    // [N]
    bool reverse;
    Act act;                   // RNN, IndRNN
    // cache: the forward call's arrays
    const Real* h;             // [T,N,H]
    const Real* c;             // [T,N,H] LSTM
    const Real* tanh_c;        // [T,N,H] LSTM
    const Real* gates;         // [T,N,G*H] LSTM, GRU
    const Real* hn;            // [T,N,H] GRU
    // outputs
    Real* dx;                  // [T,N,C]
    Real* dh0;                 // [N,H]
    Real* dc0;                 // [N,H] LSTM, else null
    Real* dw_ih;               // [G*H,C]
    Real* dw_hh;               // [G*H,H]; IndRNN [H]
    Real* db_ih;               // [G*H]
    Real* db_hh;               // [G*H]
    // false: dw_ih, dw_hh, db_ih, db_hh are written; true: added to, as the
    // running sums of the later steps (a segment of memory-budgeted BPTT: the
    // same FMA chains as one call, since every chain runs in processing order).
    bool accumulate;
};

}  // namespace rnnkit
