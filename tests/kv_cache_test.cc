// The exact prefix KV cache of block_causal mode gives the same tokens as recomputing the window.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "llada2/call_json.h"
#include "llada2/pipeline.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

struct CacheRun {
  std::vector<int64_t> sequences;
  int64_t forwards;
  std::vector<std::vector<int64_t>> blocks;  // block_x after every step
};

CacheRun run(GenerateOptions o, std::shared_ptr<const Model> model, bool use_cache, SchedulerConfig sc = {}) {
  o.use_kv_cache = use_cache;
  CacheRun r;
  auto user_cb = o.callback_on_step_end;
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  o.callback_on_step_end = [&](int64_t step, int64_t ts, const std::map<std::string, CallbackTensor>& t) {
    r.blocks.push_back(t.at("block_x").ints);
    return user_cb ? user_cb(step, ts, t) : CallbackResult{};
  };
  PipelineOutput out = Pipeline(std::move(model), sc)(o);
  r.sequences = out.sequences.data;
  r.forwards = out.stats.forwards;
  return r;
}

CacheRun run(GenerateOptions o, const std::string& model, bool use_cache, SchedulerConfig sc = {}) {
  return run(std::move(o), golden_model(model), use_cache, sc);
}

void expect_same(const CacheRun& a, const CacheRun& b, const std::string& what) {
  EXPECT_EQ(a.sequences, b.sequences) << what;
  EXPECT_EQ(a.forwards, b.forwards) << what;
  EXPECT_EQ(a.blocks, b.blocks) << what;
}

TEST(KvCache, EveryBlockCausalGoldenCaseIsIdentical) {
  const nlohmann::json index = read_json(golden_path("cases.json"));
  int n = 0;
  for (const auto& c : index["cases"]) {
    if (c["attention"] != "block_causal") continue;
    const nlohmann::json cj = read_json(golden_path(c["path"].get<std::string>() + "/case.json"));
    CallSpec spec = parse_call_json(cj["call"]);
    spec.options.attention = AttentionMode::BlockCausal;
    SchedulerConfig sc;
    sc.block_length = cj["scheduler_config"]["block_length"];
    expect_same(run(spec.options, cj["model_dir"], true, sc), run(spec.options, cj["model_dir"], false, sc), c["path"]);
    ++n;
  }
  EXPECT_EQ(n, 45);
}

GenerateOptions padded_batch(bool left, bool editing) {
  GenerateOptions o;
  std::vector<int64_t> r0 = {35, 55, 4, 256, 60, 52, 7, 9, 11};
  std::vector<int64_t> r1 = left ? std::vector<int64_t>{318, 318, 318, 318, 1, 2, 3, 4, 5}
                                 : std::vector<int64_t>{1, 2, 3, 4, 5, 318, 318, 318, 318};
  std::vector<int64_t> m1 =
      left ? std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 1} : std::vector<int64_t>{1, 1, 1, 1, 1, 0, 0, 0, 0};
  o.input_ids = IdTensor::from_rows({r0, r1});
  o.attention_mask = IdTensor::from_rows({std::vector<int64_t>(9, 1), m1});
  o.gen_length = 21;
  o.block_length = 4;
  o.num_inference_steps = 3;
  o.mask_token_id = 319;
  o.eos_token_id = 311;
  o.threshold = 0.6;
  o.editing_threshold = editing ? std::optional<double>(0.3) : std::nullopt;
  o.max_post_steps = 3;
  o.output_type = "seq";
  return o;
}

TEST(KvCache, PaddedBatchesWithAndWithoutEditing) {
  for (bool left : {true, false})
    for (bool editing : {true, false}) {
      GenerateOptions o = padded_batch(left, editing);
      o.mask_token_id = 999;
      o.eos_token_id = 972;
      for (auto& v : o.input_ids->values)
        if (v == 318) v = 998;
      expect_same(run(o, "models/tiny-b-f32", true), run(o, "models/tiny-b-f32", false),
                  std::string(left ? "left" : "right") + (editing ? " editing" : ""));
    }
}

// A greedy call on a 1,100-token prompt (over four of attention's key tiles), no editing.
GenerateOptions long_prompt_call(int64_t gen_length, int64_t block_length) {
  GenerateOptions o;
  std::vector<int64_t> prompt;
  for (int i = 0; i < 1100; ++i) prompt.push_back((i * 37 + 11) % 300);
  o.input_ids = IdTensor::from_row(prompt);
  o.gen_length = gen_length;
  o.block_length = block_length;
  o.num_inference_steps = block_length;
  o.mask_token_id = 319;
  o.editing_threshold = std::nullopt;
  o.output_type = "seq";
  return o;
}

// A golden model with 2048 positions instead of 512 (RoPE has no table to outgrow).
std::shared_ptr<const Model> with_2048_positions(const std::string& model) {
  const std::filesystem::path dir = fresh_temp_dir();
  std::filesystem::copy(golden_path(model), dir, std::filesystem::copy_options::recursive);
  nlohmann::json config = read_json((dir / "config.json").string());
  config["max_position_embeddings"] = 2048;
  std::ofstream(dir / "config.json") << config.dump(2);
  return Model::load(dir.string());
}

TEST(KvCache, LongPromptIsPrefilledInChunks) {
  const GenerateOptions o = long_prompt_call(10, 4);
  const std::shared_ptr<const Model> model = with_2048_positions("models/tiny-a-f32");
  expect_same(run(o, model, true), run(o, model, false), "1100-token prompt");
}

// The fast mode of a 16-bit checkpoint caches keys and values in bf16 (half the bytes), the exact mode
// and float32 checkpoints in float32; with the bf16 store a long prompt (over four of attention's key
// tiles) gives the same tokens with the cache as recomputing the window, and stays close to the
// float32 store.
TEST(KvCache, Bf16StoreInTheFastModeOfBf16Checkpoints) {
  const std::shared_ptr<const Model> bf16 = with_2048_positions("models/tiny-a-bf16");
  const std::shared_ptr<const Model> f32 = golden_model("models/tiny-a-f32");
  size_t fast_bytes = 0;
  {
    ArithmeticMode fast(false);
    EXPECT_EQ(bf16->kv_dtype(), DType::BF16);
    EXPECT_EQ(f32->kv_dtype(), DType::F32);
    const KvCache c = bf16->make_cache(2, 64);
    EXPECT_EQ(c.dtype, DType::BF16);
    fast_bytes = c.bytes();
    // Keys in rows of key_stride >= capacity elements, an odd number of 64-byte lines.
    EXPECT_GE(c.key_stride, c.capacity);
    EXPECT_EQ(c.key_stride * 2 % 128, 64);
    EXPECT_EQ(fast_bytes, size_t(2 * c.row * (c.key_stride + 64) * bf16->config().num_hidden_layers) * 2);
    runtime::set_bf16_activations(false);  // the switch of the fast mode's bf16 parts
    EXPECT_EQ(bf16->kv_dtype(), DType::F32);
  }
  {
    ArithmeticMode exact(true);
    EXPECT_EQ(bf16->kv_dtype(), DType::F32);
    const KvCache c = bf16->make_cache(2, 64);
    EXPECT_EQ(c.dtype, DType::F32);
    EXPECT_EQ(c.key_stride * 4 % 128, 64);
    EXPECT_EQ(c.bytes(), size_t(2 * c.row * (c.key_stride + 64) * bf16->config().num_hidden_layers) * 4);
  }

  const GenerateOptions o = long_prompt_call(16, 8);
  ArithmeticMode fast(false);
  const CacheRun cached = run(o, bf16, true);
  expect_same(cached, run(o, bf16, false), "1100-token prompt, bf16 store");
  runtime::set_bf16_activations(false);
  const CacheRun f32_store = run(o, bf16, true);
  int same = 0;
  for (size_t i = 0; i < cached.sequences.size(); ++i) same += cached.sequences[i] == f32_store.sequences[i];
  std::printf("[kv store] bf16 against float32 store: %d of %zu tokens the same\n", same, cached.sequences.size());
  EXPECT_GE(same, int(cached.sequences.size()) / 2);
}

// A callback that rewrites a committed block makes its cached keys stale: the result must still equal
// the recomputed one.
TEST(KvCache, CallbackEditsOfEarlierBlocksInvalidateTheCache) {
  GenerateOptions o = padded_batch(false, true);
  bool done = false;
  o.callback_on_step_end = [&done](int64_t, int64_t, const std::map<std::string, CallbackTensor>& t) {
    CallbackResult r;
    const auto& bx = t.at("block_x");
    if (!done && bx.shape[1] >= 20) {
      done = true;
      Matrix<int64_t> m(bx.shape[0], bx.shape[1]);
      m.data = bx.ints;
      m.at(0, 9) = 42;
      m.at(1, 10) = 43;
      r.block_x = m;
    }
    return r;
  };
  CacheRun cached = run(o, "models/tiny-a-f32", true);
  EXPECT_TRUE(done);
  done = false;
  expect_same(cached, run(o, "models/tiny-a-f32", false), "callback rewrite");
}

}  // namespace
}  // namespace llada2::testing
