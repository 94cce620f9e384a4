// The llada2_moe model configuration (config.json of a Hugging Face checkpoint).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llada2 {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;      // dense layers
  int64_t first_k_dense_replace = 0;  // layers [0, this) are dense
  int64_t moe_intermediate_size = 0;
  int64_t num_experts = 0;  // 0: every layer is dense
  int64_t num_experts_per_tok = 0;
  int64_t num_shared_experts = 0;  // 0: no shared expert
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double partial_rotary_factor = 1.0;
  int64_t rotary_dim = 0;  // derived: int(head_dim * partial_rotary_factor)
  bool use_qk_norm = true;
  bool use_qkv_bias = false;
  bool use_bias = false;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> mask_token_id;
  std::optional<int64_t> eos_token_id;
  std::string torch_dtype;
  // LLaDA2.2 (docs/llada22.md). expert_capacity > 0 turns block routing on: the tokens of a chunk of
  // at most block_size positions choose their experts within a pool of expert_capacity experts.
  int64_t expert_capacity = 0;
  int64_t block_size = 0;
  std::optional<int64_t> delete_token_id;  // a pick that drops its cell
  std::optional<int64_t> split_token_id;   // a pick that puts a new mask before its cell
  // Every id of eos_token_id in config.json and in generation_config.json beside it (when present).
  std::vector<int64_t> stop_token_ids;
  // Derived: config.json has a LLaDA2.2 field (expert_capacity, block_size, delete_token_id or
  // split_token_id); the pipeline then decodes with LLaDA2.2's Levenshtein editing by default.
  bool llada22 = false;

  bool is_moe_layer(int64_t layer) const { return num_experts > 0 && layer >= first_k_dense_replace; }
  bool block_routing() const { return expert_capacity > 0; }

  // Parses and validates; errors name the file and the field.
  static ModelConfig from_json_text(const std::string& text, const std::string& label);
  // config.json at `path`, with the stop ids of the generation_config.json in its folder if there is one.
  static ModelConfig from_file(const std::string& path);
};

}  // namespace llada2
