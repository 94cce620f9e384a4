#include "model/block_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace llada2 {

std::vector<int64_t> routing_chunks(int64_t batch, int64_t start, int64_t n, int64_t block_length, int64_t block_size) {
  std::vector<int64_t> starts;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = start + i;
      if (i == 0 || pos % block_size == 0 || (block_length > 0 && pos % block_length == 0)) starts.push_back(b * n + i);
    }
  starts.push_back(batch * n);
  return starts;
}

void block_route(const ModelConfig& c, const float* logits, const float* expert_bias,
                 const std::vector<int64_t>& chunks, int32_t* chosen, float* weight,
                 std::vector<std::vector<int32_t>>* pools) {
  const int64_t E = c.num_experts, TK = c.num_experts_per_tok;
  const int64_t capacity = std::min(c.expert_capacity, E);
  if (pools) pools->clear();
  std::vector<float> s, r, g(static_cast<size_t>(E));
  std::vector<int32_t> pool(static_cast<size_t>(E)), order;
  for (size_t ci = 0; ci + 1 < chunks.size(); ++ci) {
    const int64_t t0 = chunks[ci], m = chunks[ci + 1] - t0;
    s.resize(size_t(m * E));
    r.resize(size_t(m * E));
    std::fill(g.begin(), g.end(), -std::numeric_limits<float>::infinity());
    for (int64_t t = 0; t < m; ++t)
      for (int64_t e = 0; e < E; ++e) {
        const float x = logits[(t0 + t) * E + e];
        const float sv = 1.0f / (1.0f + std::exp(-x));
        s[size_t(t * E + e)] = sv;
        r[size_t(t * E + e)] = sv + expert_bias[e];
        g[size_t(e)] = std::max(g[size_t(e)], r[size_t(t * E + e)]);
      }
    // The pool: the experts with the largest chunk maxima, ties to the lower index.
    std::iota(pool.begin(), pool.end(), 0);
    std::partial_sort(pool.begin(), pool.begin() + capacity, pool.end(), [&](int32_t a, int32_t b) {
      return g[size_t(a)] > g[size_t(b)] || (g[size_t(a)] == g[size_t(b)] && a < b);
    });
    if (pools) pools->emplace_back(pool.begin(), pool.begin() + capacity);
    for (int64_t t = 0; t < m; ++t) {
      const float* rt = r.data() + t * E;
      const float* st = s.data() + t * E;
      order.assign(pool.begin(), pool.begin() + capacity);
      std::partial_sort(order.begin(), order.begin() + TK, order.end(),
                        [&](int32_t a, int32_t b) { return rt[a] > rt[b] || (rt[a] == rt[b] && a < b); });
      int32_t* ct = chosen + (t0 + t) * TK;
      float* wt = weight + (t0 + t) * TK;
      float sum = 0.f;
      for (int64_t k = 0; k < TK; ++k) {
        ct[k] = order[size_t(k)];
        sum += st[ct[k]];
      }
      for (int64_t k = 0; k < TK; ++k) wt[k] = st[ct[k]] / (sum + 1e-20f) * float(c.routed_scaling_factor);
    }
  }
}

}  // namespace llada2
