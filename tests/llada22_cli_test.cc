// The CLI on a LLaDA2.2 checkpoint (tiny-22): bench's rules and expert figures.
#include <gtest/gtest.h>

#include "llada2/pipeline.h"
#include "llada22_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

// bench runs the checkpoint's rules with their defaults and reports the routed experts it read: the
// experts each MoE layer ran (at most a pool per chunk with block routing, uniform routing included)
// times their bytes.
TEST(Llada22Cli, BenchReportsTheRulesAndTheExpertsRead) {
  auto bench = [](const std::string& model, const std::string& flags) {
    std::string out, err;
    EXPECT_EQ(run_cli("bench -m " + model +
                          " --prompt-length 1 --gen-length 15 --block-length 8 --steps 8 -t 1 --bandwidth-gbs 20"
                          " --peak-gflops 100 " +
                          flags,
                      &out, &err),
              0)
        << err;
    return out;
  };
  const std::string l22 = llada22_model_dir(), l21 = golden_path("models/tiny-a-f32");
  const nlohmann::json j = nlohmann::json::parse(bench(l22, "--json"));
  EXPECT_EQ(j["decoding"], "llada2.2");
  EXPECT_EQ(j["threshold"], 0.5);
  EXPECT_EQ(j["editing_threshold"], 0.0);
  EXPECT_EQ(j["expert_capacity"], 4);
  // tiny-22: one MoE layer of float32 experts [32, 64], [32, 64], [64, 32].
  const double expert_bytes = 3 * 32 * 64 * 4;
  EXPECT_GT(j["experts_per_moe_layer"].get<double>(), 0.0);
  EXPECT_NEAR(j["expert_bytes_per_step"].get<double>(), j["experts_per_moe_layer"].get<double>() * expert_bytes, 1e-6);

  const nlohmann::json j21 = nlohmann::json::parse(bench(l22, "--json --decoding llada2.1 --threshold 0.9"));
  EXPECT_EQ(j21["decoding"], "llada2.1");
  EXPECT_EQ(j21["threshold"], 0.9);
  EXPECT_TRUE(j21["editing_threshold"].is_null());

  // Uniform routing: every forward covers one chunk of the block, so a pool of 4 bounds it; tiny-a
  // (8 experts, top-2, no block routing) spreads its 8 tokens wider.
  const nlohmann::json u22 = nlohmann::json::parse(bench(l22, "--json --uniform-routing"));
  EXPECT_LE(u22["experts_per_moe_layer"].get<double>(), 4.0);
  const nlohmann::json u21 = nlohmann::json::parse(bench(l21, "--json --uniform-routing"));
  EXPECT_EQ(u21["decoding"], "llada2.1");
  EXPECT_TRUE(u21["expert_capacity"].is_null());
  EXPECT_GT(u21["experts_per_moe_layer"].get<double>(), 4.0);

  const std::string text = bench(l22, "");
  EXPECT_NE(text.find("decoding         llada2.2 (threshold 0.5, editing threshold 0)"), std::string::npos) << text;
  EXPECT_NE(text.find("experts / step"), std::string::npos) << text;
}

}  // namespace
}  // namespace llada2::testing
