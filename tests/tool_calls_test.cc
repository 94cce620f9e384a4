// Parsing the model's <tool_call> blocks into OpenAI tool calls, and what may be streamed before one.
#include <gtest/gtest.h>

#include "server/request.h"
#include "server/tool_calls.h"

namespace llada2::testing {
namespace {

using server::content_before_tool_call;
using server::parse_tool_calls;

const std::set<std::string> kOffered = {"calculator", "weather"};

std::optional<server::ParsedReply> parse(const std::string& text) {
  int n = 0;
  return parse_tool_calls(text, kOffered, [&] { return "call_" + std::to_string(n++); });
}

TEST(ToolCalls, TheTemplatesFormatParses) {
  auto r =
      parse("<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"48213 * 7391\"}}\n</tool_call>");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->content);
  ASSERT_EQ(r->calls.size(), 1u);
  EXPECT_EQ(r->calls[0].id, "call_0");
  EXPECT_EQ(r->calls[0].name, "calculator");
  EXPECT_EQ(nlohmann::json::parse(r->calls[0].arguments), nlohmann::json({{"expression", "48213 * 7391"}}));
}

TEST(ToolCalls, TextBeforeSeveralCallsAndLenientSpacing) {
  auto r = parse(
      "Let me check.\n<tool_call>{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call>\n"
      "<tool_call>\n{\"name\": \"calculator\", \"arguments\": \"{\\\"expression\\\": \\\"1+1\\\"}\"}\n</tool_call>\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->content, "Let me check.");
  ASSERT_EQ(r->calls.size(), 2u);
  EXPECT_EQ(r->calls[0].name, "weather");
  EXPECT_EQ(r->calls[1].arguments, "{\"expression\": \"1+1\"}") << "string arguments are kept as given";
  EXPECT_EQ(r->calls[1].id, "call_1");
  // No arguments: an empty object. An unclosed last block with complete JSON counts.
  r = parse("<tool_call>{\"name\": \"weather\"}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->calls[0].arguments, "{}");
}

TEST(ToolCalls, AnythingMalformedIsPlainContent) {
  for (const char* text : {
           "no call here",
           "<tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"1</tool_call>",  // bad JSON
           "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",                        // not offered
           "<tool_call>[\"calculator\"]</tool_call>",                                                // not an object
           "<tool_call>{\"arguments\": {}}</tool_call>",                                             // no name
           "<tool_call>{\"name\": \"weather\", \"arguments\": 5}</tool_call>",                       // bad arguments
           "<tool_call>{\"name\": \"weather\"}</tool_call> and then some text",                      // text after
           "<tool_call>{\"name\": \"weather\"",                                                      // truncated
       })
    EXPECT_FALSE(parse(text)) << text;
}

TEST(ToolCalls, StreamedContentStopsBeforeACall) {
  EXPECT_EQ(content_before_tool_call("Hello"), 5u);
  EXPECT_EQ(content_before_tool_call("Hello <tool_call>{...}"), 6u);
  EXPECT_EQ(content_before_tool_call("Hello <tool_c"), 6u) << "a tail that may become a call waits";
  EXPECT_EQ(content_before_tool_call("Hello <"), 6u);
  EXPECT_EQ(content_before_tool_call("a < b"), 5u);
  EXPECT_EQ(content_before_tool_call(""), 0u);
}

TEST(ToolCalls, IdsAndToolValidation) {
  const std::string a = server::new_tool_call_id(), b = server::new_tool_call_id();
  EXPECT_EQ(a.rfind("call_", 0), 0u);
  EXPECT_EQ(a.size(), 29u);
  EXPECT_NE(a, b);
  using J = nlohmann::ordered_json;
  const J ok = J::parse(R"([{"type": "function", "function": {"name": "calculator", "parameters": {}}}])");
  EXPECT_EQ(server::tool_names(ok), std::set<std::string>{"calculator"});
  for (const char* bad :
       {R"({"type": "function"})", R"([{"type": "retrieval"}])", R"([{"type": "function"}])",
        R"([{"type": "function", "function": {"name": ""}}])",
        R"([{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}])"}) {
    EXPECT_THROW(server::tool_names(J::parse(bad)), server::ApiError) << bad;
  }
}

}  // namespace
}  // namespace llada2::testing
