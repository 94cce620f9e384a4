// Scalar conversions between float32 and the 2-byte float dtypes of the weight files.
#pragma once

#include <cstdint>

namespace llada2 {

float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);  // round to nearest even; NaN stays NaN
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);  // round to nearest even; out of range: infinity

}  // namespace llada2
