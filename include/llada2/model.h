// The LLaDA2 MoE transformer (LLaDA2MoeModelLM): token ids in, float32 logits out.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llada2/config.h"
#include "llada2/types.h"

namespace llada2 {

class Checkpoint;

// One forward pass over a window of B rows x W positions (positions 0..W-1).
struct ForwardBatch {
  int64_t batch = 0;                   // B
  int64_t window = 0;                  // W
  const int64_t* input_ids = nullptr;  // [B, W]
  const int64_t* key_mask = nullptr;   // [B, W]: 1 = real token (may be a key), 0 = padding / tail
  AttentionMode attention = AttentionMode::BlockCausal;
  int64_t block_length = 32;  // K of the block-causal pattern (blocks aligned to position 0)
  int64_t logits_from = 0;    // logits are returned for positions [logits_from, W)
  // With a KV cache: positions [cache.length, W) are computed, earlier keys/values come from the
  // cache, and afterwards positions [0, commit_to) are cached (they must be final: whole blocks).
  int64_t commit_to = 0;
  // Optional [B, W - logits_from]: only rows marked non-zero get logits (others are left untouched).
  const uint8_t* logits_rows = nullptr;
};

// Keys and values of final positions, per layer, for the exact prefix cache of block_causal mode.
// Stored in float32, or in bf16 in the fast mode of a 16-bit checkpoint (or a q8 / q4 one made from one)
// (SPEC A6: the precision a diffusers user running the checkpoint in its own dtype gets; half the
// memory and half the bytes attention reads per step). Model::make_cache picks.
struct KvCache {
  int64_t batch = 0;
  int64_t capacity = 0;  // positions
  int64_t length = 0;    // positions [0, length) hold final keys/values
  int64_t row = 0;       // values per position: num_key_value_heads * head_dim
  DType dtype = DType::F32;
  // Elements from one key dimension's row to the next: capacity rounded up to whole 64-byte lines and
  // then to an odd number of them, so that the head_dim rows attention reads together fall in
  // different cache sets (rows a multiple of 4 KB apart would share one).
  int64_t key_stride = 0;
  // Per layer, elements of `dtype`. Keys transposed, [batch, num_key_value_heads, head_dim, key_stride],
  // so that attention multiplies them without reductions across lanes; values
  // [batch, num_key_value_heads, capacity, head_dim].
  std::vector<std::vector<uint8_t>> k, v;

  void reset(int64_t batch, int64_t capacity, int64_t layers, int64_t row, DType dtype = DType::F32);
  size_t bytes() const;
  size_t element_bytes() const { return dtype_size(dtype); }
};

// Optional record of a forward's intermediate values, for the parity tests (src/model/trace.h).
struct ForwardTrace;

// Per-phase counters of Model::forward, collected while profiling is on (Model::set_profiling).
// Wall time is measured on the calling thread around each phase (the matrix products inside run
// on the thread pool); weight bytes are counted as weight_bytes_read() counts them; FLOPs are
// 2*M*N*K per matrix product, including the two products of attention over the cache
// (scores and values: 4*D per query head and key).
struct ModelProfile {
  enum Phase : int {
    Attention = 0,  // q/k/v and o projections, QK-norm, RoPE, attention over the cache
    Mlp,            // dense MLP layers and the shared experts of MoE layers
    Moe,            // routed experts: router, selection, grouped expert MLPs, combine
    Head,           // final norm and LM head (logits)
    Other,          // the rest of forward: checks, embeddings, layer norms, residual adds
    kCount
  };
  struct Counters {
    uint64_t ns = 0;            // wall nanoseconds
    uint64_t weight_bytes = 0;  // weight bytes read by the phase's matrix products
    uint64_t flops = 0;
    uint64_t flops_bf16 = 0;  // of flops, those in products over bf16 activations (2x the float32 rate)
    uint64_t flops_int8 = 0;  // of flops, those in products over int8 activations (4x)
  };
  Counters phase[kCount];
  uint64_t forwards = 0;    // profiled forwards
  uint64_t forward_ns = 0;  // their wall time: the sum of the phases' ns
  // The routed experts of the MoE layers' passes (one pass per MoE layer and forward): the expert
  // MLPs run (each once per pass, on all of its tokens) and the weight bytes they read.
  uint64_t moe_passes = 0, experts_run = 0, expert_bytes = 0;

  static const char* name(int phase);  // "attention", "mlp", "moe", "lm_head", "other"
  Counters total() const;              // summed over the phases
};

class Model {
 public:
  // Loads config.json and the safetensors of DIR (memory-mapped); checks every
  // tensor name and shape against the config. Fast: no weight is read yet.
  static std::unique_ptr<Model> load(const std::string& dir);
  ~Model();

  // Repacks the weights the current kernels multiply faster in another layout (q8 / q4 with int8
  // activations on AVX-512 VNNI: kernels.h), with `progress(done, total)` over their bytes when
  // given. Runs once, at the latest in the first forward (thread-safe); later calls return at once.
  using LoadProgress = std::function<void(uint64_t done, uint64_t total)>;
  void prepare(const LoadProgress& progress = nullptr) const;

  const ModelConfig& config() const;
  const Checkpoint& checkpoint() const;

  // logits: [B, W - logits_from, vocab_size] float32.
  // With `cache` (block_causal only) only the positions past cache->length are computed.
  void forward(const ForwardBatch& batch, float* logits, ForwardTrace* trace = nullptr, KvCache* cache = nullptr) const;

  // Weight bytes read by the matrix products since load (counts each weight once per product).
  uint64_t weight_bytes_read() const;

  // Per-phase profiling of forward (ModelProfile). Off by default; when off, forward pays only a
  // branch per phase. Takes effect at the next forward (toggle between forwards). The counters are
  // shared by all threads calling forward, so they describe one forward at a time best.
  void set_profiling(bool on) const;
  bool profiling() const;
  // The counters accumulated since load or the last reset_profile().
  ModelProfile profile() const;
  void reset_profile() const;

  // A cache sized for a window of `capacity` positions, in kv_dtype().
  KvCache make_cache(int64_t batch, int64_t capacity) const;
  // The element type of caches made now: BF16 in the fast mode (the bf16-activations setting on)
  // for a BF16 / F16 checkpoint or a q8 / q4 one quantized from it (its embeddings' dtype), else F32
  // (exact mode, float32 checkpoints).
  DType kv_dtype() const;

  struct Impl;

 private:
  friend void set_uniform_routing(const Model& model, uint64_t seed);  // llada2/bench.h

  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace llada2
