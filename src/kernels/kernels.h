// Numeric kernels of the forward pass. Each takes float32 activations; weights
// stay in their file dtype (F32 / BF16 / F16) and are widened inside the kernel.
#pragma once

#include <cstdint>

#include "llada2/types.h"

namespace llada2::kernels {

// A row-major weight matrix [rows, cols] in its storage dtype (PyTorch Linear: [out, in]).
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
};

float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);  // round to nearest even
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);

// dst[0..n) = float(src[offset .. offset+n)) for a float dtype.
void to_f32(DType dtype, const void* src, int64_t offset, int64_t n, float* dst);

// y[m, 0..rows) = x[m, 0..cols) @ W^T (+ bias), for m in [0, M). x has row stride ldx, y row stride ldy.
void linear(const float* x, int64_t M, int64_t ldx, const Weight& w, const float* bias, float* y, int64_t ldy);

// In place over each of M rows of length n: x = w * (x / sqrt(mean(x^2) + eps)); w may be F32/BF16/F16.
void rms_norm(float* x, int64_t M, int64_t n, const Weight& w, float eps);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// In place softmax over n values (max-subtracted; an all -inf row becomes all zeros).
void softmax(float* x, int64_t n);

float dot(const float* a, const float* b, int64_t n);

}  // namespace llada2::kernels
