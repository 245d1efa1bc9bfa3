// Instantiates every cell x pass x dtype of one ISA and fills its kernel
// table. Included last by each csrc/dispatch/isa_<name>.cpp; the table is the
// only thing an ISA translation unit exports.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

template <class V, class Cell>
void forward_entry(const Dims& d, const ForwardIO<typename V::T>& io, bool training, int threads) {
    if (training)
        sequence_forward<V, Cell, true>(d, io, threads);
    else
        sequence_forward<V, Cell, false>(d, io, threads);
}

template <class V, class Cell>
void backward_entry(const Dims& d, const BackwardIO<typename V::T>& io, int threads) {
    sequence_backward<V, Cell>(d, io, threads);
}

template <class V, MathFn Fn>
void math_entry(const typename V::T* x, typename V::T* y, int64_t n) {
    for_lanes<V>(n, [&](auto vx, int64_t i) {
        using Vx = decltype(vx);
        const Vx v = Vx::loadu(x + i);
        if constexpr (Fn == MathFn::exp) vexp(v).storeu(y + i);
        if constexpr (Fn == MathFn::tanh) vtanh(v).storeu(y + i);
        if constexpr (Fn == MathFn::sigmoid) vsigmoid(v).storeu(y + i);
    });
}

// Indexed by Cell (rnn, lstm, gru, indrnn) and MathFn (exp, tanh, sigmoid).
template <class Real>
constexpr KernelsFor<Real> kernels_for() {
    using V = Vec<Real>;
    return {{forward_entry<V, RnnCell>, forward_entry<V, LstmCell>, forward_entry<V, GruCell>,
             forward_entry<V, IndRnnCell>},
            {backward_entry<V, RnnCell>, backward_entry<V, LstmCell>, backward_entry<V, GruCell>,
             backward_entry<V, IndRnnCell>},
            {math_entry<V, MathFn::exp>, math_entry<V, MathFn::tanh>, math_entry<V, MathFn::sigmoid>}};
}

#define RNNKIT_STR2(x) #x
#define RNNKIT_STR(x) RNNKIT_STR2(x)

const KernelTable& kernel_table() {
    static constexpr KernelTable table{RNNKIT_STR(RNNKIT_ISA), kernels_for<float>(), kernels_for<double>()};
    return table;
}

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
