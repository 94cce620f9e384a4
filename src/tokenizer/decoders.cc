// tokenizer.json decoders: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder, Sequence.
#include "tokenizer/components.h"

#include <array>
#include <functional>
#include <optional>
#include <tuple>

#include "tokenizer/component_json.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {

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

}  // namespace llada2::tok
