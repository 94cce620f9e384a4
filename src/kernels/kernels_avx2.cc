// The avx2 tier (AVX2 + FMA + F16C, 8 float lanes): its vector traits V; the kernels are
// simd_impl.h's. Only reached after dispatch.cc has checked the CPU.
#include "kernels/target.h"

#ifdef LLADA2_X86

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

LLADA2_TARGET_BEGIN("avx2,fma,f16c")

namespace llada2::kernels {
namespace {

struct V {
  using reg = __m256;
  using mask_t = __m256;
  using bits = __m256i;
  static constexpr int L = 8;
  // 4 x 3 tile: 12 accumulators + 3 weight vectors + 1 input vector = the 16 registers.
  static constexpr int MR = 4;
  static constexpr int NR = 3;
  // BF16 panel kernel: 2 x 4 accumulators, the two halves of a line, two widened vectors, the
  // broadcast activation and the mask: 14 of the 16 registers.
  static constexpr int PMR = 4;

  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load_tail(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static void store_tail(float* p, int n, reg v) { _mm256_maskstore_ps(p, mask(n), v); }
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
  static bits load_bits(const char* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static reg bf16_even(bits v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
  static reg bf16_odd(bits v) { return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xFFFF0000u)))); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg fnma(reg a, reg b, reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg round(reg v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static mask_t gt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static mask_t lt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static reg select(mask_t m, reg yes, reg no) { return _mm256_blendv_ps(no, yes, m); }
  static reg pow2i(reg n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static float reduce(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(reg v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static __m256 fold8(reg v) { return v; }
  static unsigned eq_mask(reg a, reg b) { return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ))); }
  // out[k * mr + i] = row i, element k (rows at x + r * ld), for k < n.
  static void interleave(const uint32_t* x, int64_t ld, int mr, int64_t n, uint32_t* out) {
    for (int i = 0; i < mr; ++i) {
      const uint32_t* row = x + i * ld;
      for (int64_t k = 0; k < n; ++k) out[k * mr + i] = row[k];
    }
  }
};

#define LLADA2_SIMD_IMPL_TIER
#include "kernels/simd_impl.h"

}  // namespace

const Ops& avx2_ops() {
  static constexpr Ops ops = simd_ops();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END

#endif  // LLADA2_X86
