// The LLaDA2MoeModelLM forward pass (transformers' LLaDA2MoeModelLM.forward), computed in float32 from
// F32 / BF16 / F16 weights that stay memory-mapped.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>
#include <numeric>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "llada2/bench.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/safetensors.h"
#include "model/trace.h"
#include "model/weights.h"

namespace llada2 {

namespace fs = std::filesystem;
using kernels::Weight;

struct Model::Impl {
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> ck;
  Weights weights;
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
  std::once_flag prepared;  // Model::prepare
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
  impl->weights.bind(impl->cfg, *impl->ck);
  // inv_freq exactly as the rope init computes it in float32: 1 / theta^(arange(0, R, 2) / R).
  const int64_t R = impl->cfg.rotary_dim;
  impl->inv_freq.resize(size_t(R / 2));
  for (int64_t i = 0; i < R / 2; ++i) {
    float e = float(2 * i) / float(R);
    impl->inv_freq[size_t(i)] = 1.0f / std::pow(float(impl->cfg.rope_theta), e);
  }
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

void Model::prepare(const LoadProgress& progress) const {
  Impl& m = *impl_;
  std::call_once(m.prepared, [&] { m.weights.pack(*m.ck, progress); });
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
      kernels::to_f32(m.weights.embed.dtype, m.weights.embed.data, fb.input_ids[b * W + start + i] * H, H,
                      h.data() + (b * n + i) * H);
  if (trace) {
    trace->hidden.clear();
    trace->hidden.push_back(h);
  }
  std::vector<float> a(N * H), o(N * H);
  const float eps = float(c.rms_norm_eps);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& L = m.weights.layers[size_t(l)];
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
    kernels::rms_norm(h.data(), N, H, m.weights.final_norm, eps);
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
  if (!trace) kernels::rms_norm(sel.data(), int64_t(picked.size()), H, m.weights.final_norm, eps);
  if (int64_t(picked.size()) == B * rows) {
    m.linear(sel.data(), B * rows, H, m.weights.lm_head, nullptr, logits, V, ModelProfile::Head);
    return;
  }
  std::vector<float> out(picked.size() * size_t(V));
  m.linear(sel.data(), int64_t(picked.size()), H, m.weights.lm_head, nullptr, out.data(), V, ModelProfile::Head);
  for (size_t i = 0; i < picked.size(); ++i) std::copy_n(out.data() + int64_t(i) * V, V, logits + picked[i] * V);
}

}  // namespace llada2
