// The avx512bf16 tier: the avx512 kernels plus, for bf16 weights and only when bf16
// activations are switched on (kernels.h), a vdpbf16ps matmul over activations rounded
// to bf16. Only reached after kernels.cc has checked the CPU.
// GCC 12 flags the deliberately undefined lanes inside its own AVX-512 intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/ops.h"
#include "kernels/target.h"

LLADA2_TARGET_BEGIN("avx512bf16,avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace llada2::kernels {
namespace {

constexpr int kMR = 4, kNR = 4;  // 16 accumulators, 4 weight and 1 input vector

__m256 half_sum(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

void hsum4(__m512 a, __m512 b, __m512 c, __m512 d, float* out) {
  __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(half_sum(a), half_sum(b)), _mm256_hadd_ps(half_sum(c), half_sum(d)));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}

__m512 dp(__m512 acc, __m512i x, __m512i w) { return _mm512_dpbf16_ps(acc, (__m512bh)x, (__m512bh)w); }

// Rows m .. m+MR of a.xb (bf16, row stride K) against weight rows n .. n+NR; each
// vdpbf16ps step multiplies 32 bf16 pairs into 16 float lanes. pf, when set, is the next
// tile's weights, fetched into L2 meanwhile.
template <int MR, int NR>
void tile(const LinearArgs& a, int64_t m, int64_t n, const uint16_t* pf) {
  const int64_t K = a.K;
  const uint16_t* x = a.xb + m * K;
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
      __m512i xv = _mm512_loadu_si512(x + i * K + k);
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
      __m512i xv = _mm512_maskz_loadu_epi16(mask, x + i * K + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = dp(acc[i][j], xv, wv[j]);
    }
  }
  const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float out[4];
    hsum4(acc[i][0], NR > 1 ? acc[i][1 % NR] : z, NR > 2 ? acc[i][2 % NR] : z, NR > 3 ? acc[i][3 % NR] : z, out);
    float* yr = a.y + (m + i) * a.ldy + n;
    for (int j = 0; j < NR; ++j) yr[j] = out[j] + (a.bias ? a.bias[n + j] : 0.f);
  }
}

using TileFn = void (*)(const LinearArgs&, int64_t, int64_t, const uint16_t*);

template <int MR, int... J>
constexpr std::array<TileFn, sizeof...(J)> tile_row(std::integer_sequence<int, J...>) {
  return {&tile<MR, J + 1>...};
}

template <int... I>
constexpr std::array<std::array<TileFn, kNR>, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {tile_row<I + 1>(std::make_integer_sequence<int, kNR>())...};
}

void linear_bf16dot(const LinearArgs& a, int64_t n0, int64_t n1) {
  static constexpr auto table = tile_table(std::make_integer_sequence<int, kMR>());
  for (int64_t n = n0; n < n1; n += kNR) {
    const int nr = int(std::min<int64_t>(kNR, n1 - n));
    const uint16_t* next = n + 2 * kNR <= n1 ? static_cast<const uint16_t*>(a.w) + (n + kNR) * a.K : nullptr;
    for (int64_t m = 0; m < a.M; m += kMR) {
      const int mr = int(std::min<int64_t>(kMR, a.M - m));
      table[size_t(mr - 1)][size_t(nr - 1)](a, m, n, m == 0 ? next : nullptr);
    }
  }
}

// Round to nearest even, NaN kept NaN (vcvtneps2bf16).
void to_bf16(const float* src, int64_t n, uint16_t* dst) {
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
    Ops o = avx512_ops();
    o.linear_bf16dot = &linear_bf16dot;
    o.to_bf16 = &to_bf16;
    return o;
  }();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END
