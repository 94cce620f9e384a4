// The LLaDA2MoeModelLM forward pass (transformers' LLaDA2MoeModelLM.forward), computed in float32
// from the checkpoint's weights (weights.h: memory-mapped, or repacked into panels by prepare).
// Read top to bottom: the model's state, RoPE and the router, then attention, the MLPs and the MoE
// block, and the forward pass that strings them together into logits.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <numeric>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "llada2/bench.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/safetensors.h"
#include "model/attention.h"
#include "model/block_routing.h"
#include "model/profile.h"
#include "model/trace.h"
#include "model/uniform_routing.h"
#include "model/weights.h"

namespace llada2 {

using kernels::Weight;

struct Model::Impl {
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> ck;
  Weights weights;
  std::vector<float> inv_freq;  // [rotary_dim / 2]: RoPE's inverse frequencies
  std::once_flag prepared;      // Model::prepare
  mutable Profiler profiler;
  mutable UniformRouting routing;  // llada2/bench.h

  // Every product with a weight goes through here, to be counted.
  void linear(const float* x, int64_t M, int64_t ldx, const Weight& w, const float* bias, float* y, int64_t ldy) const {
    profiler.count_linear(w, M);
    kernels::linear(x, M, ldx, w, bias, y, ldy);
  }
  void attention(const Layer& L, const ForwardBatch& fb, int64_t start, const float* a, KvCache& cache, size_t layer,
                 float* out) const;
  void attend(const ForwardBatch& fb, int64_t start, const float* qkv, const KvCache& cache, size_t layer,
              bool bf16_products, float* ctx) const;
  void mlp(const Mlp& m, const float* x, int64_t n, float* out) const;
  // The routed experts only (out = their weighted sum); the caller adds the shared expert. With
  // `chunks` (routing_chunks) the tokens are block-routed.
  void moe(const Layer& L, int64_t layer_index, const float* x, int64_t n, const std::vector<int64_t>* chunks,
           float* out, ForwardTrace* trace) const;
  void head(const ForwardBatch& fb, int64_t start, std::vector<float>& h, float* logits, ForwardTrace* trace) const;
};

namespace {

// Exactly as the rope init computes it in float32: 1 / theta^(arange(0, R, 2) / R).
std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t R = c.rotary_dim;
  std::vector<float> inv_freq(size_t(R / 2));
  for (int64_t i = 0; i < R / 2; ++i) {
    float e = float(2 * i) / float(R);
    inv_freq[size_t(i)] = 1.0f / std::pow(float(c.rope_theta), e);
  }
  return inv_freq;
}

// Partial rotate-half RoPE (transformers' apply_rotary_pos_emb on the first rotary_dim dims): in
// each of `heads` heads of D floats at x, dims i and i + R/2 (i < R/2) turn by pos * inv_freq[i].
void rope(float* x, int64_t heads, int64_t D, int64_t pos, const std::vector<float>& inv_freq) {
  const int64_t half = int64_t(inv_freq.size());
  for (int64_t i = 0; i < half; ++i) {
    const float f = float(pos) * inv_freq[size_t(i)];
    const float cos_f = std::cos(f), sin_f = std::sin(f);
    for (int64_t h = 0; h < heads; ++h) {
      float* y = x + h * D;
      const float lo = y[i], hi = y[i + half];
      y[i] = lo * cos_f - hi * sin_f;
      y[i + half] = hi * cos_f + lo * sin_f;
    }
  }
}

// The router's choice (LLaDA2MoeGate) for n tokens from their logits [n, E]: sigmoid scores; the
// expert bias shifts the selection only; the topk_group groups with the largest sums of their two
// best biased scores are kept, and the top-k experts of those chosen (chosen [n, k], best first);
// their unbiased scores, normalised to sum 1 when k > 1, times routed_scaling_factor are the
// weights [n, k].
void route(const ModelConfig& c, const float* logits, const std::vector<float>& expert_bias, int64_t n, int32_t* chosen,
           float* weight) {
  const int64_t E = c.num_experts, TK = c.num_experts_per_tok;
  const int64_t NG = c.n_group, per_group = E / NG, KG = c.topk_group;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> s(E), r(E);
    for (int64_t e = 0; e < E; ++e) {
      s[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[t * E + e]));
      r[size_t(e)] = s[size_t(e)] + expert_bias[size_t(e)];
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
      chosen[t * TK + k] = int32_t(eorder[size_t(k)]);
      sum += s[size_t(eorder[size_t(k)])];
    }
    for (int64_t k = 0; k < TK; ++k) {
      float w = s[size_t(chosen[t * TK + k])];
      if (TK > 1) w = w / (sum + 1e-20f);
      weight[t * TK + k] = w * float(c.routed_scaling_factor);
    }
  }
}

}  // namespace

// Self-attention of one layer (transformers' LLaDA2MoeAttention.forward) for the n = W - start new
// positions of each row. a = normed input [B*n, H]; the cache's store of this layer holds final
// keys/values for positions < start; the new positions' keys/values are written into it (rounded
// to bf16 in a bf16 store). out = output projection [B*n, H].
void Model::Impl::attention(const Layer& L, const ForwardBatch& fb, int64_t start, const float* a, KvCache& cache,
                            size_t layer, float* out) const {
  const ModelConfig& c = cfg;
  const int64_t B = fb.batch, W = fb.window, n = W - start, N = B * n;
  const int64_t D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t QKV = (Hq + 2 * Hkv) * D, cap = cache.capacity;
  std::vector<float> qkv(N * QKV);
  linear(a, N, c.hidden_size, L.qkv, L.qkv_bias.empty() ? nullptr : L.qkv_bias.data(), qkv.data(), QKV);

  const float eps = float(c.rms_norm_eps);
  const bool f32 = cache.dtype == DType::F32;
  uint8_t* kc = cache.k[layer].data();
  uint8_t* vc = cache.v[layer].data();
  const size_t es = cache.element_bytes();
  // Keys go in transposed (a position's D values key_stride apart), values as rows.
  auto put = [&](const float* src, uint8_t* store, int64_t element, int64_t stride) {
    for (int64_t d = 0; d < D; ++d) {
      uint8_t* dst = store + size_t(element + d * stride) * es;
      if (f32) {
        std::memcpy(dst, src + d, sizeof(float));
      } else {
        const uint16_t h = f32_to_bf16(src[d]);
        std::memcpy(dst, &h, sizeof h);
      }
    }
  };
  // Where the products run in bf16 (the fast mode on CPUs with AVX512-BF16), keys cached in bf16
  // meet queries rounded to bf16 too, as in a bf16 model's q . k: measured closer to both the
  // pure-bf16 reference and the exact mode than float32 queries (tests/fast_mode_test.cc). Products
  // in float32 (CPUs without bf16 dot products) keep float32 queries: closer to the exact mode. The
  // attention's own products then run in bf16 too (attend_rows' bf16_products).
  const bool bf16_queries = !f32 && kernels::linear_arithmetic(L.qkv) == kernels::Arithmetic::Bf16;
  parallel_for(N, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* row = qkv.data() + t * QKV;
      if (c.use_qk_norm) {
        kernels::rms_norm(row, Hq, D, L.q_norm, eps);
        kernels::rms_norm(row + Hq * D, Hkv, D, L.k_norm, eps);
      }
      const int64_t b = t / n, pos = start + t % n;
      rope(row, Hq + Hkv, D, pos, inv_freq);  // the q heads, then the k heads
      if (bf16_queries)
        for (int64_t i = 0; i < Hq * D; ++i) row[i] = bf16_to_f32(f32_to_bf16(row[i]));
      for (int64_t g = 0; g < Hkv; ++g) {
        put(row + (Hq + g) * D, kc, (b * Hkv + g) * D * cache.key_stride + pos, cache.key_stride);
        put(row + (Hq + Hkv + g) * D, vc, ((b * Hkv + g) * cap + pos) * D, 1);
      }
    }
  });

  std::vector<float> ctx(N * Hq * D);
  attend(fb, start, qkv.data(), cache, layer, bf16_queries, ctx.data());
  linear(ctx.data(), N, Hq * D, L.dense, L.dense_bias.empty() ? nullptr : L.dense_bias.data(), out, c.hidden_size);
}

// Scaled dot-product attention of the new positions' queries (in qkv [B*n, (Hq + 2 Hkv) D]) over
// the keys the mask mode lets them see: ctx [B*n, Hq D]. GQA: kv head g serves query heads
// g*G .. g*G+G-1. bf16_products: attend_rows'.
void Model::Impl::attend(const ForwardBatch& fb, int64_t start, const float* qkv, const KvCache& cache, size_t layer,
                         bool bf16_products, float* ctx) const {
  const ModelConfig& c = cfg;
  const int64_t B = fb.batch, W = fb.window, n = W - start;
  const int64_t D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t QKV = (Hq + 2 * Hkv) * D, G = Hq / Hkv, cap = cache.capacity;
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t K = fb.block_length;
  // Keys [0, key_end(i)) exist for new position i (block_causal: up to the end of its block).
  auto key_end = [&](int64_t i) {
    const int64_t pos = start + i;
    return fb.attention == AttentionMode::BlockCausal ? std::min(W, (pos / K + 1) * K) : W;
  };
  if (profiler.on()) {
    // Scores and weighted values: 2*D + 2*D FLOPs per query head and (unmasked) key.
    uint64_t keys = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t* km = fb.key_mask + b * W;
      for (int64_t i = 0; i < n; ++i)
        keys += uint64_t(std::count_if(km, km + key_end(i), [](int64_t v) { return v != 0; }));
    }
    const bool bf16 = bf16_products && cache.dtype == DType::BF16 && kernels::matmul_acc_bf16_available();
    profiler.count_flops(keys * uint64_t(Hq) * 4 * uint64_t(D),
                         bf16 ? kernels::Arithmetic::Bf16 : kernels::Arithmetic::F32);
  }
  // The queries come in runs that see the same keys (a block's queries in block_causal mode, all
  // of them in bidirectional mode). One task per (row, kv head, run) takes the run's queries of
  // the G heads together, R = G * m rows, through attend_rows (attention.h), which reads the
  // head's keys and values once, in tiles, straight from the store (float32 or bf16).
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t i0 = 0, i1; i0 < n; i0 = i1) {
    const int64_t E = key_end(i0);
    for (i1 = i0 + 1; i1 < n && key_end(i1) == E;) ++i1;
    runs.emplace_back(i0, i1);
  }
  const int64_t nruns = int64_t(runs.size());
  const size_t es = cache.element_bytes();
  const uint8_t* kstore = cache.k[layer].data();
  const uint8_t* vstore = cache.v[layer].data();
  parallel_for(B * Hkv * nruns, [&](int64_t j0, int64_t j1) {
    std::vector<float> q, out;
    AttendScratch scratch;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t b = j / (Hkv * nruns), g = j / nruns % Hkv;
      const auto [i0, i1] = runs[size_t(j % nruns)];
      const int64_t m = i1 - i0, R = G * m;
      q.resize(size_t(R * D));
      out.resize(size_t(R * D));
      for (int64_t h = 0; h < G; ++h)
        for (int64_t i = 0; i < m; ++i)
          std::copy_n(qkv + (b * n + i0 + i) * QKV + (g * G + h) * D, D, q.data() + (h * m + i) * D);
      const size_t kh = size_t((b * Hkv + g) * D * cache.key_stride) * es, vh = size_t((b * Hkv + g) * cap * D) * es;
      attend_rows(q.data(), R, D, kstore + kh, cache.key_stride, vstore + vh, cache.dtype, key_end(i0),
                  fb.key_mask + b * W, scale, out.data(), scratch, bf16_products);
      for (int64_t h = 0; h < G; ++h)
        for (int64_t i = 0; i < m; ++i)
          std::copy_n(out.data() + (h * m + i) * D, D, ctx + (b * n + i0 + i) * Hq * D + (g * G + h) * D);
    }
  });
}

// SwiGLU MLP: out = down(silu(gate x) * up x) for n rows of x [n, H].
void Model::Impl::mlp(const Mlp& m, const float* x, int64_t n, float* out) const {
  const int64_t H = cfg.hidden_size, I = m.gate.rows;
  std::vector<float> g(n * I), u(n * I);
  linear(x, n, H, m.gate, nullptr, g.data(), I);
  linear(x, n, H, m.up, nullptr, u.data(), I);
  kernels::silu_mul(g.data(), u.data(), g.data(), n * I);
  linear(g.data(), n, I, m.down, nullptr, out, H);
}

// The routed experts of an MoE layer (LLaDA2MoeSparseMoeBlock without its shared expert).
void Model::Impl::moe(const Layer& L, int64_t layer_index, const float* x, int64_t n,
                      const std::vector<int64_t>* chunks, float* out, ForwardTrace* trace) const {
  const ModelConfig& c = cfg;
  const int64_t H = c.hidden_size, E = c.num_experts, TK = c.num_experts_per_tok;
  std::vector<float> logits(n * E);
  linear(x, n, H, L.router, nullptr, logits.data(), E);
  std::vector<int32_t> chosen(n * TK);
  std::vector<float> weight(n * TK);
  if (chunks)
    block_route(c, logits.data(), L.expert_bias.data(), *chunks, chosen.data(), weight.data());
  else
    route(c, logits.data(), L.expert_bias, n, chosen.data(), weight.data());
  if (routing.on()) routing.draw(n, TK, E, chosen.data(), weight.data(), chunks, c.expert_capacity);
  if (trace) {
    trace->moe_layers.push_back(layer_index);
    trace->router_logits.push_back(logits);
    trace->router_topk.push_back(chosen);
  }

  // Group tokens by expert; each selected expert runs once on all of its tokens, and the
  // experts are spread over the threads (each expert's products then run inline on one thread).
  // Only chosen experts are read: with block routing, at most expert_capacity per chunk.
  std::vector<std::vector<int64_t>> rows_of(E);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < TK; ++k) rows_of[size_t(chosen[size_t(t * TK + k)])].push_back(t * TK + k);
  std::vector<int64_t> active;
  for (int64_t e = 0; e < E; ++e)
    if (!rows_of[size_t(e)].empty()) active.push_back(e);
  if (profiler.on()) {
    uint64_t bytes = 0;
    for (int64_t e : active) {
      const Mlp& m = L.experts[size_t(e)];
      bytes += kernels::weight_bytes(m.gate) + kernels::weight_bytes(m.up) + kernels::weight_bytes(m.down);
    }
    profiler.count_experts(active.size(), bytes);
  }
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
      mlp(L.experts[size_t(e)], xin.data(), m, yout.data());
      for (int64_t i = 0; i < m; ++i) {
        const int64_t slot = slots[size_t(i)];
        const float w = weight[size_t(slot)];
        float* dst = per_slot.data() + slot * H;
        for (int64_t d = 0; d < H; ++d) dst[d] = yout[size_t(i * H + d)] * w;
      }
    }
  });
  // Sum the top-k contributions in selection order.
  for (int64_t t = 0; t < n; ++t) {
    float* o = out + t * H;
    std::fill(o, o + H, 0.f);
    for (int64_t k = 0; k < TK; ++k) {
      const float* src = per_slot.data() + (t * TK + k) * H;
      for (int64_t d = 0; d < H; ++d) o[d] += src[d];
    }
  }
}

namespace {

// Throws InputError for a batch the forward pass cannot run (with `cache`, or without one).
void check_batch(const ModelConfig& c, const ForwardBatch& fb, const KvCache* cache) {
  const int64_t B = fb.batch, W = fb.window, V = c.vocab_size;
  if (B <= 0 || W <= 0) throw InputError("forward: empty batch");
  if (fb.logits_from < 0 || fb.logits_from > W) throw InputError("forward: logits_from out of range");
  if (fb.attention == AttentionMode::BlockCausal && fb.block_length <= 0)
    throw InputError("forward: block_length must be > 0");
  if (cache) {
    if (fb.attention != AttentionMode::BlockCausal)
      throw InputError("forward: a KV cache needs block_causal attention");
    if (cache->batch != B || cache->capacity < W || cache->length > W || fb.logits_from < cache->length ||
        fb.commit_to < cache->length || fb.commit_to > W)
      throw InputError("forward: window does not fit the KV cache");
  }
  const int64_t start = cache ? cache->length : 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = start; i < W; ++i) {
      const int64_t id = fb.input_ids[b * W + i];
      if (id < 0 || id >= V)
        throw InputError("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(V) +
                         ")");
    }
}

}  // namespace

namespace {

// NaN or Inf anywhere in x? (x - x is 0 for every finite value; the sum stays 0 unless one is not.)
// One subtraction and add per value: a small part of the layer that wrote them.
void check_finite(const float* x, int64_t count, const std::string& where) {
  float s = 0.0f;
  for (int64_t i = 0; i < count; ++i) s += x[i] - x[i];
  if (s != s)
    throw NumericError("the model computed NaN or Inf values in " + where +
                       ": the checkpoint's weights there are probably broken (non-finite or overflowing)");
}

std::string layer_part(int64_t l, const char* part) { return "model.layers." + std::to_string(l) + " (" + part + ")"; }

}  // namespace

void Model::forward(const ForwardBatch& fb, float* logits, ForwardTrace* trace, KvCache* cache) const {
  prepare();
  const Impl& m = *impl_;
  const ModelConfig& c = m.cfg;
  ForwardProfile prof(m.profiler);
  check_batch(c, fb, cache);
  const int64_t B = fb.batch, W = fb.window, H = c.hidden_size;
  // Without a cache, a scratch store holds this forward's keys/values.
  KvCache scratch;
  const int64_t start = cache ? cache->length : 0;
  if (!cache) {
    scratch = make_cache(B, W);
    cache = &scratch;
  }
  const int64_t n = W - start, N = B * n;
  // Block routing (LLaDA2.2) routes chunks of the block-aligned positions together.
  std::vector<int64_t> chunks;
  if (c.block_routing()) chunks = routing_chunks(B, start, n, fb.block_length, c.block_size);

  std::vector<float> h(N * H);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i)
      kernels::to_f32(m.weights.embed.dtype, m.weights.embed.data, fb.input_ids[b * W + start + i] * H, H,
                      h.data() + (b * n + i) * H);
  check_finite(h.data(), N * H, "the word embeddings");
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
    {
      ProfileZone zone(prof, ModelProfile::Attention);
      m.attention(L, fb, start, a.data(), *cache, size_t(l), o.data());
    }
    for (int64_t i = 0; i < N * H; ++i) h[size_t(i)] += o[size_t(i)];
    check_finite(h.data(), N * H, layer_part(l, "attention"));
    a = h;
    kernels::rms_norm(a.data(), N, H, L.post_norm, eps);
    if (L.moe) {
      {
        ProfileZone zone(prof, ModelProfile::Moe);
        m.moe(L, l, a.data(), N, c.block_routing() ? &chunks : nullptr, o.data(), trace);
      }
      if (L.has_shared) {
        ProfileZone zone(prof, ModelProfile::Mlp);
        std::vector<float> sh(size_t(N * H));
        m.mlp(L.shared, a.data(), N, sh.data());
        for (int64_t i = 0; i < N * H; ++i) o[size_t(i)] += sh[size_t(i)];
      }
    } else {
      ProfileZone zone(prof, ModelProfile::Mlp);
      m.mlp(L.mlp, a.data(), N, o.data());
    }
    for (int64_t i = 0; i < N * H; ++i) h[size_t(i)] += o[size_t(i)];
    check_finite(h.data(), N * H, layer_part(l, L.moe ? "MoE" : "MLP"));
    if (trace && l + 1 < c.num_hidden_layers) trace->hidden.push_back(h);
  }
  if (cache != &scratch) cache->length = fb.commit_to;

  ProfileZone zone(prof, ModelProfile::Head);
  m.head(fb, start, h, logits, trace);
}

// Final norm and LM head only for the rows the caller consumes (and of those, the selected ones).
// h = the last layer's output [B*n, H] for positions [start, W) (final-normed in place with a trace).
void Model::Impl::head(const ForwardBatch& fb, int64_t start, std::vector<float>& h, float* logits,
                       ForwardTrace* trace) const {
  const int64_t B = fb.batch, W = fb.window, H = cfg.hidden_size, V = cfg.vocab_size, n = W - start, N = B * n;
  const float eps = float(cfg.rms_norm_eps);
  const int64_t rows = W - fb.logits_from;
  if (trace) {
    kernels::rms_norm(h.data(), N, H, weights.final_norm, eps);
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
  if (!trace) kernels::rms_norm(sel.data(), int64_t(picked.size()), H, weights.final_norm, eps);
  check_finite(sel.data(), int64_t(picked.size()) * H, "the final norm (model.norm)");
  if (int64_t(picked.size()) == B * rows) {
    linear(sel.data(), B * rows, H, weights.lm_head, nullptr, logits, V);
    check_finite(logits, B * rows * V, "the LM head (lm_head)");
    return;
  }
  std::vector<float> out(picked.size() * size_t(V));
  linear(sel.data(), int64_t(picked.size()), H, weights.lm_head, nullptr, out.data(), V);
  check_finite(out.data(), int64_t(out.size()), "the LM head (lm_head)");
  for (size_t i = 0; i < picked.size(); ++i) std::copy_n(out.data() + int64_t(i) * V, V, logits + picked[i] * V);
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = ModelConfig::from_file((std::filesystem::path(dir) / "config.json").string());
  impl->ck = std::make_unique<Checkpoint>(dir);
  impl->weights.bind(impl->cfg, *impl->ck);
  impl->inv_freq = rope_inv_freq(impl->cfg);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

void Model::prepare(const LoadProgress& progress) const {
  Impl& m = *impl_;
  std::call_once(m.prepared, [&] { m.weights.pack(*m.ck, progress); });
}

const ModelConfig& Model::config() const { return impl_->cfg; }

DType Model::kv_dtype() const {
  // The embeddings keep the checkpoint's float dtype (also in q8 / q4 files, which quantize the
  // products' weights only).
  const DType t = impl_->weights.embed.dtype;
  return kernels::bf16_activations() && (t == DType::BF16 || t == DType::F16) ? DType::BF16 : DType::F32;
}
const Checkpoint& Model::checkpoint() const { return *impl_->ck; }
uint64_t Model::weight_bytes_read() const { return impl_->profiler.weight_bytes_read(); }
void Model::set_profiling(bool on) const { impl_->profiler.set_on(on); }
bool Model::profiling() const { return impl_->profiler.on(); }
ModelProfile Model::profile() const { return impl_->profiler.snapshot(); }
void Model::reset_profile() const { impl_->profiler.reset(); }

void set_uniform_routing(const Model& model, uint64_t seed) { model.impl_->routing.set(seed); }

}  // namespace llada2
