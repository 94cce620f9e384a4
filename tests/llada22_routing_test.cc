// LLaDA2.2 block routing: the chunks, the router against a plain-loop reference on random tensors
// (pool sizes, ties to the lower index, partial chunks), and the model's forward reading only the
// pooled experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "llada2/config.h"
#include "llada2/model.h"
#include "llada2/safetensors.h"
#include "llada22_util.h"
#include "model/block_routing.h"
#include "model/trace.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

ModelConfig routing_config(int64_t E, int64_t TK, int64_t capacity, double scale = 2.5) {
  ModelConfig c;
  c.num_experts = E;
  c.num_experts_per_tok = TK;
  c.expert_capacity = capacity;
  c.block_size = 8;
  c.routed_scaling_factor = scale;
  return c;
}

// The rule as the issue states it, one loop at a time.
void reference_route(const ModelConfig& c, const std::vector<float>& logits, const std::vector<float>& bias,
                     const std::vector<int64_t>& chunks, std::vector<int32_t>& chosen, std::vector<float>& weight,
                     std::vector<std::vector<int32_t>>& pools) {
  const int64_t E = c.num_experts, TK = c.num_experts_per_tok, cap = std::min(c.expert_capacity, E);
  chosen.assign(size_t((chunks.back()) * TK), -1);
  weight.assign(chosen.size(), 0.f);
  pools.clear();
  for (size_t ci = 0; ci + 1 < chunks.size(); ++ci) {
    std::vector<float> g(size_t(E), -INFINITY);
    for (int64_t t = chunks[ci]; t < chunks[ci + 1]; ++t)
      for (int64_t e = 0; e < E; ++e) {
        const float s = 1.0f / (1.0f + std::exp(-logits[size_t(t * E + e)]));
        g[size_t(e)] = std::max(g[size_t(e)], s + bias[size_t(e)]);
      }
    // Pool: repeatedly the best expert not yet taken; the first of equals (lower index) wins.
    std::vector<int32_t> pool;
    std::vector<bool> taken(size_t(E), false);
    for (int64_t k = 0; k < cap; ++k) {
      int32_t best = -1;
      for (int32_t e = 0; e < E; ++e)
        if (!taken[size_t(e)] && (best < 0 || g[size_t(e)] > g[size_t(best)])) best = e;
      taken[size_t(best)] = true;
      pool.push_back(best);
    }
    pools.push_back(pool);
    for (int64_t t = chunks[ci]; t < chunks[ci + 1]; ++t) {
      std::vector<float> s(static_cast<size_t>(E)), r(static_cast<size_t>(E));
      for (int64_t e = 0; e < E; ++e) {
        s[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[size_t(t * E + e)]));
        r[size_t(e)] = s[size_t(e)] + bias[size_t(e)];
      }
      std::vector<bool> picked(size_t(E), false);
      float sum = 0.f;
      for (int64_t k = 0; k < TK; ++k) {
        int32_t best = -1;
        for (int32_t e : std::set<int32_t>(pool.begin(), pool.end()))  // ascending index
          if (!picked[size_t(e)] && (best < 0 || r[size_t(e)] > r[size_t(best)])) best = e;
        picked[size_t(best)] = true;
        chosen[size_t(t * TK + k)] = best;
        sum += s[size_t(best)];
      }
      for (int64_t k = 0; k < TK; ++k)
        weight[size_t(t * TK + k)] =
            s[size_t(chosen[size_t(t * TK + k)])] / (sum + 1e-20f) * float(c.routed_scaling_factor);
    }
  }
}

TEST(BlockRouting, ChunksCutAtBlockSizeBlocksAndRows) {
  // block_size 8, blocks of 8: whole chunks; a forward from position 16 over 16 positions.
  EXPECT_EQ(routing_chunks(1, 16, 16, 8, 8), (std::vector<int64_t>{0, 8, 16}));
  // Blocks of 4 < block_size: every block is a partial chunk of its own.
  EXPECT_EQ(routing_chunks(1, 0, 12, 4, 8), (std::vector<int64_t>{0, 4, 8, 12}));
  // Blocks of 12: chunks [0, 8), [8, 12), [12, 16), [16, 24) (absolute positions).
  EXPECT_EQ(routing_chunks(1, 0, 24, 12, 8), (std::vector<int64_t>{0, 8, 12, 16, 24}));
  // A window that ends inside a chunk, and one that starts at a block boundary inside a chunk.
  EXPECT_EQ(routing_chunks(1, 0, 13, 32, 8), (std::vector<int64_t>{0, 8, 13}));
  EXPECT_EQ(routing_chunks(1, 12, 12, 12, 8), (std::vector<int64_t>{0, 4, 12}));
  // Two rows never share a chunk; block_length <= 0 cuts at block_size only.
  EXPECT_EQ(routing_chunks(2, 8, 8, 8, 8), (std::vector<int64_t>{0, 8, 16}));
  EXPECT_EQ(routing_chunks(2, 0, 10, 0, 8), (std::vector<int64_t>{0, 8, 10, 18, 20}));
}

TEST(BlockRouting, MatchesThePlainLoopOnRandomTensors) {
  std::mt19937 gen(17);
  struct Shape {
    int64_t E, TK, cap, batch, start, n, block_length, block_size;
    bool ties;
  } shapes[] = {
      {16, 2, 4, 1, 0, 24, 8, 8, false},      // whole chunks
      {16, 4, 6, 2, 8, 12, 4, 8, false},      // partial chunks (blocks of 4)
      {32, 8, 12, 1, 0, 29, 12, 8, false},    // chunks cut by blocks of 12 and a partial last one
      {16, 2, 4, 3, 0, 16, 8, 8, true},       // few distinct values: ties everywhere
      {8, 3, 8, 1, 0, 9, 32, 4, false},       // capacity = every expert
      {8, 3, 20, 1, 0, 9, 32, 4, true},       // capacity above the expert count
      {256, 8, 48, 1, 32, 64, 32, 32, false}  // the released models' sizes
  };
  for (const Shape& sh : shapes) {
    ModelConfig c = routing_config(sh.E, sh.TK, sh.cap);
    c.block_size = sh.block_size;
    const std::vector<int64_t> chunks = routing_chunks(sh.batch, sh.start, sh.n, sh.block_length, sh.block_size);
    const int64_t T = sh.batch * sh.n;
    std::vector<float> logits(size_t(T * sh.E)), bias(size_t(sh.E));
    std::normal_distribution<float> nd(0.f, 2.f);
    std::uniform_int_distribution<int> level(-2, 2);
    for (float& v : logits) v = sh.ties ? float(level(gen)) : nd(gen);
    for (float& v : bias) v = sh.ties ? 0.f : 0.05f * nd(gen);
    std::vector<int32_t> chosen(size_t(T * sh.TK)), want_chosen;
    std::vector<float> weight(chosen.size()), want_weight;
    std::vector<std::vector<int32_t>> pools, want_pools;
    block_route(c, logits.data(), bias.data(), chunks, chosen.data(), weight.data(), &pools);
    reference_route(c, logits, bias, chunks, want_chosen, want_weight, want_pools);
    const std::string what = "E=" + std::to_string(sh.E) + " cap=" + std::to_string(sh.cap);
    EXPECT_EQ(pools, want_pools) << what;
    EXPECT_EQ(chosen, want_chosen) << what;
    for (size_t i = 0; i < weight.size(); ++i) EXPECT_FLOAT_EQ(weight[i], want_weight[i]) << what << " slot " << i;
    // Every token's experts lie in its chunk's pool, and the chunk reads at most the capacity.
    for (size_t ci = 0; ci + 1 < chunks.size(); ++ci) {
      std::set<int32_t> used;
      for (int64_t t = chunks[ci]; t < chunks[ci + 1]; ++t)
        for (int64_t k = 0; k < sh.TK; ++k) used.insert(chosen[size_t(t * sh.TK + k)]);
      EXPECT_LE(int64_t(used.size()), std::min(sh.cap, sh.E)) << what;
      EXPECT_EQ(int64_t(pools[ci].size()), std::min(sh.cap, sh.E)) << what;
      for (int32_t e : used) EXPECT_NE(std::find(pools[ci].begin(), pools[ci].end(), e), pools[ci].end()) << what;
    }
  }
}

TEST(BlockRouting, TiesGoToTheLowerIndexAndTheBiasOnlySelects) {
  ModelConfig c = routing_config(8, 2, 3, 1.0);
  // Two tokens, every logit equal: the pool is experts 0, 1, 2 and each token takes 0 and 1.
  std::vector<float> logits(16, 0.5f), bias(8, 0.f);
  std::vector<int32_t> chosen(4);
  std::vector<float> weight(4);
  std::vector<std::vector<int32_t>> pools;
  block_route(c, logits.data(), bias.data(), {0, 2}, chosen.data(), weight.data(), &pools);
  EXPECT_EQ(pools, (std::vector<std::vector<int32_t>>{{0, 1, 2}}));
  EXPECT_EQ(chosen, (std::vector<int32_t>{0, 1, 0, 1}));
  for (float w : weight) EXPECT_FLOAT_EQ(w, 0.5f);
  // A bias on expert 7 pulls it into the pool and first place; its weight is its unbiased score.
  bias[7] = 1.0f;
  logits[7] = 2.0f;  // token 0 only
  block_route(c, logits.data(), bias.data(), {0, 2}, chosen.data(), weight.data(), &pools);
  EXPECT_EQ(pools, (std::vector<std::vector<int32_t>>{{7, 0, 1}}));
  EXPECT_EQ(chosen, (std::vector<int32_t>{7, 0, 7, 0}));
  const float s7 = 1.0f / (1.0f + std::exp(-2.0f)), s = 1.0f / (1.0f + std::exp(-0.5f));
  EXPECT_FLOAT_EQ(weight[0], s7 / (s7 + s));
  EXPECT_FLOAT_EQ(weight[2], 0.5f);
  // The chunk's maximum decides the pool: a token that alone favours expert 5 brings it in for both.
  std::vector<float> l2(16, 0.f);
  l2[5] = 3.0f;
  l2[8 + 6] = 2.0f;
  std::fill(bias.begin(), bias.end(), 0.f);
  block_route(c, l2.data(), bias.data(), {0, 2}, chosen.data(), weight.data(), &pools);
  EXPECT_EQ(pools, (std::vector<std::vector<int32_t>>{{5, 6, 0}}));
  EXPECT_EQ(chosen, (std::vector<int32_t>{5, 0, 6, 0}));
}

// The forward of a LLaDA2.2 checkpoint: each chunk of a layer reads at most expert_capacity experts,
// and the logits of a window do not depend on the cache or on the other rows of the batch.
TEST(BlockRouting, ForwardReadsOnlyPooledExperts) {
  auto model = tiny22_model();
  const ModelConfig& c = model->config();
  ASSERT_EQ(c.expert_capacity, 4);
  ASSERT_EQ(c.block_size, 8);
  const int64_t W = 24, V = c.vocab_size;
  Window w = window(300, W, 0);
  ForwardBatch& fb = w.fb;
  ForwardTrace trace;
  std::vector<float> full(size_t(W * V));
  model->forward(fb, full.data(), &trace);
  ASSERT_EQ(trace.router_topk.size(), 1u);  // one MoE layer
  const std::vector<int32_t>& topk = trace.router_topk[0];
  std::set<int32_t> all;
  for (int64_t chunk = 0; chunk < 3; ++chunk) {
    std::set<int32_t> used;
    for (int64_t t = chunk * 8; t < chunk * 8 + 8; ++t)
      for (int64_t k = 0; k < c.num_experts_per_tok; ++k) used.insert(topk[size_t(t * c.num_experts_per_tok + k)]);
    EXPECT_LE(used.size(), 4u);
    all.insert(used.begin(), used.end());
  }
  EXPECT_GT(all.size(), 4u) << "different chunks should pool different experts";

  // The last block with the first two cached: the same logits.
  KvCache cache = model->make_cache(1, W);
  fb.window = 16;
  fb.logits_from = 16;
  fb.commit_to = 16;
  model->forward(fb, nullptr, nullptr, &cache);
  fb.window = W;
  fb.logits_from = 16;
  std::vector<float> tail(size_t(8 * V));
  model->forward(fb, tail.data(), nullptr, &cache);
  for (int64_t i = 0; i < 8 * V; ++i)
    ASSERT_NEAR(tail[size_t(i)], full[size_t(16 * V + i)], 1e-4 * std::max(1.0f, std::fabs(full[size_t(16 * V + i)])))
        << i;

  // Blocks of 4: chunks of 4, so the routing (and the logits) differ from blocks of 8.
  fb.block_length = 4;
  fb.logits_from = 0;
  fb.commit_to = 0;
  std::vector<float> small(size_t(W * V));
  ForwardTrace trace4;
  model->forward(fb, small.data(), &trace4);
  EXPECT_NE(trace4.router_topk[0], topk);
}

// A config without expert_capacity routes token by token with the group limits, as before.
TEST(BlockRouting, OffWithoutExpertCapacity) {
  auto model = golden_model("models/tiny-a-f32");
  EXPECT_FALSE(model->config().block_routing());
  EXPECT_FALSE(model->config().llada22);
}

}  // namespace
}  // namespace llada2::testing
