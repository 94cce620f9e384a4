// `llada2 eval` and the CLI's default model, run as separate processes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "test_util.h"

namespace llada2::testing {
namespace {

// A file in this test's temporary folder (made on the first call of a test, kept by later ones).
std::string write_tasks(const std::string& text, const std::string& name = "tasks.jsonl") {
  static std::string test_dir, test_name;
  const std::string now = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  if (now != test_name) {
    test_dir = fresh_temp_dir().string();
    test_name = now;
  }
  const auto path = std::filesystem::path(test_dir) / name;
  std::ofstream(path) << text;
  return path.string();
}

// Two tasks on the tiny random chat model: a prompt, and messages with a tool (rendered through the chat
// template). Random weights answer nothing right; the report's shape and statistics are what is checked.
std::string tiny_tasks() {
  return "{\"task\": \"add\", \"prompt\": \"What is 2 + 3?\", \"expected\": \"5\", \"match\": \"number\", "
         "\"call\": {\"gen_length\": 16, \"block_length\": 8}}\n"
         "{\"task\": \"tool\", \"messages\": [{\"role\": \"user\", \"content\": \"12 * 34?\"}], \"tools\": "
         "[{\"type\": \"function\", \"function\": {\"name\": \"calculator\", \"parameters\": {}}}], "
         "\"expected\": {\"name\": \"calculator\"}, \"match\": \"json\", \"call\": {\"gen_length\": 16, "
         "\"block_length\": 8}}\n";
}

TEST(CliEval, SweepJsonReportsEveryRunAndTask) {
  const std::string tasks = write_tasks(tiny_tasks());
  std::string out, err;
  ASSERT_EQ(run_cli("eval --model " + chat_model_dir() + " --tasks " + tasks +
                        " --sweep threshold=0.001,0.99 editing_threshold=none,0.5 --json --show-failures 5 -t 1",
                    &out, &err),
            0)
      << err;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["runs"].size(), 4u);
  EXPECT_EQ(j["runs"][0]["settings"]["threshold"], 0.001);
  EXPECT_TRUE(j["runs"][0]["settings"]["editing_threshold"].is_null());
  EXPECT_EQ(j["runs"][3]["settings"]["editing_threshold"], 0.5);
  for (const auto& run : j["runs"]) {
    ASSERT_EQ(run["tasks"].size(), 2u);
    EXPECT_EQ(run["all"]["n"], 2);
    for (const auto& [name, t] : run["tasks"].items()) {
      EXPECT_EQ(t["n"], 1) << name;
      EXPECT_GT(t["forwards"].get<int64_t>(), 0) << name;
      for (const char* k :
           {"correct", "accuracy", "ci95", "tokens", "seconds", "tokens_per_forward", "tokens_per_second"})
        EXPECT_TRUE(t.contains(k)) << k;
    }
    EXPECT_TRUE(run.contains("failures"));
    EXPECT_EQ(run["all"]["correct"].get<int64_t>() + int64_t(run["failures"].size()), 2);
  }
  // A higher threshold commits fewer cells per forward.
  EXPECT_GT(j["runs"][0]["all"]["tokens_per_forward"].get<double>(),
            j["runs"][2]["all"]["tokens_per_forward"].get<double>());
}

TEST(CliEval, TableAndProgress) {
  const std::string tasks = write_tasks(tiny_tasks());
  std::string out, err;
  ASSERT_EQ(run_cli("eval --model " + chat_model_dir() + " --tasks " + tasks + " -t 1", &out, &err), 0) << err;
  EXPECT_NE(out.find("accuracy"), std::string::npos) << out;
  EXPECT_NE(out.find("tool"), std::string::npos) << out;
  EXPECT_NE(out.find("all"), std::string::npos) << out;
  EXPECT_NE(err.find("2/2 answers"), std::string::npos) << err;  // the progress bar's last line
}

TEST(CliEval, BadArgumentsFailFast) {
  const std::string tasks = write_tasks(tiny_tasks());
  struct Case {
    std::string args, needle;
  };
  for (const Case& c : std::vector<Case>{
           {"--tasks " + tasks + " --sweep threshold", "expected KEY=V1,V2"},
           {"--tasks " + tasks + " --sweep thresold=0.5", "thresold"},
           {"--tasks " + tasks + " --sweep attention=sideways", "sideways"},
           {"--tasks /nonexistent.jsonl", "cannot open"},
           {"--tasks " + write_tasks("{\"prompt\": \"x\"}\n", "bad.jsonl"), "'expected' is missing"},
       }) {
    std::string out, err;
    EXPECT_EQ(run_cli("eval --model " + chat_model_dir() + " " + c.args, &out, &err), 2) << c.args;
    EXPECT_NE(err.find(c.needle), std::string::npos) << c.args << "\n" << err;
  }
}

// Without --model, the CLI takes $LLADA2_MODEL first (then the demo model) and says which.
TEST(CliDefaultModel, Llada2ModelEnvironmentWins) {
  ::setenv("LLADA2_MODEL", golden_path("models/tiny-a-f32").c_str(), 1);
  std::string out, err;
  const int rc = run_cli(
      "generate --input-ids 35,55,4 --gen-length 4 --block-length 4 --mask-token-id 319 --output-type seq", &out, &err);
  ::unsetenv("LLADA2_MODEL");
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(err.find("tiny-a-f32"), std::string::npos) << err;
}

}  // namespace
}  // namespace llada2::testing
