// Regular expressions for tokenizer.json patterns. `tokenizers` compiles them with Oniguruma; we use
// PCRE2 (UTF + UCP, JIT) after adjusting Unicode classes (\p{..}, \s, \w, \d) to the code points
// Oniguruma's newer tables assign to them.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llada2::tok {

class Regex {
 public:
  // Throws InputError naming the pattern if it does not compile.
  explicit Regex(const std::string& onig_pattern);
  // Regex matching `literal` exactly.
  static Regex literal(std::string_view literal);

  // All matches as byte ranges, in Oniguruma's find_iter order (an empty match right after the
  // previous match is skipped).
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  Regex() = default;
  struct Code;
  std::shared_ptr<const Code> code_;
};

// The pattern with its Unicode classes widened to Oniguruma's (exposed for tests).
std::string translate_onig_pattern(const std::string& onig_pattern);

}  // namespace llada2::tok
