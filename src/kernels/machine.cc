// Measured machine limits for the roofline of `llada2 bench`: memory read bandwidth with every
// worker thread reading its own slice of a large buffer, and the float32 FMA peak of the kernel tier
// in use with every worker running independent FMA chains.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/target.h"
#include "llada2/bench.h"
#include "llada2/runtime.h"

#ifdef LLADA2_X86
#include <immintrin.h>
#endif

namespace llada2 {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

float fma_chains_scalar(int64_t iters, float x) {
  float a[12];
  for (int j = 0; j < 12; ++j) a[j] = x + float(j);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = a[j] * 0.999999f + 1e-7f;
  float s = 0;
  for (float v : a) s += v;
  return s;
}

#ifdef LLADA2_X86
LLADA2_TARGET_BEGIN("avx2,fma")
float fma_chains_avx2(int64_t iters, float x) {
  __m256 a[12];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(x + float(j));
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = _mm256_fmadd_ps(a[j], m, c);
  __m256 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, a[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}
LLADA2_TARGET_END

LLADA2_TARGET_BEGIN("avx512f")
float fma_chains_avx512(int64_t iters, float x) {
  __m512 a[12];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_ps(x + float(j));
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = _mm512_fmadd_ps(a[j], m, c);
  __m512 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, a[j]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}
LLADA2_TARGET_END
#endif

// Runs f(iters) on every worker at once; returns the FLOP rate over the wall time.
double fma_rate(int lanes, float (*f)(int64_t, float), double seconds) {
  const int threads = num_threads();
  int64_t iters = 1 << 16;
  for (;;) {  // calibrate on one thread to about a tenth of the budget
    const double t = now_s();
    volatile float sink = f(iters, 1.0f);
    (void)sink;
    if (now_s() - t > seconds / 10 || iters > (int64_t(1) << 40)) break;
    iters *= 2;
  }
  iters = int64_t(double(iters) * 5);  // ~half the budget on every thread
  const double t0 = now_s();
  parallel_for(threads, [&](int64_t a, int64_t b) {
    for (int64_t w = a; w < b; ++w) {
      volatile float sink = f(iters, float(w));
      (void)sink;
    }
  });
  const double wall = now_s() - t0;
  // 12 independent chains of `lanes` floats, 2 FLOPs per lane and FMA
  return 2.0 * lanes * 12.0 * double(iters) * threads / wall;
}

}  // namespace

MachineLimits measure_machine(double seconds) {
  MachineLimits m;
  // Read bandwidth: 512 MiB (far beyond any cache), written once, then summed three times by all
  // workers, each over its own contiguous slice; the best pass counts.
  const size_t n = (size_t(512) << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  parallel_for(
      int64_t(n),
      [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) buf[size_t(i)] = uint64_t(i);
      },
      1 << 16);
  double best = 0;
  std::atomic<uint64_t> total{0};  // keeps the sums (and so the reads) from being optimized away
  for (int pass = 0; pass < 3; ++pass) {
    const double t = now_s();
    parallel_for(
        int64_t(n),
        [&](int64_t a, int64_t b) {
          uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          int64_t i = a;
          for (; i + 4 <= b; i += 4) {
            s0 += buf[size_t(i)];
            s1 += buf[size_t(i + 1)];
            s2 += buf[size_t(i + 2)];
            s3 += buf[size_t(i + 3)];
          }
          for (; i < b; ++i) s0 += buf[size_t(i)];
          total += s0 + s1 + s2 + s3;
        },
        1 << 16);
    const double dt = now_s() - t;
    best = std::max(best, double(n * sizeof(uint64_t)) / dt / 1e9);
  }
  m.read_gbs = best;
  const std::string isa = runtime::isa();
#ifdef LLADA2_X86
  if (isa.rfind("avx512", 0) == 0)
    m.fma_gflops = fma_rate(16, fma_chains_avx512, seconds) / 1e9;
  else if (isa == "avx2")
    m.fma_gflops = fma_rate(8, fma_chains_avx2, seconds) / 1e9;
  else
#endif
    m.fma_gflops = fma_rate(1, fma_chains_scalar, seconds) / 1e9;
  m.isa = isa;
  m.threads = num_threads();
  return m;
}

}  // namespace llada2
