// What the block loops of pipeline.cc (LLaDA2.1 rules) and levenshtein_loop.cc (LLaDA2.2) share: the
// canvas, the forward of the active block (with the prefix cache), and the step callback.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llada2/pipeline.h"

namespace llada2 {

// Copies the first `cols` columns of every row.
Matrix<int64_t> left_columns(const Matrix<int64_t>& m, int64_t cols);

// A step's tensors for the callback (LoopState::call_back hands over those it asked for), over the
// active block's cells before the step.
struct StepTensors {
  const Matrix<int64_t>& window;          // block_x: the window after the step
  const Matrix<uint8_t>& transfer;        // masked cells written
  const Matrix<uint8_t>& editing;         // other cells written
  const Matrix<int64_t>& sampled_tokens;  // the picks
  const Matrix<float>& sampled_probs;     // their confidences
  const Matrix<uint8_t>& active;          // masked cells
};

// What both block loops hold: the call, its canvas [B, T] (the prompt, then mask ids up to whole
// blocks) and key mask (1 for the prompt's real tokens and the gen_length generated cells), the
// prefix cache, the rows that are finished, the logits of the last forward, and the counts.
class LoopState {
 protected:
  LoopState(const Model& model, const ResolvedCall& call);

  // Whether generation is over before the last block: a callback stopped it, or every row is
  // finished (with eos_early_stop).
  bool done() const;
  // The logits [B, K, V] of the active block (the last K cells of `window`, the canvas up to the
  // block's end) into logits_, for the cells `needed` marks. With the cache, it is first brought up
  // to the active block in block-aligned chunks, so that the forward computes only the blocks that
  // changed.
  void forward(const Matrix<int64_t>& window, const Matrix<int64_t>& wmask, const Matrix<uint8_t>& needed);
  // callback_on_step_end with the tensors it asked for; it may stop the generation or replace
  // `window` (checked against its shape; the cache then drops the blocks from the first changed cell
  // on). Returns whether it replaced the window.
  bool call_back(int64_t timestep, const StepTensors& t, Matrix<int64_t>& window);
  // The output both loops start from: the counts, the kept prefixes (keep_prefixes) and the canvas's
  // generated cells [B, gen_length].
  PipelineOutput output() const;
  // Per row, the cached keys and values of the final canvas with the tokens they hold
  // (GenerateOptions.keep_prefixes; null for a row with padding there, or without the cache).
  std::vector<std::shared_ptr<const CachedPrefix>> final_prefixes() const;

  const Model& model_;
  const ResolvedCall& call_;
  const GenerateOptions& o_;
  const int64_t B_, P_, K_, V_;
  const std::vector<std::string> cb_names_;  // the tensors the callback asks for
  const bool cached_;                        // block_causal with the prefix cache
  Matrix<int64_t> x_, key_mask_;
  KvCache cache_;
  std::vector<uint8_t> finished_;
  std::vector<float> logits_;
  int64_t global_step_ = 0;
  GenerationStats stats_;

 private:
  // The cache starts with the keys and values of the longest block-aligned prefix that every row
  // shares with its entry of GenerateOptions.reuse_prefixes (none if a row has no entry, or padding there).
  void start_from_prefixes();
};

}  // namespace llada2
