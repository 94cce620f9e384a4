#include "model/uniform_routing.h"

#include <algorithm>

namespace llada2 {

void UniformRouting::set(uint64_t seed) {
  calls_.store(0);
  seed_.store(seed);
}

void UniformRouting::draw(int64_t n, int64_t k, int64_t E, int32_t* chosen, float* weight,
                          const std::vector<int64_t>* chunks, int64_t capacity) {
  // splitmix64 over (seed, call, token): each call (MoE layer, forward) draws differently.
  uint64_t z =
      seed_.load(std::memory_order_relaxed) ^ (calls_.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ull);
  auto next = [&z] {
    z += 0x9E3779B97F4A7C15ull;
    uint64_t r = z;
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
    return r ^ (r >> 31);
  };
  // `count` distinct draws from pool[0, size) into out.
  auto distinct = [&](const std::vector<int32_t>& pool, int64_t count, int32_t* out) {
    for (int64_t j = 0; j < count; ++j) {
      int32_t e;
      do {
        e = pool[size_t(next() % uint64_t(pool.size()))];
      } while (std::find(out, out + j, e) != out + j);
      out[j] = e;
    }
  };
  std::vector<int32_t> all(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) all[size_t(e)] = int32_t(e);
  const bool pooled = chunks && capacity > 0 && capacity < E;
  const std::vector<int64_t> whole = {0, n};
  const std::vector<int64_t>& cuts = pooled ? *chunks : whole;
  std::vector<int32_t> pool(static_cast<size_t>(pooled ? capacity : 0));
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    if (pooled) distinct(all, capacity, pool.data());
    for (int64_t t = cuts[c]; t < cuts[c + 1]; ++t) {
      distinct(pooled ? pool : all, k, chosen + t * k);
      for (int64_t j = 0; j < k; ++j) weight[t * k + j] = 1.0f / float(k);
    }
  }
}

}  // namespace llada2
