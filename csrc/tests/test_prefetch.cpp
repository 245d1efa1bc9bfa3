// CMake-only check of the step tiles' panel prefetch (kernels/gemm.h):
// prefetch_spread's shift, prefetch_slice's share per tile and the lines
// micro_kernel's prefetch_at_k asks for at each k (prefetch_due,
// prefetch_offset) together cover every cache line of the next slice, from
// the tiles but the last when spread, and spread as thin as covering allows,
// from kSpreadMinBytes of streamed panels on.
#include <cstdint>
#include <cstdio>
#include <vector>

#define RNNKIT_ISA scalar
#include "kernels/vec_scalar.h"
#include "kernels/gemm.h"

using namespace rnnkit::scalar;

int main() {
    int failures = 0, cases = 0;
    static char base[1];   // only addresses are formed from it, never read
    for (int64_t bytes : {1024, 4096, 8192, 12288, 16384, 32768, 65536, 131072}) {
        for (int64_t tiles = 1; tiles <= 40; ++tiles) {
            for (int64_t K : {1, 7, 8, 16, 24, 64, 100, 128, 192, 256, 512}) {
                ++cases;
                const int shift = prefetch_spread(bytes, tiles, K, kSpreadMinBytes);
                const int64_t lines = (bytes + 63) / 64;
                std::vector<char> asked(static_cast<size_t>(lines), 0);
                int64_t last_tile_asks = 0, beyond = 0;
                for (int64_t t = 0; t < tiles; ++t) {
                    const char* pf = prefetch_slice(base, bytes, t, K, shift);
                    if (pf == nullptr) continue;
                    if (t == tiles - 1) ++last_tile_asks;
                    for (int64_t k = 0; k < K; ++k) {
                        if (!prefetch_due(shift, k)) continue;
                        // prefetch_at_k's lines: one, and at shift 0 the next.
                        for (int64_t extra = 0; extra <= (shift == 0 ? 64 : 0); extra += 64) {
                            const int64_t line = (pf - base + prefetch_offset(shift, k) + extra) / 64;
                            if (line < lines) asked[static_cast<size_t>(line)] = 1;
                            else ++beyond;
                        }
                    }
                }
                int64_t missing = 0;
                for (char a : asked) missing += a == 0;
                // Shift 0 (the unspread rate) covers what tiles * K * 128 bytes cover.
                const bool coverable = tiles * K * 128 >= bytes;
                auto fail = [&](const char* what) {
                    std::printf("FAIL: %s (bytes=%lld tiles=%lld K=%lld shift=%d missing=%lld)\n", what,
                                (long long)bytes, (long long)tiles, (long long)K, shift, (long long)missing);
                    ++failures;
                };
                if (coverable && missing != 0) fail("a line of the next slice is never asked for");
                if (shift > 0 && last_tile_asks != 0) fail("the last tile prefetches although spread");
                if (shift > 0 && (tiles - 1) * K * (128 >> shift) < bytes) fail("spread too thin to cover");
                if (shift < 6 && (tiles - 1) * K * (128 >> (shift + 1)) >= bytes) fail("not the thinnest spread");
                // Past the slice: at most the rounding of the last share (the unspread kernel's overrun).
                if (beyond * 64 > K * 128 + 128) fail("prefetches far past the slice");
            }
        }
    }
    // The Zen 3 case that motivated the spread: a 16 KB slice over 22 tiles of
    // 128 k, from 16 MiB of panels (LSTM H=1024) and from 512 KiB (Elman
    // H=256, which keeps the unspread prefetch).
    if (prefetch_spread(16384, 22, 128, int64_t{16} << 20) != 4) {
        std::printf("FAIL: 16 KB over 22 tiles of 128 k: shift %d, want 4 (8 bytes a k)\n",
                    prefetch_spread(16384, 22, 128, int64_t{16} << 20));
        ++failures;
    }
    if (prefetch_spread(16384, 22, 128, int64_t{512} << 10) != 0) {
        std::printf("FAIL: panels of 512 KiB are spread\n");
        ++failures;
    }
    if (prefetch_spread(16384, 22, 128, kSpreadMinBytes - 1) != 0 ||
        prefetch_spread(16384, 22, 128, kSpreadMinBytes) == 0) {
        std::printf("FAIL: the spread does not start at kSpreadMinBytes\n");
        ++failures;
    }
    std::printf("%d cases, %d failures\n", cases, failures);
    return failures == 0 ? 0 : 1;
}
