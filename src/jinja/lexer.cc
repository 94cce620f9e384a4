// Lexer for templates. Whitespace follows the environment transformers uses: trim_blocks (drop
// the newline after a block or comment tag), lstrip_blocks (drop spaces and tabs before a block
// or comment tag that starts its line), `-` / `+` markers on tags, newlines normalised to "\n",
// and one trailing newline of the source dropped.
#include "jinja/lexer.h"

#include <cerrno>
#include <cstring>

#include "jinja/string.h"

namespace llada2::jinja {

void fail_at(int line, int col, const std::string& msg) { throw TemplateError{msg, line, col}; }

namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Strips Python whitespace (str.rstrip()) from the end of s.
void rstrip_py(std::string& s) {
  std::u32string u = to_u32(s);
  size_t n = u.size();
  while (n > 0 && py_isspace(u[n - 1])) --n;
  if (n != u.size()) s = to_utf8(u.substr(0, n));
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t start = find_tag(pos_);
      std::string data = src_.substr(pos_, start - pos_);
      int dline = line_, dcol = col_;
      advance_to(start);
      if (start == src_.size()) {
        emit_data(data, dline, dcol);
        break;
      }
      char kind = src_[start + 1];  // '{', '%' or '#'
      char sign = start + 2 < src_.size() ? src_[start + 2] : 0;
      if (sign == '-') {
        rstrip_py(data);
      } else if (kind != '{' && sign != '+') {
        lstrip_line(data, line_starting);
      }
      emit_data(data, dline, dcol);
      int tline = line_, tcol = col_;
      size_t after = start + 2 + ((sign == '-' || (sign == '+' && kind != '{')) ? 1 : 0);
      advance_to(after);
      if (kind == '#') {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) fail_at(tline, tcol, "unterminated comment");
        bool strip_after = end > pos_ && src_[end - 1] == '-';
        bool keep = end > pos_ && src_[end - 1] == '+';
        advance_to(end + 2);
        line_starting = finish_tag(strip_after, !keep);
        continue;
      }
      tokens_.push_back({kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", {}, tline, tcol});
      size_t first_tok = tokens_.size();
      lex_inside(kind == '{' ? '}' : '%', tline, tcol);
      const Token& end = tokens_.back();
      bool strip_after = end.text == "-";
      bool keep = end.text == "+";
      bool trim = kind == '%' && !keep;
      // {% raw %} ... {% endraw %}: the body is data, verbatim. As in Jinja2, trim_blocks does not
      // apply after the opening tag and "+%}" is not accepted there.
      if (kind == '%' && tokens_.size() == first_tok + 2 && tokens_[first_tok].type == Tok::Name &&
          tokens_[first_tok].text == "raw") {
        if (keep) fail_at(tline, tcol, "unknown tag 'raw'");
        tokens_.resize(first_tok - 1);
        line_starting = lex_raw(tline, tcol, finish_tag(strip_after, false));
        continue;
      }
      line_starting = finish_tag(strip_after, trim);
    }
    tokens_.push_back({Tok::End, "", {}, line_, col_});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1, col_ = 1;
  std::vector<Token> tokens_;

  size_t find_tag(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return src_.size();
  }
  void advance_to(size_t p) {
    for (; pos_ < p && pos_ < src_.size(); ++pos_) {
      if (src_[pos_] == '\n') {
        ++line_;
        col_ = 1;
      } else if ((src_[pos_] & 0xC0) != 0x80) {
        ++col_;
      }
    }
  }
  // lstrip_blocks: spaces and tabs between the start of a line and a tag are dropped.
  static void lstrip_line(std::string& data, bool line_starting) {
    size_t l_pos = data.rfind('\n');
    l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
    if (l_pos == 0 && !line_starting) return;
    for (size_t k = l_pos; k < data.size(); ++k)
      if (data[k] != ' ' && data[k] != '\t') return;
    data.resize(l_pos);
  }
  void emit_data(const std::string& data, int line, int col) {
    if (!data.empty()) tokens_.push_back({Tok::Data, data, {}, line, col});
  }
  // After a tag: `-` strips the whitespace that follows, trim_blocks drops one newline.
  // Returns whether the consumed text ends a line (lstrip_blocks applies to the next tag).
  bool finish_tag(bool strip_after, bool trim) {
    if (strip_after) {
      size_t p = pos_;
      while (p < src_.size()) {
        size_t q = p;
        unsigned char c = (unsigned char)src_[q];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (q + len > src_.size()) break;
        std::u32string cp = to_u32(src_.substr(q, len));
        if (cp.size() != 1 || !py_isspace(cp[0])) break;
        p += len;
      }
      bool nl = p > pos_ && src_[p - 1] == '\n';
      advance_to(p);
      return nl;
    }
    if (trim && pos_ < src_.size() && src_[pos_] == '\n') {
      advance_to(pos_ + 1);
      return true;
    }
    return false;
  }

  // Returns whether the closing tag ends a line, like finish_tag.
  bool lex_raw(int tline, int tcol, bool line_starting) {
    size_t p = pos_;
    while (true) {
      size_t open = src_.find("{%", p);
      if (open == std::string::npos) fail_at(tline, tcol, "missing {% endraw %} for this raw block");
      size_t q = open + 2;
      bool strip_before = q < src_.size() && src_[q] == '-';
      bool keep_before = q < src_.size() && src_[q] == '+';
      if (strip_before || keep_before) ++q;
      while (q < src_.size() && (src_[q] == ' ' || src_[q] == '\t' || src_[q] == '\n')) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        p = open + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && (src_[q] == ' ' || src_[q] == '\t' || src_[q] == '\n')) ++q;
      bool strip_after = false, keep = false;
      if (q < src_.size() && src_[q] == '-')
        strip_after = true, ++q;
      else if (q < src_.size() && src_[q] == '+')
        keep = true, ++q;
      if (src_.compare(q, 2, "%}") != 0) {
        p = open + 2;
        continue;
      }
      std::string data = src_.substr(pos_, open - pos_);
      if (strip_before)
        rstrip_py(data);
      else if (!keep_before)
        lstrip_line(data, line_starting);
      emit_data(data, line_, col_);
      advance_to(q + 2);
      return finish_tag(strip_after, !keep);
    }
  }

  // Tokens inside {{ }} / {% %} up to the closing delimiter; the end token's text is the
  // whitespace marker ("-", "+" or "").
  void lex_inside(char closer, int tline, int tcol) {
    int paren = 0;
    while (true) {
      while (pos_ < src_.size() &&
             (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' || src_[pos_] == '\r'))
        advance_to(pos_ + 1);
      if (pos_ >= src_.size())
        fail_at(
            tline, tcol,
            closer == '}' ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      int line = line_, col = col_;
      char c = src_[pos_];
      auto at = [&](size_t k) { return pos_ + k < src_.size() ? src_[pos_ + k] : '\0'; };
      // Closing delimiter, optionally with a whitespace marker; only outside brackets for '}}'.
      if ((c == '-' || c == '+') && at(1) == closer && at(2) == '}' && (closer == '%' || paren == 0)) {
        tokens_.push_back({closer == '}' ? Tok::VarEnd : Tok::BlockEnd, std::string(1, c), {}, line, col});
        advance_to(pos_ + 3);
        return;
      }
      if (c == closer && at(1) == '}' && (closer == '%' || paren == 0)) {
        tokens_.push_back({closer == '}' ? Tok::VarEnd : Tok::BlockEnd, "", {}, line, col});
        advance_to(pos_ + 2);
        return;
      }
      if (is_name_start(c)) {
        size_t e = pos_;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        tokens_.push_back({Tok::Name, src_.substr(pos_, e - pos_), {}, line, col});
        advance_to(e);
        continue;
      }
      if (is_digit(c)) {
        lex_number(line, col);
        continue;
      }
      if (c == '\'' || c == '"') {
        lex_string(line, col);
        continue;
      }
      static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                         ">",  "=",  ".",  ",",  ":",  "|",  "(", ")", "[", "]", "{", "}", ";"};
      bool matched = false;
      for (const char* op : kOps) {
        size_t n = std::strlen(op);
        if (src_.compare(pos_, n, op) == 0) {
          if (*op == '(' || *op == '[' || *op == '{') ++paren;
          if (*op == ')' || *op == ']' || *op == '}') --paren;
          tokens_.push_back({Tok::Op, op, {}, line, col});
          advance_to(pos_ + n);
          matched = true;
          break;
        }
      }
      if (!matched) fail_at(line, col, std::string("unexpected character '") + c + "'");
    }
  }

  void lex_number(int line, int col) {
    size_t e = pos_;
    auto digits = [&] {
      while (e < src_.size() && (is_digit(src_[e]) || (src_[e] == '_' && e + 1 < src_.size() && is_digit(src_[e + 1]))))
        ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t k = e + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        is_float = true;
        e = k;
        digits();
      }
    }
    std::string text;
    for (size_t k = pos_; k < e; ++k)
      if (src_[k] != '_') text.push_back(src_[k]);
    Token t{is_float ? Tok::Float : Tok::Int, text, {}, line, col};
    if (is_float) {
      t.number = Value::real(std::strtod(text.c_str(), nullptr));
    } else {
      errno = 0;
      unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
      if (errno || v > uint64_t(INT64_MAX)) fail_at(line, col, "integer literal too large");
      t.number = Value::integer(int64_t(v));
    }
    tokens_.push_back(std::move(t));
    advance_to(e);
  }

  // Python string-literal escapes (Jinja decodes literals with unicode-escape).
  void lex_string(int line, int col) {
    char q = src_[pos_];
    size_t p = pos_ + 1;
    std::string out;
    while (true) {
      if (p >= src_.size()) fail_at(line, col, "unterminated string literal");
      char c = src_[p];
      if (c == q) break;
      if (c != '\\') {
        out.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) fail_at(line, col, "unterminated string literal");
      char e = src_[p + 1];
      p += 2;
      auto hex = [&](int n) -> char32_t {
        char32_t v = 0;
        for (int k = 0; k < n; ++k, ++p) {
          char h = p < src_.size() ? src_[p] : '\0';
          int d = h >= '0' && h <= '9'   ? h - '0'
                  : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                         : -1;
          if (d < 0) fail_at(line, col, "truncated \\x/\\u escape in string literal");
          v = v * 16 + char32_t(d);
        }
        if (v > 0x10FFFF) fail_at(line, col, "illegal Unicode character in string literal");
        return v;
      };
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': append_utf8(out, hex(2)); break;
        case 'u': append_utf8(out, hex(4)); break;
        case 'U': append_utf8(out, hex(8)); break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = char32_t(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k, ++p)
              v = v * 8 + char32_t(src_[p] - '0');
            append_utf8(out, v);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    tokens_.push_back({Tok::String, out, {}, line, col});
    advance_to(p + 1);
  }
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) {
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src.push_back('\n');
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src.push_back(source[k]);
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src)).run();
}

}  // namespace llada2::jinja
