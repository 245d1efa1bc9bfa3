// CPU feature detection: what the processor has (cpuid) and what the OS saves
// on a context switch (XCR0 via xgetbv). AVX2 and AVX-512 count only when both
// agree; the dispatcher picks kernels from these.
#pragma once

#include <string>

namespace rnnkit {

struct CpuFeatures {
    bool x86_64 = false;   // compiled for x86-64 (cpuid available)
    bool sse2 = false;
    bool sse4_2 = false;
    bool avx = false;      // cpuid AVX and the OS saves YMM state
    bool fma = false;
    bool avx2 = false;
    bool avx512f = false;  // cpuid AVX512F and the OS saves ZMM and opmask state
    bool avx512dq = false;
    bool avx512bw = false;
    bool avx512vl = false;
    bool os_saves_ymm = false;
    bool os_saves_zmm = false;
    std::string vendor;
    std::string brand;
};

// Read once, then cached: the CPU does not change under a running process.
const CpuFeatures& cpu_features();

// The ISA levels the kernels are built for, best first.
bool has_avx2_fma(const CpuFeatures& f);   // AVX2 + FMA (+ OS YMM support)
bool has_avx512(const CpuFeatures& f);     // AVX-512 F/DQ/BW/VL (+ OS ZMM support)

}  // namespace rnnkit
