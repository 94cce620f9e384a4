// The generation flags shared by `generate` and `chat`, spelled like the Python keyword arguments.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_util.h"

namespace llada2::cli {

struct GenerationFlags {
  std::string attention, sampling_method, output_type, threshold, editing_threshold, top_p, decoding;
  int64_t gen_length = 0, block_length = 0, steps = 0, max_post_steps = -1, minimal_topk = 0, top_k = -1;
  int64_t eos_id = -1, mask_id = -1, seed = -1;
  double temperature = -1;
  bool no_eos_stop = false;
  int threads = 0;
  ActivationFlags activations;

  // Registers the flags; `gen_length_default` is shown in --help.
  void add(CLI::App& app, const std::string& gen_length_default);
  // Writes the flags given on the command line into a call object (they override it);
  // sets the thread count.
  void apply(const CLI::App& app, nlohmann::ordered_json& call) const;
};

}  // namespace llada2::cli
