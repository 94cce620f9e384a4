// llada2 generate: one pipeline call from flags and/or a --call JSON file.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "llada2/call_json.h"
#include "llada2/error.h"
#include "llada2/pipeline.h"

namespace llada2::cli {

namespace {

nlohmann::ordered_json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  try {
    return nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
}

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

std::vector<int64_t> parse_id_list(const std::string& s) {
  std::vector<int64_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t pos = 0;
      long long v = std::stoll(item, &pos);
      if (pos != item.size()) throw std::invalid_argument(item);
      ids.push_back(v);
    } catch (const std::exception&) {
      throw InputError("--input-ids: '" + item + "' is not a token id (expected e.g. 12,7,99)");
    }
  }
  return ids;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  CLI::App app{
      "Generate with the LLaDA2 block-refinement pipeline (diffusers LLaDA2Pipeline semantics).\n"
      "Arguments come from --call FILE.json (keys named like the Python keyword arguments) and/or flags;\n"
      "flags override the file.",
      "llada2 generate"};
  std::string model_dir, call_file, attention, prompt, messages_file, input_ids, sampling_method, output_type;
  std::string threshold, editing_threshold, top_p;
  int64_t gen_length = 0, block_length = 0, steps = 0, max_post_steps = -1, minimal_topk = 0, top_k = -1;
  int64_t eos_id = -1, mask_id = -1, seed = -1;
  int threads = 0;
  double temperature = -1;
  bool json_out = false, no_eos_stop = false;
  app.add_option("-m,--model", model_dir, "checkpoint folder (config.json + *.safetensors)")->required();
  app.add_option("--call", call_file, "JSON file with the pipeline arguments (e.g. {\"input_ids\": [[...]], \"gen_length\": 32})");
  app.add_flag("--json", json_out, "print exactly one JSON object: {sequences, texts, stats}");
  app.add_option("--attention", attention, "block_causal (default; exact prefix cache possible) or bidirectional");
  app.add_option("-p,--prompt", prompt, "prompt text (needs the checkpoint's tokenizer)");
  app.add_option("--messages", messages_file, "JSON file with one conversation [{role, content}, ...] (needs a tokenizer)");
  app.add_option("--input-ids", input_ids, "comma-separated prompt token ids, e.g. 12,7,99");
  app.add_option("--gen-length", gen_length, "number of generated positions (default 2048)");
  app.add_option("--block-length", block_length, "block size K (default: the scheduler's, 32)");
  app.add_option("--num-inference-steps", steps, "maximum refinement steps per block (default 32)");
  app.add_option("--threshold", threshold, "confidence above which masked cells are committed (default 0.7; >= 1: pure schedule)");
  app.add_option("--editing-threshold", editing_threshold, "confidence above which filled cells are re-written; 'none' or <= 0 turns editing off (default 0.5)");
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
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;

  nlohmann::ordered_json call = call_file.empty() ? nlohmann::ordered_json::object() : read_json_file(call_file);
  if (!call.is_object()) throw InputError(call_file + ": must contain a JSON object of pipeline arguments");
  if (!attention.empty()) call["attention"] = attention;
  if (!prompt.empty()) call["prompt"] = prompt;
  if (!messages_file.empty()) call["messages"] = read_json_file(messages_file);
  if (!input_ids.empty()) call["input_ids"] = nlohmann::ordered_json::array({parse_id_list(input_ids)});
  if (app.count("--gen-length")) call["gen_length"] = gen_length;
  if (app.count("--block-length")) call["block_length"] = block_length;
  if (app.count("--num-inference-steps")) call["num_inference_steps"] = steps;
  if (!threshold.empty()) call["threshold"] = number_or_null("--threshold", threshold);
  if (!editing_threshold.empty()) call["editing_threshold"] = number_or_null("--editing-threshold", editing_threshold);
  if (app.count("--max-post-steps")) call["max_post_steps"] = max_post_steps;
  if (app.count("--minimal-topk")) call["minimal_topk"] = minimal_topk;
  if (app.count("--temperature")) call["temperature"] = temperature;
  if (!top_p.empty()) call["top_p"] = number_or_null("--top-p", top_p);
  if (app.count("--top-k")) call["top_k"] = top_k;
  if (!sampling_method.empty()) call["sampling_method"] = sampling_method;
  if (no_eos_stop) call["eos_early_stop"] = false;
  if (app.count("--eos-token-id")) call["eos_token_id"] = eos_id;
  if (app.count("--mask-token-id")) call["mask_token_id"] = mask_id;
  if (app.count("--seed")) call["seed"] = seed;
  if (!output_type.empty()) call["output_type"] = output_type;
  if (threads > 0) set_num_threads(threads);

  CallSpec spec = parse_call_json(call);
  Pipeline pipe = Pipeline::from_pretrained(model_dir, spec.scheduler.value_or(SchedulerConfig{}));
  nlohmann::json steps_log = nlohmann::json::array();
  if (spec.options.callback_on_step_end_tensor_inputs) {
    spec.options.callback_on_step_end = [&](int64_t step, int64_t timestep,
                                            const std::map<std::string, CallbackTensor>& tensors) {
      nlohmann::json s = {{"step", step}, {"timestep", timestep}};
      for (const auto& [name, t] : tensors) {
        if (t.is_float) s[name] = t.floats;
        else s[name] = t.ints;
        s[name + "_shape"] = t.shape;
      }
      steps_log.push_back(std::move(s));
      return CallbackResult{};
    };
  }
  PipelineOutput out = pipe(spec.options);
  if (json_out) {
    nlohmann::json j = output_to_json(out);
    if (spec.options.callback_on_step_end_tensor_inputs) j["steps"] = steps_log;
    std::cout << j.dump() << "\n";
    return 0;
  }
  if (out.texts) {
    for (const auto& t : *out.texts) std::cout << t << "\n";
  } else {
    for (int64_t b = 0; b < out.sequences.rows; ++b) {
      for (int64_t j = 0; j < out.sequences.cols; ++j) std::cout << (j ? " " : "") << out.sequences.at(b, j);
      std::cout << "\n";
    }
  }
  std::fprintf(stderr, "%lld forwards, %lld tokens in %.2f s (%.2f tokens/s, %.2f tokens/forward)\n",
               (long long)out.stats.forwards, (long long)out.stats.generated_tokens, out.stats.seconds,
               out.stats.tokens_per_second(), out.stats.tokens_per_forward());
  return 0;
}

}  // namespace llada2::cli
