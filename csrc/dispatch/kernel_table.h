// The table of kernels one ISA translation unit fills (isa_<name>.cpp), and
// the few baseline services the ISA code calls back into (dispatch.cpp).
// Private to csrc/: only plain declarations here, no inline code, so nothing
// compiled with AVX flags can be shared with the baseline (ODR).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rnnkit/cells.h"
#include "rnnkit/params.h"
#include "rnnkit/rtrl.h"

namespace rnnkit {

template <class Real>
struct KernelsFor {
    void (*forward[kCells])(const Dims&, const ForwardIO<Real>&, bool training, int threads);
    void (*backward[kCells])(const Dims&, const BackwardIO<Real>&, int threads);
    void (*math[3])(const Real* x, Real* y, int64_t n);
};

struct KernelTable {
    const char* name;
    KernelsFor<float> f32;
    KernelsFor<double> f64;
};

// RTRL (cells/rtrl.h): one entry per dtype, the cell and mode as arguments.
struct RtrlTable {
    void (*f32)(Cell, RtrlMode, const Dims&, const RtrlIO<float>&, int threads);
    void (*f64)(Cell, RtrlMode, const Dims&, const RtrlIO<double>&, int threads);
    // Elements of the workspace the budget counts beside S (rtrl_workspace_bytes).
    int64_t (*work_f32)(Cell, RtrlMode, const Dims&, int threads);
    int64_t (*work_f64)(Cell, RtrlMode, const Dims&, int threads);
};

namespace scalar {
const KernelTable& kernel_table();
const char* compiled_for();   // "x86-64 baseline (SSE2)" unless built above it
}  // namespace scalar
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }
namespace scalar { const RtrlTable& rtrl_table(); }
namespace avx2 { const RtrlTable& rtrl_table(); }
namespace avx512 { const RtrlTable& rtrl_table(); }

// rnnkit.Recurrent's plain GEMMs (kernels/user_gemm.h), one table per ISA.
// panel_width: columns per packed panel (U); packed buffers hold whole panels.
template <class Real>
struct UserKernelsFor {
    int64_t panel_width;
    void (*pack_t)(const Real* w, int64_t R, int64_t K, Real* panels);
    void (*pack_n)(const Real* w, int64_t R, int64_t K, Real* panels);
    void (*gemm)(int64_t M, int64_t cols, int64_t K, const Real* a, int64_t lda, const Real* panels,
                 const Real* bias, Real* out, int64_t ldo, bool accumulate, int threads);
    void (*gemm_tn)(int64_t M, int64_t R, int64_t Kc, const Real* a, int64_t lda, const Real* b, int64_t ldb,
                    Real* out, int threads);
    void (*colsum)(int64_t M, int64_t R, const Real* a, int64_t lda, Real* out, int threads);
};

struct UserKernelTable {
    const char* name;
    UserKernelsFor<float> f32;
    UserKernelsFor<double> f64;
};

namespace scalar { const UserKernelTable& user_kernel_table(); }
namespace avx2 { const UserKernelTable& user_kernel_table(); }
namespace avx512 { const UserKernelTable& user_kernel_table(); }

// Baseline services (dispatch.cpp). Allocation goes through here so tests can
// count it: once per call, never per step.
void* workspace_alloc(std::size_t bytes);   // 64-byte aligned; throws std::bad_alloc
void workspace_free(void* p, std::size_t bytes);   // bytes: as passed to workspace_alloc
void note_parallel_region(int team_size);   // by thread 0, inside the region
void note_barrier();

// The team's barrier, one per parallel region (a call). Spins for a bounded
// time, then sleeps on a futex: the spin lives inside a call only, so no
// thread burns a core after the call returns (OMP_WAIT_POLICY=passive stays
// true between calls), yet a step's barrier costs no futex wake-up when the
// team arrives within the spin (libgomp's passive omp barrier sleeps at once,
// costing ~10-30 us per step in a VM). Memory: everything a thread wrote
// before wait() is visible to every thread after it.
class TeamBarrier {
public:
    explicit TeamBarrier(int team);   // out of line, like everything here
    TeamBarrier(const TeamBarrier&) = delete;
    TeamBarrier& operator=(const TeamBarrier&) = delete;
    void wait();

private:
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) std::atomic<uint32_t> generation_{0};
    std::atomic<int> sleepers_{0};
    int team_;
};

}  // namespace rnnkit
