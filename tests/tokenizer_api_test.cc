// Tokenizer API: tokenizer_config.json, lookups, errors, load time, and the tokenize/detokenize CLI.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "llada2/error.h"
#include "llada2/tokenizer.h"
#include "tokenizer_test_util.h"

namespace {

namespace fs = std::filesystem;
using llada2::Tokenizer;
using nlohmann::json;

std::string ling_dir() { return llada2::test::tokenizer_dir("ling-synth"); }

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("llada2_tokapi_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(TokenizerApi, LingSynthConfig) {
  Tokenizer t = Tokenizer::from_dir(ling_dir());
  EXPECT_EQ(t.vocab_size(), 8006);
  EXPECT_EQ(t.eos_token().value(), "<|endoftext|>");
  EXPECT_EQ(t.pad_token().value(), "<|endoftext|>");
  EXPECT_EQ(t.bos_token().value(), "<|startoftext|>");
  EXPECT_EQ(t.mask_token().value(), "<|mask|>");
  EXPECT_FALSE(t.unk_token().has_value());
  EXPECT_EQ(t.eos_token_id().value(), 8001);
  EXPECT_EQ(t.pad_token_id().value(), 8001);
  EXPECT_EQ(t.bos_token_id().value(), 8000);
  EXPECT_EQ(t.mask_token_id().value(), 8002);
  EXPECT_FALSE(t.unk_token_id().has_value());
  EXPECT_EQ(t.padding_side(), "right");
  EXPECT_EQ(t.chat_template().size(), 3972u);
  EXPECT_FALSE(t.add_bos_token());
  EXPECT_EQ(t.token_to_id("<role>").value(), 8004);
  EXPECT_EQ(t.id_to_token(8005).value(), "</role>");
  EXPECT_EQ(t.id_to_token(64).value(), "a");
  EXPECT_FALSE(t.id_to_token(9000).has_value());
  EXPECT_FALSE(t.token_to_id("no such token").has_value());
  // <|role_end|> and the mask are distinct single tokens here.
  EXPECT_EQ(t.encode("<|role_end|>", false), std::vector<int64_t>{8003});
  EXPECT_EQ(t.encode("<|mask|>", false), std::vector<int64_t>{8002});
  // No BOS: the post-processor is ByteLevel.
  EXPECT_EQ(t.encode("hi", true), t.encode("hi", false));
}

TEST(TokenizerApi, CopiesShareTheModel) {
  Tokenizer a = Tokenizer::from_file(ling_dir() + "/tokenizer.json");
  Tokenizer b = a;
  EXPECT_EQ(a.encode("copy me"), b.encode("copy me"));
  EXPECT_FALSE(a.chat_template().size());  // from_file reads no config
}

TEST(TokenizerApi, ConfigVariants) {
  fs::path d = temp_dir("config");
  fs::copy_file(ling_dir() + "/tokenizer.json", d / "tokenizer.json");
  write(d / "tokenizer_config.json", R"({"eos_token": {"content": "<|role_end|>", "lstrip": false},
    "pad_token": null, "mask_token": "<|mask|>", "padding_side": "left", "add_bos_token": true,
    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  Tokenizer t = Tokenizer::from_dir(d.string());
  EXPECT_EQ(t.eos_token().value(), "<|role_end|>");
  EXPECT_EQ(t.eos_token_id().value(), 8003);
  EXPECT_FALSE(t.pad_token().has_value());
  EXPECT_EQ(t.padding_side(), "left");
  EXPECT_EQ(t.chat_template(), "D");
  EXPECT_TRUE(t.add_bos_token());
  write(d / "chat_template.jinja", "{{ messages }}");
  EXPECT_EQ(Tokenizer::from_dir(d.string()).chat_template(), "{{ messages }}");
  write(d / "tokenizer_config.json", R"({"padding_side": "middle"})");
  EXPECT_THROW(Tokenizer::from_dir(d.string()), llada2::FileError);
  write(d / "tokenizer_config.json", R"({"eos_token": 5})");
  EXPECT_THROW(Tokenizer::from_dir(d.string()), llada2::FileError);
  fs::remove_all(d);
}

TEST(TokenizerApi, Errors) {
  Tokenizer t = Tokenizer::from_dir(ling_dir());
  // Unknown ids are skipped, as `tokenizers` does (a model's vocabulary may be padded past the
  // tokenizer's); ids `tokenizers` cannot take at all are errors.
  EXPECT_EQ(t.decode({1, 99999, 2}), t.decode({1, 2}));
  EXPECT_EQ(t.decode({99999}), "");
  EXPECT_THROW(t.decode({-1}), llada2::InputError);
  EXPECT_THROW(t.decode({int64_t(1) << 32}), llada2::InputError);
  EXPECT_THROW(t.encode("bad \xff utf8"), llada2::InputError);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), llada2::FileError);
  EXPECT_THROW(Tokenizer::from_dir("/nonexistent"), llada2::FileError);

  fs::path d = temp_dir("errors");
  json base = json::parse(read(ling_dir() + "/tokenizer.json"));
  auto expect_error = [&](const json& j, const std::string& needle) {
    write(d / "tokenizer.json", j.dump());
    try {
      Tokenizer::from_file((d / "tokenizer.json").string());
      ADD_FAILURE() << "loaded; expected an error mentioning " << needle;
    } catch (const llada2::FileError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  json j = base;
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(j, "BertNormalizer");
  j = base;
  j["pre_tokenizer"] = {{"type", "UnicodeScripts"}};
  expect_error(j, "UnicodeScripts");
  j = base;
  j["decoder"] = {{"type", "CTC"}};
  expect_error(j, "CTC");
  j = base;
  j["post_processor"] = {{"type", "Nonsense"}};
  expect_error(j, "Nonsense");
  j = base;
  j["model"]["type"] = "WordPiece";
  expect_error(j, "WordPiece");
  j = base;
  j["model"]["merges"][0] = "nospace";
  expect_error(j, "nospace");
  j = base;
  j["model"]["merges"][0] = json::array({"a", "zzzz-not-in-vocab"});
  expect_error(j, "zzzz-not-in-vocab");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error(j, "(unclosed");
  write(d / "tokenizer.json", "{\"model\": ");
  EXPECT_THROW(Tokenizer::from_file((d / "tokenizer.json").string()), llada2::FileError);
  fs::remove_all(d);
}

// The largest tokenizers load (their load time is measured by bench/bench_tokenizer, not here).
TEST(TokenizerApi, LoadsLargeTokenizers) {
  for (const char* name : {"qwen3", "gemma3"}) {
    ASSERT_TRUE(llada2::test::tokenizer_present(name))
        << llada2::test::tokenizer_dir(name) << " is missing: run scripts/fetch-test-data.sh";
    Tokenizer t = Tokenizer::from_file(llada2::test::tokenizer_dir(name) + "/tokenizer.json");
    EXPECT_GT(t.vocab_size(), 150000) << name;
  }
}

// ---------------------------------------------------------------- CLI

struct CliResult {
  int status;
  std::string out;
};

CliResult run(const std::string& args) {
  std::string cmd = std::string(LLADA2_CLI_PATH) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(TokenizerCli, TokenizeAndDetokenize) {
  Tokenizer t = Tokenizer::from_dir(ling_dir());
  fs::path d = temp_dir("cli");
  std::vector<std::string> texts = {"Hello world", "<role>HUMAN</role>hi<|role_end|>", "", "日本語 🎉\n"};
  std::string in;
  for (const auto& s : texts) in += json{{"text", s}}.dump() + "\n";
  write(d / "in.jsonl", in);
  CliResult r = run("tokenize --model " + ling_dir() + " --input " + (d / "in.jsonl").string());
  ASSERT_EQ(r.status, 0);
  std::string expect, ids_in;
  for (const auto& s : texts) {
    json ids = t.encode(s, true);
    expect += json{{"ids", ids}}.dump() + "\n";
    ids_in += json{{"ids", ids}}.dump() + "\n";
  }
  EXPECT_EQ(r.out, expect);

  r = run("tokenize --model " + ling_dir() + " --no-special 'a b'");
  EXPECT_EQ(r.status, 0);
  json want_ids = {{"ids", t.encode("a b", false)}};
  EXPECT_EQ(r.out, want_ids.dump() + "\n");

  write(d / "ids.jsonl", ids_in);
  r = run("detokenize --model " + ling_dir() + " --input " + (d / "ids.jsonl").string());
  ASSERT_EQ(r.status, 0);
  std::string want;
  for (const auto& s : texts) want += json{{"text", s}}.dump() + "\n";
  EXPECT_EQ(r.out, want);
  r = run("detokenize --model " + ling_dir() + " --skip-special --input " + (d / "ids.jsonl").string());
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("HUMANhi"), std::string::npos);

  // Bad input: exit 2 (line numbers are in the message on stderr).
  write(d / "bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  EXPECT_EQ(run("tokenize --model " + ling_dir() + " --input " + (d / "bad.jsonl").string()).status, 2);
  write(d / "bad_ids.jsonl", "{\"ids\": [1, 2]}\n{\"ids\": [-5]}\n");
  EXPECT_EQ(run("detokenize --model " + ling_dir() + " --input " + (d / "bad_ids.jsonl").string()).status, 2);
  EXPECT_EQ(run("tokenize --model /nonexistent x").status, 2);
  EXPECT_EQ(run("tokenize --model " + ling_dir()).status, 2);
  EXPECT_EQ(run("tokenize --help").status, 0);
  // The same short flag and positional rules as every command: -m, and the ids as arguments.
  const std::vector<int64_t> hello = t.encode("Hello world", true);
  r = run("tokenize -m " + ling_dir() + " 'Hello world'");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, (json{{"ids", hello}}.dump() + "\n"));
  std::string spaced, commas;
  for (size_t i = 0; i < hello.size(); ++i) {
    spaced += " " + std::to_string(hello[i]);
    commas += (i ? "," : " ") + std::to_string(hello[i]);
  }
  r = run("detokenize -m " + ling_dir() + spaced);
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, (json{{"text", "Hello world"}}.dump() + "\n"));
  EXPECT_EQ(run("detokenize -m " + ling_dir() + commas).out, r.out);
  EXPECT_EQ(run("detokenize -m " + ling_dir() + " 12 x7").status, 2);
  EXPECT_EQ(run("detokenize -m " + ling_dir()).status, 2);
  EXPECT_EQ(run("detokenize -m " + ling_dir() + " 1 --input " + (d / "ids.jsonl").string()).status, 2);
  EXPECT_EQ(run("detokenize --help").status, 0);
  fs::remove_all(d);
}

}  // namespace
