// Helpers shared by the CLI subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "llada2/error.h"

namespace llada2::cli {

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
