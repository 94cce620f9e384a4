// The scalar tier: the reference twin of every SIMD kernel (the tests hold each tier to it), and
// the only tier off x86. Plain loops, no target pragma.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "kernels/scalar.h"

namespace llada2::kernels {

void dequantize_row(Quant quant, const void* data, const float* scales, int64_t group, int64_t K, int64_t n,
                    float* out) {
  const float* s = scales + n * (K / group);
  if (quant == Quant::Q8) {
    const int8_t* q = static_cast<const int8_t*>(data) + n * K;
    for (int64_t k = 0; k < K; ++k) out[k] = float(q[k]) * s[k / group];
  } else {
    const uint8_t* q = static_cast<const uint8_t*>(data) + n * (K / 2);
    for (int64_t k = 0; k < K; ++k) out[k] = float(q4_value(q, k)) * s[k / group];
  }
}

namespace {

void scalar_to_f32(DType dtype, const void* src, int64_t n, float* dst) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default: break;
  }
  std::fill(dst, dst + n, std::numeric_limits<float>::quiet_NaN());
}

float scalar_dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Widens one weight row at a time and reuses it for all M input rows.
void scalar_linear(const LinearArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  std::vector<float> row(size_t(a.dtype == DType::F32 && a.quant == Quant::None ? 0 : K));
  for (int64_t n = n0; n < n1; ++n) {
    const float* wr;
    if (a.quant != Quant::None) {
      dequantize_row(a.quant, a.w, a.scales, a.group, K, n, row.data());
      wr = row.data();
    } else if (a.dtype == DType::F32) {
      wr = static_cast<const float*>(a.w) + n * K;
    } else {
      scalar_to_f32(a.dtype, static_cast<const char*>(a.w) + n * K * 2, K, row.data());
      wr = row.data();
    }
    float b = a.bias ? a.bias[n] : 0.f;
    for (int64_t m = 0; m < a.M; ++m) a.y[m * a.ldy + n] = scalar_dot(a.x + m * a.ldx, wr, K) + b;
  }
}

// Int8 activations for Q8 weights: see Ops::quantize_act. A group holding NaN or infinity gets a
// NaN scale (and zeros), so the outputs it feeds become NaN as in float32 compute; a group whose
// max |x| is below 127 / FLT_MAX (127 / max |x| would overflow) counts as all zero.
void scalar_quantize_act(const float* x, int64_t n, int64_t group, int8_t* q, float* scale, int32_t* sum) {
  for (int64_t g = 0; g < n / group; ++g) {
    const float* xg = x + g * group;
    float amax = 0.f;
    bool finite = true;
    for (int64_t i = 0; i < group; ++i) {
      const float v = std::fabs(xg[i]);
      finite = finite && v <= std::numeric_limits<float>::max();
      amax = v > amax ? v : amax;
    }
    int32_t s = 0;
    if (!finite || !(amax >= 127.f / std::numeric_limits<float>::max())) {
      std::memset(q + g * group, 0, size_t(group));
      scale[g] = finite ? 0.f : std::numeric_limits<float>::quiet_NaN();
    } else {
      const float inv = 127.f / amax;
      for (int64_t i = 0; i < group; ++i) {
        const long v = std::clamp<long>(std::lrint(xg[i] * inv), -127, 127);
        q[g * group + i] = int8_t(v);
        s += int32_t(v);
      }
      scale[g] = amax / 127.f;
    }
    sum[g] = s;
  }
}

// Q8 / Q4 weights times int8 activations: an exact integer dot product per group, scaled by the
// weight's and the activation's group scales, summed over the groups in float32.
void scalar_linear_q8q8(const LinearArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K, G = a.group, NG = K / G;
  std::vector<int8_t> row(a.dtype == DType::U8 ? size_t(K) : 0);
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* w = static_cast<const int8_t*>(a.w) + n * K;
    if (a.dtype == DType::U8) {  // Q4
      const uint8_t* b = static_cast<const uint8_t*>(a.w) + n * (K / 2);
      for (int64_t k = 0; k < K; ++k) row[size_t(k)] = int8_t(q4_value(b, k));
      w = row.data();
    }
    const float* sw = a.scales + n * NG;
    for (int64_t m = 0; m < a.M; ++m) {
      const int8_t* x = a.xq + m * a.ldxl;
      const float* sx = a.xqs + m * NG;
      float acc = 0.f;
      for (int64_t g = 0; g < NG; ++g) {
        int32_t t = 0;
        for (int64_t k = g * G; k < (g + 1) * G; ++k) t += int32_t(x[k]) * int32_t(w[k]);
        acc += float(t) * (sw[g] * sx[g]);
      }
      a.y[m * a.ldy + n] = acc + (a.bias ? a.bias[n] : 0.f);
    }
  }
}

void scalar_axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void scalar_rms_norm_row(float* x, const float* w, int64_t n, float eps) {
  float ss = scalar_dot(x, x, n);
  float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  for (int64_t i = 0; i < n; ++i) x[i] = w[i] * (x[i] * inv);
}

void scalar_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void scalar_softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.f);
    return;
  }
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

// The first maximal value's index (NaN never wins unless it comes first) and sum(exp(x - max)).
float scalar_argmax_expsum(const float* x, int64_t n, int64_t* arg) {
  int64_t best = 0;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > mx) {
      mx = x[i];
      best = i;
    }
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  *arg = best;
  return sum;
}

float scalar_exp_shift_sum(float* x, int64_t n, float shift) {
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void scalar_matmul_acc(const float* p, int64_t M, int64_t ldp, const void* v, DType dtype, int64_t T, int64_t D,
                       int64_t ldv, float* y, int64_t ldy) {
  std::vector<float> row(static_cast<size_t>(D));
  for (int64_t t = 0; t < T; ++t) {
    scalar_to_f32(dtype, static_cast<const char*>(v) + t * ldv * dtype_size(dtype), D, row.data());
    for (int64_t m = 0; m < M; ++m) scalar_axpy(p[m * ldp + t], row.data(), y + m * ldy, D);
  }
}

constexpr Ops make_scalar_ops() {
  Ops o{&scalar_linear,       nullptr,          &scalar_linear_q8q8, &scalar_quantize_act,
        &scalar_to_f32,       nullptr,          &scalar_dot,         &scalar_axpy,
        &scalar_rms_norm_row, &scalar_silu_mul, &scalar_softmax,     &scalar_argmax_expsum};
  o.exp_shift_sum = &scalar_exp_shift_sum;
  o.matmul_acc = &scalar_matmul_acc;
  return o;
}

}  // namespace

const Ops& scalar_ops() {
  static constexpr Ops ops = make_scalar_ops();
  return ops;
}

}  // namespace llada2::kernels
