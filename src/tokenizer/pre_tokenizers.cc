// tokenizer.json pre-tokenizers: ByteLevel, Split, the character splitters, Metaspace, BertPreTokenizer, Sequence.
#include "tokenizer/components.h"

#include <array>
#include <functional>
#include <optional>
#include <tuple>

#include "tokenizer/component_json.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {

namespace {

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
      if (add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text.insert(p.text.begin(), ' ');
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

}  // namespace llada2::tok
