// Opt-in per-phase profiling of Model::forward (ModelProfile) and the step breakdown of `llada2 bench`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <numeric>

#include "test_util.h"

namespace llada2::testing {
namespace {

// A model of its own (golden_model() is shared by the tests of a process).
std::unique_ptr<Model> fresh_model() { return Model::load(golden_path("models/tiny-b-f32")); }

void expect_zero(const ModelProfile& p) {
  EXPECT_EQ(p.forwards, 0u);
  EXPECT_EQ(p.forward_ns, 0u);
  for (int i = 0; i < ModelProfile::kCount; ++i) {
    EXPECT_EQ(p.phase[i].ns, 0u) << ModelProfile::name(i);
    EXPECT_EQ(p.phase[i].weight_bytes, 0u) << ModelProfile::name(i);
    EXPECT_EQ(p.phase[i].flops, 0u) << ModelProfile::name(i);
  }
}

TEST(ModelProfile, OffByDefaultAndCountsNothing) {
  auto model = fresh_model();
  const int64_t V = model->config().vocab_size;
  EXPECT_FALSE(model->profiling());
  Window w = window(V, 24, 16);
  std::vector<float> logits(size_t(8 * V));
  const uint64_t bytes0 = model->weight_bytes_read();
  model->forward(w.fb, logits.data());
  EXPECT_GT(model->weight_bytes_read(), bytes0);  // the always-on total still counts
  expect_zero(model->profile());
}

TEST(ModelProfile, PhasesSplitTheWeightBytesAndCountFlops) {
  auto model = fresh_model();
  const ModelConfig& c = model->config();
  const int64_t V = c.vocab_size, H = c.hidden_size, D = c.head_dim, Hq = c.num_attention_heads,
                Hkv = c.num_key_value_heads;
  Window w = window(V, 24, 16);
  std::vector<uint8_t> rows = {1, 0, 1, 1, 0, 0, 1, 0};  // 4 of the 8 logits rows
  w.fb.logits_rows = rows.data();
  std::vector<float> plain(size_t(8 * V), 0.f), profiled(size_t(8 * V), 0.f);
  model->forward(w.fb, plain.data());

  model->set_profiling(true);
  EXPECT_TRUE(model->profiling());
  const uint64_t bytes0 = model->weight_bytes_read();
  model->forward(w.fb, profiled.data());
  const uint64_t grown = model->weight_bytes_read() - bytes0;
  const ModelProfile p = model->profile();
  EXPECT_EQ(plain, profiled);  // profiling does not change the results

  EXPECT_EQ(p.forwards, 1u);
  EXPECT_EQ(p.total().weight_bytes, grown);
  EXPECT_EQ(p.total().ns, p.forward_ns);
  EXPECT_GT(p.forward_ns, 0u);
  for (int i : {ModelProfile::Attention, ModelProfile::Mlp, ModelProfile::Moe, ModelProfile::Head}) {
    EXPECT_GT(p.phase[i].flops, 0u) << ModelProfile::name(i);
    EXPECT_GT(p.phase[i].weight_bytes, 0u) << ModelProfile::name(i);
  }
  EXPECT_EQ(p.phase[ModelProfile::Other].flops, 0u);
  EXPECT_EQ(p.phase[ModelProfile::Other].weight_bytes, 0u);

  // LM head: 4 rows x vocab x hidden, reading the f32 head once.
  EXPECT_EQ(p.phase[ModelProfile::Head].flops, uint64_t(2 * 4 * V * H));
  EXPECT_EQ(p.phase[ModelProfile::Head].weight_bytes, uint64_t(V * H * 4));

  // Weights per phase from the config (tiny-b: f32, layer 0 dense, the others MoE with a shared expert).
  const int64_t L = c.num_hidden_layers, dense_layers = c.first_k_dense_replace;
  const uint64_t attn_bytes = uint64_t(L * ((Hq + 2 * Hkv) * D * H + H * Hq * D) * 4);
  const uint64_t mlp_bytes = uint64_t(dense_layers * 3 * c.intermediate_size * H * 4 +
                                      (L - dense_layers) * 3 * c.moe_intermediate_size * c.num_shared_experts * H * 4);
  EXPECT_EQ(p.phase[ModelProfile::Attention].weight_bytes, attn_bytes);
  EXPECT_EQ(p.phase[ModelProfile::Mlp].weight_bytes, mlp_bytes);
  EXPECT_EQ(p.phase[ModelProfile::Mlp].flops, mlp_bytes / 4 * 2 * 24);  // 24 rows through each product
  // Attention: projections of 24 rows, plus 4*D per query head and key (block-causal, blocks of 8).
  const uint64_t keys = 8 * 8 + 8 * 16 + 8 * 24;
  EXPECT_EQ(p.phase[ModelProfile::Attention].flops, attn_bytes / 4 * 2 * 24 + uint64_t(L) * keys * Hq * 4 * D);
  // MoE: the router's product plus whole experts (gate, up, down of the same size).
  const uint64_t router_bytes = uint64_t((L - dense_layers) * c.num_experts * H * 4);
  const uint64_t expert_bytes = uint64_t(3 * c.moe_intermediate_size * H * 4);
  ASSERT_GT(p.phase[ModelProfile::Moe].weight_bytes, router_bytes);
  EXPECT_EQ((p.phase[ModelProfile::Moe].weight_bytes - router_bytes) % expert_bytes, 0u);
  // Each token runs through num_experts_per_tok experts in each MoE layer.
  EXPECT_EQ(
      p.phase[ModelProfile::Moe].flops,
      router_bytes / 4 * 2 * 24 + uint64_t((L - dense_layers) * 24 * c.num_experts_per_tok) * expert_bytes / 4 * 2);

  // Off again: the counters stay as they are.
  model->set_profiling(false);
  model->forward(w.fb, profiled.data());
  const ModelProfile q = model->profile();
  EXPECT_EQ(q.forwards, 1u);
  EXPECT_EQ(q.total().weight_bytes, p.total().weight_bytes);
  EXPECT_EQ(q.total().flops, p.total().flops);
  EXPECT_EQ(q.forward_ns, p.forward_ns);

  model->reset_profile();
  expect_zero(model->profile());
}

TEST(ModelProfile, CachedForwardWithoutLogitsHasNoHeadWork) {
  auto model = fresh_model();
  const int64_t V = model->config().vocab_size;
  Window w = window(V, 16, 8);
  w.fb.logits_from = 16;
  w.fb.commit_to = 16;
  KvCache cache = model->make_cache(1, 24);
  model->set_profiling(true);
  const uint64_t bytes0 = model->weight_bytes_read();
  model->forward(w.fb, nullptr, nullptr, &cache);
  const ModelProfile p = model->profile();
  EXPECT_EQ(p.forwards, 1u);
  EXPECT_EQ(p.phase[ModelProfile::Head].flops, 0u);
  EXPECT_EQ(p.phase[ModelProfile::Head].weight_bytes, 0u);
  EXPECT_EQ(p.total().weight_bytes, model->weight_bytes_read() - bytes0);
  EXPECT_GT(p.phase[ModelProfile::Attention].flops, 0u);
}

TEST(ModelProfile, PhaseNames) {
  EXPECT_STREQ(ModelProfile::name(ModelProfile::Attention), "attention");
  EXPECT_STREQ(ModelProfile::name(ModelProfile::Mlp), "mlp");
  EXPECT_STREQ(ModelProfile::name(ModelProfile::Moe), "moe");
  EXPECT_STREQ(ModelProfile::name(ModelProfile::Head), "lm_head");
  EXPECT_STREQ(ModelProfile::name(ModelProfile::Other), "other");
}

TEST(CliBench, JsonHasTheStepBreakdown) {
  std::string out, err;
  ASSERT_EQ(run_cli("bench -m " + golden_path("models/tiny-b-f32") +
                        " --prompt-length 8 --gen-length 16 --block-length 8 --steps 4 -t 1 --bandwidth-gbs 20"
                        " --peak-gflops 1000 --json",
                    &out, &err),
            0)
      << err;
  const nlohmann::json j = nlohmann::json::parse(out);
  for (const char* k :
       {"step_seconds_median", "forwards", "weight_bytes_per_step", "weight_gb_per_second", "peak_rss_mb"})
    EXPECT_TRUE(j.contains(k)) << k;
  ASSERT_TRUE(j.contains("phases"));
  const nlohmann::json& ph = j["phases"];
  double ms = 0, mb = 0;
  for (const char* k : {"attention", "mlp", "moe", "lm_head", "other", "sampling"}) {
    ASSERT_TRUE(ph.contains(k)) << k;
    for (const char* f : {"ms_per_step", "weight_mb_per_step", "gflop_per_step", "gb_per_second", "gflop_per_second",
                          "roofline_ms", "roofline_percent", "bound"})
      EXPECT_TRUE(ph[k].contains(f)) << k << "." << f;
    ms += ph[k]["ms_per_step"].get<double>();
    mb += ph[k]["weight_mb_per_step"].get<double>();
  }
  const nlohmann::json& step = ph["step"];
  EXPECT_NEAR(ms, step["ms_per_step"].get<double>(), 1e-6 * step["ms_per_step"].get<double>() + 1e-9);
  EXPECT_NEAR(mb, step["weight_mb_per_step"].get<double>(), 1e-9 * mb + 1e-12);
  EXPECT_NEAR(step["weight_mb_per_step"].get<double>() * 1e6, j["weight_bytes_per_step"].get<double>(), 1.0);
  EXPECT_GT(ph["lm_head"]["gflop_per_step"].get<double>(), 0.0);
  EXPECT_TRUE(ph["sampling"]["roofline_percent"].is_null());
  EXPECT_EQ(ph["attention"]["bound"].get<std::string>(),
            "memory");  // 8-16-row products on a 20 GB/s, 1000 GFLOP/s roof
  EXPECT_EQ(j["roofline"]["bandwidth_gbs"].get<double>(), 20.0);
  EXPECT_EQ(j["roofline"]["peak_gflops"].get<double>(), 1000.0);
}

// Without --bandwidth-gbs / --peak-gflops, bench measures this machine once and caches the figures
// under $XDG_CACHE_HOME; a prompt shorter than a block has no prefill to measure and says so.
TEST(CliBench, MeasuresTheMachineOnceAndSaysWhatIsNotMeasured) {
  const std::filesystem::path cache = fresh_temp_dir();
  ::setenv("XDG_CACHE_HOME", cache.c_str(), 1);
  const std::string bench = "bench -m " + golden_path("models/tiny-b-f32") +
                            " --prompt-length 4 --gen-length 8 --block-length 8 --steps 2 -t 1";
  std::string out, err;
  ASSERT_EQ(run_cli(bench + " --json", &out, &err), 0) << err;
  nlohmann::json first = nlohmann::json::parse(out);
  EXPECT_GT(first["roofline"]["bandwidth_gbs"].get<double>(), 0.1);
  EXPECT_GT(first["roofline"]["peak_gflops"].get<double>(), 0.1);
  EXPECT_NE(first["roofline"]["limits"].get<std::string>().find("measured now"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(cache / "llada2" / "machine.json"));
  EXPECT_TRUE(first["prefill_tokens_per_second"].is_null());
  ASSERT_EQ(run_cli(bench + " --json", &out, &err), 0) << err;
  nlohmann::json second = nlohmann::json::parse(out);
  EXPECT_NE(second["roofline"]["limits"].get<std::string>().find("cached in"), std::string::npos);
  EXPECT_EQ(second["roofline"]["bandwidth_gbs"], first["roofline"]["bandwidth_gbs"]);
  EXPECT_EQ(second["roofline"]["peak_gflops"], first["roofline"]["peak_gflops"]);
  ASSERT_EQ(run_cli(bench, &out, &err), 0) << err;
  EXPECT_NE(out.find("prefill          not measured (the prompt is shorter than a block)"), std::string::npos) << out;
  EXPECT_EQ(out.find("0.0 tokens/s"), std::string::npos) << out;
  ::unsetenv("XDG_CACHE_HOME");
  std::filesystem::remove_all(cache);
}

// The KV cache's size and dtype, and a prompt over the model's positions refused before any forward.
TEST(CliBench, ReportsTheKvCacheAndRefusesPromptsPastThePositions) {
  std::string out, err;
  const std::string bench = "bench -m " + golden_path("models/tiny-b-bf16") + " --block-length 8 --steps 2 -t 1" +
                            " --bandwidth-gbs 20 --peak-gflops 1000 --json --gen-length 8";
  ASSERT_EQ(run_cli(bench + " --prompt-length 100", &out, &err), 0) << err;
  nlohmann::json j = nlohmann::json::parse(out);
  const nlohmann::json cfg = read_json(golden_path("models/tiny-b-bf16/config.json"));
  const int64_t per_position = cfg["num_hidden_layers"].get<int64_t>() * 2 * cfg["num_key_value_heads"].get<int64_t>() *
                               cfg["head_dim"].get<int64_t>();
  EXPECT_EQ(j["kv_cache_dtype"], "BF16");
  EXPECT_EQ(j["kv_cache_bytes"].get<double>(), double(112 * per_position * 2));  // 100 + 8, in blocks of 8
  EXPECT_GT(j["prefill_tokens_per_second"].get<double>(), 0);
  ASSERT_EQ(run_cli(bench + " --prompt-length 100 --exact", &out, &err), 0) << err;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["kv_cache_dtype"], "F32");
  EXPECT_EQ(j["kv_cache_bytes"].get<double>(), double(112 * per_position * 4));
  const int64_t positions = cfg["max_position_embeddings"];
  EXPECT_NE(run_cli(bench + " --prompt-length " + std::to_string(positions), &out, &err), 0);
  EXPECT_NE(err.find("max_position_embeddings in config.json"), std::string::npos) << err;
}

TEST(CliBench, RooflineFlagsMustBePositive) {
  std::string err;
  EXPECT_NE(run_cli("bench -m " + golden_path("models/tiny-b-f32") + " --bandwidth-gbs 0 --json", nullptr, &err), 0);
}

}  // namespace
}  // namespace llada2::testing
