// llada2 render-chat end to end: template lookup, special tokens, JSON lines, errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llada2/chat_template.h"
#include "llada2/error.h"
#include "llada2/tokenizer.h"
#include "tokenizer_test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct CliResult {
  int code;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

class RenderChatCli : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("llada2_render_chat_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir / "model");
  }
  void TearDown() override { fs::remove_all(dir); }

  CliResult run(const std::string& args, const std::string* stdin_text = nullptr) {
    std::string cmd = std::string(LLADA2_CLI_PATH) + " render-chat " + args;
    if (stdin_text) {
      write(dir / "stdin.txt", *stdin_text);
      cmd += " < '" + (dir / "stdin.txt").string() + "'";
    }
    cmd += " > '" + (dir / "out.txt").string() + "' 2> '" + (dir / "err.txt").string() + "'";
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "out.txt"), slurp(dir / "err.txt")};
  }
};

TEST_F(RenderChatCli, GoldenRecordsThroughTokenizerConfig) {
  std::string data = std::string(LLADA2_TEST_DATA) + "/tok/chat/ling";
  ordered_json cfg = {{"bos_token", "<|startoftext|>"},
                      {"eos_token", {{"content", "<|endoftext|>"}, {"__type", "AddedToken"}}},
                      {"chat_template", slurp(data + "/chat_template.jinja")}};
  write(dir / "model/tokenizer_config.json", cfg.dump());
  // The records carry their own extra_vars; render them through the CLI and compare.
  std::ifstream in(data + "/public.jsonl");
  std::string line, input;
  std::vector<std::string> want;
  while (std::getline(in, line)) {
    ordered_json rec = ordered_json::parse(line);
    ordered_json req = {{"messages", rec["messages"]},
                        {"tools", rec["tools"]},
                        {"add_generation_prompt", rec["add_generation_prompt"]},
                        {"extra_vars", rec["extra_vars"]}};
    input += req.dump() + "\n";
    want.push_back(rec["rendered_jinja2"].get<std::string>());
  }
  write(dir / "in.jsonl", input);
  CliResult r = run("--model '" + (dir / "model").string() + "' --input '" + (dir / "in.jsonl").string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream out(r.out);
  size_t n = 0;
  while (std::getline(out, line)) {
    ASSERT_LT(n, want.size());
    EXPECT_EQ(ordered_json::parse(line).at("rendered").get<std::string>(), want[n]) << "record " << n;
    ++n;
  }
  EXPECT_EQ(n, want.size());
}

TEST_F(RenderChatCli, SpecialTokensFromConfigAndOverrides) {
  ordered_json cfg = {
      {"bos_token", {{"content", "<s>"}}},
      {"eos_token", "</s>"},
      {"chat_template", "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}{{ x }}"}};
  write(dir / "model/tokenizer_config.json", cfg.dump());
  std::string input =
      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": null, \"add_generation_prompt\": true}\n"
      "\n"
      "{\"messages\": [], \"tools\": null, \"add_generation_prompt\": false, \"extra_vars\": {\"eos_token\": \"E\", "
      "\"x\": 1}}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"rendered\":\"<s>hi</s>\"}\n{\"rendered\":\"<s>1\"}\n");
  // -m and the file as an argument give the same lines as --model and standard input.
  write(dir / "in.jsonl", input);
  CliResult p = run("-m '" + (dir / "model").string() + "' '" + (dir / "in.jsonl").string() + "'");
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(p.out, r.out);
}

TEST_F(RenderChatCli, SpecialTokensMapFillsGaps) {
  write(dir / "model/tokenizer_config.json",
        R"({"eos_token": "</s>", "chat_template": "{{ bos_token }}{{ eos_token }}{{ pad_token }}"})");
  write(dir / "model/special_tokens_map.json",
        R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "<ignored>", "pad_token": "<pad>"})");
  std::string input = "{\"messages\": []}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"rendered\":\"<s></s><pad>\"}\n");
}

TEST_F(RenderChatCli, JinjaFileBesideConfigWins) {
  write(dir / "model/tokenizer_config.json", R"({"chat_template": "from config"})");
  write(dir / "model/chat_template.jinja", "from file {{ messages | length }}\n");
  std::string input = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"rendered\":\"from file 1\"}\n");
}

TEST_F(RenderChatCli, NamedTemplateList) {
  write(
      dir / "model/tokenizer_config.json",
      R"({"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "default"}]})");
  std::string input = "{\"messages\": []}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"rendered\":\"default\"}\n");
}

// render-chat and the tokenizer (which the pipeline and the server render with) find the same
// template in every layout, and refuse the same folders.
TEST_F(RenderChatCli, SameTemplateAsTheTokenizer) {
  fs::path model = dir / "model";
  fs::copy_file(llada2::test::tokenizer_dir("ling-synth") + "/tokenizer.json", model / "tokenizer.json");
  std::string input = "{\"messages\": []}\n";
  auto expect_same = [&](const std::string& want) {
    std::string from_tokenizer = llada2::Tokenizer::from_dir(model.string()).chat_template();
    EXPECT_EQ(from_tokenizer, llada2::find_chat_template(model.string()));
    EXPECT_EQ(llada2::ChatTemplate(from_tokenizer).render(ordered_json::array(), nullptr, false), want);
    CliResult r = run("--model '" + model.string() + "'", &input);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "{\"rendered\":\"" + want + "\"}\n");
  };
  write(model / "tokenizer_config.json", R"({"chat_template": "plain"})");
  expect_same("plain");
  write(model / "tokenizer_config.json",
        R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  expect_same("D");
  write(model / "chat_template.jinja", "file");
  expect_same("file");
  fs::remove(model / "chat_template.jinja");

  // A list without "default": transformers will not guess, and neither does either of them.
  write(model / "tokenizer_config.json",
        R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "rag", "template": "R"}]})");
  EXPECT_THROW(llada2::Tokenizer::from_dir(model.string()), llada2::FileError);
  CliResult r = run("--model '" + model.string() + "'", &input);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no template named \"default\""), std::string::npos) << r.err;
}

TEST_F(RenderChatCli, BadLineNamesTheLine) {
  write(dir / "model/chat_template.jinja", "{{ messages[0].content }}");
  std::string input = "{\"messages\": [{\"content\": \"ok\"}]}\n{\"messages\": 5}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "{\"rendered\":\"ok\"}\n");

  input = "not json\n";
  r = run("--model '" + (dir / "model").string() + "'", &input);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
}

TEST_F(RenderChatCli, TemplateErrorsExitTwo) {
  write(dir / "model/chat_template.jinja", "{% if messages %}{{ raise_exception('no messages allowed') }}{% endif %}");
  std::string input = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no messages allowed"), std::string::npos) << r.err;

  write(dir / "model/chat_template.jinja", "line one\n{% if %}");
  r = run("--model '" + (dir / "model").string() + "'", &input);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
}

TEST_F(RenderChatCli, MissingTemplateAndHelp) {
  std::string input = "{\"messages\": []}\n";
  CliResult r = run("--model '" + (dir / "model").string() + "'", &input);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no chat template"), std::string::npos) << r.err;
  r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--model"), std::string::npos);
  // Without --model (and $LLADA2_MODEL) the bundled demo model's template renders the conversation.
  input = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n";
  r = run("", &input);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("demo model"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("<role>HUMAN</role>hi"), std::string::npos) << r.out;
}

}  // namespace
