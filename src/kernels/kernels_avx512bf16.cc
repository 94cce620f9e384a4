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

}  // namespace

const Ops& avx512bf16_ops() {
  static const Ops ops = [] {
    Ops o = avx512vnni_ops();
    o.linear_bf16dot = &linear_bf16dot;
    o.to_bf16 = &bf16dot_to_bf16;
    o.linear_bf16dot_panels = &linear_bf16dot_panels;
    return o;
  }();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END

#endif  // LLADA2_X86
