#include "tokenizer/components.h"

#include <nlohmann/json.hpp>

#include <array>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>

#include "core/utf8.h"
#include "llada2/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {
namespace {

using json = nlohmann::json;

std::string type_of(const json& j, const char* what) {
  if (!j.is_object()) throw InputError(std::string(what) + " must be a JSON object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) throw InputError(std::string(what) + " has no \"type\"");
  return it->get<std::string>();
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

char32_t single_char(const std::string& s, const char* what) {
  size_t i = 0;
  if (s.empty()) throw InputError(std::string(what) + " must be one character");
  char32_t c = next_cp(s, i);
  if (i != s.size()) throw InputError(std::string(what) + " must be one character");
  return c;
}

// A pattern given as {"String": s} (matched literally) or {"Regex": r}.
Regex make_pattern(const json& j) {
  if (!j.is_object()) throw InputError("pattern must be {\"String\": ..} or {\"Regex\": ..}");
  if (auto it = j.find("String"); it != j.end()) return Regex::literal(it->get<std::string>());
  if (auto it = j.find("Regex"); it != j.end()) return Regex(it->get<std::string>());
  throw InputError("pattern must be {\"String\": ..} or {\"Regex\": ..}");
}

std::string replace_all(const Regex& re, const std::string& s, const std::string& content) {
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

// ---------------------------------------------------------------- normalizers

struct UnicodeNorm : Normalizer {
  NormForm form;
  explicit UnicodeNorm(NormForm f) : form(f) {}
  void normalize(std::string& s) const override { s = tok::normalize(s, form); }
};

struct Lowercase : Normalizer {
  void normalize(std::string& s) const override { s = lowercase(s); }
};

struct Strip : Normalizer {
  bool left, right;
  Strip(bool l, bool r) : left(l), right(r) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left) {
      while (b < e) {
        size_t i = b;
        if (!is_white_space(next_cp(s, i))) break;
        b = i;
      }
    }
    if (right) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t i = k;
        if (!is_white_space(next_cp(s, i))) break;
        e = k;
      }
    }
    s = s.substr(b, e - b);
  }
};

// Removes nonspacing marks (general category Mn).
struct StripAccents : Normalizer {
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      size_t b = i;
      char32_t cp = next_cp(s, i);
      if (cp >= 0x300 && is_nonspacing_mark(cp)) continue;
      out.append(s, b, i - b);
    }
    s = std::move(out);
  }
};

struct Replace : Normalizer {
  Regex pattern;
  std::string content;
  Replace(Regex p, std::string c) : pattern(std::move(p)), content(std::move(c)) {}
  void normalize(std::string& s) const override { s = replace_all(pattern, s, content); }
};

struct Prepend : Normalizer {
  std::string prefix;
  explicit Prepend(std::string p) : prefix(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix);
  }
};

struct NormalizerSequence : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> steps;
  void normalize(std::string& s) const override {
    for (const auto& n : steps) n->normalize(s);
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "normalizer");
  if (t == "NFC") return std::make_unique<UnicodeNorm>(NormForm::NFC);
  if (t == "NFD") return std::make_unique<UnicodeNorm>(NormForm::NFD);
  if (t == "NFKC") return std::make_unique<UnicodeNorm>(NormForm::NFKC);
  if (t == "NFKD") return std::make_unique<UnicodeNorm>(NormForm::NFKD);
  if (t == "Lowercase") return std::make_unique<Lowercase>();
  if (t == "Strip") return std::make_unique<Strip>(get_or(j, "strip_left", true), get_or(j, "strip_right", true));
  if (t == "StripAccents") return std::make_unique<StripAccents>();
  if (t == "Replace")
    return std::make_unique<Replace>(make_pattern(j.at("pattern")), j.at("content").get<std::string>());
  if (t == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (t == "Sequence") {
    auto seq = std::make_unique<NormalizerSequence>();
    for (const auto& n : j.at("normalizers")) {
      auto step = make_normalizer(n);
      if (step) seq->steps.push_back(std::move(step));
    }
    return seq;
  }
  throw InputError("unsupported normalizer type \"" + t + "\"");
}

namespace {

// ---------------------------------------------------------------- splitting

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j) {
  std::string b = j.get<std::string>();
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw InputError("unknown split behavior \"" + b + "\"");
}

// (start, end, is_match) spans covering the text, as tokenizers' Pattern::find_matches returns them.
struct Span {
  size_t b, e;
  bool match;
};
using Spans = std::vector<Span>;

void regex_spans(const Regex& re, std::string_view s, Spans& out) {
  out.clear();
  if (s.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  thread_local std::vector<std::pair<size_t, size_t>> m;
  re.find_all(s, m);
  size_t prev = 0;
  for (auto [b, e] : m) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
}

template <class Pred>
void char_spans(std::string_view s, Pred pred, Spans& out) {
  out.clear();
  if (s.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  for (size_t i = 0; i < s.size();) {
    size_t b = i;
    char32_t cp = next_cp(s, i);
    if (pred(cp)) {
      if (prev != b) out.push_back({prev, b, false});
      out.push_back({b, i, true});
      prev = i;
    }
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
}

// Applies a split behavior to the spans and appends the kept sub-pieces of `p` to `out`.
void emit_split(const Piece& p, Spans& spans, Behavior behavior, bool invert, Pieces& out) {
  if (invert)
    for (auto& sp : spans) sp.match = !sp.match;
  thread_local std::vector<std::pair<size_t, size_t>> keep;
  keep.clear();
  switch (behavior) {
    case Behavior::Isolated:
      for (const auto& sp : spans) keep.emplace_back(sp.b, sp.e);
      break;
    case Behavior::Removed:
      for (const auto& sp : spans)
        if (!sp.match) keep.emplace_back(sp.b, sp.e);
      break;
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (const auto& sp : spans) {
        if (sp.match == prev_match && !keep.empty())
          keep.back().second = sp.e;
        else
          keep.emplace_back(sp.b, sp.e);
        prev_match = sp.match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const auto& sp : spans) {
        if (sp.match && !prev_match && !keep.empty())
          keep.back().second = sp.e;
        else
          keep.emplace_back(sp.b, sp.e);
        prev_match = sp.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t k = spans.size(); k-- > 0;) {
        const auto& sp = spans[k];
        if (sp.match && !prev_match && !keep.empty())
          keep.back().first = sp.b;
        else
          keep.emplace_back(sp.b, sp.e);
        prev_match = sp.match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    }
  }
  for (auto [b, e] : keep) {
    if (b == e) continue;
    Piece q;
    q.text = p.text.substr(b, e - b);
    q.at_start = p.at_start && b == 0;
    out.push_back(std::move(q));
  }
}

// Runs f(piece, out) on every piece without an id; pieces with ids pass through.
template <class F>
void split_each(Pieces& pieces, F&& f) {
  Pieces out;
  out.reserve(pieces.size() * 4);
  for (auto& p : pieces) {
    if (p.id >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    f(p, out);
  }
  pieces.swap(out);
}

// ---------------------------------------------------------------- pre-tokenizers

const char* kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

std::array<std::string, 256> make_byte_chars() {
  // Printable bytes map to themselves; the others to U+0100 onwards, in byte order.
  std::array<std::string, 256> t;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    append_utf8(t[size_t(b)], printable ? char32_t(b) : next++);
  }
  return t;
}

struct ByteLevelPre : PreTokenizer {
  bool add_prefix_space, use_regex;
  std::optional<Regex> re;
  ByteLevelPre(bool a, bool u) : add_prefix_space(a), use_regex(u) {
    if (u) re.emplace(kGpt2Pattern);
  }
  void pre_tokenize(Pieces& pieces) const override {
    thread_local Spans spans;
    split_each(pieces, [&](Piece& p, Pieces& out) {
      if (add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      if (!use_regex) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
      regex_spans(*re, p.text, spans);
      emit_split(p, spans, Behavior::Isolated, false, out);
    });
    for (auto& p : pieces) {
      if (p.id >= 0) continue;
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (char c : p.text) mapped += byte_level_char(static_cast<unsigned char>(c));
      p.text = std::move(mapped);
    }
  }
};

struct SplitPre : PreTokenizer {
  Regex pattern;
  Behavior behavior;
  bool invert;
  SplitPre(Regex p, Behavior b, bool i) : pattern(std::move(p)), behavior(b), invert(i) {}
  void pre_tokenize(Pieces& pieces) const override {
    thread_local Spans spans;
    split_each(pieces, [&](Piece& p, Pieces& out) {
      regex_spans(pattern, p.text, spans);
      emit_split(p, spans, behavior, invert, out);
    });
  }
};

template <class Pred>
struct CharSplitPre : PreTokenizer {
  Pred pred;
  Behavior behavior;
  CharSplitPre(Pred p, Behavior b) : pred(std::move(p)), behavior(b) {}
  void pre_tokenize(Pieces& pieces) const override {
    thread_local Spans spans;
    split_each(pieces, [&](Piece& p, Pieces& out) {
      char_spans(p.text, pred, spans);
      emit_split(p, spans, behavior, false, out);
    });
  }
};
template <class Pred>
std::unique_ptr<PreTokenizer> char_split(Pred p, Behavior b) {
  return std::make_unique<CharSplitPre<Pred>>(std::move(p), b);
}

enum class PrependScheme { Always, First, Never };

struct MetaspacePre : PreTokenizer {
  std::string rep;
  char32_t rep_cp;
  PrependScheme scheme;
  bool split;
  MetaspacePre(char32_t r, PrependScheme s, bool sp) : rep_cp(r), scheme(s), split(sp) { append_utf8(rep, r); }
  void pre_tokenize(Pieces& pieces) const override {
    thread_local Spans spans;
    split_each(pieces, [&](Piece& p, Pieces& out) {
      std::string t;
      t.reserve(p.text.size() + rep.size());
      for (char c : p.text) {
        if (c == ' ')
          t += rep;
        else
          t += c;
      }
      bool starts = t.compare(0, rep.size(), rep) == 0;
      if (!starts && (scheme == PrependScheme::Always || (scheme == PrependScheme::First && p.at_start)))
        t.insert(0, rep);
      p.text = std::move(t);
      if (!split) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
      char32_t r = rep_cp;
      char_spans(
          p.text, [r](char32_t c) { return c == r; }, spans);
      emit_split(p, spans, Behavior::MergedWithNext, false, out);
    });
  }
};

// `\w+|[^\w\s]+` of Rust's regex crate (word = Alphabetic, marks, Nd, Pc, joiners; space = White_Space).
// \p{L}, \p{M} and \p{Nd} are listed beside \p{Alphabetic} so that the class translation adds the
// letters and digits newer than PCRE2's tables.
const char* kWhitespacePattern =
    "[\\p{Alphabetic}\\p{L}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]+|"
    "[^\\p{Alphabetic}\\p{L}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}\\s]+";

struct PreTokenizerSequence : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  void pre_tokenize(Pieces& pieces) const override {
    for (const auto& s : steps) s->pre_tokenize(pieces);
  }
};

struct BertPre : PreTokenizer {
  void pre_tokenize(Pieces& pieces) const override {
    thread_local Spans spans;
    split_each(pieces, [&](Piece& p, Pieces& out) {
      char_spans(p.text, is_white_space, spans);
      emit_split(p, spans, Behavior::Removed, false, out);
    });
    split_each(pieces, [&](Piece& p, Pieces& out) {
      char_spans(p.text, is_punctuation, spans);
      emit_split(p, spans, Behavior::Isolated, false, out);
    });
  }
};

PrependScheme prepend_scheme(const json& j) {
  if (auto it = j.find("prepend_scheme"); it != j.end() && !it->is_null()) {
    std::string s = it->get<std::string>();
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    throw InputError("unknown Metaspace prepend_scheme \"" + s + "\"");
  }
  return get_or(j, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
}

}  // namespace

const std::string& byte_level_char(unsigned char b) {
  static const std::array<std::string, 256> table = make_byte_chars();
  return table[b];
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "pre_tokenizer");
  if (t == "ByteLevel")
    return std::make_unique<ByteLevelPre>(get_or(j, "add_prefix_space", true), get_or(j, "use_regex", true));
  if (t == "Split")
    return std::make_unique<SplitPre>(make_pattern(j.at("pattern")), parse_behavior(j.at("behavior")),
                                      get_or(j, "invert", false));
  if (t == "Digits") {
    if (get_or(j, "individual_digits", false)) return char_split(is_numeric, Behavior::Isolated);
    return char_split(is_numeric, Behavior::Contiguous);
  }
  if (t == "Metaspace")
    return std::make_unique<MetaspacePre>(
        single_char(get_or<std::string>(j, "replacement", "\xE2\x96\x81"), "Metaspace replacement"), prepend_scheme(j),
        get_or(j, "split", true));
  if (t == "Whitespace") return std::make_unique<SplitPre>(Regex(kWhitespacePattern), Behavior::Removed, true);
  if (t == "WhitespaceSplit") return char_split(is_white_space, Behavior::Removed);
  if (t == "Punctuation") {
    Behavior b = j.contains("behavior") ? parse_behavior(j.at("behavior")) : Behavior::Isolated;
    return char_split(is_punctuation, b);
  }
  if (t == "CharDelimiterSplit") {
    char32_t d = single_char(j.at("delimiter").get<std::string>(), "CharDelimiterSplit delimiter");
    return char_split([d](char32_t c) { return c == d; }, Behavior::Removed);
  }
  if (t == "BertPreTokenizer") return std::make_unique<BertPre>();
  if (t == "Sequence") {
    auto seq = std::make_unique<PreTokenizerSequence>();
    for (const auto& p : j.at("pretokenizers")) {
      auto step = make_pre_tokenizer(p);
      if (step) seq->steps.push_back(std::move(step));
    }
    return seq;
  }
  throw InputError("unsupported pre_tokenizer type \"" + t + "\"");
}

// ---------------------------------------------------------------- decoders

namespace {

struct ByteLevelDec : Decoder {
  void decode_chain(std::vector<std::string>& tokens) const override {
    static const auto reverse = [] {
      std::array<int, 512> r{};
      r.fill(-1);
      for (int b = 0; b < 256; ++b) {
        size_t i = 0;
        char32_t cp = next_cp(byte_level_char(static_cast<unsigned char>(b)), i);
        r[cp] = b;
      }
      return r;
    }();
    std::string bytes;
    for (const auto& t : tokens) {
      size_t start = bytes.size();
      bool ok = true;
      for (size_t i = 0; i < t.size();) {
        char32_t cp = next_cp(t, i);
        if (cp >= 512 || reverse[cp] < 0) {
          ok = false;
          break;
        }
        bytes.push_back(char(reverse[cp]));
      }
      if (!ok) {
        bytes.resize(start);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

struct MetaspaceDec : Decoder {
  char32_t rep;
  PrependScheme scheme;
  MetaspaceDec(char32_t r, PrependScheme s) : rep(r), scheme(s) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      const std::string& t = tokens[k];
      std::string out;
      out.reserve(t.size());
      for (size_t i = 0; i < t.size();) {
        size_t b = i;
        char32_t cp = next_cp(t, i);
        if (cp == rep) {
          if (!(k == 0 && scheme != PrependScheme::Never)) out += ' ';
        } else {
          out.append(t, b, i - b);
        }
      }
      tokens[k] = std::move(out);
    }
  }
};

std::optional<unsigned char> byte_token(const std::string& t) {
  // "<0xHH>", parsed like Rust's u8::from_str_radix (which also takes a leading '+').
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  if (t[3] == '+' && lo >= 0) return static_cast<unsigned char>(lo);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

struct ByteFallbackDec : Decoder {
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    size_t pending_n = 0;
    auto flush = [&] {
      if (pending_n == 0) return;
      if (utf8_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending_n; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_n = 0;
    };
    for (auto& t : tokens) {
      if (auto b = byte_token(t)) {
        pending.push_back(char(*b));
        ++pending_n;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }
};

struct FuseDec : Decoder {
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

struct StripDec : Decoder {
  char32_t content;
  size_t start, stop;
  StripDec(char32_t c, size_t a, size_t b) : content(c), start(a), stop(b) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<char32_t> cps;
      for (size_t i = 0; i < t.size();) cps.push_back(next_cp(t, i));
      size_t b = 0;
      for (size_t i = 0; i < start && i < cps.size(); ++i) {
        if (cps[i] != content) break;
        b = i + 1;
      }
      size_t e = cps.size();
      for (size_t i = 0; i < stop && i < cps.size(); ++i) {
        size_t idx = cps.size() - i - 1;
        if (cps[idx] != content) break;
        e = idx;
      }
      std::string out;
      for (size_t i = b; i < e; ++i) append_utf8(out, cps[i]);
      t = std::move(out);
    }
  }
};

struct ReplaceDec : Decoder {
  Regex pattern;
  std::string content;
  ReplaceDec(Regex p, std::string c) : pattern(std::move(p)), content(std::move(c)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = replace_all(pattern, t, content);
  }
};

struct BpeDec : Decoder {
  std::string suffix;
  explicit BpeDec(std::string s) : suffix(std::move(s)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string r = k + 1 == tokens.size() ? "" : " ";
      std::string& t = tokens[k];
      std::string out;
      for (size_t pos = 0;;) {
        size_t f = suffix.empty() ? std::string::npos : t.find(suffix, pos);
        if (f == std::string::npos) {
          out.append(t, pos, std::string::npos);
          break;
        }
        out.append(t, pos, f - pos);
        out += r;
        pos = f + suffix.size();
      }
      t = std::move(out);
    }
  }
};

struct DecoderSequence : Decoder {
  std::vector<std::unique_ptr<Decoder>> steps;
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : steps) d->decode_chain(tokens);
  }
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "decoder");
  if (t == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (t == "Metaspace")
    return std::make_unique<MetaspaceDec>(
        single_char(get_or<std::string>(j, "replacement", "\xE2\x96\x81"), "Metaspace replacement"), prepend_scheme(j));
  if (t == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (t == "Fuse") return std::make_unique<FuseDec>();
  if (t == "Strip") {
    auto start = j.at("start").get<int64_t>(), stop = j.at("stop").get<int64_t>();
    if (start < 0 || stop < 0) throw InputError("Strip decoder start/stop must not be negative");
    return std::make_unique<StripDec>(single_char(j.at("content").get<std::string>(), "Strip content"), size_t(start),
                                      size_t(stop));
  }
  if (t == "Replace")
    return std::make_unique<ReplaceDec>(make_pattern(j.at("pattern")), j.at("content").get<std::string>());
  if (t == "BPEDecoder") return std::make_unique<BpeDec>(get_or<std::string>(j, "suffix", "</w>"));
  if (t == "Sequence") {
    auto seq = std::make_unique<DecoderSequence>();
    for (const auto& d : j.at("decoders")) {
      auto step = make_decoder(d);
      if (step) seq->steps.push_back(std::move(step));
    }
    return seq;
  }
  throw InputError("unsupported decoder type \"" + t + "\"");
}

// ---------------------------------------------------------------- post-processors

namespace {

struct NoOpPost : PostProcessor {
  void process(std::vector<int64_t>&, bool) const override {}
};

// A fixed list of ids before and after the sequence (TemplateProcessing's single template,
// BertProcessing, RobertaProcessing).
struct AroundPost : PostProcessor {
  std::vector<int64_t> before, after;
  void process(std::vector<int64_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), before.begin(), before.end());
    ids.insert(ids.end(), after.begin(), after.end());
  }
};

struct PostSequence : PostProcessor {
  std::vector<std::unique_ptr<PostProcessor>> steps;
  void process(std::vector<int64_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : steps) p->process(ids, add_special_tokens);
  }
};

int64_t id_of(const json& pair) {
  // ["[SEP]", 102]
  if (!pair.is_array() || pair.size() != 2) throw InputError("post_processor special token must be [token, id]");
  return pair.at(1).get<int64_t>();
}

std::unique_ptr<PostProcessor> make_template(const json& j) {
  auto p = std::make_unique<AroundPost>();
  const json& special = j.at("special_tokens");
  const json& single = j.at("single");
  if (!single.is_array()) throw InputError("TemplateProcessing single must be a list");
  bool seen_a = false;
  for (const auto& piece : single) {
    if (auto it = piece.find("SpecialToken"); it != piece.end()) {
      std::string name = it->at("id").get<std::string>();
      auto st = special.find(name);
      if (st == special.end()) throw InputError("TemplateProcessing: missing special token \"" + name + "\"");
      for (const auto& id : st->at("ids")) (seen_a ? p->after : p->before).push_back(id.get<int64_t>());
    } else if (auto it2 = piece.find("Sequence"); it2 != piece.end()) {
      if (seen_a) throw InputError("TemplateProcessing single template with two sequences");
      seen_a = true;
    } else {
      throw InputError("TemplateProcessing: unknown template piece");
    }
  }
  if (!seen_a) throw InputError("TemplateProcessing single template without a sequence");
  return p;
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "post_processor");
  if (t == "ByteLevel") return std::make_unique<NoOpPost>();  // it only adjusts offsets
  if (t == "TemplateProcessing") return make_template(j);
  if (t == "BertProcessing" || t == "RobertaProcessing") {
    auto p = std::make_unique<AroundPost>();
    p->before.push_back(id_of(j.at("cls")));
    p->after.push_back(id_of(j.at("sep")));
    return p;
  }
  if (t == "Sequence") {
    auto seq = std::make_unique<PostSequence>();
    for (const auto& p : j.at("processors")) {
      auto step = make_post_processor(p);
      if (step) seq->steps.push_back(std::move(step));
    }
    return seq;
  }
  throw InputError("unsupported post_processor type \"" + t + "\"");
}

}  // namespace llada2::tok
