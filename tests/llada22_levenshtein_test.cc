// LLaDA2.2's decoding of a block, rule by rule (docs/llada22.md) on hand-made logits: the fill
// schedule (with new masks), substitutions, deletions and splits (at the block end too), truncation and
// padding, the final round's bans, the anti-loop with the seeded generator, post steps and the end.
#include <gtest/gtest.h>

#include <cmath>

#include "pipeline/levenshtein.h"

namespace llada2 {
namespace {

constexpr int64_t V = 12, M = 11, DEL = 9, SPL = 10;

LevenshteinParams params(int64_t steps = 32, double threshold = 0.5, std::optional<double> editing = 0.0,
                         int64_t max_post = 16) {
  LevenshteinParams p;
  p.steps = steps;
  p.threshold = threshold;
  p.editing_threshold = editing;
  p.max_post_steps = max_post;
  p.mask_id = M;
  p.delete_id = DEL;
  p.split_id = SPL;
  return p;
}

// Logits [K, V], zero but for the tokens given per row.
struct Logits {
  int64_t K;
  std::vector<float> v;
  explicit Logits(int64_t k) : K(k), v(size_t(k * V), 0.f) {}
  Logits& set(int64_t j, int64_t tok, float logit) {
    v[size_t(j * V + tok)] = logit;
    return *this;
  }
  float prob(int64_t j, int64_t tok) const {
    float s = 0.f;
    for (int64_t t = 0; t < V; ++t) s += std::exp(v[size_t(j * V + t)]);
    return std::exp(v[size_t(j * V + tok)]) / s;
  }
};

LevenshteinBlock block(std::vector<int64_t> at_entry) {
  return LevenshteinBlock::enter(at_entry.data(), int64_t(at_entry.size()), M);
}

std::vector<uint8_t> flags(std::initializer_list<int> v) { return std::vector<uint8_t>(v.begin(), v.end()); }

TEST(Levenshtein, EnterMarksPromptAndOriginalMasks) {
  LevenshteinBlock b = block({5, 6, M, M});
  EXPECT_EQ(b.prompt, flags({1, 1, 0, 0}));
  EXPECT_EQ(b.added, flags({0, 0, 0, 0}));
  EXPECT_EQ(b.initial, 2);
  EXPECT_EQ(b.original_masks(M), 2);
  EXPECT_EQ(b.new_masks(M), 0);
}

TEST(Levenshtein, ScheduleTakesTheTopNeedWhenTooFewPassTheThreshold) {
  LevenshteinBlock b = block(std::vector<int64_t>(8, M));
  Logits L(8);
  const float logit[8] = {1, 3, 2, 3, 0.5f, 1, 1, 0.25f};
  for (int64_t j = 0; j < 8; ++j) L.set(j, j, logit[j]);  // every confidence below 0.9
  Rng rng(1);
  // 8 masks over 4 steps: 2 per step; equal confidences go to the lower position.
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(4, 0.9), rng);
  EXPECT_EQ(st.filled, flags({0, 1, 0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{M, 1, M, 3, M, M, M, M}));
  EXPECT_EQ(b.step, 1);
  EXPECT_FLOAT_EQ(st.confidence[1], L.prob(1, 1));
  // Next step: the two best of the rest (2, then 0 before 5 and 6).
  st = levenshtein_step(b, L.v.data(), V, params(4, 0.9), rng);
  EXPECT_EQ(st.filled, flags({1, 0, 1, 0, 0, 0, 0, 0}));
  // 10 original masks over 4 steps: 3, 3, 2, 2 (the remainder first).
  for (int64_t step = 0; step < 4; ++step) {
    LevenshteinBlock c = block(std::vector<int64_t>(10, M));
    c.step = step;
    Logits L10(10);
    st = levenshtein_step(c, L10.v.data(), V, params(4, 0.9), rng);
    EXPECT_EQ(std::count(st.filled.begin(), st.filled.end(), 1), step < 2 ? 3 : 2) << step;
  }
}

TEST(Levenshtein, ThresholdFillsEveryConfidentMaskWhenEnough) {
  Logits L(6);
  L.set(1, 1, 5).set(2, 2, 4).set(3, 3, 4.5f).set(4, 4, 1).set(5, 5, 0.5f);  // 1-3 above 0.5
  Rng rng(1);
  LevenshteinBlock b = block({7, M, M, M, M, M});
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(5, 0.5), rng);  // need 1
  EXPECT_EQ(st.filled, flags({0, 1, 1, 1, 0, 0}));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{7, 1, 2, 3, M, M}));
  // Threshold 0.97: none passes, so the schedule's top 1.
  LevenshteinBlock c = block({7, M, M, M, M, M});
  st = levenshtein_step(c, L.v.data(), V, params(5, 0.97), rng);
  EXPECT_EQ(st.filled, flags({0, 1, 0, 0, 0, 0}));
}

TEST(Levenshtein, NewMasksGrowTheSchedule) {
  // 6 original masks over 6 steps (1 per step) plus 2 new masks: 3 fills.
  LevenshteinBlock b = block(std::vector<int64_t>(8, M));
  b.added = flags({0, 0, 0, 0, 0, 0, 1, 1});
  b.initial = 6;
  Logits L(8);
  for (int64_t j = 0; j < 8; ++j) L.set(j, j, float(8 - j) / 4);
  Rng rng(1);
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(6, 0.99), rng);
  EXPECT_EQ(st.filled, flags({1, 1, 1, 0, 0, 0, 0, 0}));
  // Past the schedule every mask is filled, whatever its confidence.
  LevenshteinBlock c = block(std::vector<int64_t>(8, M));
  c.step = 6;
  st = levenshtein_step(c, L.v.data(), V, params(6, 0.99), rng);
  EXPECT_EQ(st.filled, flags({1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(c.masks(M), 0);
}

TEST(Levenshtein, SubstitutionsTakeTheGreedyPickAboveTheEditingThreshold) {
  LevenshteinBlock b = block({5, M, M, M});
  b.cells = {5, 3, 4, M};  // cells 1 and 2 were filled earlier
  Logits L(4);
  L.set(0, 7, 6).set(1, 8, 5).set(2, 6, 0.5f).set(3, 2, 5);
  Rng rng(1);
  LevenshteinBlock c = b;
  LevenshteinStep st = levenshtein_step(c, L.v.data(), V, params(4, 0.5, 0.5), rng);
  EXPECT_EQ(st.edited, flags({0, 1, 0, 0}));  // the prompt cell never; cell 2's confidence is low
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, 8, 4, 2}));
  c = b;
  st = levenshtein_step(c, L.v.data(), V, params(4, 0.5, 0.0), rng);  // the default: any change
  EXPECT_EQ(st.edited, flags({0, 1, 1, 0}));
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, 8, 6, 2}));
  c = b;
  st = levenshtein_step(c, L.v.data(), V, params(4, 0.5, std::nullopt), rng);  // None: no substitutions
  EXPECT_EQ(st.edited, flags({0, 0, 0, 0}));
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, 3, 4, 2}));
}

TEST(Levenshtein, DeletionDropsTheCellAndPadsWithANewMask) {
  LevenshteinBlock b = block({5, M, M, M});
  Logits L(4);
  L.set(1, DEL, 5).set(2, 2, 5).set(3, 3, 5);
  Rng rng(1);
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(1), rng);
  EXPECT_EQ(st.written, (std::vector<int64_t>{5, DEL, 2, 3}));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{5, 2, 3, M}));
  EXPECT_EQ(b.prompt, flags({1, 0, 0, 0}));
  EXPECT_EQ(b.added, flags({0, 0, 0, 1}));
  EXPECT_EQ(b.original_masks(M), 0);
  EXPECT_EQ(b.new_masks(M), 1);
  EXPECT_TRUE(st.changed);
}

TEST(Levenshtein, SplitPutsANewMaskBeforeTheOldTokenAndTruncates) {
  Logits L(4);
  L.set(0, 0, 5).set(1, SPL, 5).set(2, 4, 5).set(3, 6, 5);
  Rng rng(1);
  LevenshteinBlock b = block({5, M, M, M});
  b.cells = {5, 3, 4, 6};
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(), rng);
  EXPECT_EQ(st.edited, flags({0, 1, 0, 0}));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{5, M, 3, 4}));  // 6 falls off the end
  EXPECT_EQ(b.added, flags({0, 1, 0, 0}));
  EXPECT_EQ(b.new_masks(M), 1);

  // At the block end: the new mask takes the last cell and the old token is cut.
  Logits E(4);
  E.set(0, 0, 5).set(1, 3, 5).set(2, 4, 5).set(3, SPL, 5);
  LevenshteinBlock c = block({5, M, M, M});
  c.cells = {5, 3, 4, 6};
  levenshtein_step(c, E.v.data(), V, params(), rng);
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, 3, 4, M}));
  EXPECT_EQ(c.added, flags({0, 0, 0, 1}));

  // A fill that picks SPLIT: a new mask, then the cell's own (original) mask.
  Logits F(4);
  F.set(1, SPL, 5).set(2, 2, 5).set(3, 3, 5);
  LevenshteinBlock d = block({5, M, M, M});
  levenshtein_step(d, F.v.data(), V, params(1), rng);
  EXPECT_EQ(d.cells, (std::vector<int64_t>{5, M, M, 2}));
  EXPECT_EQ(d.added, flags({0, 1, 0, 0}));
  EXPECT_EQ(d.original_masks(M), 1);
}

// What live views show: the positions, in the block after the iteration, of the masks splits
// inserted and of the cells that follow a deleted one.
TEST(Levenshtein, BlockEditsLocateDeletionsAndInsertions) {
  auto edits = [](const LevenshteinStep& st) {
    const std::vector<int64_t> f(st.filled.begin(), st.filled.end()), e(st.edited.begin(), st.edited.end());
    return block_edits(st.written.data(), f.data(), e.data(), int64_t(st.written.size()), DEL, SPL);
  };
  // Cells 5 3 4 6 2: 3 is deleted, 4 split, 2 deleted at the end.
  Logits L(5);
  L.set(0, 0, 5).set(1, DEL, 5).set(2, SPL, 5).set(3, 6, 5).set(4, DEL, 5);
  Rng rng(1);
  LevenshteinBlock b = block({5, M, M, M, M});
  b.cells = {5, 3, 4, 6, 2};
  BlockEdits e = edits(levenshtein_step(b, L.v.data(), V, params(), rng));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{5, M, 4, 6, M}));
  EXPECT_EQ(e.deleted, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(e.inserted, (std::vector<int64_t>{1}));
  // A split whose old token falls off the end, and one that falls off entirely.
  Logits S(4);
  S.set(0, 0, 5).set(1, 3, 5).set(2, SPL, 5).set(3, SPL, 5);
  LevenshteinBlock c = block({5, M, M, M});
  c.cells = {5, 3, 4, 6};
  e = edits(levenshtein_step(c, S.v.data(), V, params(), rng));
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, 3, M, 4}));
  EXPECT_EQ(e.inserted, (std::vector<int64_t>{2}));
  EXPECT_TRUE(e.deleted.empty());
  // Without edit ids (the LLaDA2.1 rules) there is nothing to find.
  const std::vector<int64_t> w = {DEL, SPL}, one = {1, 1};
  EXPECT_TRUE(block_edits(w.data(), one.data(), one.data(), 2, std::nullopt, std::nullopt).deleted.empty());
}

TEST(Levenshtein, FinalRoundFillsEveryMaskAndBansDeleteAndSplit) {
  Logits L(4);
  L.set(1, DEL, 6).set(1, 7, 5);  // a substitution to DELETE, 7 next
  L.set(2, SPL, 6).set(2, 8, 5);  // a fill with SPLIT, 8 next
  L.set(3, 4, 6);
  Rng rng(1);
  LevenshteinBlock b = block({5, M, M, M});
  b.cells = {5, 3, M, 4};
  b.post = 2;  // post >= max_post_steps
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(32, 0.99, 0.0, 2), rng);
  EXPECT_TRUE(st.final_round);
  EXPECT_EQ(st.filled, flags({0, 0, 1, 0}));  // below the threshold, filled all the same
  EXPECT_EQ(st.edited, flags({0, 1, 0, 0}));
  EXPECT_EQ(st.written, (std::vector<int64_t>{5, 7, 8, 4}));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{5, 7, 8, 4}));
  // Before the final round the same picks delete and split.
  LevenshteinBlock c = block({5, M, M, M});
  c.cells = {5, 3, M, 4};
  c.post = 1;
  st = levenshtein_step(c, L.v.data(), V, params(32, 0.5, 0.0, 2), rng);
  EXPECT_FALSE(st.final_round);
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, M, M, 4}));
}

TEST(Levenshtein, WithNoPostStepsTheStepThatFillsTheLastOriginalMaskIsFinal) {
  Logits L(4);
  L.set(1, SPL, 7).set(1, 8, 5).set(2, 2, 2).set(3, 3, 2);  // SPLIT is the most confident pick
  Rng rng(1);
  LevenshteinBlock b = block({5, M, M, M});
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(1, 0.5, 0.0, 0), rng);
  EXPECT_TRUE(st.final_round);
  EXPECT_EQ(b.cells, (std::vector<int64_t>{5, 8, 2, 3}));
  // A step that leaves an original mask is not final: the split stands.
  LevenshteinBlock c = block({5, M, M, M});
  st = levenshtein_step(c, L.v.data(), V, params(3, 0.99, 0.0, 0), rng);  // need 1: cell 1
  EXPECT_FALSE(st.final_round);
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, M, M, M}));
  EXPECT_EQ(c.added, flags({0, 1, 0, 0}));
}

TEST(Levenshtein, PostStepsCountAndEndTheBlock) {
  LevenshteinParams p = params(32, 0.5, 0.0, 1);
  LevenshteinBlock b = block({5, M, M, M});
  EXPECT_TRUE(begin_iteration(b, p));
  EXPECT_EQ(b.post, 0);
  b.cells = {5, 3, 4, 6};  // every original mask filled
  EXPECT_TRUE(begin_iteration(b, p));
  EXPECT_EQ(b.post, 1);
  EXPECT_FALSE(begin_iteration(b, p));  // post 2 > 1 and no mask: stop before the forward
  EXPECT_TRUE(b.ended);
  // New masks keep the block going: post counts, but masks remain.
  LevenshteinBlock c = block({5, M, M, M});
  c.cells = {5, M, 4, 6};
  c.added = flags({0, 1, 0, 0});
  for (int i = 1; i <= 4; ++i) {
    EXPECT_TRUE(begin_iteration(c, p));
    EXPECT_EQ(c.post, i);
  }
  // At most max_iterations iterations.
  LevenshteinBlock d = block({5, M, M, M});
  p.max_iterations = 3;
  d.step = 3;
  EXPECT_FALSE(begin_iteration(d, p));
  EXPECT_TRUE(d.ended);
}

TEST(Levenshtein, BlockEndsWhenAnIterationChangesNothingWithoutMasks) {
  Logits L(3);
  L.set(0, 5, 5).set(1, 3, 5).set(2, 4, 5);
  Rng rng(1);
  LevenshteinBlock b = block({5, M, M});
  b.cells = {5, 3, 4};
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(), rng);
  EXPECT_FALSE(st.changed);
  EXPECT_TRUE(b.ended);
  // A change keeps it going.
  L.set(2, 6, 6);
  LevenshteinBlock c = block({5, M, M});
  c.cells = {5, 3, 4};
  st = levenshtein_step(c, L.v.data(), V, params(), rng);
  EXPECT_TRUE(st.changed);
  EXPECT_FALSE(c.ended);
}

TEST(Levenshtein, AntiLoopRepicksARandomChangedCellWithTheSeededGenerator) {
  Logits L(4);
  L.set(1, 1, 6).set(1, 6, 5).set(2, 2, 6).set(2, 7, 5).set(3, 3, 6).set(3, 8, 5);
  const std::vector<int64_t> first = {5, 1, 2, 3};
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u, 6u}) {
    LevenshteinBlock b = block({5, M, M, M});
    b.seen.insert(first);
    Rng rng(seed), twin(seed);
    LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(1), rng);
    // Greedy picks draw nothing: the first draw chooses among the changed cells 1, 2, 3.
    const int64_t cell = 1 + int64_t(twin.uniform() * 3);
    std::vector<int64_t> want = first;
    want[size_t(cell)] += 5;  // its second best
    EXPECT_EQ(st.written, want) << seed;
    EXPECT_EQ(b.cells, want);
    EXPECT_EQ(b.seen.size(), 2u);
    EXPECT_TRUE(b.seen.count(want));
    EXPECT_EQ(rng.next(), twin.next()) << "one draw";
  }
}

TEST(Levenshtein, AntiLoopTriesAtMostFiveTimesAndRecordsWhatItWrote) {
  Logits L(4);
  for (int64_t t = 0; t < 7; ++t) L.set(3, t, float(7 - t));  // cell 3's picks in order: 0, 1, ..., 6
  auto seen_until = [&](int64_t last) {
    LevenshteinBlock b = block({5, 6, 7, M});
    for (int64_t t = 0; t <= last; ++t) b.seen.insert({5, 6, 7, t});
    return b;
  };
  Rng rng(3);
  LevenshteinBlock b = seen_until(2);
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(), rng);
  EXPECT_EQ(st.written, (std::vector<int64_t>{5, 6, 7, 3}));  // the first unseen
  EXPECT_EQ(b.seen.size(), 4u);
  b = seen_until(5);
  st = levenshtein_step(b, L.v.data(), V, params(), rng);
  EXPECT_EQ(st.written, (std::vector<int64_t>{5, 6, 7, 5}));  // five tries: 0 -> 5, still seen
  EXPECT_EQ(b.seen.size(), 6u);
  // Not in the final round, and nothing is recorded when nothing was written.
  b = seen_until(0);
  b.post = 16;
  b.cells = {5, 6, 7, M};
  st = levenshtein_step(b, L.v.data(), V, params(), rng);
  EXPECT_TRUE(st.final_round);
  EXPECT_EQ(st.written, (std::vector<int64_t>{5, 6, 7, 0}));
  EXPECT_EQ(b.seen.size(), 1u);
  LevenshteinBlock quiet = block({5, 6, 7});
  Logits Q(3);
  Q.set(0, 5, 5).set(1, 6, 5).set(2, 7, 5);
  levenshtein_step(quiet, Q.v.data(), V, params(), rng);
  EXPECT_TRUE(quiet.seen.empty());
}

TEST(Levenshtein, PicksIncludeTheMaskIdUnlessAskedNotTo) {
  Logits L(2);
  L.set(1, M, 6).set(1, 4, 5);
  Rng rng(1);
  LevenshteinBlock b = block({5, M});
  LevenshteinStep st = levenshtein_step(b, L.v.data(), V, params(1), rng);
  EXPECT_EQ(st.filled, flags({0, 1}));
  EXPECT_EQ(b.cells, (std::vector<int64_t>{5, M}));  // filled with the mask id: still a mask
  EXPECT_FALSE(st.changed);
  EXPECT_FALSE(b.ended);
  LevenshteinParams p = params(1);
  p.mask_in_argmax = false;
  LevenshteinBlock c = block({5, M});
  st = levenshtein_step(c, L.v.data(), V, p, rng);
  EXPECT_EQ(c.cells, (std::vector<int64_t>{5, 4}));
  EXPECT_FLOAT_EQ(st.confidence[1], std::exp(5.f) / (std::exp(5.f) + 10.f));  // the mask id left out
}

TEST(Levenshtein, FillsAreSampledAndSubstitutionsGreedy) {
  Logits L(4);
  for (int64_t t = 0; t < 8; ++t) L.set(1, t, 0.3f * float(t)).set(2, t, 0.2f * float(8 - t));
  L.set(3, 8, 1.0f).set(3, 2, 0.8f);  // a substitution: 8 is the argmax, not certain
  LevenshteinParams p = params(1);
  p.sampling.temperature = 1.0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    LevenshteinBlock b = block({5, M, M, M});
    b.cells = {5, M, M, 4};
    Rng rng(seed), twin(seed);
    LevenshteinStep st = levenshtein_step(b, L.v.data(), V, p, rng);
    std::vector<int64_t> tok(4, -1);
    std::vector<float> conf(4, 0.f);
    const std::vector<uint8_t> masks = flags({0, 1, 1, 0});
    sample_tokens(L.v.data(), 4, V, p.sampling, &twin, tok.data(), conf.data(), masks.data());
    EXPECT_EQ(st.written, (std::vector<int64_t>{5, tok[1], tok[2], 8})) << seed;
    EXPECT_FLOAT_EQ(st.confidence[1], conf[1]);
  }
}

}  // namespace
}  // namespace llada2
