// The FMA peak probe's table: one per ISA translation unit (kernels/fma_peak.h
// fills it), run by fma_peak() in dispatch.cpp. Not a kernel table: nothing in
// the cells' hot paths reads it. Plain declarations only (ODR, as kernel_table.h).
#pragma once

#include <cstdint>

namespace rnnkit {

// chains independent accumulators, each updated once per iteration by a
// multiply-add of `lanes` values: 2 * chains * lanes FLOPs per iteration.
// fused: one FMA instruction per multiply-add; else a multiply and an add
// (the x86-64 baseline has no FMA).
struct FmaPeakTable {
    const char* name;   // the ISA, as the kernel tables name it
    int chains;
    int lanes_f32, lanes_f64;
    bool fused;
    // Runs `iters` iterations from a seed; returns a sum of the accumulators
    // (so that the work cannot be dropped).
    float (*f32)(int64_t iters, float seed);
    double (*f64)(int64_t iters, double seed);
};

namespace scalar { const FmaPeakTable& fma_peak_table(); }
namespace avx2 { const FmaPeakTable& fma_peak_table(); }
namespace avx512 { const FmaPeakTable& fma_peak_table(); }

}  // namespace rnnkit
