// The LLaDA2.2 decoding in the pipeline: chosen by the config or the `decoding` argument, the exact
// prefix cache against recomputing the window, stop ids (config.json and generation_config.json),
// and the CLI's --decoding flag.
#include <gtest/gtest.h>

#include <algorithm>

#include "llada2/call_json.h"
#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "llada22_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

constexpr int64_t kMask = 319, kEos = 311, kStop = 312;  // tiny-22

GenerateOptions base_options(int64_t K = 8) {
  GenerateOptions o;
  o.input_ids = IdTensor::from_rows({{35, 55, 4, 256, 60, 52, 7, 9, 11, 13, 21}});
  o.gen_length = 21;
  o.block_length = K;
  o.output_type = "seq";
  o.seed = 3;
  return o;
}

struct Generation {
  std::vector<int64_t> sequences;
  int64_t forwards = 0;
  std::vector<std::vector<int64_t>> windows;  // block_x after every iteration
};

Generation run(GenerateOptions o, std::shared_ptr<const Model> model = tiny22_model()) {
  Generation r;
  auto user_cb = o.callback_on_step_end;
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  o.callback_on_step_end = [&](int64_t step, int64_t ts, const std::map<std::string, CallbackTensor>& t) {
    r.windows.push_back(t.at("block_x").ints);
    return user_cb ? user_cb(step, ts, t) : CallbackResult{};
  };
  PipelineOutput out = Pipeline(model)(o);
  r.sequences = out.sequences.data;
  r.forwards = out.stats.forwards;
  return r;
}

TEST(Llada22Pipeline, DecodingFollowsTheConfigUnlessAsked) {
  Pipeline l22(tiny22_model()), l21(golden_model("models/tiny-a-f32"));
  GenerateOptions o = base_options();
  ResolvedCall c = l22.resolve(o);
  EXPECT_EQ(c.decoding, Decoding::Llada22);
  EXPECT_EQ(c.delete_token_id, 316);
  EXPECT_EQ(c.split_token_id, 317);
  EXPECT_EQ(c.stop_token_ids, (std::vector<int64_t>{kEos, kStop}));  // config.json's, then generation_config.json's
  o.eos_token_id = 300;
  EXPECT_EQ(l22.resolve(o).stop_token_ids, (std::vector<int64_t>{300, kEos, kStop}));
  o.decoding = Decoding::Llada21;
  EXPECT_EQ(l22.resolve(o).decoding, Decoding::Llada21);

  GenerateOptions a = base_options();
  a.mask_token_id = 319;  // the golden configs name no ids
  a.eos_token_id = 311;
  EXPECT_EQ(l21.resolve(a).decoding, Decoding::Llada21);
  a.decoding = Decoding::Llada22;
  c = l21.resolve(a);
  EXPECT_EQ(c.decoding, Decoding::Llada22);
  EXPECT_FALSE(c.delete_token_id);
  EXPECT_FALSE(c.split_token_id);
  // Without delete / split ids the rules run with substitutions only.
  PipelineOutput out = l21(a);
  EXPECT_EQ(out.sequences.cols, 21);
  EXPECT_GT(out.stats.forwards, 0);

  EXPECT_EQ(parse_decoding("llada2.2"), Decoding::Llada22);
  EXPECT_STREQ(decoding_name(Decoding::Llada21), "llada2.1");
  EXPECT_THROW(parse_decoding("2.2"), InputError);
}

TEST(Llada22Pipeline, ArgumentsAreChecked) {
  Pipeline pipe(tiny22_model());
  auto error_of = [&](const GenerateOptions& o) {
    try {
      pipe.resolve(o);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  GenerateOptions o = base_options();
  o.levenshtein.threshold = -0.5;
  EXPECT_NE(error_of(o).find("`threshold` must be >= 0"), std::string::npos) << error_of(o);
  o = base_options();
  o.levenshtein.max_iterations = 0;
  EXPECT_NE(error_of(o).find("`max_iterations` must be > 0"), std::string::npos);
  o = base_options();
  o.max_post_steps = -1;
  EXPECT_NE(error_of(o).find("`max_post_steps` must be >= 0"), std::string::npos);
  o = base_options();
  o.mask_token_id = 316;
  EXPECT_NE(error_of(o).find("delete_token_id"), std::string::npos);
}

TEST(Llada22Pipeline, CacheGivesTheTokensOfRecomputingTheWindow) {
  struct Case {
    int64_t K;
    std::optional<double> editing;
    double temperature;
    int64_t max_post;
    bool batch;
  } cases[] = {
      {8, 0.0, 0.0, 16, false}, {4, 0.0, 0.0, 4, false}, {12, 0.0, 0.0, 2, false}, {8, std::nullopt, 0.0, 16, false},
      {8, 0.5, 0.8, 3, false},  {8, 0.0, 0.0, 0, false}, {4, 0.0, 1.0, 2, true},
  };
  for (const Case& c : cases) {
    GenerateOptions o = base_options(c.K);
    o.levenshtein.editing_threshold = c.editing;
    o.temperature = c.temperature;
    o.max_post_steps = c.max_post;
    if (c.batch) {
      o.input_ids = IdTensor::from_rows({{35, 55, 4, 256, 60, 52, 7, 9, 11}, {318, 318, 318, 318, 1, 2, 3, 4, 5}});
      o.attention_mask = IdTensor::from_rows({std::vector<int64_t>(9, 1), {0, 0, 0, 0, 1, 1, 1, 1, 1}});
    }
    const std::string what = "K=" + std::to_string(c.K) + " T=" + std::to_string(c.temperature) +
                             " post=" + std::to_string(c.max_post) + (c.batch ? " batch" : "");
    o.use_kv_cache = true;
    const Generation cached = run(o);
    o.use_kv_cache = false;
    const Generation recomputed = run(o);
    EXPECT_EQ(cached.sequences, recomputed.sequences) << what;
    EXPECT_EQ(cached.forwards, recomputed.forwards) << what;
    EXPECT_EQ(cached.windows, recomputed.windows) << what;
    EXPECT_GT(cached.forwards, 0);
    // A seed reproduces the run (sampling and the anti-loop draw from it).
    EXPECT_EQ(run(o).sequences, recomputed.sequences) << what;
  }
}

// Conversation prefix reuse (llada2/prefix_cache.h) under the LLaDA2.2 rules: a second call whose prompt
// is the first call's canvas and new ids, started from the first call's cached prefix, gives the
// tokens (and windows) of the same call computed from scratch; also on a checkpoint whose deletions
// and splits happen in most generations.
TEST(Llada22Pipeline, PrefixReuseIsTokenIdentical) {
  for (const bool edits : {false, true}) {
    const auto model = edits ? Model::load(tiny22_editing_model_dir()) : tiny22_model();
    GenerateOptions first = base_options(4);
    first.mask_token_id = kMask;  // the editing checkpoint's config has none (its tokenizer has)
    first.eos_token_id = kEos;
    first.eos_early_stop = false;
    first.keep_prefixes = true;
    const PipelineOutput turn1 = Pipeline(model)(first);
    ASSERT_EQ(turn1.prefixes.size(), 1u);
    ASSERT_TRUE(turn1.prefixes[0]);
    std::vector<int64_t> prompt = first.input_ids->values;
    prompt.insert(prompt.end(), turn1.sequences.data.begin(), turn1.sequences.data.end());
    for (int64_t id : {40, 41, 42, 43, 44, 45}) prompt.push_back(id);
    GenerateOptions second = first;
    second.input_ids = IdTensor::from_rows({prompt});
    second.eos_early_stop = true;
    second.keep_prefixes = true;
    const Generation fresh = run(second, model);
    second.reuse_prefixes = {turn1.prefixes[0]};
    const Generation reused = run(second, model);
    EXPECT_EQ(reused.sequences, fresh.sequences) << (edits ? "edits" : "");
    EXPECT_EQ(reused.windows, fresh.windows) << (edits ? "edits" : "");
    const PipelineOutput out = Pipeline(model)(second);
    EXPECT_GE(out.stats.reused_positions, 11 + 21 - 4) << (edits ? "edits" : "");  // all but a partial block
    EXPECT_EQ(out.stats.reused_positions % 4, 0);
  }
}

// Each row draws from its own generator: a row of a batch gives the tokens it gives alone with its
// row's seed, whatever the other rows are (the server batches unrelated requests on this).
TEST(Llada22Pipeline, RowsDrawFromTheirOwnGenerators) {
  const std::vector<int64_t> a = {35, 55, 4, 256, 60, 52, 7, 9, 11}, b = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (double temperature : {0.0, 1.0}) {
    GenerateOptions o = base_options(8);
    o.temperature = temperature;
    o.input_ids = IdTensor::from_rows({a, b});
    const Generation both = run(o);
    o.input_ids = IdTensor::from_rows({a});
    const Generation first = run(o);
    o.input_ids = IdTensor::from_rows({b});
    o.row_seeds = std::vector<uint64_t>{row_seed(3, 1)};
    const Generation second = run(o);
    const size_t G = 21;
    EXPECT_EQ(std::vector<int64_t>(both.sequences.begin(), both.sequences.begin() + G), first.sequences);
    EXPECT_EQ(std::vector<int64_t>(both.sequences.begin() + G, both.sequences.end()), second.sequences);
    // Other seeds for the other row change nothing for the first.
    o.input_ids = IdTensor::from_rows({a, b});
    o.row_seeds = std::vector<uint64_t>{3, 77};
    const Generation reseeded = run(o);
    EXPECT_EQ(std::vector<int64_t>(reseeded.sequences.begin(), reseeded.sequences.begin() + G), first.sequences);
  }
  EXPECT_NE(row_seed(3, 1), row_seed(3, 2));
  EXPECT_EQ(row_seed(3, 0), 3u);
  GenerateOptions o = base_options(8);
  o.row_seeds = std::vector<uint64_t>{1, 2};
  EXPECT_THROW(Pipeline(tiny22_model()).resolve(o), InputError);
}

TEST(Llada22Pipeline, EveryBlockKeepsItsLengthAndEndsWithinItsIterations) {
  GenerateOptions o = base_options(8);
  o.levenshtein.max_iterations = 3;
  o.eos_early_stop = false;
  const Generation r = run(o);
  // Blocks 1, 2 and 3 of 8 cells (prompt 11, 21 generated): at most 3 forwards each.
  EXPECT_LE(r.forwards, 9);
  for (const auto& w : r.windows) EXPECT_EQ(w.size() % 8, 0u);
  EXPECT_EQ(r.sequences.size(), 21u);
}

// The LLaDA2.1 rules on a LLaDA2.2 checkpoint: diffusers' loop (SPEC §2.6's forward count for K=4,
// S=4, P=3, G=8 with threshold 2.0 and no editing: 2 + 4 + 4).
TEST(Llada22Pipeline, Llada21RulesOnALlada22Checkpoint) {
  GenerateOptions o;
  o.input_ids = IdTensor::from_rows({{35, 55, 4}});
  o.gen_length = 8;
  o.block_length = 4;
  o.num_inference_steps = 4;
  o.threshold = 2.0;
  o.editing_threshold = std::nullopt;
  o.eos_early_stop = false;
  o.output_type = "seq";
  o.decoding = Decoding::Llada21;
  EXPECT_EQ(run(o).forwards, 10);
}

// A stop id written into the first generated block (by a callback, with substitutions off so that it
// stays): the row is finished after that block and its output is cut after the stop id.
TEST(Llada22Pipeline, StopIdsEndTheRowAndCutTheOutput) {
  for (int64_t stop : {kEos, kStop}) {
    for (bool early_stop : {true, false}) {
      GenerateOptions o = base_options(8);
      o.levenshtein.editing_threshold = std::nullopt;
      o.eos_early_stop = early_stop;
      o.callback_on_step_end = [&](int64_t step, int64_t, const std::map<std::string, CallbackTensor>& t) {
        CallbackResult r;
        if (step != 0) return r;
        const CallbackTensor& bx = t.at("block_x");
        Matrix<int64_t> w(bx.shape[0], bx.shape[1]);
        w.data = bx.ints;
        w.at(0, 13) = stop;
        r.block_x = w;
        return r;
      };
      const Generation r = run(o);
      const auto at = std::find(r.sequences.begin(), r.sequences.end(), stop);
      ASSERT_NE(at, r.sequences.end()) << stop;
      const int64_t e = at - r.sequences.begin();
      EXPECT_LE(e, 4);  // generated position 2, unless a split or deletion moved it
      int64_t widest = 0;
      for (const auto& w : r.windows) widest = std::max<int64_t>(widest, int64_t(w.size()));
      if (early_stop) {
        EXPECT_EQ(widest, 16) << "no block after the stop id's";
        for (size_t j = size_t(e) + 1; j < r.sequences.size(); ++j) EXPECT_EQ(r.sequences[j], kMask) << j;
      } else {
        EXPECT_EQ(widest, 32);
        EXPECT_GT(std::count_if(r.sequences.begin() + e + 1, r.sequences.end(), [](int64_t t) { return t != kMask; }),
                  0);
      }
    }
  }
}

TEST(Llada22Pipeline, CallObjectsSetTheDecodingAndBothThresholds) {
  CallSpec s = parse_call_json(nlohmann::ordered_json::parse(
      R"({"input_ids": [[1, 2]], "decoding": "llada2.1", "threshold": 0.9, "editing_threshold": null})"));
  EXPECT_EQ(s.options.decoding, Decoding::Llada21);
  EXPECT_EQ(s.options.threshold, 0.9);
  EXPECT_EQ(s.options.levenshtein.threshold, 0.9);
  EXPECT_FALSE(s.options.editing_threshold);
  EXPECT_FALSE(s.options.levenshtein.editing_threshold);
  s = parse_call_json(nlohmann::ordered_json::parse(R"({"threshold": null, "editing_threshold": 0.25})"));
  EXPECT_EQ(s.options.levenshtein.threshold, 0.5);
  EXPECT_EQ(s.options.levenshtein.editing_threshold, 0.25);
  EXPECT_EQ(s.options.decoding, Decoding::Auto);
  EXPECT_THROW(parse_call_json(nlohmann::ordered_json::parse(R"({"decoding": "llada3"})")), InputError);
}

TEST(Llada22Pipeline, GenerateCliPicksTheDecoding) {
  const std::string model = " --model " + llada22_model_dir() +
                            " --input-ids 35,55,4,256,60 --gen-length 11 "
                            "--block-length 8 --seed 1 --json";
  std::string out, err;
  ASSERT_EQ(run_cli("generate" + model, &out, &err), 0) << err;
  const nlohmann::json j22 = nlohmann::json::parse(out);
  EXPECT_EQ(j22["sequences"][0].size(), 11u);

  // The same call in the library.
  GenerateOptions o;
  o.input_ids = IdTensor::from_rows({{35, 55, 4, 256, 60}});
  o.gen_length = 11;
  o.block_length = 8;
  o.seed = 1;
  PipelineOutput lib = Pipeline(tiny22_model())(o);
  EXPECT_EQ(j22["sequences"][0].get<std::vector<int64_t>>(), lib.sequences.data);

  ASSERT_EQ(run_cli("generate" + model + " --decoding llada2.1 --editing-threshold none", &out, &err), 0) << err;
  o.decoding = Decoding::Llada21;
  o.editing_threshold = std::nullopt;
  EXPECT_EQ(nlohmann::json::parse(out)["sequences"][0].get<std::vector<int64_t>>(),
            Pipeline(tiny22_model())(o).sequences.data);

  EXPECT_EQ(run_cli("generate" + model + " --decoding fast", &out, &err), 2);
  EXPECT_NE(err.find("`decoding` must be one of"), std::string::npos) << err;
  ASSERT_EQ(run_cli("generate --help", &out, &err), 0);
  EXPECT_NE(out.find("--decoding"), std::string::npos);
}

}  // namespace
}  // namespace llada2::testing
