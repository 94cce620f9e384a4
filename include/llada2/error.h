// Error types shared by every layer. InputError means the caller gave something
// invalid (arguments, files, requests): the CLI maps it to exit code 2.
#pragma once

#include <stdexcept>
#include <string>

namespace llada2 {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

// A malformed or inconsistent file on disk (checkpoint, config, tokenizer).
class FileError : public InputError {
 public:
  FileError(const std::string& path, const std::string& problem) : InputError(path + ": " + problem), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A forward pass produced NaN or Inf (a checkpoint with broken weights): the message names where.
class NumericError : public InputError {
 public:
  explicit NumericError(const std::string& what) : InputError(what) {}
};

}  // namespace llada2
