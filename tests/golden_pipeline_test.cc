// Token-exact parity of the pipeline with the goldens of the original Python system.
#include <gtest/gtest.h>

#include "llada2/call_json.h"
#include "llada2/pipeline.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

struct GoldenCase {
  std::string path;
  std::string attention;
  std::string role;
};

std::vector<GoldenCase> all_cases() {
  std::vector<GoldenCase> out;
  const nlohmann::json index = read_json(golden_path("cases.json"));
  for (const auto& c : index["cases"]) out.push_back({c["path"], c["attention"], c["role"]});
  return out;
}

struct Recorded {
  std::vector<nlohmann::json> steps;
};

// Runs one case through the library; records per-step commits, edits and the block after the step.
// rec == nullptr: no callback, so the LM head only runs for the cells the scheduler needs.
PipelineOutput run_case(const nlohmann::json& cj, const std::string& attention, Recorded* rec) {
  CallSpec spec = parse_call_json(cj["call"], SchedulerConfig{});
  const SchedulerConfig sc = golden_scheduler(cj);
  spec.options.attention = parse_attention_mode(attention);
  if (!rec) return Pipeline(golden_model(cj["model_dir"]), sc)(spec.options);
  spec.options.callback_on_step_end_tensor_inputs =
      std::vector<std::string>{"block_x", "transfer_index", "editing_transfer_index", "sampled_tokens"};
  const int64_t K = spec.options.block_length.value_or(sc.block_length);
  spec.options.callback_on_step_end = [&](int64_t step, int64_t timestep,
                                          const std::map<std::string, CallbackTensor>& t) {
    const auto& bx = t.at("block_x");
    const int64_t B = bx.shape[0], W = bx.shape[1];
    nlohmann::json transfer = nlohmann::json::array(), edit = nlohmann::json::array(),
                   sampled = nlohmann::json::array(), after = nlohmann::json::array();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> tr, ed, sa, af;
      for (int64_t j = 0; j < K; ++j) {
        if (t.at("transfer_index").ints[size_t(b * K + j)]) tr.push_back(j);
        if (t.at("editing_transfer_index").ints[size_t(b * K + j)]) ed.push_back(j);
        if (t.at("transfer_index").ints[size_t(b * K + j)] || t.at("editing_transfer_index").ints[size_t(b * K + j)])
          sa.push_back(t.at("sampled_tokens").ints[size_t(b * K + j)]);
        af.push_back(bx.ints[size_t(b * W + W - K + j)]);
      }
      transfer.push_back(tr);
      edit.push_back(ed);
      sampled.push_back(sa);
      after.push_back(af);
    }
    rec->steps.push_back({{"global_step", step},
                          {"block", W / K - 1},
                          {"timestep", timestep},
                          {"transfer", transfer},
                          {"edit", edit},
                          {"sampled_at_commits", sampled},
                          {"block_after", after}});
    return CallbackResult{};
  };
  Pipeline pipe(golden_model(cj["model_dir"]), sc);
  return pipe(spec.options);
}

class GoldenPipeline : public ::testing::TestWithParam<GoldenCase> {};

// The goldens are float32 computations (of the F32 models, and of the BF16 models' weights widened to
// float32 in the +f32compute sets): SPEC A6's exact mode reproduces them. The fast mode is held to its
// own floors against them (fast_mode_test.cc).
TEST_P(GoldenPipeline, Reproduces) {
  const ArithmeticMode exact(true);
  const GoldenCase& gc = GetParam();
  const nlohmann::json cj = read_json(golden_path(gc.path + "/case.json"));
  Recorded rec;
  PipelineOutput out = run_case(cj, gc.attention, &rec);
  const auto expected = cj["expected"]["sequences"].get<std::vector<std::vector<int64_t>>>();
  const bool match = out.sequences.to_rows() == expected;
  if (gc.role != "parity") {
    // bf16-computed or fragile references: reported, not required.
    RecordProperty("informational_match", match ? "yes" : "no");
    std::printf("[ info ] %s (%s): %s\n", gc.path.c_str(), gc.role.c_str(), match ? "matches" : "differs");
    return;
  }
  EXPECT_EQ(out.sequences.to_rows(), expected);
  EXPECT_EQ(out.stats.forwards, cj["expected"]["num_model_calls"].get<int64_t>());
  PipelineOutput lean = run_case(cj, gc.attention, nullptr);
  EXPECT_EQ(lean.sequences.to_rows(), expected) << "without a callback (LM head on the needed cells only)";
  EXPECT_EQ(lean.stats.forwards, out.stats.forwards);
  const auto& steps = cj["steps"];
  ASSERT_EQ(rec.steps.size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    for (const char* key :
         {"global_step", "block", "timestep", "transfer", "edit", "sampled_at_commits", "block_after"})
      EXPECT_EQ(rec.steps[i][key], steps[i][key]) << "step " << i << " key " << key;
  }
}

std::string case_name(const ::testing::TestParamInfo<GoldenCase>& info) {
  std::string s = info.param.path;
  for (char& c : s)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenPipeline, ::testing::ValuesIn(all_cases()), case_name);

TEST(GoldenPipelineCount, EightyParityCases) {
  int parity = 0;
  for (const auto& c : all_cases()) parity += c.role == "parity";
  EXPECT_EQ(parity, 80);
}

}  // namespace
}  // namespace llada2::testing
