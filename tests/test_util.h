// Shared helpers of the test suite: golden data paths, cached models, tensor reads.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "llada2/model.h"
#include "llada2/runtime.h"
#include "llada2/safetensors.h"
#include "llada2/scheduler.h"

namespace llada2::testing {

inline std::string data_path(const std::string& rel) { return std::string(LLADA2_TEST_DATA) + "/" + rel; }
inline std::string golden_path(const std::string& rel) { return data_path("golden/" + rel); }

nlohmann::json read_json(const std::string& path);

// SPEC A6's arithmetic mode for a scope (exact: float32 compute; otherwise the fast default), restoring
// the previous mode after it.
class ArithmeticMode {
 public:
  explicit ArithmeticMode(bool exact) : bf16_(runtime::bf16_activations()), int8_(runtime::int8_activations()) {
    runtime::set_exact(exact);
  }
  ~ArithmeticMode() {
    runtime::set_bf16_activations(bf16_);
    runtime::set_int8_activations(int8_);
  }
  ArithmeticMode(const ArithmeticMode&) = delete;
  ArithmeticMode& operator=(const ArithmeticMode&) = delete;

 private:
  bool bf16_, int8_;
};

// The scheduler config a golden case ran with (its case.json's "scheduler_config").
SchedulerConfig golden_scheduler(const nlohmann::json& case_json);

// Loads each golden model once per process.
std::shared_ptr<const Model> golden_model(const std::string& model_dir_rel);

std::vector<float> tensor_f32(const TensorView& t);
std::vector<int64_t> tensor_i64(const TensorView& t);  // I64 and BOOL

// A tiny random checkpoint (tiny-b shape, f32, seed 7) carrying the Ling-style synthetic tokenizer and
// chat template, written once per test process into its own temporary folder (removed at exit).
const std::string& chat_model_dir();

// A fresh, empty folder named after the running test (and the process).
std::filesystem::path fresh_temp_dir();

std::string read_file(const std::filesystem::path& p);

// JSON text of `depth` nested arrays ([[...]]) or objects ({"a":{"a":...{}}}), innermost empty.
std::string nested_json(size_t depth, bool objects);

// Runs the CLI with arguments; returns exit code, captures stdout (and stderr into err if given).
int run_cli(const std::string& args, std::string* out, std::string* err = nullptr);

// One row of W positions (ids (37 i + 5) mod V), block-causal with blocks of 8, logits from
// `logits_from` on: a forward's arguments, `fb` pointing into `ids` and `mask`.
struct Window {
  std::vector<int64_t> ids, mask;
  ForwardBatch fb;
};
inline Window window(int64_t V, int64_t W, int64_t logits_from) {
  Window w;
  for (int64_t i = 0; i < W; ++i) w.ids.push_back((i * 37 + 5) % V);
  w.mask.assign(size_t(W), 1);
  w.fb.batch = 1;
  w.fb.window = W;
  w.fb.input_ids = w.ids.data();
  w.fb.key_mask = w.mask.data();
  w.fb.attention = AttentionMode::BlockCausal;
  w.fb.block_length = 8;
  w.fb.logits_from = logits_from;
  return w;
}

}  // namespace llada2::testing
