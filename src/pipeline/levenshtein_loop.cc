// The block loop of a pipeline call with LLaDA2.2's rules (docs/llada22.md): each row's active block
// is decoded by levenshtein_step until it is final; the rows of a batch share the forwards and are
// otherwise independent (each draws from its own generator). Earlier blocks are final, so block_causal attention keeps
// their keys and values in the exact prefix cache.
#include <algorithm>
#include <limits>
#include <map>

#include "llada2/error.h"
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

class LevenshteinLoop {
 public:
  LevenshteinLoop(const Model& model, const ResolvedCall& call)
      : model_(model),
        call_(call),
        o_(call.options),
        p_(LevenshteinParams::from_call(call)),
        B_(call.batch()),
        P_(call.prompt_length()),
        K_(call.block_length),
        V_(model.config().vocab_size),
        rngs_(row_generators(call)),
        cb_names_(o_.callback_on_step_end_tensor_inputs.value_or(std::vector<std::string>{"block_x"})),
        cached_(o_.use_kv_cache && o_.attention == AttentionMode::BlockCausal),
        finished_(size_t(B_), 0) {
    const int64_t T = call.num_blocks() * K_;
    x_ = Matrix<int64_t>(B_, T, call.mask_token_id);
    key_mask_ = Matrix<int64_t>(B_, T, 0);
    for (int64_t b = 0; b < B_; ++b) {
      for (int64_t j = 0; j < P_; ++j) {
        x_.at(b, j) = call.prompt_ids.at(b, j);
        key_mask_.at(b, j) = call.prompt_mask.at(b, j) != 0 ? 1 : 0;
      }
      for (int64_t j = P_; j < P_ + call.gen_length(); ++j) key_mask_.at(b, j) = 1;
    }
    if (cached_) cache_ = model_.make_cache(B_, T);
  }

  void run() {
    for (int64_t n = call_.first_block(); n < call_.num_blocks() && !stats_.stopped; ++n) {
      if (o_.eos_early_stop && std::all_of(finished_.begin(), finished_.end(), [](uint8_t f) { return f != 0; })) break;
      denoise_block(n);
    }
  }

  // The generated cells [B, gen_length] (with eos_early_stop, cut after each row's first stop id:
  // the rest reads as never generated), the texts cut there, and the counts.
  PipelineOutput finish(const Tokenizer* tokenizer) const {
    PipelineOutput out;
    out.stats = stats_;
    const int64_t G = call_.gen_length();
    out.sequences = Matrix<int64_t>(B_, G);
    std::vector<std::string> texts;
    for (int64_t b = 0; b < B_; ++b) {
      int64_t* row = out.sequences.row(b);
      std::copy_n(x_.row(b) + P_, G, row);
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
      if (o_.callback_on_step_end) call_back(window, blocks, iteration, filled, edited, picks, conf, masked);
      ++global_step_;
      if (stats_.stopped) break;
    }
    for (int64_t b = 0; b < B_; ++b) {
      std::copy_n(window.row(b), W, x_.row(b));
      const int64_t end = std::min(W, P_ + call_.gen_length());
      if (end > P_ && first_stop(x_.row(b) + P_, end - P_) < end - P_) finished_[size_t(b)] = 1;
    }
  }

  // Logits of the active block [B, K, V] into logits_ for the rows marked in `needed`; with the cache,
  // earlier blocks come from it.
  void forward(const Matrix<int64_t>& window, const Matrix<int64_t>& wmask, const Matrix<uint8_t>& needed) {
    const int64_t W = window.cols;
    ForwardBatch fb;
    fb.batch = B_;
    fb.window = W;
    fb.input_ids = window.data.data();
    fb.key_mask = wmask.data.data();
    fb.attention = o_.attention;
    fb.block_length = K_;
    fb.logits_from = W - K_;
    fb.commit_to = W - K_;
    fb.logits_rows = needed.data.data();
    logits_.resize(size_t(B_ * K_ * V_));
    if (cached_) {
      prefill(window, wmask, W - K_);
      model_.forward(fb, logits_.data(), nullptr, &cache_);
    } else {
      model_.forward(fb, logits_.data());
    }
    ++stats_.forwards;
  }

  // Brings the cache up to `upto` (a block boundary) in block-aligned chunks.
  void prefill(const Matrix<int64_t>& window, const Matrix<int64_t>& wmask, int64_t upto) {
    const int64_t chunk = K_ * std::max<int64_t>(1, 512 / K_);
    while (upto - cache_.length > chunk) {
      const int64_t end = cache_.length + chunk;
      const Matrix<int64_t> ids = left_columns(window, end), km = left_columns(wmask, end);
      ForwardBatch fb;
      fb.batch = B_;
      fb.window = end;
      fb.input_ids = ids.data.data();
      fb.key_mask = km.data.data();
      fb.attention = o_.attention;
      fb.block_length = K_;
      fb.logits_from = end;
      fb.commit_to = end;
      model_.forward(fb, nullptr, nullptr, &cache_);
    }
  }

  // callback_on_step_end with the iteration's tensors (over the cells before it; sampled_tokens are
  // the writes before deletions and splits); the callback may replace the window or stop.
  void call_back(Matrix<int64_t>& window, std::vector<LevenshteinBlock>& blocks, int64_t iteration,
                 const Matrix<uint8_t>& filled, const Matrix<uint8_t>& edited, const Matrix<int64_t>& picks,
                 const Matrix<float>& conf, const Matrix<uint8_t>& masked) {
    std::map<std::string, CallbackTensor> kw;
    for (const std::string& name : cb_names_) {
      if (name == "block_x") {
        kw[name] = int_tensor(window);
      } else if (name == "transfer_index") {
        kw[name] = bool_tensor(filled);
      } else if (name == "editing_transfer_index") {
        kw[name] = bool_tensor(edited);
      } else if (name == "sampled_tokens" || name == "x0") {
        kw[name] = int_tensor(picks);
      } else if (name == "sampled_probs" || name == "x0_p") {
        kw[name] = float_tensor(conf);
      } else if (name == "active_block") {
        kw[name] = bool_tensor(masked);
      } else if (name == "confidence") {
        Matrix<float> c = conf;
        for (size_t i = 0; i < c.data.size(); ++i)
          if (!masked.data[i]) c.data[i] = -std::numeric_limits<float>::infinity();
        kw[name] = float_tensor(c);
      }
    }
    CallbackResult r = o_.callback_on_step_end(global_step_, iteration, kw);
    if (r.stop) stats_.stopped = true;
    if (!r.block_x) return;
    const int64_t W = window.cols;
    if (r.block_x->rows != B_ || r.block_x->cols != W)
      throw InputError("callback returned `block_x` of shape [" + std::to_string(r.block_x->rows) + ", " +
                       std::to_string(r.block_x->cols) + "], expected [" + std::to_string(B_) + ", " +
                       std::to_string(W) + "]");
    // Changed cells in earlier blocks make their cached keys/values stale.
    if (cached_)
      for (int64_t b = 0; b < B_; ++b)
        for (int64_t j = 0; j < cache_.length; ++j)
          if (window.at(b, j) != r.block_x->at(b, j)) cache_.length = std::min(cache_.length, (j / K_) * K_);
    window = *r.block_x;
    for (int64_t b = 0; b < B_; ++b) blocks[size_t(b)].cells.assign(window.row(b) + W - K_, window.row(b) + W);
  }

  const Model& model_;
  const ResolvedCall& call_;
  const GenerateOptions& o_;
  const LevenshteinParams p_;
  const int64_t B_, P_, K_, V_;
  std::vector<Rng> rngs_;
  const std::vector<std::string> cb_names_;
  const bool cached_;
  Matrix<int64_t> x_, key_mask_;
  KvCache cache_;
  std::vector<uint8_t> finished_;
  std::vector<float> logits_;
  int64_t global_step_ = 0;
  GenerationStats stats_;
};

}  // namespace

PipelineOutput run_levenshtein(const Model& model, const ResolvedCall& call, const Tokenizer* tokenizer) {
  LevenshteinLoop loop(model, call);
  loop.run();
  return loop.finish(tokenizer);
}

}  // namespace llada2
