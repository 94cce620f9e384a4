// LLaDA2Pipeline (diffusers v0.39/v0.40): block-wise refinement of a masked canvas.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "llada2/chat_template.h"
#include "llada2/model.h"
#include "llada2/prefix_cache.h"
#include "llada2/scheduler.h"
#include "llada2/tokenizer.h"
#include "llada2/types.h"

namespace llada2 {

// A token-id tensor as the caller gave it: shape (1-D or 2-D expected) and its dtype name.
struct IdTensor {
  std::vector<int64_t> shape;
  std::vector<int64_t> values;
  std::string dtype = "int64";  // anything else is rejected, as the original rejects non-int64 ids

  static IdTensor from_rows(const std::vector<std::vector<int64_t>>& rows);
  static IdTensor from_row(const std::vector<int64_t>& row);
};

// A tensor handed to a step callback.
struct CallbackTensor {
  std::vector<int64_t> shape;
  std::vector<int64_t> ints;  // int64 tensors and bool tensors (0/1)
  std::vector<float> floats;  // float32 tensors
  bool is_bool = false;
  bool is_float = false;
};

struct CallbackResult {
  std::optional<Matrix<int64_t>> block_x;  // replaces the window for the rest of the block
  bool stop = false;                       // end the generation now (e.g. the client went away)
};

// fn(step = global step, timestep = block-local step index, tensors by requested name).
using StepCallback =
    std::function<CallbackResult(int64_t step, int64_t timestep, const std::map<std::string, CallbackTensor>& tensors)>;

// The v0.39+ callback tensor names, then the v0.38 aliases (x0, x0_p, confidence).
const std::vector<std::string>& allowed_callback_tensor_names();

// The decoding rules a call runs (docs/llada22.md).
enum class Decoding {
  Auto,     // LLaDA2.2's when the checkpoint's config.json has the LLaDA2.2 fields, else LLaDA2.1's
  Llada21,  // diffusers' LLaDA2Pipeline + BlockRefinementScheduler (LLaDA2.0 / LLaDA2.1)
  Llada22,  // LLaDA2.2's Levenshtein editing: fill, substitute, delete and split cells
};
// "auto" | "llada2.1" | "llada2.2"; throws InputError otherwise.
Decoding parse_decoding(const std::string& s);
const char* decoding_name(Decoding d);

// The arguments of the LLaDA2.2 decoding that differ from the LLaDA2.1 rules'; the others
// (num_inference_steps, max_post_steps, temperature, top_p, top_k, sampling_method, eos_early_stop,
// the ids) are GenerateOptions' own. Defaults: the model's own generate().
struct LevenshteinOptions {
  double threshold = 0.5;                         // masks whose confidence is above it are filled
  std::optional<double> editing_threshold = 0.0;  // cells whose argmax confidence is above it take it; None: never
  int64_t max_iterations = 1000;                  // forwards of one block at most
  bool mask_in_argmax = true;                     // picks range over every id, the mask id included
};

// Keyword arguments of LLaDA2Pipeline.__call__; std::nullopt plays Python's None.
struct GenerateOptions {
  std::optional<std::variant<std::string, std::vector<std::string>>> prompt;
  std::optional<nlohmann::ordered_json> messages;  // one conversation: [{role, content}, ...]
  std::optional<IdTensor> input_ids;
  std::optional<IdTensor> attention_mask;
  bool use_chat_template = true;
  bool add_generation_prompt = true;
  int64_t gen_length = 2048;
  std::optional<int64_t> block_length;              // None: the scheduler's
  std::optional<int64_t> num_inference_steps = 32;  // None: the scheduler's
  double temperature = 0.0;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::string sampling_method = "multinomial";
  std::optional<double> threshold = 0.7;          // None: the scheduler's
  std::optional<double> editing_threshold = 0.5;  // None: the scheduler's (whose default is off)
  int64_t max_post_steps = 16;
  std::optional<int64_t> minimal_topk = 1;  // None: the scheduler's
  bool eos_early_stop = true;
  std::optional<int64_t> eos_token_id;
  std::optional<int64_t> mask_token_id;
  std::string output_type = "text";
  bool return_dict = true;
  std::optional<uint64_t> seed;  // the generator; None: a fresh random seed
  AttentionMode attention = AttentionMode::BlockCausal;
  // block_causal only: prefill the prompt once and reuse the keys/values of final blocks (exact).
  bool use_kv_cache = true;
  // Not a diffusers argument. The original ends a block for the whole batch (editing goes on for
  // a row that has no masks left while another row still has some); with independent_rows each
  // row ends its block when it would alone and is then left as it is, so every row computes what
  // it computes in a batch of its own. The server sets it when it batches unrelated requests.
  bool independent_rows = false;
  // Not a diffusers argument. Exact reuse of earlier calls' keys and values (llada2/prefix_cache.h,
  // block_causal with use_kv_cache): one entry per row, or null; the call starts from the longest
  // block-aligned prefix that every row shares with its entry, and computes only the rest.
  std::vector<std::shared_ptr<const CachedPrefix>> reuse_prefixes;
  // Not a diffusers argument: return each row's final keys and values (PipelineOutput::prefixes).
  bool keep_prefixes = false;
  StepCallback callback_on_step_end;
  std::optional<std::vector<std::string>> callback_on_step_end_tensor_inputs;  // None: ["block_x"]
  // Not diffusers arguments: the decoding rules, and the LLaDA2.2 rules' own arguments (a call
  // object's `threshold` and `editing_threshold` set both theirs and these).
  Decoding decoding = Decoding::Auto;
  LevenshteinOptions levenshtein;
  // Not a diffusers argument. The LLaDA2.2 rules draw from one generator per row, so that a row
  // draws the same whatever rows share its call: row b's is seeded with row_seeds[b] when given (one
  // per row), else with row_seed(seed, b). The LLaDA2.1 rules draw from the one generator `seed`
  // seeds, as diffusers does, and ignore it.
  std::optional<std::vector<uint64_t>> row_seeds;
};

// The seed of row `row`'s generator in a LLaDA2.2 call seeded with `seed`: `seed` itself for row 0
// (a one-row call draws as its seed says), a splitmix64 mix of both for the others.
uint64_t row_seed(uint64_t seed, int64_t row);

struct GenerationStats {
  bool stopped = false;  // a callback ended the generation early
  int64_t forwards = 0;
  int64_t generated_tokens = 0;  // non-mask cells of `sequences`
  int64_t reused_positions = 0;  // per row: leading positions whose keys/values came from reuse_prefixes
  double seconds = 0.0;
  double tokens_per_second() const { return seconds > 0 ? double(generated_tokens) / seconds : 0.0; }
  double tokens_per_forward() const { return forwards > 0 ? double(generated_tokens) / double(forwards) : 0.0; }
};

struct PipelineOutput {
  Matrix<int64_t> sequences;                      // [B, gen_length]
  std::optional<std::vector<std::string>> texts;  // None for output_type "seq" or without a tokenizer
  GenerationStats stats;
  // keep_prefixes: per row, the final keys and values of the canvas (null for a row with padding or
  // when nothing was cached: bidirectional attention, use_kv_cache off).
  std::vector<std::shared_ptr<const CachedPrefix>> prefixes;
};

// A call's arguments resolved once (Pipeline::resolve): validated in the original's order, defaults
// taken from the scheduler config, the tokenizer and config.json, the prompt encoded. Only the
// callback fields of `options` may be changed before running it (e.g. a progress view that needs the
// prompt length attaches its callback after resolving).
struct ResolvedCall {
  GenerateOptions options;      // as given
  Matrix<int64_t> prompt_ids;   // [B, P]
  Matrix<int64_t> prompt_mask;  // [B, P]: 1 real token, 0 padding
  int64_t block_length = 0;     // K
  int64_t steps = 0;            // refinement steps of a block: min(num_inference_steps, gen_length / minimal_topk)
  double threshold = 0.0;
  std::optional<double> editing_threshold;  // None or <= 0: editing off
  int64_t mask_token_id = 0;
  std::optional<int64_t> eos_token_id;
  SamplingParams sampling;
  Decoding decoding = Decoding::Llada21;  // Auto resolved
  // Llada22: the edit ids (config.json; absent: no deletions or insertions) and the stop ids: the
  // EOS id above and generation_config.json's.
  std::optional<int64_t> delete_token_id, split_token_id;
  std::vector<int64_t> stop_token_ids;

  int64_t batch() const { return prompt_ids.rows; }
  int64_t prompt_length() const { return prompt_ids.cols; }
  int64_t gen_length() const { return options.gen_length; }
  // The canvas holds whole blocks: prompt, generated cells, then masks up to the block boundary.
  int64_t num_blocks() const { return (prompt_length() + gen_length() + block_length - 1) / block_length; }
  // Blocks wholly inside the prompt are never denoised.
  int64_t first_block() const { return prompt_length() / block_length; }
  bool editing() const { return editing_threshold && *editing_threshold > 0.0; }
};

// Where an iteration of the LLaDA2.2 rules deleted and inserted cells of a row's active block, as
// positions in the block after it (for live views): `inserted`, the masks its splits put in;
// `deleted`, for each deleted cell, the position of the cell that now follows it (K at the end). From
// the step callback's tensors of the row over the K cells: sampled_tokens (the written block),
// transfer_index and editing_transfer_index (the written cells), and the call's edit ids
// (ResolvedCall::delete_token_id / split_token_id; none: nothing to find).
struct BlockEdits {
  std::vector<int64_t> deleted, inserted;
};
BlockEdits block_edits(const int64_t* written, const int64_t* filled, const int64_t* edited, int64_t K,
                       std::optional<int64_t> delete_id, std::optional<int64_t> split_id);

// The text of one generated row as the pipeline returns it: cut after the first `eos_id` (which is
// kept, then skipped as a special token) and decoded with special tokens skipped.
std::string decode_generated(const Tokenizer& tokenizer, const int64_t* ids, int64_t n, std::optional<int64_t> eos_id);

class Pipeline {
 public:
  // `tokenizer` may be null: then only `input_ids` calls work and `texts` is None.
  Pipeline(std::shared_ptr<const Model> model, SchedulerConfig scheduler = {},
           std::shared_ptr<const Tokenizer> tokenizer = nullptr);

  // Loads DIR's model and, when DIR has a tokenizer.json, its tokenizer and chat template.
  static Pipeline from_pretrained(const std::string& dir, SchedulerConfig scheduler = {});

  const Model& model() const { return *model_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const ChatTemplate* chat_template() const { return chat_template_.get(); }
  const SchedulerConfig& scheduler_config() const { return scheduler_; }

  // Renders a conversation with the chat template and the tokenizer's special tokens (as
  // apply_chat_template(tokenize=False)); throws InputError without a tokenizer or template.
  std::string apply_chat_template(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                  bool add_generation_prompt) const;

  // Validates a call and resolves its arguments; throws InputError for invalid arguments with the
  // original's messages. Runs no forward and reads no weight (so a large model's bad call fails fast).
  ResolvedCall resolve(const GenerateOptions& options) const;

  // Runs one call: resolve(options), then the block loop.
  PipelineOutput operator()(const GenerateOptions& options) const;
  PipelineOutput operator()(const ResolvedCall& call) const;

 private:
  std::shared_ptr<const Model> model_;
  SchedulerConfig scheduler_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<const ChatTemplate> chat_template_;
};

}  // namespace llada2
