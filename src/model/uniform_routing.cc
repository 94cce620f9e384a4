#include "model/uniform_routing.h"

#include <algorithm>

namespace llada2 {

void UniformRouting::set(uint64_t seed) {
  calls_.store(0);
  seed_.store(seed);
}

void UniformRouting::draw(int64_t n, int64_t k, int64_t E, int32_t* chosen, float* weight) {
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
  for (int64_t t = 0; t < n; ++t) {
    int32_t* row = chosen + t * k;
    for (int64_t j = 0; j < k; ++j) {
      int32_t e;
      do {
        e = int32_t(next() % uint64_t(E));
      } while (std::find(row, row + j, e) != row + j);
      row[j] = e;
      weight[t * k + j] = 1.0f / float(k);
    }
  }
}

}  // namespace llada2
