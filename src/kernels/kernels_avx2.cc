// The avx2 tier (AVX2 + FMA + F16C, 8 float lanes). Only reached after dispatch.cc has
// checked the CPU; see simd_impl.h for the kernels themselves.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "kernels/target.h"

LLADA2_TARGET_BEGIN("avx2,fma,f16c")

namespace llada2::kernels {
namespace {

struct V {
  using reg = __m256;
  static constexpr int L = 8;
  // 4 x 3 tile: 12 accumulators + 3 weight vectors + 1 input vector = the 16 registers.
  static constexpr int MR = 4;
  static constexpr int NR = 3;

  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load_tail(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static __m128i load16(const uint16_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static __m128i load16_tail(const uint16_t* p, int n) {
    alignas(16) uint16_t buf[8] = {};
    std::memcpy(buf, p, size_t(n) * 2);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
  }
  static reg widen_bf16(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
  static reg load_bf16(const uint16_t* p) { return widen_bf16(load16(p)); }
  static reg load_bf16_tail(const uint16_t* p, int n) { return widen_bf16(load16_tail(p, n)); }
  static reg load_f16(const uint16_t* p) { return _mm256_cvtph_ps(load16(p)); }
  static reg load_f16_tail(const uint16_t* p, int n) { return _mm256_cvtph_ps(load16_tail(p, n)); }
  static reg load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // 8 signed 4-bit values (4 bytes, low nibble first): each byte goes to two lanes, whose
  // nibble is shifted to the top (by 28 or 24) and sign-extended back down by 28.
  static reg load_i4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    const __m128i b = _mm_cvtsi32_si128(v);
    const __m256i lanes = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    const __m256i up = _mm256_sllv_epi32(lanes, _mm256_setr_epi32(28, 24, 28, 24, 28, 24, 28, 24));
    return _mm256_cvtepi32_ps(_mm256_srai_epi32(up, 28));
  }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static float reduce(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static unsigned eq_mask(reg a, reg b) { return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ))); }
  static float reduce_max(reg v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[0..4) = horizontal sums of a, b, c, d.
  static void hsum4(reg a, reg b, reg c, reg d, float* out) {
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
  }
  // expf to ~1 ulp (Cephes), as in the avx512 tier: 0 below ln(FLT_MIN), +inf above ln(FLT_MAX).
  static reg exp(reg x) {
    const reg hi = set1(88.72283935546875f), lo = set1(-87.3365478515625f);
    const reg over = _mm256_cmp_ps(x, set1(88.72283935546875f), _CMP_GT_OQ);
    const reg under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    reg t = _mm256_max_ps(lo, _mm256_min_ps(hi, x));  // NaN passes through (second operand)
    reg fx =
        _mm256_round_ps(_mm256_mul_ps(t, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm256_fnmadd_ps(fx, set1(0.693359375f), t);
    t = _mm256_fnmadd_ps(fx, set1(-2.12194440e-4f), t);
    reg p = set1(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, t, set1(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, t, set1(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, t, set1(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, t, set1(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, t, set1(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(t, t), _mm256_add_ps(t, set1(1.0f)));
    const reg top = _mm256_cmp_ps(fx, set1(127.5f), _CMP_GT_OQ);  // 2^128 = 2^127 * 2
    fx = _mm256_min_ps(set1(127.f), fx);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    reg r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    r = _mm256_mul_ps(r, _mm256_blendv_ps(set1(1.f), set1(2.f), top));
    r = _mm256_andnot_ps(under, r);
    return _mm256_blendv_ps(r, set1(std::numeric_limits<float>::infinity()), over);
  }
};

#define LLADA2_SIMD_IMPL_TIER
#include "kernels/panel_driver.h"
#include "kernels/simd_impl.h"

// ---- BF16 weights in panel order (kernels.h), float32 activations ----
//
// The avx512 tier's panel kernel on 8 lanes: a 64-byte line (columns 2t, 2t+1 of the panel's 16
// rows) is two 32-byte halves (rows 0-7 and 8-15), each widened by a shift (column 2t) and a mask
// (column 2t+1); each input row of a block keeps two accumulators and takes four FMAs per line
// with its two broadcast activations. Each output sums its products in order of k, as on avx512:
// the same results.

// out[k * mr + i] = row i, element k (rows at x + r * ld), for k < n.
void interleave_rows(const uint32_t* x, int64_t ld, int mr, int64_t n, uint32_t* out) {
  for (int i = 0; i < mr; ++i) {
    const uint32_t* row = x + i * ld;
    for (int64_t k = 0; k < n; ++k) out[k * mr + i] = row[k];
  }
}

// Input rows per block: 2 x 4 accumulators, the two halves of a line, two widened vectors, the
// broadcast activation and the mask: 14 of the 16 registers.
constexpr int kBf16PanelMR = 4;

template <int MR>
struct Bf16PanelRows {
  static void run(const LinearArgs& a, const uint32_t* xu, int64_t m, int64_t n, int nr, const char* wp,
                  const char* pf) {
    const float_alias* xi = as_floats(xu);
    __m256 lo[MR], hi[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
    const __m256i mask = _mm256_set1_epi32(int(0xFFFF0000u));
    const int64_t T = a.K / 2;
    for (int64_t t = 0; t < T; ++t, xi += 2 * MR) {
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 64 * t));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 64 * t + 32));
      if (pf) _mm_prefetch(pf + 64 * t, _MM_HINT_T1);
      const __m256 a0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)),
                   a1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_broadcast_ss(xi + i);
        lo[i] = _mm256_fmadd_ps(a0, xv, lo[i]);
        hi[i] = _mm256_fmadd_ps(a1, xv, hi[i]);
      }
      const __m256 b0 = _mm256_castsi256_ps(_mm256_and_si256(v0, mask)),
                   b1 = _mm256_castsi256_ps(_mm256_and_si256(v1, mask));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_broadcast_ss(xi + MR + i);
        lo[i] = _mm256_fmadd_ps(b0, xv, lo[i]);
        hi[i] = _mm256_fmadd_ps(b1, xv, hi[i]);
      }
    }
    const __m256i m0 = V::mask(std::min(nr, 8)), m1 = V::mask(std::max(nr - 8, 0));
    const __m256 b0 = a.bias ? _mm256_maskload_ps(a.bias + n, m0) : _mm256_setzero_ps();
    const __m256 b1 = a.bias ? _mm256_maskload_ps(a.bias + n + 8, m1) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      float* y = a.y + (m + i) * a.ldy + n;
      _mm256_maskstore_ps(y, m0, _mm256_add_ps(lo[i], b0));
      _mm256_maskstore_ps(y + 8, m1, _mm256_add_ps(hi[i], b1));
    }
  }
};

// Ops::linear_bf16_panels: outputs [n0, n1) (n0 a multiple of 16) of BF16 panels, K a multiple of 32.
void linear_bf16_panels(const LinearArgs& a, int64_t n0, int64_t n1) {
  run_panels<Bf16PanelRows, kBf16PanelMR, interleave_rows>(a, n0, n1, reinterpret_cast<const uint32_t*>(a.x), a.ldx,
                                                           a.K);
}

}  // namespace

const Ops& avx2_ops() {
  static constexpr Ops ops = [] {
    Ops o = simd_ops();
    o.linear_bf16_panels = &linear_bf16_panels;
    return o;
  }();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END
