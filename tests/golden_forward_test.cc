// Forward-pass parity with the reference model: logits and every hidden state within
// the exact mode's tolerance (1e-4 relative), router choices identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <cmath>

#include "llada2/bench.h"
#include "llada2/error.h"
#include "model/trace.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace k = kernels;

struct ForwardCase {
  std::string model;   // models/<name>
  std::string file;    // forward*.safetensors
  std::string prefix;  // key prefix of the expected outputs
  std::string input_prefix;
  AttentionMode attention;
};

std::vector<ForwardCase> forward_cases() {
  std::vector<ForwardCase> out;
  for (std::string m : {"tiny-a-f32", "tiny-b-f32"}) {
    out.push_back({m, "forward.safetensors", "ones", "ones", AttentionMode::Bidirectional});
    out.push_back({m, "forward.safetensors", "variant_bidir2d.tailzeros", "tailzeros", AttentionMode::Bidirectional});
    out.push_back({m, "forward_blockcausal.safetensors", "blockcausal", "blockcausal", AttentionMode::BlockCausal});
  }
  for (std::string m : {"tiny-a-bf16", "tiny-b-bf16"}) {
    out.push_back({m, "forward_f32compute.safetensors", "ones", "ones", AttentionMode::Bidirectional});
    out.push_back(
        {m, "forward_f32compute.safetensors", "bidir2d_tailzeros", "bidir2d_tailzeros", AttentionMode::Bidirectional});
    out.push_back({m, "forward_f32compute.safetensors", "blockcausal", "blockcausal", AttentionMode::BlockCausal});
  }
  return out;
}

// max |a - ref| / max(1, |ref|)
double max_rel_err(const std::vector<float>& a, const std::vector<float>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(double(a[i]) - ref[i]) / std::max(1.0, std::fabs(double(ref[i]))));
  return worst;
}

class GoldenForward : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(GoldenForward, MatchesReference) {
  const ArithmeticMode exact(true);
  const ForwardCase& fc = GetParam();
  auto model = golden_model("models/" + fc.model);
  SafetensorsFile f(golden_path("models/" + fc.model + "/" + fc.file));
  const auto& t = f.tensors();
  auto get = [&](const std::string& k) -> const TensorView& {
    auto it = t.find(k);
    if (it == t.end()) throw std::runtime_error("golden lacks " + k);
    return it->second;
  };
  std::vector<int64_t> ids = tensor_i64(get(fc.input_prefix + ".input_ids"));
  std::vector<int64_t> mask = tensor_i64(get(fc.input_prefix + ".attention_mask"));
  const int64_t W = int64_t(ids.size());
  ForwardBatch fb;
  fb.batch = 1;
  fb.window = W;
  fb.input_ids = ids.data();
  fb.key_mask = mask.data();
  fb.attention = fc.attention;
  fb.block_length = fc.attention == AttentionMode::BlockCausal ? tensor_i64(get(fc.prefix + ".block_length"))[0] : W;
  fb.logits_from = 0;
  const int64_t V = model->config().vocab_size;
  std::vector<float> logits(size_t(W * V));
  ForwardTrace trace;
  model->forward(fb, logits.data(), &trace);

  EXPECT_LE(max_rel_err(logits, tensor_f32(get(fc.prefix + ".logits"))), 1e-4) << "logits";
  const int64_t L = model->config().num_hidden_layers;
  if (t.count(fc.prefix + ".hidden_states.00")) {
    ASSERT_EQ(int64_t(trace.hidden.size()), L + 1);
    for (int64_t l = 0; l <= L; ++l) {
      char key[64];
      std::snprintf(key, sizeof key, ".hidden_states.%02lld", (long long)l);
      EXPECT_LE(max_rel_err(trace.hidden[size_t(l)], tensor_f32(get(fc.prefix + key))), 1e-4) << key;
    }
    for (size_t i = 0; i < trace.moe_layers.size(); ++i) {
      char key[64];
      std::snprintf(key, sizeof key, ".layer%02lld", (long long)trace.moe_layers[i]);
      EXPECT_LE(max_rel_err(trace.router_logits[i], tensor_f32(get(fc.prefix + ".router_logits" + key))), 1e-4);
      std::vector<int64_t> want = tensor_i64(get(fc.prefix + ".router_topk_idx" + key));
      std::vector<int64_t> got(trace.router_topk[i].begin(), trace.router_topk[i].end());
      EXPECT_EQ(got, want) << "router choices" << key;
    }
  }
}

std::string forward_name(const ::testing::TestParamInfo<ForwardCase>& info) {
  std::string s = info.param.model + "_" + info.param.prefix;
  for (char& c : s)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenForward, ::testing::ValuesIn(forward_cases()), forward_name);

// On the avx512 tiers a BF16 checkpoint's linear weights are repacked into panels when the model
// is prepared (the file's pages of the originals released; embeddings and norms stay as stored);
// the logits stay within the spec's tolerance of a model kept in rows (LLADA2_PANELS=0) on every
// tier, bit for bit on the tiers that unpack the panels.
TEST(Forward, Bf16WeightsRepackedIntoPanels) {
  const k::Isa was = k::current_isa();
  const bool bf16 = k::bf16_activations();
  k::set_bf16_activations(false);
  ASSERT_TRUE(k::set_isa(k::best_isa()));
  const bool packs = k::best_isa() >= k::Isa::Avx2;
  const std::string dir = golden_path("models/tiny-b-bf16");
  auto panels = Model::load(dir);
  EXPECT_FALSE(panels->checkpoint().released("lm_head.weight"));
  panels->prepare();
  const Checkpoint& ck = panels->checkpoint();
  EXPECT_EQ(ck.released("lm_head.weight"), packs);
  EXPECT_EQ(ck.released("model.layers.0.attention.query_key_value.weight"), packs);
  EXPECT_EQ(ck.released("model.layers.1.mlp.experts.3.down_proj.weight"), packs);
  EXPECT_EQ(ck.released("model.layers.1.mlp.shared_experts.up_proj.weight"), packs);
  EXPECT_FALSE(ck.released("model.word_embeddings.weight"));
  EXPECT_FALSE(ck.released("model.norm.weight"));
  const char* env = std::getenv("LLADA2_PANELS");
  const std::string saved = env ? env : "";
  ::setenv("LLADA2_PANELS", "0", 1);
  auto rows = Model::load(dir);
  rows->prepare();
  if (env) {
    ::setenv("LLADA2_PANELS", saved.c_str(), 1);
  } else {
    ::unsetenv("LLADA2_PANELS");
  }
  EXPECT_FALSE(rows->checkpoint().released("lm_head.weight"));
  const int64_t V = panels->config().vocab_size;
  std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  std::vector<int64_t> mask(ids.size(), 1);
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16}) {
    if (!k::set_isa(isa)) continue;
    const bool own = isa >= k::Isa::Avx2;
    for (int64_t n : {int64_t(3), int64_t(ids.size())}) {  // few rows and many
      ForwardBatch fb{1, n, ids.data(), mask.data(), AttentionMode::Bidirectional, n, 0};
      std::vector<float> yp(size_t(n * V)), yr(size_t(n * V));
      panels->forward(fb, yp.data());
      rows->forward(fb, yr.data());
      for (size_t i = 0; i < yp.size(); ++i) {
        if (own || !packs) {
          ASSERT_NEAR(yp[i], yr[i], 1e-4 * std::max(1.f, std::fabs(yr[i]))) << k::isa_name(isa) << " at " << i;
        } else {
          ASSERT_EQ(yp[i], yr[i]) << k::isa_name(isa) << " at " << i;
        }
      }
    }
  }
  // With bf16 activations (prepared that way too: the vdpbf16ps panel kernel of the avx512bf16
  // tier) the panel model tracks the rows model in the same arithmetic.
  if (k::isa_supported(k::Isa::Avx512Bf16)) {
    ASSERT_TRUE(k::set_isa(k::Isa::Avx512Bf16));
    k::set_bf16_activations(true);
    auto dot = Model::load(dir);
    dot->prepare();
    EXPECT_TRUE(dot->checkpoint().released("lm_head.weight"));
    const int64_t n = int64_t(ids.size());
    ForwardBatch fb{1, n, ids.data(), mask.data(), AttentionMode::Bidirectional, n, 0};
    std::vector<float> yp(size_t(n * V)), yr(size_t(n * V)), yf(size_t(n * V));
    dot->forward(fb, yp.data());
    rows->forward(fb, yr.data());
    k::set_bf16_activations(false);
    rows->forward(fb, yf.data());
    // Rounding activations to bf16 (2^-9 relative) turns float32-level differences of summation
    // order into ~1e-3 ones, so the bound is that of the bf16 arithmetic: the panel model is no
    // further from the rows model than bf16 activations are from float32.
    // Per window position the largest difference relative to max(1, |logit|): where a router
    // choice flips (rounding moved a score across another) a whole position moves.
    std::vector<double> pr(static_cast<size_t>(n)), bf(static_cast<size_t>(n));
    for (size_t i = 0; i < yp.size(); ++i) {
      const double scale = std::max(1.f, std::fabs(yr[i]));
      pr[i / size_t(V)] = std::max(pr[i / size_t(V)], std::fabs(double(yp[i]) - yr[i]) / scale);
      bf[i / size_t(V)] = std::max(bf[i / size_t(V)], std::fabs(double(yf[i]) - yr[i]) / scale);
    }
    // This tiny random model amplifies bf16 rounding (float32 vs bf16: 0.1-5 per position), so the
    // test bounds the panel model's distance from the rows model by that of float32 from it.
    double sum_pr = 0, sum_bf = 0, max_pr = 0;
    for (int64_t i = 0; i < n; ++i) {
      sum_pr += pr[size_t(i)];
      sum_bf += bf[size_t(i)];
      max_pr = std::max(max_pr, pr[size_t(i)]);
    }
    std::printf("[bf16 activations] panels vs rows: mean %.3f, max %.3f; float32 vs rows: mean %.3f\n",
                sum_pr / double(n), max_pr, sum_bf / double(n));
    EXPECT_GT(sum_bf, 1e-3) << "bf16 activations not used";
    EXPECT_LT(sum_pr, 0.5 * sum_bf);
    EXPECT_LT(max_pr, 0.5);
  }
  k::set_isa(was);
  k::set_bf16_activations(bf16);
}

// The LM head on a suffix of the window gives the same rows as on the whole window.
TEST(Forward, LogitsFromSuffixEqualFullRows) {
  auto model = golden_model("models/tiny-b-f32");
  std::vector<int64_t> ids = {5, 9, 13, 999, 999, 999, 999, 999, 7, 999};
  std::vector<int64_t> mask(ids.size(), 1);
  const int64_t W = int64_t(ids.size()), V = model->config().vocab_size;
  ForwardBatch fb{1, W, ids.data(), mask.data(), AttentionMode::BlockCausal, 4, 0};
  std::vector<float> full(size_t(W * V)), tail(size_t(4 * V));
  model->forward(fb, full.data());
  fb.logits_from = W - 4;
  model->forward(fb, tail.data());
  for (int64_t i = 0; i < 4 * V; ++i) ASSERT_EQ(tail[size_t(i)], full[size_t((W - 4) * V + i)]);
}

// Benchmark routing: each token goes to k distinct experts, not the router's, reproducibly for a
// seed, spread over the experts; 0 restores the router (the logits come back bit for bit).
TEST(Forward, UniformRoutingSpreadsTokensAndRestores) {
  auto model = golden_model("models/tiny-b-f32");  // shared with other tests: always restore the router
  struct Restore {
    const Model& m;
    ~Restore() { set_uniform_routing(m, 0); }
  } restore{*model};
  const ModelConfig& c = model->config();
  std::vector<int64_t> ids(40);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i * 7 % 300);
  std::vector<int64_t> mask(ids.size(), 1);
  const int64_t W = int64_t(ids.size()), V = c.vocab_size, TK = c.num_experts_per_tok;
  ForwardBatch fb{1, W, ids.data(), mask.data(), AttentionMode::Bidirectional, 8, 0};
  std::vector<float> ref(size_t(W * V)), got(size_t(W * V));
  ForwardTrace base, u1, u2;
  model->forward(fb, ref.data(), &base);
  set_uniform_routing(*model, 42);
  model->forward(fb, got.data(), &u1);
  set_uniform_routing(*model, 42);
  model->forward(fb, got.data(), &u2);
  ASSERT_FALSE(u1.router_topk.empty());
  EXPECT_NE(u1.router_topk, base.router_topk);
  EXPECT_EQ(u1.router_topk, u2.router_topk);
  EXPECT_NE(u1.router_topk.front(), u1.router_topk.back());  // layers draw differently
  std::vector<int> used(size_t(c.num_experts), 0);
  for (const auto& layer : u1.router_topk) {
    ASSERT_EQ(int64_t(layer.size()), W * TK);
    for (int64_t t = 0; t < W; ++t) {
      std::vector<int32_t> e(layer.begin() + t * TK, layer.begin() + (t + 1) * TK);
      std::sort(e.begin(), e.end());
      EXPECT_EQ(std::adjacent_find(e.begin(), e.end()), e.end()) << "expert twice for token " << t;
      for (int32_t x : e) {
        ASSERT_GE(x, 0);
        ASSERT_LT(x, c.num_experts);
        ++used[size_t(x)];
      }
    }
  }
  // 3 x 40 x k picks over the experts: every expert gets some.
  EXPECT_EQ(std::count(used.begin(), used.end(), 0), 0);
  set_uniform_routing(*model, 0);
  ForwardTrace again;
  model->forward(fb, got.data(), &again);
  EXPECT_EQ(again.router_topk, base.router_topk);
  EXPECT_EQ(got, ref);
}

TEST(Forward, RejectsOutOfVocabularyIds) {
  auto model = golden_model("models/tiny-a-f32");
  std::vector<int64_t> ids = {1, 2, 320};
  std::vector<int64_t> mask(3, 1);
  ForwardBatch fb{1, 3, ids.data(), mask.data(), AttentionMode::Bidirectional, 3, 0};
  std::vector<float> logits(3 * 320);
  EXPECT_THROW(model->forward(fb, logits.data()), InputError);
}

}  // namespace
}  // namespace llada2::testing
