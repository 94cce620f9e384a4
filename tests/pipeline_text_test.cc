// Text in, text out: prompts and chat messages through the tokenizer and chat template
// (prompt preparation, mask / EOS ids from the tokenizer, texts cut after EOS), on a tiny random model carrying the
// Ling-style synthetic tokenizer.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "llada2/test_model.h"
#include "pipeline/prompt.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

const std::string& text_model_dir() { return chat_model_dir(); }

const Pipeline& text_pipeline() {
  static const Pipeline* pipe = new Pipeline(Pipeline::from_pretrained(chat_model_dir()));
  return *pipe;
}

GenerateOptions small_options(GenerateOptions o = {}) {
  o.gen_length = 16;
  o.block_length = 8;
  o.num_inference_steps = 8;
  o.editing_threshold = std::nullopt;
  o.seed = 1;
  return o;
}

Matrix<int64_t> run_ids(const GenerateOptions& o) { return text_pipeline()(o).sequences; }

TEST(TextPipeline, TokenizerSuppliesMaskAndEos) {
  const Tokenizer& tok = *text_pipeline().tokenizer();
  ASSERT_EQ(tok.mask_token_id(), 8002);
  ASSERT_EQ(tok.eos_token_id(), 8001);
  GenerateOptions o = small_options();
  o.input_ids = IdTensor::from_rows({tok.encode("hello world", false)});
  GenerateOptions explicit_ids = o;
  explicit_ids.mask_token_id = 8002;
  explicit_ids.eos_token_id = 8001;
  EXPECT_EQ(run_ids(o).data, run_ids(explicit_ids).data);
}

TEST(TextPipeline, StringPromptIsWrappedAsAUserMessage) {
  const Pipeline& pipe = text_pipeline();
  ASSERT_NE(pipe.chat_template(), nullptr);
  GenerateOptions a = small_options();
  a.prompt = std::string("What is 2+2?");
  GenerateOptions b = small_options();
  b.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "What is 2+2?"}])");
  GenerateOptions c = small_options();
  std::string rendered = pipe.apply_chat_template(*b.messages, nullptr, true);
  EXPECT_EQ(rendered,
            "<role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>What is "
            "2+2?<|role_end|><role>ASSISTANT</role>");
  c.input_ids = IdTensor::from_rows({pipe.tokenizer()->encode(rendered, false)});
  EXPECT_EQ(run_ids(a).data, run_ids(c).data);
  EXPECT_EQ(run_ids(b).data, run_ids(c).data);
  // add_generation_prompt=false drops the assistant header.
  b.add_generation_prompt = false;
  PreparedPrompt pp = prepare_prompt(b, *pipe.tokenizer(), pipe.chat_template());
  EXPECT_EQ(pipe.tokenizer()->decode(pp.ids.data, false),
            "<role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>What is 2+2?<|role_end|>");
}

TEST(TextPipeline, PlainTokenizationWithoutChatTemplate) {
  const Pipeline& pipe = text_pipeline();
  GenerateOptions a = small_options();
  a.prompt = std::string("plain text prompt");
  a.use_chat_template = false;
  GenerateOptions b = small_options();
  b.input_ids = IdTensor::from_rows({pipe.tokenizer()->encode("plain text prompt", true)});
  EXPECT_EQ(run_ids(a).data, run_ids(b).data);
}

TEST(TextPipeline, ListPromptsArePaddedLikeTheTokenizer) {
  const Pipeline& pipe = text_pipeline();
  const Tokenizer& tok = *pipe.tokenizer();
  GenerateOptions a = small_options();
  a.prompt = std::vector<std::string>{"a much longer first prompt here", "short"};
  a.use_chat_template = false;
  PreparedPrompt pp = prepare_prompt(a, tok, pipe.chat_template());
  std::vector<int64_t> r0 = tok.encode("a much longer first prompt here"), r1 = tok.encode("short");
  ASSERT_GT(r0.size(), r1.size());
  ASSERT_EQ(pp.ids.cols, int64_t(r0.size()));
  const bool left = tok.padding_side() == "left";
  std::vector<int64_t> want1(r0.size(), *tok.pad_token_id()), mask1(r0.size(), 0);
  for (size_t j = 0; j < r1.size(); ++j) {
    size_t at = left ? r0.size() - r1.size() + j : j;
    want1[at] = r1[j];
    mask1[at] = 1;
  }
  EXPECT_EQ(std::vector<int64_t>(pp.ids.row(1), pp.ids.row(1) + pp.ids.cols), want1);
  EXPECT_EQ(std::vector<int64_t>(pp.mask.row(1), pp.mask.row(1) + pp.mask.cols), mask1);
  GenerateOptions b = small_options();
  b.input_ids = IdTensor::from_rows({r0, want1});
  b.attention_mask = IdTensor::from_rows({std::vector<int64_t>(r0.size(), 1), mask1});
  EXPECT_EQ(run_ids(a).data, run_ids(b).data);
}

TEST(TextPipeline, ErrorsOfPromptPreparation) {
  GenerateOptions o = small_options();
  o.prompt = std::vector<std::string>{"a", "b"};
  try {
    text_pipeline()(o);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("`prompt` must be a string when `use_chat_template=True`."),
              std::string::npos);
  }
}

TEST(TextPipeline, TextsAreCutAtTheFirstEosAndSkipSpecials) {
  const Pipeline& pipe = text_pipeline();
  GenerateOptions o = small_options();
  o.prompt = std::string("Tell me a story");
  o.gen_length = 24;
  o.temperature = 1.0;
  o.seed = 5;
  o.eos_early_stop = false;
  PipelineOutput out = pipe(o);
  ASSERT_TRUE(out.texts.has_value());
  for (int64_t b = 0; b < out.sequences.rows; ++b) {
    std::vector<int64_t> row(out.sequences.row(b), out.sequences.row(b) + out.sequences.cols);
    auto it = std::find(row.begin(), row.end(), 8001);
    if (it != row.end()) row.erase(it + 1, row.end());
    EXPECT_EQ((*out.texts)[size_t(b)], pipe.tokenizer()->decode(row, true));
  }
  o.output_type = "seq";
  EXPECT_FALSE(pipe(o).texts.has_value());
}

// With the EOS forced into the first generated cell, the text is empty (everything after it is cut).
TEST(TextPipeline, TextAfterEosIsDropped) {
  GenerateOptions o = small_options();
  o.prompt = std::string("hi");
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  int64_t P = int64_t(prepare_prompt(o, *text_pipeline().tokenizer(), text_pipeline().chat_template()).ids.cols);
  o.callback_on_step_end = [P](int64_t step, int64_t, const std::map<std::string, CallbackTensor>& t) {
    CallbackResult r;
    if (step == 0) {
      Matrix<int64_t> m(t.at("block_x").shape[0], t.at("block_x").shape[1]);
      m.data = t.at("block_x").ints;
      if (P < m.cols) m.at(0, P) = 8001;
      r.block_x = m;
    }
    return r;
  };
  o.eos_early_stop = false;
  PipelineOutput out = text_pipeline()(o);
  ASSERT_EQ(out.sequences.at(0, 0), 8001);
  EXPECT_EQ((*out.texts)[0], "");
}

TEST(TextPipeline, CliPromptAndMessages) {
  text_pipeline();
  const std::string& dir = text_model_dir();
  std::string out, err;
  ASSERT_EQ(run_cli("generate -m " + dir + " -p \"Hello there\" --gen-length 16 --block-length 8 --seed 1 --json", &out,
                    &err),
            0)
      << err;
  nlohmann::json j = nlohmann::json::parse(out);
  ASSERT_TRUE(j["texts"].is_array());
  const std::string msgs = dir + "/msgs.json";
  std::ofstream(msgs) << R"([{"role": "user", "content": "Hello there"}])";
  std::string out2;
  ASSERT_EQ(run_cli("generate -m " + dir + " --messages " + msgs + " --gen-length 16 --block-length 8 --seed 1 --json",
                    &out2, &err),
            0)
      << err;
  EXPECT_EQ(nlohmann::json::parse(out2)["sequences"], j["sequences"]);
  std::string text;
  ASSERT_EQ(
      run_cli("generate -m " + dir + " -p \"Hello there\" --gen-length 16 --block-length 8 --seed 1", &text, &err), 0)
      << err;
  EXPECT_EQ(text, j["texts"][0].get<std::string>() + "\n");
}

}  // namespace
}  // namespace llada2::testing

namespace llada2::testing {
namespace {

TEST(TextPipeline, CliChatKeepsHistoryAndResets) {
  text_pipeline();
  const std::string& dir = text_model_dir();
  const std::string input = dir + "/chat_input.txt";
  std::ofstream(input) << "hello\n/reset\n\nhello\n/quit\nnever read\n";
  std::string out, err;
  ASSERT_EQ(run_cli("chat -m " + dir + " --gen-length 16 --block-length 8 --seed 1 < " + input, &out, &err), 0) << err;
  // Two answers to the same first message (the reset forgot the first turn), around the notice.
  const size_t mid = out.find("(conversation cleared)\n");
  ASSERT_NE(mid, std::string::npos) << out;
  EXPECT_EQ(out.substr(0, mid), out.substr(mid + 23)) << out;
  EXPECT_EQ(out.find("never read"), std::string::npos);
  // A model without a chat template is refused with a clear error.
  EXPECT_EQ(run_cli("chat -m " + golden_path("models/tiny-a-f32") + " < /dev/null", nullptr, &err), 2);
  EXPECT_NE(err.find("chat template"), std::string::npos) << err;
}

}  // namespace
}  // namespace llada2::testing
