// The engine's seeded random generator: xoshiro256** (Blackman & Vigna) seeded
// through splitmix64. A given seed reproduces a run of this engine exactly.
#pragma once

#include <cstdint>

namespace llada2 {

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform double in [0, 1) with 53 random bits.
  double uniform();

 private:
  uint64_t s_[4];
};

// A seed drawn from the operating system, for runs without an explicit seed.
uint64_t random_seed();

}  // namespace llada2
