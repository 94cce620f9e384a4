// Each Jinja construct against the output Python Jinja2 gives under transformers' environment:
// tests/data/tok/chat/constructs.jsonl (hand-written cases, from make_constructs.py) and
// random.jsonl (random expressions and whitespace-control soups, from make_random.py).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "llada2/chat_template.h"
#include "llada2/error.h"

namespace {

using nlohmann::ordered_json;

std::vector<ordered_json> load_cases(const std::string& file) {
  std::vector<ordered_json> cases;
  std::ifstream in(std::string(LLADA2_TEST_DATA) + "/tok/chat/" + file);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) cases.push_back(ordered_json::parse(line));
  return cases;
}

class ChatTemplateConstructs : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateConstructs, MatchJinja2) {
  std::vector<ordered_json> cases = load_cases(GetParam());
  ASSERT_GT(cases.size(), 100u);
  for (const ordered_json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ordered_json vars = c["vars"];
    ordered_json messages = vars["messages"], tools = vars["tools"];
    bool agp = vars["add_generation_prompt"].get<bool>();
    vars.erase("messages");
    vars.erase("tools");
    vars.erase("add_generation_prompt");
    std::string got, error;
    try {
      llada2::ChatTemplate tpl(c["template"].get<std::string>());
      got = tpl.render(messages, tools, agp, vars);
    } catch (const llada2::InputError& e) {
      error = e.what();
    }
    if (c.contains("error")) {
      EXPECT_FALSE(error.empty()) << "Jinja2 raised " << c["error"] << ", got output: " << got;
    } else {
      EXPECT_EQ(error, "");
      EXPECT_EQ(got, c["out"].get<std::string>()) << "template: " << c["template"].get<std::string>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Files, ChatTemplateConstructs, ::testing::Values("constructs.jsonl", "random.jsonl"));

}  // namespace
