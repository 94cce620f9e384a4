// Every tokenizer.json component type on hand-written snippets. The expected ids and strings were
// computed with npm tokenizers 0.23.2 (Hugging Face tokenizers' Node binding) on exactly these snippets
// (tests/data/tok/components/gen_reference.js) and are hard-coded in tokenizer_components_cases.h.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "llada2/tokenizer.h"
#include "tokenizer_components_cases.h"

// gtest prints the case by name.
inline void PrintTo(const ComponentCase& c, std::ostream* os) { *os << c.name; }

namespace {

using nlohmann::json;

// GPT-2's byte -> character map, written out independently of the implementation under test.
std::string byte_char(int b) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t;
    int next = 256;
    for (int i = 0; i < 256; ++i) {
      bool printable = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
      int cp = printable ? i : next++;
      std::string s;
      if (cp < 0x80) {
        s += char(cp);
      } else {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
      }
      t.push_back(s);
    }
    return t;
  }();
  return table[size_t(b)];
}

// The snippet as a whole tokenizer.json (same defaults as gen_reference.js).
json make_tokenizer_json(const json& cfg) {
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", "</w>"},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"merges", json::array()}};
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[byte_char(b)] = b;
    vocab[byte_char(b) + "</w>"] = 256 + b;
  }
  model["vocab"] = vocab;
  json j = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", cfg.value("added_tokens", json::array())},
            {"normalizer", cfg.value("normalizer", json())},
            {"pre_tokenizer", cfg.value("pre_tokenizer", json())},
            {"post_processor", cfg.value("post_processor", json())},
            {"decoder", cfg.value("decoder", json())},
            {"model", cfg.value("model", model)}};
  return j;
}

llada2::Tokenizer load(const json& tokenizer_json, const std::string& name) {
  auto path =
      std::filesystem::temp_directory_path() / ("llada2_tok_" + name + "_" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream f(path, std::ios::binary);
    f << tokenizer_json.dump();
  }
  auto t = llada2::Tokenizer::from_file(path.string());
  std::filesystem::remove(path);
  return t;
}

class Components : public ::testing::TestWithParam<ComponentCase> {};

TEST_P(Components, MatchesTokenizers) {
  const ComponentCase& c = GetParam();
  auto tok = load(make_tokenizer_json(json::parse(c.config)), c.name);
  auto texts = json::parse(c.texts).get<std::vector<std::string>>();
  auto ids = json::parse(c.ids).get<std::vector<std::vector<int64_t>>>();
  auto ids_ns = json::parse(c.ids_no_special).get<std::vector<std::vector<int64_t>>>();
  for (size_t k = 0; k < texts.size(); ++k) {
    EXPECT_EQ(tok.encode(texts[k], true), ids[k]) << "text " << json(texts[k]).dump();
    EXPECT_EQ(tok.encode(texts[k], false), ids_ns[k]) << "text " << json(texts[k]).dump();
  }
  auto dec_ids = json::parse(c.decode_ids).get<std::vector<std::vector<int64_t>>>();
  auto decoded = json::parse(c.decoded).get<std::vector<std::string>>();
  auto decoded_skip = json::parse(c.decoded_skip_special).get<std::vector<std::string>>();
  for (size_t k = 0; k < dec_ids.size(); ++k) {
    EXPECT_EQ(tok.decode(dec_ids[k], false), decoded[k]) << "ids " << json(dec_ids[k]).dump();
    EXPECT_EQ(tok.decode(dec_ids[k], true), decoded_skip[k]) << "ids " << json(dec_ids[k]).dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, Components, ::testing::ValuesIn(kComponentCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
