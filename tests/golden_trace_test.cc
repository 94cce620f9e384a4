// Step-by-step checks against the per-step traces of the reference pipeline:
// the scheduler alone on the recorded logits, the model on the recorded windows,
// and the whole pipeline's callback tensors.
#include <gtest/gtest.h>

#include <cmath>

#include "llada2/call_json.h"
#include "llada2/pipeline.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

struct TraceCase {
  std::string path;
  std::string attention;
};

std::vector<TraceCase> trace_cases() {
  std::vector<TraceCase> out;
  const nlohmann::json index = read_json(golden_path("cases.json"));
  for (const auto& c : index["cases"]) {
    if (c["role"] != "parity") continue;
    const nlohmann::json cj = read_json(golden_path(c["path"].get<std::string>() + "/case.json"));
    if (cj.contains("trace_file")) out.push_back({c["path"], c["attention"]});
  }
  return out;
}

class GoldenTrace : public ::testing::TestWithParam<TraceCase> {
 protected:
  void SetUp() override {
    cj_ = read_json(golden_path(GetParam().path + "/case.json"));
    file_ =
        std::make_unique<SafetensorsFile>(golden_path(GetParam().path + "/" + cj_["trace_file"].get<std::string>()));
    num_steps_ = cj_["expected"]["num_model_calls"];
  }
  const TensorView& get(int64_t step, const std::string& key) const {
    char pre[16];
    std::snprintf(pre, sizeof pre, "step%03lld.", (long long)step);
    auto it = file_->tensors().find(pre + key);
    if (it == file_->tensors().end()) throw std::runtime_error("trace lacks " + std::string(pre) + key);
    return it->second;
  }
  SchedulerConfig scheduler_config() const { return golden_scheduler(cj_); }
  nlohmann::json cj_;
  std::unique_ptr<SafetensorsFile> file_;
  int64_t num_steps_ = 0;
};

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << " [" << i << "]";
}

TEST_P(GoldenTrace, SchedulerOnRecordedLogits) {
  const auto& call = cj_["call"];
  CallSpec spec = parse_call_json(call);
  BlockRefinementScheduler sched(scheduler_config());
  const int64_t gen = call["gen_length"], K = spec.options.block_length.value_or(sched.config().block_length);
  const int64_t steps = std::min(spec.options.num_inference_steps.value_or(sched.config().num_inference_steps),
                                 gen / spec.options.minimal_topk.value_or(1));
  sched.set_timesteps(steps, K);
  SamplingParams sp;
  sp.temperature = spec.options.temperature;
  sp.method = parse_sampling_method(spec.options.sampling_method);
  std::optional<double> edit = spec.options.editing_threshold;
  Rng rng(0);
  for (int64_t g = 0; g < num_steps_; ++g) {
    const TensorView& lt = get(g, "sched.model_output");
    std::vector<float> logits = tensor_f32(lt);
    const int64_t B = lt.shape[0], V = lt.shape[2];
    Matrix<int64_t> sample(B, K);
    sample.data = tensor_i64(get(g, "sched.sample"));
    std::vector<int64_t> pm = tensor_i64(get(g, "sched.prompt_mask"));
    std::vector<uint8_t> prompt_mask(pm.begin(), pm.end());
    const int64_t timestep = tensor_i64(get(g, "sched.timestep"))[0];
    SchedulerStepOutput o = sched.step(logits.data(), V, timestep, sample, call["mask_token_id"], sp,
                                       spec.options.threshold, edit, prompt_mask, &rng);
    EXPECT_EQ(o.prev_sample.data, tensor_i64(get(g, "sched.prev_sample"))) << "step " << g;
    EXPECT_EQ(std::vector<int64_t>(o.transfer_index.data.begin(), o.transfer_index.data.end()),
              tensor_i64(get(g, "sched.transfer_index")))
        << "step " << g;
    EXPECT_EQ(std::vector<int64_t>(o.editing_transfer_index.data.begin(), o.editing_transfer_index.data.end()),
              tensor_i64(get(g, "sched.editing_transfer_index")))
        << "step " << g;
    EXPECT_EQ(o.sampled_tokens.data, tensor_i64(get(g, "sched.sampled_tokens"))) << "step " << g;
    expect_close(o.sampled_probs.data, tensor_f32(get(g, "sched.sampled_probs")), 5e-6, "sampled_probs");
  }
}

TEST_P(GoldenTrace, ModelOnRecordedWindows) {
  const ArithmeticMode exact(true);  // the traces are float32 computations
  auto model = golden_model(cj_["model_dir"]);
  const int64_t K = cj_["call"]["block_length"];
  for (int64_t g = 0; g < num_steps_; ++g) {
    const TensorView& it = get(g, "model.input_ids");
    std::vector<int64_t> ids = tensor_i64(it), mask = tensor_i64(get(g, "model.attention_mask"));
    const int64_t B = it.shape[0], W = it.shape[1], V = model->config().vocab_size;
    ForwardBatch fb{B, W, ids.data(), mask.data(), parse_attention_mode(GetParam().attention), K, W - K};
    std::vector<float> logits(size_t(B * K * V));
    model->forward(fb, logits.data());
    std::vector<float> ref = tensor_f32(get(g, "sched.model_output"));
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i)
      worst = std::max(worst, std::fabs(double(logits[i]) - ref[i]) / std::max(1.0, std::fabs(double(ref[i]))));
    EXPECT_LE(worst, 1e-4) << "step " << g;
  }
}

TEST_P(GoldenTrace, PipelineCallbackTensors) {
  const ArithmeticMode exact(true);  // the traces are float32 computations
  CallSpec spec = parse_call_json(cj_["call"]);
  spec.options.attention = parse_attention_mode(GetParam().attention);
  spec.options.callback_on_step_end_tensor_inputs = cj_["trace_callback_keys"].get<std::vector<std::string>>();
  int64_t seen = 0;
  spec.options.callback_on_step_end = [&](int64_t step, int64_t, const std::map<std::string, CallbackTensor>& t) {
    EXPECT_EQ(step, seen);
    for (const auto& [name, tensor] : t) {
      const TensorView& ref = get(step, "callback." + name);
      EXPECT_EQ(tensor.shape, ref.shape) << name << " step " << step;
      if (tensor.is_float)
        expect_close(tensor.floats, tensor_f32(ref), 1e-5, name);
      else
        EXPECT_EQ(tensor.ints, tensor_i64(ref)) << name << " step " << step;
    }
    ++seen;
    return CallbackResult{};
  };
  Pipeline pipe(golden_model(cj_["model_dir"]), scheduler_config());
  pipe(spec.options);
  EXPECT_EQ(seen, num_steps_);
}

std::string trace_name(const ::testing::TestParamInfo<TraceCase>& info) {
  std::string s = info.param.path;
  for (char& c : s)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Traces, GoldenTrace, ::testing::ValuesIn(trace_cases()), trace_name);

}  // namespace
}  // namespace llada2::testing
