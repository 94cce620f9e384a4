// The live view of `generate --visual` as a person sees it: run on a pseudo-terminal of a fixed width
// and replayed through a terminal emulator, every frame must be drawn over the previous one (no rows
// of an earlier frame left behind when frames wrap), and the screen must end with exactly the text a
// plain run prints. Off a terminal the view is off and stdout keeps the documented output.
#include <gtest/gtest.h>

#include "llada22_util.h"
#include "pty_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

const std::string kArgs = " -p Hi --gen-length 48 --block-length 8 --seed 1 --temperature 1 --frame-ms 0";

std::string plain_text() {
  std::string out, err;
  EXPECT_EQ(run_cli("generate -m " + chat_model_dir() + kArgs, &out, &err), 0) << err;
  return out.substr(0, out.size() - 1);  // without the final newline
}

// Control characters of the text as the view shows them (U+2400 + code; \n and \t stay).
std::string visible(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
      const unsigned cp = c == 0x7F ? 0x2421 : 0x2400 + c;
      r += char(0xE0 | (cp >> 12));
      r += char(0x80 | ((cp >> 6) & 0x3F));
      r += char(0x80 | (cp & 0x3F));
    } else {
      r += char(c);
    }
  }
  return r;
}

TEST(CliVisual, FramesRedrawInPlaceAtAnyWidth) {
  const std::string text = plain_text();
  ASSERT_FALSE(text.empty());
  for (int columns : {12, 24, 80}) {
    PtyRun run = run_cli_pty("generate -m " + chat_model_dir() + kArgs + " --visual", columns, 200);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("\xE2\x96\x91"), std::string::npos) << "masked cells are drawn";
    EXPECT_NE(run.output.find("\033[J"), std::string::npos);
    Screen screen(columns, 200);
    screen.feed(run.output);
    const std::vector<std::string> lines = screen.lines();
    const std::vector<std::string> want = wrap_like_a_terminal(visible(text), columns);
    ASSERT_GT(lines.size(), want.size()) << "the text, then the stats line";
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(lines[i], want[i]) << "row " << i << " at " << columns;
    EXPECT_NE(lines[want.size()].find("forwards"), std::string::npos)
        << "the stats line follows the text directly: " << lines[want.size()];
  }
}

TEST(CliVisual, OffWhenStdoutIsNotATerminal) {
  const std::string text = plain_text();
  std::string out, err;
  ASSERT_EQ(run_cli("generate -m " + chat_model_dir() + kArgs + " --visual", &out, &err), 0) << err;
  EXPECT_EQ(out, text + "\n") << "no escape codes in a pipe";
  EXPECT_NE(err.find("--visual is off: stdout is not a terminal"), std::string::npos) << err;
}

TEST(CliVisual, DocumentedOutputStaysOnStdout) {
  std::string want_json, want_ids, err;
  ASSERT_EQ(run_cli("generate -m " + chat_model_dir() + kArgs + " --json", &want_json, &err), 0) << err;
  ASSERT_EQ(run_cli("generate -m " + chat_model_dir() + kArgs + " --output-type seq", &want_ids, &err), 0) << err;
  // --json: the view is drawn on the terminal, and the one JSON object (without "steps") follows.
  PtyRun json = run_cli_pty("generate -m " + chat_model_dir() + kArgs + " --json --visual", 40, 200);
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_NE(json.output.find("\xE2\x96\x91"), std::string::npos);
  const size_t brace = json.output.rfind("\n{");
  ASSERT_NE(brace, std::string::npos) << json.output;
  std::string obj = json.output.substr(brace + 1);
  obj = obj.substr(0, obj.find_last_not_of("\r\n") + 1);
  auto got = nlohmann::json::parse(obj);
  auto want = nlohmann::json::parse(want_json);
  EXPECT_FALSE(got.contains("steps"));
  EXPECT_EQ(got["sequences"], want["sequences"]);
  EXPECT_EQ(got["texts"], want["texts"]);
  // --output-type seq: the ids are printed after the view.
  PtyRun seq = run_cli_pty("generate -m " + chat_model_dir() + kArgs + " --output-type seq --visual", 40, 200);
  ASSERT_EQ(seq.exit_code, 0) << seq.output;
  const std::string ids = want_ids.substr(0, want_ids.find('\n'));
  EXPECT_NE(seq.output.find("\n" + ids + "\r\n"), std::string::npos) << seq.output;
}

// The LLaDA2.2 rules: frames show the step's deletions (a red ×) and inserted masks (a green +), and
// the colours take no cells: every frame is still drawn over the last and the screen ends with the text.
TEST(CliVisual, Llada22FramesShowDeletionsAndInsertions) {
  const std::string gen = "generate -m " + tiny22_editing_model_dir() + kArgs;
  std::string out, err;
  ASSERT_EQ(run_cli(gen, &out, &err), 0) << err;
  const std::string text = out.substr(0, out.size() - 1);
  for (int columns : {12, 80}) {
    PtyRun run = run_cli_pty(gen + " --visual", columns, 200);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("\033[31m\xC3\x97\033[0m"), std::string::npos) << "a deletion is drawn";
    EXPECT_NE(run.output.find("\033[32m+\033[0m"), std::string::npos) << "an insertion is drawn";
    Screen screen(columns, 200);
    screen.feed(run.output);
    const std::vector<std::string> lines = screen.lines();
    const std::vector<std::string> want = wrap_like_a_terminal(visible(text), columns);
    ASSERT_GT(lines.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(lines[i], want[i]) << "row " << i << " at " << columns;
    EXPECT_NE(lines[want.size()].find("forwards"), std::string::npos) << lines[want.size()];
  }
}

}  // namespace
}  // namespace llada2::testing
