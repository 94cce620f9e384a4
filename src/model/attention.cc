#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernels.h"

namespace llada2 {

// Per tile of keys: scores = Q K^T (matmul_acc over the transposed keys: every output a lane of its
// own, no sums across lanes), masked and scaled; each row's running maximum grows to the tile's
// (the sum and the accumulated context rescaled by exp(old - new) when it does), its scores become
// exp(score - maximum) and add to the sum; context += P V. At the end context / sum.
//
// bf16 products: Q and each tile's P rounded to bf16 for matmul_acc_bf16. The sum stays that of the
// float32 probabilities, as torch's CPU flash attention keeps it (it rounds exp(score - maximum) to
// bf16 for P V only); summing the rounded ones instead measured further from the pure-bf16 goldens
// (tests/fast_mode_test.cc: first divergence at 33% of the run instead of 46%).
void attend_rows(const float* q, int64_t R, int64_t D, const uint8_t* kt, int64_t ldk, const uint8_t* v, DType dtype,
                 int64_t E, const int64_t* key_mask, float scale, float* out, AttendScratch& s, bool bf16_products) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const size_t es = dtype_size(dtype);
  const bool bf16 = bf16_products && dtype == DType::BF16 && kernels::matmul_acc_bf16_available();
  s.acc.assign(size_t(R * D), 0.f);
  s.run_max.assign(size_t(R), kNegInf);
  s.run_sum.assign(size_t(R), 0.f);
  if (bf16) {
    s.qb.resize(size_t(R * D));
    kernels::to_bf16(q, R * D, s.qb.data());
  }
  for (int64_t s0 = 0; s0 < E; s0 += kAttendTile) {
    const int64_t T = std::min(kAttendTile, E - s0);
    s.scores.assign(size_t(R * T), 0.f);
    if (bf16) {
      kernels::matmul_acc_bf16(s.qb.data(), R, D, reinterpret_cast<const uint16_t*>(kt) + s0, D, T, ldk,
                               s.scores.data(), T);
    } else {
      kernels::matmul_acc(q, R, D, kt + size_t(s0) * es, dtype, D, T, ldk, s.scores.data(), T);
    }
    for (int64_t r = 0; r < R; ++r) {
      float* p = s.scores.data() + r * T;
      float tile_max = kNegInf;
      for (int64_t t = 0; t < T; ++t) {
        p[t] = key_mask[s0 + t] == 0 ? kNegInf : p[t] * scale;
        tile_max = std::max(tile_max, p[t]);
      }
      float& mx = s.run_max[size_t(r)];
      const float new_max = std::max(mx, tile_max);
      if (new_max == kNegInf) {  // no key visible yet: this tile adds nothing
        std::fill(p, p + T, 0.f);
        continue;
      }
      if (new_max != mx && mx != kNegInf) {
        const float alpha = std::exp(mx - new_max);
        s.run_sum[size_t(r)] *= alpha;
        for (int64_t d = 0; d < D; ++d) s.acc[size_t(r * D + d)] *= alpha;
      }
      mx = new_max;
      s.run_sum[size_t(r)] += kernels::exp_shift_sum(p, T, new_max);
    }
    if (bf16) {
      s.pb.resize(size_t(R * T));
      kernels::to_bf16(s.scores.data(), R * T, s.pb.data());
      kernels::matmul_acc_bf16(s.pb.data(), R, T, reinterpret_cast<const uint16_t*>(v) + s0 * D, T, D, D, s.acc.data(),
                               D);
    } else {
      kernels::matmul_acc(s.scores.data(), R, T, v + size_t(s0 * D) * es, dtype, T, D, D, s.acc.data(), D);
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    const float inv = s.run_sum[size_t(r)] > 0.f ? 1.0f / s.run_sum[size_t(r)] : 0.f;
    for (int64_t d = 0; d < D; ++d) out[r * D + d] = s.acc[size_t(r * D + d)] * inv;
  }
}

}  // namespace llada2
