// Pipeline behaviour beyond the goldens: every validation error of the original's check_inputs and __call__,
// callbacks, padding, sampling statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "llada2/call_json.h"
#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

const char* kModel = "models/tiny-a-f32";  // mask 319, eos 311, vocab 320

GenerateOptions base_options() {
  GenerateOptions o;
  o.input_ids = IdTensor::from_rows({{35, 55, 4, 256, 60, 52}});
  o.gen_length = 12;
  o.block_length = 4;
  o.num_inference_steps = 4;
  o.mask_token_id = 319;
  o.eos_token_id = 311;
  o.editing_threshold = std::nullopt;
  o.output_type = "seq";
  return o;
}

// The call's error, which Pipeline::resolve must give as well without running the model.
std::string error_of(const GenerateOptions& o, SchedulerConfig sc = {}) {
  Pipeline pipe(golden_model(kModel), sc);
  std::string checked;
  try {
    pipe.resolve(o);
  } catch (const InputError& e) {
    checked = e.what();
  }
  try {
    pipe(o);
  } catch (const InputError& e) {
    EXPECT_EQ(checked, e.what()) << "resolve() and the call disagree";
    return e.what();
  }
  EXPECT_EQ(checked, "") << "resolve() rejected a call that runs";
  return "";
}

#define EXPECT_ERROR_CONTAINS(opts, needle) EXPECT_NE(error_of(opts).find(needle), std::string::npos) << error_of(opts)

// resolve() validates without a forward (what `llada2 generate` does before reading the weights).
TEST(Validation, ResolveRunsNoForward) {
  auto model = golden_model(kModel);
  Pipeline pipe(model);
  model->set_profiling(true);
  model->reset_profile();
  GenerateOptions o = base_options();
  EXPECT_NO_THROW(pipe.resolve(o));
  o.mask_token_id.reset();
  EXPECT_THROW(pipe.resolve(o), InputError);
  EXPECT_EQ(model->profile().forwards, 0u);
  EXPECT_NO_THROW(pipe(base_options()));
  EXPECT_GT(model->profile().forwards, 0u);
  model->set_profiling(false);
}

TEST(Validation, EveryErrorOfTheSpec) {
  GenerateOptions o = base_options();
  o.input_ids.reset();
  EXPECT_ERROR_CONTAINS(o, "Provide one of `prompt`, `messages`, or `input_ids`.");  // 1
  o = base_options();
  o.prompt = std::string("hi");
  o.messages = nlohmann::json::array({{{"role", "user"}, {"content", "x"}}});
  EXPECT_ERROR_CONTAINS(o, "Provide either `prompt` or `messages`, not both.");  // 2
  o = base_options();
  o.input_ids->shape = {1, 1, 6};
  EXPECT_ERROR_CONTAINS(o, "`input_ids` must be 1D or 2D, got shape");  // 3
  o = base_options();
  o.input_ids->dtype = "torch.float32";
  EXPECT_ERROR_CONTAINS(o, "`input_ids` must be int64 token IDs, got dtype=");  // 4
  o = base_options();
  o.input_ids.reset();
  o.prompt = std::string("hello");
  EXPECT_ERROR_CONTAINS(o, "Tokenizer is required when `input_ids` is not provided.");  // 5
  o = base_options();
  o.input_ids.reset();
  o.messages = nlohmann::json::array({{{"role", "user"}, {"content", "x"}}});
  EXPECT_ERROR_CONTAINS(o, "Tokenizer is required when `input_ids` is not provided.");  // 6
  for (int which = 0; which < 4; ++which) {                                             // 7-10
    for (int64_t bad : {0, -3}) {
      o = base_options();
      const char* name[] = {"gen_length", "block_length", "num_inference_steps", "minimal_topk"};
      if (which == 0) o.gen_length = bad;
      if (which == 1) o.block_length = bad;
      if (which == 2) o.num_inference_steps = bad;
      if (which == 3) o.minimal_topk = bad;
      EXPECT_ERROR_CONTAINS(o, std::string("`") + name[which] + "` must be > 0, got " + std::to_string(bad));
    }
  }
  o = base_options();
  o.threshold = -0.1;
  EXPECT_ERROR_CONTAINS(o, "`threshold` must be in [0, 1] (or > 1 to force top-k commits)");  // 11
  o.threshold = std::nan("");
  EXPECT_ERROR_CONTAINS(o, "`threshold` must be in [0, 1]");
  o = base_options();
  o.sampling_method = "beam";
  EXPECT_ERROR_CONTAINS(o, "`sampling_method` must be one of");  // 12
  o = base_options();
  o.output_type = "pt";
  EXPECT_ERROR_CONTAINS(o, "`output_type` must be 'seq' or 'text'");  // 13
  o = base_options();
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x", "logits"};
  EXPECT_ERROR_CONTAINS(o, "`callback_on_step_end_tensor_inputs` has to be in");  // 14
  EXPECT_ERROR_CONTAINS(o, "but found ['logits']");
  o = base_options();
  o.attention_mask = IdTensor::from_rows({{1, 1, 1}});
  EXPECT_ERROR_CONTAINS(
      o, "`attention_mask` shape torch.Size([1, 3]) must match `input_ids` shape torch.Size([1, 6])");  // 17
  o = base_options();
  o.mask_token_id.reset();  // tiny-a's config.json has no mask id
  EXPECT_ERROR_CONTAINS(o, "`mask_token_id` must be provided (or available on the tokenizer)");  // 22
  o = base_options();
  o.gen_length = 2;
  o.minimal_topk = 3;                                             // S = min(4, 2 // 3) = 0
  EXPECT_ERROR_CONTAINS(o, "`num_inference_steps` must be > 0");  // 23
  o = base_options();
  o.temperature = -1;
  EXPECT_ERROR_CONTAINS(o, "`temperature` must be >= 0");  // 25
  o = base_options();
  o.temperature = 0.8;
  o.top_p = 0.0;
  EXPECT_ERROR_CONTAINS(o, "`top_p` must be in (0, 1]");  // 26
  o.sampling_method = "greedy";                           // greedy path: top_p unused, no error
  EXPECT_EQ(error_of(o), "");
}

TEST(Validation, OutOfVocabularyIdsAreInputErrors) {
  GenerateOptions o = base_options();
  o.input_ids = IdTensor::from_rows({{1, 2, 999}});
  EXPECT_ERROR_CONTAINS(o, "outside the vocabulary");
  o = base_options();
  o.mask_token_id = 320;
  EXPECT_ERROR_CONTAINS(o, "outside the vocabulary");
}

// The golden models have 512 positions: prompt + gen_length may use all of them, not one more.
TEST(Validation, MorePositionsThanTheModelHasIsAnError) {
  GenerateOptions o = base_options();
  o.input_ids = IdTensor::from_rows({std::vector<int64_t>(500, 5)});
  o.gen_length = 13;
  EXPECT_ERROR_CONTAINS(o, "the prompt (500 tokens) and gen_length (13) need 513 positions, but the model has 512");
  o.gen_length = 12;
  o.num_inference_steps = 4;
  o.block_length = 4;
  EXPECT_EQ(error_of(o), "");
}

TEST(CallJson, RejectsUnknownKeysAndWrongTypes) {
  EXPECT_THROW(parse_call_json({{"input_ids", {{1, 2}}}, {"gen_lenght", 4}}), InputError);
  EXPECT_THROW(parse_call_json({{"gen_length", "12"}}), InputError);
  EXPECT_THROW(parse_call_json({{"eos_early_stop", 1}}), InputError);
  EXPECT_THROW(parse_call_json({{"input_ids", {{1, 2}, {3}}}}), InputError);
  EXPECT_THROW(parse_call_json({{"scheduler", {{"blocks", 3}}}}), InputError);
  EXPECT_THROW(parse_call_json(nlohmann::json::array()), InputError);
  CallSpec s = parse_call_json({{"input_ids", {{1.5, 2}}}});
  EXPECT_EQ(s.options.input_ids->dtype, "torch.float32");
  s = parse_call_json({{"input_ids", {{{1, 2}}}}});
  EXPECT_EQ(s.options.input_ids->shape.size(), 3u);
  s = parse_call_json({{"editing_threshold", nullptr}, {"block_length", nullptr}});
  EXPECT_FALSE(s.options.editing_threshold.has_value());
  EXPECT_FALSE(s.options.block_length.has_value());
}

TEST(Callback, AliasesAndBlockReplacement) {
  GenerateOptions o = base_options();
  o.callback_on_step_end_tensor_inputs =
      std::vector<std::string>{"x0", "x0_p", "confidence", "active_block", "sampled_tokens", "sampled_probs"};
  int calls = 0;
  o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>& t) {
    EXPECT_EQ(t.at("x0").ints, t.at("sampled_tokens").ints);
    EXPECT_EQ(t.at("x0_p").floats, t.at("sampled_probs").floats);
    for (size_t i = 0; i < t.at("confidence").floats.size(); ++i) {
      if (t.at("active_block").ints[i])
        EXPECT_EQ(t.at("confidence").floats[i], t.at("sampled_probs").floats[i]);
      else
        EXPECT_TRUE(std::isinf(t.at("confidence").floats[i]));
    }
    ++calls;
    return CallbackResult{};
  };
  Pipeline pipe(golden_model(kModel));
  pipe(o);
  EXPECT_GT(calls, 0);

  // A returned block_x replaces the window: writing the EOS-free token 7 everywhere in the active block
  // ends the block (no masks left) and lands in the output.
  o = base_options();
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>& t) {
    const auto& bx = t.at("block_x");
    Matrix<int64_t> m(bx.shape[0], bx.shape[1]);
    m.data = bx.ints;
    for (int64_t j = bx.shape[1] - 4; j < bx.shape[1]; ++j)
      if (j >= 6) m.at(0, j) = 7;
    return CallbackResult{m};
  };
  PipelineOutput out = pipe(o);
  for (int64_t j = 0; j < 12; ++j) EXPECT_EQ(out.sequences.at(0, j), 7);
  // Blocks 1..4 of the 20-cell canvas; each: the step whose callback fills it, then the one post step
  // that runs whenever masks finish before the schedule does (editing off).
  EXPECT_EQ(out.stats.forwards, 8);
}

// Pad cells are never keys: their ids cannot change anything, left or right padded.
TEST(Padding, PadIdsDoNotMatter) {
  for (auto attention : {AttentionMode::BlockCausal, AttentionMode::Bidirectional}) {
    for (bool left : {true, false}) {
      GenerateOptions o = base_options();
      o.attention = attention;
      o.eos_early_stop = false;
      std::vector<int64_t> row0 = {35, 55, 4, 256, 60, 52};
      std::vector<int64_t> row1 =
          left ? std::vector<int64_t>{100, 100, 100, 9, 8, 7} : std::vector<int64_t>{9, 8, 7, 100, 100, 100};
      std::vector<int64_t> m1 = left ? std::vector<int64_t>{0, 0, 0, 1, 1, 1} : std::vector<int64_t>{1, 1, 1, 0, 0, 0};
      o.input_ids = IdTensor::from_rows({row0, row1});
      o.attention_mask = IdTensor::from_rows({{1, 1, 1, 1, 1, 1}, m1});
      Pipeline pipe(golden_model(kModel));
      PipelineOutput a = pipe(o);
      for (int64_t j = 0; j < 6; ++j)
        if (!m1[size_t(j)]) o.input_ids->values[size_t(6 + j)] = 200 + j;
      PipelineOutput b = pipe(o);
      EXPECT_EQ(a.sequences.data, b.sequences.data) << attention_mode_name(attention) << (left ? " left" : " right");
    }
  }
}

// An all-ones attention_mask is the same as none, and a 1-D input is one row.
TEST(Padding, AllOnesMaskEqualsNoMask) {
  GenerateOptions o = base_options();
  Pipeline pipe(golden_model(kModel));
  PipelineOutput a = pipe(o);
  o.input_ids = IdTensor::from_row({35, 55, 4, 256, 60, 52});
  o.attention_mask = IdTensor::from_row({1, 1, 1, 1, 1, 1});
  PipelineOutput b = pipe(o);
  EXPECT_EQ(a.sequences.data, b.sequences.data);
}

// Right padding with pad == EOS puts an EOS inside the prompt: that row can never finish early.
TEST(Eos, EosInsidePromptDisablesEarlyStop) {
  GenerateOptions o = base_options();
  o.input_ids = IdTensor::from_rows({{35, 55, 4, 311, 60, 52}});
  o.gen_length = 24;
  Pipeline pipe(golden_model(kModel));
  PipelineOutput out = pipe(o);
  for (int64_t j = 0; j < 24; ++j) EXPECT_NE(out.sequences.at(0, j), 319) << "every block is generated";
}

TEST(Output, SequencesAreAlwaysGenLengthWide) {
  GenerateOptions o = base_options();
  o.gen_length = 5;  // not a multiple of block_length: the tail is dropped
  Pipeline pipe(golden_model(kModel));
  PipelineOutput out = pipe(o);
  EXPECT_EQ(out.sequences.rows, 1);
  EXPECT_EQ(out.sequences.cols, 5);
}

// Sampling: frequencies of the drawn tokens match the filtered, temperature-scaled softmax.
TEST(Sampling, FrequenciesMatchFilteredSoftmax) {
  const int64_t V = 6;
  std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 1.5f};
  struct Case {
    double temperature;
    std::optional<int64_t> top_k;
    std::optional<double> top_p;
  };
  for (const Case& c :
       {Case{1.0, {}, {}}, Case{0.7, {}, {}}, Case{1.3, 3, {}}, Case{1.0, {}, 0.6}, Case{0.9, 4, 0.8}}) {
    SamplingParams p;
    p.temperature = c.temperature;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    // Expected distribution computed independently in double.
    std::vector<double> z(V);
    for (int64_t i = 0; i < V; ++i) z[size_t(i)] = logits[size_t(i)] / c.temperature;
    std::vector<bool> keep(V, true);
    if (c.top_k) {
      std::vector<double> s(z);
      std::sort(s.rbegin(), s.rend());
      for (int64_t i = 0; i < V; ++i) keep[size_t(i)] = z[size_t(i)] >= s[size_t(*c.top_k - 1)];
    }
    auto softmax = [&](const std::vector<bool>& k) {
      std::vector<double> p(V, 0.0);
      double sum = 0;
      for (int64_t i = 0; i < V; ++i)
        if (k[size_t(i)]) sum += (p[size_t(i)] = std::exp(z[size_t(i)]));
      for (auto& x : p) x /= sum;
      return p;
    };
    std::vector<double> want = softmax(keep);
    if (c.top_p) {
      std::vector<int> order(V);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) { return want[size_t(a)] > want[size_t(b)]; });
      double cum = 0;
      bool drop = false;
      for (int i : order) {
        if (drop) keep[size_t(i)] = false;
        cum += want[size_t(i)];
        if (cum > *c.top_p) drop = true;
      }
      want = softmax(keep);
    }
    Rng rng(1234);
    const int n = 60000;
    std::vector<int> counts(V, 0);
    for (int i = 0; i < n; ++i) {
      int64_t tok;
      float prob;
      sample_tokens(logits.data(), 1, V, p, &rng, &tok, &prob);
      ASSERT_TRUE(keep[size_t(tok)]) << "drew a filtered token";
      EXPECT_NEAR(prob, want[size_t(tok)], 1e-5) << "confidence = filtered probability of the token";
      ++counts[size_t(tok)];
    }
    for (int64_t v = 0; v < V; ++v) {
      double f = double(counts[size_t(v)]) / n, sd = std::sqrt(want[size_t(v)] * (1 - want[size_t(v)]) / n);
      EXPECT_NEAR(f, want[size_t(v)], 5 * sd + 1e-9) << "token " << v << " temperature " << c.temperature;
    }
  }
}

TEST(Sampling, SeedReproducesARun) {
  GenerateOptions o = base_options();
  o.temperature = 1.0;
  o.seed = 42;
  Pipeline pipe(golden_model(kModel));
  PipelineOutput a = pipe(o), b = pipe(o);
  EXPECT_EQ(a.sequences.data, b.sequences.data);
  o.seed = 43;
  PipelineOutput c = pipe(o);
  o.seed = 44;
  PipelineOutput d = pipe(o);
  EXPECT_TRUE(a.sequences.data != c.sequences.data || a.sequences.data != d.sequences.data);
}

TEST(Scheduler, TransferScheduleFrontLoadsRemainder) {
  EXPECT_EQ(BlockRefinementScheduler::transfer_schedule(10, 3), (std::vector<int64_t>{4, 3, 3}));
  auto s = BlockRefinementScheduler::transfer_schedule(32, 64);
  EXPECT_EQ(std::count(s.begin(), s.end(), 1), 32);
  EXPECT_EQ(std::count(s.begin(), s.end(), 0), 32);
  EXPECT_EQ(s[0], 1);
  EXPECT_EQ(s[63], 0);
}

}  // namespace
}  // namespace llada2::testing

namespace llada2::testing {
namespace {

TEST(Callback, StopEndsTheGeneration) {
  GenerateOptions o = base_options();
  int calls = 0;
  o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>&) {
    CallbackResult r;
    r.stop = ++calls == 2;
    return r;
  };
  PipelineOutput out = Pipeline(golden_model(kModel))(o);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(out.stats.forwards, 2);
  EXPECT_TRUE(out.stats.stopped);
  EXPECT_EQ(out.sequences.cols, 12);
}

}  // namespace
}  // namespace llada2::testing

namespace llada2::testing {
namespace {

// independent_rows: every row of a batch computes exactly what it computes alone, editing on,
// rows finishing their blocks at different steps; without it the batch (as the original does)
// keeps editing rows that would have stopped, and some row differs.
TEST(Batching, IndependentRowsEqualSoloRuns) {
  Pipeline pipe(golden_model(kModel));
  std::mt19937 rng(5);
  int differing_without = 0, rows_checked = 0;
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<std::vector<int64_t>> prompts(4, std::vector<int64_t>(7));
    for (auto& p : prompts)
      for (auto& t : p) t = int64_t(rng() % 300);
    GenerateOptions o = base_options();
    o.gen_length = 16;
    o.block_length = 8;
    o.num_inference_steps = 8;
    o.threshold = 0.05 + 0.1 * (trial % 4);
    o.editing_threshold = 0.05 + 0.05 * (trial % 3);
    o.max_post_steps = 4;
    o.eos_early_stop = trial % 2 == 0;
    o.input_ids = IdTensor::from_rows(prompts);
    o.independent_rows = true;
    const PipelineOutput together = pipe(o);
    o.independent_rows = false;
    const PipelineOutput original = pipe(o);
    for (size_t b = 0; b < prompts.size(); ++b) {
      GenerateOptions one = o;
      one.input_ids = IdTensor::from_rows({prompts[b]});
      const PipelineOutput alone = pipe(one);
      const std::vector<int64_t> row(together.sequences.row(int64_t(b)),
                                     together.sequences.row(int64_t(b)) + together.sequences.cols);
      const std::vector<int64_t> orig(original.sequences.row(int64_t(b)),
                                      original.sequences.row(int64_t(b)) + original.sequences.cols);
      EXPECT_EQ(row, alone.sequences.data) << "trial " << trial << " row " << b;
      differing_without += orig != alone.sequences.data;
      ++rows_checked;
    }
  }
  EXPECT_GT(differing_without, 0) << "the batch-wide block end never changed a row in " << rows_checked;
}

}  // namespace
}  // namespace llada2::testing
