// LSTM pointwise math: the forward gate epilogue and the BPTT step, over
// lanes [u, u + W) of one row. Twin of python/rnnkit/reference/lstm.py (same
// local names). The sequence level (GEMMs, time loop) is forward.h/backward.h.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

struct LstmCell {
    static constexpr int G = 4;                 // i, f, g, o
    static constexpr bool recurrent_gemm = true;
    static constexpr bool fusable = true;   // input and recurrent sides in one GEMM
    static constexpr bool has_c = true;

    // What the input-side GEMM adds: both biases.
    template <class Real>
    static Real input_bias(const Real* b_ih, const Real* b_hh, int64_t row, int64_t /*H*/) {
        return b_ih[row] + b_hh[row];
    }
    // Training keeps the pre-activations in the gates cache until the step reads them.
    template <class Real>
    static Real* xw_cache(const ForwardIO<Real>& io) { return io.gates; }

    template <bool Training, class Vx, class Real>
    RNNKIT_MATH_INLINE static void forward(const ForwardRow<Real>& p, int64_t u, int64_t a) {
        const int64_t H = p.H, U = p.U;
        const Vx i = vsigmoid(Vx::loadu(p.xw + u) + Vx::loadu(p.acc + a));
        const Vx f = vsigmoid(Vx::loadu(p.xw + H + u) + Vx::loadu(p.acc + U + a));
        const Vx g = vtanh(Vx::loadu(p.xw + 2 * H + u) + Vx::loadu(p.acc + 2 * U + a));
        const Vx o = vsigmoid(Vx::loadu(p.xw + 3 * H + u) + Vx::loadu(p.acc + 3 * U + a));
        const Vx c = fma(f, Vx::loadu(p.c_prev + u), i * g);
        const Vx tanh_c = vtanh(c);
        const Vx h = o * tanh_c;
        c.storeu(p.c + u);
        h.storeu(p.h + u);
        h.storeu(p.y + u);
        if constexpr (Training) {
            i.storeu(p.gates + u);
            f.storeu(p.gates + H + u);
            g.storeu(p.gates + 2 * H + u);
            o.storeu(p.gates + 3 * H + u);
            tanh_c.storeu(p.tanh_c + u);
        }
    }

    // An inactive step carries h and c and writes zeros to y and the cache.
    template <bool Training, class Vx, class Real>
    static void carry(const ForwardRow<Real>& p, int64_t u) {
        const int64_t H = p.H;
        Vx::loadu(p.c_prev + u).storeu(p.c + u);
        Vx::loadu(p.h_prev + u).storeu(p.h + u);
        Vx::zero().storeu(p.y + u);
        if constexpr (Training) {
            for (int g = 0; g < G; ++g) Vx::zero().storeu(p.gates + g * H + u);
            Vx::zero().storeu(p.tanh_c + u);
        }
    }

    // BPTT through one active step, before the recurrent GEMM: dgates and dc.
    template <class Vx, class Real>
    static void backward(const BackwardRow<Real>& p, int64_t u) {
        const int64_t H = p.H;
        const Vx i = Vx::loadu(p.gates + u), f = Vx::loadu(p.gates + H + u);
        const Vx g = Vx::loadu(p.gates + 2 * H + u), o = Vx::loadu(p.gates + 3 * H + u);
        const Vx tanh_c = Vx::loadu(p.tanh_c + u);
        const Vx dh = Vx::loadu(p.dh + u) + Vx::loadu(p.dy + u);
        const Vx do_ = dh * tanh_c * dsigmoid(o);
        const Vx dc_total = Vx::loadu(p.dc + u) + dh * o * dtanh(tanh_c);
        const Vx di = dc_total * g * dsigmoid(i);
        const Vx df = dc_total * Vx::loadu(p.c_prev + u) * dsigmoid(f);
        const Vx dg = dc_total * i * dtanh(g);
        di.storeu(p.dgates + u);
        df.storeu(p.dgates + H + u);
        dg.storeu(p.dgates + 2 * H + u);
        do_.storeu(p.dgates + 3 * H + u);
        (dc_total * f).storeu(p.dc + u);
    }

    // An inactive step passes dh and dc through; its dgates are zero.
    template <class Vx, class Real>
    static void backward_carry(const BackwardRow<Real>& p, int64_t u) {
        for (int g = 0; g < G; ++g) Vx::zero().storeu(p.dgates + g * p.H + u);
    }

    // After the recurrent GEMM (acc = dgates @ w_hh): the new dh of an active row.
    template <class Vx, class Real>
    static void backward_dh(const BackwardRow<Real>& p, const Real* acc, int64_t u, int64_t a) {
        Vx::loadu(acc + a).storeu(p.dh + u);
    }
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
