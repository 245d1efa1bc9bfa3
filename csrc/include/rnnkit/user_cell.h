// The native side of rnnkit.Recurrent (cells written in Python): plain GEMMs
// on packed weights, for the ISA in use. No cell math here; src/core/user_cell.cpp
// binds it. Results are bitwise identical for any thread count (each output
// is one FMA chain in k order; threads split the output columns).
#pragma once

#include <cstdint>

namespace rnnkit {

// Columns per packed panel (U) of the ISA in use, and a token that changes
// with the ISA: a buffer packed under one ISA is only valid while the token
// is the same (set_isa may change it).
template <class Real> int64_t user_panel_width();
const void* user_isa_token();

// Packed sizes, in values: user_pack_t: ceil(R/U)*K*U; user_pack_n: ceil(K/U)*R*U.
// w: [R,K] row-major. pack_t packs w for out = a @ w^T, pack_n for out = a @ w.
template <class Real> void user_pack_t(const Real* w, int64_t R, int64_t K, Real* panels);
template <class Real> void user_pack_n(const Real* w, int64_t R, int64_t K, Real* panels);

// out[m][j] = sum_k a[m][k] B(k,j) (+ out[m][j] if accumulate) (+ bias[j]),
// m < M, j < cols, k < K. a: [M, >=K] row stride lda; panels: as packed for B
// ([K, cols]); bias: [cols] or null; out: [M, >=cols] row stride ldo.
template <class Real>
void user_gemm(int64_t M, int64_t cols, int64_t K, const Real* a, int64_t lda, const Real* panels, const Real* bias,
               Real* out, int64_t ldo, bool accumulate);

// out[r][c] = sum_m a[m][r] b[m][c] (a^T @ b): a [M, >=R] stride lda, b [M, >=Kc]
// stride ldb, out [R, Kc] contiguous.
template <class Real>
void user_gemm_tn(int64_t M, int64_t R, int64_t Kc, const Real* a, int64_t lda, const Real* b, int64_t ldb, Real* out);

// out[j] = sum_m a[m][j], m in order: a [M, >=R] stride lda, out [R].
template <class Real> void user_colsum(int64_t M, int64_t R, const Real* a, int64_t lda, Real* out);

}  // namespace rnnkit
