// The FMA peak probe of one ISA: enough independent multiply-add chains to keep
// every FMA unit busy (latency x throughput: 4-5 cycles x 2 units = 8-10 on
// current x86 cores), on registers only, no memory traffic. It measures what
// the kernels' GFLOP/s are judged against (rnnkit.bench's %FMA); it is not a
// kernel, and nothing in the cells calls it. Included last by each
// csrc/dispatch/isa_<name>.cpp, after its Vec types, with that file's flags.
#pragma once

#include "dispatch/peak_table.h"

namespace rnnkit {
namespace RNNKIT_ISA {

// Chains: 12 of the 16 ymm/xmm registers (the other 4 hold the two constants,
// with room to spare, so nothing spills), 24 of the 32 zmm registers.
#if defined(__AVX512F__)
constexpr int kPeakChains = 24;
#else
constexpr int kPeakChains = 12;
#endif

#if defined(__FMA__) || defined(__AVX512F__)
constexpr bool kPeakFused = true;
template <class Real> using PeakVec = Vec<Real>;
#elif defined(__GNUC__)
// The baseline's widest vector: 16 bytes (SSE2 on x86-64), a separate
// multiply and add (-ffp-contract=off keeps them apart), which is the most
// the baseline flags allow a kernel.
constexpr bool kPeakFused = false;
template <class Real>
struct PeakVec {
    using T = Real;
    static constexpr int W = 16 / sizeof(Real);
    typedef Real raw __attribute__((vector_size(16)));
    raw v;
    static PeakVec set1(Real x) {
        PeakVec r;
        for (int i = 0; i < W; ++i) r.v[i] = x;
        return r;
    }
    void storeu(Real* p) const { __builtin_memcpy(p, &v, sizeof v); }
    friend PeakVec fma(PeakVec a, PeakVec b, PeakVec c) { return {a.v * b.v + c.v}; }
};
#else
constexpr bool kPeakFused = false;
template <class Real> using PeakVec = Vec<Real>;   // Scalar<Real>: one lane
#endif

// acc <- acc * a + b with a = 1 - 2^-12 and b = 2^-12: each chain tends to 1
// and stays there, so no value overflows or turns subnormal (which would
// slow the units), whatever the number of iterations.
template <class Real>
Real fma_chains(int64_t iters, Real seed) {
    using V = PeakVec<Real>;
    const V a = V::set1(Real(1) - Real(1) / Real(4096));
    const V b = V::set1(Real(1) / Real(4096));
    // Every j loop fully unrolled, so that acc[] lives in registers: left to
    // itself GCC 12 unrolls the 12 ymm chains but not the 24 zmm ones, and
    // keeps those in memory, a load and a store around each FMA, which halved
    // the AVX-512 peak on Zen 4 (61 against AVX2's 108 GFLOP/s, 1 thread)
    // and put the kernels above "100% FMA".
    V acc[kPeakChains];
#pragma GCC unroll 32
    for (int j = 0; j < kPeakChains; ++j) acc[j] = V::set1(seed + Real(j) / Real(kPeakChains));
    for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 32
        for (int j = 0; j < kPeakChains; ++j) acc[j] = fma(acc[j], a, b);
    }
    Real lanes[64];
    Real sum = 0;
    for (int j = 0; j < kPeakChains; ++j) {
        acc[j].storeu(lanes);
        for (int l = 0; l < V::W; ++l) sum += lanes[l];
    }
    return sum;
}

#define RNNKIT_PEAK_STR2(x) #x
#define RNNKIT_PEAK_STR(x) RNNKIT_PEAK_STR2(x)

const FmaPeakTable& fma_peak_table() {
    static constexpr FmaPeakTable table{RNNKIT_PEAK_STR(RNNKIT_ISA), kPeakChains, PeakVec<float>::W,
                                        PeakVec<double>::W, kPeakFused, fma_chains<float>,
                                        fma_chains<double>};
    return table;
}

#undef RNNKIT_PEAK_STR
#undef RNNKIT_PEAK_STR2

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
