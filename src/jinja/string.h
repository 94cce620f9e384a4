// Python's str semantics over UTF-8: code points, whitespace, case mappings, and the str
// operations that filters and methods share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jinja/value.h"

namespace llada2::jinja {

// UTF-8 helpers: Python indexes strings by code point.
std::u32string to_u32(std::string_view s);
std::string to_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);
bool py_isspace(char32_t c);
char32_t py_upper(char32_t c);
char32_t py_lower(char32_t c);
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);

bool is_case(const std::u32string& u, bool want_lower);  // str.islower() / str.isupper()
std::string upper(const std::string& s);                 // str.upper()
std::string lower(const std::string& s);                 // str.lower()
std::string capitalize(const std::string& s);            // str.capitalize()
std::string py_title(const std::string& s);              // str.title()
std::string jinja_title(const std::string& s);           // Jinja's title filter
// str.strip / lstrip / rstrip with Python's optional set of characters (None: whitespace).
std::string strip(const std::string& s, const Value& chars, bool left, bool right);
List split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right);  // str.split / rsplit
std::vector<std::u32string> splitlines(const std::u32string& u, bool keepends);
// str.replace; fails once the result passes max_bytes.
std::string replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count,
                    size_t max_bytes);
int64_t cp_index(const std::string& s, size_t byte_pos);  // code point index of a byte offset
std::string html_escape(const std::string& s);            // markupsafe.escape

// str.format with {} / {0} / {name} fields and {{ }} escapes; format specs are not supported.
std::string py_format(const std::string& fmt, const CallArgs& a);
// Python's printf-style `fmt % args`.
std::string printf_format(const std::string& fmt, const Value& args);

}  // namespace llada2::jinja
