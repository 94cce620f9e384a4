#include "pipeline/loop_util.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "llada2/error.h"
#include "llada2/prefix_cache.h"

namespace llada2 {

namespace {

CallbackTensor bool_tensor(const Matrix<uint8_t>& m) {
  CallbackTensor t;
  t.shape = {m.rows, m.cols};
  t.ints.assign(m.data.begin(), m.data.end());
  t.is_bool = true;
  return t;
}

CallbackTensor int_tensor(const Matrix<int64_t>& m) {
  CallbackTensor t;
  t.shape = {m.rows, m.cols};
  t.ints = m.data;
  return t;
}

CallbackTensor float_tensor(const Matrix<float>& m) {
  CallbackTensor t;
  t.shape = {m.rows, m.cols};
  t.floats = m.data;
  t.is_float = true;
  return t;
}

// One forward over the first `W` cells of `ids`, with logits for the cells from `logits_from` on
// (none for a prefill chunk: logits == nullptr).
void forward_window(const Model& model, const ResolvedCall& call, int64_t W, const int64_t* ids,
                    const int64_t* key_mask, int64_t logits_from, const uint8_t* needed, float* logits,
                    KvCache* cache) {
  ForwardBatch fb;
  fb.batch = call.batch();
  fb.window = W;
  fb.input_ids = ids;
  fb.key_mask = key_mask;
  fb.attention = call.options.attention;
  fb.block_length = call.block_length;
  fb.logits_from = logits_from;
  fb.commit_to = logits_from;
  fb.logits_rows = needed;
  model.forward(fb, logits, nullptr, cache);
}

// The tensors the callback asked for, by name.
std::map<std::string, CallbackTensor> callback_tensors(const std::vector<std::string>& names, const StepTensors& t) {
  std::map<std::string, CallbackTensor> kw;
  for (const std::string& name : names) {
    if (name == "block_x") {
      kw[name] = int_tensor(t.window);
    } else if (name == "transfer_index") {
      kw[name] = bool_tensor(t.transfer);
    } else if (name == "editing_transfer_index") {
      kw[name] = bool_tensor(t.editing);
    } else if (name == "sampled_tokens" || name == "x0") {
      kw[name] = int_tensor(t.sampled_tokens);
    } else if (name == "sampled_probs" || name == "x0_p") {
      kw[name] = float_tensor(t.sampled_probs);
    } else if (name == "active_block") {
      kw[name] = bool_tensor(t.active);
    } else if (name == "confidence") {  // the sampled probabilities of masked cells, -inf elsewhere
      Matrix<float> c = t.sampled_probs;
      for (size_t i = 0; i < c.data.size(); ++i)
        if (!t.active.data[i]) c.data[i] = -std::numeric_limits<float>::infinity();
      kw[name] = float_tensor(c);
    }
  }
  return kw;
}

}  // namespace

Matrix<int64_t> left_columns(const Matrix<int64_t>& m, int64_t cols) {
  Matrix<int64_t> out(m.rows, cols);
  for (int64_t b = 0; b < m.rows; ++b) std::copy_n(m.row(b), cols, out.row(b));
  return out;
}

LoopState::LoopState(const Model& model, const ResolvedCall& call)
    : model_(model),
      call_(call),
      o_(call.options),
      B_(call.batch()),
      P_(call.prompt_length()),
      K_(call.block_length),
      V_(model.config().vocab_size),
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
  if (cached_ && !o_.reuse_prefixes.empty()) start_from_prefixes();
}

// The cache starts with the keys and values of the longest block-aligned prefix that every row
// shares with its entry of reuse_prefixes (none if a row has no entry, or padding there).
void LoopState::start_from_prefixes() {
  if (int64_t(o_.reuse_prefixes.size()) != B_)
    throw InputError("reuse_prefixes has " + std::to_string(o_.reuse_prefixes.size()) + " entries for " +
                     std::to_string(B_) + " rows");
  int64_t L = std::numeric_limits<int64_t>::max();
  const int64_t H = model_.config().num_key_value_heads, D = model_.config().head_dim;
  for (int64_t b = 0; b < B_; ++b) {
    const CachedPrefix* p = o_.reuse_prefixes[size_t(b)].get();
    int64_t n = p && p->heads == H && p->head_dim == D && p->dtype == cache_.dtype
                    ? reusable_length(*p, model_, K_, call_.prompt_ids.row(b), P_)
                    : 0;
    if (std::find(key_mask_.row(b), key_mask_.row(b) + n, 0) != key_mask_.row(b) + n) n = 0;
    L = std::min(L, n);
  }
  if (L <= 0) return;
  // Both hold keys [.., heads, head_dim, positions] and values [.., heads, positions, head_dim] in the
  // same dtype.
  const size_t es = cache_.element_bytes();
  const int64_t cap = cache_.capacity;
  for (size_t l = 0; l < cache_.k.size(); ++l)
    for (int64_t b = 0; b < B_; ++b) {
      const CachedPrefix& p = *o_.reuse_prefixes[size_t(b)];
      const int64_t PL = p.length();
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t d = 0; d < D; ++d)
          std::copy_n(p.k[l].data() + size_t((h * D + d) * PL) * es, size_t(L) * es,
                      cache_.k[l].data() + size_t(((b * H + h) * D + d) * cache_.key_stride) * es);
        std::copy_n(p.v[l].data() + size_t(h * PL * D) * es, size_t(L * D) * es,
                    cache_.v[l].data() + size_t((b * H + h) * cap * D) * es);
      }
    }
  cache_.length = L;
  stats_.reused_positions = L;
}

// Per row, the cached keys and values of the final canvas with the tokens they hold (null for a
// row with padding there, or without a cache).
PipelineOutput LoopState::output() const {
  PipelineOutput out;
  out.stats = stats_;
  if (o_.keep_prefixes) out.prefixes = final_prefixes();
  const int64_t G = call_.gen_length();
  out.sequences = Matrix<int64_t>(B_, G);
  for (int64_t b = 0; b < B_; ++b) std::copy_n(x_.row(b) + P_, G, out.sequences.row(b));
  return out;
}

std::vector<std::shared_ptr<const CachedPrefix>> LoopState::final_prefixes() const {
  std::vector<std::shared_ptr<const CachedPrefix>> out(static_cast<size_t>(B_));
  const int64_t L = cached_ ? cache_.length : 0;
  if (L <= 0) return out;
  const int64_t H = model_.config().num_key_value_heads, D = model_.config().head_dim;
  for (int64_t b = 0; b < B_; ++b) {
    if (std::find(key_mask_.row(b), key_mask_.row(b) + L, 0) != key_mask_.row(b) + L) continue;
    auto p = std::make_shared<CachedPrefix>();
    p->model = &model_;
    p->block_length = K_;
    p->arithmetic = arithmetic_mode();
    p->tokens.assign(x_.row(b), x_.row(b) + L);
    p->heads = H;
    p->head_dim = D;
    p->dtype = cache_.dtype;
    const size_t es = cache_.element_bytes();
    const int64_t cap = cache_.capacity;
    p->k.assign(cache_.k.size(), std::vector<uint8_t>(size_t(H * L * D) * es));
    p->v.assign(cache_.v.size(), std::vector<uint8_t>(size_t(H * L * D) * es));
    for (size_t l = 0; l < cache_.k.size(); ++l)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t d = 0; d < D; ++d)
          std::copy_n(cache_.k[l].data() + size_t(((b * H + h) * D + d) * cache_.key_stride) * es, size_t(L) * es,
                      p->k[l].data() + size_t((h * D + d) * L) * es);
        std::copy_n(cache_.v[l].data() + size_t((b * H + h) * cap * D) * es, size_t(L * D) * es,
                    p->v[l].data() + size_t(h * L * D) * es);
      }
    out[size_t(b)] = std::move(p);
  }
  return out;
}

bool LoopState::done() const {
  return stats_.stopped ||
         (o_.eos_early_stop && std::all_of(finished_.begin(), finished_.end(), [](uint8_t f) { return f != 0; }));
}

void LoopState::forward(const Matrix<int64_t>& window, const Matrix<int64_t>& wmask, const Matrix<uint8_t>& needed) {
  const int64_t W = window.cols;
  KvCache* cache = cached_ ? &cache_ : nullptr;
  logits_.resize(size_t(B_ * K_ * V_));
  if (cache) {
    const int64_t chunk = K_ * std::max<int64_t>(1, 512 / K_);
    while (W - K_ - cache_.length > chunk) {
      const int64_t end = cache_.length + chunk;
      const Matrix<int64_t> ids = left_columns(window, end), km = left_columns(wmask, end);
      forward_window(model_, call_, end, ids.data.data(), km.data.data(), end, nullptr, nullptr, cache);
    }
  }
  forward_window(model_, call_, W, window.data.data(), wmask.data.data(), W - K_, needed.data.data(), logits_.data(),
                 cache);
  ++stats_.forwards;
}

bool LoopState::call_back(int64_t timestep, const StepTensors& t, Matrix<int64_t>& window) {
  CallbackResult r = o_.callback_on_step_end(global_step_, timestep, callback_tensors(cb_names_, t));
  if (r.stop) stats_.stopped = true;
  if (!r.block_x) return false;
  const Matrix<int64_t>& bx = *r.block_x;
  if (bx.rows != window.rows || bx.cols != window.cols)
    throw InputError("callback returned `block_x` of shape [" + std::to_string(bx.rows) + ", " +
                     std::to_string(bx.cols) + "], expected [" + std::to_string(window.rows) + ", " +
                     std::to_string(window.cols) + "]");
  // Changed cells in earlier blocks make their cached keys and values stale.
  if (cached_)
    for (int64_t b = 0; b < window.rows; ++b)
      for (int64_t j = 0; j < cache_.length; ++j)
        if (window.at(b, j) != bx.at(b, j)) cache_.length = std::min(cache_.length, (j / K_) * K_);
  window = bx;
  return true;
}

}  // namespace llada2
