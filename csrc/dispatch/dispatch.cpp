// Runtime ISA dispatch, threads, counters and workspace allocation: the
// baseline side of the native core. Dispatch is data: the tables by priority,
// the first one the CPU supports wins, RNNKIT_ISA (or set_isa) forces one.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sched.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <chrono>
#include <climits>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "dispatch/kernel_table.h"
#include "rnnkit/rnnkit.h"

namespace rnnkit {
namespace {

struct Isa {
    const char* name;
    const KernelTable& (*table)();
    bool (*supported)();
};

bool always() { return true; }
bool cpu_has_avx2() { return has_avx2_fma(cpu_features()); }
bool cpu_has_avx512() { return has_avx512(cpu_features()); }

const Isa by_priority[] = {
#ifdef RNNKIT_X86_KERNELS
    {"avx512", &avx512::kernel_table, &cpu_has_avx512},
    {"avx2", &avx2::kernel_table, &cpu_has_avx2},
#endif
    {"scalar", &scalar::kernel_table, &always},
};

std::atomic<const KernelTable*> active_table{nullptr};
std::atomic<int> requested_threads{0};   // 0: omp_get_max_threads()
std::atomic<int64_t> n_regions{0}, n_barriers{0}, n_allocations{0}, last_team{0};

// --- Fork. GCC's libgomp keeps its worker pool across fork() only on paper:
// the child inherits the pool's bookkeeping but not its threads, and its next
// parallel region of 2 or more threads waits for workers that do not exist,
// forever (measured: docs/install.md). So once this process has run a team
// (team_started), a child forked from it runs every call on 1 thread: results
// do not depend on the thread count, so they are bitwise the same. The flag is
// inherited by the child's own children, whose libgomp is just as stuck.
std::atomic<bool> team_started{false};
std::atomic<bool> forked_after_team{false};
#if defined(__unix__) || defined(__APPLE__)
struct TeamForkGuard {
    TeamForkGuard() {
        pthread_atfork(nullptr, nullptr, [] {
            if (team_started.load(std::memory_order_relaxed)) forked_after_team.store(true, std::memory_order_relaxed);
        });
    }
};
const TeamForkGuard team_fork_guard;
#endif

const KernelTable* find(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string known;
    for (const Isa& isa : by_priority) {
        if (name == isa.name) {
            if (!isa.supported())
                throw std::invalid_argument("ISA '" + name + "' is not supported by this CPU (" +
                                            cpu_features().brand + "); supported: " + [] {
                                                std::string s;
                                                for (const auto& n : supported_isas()) s += (s.empty() ? "" : ", ") + n;
                                                return s;
                                            }());
            return &isa.table();
        }
        known += (known.empty() ? "" : ", ") + std::string(isa.name);
    }
    throw std::invalid_argument("unknown ISA '" + name + "'; this build has: " + known);
}

const KernelTable* first_supported() {
    for (const Isa& isa : by_priority)
        if (isa.supported()) return &isa.table();
    return &scalar::kernel_table();
}

const KernelTable& active() {
    const KernelTable* t = active_table.load(std::memory_order_acquire);
    if (t == nullptr) {
        const char* env = std::getenv("RNNKIT_ISA");
        const KernelTable* chosen = nullptr;
        if (env != nullptr && *env != '\0') {
            try {
                chosen = find(env);
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument(std::string("RNNKIT_ISA=") + env + ": " + e.what());
            }
        } else {
            chosen = first_supported();
        }
        const KernelTable* expected = nullptr;
        active_table.compare_exchange_strong(expected, chosen, std::memory_order_acq_rel);
        t = active_table.load(std::memory_order_acquire);
    }
    return *t;
}

template <class Real> const KernelsFor<Real>& kernels();
template <> const KernelsFor<float>& kernels<float>() { return active().f32; }
template <> const KernelsFor<double>& kernels<double>() { return active().f64; }

}  // namespace

template <class Real>
void forward(Cell cell, const Dims& d, const ForwardIO<Real>& io) {
    kernels<Real>().forward[static_cast<int>(cell)](d, io, io.h != nullptr, num_threads());
}

template <class Real>
void backward(Cell cell, const Dims& d, const BackwardIO<Real>& io) {
    kernels<Real>().backward[static_cast<int>(cell)](d, io, num_threads());
}

template <class Real>
void vector_math(MathFn fn, const Real* x, Real* y, int64_t n) {
    kernels<Real>().math[static_cast<int>(fn)](x, y, n);
}

template void forward<float>(Cell, const Dims&, const ForwardIO<float>&);
template void forward<double>(Cell, const Dims&, const ForwardIO<double>&);
template void backward<float>(Cell, const Dims&, const BackwardIO<float>&);
template void backward<double>(Cell, const Dims&, const BackwardIO<double>&);
template void vector_math<float>(MathFn, const float*, float*, int64_t);
template void vector_math<double>(MathFn, const double*, double*, int64_t);

// --- RTRL: the table of the active ISA (matched by name, so that set_isa and
// RNNKIT_ISA choose it as they choose the cells' table).
namespace {
const RtrlTable& rtrl_active() {
    const std::string name = active().name;
#ifdef RNNKIT_X86_KERNELS
    if (name == "avx512") return avx512::rtrl_table();
    if (name == "avx2") return avx2::rtrl_table();
#endif
    return scalar::rtrl_table();
}
}  // namespace

bool rtrl_native(Cell cell, RtrlMode mode) {
    if (cell == Cell::rnn) return true;
    if (cell == Cell::indrnn) return mode == RtrlMode::exact;   // IndRNN's exact is already diagonal
    return mode != RtrlMode::simplified;                        // LSTM, GRU: exact and diag
}

int64_t rtrl_sens_count(Cell cell, RtrlMode mode, const Dims& d) {
    if (cell == Cell::rnn && mode == RtrlMode::exact) return d.N * d.H * (d.H * (d.H + d.C + 1) + d.H);
    if (cell == Cell::lstm && mode == RtrlMode::exact) return d.N * 2 * d.H * (4 * d.H * (d.H + d.C + 1) + 2 * d.H);
    if (cell == Cell::gru && mode == RtrlMode::exact) return d.N * d.H * (3 * d.H * (d.H + d.C + 2) + d.H);
    if (cell == Cell::indrnn) return d.N * d.H * (d.C + 3);
    if (cell == Cell::lstm) return d.N * d.H * 2 * (4 * (d.H + d.C + 1) + 2);   // diag [N,H,2,4K+2]
    if (cell == Cell::gru) return d.N * d.H * (3 * (d.H + d.C + 2) + 1);        // diag [N,H,1,3K+1]
    return d.N * d.H * (d.H + d.C + 2);
}

std::size_t rtrl_workspace_bytes(Cell cell, RtrlMode mode, const Dims& d, std::size_t real_size, int threads) {
    const RtrlTable& t = rtrl_active();
    const int64_t count = real_size == sizeof(float) ? t.work_f32(cell, mode, d, threads)
                                                     : t.work_f64(cell, mode, d, threads);
    return static_cast<std::size_t>(count) * real_size;
}

template <>
void rtrl<float>(Cell cell, RtrlMode mode, const Dims& d, const RtrlIO<float>& io) {
    rtrl_active().f32(cell, mode, d, io, num_threads());
}
template <>
void rtrl<double>(Cell cell, RtrlMode mode, const Dims& d, const RtrlIO<double>& io) {
    rtrl_active().f64(cell, mode, d, io, num_threads());
}

std::string isa() { return active().name; }

void set_isa(const std::string& name) { active_table.store(find(name), std::memory_order_release); }

std::string scalar_target() { return scalar::compiled_for(); }

std::vector<std::string> supported_isas() {
    std::vector<std::string> names;
    for (const Isa& isa : by_priority)
        if (isa.supported()) names.emplace_back(isa.name);
    return names;
}

bool threads_limited_by_fork() { return forked_after_team.load(std::memory_order_relaxed); }

int num_threads() {
    if (forked_after_team.load(std::memory_order_relaxed)) return 1;
    const int n = requested_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(n));
    requested_threads.store(n, std::memory_order_relaxed);
}

Counters counters() {
    return {n_regions.load(), n_barriers.load(), n_allocations.load(), last_team.load()};
}

namespace {

constexpr std::size_t kHuge = kKeptBlockMin;

std::size_t rounded_size(std::size_t bytes) {
    const std::size_t align = bytes >= kHuge ? kHuge : 64;
    const std::size_t rounded = (bytes + align - 1) / align * align;
    return rounded == 0 ? align : rounded;
}

// Retained large blocks, most recent first.
struct CachedBlock {
    void* p;
    std::size_t bytes;   // rounded size
};
// Never destroyed: an array's capsule may hand its block back during
// interpreter shutdown, after static destructors would have run.
std::mutex& cache_mutex = *new std::mutex;
std::vector<CachedBlock>& cache = *new std::vector<CachedBlock>;   // guarded by cache_mutex

#if defined(__unix__) || defined(__APPLE__)
// fork() while another thread holds cache_mutex would leave the child's copy
// locked for good (and the list half-updated): hold it across the fork, so
// that the list is whole, and release it on both sides.
struct ForkGuard {
    ForkGuard() {
        pthread_atfork([] { cache_mutex.lock(); }, [] { cache_mutex.unlock(); }, [] { cache_mutex.unlock(); });
    }
};
const ForkGuard fork_guard;
#endif

// The smallest kept block that fits and is at most `slack` times the request:
// 2 for a workspace (gone when the call returns), 5/4 for an array, which
// may live long in the caller's hands.
void* take_cached(std::size_t rounded, std::size_t slack_num, std::size_t slack_den) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto best = cache.end();
    for (auto it = cache.begin(); it != cache.end(); ++it)
        if (it->bytes >= rounded && it->bytes * slack_den <= rounded * slack_num &&
            (best == cache.end() || it->bytes < best->bytes))
            best = it;
    if (best == cache.end()) return nullptr;
    void* p = best->p;
    cache.erase(best);
    return p;
}

void* block_alloc(std::size_t bytes, std::size_t slack_num, std::size_t slack_den) {
    // A large block would be fresh memory on every call (glibc maps it anew),
    // and its first touch costs one page fault per 4 KB page: in a VM about as
    // much as a training step of a large shape. So large blocks come from the
    // kept ones when one fits, else on 2 MB pages (transparent huge pages,
    // granted on request with THP's default "madvise" mode): 512 times fewer
    // faults.
    const std::size_t rounded = rounded_size(bytes);
    if (rounded >= kHuge) {
        if (void* p = take_cached(rounded, slack_num, slack_den)) return p;
    }
    void* p = std::aligned_alloc(rounded >= kHuge ? kHuge : 64, rounded);
    if (p == nullptr) {
        release_workspace_cache();   // what we hold may be what is missing
        p = std::aligned_alloc(rounded >= kHuge ? kHuge : 64, rounded);
        if (p == nullptr) throw std::bad_alloc();
    }
#ifdef MADV_HUGEPAGE
    if (rounded >= kHuge) madvise(p, rounded, MADV_HUGEPAGE);   // advice only: failure changes nothing
#endif
    return p;
}

}  // namespace

void* workspace_alloc(std::size_t bytes) {
    n_allocations.fetch_add(1, std::memory_order_relaxed);
    return block_alloc(bytes, 2, 1);
}

void* array_alloc(std::size_t bytes) { return block_alloc(bytes, 5, 4); }

void array_free(void* p, std::size_t bytes) { workspace_free(p, bytes); }

void workspace_free(void* p, std::size_t bytes) {
    if (p == nullptr) return;
    const std::size_t rounded = rounded_size(bytes);
    if (rounded < kHuge || rounded > kWorkspaceCacheBytes) {
        std::free(p);
        return;
    }
    std::vector<void*> evicted;
    {
        std::lock_guard<std::mutex> lock(cache_mutex);
        cache.insert(cache.begin(), CachedBlock{p, rounded});
        std::size_t total = 0;
        std::size_t keep = 0;
        for (; keep < cache.size(); ++keep) {
            if (keep == static_cast<std::size_t>(kWorkspaceCacheBlocks) || total + cache[keep].bytes > kWorkspaceCacheBytes)
                break;
            total += cache[keep].bytes;
        }
        for (std::size_t i = keep; i < cache.size(); ++i) evicted.push_back(cache[i].p);
        cache.resize(keep);
    }
    for (void* q : evicted) std::free(q);
}

std::size_t workspace_cached_bytes() {
    std::lock_guard<std::mutex> lock(cache_mutex);
    std::size_t total = 0;
    for (const auto& b : cache) total += b.bytes;
    return total;
}

void release_workspace_cache() {
    std::vector<CachedBlock> blocks;
    {
        std::lock_guard<std::mutex> lock(cache_mutex);
        blocks.swap(cache);
    }
    for (const auto& b : blocks) std::free(b.p);
}

void note_parallel_region(int team_size) {
    if (team_size > 1 && !team_started.load(std::memory_order_relaxed))
        team_started.store(true, std::memory_order_relaxed);
    n_regions.fetch_add(1, std::memory_order_relaxed);
    last_team.store(team_size, std::memory_order_relaxed);
}
void note_barrier() { n_barriers.fetch_add(1, std::memory_order_relaxed); }


// --- TeamBarrier. A counter and a generation: the last thread to arrive
// resets the counter, then bumps the generation; the others wait for the
// generation to change, spinning first, then sleeping on it (a futex on
// Linux, yields elsewhere). The sleep is safe against a lost wake-up: a
// sleeper announces itself (sleepers_, seq_cst) before the kernel rechecks
// the generation, and the waker bumps the generation (seq_cst) before it
// reads sleepers_, so either the sleeper sees the new generation or the
// waker sees the sleeper.
namespace {

// Long enough to cover a step's imbalance and a preempted teammate's return
// on a busy machine, short enough that a team waiting on a much slower
// thread (or an oversubscribed machine) soon gives its core back.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
    (void)word;
    (void)expected;
    std::this_thread::yield();
#endif
}

void futex_wake_all(std::atomic<uint32_t>* word) {
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
}

}  // namespace

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word must be a plain 32-bit word");

TeamBarrier::TeamBarrier(int team) : team_(team) {}

void TeamBarrier::wait() {
    const uint32_t gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == team_ - 1) {
        arrived_.store(0, std::memory_order_relaxed);   // before anyone can arrive again
        generation_.store(gen + 1, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(&generation_);
        return;
    }
    // Spin: check the clock only every 64 pauses.
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (generation_.load(std::memory_order_acquire) != gen) return;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() >= deadline) break;
    }
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (generation_.load(std::memory_order_acquire) == gen) futex_wait(&generation_, gen);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

// --- core_round_trip_ns: two threads, pinned to two CPUs, pass a counter
// back and forth on one cache line.
double core_round_trip_ns() {
#ifdef __linux__
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1.0;
    int cpu[2] = {-1, -1}, found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; ++c)
        if (CPU_ISSET(c, &allowed)) cpu[found++] = c;
    if (found < 2) return -1.0;
    auto pin = [](int c) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(c, &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);   // best effort
    };
    cpu_set_t saved;
    const bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;

    constexpr int64_t kRounds = 20000, kBatches = 5;
    struct alignas(64) Line {
        std::atomic<int64_t> v{0};
    };
    Line ball;
    std::thread other([&] {
        pin(cpu[1]);
        for (int64_t i = 0; i < kRounds * kBatches; ++i) {
            while (ball.v.load(std::memory_order_acquire) != 2 * i + 1) cpu_relax();
            ball.v.store(2 * i + 2, std::memory_order_release);
        }
    });
    pin(cpu[0]);
    std::vector<double> ns;
    for (int64_t b = 0; b < kBatches; ++b) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t r = 0; r < kRounds; ++r) {
            const int64_t i = b * kRounds + r;
            ball.v.store(2 * i + 1, std::memory_order_release);
            while (ball.v.load(std::memory_order_acquire) != 2 * i + 2) cpu_relax();
        }
        const std::chrono::duration<double, std::nano> dt = std::chrono::steady_clock::now() - t0;
        ns.push_back(dt.count() / kRounds);
    }
    other.join();
    if (have_saved) pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    std::sort(ns.begin(), ns.end());
    return ns[ns.size() / 2];
#else
    return -1.0;
#endif
}

}  // namespace rnnkit

// --- rnnkit.Recurrent's GEMMs (include/rnnkit/user_cell.h): the user table
// of the ISA whose kernel table is active, found by the tables' shared name.
#include "rnnkit/user_cell.h"

namespace rnnkit {
namespace {

const UserKernelTable& active_user() {
    const char* name = active().name;
    const std::string n(name);
#ifdef RNNKIT_X86_KERNELS
    if (n == "avx512") return avx512::user_kernel_table();
    if (n == "avx2") return avx2::user_kernel_table();
#endif
    return scalar::user_kernel_table();
}

template <class Real> const UserKernelsFor<Real>& user_kernels();
template <> const UserKernelsFor<float>& user_kernels<float>() { return active_user().f32; }
template <> const UserKernelsFor<double>& user_kernels<double>() { return active_user().f64; }

}  // namespace

const void* user_isa_token() { return &active(); }

template <class Real> int64_t user_panel_width() { return user_kernels<Real>().panel_width; }

template <class Real> void user_pack_t(const Real* w, int64_t R, int64_t K, Real* panels) {
    user_kernels<Real>().pack_t(w, R, K, panels);
}
template <class Real> void user_pack_n(const Real* w, int64_t R, int64_t K, Real* panels) {
    user_kernels<Real>().pack_n(w, R, K, panels);
}
template <class Real>
void user_gemm(int64_t M, int64_t cols, int64_t K, const Real* a, int64_t lda, const Real* panels, const Real* bias,
               Real* out, int64_t ldo, bool accumulate) {
    user_kernels<Real>().gemm(M, cols, K, a, lda, panels, bias, out, ldo, accumulate, num_threads());
}
template <class Real>
void user_gemm_tn(int64_t M, int64_t R, int64_t Kc, const Real* a, int64_t lda, const Real* b, int64_t ldb, Real* out) {
    user_kernels<Real>().gemm_tn(M, R, Kc, a, lda, b, ldb, out, num_threads());
}
template <class Real> void user_colsum(int64_t M, int64_t R, const Real* a, int64_t lda, Real* out) {
    user_kernels<Real>().colsum(M, R, a, lda, out, num_threads());
}

#define RNNKIT_USER_INSTANTIATE(Real)                                                                          \
    template int64_t user_panel_width<Real>();                                                                 \
    template void user_pack_t<Real>(const Real*, int64_t, int64_t, Real*);                                    \
    template void user_pack_n<Real>(const Real*, int64_t, int64_t, Real*);                                    \
    template void user_gemm<Real>(int64_t, int64_t, int64_t, const Real*, int64_t, const Real*, const Real*, \
                                  Real*, int64_t, bool);                                                       \
    template void user_gemm_tn<Real>(int64_t, int64_t, int64_t, const Real*, int64_t, const Real*, int64_t,  \
                                     Real*);                                                                   \
    template void user_colsum<Real>(int64_t, int64_t, const Real*, int64_t, Real*);
RNNKIT_USER_INSTANTIATE(float)
RNNKIT_USER_INSTANTIATE(double)
#undef RNNKIT_USER_INSTANTIATE

}  // namespace rnnkit

// --- fma_peak: the probe table of the ISA asked for, run by a team until a
// shared deadline. Each thread calls blocks of iterations and checks the clock
// between them (a block is ~10-100 us), so the team stops within a block of
// the deadline. The window runs from the first thread's start to the last
// thread's end: a thread that starts late or is preempted lowers the rate,
// never raises it.
#include <ctime>

#include "dispatch/peak_table.h"

namespace rnnkit {
namespace {

// CPU time of the calling thread, in seconds; -1 where there is no such clock.
double thread_cpu_seconds() {
#if defined(__unix__) || defined(__APPLE__)
    timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
#endif
    return -1.0;
}

const FmaPeakTable& peak_table_named(const std::string& name) {
#ifdef RNNKIT_X86_KERNELS
    if (name == "avx512") return avx512::fma_peak_table();
    if (name == "avx2") return avx2::fma_peak_table();
#endif
    return scalar::fma_peak_table();
}

}  // namespace

FmaPeak fma_peak(const std::string& isa_name, bool f64, int threads, double seconds) {
    if (threads < 1 || threads > 1024)
        throw std::invalid_argument("threads must be in 1..1024, got " + std::to_string(threads));
    if (!(seconds > 0.0 && seconds <= 60.0))
        throw std::invalid_argument("seconds must be in (0, 60], got " + std::to_string(seconds));
    const KernelTable* kt = find(isa_name);   // unknown, or not on this CPU: invalid_argument
    const FmaPeakTable& pt = peak_table_named(kt->name);
#ifdef _OPENMP
    if (threads > 1 && forked_after_team.load(std::memory_order_relaxed))
        throw std::runtime_error("fma_peak with threads=" + std::to_string(threads) +
                                 " in a child forked after a multi-threaded call: libgomp cannot start "
                                 "a team here (docs/install.md)");
    if (threads > 1) team_started.store(true, std::memory_order_relaxed);
#else
    threads = 1;
#endif
    using clock = std::chrono::steady_clock;
    const int64_t block = 4096;
    const auto t0 = clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<clock::time_point> start(threads, t0), end(threads, t0);
    std::vector<int64_t> iters(threads, 0);
    std::vector<double> sink(threads, 0.0), cpu(threads, -1.0);
    int team = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
        if (me == 0) team = omp_get_num_threads();
#endif
        const double cpu0 = thread_cpu_seconds();
        const auto t_start = clock::now();
        int64_t n = 0;
        double s = 0.0;
        do {
            s += f64 ? pt.f64(block, 0.5 + me) : double(pt.f32(block, 0.5f + float(me)));
            n += block;
        } while (clock::now() < deadline);
        start[me] = t_start;
        end[me] = clock::now();
        cpu[me] = thread_cpu_seconds() - cpu0;
        iters[me] = n;
        sink[me] = s;
    }
    const auto first = *std::min_element(start.begin(), start.begin() + team);
    const auto last = *std::max_element(end.begin(), end.begin() + team);
    const double window = std::chrono::duration<double>(last - first).count();
    int64_t total = 0;
    double check = 0.0, per_cpu = 0.0;
    const int lanes = f64 ? pt.lanes_f64 : pt.lanes_f32;
    const double flops_per_iter = 2.0 * pt.chains * lanes;
    for (int i = 0; i < team; ++i) {
        total += iters[i], check += sink[i];
        // A thread's rate per second of CPU time it got: what its core does
        // while it runs, whatever else wants the core (the sum is -1 when the
        // clock is missing, or a thread's CPU time is too short to read).
        per_cpu = (per_cpu < 0 || !(cpu[i] > 1e-4)) ? -1.0 : per_cpu + flops_per_iter * double(iters[i]) / cpu[i];
    }
    // Every chain tends to 1: a sum that is not finite means the probe is broken.
    if (!(check == check) || check > 1e300) throw std::runtime_error("fma_peak: the probe's accumulators diverged");
    return {flops_per_iter * double(total) / window, per_cpu, window, team, pt.chains, lanes, pt.fused};
}

}  // namespace rnnkit
