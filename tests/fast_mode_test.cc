// SPEC A6's fast mode, measured: on BF16 checkpoints it multiplies bf16 activations (where the CPU has
// AVX512-BF16), so it cannot reproduce the float32 goldens token for token, and it is not the reference's
// own bf16 computation either. These tests hold it to floors against both references:
//   - the pure-bf16 goldens (the reference computing in bf16, the informational cases of cases.json);
//   - the exact mode (float32 compute, which reproduces the +f32compute goldens token for token);
// on whole pipeline runs (share of cases with identical tokens, first step whose block differs) and on
// forward logits (max |diff| / max(1, |ref|)). On a CPU without bf16 dot products the fast mode is the
// exact mode and every figure is perfect. The figures are printed; README states them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "llada2/call_json.h"
#include "llada2/pipeline.h"
#include "llada2/runtime.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

struct CaseRun {
  std::vector<std::vector<int64_t>> sequences;
  std::vector<nlohmann::json> blocks;  // the block after each step
};

CaseRun run_case(const nlohmann::json& cj, const std::string& attention, bool exact) {
  const ArithmeticMode mode(exact);
  CallSpec spec = parse_call_json(cj["call"], SchedulerConfig{});
  const SchedulerConfig sc = golden_scheduler(cj);
  spec.options.attention = parse_attention_mode(attention);
  const int64_t K = spec.options.block_length.value_or(sc.block_length);
  CaseRun r;
  spec.options.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  spec.options.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>& t) {
    const auto& bx = t.at("block_x");
    const int64_t B = bx.shape[0], W = bx.shape[1];
    nlohmann::json after = nlohmann::json::array();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> row;
      for (int64_t j = 0; j < K; ++j) row.push_back(bx.ints[size_t(b * W + W - K + j)]);
      after.push_back(row);
    }
    r.blocks.push_back(after);
    return CallbackResult{};
  };
  r.sequences = Pipeline(golden_model(cj["model_dir"]), sc)(spec.options).sequences.to_rows();
  return r;
}

// The first step whose block differs (the step count when none does).
size_t first_divergence(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

struct Agreement {
  int cases = 0, identical = 0;
  double diverging_step_share = 0;  // mean over cases of first diverging step / steps (1 when identical)
  void add(bool same, size_t first, size_t steps) {
    ++cases;
    identical += same;
    diverging_step_share += same ? 1.0 : double(first) / double(std::max<size_t>(1, steps));
  }
  double share() const { return cases ? double(identical) / cases : 0; }
  double mean_first() const { return cases ? diverging_step_share / cases : 0; }
};

bool bf16_model(const nlohmann::json& cj) {
  return cj["model_dir"].get<std::string>().find("bf16") != std::string::npos;
}

// Against the reference computing in bf16: its runs are the pure-bf16 goldens.
TEST(FastMode, AgreesWithThePureBf16Goldens) {
  Agreement a, exact_mode;
  const nlohmann::json index = read_json(golden_path("cases.json"));
  for (const auto& c : index["cases"]) {
    const std::string path = c["path"];
    if (path.find("f32compute") != std::string::npos) continue;
    const nlohmann::json cj = read_json(golden_path(path + "/case.json"));
    if (!bf16_model(cj)) continue;
    const CaseRun fast = run_case(cj, c["attention"], false);
    std::vector<nlohmann::json> want;
    for (const auto& s : cj["steps"]) want.push_back(s["block_after"]);
    const auto expected = cj["expected"]["sequences"].get<std::vector<std::vector<int64_t>>>();
    a.add(fast.sequences == expected, first_divergence(fast.blocks, want), want.size());
    const CaseRun exact = run_case(cj, c["attention"], true);
    exact_mode.add(exact.sequences == expected, first_divergence(exact.blocks, want), want.size());
  }
  std::printf("[fast vs pure-bf16 reference] %d/%d cases identical; mean first diverging step at %.0f%% of the run\n",
              a.identical, a.cases, 100 * a.mean_first());
  std::printf("[exact vs pure-bf16 reference] %d/%d cases identical; mean first diverging step at %.0f%% of the run\n",
              exact_mode.identical, exact_mode.cases, 100 * exact_mode.mean_first());
  ASSERT_EQ(a.cases, 8);
  // Measured on an AVX512-BF16 CPU, with the bf16 KV cache and attention in bf16 products: 1/8 identical,
  // first divergence at 46% of the run on average (float32 cache and attention: 2/8, 52%; bf16 cache
  // with float32 queries: 2/8, 36%; bf16 queries, float32 attention products: 2/8, 45%). The exact mode
  // is as far from that reference: 2/8, 55%. On an AVX2 CPU (float32 products, bf16 cache): 1/8, 42%.
  // Floors: one case, and 15 points below the first AVX512-BF16 measurement (52%).
  EXPECT_GE(a.identical, 1);
  EXPECT_GE(a.mean_first(), 0.37);
}

// Against the exact mode, over every case of the BF16 models (the +f32compute sets).
TEST(FastMode, AgreesWithTheExactMode) {
  Agreement a;
  const nlohmann::json index = read_json(golden_path("cases.json"));
  for (const auto& c : index["cases"]) {
    const std::string path = c["path"];
    if (path.find("f32compute") == std::string::npos) continue;
    const nlohmann::json cj = read_json(golden_path(path + "/case.json"));
    const CaseRun fast = run_case(cj, c["attention"], false), exact = run_case(cj, c["attention"], true);
    a.add(fast.sequences == exact.sequences, first_divergence(fast.blocks, exact.blocks), exact.blocks.size());
  }
  std::printf("[fast vs exact] %d/%d cases identical; mean first diverging step at %.0f%% of the run\n", a.identical,
              a.cases, 100 * a.mean_first());
  ASSERT_EQ(a.cases, 44);
  // Measured on an AVX512-BF16 CPU: 20/44 identical, first divergence at 67% of the run on average (23/44
  // and 66% with a float32 KV cache and attention); on an AVX2 CPU, whose fast mode differs by its bf16
  // cache only: 33/44, 86%. Floors: 10 and 15 points below the first AVX512-BF16 measurement.
  EXPECT_GE(a.share(), 0.42);
  EXPECT_GE(a.mean_first(), 0.51);
}

// Forward logits of the BF16 models on the golden inputs.
TEST(FastMode, LogitErrorAgainstBothReferences) {
  double vs_bf16 = 0, vs_f32 = 0, ref_gap = 0;
  for (std::string m : {"tiny-a-bf16", "tiny-b-bf16"}) {
    auto model = golden_model("models/" + m);
    SafetensorsFile bf16_ref(golden_path("models/" + m + "/forward.safetensors"));
    SafetensorsFile f32_ref(golden_path("models/" + m + "/forward_f32compute.safetensors"));
    for (std::string p : {"ones", "tailzeros"}) {
      const std::string f32_prefix = p == "ones" ? "ones" : "bidir2d_tailzeros";
      std::vector<int64_t> ids = tensor_i64(bf16_ref.tensors().at(p + ".input_ids"));
      std::vector<int64_t> mask = tensor_i64(bf16_ref.tensors().at(p + ".attention_mask"));
      const int64_t W = int64_t(ids.size()), V = model->config().vocab_size;
      ForwardBatch fb;
      fb.batch = 1;
      fb.window = W;
      fb.input_ids = ids.data();
      fb.key_mask = mask.data();
      fb.attention = AttentionMode::Bidirectional;
      fb.block_length = W;
      std::vector<float> fast(size_t(W * V));
      {
        const ArithmeticMode mode(false);
        model->forward(fb, fast.data());
      }
      const std::vector<float> want_bf16 = tensor_f32(bf16_ref.tensors().at(p + ".logits"));
      const std::vector<float> want_f32 = tensor_f32(f32_ref.tensors().at(f32_prefix + ".logits"));
      ASSERT_EQ(fast.size(), want_f32.size());
      for (size_t i = 0; i < fast.size(); ++i) {
        const double b = want_bf16[i], f = want_f32[i];
        vs_bf16 = std::max(vs_bf16, std::fabs(fast[i] - b) / std::max(1.0, std::fabs(b)));
        vs_f32 = std::max(vs_f32, std::fabs(fast[i] - f) / std::max(1.0, std::fabs(f)));
        ref_gap = std::max(ref_gap, std::fabs(b - f) / std::max(1.0, std::fabs(f)));
      }
    }
  }
  std::printf(
      "[logits] fast vs pure-bf16 reference %.3g, fast vs float32 %.3g (the reference's own bf16 vs float32: "
      "%.3g)\n",
      vs_bf16, vs_f32, ref_gap);
  // The fast mode is no further from either reference than the two references are from each other (this
  // tiny random model amplifies rounding: its logits move by units between bf16 and float32 compute).
  EXPECT_LE(vs_f32, ref_gap);
  EXPECT_LE(vs_bf16, ref_gap);
}

}  // namespace
}  // namespace llada2::testing
