// Subcommands of the llada2 CLI. Each returns the process exit code:
// 0 success, 2 bad input (arguments, files), 1 internal failure.
#pragma once

namespace llada2::cli {

int cmd_generate(int argc, char** argv);
int cmd_make_test_model(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_render_chat(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_eval(int argc, char** argv);

}  // namespace llada2::cli
