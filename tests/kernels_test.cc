// Every kernel tier this CPU runs against the scalar twin, on random and odd shapes; the
// bf16 / f16 conversions on every bit pattern; tier selection through the API and env.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/dtype.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace k = kernels;

// Restores the process-wide tier and bf16 switch when a test ends.
struct TierGuard {
  k::Isa isa = k::current_isa();
  bool bf16 = k::bf16_activations();
  ~TierGuard() {
    k::set_isa(isa);
    k::set_bf16_activations(bf16);
  }
};

std::vector<k::Isa> simd_tiers() {
  std::vector<k::Isa> out;
  for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16})
    if (k::isa_supported(isa)) out.push_back(isa);
  return out;
}

std::vector<k::Isa> all_tiers() {
  std::vector<k::Isa> out = simd_tiers();
  out.insert(out.begin(), k::Isa::Scalar);
  return out;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A weight matrix in dtype with its float values (what the kernels must widen to).
struct TestWeight {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  k::Weight w;
};

TestWeight make_weight(DType dt, int64_t N, int64_t K, std::mt19937& rng) {
  TestWeight t;
  t.f32 = random_floats(size_t(N * K), rng);
  if (dt != DType::F32) {
    t.half.resize(t.f32.size());
    for (size_t i = 0; i < t.f32.size(); ++i) {
      t.half[i] = dt == DType::BF16 ? f32_to_bf16(t.f32[i]) : f32_to_f16(t.f32[i]);
      t.f32[i] = dt == DType::BF16 ? bf16_to_f32(t.half[i]) : f16_to_f32(t.half[i]);
    }
  }
  t.w = {dt == DType::F32 ? static_cast<const void*>(t.f32.data()) : t.half.data(), dt, N, K};
  return t;
}

TEST(KernelsIsa, NamesParseAndSelection) {
  TierGuard guard;
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16}) {
    k::Isa parsed;
    ASSERT_TRUE(k::parse_isa(k::isa_name(isa), &parsed));
    EXPECT_EQ(parsed, isa);
    if (k::isa_supported(isa)) {
      EXPECT_TRUE(k::set_isa(isa));
      EXPECT_EQ(k::current_isa(), isa);
      EXPECT_STREQ(k::active_isa(), k::isa_name(isa));
    } else {
      k::Isa before = k::current_isa();
      EXPECT_FALSE(k::set_isa(isa));
      EXPECT_EQ(k::current_isa(), before);
    }
  }
  k::Isa parsed;
  EXPECT_FALSE(k::parse_isa("avx9000", &parsed));
  EXPECT_FALSE(k::parse_isa("", &parsed));
  EXPECT_TRUE(k::isa_supported(k::Isa::Scalar));
  EXPECT_TRUE(k::isa_supported(k::best_isa()));
  // Each tier implies the ones below it (avx512bf16 > avx512vnni > avx512 > avx2 > scalar).
  for (int i = 1; i <= int(k::Isa::Avx512Bf16); ++i) {
    if (k::isa_supported(k::Isa(i))) {
      EXPECT_TRUE(k::isa_supported(k::Isa(i - 1))) << k::isa_name(k::Isa(i));
    }
  }
}

// SPEC A6: the fast mode is the default (bf16 products where the CPU has them; the exact mode turns them off).
TEST(KernelsIsa, Bf16ActivationsAreOnByDefault) {
  if (std::getenv("LLADA2_BF16_DOT")) GTEST_SKIP() << "LLADA2_BF16_DOT is set";
  EXPECT_TRUE(k::bf16_activations());
}

// y = x W^T + b on every tier vs the scalar twin, with padded strides; the padding must
// stay untouched. Tolerance: reordered float sums, relative to sum |x w|.
TEST(KernelsLinear, TiersMatchScalarOnOddShapes) {
  TierGuard guard;
  k::set_bf16_activations(false);
  std::mt19937 rng(1234);
  const float kPad = 12345.f;
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t K : {1, 7, 16, 100, 513}) {
      for (int64_t N : {1, 3, 31, 65, 257}) {
        TestWeight tw = make_weight(dt, N, K, rng);
        std::vector<float> bias = random_floats(size_t(N), rng);
        for (int64_t M : {1, 2, 3, 5, 17, 33}) {
          const int64_t ldx = K + 3, ldy = N + 5;
          std::vector<float> x = random_floats(size_t(M * ldx), rng);
          for (bool with_bias : {false, true}) {
            const float* b = with_bias ? bias.data() : nullptr;
            ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
            std::vector<float> ref(size_t(M * ldy), kPad);
            k::linear(x.data(), M, ldx, tw.w, b, ref.data(), ldy);
            for (int64_t m = 0; m < M; ++m) {
              for (int64_t n = 0; n < N; ++n) {
                double exact = with_bias ? bias[size_t(n)] : 0.0;
                for (int64_t kk = 0; kk < K; ++kk)
                  exact += double(x[size_t(m * ldx + kk)]) * tw.f32[size_t(n * K + kk)];
                ASSERT_NEAR(ref[size_t(m * ldy + n)], exact, 1e-4) << "scalar m=" << m << " n=" << n;
              }
            }
            for (k::Isa isa : simd_tiers()) {
              ASSERT_TRUE(k::set_isa(isa));
              std::vector<float> y(size_t(M * ldy), kPad);
              k::linear(x.data(), M, ldx, tw.w, b, y.data(), ldy);
              for (int64_t m = 0; m < M; ++m) {
                for (int64_t n = 0; n < ldy; ++n) {
                  const float got = y[size_t(m * ldy + n)], want = ref[size_t(m * ldy + n)];
                  if (n >= N) {
                    ASSERT_EQ(got, kPad) << "padding written, " << k::isa_name(isa);
                    continue;
                  }
                  double mag = with_bias ? std::fabs(bias[size_t(n)]) : 0.0;
                  for (int64_t kk = 0; kk < K; ++kk)
                    mag += std::fabs(double(x[size_t(m * ldx + kk)]) * tw.f32[size_t(n * K + kk)]);
                  ASSERT_NEAR(got, want, 1e-5 * mag + 1e-7)
                      << k::isa_name(isa) << " " << dtype_name(dt) << " M=" << M << " K=" << K << " N=" << N
                      << " m=" << m << " n=" << n << " bias=" << with_bias;
                }
              }
            }
          }
        }
      }
    }
  }
}

// Degenerate shapes: K = 0 gives the bias (or 0); M = 0 or N = 0 writes nothing.
TEST(KernelsLinear, EmptyShapes) {
  TierGuard guard;
  const float bias[3] = {1.f, -2.f, 3.f};
  const float x[4] = {};
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16}) {
    if (!k::set_isa(isa)) continue;
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      const uint32_t dummy = 0;
      float y[6] = {7, 7, 7, 7, 7, 7};
      k::linear(x, 2, 0, k::Weight{&dummy, dt, 3, 0}, bias, y, 3);
      EXPECT_EQ(std::vector<float>(y, y + 6), (std::vector<float>{1, -2, 3, 1, -2, 3})) << k::isa_name(isa);
      k::linear(x, 2, 0, k::Weight{&dummy, dt, 3, 0}, nullptr, y, 3);
      EXPECT_EQ(std::vector<float>(y, y + 6), (std::vector<float>(6, 0.f))) << k::isa_name(isa);
      float z[2] = {5, 5};
      k::linear(x, 0, 4, k::Weight{&dummy, dt, 2, 4}, nullptr, z, 2);
      k::linear(x, 1, 4, k::Weight{&dummy, dt, 0, 4}, nullptr, z, 2);
      EXPECT_EQ(z[0], 5.f);
      EXPECT_EQ(z[1], 5.f);
    }
  }
}

// A model-sized shape spanning several threads' chunks.
TEST(KernelsLinear, TiersMatchScalarAtModelWidth) {
  TierGuard guard;
  k::set_bf16_activations(false);
  std::mt19937 rng(99);
  const int64_t M = 37, K = 2048, N = 300;
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    TestWeight tw = make_weight(dt, N, K, rng);
    std::vector<float> x = random_floats(size_t(M * K), rng);
    ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
    std::vector<float> ref(size_t(M * N));
    k::linear(x.data(), M, K, tw.w, nullptr, ref.data(), N);
    for (k::Isa isa : simd_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      std::vector<float> y(size_t(M * N));
      k::linear(x.data(), M, K, tw.w, nullptr, y.data(), N);
      // Also within the logits tolerance of the spec, 1e-4 * max(1, |ref|).
      float worst = 0.f;
      for (size_t i = 0; i < y.size(); ++i)
        worst = std::max(worst, std::fabs(y[i] - ref[i]) / std::max(1.f, std::fabs(ref[i])));
      EXPECT_LT(worst, 1e-4f) << k::isa_name(isa) << " " << dtype_name(dt);
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double mag = 0;
          for (int64_t kk = 0; kk < K; ++kk)
            mag += std::fabs(double(x[size_t(m * K + kk)]) * tw.f32[size_t(n * K + kk)]);
          ASSERT_NEAR(y[size_t(m * N + n)], ref[size_t(m * N + n)], 1e-5 * mag)
              << k::isa_name(isa) << " " << dtype_name(dt);
        }
      }
    }
  }
}

// The opt-in vdpbf16ps path equals float math on bf16-rounded activations, and only runs
// when asked for (odd K, K % 32 tails, partial tiles, several row blocks).
TEST(KernelsLinear, Bf16ActivationsPath) {
  if (!k::isa_supported(k::Isa::Avx512Bf16)) GTEST_SKIP() << "no avx512bf16 on this CPU";
  TierGuard guard;
  ASSERT_TRUE(k::set_isa(k::Isa::Avx512Bf16));
  std::mt19937 rng(7);
  for (int64_t K : {1, 7, 16, 33, 100, 513, 2048}) {
    for (int64_t N : {1, 3, 65}) {
      for (int64_t M : {1, 2, 5, 9, 17, 33}) {
        TestWeight tw = make_weight(DType::BF16, N, K, rng);
        std::vector<float> bias = random_floats(size_t(N), rng);
        const int64_t ldx = K + 1, ldy = N + 2;
        std::vector<float> x = random_floats(size_t(M * ldx), rng);
        std::vector<float> y32(size_t(M * ldy)), y16(size_t(M * ldy), -7.f);
        k::set_bf16_activations(false);
        k::linear(x.data(), M, ldx, tw.w, bias.data(), y32.data(), ldy);
        k::set_bf16_activations(true);
        k::linear(x.data(), M, ldx, tw.w, bias.data(), y16.data(), ldy);
        bool differs = false;
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t n = 0; n < N; ++n) {
            double exact = bias[size_t(n)], mag = std::fabs(bias[size_t(n)]);
            for (int64_t kk = 0; kk < K; ++kk) {
              double p = double(bf16_to_f32(f32_to_bf16(x[size_t(m * ldx + kk)]))) * tw.f32[size_t(n * K + kk)];
              exact += p;
              mag += std::fabs(p);
            }
            ASSERT_NEAR(y16[size_t(m * ldy + n)], exact, 1e-5 * mag + 1e-7) << "M=" << M << " K=" << K << " N=" << N;
            differs |= y16[size_t(m * ldy + n)] != y32[size_t(m * ldy + n)];
          }
          ASSERT_EQ(y16[size_t(m * ldy + N)], -7.f) << "wrote past the row";
        }
        if (K >= 100) {
          EXPECT_TRUE(differs) << "bf16 path not taken, K=" << K;
        }
      }
    }
  }
}

// BF16 weights in panel order (kernels.h): pack_panels keeps every row (dequantize gives it back,
// padding rows are +0); every tier multiplies them (the avx512 tiers with their panel kernels, the
// others by unpacking, bit for bit their rows result), float32 and bf16 activations, against the
// double reference. The float32 panel kernels sum each output's products in order of k with
// fused multiply-adds, then add the bias: bit for bit that sequence, whatever the number of rows.
TEST(KernelsLinear, Bf16PanelsMatchReferenceOnEveryTier) {
  TierGuard guard;
  std::mt19937 rng(31);
  const float kPad = 12345.f;
  std::vector<k::Isa> tiers = {k::Isa::Scalar};
  for (k::Isa isa : simd_tiers()) tiers.push_back(isa);
  for (int64_t K : {32, 96, 2048}) {
    for (int64_t N : {16, 17, 47, 100}) {
      TestWeight tw = make_weight(DType::BF16, N, K, rng);
      const int64_t P = (N + 15) / 16;
      ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
      EXPECT_EQ(k::panel_bytes(tw.w), uint64_t(P * 16 * K * 2));
      EXPECT_EQ(k::panel_scales(tw.w), 0u);
      std::vector<uint8_t> buf(size_t(k::panel_bytes(tw.w)) + 1, 0xAB);
      const k::Weight pw = k::pack_panels(tw.w, buf.data() + 1, nullptr);  // any alignment
      ASSERT_TRUE(pw.panels);
      EXPECT_EQ(pw.dtype, DType::BF16);
      EXPECT_EQ(k::weight_bytes(pw), k::panel_bytes(tw.w));
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t n = 0; n < N; ++n) {
        k::dequantize(pw, n, row.data());
        ASSERT_EQ(0, std::memcmp(row.data(), tw.f32.data() + n * K, size_t(K) * 4)) << "row " << n;
      }
      for (int64_t j = N % 16 ? N % 16 : 16; j < 16; ++j)  // padding rows of the last panel
        for (int64_t kk = 0; kk < K; ++kk)
          ASSERT_EQ(buf[size_t(1 + (P - 1) * 32 * K + 64 * (kk / 2) + 4 * j + 2 * (kk % 2))], 0) << "padding " << j;
      std::vector<float> bias_values = random_floats(size_t(N), rng);
      // Blocks of 1 to 24 rows, one to four blocks in a chunk of up to 48 rows, several chunks.
      for (int64_t M : {1, 2, 3, 5, 12, 16, 17, 24, 25, 31, 33, 48, 49, 73, 100}) {
        if (K == 2048 && M > 33 && N > 17) continue;  // the double reference is slow; K = 32 / 96 cover these
        const int64_t ldx = K + 3, ldy = N + 5;
        std::vector<float> x = random_floats(size_t(M * ldx), rng);
        const bool with_bias = M % 2 == 1;
        const std::vector<float> bias = with_bias ? bias_values : std::vector<float>(size_t(N), 0.f);
        for (bool bf16act : {false, true}) {
          for (k::Isa isa : tiers) {
            if (bf16act && isa != k::Isa::Avx512Bf16) continue;
            ASSERT_TRUE(k::set_isa(isa));
            k::set_bf16_activations(bf16act);
            const bool own = isa >= k::Isa::Avx2;
            std::vector<float> yr(size_t(M * ldy), kPad), yp(size_t(M * ldy), kPad);
            const float* b = with_bias ? bias.data() : nullptr;
            k::linear(x.data(), M, ldx, tw.w, b, yr.data(), ldy);
            k::linear(x.data(), M, ldx, pw, b, yp.data(), ldy);
            const std::string at = std::string(k::isa_name(isa)) + (bf16act ? " bf16act" : "") +
                                   " M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N);
            for (int64_t m = 0; m < M; ++m) {
              for (int64_t n = 0; n < ldy; ++n) {
                const float got = yp[size_t(m * ldy + n)];
                if (n >= N) {
                  ASSERT_EQ(got, kPad) << "padding written, " << at;
                  continue;
                }
                double exact = bias[size_t(n)], mag = std::fabs(bias[size_t(n)]);
                float seq = 0.f;
                for (int64_t kk = 0; kk < K; ++kk) {
                  float xv = x[size_t(m * ldx + kk)];
                  if (bf16act) xv = bf16_to_f32(f32_to_bf16(xv));
                  const float wv = tw.f32[size_t(n * K + kk)];
                  exact += double(xv) * wv;
                  mag += std::fabs(double(xv) * wv);
                  seq = std::fma(xv, wv, seq);
                }
                ASSERT_NEAR(got, exact, 1e-5 * mag + 1e-7) << at << " m=" << m << " n=" << n;
                if (!own) {
                  ASSERT_EQ(got, yr[size_t(m * ldy + n)]) << "unpacked panels differ from rows, " << at;
                } else if (!bf16act) {
                  ASSERT_EQ(got, seq + bias[size_t(n)]) << "not the k-ordered sum, " << at;
                }
              }
            }
          }
        }
      }
      k::set_bf16_activations(false);
    }
  }
}

// Which BF16 weights get panels, and what pack_panels and linear() refuse.
TEST(KernelsLinear, Bf16PanelsPreferredAndRejected) {
  TierGuard guard;
  k::set_bf16_activations(false);
  std::mt19937 rng(5);
  TestWeight ok = make_weight(DType::BF16, 16, 64, rng), narrow = make_weight(DType::BF16, 16, 48, rng),
             few = make_weight(DType::BF16, 15, 64, rng), f32 = make_weight(DType::F32, 16, 64, rng);
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16}) {
    if (!k::set_isa(isa)) continue;
    const bool own = isa >= k::Isa::Avx2;
    for (bool bf16act : {false, true}) {
      k::set_bf16_activations(bf16act);
      EXPECT_EQ(k::panels_preferred(ok.w), own) << k::isa_name(isa) << " bf16act=" << bf16act;
      EXPECT_FALSE(k::panels_preferred(narrow.w)) << "columns not a multiple of 32";
      EXPECT_FALSE(k::panels_preferred(few.w)) << "fewer than 16 rows";
      EXPECT_FALSE(k::panels_preferred(f32.w));
    }
    k::set_bf16_activations(false);
  }
  std::vector<uint8_t> buf(size_t(k::panel_bytes(ok.w)));
  const k::Weight pw = k::pack_panels(ok.w, buf.data(), nullptr);
  EXPECT_FALSE(k::panels_preferred(pw));
  EXPECT_THROW(k::pack_panels(pw, buf.data(), nullptr), std::invalid_argument);
  EXPECT_THROW(k::pack_panels(narrow.w, buf.data(), nullptr), std::invalid_argument);
  k::Weight bad = pw;
  bad.cols = 48;
  float x[64] = {}, y[16];
  EXPECT_THROW(k::linear(x, 1, 48, bad, nullptr, y, 16), std::invalid_argument);
  bad = f32.w;
  bad.panels = true;
  EXPECT_THROW(k::linear(x, 1, 64, bad, nullptr, y, 16), std::invalid_argument);
}

const std::vector<int64_t> kLengths = {0, 1, 7, 15, 16, 17, 100, 128, 513};

TEST(KernelsVector, DotAndAxpyMatchScalar) {
  TierGuard guard;
  std::mt19937 rng(5);
  for (int64_t n : kLengths) {
    std::vector<float> a = random_floats(size_t(n) + 1, rng), b = random_floats(size_t(n) + 1, rng);
    std::vector<float> y0 = random_floats(size_t(n) + 1, rng);
    ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
    const float ref = k::dot(a.data(), b.data(), n);
    std::vector<float> yref = y0;
    k::axpy(0.37f, a.data(), yref.data(), n);
    double mag = 0;
    for (int64_t i = 0; i < n; ++i) mag += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
    for (k::Isa isa : simd_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      EXPECT_NEAR(k::dot(a.data(), b.data(), n), ref, 1e-5 * mag + 1e-7) << k::isa_name(isa) << " n=" << n;
      std::vector<float> y = y0;
      k::axpy(0.37f, a.data(), y.data(), n);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], yref[i], 1e-6f) << k::isa_name(isa) << " n=" << n;
      EXPECT_EQ(y[size_t(n)], y0[size_t(n)]);
    }
  }
}

// The attention pieces, exp_shift_sum and matmul_acc (y += P V over F32 / BF16 / F16 values),
// on every tier, against plain double sums.
TEST(KernelsAttention, ExpShiftSumMatchesScalar) {
  TierGuard guard;
  std::mt19937 rng(11);
  for (int64_t n : kLengths) {
    std::vector<float> x0 = random_floats(size_t(n) + 1, rng, 8.f);
    if (n > 3) x0[2] = -std::numeric_limits<float>::infinity();  // a masked key
    const float shift = 3.5f;
    double want = 0;
    for (int64_t i = 0; i < n; ++i) want += std::exp(double(x0[size_t(i)]) - shift);
    for (k::Isa isa : all_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      std::vector<float> x = x0;
      const float sum = k::exp_shift_sum(x.data(), n, shift);
      EXPECT_NEAR(sum, want, 1e-5 * want + 1e-7) << k::isa_name(isa) << " n=" << n;
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(x[size_t(i)], std::exp(double(x0[size_t(i)]) - shift), 1e-6 * std::exp(8.0))
            << k::isa_name(isa) << " n=" << n << " i=" << i;
      if (n > 3) EXPECT_EQ(x[2], 0.f);
      EXPECT_EQ(x[size_t(n)], x0[size_t(n)]) << "wrote past n";
    }
  }
}

// y (M rows, ldy apart) after y += P V: the columns from D on as in y0, each other within 1e-6 of the
// sum of |terms| of its double sum (ref(m, d) gives {sum, sum of |terms|}, y0 included).
template <class Ref>
::testing::AssertionResult acc_matches(const std::vector<float>& y, const std::vector<float>& y0, int64_t M, int64_t D,
                                       int64_t ldy, Ref ref) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t d = 0; d < ldy; ++d) {
      const float got = y[size_t(m * ldy + d)];
      if (d >= D) {
        if (got != y0[size_t(m * ldy + d)]) return ::testing::AssertionFailure() << "wrote past D at m=" << m;
        continue;
      }
      const auto [want, mag] = ref(m, d);
      if (!(std::fabs(got - want) <= 1e-6 * mag + 1e-7))
        return ::testing::AssertionFailure() << "m=" << m << " d=" << d << ": " << got << " against " << want;
    }
  return ::testing::AssertionSuccess();
}

TEST(KernelsAttention, MatmulAccMatchesDoubleSums) {
  TierGuard guard;
  std::mt19937 rng(12);
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t M : {1, 3, 4, 5, 13, 128})
      for (int64_t D : {1, 7, 8, 24, 64, 100, 128})
        for (int64_t T : {1, 5, 256}) {
          const int64_t ldv = D + 3, ldp = T + 2, ldy = D + 5;
          TestWeight v = make_weight(dt, T, ldv, rng);  // rows ldv apart; D of each used
          const std::vector<float> p = random_floats(size_t(M * ldp), rng), y0 = random_floats(size_t(M * ldy), rng);
          for (k::Isa isa : all_tiers()) {
            ASSERT_TRUE(k::set_isa(isa));
            std::vector<float> y = y0;
            k::matmul_acc(p.data(), M, ldp, v.w.data, dt, T, D, ldv, y.data(), ldy);
            ASSERT_TRUE(acc_matches(y, y0, M, D, ldy,
                                    [&](int64_t m, int64_t d) {
                                      double want = y0[size_t(m * ldy + d)], mag = std::fabs(want);
                                      for (int64_t t = 0; t < T; ++t) {
                                        want += double(p[size_t(m * ldp + t)]) * v.f32[size_t(t * ldv + d)];
                                        mag += std::fabs(double(p[size_t(m * ldp + t)]) * v.f32[size_t(t * ldv + d)]);
                                      }
                                      return std::pair{want, mag};
                                    }))
                << k::isa_name(isa) << " " << dtype_name(dt) << " M=" << M << " D=" << D << " T=" << T;
          }
        }
  EXPECT_THROW(k::matmul_acc(nullptr, 1, 1, nullptr, DType::I8, 1, 1, 1, nullptr, 1), std::invalid_argument);
}

// matmul_acc_bf16 (y += P V with P and V in bf16) against double sums of the same values: products of
// bf16 values are exact in float32, so only the order of the sums differs. Every tier (those without
// bf16 dot products run the portable loop); NaN just past T and D in p and v must stay unread.
TEST(KernelsAttention, MatmulAccBf16MatchesDoubleSums) {
  TierGuard guard;
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> unit(-1.f, 1.f);
  constexpr uint16_t kNaN = 0x7FC0;
  int checked = 0;
  for (int64_t M : {1, 2, 3, 4, 5, 9, 33})
    for (int64_t D : {16, 64, 128, 72, 8, 40, 100})
      for (int64_t T : {1, 2, 3, 16, 31, 64, 127, 128, 255, 256, 300}) {
        const int64_t ldp = T + 3, ldv = D + 5, ldy = D + 7;
        std::vector<uint16_t> p(size_t(M * ldp), kNaN), v(size_t((T + 1) * ldv), kNaN);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t t = 0; t < T; ++t) p[size_t(m * ldp + t)] = f32_to_bf16(unit(rng));
        for (int64_t t = 0; t < T; ++t)
          for (int64_t d = 0; d < D; ++d) v[size_t(t * ldv + d)] = f32_to_bf16(2.f * unit(rng));
        const std::vector<float> y0 = random_floats(size_t(M * ldy), rng);
        std::vector<double> want(size_t(M * D)), mag(size_t(M * D));
        for (int64_t m = 0; m < M; ++m)
          for (int64_t d = 0; d < D; ++d) {
            double sum = y0[size_t(m * ldy + d)], abs_sum = std::fabs(sum);
            for (int64_t t = 0; t < T; ++t) {
              const double prod = double(bf16_to_f32(p[size_t(m * ldp + t)])) * bf16_to_f32(v[size_t(t * ldv + d)]);
              sum += prod;
              abs_sum += std::fabs(prod);
            }
            want[size_t(m * D + d)] = sum;
            mag[size_t(m * D + d)] = abs_sum;
          }
        for (k::Isa isa : all_tiers()) {
          ASSERT_TRUE(k::set_isa(isa));
          EXPECT_EQ(k::matmul_acc_bf16_available(), isa == k::Isa::Avx512Bf16);
          std::vector<float> y = y0;
          k::matmul_acc_bf16(p.data(), M, ldp, v.data(), T, D, ldv, y.data(), ldy);
          ASSERT_TRUE(acc_matches(y, y0, M, D, ldy,
                                  [&](int64_t m, int64_t d) {
                                    return std::pair{want[size_t(m * D + d)], mag[size_t(m * D + d)]};
                                  }))
              << k::isa_name(isa) << " M=" << M << " D=" << D << " T=" << T;
          ++checked;
        }
      }
  EXPECT_GT(checked, 500);
  if (!k::isa_supported(k::Isa::Avx512Bf16)) {
    GTEST_SKIP() << "no AVX512-BF16 here: only the portable loop ran";
  }
}

TEST(KernelsVector, RmsNormMatchesScalar) {
  TierGuard guard;
  std::mt19937 rng(6);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t n : {1, 7, 16, 100, 128, 513, 2048}) {
      const int64_t M = 3;
      TestWeight tw = make_weight(dt, 1, n, rng);
      std::vector<float> x0 = random_floats(size_t(M * n), rng, 4.f);
      ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
      std::vector<float> ref = x0;
      k::rms_norm(ref.data(), M, n, tw.w, 1e-6f);
      for (k::Isa isa : simd_tiers()) {
        ASSERT_TRUE(k::set_isa(isa));
        std::vector<float> x = x0;
        k::rms_norm(x.data(), M, n, tw.w, 1e-6f);
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_NEAR(x[i], ref[i], 1e-5f * std::max(1.f, std::fabs(ref[i]))) << k::isa_name(isa) << " n=" << n;
      }
    }
  }
}

TEST(KernelsVector, SiluMulMatchesScalar) {
  TierGuard guard;
  std::mt19937 rng(8);
  for (int64_t n : kLengths) {
    std::vector<float> g = random_floats(size_t(n), rng, 12.f), u = random_floats(size_t(n), rng, 3.f);
    // Extremes the exp must survive: underflow, overflow, signed zero.
    const float special[] = {-100.f, 100.f,   -88.5f, 88.5f, -87.f, 87.f,   0.f,     -0.f,
                             1e-30f, -1e-30f, -88.7f, 88.7f, -89.f, 1000.f, -1000.f, -87.5f};
    for (size_t i = 0; i < g.size() && i < std::size(special); ++i) g[i * 7 % g.size()] = special[i];
    ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
    std::vector<float> ref(static_cast<size_t>(n));
    k::silu_mul(g.data(), u.data(), ref.data(), n);
    for (k::Isa isa : simd_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      std::vector<float> out(static_cast<size_t>(n));
      k::silu_mul(g.data(), u.data(), out.data(), n);
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], ref[i], 2e-6f * std::max(1e-30f, std::fabs(ref[i])) + 1e-37f)
            << k::isa_name(isa) << " g=" << g[i];
    }
    // In place (out aliases gate), as the model calls it.
    for (k::Isa isa : simd_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      std::vector<float> inplace = g;
      k::silu_mul(inplace.data(), u.data(), inplace.data(), n);
      for (size_t i = 0; i < inplace.size(); ++i) ASSERT_NEAR(inplace[i], ref[i], 2e-6f * std::fabs(ref[i]) + 1e-37f);
    }
  }
}

// The vector exp is one body over every tier's traits: silu_mul (element-wise, no tail at a
// multiple of 16 lanes) gives the same bits on every SIMD tier, across exp's whole range and its
// cut-offs.
TEST(KernelsVector, SiluMulBitIdenticalAcrossSimdTiers) {
  TierGuard guard;
  const std::vector<k::Isa> tiers = simd_tiers();
  if (tiers.size() < 2) GTEST_SKIP() << "fewer than two SIMD tiers on this CPU";
  std::vector<float> g;
  for (int i = -4096; i < 4096; ++i) g.push_back(float(i) * (110.f / 4096.f));
  for (float v : {-88.72283935546875f, -87.3365478515625f, 88.72283935546875f, 87.3365478515625f, 0.f, -0.f, 1e-30f,
                  -1e-30f, -87.34f, 88.73f, -1000.f, 1000.f, 126.9f, -126.9f, 0.6931472f, -0.6931472f})
    g.push_back(v);
  while (g.size() % 16) g.push_back(1.f);
  const std::vector<float> up(g.size(), 1.f);
  ASSERT_TRUE(k::set_isa(tiers[0]));
  std::vector<float> ref(g.size());
  k::silu_mul(g.data(), up.data(), ref.data(), int64_t(g.size()));
  for (size_t t = 1; t < tiers.size(); ++t) {
    ASSERT_TRUE(k::set_isa(tiers[t]));
    std::vector<float> out(g.size());
    k::silu_mul(g.data(), up.data(), out.data(), int64_t(g.size()));
    for (size_t i = 0; i < g.size(); ++i)
      ASSERT_EQ(std::memcmp(&out[i], &ref[i], 4), 0) << k::isa_name(tiers[t]) << " vs " << k::isa_name(tiers[0])
                                                     << " g=" << g[i] << ": " << out[i] << " " << ref[i];
  }
}

TEST(KernelsVector, SoftmaxMatchesScalar) {
  TierGuard guard;
  std::mt19937 rng(9);
  const float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t n : kLengths) {
    for (int variant = 0; variant < 3; ++variant) {
      std::vector<float> x0 = random_floats(size_t(n), rng, 30.f);
      if (variant == 1)  // masked keys, as attention passes them
        for (size_t i = 0; i < x0.size(); i += 3) x0[i] = kNegInf;
      if (variant == 2) std::fill(x0.begin(), x0.end(), kNegInf);
      ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
      std::vector<float> ref = x0;
      k::softmax(ref.data(), n);
      for (k::Isa isa : simd_tiers()) {
        ASSERT_TRUE(k::set_isa(isa));
        std::vector<float> x = x0;
        k::softmax(x.data(), n);
        double sum = 0;
        for (size_t i = 0; i < x.size(); ++i) {
          if (x0[i] == kNegInf) {
            ASSERT_EQ(x[i], 0.f) << "masked entry must be exactly 0";
          }
          ASSERT_NEAR(x[i], ref[i], 2e-6f * ref[i] + 1e-37f) << k::isa_name(isa) << " n=" << n << " i=" << i;
          sum += x[i];
        }
        if (std::any_of(x0.begin(), x0.end(), [&](float v) { return v != kNegInf; })) {
          EXPECT_NEAR(sum, 1.0, 1e-5);
        }
      }
    }
  }
}

// Greedy choice: every tier finds the first maximal index (ties placed in different lanes and
// in the tail) and the scalar twin's sum of exp(x - max) to float rounding.
TEST(KernelsVector, ArgmaxExpsumMatchesScalar) {
  TierGuard guard;
  std::mt19937 rng(11);
  const float kInf = std::numeric_limits<float>::infinity();
  for (int64_t n : kLengths) {
    if (n == 0) continue;  // n > 0 by contract
    for (int variant = 0; variant < 5; ++variant) {
      std::vector<float> x = random_floats(size_t(n), rng, 20.f);
      if (variant == 1 && n > 2) x[size_t(n - 1)] = x[size_t(n / 2)] = 50.f;  // tie: the earlier wins
      if (variant == 2) std::fill(x.begin(), x.end(), 3.f);                   // all equal: index 0
      if (variant == 3 && n > 1) x[size_t(n - 1)] = kInf;                     // scalar semantics
      if (variant == 4) x[0] = std::nanf("");
      ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
      int64_t ref_arg = -1;
      const float ref = k::argmax_expsum(x.data(), n, &ref_arg);
      for (k::Isa isa : simd_tiers()) {
        ASSERT_TRUE(k::set_isa(isa));
        int64_t arg = -1;
        const float sum = k::argmax_expsum(x.data(), n, &arg);
        EXPECT_EQ(arg, ref_arg) << k::isa_name(isa) << " n=" << n << " variant " << variant;
        if (std::isnan(ref)) {
          EXPECT_TRUE(std::isnan(sum));
        } else {
          EXPECT_NEAR(sum, ref, 2e-6f * ref) << k::isa_name(isa) << " n=" << n << " variant " << variant;
        }
      }
    }
  }
}

// bf16 -> f32 -> bf16 and f16 -> f32 -> f16 are exact for every non-NaN bit pattern
// (subnormals and infinities included); NaN stays NaN. Bulk to_f32 on every tier equals
// the scalar conversion bit for bit.
TEST(KernelsConvert, RoundTripsEveryBitPattern) {
  TierGuard guard;
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float b = bf16_to_f32(h), f = f16_to_f32(h);
    if (std::isnan(b)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(b)))) << i;
    } else {
      ASSERT_EQ(f32_to_bf16(b), h) << i;
    }
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << i;
    } else {
      ASSERT_EQ(f32_to_f16(f), h) << i;
    }
  }
  for (DType dt : {DType::BF16, DType::F16}) {
    ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
    std::vector<float> ref(all.size() + 3);
    k::to_f32(dt, all.data(), 3, int64_t(all.size()) - 3, ref.data());
    for (k::Isa isa : simd_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      std::vector<float> got(all.size() + 3);
      k::to_f32(dt, all.data(), 3, int64_t(all.size()) - 3, got.data());
      for (size_t i = 0; i + 3 < all.size(); ++i) {
        if (std::isnan(ref[i])) {
          ASSERT_TRUE(std::isnan(got[i])) << k::isa_name(isa) << " " << i;
        } else {
          uint32_t rb, gb;
          std::memcpy(&rb, &ref[i], 4);
          std::memcpy(&gb, &got[i], 4);
          ASSERT_EQ(gb, rb) << k::isa_name(isa) << " " << dtype_name(dt) << " pattern " << i + 3;
        }
      }
    }
  }
}

TEST(KernelsConvert, RoundingAndSpecialValues) {
  // bf16: ties to even, overflow to inf, NaN stays NaN.
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);            // halfway, even below
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3F82);  // halfway, even above
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(bf16_to_f32(0x0001), 0x1p-133f);  // bf16 subnormal
  // f16: largest finite, overflow, subnormals, ties to even.
  EXPECT_EQ(f32_to_f16(65504.f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.f), 0x7C00);
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);               // tie to even: 0
  EXPECT_EQ(f32_to_f16(0x1.8p-24f), 0x0002);             // tie to even: 2
  EXPECT_EQ(f32_to_f16(0x1.0p-14f - 0x1p-25f), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f16_to_f32(0x03FF), 0x3FFp-24f);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
}

// LLADA2_ISA reaches a fresh process: a known tier reproduces a golden case, an unknown one
// is a clear error rather than a silent fallback.
TEST(KernelsIsa, EnvVarCapsTheTierInTheCli) {
  k::active_isa();  // resolve this process's tier before touching the environment
  const nlohmann::json cj = read_json(golden_path("v0.40.0+blockcausal/a_batch2_eos_stop/case.json"));
  nlohmann::json call = cj["call"];
  call["scheduler"] = cj["scheduler_config"];
  char path[] = "/tmp/llada2_isa_callXXXXXX";
  close(mkstemp(path));
  std::ofstream(path) << call.dump();
  const std::string args = "generate --model " + golden_path("models/tiny-a-f32") + " --call " + path + " --json";
  const char* saved = std::getenv("LLADA2_ISA");
  const std::string saved_value = saved ? saved : "";
  for (const char* tier : {"scalar", "avx2", "avx512", "avx512vnni"}) {
    setenv("LLADA2_ISA", tier, 1);
    std::string out, err;
    int rc = run_cli(args, &out, &err);
    ASSERT_EQ(rc, 0) << tier << ": " << err;
    EXPECT_EQ(nlohmann::json::parse(out)["sequences"], cj["expected"]["sequences"]) << tier;
  }
  setenv("LLADA2_ISA", "avx9000", 1);
  std::string out, err;
  int rc = run_cli(args, &out, &err);
  if (saved) {
    setenv("LLADA2_ISA", saved_value.c_str(), 1);
  } else {
    unsetenv("LLADA2_ISA");
  }
  unlink(path);
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("LLADA2_ISA=avx9000"), std::string::npos) << err;
}

}  // namespace
}  // namespace llada2::testing
