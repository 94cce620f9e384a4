// llada2 generate: one pipeline call from flags and/or a --call JSON file.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "default_model.h"
#include "gen_flags.h"
#include "live_view.h"
#include "llada2/call_json.h"
#include "llada2/error.h"
#include "llada2/json.h"
#include "llada2/pipeline.h"
#include "progress.h"

namespace llada2::cli {

namespace {

void print_stats(const PipelineOutput& out) {
  std::fprintf(stderr, "%lld forwards, %lld tokens in %.2f s (%.2f tokens/s, %.2f tokens/forward)\n",
               (long long)out.stats.forwards, (long long)out.stats.generated_tokens, out.stats.seconds,
               out.stats.tokens_per_second(), out.stats.tokens_per_forward());
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  CLI::App app{
      "Generate with the LLaDA2 block-refinement pipeline (diffusers LLaDA2Pipeline semantics).\n"
      "Arguments come from --call FILE.json (keys named like the Python keyword arguments) and/or flags;\n"
      "flags override the file.",
      "llada2 generate"};
  std::string model_dir, call_file, prompt, messages_file, input_ids;
  bool json_out = false, visual = false;
  int frame_ms = 120;
  GenerationFlags flags;
  app.add_option("-m,--model", model_dir,
                 "checkpoint folder (config.json + *.safetensors [+ tokenizer.json]; default: the bundled demo model)");
  app.add_option("--call", call_file,
                 "JSON file with the pipeline arguments (e.g. {\"input_ids\": [[...]], \"gen_length\": 32})");
  app.add_flag("--json", json_out, "print exactly one JSON object: {sequences, texts, stats}");
  app.add_flag("--visual", visual,
               "show the diffusion live on the terminal (masked cells filling in, edits in place; LLaDA2.2 "
               "rules: deletions as a red ×, inserted masks as a green +)");
  app.add_option("--frame-ms", frame_ms,
                 "with --visual: show each refinement step at least this long, so that a fast model can be watched "
                 "(default 120; 0: full speed)")
      ->check(CLI::Range(0, 10000));
  app.add_option("-p,--prompt", prompt, "prompt text (needs the checkpoint's tokenizer)");
  app.add_option("--messages", messages_file,
                 "JSON file with one conversation [{role, content}, ...] (needs a tokenizer)");
  app.add_option("--input-ids", input_ids, "comma-separated prompt token ids, e.g. 12,7,99");
  flags.add(app, "2048");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  model_dir = resolve_model_dir(model_dir, "generate");

  nlohmann::ordered_json call = call_file.empty() ? nlohmann::ordered_json::object() : read_json_file(call_file);
  if (!call.is_object()) throw InputError(call_file + ": must contain a JSON object of pipeline arguments");
  // One way to give the prompt: flags that give two are an error (as -p with --messages is in the
  // pipeline), and a flag replaces whatever the call file gave.
  const bool has_prompt = app.count("--prompt") > 0, has_messages = app.count("--messages") > 0,
             has_ids = app.count("--input-ids") > 0;
  if (int(has_prompt) + int(has_messages) + int(has_ids) > 1)
    throw InputError("give only one of -p/--prompt, --messages and --input-ids");
  if (has_prompt || has_messages || has_ids)
    for (const char* k : {"prompt", "messages", "input_ids"}) call.erase(k);
  if (has_prompt) {
    if (prompt.empty()) throw InputError("-p/--prompt: the prompt is empty");
    call["prompt"] = prompt;
  }
  if (has_messages) {
    nlohmann::ordered_json m = read_json_file(messages_file);
    if (!m.is_array() || m.empty())
      throw InputError(messages_file + ": `messages` must be a non-empty list of {role, content} objects");
    call["messages"] = std::move(m);
  }
  if (has_ids) call["input_ids"] = nlohmann::ordered_json::array({parse_id_list(input_ids, "--input-ids")});
  flags.apply(app, call);

  CallSpec spec = parse_call_json(call);
  if (spec.exact) runtime::set_exact(*spec.exact);
  Pipeline pipe = Pipeline::from_pretrained(model_dir, spec.scheduler.value_or(SchedulerConfig{}));
  // Argument errors come before the weights are read (minutes for a large model).
  ResolvedCall run = pipe.resolve(spec.options);
  load_weights(pipe.model(), model_dir);
  nlohmann::json steps_log = nlohmann::json::array();
  if (run.options.callback_on_step_end_tensor_inputs) {
    run.options.callback_on_step_end = [&](int64_t step, int64_t timestep,
                                           const std::map<std::string, CallbackTensor>& tensors) {
      nlohmann::json s = {{"step", step}, {"timestep", timestep}};
      for (const auto& [name, t] : tensors) {
        if (t.is_float)
          s[name] = t.floats;
        else
          s[name] = t.ints;
        s[name + "_shape"] = t.shape;
      }
      steps_log.push_back(std::move(s));
      return CallbackResult{};
    };
  }
  std::unique_ptr<LiveView> view;
  const bool user_tensors = run.options.callback_on_step_end_tensor_inputs.has_value();
  // With plain text of one row on a terminal the live view is the output; otherwise stdout keeps the
  // documented output (JSON, ids, every row) and the view goes to stderr when that is a terminal.
  bool view_is_output = false;
  if (visual) {
    if (!pipe.tokenizer()) throw InputError("--visual needs the checkpoint's tokenizer.json");
    if (user_tensors) throw InputError("--visual cannot be combined with callback_on_step_end_tensor_inputs");
    view_is_output = !json_out && run.options.output_type == "text" && run.batch() == 1;
    std::FILE* term = view_is_output ? stdout : stderr;
    if (!is_terminal(term) || !is_terminal(stdout)) {
      std::fprintf(stderr, "note: --visual is off: %s is not a terminal\n", is_terminal(stdout) ? "stderr" : "stdout");
      view_is_output = false;
    } else {
      view = std::make_unique<LiveView>(*pipe.tokenizer(), run, term, frame_ms);
      view->attach(run.options);
    }
  }
  // On a terminal, a status line shows how far a long generation is.
  const bool progress_line = !view && !run.options.callback_on_step_end && ::isatty(2);
  if (progress_line) attach_status_line(run);
  PipelineOutput out = pipe(run);
  if (progress_line) clear_status_line();
  if (view) {
    view->finish(out);
    if (view_is_output) {
      print_stats(out);
      return 0;
    }
  }
  if (json_out) {
    nlohmann::json j = output_to_json(out);
    if (user_tensors) j["steps"] = steps_log;
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
  print_stats(out);
  return 0;
}

}  // namespace llada2::cli
