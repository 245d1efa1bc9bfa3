// CMake-only check that a call allocates and forks the same whatever T is:
// the heap allocations of a whole forward or backward call (counted by
// wrapping glibc's allocator) and its parallel regions do not grow with the
// number of steps, and there is one barrier per step.
//
// Each measured call follows an unmeasured one of the same shape, so the kept
// blocks (rnnkit.h, "Kept memory") are in their steady state: a workspace of
// kKeptBlockMin bytes or more comes from them (no heap call), a smaller one
// from malloc (one). Which side of that line a workspace falls on depends on
// the CPU's kernel parameters (the packed-weight blocks: 2.09 MB at T=2 and
// more at T=40 on an Intel with 2 MB of L2), so the check is not "T=2 and
// T=40 make the same calls" but "no T makes more than one": a per-step
// allocation would make T of them.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "rnnkit/rnnkit.h"

#if defined(__GLIBC__)
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}
static std::atomic<long> g_heap_calls{0};
extern "C" void* malloc(size_t n) { ++g_heap_calls; return __libc_malloc(n); }
extern "C" void* calloc(size_t n, size_t s) { ++g_heap_calls; return __libc_calloc(n, s); }
extern "C" void* realloc(void* p, size_t n) { ++g_heap_calls; return __libc_realloc(p, n); }
extern "C" void* aligned_alloc(size_t a, size_t n) { ++g_heap_calls; return __libc_memalign(a, n); }
extern "C" void* memalign(size_t a, size_t n) { ++g_heap_calls; return __libc_memalign(a, n); }
extern "C" int posix_memalign(void** p, size_t a, size_t n) {
    ++g_heap_calls;
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}
#define HAVE_HEAP_COUNT 1
#else
static std::atomic<long> g_heap_calls{0};
#endif

namespace {

struct Cost {
    long heap;
    int64_t regions, barriers;
};

// One LSTM forward (training) and backward of T steps; what each costs.
std::pair<Cost, Cost> run_lstm(int64_t T, bool reverse) {
    const int64_t N = 5, C = 7, H = 129;
    std::vector<float> x(T * N * C, 0.1f), h0(N * H, 0.f), c0(N * H, 0.f), w_ih(4 * H * C, 0.01f),
        w_hh(4 * H * H, 0.01f), b(4 * H, 0.f);
    std::vector<int64_t> lengths(N, T);
    lengths[0] = T / 2;
    std::vector<float> y(T * N * H), h_n(N * H), c_n(N * H), h(T * N * H), c(T * N * H), tanh_c(T * N * H),
        gates(T * N * 4 * H);
    std::vector<float> dy(T * N * H, 1.f), dh_n(N * H, 0.f), dc_n(N * H, 0.f), dx(T * N * C), dh0(N * H),
        dc0(N * H), dw_ih(4 * H * C), dw_hh(4 * H * H), db_ih(4 * H), db_hh(4 * H);
    const rnnkit::Dims d{T, N, C, H};
    rnnkit::ForwardIO<float> f{x.data(), h0.data(), c0.data(), w_ih.data(), w_hh.data(), b.data(), b.data(),
                               lengths.data(), reverse, rnnkit::Act::tanh, y.data(), h_n.data(), c_n.data(),
                               h.data(), c.data(), tanh_c.data(), gates.data(), nullptr};
    rnnkit::BackwardIO<float> g{dy.data(), dh_n.data(), dc_n.data(), x.data(), h0.data(), c0.data(),
                                w_ih.data(), w_hh.data(), lengths.data(), reverse, rnnkit::Act::tanh, h.data(),
                                c.data(), tanh_c.data(), gates.data(), nullptr, dx.data(), dh0.data(),
                                dc0.data(), dw_ih.data(), dw_hh.data(), db_ih.data(), db_hh.data()};
    auto measure = [](auto&& call) {
        const long heap0 = g_heap_calls.load();
        const auto c0_ = rnnkit::counters();
        call();
        const auto c1 = rnnkit::counters();
        return Cost{g_heap_calls.load() - heap0, c1.parallel_regions - c0_.parallel_regions,
                    c1.barriers - c0_.barriers};
    };
    rnnkit::forward<float>(rnnkit::Cell::lstm, d, f);   // the steady state of the kept blocks
    const Cost fwd = measure([&] { rnnkit::forward<float>(rnnkit::Cell::lstm, d, f); });
    rnnkit::backward<float>(rnnkit::Cell::lstm, d, g);
    const Cost bwd = measure([&] { rnnkit::backward<float>(rnnkit::Cell::lstm, d, g); });
    return {fwd, bwd};
}

}  // namespace

int main() {
    int failures = 0;
#ifdef HAVE_HEAP_COUNT
    {   // the wrapper counts: otherwise every heap check below would pass vacuously
        const long before = g_heap_calls.load();
        void* volatile p = std::malloc(24);
        std::free(p);
        if (g_heap_calls.load() - before != 1) {
            std::printf("FAIL: the malloc wrapper counted %ld calls for one\n", g_heap_calls.load() - before);
            return 1;
        }
    }
#endif
    rnnkit::set_num_threads(2);
    for (const auto& isa : rnnkit::supported_isas()) {
        rnnkit::set_isa(isa);
        run_lstm(3, false);   // warm up: OpenMP's thread pool
        for (bool reverse : {false, true}) {
            for (int64_t T : {2, 40, 120}) {
                const auto cost = run_lstm(T, reverse);
                std::printf("%-7s reverse=%d T=%-3lld forward: heap %ld, regions %lld, barriers %lld;"
                            " backward: heap %ld, regions %lld, barriers %lld\n",
                            isa.c_str(), reverse, (long long)T, cost.first.heap, (long long)cost.first.regions,
                            (long long)cost.first.barriers, cost.second.heap, (long long)cost.second.regions,
                            (long long)cost.second.barriers);
                // One barrier between steps in forward; in backward one per step
                // and one before the weight-gradient GEMMs.
                const bool ok = cost.first.heap <= 1 && cost.second.heap <= 1 && cost.first.regions == 1 &&
                                cost.second.regions == 1 && cost.first.barriers == T - 1 &&
                                cost.second.barriers == T + 1;
                if (!ok) {
                    std::printf("FAIL\n");
                    ++failures;
                }
            }
        }
    }
    return failures == 0 ? 0 : 1;
}
