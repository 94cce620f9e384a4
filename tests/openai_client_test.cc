// `llada2 serve` as a process, driven by the official `openai` npm client: starts the server on the
// tiny chat model and runs tests/js/openai_client.test.mjs with node's test runner against it. Needs
// node and tests/js/node_modules (scripts/fetch-test-data.sh installs them).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "node_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TEST(OpenAIClient, NodeOpenAIPackageAgainstServe) {
  const auto node = find_on_path("node");
  ASSERT_TRUE(node) << "node is not on PATH: install Node.js 20+ (scripts/install-deps.sh) and run "
                       "scripts/fetch-test-data.sh, which installs the openai npm package into tests/js/node_modules";
  ASSERT_TRUE(fs::exists(js_dir() / "node_modules" / "openai" / "package.json"))
      << (js_dir() / "node_modules" / "openai").string()
      << " is missing: run scripts/fetch-test-data.sh (it runs npm ci in tests/js)";

  const std::string model = chat_model_dir();
  const std::string model_id = fs::path(model).filename().string();
  ServeProcess server({"--model", model, "--api-key", "test-key", "--parallel", "2"});
  const std::string why = server.wait_started();
  ASSERT_TRUE(why.empty()) << why;

  const std::string base_url = server.base_url();
  const auto started = Clock::now();
  const NodeRun run = run_node_test(*node, js_dir() / "openai_client.test.mjs",
                                    {"LLADA2_BASE_URL=" + base_url, "LLADA2_API_KEY=test-key",
                                     "LLADA2_MODEL=" + model_id, "NO_COLOR=1", "OPENAI_LOG=off"},
                                    240);  // ~85 s in a sanitizer build on 2 AVX2 cores
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(run.exit_code, 0) << "node --test tests/js/openai_client.test.mjs against " << base_url
                              << " failed; its output:\n"
                              << run.output << "\nllada2 serve stderr:\n"
                              << server.stderr_text();
  std::printf("[ node     ] openai client tests against %s: %.1f s\n", base_url.c_str(), seconds);

  // SIGTERM stops the server cleanly, with exit code 0.
  const bool was_running = server.running();
  const int status = server.stop();
  EXPECT_TRUE(was_running) << "llada2 serve exited during the tests; its stderr:\n" << server.stderr_text();
  EXPECT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "llada2 serve did not exit 0 on SIGTERM (status " << status << "); its stderr:\n"
      << server.stderr_text();
}

// The whole tool loop with a model that really calls tools: the bundled demo model (trained to call its
// calculator tool) behind `llada2 serve`, tests/js/tool_loop.test.mjs through the openai client.
TEST(OpenAIClient, ToolLoopWithTheDemoModel) {
  const auto node = find_on_path("node");
  ASSERT_TRUE(node) << "node is not on PATH: install Node.js 20+ (scripts/install-deps.sh)";
  ASSERT_TRUE(fs::exists(js_dir() / "node_modules" / "openai" / "package.json"))
      << "tests/js/node_modules/openai is missing: run scripts/fetch-test-data.sh (it runs npm ci in tests/js)";
  const std::string demo = data_path("../../models/llada2-demo");
  ServeProcess server({"--model", demo, "--parallel", "1"});
  const std::string why = server.wait_started();
  ASSERT_TRUE(why.empty()) << why;
  // 8 questions: 7 whole loops of 8 end with the result on this machine (in one the model miswrites the
  // expression, which the calculator then refuses); the floor leaves room for the fast mode's rounding
  // on other CPUs.
  const auto started = Clock::now();
  const NodeRun run = run_node_test(*node, js_dir() / "tool_loop.test.mjs",
                                    {"LLADA2_BASE_URL=" + server.base_url(), "LLADA2_EVAL=" + demo + "/eval.jsonl",
                                     "LLADA2_LOOPS=8", "LLADA2_MIN_OK=6", "NO_COLOR=1", "OPENAI_LOG=off"},
                                    300);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(run.exit_code, 0) << "node --test tests/js/tool_loop.test.mjs failed; its output:\n"
                              << run.output << "\nllada2 serve stderr:\n"
                              << server.stderr_text();
  std::printf("[ node     ] tool loops with the demo model: %.1f s\n%s", seconds, run.output.c_str());
}

}  // namespace
}  // namespace llada2::testing
