// Pipeline::resolve: a call's arguments validated and resolved once, before any forward. The checks
// and their messages follow LLaDA2Pipeline.check_inputs and the argument handling of __call__, in
// the original's order, so the first error a call has is the one the original raises.
#include <algorithm>

#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "pipeline/prompt.h"

namespace llada2 {

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

// LLaDA2Pipeline.check_inputs: the argument checks made before the prompt is encoded.
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

// The prompt as given (input_ids + attention_mask) or encoded with the tokenizer (+ chat template).
void resolve_prompt(const GenerateOptions& o, const Tokenizer* tok, const ChatTemplate* tpl, ResolvedCall& call) {
  if (!o.input_ids) {
    PreparedPrompt pp = prepare_prompt(o, *tok, tpl);
    call.prompt_ids = std::move(pp.ids);
    call.prompt_mask = std::move(pp.mask);
  } else {
    const IdTensor& ids = *o.input_ids;
    call.prompt_ids = Matrix<int64_t>(ids.shape.size() == 2 ? ids.shape[0] : 1, ids.shape.back());
    call.prompt_ids.data = ids.values;
  }
  const int64_t B = call.batch(), P = call.prompt_length();
  if (B <= 0) throw InputError("`input_ids` has no rows.");
  if (P <= 0) throw InputError("`input_ids` has no columns: the prompt needs at least one token.");
  if (!o.input_ids) return;
  call.prompt_mask = Matrix<int64_t>(B, P, 1);
  if (o.attention_mask) {
    const IdTensor& am = *o.attention_mask;
    std::vector<int64_t> am_shape = am.shape.size() == 1 ? std::vector<int64_t>{1, am.shape[0]} : am.shape;
    if (am_shape != std::vector<int64_t>{B, P})
      throw InputError("`attention_mask` shape " + shape_str(am_shape) + " must match `input_ids` shape " +
                       shape_str({B, P}) + ".");
    call.prompt_mask.data = am.values;
  }
}

// The decoding rules (Auto: LLaDA2.2's for a LLaDA2.2 config) and, for LLaDA2.2's, its checks and ids.
void resolve_decoding(const GenerateOptions& o, const ModelConfig& cfg, ResolvedCall& call) {
  call.decoding = o.decoding != Decoding::Auto ? o.decoding : cfg.llada22 ? Decoding::Llada22 : Decoding::Llada21;
  if (call.decoding != Decoding::Llada22) return;
  const LevenshteinOptions& lv = o.levenshtein;
  if (!(lv.threshold >= 0.0))
    throw InputError("`threshold` must be >= 0 (the LLaDA2.2 decoding fills masks above it), got " +
                     std::to_string(lv.threshold) + ".");
  if (o.max_post_steps < 0)
    throw InputError("`max_post_steps` must be >= 0, got " + std::to_string(o.max_post_steps) + ".");
  if (lv.max_iterations <= 0)
    throw InputError("`max_iterations` must be > 0, got " + std::to_string(lv.max_iterations) + ".");
  call.delete_token_id = cfg.delete_token_id;
  call.split_token_id = cfg.split_token_id;
  for (const auto& [name, id] :
       {std::pair{"delete_token_id", cfg.delete_token_id}, {"split_token_id", cfg.split_token_id}})
    if (id == call.mask_token_id)
      throw InputError("the mask id " + std::to_string(call.mask_token_id) + " is config.json's " + name +
                       ": the LLaDA2.2 decoding needs them apart");
  if (call.eos_token_id) call.stop_token_ids.push_back(*call.eos_token_id);
  for (int64_t id : cfg.stop_token_ids)
    if (std::find(call.stop_token_ids.begin(), call.stop_token_ids.end(), id) == call.stop_token_ids.end())
      call.stop_token_ids.push_back(id);
}

}  // namespace

ResolvedCall Pipeline::resolve(const GenerateOptions& o) const {
  ResolvedCall call;
  call.options = o;
  call.block_length = o.block_length.value_or(scheduler_.block_length);
  const int64_t steps = o.num_inference_steps.value_or(scheduler_.num_inference_steps);
  const int64_t minimal_topk = o.minimal_topk.value_or(scheduler_.minimal_topk);
  call.threshold = o.threshold.value_or(scheduler_.threshold);
  check_inputs(o, tokenizer_ != nullptr, call.block_length, steps, minimal_topk, call.threshold);
  resolve_prompt(o, tokenizer_.get(), chat_template_.get(), call);

  // The mask and EOS ids: the call's, else the tokenizer's, else config.json's.
  const ModelConfig& cfg = model_->config();
  std::optional<int64_t> mask_id = o.mask_token_id;
  if (!mask_id && tokenizer_) mask_id = tokenizer_->mask_token_id();
  if (!mask_id) mask_id = cfg.mask_token_id;
  call.eos_token_id = o.eos_token_id;
  if (!call.eos_token_id && tokenizer_) call.eos_token_id = tokenizer_->eos_token_id();
  if (!call.eos_token_id) call.eos_token_id = cfg.eos_token_id;
  if (!mask_id)
    throw InputError(
        "`mask_token_id` must be provided (or available on the tokenizer): pass mask_token_id / "
        "--mask-token-id, or add mask_token to tokenizer_config.json or mask_token_id to config.json.");
  const int64_t V = cfg.vocab_size;
  if (*mask_id < 0 || *mask_id >= V)
    throw InputError("`mask_token_id` " + std::to_string(*mask_id) + " is outside the vocabulary [0, " +
                     std::to_string(V) + ")");
  call.mask_token_id = *mask_id;
  for (int64_t v : call.prompt_ids.data)
    if (v < 0 || v >= V)
      throw InputError("`input_ids` contains " + std::to_string(v) + ", outside the vocabulary [0, " +
                       std::to_string(V) + ")");

  // Positions beyond the model's were never trained: refuse instead of answering with noise.
  if (cfg.max_position_embeddings > 0 && call.prompt_length() + o.gen_length > cfg.max_position_embeddings)
    throw InputError("the prompt (" + std::to_string(call.prompt_length()) + " tokens) and gen_length (" +
                     std::to_string(o.gen_length) + ") need " + std::to_string(call.prompt_length() + o.gen_length) +
                     " positions, but the model has " + std::to_string(cfg.max_position_embeddings) +
                     " (max_position_embeddings in config.json): shorten the prompt or generate less");

  call.steps = std::min(steps, o.gen_length / minimal_topk);
  BlockRefinementScheduler(scheduler_).set_timesteps(call.steps, call.block_length);  // rejects 0 steps
  call.editing_threshold = o.editing_threshold ? o.editing_threshold : scheduler_.editing_threshold;
  call.sampling.temperature = o.temperature;
  call.sampling.top_p = o.top_p;
  call.sampling.top_k = o.top_k;
  call.sampling.method = parse_sampling_method(o.sampling_method);
  // The scheduler raises these at its first step, which always comes: check before the first forward.
  call.sampling.validate();
  if (o.row_seeds && int64_t(o.row_seeds->size()) != call.batch())
    throw InputError("`row_seeds` has " + std::to_string(o.row_seeds->size()) + " seeds for " +
                     std::to_string(call.batch()) + " rows: give one per row");
  resolve_decoding(o, cfg, call);
  return call;
}

}  // namespace llada2
