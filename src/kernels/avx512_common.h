// Helpers shared by the AVX-512 tier files (avx512, avx512vnni, avx512bf16): a 16 x 16 transpose of
// 4-byte elements, row interleaving, tile stores, row splits. Include it inside a tier file's
// target region and anonymous namespace (like simd_impl.h).
#pragma once

#ifndef LLADA2_SIMD_IMPL_TIER
#error "include avx512_common.h only from a kernel tier file"
#endif

#include "kernels/panel_driver.h"

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

// Rows 0 .. mr-1 (mr <= 32) of 4-byte elements (floats, or bf16 pairs), row r at x + r * ld,
// interleaved: out[k * mr + i] = row i, element k, for k < n (a multiple of 16).
inline void interleave_rows(const uint32_t* x, int64_t ld, int mr, int64_t n, uint32_t* out) {
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

constexpr int kMR = 4, kNR = 4;  // 16 accumulators, 4 weight and 1 input vector

inline __m256 half_sum(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

inline void hsum4(__m512 a, __m512 b, __m512 c, __m512 d, float* out) {
  __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(half_sum(a), half_sum(b)), _mm256_hadd_ps(half_sum(c), half_sum(d)));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}

// y[m + i, n + j] = the lanes of acc[i][j] summed (+ add[i][j] when given) + bias[n + j].
template <int MR, int NR>
void store_tile(const LinearArgs& a, int64_t m, int64_t n, const __m512 (&acc)[MR][NR], const float (*add)[NR]) {
  const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float out[4];
    hsum4(acc[i][0], NR > 1 ? acc[i][1 % NR] : z, NR > 2 ? acc[i][2 % NR] : z, NR > 3 ? acc[i][3 % NR] : z, out);
    float* yr = a.y + (m + i) * a.ldy + n;
    for (int j = 0; j < NR; ++j) yr[j] = (add ? out[j] + add[i][j] : out[j]) + (a.bias ? a.bias[n + j] : 0.f);
  }
}

// table[mr - 1][nr - 1] = pick.operator()<mr, nr>(): a tile template's instantiations for
// 1..MRN input rows and 1..NRN weight rows.
template <typename Fn, int MRN, int NRN, typename Pick>
constexpr std::array<std::array<Fn, NRN>, MRN> tile_grid(Pick pick) {
  std::array<std::array<Fn, NRN>, MRN> t{};
  [&]<int... X>(std::integer_sequence<int, X...>) {
    ((t[X / NRN][X % NRN] = pick.template operator()<X / NRN + 1, X % NRN + 1>()), ...);
  }
  (std::make_integer_sequence<int, MRN * NRN>());
  return t;
}

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

// y[m + i, n .. n+nr) = lanes 0 .. nr-1 of acc[i] (+ bias[n ..]): the rows of a panel kernel.
template <int MR>
inline void store_panel_rows(const LinearArgs& a, int64_t m, int64_t n, int nr, const __m512 (&acc)[MR]) {
  const __mmask16 mk = __mmask16((1u << nr) - 1u);
  const __m512 b = a.bias ? _mm512_maskz_loadu_ps(mk, a.bias + n) : _mm512_setzero_ps();
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(a.y + (m + i) * a.ldy + n, mk, _mm512_add_ps(acc[i], b));
}
