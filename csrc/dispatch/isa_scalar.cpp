// The baseline kernels: plain x86-64 (SSE2) or any other target, no extra
// flags. On x86-64 its Vec type is SSE2's 4 lanes (vec_sse2.h), each lane
// computing exactly what Scalar<Real>, the readable spec of every vector op,
// computes here; elsewhere Scalar<Real> itself. It is the fallback when the
// CPU has neither AVX2 nor AVX-512.
// Only C headers and intrinsics are used below: a std:: template instantiated
// here could be merged by the linker with the baseline's copy (ODR).
#include <cstddef>
#include <cstdint>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch/kernel_table.h"

#define RNNKIT_ISA scalar
#include "kernels/vec_scalar.h"
#if defined(__x86_64__) || defined(_M_X64)
#include "kernels/vec_sse2.h"
#endif

namespace rnnkit {
namespace RNNKIT_ISA {
#if defined(__x86_64__) || defined(_M_X64)
// x86-64 always has SSE2: 4-lane vectors with exactly Scalar's per-lane
// arithmetic (vec_sse2.h). Measured on Zen 3, 1 thread, float32: the 1-lane
// kernels ran 2-3 GFLOP/s, a quarter of torch's SSE4.1 oneDNN (bench --isa
// scalar); 16 xmm registers, so the tiles of the AVX2 path.
template <class Real> using Vec = Sse2<Real>;
struct Tiling {
    static constexpr int acc_regs = 12;
    static constexpr int gate_vecs = 2;
    static constexpr int plain_nv = 2;
};
#else
template <class Real> using Vec = Scalar<Real>;
struct Tiling {
    static constexpr int acc_regs = 12;
    static constexpr int gate_vecs = 4;
    static constexpr int plain_nv = 4;
};
#endif
}  // namespace RNNKIT_ISA
}  // namespace rnnkit
#include "kernels/vecmath.h"
#include "kernels/gemm.h"
#include "cells/sequence.h"
#include "cells/rows.h"
#include "cells/lstm.h"
#include "cells/gru.h"
#include "cells/rnn.h"
#include "cells/forward.h"
#include "cells/backward.h"
#include "cells/table.h"
#include "kernels/user_gemm.h"
#include "cells/rtrl.h"
#include "kernels/fma_peak.h"

namespace rnnkit {
namespace scalar {

// The target the compiler built this file for, from its own predefined macros,
// so that RNNKIT_NATIVE, a -march in CXXFLAGS or a compiler whose default is
// above the baseline all show in rnnkit.show_config(). A wheel must say
// "x86-64 baseline (SSE2)": the scalar kernels are the fallback for any CPU.
const char* compiled_for() {
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__AVX512F__)
    return "x86-64 + AVX-512 (above the baseline)";
#elif defined(__AVX2__)
    return "x86-64 + AVX2 (above the baseline)";
#elif defined(__AVX__)
    return "x86-64 + AVX (above the baseline)";
#elif defined(__SSE4_2__) || defined(__SSE4_1__) || defined(__SSSE3__) || defined(__SSE3__)
    return "x86-64 + SSE3/SSSE3/SSE4 (above the baseline)";
#else
    return "x86-64 baseline (SSE2)";
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
    return "aarch64 baseline (armv8-a)";
#else
    return "generic (no SIMD flags)";
#endif
}

}  // namespace scalar
}  // namespace rnnkit
