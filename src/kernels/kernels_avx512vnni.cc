// The avx512vnni tier: the avx512 kernels plus, for Q8 / Q4 weights with int8 activations
// (kernels.h), vpdpbusd matmuls (few-row tiles from the rows, panels of 16 weight rows for many
// input rows or panel-ordered weights) and the activation quantizer. Only reached after
// dispatch.cc has checked the CPU (AVX512_VNNI); the avx512bf16 tier builds on it.
#include "kernels/target.h"

#ifdef LLADA2_X86

// GCC 12 flags the deliberately undefined lanes inside its own AVX-512 intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "kernels/ops.h"

LLADA2_TARGET_BEGIN("avx512vnni,avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace llada2::kernels {
namespace {

#define LLADA2_SIMD_IMPL_TIER
#include "kernels/avx512_common.h"

// ---- Packed panels of 16 weight rows (many input rows) ----
//
// With lanes = 16 weight rows, one vpdpbusd multiplies a 4-byte quad of an input row (broadcast)
// by the same quad of 16 weight rows: no horizontal sums, and each weight vector serves every
// input row of the block. The weights come as [N, K] rows, so each panel is transposed once
// (16 x 16 dwords per 64 bytes of each row) into a per-thread buffer. (The same scheme for bf16
// weights with vdpbf16ps lost to the tiles above: its product alone ran at 71% of peak, but
// packing twice the bytes per multiply-add added ~45% on top; the tiles reach 68% unpacked.)

constexpr int kPanelMR = 12;
// From this many input rows on, packing q8 panels pays (measured at K = 2048: 8 rows 104 -> 113
// GFLOP/s per core, 17 rows 140 -> 234, 32 rows 155 -> 284); with fewer it does not.
constexpr int64_t kPanelRows = 8;

using PanelBlocks = RowSplit<kPanelMR>;

// ---- Q8 weights x int8 activations ----
//
// vpdpbusd multiplies unsigned by signed bytes, so the weights enter as w + 128 (the sign bit
// flipped) against the signed activations: per group, sum (w + 128) x = sum w x + 128 sum x,
// and the 128 sum x part is taken off once per output (corr below). Each 64-byte step gives 16
// int32 lanes of 4 exact products; they are converted and multiplied by the step's group scale
// product S = s_w[n, g] * s_x[m, g] into float accumulators, summed across lanes at the end.

// S for every (row i, weight row j, group g) of a tile, [MR][NR][NG], and corr[i][j] =
// -128 * sum_g S[i][j][g] * sum_x[i][g].
template <int MR, int NR>
void q8_scales(const LinearArgs& a, int64_t m, int64_t n, int64_t NG, float* S, float (&corr)[MR][NR]) {
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const float* sx = a.xqs + (m + i) * NG;
    const int32_t* sumx = a.xqsum + (m + i) * NG;
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const float* sw = a.scales + (n + j) * NG;
      float* out = S + (i * NR + j) * NG;
      __m512 c = _mm512_setzero_ps();
      for (int64_t g = 0; g < NG; g += 16) {
        const __mmask16 mk = NG - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (NG - g)) - 1u);
        const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, sw + g), _mm512_maskz_loadu_ps(mk, sx + g));
        _mm512_mask_storeu_ps(out + g, mk, p);
        c = _mm512_fmadd_ps(p, _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mk, sumx + g)), c);
      }
      corr[i][j] = -128.f * _mm512_reduce_add_ps(c);
    }
  }
}

// Rows m .. m+MR of a.xq against weight rows n .. n+NR; S from q8_scales. pf, when set, is the
// next tile's weights, fetched into L2 meanwhile.
template <int MR, int NR>
void q8_tile(const LinearArgs& a, int64_t m, int64_t n, const int8_t* pf, float* S) {
  const int64_t K = a.K, NG = K / a.group;
  const int gs = __builtin_ctzll(uint64_t(a.group));
  const int8_t* x = a.xq + m * a.ldxl;
  const int8_t* w = static_cast<const int8_t*>(a.w) + n * K;
  float corr[MR][NR];
  q8_scales<MR, NR>(a, m, n, NG, S, corr);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 64) {
    const int64_t g = k >> gs;
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_xor_si512(_mm512_loadu_si512(w + j * K + k), flip);
    if (pf) {
#pragma GCC unroll 8
      for (int j = 0; j < kNR; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + j * K + k), _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_loadu_si512(x + i * a.ldxl + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[j], xv);
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_set1_ps(S[(i * NR + j) * NG + g]), acc[i][j]);
      }
    }
  }
  store_tile<MR, NR>(a, m, n, acc, corr);
}

using Q8TileFn = void (*)(const LinearArgs&, int64_t, int64_t, const int8_t*, float*);

// ---- Q8 x int8 over packed panels (many input rows) ----
//
// vpdpbusd keeps summing a group in int32 per input row: one conversion and one FMA per group and
// input row instead of one per 64 bytes and output.

// Weight rows n .. n+nr (nr <= 16) of a Q8 or Q4 matrix into wb: quad q of the panel at wb + 64 q,
// lane j = row n + j, each weight w as the unsigned byte w + 128; missing rows are weight 0 (byte
// 0x80). Their scales into sb [NG][16].
void q8_pack_panel(const LinearArgs& a, int64_t n, int nr, int8_t* wb, float* sb) {
  const int64_t K = a.K, NG = K / a.group;
  const bool q4 = a.quant == Quant::Q4;
  const int64_t row_bytes = q_row_bytes(a);
  const int8_t* w = static_cast<const int8_t*>(a.w) + n * row_bytes;
  const __m512i flip = _mm512_set1_epi8(char(0x80)), eight = _mm512_set1_epi8(8), d120 = _mm512_set1_epi8(120);
  const __m512i lo4 = _mm512_set1_epi16(0x000F), hi4 = _mm512_set1_epi16(0x0F00);
  for (int64_t c = 0; c < K; c += 64) {
    __m512i in[16], out[16];
    for (int j = 0; j < 16; ++j) {
      if (j >= nr) {
        in[j] = _mm512_set1_epi8(char(0x80));  // weight 0
      } else if (q4) {
        // 32 bytes = 64 nibbles, element 2i in the low nibble of byte i: byte i widened to a word,
        // the low nibble kept in its low byte and the high one moved to its high byte gives the
        // elements in order; the 4-bit value v = (nib ^ 8) - 8 enters as v + 128 = (nib ^ 8) + 120.
        const __m512i wd =
            _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * row_bytes + c / 2)));
        const __m512i nib = _mm512_or_si512(_mm512_and_si512(wd, lo4), _mm512_and_si512(_mm512_slli_epi16(wd, 4), hi4));
        in[j] = _mm512_add_epi8(_mm512_xor_si512(nib, eight), d120);
      } else {
        in[j] = _mm512_xor_si512(_mm512_loadu_si512(w + j * row_bytes + c), flip);  // w + 128
      }
    }
    transpose16(in, out);
    for (int q = 0; q < 16; ++q) _mm512_store_si512(wb + (c / 4 + q) * 64, out[q]);
  }
  for (int64_t g = 0; g < NG; ++g)
    for (int j = 0; j < 16; ++j) sb[g * 16 + j] = j < nr ? a.scales[(n + j) * NG + g] : 0.f;
}

// Ops::pack_panel: a Q8 panel as q8_pack_panel writes it; a Q4 panel packed the same way into
// bytes (v + 128), then quads 2t and 2t+1 folded into the nibbles of one 64-byte line (kernels.h).
void pack_panel(const LinearArgs& a, int64_t n, int nr, int8_t* wb, float* sb) {
  if (a.quant != Quant::Q4) return q8_pack_panel(a, n, nr, wb, sb);
  thread_local PanelBuffer tmp;
  tmp.reserve(size_t(16 * a.K), 0);
  q8_pack_panel(a, n, nr, reinterpret_cast<int8_t*>(tmp.w), sb);
  const __m512i d120 = _mm512_set1_epi8(120), lo4 = _mm512_set1_epi8(0x0F);
  for (int64_t t = 0; t < a.K / 8; ++t) {
    const __m512i q0 = _mm512_sub_epi8(_mm512_load_si512(tmp.w + 128 * t), d120);  // v + 8 in 0 .. 15
    const __m512i q1 = _mm512_sub_epi8(_mm512_load_si512(tmp.w + 128 * t + 64), d120);
    const __m512i hi = _mm512_slli_epi16(_mm512_and_si512(q1, lo4), 4);  // no carry across bytes: q1 < 16
    _mm512_store_si512(wb + 64 * t, _mm512_or_si512(_mm512_and_si512(q0, lo4), hi));
  }
}

// The input rows of one block, interleaved for q8_panel_rows: quad q of row i at xq[q * MR + i]
// (one base register and constant offsets for the MR broadcasts of a step), and per group g the
// correction -zero * sum at corr[g * MR + i] (zero: 128, or 8 for Q4 panels) and the scale at scale[g * MR + i].
struct Q8Block {
  const int32_t* xq;
  const int32_t* corr;
  const float* scale;
};

// acc += w (unsigned bytes) . broadcast(*x) (signed bytes), as vpdpbusd with the quad broadcast
// from memory. Written as asm: GCC 12 keeps the accumulator of the intrinsic in a second register
// and copies it around every vpdpbusd of the loop (two moves per product, measured ~25% slower).
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int32_t* x) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*x));
  return acc;
}

// Rows of one block (MR of them) against a packed panel (weight rows n .. n+nr); m is the block's
// first row. pf, when set, is the next panel's first weight row: its 16 rows are fetched into L2
// meanwhile, one cache line per quad (a panel has as many quads as cache lines). With a.panels the
// next panel follows this one in memory: its quad q is the line at pf + 64 q.
template <int MR>
void q8_panel_rows(const LinearArgs& a, const Q8Block& blk, int64_t m, int64_t n, int nr, const int8_t* wb,
                   const float* sb, const int8_t* pf) {
  const int64_t K = a.K, QG = a.group / 4, NG = K / a.group;
  const bool q4 = a.quant == Quant::Q4 && !a.panels;  // Q4 in rows (packed per product)
  const int64_t row_bytes = q_row_bytes(a);
  // In panel order the next panel's scales follow this one's: one line of them per group, fetched
  // beside its weights. Left to the hardware, their loads stalled the Q4 products ~20% of the time
  // (bench_kernels expert_stream, cold weights: q4 7-9% and q8 1-3% faster with the fetch).
  const float* pfs = pf && a.panels ? sb + 16 * NG : nullptr;
  auto fetch_scales = [&](int64_t g) {
    if (pfs) _mm_prefetch(reinterpret_cast<const char*>(pfs + g * 16), _MM_HINT_T1);
  };
  __m512 acc[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  const int32_t* xq = blk.xq;
  const __m512i* wv = reinterpret_cast<const __m512i*>(wb);
  // A group starts from the rows' corrections and ends scaled by s_w (the panel's 16) x s_x (each
  // row's) into the float accumulators.
  auto start_group = [&](__m512i(&t)[MR], int64_t g) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) t[i] = _mm512_set1_epi32(blk.corr[g * MR + i]);
  };
  auto end_group = [&](const __m512i(&t)[MR], int64_t g) {
    const __m512 sv = _mm512_loadu_ps(sb + g * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
      acc[i] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(t[i]), _mm512_mul_ps(sv, _mm512_set1_ps(blk.scale[g * MR + i])), acc[i]);
  };
  if (a.panels && a.quant == Quant::Q4) {
    // Two quads per 64-byte line, as nibbles u = v + 8 (0 .. 15), multiplied as they lie: the low
    // nibbles masked (u), the high ones masked in place (16 u) into a second accumulator, which
    // is exact and shifted back once per group; the corrections here are -8 sum x. Two masks per
    // line, and two independent vpdpbusd chains per row.
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi4 = _mm512_set1_epi8(char(0xF0));
    for (int64_t g = 0; g < NG; ++g) {
      __m512i t[MR], h[MR];
      start_group(t, g);
      fetch_scales(g);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) h[i] = _mm512_setzero_si512();
      for (int64_t qq = 0; qq < QG; qq += 2, xq += 2 * MR, ++wv) {
        const __m512i v = _mm512_loadu_si512(wv);
        if (pf) _mm_prefetch(reinterpret_cast<const char*>(pf + ((g * QG + qq) >> 1) * 64), _MM_HINT_T1);
        const __m512i w0 = _mm512_and_si512(v, lo4), w1 = _mm512_and_si512(v, hi4);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) t[i] = dpbusd_bcast(t[i], w0, xq + i);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) h[i] = dpbusd_bcast(h[i], w1, xq + MR + i);
      }
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) t[i] = _mm512_add_epi32(t[i], _mm512_srai_epi32(h[i], 4));
      end_group(t, g);
    }
  } else {
    for (int64_t g = 0; g < NG; ++g) {
      __m512i t[MR];
      start_group(t, g);
      fetch_scales(g);
      for (int64_t qq = 0; qq < QG; ++qq, xq += MR, ++wv) {
        const __m512i w = _mm512_loadu_si512(wv);
        if (pf) {  // a panel has K / 4 quads and 16 x row_bytes / 64 cache lines: q8 one per quad, q4 one per two
          const int64_t q = g * QG + qq;
          if (a.panels) {
            _mm_prefetch(reinterpret_cast<const char*>(pf + q * 64), _MM_HINT_T1);
          } else if (!q4 || (q & 1) == 0) {
            const int64_t l = q4 ? q >> 1 : q;
            _mm_prefetch(reinterpret_cast<const char*>(pf + (l & 15) * row_bytes + (l >> 4) * 64), _MM_HINT_T1);
          }
        }
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) t[i] = dpbusd_bcast(t[i], w, xq + i);
      }
      end_group(t, g);
    }
  }
  store_panel_rows<MR>(a, m, n, nr, acc);
}

using Q8PanelFn = void (*)(const LinearArgs&, const Q8Block&, int64_t, int64_t, int, const int8_t*, const float*,
                           const int8_t*);

template <int... I>
constexpr std::array<Q8PanelFn, sizeof...(I)> q8_panel_table(std::integer_sequence<int, I...>) {
  return {&q8_panel_rows<I + 1>...};
}

void linear_q8q8_panels(const LinearArgs& a, int64_t n0, int64_t n1) {
  static constexpr auto table = q8_panel_table(std::make_integer_sequence<int, kPanelMR>());
  thread_local PanelBuffer buf;
  if (!a.panels) buf.reserve(size_t(16 * a.K), size_t(16 * (a.K / a.group)));
  const PanelBlocks pb(a.M);
  // The blocks' rows interleaved once per call on each thread (Q8Block): M x K bytes, small
  // against the weights the thread multiplies them with.
  const int64_t K = a.K, NG = K / a.group;
  // The weights' zero point in the bytes vpdpbusd reads: w + 128, or the nibble v + 8 of Q4 panels.
  const int32_t zero = a.panels && a.quant == Quant::Q4 ? 8 : 128;
  thread_local std::vector<int32_t> xi, ci;
  thread_local std::vector<float> si;
  xi.resize(size_t(a.M * (K / 4)));
  ci.resize(size_t(a.M * NG));
  si.resize(size_t(a.M * NG));
  thread_local std::vector<Q8Block> blocks;
  blocks.resize(size_t(pb.count));
  for (int64_t b = 0, m = 0; b < pb.count; m += pb.rows(b), ++b) {
    const int mr = pb.rows(b);
    int32_t* bx = xi.data() + m * (K / 4);
    int32_t* bc = ci.data() + m * NG;
    float* bs = si.data() + m * NG;
    for (int i = 0; i < mr; ++i) {
      const int8_t* row = a.xq + (m + i) * a.ldxl;
      for (int64_t q = 0; q < K / 4; ++q) std::memcpy(bx + q * mr + i, row + 4 * q, 4);
      for (int64_t g = 0; g < NG; ++g) {
        bc[g * mr + i] = -zero * a.xqsum[(m + i) * NG + g];
        bs[g * mr + i] = a.xqs[(m + i) * NG + g];
      }
    }
    blocks[size_t(b)] = {bx, bc, bs};
  }
  const int64_t row_bytes = q_row_bytes(a);
  for (int64_t n = n0; n < n1; n += 16) {
    const int nr = int(std::min<int64_t>(16, n1 - n));
    const int8_t* wb;
    const float* sb;
    if (a.panels) {  // already in panel order (n is a multiple of 16)
      wb = static_cast<const int8_t*>(a.w) + n * q_row_bytes(a);
      sb = a.scales + n * NG;
    } else {
      q8_pack_panel(a, n, nr, reinterpret_cast<int8_t*>(buf.w), buf.s);
      wb = reinterpret_cast<const int8_t*>(buf.w);
      sb = buf.s;
    }
    const int8_t* next = n + 32 <= n1 ? static_cast<const int8_t*>(a.w) + (n + 16) * row_bytes : nullptr;
    for (int64_t b = 0, m = 0; b < pb.count; m += pb.rows(b), ++b)
      table[size_t(pb.rows(b) - 1)](a, blocks[size_t(b)], m, n, nr, wb, sb, b == 0 ? next : nullptr);
  }
}

// Q8: a.group a power of two from 64 to 4096; Q4: from 32, K a multiple of 64 (kernels.cc checks).
// Q8 in panel order and Q4 always take the panels (Q4 nibbles are unpacked while packing).
void linear_q8q8(const LinearArgs& a, int64_t n0, int64_t n1) {
  if (a.panels || a.M >= kPanelRows || a.dtype == DType::U8) return linear_q8q8_panels(a, n0, n1);
  static constexpr auto table =
      tile_grid<Q8TileFn, kMR, kNR>([]<int MR, int NR>() -> Q8TileFn { return &q8_tile<MR, NR>; });
  thread_local std::vector<float> S;
  const size_t need = size_t(kMR * kNR * (a.K / a.group));
  if (S.size() < need) S.resize(need);
  const RowSplit<kMR> rs(a.M);
  constexpr int64_t kAheadBytes = 8192;  // fetch ~8 KB ahead: 1 tile at K = 2048, 4 at K = 512
  const int64_t ahead = std::max<int64_t>(1, kAheadBytes / (kNR * a.K));
  for (int64_t n = n0; n < n1; n += kNR) {
    const int nr = int(std::min<int64_t>(kNR, n1 - n));
    const int8_t* next =
        n + (ahead + 1) * kNR <= n1 ? static_cast<const int8_t*>(a.w) + (n + ahead * kNR) * a.K : nullptr;
    for (int64_t b = 0, m = 0; b < rs.count; m += rs.rows(b), ++b)
      table[size_t(rs.rows(b) - 1)][size_t(nr - 1)](a, m, n, b == 0 ? next : nullptr, S.data());
  }
}

// Ops::quantize_act; the same operations as the scalar twin (max of |x|, one float division,
// x * inv rounded to nearest even by vcvtps2dq), hence the same bytes.
void quantize_act(const float* x, int64_t n, int64_t group, int8_t* q, float* scale, int32_t* sum) {
  const __m512 fmax = _mm512_set1_ps(std::numeric_limits<float>::max());
  for (int64_t g = 0; g < n / group; ++g) {
    const float* xg = x + g * group;
    __m512 amax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int64_t i = 0; i < group; i += 16) {
      const __m512 v = _mm512_abs_ps(_mm512_loadu_ps(xg + i));
      bad |= _mm512_cmp_ps_mask(v, fmax, _CMP_NLE_UQ);  // NaN or infinity
      amax = _mm512_max_ps(amax, v);
    }
    const float am = _mm512_reduce_max_ps(amax);
    if (bad || !(am >= 127.f / std::numeric_limits<float>::max())) {  // as the scalar twin: tiny = zero
      std::memset(q + g * group, 0, size_t(group));
      scale[g] = bad ? std::numeric_limits<float>::quiet_NaN() : 0.f;
      sum[g] = 0;
      continue;
    }
    const __m512 inv = _mm512_set1_ps(127.f / am);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    __m512i s = _mm512_setzero_si512();
    for (int64_t i = 0; i < group; i += 16) {
      __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + i), inv));
      v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
      s = _mm512_add_epi32(s, v);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + g * group + i), _mm512_cvtepi32_epi8(v));
    }
    scale[g] = am / 127.f;
    sum[g] = _mm512_reduce_add_epi32(s);
  }
}

}  // namespace

const Ops& avx512vnni_ops() {
  static const Ops ops = [] {
    Ops o = avx512_ops();
    o.linear_q8q8 = &linear_q8q8;
    o.quantize_act = &quantize_act;
    o.q8_panels = true;
    o.pack_panel = &pack_panel;
    return o;
  }();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END

#endif  // LLADA2_X86
