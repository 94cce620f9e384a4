#pragma once

#include <string_view>

namespace llada2 {

// True if s is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool utf8_valid(std::string_view s);

}  // namespace llada2
