// Helpers shared by the tokenizer tests.
#pragma once

#include <zlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace llada2::test {

// Lines of a (possibly gzip-compressed) text file.
inline std::vector<std::string> read_lines_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string all;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) all.append(buf, size_t(n));
  gzclose(f);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t e = all.find('\n', pos);
    if (e == std::string::npos) e = all.size();
    if (e > pos) lines.push_back(all.substr(pos, e - pos));
    pos = e + 1;
  }
  return lines;
}

inline std::string tok_data(const std::string& rel) { return std::string(LLADA2_TEST_DATA) + "/tok/" + rel; }

// Directory holding a tokenizer's tokenizer.json: committed for ling-synth, fetched for the others.
inline std::string tokenizer_dir(const std::string& name) {
  if (name == "ling-synth") return tok_data("ling-synth");
  return tok_data("third_party/" + name);
}

inline bool tokenizer_present(const std::string& name) {
  return std::filesystem::exists(tokenizer_dir(name) + "/tokenizer.json");
}

}  // namespace llada2::test
