// Kernels written once over a tier's vector traits V. Each tier file includes this inside an
// anonymous namespace, after its target pragma and its V, so every instantiation has internal
// linkage and the tier's instruction set. V has:
//   reg (L float lanes), MR x NR (the linear tile), PMR (input rows per block of the BF16 panel
//   kernel); zero, set1, load, load_tail, store, store_tail; load_bf16 / load_f16 / load_i8 /
//   load_i4 (+ _tail for the 2-byte ones): L weights widened to float32; fma (a * b + c), fnma
//   (c - a * b), add, sub, mul, div, min, max (the second operand when either is NaN, as the
//   x86 instructions), round (to nearest even); gt / lt (a mask) and select(mask, yes, no);
//   pow2i (2^n of integral floats n in [-126, 127]); reduce, reduce_max, fold8 (the lanes added
//   into 8), eq_mask (a bit per lane); bits, load_bits, bf16_even, bf16_odd (L 4-byte units of a
//   BF16 panel line, their low and high halves as float32); interleave (panel_driver.h's
//   InterleaveFn).
//
// linear: y[m, n] = sum_k x[m, k] * W[n, k]. The weight matrix is [N, K] with K contiguous,
// so the micro-kernel keeps an MR x NR tile of vector accumulators (MR input rows times NR
// weight rows), loads NR weight vectors per step (widened from bf16/f16 in registers) and
// reuses each for all MR rows, and reduces the tile horizontally once at the end. The
// outer loop walks weight tiles and, inside, all input rows, so each weight row is read
// from memory once per call while x (at most a few hundred KB) stays in L2.
#pragma once

#ifndef LLADA2_SIMD_IMPL_TIER
#error "include simd_impl.h only from a kernel tier file"
#endif

#include "kernels/panel_driver.h"
#include "kernels/simd_math.h"

template <DType DT>
inline typename V::reg load_w(const void* base, int64_t off) {
  if constexpr (DT == DType::F32) {
    return V::load(static_cast<const float*>(base) + off);
  } else if constexpr (DT == DType::BF16) {
    return V::load_bf16(static_cast<const uint16_t*>(base) + off);
  } else {
    return V::load_f16(static_cast<const uint16_t*>(base) + off);
  }
}

template <DType DT>
inline typename V::reg load_w_tail(const void* base, int64_t off, int rem) {
  if constexpr (DT == DType::F32) {
    return V::load_tail(static_cast<const float*>(base) + off, rem);
  } else if constexpr (DT == DType::BF16) {
    return V::load_bf16_tail(static_cast<const uint16_t*>(base) + off, rem);
  } else {
    return V::load_f16_tail(static_cast<const uint16_t*>(base) + off, rem);
  }
}

// Quantized weights (dtype I8 = Q8, U8 = Q4): widened to float32 in registers and multiplied
// by their group's scale (one rounding, the same float the scalar twin computes). The SIMD
// path needs a power-of-two group that is a multiple of V::L (so a vector never straddles
// two groups and K has no tail); simd_linear leaves other groups to the scalar twin.
template <DType DT>
constexpr bool kQuant = DT == DType::I8 || DT == DType::U8;

// Bytes before element `off` of a weight matrix stored in DT.
template <DType DT>
constexpr int64_t w_bytes(int64_t off) {
  if constexpr (DT == DType::F32) {
    return off * 4;
  } else if constexpr (DT == DType::I8) {
    return off;
  } else if constexpr (DT == DType::U8) {
    return off / 2;
  } else {
    return off * 2;
  }
}

// Weight vector at element `off`; gs = log2(group) for quantized weights.
template <DType DT>
inline typename V::reg load_wq(const LinearArgs& a, int64_t off, int gs) {
  if constexpr (DT == DType::I8) {
    return V::mul(V::load_i8(static_cast<const int8_t*>(a.w) + off), V::set1(a.scales[off >> gs]));
  } else if constexpr (DT == DType::U8) {
    return V::mul(V::load_i4(static_cast<const uint8_t*>(a.w) + off / 2), V::set1(a.scales[off >> gs]));
  } else {
    return load_w<DT>(a.w, off);
  }
}

// One MR x NR tile: rows m .. m+MR of x against weight rows n .. n+NR. pf, when set, is
// the next tile's first weight row, fetched into L2 meanwhile (rows are dsize * K bytes).
// P (quantized only): the weights come widened from a.wbuf, packed as [K / L][V::NR][L].
template <DType DT, int MR, int NR, bool P = false>
void linear_tile(const LinearArgs& a, int64_t m, int64_t n, const char* pf) {
  using reg = typename V::reg;
  const int64_t K = a.K;
  const float* x = a.x + m * a.ldx;
  reg acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = V::zero();
  const int gs = kQuant<DT> ? __builtin_ctzll(uint64_t(a.group)) : 0;
  int64_t k = 0;
  for (; k + V::L <= K; k += V::L) {
    reg w[NR];
    if constexpr (P) {
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) w[j] = V::load(a.wbuf + k * V::NR + j * V::L);
    } else {
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) w[j] = load_wq<DT>(a, (n + j) * K + k, gs);
    }
    if (pf && (w_bytes<DT>(k) & 63) == 0) {  // once per cache line of each row
#pragma GCC unroll 8
      for (int j = 0; j < V::NR; ++j) _mm_prefetch(pf + w_bytes<DT>(j * K + k), _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      reg xv = V::load(x + i * a.ldx + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = V::fma(xv, w[j], acc[i][j]);
    }
  }
  if (!kQuant<DT> && k < K) {
    const int rem = int(K - k);
    reg w[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) w[j] = load_w_tail<DT>(a.w, (n + j) * K + k, rem);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      reg xv = V::load_tail(x + i * a.ldx + k, rem);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = V::fma(xv, w[j], acc[i][j]);
    }
  }
  store_tile<MR, NR>(a, m, n, acc, nullptr);
}

using TileFn = void (*)(const LinearArgs&, int64_t, int64_t, const char*);

// How many weight tiles ahead the tile loop fetches into L2.
#ifndef LLADA2_PREFETCH_TILES
#define LLADA2_PREFETCH_TILES 1
#endif
constexpr int64_t kPrefetchTiles = LLADA2_PREFETCH_TILES;

static_assert(V::NR <= kMaxNR, "LinearArgs::wbuf holds kMaxNR weight rows");

// Quantized weights with many input rows: each tile of NR weight rows is widened once
// into a.wbuf (float32, exactly the values load_wq gives; packed [K / L][NR][L] so one k step
// reads one contiguous run) and then multiplied by every block of input rows, instead of
// being widened again for each block.
template <DType DT>
void linear_range_widened(const LinearArgs& a, int64_t n0, int64_t n1) {
  static constexpr auto table =
      tile_grid<TileFn, V::MR, V::NR>([]<int MR, int NR>() -> TileFn { return &linear_tile<DT, MR, NR, true>; });
  const int64_t K = a.K;
  const int gs = __builtin_ctzll(uint64_t(a.group));
  const float* scales = a.scales;
  const char* w = static_cast<const char*>(a.w);
  const RowSplit<V::MR> rb(a.M);
  for (int64_t n = n0; n < n1; n += V::NR) {
    const int nr = int(std::min<int64_t>(V::NR, n1 - n));
    // The next tile's weights are fetched into L2 while this one is widened and multiplied.
    const char* next = n + 2 * V::NR <= n1 ? w + w_bytes<DT>((n + V::NR) * K) : nullptr;
    for (int j = 0; j < nr; ++j) {
      float* dst = a.wbuf + j * V::L;
      for (int64_t k = 0; k < K; k += V::L) {
        const int64_t off = (n + j) * K + k;
        if (next && (w_bytes<DT>(k) & 63) == 0) _mm_prefetch(next + w_bytes<DT>(j * K + k), _MM_HINT_T1);
        typename V::reg q;
        if constexpr (DT == DType::I8) {
          q = V::load_i8(reinterpret_cast<const int8_t*>(w) + off);
        } else {
          q = V::load_i4(reinterpret_cast<const uint8_t*>(w) + off / 2);
        }
        V::store(dst + k * V::NR, V::mul(q, V::set1(scales[off >> gs])));
      }
    }
    for (int64_t b = 0, m = 0; b < rb.count; m += rb.rows(b), ++b)
      table[size_t(rb.rows(b) - 1)][size_t(nr - 1)](a, m, n, nullptr);
  }
}

template <DType DT>
void linear_range_dt(const LinearArgs& a, int64_t n0, int64_t n1) {
  static constexpr auto table =
      tile_grid<TileFn, V::MR, V::NR>([]<int MR, int NR>() -> TileFn { return &linear_tile<DT, MR, NR>; });
  if constexpr (kQuant<DT>) {
    // Widening in registers costs ~5 (q8) or ~10 (q4) instructions per weight vector against
    // MR FMAs; past a few row blocks the buffered tile wins (measured on avx512, K = 2048).
    if (a.wbuf && a.M > (DT == DType::I8 ? 4 : 2) * V::MR) return linear_range_widened<DT>(a, n0, n1);
  }
  const RowSplit<V::MR> rb(a.M);
  for (int64_t n = n0; n < n1; n += V::NR) {
    const int nr = int(std::min<int64_t>(V::NR, n1 - n));
    const char* next = n + (kPrefetchTiles + 1) * V::NR <= n1
                           ? static_cast<const char*>(a.w) + w_bytes<DT>((n + kPrefetchTiles * V::NR) * a.K)
                           : nullptr;
    for (int64_t b = 0, m = 0; b < rb.count; m += rb.rows(b), ++b)
      table[size_t(rb.rows(b) - 1)][size_t(nr - 1)](a, m, n, m == 0 ? next : nullptr);
  }
}

void simd_linear(const LinearArgs& a, int64_t n0, int64_t n1) {
  switch (a.dtype) {
    case DType::F32: return linear_range_dt<DType::F32>(a, n0, n1);
    case DType::BF16: return linear_range_dt<DType::BF16>(a, n0, n1);
    case DType::F16: return linear_range_dt<DType::F16>(a, n0, n1);
    case DType::I8:
    case DType::U8:
      if (a.quant != Quant::None && a.group > 0 && (a.group & (a.group - 1)) == 0 && a.group % V::L == 0)
        return a.dtype == DType::I8 ? linear_range_dt<DType::I8>(a, n0, n1) : linear_range_dt<DType::U8>(a, n0, n1);
      return scalar_ops().linear(a, n0, n1);
    default: return scalar_ops().linear(a, n0, n1);
  }
}

void simd_to_f32(DType dtype, const void* src, int64_t n, float* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == DType::BF16) {
    for (; i + V::L <= n; i += V::L) V::store(dst + i, V::load_bf16(s + i));
    for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
  } else if (dtype == DType::F16) {
    for (; i + V::L <= n; i += V::L) V::store(dst + i, V::load_f16(s + i));
    for (; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  } else {
    scalar_ops().to_f32(dtype, src, n, dst);
  }
}

float simd_dot(const float* a, const float* b, int64_t n) {
  typename V::reg s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::L <= n; i += 2 * V::L) {
    s0 = V::fma(V::load(a + i), V::load(b + i), s0);
    s1 = V::fma(V::load(a + i + V::L), V::load(b + i + V::L), s1);
  }
  if (i + V::L <= n) {
    s0 = V::fma(V::load(a + i), V::load(b + i), s0);
    i += V::L;
  }
  if (i < n) s1 = V::fma(V::load_tail(a + i, int(n - i)), V::load_tail(b + i, int(n - i)), s1);
  return V::reduce(V::add(s0, s1));
}

void simd_axpy(float alpha, const float* x, float* y, int64_t n) {
  const typename V::reg va = V::set1(alpha);
  int64_t i = 0;
  for (; i + V::L <= n; i += V::L) V::store(y + i, V::fma(va, V::load(x + i), V::load(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

void simd_rms_norm_row(float* x, const float* w, int64_t n, float eps) {
  const float ss = simd_dot(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  const typename V::reg vi = V::set1(inv);
  int64_t i = 0;
  for (; i + V::L <= n; i += V::L) V::store(x + i, V::mul(V::load(w + i), V::mul(V::load(x + i), vi)));
  for (; i < n; ++i) x[i] = w[i] * (x[i] * inv);
}

void simd_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  const typename V::reg one = V::set1(1.0f), zero = V::zero();
  int64_t i = 0;
  for (; i + V::L <= n; i += V::L) {
    typename V::reg g = V::load(gate + i);
    typename V::reg s = V::div(g, V::add(one, vexp(V::sub(zero, g))));
    V::store(out + i, V::mul(s, V::load(up + i)));
  }
  for (; i < n; ++i) {
    float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void simd_softmax(float* x, int64_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  typename V::reg vm = V::set1(kNegInf);
  int64_t i = 0;
  for (; i + V::L <= n; i += V::L) vm = V::max(V::load(x + i), vm);
  float mx = V::reduce_max(vm);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == kNegInf) {
    std::fill(x, x + n, 0.f);
    return;
  }
  const typename V::reg vmx = V::set1(mx);
  typename V::reg vs = V::zero();
  for (i = 0; i + V::L <= n; i += V::L) {
    typename V::reg e = vexp(V::sub(V::load(x + i), vmx));
    V::store(x + i, e);
    vs = V::add(vs, e);
  }
  float sum = V::reduce(vs);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const typename V::reg vsum = V::set1(sum);
  for (i = 0; i + V::L <= n; i += V::L) V::store(x + i, V::div(V::load(x + i), vsum));
  for (; i < n; ++i) x[i] /= sum;
}

float simd_argmax_expsum(const float* x, int64_t n, int64_t* arg) {
  if (std::isnan(x[0])) return scalar_ops().argmax_expsum(x, n, arg);  // the scalar twin keeps index 0
  typename V::reg vm = V::set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + V::L <= n; i += V::L) vm = V::max(V::load(x + i), vm);
  float mx = V::reduce_max(vm);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  // NaN or infinite logits: the scalar twin's exact semantics.
  if (!std::isfinite(mx)) return scalar_ops().argmax_expsum(x, n, arg);
  const typename V::reg vmx = V::set1(mx);
  int64_t best = -1;
  for (i = 0; i + V::L <= n && best < 0; i += V::L)
    if (unsigned m = V::eq_mask(V::load(x + i), vmx)) best = i + __builtin_ctz(m);
  for (; i < n && best < 0; ++i)
    if (x[i] == mx) best = i;
  typename V::reg vs = V::zero();
  for (i = 0; i + V::L <= n; i += V::L) vs = V::add(vs, vexp(V::sub(V::load(x + i), vmx)));
  float sum = V::reduce(vs);
  for (; i < n; ++i) sum += std::exp(x[i] - mx);
  *arg = best;
  return sum;
}

// ---- BF16 weights in panel order (kernels.h), float32 activations ----
//
// Lanes = weight rows of a panel: one 64-byte line holds columns 2t and 2t+1 of all 16 rows (bf16
// pairs), 16 / L vectors, each widened by a shift (column 2t, the low half) and a mask (2t+1, the
// high half); each widened vector is multiplied by the broadcast x[i][k] of every input row of the
// block (an FMA with a memory broadcast), so widening costs 1 / PMR of an instruction per FMA and
// no horizontal sums are needed. Every output lane sums its products in order of k, whatever the
// tier and the number of input rows: the results do not depend on either.

// The kernel (PanelRowsFn; the units are floats, one per column k).
template <int MR>
struct Bf16PanelRows {
  static constexpr int H = 16 / V::L;  // vectors per line
  static void run(const LinearArgs& a, const uint32_t* xu, int64_t m, int64_t n, int nr, const char* wp,
                  const char* pf) {
    using reg = typename V::reg;
    const float_alias* xi = as_floats(xu);
    reg acc[H][MR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) acc[h][i] = V::zero();
    const int64_t T = a.K / 2;
    for (int64_t t = 0; t < T; ++t, xi += 2 * MR) {
      typename V::bits v[H];
      reg w[H];
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) v[h] = V::load_bits(wp + 64 * t + 4 * V::L * h);
      if (pf) _mm_prefetch(pf + 64 * t, _MM_HINT_T1);
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) w[h] = V::bf16_even(v[h]);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        const reg xv = V::set1(xi[i]);
#pragma GCC unroll 2
        for (int h = 0; h < H; ++h) acc[h][i] = V::fma(w[h], xv, acc[h][i]);
      }
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) w[h] = V::bf16_odd(v[h]);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        const reg xv = V::set1(xi[MR + i]);
#pragma GCC unroll 2
        for (int h = 0; h < H; ++h) acc[h][i] = V::fma(w[h], xv, acc[h][i]);
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) store_panel_rows<MR>(a, m, n + h * V::L, nr - h * V::L, acc[h]);
  }
};

// Ops::linear_bf16_panels: outputs [n0, n1) (n0 a multiple of 16) of BF16 panels, K a multiple of 32.
void linear_bf16_panels(const LinearArgs& a, int64_t n0, int64_t n1) {
  run_panels<Bf16PanelRows, V::PMR, V::interleave>(a, n0, n1, reinterpret_cast<const uint32_t*>(a.x), a.ldx, a.K);
}

// Ops::exp_shift_sum: x = exp(x - shift) in place, the sum per lane then across lanes.
float simd_exp_shift_sum(float* x, int64_t n, float shift) {
  const typename V::reg vs = V::set1(shift);
  typename V::reg acc = V::zero();
  int64_t i = 0;
  for (; i + V::L <= n; i += V::L) {
    const typename V::reg e = vexp(V::sub(V::load(x + i), vs));
    V::store(x + i, e);
    acc = V::add(acc, e);
  }
  float sum = V::reduce(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

// Ops::matmul_acc, one tile: rows m .. m+MR of y, columns d .. d + NR * L, accumulated in registers
// over the T value rows (each loaded once per tile and reused by the MR rows).
template <DType DT, int MR, int NR>
void matmul_acc_tile(const float* p, int64_t ldp, const void* v, int64_t T, int64_t ldv, int64_t d, float* y,
                     int64_t ldy) {
  using reg = typename V::reg;
  reg acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = V::load(y + i * ldy + d + j * V::L);
  for (int64_t t = 0; t < T; ++t) {
    reg w[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) w[j] = load_w<DT>(v, t * ldv + d + j * V::L);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const reg pb = V::set1(p[i * ldp + t]);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = V::fma(pb, w[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) V::store(y + i * ldy + d + j * V::L, acc[i][j]);
}

using MatmulAccFn = void (*)(const float*, int64_t, const void*, int64_t, int64_t, int64_t, float*, int64_t);

template <DType DT>
void matmul_acc_dt(const float* p, int64_t M, int64_t ldp, const void* v, int64_t T, int64_t D, int64_t ldv, float* y,
                   int64_t ldy) {
  static constexpr auto table = tile_grid<MatmulAccFn, V::MR, V::NR>(
      []<int MR, int NR>() -> MatmulAccFn { return &matmul_acc_tile<DT, MR, NR>; });
  const int64_t DV = D / V::L * V::L;  // whole vectors; the rest below, one product at a time
  for (int64_t d = 0; d < DV; d += V::NR * V::L) {
    const int nr = int(std::min<int64_t>(V::NR, (DV - d) / V::L));
    for (int64_t m = 0; m < M; m += V::MR) {
      const int mr = int(std::min<int64_t>(V::MR, M - m));
      table[size_t(mr - 1)][size_t(nr - 1)](p + m * ldp, ldp, v, T, ldv, d, y + m * ldy, ldy);
    }
  }
  if (DV == D) return;
  float w[V::L];
  for (int64_t t = 0; t < T; ++t) {
    simd_to_f32(DT, static_cast<const char*>(v) + w_bytes<DT>(t * ldv + DV), D - DV, w);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t d = DV; d < D; ++d) y[m * ldy + d] = std::fma(p[m * ldp + t], w[d - DV], y[m * ldy + d]);
  }
}

void simd_matmul_acc(const float* p, int64_t M, int64_t ldp, const void* v, DType dtype, int64_t T, int64_t D,
                     int64_t ldv, float* y, int64_t ldy) {
  switch (dtype) {
    case DType::F32: return matmul_acc_dt<DType::F32>(p, M, ldp, v, T, D, ldv, y, ldy);
    case DType::BF16: return matmul_acc_dt<DType::BF16>(p, M, ldp, v, T, D, ldv, y, ldy);
    default: return matmul_acc_dt<DType::F16>(p, M, ldp, v, T, D, ldv, y, ldy);
  }
}

constexpr Ops simd_ops() {
  Ops o{};
  o.linear = &simd_linear;
  o.linear_bf16dot = nullptr;
  o.linear_q8q8 = nullptr;  // int8 activations only where the tier has integer dot products
  o.quantize_act = nullptr;
  o.to_f32 = &simd_to_f32;
  o.to_bf16 = nullptr;
  o.dot = &simd_dot;
  o.axpy = &simd_axpy;
  o.rms_norm_row = &simd_rms_norm_row;
  o.silu_mul = &simd_silu_mul;
  o.softmax = &simd_softmax;
  o.argmax_expsum = &simd_argmax_expsum;
  o.linear_bf16_panels = &linear_bf16_panels;
  o.exp_shift_sum = &simd_exp_shift_sum;
  o.matmul_acc = &simd_matmul_acc;
  return o;
}
