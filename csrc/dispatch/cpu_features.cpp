// cpuid + xgetbv feature detection. Compiled for the x86-64 baseline: it must
// run on any CPU, because it decides which ISA-specific code may run at all.
#include "rnnkit/cpu.h"

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#define RNNKIT_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace rnnkit {
namespace {

#ifdef RNNKIT_X86
struct Regs {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Regs cpuid(unsigned leaf, unsigned subleaf) {
    Regs r;
#if defined(_MSC_VER)
    int out[4];
    __cpuidex(out, static_cast<int>(leaf), static_cast<int>(subleaf));
    r.eax = out[0]; r.ebx = out[1]; r.ecx = out[2]; r.edx = out[3];
#else
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
    return r;
}

unsigned long long xgetbv0() {
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    unsigned eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }
#endif

CpuFeatures detect() {
    CpuFeatures f;
#ifdef RNNKIT_X86
    f.x86_64 = true;
    const Regs r0 = cpuid(0, 0);
    char vendor[13] = {};
    std::memcpy(vendor + 0, &r0.ebx, 4);
    std::memcpy(vendor + 4, &r0.edx, 4);
    std::memcpy(vendor + 8, &r0.ecx, 4);
    f.vendor = vendor;
    const unsigned max_leaf = r0.eax;

    const Regs r1 = cpuid(1, 0);
    f.sse2 = bit(r1.edx, 26);
    f.sse4_2 = bit(r1.ecx, 20);
    const bool osxsave = bit(r1.ecx, 27);
    const bool cpu_avx = bit(r1.ecx, 28);
    const bool cpu_fma = bit(r1.ecx, 12);

    if (osxsave) {
        const unsigned long long xcr0 = xgetbv0();
        // bit 1 SSE (XMM), bit 2 AVX (YMM upper halves)
        f.os_saves_ymm = (xcr0 & 0x6) == 0x6;
        // bits 5-7: opmask, ZMM0-15 upper halves, ZMM16-31
        f.os_saves_zmm = f.os_saves_ymm && (xcr0 & 0xE0) == 0xE0;
    }
    f.avx = cpu_avx && f.os_saves_ymm;
    f.fma = cpu_fma && f.os_saves_ymm;

    if (max_leaf >= 7) {
        const Regs r7 = cpuid(7, 0);
        f.avx2 = bit(r7.ebx, 5) && f.os_saves_ymm;
        f.avx512f = bit(r7.ebx, 16) && f.os_saves_zmm;
        f.avx512dq = bit(r7.ebx, 17) && f.os_saves_zmm;
        f.avx512bw = bit(r7.ebx, 30) && f.os_saves_zmm;
        f.avx512vl = bit(r7.ebx, 31) && f.os_saves_zmm;
    }

    const Regs e0 = cpuid(0x80000000u, 0);
    if (e0.eax >= 0x80000004u) {
        char brand[49] = {};
        for (unsigned i = 0; i < 3; ++i) {
            const Regs b = cpuid(0x80000002u + i, 0);
            std::memcpy(brand + 16 * i + 0, &b.eax, 4);
            std::memcpy(brand + 16 * i + 4, &b.ebx, 4);
            std::memcpy(brand + 16 * i + 8, &b.ecx, 4);
            std::memcpy(brand + 16 * i + 12, &b.edx, 4);
        }
        std::string s = brand;
        const auto first = s.find_first_not_of(' ');
        const auto last = s.find_last_not_of(' ');
        f.brand = first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
    }
#endif
    return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

bool has_avx2_fma(const CpuFeatures& f) { return f.avx && f.avx2 && f.fma; }

bool has_avx512(const CpuFeatures& f) {
    return has_avx2_fma(f) && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl;
}

}  // namespace rnnkit
