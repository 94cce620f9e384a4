// llada2: run LLaDA2 block-diffusion language models from Hugging Face checkpoint folders.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "commands.h"
#include "llada2/crash.h"
#include "llada2/error.h"
#include "llada2/version.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"generate", llada2::cli::cmd_generate, "generate text or token ids with the block-refinement pipeline"},
    {"chat", llada2::cli::cmd_chat, "multi-turn chat in the terminal with a live view of the diffusion"},
    {"bench", llada2::cli::cmd_bench, "measure load, prefill and generation speed on a checkpoint"},
    {"tokenize", llada2::cli::cmd_tokenize, "encode text with a checkpoint's tokenizer.json"},
    {"detokenize", llada2::cli::cmd_detokenize, "decode token ids with a checkpoint's tokenizer.json"},
    {"render-chat", llada2::cli::cmd_render_chat, "render chat messages with the checkpoint's chat template"},
    {"serve", llada2::cli::cmd_serve, "serve the model over an OpenAI-compatible HTTP API"},
    {"eval", llada2::cli::cmd_eval, "measure answer accuracy on a task file, over a grid of decoding settings"},
    {"make-test-model", llada2::cli::cmd_make_test_model, "write a random-weight checkpoint for tests and benchmarks"},
    {"quantize", llada2::cli::cmd_quantize, "write a q8 / q4 quantized copy of a checkpoint"},
};

void usage(FILE* out) {
  std::fprintf(out,
               "llada2 - LLaDA2 block-diffusion language models on the CPU\n\n"
               "usage: llada2 <command> [options]   (llada2 <command> --help for details; llada2 --version)\n\n"
               "commands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-16s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  llada2::install_crash_handler();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "-V") || !std::strcmp(argv[1], "version")) {
    std::printf("%s\n", llada2::version_line().c_str());
    return 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const llada2::InputError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "error: out of memory\n");
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "internal error: %s\n", e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "error: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
