// Every public chat-template record must render exactly as Python Jinja2 does under
// transformers' environment (the `rendered_jinja2` field).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "llada2/chat_template.h"
#include "test_util.h"

namespace {

using llada2::testing::read_file;
using nlohmann::ordered_json;

class ChatTemplateGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateGolden, MatchesJinja2) {
  std::string dir = std::string(LLADA2_TEST_DATA) + "/tok/chat/" + GetParam();
  std::string source = read_file(dir + "/chat_template.jinja");
  ASSERT_FALSE(source.empty()) << dir;
  llada2::ChatTemplate tpl(source);
  std::ifstream in(dir + "/public.jsonl");
  std::string line;
  int total = 0, passed = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ordered_json rec = ordered_json::parse(line);
    ++total;
    std::string got;
    try {
      got = tpl.render(rec["messages"], rec["tools"], rec["add_generation_prompt"].get<bool>(),
                       rec.value("extra_vars", ordered_json::object()));
    } catch (const std::exception& e) {
      ADD_FAILURE() << GetParam() << " record " << total << " (" << rec["name"] << "): " << e.what();
      continue;
    }
    const std::string want = rec["rendered_jinja2"].get<std::string>();
    if (got == want) {
      ++passed;
    } else {
      ADD_FAILURE() << GetParam() << " record " << total << " (" << rec["name"] << ")\n--- want\n"
                    << want << "\n--- got\n"
                    << got;
    }
  }
  EXPECT_EQ(total, 80);
  EXPECT_EQ(passed, total);
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateGolden, ::testing::Values("ling", "qwen3", "llama3"));

}  // namespace
