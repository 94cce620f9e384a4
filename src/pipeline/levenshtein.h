// LLaDA2.2's decoding (Levenshtein editing; docs/llada22.md). The rules of one iteration act on one
// row's active block, as functions of its state and its logits; run_levenshtein strings them into
// the block loop of a pipeline call.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "llada2/pipeline.h"
#include "llada2/rng.h"
#include "llada2/scheduler.h"

namespace llada2 {

struct LevenshteinParams {
  int64_t steps = 32;  // the fill schedule's length
  double threshold = 0.5;
  std::optional<double> editing_threshold = 0.0;  // None: no substitutions
  int64_t max_post_steps = 16;
  int64_t max_iterations = 1000;
  int64_t mask_id = 0;
  std::optional<int64_t> delete_id, split_id;
  bool mask_in_argmax = true;
  SamplingParams sampling;

  static LevenshteinParams from_call(const ResolvedCall& call);
};

// One row's active block while it is decoded. Its cells keep the block's length K: deletions and
// splits shift cells, and the block is truncated or padded with masks.
struct LevenshteinBlock {
  std::vector<int64_t> cells;           // [K]
  std::vector<uint8_t> prompt;          // cells that were not masks when the block started: never written
  std::vector<uint8_t> added;           // cells a split or the padding made: "new" masks while they are masks
  int64_t initial = 0;                  // masks when the block started ("original" masks)
  int64_t step = 0;                     // iterations run
  int64_t post = 0;                     // 0 while an original mask remains, then counts the iterations
  std::set<std::vector<int64_t>> seen;  // written blocks of earlier iterations (the anti-loop)
  bool ended = false;

  // The block as it enters decoding: masks are original, everything else is prompt.
  static LevenshteinBlock enter(const int64_t* cells, int64_t K, int64_t mask_id);
  int64_t masks(int64_t mask_id) const;
  int64_t original_masks(int64_t mask_id) const;
  int64_t new_masks(int64_t mask_id) const;
};

// What an iteration did, over the cells as they were before it.
struct LevenshteinStep {
  std::vector<uint8_t> filled, edited;  // cells written by the fill (masks) and by substitution
  std::vector<int64_t> written;         // the block with the writes, before deletions and splits
  std::vector<float> confidence;        // of each write (0 elsewhere)
  bool final_round = false;
  bool changed = false;  // the block differs after the iteration
};

// Rules 1 and 2, before the forward: counts post steps; returns false (and marks the block ended)
// when there is no mask and post > max_post_steps, or when max_iterations iterations have run.
bool begin_iteration(LevenshteinBlock& blk, const LevenshteinParams& p);

// Rules 3 to 8 after the forward, from the logits [K, V] of the block's cells: fill, substitute,
// final-round bans, anti-loop, deletions and splits; marks the block ended when nothing changed and
// no mask is left.
LevenshteinStep levenshtein_step(LevenshteinBlock& blk, const float* logits, int64_t V, const LevenshteinParams& p,
                                 Rng& rng);

// A pipeline call with the LLaDA2.2 rules (call.decoding == Llada22).
PipelineOutput run_levenshtein(const Model& model, const ResolvedCall& call, const Tokenizer* tokenizer);

}  // namespace llada2
