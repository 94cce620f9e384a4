// The bundled demo model (models/llada2-demo): what generate, chat, serve and eval use when --model
// is not given.
#pragma once

#include <string>
#include <vector>

namespace llada2::cli {

// The folders searched for the demo model, in order: $LLADA2_MODEL, next to the binary
// (../share/llada2/models/llada2-demo and ../models/llada2-demo), the install prefix's share folder,
// then the source tree the binary was built from.
std::vector<std::string> demo_model_candidates();

// `dir` when it is not empty; otherwise the first demo-model folder that exists, announced in one
// line on stderr ("<command>: no --model given, using the demo model DIR"). Throws InputError when
// there is none.
std::string resolve_model_dir(const std::string& dir, const char* command);

}  // namespace llada2::cli
