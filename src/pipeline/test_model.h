// The tensors and values of random-weight test checkpoints (llada2/test_model.h).
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
#include <string>
#include <vector>

#include "llada2/config.h"
#include "llada2/safetensors_writer.h"
#include "llada2/test_model.h"

namespace llada2 {

constexpr int64_t kTestModelChunk = 1 << 16;

// One tensor of a test model and its distribution.
struct TestTensor {
  TensorSpec spec;
  float mean = 0.0f;
  float stddev = 1.0f;
};

// Every tensor of a llada2_moe checkpoint for `config` (the tensor names and shapes of
// the published checkpoints) in name order. Linear
// weights are N(0, 1/in_features) so activations stay O(1); embeddings N(0, 1); norm weights
// 1 + N(0, 0.02^2); the router's expert_bias is F32 with N(0, 0.01^2), like LLaDA2.1.
// With packed_experts, each MoE layer's routed experts are three packed tensors (test_model_tensor_parts).
std::vector<TestTensor> test_model_tensors(const ModelConfig& config, DType dtype, bool packed_experts = false);

// The per-expert tensors (of the same distribution) whose values a packed routed-experts tensor
// (`...mlp.experts.gate_proj.weight` [E, rows, cols], likewise up_proj / down_proj) holds stacked
// along its first dimension; empty for a tensor with values of its own.
std::vector<std::string> test_model_tensor_parts(const TestTensor& t);

// Fills out[0, n) with elements [first, first + n) of the tensor's values as float (before
// rounding to its dtype). `first` must be a multiple of kTestModelChunk.
void test_model_values(const TestTensor& t, uint64_t seed, int64_t first, int64_t n, float* out);

}  // namespace llada2
