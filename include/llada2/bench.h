// Benchmarking switches of the model (`llada2 bench`). They are not part of inference: while one
// is on, the outputs are not the model's.
#pragma once

#include <cstdint>
#include <string>

#include "llada2/model.h"

namespace llada2 {

// When `seed` is non-zero, every MoE layer of `model` ignores its router's choice and sends each
// token to num_experts_per_tok distinct experts drawn uniformly (weights 1 / k each; no group
// limit, no routed_scaling_factor), as a load-balanced trained model spreads a block over its
// experts; with block routing (LLaDA2.2) each chunk draws a pool of expert_capacity experts
// uniformly and its tokens draw within it. The same seed gives the same draws for the same sequence
// of forwards. 0 restores the router.
void set_uniform_routing(const Model& model, uint64_t seed);

// This machine's limits as the kernels meet them, for a roofline: memory read bandwidth (GB/s) with
// every worker thread reading, and the float32 FMA peak (GFLOP/s) of the kernel tier in use (isa)
// on every worker. Takes about `seconds` plus a 512 MiB buffer's reads.
struct MachineLimits {
  double read_gbs = 0;
  double fma_gflops = 0;
  std::string isa;
  int threads = 0;
};
MachineLimits measure_machine(double seconds = 1.0);

}  // namespace llada2
