// Quantized weights: the q8 / q4 linear kernels of every tier against the scalar twin and a
// double reference, the quantizer's error bounds, quantized golden tiny models against their
// float32 originals (logit cosine, greedy top-1 agreement), loader and CLI errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/quantize.h"
#include "llada2/safetensors.h"
#include "llada2/safetensors_writer.h"
#include "model/trace.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace fs = std::filesystem;
namespace k = kernels;

struct TierGuard {
  k::Isa isa = k::current_isa();
  ~TierGuard() { k::set_isa(isa); }
};

// Sets the int8-activations mode for a scope.
struct Int8ActGuard {
  bool was = k::int8_activations();
  explicit Int8ActGuard(bool on) { k::set_int8_activations(on); }
  ~Int8ActGuard() { k::set_int8_activations(was); }
};

std::vector<k::Isa> all_tiers() {
  std::vector<k::Isa> out;
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16})
    if (k::isa_supported(isa)) out.push_back(isa);
  return out;
}

// A fresh folder under the temp dir, removed at scope end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("llada2_quantize_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str(const std::string& sub = "") const { return sub.empty() ? path.string() : (path / sub).string(); }
};

// A quantized random matrix: q data, scales and the Weight over them.
struct QWeight {
  std::vector<int8_t> q8;
  std::vector<uint8_t> q4;
  std::vector<float> scales;
  k::Weight w;
};

QWeight make_qweight(k::Quant kind, int64_t N, int64_t K, int64_t G, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> f(size_t(N * K));
  for (float& x : f) x = d(rng);
  QWeight t;
  t.scales.resize(size_t(N * (K / G)));
  if (kind == k::Quant::Q8) {
    t.q8.resize(size_t(N * K));
    for (int64_t n = 0; n < N; ++n)
      quantize_row_q8(f.data() + n * K, K, G, t.q8.data() + n * K, t.scales.data() + n * (K / G));
    t.w = {t.q8.data(), DType::I8, N, K};
  } else {
    t.q4.resize(size_t(N * K / 2));
    for (int64_t n = 0; n < N; ++n)
      quantize_row_q4(f.data() + n * K, K, G, t.q4.data() + n * K / 2, t.scales.data() + n * (K / G));
    t.w = {t.q4.data(), DType::U8, N, K};
  }
  t.w.quant = kind;
  t.w.group = G;
  t.w.scales = t.scales.data();
  return t;
}

// A Q8 / Q4 weight in panel order (kernels.h), its buffers owned here.
struct PanelWeight {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  k::Weight w;
  explicit PanelWeight(const k::Weight& rows)
      : data(size_t(k::panel_bytes(rows)), 0x5A), scales(size_t(k::panel_scales(rows)), -1.f) {
    w = k::pack_panels(rows, data.data(), scales.data());
  }
};

// Whether the current tier runs Q8 (group 64) products with int8 activations when they are on.
bool tier_has_int8() {
  static const std::vector<int8_t> q(64);
  static const std::vector<float> s(1, 1.f);
  k::Weight w{q.data(), DType::I8, 1, 64, k::Quant::Q8, 64, s.data()};
  return k::int8_activations_active(w);
}

TEST(QuantKernels, DequantizeDecodesNibblesAndScales) {
  const uint8_t q4[2] = {0x8F, 0x71};  // elements: -1, -8, 1, 7
  const float s4[1] = {0.5f};
  k::Weight w{q4, DType::U8, 1, 4};
  w.quant = k::Quant::Q4;
  w.group = 4;
  w.scales = s4;
  float out[4];
  k::dequantize(w, 0, out);
  EXPECT_EQ(out[0], -0.5f);
  EXPECT_EQ(out[1], -4.0f);
  EXPECT_EQ(out[2], 0.5f);
  EXPECT_EQ(out[3], 3.5f);
  const int8_t q8[4] = {-127, 0, 5, 127};
  const float s8[2] = {2.f, 0.25f};
  k::Weight w8{q8, DType::I8, 1, 4};
  w8.quant = k::Quant::Q8;
  w8.group = 2;
  w8.scales = s8;
  k::dequantize(w8, 0, out);
  EXPECT_EQ(out[0], -254.f);
  EXPECT_EQ(out[1], 0.f);
  EXPECT_EQ(out[2], 1.25f);
  EXPECT_EQ(out[3], 31.75f);
  EXPECT_EQ(k::weight_bytes(w8), 4u + 8u);
  EXPECT_EQ(k::weight_bytes(w), 2u + 4u);
}

// Every tier (and the direct / widened-tile paths: M <= 4 and M > 4) against a double-precision
// reference over the dequantized weights, on odd shapes, strides and with bias.
TEST(QuantKernels, LinearMatchesReferenceOnEveryTier) {
  TierGuard guard;
  Int8ActGuard float_activations(false);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (k::Quant kind : {k::Quant::Q8, k::Quant::Q4}) {
    for (int64_t G : {16, 32, 64, 48}) {  // 48: not a power of two, the SIMD tiers hand it to the scalar twin
      for (int64_t K : {G, 3 * G, 8 * G}) {
        for (int64_t N : {1, 3, 5, 16, 17, 37}) {
          QWeight t = make_qweight(kind, N, K, G, rng);
          std::vector<float> wf(size_t(N * K));
          for (int64_t n = 0; n < N; ++n) k::dequantize(t.w, n, wf.data() + n * K);
          for (int64_t M : {1, 2, 4, 5, 9, 33}) {
            const int64_t ldx = K + 3, ldy = N + 2;
            std::vector<float> x(static_cast<size_t>(M * ldx)), bias(static_cast<size_t>(N));
            for (float& v : x) v = d(rng);
            for (float& v : bias) v = d(rng);
            std::vector<float> ref(size_t(M * N));
            std::vector<double> mag(size_t(M * N));
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double s = bias[size_t(n)], a = std::fabs(bias[size_t(n)]);
                for (int64_t kk = 0; kk < K; ++kk) {
                  s += double(x[size_t(m * ldx + kk)]) * wf[size_t(n * K + kk)];
                  a += std::fabs(double(x[size_t(m * ldx + kk)]) * wf[size_t(n * K + kk)]);
                }
                ref[size_t(m * N + n)] = float(s);
                mag[size_t(m * N + n)] = a;
              }
            // Also in panel order: tiers without the panel kernels unpack it.
            std::unique_ptr<PanelWeight> pw;
            if (K % 8 == 0 && G % 8 == 0) pw = std::make_unique<PanelWeight>(t.w);
            for (k::Isa isa : all_tiers()) {
              ASSERT_TRUE(k::set_isa(isa));
              for (const k::Weight* w : {&t.w, pw ? &pw->w : nullptr}) {
                if (!w) continue;
                std::vector<float> y(size_t(M * ldy), -7.f);
                k::linear(x.data(), M, ldx, *w, bias.data(), y.data(), ldy);
                for (int64_t m = 0; m < M; ++m) {
                  for (int64_t n = 0; n < N; ++n)
                    ASSERT_LE(std::fabs(y[size_t(m * ldy + n)] - ref[size_t(m * N + n)]),
                              1e-5 * mag[size_t(m * N + n)] + 1e-6)
                        << k::isa_name(isa) << (kind == k::Quant::Q8 ? " q8" : " q4") << (w->panels ? " panels" : "")
                        << " G=" << G << " M=" << M << " N=" << N << " K=" << K << " at " << m << "," << n;
                  ASSERT_EQ(y[size_t(m * ldy + N)], -7.f) << "wrote past the row";
                }
              }
            }
          }
        }
      }
    }
  }
}

// Int8 activations (Q8 weights, groups of 64 and 128): every tier that has them against a
// double reference over the same int8 activations, whose quantization the test redoes itself;
// tiers without them keep float32 activations (the float reference). Outlier rows, all-zero rows.
TEST(QuantKernels, Int8ActivationsMatchReference) {
  TierGuard guard;
  Int8ActGuard on(true);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  int int8_tiers = 0;
  struct Shape {
    k::Quant kind;
    int64_t G, K;
    std::vector<int64_t> Ns, Ms;
  };
  const k::Quant Q8 = k::Quant::Q8, Q4 = k::Quant::Q4;
  const std::vector<Shape> shapes = {
      {Q8, 64, 64, {1, 3, 5, 16, 17, 37}, {1, 2, 4, 5, 9, 13, 20, 25, 33}},
      {Q8, 64, 192, {1, 3, 5, 16, 17, 37}, {1, 2, 4, 5, 9, 13, 20, 25, 33}},
      {Q8, 64, 2048, {5, 17, 33}, {1, 3, 8, 13, 25}},  // 32 groups: whole 16-group scale vectors
      {Q8, 128, 3 * 128, {1, 3, 17}, {1, 2, 9, 33}},
      {Q8, 128, 8 * 128, {1, 3, 17}, {1, 2, 9, 33}},
      {Q8, 256, 512, {3, 17}, {1, 5, 9}},
      {Q8, 4096, 8192, {3, 17}, {1, 5, 9}},  // the largest group with int8 activations
      {Q4, 32, 64, {1, 3, 16, 17, 37}, {1, 2, 5, 9, 13, 33}},
      {Q4, 32, 192, {1, 5, 17}, {1, 4, 9, 20}},
      {Q4, 32, 128, {32, 128, 1000}, {1, 2, 9}},
      {Q4, 64, 2048, {5, 17}, {1, 3, 13}},
      {Q4, 128, 384, {3, 17}, {1, 9}},
  };
  int round = 0;
  for (const Shape& sh : shapes) {
    const int64_t G = sh.G, K = sh.K;
    for (int64_t N : sh.Ns) {
      QWeight t = make_qweight(sh.kind, N, K, G, rng);
      // Extreme weights too: q8 -128 (possible in a file, never written by the quantizer) and +127;
      // q4 -8 (nibble 8, never written either) and +7.
      if (sh.kind == Q8) {
        t.q8[0] = -128;
        t.q8[size_t(K - 1)] = 127;
        if (N > 2) std::fill(t.q8.begin() + 2 * K, t.q8.begin() + 2 * K + G, int8_t(-128));
      } else {
        t.q4[0] = 0x78;  // elements 0 and 1: -8 and +7
        if (N > 2) std::fill(t.q4.begin() + K, t.q4.begin() + K + G / 2, uint8_t(0x88));
      }
      // The integer weights, as the reference multiplies them.
      std::vector<int> wi(size_t(N * K));
      for (int64_t i = 0; i < N * K; ++i) {
        if (sh.kind == Q8) {
          wi[size_t(i)] = t.q8[size_t(i)];
        } else {
          const int nib = (i & 1) ? t.q4[size_t(i / 2)] >> 4 : t.q4[size_t(i / 2)] & 0x0F;
          wi[size_t(i)] = (nib ^ 8) - 8;
        }
      }
      std::vector<float> wf(size_t(N * K));
      for (int64_t n = 0; n < N; ++n) k::dequantize(t.w, n, wf.data() + n * K);
      {
        for (int64_t M : sh.Ms) {
          const bool with_bias = ++round % 3 != 0;
          const int64_t ldx = K + 3, ldy = N + 2, NG = K / G;
          std::vector<float> x(size_t(M * ldx));
          std::vector<float> bias(static_cast<size_t>(N));
          for (float& v : x) v = d(rng);
          for (float& v : bias) v = d(rng);
          if (!with_bias) std::fill(bias.begin(), bias.end(), 0.f);
          if (M > 1) x[size_t(ldx + 5)] = 300.f;                                    // an outlier in row 1
          if (M > 2) std::fill(x.begin() + 2 * ldx, x.begin() + 2 * ldx + G, 0.f);  // a zero group in row 2
          if (M > 3) std::fill(x.begin() + 3 * ldx, x.begin() + 3 * ldx + G, 1.f);  // x = 127 after quantizing
          // The test's own quantization: q = round_even(x * 127 / amax), scale = amax / 127.
          std::vector<int> xq(size_t(M * K));
          std::vector<double> xs(size_t(M * NG));
          for (int64_t m = 0; m < M; ++m)
            for (int64_t g = 0; g < NG; ++g) {
              float amax = 0.f;
              for (int64_t i = g * G; i < (g + 1) * G; ++i) amax = std::max(amax, std::fabs(x[size_t(m * ldx + i)]));
              xs[size_t(m * NG + g)] = amax / 127.f;
              for (int64_t i = g * G; i < (g + 1) * G; ++i)
                xq[size_t(m * K + i)] = amax == 0.f ? 0 : int(std::nearbyint(x[size_t(m * ldx + i)] * (127.f / amax)));
            }
          std::vector<double> ref_q(size_t(M * N)), mag_q(size_t(M * N)), ref_f(size_t(M * N)), mag_f(size_t(M * N));
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double s = bias[size_t(n)], a = std::fabs(bias[size_t(n)]), sf = s, af = a;
              for (int64_t g = 0; g < NG; ++g) {
                const double sc = double(t.scales[size_t(n * NG + g)]) * xs[size_t(m * NG + g)];
                for (int64_t i = g * G; i < (g + 1) * G; ++i) {
                  const double p = double(xq[size_t(m * K + i)]) * wi[size_t(n * K + i)] * sc;
                  s += p, a += std::fabs(p);
                  const double pf = double(x[size_t(m * ldx + i)]) * wf[size_t(n * K + i)];
                  sf += pf, af += std::fabs(pf);
                }
              }
              ref_q[size_t(m * N + n)] = s, mag_q[size_t(m * N + n)] = a;
              ref_f[size_t(m * N + n)] = sf, mag_f[size_t(m * N + n)] = af;
            }
          // Also in panel order: the avx512vnni / avx512bf16 tiers multiply the panels directly.
          auto pw = std::make_unique<PanelWeight>(t.w);
          for (k::Isa isa : all_tiers()) {
            ASSERT_TRUE(k::set_isa(isa));
            const bool int8 = k::int8_activations_active(t.w);
            int8_tiers += int8;
            const auto& ref = int8 ? ref_q : ref_f;
            const auto& mag = int8 ? mag_q : mag_f;
            for (const k::Weight* w : {&t.w, pw ? &pw->w : nullptr}) {
              if (!w) continue;
              ASSERT_EQ(k::int8_activations_active(*w), int8);
              std::vector<float> y(size_t(M * ldy), -7.f);
              k::linear(x.data(), M, ldx, *w, with_bias ? bias.data() : nullptr, y.data(), ldy);
              for (int64_t m = 0; m < M; ++m) {
                for (int64_t n = 0; n < N; ++n)
                  ASSERT_LE(std::fabs(y[size_t(m * ldy + n)] - ref[size_t(m * N + n)]),
                            1e-5 * mag[size_t(m * N + n)] + 1e-6)
                      << k::isa_name(isa) << (int8 ? " int8" : " float") << (sh.kind == Q8 ? " q8" : " q4")
                      << (w->panels ? " panels" : "") << " G=" << G << " M=" << M << " N=" << N << " K=" << K << " at "
                      << m << "," << n;
                ASSERT_EQ(y[size_t(m * ldy + N)], -7.f) << "wrote past the row";
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(int8_tiers, 0);  // the scalar twin at least
  // A NaN activation makes its row's outputs NaN (and only its row's), few rows and many.
  for (int64_t M : {2, 9}) {
    QWeight t = make_qweight(k::Quant::Q8, 5, 128, 64, rng);
    std::vector<float> x(size_t(M * 128), 0.25f), y(size_t(M * 5));
    x[70] = std::numeric_limits<float>::quiet_NaN();
    for (k::Isa isa : all_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      k::linear(x.data(), M, 128, t.w, nullptr, y.data(), 5);
      for (int64_t n = 0; n < 5; ++n) {
        EXPECT_TRUE(std::isnan(y[size_t(n)])) << k::isa_name(isa) << " M=" << M;
        EXPECT_FALSE(std::isnan(y[size_t(5 + n)])) << k::isa_name(isa) << " M=" << M;
      }
    }
  }
  // Off, and for groups that are not a multiple of 64, float32 activations.
  QWeight t = make_qweight(k::Quant::Q8, 4, 64, 64, rng);
  EXPECT_TRUE(k::int8_activations_active(t.w) || k::current_isa() != k::Isa::Scalar);
  k::set_int8_activations(false);
  EXPECT_FALSE(k::int8_activations_active(t.w));
  k::set_int8_activations(true);
  QWeight t32 = make_qweight(k::Quant::Q8, 4, 64, 32, rng);
  EXPECT_FALSE(k::int8_activations_active(t32.w));
  QWeight big = make_qweight(k::Quant::Q8, 1, 8192, 8192, rng);  // a group's int32 sum could overflow
  EXPECT_FALSE(k::int8_activations_active(big.w));
  QWeight q4 = make_qweight(k::Quant::Q4, 4, 64, 32, rng), q4odd = make_qweight(k::Quant::Q4, 4, 96, 32, rng);
  EXPECT_TRUE(k::int8_activations_active(q4.w) || k::current_isa() != k::Isa::Scalar);
  EXPECT_FALSE(k::int8_activations_active(q4odd.w));  // rows not a multiple of 64
}

// The activation quantizer of every tier gives the scalar twin's bytes, scales and sums, with
// ties at .5, all-zero groups, NaN and infinity (a NaN scale) and huge and tiny values.
TEST(QuantKernels, ActivationQuantizerIdenticalOnEveryTier) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> d(-2.f, 2.f);
  const int64_t G = 64, n = 8 * G;
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = d(rng) * std::pow(10.f, float(trial % 7) - 3.f);
    std::fill(x.begin() + G, x.begin() + 2 * G, 0.f);
    x[size_t(2 * G + 3)] = std::numeric_limits<float>::quiet_NaN();
    x[size_t(3 * G + 1)] = -std::numeric_limits<float>::infinity();
    for (int64_t i = 4 * G; i < 5 * G; ++i) x[size_t(i)] = float(i % 9 - 4) * 0.5f;  // amax 2: x * 63.5 has .5 ties
    x[size_t(6 * G)] = std::numeric_limits<float>::max();
    for (int64_t i = 5 * G; i < 6 * G; ++i) x[size_t(i)] = float(i % 3) * 1e-38f;  // 127 / max|x| overflows
    std::vector<int8_t> q0(static_cast<size_t>(n)), q1(static_cast<size_t>(n));
    std::vector<float> s0(static_cast<size_t>(n / G)), s1(static_cast<size_t>(n / G));
    std::vector<int32_t> u0(static_cast<size_t>(n / G)), u1(static_cast<size_t>(n / G));
    k::scalar_ops().quantize_act(x.data(), n, G, q0.data(), s0.data(), u0.data());
    EXPECT_EQ(u0[1], 0);
    EXPECT_EQ(s0[1], 0.f);
    EXPECT_TRUE(std::isnan(s0[2]));
    EXPECT_TRUE(std::isnan(s0[3]));
    EXPECT_EQ(s0[5], 0.f);  // a group of tiny values counts as zero
    EXPECT_EQ(u0[5], 0);
    EXPECT_TRUE(std::all_of(q0.begin() + 5 * G, q0.begin() + 6 * G, [](int8_t v) { return v == 0; }));
    // Each tier's ops are only touched where the CPU runs the tier (their code uses its instructions).
    const std::pair<k::Isa, const k::Ops& (*)()> tiers[] = {{k::Isa::Avx2, &k::avx2_ops},
                                                            {k::Isa::Avx512, &k::avx512_ops},
                                                            {k::Isa::Avx512Vnni, &k::avx512vnni_ops},
                                                            {k::Isa::Avx512Bf16, &k::avx512bf16_ops}};
    for (const auto& [isa, ops] : tiers) {
      if (!k::isa_supported(isa)) continue;
      const k::Ops* o = &ops();
      if (!o->quantize_act) continue;
      o->quantize_act(x.data(), n, G, q1.data(), s1.data(), u1.data());
      EXPECT_EQ(q0, q1);
      EXPECT_EQ(u0, u1);
      for (size_t g = 0; g < s0.size(); ++g)
        EXPECT_TRUE(s0[g] == s1[g] || (std::isnan(s0[g]) && std::isnan(s1[g]))) << g;
    }
  }
}

// Panel order: every row dequantizes to the same values as in rows (padding rows of a partial
// panel are zero weights with scale 0), byte counts, what pack_panels accepts, and which
// weights the current tier wants in panels.
TEST(QuantKernels, PanelOrderKeepsEveryRow) {
  TierGuard guard;
  Int8ActGuard on(true);
  std::mt19937 rng(5);
  for (k::Isa isa : all_tiers()) {  // the SIMD packer of the avx512vnni tiers and the scalar one
    ASSERT_TRUE(k::set_isa(isa));
    for (k::Quant kind : {k::Quant::Q8, k::Quant::Q4}) {
      for (int64_t N : {1, 16, 17, 37}) {
        QWeight t = make_qweight(kind, N, 192, 64, rng);
        if (kind == k::Quant::Q8)
          t.q8[0] = -128;
        else
          t.q4[0] = 0x78;  // -8 and +7
        PanelWeight pw(t.w);
        EXPECT_TRUE(pw.w.panels);
        EXPECT_EQ(pw.w.dtype, DType::U8);
        const int64_t padded = (N + 15) / 16 * 16, row = kind == k::Quant::Q8 ? 192 : 96;
        EXPECT_EQ(pw.data.size(), size_t(padded * row));
        EXPECT_EQ(pw.scales.size(), size_t(padded * 3));
        EXPECT_EQ(k::weight_bytes(pw.w), uint64_t(padded * row + padded * 3 * 4));
        std::vector<float> a(192), b(192);
        for (int64_t n = 0; n < N; ++n) {
          k::dequantize(t.w, n, a.data());
          k::dequantize(pw.w, n, b.data());
          ASSERT_EQ(a, b) << k::isa_name(isa) << " row " << n;
        }
        for (int64_t n = N; n < padded; ++n) {
          k::dequantize(pw.w, n, b.data());
          ASSERT_TRUE(std::all_of(b.begin(), b.end(), [](float v) { return v == 0.f; })) << "padding row " << n;
        }
      }
    }
  }
  QWeight q8 = make_qweight(k::Quant::Q8, 4, 128, 64, rng), q4 = make_qweight(k::Quant::Q4, 4, 128, 32, rng);
  QWeight q4g4 = make_qweight(k::Quant::Q4, 4, 64, 4, rng);  // a group of 4 does not fill a panel line
  std::vector<uint8_t> data(128 * 16);
  std::vector<float> sc(16 * 16);
  EXPECT_THROW(k::pack_panels(q4g4.w, data.data(), sc.data()), std::invalid_argument);
  PanelWeight pw(q8.w);
  EXPECT_THROW(k::pack_panels(pw.w, data.data(), sc.data()), std::invalid_argument);  // already in panels
  EXPECT_FALSE(k::panels_preferred(pw.w));
  for (k::Isa isa : all_tiers()) {
    ASSERT_TRUE(k::set_isa(isa));
    // Only the tier with the panel kernels, and only with int8 activations on.
    EXPECT_EQ(k::panels_preferred(q8.w), isa >= k::Isa::Avx512Vnni) << k::isa_name(isa);
    EXPECT_EQ(k::panels_preferred(q4.w), isa >= k::Isa::Avx512Vnni) << k::isa_name(isa);
    k::set_int8_activations(false);
    EXPECT_FALSE(k::panels_preferred(q8.w));
    EXPECT_FALSE(k::panels_preferred(q4.w));
    k::set_int8_activations(true);
  }
}

TEST(QuantKernels, RejectsInconsistentWeights) {
  std::vector<int8_t> q(64);
  std::vector<float> s(2, 1.f), x(64), y(2);
  k::Weight w{q.data(), DType::I8, 1, 64};
  w.quant = k::Quant::Q8;
  w.group = 48;  // does not divide 64
  w.scales = s.data();
  EXPECT_THROW(k::linear(x.data(), 1, 64, w, nullptr, y.data(), 1), std::invalid_argument);
  w.group = 32;
  w.scales = nullptr;
  EXPECT_THROW(k::linear(x.data(), 1, 64, w, nullptr, y.data(), 1), std::invalid_argument);
  w.scales = s.data();
  w.dtype = DType::U8;  // q8 must be I8
  EXPECT_THROW(k::linear(x.data(), 1, 64, w, nullptr, y.data(), 1), std::invalid_argument);
}

TEST(Quantize, RowRoundTripWithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.f, 1.f);
  const int64_t n = 256, G = 32;
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  std::fill(x.begin() + 64, x.begin() + 96, 0.f);  // an all-zero group
  x[5] = 40.f;                                     // an outlier only widens its own group
  std::vector<int8_t> q8(n);
  std::vector<uint8_t> q4(n / 2);
  std::vector<float> s8(n / G), s4(n / G);
  quantize_row_q8(x.data(), n, G, q8.data(), s8.data());
  quantize_row_q4(x.data(), n, G, q4.data(), s4.data());
  for (int64_t g = 0; g < n / G; ++g) {
    float amax = 0.f;
    for (int64_t i = g * G; i < (g + 1) * G; ++i) amax = std::max(amax, std::fabs(x[size_t(i)]));
    EXPECT_FLOAT_EQ(s8[size_t(g)], amax / 127.f);
    EXPECT_FLOAT_EQ(s4[size_t(g)], amax / 7.f);
  }
  EXPECT_EQ(s8[2], 0.f);
  for (int64_t i = 0; i < n; ++i) {
    const float sc8 = s8[size_t(i / G)], sc4 = s4[size_t(i / G)];
    const int v4 = (((i & 1) ? q4[size_t(i / 2)] >> 4 : q4[size_t(i / 2)] & 15) ^ 8) - 8;
    EXPECT_LE(std::abs(int(q8[size_t(i)])), 127);
    EXPECT_LE(std::abs(v4), 7);
    EXPECT_LE(std::fabs(x[size_t(i)] - float(q8[size_t(i)]) * sc8), 0.5f * sc8 * (1 + 1e-5f) + 1e-30f) << i;
    EXPECT_LE(std::fabs(x[size_t(i)] - float(v4) * sc4), 0.5f * sc4 * (1 + 1e-5f) + 1e-30f) << i;
  }
  // Relative RMS error of N(0,1) data: about 1/(127*sqrt(3)*2)*absmax for q8.
  double e8 = 0, e4 = 0, ss = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i / G == 0) continue;  // the outlier group
    const int v4 = (((i & 1) ? q4[size_t(i / 2)] >> 4 : q4[size_t(i / 2)] & 15) ^ 8) - 8;
    e8 += std::pow(x[size_t(i)] - q8[size_t(i)] * s8[size_t(i / G)], 2);
    e4 += std::pow(x[size_t(i)] - v4 * s4[size_t(i / G)], 2);
    ss += double(x[size_t(i)]) * x[size_t(i)];
  }
  EXPECT_LT(std::sqrt(e8 / ss), 0.015);
  EXPECT_LT(std::sqrt(e4 / ss), 0.2);
}

// Logits of the float32 model and of its quantized copy on the same fixed window.
// Random tiny models route on small score differences, so a slightly perturbed hidden state
// flips some expert choices and those tokens' logits move a lot: the dense first layer's
// output error (dense_err, before any routing) shows the quantization error itself.
struct Agreement {
  double min_cos = 1, mean_cos = 0, top1 = 0, dense_err = 0;
};

Agreement compare_models(const Model& ref, const Model& q, uint32_t seed) {
  const int64_t V = ref.config().vocab_size, W = 48;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> tok(0, V - 1);
  std::vector<int64_t> ids(static_cast<size_t>(W)), mask(static_cast<size_t>(W), 1);
  for (auto& t : ids) t = tok(rng);
  ForwardBatch fb;
  fb.batch = 1;
  fb.window = W;
  fb.input_ids = ids.data();
  fb.key_mask = mask.data();
  fb.attention = AttentionMode::BlockCausal;
  fb.block_length = 16;
  std::vector<float> a(size_t(W * V)), b(size_t(W * V));
  ForwardTrace ta, tb;
  ref.forward(fb, a.data(), &ta);
  q.forward(fb, b.data(), &tb);
  Agreement r;
  double d = 0, n = 0;
  for (size_t i = 0; i < ta.hidden[1].size(); ++i) {
    d += std::pow(double(ta.hidden[1][i]) - tb.hidden[1][i], 2);
    n += std::pow(double(ta.hidden[1][i]), 2);
  }
  r.dense_err = std::sqrt(d / n);
  int same = 0;
  for (int64_t p = 0; p < W; ++p) {
    const float* x = a.data() + p * V;
    const float* y = b.data() + p * V;
    double xy = 0, xx = 0, yy = 0;
    for (int64_t v = 0; v < V; ++v) {
      xy += double(x[v]) * y[v];
      xx += double(x[v]) * x[v];
      yy += double(y[v]) * y[v];
    }
    const double c = xy / std::sqrt(xx * yy);
    r.min_cos = std::min(r.min_cos, c);
    r.mean_cos += c / double(W);
    same += std::max_element(x, x + V) - x == std::max_element(y, y + V) - y;
  }
  r.top1 = double(same) / double(W);
  return r;
}

struct QualityCase {
  const char* model;
  QuantType type;
  int64_t group;
  double dense_err, mean_cos, top1;  // thresholds, with margin over the measured values (docs/quantization.md)
};

class QuantizedGolden : public ::testing::TestWithParam<QualityCase> {};

TEST_P(QuantizedGolden, LoadsAndTracksTheFloatModel) {
  const QualityCase& c = GetParam();
  TempDir dir(std::string(c.model) + "_" + quant_type_name(c.type));
  QuantizeOptions o;
  o.type = c.type;
  o.group = c.group;
  QuantizeStats st = quantize_checkpoint(golden_path(std::string("models/") + c.model), dir.str(), o);
  EXPECT_GT(st.quantized, 0);
  EXPECT_LT(st.out_bytes, st.in_bytes / 2);  // float32 embeddings stay
  ASSERT_TRUE(fs::exists(dir.path / "config.json"));
  SafetensorsFile f(dir.str("model.safetensors"));
  const std::string want = std::string(quant_type_name(c.type)) + "_g" + std::to_string(c.group);
  EXPECT_EQ(f.metadata().at("llada2.quantization"), want);
  const auto& t = f.tensors();
  const DType qd = c.type == QuantType::Q8 ? DType::I8 : DType::U8;
  EXPECT_EQ(t.at("model.layers.0.attention.query_key_value.weight").dtype, qd);
  // tiny-b's expert down projections have K = 32: a larger group leaves them float.
  EXPECT_EQ(t.at("model.layers.1.mlp.experts.0.down_proj.weight").dtype, c.group <= 32 ? qd : DType::F32);
  EXPECT_EQ(t.at("lm_head.weight").dtype, qd);
  EXPECT_EQ(t.at("lm_head.weight.qscale").dtype, DType::F32);
  EXPECT_EQ(t.at("model.layers.1.mlp.gate.weight").dtype, DType::F32);  // router stays float
  EXPECT_EQ(t.at("model.word_embeddings.weight").dtype, DType::F32);
  EXPECT_EQ(t.at("model.norm.weight").dtype, DType::F32);

  auto ref = golden_model(std::string("models/") + c.model);
  auto q = Model::load(dir.str());
  q->prepare();  // repacked for this tier and setting (then used on every tier below)
  Agreement a = compare_models(*ref, *q, 5);
  Agreement b = compare_models(*ref, *q, 6);
  std::printf(
      "[quality] %s %s: layer-0 rel err %.4f / %.4f, logit cosine mean %.4f / %.4f (min %.3f / %.3f), "
      "top-1 %.3f / %.3f\n",
      c.model, want.c_str(), a.dense_err, b.dense_err, a.mean_cos, b.mean_cos, a.min_cos, b.min_cos, a.top1, b.top1);
  EXPECT_LT(std::max(a.dense_err, b.dense_err), c.dense_err);
  EXPECT_GT(std::min(a.mean_cos, b.mean_cos), c.mean_cos);
  EXPECT_GE(std::min(a.top1, b.top1), c.top1);
  // Every tier gives the same logits up to float32 summation order, with float32 activations and
  // (on the tiers that have them) with int8 activations.
  ForwardBatch fb;
  std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<int64_t> mask(ids.size(), 1);
  fb = {1, int64_t(ids.size()), ids.data(), mask.data(), AttentionMode::Bidirectional, 9, 0};
  const int64_t V = q->config().vocab_size;
  TierGuard guard;
  for (bool int8 : {false, true}) {
    Int8ActGuard mode(int8);
    ASSERT_TRUE(k::set_isa(k::Isa::Scalar));
    std::vector<float> base(ids.size() * size_t(V));
    q->forward(fb, base.data());
    for (k::Isa isa : all_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      if (int8 && !tier_has_int8()) continue;
      std::vector<float> y(base.size());
      q->forward(fb, y.data());
      if (!int8) {
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], base[i], 1e-3 * std::max(1.f, std::fabs(base[i]))) << k::isa_name(isa) << " float at " << i;
        continue;
      }
      // With int8 activations each product agrees across tiers on the same input (QuantKernels
      // above), but the float32 parts between products (attention, norms) sum in each tier's order,
      // and an activation within 1e-6 of a rounding boundary can quantize one step apart: whole logit
      // rows then move by ~1e-2 (q4_g32 on tiny-b: 6.7e-3 relative RMS, one such step in the second
      // layer). So the logits are held to 5% relative RMS, which weights repacked wrongly for a tier
      // (a wrong scale, nibble or group) break many times over (q4 against the float model: ~60%).
      double d2 = 0, b2 = 0;
      for (size_t i = 0; i < y.size(); ++i)
        d2 += double(y[i] - base[i]) * (y[i] - base[i]), b2 += double(base[i]) * base[i];
      EXPECT_LT(std::sqrt(d2 / b2), 0.05) << k::isa_name(isa) << " int8";
      std::printf("[tiers] %s %s int8: relative RMS difference from the scalar tier %.2e\n", c.model, want.c_str(),
                  std::sqrt(d2 / b2));
    }
  }
  // With int8 activations the avx512vnni / avx512bf16 tiers repack the quantized weights into panels at load
  // (the file's pages of the originals released); a model loaded in rows gives the same logits.
  if (c.group >= (c.type == QuantType::Q8 ? 64 : 32)) {
    ASSERT_TRUE(k::set_isa(k::best_isa()));
    Int8ActGuard on(true);
    const bool packs = k::best_isa() >= k::Isa::Avx512Vnni;
    auto panels = Model::load(dir.str());
    EXPECT_FALSE(panels->checkpoint().released("lm_head.weight"));  // loading reads no weight
    panels->prepare();
    EXPECT_EQ(panels->checkpoint().released("lm_head.weight"), packs);
    EXPECT_EQ(panels->checkpoint().released("lm_head.weight.qscale"), packs);
    EXPECT_EQ(panels->checkpoint().released("model.layers.1.mlp.experts.3.up_proj.weight"), packs);
    EXPECT_FALSE(panels->checkpoint().released("model.word_embeddings.weight"));
    uint64_t prefaulted = 0;  // prefault() skips what was released
    panels->checkpoint().prefault([&](uint64_t, uint64_t total) { prefaulted = total; });
    const uint64_t all = panels->checkpoint().total_bytes(), head = panels->checkpoint().get("lm_head.weight").nbytes;
    if (packs)
      EXPECT_LE(prefaulted, all - head);
    else
      EXPECT_EQ(prefaulted, all);
    std::unique_ptr<Model> rows;
    {
      Int8ActGuard off(false);
      rows = Model::load(dir.str());
      rows->prepare();
    }
    EXPECT_FALSE(rows->checkpoint().released("lm_head.weight"));
    {  // LLADA2_PANELS=0 keeps the file's rows; anything but 0 / 1 is an error naming the variable
      ::setenv("LLADA2_PANELS", "0", 1);
      auto kept = Model::load(dir.str());
      kept->prepare();
      EXPECT_FALSE(kept->checkpoint().released("lm_head.weight"));
      ::setenv("LLADA2_PANELS", "yes", 1);
      try {
        Model::load(dir.str())->prepare();
        ADD_FAILURE() << "LLADA2_PANELS=yes accepted";
      } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("LLADA2_PANELS"), std::string::npos) << e.what();
      }
      ::unsetenv("LLADA2_PANELS");
    }
    for (int64_t n : {int64_t(3), int64_t(ids.size())}) {  // few rows and many
      ForwardBatch fn = fb;
      fn.window = n;
      fn.block_length = n;
      std::vector<float> yp(size_t(n * V)), yr(size_t(n * V));
      panels->forward(fn, yp.data());
      rows->forward(fn, yr.data());
      for (size_t i = 0; i < yp.size(); ++i)
        ASSERT_NEAR(yp[i], yr[i], 1e-4 * std::max(1.f, std::fabs(yr[i]))) << "window " << n << " at " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, QuantizedGolden,
                         ::testing::Values(QualityCase{"tiny-a-f32", QuantType::Q8, 16, 0.02, 0.97, 0.75},
                                           QualityCase{"tiny-b-f32", QuantType::Q8, 32, 0.02, 0.97, 0.75},
                                           QualityCase{"tiny-b-f32", QuantType::Q8, 64, 0.02, 0.97, 0.75},
                                           QualityCase{"tiny-b-f32", QuantType::Q4, 32, 0.3, 0.7, 0.1},
                                           QualityCase{"tiny-b-f32", QuantType::Q4, 16, 0.3, 0.7, 0.1}),
                         [](const ::testing::TestParamInfo<QualityCase>& i) {
                           std::string s = std::string(i.param.model) + "_" + quant_type_name(i.param.type) + "_g" +
                                           std::to_string(i.param.group);
                           for (char& ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

// A weight whose K is not a multiple of the group stays float; the model still loads.
TEST(Quantize, KeepsTensorsTheGroupDoesNotDivide) {
  TempDir dir("keep");
  QuantizeOptions o;
  o.group = 64;  // tiny-b's expert down_proj has K = 32
  quantize_checkpoint(golden_path("models/tiny-b-f32"), dir.str(), o);
  SafetensorsFile f(dir.str("model.safetensors"));
  EXPECT_EQ(f.tensors().at("model.layers.1.mlp.experts.0.down_proj.weight").dtype, DType::F32);
  EXPECT_EQ(f.tensors().count("model.layers.1.mlp.experts.0.down_proj.weight.qscale"), 0u);
  EXPECT_EQ(f.tensors().at("model.layers.1.mlp.experts.0.up_proj.weight").dtype, DType::I8);
  EXPECT_NO_THROW(Model::load(dir.str()));
}

// Sharded output: index + shards, each shard's header names the quantization.
TEST(Quantize, ShardsLikeTheWriter) {
  TempDir dir("shards");
  QuantizeOptions o;
  o.group = 32;
  o.max_shard_bytes = 200000;
  quantize_checkpoint(golden_path("models/tiny-b-f32"), dir.str(), o);
  ASSERT_TRUE(fs::exists(dir.path / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir.path / "model.safetensors"));
  auto ref = golden_model("models/tiny-b-f32");
  auto q = Model::load(dir.str());
  EXPECT_LT(compare_models(*ref, *q, 9).dense_err, 0.02);
}

// Rewrites `src`'s model.safetensors into `dst` with one tensor's spec replaced (zero data).
void write_with(const std::string& src, const std::string& dst, const TensorSpec& changed) {
  Checkpoint ck(src);
  fs::create_directories(dst);
  fs::copy_file(fs::path(src) / "config.json", fs::path(dst) / "config.json");
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : ck.tensors())
    specs.push_back(name == changed.name ? changed : TensorSpec{name, t.dtype, t.shape});
  SafetensorsWriter w((fs::path(dst) / "model.safetensors").string(), specs);
  for (const TensorSpec& s : w.tensors()) {
    if (s.name == changed.name) {
      std::vector<uint8_t> zero(size_t(s.nbytes()));
      w.write(s.name, zero.data(), zero.size());
    } else {
      const TensorView& t = ck.get(s.name);
      w.write(s.name, t.data, t.nbytes);
    }
  }
  w.finish();
}

TEST(Quantize, LoaderNamesInconsistentTensors) {
  TempDir dir("bad");
  QuantizeOptions o;
  o.group = 16;
  quantize_checkpoint(golden_path("models/tiny-a-f32"), dir.str("q"), o);
  Checkpoint ck(dir.str("q"));
  const std::string name = "model.layers.0.attention.dense.weight";
  const TensorView& s = ck.get(name + ".qscale");
  const TensorView& w = ck.get(name);
  struct Bad {
    TensorSpec spec;
    const char* needle;
  } bad[] = {
      {{name + ".qscale", DType::F32, {s.shape[0], s.shape[1] * 3}}, "qscale"},
      {{name + ".qscale", DType::BF16, s.shape}, "qscale"},
      {{name, DType::I8, {w.shape[0], w.shape[1] / 2}}, "has shape"},
      {{name, DType::F16, w.shape}, "I8 or U8"},
  };
  int i = 0;
  for (const Bad& b : bad) {
    const std::string out = dir.str("bad" + std::to_string(i++));
    write_with(dir.str("q"), out, b.spec);
    try {
      Model::load(out);
      ADD_FAILURE() << "loaded with " << b.spec.name;
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.needle), std::string::npos) << e.what();
    }
  }
}

// --layout panels: the weights whose shape allows it are stored in the int8 kernels' panel order
// (the others in rows); the model loads them as they are and computes what the rows checkpoint
// computes, on every tier.
TEST(Quantize, PanelLayoutLoadsAsStored) {
  TempDir dir("panels");
  TierGuard guard;
  Int8ActGuard on(true);
  const std::string model = golden_path("models/tiny-b-f32");
  for (QuantType type : {QuantType::Q8, QuantType::Q4}) {
    const std::string tag = quant_type_name(type);
    QuantizeOptions o;
    o.type = type;
    o.group = type == QuantType::Q8 ? 64 : 32;
    const QuantizeStats rows_stats = quantize_checkpoint(model, dir.str(tag + "-rows"), o);
    o.panels = true;
    QuantizeStats st = quantize_checkpoint(model, dir.str(tag + "-panels"), o);
    SafetensorsFile f(dir.str(tag + "-panels/model.safetensors"));
    EXPECT_EQ(f.metadata().at("llada2.layout"), "panels");
    const auto& t = f.tensors();
    const std::string qkv = "model.layers.0.attention.query_key_value.weight";  // [192, 128]
    const int64_t per = type == QuantType::Q8 ? 32 : 16;
    EXPECT_EQ(t.at(qkv).dtype, DType::U8);
    EXPECT_EQ(t.at(qkv).shape, (std::vector<int64_t>{12, per, 16, 4}));
    EXPECT_EQ(t.at(qkv + ".qscale").shape, (std::vector<int64_t>{12, 128 / o.group, 16}));
    EXPECT_EQ(t.at("lm_head.weight").shape.size(), 2u);  // 1000 rows: not whole panels, kept in rows
    EXPECT_EQ(st.out_bytes, rows_stats.out_bytes);       // whole panels only: no padding
    auto rows = Model::load(dir.str(tag + "-rows"));
    auto panels = Model::load(dir.str(tag + "-panels"));
    rows->prepare();
    panels->prepare();
    EXPECT_FALSE(panels->checkpoint().released(qkv));  // used as stored, not repacked
    ForwardBatch fb;
    std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    std::vector<int64_t> mask(ids.size(), 1);
    fb = {1, int64_t(ids.size()), ids.data(), mask.data(), AttentionMode::Bidirectional, 9, 0};
    const size_t n = ids.size() * size_t(rows->config().vocab_size);
    std::vector<float> yr(n), yp(n);
    for (k::Isa isa : all_tiers()) {
      ASSERT_TRUE(k::set_isa(isa));
      rows->forward(fb, yr.data());
      panels->forward(fb, yp.data());
      for (size_t i = 0; i < n; ++i)
        ASSERT_NEAR(yp[i], yr[i], 1e-4 * std::max(1.f, std::fabs(yr[i])))
            << tag << " " << k::isa_name(isa) << " at " << i;
    }
  }
  // A panel-ordered tensor of the wrong shape is named with what was expected.
  const std::string name = "model.layers.0.attention.query_key_value.weight";
  write_with(dir.str("q8-panels"), dir.str("bad"), TensorSpec{name, DType::U8, {12, 32, 8, 8}});
  try {
    Model::load(dir.str("bad"));
    ADD_FAILURE() << "loaded a mis-shaped panel tensor";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("panel order"), std::string::npos) << e.what();
  }
}

TEST(QuantizeCli, WritesALoadableModelAndRejectsBadInput) {
  TempDir dir("cli");
  const std::string model = golden_path("models/tiny-b-f32");
  std::string out, err;
  EXPECT_EQ(run_cli("quantize -m " + model + " --type q4 --out " + dir.str("q4"), &out, &err), 0) << err;
  EXPECT_NO_THROW(Model::load(dir.str("q4")));
  SafetensorsFile f(dir.str("q4/model.safetensors"));
  EXPECT_EQ(f.metadata().at("llada2.quantization"), "q4_g32");

  EXPECT_EQ(run_cli("quantize -m " + model + " --type q3 --out " + dir.str("x"), &out, &err), 2);
  EXPECT_NE(err.find("--type"), std::string::npos) << err;
  EXPECT_EQ(run_cli("quantize -m " + dir.str("missing") + " --type q8 --out " + dir.str("x"), &out, &err), 2);
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
  EXPECT_EQ(run_cli("quantize -m " + model + " --type q8 --out " + dir.str("q4"), &out, &err), 2);
  EXPECT_NE(err.find("not empty"), std::string::npos) << err;
  EXPECT_EQ(run_cli("quantize -m " + model + " --type q8 --group 24 --out " + dir.str("y"), &out, &err), 2);
  EXPECT_NE(err.find("--group"), std::string::npos) << err;
  EXPECT_EQ(run_cli("quantize -m " + dir.str("q4") + " --type q8 --out " + dir.str("z"), &out, &err), 2);
  EXPECT_NE(err.find("already quantized"), std::string::npos) << err;
  EXPECT_EQ(run_cli("quantize --type q8 --out " + dir.str("z"), &out, &err), 2);
  EXPECT_EQ(run_cli("quantize -m " + model + " --type q8 --layout tiles --out " + dir.str("z"), &out, &err), 2);
  EXPECT_NE(err.find("--layout"), std::string::npos) << err;
  EXPECT_EQ(run_cli("quantize -m " + model + " --type q8 --layout panels --out " + dir.str("p"), &out, &err), 0) << err;
  EXPECT_EQ(SafetensorsFile(dir.str("p/model.safetensors")).metadata().at("llada2.layout"), "panels");
  EXPECT_FALSE(fs::exists(dir.path / "x"));
  EXPECT_FALSE(fs::exists(dir.path / "y"));
  EXPECT_FALSE(fs::exists(dir.path / "z"));
}

// --int8-activations on|off reaches the kernels: bench reports which share of the FLOPs ran over
// int8 activations (none with off; all quantized products with on, where the tier has them).
TEST(QuantizeCli, Int8ActivationsFlag) {
  TempDir dir("int8flag");
  const std::string model = golden_path("models/tiny-b-f32");
  std::string out, err;
  ASSERT_EQ(run_cli("quantize -m " + model + " --type q8 --out " + dir.str("q8") + " --quiet", &out, &err), 0) << err;
  const std::string bench =
      "bench -m " + dir.str("q8") +
      " --prompt-length 8 --gen-length 8 --block-length 4 --steps 4 --bandwidth-gbs 20 --peak-gflops 100 --json";
  for (const char* mode : {"on", "off"}) {
    ASSERT_EQ(run_cli(bench + " --int8-activations " + mode, &out, &err), 0) << err;
    const double frac = nlohmann::json::parse(out).at("roofline").at("int8_flop_fraction").get<double>();
    bool has_int8;
    {
      Int8ActGuard on(true);  // whatever LLADA2_INT8_ACT says to this process
      has_int8 = tier_has_int8();
    }
    if (std::string(mode) == "off" || !has_int8) {
      EXPECT_EQ(frac, 0.0) << mode;
    } else {
      EXPECT_GT(frac, 0.5) << mode;
    }
  }
  EXPECT_EQ(run_cli(bench + " --int8-activations maybe", &out, &err), 2);
  EXPECT_NE(err.find("--int8-activations"), std::string::npos) << err;
}

}  // namespace
}  // namespace llada2::testing
