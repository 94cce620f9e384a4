// Whole-file reads for the loaders.
#pragma once

#include <string>

namespace llada2 {

// The bytes of the file at `path`; throws FileError when it cannot be opened or read.
std::string read_file(const std::string& path);

}  // namespace llada2
