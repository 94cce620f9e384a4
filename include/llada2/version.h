// The library's version, the git revision it was built from, and a one-line summary with the kernel
// tier in use (what `llada2 --version` prints and /health reports).
#pragma once

#include <string>

namespace llada2 {

std::string version();       // "0.1.0"
std::string git_revision();  // `git describe --always --dirty` at build time, or "unknown"
std::string version_line();  // "llada2 0.1.0 (<revision>), kernels: avx512bf16"

}  // namespace llada2
