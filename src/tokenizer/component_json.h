// Helpers shared by the tokenizer.json component builders (normalizers, pre-tokenizers, decoders,
// post-processors): reading their JSON descriptions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "llada2/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {

using json = nlohmann::json;

inline std::string type_of(const json& j, const char* what) {
  if (!j.is_object()) throw InputError(std::string(what) + " must be a JSON object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) throw InputError(std::string(what) + " has no \"type\"");
  return it->get<std::string>();
}

template <class T>
inline T get_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

inline char32_t single_char(const std::string& s, const char* what) {
  size_t i = 0;
  if (s.empty()) throw InputError(std::string(what) + " must be one character");
  char32_t c = next_cp(s, i);
  if (i != s.size()) throw InputError(std::string(what) + " must be one character");
  return c;
}

// A pattern given as {"String": s} (matched literally) or {"Regex": r}.
inline Regex make_pattern(const json& j) {
  if (!j.is_object()) throw InputError("pattern must be {\"String\": ..} or {\"Regex\": ..}");
  if (auto it = j.find("String"); it != j.end()) return Regex::literal(it->get<std::string>());
  if (auto it = j.find("Regex"); it != j.end()) return Regex(it->get<std::string>());
  throw InputError("pattern must be {\"String\": ..} or {\"Regex\": ..}");
}

inline std::string replace_all(const Regex& re, const std::string& s, const std::string& content) {
  thread_local std::vector<std::pair<size_t, size_t>> m;
  re.find_all(s, m);
  if (m.empty()) return s;
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  for (auto [b, e] : m) {
    out.append(s, prev, b - prev);
    out += content;
    prev = e;
  }
  out.append(s, prev, std::string::npos);
  return out;
}

// Metaspace (pre-tokenizer and decoder): where the replacement character is prepended.
enum class PrependScheme { Always, First, Never };

inline PrependScheme prepend_scheme(const json& j) {
  if (auto it = j.find("prepend_scheme"); it != j.end() && !it->is_null()) {
    std::string s = it->get<std::string>();
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    throw InputError("unknown Metaspace prepend_scheme \"" + s + "\"");
  }
  return get_or(j, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
}

}  // namespace llada2::tok
