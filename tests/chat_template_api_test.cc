// ChatTemplate API behaviour that the Jinja2 comparison tables do not cover: error positions,
// raise_exception messages, resource limits, key order, the nlohmann::json overload.
#include <gtest/gtest.h>

#include <string>

#include "llada2/chat_template.h"
#include "llada2/error.h"

namespace {

using llada2::ChatTemplate;
using llada2::InputError;
using nlohmann::ordered_json;

std::string render(const std::string& src, const ordered_json& extra = ordered_json::object(),
                   const ChatTemplate::Limits& limits = {}) {
  ChatTemplate t(src, limits);
  return t.render(ordered_json::array({{{"role", "user"}, {"content", "hi"}}}), nullptr, true, extra);
}

std::string error_of(const std::string& src, const ChatTemplate::Limits& limits = {}) {
  try {
    render(src, ordered_json::object(), limits);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChatTemplateApi, SyntaxErrorsCarryLineAndColumn) {
  EXPECT_EQ(error_of("ab\ncd {% if %}"), "chat template line 2, column 10: unexpected end of statement block");
  EXPECT_EQ(error_of("{% for x in xs %}"),
            "chat template line 1, column 4: unclosed block: expected 'endfor' before the end of template");
  EXPECT_EQ(error_of("x\n\n  {{ 'abc }}"), "chat template line 3, column 6: unterminated string literal");
  EXPECT_EQ(error_of("{% endif %}"), "chat template line 1, column 4: unexpected 'endif'");
  EXPECT_EQ(error_of("{% frobnicate %}"), "chat template line 1, column 4: unknown tag 'frobnicate'");
  EXPECT_EQ(error_of("{{ 1 + }}"), "chat template line 1, column 8: unexpected end of print statement");
  EXPECT_EQ(error_of("{% break %}"), "chat template line 1, column 4: 'break' outside of a loop");
  EXPECT_EQ(error_of("{# open"), "chat template line 1, column 1: unterminated comment");
}

TEST(ChatTemplateApi, RuntimeErrorsCarryLineAndColumn) {
  EXPECT_EQ(error_of("line\n  {{ nope.attr }}"), "chat template line 2, column 10: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ messages[0].x.y }}"), "chat template line 1, column 17: 'dict object' has no attribute 'x'");
  EXPECT_EQ(error_of("{{ 1 + 'a' }}"), "chat template line 1, column 6: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "chat template line 1, column 6: integer division or modulo by zero");
  EXPECT_EQ(error_of("{{ x | nosuch }}"), "chat template line 1, column 8: no filter named 'nosuch'");
  EXPECT_EQ(error_of("{{ [].append(1) }}"),
            "chat template line 1, column 6: access to attribute 'append' of 'list' object is unsafe");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.y = 2 %}"),
            "chat template line 1, column 19: can only assign attributes on namespace objects, not on int");
}

TEST(ChatTemplateApi, RaiseExceptionMessageIsTheAuthors) {
  EXPECT_EQ(error_of("{{ raise_exception('Only user and assistant roles are supported!') }}"),
            "Only user and assistant roles are supported!");
}

TEST(ChatTemplateApi, ContextVariables) {
  EXPECT_EQ(render("{{ bos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ messages[0].content }}|{{ custom }}",
                   {{"bos_token", "<s>"}, {"custom", {1, 2}}}),
            "<s>|True|None|hi|[1, 2]");
  EXPECT_EQ(render("{{ documents is defined }}{{ documents }}"), "TrueNone");
  EXPECT_EQ(render("{{ documents | length }}", {{"documents", {{{"title", "t"}}}}}), "1");
}

TEST(ChatTemplateApi, KeyOrderFollowsTheCaller) {
  ChatTemplate t("{{ tools | tojson }}");
  ordered_json tools = ordered_json::parse(R"([{"z": 1, "a": {"y": 2, "b": 3}}])");
  EXPECT_EQ(t.render(ordered_json::array(), tools, false), R"([{"z": 1, "a": {"y": 2, "b": 3}}])");
  // nlohmann::json keeps keys sorted, so the plain-json overload prints them sorted.
  nlohmann::json sorted = nlohmann::json::parse(R"([{"z": 1, "a": {"y": 2, "b": 3}}])");
  EXPECT_EQ(t.render(nlohmann::json::array(), sorted, false), R"([{"a": {"b": 3, "y": 2}, "z": 1}])");
}

TEST(ChatTemplateApi, UnicodeIndexing) {
  EXPECT_EQ(render("{{ s[1] }}{{ s[-1] }}{{ s | length }}{{ s[::-1] }}", {{"s", "a\u00e9\u4e2d\U0001F600"}}),
            "\u00e9\U0001F6004\U0001F600\u4e2d\u00e9a");
}

TEST(ChatTemplateApi, StepLimitStopsRunawayLoops) {
  ChatTemplate::Limits lim;
  lim.max_steps = 10000;
  std::string e = error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", lim);
  EXPECT_NE(e.find("step limit"), std::string::npos) << e;
}

TEST(ChatTemplateApi, OutputLimitStopsHugeStrings) {
  ChatTemplate::Limits lim;
  lim.max_output_bytes = 1000;
  EXPECT_NE(error_of("{{ 'x' * 100000 }}", lim).find("size limit"), std::string::npos);
  EXPECT_NE(error_of("{% for i in range(5000) %}ab{% endfor %}", lim).find("size limit"), std::string::npos);
  EXPECT_NE(error_of("{% set s = 'abcdefgh' %}{{ (s ~ s ~ s ~ s) * 100 }}", lim).find("size limit"), std::string::npos);
}

TEST(ChatTemplateApi, DepthLimitStopsDeepNestingAndRecursion) {
  std::string deep(5000, '(');
  EXPECT_NE(error_of("{{ " + deep + "1" + std::string(5000, ')') + " }}").find("nested too deeply"), std::string::npos);
  std::string chain = "{{ 1";
  for (int k = 0; k < 5000; ++k) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested too deeply"), std::string::npos);
  std::string blocks;
  for (int k = 0; k < 1000; ++k) blocks += "{% if true %}";
  EXPECT_NE(error_of(blocks).find("nested too deeply"), std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("recursion too deep"),
            std::string::npos);
}

TEST(ChatTemplateApi, TemplateIsReusableAndMovable) {
  ChatTemplate a("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}");
  ChatTemplate b(std::move(a));
  ordered_json msgs =
      ordered_json::array({{{"role", "user"}, {"content", "x"}}, {{"role", "assistant"}, {"content", "y"}}});
  EXPECT_EQ(b.render(msgs, nullptr, false), "2");
  EXPECT_EQ(b.render(msgs, nullptr, false), "2");  // namespaces do not leak between renders
}

TEST(ChatTemplateApi, StrftimeNow) {
  std::string year = render("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
  EXPECT_EQ(render("{{ strftime_now('') }}"), "");
}

}  // namespace
