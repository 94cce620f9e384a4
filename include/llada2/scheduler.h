// BlockRefinementScheduler (diffusers v0.39/v0.40): turns the logits of the
// active block into commits of masked cells and edits of filled cells.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llada2/rng.h"
#include "llada2/types.h"

namespace llada2 {

struct SchedulerConfig {
  int64_t block_length = 32;
  int64_t num_inference_steps = 32;
  double threshold = 0.95;
  std::optional<double> editing_threshold;  // None: editing off
  int64_t minimal_topk = 1;
};

enum class SamplingMethod { Auto, Greedy, Multinomial };
// "auto" | "greedy" | "multinomial"; throws InputError (the original's message) otherwise.
SamplingMethod parse_sampling_method(const std::string& s);

struct SamplingParams {
  double temperature = 0.0;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  SamplingMethod method = SamplingMethod::Multinomial;

  // True when tokens are drawn at random (otherwise argmax).
  bool samples() const;
  // The checks the scheduler makes at its first step (temperature >= 0, top_p in (0, 1]).
  void validate() const;
};

struct SchedulerStepOutput {
  Matrix<int64_t> prev_sample;             // [B, K] sample with commits and edits applied
  Matrix<uint8_t> transfer_index;          // [B, K] masked cells committed
  Matrix<uint8_t> editing_transfer_index;  // [B, K] filled cells replaced
  Matrix<int64_t> sampled_tokens;          // [B, K]
  Matrix<float> sampled_probs;             // [B, K] confidence of each sampled token
};

// Draws one token per position from logits [n, V]; writes token and confidence. With `active`,
// positions marked 0 are skipped (their outputs untouched; a random draw is still consumed so the
// stream does not depend on which positions were skipped).
void sample_tokens(const float* logits, int64_t n, int64_t vocab, const SamplingParams& params, Rng* rng,
                   int64_t* tokens, float* probs, const uint8_t* active = nullptr);

class BlockRefinementScheduler {
 public:
  explicit BlockRefinementScheduler(SchedulerConfig config = {}) : config_(config) {}

  const SchedulerConfig& config() const { return config_; }

  // Builds the commit schedule for S steps over a block of block_length cells (default: the config's).
  void set_timesteps(int64_t num_inference_steps, std::optional<int64_t> block_length = std::nullopt);
  const std::vector<int64_t>& num_transfer_tokens() const { return schedule_; }
  int64_t num_inference_steps() const { return int64_t(schedule_.size()); }

  // Per-position commit counts: base = K / S, the remainder front-loaded.
  static std::vector<int64_t> transfer_schedule(int64_t block_length, int64_t steps);

  // logits: [B, K, V]; sample: [B, K] the block before the step; prompt_mask: [K].
  // threshold / editing_threshold: nullopt falls back to the config.
  // needed: cells whose logits were computed (all when null); the others keep their token, with
  // confidence 0, and can be neither committed nor edited. Masked cells, and editable cells while
  // editing is on, must be needed.
  SchedulerStepOutput step(const float* logits, int64_t vocab, int64_t timestep, const Matrix<int64_t>& sample,
                           int64_t mask_token_id, const SamplingParams& sampling, std::optional<double> threshold,
                           std::optional<double> editing_threshold, const std::vector<uint8_t>& prompt_mask, Rng* rng,
                           const Matrix<uint8_t>* needed = nullptr) const;

  // check_eos_finished: marks rows that wrote an EOS this step with every generated cell before it filled.
  static void check_eos_finished(const Matrix<int64_t>& window, const Matrix<int64_t>& sampled_tokens,
                                 const Matrix<uint8_t>& final_transfer, std::vector<uint8_t>& finished,
                                 int64_t eos_token_id, int64_t mask_token_id, int64_t prompt_length);

  // check_block_should_continue: whether the block takes another step (masks left and steps left, or
  // editing still changing cells within max_post_steps; never once every row has finished).
  static bool check_block_should_continue(int64_t step_idx, bool masks_remaining, bool editing_enabled,
                                          const Matrix<uint8_t>& editing_transfer_index, int64_t post_steps,
                                          int64_t max_post_steps, const std::vector<uint8_t>& finished,
                                          int64_t num_inference_steps);

 private:
  SchedulerConfig config_;
  std::vector<int64_t> schedule_;
};

}  // namespace llada2
