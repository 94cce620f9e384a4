#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <vector>

namespace llada2::tok {
namespace {

// Code points whose normalization data (decomposition, combining class, composition) libutf8proc has
// but the `tokenizers` normalizers do not: they treat them as unassigned starters. Measured against
// npm tokenizers 0.23.2 over every code point (ranges, inclusive).
struct Range {
  char32_t lo, hi;
};
#include "tokenizer/unicode_tables.inc"

bool unknown_to_tokenizers(char32_t cp) {
  auto it = std::upper_bound(std::begin(kNormUnknown), std::end(kNormUnknown), cp,
                             [](char32_t c, const Range& r) { return c < r.lo; });
  return it != std::begin(kNormUnknown) && cp <= (it - 1)->hi;
}

int ccc(char32_t cp) {
  if (cp < 0x300 || unknown_to_tokenizers(cp)) return 0;
  return utf8proc_get_property(int32_t(cp))->combining_class;
}

void decompose_into(char32_t cp, bool compat, std::vector<char32_t>& out) {
  if (cp < 0xA0 || unknown_to_tokenizers(cp)) {
    out.push_back(cp);
    return;
  }
  utf8proc_int32_t buf[32];
  int boundclass = 0;
  auto opts = utf8proc_option_t(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  utf8proc_ssize_t n = utf8proc_decompose_char(int32_t(cp), buf, 32, opts, &boundclass);
  if (n <= 0 || n > 32) {
    out.push_back(cp);
    return;
  }
  for (utf8proc_ssize_t k = 0; k < n; ++k) out.push_back(char32_t(buf[k]));
}

// Canonical ordering: stable sort of each run of non-starters by combining class.
void reorder(std::vector<char32_t>& cps) {
  size_t i = 0, n = cps.size();
  while (i < n) {
    if (ccc(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && ccc(cps[j]) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(cps.begin() + long(i), cps.begin() + long(j),
                       [](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
}

// Composes runs between code points unknown to tokenizers (they are starters that compose with nothing,
// so they split the text into independent runs).
void compose(std::vector<char32_t>& cps) {
  std::vector<char32_t> out;
  out.reserve(cps.size());
  size_t i = 0, n = cps.size();
  while (i < n) {
    if (unknown_to_tokenizers(cps[i])) {
      out.push_back(cps[i++]);
      continue;
    }
    size_t j = i;
    while (j < n && !unknown_to_tokenizers(cps[j])) ++j;
    std::vector<utf8proc_int32_t> run(cps.begin() + long(i), cps.begin() + long(j));
    utf8proc_ssize_t m = utf8proc_normalize_utf32(run.data(), utf8proc_ssize_t(run.size()),
                                                  utf8proc_option_t(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
    for (utf8proc_ssize_t k = 0; k < m; ++k) out.push_back(char32_t(run[size_t(k)]));
    i = j;
  }
  cps.swap(out);
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string normalize(std::string_view s, NormForm form) {
  // ASCII text is left unchanged by every form.
  bool trivial = true;
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      trivial = false;
      break;
    }
  }
  if (trivial) return std::string(s);
  bool compat = form == NormForm::NFKC || form == NormForm::NFKD;
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) decompose_into(next_cp(s, i), compat, cps);
  reorder(cps);
  if (form == NormForm::NFC || form == NormForm::NFKC) compose(cps);
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : cps) append_utf8(out, cp);
  return out;
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = next_cp(s, i);
    if (cp < 0x80) {
      out.push_back(char(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    } else if (cp == 0x130) {  // the one unconditional multi-character lowercase mapping
      out += "i\xCC\x87";
    } else {
      append_utf8(out, char32_t(utf8proc_tolower(int32_t(cp))));
    }
  }
  return out;
}

bool is_white_space(char32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_numeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  auto c = utf8proc_category(int32_t(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
  auto c = utf8proc_category(int32_t(cp));
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_nonspacing_mark(char32_t cp) { return utf8proc_category(int32_t(cp)) == UTF8PROC_CATEGORY_MN; }

std::string utf8_lossy(std::string_view b) {
  std::string out;
  out.reserve(b.size());
  size_t i = 0, n = b.size();
  auto byte = [&](size_t k) { return static_cast<unsigned char>(b[k]); };
  while (i < n) {
    unsigned char c = byte(i);
    if (c < 0x80) {
      out.push_back(char(c));
      ++i;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    size_t k = 1;
    bool ok = true;
    for (; k <= need; ++k) {
      if (i + k >= n) {
        ok = false;
        break;
      }
      unsigned char cc = byte(i + k);
      unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (cc < l || cc > h) {
        ok = false;
        break;
      }
    }
    if (ok) {
      out.append(b.substr(i, need + 1));
      i += need + 1;
    } else {
      out += "\xEF\xBF\xBD";
      i += k;
    }
  }
  return out;
}

}  // namespace llada2::tok
