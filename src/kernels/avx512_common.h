// What the AVX-512 tier files (avx512, avx512vnni, avx512bf16) share: the vector traits V, a 16 x 16
// transpose of 4-byte elements, panel buffers; and, over V, simd_math.h and
// panel_driver.h. Include it inside a tier file's target region and anonymous namespace (like
// simd_impl.h).
#pragma once

#ifndef LLADA2_SIMD_IMPL_TIER
#error "include avx512_common.h only from a kernel tier file"
#endif

// out[q] lane j = in[j] dword q.
inline void transpose16(const __m512i (&in)[16], __m512i (&out)[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44),
                  w1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    out[c] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    out[4 + c] = _mm512_shuffle_i32x4(v0, w0, 0xDD);
    out[8 + c] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    out[12 + c] = _mm512_shuffle_i32x4(v1, w1, 0xDD);
  }
}

// The avx512 tier's vector traits (simd_impl.h), 16 float lanes.
struct V {
  using reg = __m512;
  using mask_t = __mmask16;
  using bits = __m512i;
  static constexpr int L = 16;
  // 4 x 4 tile: 16 accumulators + 4 weight vectors + 1 input vector of the 32 registers (a 6 x 4
  // tile measured no faster: the widened weights are already reused enough).
  static constexpr int MR = 4;
  static constexpr int NR = 4;
  // BF16 panel kernel: up to 24 accumulators (with the line, its two widened halves and the mask:
  // 28 of the 32 registers). Measured per core at K = 2048: 12-16 rows 91-93% of the FMA peak, 17
  // rows as one block ~5% faster than as 9 + 8.
  static constexpr int PMR = 24;

  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load_tail(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void store_tail(float* p, int n, reg v) { _mm512_mask_storeu_ps(p, mask(n), v); }
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
  static bits load_bits(const char* p) { return _mm512_loadu_si512(p); }
  static reg bf16_even(bits v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
  static reg bf16_odd(bits v) { return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xFFFF0000u)))); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg fnma(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg round(reg v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static mask_t gt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static mask_t lt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static reg select(mask_t m, reg yes, reg no) { return _mm512_mask_mov_ps(no, m, yes); }
  static reg pow2i(reg n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static float reduce(reg v) { return _mm512_reduce_add_ps(v); }
  static float reduce_max(reg v) { return _mm512_reduce_max_ps(v); }
  static unsigned eq_mask(reg a, reg b) { return unsigned(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)); }
  static __m256 fold8(reg v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  // Rows 0 .. mr-1 (mr <= 32) of 4-byte elements (floats, or bf16 pairs), row r at x + r * ld,
  // interleaved: out[k * mr + i] = row i, element k, for k < n (a multiple of 16).
  static void interleave(const uint32_t* x, int64_t ld, int mr, int64_t n, uint32_t* out) {
    for (int r0 = 0; r0 < mr; r0 += 16) {
      const int rows = mr - r0 < 16 ? mr - r0 : 16;
      const __mmask16 keep = __mmask16((1u << rows) - 1u);
      for (int64_t k0 = 0; k0 < n; k0 += 16) {
        __m512i in[16], o[16];
        for (int j = 0; j < 16; ++j)
          in[j] = j < rows ? _mm512_loadu_si512(x + (r0 + j) * ld + k0) : _mm512_setzero_si512();
        transpose16(in, o);
        for (int q = 0; q < 16; ++q) _mm512_mask_storeu_epi32(out + (k0 + q) * mr + r0, keep, o[q]);
      }
    }
  }
};

#include "kernels/panel_driver.h"
#include "kernels/simd_math.h"

// The int8 and bf16-dot tiles: 16 accumulators, 4 weight and 1 input vector.
constexpr int kMR = 4, kNR = 4;

// A per-thread 64-byte aligned buffer for one packed panel and its scales.
struct PanelBuffer {
  char* w = nullptr;
  float* s = nullptr;
  size_t wcap = 0, scap = 0;
  PanelBuffer() = default;
  PanelBuffer(const PanelBuffer&) = delete;
  PanelBuffer& operator=(const PanelBuffer&) = delete;
  ~PanelBuffer() {
    std::free(w);
    std::free(s);
  }
  void reserve(size_t wbytes, size_t sfloats) {
    if (wcap < wbytes) {
      std::free(w);
      wcap = (wbytes + 63) / 64 * 64;
      w = static_cast<char*>(std::aligned_alloc(64, wcap));
      if (!w) wcap = 0;
    }
    if (scap < sfloats) {
      std::free(s);
      scap = (sfloats + 15) / 16 * 16;
      s = static_cast<float*>(std::aligned_alloc(64, scap * 4));
      if (!s) scap = 0;
    }
    if (!w || (sfloats && !s)) throw std::bad_alloc();
  }
};

// Bytes of one weight row of a Q8 (int8) or Q4 (packed nibbles) matrix.
inline int64_t q_row_bytes(const LinearArgs& a) { return a.quant == Quant::Q4 ? a.K / 2 : a.K; }
