// The benchmark routing of include/llada2/bench.h (set_uniform_routing).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace llada2 {

class UniformRouting {
 public:
  void set(uint64_t seed);
  bool on() const { return seed_.load(std::memory_order_relaxed) != 0; }
  // Overwrites the router's choice for n tokens: chosen / weight [n, k] get k distinct experts of
  // E per token, weights 1 / k. With block routing (`chunks`, as block_route takes them, and
  // `capacity` > 0) each chunk first draws a pool of min(capacity, E) distinct experts, and its
  // tokens draw theirs within it.
  void draw(int64_t n, int64_t k, int64_t E, int32_t* chosen, float* weight,
            const std::vector<int64_t>* chunks = nullptr, int64_t capacity = 0);

 private:
  std::atomic<uint64_t> seed_{0}, calls_{0};
};

}  // namespace llada2
