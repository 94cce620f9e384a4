// llada2 chat as a person uses it: commands, Ctrl-C to stop an answer and to leave (on a pseudo-terminal).
#include <gtest/gtest.h>

#include <fstream>

#include "pty_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

TEST(CliChat, UnknownCommandsAreNotSentToTheModel) {
  const std::string input = (fresh_temp_dir() / "in.txt").string();
  std::ofstream(input) << "/bogus\n/etc/hosts is a file?\n/quit\n";
  std::string out, err;
  ASSERT_EQ(run_cli("chat -m " + chat_model_dir() + " --gen-length 8 --block-length 8 < " + input, &out, &err), 0)
      << err;
  EXPECT_EQ(out.rfind("unknown command /bogus; /help lists the commands\n", 0), 0u) << out;
  EXPECT_GT(out.size(), std::string("unknown command /bogus; /help lists the commands\n").size())
      << "a message that starts with a path is answered";
  EXPECT_EQ(run_cli("chat -m " + chat_model_dir() + " --output-type seq < /dev/null", nullptr, &err), 2);
  EXPECT_NE(err.find("--output-type is not a chat option"), std::string::npos) << err;
}

// Every turn of `llada2 chat` starts from the conversation's cached keys and values; the demo model's
// answers over four turns (and after /reset) are the ones it gives with --no-prefix-reuse.
TEST(CliChat, PrefixReuseGivesTheSameAnswers) {
  const std::string input = (fresh_temp_dir() / "in.txt").string();
  std::ofstream(input) << "What is 4821 + 739?\nWhat is 52 * 17?\nSort these numbers: 42, 7, 19, 88, 3, 56\n"
                          "/reset\nWhat is 4821 + 739?\nWhat is 31 * 64?\n/quit\n";
  const std::string demo = data_path("../../models/llada2-demo");
  std::string reused, plain, err;
  ASSERT_EQ(run_cli("chat -m " + demo + " --gen-length 64 --block-length 16 < " + input, &reused, &err), 0) << err;
  ASSERT_EQ(
      run_cli("chat -m " + demo + " --gen-length 64 --block-length 16 --no-prefix-reuse < " + input, &plain, &err), 0)
      << err;
  EXPECT_EQ(reused, plain);
  EXPECT_NE(reused.find("\n(conversation cleared)\n4821 + "), std::string::npos) << reused;
}

TEST(CliChat, CtrlCStopsTheAnswerThenLeaves) {
  int stage = 0;
  size_t stopped_at = 0;
  PtyRun run = run_cli_pty(
      "chat -m " + chat_model_dir() +
          " --gen-length 480 --block-length 8 --num-inference-steps 8 --threshold 2 --frame-ms 20 --no-eos-early-stop",
      80, 40,
      [&](const std::string& out) -> std::string {
        if (stage == 0 && out.find("> ") != std::string::npos) {
          stage = 1;
          return "hello\r";
        }
        if (stage == 1 && out.find("\xE2\x96\x91") != std::string::npos) {  // the answer is being drawn
          stage = 2;
          return "\x03";
        }
        if (stage == 2 && out.find("(stopped)") != std::string::npos) {
          stopped_at = out.find("(stopped)");
          stage = 3;
        }
        if (stage == 3 && out.find("> ", stopped_at) != std::string::npos) {  // back at the prompt
          stage = 4;
          return "\x03";
        }
        return "";
      },
      60);
  EXPECT_EQ(stage, 4) << run.output;
  EXPECT_EQ(run.exit_code, 0) << run.output;
}

}  // namespace
}  // namespace llada2::testing
