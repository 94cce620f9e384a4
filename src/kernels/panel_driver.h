// The driver of the panel kernels (weights in panel order, kernels.h), shared by the SIMD tier
// files: row splits, a kernel table per block size, chunks of interleaved input rows times every
// panel. ISA-neutral; include it inside a tier file's target region and anonymous namespace.
#pragma once

#ifndef LLADA2_SIMD_IMPL_TIER
#error "include panel_driver.h only from a kernel tier file"
#endif

// M input rows in as few blocks of at most MAX rows as possible, of sizes that differ by at most
// one (9 rows, MAX 4: 3 + 3 + 3, not 4 + 4 + 1): a block of few rows reuses each weight vector
// for few FMAs.
template <int MAX>
struct RowSplit {
  explicit RowSplit(int64_t M)
      : count((M + MAX - 1) / MAX), base(count ? M / count : 0), extra(count ? M % count : 0) {}
  int rows(int64_t b) const { return int(base + (b < extra ? 1 : 0)); }
  int64_t count, base, extra;
};

// A panel kernel over 2-byte weights in panel order (kernels.h): rows m .. m+MR of a block whose
// 4-byte input units are interleaved at xi (xi[u * MR + i] = row i's unit u) against the panel at
// wp (weight rows n .. n+nr); pf, when set, is the next panel, one line fetched per line.
using PanelRowsFn = void (*)(const LinearArgs&, const uint32_t*, int64_t, int64_t, int, const char*, const char*);

// The interleaved units of a float32 kernel read as floats (the buffer holds uint32_t).
using float_alias = float __attribute__((may_alias));
inline const float_alias* as_floats(const uint32_t* units) { return reinterpret_cast<const float_alias*>(units); }

template <template <int> class Kernel, int... I>
constexpr std::array<PanelRowsFn, sizeof...(I)> panel_rows_table(std::integer_sequence<int, I...>) {
  return {&Kernel<I + 1>::run...};
}

// Input rows per chunk of run_panels.
constexpr int kPanelChunkRows = 48;

// Outputs [n0, n1) (n0 a multiple of 16) of 2-byte panel-ordered weights (a.K a multiple of 32)
// from input rows of `units` 4-byte elements (row m at x + m * ld). The rows go in chunks of at
// most kPanelChunkRows (sizes differing by at most one), each interleaved on this thread (by
// `interleave`: out[k * mr + i] = row i, element k) into a buffer of at most kPanelChunkRows x
// units elements (L2-sized: a prefill of thousands of rows re-reads the weights once per chunk
// instead of holding them all), then every panel times every block of at most MAXR rows of it.
using InterleaveFn = void (*)(const uint32_t* x, int64_t ld, int mr, int64_t n, uint32_t* out);

template <template <int> class Kernel, int MAXR, InterleaveFn interleave>
void run_panels(const LinearArgs& a, int64_t n0, int64_t n1, const uint32_t* x, int64_t ld, int64_t units) {
  static constexpr auto table = panel_rows_table<Kernel>(std::make_integer_sequence<int, MAXR>());
  const RowSplit<kPanelChunkRows> chunks(a.M);
  thread_local std::vector<uint32_t> xi;
  xi.resize(size_t(std::min<int64_t>(a.M, kPanelChunkRows) * units));
  const char* w = static_cast<const char*>(a.w);
  for (int64_t c = 0, m0 = 0; c < chunks.count; m0 += chunks.rows(c), ++c) {
    const RowSplit<MAXR> rs(chunks.rows(c));
    for (int64_t b = 0, m = 0; b < rs.count; m += rs.rows(b), ++b)
      interleave(x + (m0 + m) * ld, ld, rs.rows(b), units, xi.data() + m * units);
    for (int64_t n = n0; n < n1; n += 16) {
      const int nr = int(std::min<int64_t>(16, n1 - n));
      const char* next = n + 16 < n1 ? w + (n + 16) * a.K * 2 : nullptr;
      for (int64_t b = 0, m = 0; b < rs.count; m += rs.rows(b), ++b)
        table[size_t(rs.rows(b) - 1)](a, xi.data() + m * units, m0 + m, n, nr, w + n * a.K * 2,
                                      b == 0 ? next : nullptr);
    }
  }
}
