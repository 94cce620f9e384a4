// LLaDA2Pipeline.__call__ (SPEC B §2.3–2.12 as decided in Part A).
#include "llada2/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "llada2/error.h"
#include "pipeline/prompt.h"

#include <filesystem>

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

const std::vector<std::string>& allowed_callback_tensor_names() {
  static const std::vector<std::string> names = {
      "block_x", "transfer_index", "editing_transfer_index", "sampled_tokens", "sampled_probs", "active_block", "x0",
      "x0_p",    "confidence"};
  return names;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "torch.Size([";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "])";
}

std::string list_str(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", '" : "'") + v[i] + "'";
  return out + "]";
}

void require_positive(const char* name, int64_t v) {
  if (v <= 0) throw InputError(std::string("`") + name + "` must be > 0, got " + std::to_string(v) + ".");
}

// check_inputs (SPEC §2.4 #1–#14), in the original's order.
void check_inputs(const GenerateOptions& o, bool has_tokenizer, int64_t K, int64_t steps, int64_t minimal_topk,
                  double threshold) {
  if (!o.prompt && !o.messages && !o.input_ids)
    throw InputError("Provide one of `prompt`, `messages`, or `input_ids`.");
  if (o.prompt && o.messages) throw InputError("Provide either `prompt` or `messages`, not both.");
  if (o.input_ids) {
    if (o.input_ids->shape.size() != 1 && o.input_ids->shape.size() != 2)
      throw InputError("`input_ids` must be 1D or 2D, got shape " + shape_str(o.input_ids->shape) + ".");
    if (o.input_ids->dtype != "int64")
      throw InputError("`input_ids` must be int64 token IDs, got dtype=" + o.input_ids->dtype + ".");
  } else if (!has_tokenizer) {
    throw InputError("Tokenizer is required when `input_ids` is not provided.");
  }
  require_positive("gen_length", o.gen_length);
  require_positive("block_length", K);
  require_positive("num_inference_steps", steps);
  require_positive("minimal_topk", minimal_topk);
  if (!(threshold >= 0.0))
    throw InputError("`threshold` must be in [0, 1] (or > 1 to force top-k commits), got " + std::to_string(threshold) +
                     ".");
  parse_sampling_method(o.sampling_method);
  if (o.output_type != "seq" && o.output_type != "text")
    throw InputError("`output_type` must be 'seq' or 'text', got '" + o.output_type + "'.");
  if (o.callback_on_step_end_tensor_inputs) {
    const auto& allowed = allowed_callback_tensor_names();
    std::vector<std::string> bad;
    for (const auto& k : *o.callback_on_step_end_tensor_inputs)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) bad.push_back(k);
    if (!bad.empty())
      throw InputError("`callback_on_step_end_tensor_inputs` has to be in " + list_str(allowed) + ", but found " +
                       list_str(bad));
  }
}

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

}  // namespace

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

std::pair<std::optional<int64_t>, std::optional<int64_t>> Pipeline::special_ids(const GenerateOptions& o) const {
  std::optional<int64_t> mask_id = o.mask_token_id, eos_id = o.eos_token_id;
  if (!mask_id && tokenizer_) mask_id = tokenizer_->mask_token_id();
  if (!mask_id) mask_id = model_->config().mask_token_id;
  if (!eos_id && tokenizer_) eos_id = tokenizer_->eos_token_id();
  if (!eos_id) eos_id = model_->config().eos_token_id;
  return {mask_id, eos_id};
}

std::pair<Matrix<int64_t>, Matrix<int64_t>> Pipeline::encode_prompt(const GenerateOptions& o) const {
  if (o.input_ids) {
    const IdTensor& ids = *o.input_ids;
    if (ids.shape.size() != 1 && ids.shape.size() != 2)
      throw InputError("`input_ids` must be 1D or 2D, got shape " + shape_str(ids.shape) + ".");
    const int64_t B = ids.shape.size() == 2 ? ids.shape[0] : 1, P = ids.shape.back();
    Matrix<int64_t> m(B, P), mask(B, P, 1);
    m.data = ids.values;
    if (o.attention_mask && int64_t(o.attention_mask->values.size()) == B * P) mask.data = o.attention_mask->values;
    return {m, mask};
  }
  if (!tokenizer_) throw InputError("Tokenizer is required when `input_ids` is not provided.");
  if (!o.prompt && !o.messages) throw InputError("Provide one of `prompt`, `messages`, or `input_ids`.");
  PreparedPrompt pp = prepare_prompt(o, *tokenizer_, chat_template_.get());
  return {pp.ids, pp.mask};
}

PipelineOutput Pipeline::operator()(const GenerateOptions& o) const { return run(o, false); }

void Pipeline::check(const GenerateOptions& o) const { run(o, true); }

PipelineOutput Pipeline::run(const GenerateOptions& o, bool check_only) const {
  const auto t_start = std::chrono::steady_clock::now();
  const ModelConfig& cfg = model_->config();
  const int64_t K = o.block_length.value_or(scheduler_.block_length);
  const int64_t steps_arg = o.num_inference_steps.value_or(scheduler_.num_inference_steps);
  const int64_t minimal_topk = o.minimal_topk.value_or(scheduler_.minimal_topk);
  const double threshold = o.threshold.value_or(scheduler_.threshold);
  check_inputs(o, tokenizer_ != nullptr, K, steps_arg, minimal_topk, threshold);

  // Prompt ids [B, P] and their 2-D mask: given, or from the tokenizer (+ chat template).
  IdTensor ids;
  Matrix<int64_t> prompt_mask;
  if (o.input_ids) {
    ids = *o.input_ids;
  } else {
    PreparedPrompt pp = prepare_prompt(o, *tokenizer_, chat_template_.get());
    ids.shape = {pp.ids.rows, pp.ids.cols};
    ids.values = pp.ids.data;
    prompt_mask = pp.mask;
  }
  const int64_t B = ids.shape.size() == 2 ? ids.shape[0] : 1;
  const int64_t P = ids.shape.back();
  if (B <= 0) throw InputError("`input_ids` has no rows.");
  if (P <= 0) throw InputError("`input_ids` has no columns: the prompt needs at least one token.");
  if (o.input_ids) prompt_mask = Matrix<int64_t>(B, P, 1);
  if (o.input_ids && o.attention_mask) {
    const IdTensor& am = *o.attention_mask;
    std::vector<int64_t> am_shape = am.shape.size() == 1 ? std::vector<int64_t>{1, am.shape[0]} : am.shape;
    if (am_shape != std::vector<int64_t>{B, P})
      throw InputError("`attention_mask` shape " + shape_str(am_shape) + " must match `input_ids` shape " +
                       shape_str({B, P}) + ".");
    prompt_mask.data = am.values;
  }
  const auto [mask_id, eos_id] = special_ids(o);
  if (!mask_id)
    throw InputError(
        "`mask_token_id` must be provided (or available on the tokenizer): pass mask_token_id / "
        "--mask-token-id, or add mask_token to tokenizer_config.json or mask_token_id to config.json.");
  const int64_t V = cfg.vocab_size;
  if (*mask_id < 0 || *mask_id >= V)
    throw InputError("`mask_token_id` " + std::to_string(*mask_id) + " is outside the vocabulary [0, " +
                     std::to_string(V) + ")");
  for (int64_t v : ids.values)
    if (v < 0 || v >= V)
      throw InputError("`input_ids` contains " + std::to_string(v) + ", outside the vocabulary [0, " +
                       std::to_string(V) + ")");

  const int64_t G = o.gen_length;
  const int64_t steps = std::min(steps_arg, G / minimal_topk);
  BlockRefinementScheduler scheduler(scheduler_);
  scheduler.set_timesteps(steps, K);

  SamplingParams sampling;
  sampling.temperature = o.temperature;
  sampling.top_p = o.top_p;
  sampling.top_k = o.top_k;
  sampling.method = parse_sampling_method(o.sampling_method);
  // The scheduler raises these at its first step, which always comes: check before the first forward.
  sampling.validate();
  if (check_only) return {};

  const std::optional<double> editing_threshold =
      o.editing_threshold ? o.editing_threshold : scheduler_.editing_threshold;
  const bool editing_enabled = editing_threshold && *editing_threshold > 0.0;
  const bool per_row = o.independent_rows;
  const std::vector<std::string> cb_names =
      o.callback_on_step_end_tensor_inputs.value_or(std::vector<std::string>{"block_x"});
  // Logits are needed for masked cells, for editable cells while editing is on, and for every cell
  // when the callback asks for the sampled tokens or probabilities.
  const bool callback_reads_samples =
      o.callback_on_step_end && std::any_of(cb_names.begin(), cb_names.end(), [](const std::string& n) {
        return n == "sampled_tokens" || n == "sampled_probs" || n == "x0" || n == "x0_p" || n == "confidence";
      });
  Rng rng(o.seed ? *o.seed : random_seed());

  // Canvas [B, T]: prompt, then mask ids; the 2-D key mask covers prompt padding and the tail.
  const int64_t num_blocks = (P + G + K - 1) / K;
  const int64_t T = num_blocks * K;
  Matrix<int64_t> x(B, T, *mask_id);
  Matrix<int64_t> key_mask(B, T, 0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < P; ++j) {
      x.at(b, j) = ids.values[size_t(b * P + j)];
      key_mask.at(b, j) = prompt_mask.at(b, j) != 0 ? 1 : 0;
    }
    for (int64_t j = P; j < P + G; ++j) key_mask.at(b, j) = 1;
  }

  const bool cached = o.use_kv_cache && o.attention == AttentionMode::BlockCausal;
  KvCache cache;
  if (cached) cache = model_->make_cache(B, T);
  // Brings the cache up to `upto` (a block boundary) in block-aligned chunks, so the forward of a
  // step only computes the blocks that changed.
  const int64_t prefill_chunk = K * std::max<int64_t>(1, 512 / K);
  auto prefill = [&](const Matrix<int64_t>& window, const Matrix<int64_t>& wmask, int64_t upto) {
    while (upto - cache.length > prefill_chunk) {
      const int64_t end = cache.length + prefill_chunk;
      Matrix<int64_t> ids(B, end), km(B, end);
      for (int64_t b = 0; b < B; ++b) {
        std::copy_n(window.row(b), end, ids.row(b));
        std::copy_n(wmask.row(b), end, km.row(b));
      }
      ForwardBatch fb;
      fb.batch = B;
      fb.window = end;
      fb.input_ids = ids.data.data();
      fb.key_mask = km.data.data();
      fb.attention = o.attention;
      fb.block_length = K;
      fb.logits_from = end;
      fb.commit_to = end;
      model_->forward(fb, nullptr, nullptr, &cache);
    }
  };

  std::vector<uint8_t> finished(size_t(B), 0);
  int64_t global_step = 0;
  PipelineOutput out;
  std::vector<float> logits;
  for (int64_t n = P / K; n < num_blocks; ++n) {
    const int64_t W = (n + 1) * K;
    Matrix<int64_t> window(B, W);
    Matrix<int64_t> wmask(B, W);
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(x.row(b), W, window.row(b));
      std::copy_n(key_mask.row(b), W, wmask.row(b));
    }
    std::vector<uint8_t> prompt_flag(static_cast<size_t>(K));
    for (int64_t j = 0; j < K; ++j) prompt_flag[size_t(j)] = (n * K + j) < P;
    int64_t post_steps = 0, step_idx = 0;
    // independent_rows: each row's own step count, post steps and whether its block has ended.
    std::vector<int64_t> row_steps(size_t(B), 0), row_post(size_t(B), 0);
    std::vector<uint8_t> row_ended(size_t(B), 0), row_masks(size_t(B), 0);
    for (;;) {
      Matrix<int64_t> blk(B, K);
      bool masks_remaining = false;
      for (int64_t b = 0; b < B; ++b) {
        row_masks[size_t(b)] = 0;
        for (int64_t j = 0; j < K; ++j) {
          blk.at(b, j) = window.at(b, W - K + j);
          if (blk.at(b, j) == *mask_id) masks_remaining = true, row_masks[size_t(b)] = 1;
        }
        if (per_row && !row_masks[size_t(b)] && !row_ended[size_t(b)]) ++row_post[size_t(b)];
      }
      if (!masks_remaining) ++post_steps;
      Matrix<uint8_t> needed(B, K, 1);
      if (!callback_reads_samples)
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < K; ++j)
            needed.at(b, j) = !(per_row && row_ended[size_t(b)]) &&
                              (blk.at(b, j) == *mask_id || (editing_enabled && !prompt_flag[size_t(j)]));

      ForwardBatch fb;
      fb.batch = B;
      fb.window = W;
      fb.input_ids = window.data.data();
      fb.key_mask = wmask.data.data();
      fb.attention = o.attention;
      fb.block_length = K;
      fb.logits_from = W - K;
      fb.commit_to = W - K;
      fb.logits_rows = needed.data.data();
      logits.resize(size_t(B * K * V));
      if (cached) {
        prefill(window, wmask, W - K);
        model_->forward(fb, logits.data(), nullptr, &cache);
      } else {
        model_->forward(fb, logits.data());
      }
      ++out.stats.forwards;

      SchedulerStepOutput so = scheduler.step(logits.data(), V, step_idx, blk, *mask_id, sampling, threshold,
                                              editing_threshold, prompt_flag, &rng, &needed);
      Matrix<uint8_t> active(B, K);
      Matrix<uint8_t> final_transfer(B, K);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < K; ++j) {
          active.at(b, j) = blk.at(b, j) == *mask_id;
          bool f = so.transfer_index.at(b, j) || so.editing_transfer_index.at(b, j);
          if (o.eos_early_stop && finished[size_t(b)]) f = false;  // finished rows are frozen
          if (per_row && row_ended[size_t(b)]) f = false;          // so are rows whose block ended
          final_transfer.at(b, j) = f;
          if (f) window.at(b, W - K + j) = so.prev_sample.at(b, j);
        }
      if (o.eos_early_stop && eos_id)
        BlockRefinementScheduler::check_eos_finished(window, so.sampled_tokens, final_transfer, finished, *eos_id,
                                                     *mask_id, P);
      if (o.callback_on_step_end) {
        std::map<std::string, CallbackTensor> kw;
        for (const std::string& name : cb_names) {
          if (name == "block_x")
            kw[name] = int_tensor(window);
          else if (name == "transfer_index")
            kw[name] = bool_tensor(so.transfer_index);
          else if (name == "editing_transfer_index")
            kw[name] = bool_tensor(so.editing_transfer_index);
          else if (name == "sampled_tokens" || name == "x0")
            kw[name] = int_tensor(so.sampled_tokens);
          else if (name == "sampled_probs" || name == "x0_p")
            kw[name] = float_tensor(so.sampled_probs);
          else if (name == "active_block")
            kw[name] = bool_tensor(active);
          else if (name == "confidence") {
            Matrix<float> c = so.sampled_probs;
            for (size_t i = 0; i < c.data.size(); ++i)
              if (!active.data[i]) c.data[i] = -std::numeric_limits<float>::infinity();
            kw[name] = float_tensor(c);
          }
        }
        CallbackResult r = o.callback_on_step_end(global_step, step_idx, kw);
        if (r.block_x) {
          if (r.block_x->rows != B || r.block_x->cols != W)
            throw InputError("callback returned `block_x` of shape [" + std::to_string(r.block_x->rows) + ", " +
                             std::to_string(r.block_x->cols) + "], expected [" + std::to_string(B) + ", " +
                             std::to_string(W) + "]");
          // Changed cells in earlier blocks make their cached keys/values stale.
          if (cached && !std::equal(window.data.begin(), window.data.end(), r.block_x->data.begin())) {
            for (int64_t b = 0; b < B; ++b)
              for (int64_t j = 0; j < cache.length; ++j)
                if (window.at(b, j) != r.block_x->at(b, j)) cache.length = std::min(cache.length, (j / K) * K);
          }
          window = *r.block_x;
        }
        if (r.stop) out.stats.stopped = true;
      }
      ++global_step;
      if (out.stats.stopped) break;
      if (masks_remaining) ++step_idx;
      if (per_row) {
        // Each row ends its block when it would alone; the block goes on while any row continues.
        bool any_continues = false;
        for (int64_t b = 0; b < B; ++b) {
          if (row_ended[size_t(b)]) continue;
          if (row_masks[size_t(b)]) ++row_steps[size_t(b)];
          Matrix<uint8_t> edits(1, K);
          std::copy_n(so.editing_transfer_index.row(b), K, edits.row(0));
          const std::vector<uint8_t> fin_b(1, finished[size_t(b)]);
          if (BlockRefinementScheduler::check_block_should_continue(row_steps[size_t(b)], row_masks[size_t(b)],
                                                                    editing_enabled, edits, row_post[size_t(b)],
                                                                    o.max_post_steps, fin_b, steps))
            any_continues = true;
          else
            row_ended[size_t(b)] = 1;
        }
        if (!any_continues) break;
      } else if (!BlockRefinementScheduler::check_block_should_continue(step_idx, masks_remaining, editing_enabled,
                                                                        so.editing_transfer_index, post_steps,
                                                                        o.max_post_steps, finished, steps)) {
        break;
      }
    }
    for (int64_t b = 0; b < B; ++b) std::copy_n(window.row(b), W, x.row(b));
    if (out.stats.stopped) break;
    if (o.eos_early_stop && std::all_of(finished.begin(), finished.end(), [](uint8_t f) { return f != 0; })) break;
  }

  out.sequences = Matrix<int64_t>(B, G);
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(x.row(b) + P, G, out.sequences.row(b));
    for (int64_t j = 0; j < G; ++j)
      if (out.sequences.at(b, j) != *mask_id) ++out.stats.generated_tokens;
  }
  if (o.output_type == "text" && tokenizer_) {
    // Cut after the first EOS (kept, then skipped as a special token) and decode.
    std::vector<std::string> texts;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> row(out.sequences.row(b), out.sequences.row(b) + G);
      if (eos_id) {
        auto it = std::find(row.begin(), row.end(), *eos_id);
        if (it != row.end()) row.erase(it + 1, row.end());
      }
      texts.push_back(tokenizer_->decode(row, true));
    }
    out.texts = std::move(texts);
  }
  out.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return out;
}

}  // namespace llada2
