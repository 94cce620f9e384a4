// Model::forward's optional record of its intermediate values, for the parity tests against the
// reference implementation (transformers' LLaDA2MoeModel with output_hidden_states and the
// router's logits and choices).
#pragma once

#include <cstdint>
#include <vector>

#include "llada2/model.h"

namespace llada2 {

struct ForwardTrace {
  // hidden[0] = embeddings, hidden[l+1] = output of layer l for l < L-1, hidden[L] = final norm output;
  // each [B*W, hidden_size].
  std::vector<std::vector<float>> hidden;
  // Per MoE layer index: router logits [B*W, E] and chosen experts [B*W, top_k] in selection order.
  std::vector<int64_t> moe_layers;
  std::vector<std::vector<float>> router_logits;
  std::vector<std::vector<int32_t>> router_topk;
};

}  // namespace llada2
