// Exact reuse of a conversation's keys and values (llada2/prefix_cache.h): a call that starts from an
// earlier call's cached prefix returns the same tokens as the call computed from scratch, over
// multi-turn conversations of the demo model (editing on and off, both arithmetic modes) and in
// batches; the rules of what may be reused; the bounded store.
#include <gtest/gtest.h>

#include <random>

#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "llada2/prefix_cache.h"
#include "server_test_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

using ojson = nlohmann::ordered_json;

const Pipeline& demo() {
  static const Pipeline p = Pipeline::from_pretrained(data_path("../../models/llada2-demo"));
  return p;
}

GenerateOptions chat_options(const ojson& messages, double threshold, std::optional<double> editing) {
  GenerateOptions o;
  o.messages = messages;
  o.gen_length = 48;
  o.block_length = 16;
  o.num_inference_steps = 16;
  o.threshold = threshold;
  o.editing_threshold = editing;
  o.keep_prefixes = true;
  return o;
}

// A conversation of `turns` questions. Each turn runs twice, from scratch and from the cached
// prefix of the turn before; both must give the same tokens, and the reuse must cover most of the
// conversation so far.
void conversation(double threshold, std::optional<double> editing, bool exact) {
  const ArithmeticMode mode(exact);
  const std::vector<std::string> questions = {"What is 4821 + 739?", "What is 52 * 17?",
                                              "Sort these numbers: 42, 7, 19, 88, 3, 56", "What is 9120 - 4587?",
                                              "What is 31 * 64?"};
  ojson messages = ojson::array();
  std::shared_ptr<const CachedPrefix> cached;
  for (size_t turn = 0; turn < questions.size(); ++turn) {
    messages.push_back({{"role", "user"}, {"content", questions[turn]}});
    GenerateOptions fresh = chat_options(messages, threshold, editing);
    const PipelineOutput want = demo()(fresh);
    GenerateOptions reused = fresh;
    if (cached) reused.reuse_prefixes = {cached};
    const PipelineOutput got = demo()(reused);
    ASSERT_EQ(got.sequences.data, want.sequences.data) << "turn " << turn + 1;
    ASSERT_EQ(*got.texts, *want.texts);
    EXPECT_EQ(want.stats.reused_positions, 0);
    if (turn > 0) {
      const int64_t P = demo().resolve(fresh).prompt_length();
      EXPECT_GT(got.stats.reused_positions, 0) << "turn " << turn + 1;
      // Everything but the last answer's re-tokenised tail and the new question is reused.
      EXPECT_GE(got.stats.reused_positions, P / 2) << "turn " << turn + 1 << ", prompt " << P;
      EXPECT_LT(got.stats.forwards, want.stats.forwards + 1);
    }
    ASSERT_EQ(got.prefixes.size(), 1u);
    ASSERT_TRUE(got.prefixes[0]);
    cached = got.prefixes[0];
    EXPECT_EQ(cached->length() % 16, 0);
    messages.push_back({{"role", "assistant"}, {"content", (*got.texts)[0]}});
  }
}

TEST(PrefixReuse, ConversationIsTokenIdentical) { conversation(0.7, std::nullopt, false); }
TEST(PrefixReuse, ConversationWithEditingIsTokenIdentical) { conversation(0.7, 0.5, false); }
TEST(PrefixReuse, ConversationInExactModeIsTokenIdentical) { conversation(0.95, 0.5, true); }

// Two rows of different conversations (random ids on the tiny model), both continued: the batch with
// reuse equals the batch without it; a batch where one row has no entry computes everything.
TEST(PrefixReuse, BatchesAreTokenIdentical) {
  const Pipeline pipe(golden_model("models/tiny-a-f32"));  // two key/value heads
  const int64_t V = pipe.model().config().vocab_size;
  std::mt19937 rng(5);
  auto random_ids = [&](size_t n) {
    std::vector<int64_t> v(n);
    for (auto& x : v) x = int64_t(rng() % uint32_t(V - 8));
    return v;
  };
  GenerateOptions first;
  first.input_ids = IdTensor::from_rows({random_ids(21), random_ids(21)});
  first.gen_length = 24;
  first.block_length = 8;
  first.num_inference_steps = 8;
  first.mask_token_id = V - 1;
  first.eos_early_stop = false;
  first.editing_threshold = 0.5;
  first.use_chat_template = false;
  first.keep_prefixes = true;
  const PipelineOutput one = pipe(first);
  ASSERT_EQ(one.prefixes.size(), 2u);
  ASSERT_TRUE(one.prefixes[0] && one.prefixes[1]);
  EXPECT_EQ(one.prefixes[0]->length(), 40);  // blocks 0..4 of 6: the last block is refined, not cached

  // Each row continues its own canvas with 11 new ids.
  std::vector<std::vector<int64_t>> next;
  for (int b = 0; b < 2; ++b) {
    std::vector<int64_t> row = one.prefixes[size_t(b)]->tokens;
    for (int64_t t : random_ids(11)) row.push_back(t);
    next.push_back(row);
  }
  GenerateOptions second = first;
  second.input_ids = IdTensor::from_rows(next);
  const PipelineOutput want = pipe(second);
  second.reuse_prefixes = one.prefixes;
  const PipelineOutput got = pipe(second);
  EXPECT_EQ(got.stats.reused_positions, 40);  // all that was cached: 5 blocks of the 6 whole blocks of the prompt
  EXPECT_EQ(got.sequences.data, want.sequences.data);
  second.reuse_prefixes = {one.prefixes[0], nullptr};
  const PipelineOutput partial = pipe(second);
  EXPECT_EQ(partial.stats.reused_positions, 0);
  EXPECT_EQ(partial.sequences.data, want.sequences.data);
  second.reuse_prefixes = {one.prefixes[0]};
  EXPECT_THROW(pipe(second), InputError);
}

// The server keeps conversations: each turn of a chat, sent with the history so far, gets the answer
// a server without the cache gives, and /health counts the reuse.
TEST(PrefixReuse, ServerConversationIsTokenIdentical) {
  ServerOptions with;
  auto cached = start_server(with);
  ServerOptions without;
  without.prefix_cache_bytes = 0;
  auto plain = start_server(without);
  nlohmann::json messages = nlohmann::json::array();
  for (int turn = 0; turn < 4; ++turn) {
    messages.push_back({{"role", "user"}, {"content", "Turn " + std::to_string(turn) + ": tell me more."}});
    nlohmann::json body = small({{"messages", messages}});
    body["max_tokens"] = 24;
    body["editing_threshold"] = 0.5;
    body["temperature"] = 0;
    const Reply a = post(*cached, "/v1/chat/completions", body);
    const Reply b = post(*plain, "/v1/chat/completions", body);
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_EQ(b.status, 200) << b.body;
    const std::string text = a.body["choices"][0]["message"]["content"];
    EXPECT_EQ(text, b.body["choices"][0]["message"]["content"]) << "turn " << turn;
    messages.push_back({{"role", "assistant"}, {"content", text}});
  }
  auto health = [](const Server& s) {
    auto r = client(s).Get("/health");
    return nlohmann::json::parse(r->body)["prefix_cache"];
  };
  const nlohmann::json h = health(*cached);
  EXPECT_EQ(h["enabled"], true);
  EXPECT_EQ(h["lookups"], 4);
  EXPECT_EQ(h["hits"], 3);  // every turn after the first
  EXPECT_GT(h["reused_tokens"].get<int64_t>(), 3 * 8);
  EXPECT_GE(h["entries"].get<int64_t>(), 1);
  EXPECT_GT(h["bytes"].get<int64_t>(), 0);
  EXPECT_EQ(h["max_bytes"], int64_t(1) << 30);
  const nlohmann::json off = health(*plain);
  EXPECT_EQ(off["enabled"], false);
  EXPECT_EQ(off["lookups"], 0);
}

CachedPrefix prefix_of(const Model& m, std::vector<int64_t> tokens, int64_t K) {
  CachedPrefix c;
  c.model = &m;
  c.block_length = K;
  c.arithmetic = arithmetic_mode();
  c.tokens = std::move(tokens);
  c.heads = 2;
  c.head_dim = 2;
  c.k.assign(2, std::vector<uint8_t>(c.tokens.size() * 4 * sizeof(float)));
  c.v = c.k;
  return c;
}

TEST(PrefixReuse, ReusableLengthRules) {
  const auto m = golden_model("models/tiny-b-f32");
  const auto other = golden_model("models/tiny-a-f32");
  std::vector<int64_t> t(32);
  for (size_t i = 0; i < t.size(); ++i) t[i] = int64_t(i + 1);
  const CachedPrefix c = prefix_of(*m, t, 8);
  std::vector<int64_t> p = t;
  p.push_back(99);
  EXPECT_EQ(reusable_length(c, *m, 8, p.data(), 33), 32);
  EXPECT_EQ(reusable_length(c, *m, 8, p.data(), 31), 24);  // never the block of the prompt's last token
  p[19] = 0;                                               // differs in block 2
  EXPECT_EQ(reusable_length(c, *m, 8, p.data(), 33), 16);
  p[0] = 0;
  EXPECT_EQ(reusable_length(c, *m, 8, p.data(), 33), 0);
  p = t;
  p.push_back(99);
  EXPECT_EQ(reusable_length(c, *m, 16, p.data(), 33), 0);     // another block length
  EXPECT_EQ(reusable_length(c, *other, 8, p.data(), 33), 0);  // another model
  {
    const ArithmeticMode mode(c.arithmetic != 0);  // the other arithmetic mode
    EXPECT_EQ(reusable_length(c, *m, 8, p.data(), 33), 0);
  }
  EXPECT_EQ(reusable_length(c, *m, 8, p.data(), 33), 32);
}

TEST(PrefixReuse, StoreKeepsTheLongestAndEvictsTheLeastRecentlyUsed) {
  const auto m = golden_model("models/tiny-b-f32");
  auto make = [&](std::vector<int64_t> t) { return std::make_shared<const CachedPrefix>(prefix_of(*m, t, 4)); };
  const size_t each = make({1, 2, 3, 4, 5, 6, 7, 8})->bytes();
  PrefixCache cache(10 * each, 3);
  cache.insert(make({1, 2, 3, 4, 5, 6, 7, 8}));
  cache.insert(make({1, 2, 3, 4, 9, 9, 9, 9}));
  cache.insert(make({5, 5, 5, 5, 6, 6, 6, 6}));
  EXPECT_EQ(cache.stats().entries, 3);
  EXPECT_EQ(cache.stats().bytes, 3 * each);
  // The longest match wins and becomes the most recently used.
  const std::vector<int64_t> q = {1, 2, 3, 4, 9, 9, 9, 9, 0};
  auto hit = cache.lookup(*m, 4, q.data(), int64_t(q.size()));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->tokens[4], 9);
  EXPECT_FALSE(cache.lookup(*m, 4, std::vector<int64_t>{7, 7, 7, 7, 7}.data(), 5));
  // A fourth entry passes max_entries and pushes out the least recently used ({1..8}: {5,...} was
  // inserted after it).
  cache.insert(make({8, 8, 8, 8, 8, 8, 8, 8}));
  EXPECT_EQ(cache.stats().entries, 3);
  EXPECT_EQ(cache.stats().evictions, 1);
  const std::vector<int64_t> q1 = {1, 2, 3, 4, 5, 6, 7, 8, 0};
  auto shorter = cache.lookup(*m, 4, q1.data(), int64_t(q1.size()));
  ASSERT_TRUE(shorter);  // {1,2,3,4,9,...} still serves its first block
  EXPECT_EQ(reusable_length(*shorter, *m, 4, q1.data(), 9), 4);
  // A longer conversation replaces the entry it extends.
  cache.insert(make({5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7}));
  EXPECT_EQ(cache.stats().entries, 3);
  EXPECT_EQ(cache.stats().evictions, 1);
  // The byte cap: a third entry pushes out the first.
  PrefixCache small(2 * each);
  small.insert(make({1, 1, 1, 1}));
  small.insert(make({2, 2, 2, 2, 2, 2, 2, 2}));
  small.insert(make({3, 3, 3, 3, 3, 3, 3, 3}));
  EXPECT_EQ(small.stats().entries, 2);
  EXPECT_LE(small.stats().bytes, 2 * each);
  EXPECT_EQ(small.stats().evictions, 1);
  // An entry larger than the cap is not kept.
  PrefixCache tiny(each / 2);
  tiny.insert(make({1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(tiny.stats().entries, 0);
  cache.count(3, 2, 40);
  EXPECT_EQ(cache.stats().lookups, 3);
  EXPECT_EQ(cache.stats().hits, 2);
  EXPECT_EQ(cache.stats().reused_tokens, 40);
}

}  // namespace
}  // namespace llada2::testing
