// No template input can crash or hang the engine: deep JSON in messages and tools (used by the
// template or not), deeply nested template text, runaway recursion, loops and growth all end
// in an InputError, through the API and through `llada2 render-chat` (exit 2).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "llada2/chat_template.h"
#include "llada2/error.h"

namespace {

namespace fs = std::filesystem;
using llada2::ChatTemplate;
using llada2::InputError;
using nlohmann::ordered_json;

const int kDepths[] = {100, 1000, 10000, 100000, 1000000};

// JSON text nested `depth` levels deep; built as text so that nothing recurses making it.
std::string deep_text(int depth, bool object) {
  std::string s;
  s.reserve(size_t(depth) * 6 + 2);
  for (int k = 0; k < depth; ++k) s += object ? "{\"a\":" : "[";
  s += "1";
  for (int k = 0; k < depth; ++k) s += object ? "}" : "]";
  return s;
}

// The same as a value, built from the inside out by moves, since parsing deep objects into
// ordered_json (and copying JSON) recurses.
template <typename Json>
Json deep_value(int depth, bool object) {
  Json v = 1;
  for (int k = 0; k < depth; ++k) {
    Json outer = object ? Json::object() : Json::array();
    if (object)
      outer["a"] = std::move(v);
    else
      outer.push_back(std::move(v));
    v = std::move(outer);
  }
  return v;
}

// A conversation request whose deep value sits in an unused message field, a used one, or tools.
enum class Where { UnusedField, UsedField, Tools };
const char* kTemplate[] = {"{% for m in messages %}{{ m.content }}{% endfor %}",
                           "{% for m in messages %}{{ m.x | tojson }}{% endfor %}", "{{ tools | tojson }}"};

std::string request_text(int depth, bool object, Where where) {
  std::string deep = deep_text(depth, object);
  std::string msg =
      "{\"role\": \"user\", \"content\": \"hi\"" + (where == Where::Tools ? "" : ", \"x\": " + deep) + "}";
  return "{\"messages\": [" + msg + "], \"tools\": " + (where == Where::Tools ? "[" + deep + "]" : "null") +
         ", \"add_generation_prompt\": true}";
}

template <typename Json>
std::string error_of(const ChatTemplate& t, int depth, bool object, Where where) {
  Json msg = {{"role", "user"}, {"content", "hi"}};
  Json tools = nullptr;
  if (where == Where::Tools)
    tools = Json::array(), tools.push_back(deep_value<Json>(depth, object));
  else
    msg["x"] = deep_value<Json>(depth, object);
  Json messages = Json::array();
  messages.push_back(std::move(msg));
  try {
    t.render(messages, tools, true);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(JinjaLimits, DeepJsonThroughTheApi) {
  for (Where where : {Where::UnusedField, Where::UsedField, Where::Tools}) {
    ChatTemplate t(kTemplate[int(where)]);
    for (int depth : kDepths)
      for (bool object : {false, true}) {
        SCOPED_TRACE(std::to_string(depth) + (object ? " object" : " array") + " in place " +
                     std::to_string(int(where)));
        // ordered_json, and plain json which converts without going through ordered_json.
        for (const std::string& e :
             {error_of<ordered_json>(t, depth, object, where), error_of<nlohmann::json>(t, depth, object, where)}) {
          if (depth < 128) {
            EXPECT_EQ(e, "");
          } else {
            EXPECT_NE(e.find("nested deeper than 128 levels"), std::string::npos) << e;
            EXPECT_NE(e.find(where == Where::Tools ? "tools" : "messages"), std::string::npos) << e;
          }
        }
      }
  }
}

TEST(JinjaLimits, DeepExtraVariable) {
  ChatTemplate t("{{ bos_token }}");
  ordered_json extra = ordered_json::object();
  extra["deep"] = deep_value<ordered_json>(100000, true);
  try {
    t.render(ordered_json::array(), nullptr, false, extra);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("extra variable 'deep' nested deeper than 128 levels"), std::string::npos)
        << e.what();
  }
}

std::string template_error(const std::string& src, const ChatTemplate::Limits& limits = {}) {
  try {
    ChatTemplate t(src, limits);
    t.render(ordered_json::array({{{"role", "user"}, {"content", "hi"}}}), nullptr, true);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(JinjaLimits, DeeplyNestedTemplateText) {
  const int n = 100000;
  EXPECT_NE(template_error("{{ " + std::string(n, '(') + "1" + std::string(n, ')') + " }}").find("nested too deeply"),
            std::string::npos);
  EXPECT_NE(template_error("{{ " + std::string(n, '[') + std::string(n, ']') + " }}").find("nested too deeply"),
            std::string::npos);
  std::string ifs, nots = "{{ ", filters = "{{ 'x'", minus = "{{ ";
  for (int k = 0; k < n; ++k) ifs += "{% if true %}", nots += "not ", filters += " | trim", minus += "-";
  EXPECT_NE(template_error(ifs).find("nested too deeply"), std::string::npos);
  EXPECT_NE(template_error(nots + "1 }}").find("nested too deeply"), std::string::npos);
  EXPECT_NE(template_error(filters + " }}").find("nested too deeply"), std::string::npos);
  EXPECT_NE(template_error(minus + "1 }}").find("nested too deeply"), std::string::npos);
}

TEST(JinjaLimits, RunawayRecursionLoopsAndGrowth) {
  EXPECT_NE(template_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("recursion too deep"),
            std::string::npos);
  EXPECT_NE(template_error("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}")
                .find("recursion too deep"),
            std::string::npos);
  EXPECT_NE(template_error("{% for i in range(10**9) %}{% endfor %}").find("Range too big"), std::string::npos);
  // 10^10 iterations of nested loops: the step budget ends them (shown with a smaller budget
  // than the default, which takes seconds to spend).
  EXPECT_EQ(ChatTemplate::Limits{}.max_steps, 10'000'000u);
  ChatTemplate::Limits small;
  small.max_steps = 100'000;
  EXPECT_NE(template_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", small)
                .find("step limit (100000)"),
            std::string::npos);
  EXPECT_NE(template_error("{% set ns = namespace(s='xy') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
                           "{% endfor %}")
                .find("size limit"),
            std::string::npos);
  EXPECT_NE(template_error("{{ 'ab' * 1000000000 }}").find("size limit"), std::string::npos);
}

TEST(JinjaLimits, SelfReferenceAndDeepBuiltValues) {
  const std::string deeper = "nested deeper than 128 levels";
  EXPECT_NE(template_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find(deeper), std::string::npos);
  EXPECT_NE(template_error("{% set ns = namespace() %}{% set ns.me = [ns, {'k': ns}] %}{{ [ns] }}").find(deeper),
            std::string::npos);
  // A value wrapped in itself again and again, as a list, a dict, a bound method, a joiner.
  for (const char* wrap : {"[ns.v]", "{'k': ns.v}", "[ns.v].count", "joiner(ns.v)"})
    EXPECT_NE(template_error(std::string("{% set ns = namespace(v=none) %}{% for i in range(100000) %}{% set ns.v = ") +
                             wrap + " %}{% endfor %}")
                  .find(deeper),
              std::string::npos)
        << wrap;
  // loop.changed() keeps what it saw: a chain through loop objects renders and is freed.
  EXPECT_EQ(template_error("{% set ns = namespace(v=none) %}{% for i in range(50000) %}{% for j in [0] %}"
                           "{% set c = loop.changed(ns.v) %}{% set ns.v = loop %}{% endfor %}{% endfor %}"),
            "");
  EXPECT_EQ(template_error("{% set ns = namespace(v=none) %}{% for i in range(127) %}{% set ns.v = [ns.v] %}"
                           "{% endfor %}{{ ns.v | tojson | length }}"),
            "");
}

// `llada2 render-chat` on the same inputs: a clean error and exit code 2, never a crash.
class JinjaLimitsCli : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("llada2_jinja_limits_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "model");
  }
  void TearDown() override { fs::remove_all(dir); }
  int run(const std::string& tpl, const std::string& line, std::string* err) {
    std::ofstream(dir / "model/chat_template.jinja", std::ios::binary) << tpl;
    std::ofstream(dir / "in.jsonl", std::ios::binary) << line << "\n";
    std::string cmd = std::string(LLADA2_CLI_PATH) + " render-chat --model '" + (dir / "model").string() +
                      "' --input '" + (dir / "in.jsonl").string() + "' > /dev/null 2> '" + (dir / "err.txt").string() +
                      "'";
    int status = std::system(cmd.c_str());
    std::stringstream ss;
    ss << std::ifstream(dir / "err.txt").rdbuf();
    *err = ss.str();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

TEST_F(JinjaLimitsCli, DeepJsonExitsTwo) {
  for (Where where : {Where::UnusedField, Where::UsedField, Where::Tools})
    for (int depth : kDepths)
      for (bool object : {false, true}) {
        SCOPED_TRACE(std::to_string(depth) + (object ? " object" : " array") + " in place " +
                     std::to_string(int(where)));
        std::string err;
        int code = run(kTemplate[int(where)], request_text(depth, object, where), &err);
        if (depth < 128) {
          EXPECT_EQ(code, 0) << err;
        } else {
          EXPECT_EQ(code, 2) << err;
          EXPECT_NE(err.find("nested deeper than 128 levels"), std::string::npos) << err;
        }
      }
}

TEST_F(JinjaLimitsCli, HostileTemplateExitsTwo) {
  std::string line = "{\"messages\": []}", err;
  EXPECT_EQ(run("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", line, &err), 2) << err;
  EXPECT_EQ(run("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}", line, &err), 2) << err;
  EXPECT_EQ(run("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", line, &err), 2) << err;
}

}  // namespace
