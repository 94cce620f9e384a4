#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace llada2::kernels {

float bf16_to_f32(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu)) return uint16_t((bits >> 16) | 0x40);  // NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = int32_t((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFF;
  if (((x >> 23) & 0xFF) == 0xFF) return uint16_t(sign | 0x7C00 | (mant ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7C00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    mant |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t h = sign | (uint32_t(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: still correct
  return uint16_t(h);
}

// ---- scalar tier: the reference twin of every SIMD kernel ----

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

// Element k of a Q4 row: element 2j in the low nibble of byte j, 2j + 1 in the high one, two's complement.
int q4_value(const uint8_t* row, int64_t k) {
  const int nib = (k & 1) ? (row[k / 2] >> 4) : (row[k / 2] & 0x0F);
  return (nib ^ 8) - 8;
}

// Row n of a quantized matrix as float32: q * scale, one rounding (exactly what the SIMD tiers compute).
void dequantize_q(Quant quant, const void* data, const float* scales, int64_t group, int64_t K, int64_t n, float* out) {
  const float* s = scales + n * (K / group);
  if (quant == Quant::Q8) {
    const int8_t* q = static_cast<const int8_t*>(data) + n * K;
    for (int64_t k = 0; k < K; ++k) out[k] = float(q[k]) * s[k / group];
  } else {
    const uint8_t* q = static_cast<const uint8_t*>(data) + n * (K / 2);
    for (int64_t k = 0; k < K; ++k) out[k] = float(q4_value(q, k)) * s[k / group];
  }
}

// Widens one weight row at a time and reuses it for all M input rows.
void scalar_linear(const LinearArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  std::vector<float> row(size_t(a.dtype == DType::F32 && a.quant == Quant::None ? 0 : K));
  for (int64_t n = n0; n < n1; ++n) {
    const float* wr;
    if (a.quant != Quant::None) {
      dequantize_q(a.quant, a.w, a.scales, a.group, K, n, row.data());
      wr = row.data();
    } else if (a.dtype == DType::F32) {
      wr = static_cast<const float*>(a.w) + n * K;
    } else {
      to_f32(a.dtype, a.w, n * K, K, row.data());
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

}  // namespace

const Ops& scalar_ops() {
  static constexpr Ops ops{&scalar_linear,       nullptr,          &scalar_linear_q8q8, &scalar_quantize_act,
                           &scalar_to_f32,       nullptr,          &scalar_dot,         &scalar_axpy,
                           &scalar_rms_norm_row, &scalar_silu_mul, &scalar_softmax,     &scalar_argmax_expsum};
  return ops;
}

// ---- tier selection ----

namespace {

#if defined(__x86_64__) || defined(__i386__)
// F16C and AVX512_BF16 straight from cpuid: not every compiler's __builtin_cpu_supports
// knows them. Their register state is the one the avx2 / avx512f checks already cover.
bool cpuid_bit(unsigned leaf, unsigned subleaf, int reg, unsigned bit) {
  unsigned r[4];
  if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1u;
}
#endif

bool cpu_has(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_bit(1, 0, 2, 29);  // ecx.F16C
    case Isa::Avx512:
      return cpu_has(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    case Isa::Avx512Vnni: return cpu_has(Isa::Avx512) && cpuid_bit(7, 0, 2, 11);     // ecx.AVX512_VNNI
    case Isa::Avx512Bf16: return cpu_has(Isa::Avx512Vnni) && cpuid_bit(7, 1, 0, 5);  // eax.AVX512_BF16
  }
#endif
  return isa == Isa::Scalar;
}

const Ops& ops_of(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return avx2_ops();
    case Isa::Avx512: return avx512_ops();
    case Isa::Avx512Vnni: return avx512vnni_ops();
    case Isa::Avx512Bf16: return avx512bf16_ops();
    case Isa::Scalar: break;
  }
  return scalar_ops();
}

std::atomic<const Ops*> g_ops{nullptr};
std::atomic<int> g_isa{-1};
std::atomic<int> g_bf16{-1};  // -1: LLADA2_BF16_DOT not read yet
std::atomic<int> g_int8{-1};  // -1: LLADA2_INT8_ACT not read yet

const Ops& resolve_ops() {
  Isa isa = best_isa();
  const char* env = std::getenv("LLADA2_ISA");
  if (env && *env && std::strcmp(env, "auto") != 0) {
    Isa cap;
    if (!parse_isa(env, &cap))
      throw std::invalid_argument(
          std::string("LLADA2_ISA=") + env +
          ": unknown instruction set tier (expected auto, avx512bf16, avx512vnni, avx512, avx2 or scalar)");
    isa = std::min(isa, cap);
  }
  set_isa(isa);
  return *g_ops.load(std::memory_order_acquire);
}

inline const Ops& ops() {
  const Ops* o = g_ops.load(std::memory_order_acquire);
  return o ? *o : resolve_ops();
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Vnni: return "avx512vnni";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "?";
}

bool parse_isa(const char* name, Isa* out) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Avx512Bf16}) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
  static const bool has[5] = {true, cpu_has(Isa::Avx2), cpu_has(Isa::Avx512), cpu_has(Isa::Avx512Vnni),
                              cpu_has(Isa::Avx512Bf16)};
  int i = int(isa);
  return i >= 0 && i < 5 && has[i];
}

Isa best_isa() {
  for (Isa isa : {Isa::Avx512Bf16, Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2})
    if (isa_supported(isa)) return isa;
  return Isa::Scalar;
}

Isa current_isa() {
  ops();
  return Isa(g_isa.load(std::memory_order_acquire));
}

const char* active_isa() { return isa_name(current_isa()); }

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  g_isa.store(int(isa), std::memory_order_release);
  g_ops.store(&ops_of(isa), std::memory_order_release);
  return true;
}

namespace {

// A process-wide on/off switch read from `var` at first use (unset or empty: `dflt`); `state` is
// -1 until then. Anything but 0/1/false/true/off/on throws, naming the variable.
bool env_switch(std::atomic<int>& state, const char* var, bool dflt) {
  int v = state.load(std::memory_order_acquire);
  if (v < 0) {
    const char* env = std::getenv(var);
    const std::string s = env ? env : "";
    if (s.empty()) {
      v = dflt ? 1 : 0;
    } else if (s == "1" || s == "true" || s == "on") {
      v = 1;
    } else if (s == "0" || s == "false" || s == "off") {
      v = 0;
    } else {
      throw std::invalid_argument(std::string(var) + "=" + s + ": expected 0 or 1");
    }
    state.store(v, std::memory_order_release);
  }
  return v == 1;
}

}  // namespace

void set_int8_activations(bool on) { g_int8.store(on ? 1 : 0, std::memory_order_release); }
bool int8_activations() { return env_switch(g_int8, "LLADA2_INT8_ACT", true); }

bool int8_activations_active(const Weight& w) {
  // Groups up to 4096: a group's int32 sum (at most 4096 x 127 x 255) cannot overflow. Q8 groups
  // from 64 (the few-row tiles take 64 bytes of one group per step); Q4 from 32, rows a multiple of
  // 64 (its panels unpack 64 nibbles at a time).
  const bool shape = w.quant == Quant::Q8 ? w.group >= 64 : (w.quant == Quant::Q4 && w.group >= 32 && w.cols % 64 == 0);
  return shape && w.group <= 4096 && (w.group & (w.group - 1)) == 0 && w.cols % w.group == 0 && int8_activations() &&
         ops().linear_q8q8;
}

Arithmetic linear_arithmetic(const Weight& w) {
  if (int8_activations_active(w)) return Arithmetic::Int8;
  if (w.quant == Quant::None && w.dtype == DType::BF16 && bf16_activations() && ops().linear_bf16dot && w.cols > 0)
    return Arithmetic::Bf16;
  return Arithmetic::F32;
}

void set_bf16_activations(bool on) { g_bf16.store(on ? 1 : 0, std::memory_order_release); }

bool bf16_activations() { return env_switch(g_bf16, "LLADA2_BF16_DOT", false); }

// ---- public entry points ----

void to_f32(DType dtype, const void* src, int64_t offset, int64_t n, float* dst) {
  if (n <= 0) return;
  switch (dtype) {
    case DType::F32: std::memcpy(dst, static_cast<const float*>(src) + offset, size_t(n) * 4); return;
    case DType::BF16:
    case DType::F16: ops().to_f32(dtype, static_cast<const uint16_t*>(src) + offset, n, dst); return;
    default: std::fill(dst, dst + n, std::numeric_limits<float>::quiet_NaN());
  }
}

float dot(const float* a, const float* b, int64_t n) { return ops().dot(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) { ops().axpy(a, x, y, n); }

namespace {

void check_quantized(const Weight& w) {
  const DType want = w.quant == Quant::Q8 && !w.panels ? DType::I8 : DType::U8;
  if (w.quant != Quant::Q8 && w.quant != Quant::Q4)
    throw std::invalid_argument("quantized weight: unknown quantization kind");
  if (w.dtype != want || !w.data || !w.scales || w.group <= 0 || w.cols % w.group != 0 ||
      (w.quant == Quant::Q4 && (w.group % (w.panels ? 8 : 2) != 0)) || (w.panels && w.cols % 8 != 0))
    throw std::invalid_argument("quantized weight [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                                "]: inconsistent dtype, data, scales or group " + std::to_string(w.group));
}

// ---- panel order (kernels.h) ----

int64_t panel_count(const Weight& w) { return (w.rows + 15) / 16; }

bool bf16_panel_shape(const Weight& w) { return w.quant == Quant::None && w.dtype == DType::BF16 && w.cols % 32 == 0; }

void check_bf16_panels(const Weight& w) {
  if (!bf16_panel_shape(w) || !w.data)
    throw std::invalid_argument("panel-ordered weight [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                                "]: only BF16 with columns a multiple of 32 (or Q8 / Q4)");
}

// Byte offset of (row j, column k) inside a BF16 panel: the pair of columns k & ~1 of row j is the
// dword j of line k / 2, column k in its low half when even.
inline int64_t bf16_panel_offset(int64_t j, int64_t k) { return 64 * (k / 2) + 4 * j + 2 * (k % 2); }

// Value (row j, column k) of a panel (kernels.h) as a signed integer.
inline int panel_value(const uint8_t* panel, bool q4, int64_t j, int64_t k) {
  if (!q4) return int8_t(panel[64 * (k / 4) + 4 * j + k % 4] ^ 0x80);
  const uint8_t byte = panel[64 * (k / 8) + 4 * j + k % 4];
  return ((k & 4) ? byte >> 4 : byte & 0x0F) - 8;
}

// Panel p of a panel-ordered Q8 / Q4 weight back into Q8 rows (int8 values, same scales): int8
// [16, K] and scales [16, NG] (padding rows included).
void unpack_panel(const LinearArgs& a, int64_t p, int8_t* rows, float* sc) {
  const int64_t K = a.K, NG = K / a.group;
  const bool q4 = a.quant == Quant::Q4;
  const uint8_t* src = static_cast<const uint8_t*>(a.w) + p * 16 * (q4 ? K / 2 : K);
  for (int j = 0; j < 16; ++j)
    for (int64_t k = 0; k < K; ++k) rows[j * K + k] = int8_t(panel_value(src, q4, j, k));
  const float* s = a.scales + p * 16 * NG;
  for (int64_t g = 0; g < NG; ++g)
    for (int j = 0; j < 16; ++j) sc[j * NG + g] = s[g * 16 + j];
}

// Products from a panel-ordered weight on a path that reads rows (`run` with a.xq / a.x / a.xb as
// set up by the caller): each thread unpacks one panel at a time into rows (Q8 / Q4: Q8 rows of the
// same values and scales; BF16: the same bf16 values), hence the same products, and runs it.
void linear_from_panels(const LinearArgs& a, void (*run)(const LinearArgs&, int64_t, int64_t), int64_t min_chunk) {
  const bool bf16 = a.quant == Quant::None;
  const int64_t K = a.K, NG = bf16 ? 0 : K / a.group, N = a.N;
  parallel_for((N + 15) / 16,
               [&](int64_t p0, int64_t p1) {
                 thread_local std::vector<int8_t> rows;
                 thread_local std::vector<float> sc, wbuf;
                 rows.resize(size_t(16 * K * (bf16 ? 2 : 1)));
                 sc.resize(size_t(16 * NG));
                 wbuf.resize(size_t(kMaxNR * K));
                 for (int64_t p = p0; p < p1; ++p) {
                   LinearArgs b = a;
                   const int64_t n = 16 * p;
                   if (bf16) {
                     const uint8_t* src = static_cast<const uint8_t*>(a.w) + p * 32 * K;
                     for (int j = 0; j < 16; ++j)  // a bf16 pair (columns 2t, 2t+1) at a time
                       for (int64_t k = 0; k < K; k += 2)
                         std::memcpy(rows.data() + 2 * (j * K + k), src + bf16_panel_offset(j, k), 4);
                   } else {
                     unpack_panel(a, p, rows.data(), sc.data());
                     b.dtype = DType::I8;
                     b.quant = Quant::Q8;
                     b.scales = sc.data();
                   }
                   b.w = rows.data();
                   b.panels = false;
                   b.N = std::min<int64_t>(16, N - n);
                   b.y = a.y + n;
                   b.bias = a.bias ? a.bias + n : nullptr;
                   b.wbuf = wbuf.data();
                   run(b, 0, b.N);
                 }
               },
               min_chunk);
}

}  // namespace

uint64_t weight_bytes(const Weight& w) {
  if (w.panels) return panel_bytes(w) + panel_scales(w) * 4;
  const uint64_t n = uint64_t(w.rows) * uint64_t(w.cols);
  switch (w.quant) {
    case Quant::Q8: return n + (w.group > 0 ? n / uint64_t(w.group) * 4 : 0);
    case Quant::Q4: return n / 2 + (w.group > 0 ? n / uint64_t(w.group) * 4 : 0);
    case Quant::None: break;
  }
  return n * dtype_size(w.dtype);
}

void dequantize(const Weight& w, int64_t row, float* out) {
  if (w.quant == Quant::None && w.panels) {
    check_bf16_panels(w);
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + (row / 16) * 32 * w.cols;
    for (int64_t k = 0; k < w.cols; ++k) {
      uint16_t v;
      std::memcpy(&v, src + bf16_panel_offset(row % 16, k), 2);
      out[k] = bf16_to_f32(v);
    }
    return;
  }
  if (w.quant == Quant::None) return to_f32(w.dtype, w.data, row * w.cols, w.cols, out);
  check_quantized(w);
  if (w.panels) {
    const int64_t K = w.cols, NG = K / w.group, p = row / 16, j = row % 16;
    const bool q4 = w.quant == Quant::Q4;
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + p * 16 * (q4 ? K / 2 : K);
    const float* s = w.scales + p * 16 * NG;
    for (int64_t k = 0; k < K; ++k) out[k] = float(panel_value(src, q4, j, k)) * s[(k / w.group) * 16 + j];
    return;
  }
  dequantize_q(w.quant, w.data, w.scales, w.group, w.cols, row, out);
}

bool panels_preferred(const Weight& w) {
  if (w.panels || !w.data || w.rows <= 0) return false;
  if (w.quant == Quant::None) {
    // BF16: from 16 rows (a padded panel wastes the rest), for the tier's path (float32 or bf16
    // activations) when it multiplies panels itself.
    const Ops& o = ops();
    const bool bf16dot = bf16_activations() && o.linear_bf16dot;
    return bf16_panel_shape(w) && w.cols > 0 && w.rows >= 16 &&
           (bf16dot ? o.linear_bf16dot_panels : o.linear_bf16_panels) != nullptr;
  }
  const bool rows = (w.quant == Quant::Q8 && w.dtype == DType::I8) || (w.quant == Quant::Q4 && w.dtype == DType::U8);
  return rows && w.scales && w.cols % 64 == 0 && w.group % 8 == 0 && ops().q8_panels && int8_activations_active(w);
}

uint64_t panel_bytes(const Weight& w) {
  const uint64_t row_bytes = w.quant == Quant::None ? uint64_t(w.cols) * dtype_size(w.dtype)
                             : w.quant == Quant::Q4 ? uint64_t(w.cols / 2)
                                                    : uint64_t(w.cols);
  return uint64_t(panel_count(w)) * 16 * row_bytes;
}

uint64_t panel_scales(const Weight& w) {
  return w.group > 0 ? uint64_t(panel_count(w)) * 16 * uint64_t(w.cols / w.group) : 0;
}

Weight pack_panels(const Weight& w, uint8_t* data, float* scales) {
  if (w.quant == Quant::None) {
    if (w.panels) throw std::invalid_argument("pack_panels: the weight is in panel order already");
    check_bf16_panels(w);
    const int64_t K = w.cols, N = w.rows;
    parallel_for(
        panel_count(w),
        [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            uint8_t* dst = data + p * 32 * K;
            const int nr = int(std::min<int64_t>(16, N - 16 * p));
            if (nr < 16) std::memset(dst, 0, size_t(32 * K));  // padding rows: +0
            for (int j = 0; j < nr; ++j) {
              const uint8_t* src = static_cast<const uint8_t*>(w.data) + (16 * p + j) * 2 * K;
              for (int64_t k = 0; k < K; k += 2) std::memcpy(dst + bf16_panel_offset(j, k), src + 2 * k, 4);
            }
          }
        },
        1);
    Weight out = w;
    out.data = data;
    out.panels = true;
    return out;
  }
  check_quantized(w);
  const bool q4 = w.quant == Quant::Q4;
  if (w.panels || w.cols % 8 != 0 || (q4 && w.group % 8 != 0))
    throw std::invalid_argument("pack_panels: expects a Q8 / Q4 weight in rows, cols a multiple of 8 (Q4: group too)");
  const int64_t K = w.cols, NG = K / w.group, N = w.rows, row_bytes = q4 ? K / 2 : K;
  const Ops& o = ops();
  LinearArgs a{nullptr, 0, 0, w.data, w.dtype, N, K, nullptr, nullptr, 0};
  a.quant = w.quant;
  a.group = w.group;
  a.scales = w.scales;
  const bool simd = o.pack_panel && reinterpret_cast<uintptr_t>(data) % 64 == 0 && K % 64 == 0;
  parallel_for(
      panel_count(w),
      [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          uint8_t* dst = data + p * 16 * row_bytes;
          float* s = scales + p * 16 * NG;
          const int nr = int(std::min<int64_t>(16, N - 16 * p));
          if (simd) {
            o.pack_panel(a, 16 * p, nr, reinterpret_cast<int8_t*>(dst), s);
            continue;
          }
          std::fill(dst, dst + 16 * row_bytes, uint8_t(q4 ? 0x88 : 0x80));  // zero weights
          for (int j = 0; j < nr; ++j) {
            const int64_t n = 16 * p + j;
            if (q4) {
              const uint8_t* src = static_cast<const uint8_t*>(w.data) + n * row_bytes;
              for (int64_t k = 0; k < K; ++k) {
                const int v = q4_value(src, k) + 8;
                uint8_t& b = dst[64 * (k / 8) + 4 * j + k % 4];
                b = (k & 4) ? uint8_t((b & 0x0F) | (v << 4)) : uint8_t((b & 0xF0) | v);
              }
            } else {
              const int8_t* src = static_cast<const int8_t*>(w.data) + n * K;
              for (int64_t c = 0; c < K / 4; ++c) {  // one 4-byte quad at a time, sign bits flipped
                uint32_t v;
                std::memcpy(&v, src + 4 * c, 4);
                v ^= 0x80808080u;
                std::memcpy(dst + 64 * c + 4 * j, &v, 4);
              }
            }
          }
          for (int j = 0; j < 16; ++j)
            for (int64_t g = 0; g < NG; ++g) s[g * 16 + j] = j < nr ? w.scales[(16 * p + j) * NG + g] : 0.f;
        }
      },
      1);
  Weight out = w;
  out.data = data;
  out.dtype = DType::U8;
  out.scales = scales;
  out.panels = true;
  return out;
}

void linear(const float* x, int64_t M, int64_t ldx, const Weight& w, const float* bias, float* y, int64_t ldy) {
  const Ops& o = ops();
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
  const Ops& o = ops();
  std::vector<float> wf;
  const float* wp = static_cast<const float*>(w.data);
  if (w.dtype != DType::F32) {
    wf.resize(size_t(n));
    to_f32(w.dtype, w.data, 0, n, wf.data());
    wp = wf.data();
  }
  for (int64_t m = 0; m < M; ++m) o.rms_norm_row(x + m * n, wp, n, eps);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) { ops().silu_mul(gate, up, out, n); }

void softmax(float* x, int64_t n) { ops().softmax(x, n); }
float argmax_expsum(const float* x, int64_t n, int64_t* arg) { return ops().argmax_expsum(x, n, arg); }

}  // namespace llada2::kernels
