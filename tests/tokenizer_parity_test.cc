// Parity with Hugging Face tokenizers 0.23.2 on the golden strings (tests/data/tok/golden, copied from
// the project's tokenizer goldens): ids with and without special tokens, and both decodes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "llada2/tokenizer.h"
#include "tokenizer_test_util.h"

namespace {

using llada2::Tokenizer;
using nlohmann::json;

class TokenizerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParity, MatchesGoldens) {
  const std::string name = GetParam();
  ASSERT_TRUE(llada2::test::tokenizer_present(name))
      << llada2::test::tokenizer_dir(name) << "/tokenizer.json is missing: run scripts/fetch-test-data.sh";
  Tokenizer tok = Tokenizer::from_dir(llada2::test::tokenizer_dir(name));
  auto lines = llada2::test::read_lines_gz(llada2::test::tok_data("golden/" + name + ".public.jsonl.gz"));
  ASSERT_GT(lines.size(), 100u);
  size_t bad[4] = {0, 0, 0, 0};
  int shown = 0;
  for (const auto& line : lines) {
    json rec = json::parse(line);
    std::string text = rec.at("text").get<std::string>();
    auto ids = rec.at("ids").get<std::vector<int64_t>>();
    auto ids_ns = rec.at("ids_no_special").get<std::vector<int64_t>>();
    auto got = tok.encode(text, true);
    auto got_ns = tok.encode(text, false);
    std::string dec = tok.decode(ids, false), dec_skip = tok.decode(ids, true);
    bool ok[4] = {got == ids, got_ns == ids_ns, dec == rec.at("decoded").get<std::string>(),
                  dec_skip == rec.at("decoded_skip_special").get<std::string>()};
    for (int k = 0; k < 4; ++k) bad[k] += !ok[k];
    if ((!ok[0] || !ok[1] || !ok[2] || !ok[3]) && shown++ < 5) {
      ADD_FAILURE() << name << " id " << rec.at("id") << " (" << rec.at("cat") << ") text " << json(text).dump()
                    << "\n ids ok " << ok[0] << " no_special ok " << ok[1] << " decoded ok " << ok[2]
                    << " skip_special ok " << ok[3] << "\n want " << json(ids_ns).dump() << "\n got  "
                    << json(got_ns).dump();
    }
  }
  std::printf(
      "[ parity ] %s: %zu strings; mismatches ids %zu, ids_no_special %zu, decoded %zu, decoded_skip_special %zu\n",
      name.c_str(), lines.size(), bad[0], bad[1], bad[2], bad[3]);
  EXPECT_EQ(bad[0] + bad[1] + bad[2] + bad[3], 0u);
}

INSTANTIATE_TEST_SUITE_P(Goldens, TokenizerParity,
                         ::testing::Values("ling-synth", "qwen3", "llama3", "deepseek_v3", "gemma3"),
                         [](const auto& info) {
                           return info.param == "ling-synth" ? std::string("ling_synth") : info.param;
                         });

}  // namespace
