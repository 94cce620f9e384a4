// tokenizer.json normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence.
#include "tokenizer/components.h"

#include <array>
#include <functional>
#include <optional>
#include <tuple>

#include "tokenizer/component_json.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {

namespace {

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

}  // namespace llada2::tok
