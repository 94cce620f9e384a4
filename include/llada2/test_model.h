// Random-weight llada2_moe checkpoints for tests and benchmarks (`llada2 make-test-model`).
//
// Shapes: "tiny-a" and "tiny-b" have the configs of the golden tiny models; "mini-L<n>" has the
// real LLaDA2-mini dimensions (hidden 2048, 16 heads of 128, 4 KV heads, 256 experts of 512, top-8
// of 8 groups) with n layers, layer 0 dense. "tiny-22" and "mini22-L<n>" are LLaDA2.2 shapes
// (docs/llada22.md): tiny-a's dimensions with 16 experts, and mini-L<n>, each with the LLaDA2.2
// fields (expert_capacity, block_size, delete_token_id, split_token_id) and a generation_config.json
// naming the stop ids. Values are deterministic for a seed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llada2/config.h"
#include "llada2/safetensors_writer.h"
#include "llada2/types.h"

namespace llada2 {

// Parses "f32", "bf16" or "f16"; throws InputError otherwise.
DType parse_test_model_dtype(const std::string& s);

// The config.json text of a shape (see above), with torch_dtype / dtype naming `dtype`.
// Throws InputError for an unknown shape.
std::string test_model_config_json(const std::string& shape, DType dtype);
// The generation_config.json text of a LLaDA2.2 shape ({"eos_token_id": [stop ids]}); empty for
// the other shapes.
std::string test_model_generation_config_json(const std::string& shape);

struct TestModelOptions {
  std::string shape;
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  // A folder with tokenizer.json (+ tokenizer_config.json, special_tokens_map.json,
  // chat_template.jinja) to copy beside the weights; the vocabulary grows to cover it and the
  // mask / EOS ids then come from the tokenizer instead of config.json.
  std::string tokenizer_dir;
  // Store each MoE layer's routed experts packed, one tensor per projection
  // (`mlp.experts.gate_proj.weight` [experts, moe_intermediate, hidden], likewise up_proj and down_proj
  // [experts, hidden, moe_intermediate]), as transformers 5 writes them; same values as one tensor per expert.
  bool packed_experts = false;
  // Called after each written piece with bytes written so far and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Writes config.json (+ generation_config.json for a LLaDA2.2 shape without a tokenizer) and the weights
// (model.safetensors, or shards + index) into dir, which is created if needed. Earlier weight files there
// (model.safetensors, its index, and model-*-of-*.safetensors) are removed first so that no stale shard survives.
void write_test_model(const std::string& dir, const TestModelOptions& options);

}  // namespace llada2
