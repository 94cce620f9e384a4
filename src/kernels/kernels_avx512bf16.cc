// The avx512bf16 tier: the avx512vnni kernels plus, for bf16 weights and only when bf16
// activations are switched on (kernels.h), vdpbf16ps matmuls over activations rounded to bf16
// (tiles from the rows, and panel-ordered weights). Only reached after dispatch.cc has checked
// the CPU (AVX512_BF16 and AVX512_VNNI).
#include "kernels/target.h"

#ifdef LLADA2_X86

// GCC 12 flags the deliberately undefined lanes inside its own AVX-512 intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "kernels/ops.h"

LLADA2_TARGET_BEGIN("avx512bf16,avx512vnni,avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace llada2::kernels {
namespace {

#define LLADA2_SIMD_IMPL_TIER
#include "kernels/avx512_common.h"

__m512 dp(__m512 acc, __m512i x, __m512i w) { return _mm512_dpbf16_ps(acc, (__m512bh)x, (__m512bh)w); }

// Rows m .. m+MR of a.xb (bf16, row stride a.ldxl) against weight rows n .. n+NR; each
// vdpbf16ps step multiplies 32 bf16 pairs into 16 float lanes. pf, when set, is the next
// tile's weights, fetched into L2 meanwhile.
template <int MR, int NR>
void tile(const LinearArgs& a, int64_t m, int64_t n, const uint16_t* pf) {
  const int64_t K = a.K;
  const uint16_t* x = a.xb + m * a.ldxl;
  const uint16_t* w = static_cast<const uint16_t*>(a.w) + n * K;
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_si512(w + j * K + k);
    if (pf) {
#pragma GCC unroll 8
      for (int j = 0; j < kNR; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + j * K + k), _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512i xv = _mm512_loadu_si512(x + i * a.ldxl + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = dp(acc[i][j], xv, wv[j]);
    }
  }
  if (k < K) {
    const __mmask32 mask = __mmask32((uint64_t(1) << (K - k)) - 1);
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_epi16(mask, w + j * K + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512i xv = _mm512_maskz_loadu_epi16(mask, x + i * a.ldxl + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = dp(acc[i][j], xv, wv[j]);
    }
  }
  store_tile<MR, NR>(a, m, n, acc, nullptr);
}

using TileFn = void (*)(const LinearArgs&, int64_t, int64_t, const uint16_t*);

void linear_bf16dot(const LinearArgs& a, int64_t n0, int64_t n1) {
  static constexpr auto table = tile_grid<TileFn, kMR, kNR>([]<int MR, int NR>() -> TileFn { return &tile<MR, NR>; });
  for (int64_t n = n0; n < n1; n += kNR) {
    const int nr = int(std::min<int64_t>(kNR, n1 - n));
    const uint16_t* next = n + 2 * kNR <= n1 ? static_cast<const uint16_t*>(a.w) + (n + kNR) * a.K : nullptr;
    for (int64_t m = 0; m < a.M; m += kMR) {
      const int mr = int(std::min<int64_t>(kMR, a.M - m));
      table[size_t(mr - 1)][size_t(nr - 1)](a, m, n, m == 0 ? next : nullptr);
    }
  }
}

// ---- BF16 weights in panel order (kernels.h) x bf16 activations ----
//
// A panel line holds the bf16 pairs (columns 2t, 2t+1) of its 16 rows, the operand order of
// vdpbf16ps: one instruction per input row multiplies the line by that row's pair (broadcast)
// into the row's 16 output lanes.

// acc += pairs of w . broadcast(*x), as vdpbf16ps with the pair broadcast from memory (asm for the
// reason dpbusd_bcast below gives).
inline __m512 dpbf16_bcast(__m512 acc, __m512i w, const uint32_t* x) {
  __asm__("vdpbf16ps %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*x));
  return acc;
}

// The kernel (PanelRowsFn; the units are bf16 pairs, columns 2t and 2t+1).
template <int MR>
struct Bf16DotPanelRows {
  static void run(const LinearArgs& a, const uint32_t* xi, int64_t m, int64_t n, int nr, const char* wp,
                  const char* pf) {
    __m512 acc[MR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    const int64_t T = a.K / 2;
    for (int64_t t = 0; t < T; ++t, xi += MR) {
      const __m512i v = _mm512_loadu_si512(wp + 64 * t);
      if (pf) _mm_prefetch(pf + 64 * t, _MM_HINT_T1);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) acc[i] = dpbf16_bcast(acc[i], v, xi + i);
    }
    store_panel_rows<MR>(a, m, n, nr, acc);
  }
};

// Ops::linear_bf16dot_panels: as linear_bf16_panels (avx512 tier) from a.xb, in blocks of up to 24
// input rows (24 accumulators and the line).
void linear_bf16dot_panels(const LinearArgs& a, int64_t n0, int64_t n1) {
  run_panels<Bf16DotPanelRows, 24, V::interleave>(a, n0, n1, reinterpret_cast<const uint32_t*>(a.xb), a.ldxl / 2,
                                                  a.K / 2);
}

// Round to nearest even, NaN kept NaN (vcvtneps2bf16).
void bf16dot_to_bf16(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 mask = __mmask16((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(dst + i, mask, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i)));
  }
}

// ---- y += P V with P and V in bf16 (Ops::matmul_acc_bf16) ----
//
// vdpbf16ps multiplies bf16 pairs: the pair (p[m][t], p[m][t+1]) is one 4-byte word of a row of P,
// broadcast; the matching pairs of V come from rows t and t+1 interleaved by vpunpcklwd / vpunpckhwd.
// Those work within 128-bit lanes: of 32 columns c .. c+31 of both rows, the low unpack holds the
// pairs of columns c + {0-3, 8-11, 16-19, 24-27} and the high one c + {4-7, 12-15, 20-23, 28-31}.
// The accumulators keep that order (y is permuted into it when a tile starts and back when it
// ends), so an interleave costs one shuffle per vector of pairs, which all MR rows of the tile reuse.

constexpr int kAccMR = 6;  // rows of P per tile (measured ~10% faster than 4)
constexpr int kAccNB = 2;  // blocks of 32 columns per tile: 24 accumulators and 4 vectors of pairs

// One tile: rows 0 .. MR of p and y against the NB blocks of 32 columns from column c of v and y;
// the last block has `cols` (1 .. 32) columns.
template <int MR, int NB>
void matmul_acc_bf16_tile(const uint16_t* p, int64_t ldp, const uint16_t* v, int64_t T, int64_t ldv, int64_t c,
                          int cols, float* y, int64_t ldy) {
  const __m512i to_lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const __m512i to_hi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  const __m512i from_0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i from_1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  __mmask32 vmask[NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) vmask[b] = b + 1 < NB ? ~__mmask32(0) : __mmask32((uint64_t(1) << cols) - 1);
  __m512 acc[MR][2 * NB];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const float* yb = y + i * ldy + c + 32 * b;
      const __m512 y0 = _mm512_maskz_loadu_ps(__mmask16(vmask[b]), yb);
      const __m512 y1 = _mm512_maskz_loadu_ps(__mmask16(vmask[b] >> 16), yb + 16);
      acc[i][2 * b] = _mm512_permutex2var_ps(y0, to_lo, y1);
      acc[i][2 * b + 1] = _mm512_permutex2var_ps(y0, to_hi, y1);
    }
  // Rows t and t + 1 (`odd`: row t alone, the last of an odd T, paired with zero).
  auto step = [&](int64_t t, bool odd) __attribute__((always_inline)) {
    __m512i w[2 * NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const uint16_t* vb = v + t * ldv + c + 32 * b;
      const __m512i r0 = _mm512_maskz_loadu_epi16(vmask[b], vb);
      const __m512i r1 = odd ? _mm512_setzero_si512() : _mm512_maskz_loadu_epi16(vmask[b], vb + ldv);
      w[2 * b] = _mm512_unpacklo_epi16(r0, r1);
      w[2 * b + 1] = _mm512_unpackhi_epi16(r0, r1);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      uint32_t pair = p[i * ldp + t];
      if (!odd) std::memcpy(&pair, p + i * ldp + t, 4);
      const __m512i pw = _mm512_set1_epi32(int(pair));
#pragma GCC unroll 8
      for (int j = 0; j < 2 * NB; ++j) acc[i][j] = dp(acc[i][j], pw, w[j]);
    }
  };
  int64_t t = 0;
  for (; t + 2 <= T; t += 2) step(t, false);
  if (t < T) step(t, true);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      float* yb = y + i * ldy + c + 32 * b;
      _mm512_mask_storeu_ps(yb, __mmask16(vmask[b]), _mm512_permutex2var_ps(acc[i][2 * b], from_0, acc[i][2 * b + 1]));
      _mm512_mask_storeu_ps(yb + 16, __mmask16(vmask[b] >> 16),
                            _mm512_permutex2var_ps(acc[i][2 * b], from_1, acc[i][2 * b + 1]));
    }
}

using MatmulAccBf16Fn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, int64_t, int, float*,
                                 int64_t);

// Ops::matmul_acc_bf16: column tiles outside (their rows of V stay in L1 for every row tile of P).
void bf16dot_matmul_acc(const uint16_t* p, int64_t M, int64_t ldp, const uint16_t* v, int64_t T, int64_t D, int64_t ldv,
                        float* y, int64_t ldy) {
  static constexpr auto table = tile_grid<MatmulAccBf16Fn, kAccMR, kAccNB>(
      []<int MR, int NB>() -> MatmulAccBf16Fn { return &matmul_acc_bf16_tile<MR, NB>; });
  const int64_t blocks = (D + 31) / 32;
  for (int64_t b = 0; b < blocks; b += kAccNB) {
    const int nb = int(std::min<int64_t>(kAccNB, blocks - b));
    const int cols = int(std::min<int64_t>(32, D - 32 * (b + nb - 1)));
    for (int64_t m = 0; m < M; m += kAccMR) {
      const int mr = int(std::min<int64_t>(kAccMR, M - m));
      table[size_t(mr - 1)][size_t(nb - 1)](p + m * ldp, ldp, v, T, ldv, 32 * b, cols, y + m * ldy, ldy);
    }
  }
}

}  // namespace

const Ops& avx512bf16_ops() {
  static const Ops ops = [] {
    Ops o = avx512vnni_ops();
    o.linear_bf16dot = &linear_bf16dot;
    o.to_bf16 = &bf16dot_to_bf16;
    o.linear_bf16dot_panels = &linear_bf16dot_panels;
    o.matmul_acc_bf16 = &bf16dot_matmul_acc;
    return o;
  }();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END

#endif  // LLADA2_X86
