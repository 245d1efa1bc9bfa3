// The kernels' blocking parameters: data chosen per CPU at run time, not
// constants per ISA. Each is a cache budget in bytes from which a call
// derives its block sizes for its tile geometry and dtype. None changes a
// result: every output stays one FMA chain in k order whatever the blocks
// (tests prove it across the candidate set); they change only speed.
// Not here: the register tiles (compile-time per ISA), the thread count, or
// whether the input side is fused into the step tiles (fuse_input: that
// choice changes the rounding, so it stays a function of the shape alone).
#pragma once

#include <cstdint>
#include <string>

namespace rnnkit {

// Cache sizes of one core, in bytes, from cpuid (leaf 4 on Intel,
// 0x8000001D on AMD); 0 where the CPU does not say.
struct CacheSizes {
    int64_t l1d = 0;
    int64_t l2 = 0;
    int64_t l3 = 0;   // the whole cache the core shares
};
const CacheSizes& cache_sizes();   // read once
// The cache sizes the budgets assume: cpuid's, else 32 KiB L1d and 512 KiB
// L2, the smallest x86-64 cores with AVX2 we build for.
int64_t assumed_l1d();
int64_t assumed_l2();

struct KernelParams {
    // Forward step tiles: the slice of a block's packed panel that all row
    // tiles read before the next (k rows of G*U values); 0 = the whole panel.
    int64_t fwd_slice_bytes = 16384;
    // Backward dh and dx GEMMs: the B slice ([KC][U]) per K block.
    int64_t bwd_b_bytes = 16384;
    // Backward dx GEMM: the packed A tiles ([tiles][KC][MR]) per row chunk.
    int64_t dx_a_bytes = 98304;
    // Weight-gradient GEMMs: the packed B block ([KC][U]) per K block, and
    // the packed A tiles of a chunk ([IC][KC][MR]).
    int64_t wg_b_bytes = 16384;
    int64_t wg_a_bytes = 196608;
};

// The parameters derived from cache_sizes() alone (what RNNKIT_TUNE=0 uses).
KernelParams cpuid_params();
// The parameters in use, copied whole: a call reads them once at its start.
KernelParams kernel_params();
// Where they came from: "cpuid", "tuned: <file>", "set", ...
std::string kernel_params_source();
// Replaces them (every field checked: std::invalid_argument names the field).
void set_kernel_params(const KernelParams& p, const std::string& source);

// The block sizes one call uses, from a budget: budget / unit_bytes, at
// least lo, at most hi, rounded down to a multiple of `multiple`.
int64_t block_from_bytes(int64_t budget, int64_t unit_bytes, int64_t lo, int64_t hi, int64_t multiple);

}  // namespace rnnkit
