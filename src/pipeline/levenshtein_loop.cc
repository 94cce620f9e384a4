// The block loop of a pipeline call with LLaDA2.2's rules (docs/llada22.md): each row's active block
// is decoded by levenshtein_step until it is final; the rows of a batch share the forwards and are
// otherwise independent (each draws from its own generator). Earlier blocks are final, so
// block_causal attention keeps their keys and values in the exact prefix cache.
#include <algorithm>

#include "pipeline/levenshtein.h"
#include "pipeline/loop_util.h"

namespace llada2 {

namespace {

// One generator per row: row_seeds, else row_seed(seed, b).
std::vector<Rng> row_generators(const ResolvedCall& call) {
  const GenerateOptions& o = call.options;
  const uint64_t seed = o.seed ? *o.seed : random_seed();
  std::vector<Rng> rngs;
  for (int64_t b = 0; b < call.batch(); ++b)
    rngs.emplace_back(o.row_seeds ? (*o.row_seeds)[size_t(b)] : row_seed(seed, b));
  return rngs;
}

class LevenshteinLoop : LoopState {
 public:
  LevenshteinLoop(const Model& model, const ResolvedCall& call)
      : LoopState(model, call), p_(LevenshteinParams::from_call(call)), rngs_(row_generators(call)) {}

  void run() {
    for (int64_t n = call_.first_block(); n < call_.num_blocks() && !done(); ++n) denoise_block(n);
  }

  // The generated cells [B, gen_length] (with eos_early_stop, cut after each row's first stop id:
  // the rest reads as never generated), the texts cut there, and the counts.
  PipelineOutput finish(const Tokenizer* tokenizer) const {
    PipelineOutput out = output();
    const int64_t G = call_.gen_length();
    std::vector<std::string> texts;
    for (int64_t b = 0; b < B_; ++b) {
      int64_t* row = out.sequences.row(b);
      const int64_t stop = first_stop(row, G);
      if (o_.eos_early_stop && stop < G) std::fill(row + stop + 1, row + G, call_.mask_token_id);
      out.stats.generated_tokens += std::count_if(row, row + G, [&](int64_t t) { return t != call_.mask_token_id; });
      if (tokenizer)
        texts.push_back(stop < G ? decode_generated(*tokenizer, row, stop + 1, row[stop])
                                 : decode_generated(*tokenizer, row, G, std::nullopt));
    }
    if (tokenizer) out.texts = std::move(texts);
    return out;
  }

 private:
  // The index of the first stop id of ids [0, n), or n.
  int64_t first_stop(const int64_t* ids, int64_t n) const {
    const std::vector<int64_t>& stops = call_.stop_token_ids;
    return std::find_if(ids, ids + n,
                        [&](int64_t t) { return std::find(stops.begin(), stops.end(), t) != stops.end(); }) -
           ids;
  }

  // Iterations on block n until every row's block is final (finished rows take no part); then the
  // block is written back and rows whose generated cells hold a stop id are finished.
  void denoise_block(int64_t n) {
    const int64_t W = (n + 1) * K_;
    Matrix<int64_t> window = left_columns(x_, W);
    const Matrix<int64_t> wmask = left_columns(key_mask_, W);
    std::vector<LevenshteinBlock> blocks;
    for (int64_t b = 0; b < B_; ++b) {
      blocks.push_back(LevenshteinBlock::enter(window.row(b) + W - K_, K_, call_.mask_token_id));
      blocks.back().ended = o_.eos_early_stop && finished_[size_t(b)];
    }
    for (int64_t iteration = 0;; ++iteration) {
      Matrix<uint8_t> needed(B_, K_, 0);
      bool any = false;
      for (int64_t b = 0; b < B_; ++b)
        if (begin_iteration(blocks[size_t(b)], p_)) {
          std::fill(needed.row(b), needed.row(b) + K_, uint8_t(1));
          any = true;
        }
      if (!any) break;
      forward(window, wmask, needed);
      Matrix<uint8_t> filled(B_, K_, 0), edited(B_, K_, 0), masked(B_, K_, 0);
      Matrix<int64_t> picks(B_, K_);
      Matrix<float> conf(B_, K_, 0.f);
      for (int64_t b = 0; b < B_; ++b) {
        LevenshteinBlock& blk = blocks[size_t(b)];
        for (int64_t j = 0; j < K_; ++j) masked.at(b, j) = blk.cells[size_t(j)] == call_.mask_token_id;
        std::copy(blk.cells.begin(), blk.cells.end(), picks.row(b));
        if (!needed.at(b, 0)) continue;
        const LevenshteinStep st = levenshtein_step(blk, logits_.data() + b * K_ * V_, V_, p_, rngs_[size_t(b)]);
        std::copy(st.filled.begin(), st.filled.end(), filled.row(b));
        std::copy(st.edited.begin(), st.edited.end(), edited.row(b));
        std::copy(st.written.begin(), st.written.end(), picks.row(b));
        std::copy(st.confidence.begin(), st.confidence.end(), conf.row(b));
        std::copy(blk.cells.begin(), blk.cells.end(), window.row(b) + W - K_);
      }
      // The callback sees the cells before the iteration; sampled_tokens are the writes before
      // deletions and splits. A window it replaces gives the blocks their cells.
      if (o_.callback_on_step_end && call_back(iteration, {window, filled, edited, picks, conf, masked}, window))
        for (int64_t b = 0; b < B_; ++b) blocks[size_t(b)].cells.assign(window.row(b) + W - K_, window.row(b) + W);
      ++global_step_;
      if (stats_.stopped) break;
    }
    for (int64_t b = 0; b < B_; ++b) {
      std::copy_n(window.row(b), W, x_.row(b));
      const int64_t end = std::min(W, P_ + call_.gen_length());
      if (end > P_ && first_stop(x_.row(b) + P_, end - P_) < end - P_) finished_[size_t(b)] = 1;
    }
  }

  const LevenshteinParams p_;
  std::vector<Rng> rngs_;
};

}  // namespace

PipelineOutput run_levenshtein(const Model& model, const ResolvedCall& call, const Tokenizer* tokenizer) {
  LevenshteinLoop loop(model, call);
  loop.run();
  return loop.finish(tokenizer);
}

}  // namespace llada2
