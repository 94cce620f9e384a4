// Numeric kernels of the forward pass. Each takes float32 activations; weights
// stay in their file dtype (F32 / BF16 / F16) and are widened inside the kernel.
//
// Every kernel exists in several instruction-set tiers, picked at run time:
// avx512bf16 > avx512vnni > avx512 > avx2 (with FMA and F16C) > scalar (the only one off x86).
// The scalar tier is the reference twin the others are tested against.
// LLADA2_ISA=avx512bf16|avx512vnni|avx512|avx2|scalar caps the tier (a tier above what the CPU has means the best it
// has); any other value makes the first kernel call throw std::invalid_argument. set_isa() overrides both.
#pragma once

#include <cstdint>

#include "llada2/types.h"

namespace llada2::kernels {

// Weight quantization (docs/quantization.md): symmetric, one float32 scale per `group`
// consecutive elements of a row; element [r, c] = q[r, c] * scales[r * (cols / group) + c / group].
//   Q8: data is int8 [rows, cols] (dtype I8).
//   Q4: data is uint8 [rows, cols / 2] (dtype U8), two signed 4-bit values per byte, element 2j
//       in the low nibble of byte j, 2j + 1 in the high nibble.
enum class Quant : uint8_t { None = 0, Q8 = 1, Q4 = 2 };

// A weight matrix [rows, cols] in its storage dtype (PyTorch Linear: [out, in]), row-major unless
// `panels` (below). Quantized or panel-ordered matrices are only accepted by linear(),
// dequantize() and weight_bytes(); rms_norm() and to_f32() read rows.
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  Quant quant = Quant::None;
  int64_t group = 0;              // quantized only: elements per scale along cols (divides cols)
  const float* scales = nullptr;  // quantized only: [rows, cols / group]
  // Q8 / Q4: data (dtype U8) and scales in panel order (below) instead of rows; BF16 (quant None):
  // data in panel order.
  bool panels = false;
};

// Panel order, the layout the int8 kernels of the avx512vnni tiers and the BF16 kernels of the
// avx2 and avx512 tiers multiply from without repacking (made at load time by pack_panels): the
// rows in panels of 16, the last one padded with zero rows, each panel's 4-byte units interleaved
// across its 16 rows, so that one 64-byte line holds the same unit of all 16 rows.
//   BF16 (cols a multiple of 32): panel p takes 32 * cols bytes at data + 32 p cols; the bf16 pair
//       of columns 2t, 2t+1 of row j at 64 t + 4 j (column 2t first, as in the rows).
// Q8 / Q4: the units are 4-byte quads (quad q = columns 4q .. 4q+3).
//   Q8: panel p takes 16 * cols bytes at data + 16 p cols; quad q of row j at 64 q + 4 j, each value
//       stored as the unsigned byte q + 128.
//   Q4: panel p takes 8 * cols bytes at data + 8 p cols; quads 2t and 2t+1 share the 64 bytes at
//       64 t: byte 4 j + b holds the value of (row j, column 8t + b) + 8 in its low nibble and that
//       of (row j, column 8t + 4 + b) + 8 in its high nibble.
// The scales of panel p, [cols / group][16], at scales + 16 p (cols / group) (0 for the padding
// rows). linear() and dequantize() accept panels on every tier (tiers without the panel kernels
// unpack one panel at a time).
//
// Whether w (Q8, Q4 or BF16 in rows) is multiplied faster from panels by the current tier and
// settings (Q8 / Q4: int8 activations on, a supported group, cols a multiple of 64; BF16: the
// avx2 or an avx512 tier, at least 16 rows, cols a multiple of 32).
bool panels_preferred(const Weight& w);
// Bytes of the panel-ordered data and number of scales of w (rows rounded up to 16; BF16 has no
// scales).
uint64_t panel_bytes(const Weight& w);
uint64_t panel_scales(const Weight& w);
// Writes w (Q8 or Q4 in rows, cols a multiple of 8 and group of 8 for Q4; or BF16 in rows, cols a
// multiple of 32) into data / scales (panel_bytes / panel_scales of them) in panel order, in
// parallel; returns the panel-ordered Weight over them.
Weight pack_panels(const Weight& w, uint8_t* data, float* scales);

// Bytes of the stored matrix (plus its scales when quantized).
uint64_t weight_bytes(const Weight& w);

// out[0..cols) = row `row` of w as float32 (any dtype, quantized or not).
void dequantize(const Weight& w, int64_t row, float* out);

// avx512vnni: avx512 + AVX512_VNNI (the int8 kernels); avx512bf16: avx512vnni + AVX512_BF16.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3, Avx512Bf16 = 4 };

const char* isa_name(Isa isa);
// Parses "scalar" / "avx2" / "avx512" / "avx512vnni" / "avx512bf16"; false if unknown.
bool parse_isa(const char* name, Isa* out);
// Whether this CPU (and this build) can run the tier.
bool isa_supported(Isa isa);
// The best tier this CPU can run.
Isa best_isa();
// The tier the kernels use now (resolving LLADA2_ISA on first use; throws if it is invalid).
Isa current_isa();
const char* active_isa();
// Selects a tier for the whole process; returns false and changes nothing if unsupported.
bool set_isa(Isa isa);

// The fast mode's BF16 products (SPEC A6): with BF16 weights on the avx512bf16 tier, linear()
// rounds the activations to bf16 (round to nearest even) and multiplies with vdpbf16ps,
// accumulating in float32, as torch's bf16 GEMMs do. About twice the FMA throughput; results
// differ from float32 compute by ~1e-3 relative, so the float32 goldens need the exact mode
// (off). On by default; LLADA2_BF16_DOT=0 turns it off at first use. Has no effect on other tiers
// or weight dtypes.
void set_bf16_activations(bool on);
bool bf16_activations();

// Q8 and Q4 weights: on the avx512vnni and avx512bf16 tiers and in the scalar reference
// tier (its twin, so LLADA2_ISA=scalar reproduces these numerics) linear() quantizes the
// activations to int8 per group of the weight's group size (symmetric, scale = max |x| / 127, round
// to nearest even), multiplies the integers exactly in int32 per group and scales and sums the
// groups in float32: 2-4x the float path's throughput, at an extra rounding of the activations
// (quality in docs/quantization.md). On by default; LLADA2_INT8_ACT=0 (or
// set_int8_activations(false)) keeps float32 activations. Other tiers, and groups outside the
// supported ones (Q8: powers of two from 64 to 4096; Q4: from 32 to 4096 with rows a multiple of
// 64), always use float32 activations.
void set_int8_activations(bool on);
bool int8_activations();
// Whether linear() on w uses int8 activations now (Q8 / Q4, setting on, tier and group support it).
bool int8_activations_active(const Weight& w);

// The arithmetic linear() uses on w now: float32 FMAs, bf16 pairs (vdpbf16ps, 2x the float32
// rate) or int8 quads (vpdpbusd, 4x): what a roofline should divide its FLOPs by.
enum class Arithmetic { F32, Bf16, Int8 };
Arithmetic linear_arithmetic(const Weight& w);

// dst[0..n) = float(src[offset .. offset+n)) for a float dtype.
void to_f32(DType dtype, const void* src, int64_t offset, int64_t n, float* dst);

// y[m, 0..rows) = x[m, 0..cols) @ W^T (+ bias), for m in [0, M). x has row stride ldx, y row stride ldy.
// Parallel over the output features on the process thread pool. Quantized weights are widened
// to float32 in registers and multiplied by their group scale; the products sum in float32.
// Throws std::invalid_argument for an inconsistent quantized Weight (no scales, group not
// dividing cols, odd Q4 group).
void linear(const float* x, int64_t M, int64_t ldx, const Weight& w, const float* bias, float* y, int64_t ldy);

// In place over each of M rows of length n: x = w * (x / sqrt(mean(x^2) + eps)); w may be F32/BF16/F16.
void rms_norm(float* x, int64_t M, int64_t n, const Weight& w, float eps);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// In place softmax over n values (max-subtracted; an all -inf row becomes all zeros).
void softmax(float* x, int64_t n);

// Greedy choice over n > 0 logits: *arg = the first maximal index; returns sum(exp(x - max)),
// so that the chosen token's softmax probability is 1 / the result.
float argmax_expsum(const float* x, int64_t n, int64_t* arg);

float dot(const float* a, const float* b, int64_t n);

// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);

// Attention over a key/value cache (model code), on the calling thread only:
// x[i] = exp(x[i] - shift) (exp(-inf) = 0), returns their sum (the scalar tier adds in order, the
// SIMD tiers per lane).
float exp_shift_sum(float* x, int64_t n, float shift);
// y[m, 0..D) += sum over t < T of p[m, t] * V[t, 0..D), for m < M: V rows of D values in dtype
// (F32, BF16 or F16) ldv elements apart, p and y row-major with strides ldp and ldy. Each output
// adds its T products in order of t.
void matmul_acc(const float* p, int64_t M, int64_t ldp, const void* v, DType dtype, int64_t T, int64_t D, int64_t ldv,
                float* y, int64_t ldy);
// The same with p and V in bf16 (uint16_t, p rows ldp elements apart), the products summed in float32
// in pairs of t (t even with t + 1; the last t of an odd T alone), as vdpbf16ps does: the fast mode's
// attention on CPUs with AVX512-BF16. Products of bf16 values are exact in float32, so results differ
// from matmul_acc on the same values by the order of the sums only. Where the tier has no bf16 dot
// products (matmul_acc_bf16_available() false) a plain loop computes it, for reference only.
// vdpbf16ps treats bf16 subnormals as zero.
void matmul_acc_bf16(const uint16_t* p, int64_t M, int64_t ldp, const uint16_t* v, int64_t T, int64_t D, int64_t ldv,
                     float* y, int64_t ldy);
bool matmul_acc_bf16_available();
// dst[0..n) = src[0..n) rounded to bf16, to nearest even, NaN kept NaN (the avx512bf16 tier's
// vcvtneps2bf16 flushes subnormals to zero).
void to_bf16(const float* src, int64_t n, uint16_t* dst);

}  // namespace llada2::kernels
