// The server on a LLaDA2.2 checkpoint (tiny-22 with a tokenizer): a request's decoding settings reach
// the LLaDA2.2 rules, and a request computes the same alone and batched with others.
#include <gtest/gtest.h>

#include <thread>

#include "llada2/pipeline.h"
#include "llada2/server.h"
#include "llada22_util.h"
#include "server/request.h"
#include "server_test_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

using json = nlohmann::json;

GenerateOptions parsed(json body, const ServerOptions& options = {}) {
  body["prompt"] = "Hello";
  return server::parse_completion_request(body, false, *tiny22_chat_pipeline(), options).gen;
}

TEST(Llada22Server, ThresholdsReachTheLlada22Rules) {
  // Absent: each rule keeps its defaults.
  GenerateOptions g = parsed(json::object());
  EXPECT_EQ(g.decoding, Decoding::Auto);
  EXPECT_EQ(g.threshold, 0.7);
  EXPECT_EQ(g.editing_threshold, 0.5);
  EXPECT_EQ(g.levenshtein.threshold, 0.5);
  EXPECT_EQ(g.levenshtein.editing_threshold, 0.0);
  // Numbers set both.
  g = parsed({{"threshold", 0.9}, {"editing_threshold", 0.25}});
  EXPECT_EQ(g.threshold, 0.9);
  EXPECT_EQ(g.levenshtein.threshold, 0.9);
  EXPECT_EQ(g.editing_threshold, 0.25);
  EXPECT_EQ(g.levenshtein.editing_threshold, 0.25);
  // null turns editing off under both rules: LLaDA2.1's edits only above a threshold > 0, LLaDA2.2's
  // substitutions are off only with None.
  g = parsed({{"editing_threshold", nullptr}});
  EXPECT_EQ(g.editing_threshold, 0.0);
  EXPECT_FALSE(g.levenshtein.editing_threshold);
  // The rules: the request's, else the server's.
  EXPECT_EQ(parsed({{"decoding", "llada2.1"}}).decoding, Decoding::Llada21);
  ServerOptions so;
  so.decoding = Decoding::Llada22;
  EXPECT_EQ(parsed(json::object(), so).decoding, Decoding::Llada22);
  EXPECT_EQ(parsed({{"decoding", "auto"}}, so).decoding, Decoding::Auto);
  for (const json& bad : {json("llada3"), json(2.2)}) {
    try {
      parsed({{"decoding", bad}});
      ADD_FAILURE() << bad;
    } catch (const server::ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, "decoding");
    }
  }
}

// The server's answer is the pipeline's with the same settings: editing_threshold null runs the
// LLaDA2.2 rules without substitutions, a number with them.
TEST(Llada22Server, AnswersAreThePipelines) {
  auto s = start_server({}, tiny22_chat_pipeline());
  const Pipeline& pipe = *tiny22_chat_pipeline();
  for (const json& editing : {json(nullptr), json(0.0), json(0.6)}) {
    json body = small({{"prompt", "one apple"}, {"temperature", 0}});
    body["editing_threshold"] = editing;
    body["threshold"] = 0.6;
    Reply r = post(*s, "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body["diffusion"]["decoding"], "llada2.2");

    GenerateOptions o;
    o.prompt = std::string("one apple");
    o.gen_length = 16;
    o.block_length = 8;
    o.num_inference_steps = 8;
    o.seed = 3;
    o.levenshtein.threshold = 0.6;
    o.levenshtein.editing_threshold = editing.is_null() ? std::nullopt : std::optional<double>(editing.get<double>());
    o.use_chat_template = false;
    const PipelineOutput out = pipe(o);
    EXPECT_EQ(r.body["choices"][0]["text"], (*out.texts)[0]) << editing;
  }
  {
    json body = small({{"prompt", "one apple"}, {"decoding", "llada2.1"}});
    Reply r = post(*s, "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body["diffusion"]["decoding"], "llada2.1");
  }
}

// A LLaDA2.2 request gives the same text alone and batched with another request (each row draws
// from its own generator, seeded from its request): greedy and sampled, seeded requests included.
TEST(Llada22Server, ARequestComputesTheSameAloneAndBatched) {
  Hold hold;
  auto s = start_server(held(hold, 1, 16), tiny22_chat_pipeline());
  const Tokenizer& tok = *tiny22_chat_pipeline()->tokenizer();
  std::vector<std::string> prompts;  // two prompts of one token length
  for (const char* a : {"one apple", "two apples", "red house", "blue river", "cat stone", "dog light"}) {
    if (prompts.empty() || tok.encode(a, true).size() == tok.encode(prompts[0], true).size()) prompts.push_back(a);
    if (prompts.size() == 2) break;
  }
  ASSERT_EQ(prompts.size(), 2u);
  for (double temperature : {0.0, 1.0}) {
    auto body = [&](size_t i) {
      json b = small({{"prompt", prompts[i]}, {"temperature", temperature}});
      b["seed"] = 3 + int(i);
      b["n"] = 2;
      return b;
    };
    hold.on = false;
    std::vector<json> alone;
    for (size_t i = 0; i < 2; ++i) {
      Reply r = post(*s, "/v1/completions", body(i));
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.body["diffusion"]["batch_rows"], 2);
      alone.push_back(r.body["choices"]);
    }
    hold.on = true;
    std::thread blocker = occupy_worker(*s);
    std::vector<Reply> replies(2);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < 2; ++i) threads.emplace_back([&, i] { replies[i] = post(*s, "/v1/completions", body(i)); });
    ASSERT_TRUE(wait_for([&] { return s->counters().queued == 2; }));
    hold.on = false;
    for (auto& t : threads) t.join();
    blocker.join();
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_EQ(replies[i].status, 200) << replies[i].body;
      EXPECT_EQ(replies[i].body["diffusion"]["batch_rows"], 4) << "seeded requests batch under the LLaDA2.2 rules";
      for (size_t c = 0; c < 2; ++c)
        EXPECT_EQ(replies[i].body["choices"][c]["text"], alone[i][c]["text"]) << temperature << " " << i << " " << c;
    }
  }
}

// Canvas events under the LLaDA2.2 rules carry the step's deletions and insertions as positions in
// `tokens`; the deltas still add up to the non-streaming text.
TEST(Llada22Server, CanvasEventsShowDeletionsAndInsertions) {
  auto pipe = std::make_shared<const Pipeline>(Pipeline::from_pretrained(tiny22_editing_model_dir()));
  auto s = start_server({}, pipe);
  const int64_t mask = *pipe->tokenizer()->mask_token_id();
  json body = small({{"prompt", "one apple"}, {"max_tokens", 24}});
  const Reply plain = post(*s, "/v1/completions", body);
  ASSERT_EQ(plain.status, 200) << plain.body;
  body["llada2_canvas"] = true;
  std::string text;
  int64_t deleted = 0, inserted = 0;
  for (const auto& e : stream(*s, "/v1/completions", body)) {
    if (e.data.empty() || e.data == "[DONE]") continue;
    const json j = json::parse(e.data);
    if (e.event != "canvas") {
      if (j.contains("choices") && !j["choices"].empty()) text += j["choices"][0].value("text", "");
      continue;
    }
    ASSERT_TRUE(j["deleted"].is_array() && j["inserted"].is_array()) << j;
    const std::vector<int64_t> tokens = j["tokens"];
    for (int64_t at : j["deleted"]) EXPECT_LE(at, int64_t(tokens.size()));
    for (int64_t at : j["inserted"]) {
      ASSERT_LT(at, int64_t(tokens.size()));
      EXPECT_EQ(tokens[size_t(at)], mask) << "an inserted cell is a mask";
    }
    deleted += int64_t(j["deleted"].size());
    inserted += int64_t(j["inserted"].size());
  }
  EXPECT_GT(deleted, 0);
  EXPECT_GT(inserted, 0);
  EXPECT_EQ(text, plain.body["choices"][0]["text"]);
}

}  // namespace
}  // namespace llada2::testing
