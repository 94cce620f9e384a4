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

// The arithmetic switches of generate, chat, serve and bench: --bf16-activations and
// --int8-activations on|off.
struct ActivationFlags {
  bool bf16 = false;
  std::string int8 = "on";

  void add(CLI::App& app) {
    app.add_flag("--bf16-activations", bf16,
                 "bf16 checkpoints on CPUs with AVX512-BF16: round activations to bf16 and multiply with vdpbf16ps "
                 "(~1.6x faster; not float32-exact: logits move by ~1e-3, so tokens may differ from the reference; "
                 "the same as LLADA2_BF16_DOT=1)");
    app.add_option("--int8-activations", int8,
                   "q8 / q4 checkpoints on CPUs with AVX512-VNNI (and the scalar reference tier): quantize activations "
                   "to int8 per group and multiply with vpdpbusd (on, the default: 2-4x faster products; off: "
                   "float32 activations, the same as LLADA2_INT8_ACT=0)")
        ->check(CLI::IsMember({"on", "off"}));
  }
  // Sets the process-wide kernel modes (flags given explicitly win over the environment).
  void apply(const CLI::App& app) const {
    if (bf16) runtime::set_bf16_activations(true);
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
