// The benchmark routing of include/llada2/bench.h (set_uniform_routing).
#pragma once

#include <atomic>
#include <cstdint>

namespace llada2 {

class UniformRouting {
 public:
  void set(uint64_t seed);
  bool on() const { return seed_.load(std::memory_order_relaxed) != 0; }
  // Overwrites the router's choice for n tokens: chosen / weight [n, k] get k distinct experts of
  // E per token, weights 1 / k.
  void draw(int64_t n, int64_t k, int64_t E, int32_t* chosen, float* weight);

 private:
  std::atomic<uint64_t> seed_{0}, calls_{0};
};

}  // namespace llada2
