// The table of per-tier kernel entry points behind kernels.h. Each tier lives in its own
// file, compiled for its instruction set with a target pragma; dispatch.cc checks the CPU
// before handing out a table, so no wide instruction runs on a CPU without it.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"
#include "kernels/target.h"

namespace llada2::kernels {

struct LinearArgs {
  const float* x;
  int64_t M, ldx;
  const void* w;  // [N, K] in dtype
  DType dtype;
  int64_t N, K;
  const float* bias;  // may be null
  float* y;
  int64_t ldy;
  const uint16_t* xb = nullptr;  // x rounded to bf16, [M, K], row stride ldxl (bf16 activations path only)
  // Quantized weights (dtype I8 = Q8, U8 = Q4; see kernels.h): element scale is
  // scales[(n * K + k) / group].
  Quant quant = Quant::None;
  int64_t group = 0;
  const float* scales = nullptr;
  // Quantized, M > 1: a per-thread buffer of kMaxNR * K floats where the SIMD tiers may widen
  // one tile of weight rows once and reuse it for every block of input rows (they do for more
  // than 16 (q8) or 8 (q4) rows; otherwise, or when null, they widen in registers).
  float* wbuf = nullptr;
  // Q8 weights with int8 activations (kernels.h, set_int8_activations): x quantized per group of
  // the weight's `group` elements of a row, [M, K] int8 (row stride ldxl), its scales [M, K / group]
  // and the sum of each group's int8 values [M, K / group].
  const int8_t* xq = nullptr;
  const float* xqs = nullptr;
  const int32_t* xqsum = nullptr;
  int64_t ldxl = 0;  // row stride of xb / xq, elements
  // Panel order (kernels.h, Weight::panels): w (and scales) point at the panels, n0 and n1 are
  // multiples of 16 (n1 may be N). Q8 / Q4 only go to a tier whose Ops::q8_panels is set, BF16 to
  // Ops::linear_bf16_panels / linear_bf16dot_panels.
  bool panels = false;
};

// The widest weight tile (NR) of any tier: the size of LinearArgs::wbuf in rows.
constexpr int64_t kMaxNR = 4;

struct Ops {
  // Computes outputs [n0, n1) of every row.
  void (*linear)(const LinearArgs& a, int64_t n0, int64_t n1);
  // Same from a.xb with vdpbf16ps (bf16 weights only); null where the tier has none.
  void (*linear_bf16dot)(const LinearArgs& a, int64_t n0, int64_t n1);
  // Q8 weights times int8 activations (a.xq, a.xqs, a.xqsum): integer dot products per group,
  // then scaled and summed in float32; null where the tier has none (group a multiple of 64).
  void (*linear_q8q8)(const LinearArgs& a, int64_t n0, int64_t n1);
  // One row of n floats quantized per group (n a multiple of group): q = round_even(x * (127 /
  // amax)) in [-127, 127], scale = amax / 127, sum = the group's sum of q; NaN / infinity in a group:
  // zeros and a NaN scale; amax below 127 / FLT_MAX: zeros and scale 0. Identical on every tier.
  void (*quantize_act)(const float* x, int64_t n, int64_t group, int8_t* q, float* scale, int32_t* sum);
  void (*to_f32)(DType dtype, const void* src, int64_t n, float* dst);
  void (*to_bf16)(const float* src, int64_t n, uint16_t* dst);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  void (*rms_norm_row)(float* x, const float* w, int64_t n, float eps);
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  void (*softmax)(float* x, int64_t n);
  float (*argmax_expsum)(const float* x, int64_t n, int64_t* arg);
  // linear_q8q8 multiplies panel-ordered Q8 / Q4 weights itself (LinearArgs::panels).
  bool q8_panels = false;
  // Writes weight rows n .. n+nr (nr <= 16) of a Q8 or Q4 matrix in rows (a.w, a.quant, a.scales,
  // a.K a multiple of 64, a.group) as one panel (kernels.h) at wb (64-byte aligned) and its scales
  // at sb; null where the tier has none.
  void (*pack_panel)(const LinearArgs& a, int64_t n, int nr, int8_t* wb, float* sb) = nullptr;
  // BF16 weights in panel order (a.panels, kernels.h), outputs [n0, n1) with n0 a multiple of 16:
  // from float32 activations a.x, and from bf16 activations a.xb (vdpbf16ps); null where the tier
  // has none (linear() then unpacks one panel at a time for `linear` / `linear_bf16dot`).
  void (*linear_bf16_panels)(const LinearArgs& a, int64_t n0, int64_t n1) = nullptr;
  void (*linear_bf16dot_panels)(const LinearArgs& a, int64_t n0, int64_t n1) = nullptr;
  // Attention pieces (kernels.h exp_shift_sum, matmul_acc); every tier has them.
  float (*exp_shift_sum)(float* x, int64_t n, float shift) = nullptr;
  void (*matmul_acc)(const float* p, int64_t M, int64_t ldp, const void* v, DType dtype, int64_t T, int64_t D,
                     int64_t ldv, float* y, int64_t ldy) = nullptr;
  // kernels.h matmul_acc_bf16 (vdpbf16ps); null where the tier has no bf16 dot products.
  void (*matmul_acc_bf16)(const uint16_t* p, int64_t M, int64_t ldp, const uint16_t* v, int64_t T, int64_t D,
                          int64_t ldv, float* y, int64_t ldy) = nullptr;
};

const Ops& scalar_ops();
#ifdef LLADA2_X86
const Ops& avx2_ops();
const Ops& avx512_ops();
const Ops& avx512vnni_ops();
const Ops& avx512bf16_ops();
#endif

}  // namespace llada2::kernels
