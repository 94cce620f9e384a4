// Kernels written once over a vector traits class V (lanes L, load/fma/hsum/exp...).
// Each tier file includes this inside an anonymous namespace, after its target pragma and
// its V, so every instantiation has internal linkage and the tier's instruction set.
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
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float out[4];
    V::hsum4(acc[i][0], NR > 1 ? acc[i][1 % NR] : V::zero(), NR > 2 ? acc[i][2 % NR] : V::zero(),
             NR > 3 ? acc[i][3 % NR] : V::zero(), out);
    float* yr = a.y + (m + i) * a.ldy + n;
    for (int j = 0; j < NR; ++j) yr[j] = out[j] + (a.bias ? a.bias[n + j] : 0.f);
  }
}

using TileFn = void (*)(const LinearArgs&, int64_t, int64_t, const char*);

// How many weight tiles ahead the tile loop fetches into L2.
#ifndef LLADA2_PREFETCH_TILES
#define LLADA2_PREFETCH_TILES 1
#endif
constexpr int64_t kPrefetchTiles = LLADA2_PREFETCH_TILES;

// The M input rows in as few blocks of at most MR rows as possible, of sizes that differ by at
// most one (17 rows, MR 6: 6 + 6 + 5, not 6 + 6 + 4 + 1): a block of few rows reuses each
// widened weight vector for few FMAs.
struct RowBlocks {
  explicit RowBlocks(int64_t M)
      : count((M + V::MR - 1) / V::MR), base(count ? M / count : 0), extra(count ? M % count : 0) {}
  int rows(int64_t b) const { return int(base + (b < extra ? 1 : 0)); }
  int64_t count, base, extra;
};

template <DType DT, bool P, int MR, int... J>
constexpr std::array<TileFn, sizeof...(J)> tile_row(std::integer_sequence<int, J...>) {
  return {&linear_tile<DT, MR, J + 1, P>...};
}

template <DType DT, bool P = false, int... I>
constexpr std::array<std::array<TileFn, V::NR>, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {tile_row<DT, P, I + 1>(std::make_integer_sequence<int, V::NR>())...};
}

static_assert(V::NR <= kMaxNR, "LinearArgs::wbuf holds kMaxNR weight rows");

// Quantized weights with many input rows: each tile of NR weight rows is widened once
// into a.wbuf (float32, exactly the values load_wq gives; packed [K / L][NR][L] so one k step
// reads one contiguous run) and then multiplied by every block of input rows, instead of
// being widened again for each block.
template <DType DT>
void linear_range_widened(const LinearArgs& a, int64_t n0, int64_t n1) {
  static constexpr auto table = tile_table<DT, true>(std::make_integer_sequence<int, V::MR>());
  const int64_t K = a.K;
  const int gs = __builtin_ctzll(uint64_t(a.group));
  const float* scales = a.scales;
  const char* w = static_cast<const char*>(a.w);
  const RowBlocks rb(a.M);
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
  static constexpr auto table = tile_table<DT>(std::make_integer_sequence<int, V::MR>());
  if constexpr (kQuant<DT>) {
    // Widening in registers costs ~5 (q8) or ~10 (q4) instructions per weight vector against
    // MR FMAs; past a few row blocks the buffered tile wins (measured on avx512, K = 2048).
    if (a.wbuf && a.M > (DT == DType::I8 ? 4 : 2) * V::MR) return linear_range_widened<DT>(a, n0, n1);
  }
  const RowBlocks rb(a.M);
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
    typename V::reg s = V::div(g, V::add(one, V::exp(V::sub(zero, g))));
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
    typename V::reg e = V::exp(V::sub(V::load(x + i), vmx));
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
  for (i = 0; i + V::L <= n; i += V::L) vs = V::add(vs, V::exp(V::sub(V::load(x + i), vmx)));
  float sum = V::reduce(vs);
  for (; i < n; ++i) sum += std::exp(x[i] - mx);
  *arg = best;
  return sum;
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
  return o;
}
