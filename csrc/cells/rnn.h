// Elman RNN and IndRNN pointwise math, over lanes [u, u + W) of one row.
// Twins of python/rnnkit/reference/rnn.py and indrnn.py. The two differ only
// in the recurrence: a GEMM with w_hh [H,H] (RNN) or an elementwise product
// with w_hh [H] (IndRNN), which needs no GEMM and no barrier at all.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

template <bool Independent>
struct ElmanCell {
    static constexpr int G = 1;
    static constexpr bool recurrent_gemm = !Independent;
    static constexpr bool fusable = !Independent;   // input and recurrent sides in one GEMM
    static constexpr bool has_c = false;

    template <class Real>
    static Real input_bias(const Real* b_ih, const Real* b_hh, int64_t row, int64_t /*H*/) {
        return b_ih[row] + b_hh[row];
    }
    // Training keeps x @ w_ih.T + b in the h cache until the step overwrites it.
    template <class Real>
    static Real* xw_cache(const ForwardIO<Real>& io) { return io.h; }

    template <bool Training, class Vx, class Real>
    static void forward(const ForwardRow<Real>& p, int64_t u, int64_t a) {
        Vx pre;
        if constexpr (Independent)
            pre = fma(Vx::loadu(p.w + u), Vx::loadu(p.h_prev + u), Vx::loadu(p.xw + u));
        else
            pre = Vx::loadu(p.xw + u) + Vx::loadu(p.acc + a);
        const Vx h = activate(p.act, pre);
        h.storeu(p.h + u);
        h.storeu(p.y + u);
    }

    template <bool Training, class Vx, class Real>
    static void carry(const ForwardRow<Real>& p, int64_t u) {
        Vx::loadu(p.h_prev + u).storeu(p.h + u);
        Vx::zero().storeu(p.y + u);
    }

    template <class Vx, class Real>
    static void backward(const BackwardRow<Real>& p, int64_t u) {
        const Vx dh = Vx::loadu(p.dh + u) + Vx::loadu(p.dy + u);
        const Vx dgates = dh * dactivate(p.act, Vx::loadu(p.h + u));
        dgates.storeu(p.dgates + u);
        if constexpr (Independent) (dgates * Vx::loadu(p.w + u)).storeu(p.dh + u);
    }

    template <class Vx, class Real>
    static void backward_carry(const BackwardRow<Real>& p, int64_t u) {
        Vx::zero().storeu(p.dgates + u);
    }

    template <class Vx, class Real>
    static void backward_dh(const BackwardRow<Real>& p, const Real* acc, int64_t u, int64_t a) {
        Vx::loadu(acc + a).storeu(p.dh + u);
    }
};

using RnnCell = ElmanCell<false>;
using IndRnnCell = ElmanCell<true>;

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
