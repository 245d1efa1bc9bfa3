// Per-CPU kernel parameters (rnnkit/params.h): cache sizes from cpuid, the
// defaults derived from them, and the parameters in use (set by the
// autotuner's cached result, by rnnkit.set_kernel_params, or left at the
// cpuid defaults). Baseline code: no ISA flags.
#include "rnnkit/params.h"

#include <mutex>
#include <stdexcept>

#include "rnnkit/cpu.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define RNNKIT_PARAMS_X86 1
#endif

namespace rnnkit {
namespace {

#ifdef RNNKIT_PARAMS_X86
struct Regs {
    unsigned eax, ebx, ecx, edx;
};
Regs cpuid(unsigned leaf, unsigned subleaf) {
    Regs r{};
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
    return r;
}

// The deterministic cache parameters leaf (4 on Intel, 0x8000001D on AMD):
// one subleaf per cache, type in eax[4:0] (1 data, 3 unified), level in
// eax[7:5]; bytes = ways * partitions * line size * sets.
CacheSizes read_caches(unsigned leaf) {
    CacheSizes c;
    for (unsigned sub = 0; sub < 16; ++sub) {
        const Regs r = cpuid(leaf, sub);
        const unsigned type = r.eax & 0x1fu;
        if (type == 0) break;
        const unsigned level = (r.eax >> 5) & 0x7u;
        const int64_t ways = ((r.ebx >> 22) & 0x3ffu) + 1, parts = ((r.ebx >> 12) & 0x3ffu) + 1;
        const int64_t line = (r.ebx & 0xfffu) + 1, sets = int64_t{r.ecx} + 1;
        const int64_t bytes = ways * parts * line * sets;
        if (level == 1 && type == 1) c.l1d = bytes;
        if (level == 2 && (type == 3 || type == 1)) c.l2 = bytes;
        if (level == 3 && (type == 3 || type == 1)) c.l3 = bytes;
    }
    return c;
}
#endif

CacheSizes detect_caches() {
#ifdef RNNKIT_PARAMS_X86
    const Regs r0 = cpuid(0, 0);
    const bool amd = cpu_features().vendor == "AuthenticAMD" || cpu_features().vendor == "HygonGenuine";
    if (amd) {
        const Regs e0 = cpuid(0x80000000u, 0);
        const Regs e1 = e0.eax >= 0x80000001u ? cpuid(0x80000001u, 0) : Regs{};
        // TopologyExtensions (ecx bit 22) says 0x8000001D is there.
        if (e0.eax >= 0x8000001Du && ((e1.ecx >> 22) & 1u)) return read_caches(0x8000001Du);
    } else if (r0.eax >= 4) {
        return read_caches(4);
    }
#endif
    return {};
}

std::mutex params_mutex;
KernelParams* current = nullptr;   // guarded by params_mutex; null = cpuid_params()
std::string* current_source = nullptr;

void check_field(const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        throw std::invalid_argument(std::string("kernel parameter ") + name + " must be in [" + std::to_string(lo) +
                                    ", " + std::to_string(hi) + "], got " + std::to_string(v));
}

}  // namespace

const CacheSizes& cache_sizes() {
    static const CacheSizes c = detect_caches();
    return c;
}

int64_t assumed_l1d() { return cache_sizes().l1d > 0 ? cache_sizes().l1d : 32768; }
int64_t assumed_l2() { return cache_sizes().l2 > 0 ? cache_sizes().l2 : 524288; }

KernelParams cpuid_params() {
    // Budgets as fractions of the caches they target: a slice or B block
    // read by every tile of a block lives in L1 beside the tile's A stream
    // (half of L1d); the A chunks serving every column block live in L2
    // beside the B blocks streaming through (a quarter to a half of L2).
    // Unknown caches: assumed_l1d() and assumed_l2().
    const int64_t l1 = assumed_l1d(), l2 = assumed_l2();
    KernelParams p;
    p.fwd_slice_bytes = l1 / 2;
    p.bwd_b_bytes = l1 / 2;
    p.dx_a_bytes = l2 * 3 / 16;
    p.wg_b_bytes = l1 / 2;
    p.wg_a_bytes = l2 * 3 / 8;
    return p;
}

KernelParams kernel_params() {
    std::lock_guard<std::mutex> lock(params_mutex);
    return current != nullptr ? *current : cpuid_params();
}

std::string kernel_params_source() {
    std::lock_guard<std::mutex> lock(params_mutex);
    return current_source != nullptr ? *current_source : std::string("cpuid");
}

void set_kernel_params(const KernelParams& p, const std::string& source) {
    constexpr int64_t MiB = int64_t{1} << 20;
    check_field("fwd_slice_bytes", p.fwd_slice_bytes, 0, 64 * MiB);
    check_field("bwd_b_bytes", p.bwd_b_bytes, 512, 64 * MiB);
    check_field("dx_a_bytes", p.dx_a_bytes, 512, 256 * MiB);
    check_field("wg_b_bytes", p.wg_b_bytes, 512, 64 * MiB);
    check_field("wg_a_bytes", p.wg_a_bytes, 512, 256 * MiB);
    std::lock_guard<std::mutex> lock(params_mutex);
    // Old copies are kept, never freed: a call may still be reading one.
    current = new KernelParams(p);
    current_source = new std::string(source);
}

int64_t block_from_bytes(int64_t budget, int64_t unit_bytes, int64_t lo, int64_t hi, int64_t multiple) {
    int64_t b = unit_bytes > 0 ? budget / unit_bytes : hi;
    if (multiple > 1) b = b / multiple * multiple;
    if (b < lo) b = lo;
    if (b > hi) b = hi;
    return b;
}

}  // namespace rnnkit
