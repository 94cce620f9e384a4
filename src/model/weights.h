// The weights of a LLaDA2MoeModelLM checkpoint, bound to its config: views into the checkpoint's
// memory mapping, or after Weights::pack into an arena of their panel-ordered copies.
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/kernels.h"
#include "llada2/config.h"
#include "llada2/model.h"
#include "llada2/safetensors.h"

namespace llada2 {

// SwiGLU MLP (LLaDA2MoeMLP): down(silu(gate x) * up x).
struct Mlp {
  kernels::Weight gate, up, down;  // [I, H], [I, H], [H, I]
};

struct Layer {
  kernels::Weight input_norm, post_norm;  // [H]
  kernels::Weight qkv;                    // [(Hq + 2 Hkv) D, H]
  std::vector<float> qkv_bias;            // empty without use_qkv_bias
  kernels::Weight q_norm, k_norm;         // [D], with use_qk_norm
  kernels::Weight dense;                  // [H, Hq D]: the attention's output projection
  std::vector<float> dense_bias;          // empty without use_bias
  bool moe = false;
  Mlp mlp;                         // dense layers
  kernels::Weight router;          // [E, H]
  std::vector<float> expert_bias;  // [E]
  std::vector<Mlp> experts;        // [E]
  bool has_shared = false;
  Mlp shared;
};

struct Weights {
  kernels::Weight embed, final_norm, lm_head;  // lm_head == embed when tied
  std::vector<Layer> layers;

  // Binds every tensor the config names; throws FileError listing every missing or mis-shaped one.
  void bind(const ModelConfig& c, const Checkpoint& ck);
  // Repacks the weights the current tier multiplies faster in panel order (kernels.h) into an arena
  // of this object, releasing the checkpoint's pages of the originals (Model::prepare).
  void pack(const Checkpoint& ck, const Model::LoadProgress& progress);

 private:
  // The repacked weights' memory: one anonymous mapping, in 2 MB pages where the kernel allows
  // (fewer page faults while packing, fewer TLB misses while streaming).
  struct Arena {
    void* base = nullptr;
    size_t size = 0;
    Arena() = default;
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    ~Arena();
  } arena_;
};

}  // namespace llada2
