// Random-weight llada2_moe checkpoints for tests and benchmarks (`llada2 make-test-model`).
//
// Shapes: "tiny-a" and "tiny-b" have the configs of the golden tiny models; "mini-L<n>" has the
// real LLaDA2-mini dimensions (SPEC §6.2) with n layers, layer 0 dense.
//
// Values are deterministic for a seed, independent of thread count and sharding: tensor `name`
// is cut into chunks of kTestModelChunk elements; chunk c draws from a splitmix64 stream whose
// state starts at mix(key + (c + 1) * 0x9E3779B97F4A7C15), key = mix(mix(seed) ^ fnv1a64(name))
// (mix = the splitmix64 finaliser), and turns consecutive pairs of 64-bit draws into pairs of
// standard normals with Box-Muller (u = (draw >> 11) * 2^-53, the first of the pair shifted to
// (0, 1]). Element i is mean + stddev * normal_i, rounded to the tensor's dtype (round to
// nearest even).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llada2/config.h"
#include "llada2/safetensors_writer.h"
#include "llada2/types.h"

namespace llada2 {

constexpr int64_t kTestModelChunk = 1 << 16;

// One tensor of a test model and its distribution.
struct TestTensor {
  TensorSpec spec;
  float mean = 0.0f;
  float stddev = 1.0f;
};

// Parses "f32", "bf16" or "f16"; throws InputError otherwise.
DType parse_test_model_dtype(const std::string& s);

// The config.json text of a shape (see above), with torch_dtype / dtype naming `dtype`.
// Throws InputError for an unknown shape.
std::string test_model_config_json(const std::string& shape, DType dtype);

// Every tensor of a llada2_moe checkpoint for `config` (SPEC §6.3) in name order. Linear
// weights are N(0, 1/in_features) so activations stay O(1); embeddings N(0, 1); norm weights
// 1 + N(0, 0.02^2); the router's expert_bias is F32 with N(0, 0.01^2), like LLaDA2.1.
std::vector<TestTensor> test_model_tensors(const ModelConfig& config, DType dtype);

// Fills out[0, n) with elements [first, first + n) of the tensor's values as float (before
// rounding to its dtype). `first` must be a multiple of kTestModelChunk.
void test_model_values(const TestTensor& t, uint64_t seed, int64_t first, int64_t n, float* out);

struct TestModelOptions {
  std::string shape;
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  // A folder with tokenizer.json (+ tokenizer_config.json, special_tokens_map.json,
  // chat_template.jinja) to copy beside the weights; the vocabulary grows to cover it and the
  // mask / EOS ids then come from the tokenizer instead of config.json.
  std::string tokenizer_dir;
  // Called after each written piece with bytes written so far and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Writes config.json and the weights (model.safetensors, or shards + index) into dir, which
// is created if needed. Earlier weight files there (model.safetensors, its index, and
// model-*-of-*.safetensors) are removed first so that no stale shard survives.
void write_test_model(const std::string& dir, const TestModelOptions& options);

}  // namespace llada2
