// eval and chat on a LLaDA2.2 checkpoint (tiny-22 with a tokenizer): the LLaDA2.2 rules by default
// (auto), the LLaDA2.1 rules with --decoding llada2.1, each as the library computes it.
#include <gtest/gtest.h>

#include <fstream>

#include "llada2/pipeline.h"
#include "llada22_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

TEST(Llada22Cli, EvalPicksTheDecoding) {
  const std::string tasks = (fresh_temp_dir() / "tasks.jsonl").string();
  std::ofstream(tasks) << "{\"task\": \"add\", \"prompt\": \"What is 2 + 3?\", \"expected\": \"5\", \"match\": "
                          "\"number\", \"call\": {\"gen_length\": 16, \"block_length\": 8}}\n";
  const std::string eval =
      "eval --model " + llada22_model_dir("tiny-22", false, DType::F32, 5, true) + " --tasks " + tasks + " --json -t 1";
  auto all_of = [&](const std::string& flags) {
    std::string out, err;
    EXPECT_EQ(run_cli(eval + flags, &out, &err), 0) << err;
    return nlohmann::json::parse(out)["runs"][0]["all"];
  };
  // The library with eval's call (seed 0, the chat template).
  auto library = [&](Decoding d) {
    GenerateOptions o;
    o.prompt = std::string("What is 2 + 3?");
    o.gen_length = 16;
    o.block_length = 8;
    o.seed = 0;
    o.decoding = d;
    return (*tiny22_chat_pipeline())(o).stats;
  };
  const nlohmann::json by_default = all_of(""), l22 = all_of(" --decoding llada2.2"),
                       l21 = all_of(" --decoding llada2.1");
  const GenerationStats s22 = library(Decoding::Llada22), s21 = library(Decoding::Llada21);
  EXPECT_EQ(by_default["forwards"], s22.forwards);
  EXPECT_EQ(by_default["tokens"], s22.generated_tokens);
  EXPECT_EQ(l22["forwards"], s22.forwards);
  EXPECT_EQ(l21["forwards"], s21.forwards);
  EXPECT_EQ(l21["tokens"], s21.generated_tokens);
  EXPECT_NE(s22.forwards, s21.forwards) << "the two rules are told apart";
}

TEST(Llada22Cli, ChatPicksTheDecoding) {
  const std::string input = (fresh_temp_dir() / "in.txt").string();
  std::ofstream(input) << "hello\n/quit\n";
  const std::string chat = "chat -m " + llada22_model_dir("tiny-22", false, DType::F32, 5, true) +
                           " --gen-length 16 --block-length 8 --seed 1 -t 1";
  auto answer = [&](const std::string& flags) {
    std::string out, err;
    EXPECT_EQ(run_cli(chat + flags + " < " + input, &out, &err), 0) << err;
    return out;
  };
  auto library = [&](Decoding d) {
    GenerateOptions o;
    o.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hello"}}});
    o.gen_length = 16;
    o.block_length = 8;
    o.seed = 1;
    o.decoding = d;
    return (*(*tiny22_chat_pipeline())(o).texts)[0] + "\n";
  };
  EXPECT_EQ(answer(""), library(Decoding::Llada22));
  EXPECT_EQ(answer(" --decoding llada2.2"), library(Decoding::Llada22));
  EXPECT_EQ(answer(" --decoding llada2.1"), library(Decoding::Llada21));
}

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
