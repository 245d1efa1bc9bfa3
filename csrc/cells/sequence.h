// What the forward and backward sequence drivers share: the workspace (one
// allocation per call), the thread team helpers, the processing order of
// steps and the geometry of a gate tile. Nothing cell-specific lives here.
#pragma once

namespace rnnkit {
namespace RNNKIT_ISA {

// --- One allocation per call, carved into 64-byte aligned arrays. Sizes are
// reserved first, then allocate() makes the one call; steps never allocate.
class Workspace {
public:
    Workspace() = default;
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;
    ~Workspace() { workspace_free(base_, bytes_ ? bytes_ : 64); }

    template <class X>
    size_t reserve(int64_t count) {
        const size_t offset = bytes_;
        bytes_ += (static_cast<size_t>(count) * sizeof(X) + 63) / 64 * 64;
        return offset;
    }
    void allocate() { base_ = static_cast<char*>(workspace_alloc(bytes_ ? bytes_ : 64)); }
    template <class X>
    X* at(size_t offset) const { return reinterpret_cast<X*>(base_ + offset); }

private:
    size_t bytes_ = 0;
    char* base_ = nullptr;
};

#ifdef _OPENMP
#define RNNKIT_OMP_BARRIER() _Pragma("omp barrier")
#else
#define RNNKIT_OMP_BARRIER() ((void)0)
#endif

// --- Threads. A team runs one parallel region per call; work is shared by
// static ranges of a fixed decomposition (blocks of units, tiles), so which
// thread computes an output never changes how it is computed.
struct Range {
    int64_t begin, end;
};
inline Range share(int64_t n, int part, int parts) {
    return {n * part / parts, n * (part + 1) / parts};
}

// The blocks of r in groups of at most NB: f(first, count) for each group,
// first to last, or last to first when `backwards` (the groups then end at
// r.end). N = 1 tiles take a group of blocks at a time.
template <int NB, class F>
inline void for_block_groups(Range r, bool backwards, F&& f) {
    if (backwards) {
        for (int64_t e = r.end; e > r.begin;) {
            const int nb = static_cast<int>(e - r.begin < NB ? e - r.begin : NB);
            f(e - nb, nb);
            e -= nb;
        }
    } else {
        for (int64_t b = r.begin; b < r.end;) {
            const int nb = static_cast<int>(r.end - b < NB ? r.end - b : NB);
            f(b, nb);
            b += nb;
        }
    }
}

// What a thread of the team knows: its number, the team's size, and the
// team's barrier (a spin-then-sleep TeamBarrier, see kernel_table.h).
// barrier() counts itself once per barrier, by thread 0: tests check one
// barrier per step.
class Team {
public:
    Team(int id, int size, TeamBarrier* barrier) : id_(id), size_(size), barrier_(barrier) {}
    int id() const { return id_; }
    int size() const { return size_; }
    void barrier() const {
        if (barrier_ != nullptr) {
            barrier_->wait();
        } else if (size_ > 1) {
            RNNKIT_OMP_BARRIER();
        }
        if (id_ == 0) note_barrier();
    }

private:
    int id_, size_;
    TeamBarrier* barrier_;
};

// Runs body(Team&) on a team of `team` threads: one parallel region, or none
// at all for a team of one (a 1-thread call pays no region start-up; its
// barriers are no-ops, still counted). Should OpenMP grant fewer threads than
// asked (nested regions, thread limits), the team uses omp barriers instead.
template <class F>
inline void run_team(int team, F&& body) {
#ifdef _OPENMP
    if (team > 1) {
        TeamBarrier barrier(team);
#pragma omp parallel num_threads(team)
        {
            const int size = omp_get_num_threads();
            Team self(omp_get_thread_num(), size, size == team ? &barrier : nullptr);
            body(self);
        }
        return;
    }
#endif
    (void)team;
    Team one(0, 1, nullptr);
    body(one);
}

// Threads worth starting: no more than the parallel work units; few enough
// that each has >= ~100k flops per step (a step's barrier costs 0.2-0.5 us
// between two cores); and few enough that each has >= ~2 MFLOP in the whole
// call, about 10 us of work: starting a team wakes sleeping workers, 2-5 us
// on bare metal and 10-40 us in a VM (measured here: RNN T=1 N=1 H=256 took
// 9.7 us at 1 thread and 53 us at 2; T=10, 2.6 MFLOP, broke even).
inline int choose_threads(int requested, int64_t units, double flops_per_step, int64_t steps) {
    int64_t n = requested < 1 ? 1 : requested;
    const int64_t by_step = static_cast<int64_t>(flops_per_step / 1e5);
    const int64_t by_call = static_cast<int64_t>(flops_per_step * static_cast<double>(steps) / 2e6);
    n = min_i(n, max_i(1, min_i(by_step, by_call)));
    n = min_i(n, max_i(1, units));
    return static_cast<int>(n);
}

// Denormals are flushed (FTZ + DAZ) only inside our kernels, per thread, and
// the caller's MXCSR is restored on the way out.
struct FlushDenormals {
#if defined(__SSE__) || defined(__x86_64__)
    unsigned saved;
    FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// --- Steps. Step s of the processing order is time t_of(s); the state before
// it is h0 at s = 0, else the state after step s-1.
inline int64_t t_of(int64_t s, int64_t T, bool reverse) { return reverse ? T - 1 - s : s; }

// Inference runs the input-side GEMM a chunk of steps at a time, so that its
// buffer stays O(N*H): about 256 rows per GEMM (enough to stream the packed
// w_ih panels efficiently), at least 1 and at most 64 steps. The buffer is then
// at most min(64*N, N + 255) rows of G*H. At small N each chunk's GEMM also
// streams all of w_ih through L2 and evicts w_hh, which the steps then read
// again from L3: 64-step chunks instead of 16 made N=1 inference faster in a
// same-process A/B, 1 thread: LSTM H=256 +3.8 to 5.8%, GRU H=256 +3.3 to
// 4.8%, LSTM H=1024 +6%; Elman H=256, LSTM H=64 and GRU H=1024 within
// +-1.2%. The input side of a row never depends on the chunking.
inline int64_t chunk_steps(int64_t T, int64_t N) {
    return min_i(T, min_i(64, max_i(1, ceil_div(256, N))));
}

// Tiny calls (T*N <= 4 rows, e.g. sampling one step at a time) skip packing:
// dot products read the weights in place, where packing alone would read and
// write them once more than the whole call. A choice by shape only, the same
// in training and inference and for any thread count.
inline bool direct_weights(int64_t T, int64_t N) { return T * N <= 4; }

// Whether a step's gate tiles also compute the input side: one FMA chain over
// k < C + H against a packed panel [C + H][G][U] (w_ih's rows, then w_hh's),
// instead of an input GEMM ahead of the steps whose xw buffer each step stores
// and reads back. Worth it where every panel serves at least 16 rows a step
// (at N = 1 all of w_ih would stream once per step, not once per 16 steps) and
// a block's panel stays in L2 beside x_t and h_prev (<= 256 KB: C + H <= 1024
// for LSTM floats). Measured A/B, 1 thread, LSTM and Elman, N in {16, 64}:
// 0-3.6% faster where it holds; at C = H = 1024 (512 KB panels) LSTM
// inference N = 16 13% slower, N = 64 training 1.2 to 4.5% slower. A choice by shape only (training, inference and
// every thread count take the same path), for cells whose gates add the two
// sides before any nonlinearity (not GRU's n gate).
//
// Nor where all the fused panels together pass 16 MB (RNNKIT_FUSE_MAX_MB):
// a step then streams every weight from DRAM, where unfused it streams only
// w_hh (the input side runs as one GEMM over all rows, each weight read once
// per chunk). Zen 3, LSTM C = H = 1024 floats (32 MB of fused panels against
// 16 of w_hh): a single core streams about 8 GB/s from DRAM, 4 ms of the
// step's 10. A constant, not the CPU's L3: the path sets the rounding, and
// one ISA gives the same bits on every CPU.
inline bool fuse_input(int64_t N, int64_t C, int64_t H, size_t panel_row_bytes, int64_t G = 1,
                       size_t real_bytes = 4) {
    const size_t all_panels = static_cast<size_t>(G) * static_cast<size_t>(H) * static_cast<size_t>(C + H) * real_bytes;
    return N >= 16 && static_cast<size_t>(C + H) * panel_row_bytes <= (size_t{256} << 10) &&
           all_panels <= (size_t{16} << 20);
}

// Rows of x per chunk of the input GEMM (forward.h, input_gemm): 16 row
// tiles serve each k slice of a weight panel, and the chunk's packed rows
// (MC * C values, 192 KB at LSTM C = 1024 floats) stay in L2 beside the
// panel.
template <int MR>
constexpr int64_t input_chunk_rows() { return 16 * MR; }

// The k slice of the step tiles (forward.h): 0 = the whole K at once. A
// block's panel is K*G*U values; read whole by each of the N/MR row tiles it
// streams from L2 (256 KB at LSTM floats, C = H = 1024), in slices that fit
// the budget (KernelParams::fwd_slice_bytes, half of L1d) it stays in L1
// across the tiles.
inline int64_t step_k_block(const KernelParams& kp, int64_t K_all, int64_t row_bytes) {
    if (kp.fwd_slice_bytes <= 0) return 0;
    const int64_t kb = block_from_bytes(kp.fwd_slice_bytes, row_bytes, 8, K_all, 8);
    return kb * 2 > K_all ? 0 : kb;
}

// --- A gate tile: MR rows (batch) by NV vectors, the G gates of U hidden
// units side by side, so that the thread computing those units applies the
// gate math in the tile's epilogue. For G = 1 a tile spans several vectors
// of units instead.
template <class V, int G>
struct GateTile {
    static constexpr int UV = G == 1 ? Tiling::gate_vecs : 1;  // vectors of units
    static constexpr int U = UV * V::W;                          // units per block
    static constexpr int NV = G * UV;                            // vectors per tile row
    static constexpr int MR = Tiling::acc_regs / NV;             // rows per tile
};

// A plain GEMM tile (backward, post-loop): MR rows by NV vectors of columns.
template <class V>
struct PlainTile {
    static constexpr int NV = Tiling::plain_nv;
    static constexpr int U = NV * V::W;
    static constexpr int MR = Tiling::acc_regs / NV;
};

}  // namespace RNNKIT_ISA
}  // namespace rnnkit
