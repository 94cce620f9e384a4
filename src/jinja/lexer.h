// The template lexer: source text to data and tag tokens, with the whitespace control of the
// environment transformers uses (trim_blocks, lstrip_blocks, `-` / `+` markers on tags).
#pragma once

#include <string>
#include <vector>

#include "jinja/value.h"

namespace llada2::jinja {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };

struct Token {
  Tok type;
  std::string text;  // Data text, name, operator, decoded string
  Value number;
  int line, col;
};

[[noreturn]] void fail_at(int line, int col, const std::string& msg);

// Tokens of the source, ending with Tok::End. Newlines are normalised to "\n" and one trailing
// newline is dropped (keep_trailing_newline=False).
std::vector<Token> tokenize(const std::string& source);

}  // namespace llada2::jinja
