// Unicode helpers for the tokenizer, matching the data the Rust `tokenizers` library uses: its
// normalizers run on older Unicode tables than libutf8proc's, so code points that those tables do not
// know are passed through unchanged (see unicode.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llada2::tok {

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
inline char32_t next_cp(std::string_view s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  if (c < 0xE0) {
    char32_t cp = (char32_t(c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
    i += 2;
    return cp;
  }
  if (c < 0xF0) {
    char32_t cp = (char32_t(c & 0x0F) << 12) | (char32_t(static_cast<unsigned char>(s[i + 1]) & 0x3F) << 6) |
                  (static_cast<unsigned char>(s[i + 2]) & 0x3F);
    i += 3;
    return cp;
  }
  char32_t cp = (char32_t(c & 0x07) << 18) | (char32_t(static_cast<unsigned char>(s[i + 1]) & 0x3F) << 12) |
                (char32_t(static_cast<unsigned char>(s[i + 2]) & 0x3F) << 6) |
                (static_cast<unsigned char>(s[i + 3]) & 0x3F);
  i += 4;
  return cp;
}

// Byte length of the UTF-8 sequence that starts with this lead byte.
inline size_t utf8_seq_len(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

void append_utf8(std::string& out, char32_t cp);

enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, NormForm form);
// Rust's char::to_lowercase applied to every character.
std::string lowercase(std::string_view s);

bool is_white_space(char32_t cp);      // Unicode White_Space (Rust char::is_whitespace)
bool is_numeric(char32_t cp);          // general category N* (Rust char::is_numeric)
bool is_punctuation(char32_t cp);      // ASCII punctuation or general category P*
bool is_nonspacing_mark(char32_t cp);  // general category Mn

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace llada2::tok
