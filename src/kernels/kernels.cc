// The entry points of kernels.h: argument checks, the buffers and threads around a call, and the
// hand-off to the active tier's Ops table.
#include "kernels/kernels.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/panels.h"

namespace llada2::kernels {

bool int8_activations_active(const Weight& w) {
  // Groups up to 4096: a group's int32 sum (at most 4096 x 127 x 255) cannot overflow. Q8 groups
  // from 64 (the few-row tiles take 64 bytes of one group per step); Q4 from 32, rows a multiple of
  // 64 (its panels unpack 64 nibbles at a time).
  const bool shape = w.quant == Quant::Q8 ? w.group >= 64 : (w.quant == Quant::Q4 && w.group >= 32 && w.cols % 64 == 0);
  return shape && w.group <= 4096 && (w.group & (w.group - 1)) == 0 && w.cols % w.group == 0 && int8_activations() &&
         active_ops().linear_q8q8;
}

Arithmetic linear_arithmetic(const Weight& w) {
  if (int8_activations_active(w)) return Arithmetic::Int8;
  if (w.quant == Quant::None && w.dtype == DType::BF16 && bf16_activations() && active_ops().linear_bf16dot &&
      w.cols > 0)
    return Arithmetic::Bf16;
  return Arithmetic::F32;
}

void to_f32(DType dtype, const void* src, int64_t offset, int64_t n, float* dst) {
  if (n <= 0) return;
  switch (dtype) {
    case DType::F32: std::memcpy(dst, static_cast<const float*>(src) + offset, size_t(n) * 4); return;
    case DType::BF16:
    case DType::F16: active_ops().to_f32(dtype, static_cast<const uint16_t*>(src) + offset, n, dst); return;
    default: std::fill(dst, dst + n, std::numeric_limits<float>::quiet_NaN());
  }
}

float dot(const float* a, const float* b, int64_t n) { return active_ops().dot(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) { active_ops().axpy(a, x, y, n); }

float exp_shift_sum(float* x, int64_t n, float shift) { return active_ops().exp_shift_sum(x, n, shift); }

void matmul_acc(const float* p, int64_t M, int64_t ldp, const void* v, DType dtype, int64_t T, int64_t D, int64_t ldv,
                float* y, int64_t ldy) {
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    throw std::invalid_argument("matmul_acc: values must be F32, BF16 or F16");
  if (M > 0 && T > 0 && D > 0) active_ops().matmul_acc(p, M, ldp, v, dtype, T, D, ldv, y, ldy);
}

void matmul_acc_bf16(const uint16_t* p, int64_t M, int64_t ldp, const uint16_t* v, int64_t T, int64_t D, int64_t ldv,
                     float* y, int64_t ldy) {
  if (M <= 0 || T <= 0 || D <= 0) return;
  if (const auto run = active_ops().matmul_acc_bf16) return run(p, M, ldp, v, T, D, ldv, y, ldy);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t d = 0; d < D; ++d) {
      float acc = y[m * ldy + d];
      for (int64_t t = 0; t < T; ++t) acc += bf16_to_f32(p[m * ldp + t]) * bf16_to_f32(v[t * ldv + d]);
      y[m * ldy + d] = acc;
    }
}

bool matmul_acc_bf16_available() { return active_ops().matmul_acc_bf16 != nullptr; }

void to_bf16(const float* src, int64_t n, uint16_t* dst) {
  if (const auto run = active_ops().to_bf16) return run(src, n, dst);
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void linear(const float* x, int64_t M, int64_t ldx, const Weight& w, const float* bias, float* y, int64_t ldy) {
  const Ops& o = active_ops();
  const int64_t N = w.rows, K = w.cols;
  if (M <= 0 || N <= 0) return;
  LinearArgs a{x, M, ldx, w.data, w.dtype, N, K, bias, y, ldy};
  auto run = o.linear;
  if (w.quant != Quant::None) {
    check_quantized(w);
    a.quant = w.quant;
    a.group = w.group;
    a.scales = w.scales;
    a.panels = w.panels;
  } else if (w.panels) {
    check_bf16_panels(w);
    a.panels = true;
  } else if (w.dtype != DType::F32 && w.dtype != DType::BF16 && w.dtype != DType::F16) {
    run = scalar_ops().linear;
  }
  // The bf16 / int8 copies of x get rows padded by 64 bytes: rows a multiple of 4 KB apart would
  // share one L1 set, and the kernels read up to 12 rows at the same offset.
  std::vector<uint16_t> xb;
  if (w.dtype == DType::BF16 && bf16_activations() && o.linear_bf16dot && K > 0) {
    a.ldxl = K + 32;
    xb.resize(size_t(M * a.ldxl));
    for (int64_t m = 0; m < M; ++m) o.to_bf16(x + m * ldx, K, xb.data() + m * a.ldxl);
    a.xb = xb.data();
    run = o.linear_bf16dot;
  }
  if (K > 0 && o.linear_q8q8 && int8_activations_active(w)) {
    // Quantized once per call into this thread's buffers (the pool threads read them while
    // this thread waits in parallel_for; a linear call never nests another on the same thread).
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xqs;
    thread_local std::vector<int32_t> xqsum;
    const int64_t NG = K / w.group;
    a.ldxl = K + 64;
    if (xq.size() < size_t(M * a.ldxl)) xq.resize(size_t(M * a.ldxl));
    if (xqs.size() < size_t(M * NG)) xqs.resize(size_t(M * NG)), xqsum.resize(size_t(M * NG));
    // Rows quantized in parallel (a prefill chunk has thousands). The workers get plain pointers:
    // inside the lambda the thread_local names would be each worker's own buffers.
    int8_t* q = xq.data();
    float* qs = xqs.data();
    int32_t* qsum = xqsum.data();
    const int64_t ld = a.ldxl, G = w.group;
    parallel_for(
        M,
        [&o, x, ldx, K, G, NG, ld, q, qs, qsum](int64_t m0, int64_t m1) {
          for (int64_t m = m0; m < m1; ++m) o.quantize_act(x + m * ldx, K, G, q + m * ld, qs + m * NG, qsum + m * NG);
        },
        std::max<int64_t>(1, (int64_t(1) << 16) / K));
    a.xq = xq.data();
    a.xqs = xqs.data();
    a.xqsum = xqsum.data();
    const int64_t units = (N + 15) / 16;
    const int64_t min_chunk = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, 16 * M * K));
    if (a.panels && !o.q8_panels) return linear_from_panels(a, o.linear_q8q8, min_chunk);
    parallel_for(
        units, [&](int64_t u0, int64_t u1) { o.linear_q8q8(a, u0 * 16, std::min(N, u1 * 16)); }, min_chunk);
    return;
  }
  // Threads split the outputs in units of 16 (a multiple of the tile widths), each unit
  // big enough to be worth waking a worker for.
  constexpr int64_t kUnit = 16;
  const int64_t units = (N + kUnit - 1) / kUnit;
  const int64_t min_chunk = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, kUnit * M * K));
  if (a.panels) {
    const auto own = a.quant != Quant::None ? nullptr : a.xb ? o.linear_bf16dot_panels : o.linear_bf16_panels;
    if (!own) return linear_from_panels(a, run, min_chunk);
    parallel_for(
        units, [&](int64_t u0, int64_t u1) { own(a, u0 * kUnit, std::min(N, u1 * kUnit)); }, min_chunk);
    return;
  }
  if (a.quant != Quant::None && M > 1 && K > 0) {
    // Each thread widens a tile of weight rows into its own buffer (see LinearArgs::wbuf).
    parallel_for(
        units,
        [&](int64_t u0, int64_t u1) {
          thread_local std::vector<float> buf;
          if (buf.size() < size_t(kMaxNR * K)) buf.resize(size_t(kMaxNR * K));
          LinearArgs b = a;
          b.wbuf = buf.data();
          run(b, u0 * kUnit, std::min(N, u1 * kUnit));
        },
        min_chunk);
    return;
  }
  parallel_for(
      units, [&](int64_t u0, int64_t u1) { run(a, u0 * kUnit, std::min(N, u1 * kUnit)); }, min_chunk);
}

void rms_norm(float* x, int64_t M, int64_t n, const Weight& w, float eps) {
  const Ops& o = active_ops();
  std::vector<float> wf;
  const float* wp = static_cast<const float*>(w.data);
  if (w.dtype != DType::F32) {
    wf.resize(size_t(n));
    to_f32(w.dtype, w.data, 0, n, wf.data());
    wp = wf.data();
  }
  for (int64_t m = 0; m < M; ++m) o.rms_norm_row(x + m * n, wp, n, eps);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) { active_ops().silu_mul(gate, up, out, n); }

void softmax(float* x, int64_t n) { active_ops().softmax(x, n); }
float argmax_expsum(const float* x, int64_t n, int64_t* arg) { return active_ops().argmax_expsum(x, n, arg); }

}  // namespace llada2::kernels
