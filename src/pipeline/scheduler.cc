// BlockRefinementScheduler: the commit rule of masked cells, editing of filled cells, EOS bookkeeping
// (check_eos_finished) and loop control (check_block_should_continue), as in diffusers v0.39/v0.40.
#include "llada2/scheduler.h"

#include <algorithm>
#include <numeric>

#include "llada2/error.h"

namespace llada2 {

std::vector<int64_t> BlockRefinementScheduler::transfer_schedule(int64_t block_length, int64_t steps) {
  std::vector<int64_t> s(size_t(steps), block_length / steps);
  for (int64_t i = 0; i < block_length % steps; ++i) ++s[size_t(i)];
  return s;
}

void BlockRefinementScheduler::set_timesteps(int64_t num_inference_steps, std::optional<int64_t> block_length) {
  if (num_inference_steps <= 0)
    throw InputError("`num_inference_steps` must be > 0, got " + std::to_string(num_inference_steps) + ".");
  int64_t K = block_length.value_or(config_.block_length);
  if (K <= 0) throw InputError("`block_length` must be > 0, got " + std::to_string(K) + ".");
  schedule_ = transfer_schedule(K, num_inference_steps);
}

SchedulerStepOutput BlockRefinementScheduler::step(const float* logits, int64_t vocab, int64_t timestep,
                                                   const Matrix<int64_t>& sample, int64_t mask_token_id,
                                                   const SamplingParams& sampling, std::optional<double> threshold,
                                                   std::optional<double> editing_threshold,
                                                   const std::vector<uint8_t>& prompt_mask, Rng* rng,
                                                   const Matrix<uint8_t>* needed) const {
  sampling.validate();
  const int64_t B = sample.rows, K = sample.cols;
  SchedulerStepOutput out;
  out.prev_sample = sample;
  out.transfer_index = Matrix<uint8_t>(B, K, 0);
  out.editing_transfer_index = Matrix<uint8_t>(B, K, 0);
  out.sampled_tokens = sample;
  out.sampled_probs = Matrix<float>(B, K, 0.f);
  sample_tokens(logits, B * K, vocab, sampling, rng, out.sampled_tokens.data.data(), out.sampled_probs.data.data(),
                needed ? needed->data.data() : nullptr);

  // torch compares a float32 tensor with a Python float after rounding the float to float32.
  const float thr = float(threshold.value_or(config_.threshold));
  const std::optional<double> edit_thr_d = editing_threshold ? editing_threshold : config_.editing_threshold;
  const bool editing = edit_thr_d && *edit_thr_d > 0.0;
  const float edit_thr = editing ? float(*edit_thr_d) : 0.f;
  int64_t n = 0;
  if (!schedule_.empty())
    n = schedule_[size_t(std::min<int64_t>(std::max<int64_t>(timestep, 0), int64_t(schedule_.size()) - 1))];

  for (int64_t b = 0; b < B; ++b) {
    const int64_t* blk = sample.row(b);
    const float* conf = out.sampled_probs.row(b);
    const int64_t* tok = out.sampled_tokens.row(b);
    uint8_t* commit = out.transfer_index.row(b);
    std::vector<int64_t> masked;
    int64_t above = 0;
    for (int64_t j = 0; j < K; ++j) {
      if (blk[j] != mask_token_id) continue;
      masked.push_back(j);
      if (conf[j] > thr) ++above;
    }
    if (!schedule_.empty()) {
      if (above >= n) {
        for (int64_t j : masked)
          if (conf[j] > thr) commit[j] = 1;
      } else {
        // Top-k of the masked cells by confidence; equal confidences: lower position first.
        std::stable_sort(masked.begin(), masked.end(), [&](int64_t a, int64_t c) { return conf[a] > conf[c]; });
        for (int64_t i = 0; i < std::min<int64_t>(n, int64_t(masked.size())); ++i) commit[masked[size_t(i)]] = 1;
      }
    }
    if (editing) {
      uint8_t* edit = out.editing_transfer_index.row(b);
      for (int64_t j = 0; j < K; ++j) {
        if (blk[j] == mask_token_id || (size_t(j) < prompt_mask.size() && prompt_mask[size_t(j)])) continue;
        if (conf[j] > edit_thr && tok[j] != blk[j]) edit[j] = 1;
      }
    }
    int64_t* prev = out.prev_sample.row(b);
    for (int64_t j = 0; j < K; ++j)
      if (commit[j] || out.editing_transfer_index.at(b, j)) prev[j] = tok[j];
  }
  return out;
}

void BlockRefinementScheduler::check_eos_finished(const Matrix<int64_t>& window, const Matrix<int64_t>& sampled_tokens,
                                                  const Matrix<uint8_t>& final_transfer, std::vector<uint8_t>& finished,
                                                  int64_t eos_token_id, int64_t mask_token_id, int64_t prompt_length) {
  for (int64_t b = 0; b < window.rows; ++b) {
    if (finished[size_t(b)]) continue;
    bool wrote_eos = false;
    for (int64_t j = 0; j < final_transfer.cols; ++j)
      if (final_transfer.at(b, j) && sampled_tokens.at(b, j) == eos_token_id) wrote_eos = true;
    if (!wrote_eos) continue;
    const int64_t* row = window.row(b);
    int64_t e = -1;
    for (int64_t j = 0; j < window.cols; ++j) {
      if (row[j] == eos_token_id) {
        e = j;
        break;
      }
    }
    if (e < prompt_length) continue;
    bool filled = true;
    for (int64_t j = prompt_length; j < e; ++j)
      if (row[j] == mask_token_id) filled = false;
    if (filled) finished[size_t(b)] = 1;
  }
}

bool BlockRefinementScheduler::check_block_should_continue(int64_t step_idx, bool masks_remaining, bool editing_enabled,
                                                           const Matrix<uint8_t>& editing_transfer_index,
                                                           int64_t post_steps, int64_t max_post_steps,
                                                           const std::vector<uint8_t>& finished,
                                                           int64_t num_inference_steps) {
  if (!finished.empty() && std::all_of(finished.begin(), finished.end(), [](uint8_t f) { return f != 0; }))
    return false;
  if (!masks_remaining && !editing_enabled) return false;
  bool any_edit = std::any_of(editing_transfer_index.data.begin(), editing_transfer_index.data.end(),
                              [](uint8_t v) { return v != 0; });
  if (!masks_remaining && !any_edit) return false;
  if (masks_remaining && step_idx >= num_inference_steps) return false;
  if (!masks_remaining && post_steps > max_post_steps) return false;
  return true;
}

}  // namespace llada2
