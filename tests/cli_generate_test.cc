// The `llada2 generate --call FILE --json` contract, run as a separate process.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

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

// One rule for the ways of giving a prompt, and range checks like every other flag's.
TEST(CliGenerate, PromptSourcesAndRangesAreChecked) {
  const std::string m = "generate -m " + chat_model_dir() + " --gen-length 8";
  const std::string msgs = write_temp(R"([{"role": "user", "content": "hi"}])");
  const std::string empty = write_temp("[]");
  struct Case {
    std::string args, message;
  };
  std::string err;
  for (const Case& c : std::vector<Case>{{" -p hi --input-ids 1,2", "only one of -p/--prompt, --messages"},
                                         {" -p hi --messages " + msgs, "only one of -p/--prompt, --messages"},
                                         {" --messages " + empty, "must be a non-empty list of {role, content}"},
                                         {" -p ''", "the prompt is empty"},
                                         {" -p hi --threads 0", "--threads"},
                                         {" -p hi --threads -3", "--threads"},
                                         {" -p hi --top-p 1.5", "in (0, 1]"},
                                         {" -p hi --top-p 0", "in (0, 1]"}}) {
    EXPECT_EQ(run_cli(m + c.args, nullptr, &err), 2) << c.args;
    EXPECT_NE(err.find(c.message), std::string::npos) << c.args << ": " << err;
  }
  // A prompt flag replaces the call file's prompt, whatever form that had.
  const std::string call = write_temp(R"({"input_ids": [[1, 2]]})");
  std::string want, got;
  ASSERT_EQ(run_cli(m + " -p hi --json", &want, &err), 0) << err;
  auto same = [&](const std::string& a, const std::string& b) {
    auto x = nlohmann::json::parse(a), y = nlohmann::json::parse(b);
    return x["sequences"] == y["sequences"] && x["texts"] == y["texts"];
  };
  ASSERT_EQ(run_cli(m + " --call " + call + " -p hi --json", &got, &err), 0) << err;
  EXPECT_TRUE(same(got, want)) << got << "\n" << want;
  ASSERT_EQ(run_cli(m + " --messages " + msgs + " --json", &got, &err), 0) << err;
  EXPECT_TRUE(same(got, want)) << "a prompt is a one-message conversation";
  for (const std::string& p : {msgs, empty, call}) unlink(p.c_str());
}

// A copy of the tiny model with every value of one tensor set to NaN.
std::string broken_copy(const std::string& tensor) {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_temp_dir() / tensor;
  fs::create_directories(dir);
  const std::string src = golden_path("models/tiny-a-f32");
  fs::copy_file(src + "/config.json", dir / "config.json");
  std::string bytes = read_file(src + "/model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  const auto& t = header.at(tensor);
  EXPECT_EQ(t.at("dtype"), "F32");
  const size_t begin = 8 + n + t.at("data_offsets")[0].get<size_t>(),
               end = 8 + n + t.at("data_offsets")[1].get<size_t>();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t i = begin; i < end; i += 4) std::memcpy(&bytes[i], &nan, 4);
  std::ofstream(dir / "model.safetensors", std::ios::binary) << bytes;
  return dir.string();
}

// Broken weights stop the generation with an error that says where, instead of printing garbage.
TEST(CliGenerate, NonFiniteWeightsAreReportedByLayer) {
  const std::string call = write_temp(R"({"input_ids": [[1, 2]], "gen_length": 4, "mask_token_id": 319})");
  struct Case {
    std::string tensor, where;
  };
  for (const Case& c : std::vector<Case>{{"model.layers.1.attention.dense.weight", "model.layers.1 (attention)"},
                                         {"model.layers.0.mlp.down_proj.weight", "model.layers.0 (MLP)"},
                                         {"lm_head.weight", "the LM head"}}) {
    std::string out, err;
    EXPECT_EQ(run_cli("generate -m " + broken_copy(c.tensor) + " --call " + call, &out, &err), 2) << c.tensor;
    EXPECT_NE(err.find("NaN or Inf values in " + c.where), std::string::npos) << c.tensor << ": " << err;
    EXPECT_EQ(out, "");
  }
  unlink(call.c_str());
}

TEST(CliGenerate, VersionNamesTheRevisionAndKernels) {
  for (const char* flag : {"--version", "-V", "version"}) {
    std::string out;
    ASSERT_EQ(run_cli(flag, &out), 0) << flag;
    EXPECT_EQ(out.rfind("llada2 0.", 0), 0u) << out;
    EXPECT_NE(out.find("kernels: "), std::string::npos) << out;
    EXPECT_NE(out.find(" ("), std::string::npos) << out;
  }
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

// SPEC A6's two modes on the command line: --exact (and "exact": true in a call file) reproduce the
// float32 goldens of a BF16 checkpoint token for token; the fast default is held to its floors in
// fast_mode_test.cc. The switches are on every command that runs a model.
TEST(CliGenerate, ExactModeReproducesTheF32ComputeGoldens) {
  for (const char* cmd : {"generate", "chat", "serve", "bench", "eval"}) {
    std::string out;
    EXPECT_EQ(run_cli(std::string(cmd) + " --help", &out), 0);
    EXPECT_NE(out.find("--exact"), std::string::npos) << cmd;
    EXPECT_NE(out.find("--bf16-activations"), std::string::npos) << cmd;
  }
  int cases = 0;
  for (const char* name : {"a_edit_b16_post16_onbf16", "a_trace_onbf16", "b_b16_s8_thr09_onbf16"}) {
    const nlohmann::json cj =
        read_json(golden_path(std::string("v0.40.0+blockcausal+f32compute/") + name + "/case.json"));
    nlohmann::json call = cj["call"];
    call["scheduler"] = cj["scheduler_config"];
    const std::string model = " --model " + golden_path(cj["model_dir"]);
    const std::string plain = write_temp(call.dump());
    call["exact"] = true;
    const std::string in_file = write_temp(call.dump());
    std::string by_flag, by_file, err;
    ASSERT_EQ(run_cli("generate" + model + " --call " + plain + " --exact --json", &by_flag, &err), 0) << err;
    ASSERT_EQ(run_cli("generate" + model + " --call " + in_file + " --json", &by_file, &err), 0) << err;
    EXPECT_EQ(nlohmann::json::parse(by_flag)["sequences"], cj["expected"]["sequences"]) << name << ": --exact";
    EXPECT_EQ(nlohmann::json::parse(by_file)["sequences"], cj["expected"]["sequences"]) << name << ": \"exact\": true";
    unlink(plain.c_str());
    unlink(in_file.c_str());
    ++cases;
  }
  EXPECT_EQ(cases, 3);
  // --exact turns the fast mode's switches off, so it cannot be combined with turning one on.
  std::string out, err;
  EXPECT_EQ(run_cli("generate --model " + golden_path("models/tiny-a-bf16") +
                        " --input-ids 35,55 --gen-length 4 --mask-token-id 319 --exact --bf16-activations on",
                    &out, &err),
            2);
  EXPECT_NE(err.find("--exact"), std::string::npos) << err;
  const std::string bad = write_temp(R"({"input_ids": [[35, 55]], "gen_length": 4, "exact": "yes"})");
  EXPECT_EQ(run_cli("generate --model " + golden_path("models/tiny-a-bf16") + " --call " + bad +
                        " --mask-token-id 319 --json",
                    &out, &err),
            2);
  EXPECT_NE(err.find("exact"), std::string::npos) << err;
  unlink(bad.c_str());
}

}  // namespace
}  // namespace llada2::testing
