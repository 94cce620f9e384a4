// Block routing, the MoE router of LLaDA2.2 (config expert_capacity > 0; docs/llada22.md): the tokens
// of a chunk choose their experts within a pool the chunk shares, so a block reads at most
// expert_capacity experts per layer.
#pragma once

#include <cstdint>
#include <vector>

#include "llada2/config.h"

namespace llada2 {

// The chunks of a forward over `batch` rows of the positions [start, start + n) each, its tokens
// numbered b * n + i as the forward lays them out: cut at every absolute position that is a multiple
// of block_size or of block_length (block_length <= 0: block_size only), and between rows. A chunk
// shorter than block_size (a block that is not a multiple of block_size, or a window ending inside a
// chunk) is routed on its own tokens. Returns the first token of every chunk, then batch * n.
std::vector<int64_t> routing_chunks(int64_t batch, int64_t start, int64_t n, int64_t block_length, int64_t block_size);

// The routing of the tokens of `chunks` (routing_chunks) from their router logits [tokens, E]:
// s = sigmoid(logit), r = s + expert_bias; per chunk, g[e] = max of r[t, e] over its tokens and the
// pool = the min(expert_capacity, E) experts with the largest g; each token takes the
// num_experts_per_tok experts of the pool with the largest r (best first), weighted by
// s / (sum of the chosen s + 1e-20) * routed_scaling_factor. Ties go to the lower expert index.
// chosen / weight: [tokens, num_experts_per_tok]; pools (optional): each chunk's pool, best first.
void block_route(const ModelConfig& c, const float* logits, const float* expert_bias,
                 const std::vector<int64_t>& chunks, int32_t* chosen, float* weight,
                 std::vector<std::vector<int32_t>>* pools = nullptr);

}  // namespace llada2
