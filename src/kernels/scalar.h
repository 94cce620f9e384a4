// Pieces of the scalar tier (kernels_scalar.cc) that the layout code reuses: reading Q4 nibbles
// and widening a quantized row, exactly as the scalar kernels do.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace llada2::kernels {

// Element k of a Q4 row: element 2j in the low nibble of byte j, 2j + 1 in the high one, two's complement.
inline int q4_value(const uint8_t* row, int64_t k) {
  const int nib = (k & 1) ? (row[k / 2] >> 4) : (row[k / 2] & 0x0F);
  return (nib ^ 8) - 8;
}

// Row n of a quantized matrix in rows ([N, K], `group` elements per scale) as float32: q * scale,
// one rounding (exactly what the SIMD tiers compute).
void dequantize_row(Quant quant, const void* data, const float* scales, int64_t group, int64_t K, int64_t n,
                    float* out);

}  // namespace llada2::kernels
