// Helpers shared by the CLI subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "llada2/error.h"

namespace llada2::cli {

// --bf16-activations (generate, chat, serve, bench).
inline constexpr const char* kBf16ActivationsHelp =
    "bf16 checkpoints on CPUs with AVX512-BF16: round activations to bf16 and multiply with vdpbf16ps "
    "(~1.3x faster; not float32-exact: logits move by ~1e-3, so tokens may differ from the reference; "
    "the same as LLADA2_BF16_DOT=1)";

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
