// rnnkit's public C++ header: shape letters, layouts and the entry points of
// the native core. No Python here; src/core binds it.
//
// Shape letters, used in every pointer comment:
//   T  time steps            N  batch size          C  input features
//   H  hidden units          G  gates per unit: 1 (RNN, IndRNN), 4 (LSTM: i,f,g,o), 3 (GRU: r,z,n)
// All arrays are C-contiguous, time-major: x is [T,N,C]. Weights use PyTorch's
// layout and gate order (w_ih [G*H,C], w_hh [G*H,H], IndRNN w_hh [H]).
// The cache arrays and the lengths/direction rule are specified in docs/cells.md.
#pragma once

#include <cstddef>

#include <cstdint>
#include <string>
#include <vector>

#include "rnnkit/cells.h"
#include "rnnkit/cpu.h"
#include "rnnkit/params.h"
#include "rnnkit/rtrl.h"

namespace rnnkit {

// --- The cells. Callers validate (src/core does): shapes as in cells.h, T, N,
// C, H >= 1, lengths in 0..T. Each call runs one OpenMP parallel region on
// num_threads() threads with the kernels of the ISA in use; results are bitwise
// identical for any thread count.
template <class Real> void forward(Cell cell, const Dims& d, const ForwardIO<Real>& io);
template <class Real> void backward(Cell cell, const Dims& d, const BackwardIO<Real>& io);

// --- Vectorised math (the kernels' own exp, tanh, sigmoid), for tests.
template <class Real> void vector_math(MathFn fn, const Real* x, Real* y, int64_t n);

// --- ISA dispatch: the first of {avx512, avx2, scalar} that this build has
// and the CPU supports, unless RNNKIT_ISA names one (read once, at first use).
// set_isa/the environment throw std::invalid_argument for an unknown name or
// an ISA the CPU lacks.
std::string isa();                          // "avx512", "avx2" or "scalar"
void set_isa(const std::string& name);
std::vector<std::string> supported_isas();  // best first
// What the compiler built the scalar kernels (the fallback) for, from its own
// macros: "x86-64 baseline (SSE2)" in a wheel, so that they run on any x86-64.
std::string scalar_target();

// --- Threads: defaults to omp_get_max_threads() (so OMP_NUM_THREADS counts).
int num_threads();
void set_num_threads(int n);                // n >= 1, else std::invalid_argument

// --- Counters for tests: parallel regions entered, barriers passed (both
// counted by thread 0) and workspace allocations since the process started,
// and the team size of the latest region.
struct Counters {
    int64_t parallel_regions;
    int64_t barriers;
    int64_t workspace_allocations;
    int64_t last_team_size;
};
Counters counters();

// --- Kept memory. A call's workspace (packed weights; in backward also
// dgates for all T steps: T*N*G*H values) is one allocation, and the arrays
// the bindings hand to Python (outputs, the training cache) one each. Blocks
// of kKeptBlockMin bytes or more are kept when freed, up to
// kWorkspaceCacheBlocks blocks and kWorkspaceCacheBytes in all, most recent
// first, and reused by a later request that needs between half of a block
// (a workspace) or 4/5 of it (an array) and all of it. A training loop then
// touches no fresh page after its first step: fresh pages cost a fault each,
// and transparent huge pages sometimes a compaction stall (measured up to
// 0.35 s for 105 MB in a VM).
constexpr std::size_t kKeptBlockMin = std::size_t(2) << 20;
constexpr int kWorkspaceCacheBlocks = 16;
constexpr std::size_t kWorkspaceCacheBytes = std::size_t(1) << 30;
std::size_t workspace_cached_bytes();      // retained now
void release_workspace_cache();            // frees every retained block

// --- The round trip of a cache line between two CPUs this process may use
// (the first two of its affinity mask), in ns: the median of 5 batches of
// 20,000 exchanges between this thread and a helper thread, each pinned to
// one of the two. It bounds what a team's barrier costs per step (a step of
// RNN N=1 H=256 is about 2 us). In a VM it changes with the host's placement
// of the vCPUs: 70 to 420 ns on one 2-vCPU VM within an hour. Negative where
// it cannot be measured (one usable CPU, not Linux). Takes 10-50 ms.
double core_round_trip_ns();

// --- The measured FMA peak of one ISA (not a kernel; for rnnkit.bench's %FMA):
// `threads` threads (OpenMP) each run independent multiply-add chains on
// registers (12 on 16 ymm/xmm, 24 on 32 zmm) for `seconds`, with that ISA's
// instructions (the baseline's "scalar": 16-byte vectors, multiply then add).
// flops_per_s counts 2 FLOPs per multiply-add, over the whole team's window
// of wall time; flops_per_cpu_s sums each thread's FLOPs per second of the CPU
// time it got (CLOCK_THREAD_CPUTIME_ID), so other load on the machine does not
// lower it (-1 where that clock is missing).
// Throws std::invalid_argument for an unknown ISA or one the CPU lacks, for
// threads outside 1..1024 or seconds outside (0, 60], and std::runtime_error
// for threads > 1 in a child forked after a team ran (libgomp would hang).
struct FmaPeak {
    double flops_per_s;
    double flops_per_cpu_s;
    double seconds;      // measured window
    int threads;         // team size run (1 without OpenMP)
    int chains, lanes;   // per thread: independent accumulators, values per register
    bool fused;          // one FMA instruction per multiply-add
};
FmaPeak fma_peak(const std::string& isa, bool f64, int threads, double seconds);
// Memory for an array handed to Python: 64-byte aligned, kept blocks for
// large ones. array_free takes the same byte count. Throws std::bad_alloc.
void* array_alloc(std::size_t bytes);
void array_free(void* p, std::size_t bytes);

}  // namespace rnnkit
