// attend_rows (src/model/attention.h), the attention of Model's forward over cached keys, against a
// plain double-precision softmax: key counts on both sides of the key tile, padding masks that hide
// whole tiles, scores that grow from tile to tile (the online softmax rescales), float32 and bf16
// stores, on every kernel tier.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernels.h"
#include "model/attention.h"

using namespace llada2;
namespace k = llada2::kernels;

namespace {

struct Store {
  std::vector<uint8_t> kt, v;
  std::vector<double> kd, vd;  // the stored values, as the reference reads them
};

// Keys transposed [D, ldk] and values [E, D] in dtype, from random values; `drift` adds a key
// component that grows with the position, so later tiles hold larger scores.
Store make_store(int64_t E, int64_t D, int64_t ldk, DType dt, float drift, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  Store s;
  const size_t es = dtype_size(dt);
  s.kt.assign(size_t(D * ldk) * es, 0);
  s.v.assign(size_t(E * D) * es, 0);
  s.kd.assign(size_t(E * D), 0);
  s.vd.assign(size_t(E * D), 0);
  auto put = [&](uint8_t* base, size_t i, float x) -> double {
    if (dt == DType::F32) {
      std::memcpy(base + i * 4, &x, 4);
      return x;
    }
    const uint16_t h = f32_to_bf16(x);
    std::memcpy(base + i * 2, &h, 2);
    return bf16_to_f32(h);
  };
  for (int64_t e = 0; e < E; ++e)
    for (int64_t d = 0; d < D; ++d) {
      const float kx = nd(rng) + (d == 0 ? drift * float(e) / float(E) : 0.f);
      s.kd[size_t(e * D + d)] = put(s.kt.data(), size_t(d * ldk + e), kx);
      s.vd[size_t(e * D + d)] = put(s.v.data(), size_t(e * D + d), nd(rng));
    }
  return s;
}

std::vector<double> reference(const std::vector<float>& q, int64_t R, int64_t D, const Store& s, int64_t E,
                              const std::vector<int64_t>& mask, float scale) {
  std::vector<double> out(size_t(R * D), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> sc(size_t(E), -INFINITY);
    double mx = -INFINITY;
    for (int64_t e = 0; e < E; ++e) {
      if (!mask[size_t(e)]) continue;
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += double(q[size_t(r * D + d)]) * s.kd[size_t(e * D + d)];
      sc[size_t(e)] = dot * scale;
      mx = std::max(mx, sc[size_t(e)]);
    }
    if (mx == -INFINITY) continue;
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += mask[size_t(e)] ? std::exp(sc[size_t(e)] - mx) : 0.0;
    for (int64_t e = 0; e < E; ++e) {
      if (!mask[size_t(e)]) continue;
      const double p = std::exp(sc[size_t(e)] - mx) / sum;
      for (int64_t d = 0; d < D; ++d) out[size_t(r * D + d)] += p * s.vd[size_t(e * D + d)];
    }
  }
  return out;
}

std::vector<k::Isa> tiers() {
  std::vector<k::Isa> out = {k::Isa::Scalar};
  for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16})
    if (k::isa_supported(isa)) out.push_back(isa);
  return out;
}

// The key masks of the tests over E keys: every key (kind 0), scattered padding (1), or the first tile
// and a bit more hidden, so that rows start seeing keys late (2).
std::vector<int64_t> key_mask(int64_t E, int kind) {
  std::vector<int64_t> mask(size_t(E), 1);
  if (kind == 1)
    for (int64_t e = 0; e < E; e += 7) mask[size_t(e)] = 0;
  if (kind == 2)
    for (int64_t e = 0; e < std::min(E - 1, kAttendTile + 3); ++e) mask[size_t(e)] = 0;
  return mask;
}

}  // namespace

TEST(Attention, MatchesDoubleSoftmaxAcrossTiles) {
  const k::Isa saved = k::current_isa();
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t T = kAttendTile;
  int checked = 0;
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t D : {8, 64, 128})
      for (int64_t E : {int64_t(1), int64_t(3), T - 1, T, T + 1, 2 * T + 37, 4 * T})
        for (int mask_kind = 0; mask_kind < 4; ++mask_kind) {
          const int64_t R = E % 2 ? 5 : 32, ldk = E + 7;
          const float drift = mask_kind == 3 ? 40.f : 4.f;  // 3: scores grow steeply with the position
          const Store s = make_store(E, D, ldk, dt, drift, rng);
          const std::vector<int64_t> mask = key_mask(E, mask_kind == 3 ? 0 : mask_kind);
          std::vector<float> q(size_t(R * D));
          for (float& x : q) x = nd(rng) * (mask_kind == 3 ? 2.f : 1.f);
          const float scale = 1.0f / std::sqrt(float(D));
          const std::vector<double> want = reference(q, R, D, s, E, mask, scale);
          for (k::Isa isa : tiers()) {
            ASSERT_TRUE(k::set_isa(isa));
            std::vector<float> out(size_t(R * D), NAN);
            AttendScratch scratch;
            attend_rows(q.data(), R, D, s.kt.data(), ldk, s.v.data(), dt, E, mask.data(), scale, out.data(), scratch,
                        false);
            for (size_t i = 0; i < out.size(); ++i)
              ASSERT_NEAR(out[i], want[i], 2e-5) << k::isa_name(isa) << " " << dtype_name(dt) << " D=" << D
                                                 << " E=" << E << " mask " << mask_kind << " at " << i;
            ++checked;
          }
        }
  k::set_isa(saved);
  EXPECT_GT(checked, 150);
}

TEST(Attention, RowsThatSeeNoKeyGetZeros) {
  std::mt19937 rng(22);
  const int64_t E = 300, D = 16, R = 3;
  const Store s = make_store(E, D, E, DType::F32, 1.f, rng);
  const std::vector<int64_t> mask(size_t(E), 0);
  std::vector<float> q(size_t(R * D), 1.f), out(size_t(R * D), NAN);
  AttendScratch scratch;
  attend_rows(q.data(), R, D, s.kt.data(), E, s.v.data(), DType::F32, E, mask.data(), 0.25f, out.data(), scratch,
              false);
  for (float x : out) EXPECT_EQ(x, 0.f);
}

// The bf16 products (the fast mode on CPUs with AVX512-BF16): bf16 queries against a bf16 store, each
// tile's probabilities rounded to bf16 (a relative 2^-9 each), against the double softmax; where the
// tier has no bf16 dot products, or the store is float32, the same bits as without them.
TEST(Attention, Bf16ProductsMatchDoubleSoftmax) {
  const k::Isa saved = k::current_isa();
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t T = kAttendTile;
  int bf16_runs = 0;
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t D : {64, 72, 128})
      for (int64_t E : {int64_t(1), int64_t(3), T - 1, T + 1, 2 * T + 37})
        for (int mask_kind = 0; mask_kind < 3; ++mask_kind) {
          const int64_t R = E % 2 ? 5 : 32, ldk = E + 7;
          const float drift = mask_kind == 2 ? 40.f : 4.f;
          const Store s = make_store(E, D, ldk, dt, drift, rng);
          const std::vector<int64_t> mask = key_mask(E, mask_kind == 1 ? 1 : 0);
          std::vector<float> q(size_t(R * D));
          for (float& x : q) x = bf16_to_f32(f32_to_bf16(nd(rng)));
          const float scale = 1.0f / std::sqrt(float(D));
          const std::vector<double> want = reference(q, R, D, s, E, mask, scale);
          for (k::Isa isa : tiers()) {
            ASSERT_TRUE(k::set_isa(isa));
            std::vector<float> out(size_t(R * D), NAN), plain(size_t(R * D), NAN);
            AttendScratch scratch;
            attend_rows(q.data(), R, D, s.kt.data(), ldk, s.v.data(), dt, E, mask.data(), scale, out.data(), scratch,
                        true);
            const bool bf16 = dt == DType::BF16 && k::matmul_acc_bf16_available();
            bf16_runs += bf16;
            if (!bf16) {
              attend_rows(q.data(), R, D, s.kt.data(), ldk, s.v.data(), dt, E, mask.data(), scale, plain.data(),
                          scratch, false);
              ASSERT_EQ(0, std::memcmp(out.data(), plain.data(), out.size() * sizeof(float)))
                  << k::isa_name(isa) << " " << dtype_name(dt) << " D=" << D << " E=" << E;
            }
            // A probability near 1 rounded by 2^-9 moves the output by that much of a value (|v| < 5).
            for (size_t i = 0; i < out.size(); ++i)
              ASSERT_NEAR(out[i], want[i], bf16 ? 1e-2 : 2e-5)
                  << k::isa_name(isa) << " " << dtype_name(dt) << " D=" << D << " E=" << E << " mask " << mask_kind
                  << " at " << i;
          }
        }
  k::set_isa(saved);
  if (!k::isa_supported(k::Isa::Avx512Bf16)) {
    GTEST_SKIP() << "no AVX512-BF16 here: only the float32 products ran";
  }
  EXPECT_EQ(bf16_runs, 3 * 5 * 3);
}
