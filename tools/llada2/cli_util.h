// Helpers shared by the CLI subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "llada2/error.h"
#include "llada2/runtime.h"

namespace llada2::cli {

// The arithmetic switches of generate, chat, serve, bench and eval (SPEC A6): the fast mode by default,
// --exact for float32 compute, and the two activation modes of the fast mode one by one.
struct ActivationFlags {
  bool exact = false;
  std::string bf16 = "on";
  std::string int8 = "on";

  void add(CLI::App& app) {
    auto* e = app.add_flag("--exact", exact,
                           "float32 compute whatever the weight dtype: reproduces the reference's float32 results "
                           "token for token (about half the speed on bf16 checkpoints), keys and values cached in "
                           "float32. Default: the fast mode, bf16 activations and a bf16 KV cache for bf16 "
                           "checkpoints and int8 activations for q8 / q4, as a diffusers user running the "
                           "checkpoint in its own dtype gets");
    auto* b = app.add_option("--bf16-activations", bf16,
                             "fast mode, bf16 checkpoints: keys and values cached in bf16 (half the memory and "
                             "attention reads of long prompts), and on CPUs with AVX512-BF16 activations rounded to "
                             "bf16 and multiplied with vdpbf16ps (on, the default: ~1.6x faster, logits move by "
                             "~1e-3; off: float32 activations and cache, the same as LLADA2_BF16_DOT=0)")
                  ->check(CLI::IsMember({"on", "off"}))
                  ->expected(0, 1)
                  ->default_str("on");
    auto* i = app.add_option("--int8-activations", int8,
                             "fast mode, q8 / q4 checkpoints on CPUs with AVX512-VNNI (and the scalar reference "
                             "tier): quantize activations to int8 per group and multiply with vpdpbusd (on, the "
                             "default: 2-4x faster products; off: float32 activations, the same as LLADA2_INT8_ACT=0)")
                  ->check(CLI::IsMember({"on", "off"}));
    e->excludes(b)->excludes(i);
  }
  // Sets the process-wide kernel modes (flags given explicitly win over the environment).
  void apply(const CLI::App& app) const {
    if (exact) runtime::set_exact(true);
    if (app.count("--bf16-activations")) runtime::set_bf16_activations(bf16 != "off");
    if (app.count("--int8-activations")) runtime::set_int8_activations(int8 == "on");
  }
};

// "12,7,99" -> {12, 7, 99}; an item that is not an integer is an InputError naming `what` and the item.
inline std::vector<int64_t> parse_id_list(const std::string& list, const std::string& what) {
  std::vector<int64_t> ids;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != item.size())
      throw InputError(what + ": '" + item + "' is not a token id (expected e.g. 12,7,99)");
    ids.push_back(v);
  }
  return ids;
}

// Parses argv with CLI11. Returns -1 when the caller should continue, otherwise
// the exit code (0 after --help, 2 after a usage error, with the message printed).
inline int parse_args(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\nrun '%s --help' for the options\n", e.what(), app.get_name().c_str());
    return 2;
  }
  return -1;
}

}  // namespace llada2::cli
