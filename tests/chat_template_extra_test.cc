// Well-known chat templates (Llama 3.1 tools, Mistral tools, Gemma, DeepSeek-R1, Hermes tools, and
// a macro-heavy one) over the golden conversations, against Python Jinja2's output
// (tests/data/tok/chat/extra/extra.jsonl, written by make_extra.py beside it).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "llada2/chat_template.h"
#include "llada2/error.h"
#include "test_util.h"

namespace {

using llada2::testing::read_file;
using nlohmann::ordered_json;

TEST(ChatTemplateExtra, WellKnownTemplatesMatchJinja2) {
  std::string dir = std::string(LLADA2_TEST_DATA) + "/tok/chat";
  std::vector<ordered_json> convs;
  {
    std::ifstream in(dir + "/ling/public.jsonl");
    std::string line;
    while (std::getline(in, line)) convs.push_back(ordered_json::parse(line));
  }
  std::map<std::string, std::unique_ptr<llada2::ChatTemplate>> templates;
  std::ifstream in(dir + "/extra/extra.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ordered_json rec = ordered_json::parse(line);
    std::string name = rec["template"].get<std::string>();
    size_t index = rec["index"].get<size_t>();
    SCOPED_TRACE(name + " conversation " + std::to_string(index));
    auto& tpl = templates[name];
    if (!tpl) tpl = std::make_unique<llada2::ChatTemplate>(read_file(dir + "/extra/" + name));
    const ordered_json& c = convs.at(index);
    ordered_json vars = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
    std::string got, error;
    try {
      got = tpl->render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(), vars);
    } catch (const llada2::InputError& e) {
      error = e.what();
    }
    if (rec.contains("error")) {
      EXPECT_FALSE(error.empty()) << "Jinja2 raised " << rec["error"];
      // raise_exception messages come through verbatim.
      std::string want = rec["error"].get<std::string>();
      if (want.rfind("TemplateError: ", 0) == 0) {
        EXPECT_EQ(error, want.substr(15));
      }
    } else {
      EXPECT_EQ(error, "");
      EXPECT_EQ(got, rec["out"].get<std::string>());
    }
    ++n;
  }
  EXPECT_EQ(n, 480);
}

}  // namespace
