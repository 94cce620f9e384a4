// The LLaDA2MoeModelLM forward pass (transformers' LLaDA2MoeModelLM.forward), computed in float32 from
// F32 / BF16 / F16 weights that stay memory-mapped.
#include <sys/mman.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "llada2/bench.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/safetensors.h"
#include "model/trace.h"

namespace llada2 {

namespace fs = std::filesystem;
using kernels::Weight;

namespace {

struct Mlp {
  Weight gate, up, down;  // [I, H], [I, H], [H, I]
};

struct Layer {
  Weight input_norm, post_norm;
  Weight qkv;  // [(Hq + 2 Hkv) D, H]
  std::vector<float> qkv_bias;
  Weight q_norm, k_norm;  // [D]
  Weight dense;           // [H, Hq D]
  std::vector<float> dense_bias;
  bool moe = false;
  Mlp mlp;        // dense layers
  Weight router;  // [E, H]
  std::vector<float> expert_bias;
  std::vector<Mlp> experts;
  bool has_shared = false;
  Mlp shared;
};

// Collects every missing or mis-shaped tensor so one error lists them all.
class WeightBinder {
 public:
  explicit WeightBinder(const Checkpoint& ck) : ck_(ck) {}

  Weight matrix(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView* t = find(name, {rows, cols});
    if (!t) return {};
    return Weight{t->data, t->dtype, rows, cols};
  }
  // A linear layer's weight [rows, cols]: float as stored, or quantized (docs/quantization.md):
  // I8 [rows, cols] (q8) or U8 [rows, cols / 2] (q4) with F32 scales `name.qscale` [rows, cols / G].
  Weight linear(const std::string& name, int64_t rows, int64_t cols) {
    if (!ck_.has(name + ".qscale") || !ck_.has(name)) return matrix(name, rows, cols);
    const TensorView& t = ck_.get(name);
    const TensorView& s = ck_.get(name + ".qscale");
    if (t.shape.size() == 4) return panels(name, t, s, rows, cols);
    const kernels::Quant kind = t.dtype == DType::I8 ? kernels::Quant::Q8 : kernels::Quant::Q4;
    const int64_t stored = kind == kernels::Quant::Q8 ? cols : cols / 2;
    const int64_t groups = s.shape.size() == 2 ? s.shape[1] : 0;
    std::string bad;
    if (t.dtype != DType::I8 && t.dtype != DType::U8) {
      bad = "has dtype " + std::string(dtype_name(t.dtype)) + " but a .qscale (quantized weights must be I8 or U8)";
    } else if (t.shape != std::vector<int64_t>{rows, stored} || (kind == kernels::Quant::Q4 && cols % 2 != 0)) {
      TensorView want;
      want.shape = {rows, stored};
      bad = "has shape " + t.shape_str() + ", expected " + want.shape_str() + " for " + dtype_name(t.dtype) +
            " quantized [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    } else if (s.dtype != DType::F32 || s.shape.size() != 2 || s.shape[0] != rows || groups <= 0 ||
               cols % groups != 0 || (kind == kernels::Quant::Q4 && (cols / groups) % 2 != 0)) {
      bad = "has scales " + name + ".qscale " + dtype_name(s.dtype) + " " + s.shape_str() + ", expected F32 [" +
            std::to_string(rows) + ", " + std::to_string(cols) + " / group]";
    }
    if (!bad.empty()) {
      problems_.push_back(name + " " + bad);
      return {};
    }
    Weight w{t.data, t.dtype, rows, cols};
    w.quant = kind;
    w.group = cols / groups;
    w.scales = reinterpret_cast<const float*>(s.data);
    return w;
  }
  // A quantized linear weight stored in panel order (kernels.h): U8 [ceil(rows/16), cols/4 (q8) or
  // cols/8 (q4), 16, 4] with scales F32 [ceil(rows/16), cols/G, 16].
  Weight panels(const std::string& name, const TensorView& t, const TensorView& s, int64_t rows, int64_t cols) {
    const int64_t P = (rows + 15) / 16;
    const bool q8 = cols % 8 == 0 && t.shape[1] == cols / 4, q4 = cols % 8 == 0 && t.shape[1] == cols / 8;
    const int64_t groups = s.shape.size() == 3 ? s.shape[1] : 0;
    std::string bad;
    if (t.dtype != DType::U8 || t.shape[0] != P || (!q8 && !q4) || t.shape[2] != 16 || t.shape[3] != 4) {
      bad = "has " + std::string(dtype_name(t.dtype)) + " " + t.shape_str() + ", expected U8 [" + std::to_string(P) +
            ", " + std::to_string(cols / 4) + " (q8) or " + std::to_string(cols / 8) +
            " (q4), 16, 4] in panel order for [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    } else if (s.dtype != DType::F32 || s.shape.size() != 3 || s.shape[0] != P || s.shape[2] != 16 || groups <= 0 ||
               cols % groups != 0 || (cols / groups) % (q4 ? 8 : 1) != 0) {
      bad = "has scales " + name + ".qscale " + dtype_name(s.dtype) + " " + s.shape_str() + ", expected F32 [" +
            std::to_string(P) + ", " + std::to_string(cols) + " / group, 16] in panel order";
    }
    if (!bad.empty()) {
      problems_.push_back(name + " " + bad);
      return {};
    }
    Weight w{t.data, DType::U8, rows, cols};
    w.quant = q8 ? kernels::Quant::Q8 : kernels::Quant::Q4;
    w.group = cols / groups;
    w.scales = reinterpret_cast<const float*>(s.data);
    w.panels = true;
    return w;
  }
  Weight vector(const std::string& name, int64_t n) {
    const TensorView* t = find(name, {n});
    if (!t) return {};
    return Weight{t->data, t->dtype, 1, n};
  }
  std::vector<float> floats(const std::string& name, int64_t n) {
    Weight w = vector(name, n);
    std::vector<float> out(n);
    if (w.data) kernels::to_f32(w.dtype, w.data, 0, n, out.data());
    return out;
  }
  void finish() const {
    if (problems_.empty()) return;
    std::string msg = "checkpoint does not match config.json (" + std::to_string(problems_.size()) + " problem" +
                      (problems_.size() > 1 ? "s" : "") + "):";
    for (size_t i = 0; i < problems_.size() && i < 25; ++i) msg += "\n  " + problems_[i];
    if (problems_.size() > 25) msg += "\n  ... and " + std::to_string(problems_.size() - 25) + " more";
    throw FileError(ck_.dir(), msg);
  }

 private:
  const TensorView* find(const std::string& name, std::vector<int64_t> shape) {
    if (!ck_.has(name)) {
      problems_.push_back("missing " + name);
      return nullptr;
    }
    const TensorView& t = ck_.get(name);
    if (t.shape != shape) {
      TensorView want;
      want.shape = shape;
      problems_.push_back(name + " has shape " + t.shape_str() + ", expected " + want.shape_str());
      return nullptr;
    }
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) {
      problems_.push_back(name + " has dtype " + dtype_name(t.dtype) + " (weights must be F32, BF16 or F16)");
      return nullptr;
    }
    return &t;
  }

  const Checkpoint& ck_;
  std::vector<std::string> problems_;
};

}  // namespace

struct Model::Impl {
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> ck;
  Weight embed, final_norm, lm_head;
  std::vector<Layer> layers;
  std::vector<float> inv_freq;  // [R/2]

  // Weight bytes streamed by linear layers since load (benchmark statistics).
  mutable std::atomic<uint64_t> weight_bytes{0};

  // Opt-in per-phase counters (ModelProfile).
  using Phase = ModelProfile::Phase;
  struct PhaseCounters {
    std::atomic<uint64_t> ns{0}, weight_bytes{0}, flops{0}, flops_bf16{0}, flops_int8{0};
  };
  mutable std::atomic<bool> profiling{false};
  mutable std::atomic<uint64_t> uniform_routing{0};  // llada2/bench.h
  mutable std::atomic<uint64_t> routing_calls{0};
  mutable PhaseCounters prof[ModelProfile::kCount];
  mutable std::atomic<uint64_t> prof_forwards{0}, prof_forward_ns{0};

  bool profiling_on() const { return profiling.load(std::memory_order_relaxed); }
  void count_flops(Phase phase, uint64_t flops) const { prof[phase].flops.fetch_add(flops, std::memory_order_relaxed); }

  void linear(const float* x, int64_t M, int64_t ldx, const Weight& w, const float* bias, float* y, int64_t ldy,
              Phase phase) const {
    const uint64_t bytes = kernels::weight_bytes(w);
    weight_bytes += bytes;
    if (profiling_on()) {
      prof[phase].weight_bytes.fetch_add(bytes, std::memory_order_relaxed);
      const uint64_t f = 2 * uint64_t(M) * uint64_t(w.rows) * uint64_t(w.cols);
      count_flops(phase, f);
      switch (kernels::linear_arithmetic(w)) {
        case kernels::Arithmetic::Bf16: prof[phase].flops_bf16.fetch_add(f, std::memory_order_relaxed); break;
        case kernels::Arithmetic::Int8: prof[phase].flops_int8.fetch_add(f, std::memory_order_relaxed); break;
        case kernels::Arithmetic::F32: break;
      }
    }
    kernels::linear(x, M, ldx, w, bias, y, ldy);
  }
  void bind();
  std::once_flag prepared;  // Model::prepare
  // Repacks the Q8 / Q4 weights that the current tier multiplies faster in panel order (kernels.h).
  void pack_weights(const LoadProgress& progress);
  // The repacked weights' memory: one anonymous mapping, in 2 MB pages where the kernel allows
  // (fewer page faults while packing, fewer TLB misses while streaming).
  struct Arena {
    void* base = nullptr;
    size_t size = 0;
    Arena() = default;
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    ~Arena() {
      if (base) munmap(base, size);
    }
  } arena;
  void attention(const Layer& L, const ForwardBatch& fb, int64_t start, const float* a, float* kc, float* vc,
                 int64_t cap, float* out) const;
  void mlp(const Mlp& m, const float* x, int64_t n, float* out, Phase phase) const;
  // The routed experts only (out = their weighted sum); the shared expert is added by the caller.
  void moe(const Layer& L, int64_t layer_index, const float* x, int64_t n, float* out, ForwardTrace* trace) const;
  void head(const ForwardBatch& fb, int64_t start, std::vector<float>& h, float* logits, ForwardTrace* trace) const;
};

namespace {

using Clock = std::chrono::steady_clock;

uint64_t ns_since(Clock::time_point t0) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}

// Wall time of one forward's phases on the calling thread, when profiling is on; the time outside
// the timed phases goes to ModelProfile::Other when the forward ends (also by an exception).
class ForwardClock {
 public:
  explicit ForwardClock(const Model::Impl& m) : m_(m.profiling_on() ? &m : nullptr) {
    if (m_) t0_ = Clock::now();
  }
  ForwardClock(const ForwardClock&) = delete;
  ForwardClock& operator=(const ForwardClock&) = delete;
  ~ForwardClock() {
    if (!m_) return;
    const uint64_t total = ns_since(t0_);
    m_->prof[ModelProfile::Other].ns.fetch_add(total - std::min(total, in_phases_), std::memory_order_relaxed);
    m_->prof_forward_ns.fetch_add(std::max(total, in_phases_), std::memory_order_relaxed);
    m_->prof_forwards.fetch_add(1, std::memory_order_relaxed);
  }
  template <class F>
  void phase(ModelProfile::Phase p, F&& f) {
    if (!m_) {
      f();
      return;
    }
    const Clock::time_point t0 = Clock::now();
    f();
    const uint64_t d = ns_since(t0);
    m_->prof[p].ns.fetch_add(d, std::memory_order_relaxed);
    in_phases_ += d;
  }

 private:
  const Model::Impl* m_;
  Clock::time_point t0_{};
  uint64_t in_phases_ = 0;
};

}  // namespace

void Model::Impl::bind() {
  const ModelConfig& c = cfg;
  const int64_t H = c.hidden_size, D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  WeightBinder b(*ck);
  embed = b.matrix("model.word_embeddings.weight", c.vocab_size, H);
  final_norm = b.vector("model.norm.weight", H);
  if (c.tie_word_embeddings && !ck->has("lm_head.weight")) {
    lm_head = embed;
  } else {
    lm_head = b.linear("lm_head.weight", c.vocab_size, H);
  }
  layers.resize(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    Layer& L = layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    L.input_norm = b.vector(p + "input_layernorm.weight", H);
    L.post_norm = b.vector(p + "post_attention_layernorm.weight", H);
    L.qkv = b.linear(p + "attention.query_key_value.weight", (Hq + 2 * Hkv) * D, H);
    if (c.use_qkv_bias) L.qkv_bias = b.floats(p + "attention.query_key_value.bias", (Hq + 2 * Hkv) * D);
    if (c.use_qk_norm) {
      L.q_norm = b.vector(p + "attention.query_layernorm.weight", D);
      L.k_norm = b.vector(p + "attention.key_layernorm.weight", D);
    }
    L.dense = b.linear(p + "attention.dense.weight", H, Hq * D);
    if (c.use_bias) L.dense_bias = b.floats(p + "attention.dense.bias", H);
    L.moe = c.is_moe_layer(l);
    auto bind_mlp = [&](const std::string& q, int64_t I) {
      return Mlp{b.linear(q + "gate_proj.weight", I, H), b.linear(q + "up_proj.weight", I, H),
                 b.linear(q + "down_proj.weight", H, I)};
    };
    if (!L.moe) {
      L.mlp = bind_mlp(p + "mlp.", c.intermediate_size);
      continue;
    }
    L.router = b.matrix(p + "mlp.gate.weight", c.num_experts, H);
    if (ck->has(p + "mlp.gate.expert_bias")) {
      L.expert_bias = b.floats(p + "mlp.gate.expert_bias", c.num_experts);
    } else {
      L.expert_bias.assign(size_t(c.num_experts), 0.f);  // a zero buffer in the original when absent
    }
    for (int64_t e = 0; e < c.num_experts; ++e)
      L.experts.push_back(bind_mlp(p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size));
    if (c.num_shared_experts > 0) {
      L.has_shared = true;
      L.shared = bind_mlp(p + "mlp.shared_experts.", c.moe_intermediate_size * c.num_shared_experts);
    }
  }
  b.finish();
  // inv_freq exactly as the rope init computes it in float32: 1 / theta^(arange(0, R, 2) / R).
  const int64_t R = c.rotary_dim;
  inv_freq.resize(size_t(R / 2));
  for (int64_t i = 0; i < R / 2; ++i) {
    float e = float(2 * i) / float(R);
    inv_freq[size_t(i)] = 1.0f / std::pow(float(c.rope_theta), e);
  }
}

// The int8 kernels of the avx512vnni / avx512bf16 tiers multiply Q8 / Q4 weights in panels of 16
// rows (kernels.h); packing a panel on every product costs about a third of their time on a
// compute-bound step, so such weights are repacked once, by Model::prepare, and the file's pages
// of the originals leave the process (resident memory stays about the file's size). BF16 weights
// go the same way on the avx2 and avx512 tiers (their panel kernels widen each weight once for up
// to 4 / 24 input rows); a tied LM head stays in rows, since the embedding reads the same rows. Other tiers
// and settings keep the file's rows, and so does a checkpoint written in panel order (already
// what the kernels read). LLADA2_PANELS=0 keeps the weights as the file stores them.
static bool repacking_enabled() {
  const char* env = std::getenv("LLADA2_PANELS");
  if (!env || !*env || std::strcmp(env, "1") == 0) return true;
  if (std::strcmp(env, "0") == 0) return false;
  throw InputError(std::string("LLADA2_PANELS=") + env + ": expected 0 or 1");
}

void Model::Impl::pack_weights(const LoadProgress& progress) {
  const bool enabled = repacking_enabled();  // checked on every machine, so a bad value always errs
  std::vector<Weight*> ws;
  auto consider = [&](Weight& w) {
    if (kernels::panels_preferred(w)) ws.push_back(&w);
  };
  if (lm_head.data != embed.data) consider(lm_head);  // tied: the embedding reads the same rows
  for (Layer& L : layers) {
    consider(L.qkv);
    consider(L.dense);
    auto mlp = [&](Mlp& m) {
      for (Weight* w : {&m.gate, &m.up, &m.down}) consider(*w);
    };
    if (!L.moe) mlp(L.mlp);
    for (Mlp& e : L.experts) mlp(e);
    if (L.has_shared) mlp(L.shared);
  }
  if (ws.empty() || !enabled) return;
  // In file order: reading a large checkpoint from disk in its name order seeks all over it.
  std::sort(ws.begin(), ws.end(),
            [](const Weight* a, const Weight* b) { return std::less<const void*>()(a->data, b->data); });
  std::unordered_map<const void*, const TensorView*> by_data;
  for (const auto& [name, t] : ck->tensors()) by_data[t.data] = &t;
  auto rounded = [](uint64_t bytes) { return (bytes + 63) / 64 * 64; };
  uint64_t need = 0;
  for (const Weight* w : ws) need += rounded(kernels::panel_bytes(*w)) + rounded(kernels::panel_scales(*w) * 4);
  // The copies must fit in memory with room to spare: a checkpoint larger than that keeps running
  // from the file's pages (products pack their panels as they go) instead of failing to load.
  const long phys = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  if (phys > 0 && psize > 0 && double(need) > 0.85 * double(phys) * double(psize)) return;
  constexpr uint64_t kHuge = uint64_t(2) << 20;
  arena.size = size_t((need + kHuge - 1) / kHuge * kHuge);
  void* base = mmap(nullptr, arena.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  arena.base = base;
  madvise(base, arena.size, MADV_HUGEPAGE);
  uint8_t* cursor = static_cast<uint8_t*>(base);
  auto aligned = [&](uint64_t bytes) {
    void* p = cursor;
    cursor += rounded(bytes);
    return p;
  };
  uint64_t total = 0, done = 0, ahead = 0, last = 0;
  for (const Weight* w : ws) total += kernels::weight_bytes(*w);
  // Reads from disk run ahead of the packing (up to 64 MB of the next weights asked for).
  size_t next = 0;
  constexpr uint64_t kAhead = uint64_t(64) << 20;
  for (size_t i = 0; i < ws.size(); ++i) {
    Weight& w = *ws[i];
    for (; next < ws.size() && ahead < done + kAhead; ++next) {
      const Weight& u = *ws[next];
      const uint64_t scale_bytes = u.scales ? uint64_t(u.rows * (u.cols / u.group)) * 4 : 0;
      prefetch_pages(static_cast<const uint8_t*>(u.data), size_t(kernels::weight_bytes(u) - scale_bytes));
      prefetch_pages(reinterpret_cast<const uint8_t*>(u.scales), size_t(scale_bytes));
      ahead += kernels::weight_bytes(u);
    }
    const uint64_t bytes = kernels::weight_bytes(w);
    const Weight packed = kernels::pack_panels(w, static_cast<uint8_t*>(aligned(kernels::panel_bytes(w))),
                                               static_cast<float*>(aligned(kernels::panel_scales(w) * 4)));
    for (const void* p : {w.data, static_cast<const void*>(w.scales)})
      if (auto it = by_data.find(p); p && it != by_data.end()) ck->release(*it->second);
    w = packed;
    done += bytes;
    if (progress && (done - last >= kAhead || i + 1 == ws.size())) {
      progress(done, total);
      last = done;
    }
  }
}

// Self-attention of one layer for the n = W - start new positions of each row. a = normed input
// [B*n, H]; kc/vc = this layer's key/value store [B, Hkv, cap, D] holding final keys/values for
// positions < start; the new positions' keys/values are written into it. out = dense output [B*n, H].
void Model::Impl::attention(const Layer& L, const ForwardBatch& fb, int64_t start, const float* a, float* kc, float* vc,
                            int64_t cap, float* out) const {
  const ModelConfig& c = cfg;
  const int64_t B = fb.batch, W = fb.window, n = W - start, N = B * n;
  const int64_t D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads, R = c.rotary_dim;
  const int64_t QKV = (Hq + 2 * Hkv) * D;
  std::vector<float> qkv(N * QKV);
  linear(a, N, c.hidden_size, L.qkv, L.qkv_bias.empty() ? nullptr : L.qkv_bias.data(), qkv.data(), QKV,
         ModelProfile::Attention);

  // QK-norm (before RoPE), then partial rotate-half RoPE on the first R dims of each q and k head.
  const float eps = float(c.rms_norm_eps);
  parallel_for(N, [&](int64_t t0, int64_t t1) {
    std::vector<float> cosv(R), sinv(R), tmp(R);
    for (int64_t t = t0; t < t1; ++t) {
      float* row = qkv.data() + t * QKV;
      if (c.use_qk_norm) {
        kernels::rms_norm(row, Hq, D, L.q_norm, eps);
        kernels::rms_norm(row + Hq * D, Hkv, D, L.k_norm, eps);
      }
      const int64_t b = t / n, pos = start + t % n;
      for (int64_t i = 0; i < R / 2; ++i) {
        float f = float(pos) * inv_freq[size_t(i)];
        cosv[size_t(i)] = cosv[size_t(i + R / 2)] = std::cos(f);
        sinv[size_t(i)] = sinv[size_t(i + R / 2)] = std::sin(f);
      }
      for (int64_t h = 0; h < Hq + Hkv; ++h) {
        float* x = row + h * D;
        const int64_t half = R / 2;
        for (int64_t i = 0; i < half; ++i) {
          tmp[size_t(i)] = x[i] * cosv[size_t(i)] - x[i + half] * sinv[size_t(i)];
          tmp[size_t(i + half)] = x[i + half] * cosv[size_t(i + half)] + x[i] * sinv[size_t(i + half)];
        }
        std::copy(tmp.begin(), tmp.end(), x);
      }
      for (int64_t g = 0; g < Hkv; ++g) {
        std::copy_n(row + (Hq + g) * D, D, kc + ((b * Hkv + g) * cap + pos) * D);
        std::copy_n(row + (Hq + Hkv + g) * D, D, vc + ((b * Hkv + g) * cap + pos) * D);
      }
    }
  });

  // Scores over the allowed keys of each query; GQA: kv head g serves query heads g*G .. g*G+G-1.
  const int64_t G = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t K = fb.block_length;
  // Keys [0, key_end(i)) exist for new position i (block_causal: up to the end of its block).
  auto key_end = [&](int64_t i) {
    const int64_t pos = start + i;
    return fb.attention == AttentionMode::BlockCausal ? std::min(W, (pos / K + 1) * K) : W;
  };
  if (profiling_on()) {
    // Scores and weighted values: 2*D + 2*D FLOPs per query head and (unmasked) key.
    uint64_t keys = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t* km = fb.key_mask + b * W;
      for (int64_t i = 0; i < n; ++i)
        keys += uint64_t(std::count_if(km, km + key_end(i), [](int64_t v) { return v != 0; }));
    }
    count_flops(ModelProfile::Attention, keys * uint64_t(Hq) * 4 * uint64_t(D));
  }
  // Per (row, kv head): the queries come in runs that see the same keys (a block's queries in
  // block_causal mode, all of them in bidirectional mode). For each run and each of the G query
  // heads: scores = Q K^T as one product over the keys, masked softmax per query, then
  // context = P V as a product with V transposed once per run.
  std::vector<float> ctx(N * Hq * D);
  parallel_for(B * Hkv, [&](int64_t j0, int64_t j1) {
    std::vector<float> scores, vt;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t b = j / Hkv, g = j % Hkv;
      const int64_t* km = fb.key_mask + b * W;
      const float* kb = kc + (b * Hkv + g) * cap * D;
      const float* vb = vc + (b * Hkv + g) * cap * D;
      for (int64_t i0 = 0, i1; i0 < n; i0 = i1) {
        const int64_t E = key_end(i0);
        for (i1 = i0 + 1; i1 < n && key_end(i1) == E;) ++i1;
        const int64_t m = i1 - i0;
        vt.resize(size_t(D * E));
        for (int64_t s = 0; s < E; ++s)
          for (int64_t d = 0; d < D; ++d) vt[size_t(d * E + s)] = vb[s * D + d];
        scores.resize(size_t(m * E));
        for (int64_t h = g * G; h < (g + 1) * G; ++h) {
          kernels::linear(qkv.data() + (b * n + i0) * QKV + h * D, m, QKV, kernels::Weight{kb, DType::F32, E, D},
                          nullptr, scores.data(), E);
          for (int64_t i = 0; i < m; ++i) {
            float* p = scores.data() + i * E;
            for (int64_t s = 0; s < E; ++s) p[s] = km[s] == 0 ? -std::numeric_limits<float>::infinity() : p[s] * scale;
            kernels::softmax(p, E);
          }
          kernels::linear(scores.data(), m, E, kernels::Weight{vt.data(), DType::F32, D, E}, nullptr,
                          ctx.data() + (b * n + i0) * Hq * D + h * D, Hq * D);
        }
      }
    }
  });
  linear(ctx.data(), N, Hq * D, L.dense, L.dense_bias.empty() ? nullptr : L.dense_bias.data(), out, c.hidden_size,
         ModelProfile::Attention);
}

// SwiGLU MLP: out = down(silu(gate x) * up x) for n rows of x [n, H].
void Model::Impl::mlp(const Mlp& m, const float* x, int64_t n, float* out, Phase phase) const {
  const int64_t H = cfg.hidden_size, I = m.gate.rows;
  std::vector<float> g(n * I), u(n * I);
  linear(x, n, H, m.gate, nullptr, g.data(), I, phase);
  linear(x, n, H, m.up, nullptr, u.data(), I, phase);
  kernels::silu_mul(g.data(), u.data(), g.data(), n * I);
  linear(g.data(), n, I, m.down, nullptr, out, H, phase);
}

// Sigmoid router with expert_bias for selection only, group-limited top-k, then
// expert outputs weighted by the normalised (unbiased) scores x routed_scaling_factor.
void Model::Impl::moe(const Layer& L, int64_t layer_index, const float* x, int64_t n, float* out,
                      ForwardTrace* trace) const {
  const ModelConfig& c = cfg;
  const int64_t H = c.hidden_size, E = c.num_experts, TK = c.num_experts_per_tok;
  const int64_t NG = c.n_group, per_group = E / NG, KG = c.topk_group;
  std::vector<float> logits(n * E);
  linear(x, n, H, L.router, nullptr, logits.data(), E, ModelProfile::Moe);

  std::vector<int32_t> chosen(n * TK);
  std::vector<float> weight(n * TK);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> s(E), r(E);
    for (int64_t e = 0; e < E; ++e) {
      s[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[size_t(t * E + e)]));
      r[size_t(e)] = s[size_t(e)] + L.expert_bias[size_t(e)];
    }
    std::vector<float> group_score(NG);
    for (int64_t gi = 0; gi < NG; ++gi) {
      float a = ninf, b2 = ninf;
      for (int64_t e = gi * per_group; e < (gi + 1) * per_group; ++e) {
        float v = r[size_t(e)];
        if (v > a) {
          b2 = a;
          a = v;
        } else if (v > b2) {
          b2 = v;
        }
      }
      group_score[size_t(gi)] = a + b2;
    }
    std::vector<int64_t> gorder(NG);
    std::iota(gorder.begin(), gorder.end(), 0);
    std::stable_sort(gorder.begin(), gorder.end(),
                     [&](int64_t a, int64_t b) { return group_score[size_t(a)] > group_score[size_t(b)]; });
    std::vector<float> masked(E, ninf);
    for (int64_t k = 0; k < KG; ++k) {
      int64_t gi = gorder[size_t(k)];
      for (int64_t e = gi * per_group; e < (gi + 1) * per_group; ++e) masked[size_t(e)] = r[size_t(e)];
    }
    std::vector<int64_t> eorder(E);
    std::iota(eorder.begin(), eorder.end(), 0);
    std::stable_sort(eorder.begin(), eorder.end(),
                     [&](int64_t a, int64_t b) { return masked[size_t(a)] > masked[size_t(b)]; });
    float sum = 0.f;
    for (int64_t k = 0; k < TK; ++k) {
      chosen[size_t(t * TK + k)] = int32_t(eorder[size_t(k)]);
      sum += s[size_t(eorder[size_t(k)])];
    }
    for (int64_t k = 0; k < TK; ++k) {
      float w = s[size_t(chosen[size_t(t * TK + k)])];
      if (TK > 1) w = w / (sum + 1e-20f);
      weight[size_t(t * TK + k)] = w * float(c.routed_scaling_factor);
    }
  }
  if (const uint64_t seed = uniform_routing.load(std::memory_order_relaxed)) {
    // splitmix64 over (seed, call, token): TK distinct experts per token, equal weights.
    uint64_t z = seed ^ (routing_calls.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ull);
    auto next = [&z] {
      z += 0x9E3779B97F4A7C15ull;
      uint64_t r = z;
      r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
      r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
      return r ^ (r >> 31);
    };
    for (int64_t t = 0; t < n; ++t)
      for (int64_t k = 0; k < TK; ++k) {
        int32_t e;
        do {
          e = int32_t(next() % uint64_t(E));
        } while (std::find(chosen.begin() + t * TK, chosen.begin() + t * TK + k, e) != chosen.begin() + t * TK + k);
        chosen[size_t(t * TK + k)] = e;
        weight[size_t(t * TK + k)] = 1.0f / float(TK);
      }
  }
  if (trace) {
    trace->moe_layers.push_back(layer_index);
    trace->router_logits.push_back(logits);
    trace->router_topk.push_back(chosen);
  }

  // Group tokens by expert; each selected expert runs once on all of its tokens, and the
  // experts are spread over the threads (each expert's products then run inline on one thread).
  std::vector<std::vector<int64_t>> rows_of(E);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < TK; ++k) rows_of[size_t(chosen[size_t(t * TK + k)])].push_back(t * TK + k);
  std::vector<int64_t> active;
  for (int64_t e = 0; e < E; ++e)
    if (!rows_of[size_t(e)].empty()) active.push_back(e);
  std::vector<float> per_slot(n * TK * H, 0.f);
  // Experts differ in rows (work): the threads take them one at a time, largest first, instead of
  // fixed equal-count ranges.
  std::stable_sort(active.begin(), active.end(),
                   [&](int64_t a, int64_t b) { return rows_of[size_t(a)].size() > rows_of[size_t(b)].size(); });
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(num_threads(), int64_t(active.size()));
  parallel_for(workers, [&](int64_t, int64_t) {
    std::vector<float> xin, yout;
    for (int64_t a; (a = next.fetch_add(1, std::memory_order_relaxed)) < int64_t(active.size());) {
      const int64_t e = active[size_t(a)];
      const auto& slots = rows_of[size_t(e)];
      const int64_t m = int64_t(slots.size());
      xin.resize(size_t(m * H));
      yout.resize(size_t(m * H));
      for (int64_t i = 0; i < m; ++i) std::copy_n(x + (slots[size_t(i)] / TK) * H, H, xin.data() + i * H);
      mlp(L.experts[size_t(e)], xin.data(), m, yout.data(), ModelProfile::Moe);
      for (int64_t i = 0; i < m; ++i) {
        const int64_t slot = slots[size_t(i)];
        const float w = weight[size_t(slot)];
        float* dst = per_slot.data() + slot * H;
        for (int64_t d = 0; d < H; ++d) dst[d] = yout[size_t(i * H + d)] * w;
      }
    }
  });
  // Sum the top-k contributions in selection order (the caller then adds the shared expert).
  for (int64_t t = 0; t < n; ++t) {
    float* o = out + t * H;
    std::fill(o, o + H, 0.f);
    for (int64_t k = 0; k < TK; ++k) {
      const float* src = per_slot.data() + (t * TK + k) * H;
      for (int64_t d = 0; d < H; ++d) o[d] += src[d];
    }
  }
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = ModelConfig::from_file((fs::path(dir) / "config.json").string());
  impl->ck = std::make_unique<Checkpoint>(dir);
  impl->bind();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->cfg; }
uint64_t Model::weight_bytes_read() const { return impl_->weight_bytes.load(); }

void Model::set_profiling(bool on) const { impl_->profiling.store(on); }
bool Model::profiling() const { return impl_->profiling_on(); }

ModelProfile Model::profile() const {
  ModelProfile p;
  for (int i = 0; i < ModelProfile::kCount; ++i) {
    p.phase[i].ns = impl_->prof[i].ns.load();
    p.phase[i].weight_bytes = impl_->prof[i].weight_bytes.load();
    p.phase[i].flops = impl_->prof[i].flops.load();
    p.phase[i].flops_bf16 = impl_->prof[i].flops_bf16.load();
    p.phase[i].flops_int8 = impl_->prof[i].flops_int8.load();
  }
  p.forwards = impl_->prof_forwards.load();
  p.forward_ns = impl_->prof_forward_ns.load();
  return p;
}

void Model::reset_profile() const {
  for (auto& c : impl_->prof) {
    c.ns = 0;
    c.weight_bytes = 0;
    c.flops = 0;
    c.flops_bf16 = 0;
    c.flops_int8 = 0;
  }
  impl_->prof_forwards = 0;
  impl_->prof_forward_ns = 0;
}

const char* ModelProfile::name(int phase) {
  switch (phase) {
    case Attention: return "attention";
    case Mlp: return "mlp";
    case Moe: return "moe";
    case Head: return "lm_head";
    case Other: return "other";
    default: return "?";
  }
}

ModelProfile::Counters ModelProfile::total() const {
  Counters t;
  for (const Counters& c : phase) {
    t.ns += c.ns;
    t.weight_bytes += c.weight_bytes;
    t.flops += c.flops;
    t.flops_bf16 += c.flops_bf16;
    t.flops_int8 += c.flops_int8;
  }
  return t;
}
const Checkpoint& Model::checkpoint() const { return *impl_->ck; }

void KvCache::reset(int64_t b, int64_t cap, int64_t layers, int64_t r) {
  batch = b;
  capacity = cap;
  length = 0;
  row = r;
  k.assign(size_t(layers), std::vector<float>(size_t(b * cap * r)));
  v.assign(size_t(layers), std::vector<float>(size_t(b * cap * r)));
}

size_t KvCache::bytes() const {
  size_t s = 0;
  for (size_t l = 0; l < k.size(); ++l) s += (k[l].size() + v[l].size()) * sizeof(float);
  return s;
}

void set_uniform_routing(const Model& model, uint64_t seed) {
  model.impl_->routing_calls.store(0);
  model.impl_->uniform_routing.store(seed);
}

KvCache Model::make_cache(int64_t batch, int64_t capacity) const {
  KvCache c;
  c.reset(batch, capacity, impl_->cfg.num_hidden_layers, impl_->cfg.num_key_value_heads * impl_->cfg.head_dim);
  return c;
}

void Model::prepare(const LoadProgress& progress) const {
  Impl& m = *impl_;
  std::call_once(m.prepared, [&] { m.pack_weights(progress); });
}

void Model::forward(const ForwardBatch& fb, float* logits, ForwardTrace* trace, KvCache* cache) const {
  prepare();
  const Impl& m = *impl_;
  ForwardClock clock(m);
  const ModelConfig& c = m.cfg;
  const int64_t B = fb.batch, W = fb.window, H = c.hidden_size, V = c.vocab_size;
  if (B <= 0 || W <= 0) throw InputError("forward: empty batch");
  if (fb.logits_from < 0 || fb.logits_from > W) throw InputError("forward: logits_from out of range");
  if (fb.attention == AttentionMode::BlockCausal && fb.block_length <= 0)
    throw InputError("forward: block_length must be > 0");
  // Without a cache, a scratch store holds this forward's keys/values.
  KvCache scratch;
  int64_t start = 0;
  if (cache) {
    if (fb.attention != AttentionMode::BlockCausal)
      throw InputError("forward: a KV cache needs block_causal attention");
    if (cache->batch != B || cache->capacity < W || cache->length > W || fb.logits_from < cache->length ||
        fb.commit_to < cache->length || fb.commit_to > W)
      throw InputError("forward: window does not fit the KV cache");
    start = cache->length;
  } else {
    scratch = make_cache(B, W);
    cache = &scratch;
  }
  const int64_t n = W - start, N = B * n;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = start; i < W; ++i) {
      const int64_t id = fb.input_ids[b * W + i];
      if (id < 0 || id >= V)
        throw InputError("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(V) +
                         ")");
    }

  std::vector<float> h(N * H);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i)
      kernels::to_f32(m.embed.dtype, m.embed.data, fb.input_ids[b * W + start + i] * H, H, h.data() + (b * n + i) * H);
  if (trace) {
    trace->hidden.clear();
    trace->hidden.push_back(h);
  }
  std::vector<float> a(N * H), o(N * H);
  const float eps = float(c.rms_norm_eps);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& L = m.layers[size_t(l)];
    a = h;
    kernels::rms_norm(a.data(), N, H, L.input_norm, eps);
    clock.phase(ModelProfile::Attention, [&] {
      m.attention(L, fb, start, a.data(), cache->k[size_t(l)].data(), cache->v[size_t(l)].data(), cache->capacity,
                  o.data());
    });
    for (int64_t i = 0; i < N * H; ++i) h[size_t(i)] += o[size_t(i)];
    a = h;
    kernels::rms_norm(a.data(), N, H, L.post_norm, eps);
    if (L.moe) {
      clock.phase(ModelProfile::Moe, [&] { m.moe(L, l, a.data(), N, o.data(), trace); });
      if (L.has_shared) {
        clock.phase(ModelProfile::Mlp, [&] {
          std::vector<float> sh(size_t(N * H));
          m.mlp(L.shared, a.data(), N, sh.data(), ModelProfile::Mlp);
          for (int64_t i = 0; i < N * H; ++i) o[size_t(i)] += sh[size_t(i)];
        });
      }
    } else {
      clock.phase(ModelProfile::Mlp, [&] { m.mlp(L.mlp, a.data(), N, o.data(), ModelProfile::Mlp); });
    }
    for (int64_t i = 0; i < N * H; ++i) h[size_t(i)] += o[size_t(i)];
    if (trace && l + 1 < c.num_hidden_layers) trace->hidden.push_back(h);
  }
  if (cache != &scratch) cache->length = fb.commit_to;

  clock.phase(ModelProfile::Head, [&] { m.head(fb, start, h, logits, trace); });
}

// Final norm and LM head only for the rows the caller consumes (and of those, the selected ones).
// h = the last layer's output [B*n, H] for positions [start, W) (final-normed in place with a trace).
void Model::Impl::head(const ForwardBatch& fb, int64_t start, std::vector<float>& h, float* logits,
                       ForwardTrace* trace) const {
  const Impl& m = *this;
  const ModelConfig& c = cfg;
  const int64_t B = fb.batch, W = fb.window, H = c.hidden_size, V = c.vocab_size, n = W - start, N = B * n;
  const float eps = float(c.rms_norm_eps);
  const int64_t rows = W - fb.logits_from;
  if (trace) {
    kernels::rms_norm(h.data(), N, H, m.final_norm, eps);
    trace->hidden.push_back(h);
  }
  if (rows == 0) return;
  std::vector<int64_t> picked;  // index into the [B, rows] logits
  for (int64_t r = 0; r < B * rows; ++r)
    if (!fb.logits_rows || fb.logits_rows[r]) picked.push_back(r);
  if (picked.empty()) return;
  std::vector<float> sel(picked.size() * size_t(H));
  for (size_t i = 0; i < picked.size(); ++i) {
    const int64_t b = picked[i] / rows, r = picked[i] % rows;
    std::copy_n(h.data() + (b * n + fb.logits_from - start + r) * H, H, sel.data() + int64_t(i) * H);
  }
  if (!trace) kernels::rms_norm(sel.data(), int64_t(picked.size()), H, m.final_norm, eps);
  if (int64_t(picked.size()) == B * rows) {
    m.linear(sel.data(), B * rows, H, m.lm_head, nullptr, logits, V, ModelProfile::Head);
    return;
  }
  std::vector<float> out(picked.size() * size_t(V));
  m.linear(sel.data(), int64_t(picked.size()), H, m.lm_head, nullptr, out.data(), V, ModelProfile::Head);
  for (size_t i = 0; i < picked.size(); ++i) std::copy_n(out.data() + int64_t(i) * V, V, logits + picked[i] * V);
}

}  // namespace llada2
