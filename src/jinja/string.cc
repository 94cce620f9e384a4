// Python's str semantics over UTF-8 (see string.h).
#include "jinja/string.h"

#include <locale.h>
#include <algorithm>
#include <cwctype>

namespace llada2::jinja {

// ---- UTF-8 ----
std::u32string to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + size_t(len) > n) {  // not UTF-8: keep the byte as a code point
      out.push_back(c);
      ++i;
      continue;
    }
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = (unsigned char)s[i + size_t(k)];
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

// str.isspace(): the characters Python's str.split()/strip() treat as whitespace.
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// One-to-one case mappings come from the C library's Unicode tables (C.UTF-8, a built-in
// locale of glibc); if that locale is missing, a table for Latin, Greek, Cyrillic, Armenian
// and fullwidth Latin stands in.
static locale_t unicode_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
  return loc;
}

char32_t py_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if (locale_t loc = unicode_locale()) return char32_t(towupper_l(wint_t(c), loc));
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x3AC && c <= 0x3AF) return c == 0x3AC ? 0x386 : c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if (c >= 0x460 && c <= 0x4FF && c % 2 == 1 && !(c >= 0x482 && c <= 0x489)) return c - 1;
  if (c >= 0x561 && c <= 0x586) return c - 48;
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 32;
  return c;
}

char32_t py_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (locale_t loc = unicode_locale()) return char32_t(towlower_l(wint_t(c), loc));
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c == 0x130) return 'i';
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (c >= 0x460 && c <= 0x4FF && c % 2 == 0 && !(c >= 0x482 && c <= 0x489)) return c + 1;
  if (c >= 0x531 && c <= 0x556) return c + 48;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
  return c;
}

// Decimal digits of the scripts chat templates meet (Unicode category Nd).
bool py_isdigit(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  static const char32_t kZeros[] = {0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66,  0xAE6,  0xB66,  0xBE6, 0xC66,
                                    0xCE6, 0xD66, 0xE50, 0xED0, 0xF20, 0x1040, 0x17E0, 0x1810, 0xFF10};
  for (char32_t z : kZeros)
    if (c >= z && c <= z + 9) return true;
  return false;
}

// Letters (Unicode category L*), as str.isalpha() sees them.
bool py_isalpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (py_isdigit(c) || py_isspace(c)) return false;
  if (c >= 0x24B6 && c <= 0x24E9) return false;  // circled letters are symbols (So)
  if (c >= 0x2160 && c <= 0x2188) return false;  // Roman numerals are letter numbers (Nl)
  if (c == 0xAD || c == 0xFEFF || (c >= 0x200B && c <= 0x200F) || (c >= 0x2060 && c <= 0x2064)) return false;
  if (locale_t loc = unicode_locale()) return iswalpha_l(wint_t(c), loc) != 0;
  if (c == 0xAA || c == 0xB5 || c == 0xBA) return true;
  if (c < 0xC0 || c == 0xD7 || c == 0xF7) return false;
  if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) || (c >= 0xFF00 && c <= 0xFF20) || c >= 0x1F000)
    return false;
  return true;
}

// Python's full case mappings where they differ from the one-to-one ones (SpecialCasing.txt).
static std::u32string full_upper(char32_t c) {
  switch (c) {
    case 0xDF: return U"SS";
    case 0x149: return U"\u02BCN";
    case 0x1F0: return U"J\u030C";
    case 0x390: return U"\u0399\u0308\u0301";
    case 0x3B0: return U"\u03A5\u0308\u0301";
    case 0x587: return U"\u0535\u0552";
    case 0xFB00: return U"FF";
    case 0xFB01: return U"FI";
    case 0xFB02: return U"FL";
    case 0xFB03: return U"FFI";
    case 0xFB04: return U"FFL";
    case 0xFB05:
    case 0xFB06: return U"ST";
    default: return std::u32string(1, py_upper(c));
  }
}

static std::u32string full_title(char32_t c) {
  switch (c) {
    case 0xDF: return U"Ss";
    case 0x149: return U"\u02BCN";
    case 0xFB00: return U"Ff";
    case 0xFB01: return U"Fi";
    case 0xFB02: return U"Fl";
    case 0xFB03: return U"Ffi";
    case 0xFB04: return U"Ffl";
    case 0xFB05:
    case 0xFB06: return U"St";
    case 0x1C4:
    case 0x1C5:
    case 0x1C6: return U"\u01C5";
    case 0x1C7:
    case 0x1C8:
    case 0x1C9: return U"\u01C8";
    case 0x1CA:
    case 0x1CB:
    case 0x1CC: return U"\u01CB";
    case 0x1F1:
    case 0x1F2:
    case 0x1F3: return U"\u01F2";
    default: return full_upper(c);
  }
}

static bool cased(char32_t c) { return py_upper(c) != c || py_lower(c) != c || full_upper(c).size() > 1; }

// Lowercase of u[k], with Greek capital sigma becoming final sigma at the end of a word.
static std::u32string full_lower(const std::u32string& u, size_t k) {
  char32_t c = u[k];
  if (c == 0x130) return U"i\u0307";
  if (c == 0x3A3) {
    auto ignorable = [](char32_t x) {
      return x == '\'' || x == '.' || x == ':' || x == '^' || x == '`' || x == 0xA8 || x == 0xAD || x == 0xAF ||
             x == 0xB4 || x == 0xB7 || x == 0xB8 || x == 0x2018 || x == 0x2019 || (x >= 0x2B0 && x <= 0x36F) ||
             (x >= 0x200B && x <= 0x200F) || x == 0xFEFF;
    };
    size_t b = k;
    while (b > 0 && ignorable(u[b - 1])) --b;
    size_t a = k + 1;
    while (a < u.size() && ignorable(u[a])) ++a;
    bool after_cased = b > 0 && cased(u[b - 1]);
    bool before_cased = a < u.size() && cased(u[a]);
    return std::u32string(1, after_cased && !before_cased ? char32_t(0x3C2) : char32_t(0x3C3));
  }
  return std::u32string(1, py_lower(c));
}

// str.islower() / str.isupper(): some cased character, none of the other case.
bool is_case(const std::u32string& u, bool want_lower) {
  bool any = false;
  for (char32_t c : u) {
    if (!cased(c)) continue;
    any = true;
    if (want_lower ? py_lower(c) != c : full_upper(c) != std::u32string(1, c)) return false;
  }
  return any;
}

static std::u32string lower_range(const std::u32string& u, size_t from) {
  std::u32string out;
  for (size_t k = from; k < u.size(); ++k) out += full_lower(u, k);
  return out;
}

std::string upper(const std::string& s) {
  std::u32string out;
  for (char32_t c : to_u32(s)) out += full_upper(c);
  return to_utf8(out);
}
std::string lower(const std::string& s) { return to_utf8(lower_range(to_u32(s), 0)); }

// str.capitalize(): the first character in title case, the rest lowercased.
std::string capitalize(const std::string& s) {
  std::u32string u = to_u32(s);
  if (u.empty()) return s;
  return to_utf8(full_title(u[0]) + lower_range(u, 1));
}

// str.title(): a cased character after an uncased one starts a word.
std::string py_title(const std::string& s) {
  std::u32string u = to_u32(s), out;
  bool prev_cased = false;
  for (size_t k = 0; k < u.size(); ++k) {
    char32_t c = u[k];
    out += prev_cased ? full_lower(u, k) : full_title(c);
    prev_cased = cased(c);
  }
  return to_utf8(out);
}

// Jinja's title filter: words begin after runs of whitespace, '-', '(', '{', '[', '<'.
std::string jinja_title(const std::string& s) {
  std::u32string u = to_u32(s), out;
  auto sep = [](char32_t c) { return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  size_t k = 0;
  while (k < u.size()) {
    if (sep(u[k])) {
      out.push_back(u[k++]);
      continue;
    }
    size_t e = k;
    while (e < u.size() && !sep(u[e])) ++e;
    // word[0].upper() + word[1:].lower(), each on its own substring
    out += full_upper(u[k]) + lower_range(u.substr(k + 1, e - k - 1), 0);
    k = e;
  }
  return to_utf8(out);
}

// str.strip / lstrip / rstrip with Python's optional set of characters.
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string u = to_u32(s);
  std::u32string set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = to_u32(need_str(chars, "strip chars"));
  auto drop = [&](char32_t c) { return ws ? py_isspace(c) : set.find(c) != std::u32string::npos; };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && drop(u[b])) ++b;
  if (right)
    while (e > b && drop(u[e - 1])) --e;
  return to_utf8(u.substr(b, e - b));
}

List split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    std::u32string u = to_u32(s);
    std::vector<std::pair<size_t, size_t>> words;
    size_t k = 0;
    while (k < u.size()) {
      while (k < u.size() && py_isspace(u[k])) ++k;
      if (k == u.size()) break;
      size_t b = k;
      while (k < u.size() && !py_isspace(u[k])) ++k;
      words.emplace_back(b, k);
    }
    if (maxsplit >= 0 && int64_t(words.size()) >= maxsplit + 1) {
      // The remainder keeps its whitespace up to the string's end (split) or start (rsplit).
      if (!from_right) {
        size_t b = words[size_t(maxsplit)].first;
        size_t e = u.size();
        words.resize(size_t(maxsplit));
        words.emplace_back(b, e);
      } else {
        size_t cut = words.size() - size_t(maxsplit);
        std::vector<std::pair<size_t, size_t>> w2;
        w2.emplace_back(0, words[cut - 1].second);
        w2.insert(w2.end(), words.begin() + long(cut), words.end());
        words = std::move(w2);
      }
    }
    for (auto [b, e] : words) out.push_back(Value::str(to_utf8(u.substr(b, e - b))));
    return out;
  }
  const std::string& d = need_str(sep, "separator");
  if (d.empty()) fail("empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t pos = 0;
    while (true) {
      size_t f = (maxsplit < 0 || int64_t(parts.size()) < maxsplit) ? s.find(d, pos) : std::string::npos;
      if (f == std::string::npos) {
        parts.push_back(s.substr(pos));
        break;
      }
      parts.push_back(s.substr(pos, f - pos));
      pos = f + d.size();
    }
  } else {
    size_t end = s.size();
    std::vector<std::string> rev;
    while (true) {
      size_t f = (maxsplit < 0 || int64_t(rev.size()) < maxsplit) && end >= d.size() ? s.rfind(d, end - d.size())
                                                                                     : std::string::npos;
      if (f == std::string::npos) {
        rev.push_back(s.substr(0, end));
        break;
      }
      rev.push_back(s.substr(f + d.size(), end - f - d.size()));
      end = f;
    }
    parts.assign(rev.rbegin(), rev.rend());
  }
  for (auto& p : parts) out.push_back(Value::str(std::move(p)));
  return out;
}

static bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

std::vector<std::u32string> splitlines(const std::u32string& u, bool keepends) {
  std::vector<std::u32string> out;
  size_t b = 0, k = 0;
  while (k < u.size()) {
    if (!is_line_break(u[k])) {
      ++k;
      continue;
    }
    size_t e = k + ((u[k] == '\r' && k + 1 < u.size() && u[k + 1] == '\n') ? 2 : 1);
    out.push_back(u.substr(b, (keepends ? e : k) - b));
    b = k = e;
  }
  if (b < u.size()) out.push_back(u.substr(b));
  return out;
}

std::string replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count,
                    size_t max_bytes) {
  std::string out;
  if (old.empty()) {
    std::u32string u = to_u32(s);
    int64_t n = 0;
    for (size_t k = 0; k <= u.size(); ++k) {
      if (count < 0 || n < count) out += rep, ++n;
      if (k < u.size()) append_utf8(out, u[k]);
      check_size(out.size(), max_bytes);
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += rep;
    check_size(out.size(), max_bytes);
    pos = f + old.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

int64_t cp_index(const std::string& s, size_t byte_pos) { return int64_t(to_u32(s.substr(0, byte_pos)).size()); }

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace llada2::jinja
