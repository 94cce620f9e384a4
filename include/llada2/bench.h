// Benchmarking switches of the model (`llada2 bench`). They are not part of inference: while one
// is on, the outputs are not the model's.
#pragma once

#include <cstdint>

#include "llada2/model.h"

namespace llada2 {

// When `seed` is non-zero, every MoE layer of `model` ignores its router's choice and sends each
// token to num_experts_per_tok distinct experts drawn uniformly (weights 1 / k each; no group
// limit, no routed_scaling_factor), as a load-balanced trained model spreads a block over its
// experts; the same seed gives the same draws for the same sequence of forwards. 0 restores the
// router.
void set_uniform_routing(const Model& model, uint64_t seed);

}  // namespace llada2
