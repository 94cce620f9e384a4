// The `llada2 generate --call FILE --json` contract, run as a separate process.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace llada2::testing {
namespace {

std::string write_temp(const std::string& content) {
  char path[] = "/tmp/llada2_callXXXXXX";
  int fd = mkstemp(path);
  close(fd);
  std::ofstream(path) << content;
  return path;
}

TEST(CliGenerate, CallFileReproducesAGoldenCase) {
  const nlohmann::json cj = read_json(golden_path("v0.40.0+blockcausal/a_batch2_eos_stop/case.json"));
  nlohmann::json call = cj["call"];
  call["scheduler"] = cj["scheduler_config"];
  std::string f = write_temp(call.dump());
  std::string out, err;
  int rc = run_cli("generate --model " + golden_path("models/tiny-a-f32") + " --call " + f + " --json", &out, &err);
  ASSERT_EQ(rc, 0) << err;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["sequences"], cj["expected"]["sequences"]);
  EXPECT_TRUE(j["texts"].is_null());
  EXPECT_EQ(j["stats"]["forwards"], cj["expected"]["num_model_calls"]);
  for (const char* k : {"generated_tokens", "seconds", "tokens_per_second", "tokens_per_forward"})
    EXPECT_TRUE(j["stats"].contains(k)) << k;
  unlink(f.c_str());
}

TEST(CliGenerate, AttentionFlagSelectsTheMode) {
  const nlohmann::json cj = read_json(golden_path("v0.40.0+bidir2d/a_b4_s3/case.json"));
  nlohmann::json call = cj["call"];
  call["scheduler"] = cj["scheduler_config"];
  std::string f = write_temp(call.dump());
  std::string out, err;
  ASSERT_EQ(
      run_cli("generate --model " + golden_path(cj["model_dir"]) + " --call " + f + " --attention bidirectional --json",
              &out, &err),
      0)
      << err;
  EXPECT_EQ(nlohmann::json::parse(out)["sequences"], cj["expected"]["sequences"]);
  unlink(f.c_str());
}

TEST(CliGenerate, FlagsOverrideTheFile) {
  std::string f =
      write_temp(R"({"input_ids": [[35, 55, 4]], "gen_length": 8, "block_length": 4, "mask_token_id": 319})");
  std::string out, err;
  ASSERT_EQ(run_cli("generate -m " + golden_path("models/tiny-a-f32") + " --call " + f + " --gen-length 5 --json", &out,
                    &err),
            0)
      << err;
  EXPECT_EQ(nlohmann::json::parse(out)["sequences"][0].size(), 5u);
  unlink(f.c_str());
}

TEST(CliGenerate, BadInputExitsWithCode2) {
  std::string model = golden_path("models/tiny-a-f32");
  std::string err;
  std::string f = write_temp(R"({"input_ids": [[1, 2]], "gen_lenght": 8})");
  EXPECT_EQ(run_cli("generate -m " + model + " --call " + f + " --json", nullptr, &err), 2);
  EXPECT_NE(err.find("gen_lenght"), std::string::npos) << err;
  std::string g = write_temp("{not json");
  EXPECT_EQ(run_cli("generate -m " + model + " --call " + g + " --json", nullptr, &err), 2);
  EXPECT_NE(err.find("not valid JSON"), std::string::npos) << err;
  std::string h = write_temp(R"({"input_ids": [[1, 2]], "gen_length": 0, "mask_token_id": 319})");
  EXPECT_EQ(run_cli("generate -m " + model + " --call " + h + " --json", nullptr, &err), 2);
  EXPECT_NE(err.find("`gen_length` must be > 0"), std::string::npos) << err;
  EXPECT_EQ(run_cli("generate -m /nonexistent --input-ids 1,2 --json", nullptr, &err), 2);
  EXPECT_EQ(run_cli("generate -m " + model + " --input-ids 1,x", nullptr, &err), 2);
  EXPECT_EQ(run_cli("generate", nullptr, &err), 2);
  EXPECT_EQ(run_cli("frobnicate", nullptr, &err), 2);
  for (const std::string& p : {f, g, h}) unlink(p.c_str());
}

TEST(CliGenerate, HelpExplainsTheFlags) {
  std::string out;
  EXPECT_EQ(run_cli("generate --help", &out), 0);
  for (const char* flag :
       {"--call", "--json", "--attention", "--gen-length", "--block-length", "--num-inference-steps", "--threshold",
        "--editing-threshold", "--max-post-steps", "--minimal-topk", "--temperature", "--top-p", "--top-k",
        "--sampling-method", "--no-eos-early-stop", "--eos-token-id", "--mask-token-id", "--seed", "--output-type"})
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace llada2::testing

namespace llada2::testing {
namespace {

// --bf16-activations: an opt-in engine setting on generate, chat, serve and bench.
TEST(CliGenerate, Bf16ActivationsFlag) {
  for (const char* cmd : {"generate", "chat", "serve", "bench"}) {
    std::string out;
    EXPECT_EQ(run_cli(std::string(cmd) + " --help", &out), 0);
    EXPECT_NE(out.find("--bf16-activations"), std::string::npos) << cmd;
  }
  const std::string args = "generate --model " + golden_path("models/tiny-a-bf16") +
                           " --input-ids 35,55,4,256 --gen-length 8 --block-length 4 --mask-token-id 319 --json";
  std::string exact, fast;
  ASSERT_EQ(run_cli(args, &exact), 0);
  ASSERT_EQ(run_cli(args + " --bf16-activations", &fast), 0);
  const auto a = nlohmann::json::parse(exact), b = nlohmann::json::parse(fast);
  EXPECT_EQ(b["sequences"][0].size(), a["sequences"][0].size());
}

}  // namespace
}  // namespace llada2::testing
