// LLaDA2Pipeline.__call__: the block loop over a canvas of prompt + masked cells (diffusers v0.39/v0.40).
#include "llada2/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "llada2/error.h"
#include "pipeline/levenshtein.h"
#include "pipeline/loop_util.h"

namespace llada2 {

IdTensor IdTensor::from_rows(const std::vector<std::vector<int64_t>>& rows) {
  IdTensor t;
  t.shape = {int64_t(rows.size()), rows.empty() ? 0 : int64_t(rows[0].size())};
  for (const auto& r : rows) {
    if (int64_t(r.size()) != t.shape[1]) throw InputError("`input_ids` rows must all have the same length");
    t.values.insert(t.values.end(), r.begin(), r.end());
  }
  return t;
}

IdTensor IdTensor::from_row(const std::vector<int64_t>& row) {
  IdTensor t;
  t.shape = {int64_t(row.size())};
  t.values = row;
  return t;
}

Decoding parse_decoding(const std::string& s) {
  if (s == "auto") return Decoding::Auto;
  if (s == "llada2.1") return Decoding::Llada21;
  if (s == "llada2.2") return Decoding::Llada22;
  throw InputError("`decoding` must be one of 'auto', 'llada2.1', 'llada2.2', got '" + s + "'.");
}

const char* decoding_name(Decoding d) {
  switch (d) {
    case Decoding::Llada21: return "llada2.1";
    case Decoding::Llada22: return "llada2.2";
    default: return "auto";
  }
}

uint64_t row_seed(uint64_t seed, int64_t row) {
  if (row == 0) return seed;
  uint64_t z = seed ^ (uint64_t(row) * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

const std::vector<std::string>& allowed_callback_tensor_names() {
  static const std::vector<std::string> names = {
      "block_x", "transfer_index", "editing_transfer_index", "sampled_tokens", "sampled_probs", "active_block", "x0",
      "x0_p",    "confidence"};
  return names;
}

namespace {

// One call in progress (LoopState: the canvas, the prefix cache, the per-row EOS state). Blocks are
// denoised left to right.
class BlockLoop : LoopState {
 public:
  BlockLoop(const Model& model, const SchedulerConfig& scheduler, const ResolvedCall& call)
      : LoopState(model, call), scheduler_(scheduler), rng_(o_.seed ? *o_.seed : random_seed()) {
    scheduler_.set_timesteps(call.steps, K_);
    // Logits are needed for masked cells, for editable cells while editing is on, and for every cell
    // when the callback reads the sampled tokens or probabilities.
    callback_reads_samples_ =
        o_.callback_on_step_end && std::any_of(cb_names_.begin(), cb_names_.end(), [](const std::string& n) {
          return n == "sampled_tokens" || n == "sampled_probs" || n == "x0" || n == "x0_p" || n == "confidence";
        });
  }

  using LoopState::done;

  // Refinement steps on block n until it ends; then its cells are written back to the canvas.
  void denoise_block(int64_t n) {
    Block blk(*this, n);
    while (refine(blk)) {}
    for (int64_t b = 0; b < B_; ++b) std::copy_n(blk.window.row(b), blk.W, x_.row(b));
  }

  // The generated cells [B, gen_length], the texts (with a tokenizer), and the counts.
  PipelineOutput finish(const Tokenizer* tokenizer) const {
    PipelineOutput out = output();
    const int64_t G = call_.gen_length();
    for (int64_t b = 0; b < B_; ++b) {
      out.stats.generated_tokens += std::count_if(out.sequences.row(b), out.sequences.row(b) + G,
                                                  [&](int64_t t) { return t != call_.mask_token_id; });
    }
    if (tokenizer) {
      std::vector<std::string> texts;
      for (int64_t b = 0; b < B_; ++b)
        texts.push_back(decode_generated(*tokenizer, out.sequences.row(b), G, call_.eos_token_id));
      out.texts = std::move(texts);
    }
    return out;
  }

 private:
  // The window of block n (the canvas up to the block's end) while its steps run.
  struct Block {
    Block(const BlockLoop& loop, int64_t n)
        : W((n + 1) * loop.K_),
          window(left_columns(loop.x_, W)),
          wmask(left_columns(loop.key_mask_, W)),
          prompt_flag(size_t(loop.K_)),
          row_steps(size_t(loop.B_), 0),
          row_post(size_t(loop.B_), 0),
          row_ended(size_t(loop.B_), 0),
          row_masks(size_t(loop.B_), 0) {
      for (int64_t j = 0; j < loop.K_; ++j) prompt_flag[size_t(j)] = (n * loop.K_ + j) < loop.P_;
    }
    int64_t W;
    Matrix<int64_t> window, wmask;     // [B, W]
    std::vector<uint8_t> prompt_flag;  // [K]: cells of the block that belong to the prompt
    int64_t post_steps = 0, step_idx = 0;
    // independent_rows: each row's own step count, post steps, and whether its block has ended.
    std::vector<int64_t> row_steps, row_post;
    std::vector<uint8_t> row_ended, row_masks;
  };

  // One refinement step of the active block; returns whether the block goes on.
  bool refine(Block& blk) {
    const bool per_row = o_.independent_rows;
    Matrix<int64_t> cells(B_, K_);
    bool masks_remaining = false;
    for (int64_t b = 0; b < B_; ++b) {
      blk.row_masks[size_t(b)] = 0;
      for (int64_t j = 0; j < K_; ++j) {
        cells.at(b, j) = blk.window.at(b, blk.W - K_ + j);
        if (cells.at(b, j) == call_.mask_token_id) masks_remaining = true, blk.row_masks[size_t(b)] = 1;
      }
      if (per_row && !blk.row_masks[size_t(b)] && !blk.row_ended[size_t(b)]) ++blk.row_post[size_t(b)];
    }
    if (!masks_remaining) ++blk.post_steps;

    const Matrix<uint8_t> needed = cells_needing_logits(blk, cells);
    forward(blk.window, blk.wmask, needed);
    SchedulerStepOutput so =
        scheduler_.step(logits_.data(), V_, blk.step_idx, cells, call_.mask_token_id, call_.sampling, call_.threshold,
                        call_.editing_threshold, blk.prompt_flag, &rng_, &needed);
    const Matrix<uint8_t> active = commit(blk, cells, so);
    if (o_.callback_on_step_end)
      call_back(blk.step_idx,
                {blk.window, so.transfer_index, so.editing_transfer_index, so.sampled_tokens, so.sampled_probs, active},
                blk.window);
    ++global_step_;
    if (stats_.stopped) return false;
    if (masks_remaining) ++blk.step_idx;
    if (per_row) return any_row_continues(blk, so);
    return BlockRefinementScheduler::check_block_should_continue(blk.step_idx, masks_remaining, call_.editing(),
                                                                 so.editing_transfer_index, blk.post_steps,
                                                                 o_.max_post_steps, finished_, call_.steps);
  }

  // Cells whose logits the step reads: masked cells, and editable cells while editing is on.
  Matrix<uint8_t> cells_needing_logits(const Block& blk, const Matrix<int64_t>& cells) const {
    Matrix<uint8_t> needed(B_, K_, 1);
    if (callback_reads_samples_) return needed;
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t j = 0; j < K_; ++j)
        needed.at(b, j) = !(o_.independent_rows && blk.row_ended[size_t(b)]) &&
                          (cells.at(b, j) == call_.mask_token_id || (call_.editing() && !blk.prompt_flag[size_t(j)]));
    return needed;
  }

  // Writes the step's commits and edits into the window, except in frozen rows (finished with
  // eos_early_stop, or whose block ended under independent_rows); marks rows that wrote their EOS.
  // Returns the cells that were masked before the step.
  Matrix<uint8_t> commit(Block& blk, const Matrix<int64_t>& cells, const SchedulerStepOutput& so) {
    Matrix<uint8_t> active(B_, K_), final_transfer(B_, K_);
    for (int64_t b = 0; b < B_; ++b) {
      const bool frozen =
          (o_.eos_early_stop && finished_[size_t(b)]) || (o_.independent_rows && blk.row_ended[size_t(b)]);
      for (int64_t j = 0; j < K_; ++j) {
        active.at(b, j) = cells.at(b, j) == call_.mask_token_id;
        const bool f = !frozen && (so.transfer_index.at(b, j) || so.editing_transfer_index.at(b, j));
        final_transfer.at(b, j) = f;
        if (f) blk.window.at(b, blk.W - K_ + j) = so.prev_sample.at(b, j);
      }
    }
    if (o_.eos_early_stop && call_.eos_token_id)
      BlockRefinementScheduler::check_eos_finished(blk.window, so.sampled_tokens, final_transfer, finished_,
                                                   *call_.eos_token_id, call_.mask_token_id, P_);
    return active;
  }

  // independent_rows: each row ends its block when it would alone; the block goes on while any row
  // continues.
  bool any_row_continues(Block& blk, const SchedulerStepOutput& so) {
    bool any = false;
    for (int64_t b = 0; b < B_; ++b) {
      if (blk.row_ended[size_t(b)]) continue;
      if (blk.row_masks[size_t(b)]) ++blk.row_steps[size_t(b)];
      Matrix<uint8_t> edits(1, K_);
      std::copy_n(so.editing_transfer_index.row(b), K_, edits.row(0));
      const std::vector<uint8_t> fin_b(1, finished_[size_t(b)]);
      if (BlockRefinementScheduler::check_block_should_continue(blk.row_steps[size_t(b)], blk.row_masks[size_t(b)],
                                                                call_.editing(), edits, blk.row_post[size_t(b)],
                                                                o_.max_post_steps, fin_b, call_.steps))
        any = true;
      else
        blk.row_ended[size_t(b)] = 1;
    }
    return any;
  }

  BlockRefinementScheduler scheduler_;
  Rng rng_;
  bool callback_reads_samples_ = false;
};

}  // namespace

PipelineOutput Pipeline::operator()(const GenerateOptions& options) const { return (*this)(resolve(options)); }

PipelineOutput Pipeline::operator()(const ResolvedCall& call) const {
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer* tokenizer = call.options.output_type == "text" ? tokenizer_.get() : nullptr;
  PipelineOutput out;
  if (call.decoding == Decoding::Llada22) {
    out = run_levenshtein(*model_, call, tokenizer);
  } else {
    BlockLoop loop(*model_, scheduler_, call);
    for (int64_t n = call.first_block(); n < call.num_blocks() && !loop.done(); ++n) loop.denoise_block(n);
    out = loop.finish(tokenizer);
  }
  out.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

Pipeline::Pipeline(std::shared_ptr<const Model> model, SchedulerConfig scheduler,
                   std::shared_ptr<const Tokenizer> tokenizer)
    : model_(std::move(model)), scheduler_(scheduler), tokenizer_(std::move(tokenizer)) {
  if (tokenizer_ && !tokenizer_->chat_template().empty())
    chat_template_ = std::make_shared<const ChatTemplate>(tokenizer_->chat_template());
}

Pipeline Pipeline::from_pretrained(const std::string& dir, SchedulerConfig scheduler) {
  std::shared_ptr<const Model> model = Model::load(dir);
  std::shared_ptr<const Tokenizer> tok;
  if (std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json"))
    tok = std::make_shared<const Tokenizer>(Tokenizer::from_dir(dir));
  return Pipeline(std::move(model), scheduler, std::move(tok));
}

}  // namespace llada2
