#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "llada2/error.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {
namespace {

// Per Unicode class: code points Oniguruma (tokenizers' regex engine, Unicode 16) puts in the class
// but this PCRE2 (older Unicode) does not (`extra`), and the reverse (`missing`), as PCRE2 class
// bodies. Measured against npm tokenizers 0.23.2 over every code point.
struct ClassFix {
  const char* name;  // "L", "Nd", ... for \p{..}; "s", "w", "d" for the escapes
  const char* extra;
  const char* missing;
};
#include "tokenizer/regex_tables.inc"

const char* kWhiteSpace =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

const ClassFix* find_fix(std::string_view name) {
  for (const auto& f : kClassFixes)
    if (name == f.name) return &f;
  return nullptr;
}

// Replacement for a class escape. `base` is the PCRE2 spelling inside a class (e.g. "\\p{L}"),
// `negated` says the escape is the complement (\P{..}, \S, \W, \D).
std::string rewrite_class(const std::string& base, const ClassFix* fix, bool negated, bool in_class) {
  if (!fix || (!*fix->extra && !*fix->missing)) {
    if (!negated) return base;
    // the complement of a base class spelt positively
    if (base[1] == 'p') return "\\P" + base.substr(2);
    std::string b = base;
    b[1] = char(std::toupper(static_cast<unsigned char>(b[1])));
    return b;
  }
  std::string extra = fix->extra, missing = fix->missing;
  if (in_class) {
    // Inside a class we can only add code points; the (rare) removals are not expressible.
    return negated ? rewrite_class(base, nullptr, true, true) : base + extra;
  }
  if (!negated) {
    std::string s = "(?:";
    if (!missing.empty()) s += "(?![" + missing + "])";
    s += "[" + base + extra + "])";
    return s;
  }
  std::string s = "(?:";
  if (!missing.empty()) s += "[" + missing + "]|";
  if (!extra.empty()) s += "(?![" + extra + "])";
  s += "[^" + base + "])";
  return s;
}

}  // namespace

std::string translate_onig_pattern(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  size_t class_start = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      if ((e == 'p' || e == 'P') && i + 2 < p.size() && p[i + 2] == '{') {
        size_t close = p.find('}', i + 3);
        if (close != std::string::npos) {
          std::string name = p.substr(i + 3, close - i - 3);
          bool neg = e == 'P';
          if (!name.empty() && name[0] == '^') {
            neg = !neg;
            name = name.substr(1);
          }
          out += rewrite_class("\\p{" + name + "}", find_fix(name), neg, in_class);
          i = close;
          continue;
        }
      }
      if (e == 's' || (e == 'S' && !in_class)) {
        // Oniguruma's \s is exactly White_Space; PCRE2's differs (U+180E), so spell it out.
        out += e == 's' ? (in_class ? kWhiteSpace : std::string("[") + kWhiteSpace + "]")
                        : std::string("[^") + kWhiteSpace + "]";
        ++i;
        continue;
      }
      if (e == 's' || e == 'S' || e == 'w' || e == 'W' || e == 'd' || e == 'D') {
        char lower = char(std::tolower(static_cast<unsigned char>(e)));
        out += rewrite_class(std::string("\\") + lower, find_fix(std::string(1, lower)), e != lower, in_class);
        ++i;
        continue;
      }
      if (e == 'h' || e == 'H') {  // Oniguruma: hexadecimal digit
        out += in_class ? (e == 'h' ? "0-9a-fA-F" : "\\x{0}-/:-@G-`g-\\x{10FFFF}")
                        : (e == 'h' ? "[0-9a-fA-F]" : "[^0-9a-fA-F]");
        ++i;
        continue;
      }
      out += c;
      out += e;
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      class_start = i;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {  // a leading ']' is literal
        out += "\\]";
        ++i;
      }
      continue;
    }
    if (in_class && c == ']' && i > class_start) in_class = false;
    out += c;
  }
  return out;
}

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (stack) pcre2_jit_stack_assign(mc, nullptr, stack);
  }
  ~MatchState() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_jit_stack_free(stack);
  }
};

MatchState& match_state() {
  thread_local MatchState st;
  return st;
}

}  // namespace

Regex::Regex(const std::string& onig_pattern) {
  std::string pat = translate_onig_pattern(onig_pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  auto code = std::make_shared<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!code->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw InputError("tokenizer regex " + onig_pattern + " does not compile: " + reinterpret_cast<char*>(msg));
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  code_ = std::move(code);
}

Regex Regex::literal(std::string_view lit) {
  std::string p = "\\Q";
  size_t pos = 0;
  // \E cannot appear inside \Q..\E: close, escape it, reopen.
  while (true) {
    size_t e = lit.find("\\E", pos);
    if (e == std::string_view::npos) break;
    p.append(lit.substr(pos, e - pos));
    p += "\\E\\\\E\\Q";
    pos = e + 2;
  }
  p.append(lit.substr(pos));
  p += "\\E";
  // \Q..\E carries no class escapes, so compiling it directly is exact.
  Regex r;
  int err = 0;
  PCRE2_SIZE off = 0;
  auto code = std::make_shared<Code>();
  code->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code->code) throw InputError("tokenizer pattern string is not valid UTF-8");
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  r.code_ = std::move(code);
  return r;
}

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  auto& st = match_state();
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t start = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (start <= s.size()) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, subject, s.size(), start, PCRE2_NO_UTF_CHECK, st.md, st.mc)
                        : pcre2_match(code_->code, subject, s.size(), start, PCRE2_NO_UTF_CHECK, st.md, st.mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw InputError(std::string("tokenizer regex failed on the input: ") + reinterpret_cast<char*>(msg));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
    size_t b = ov[0], e = ov[1];
    if (b == e && have_last && last_end == e) {
      // Oniguruma's iterator: skip an empty match that touches the previous match, retry one char on.
      if (start >= s.size()) break;
      start += utf8_seq_len(static_cast<unsigned char>(s[start]));
      continue;
    }
    out.emplace_back(b, e);
    have_last = true;
    last_end = e;
    start = e;
  }
}

}  // namespace llada2::tok
