// Pieces written once over a tier's vector traits V, for every SIMD tier file: the vector exp,
// horizontal sums into a tile of outputs, the store of a panel kernel's rows, and tables of tile
// kernels. Include it inside the tier file's target region and anonymous namespace, after its V
// (whose members are listed in simd_impl.h).
#pragma once

#ifndef LLADA2_SIMD_IMPL_TIER
#error "include simd_math.h only from a kernel tier file"
#endif

// expf to ~1 ulp (Cephes): 2^round(x/ln2) times a degree-6 polynomial of the remainder.
// Below ln(FLT_MIN) it returns 0 (std::exp would give a subnormal), above ln(FLT_MAX) +inf;
// NaN stays NaN. 2^128 (x near ln(FLT_MAX)) is applied as 2^127 * 2.
inline typename V::reg vexp(typename V::reg x) {
  using reg = typename V::reg;
  const reg hi = V::set1(88.72283935546875f), lo = V::set1(-87.3365478515625f);
  const auto over = V::gt(x, hi);
  const auto under = V::lt(x, lo);
  reg t = V::max(lo, V::min(hi, x));  // NaN passes through (second operand)
  reg fx = V::round(V::mul(t, V::set1(1.44269504088896341f)));
  t = V::fnma(fx, V::set1(0.693359375f), t);
  t = V::fnma(fx, V::set1(-2.12194440e-4f), t);
  reg p = V::set1(1.9875691500e-4f);
  p = V::fma(p, t, V::set1(1.3981999507e-3f));
  p = V::fma(p, t, V::set1(8.3334519073e-3f));
  p = V::fma(p, t, V::set1(4.1665795894e-2f));
  p = V::fma(p, t, V::set1(1.6666665459e-1f));
  p = V::fma(p, t, V::set1(5.0000001201e-1f));
  p = V::fma(p, V::mul(t, t), V::add(t, V::set1(1.0f)));
  const auto top = V::gt(fx, V::set1(127.5f));
  reg r = V::mul(p, V::pow2i(V::min(V::set1(127.f), fx)));
  r = V::select(top, V::mul(r, V::set1(2.f)), r);
  r = V::select(under, V::zero(), r);
  return V::select(over, V::set1(std::numeric_limits<float>::infinity()), r);
}

// out[0..4) = the horizontal sums of a, b, c, d.
inline void hsum4(typename V::reg a, typename V::reg b, typename V::reg c, typename V::reg d, float* out) {
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(V::fold8(a), V::fold8(b)), _mm256_hadd_ps(V::fold8(c), V::fold8(d)));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}

// y[m + i, n + j] = the lanes of acc[i][j] summed (+ add[i][j] when given) + bias[n + j]. Forced
// inline: as a call, the tile's accumulators would be spilled to the stack to pass them.
template <int MR, int NR>
[[gnu::always_inline]] inline void store_tile(const LinearArgs& a, int64_t m, int64_t n,
                                              const typename V::reg (&acc)[MR][NR], const float (*add)[NR]) {
  const typename V::reg z = V::zero();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float out[4];
    hsum4(acc[i][0], NR > 1 ? acc[i][1 % NR] : z, NR > 2 ? acc[i][2 % NR] : z, NR > 3 ? acc[i][3 % NR] : z, out);
    float* yr = a.y + (m + i) * a.ldy + n;
    for (int j = 0; j < NR; ++j) yr[j] = (add ? out[j] + add[i][j] : out[j]) + (a.bias ? a.bias[n + j] : 0.f);
  }
}

// y[m + i, n .. n+nr) = lanes 0 .. nr-1 of acc[i] (+ bias[n ..]), nr clipped to the lanes: the
// rows of a panel kernel (lanes = weight rows).
template <int MR>
[[gnu::always_inline]] inline void store_panel_rows(const LinearArgs& a, int64_t m, int64_t n, int nr,
                                                    const typename V::reg (&acc)[MR]) {
  if (nr <= 0) return;
  const int cnt = nr < V::L ? nr : V::L;
  const typename V::reg b = a.bias ? V::load_tail(a.bias + n, cnt) : V::zero();
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) V::store_tail(a.y + (m + i) * a.ldy + n, cnt, V::add(acc[i], b));
}

// table[mr - 1][nr - 1] = pick.operator()<mr, nr>(): a tile template's instantiations for
// 1..MRN input rows and 1..NRN weight rows.
template <typename Fn, int MRN, int NRN, typename Pick>
constexpr std::array<std::array<Fn, NRN>, MRN> tile_grid(Pick pick) {
  std::array<std::array<Fn, NRN>, MRN> t{};
  [&]<int... X>(std::integer_sequence<int, X...>) {
    ((t[X / NRN][X % NRN] = pick.template operator()<X / NRN + 1, X % NRN + 1>()), ...);
  }
  (std::make_integer_sequence<int, MRN * NRN>());
  return t;
}
