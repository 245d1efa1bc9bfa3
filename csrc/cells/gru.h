// GRU pointwise math (reset-after, as PyTorch): the forward gate epilogue and
// the BPTT step, over lanes [u, u + W) of one row. Twin of
// python/rnnkit/reference/gru.py (same local names).
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

struct GruCell {
    static constexpr int G = 3;                 // r, z, n
    static constexpr bool recurrent_gemm = true;
    static constexpr bool fusable = false;  // n = tanh(x_n + r * (h_n + b_hn)): the sides stay apart
    static constexpr bool has_c = false;

    // The input side carries b_hh of r and z; b_hn stays on the recurrent side
    // because r multiplies it.
    template <class Real>
    static Real input_bias(const Real* b_ih, const Real* b_hh, int64_t row, int64_t H) {
        return row < 2 * H ? b_ih[row] + b_hh[row] : b_ih[row];
    }
    template <class Real>
    static Real* xw_cache(const ForwardIO<Real>& io) { return io.gates; }

    template <bool Training, class Vx, class Real>
    static void forward(const ForwardRow<Real>& p, int64_t u, int64_t a) {
        const int64_t H = p.H, U = p.U;
        const Vx r = vsigmoid(Vx::loadu(p.xw + u) + Vx::loadu(p.acc + a));
        const Vx z = vsigmoid(Vx::loadu(p.xw + H + u) + Vx::loadu(p.acc + U + a));
        const Vx hn = Vx::loadu(p.acc + 2 * U + a) + Vx::loadu(p.w + 2 * H + u);
        const Vx n = vtanh(Vx::loadu(p.xw + 2 * H + u) + r * hn);
        const Vx h = (Vx::set1(1) - z) * n + z * Vx::loadu(p.h_prev + u);
        h.storeu(p.h + u);
        h.storeu(p.y + u);
        if constexpr (Training) {
            r.storeu(p.gates + u);
            z.storeu(p.gates + H + u);
            n.storeu(p.gates + 2 * H + u);
            hn.storeu(p.hn + u);
        }
    }

    template <bool Training, class Vx, class Real>
    static void carry(const ForwardRow<Real>& p, int64_t u) {
        Vx::loadu(p.h_prev + u).storeu(p.h + u);
        Vx::zero().storeu(p.y + u);
        if constexpr (Training) {
            for (int g = 0; g < G; ++g) Vx::zero().storeu(p.gates + g * p.H + u);
            Vx::zero().storeu(p.hn + u);
        }
    }

    template <class Vx, class Real>
    static void backward(const BackwardRow<Real>& p, int64_t u) {
        const int64_t H = p.H;
        const Vx r = Vx::loadu(p.gates + u), z = Vx::loadu(p.gates + H + u);
        const Vx n = Vx::loadu(p.gates + 2 * H + u);
        const Vx hn = Vx::loadu(p.hn + u);
        const Vx dh = Vx::loadu(p.dh + u) + Vx::loadu(p.dy + u);
        const Vx dn = dh * (Vx::set1(1) - z) * dtanh(n);
        const Vx dz = dh * (Vx::loadu(p.h_prev + u) - n) * dsigmoid(z);
        const Vx dr = dn * hn * dsigmoid(r);
        const Vx dhn = dn * r;
        dr.storeu(p.dgates + u);
        dz.storeu(p.dgates + H + u);
        dn.storeu(p.dgates + 2 * H + u);
        dr.storeu(p.dgates_hh + u);
        dz.storeu(p.dgates_hh + H + u);
        dhn.storeu(p.dgates_hh + 2 * H + u);
        (dh * z).storeu(p.dh_z + u);
    }

    template <class Vx, class Real>
    static void backward_carry(const BackwardRow<Real>& p, int64_t u) {
        for (int g = 0; g < G; ++g) {
            Vx::zero().storeu(p.dgates + g * p.H + u);
            Vx::zero().storeu(p.dgates_hh + g * p.H + u);
        }
    }

    // dh = dh*z + dgates_hh @ w_hh
    template <class Vx, class Real>
    static void backward_dh(const BackwardRow<Real>& p, const Real* acc, int64_t u, int64_t a) {
        (Vx::loadu(p.dh_z + u) + Vx::loadu(acc + a)).storeu(p.dh + u);
    }
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
