// The avx512 tier (AVX-512 F/BW/VL, 16 float lanes). Only reached after dispatch.cc has
// checked the CPU; see simd_impl.h for the kernels themselves.
// GCC 12 flags the deliberately undefined lanes inside its own AVX-512 intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "kernels/target.h"

LLADA2_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace llada2::kernels {
namespace {

struct V {
  using reg = __m512;
  static constexpr int L = 16;
  // 4 x 4 tile: 16 accumulators + 4 weight vectors + 1 input vector of the 32 registers (a 6 x 4
  // tile measured no faster: the widened weights are already reused enough).
  static constexpr int MR = 4;
  static constexpr int NR = 4;

  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load_tail(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg widen_bf16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static reg load_bf16(const uint16_t* p) {
    return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static reg load_bf16_tail(const uint16_t* p, int n) { return widen_bf16(_mm256_maskz_loadu_epi16(mask(n), p)); }
  static reg load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static reg load_f16_tail(const uint16_t* p, int n) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p)); }
  static reg load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // 16 signed 4-bit values (8 bytes, low nibble first): each byte goes to two lanes, whose
  // nibble is shifted to the top (by 28 or 24) and sign-extended back down by 28.
  static reg load_i4(const uint8_t* p) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m512i lanes = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    const __m512i shift = _mm512_setr_epi32(28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24);
    return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_sllv_epi32(lanes, shift), 28));
  }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static float reduce(reg v) { return _mm512_reduce_add_ps(v); }
  static float reduce_max(reg v) { return _mm512_reduce_max_ps(v); }
  static unsigned eq_mask(reg a, reg b) { return unsigned(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)); }
  static __m256 half_sum(reg v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  // out[0..4) = horizontal sums of a, b, c, d.
  static void hsum4(reg a, reg b, reg c, reg d, float* out) {
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(half_sum(a), half_sum(b)), _mm256_hadd_ps(half_sum(c), half_sum(d)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
  }
  // expf to ~1 ulp (Cephes): 2^round(x/ln2) times a degree-6 polynomial of the remainder.
  // Below ln(FLT_MIN) it returns 0 (std::exp would give a subnormal), above ln(FLT_MAX) +inf;
  // NaN stays NaN. 2^128 (x near ln(FLT_MAX)) is applied as 2^127 * 2.
  static reg exp(reg x) {
    const reg hi = set1(88.72283935546875f), lo = set1(-87.3365478515625f);
    const __mmask16 over = _mm512_cmp_ps_mask(x, set1(88.72283935546875f), _CMP_GT_OQ);
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    reg t = _mm512_max_ps(lo, _mm512_min_ps(hi, x));  // NaN passes through (second operand)
    reg fx = _mm512_roundscale_ps(_mm512_mul_ps(t, set1(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm512_fnmadd_ps(fx, set1(0.693359375f), t);
    t = _mm512_fnmadd_ps(fx, set1(-2.12194440e-4f), t);
    reg p = set1(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, t, set1(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, t, set1(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, t, set1(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, t, set1(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, t, set1(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(t, t), _mm512_add_ps(t, set1(1.0f)));
    const __mmask16 top = _mm512_cmp_ps_mask(fx, set1(127.5f), _CMP_GT_OQ);
    fx = _mm512_min_ps(set1(127.f), fx);
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    reg r = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    r = _mm512_mask_mul_ps(r, top, r, set1(2.f));
    r = _mm512_mask_mov_ps(r, under, zero());
    return _mm512_mask_mov_ps(r, over, set1(std::numeric_limits<float>::infinity()));
  }
};

#define LLADA2_SIMD_IMPL_TIER
#include "kernels/avx512_common.h"
#include "kernels/simd_impl.h"

// ---- BF16 weights in panel order (kernels.h), float32 activations ----
//
// Lanes = the 16 weight rows of a panel: one 64-byte line holds columns 2t and 2t+1 of all 16
// rows (bf16 pairs), widened by a shift (column 2t, the low half) and a mask (2t+1, the high
// half); each widened vector is multiplied by the broadcast x[i][k] of every input row of the
// block (an FMA with a memory broadcast), so widening costs 1 / MR of an instruction per FMA and
// no horizontal sums are needed. Every output lane sums its products in order of k, whatever
// the number of input rows (results do not depend on how many rows a call has).

// The float32 kernel (PanelRowsFn; the units are floats, one per column k).
template <int MR>
struct Bf16PanelRows {
  static void run(const LinearArgs& a, const uint32_t* xu, int64_t m, int64_t n, int nr, const char* wp,
                  const char* pf) {
    const float_alias* xi = as_floats(xu);
    __m512 acc[MR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    const __m512i hi = _mm512_set1_epi32(int(0xFFFF0000u));
    const int64_t T = a.K / 2;
    for (int64_t t = 0; t < T; ++t, xi += 2 * MR) {
      const __m512i v = _mm512_loadu_si512(wp + 64 * t);
      if (pf) _mm_prefetch(pf + 64 * t, _MM_HINT_T1);
      const __m512 w0 = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      const __m512 w1 = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) acc[i] = _mm512_fmadd_ps(w0, _mm512_set1_ps(xi[i]), acc[i]);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) acc[i] = _mm512_fmadd_ps(w1, _mm512_set1_ps(xi[MR + i]), acc[i]);
    }
    store_panel_rows<MR>(a, m, n, nr, acc);
  }
};

// Input rows per block: up to 24 accumulators (with the line, its two widened halves and the mask:
// 28 of the 32 registers). Measured per core at K = 2048: 12-16 rows 91-93% of the FMA peak, 17
// rows as one block ~5% faster than as 9 + 8.
constexpr int kBf16PanelMR = 24;

// Ops::linear_bf16_panels: outputs [n0, n1) (n0 a multiple of 16) of BF16 panels, K a multiple of 32.
void linear_bf16_panels(const LinearArgs& a, int64_t n0, int64_t n1) {
  run_panels<Bf16PanelRows, kBf16PanelMR, interleave_rows>(a, n0, n1, reinterpret_cast<const uint32_t*>(a.x), a.ldx,
                                                           a.K);
}

}  // namespace

const Ops& avx512_ops() {
  static constexpr Ops ops = [] {
    Ops o = simd_ops();
    o.linear_bf16_panels = &linear_bf16_panels;
    return o;
  }();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END
