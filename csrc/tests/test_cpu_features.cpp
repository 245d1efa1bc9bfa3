// CMake-only check of feature detection: the ISA levels must nest, and an
// x86-64 build always has SSE2 (the baseline).
#include <cstdio>

#include "rnnkit/cpu.h"

int main() {
    const auto& f = rnnkit::cpu_features();
    int failures = 0;
    auto expect = [&](bool ok, const char* what) {
        if (!ok) {
            std::printf("FAIL: %s\n", what);
            ++failures;
        }
    };
    if (f.x86_64) expect(f.sse2, "x86-64 implies SSE2");
    expect(!rnnkit::has_avx512(f) || rnnkit::has_avx2_fma(f), "AVX-512 implies AVX2+FMA");
    expect(!f.avx512f || f.os_saves_zmm, "AVX512F counts only when the OS saves ZMM");
    expect(!f.avx2 || f.os_saves_ymm, "AVX2 counts only when the OS saves YMM");
    std::printf("vendor=%s brand=%s avx2=%d fma=%d avx512f=%d\n", f.vendor.c_str(), f.brand.c_str(),
                f.avx2, f.fma, f.avx512f);
    return failures == 0 ? 0 : 1;
}
