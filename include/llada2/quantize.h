// Weight quantization of a checkpoint (`llada2 quantize`; format in docs/quantization.md).
//
// Linear weights W [N, K] become `<name>` I8 [N, K] (q8) or U8 [N, K/2] (q4: two signed 4-bit
// values per byte, low nibble first) plus `<name>.qscale` F32 [N, K/G]: symmetric per-group
// absmax scales over G consecutive elements of a row (q = round(w / s), s = absmax / 127 or 7).
// Routed experts packed in one tensor [E, N, K] are quantized expert by expert and keep E as their
// leading dimension (weights [E, ...], scales [E, ...]). Embeddings, norms, the router
// (mlp.gate.weight) and expert_bias keep their dtype, as does a linear weight whose K is not a
// multiple of G.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "llada2/safetensors_writer.h"

namespace llada2 {

enum class QuantType { Q8, Q4 };

// "q8" / "q4"; throws InputError otherwise.
QuantType parse_quant_type(const std::string& s);
const char* quant_type_name(QuantType t);
// The group size used when none is asked for: 64 for q8, 32 for q4.
int64_t default_quant_group(QuantType t);

// Whether `name` is a linear weight that quantization applies to (attention qkv / dense, MLP and
// expert gate/up/down projections, shared experts, lm_head).
bool is_quantizable_linear(const std::string& name);

// One row of n floats (n a multiple of group). q8: q has n bytes; q4: n / 2 bytes (group even).
// scales gets n / group floats. Rounds to nearest (ties to even); an all-zero group has scale 0.
void quantize_row_q8(const float* x, int64_t n, int64_t group, int8_t* q, float* scales);
void quantize_row_q4(const float* x, int64_t n, int64_t group, uint8_t* q, float* scales);

struct QuantizeOptions {
  QuantType type = QuantType::Q8;
  int64_t group = 0;  // 0: default_quant_group(type); otherwise a power of two >= 16
  // Store the weights in the int8 kernels' panel order (kernels.h; docs/quantization.md) where the
  // shape and group allow (rows a multiple of 16, columns of 64; q8 groups 64-4096, q4 32-4096): U8 [N/16, K/4 (q8) or
  // K/8 (q4), 16, 4] and scales F32 [N/16, K/G, 16]. Loads without repacking on AVX-512 VNNI CPUs.
  bool panels = false;
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  // Called as source tensor bytes are processed (done, total).
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct QuantizeStats {
  int64_t quantized = 0;   // tensors quantized
  int64_t kept = 0;        // tensors copied unchanged
  uint64_t in_bytes = 0;   // tensor bytes read
  uint64_t out_bytes = 0;  // tensor bytes written (weights + scales)
};

// Reads the checkpoint folder in_dir (memory-mapped, tensor by tensor) and writes the quantized
// checkpoint into out_dir (created; must not exist or be empty): model.safetensors or shards +
// index, config.json and the tokenizer / chat template files copied over. Memory use stays at
// a few tens of MB beyond the page cache. Throws InputError / FileError naming the problem.
QuantizeStats quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                  const QuantizeOptions& options);

}  // namespace llada2
