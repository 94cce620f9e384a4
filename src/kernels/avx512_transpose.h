// A 16 x 16 transpose of 4-byte elements in AVX-512 registers, shared by the avx512 tiers. Include
// it inside a tier file's target region and anonymous namespace (like simd_impl.h).
#pragma once

#ifndef LLADA2_SIMD_IMPL_TIER
#error "include avx512_transpose.h only from a kernel tier file"
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
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), w1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
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
