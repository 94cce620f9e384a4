#include "gen_flags.h"

#include "cli_util.h"
#include "llada2/error.h"
#include "llada2/runtime.h"

namespace llada2::cli {

namespace {

// "none"/"null" -> JSON null, otherwise a number.
nlohmann::ordered_json number_or_null(const std::string& flag, const std::string& s) {
  if (s == "none" || s == "None" || s == "null") return nullptr;
  try {
    size_t pos = 0;
    double d = std::stod(s, &pos);
    if (pos != s.size()) throw std::invalid_argument(s);
    return d;
  } catch (const std::exception&) {
    throw InputError(flag + ": expected a number or 'none', got '" + s + "'");
  }
}

}  // namespace

void GenerationFlags::add(CLI::App& app, const std::string& gen_length_default) {
  app.add_option("--attention", attention, "block_causal (default; exact prefix cache possible) or bidirectional");
  app.add_option("--gen-length", gen_length, "number of generated positions (default " + gen_length_default + ")");
  app.add_option("--block-length", block_length, "block size K (default: the scheduler's, 32)");
  app.add_option("--num-inference-steps", steps, "maximum refinement steps per block (default 32)");
  app.add_option("--threshold", threshold,
                 "confidence above which masked cells are committed (default 0.7; >= 1: pure schedule)");
  app.add_option("--editing-threshold", editing_threshold,
                 "confidence above which filled cells are re-written; 'none' or <= 0 turns editing off (default 0.5)");
  app.add_option("--max-post-steps", max_post_steps, "extra editing forwards after a block has no masks (default 16)");
  app.add_option("--minimal-topk", minimal_topk, "caps the steps at gen_length / minimal_topk (default 1)");
  app.add_option("--temperature", temperature, "sampling temperature; 0 = argmax (default 0)");
  app.add_option("--top-p", top_p, "nucleus filter for sampling, in (0, 1]");
  app.add_option("--top-k", top_k, "top-k filter for sampling (<= 0: off)");
  app.add_option("--sampling-method", sampling_method, "multinomial (default), greedy or auto");
  app.add_flag("--no-eos-early-stop", no_eos_stop, "generate every block even after EOS");
  app.add_option("--eos-token-id", eos_id, "EOS id (default: tokenizer, then config.json)");
  app.add_option("--mask-token-id", mask_id, "mask id (default: tokenizer, then config.json)");
  app.add_option("--seed", seed, "seed of the sampling generator (xoshiro256**)");
  app.add_option("--output-type", output_type, "text (default) or seq");
  app.add_option("--decoding", decoding,
                 "auto (default: llada2.2 for a checkpoint whose config.json has the LLaDA2.2 fields, else llada2.1), "
                 "llada2.1 (diffusers' rules) or llada2.2 (Levenshtein editing: fill, substitute, delete, split; "
                 "its defaults: threshold 0.5, editing threshold 0)");
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)")->check(CLI::Range(1, 4096));
  activations.add(app);
}

void GenerationFlags::apply(const CLI::App& app, nlohmann::ordered_json& call) const {
  if (!attention.empty()) call["attention"] = attention;
  if (app.count("--gen-length")) call["gen_length"] = gen_length;
  if (app.count("--block-length")) call["block_length"] = block_length;
  if (app.count("--num-inference-steps")) call["num_inference_steps"] = steps;
  if (!threshold.empty()) call["threshold"] = number_or_null("--threshold", threshold);
  if (!editing_threshold.empty()) call["editing_threshold"] = number_or_null("--editing-threshold", editing_threshold);
  if (app.count("--max-post-steps")) call["max_post_steps"] = max_post_steps;
  if (app.count("--minimal-topk")) call["minimal_topk"] = minimal_topk;
  if (app.count("--temperature")) call["temperature"] = temperature;
  if (!top_p.empty()) {
    call["top_p"] = number_or_null("--top-p", top_p);
    if (call["top_p"].is_number() && !(call["top_p"].get<double>() > 0.0 && call["top_p"].get<double>() <= 1.0))
      throw InputError("--top-p: expected a number in (0, 1] or 'none', got " + top_p);
  }
  if (app.count("--top-k")) call["top_k"] = top_k;
  if (!sampling_method.empty()) call["sampling_method"] = sampling_method;
  if (no_eos_stop) call["eos_early_stop"] = false;
  if (app.count("--eos-token-id")) call["eos_token_id"] = eos_id;
  if (app.count("--mask-token-id")) call["mask_token_id"] = mask_id;
  if (app.count("--seed")) call["seed"] = seed;
  if (!output_type.empty()) call["output_type"] = output_type;
  if (!decoding.empty()) call["decoding"] = decoding;
  if (activations.exact) call["exact"] = true;
  if (threads > 0) runtime::set_threads(threads);
  activations.apply(app);
}

}  // namespace llada2::cli
