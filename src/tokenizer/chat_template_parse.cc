// Lexer and parser for chat templates. Whitespace follows the environment transformers uses:
// trim_blocks (drop the newline after a block or comment tag), lstrip_blocks (drop spaces and
// tabs before a block or comment tag that starts its line), `-` / `+` markers on tags, newlines
// normalised to "\n", and one trailing newline of the source dropped.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tokenizer/chat_template_impl.h"

namespace llada2::jinja {
namespace {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };

struct Token {
  Tok type;
  std::string text;  // Data text, name, operator, decoded string
  Value number;
  int line, col;
};

[[noreturn]] void fail_at(int line, int col, const std::string& msg) { throw TemplateError{msg, line, col}; }

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

class Parser {
 public:
  Parser(std::vector<Token> toks, int max_depth) : t_(std::move(toks)), max_depth_(max_depth) {}

  std::unique_ptr<Template> run() {
    auto tpl = std::make_unique<Template>();
    std::string stop = parse_body(tpl->body, {});
    if (!stop.empty()) fail_here("unexpected '" + stop + "'");
    return tpl;
  }

 private:
  std::vector<Token> t_;
  size_t p_ = 0;
  int depth_ = 0;
  int max_depth_;
  int loop_depth_ = 0;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.max_depth_) p.fail_here("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  [[noreturn]] void fail_here(const std::string& msg) const { fail_at(cur().line, cur().col, msg); }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    ++p_;
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case Tok::End: return "end of template";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::VarEnd: return "end of print statement";
      case Tok::String: return "string";
      case Tok::Int:
      case Tok::Float: return "number";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail_here(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail_here("expected a name, got " + describe(cur()));
    return t_[p_++].text;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) fail_here("expected end of statement block, got " + describe(cur()));
    ++p_;
  }
  // Children are attached through here so that the tree's height stays bounded: evaluation
  // and destruction recurse over it.
  void bump(Expr& parent, const Expr& child) {
    parent.height = std::max(parent.height, child.height + 1);
    if (parent.height > max_depth_) fail_at(parent.line, parent.col, "expression nested too deeply");
  }
  void attach(Expr& parent, ExprPtr child) {
    if (child) bump(parent, *child);
    parent.args.push_back(std::move(child));
  }
  ExprPtr node(ExprKind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  // Parses statements until one of `stops` opens a block tag; returns that keyword (the
  // tag's name token is left current) or "" at the end of the template.
  std::string parse_body(Body& body, std::initializer_list<const char*> stops) {
    DepthGuard g(*this);
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::End) return "";
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->text = t.text;
        s->line = t.line;
        s->col = t.col;
        body.push_back(std::move(s));
        ++p_;
        continue;
      }
      if (t.type == Tok::VarBegin) {
        ++p_;
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Output;
        s->line = t.line;
        s->col = t.col;
        s->expr = parse_tuple();
        if (cur().type != Tok::VarEnd) fail_here("expected end of print statement, got " + describe(cur()));
        ++p_;
        body.push_back(std::move(s));
        continue;
      }
      // Block tag.
      ++p_;
      if (cur().type != Tok::Name) fail_here("expected a statement name, got " + describe(cur()));
      for (const char* s : stops)
        if (cur().text == s) return s;
      body.push_back(parse_statement());
    }
  }

  [[noreturn]] void unknown_tag() {
    const std::string& n = cur().text;
    static const char* const kEnds[] = {"endif", "endfor", "endmacro",      "endcall", "endset", "endfilter",
                                        "else",  "elif",   "endgeneration", "endwith", "endraw"};
    for (const char* e : kEnds)
      if (n == e) fail_here("unexpected '" + n + "'");
    fail_here("unknown tag '" + n + "'");
  }

  StmtPtr new_stmt(StmtKind k, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = at.line;
    s->col = at.col;
    return s;
  }

  // Consumes an end keyword (endif, endfor, ...) and its "%}".
  void close_tag() {
    ++p_;
    expect_block_end();
  }

  void expect_end_keyword(const std::string& got, const char* want, const Token& opened) {
    if (got != want)
      fail_at(opened.line, opened.col,
              std::string("unclosed block: expected '") + want + "' before " +
                  (got.empty() ? "the end of template" : "'" + got + "'"));
  }

  StmtPtr parse_statement() {
    Token kw = cur();
    const std::string& n = kw.text;
    if (n == "if") return parse_if();
    if (n == "for") return parse_for();
    if (n == "set") return parse_set();
    if (n == "macro") return parse_macro();
    if (n == "call") return parse_call_block();
    if (n == "filter") return parse_filter_block();
    if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) fail_here("'" + n + "' outside of a loop");
      ++p_;
      expect_block_end();
      return new_stmt(n == "break" ? StmtKind::Break : StmtKind::Continue, kw);
    }
    if (n == "generation" || n == "with") {
      // {% generation %} (transformers' assistant-mask marker) renders its body; {% with %}
      // opens a scope with optional assignments.
      ++p_;
      auto s = new_stmt(StmtKind::Scope, kw);
      std::vector<StmtPtr> assigns;
      if (n == "with") {
        while (cur().type != Tok::BlockEnd) {
          if (!assigns.empty()) expect_op(",");
          auto a = new_stmt(StmtKind::Set, cur());
          a->targets.push_back(expect_name());
          expect_op("=");
          a->expr = parse_expression();
          assigns.push_back(std::move(a));
        }
      }
      expect_block_end();
      for (auto& a : assigns) s->body.push_back(std::move(a));
      std::string end = parse_body(s->body, {n == "with" ? "endwith" : "endgeneration"});
      expect_end_keyword(end, n == "with" ? "endwith" : "endgeneration", kw);
      close_tag();
      return s;
    }
    if (n == "include" || n == "import" || n == "extends" || n == "from" || n == "block")
      fail_here("'" + n + "' is not supported in chat templates");
    unknown_tag();
  }

  StmtPtr parse_if() {
    Token kw = cur();
    ++p_;
    auto s = new_stmt(StmtKind::If, kw);
    ExprPtr cond = parse_tuple();
    expect_block_end();
    while (true) {
      Body body;
      std::string stop = parse_body(body, {"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (stop == "elif") {
        ++p_;
        cond = parse_tuple();
        expect_block_end();
        continue;
      }
      if (stop == "else") {
        ++p_;
        expect_block_end();
        std::string end = parse_body(s->else_body, {"endif"});
        expect_end_keyword(end, "endif", kw);
        close_tag();
        return s;
      }
      expect_end_keyword(stop, "endif", kw);
      close_tag();
      return s;
    }
  }

  // Assignment targets: name or tuple of names ("a, b" or "(a, b)").
  void parse_targets(Stmt& s) {
    bool paren = skip_op("(");
    s.targets.push_back(expect_name());
    while (skip_op(",")) {
      s.targets_tuple = true;
      if (cur().type != Tok::Name) break;
      s.targets.push_back(expect_name());
    }
    if (paren) {
      expect_op(")");
      s.targets_tuple = true;
    }
  }

  StmtPtr parse_for() {
    Token kw = cur();
    ++p_;
    auto s = new_stmt(StmtKind::For, kw);
    parse_targets(*s);
    if (!skip_name("in")) fail_here("expected 'in', got " + describe(cur()));
    s->expr = parse_tuple(/*with_condexpr=*/false);
    if (skip_name("if")) s->cond = parse_expression();
    if (is_name("recursive")) fail_here("recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    std::string stop = parse_body(s->body, {"else", "endfor"});
    --loop_depth_;
    if (stop == "else") {
      ++p_;
      expect_block_end();
      stop = parse_body(s->else_body, {"endfor"});
    }
    expect_end_keyword(stop, "endfor", kw);
    close_tag();
    return s;
  }

  StmtPtr parse_set() {
    Token kw = cur();
    ++p_;
    if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == ".") {
      auto s = new_stmt(StmtKind::SetAttr, kw);
      auto obj = node(ExprKind::Name, cur());
      obj->name = expect_name();
      ++p_;  // '.'
      s->text = expect_name();
      s->expr = std::move(obj);
      expect_op("=");
      s->cond = parse_tuple();
      expect_block_end();
      return s;
    }
    auto s = new_stmt(StmtKind::Set, kw);
    parse_targets(*s);
    if (skip_op("=")) {
      s->expr = parse_tuple();
      expect_block_end();
      return s;
    }
    // Block set: {% set x %}...{% endset %}, optionally {% set x | filter %}.
    if (s->targets_tuple) fail_here("a block set assigns a single name");
    s->kind = StmtKind::SetBlock;
    if (is_op("|")) s->expr = parse_filter_chain(node(ExprKind::Literal, cur()));
    expect_block_end();
    std::string end = parse_body(s->body, {"endset"});
    expect_end_keyword(end, "endset", kw);
    close_tag();
    return s;
  }

  void parse_params(Stmt& s) {
    expect_op("(");
    while (!skip_op(")")) {
      if (!s.targets.empty()) expect_op(",");
      if (skip_op(")")) break;
      s.targets.push_back(expect_name());
      s.defaults.push_back(skip_op("=") ? parse_expression() : nullptr);
    }
  }

  StmtPtr parse_macro() {
    Token kw = cur();
    ++p_;
    auto s = new_stmt(StmtKind::Macro, kw);
    s->text = expect_name();
    parse_params(*s);
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    std::string end = parse_body(s->body, {"endmacro"});
    loop_depth_ = saved;
    expect_end_keyword(end, "endmacro", kw);
    close_tag();
    return s;
  }

  StmtPtr parse_call_block() {
    Token kw = cur();
    ++p_;
    auto s = new_stmt(StmtKind::CallBlock, kw);
    if (is_op("(")) parse_params(*s);
    s->expr = parse_expression();
    if (s->expr->kind != ExprKind::Call) fail_at(kw.line, kw.col, "expected a call after 'call'");
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    std::string end = parse_body(s->body, {"endcall"});
    loop_depth_ = saved;
    expect_end_keyword(end, "endcall", kw);
    close_tag();
    return s;
  }

  StmtPtr parse_filter_block() {
    Token kw = cur();
    ++p_;
    auto s = new_stmt(StmtKind::FilterBlock, kw);
    // The chain applies to a placeholder literal that the evaluator replaces with the body.
    s->expr = parse_one_filter(node(ExprKind::Literal, kw));
    s->expr = parse_filter_chain(std::move(s->expr));
    expect_block_end();
    std::string end = parse_body(s->body, {"endfilter"});
    expect_end_keyword(end, "endfilter", kw);
    close_tag();
    return s;
  }

  // ---- expressions ----
  ExprPtr parse_tuple(bool with_condexpr = true) {
    Token at = cur();
    auto parse_one = [&] { return with_condexpr ? parse_expression() : parse_or(); };
    ExprPtr first = parse_one();
    if (!is_op(",")) return first;
    auto t = node(ExprKind::TupleLit, at);
    attach(*t, std::move(first));
    while (skip_op(",")) {
      if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")") || is_op("=") || is_name("if")) break;
      attach(*t, parse_one());
    }
    return t;
  }

  ExprPtr parse_expression() {
    DepthGuard g(*this);
    Token at = cur();
    ExprPtr e = parse_or();
    while (is_name("if")) {
      ++p_;
      auto c = node(ExprKind::CondExpr, at);
      ExprPtr cond = parse_or();
      ExprPtr other = skip_name("else") ? parse_expression() : nullptr;
      attach(*c, std::move(cond));
      attach(*c, std::move(e));
      attach(*c, std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      auto n = node(ExprKind::Or, cur());
      ++p_;
      attach(*n, std::move(e));
      attach(*n, parse_and());
      e = std::move(n);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      auto n = node(ExprKind::And, cur());
      ++p_;
      attach(*n, std::move(e));
      attach(*n, parse_not());
      e = std::move(n);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this);
      auto n = node(ExprKind::Not, cur());
      ++p_;
      attach(*n, parse_not());
      return n;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    Token at = cur();
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        ++p_;
      } else if (is_name("in")) {
        op = "in";
        ++p_;
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        op = "not in";
        p_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(ExprKind::Compare, at);
        attach(*cmp, std::move(e));
      }
      cmp->ops.push_back(op);
      attach(*cmp, parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }

  ExprPtr binary(const Token& at, const std::string& op, ExprPtr a, ExprPtr b) {
    auto n = node(ExprKind::Binary, at);
    n->name = op;
    attach(*n, std::move(a));
    attach(*n, std::move(b));
    return n;
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      Token at = cur();
      ++p_;
      e = binary(at, at.text, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      Token at = cur();
      ++p_;
      e = binary(at, "~", std::move(e), parse_math2());
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Token at = cur();
      ++p_;
      e = binary(at, at.text, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      Token at = cur();
      ++p_;
      e = binary(at, "**", std::move(e), parse_unary(true));
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(*this);
    Token at = cur();
    ExprPtr e;
    if (skip_op("-")) {
      e = node(ExprKind::Neg, at);
      attach(*e, parse_unary(false));
    } else if (skip_op("+")) {
      e = node(ExprKind::Pos, at);
      attach(*e, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    Token t = cur();
    switch (t.type) {
      case Tok::Name: {
        ++p_;
        if (t.text == "true" || t.text == "True") return literal(t, Value::boolean(true));
        if (t.text == "false" || t.text == "False") return literal(t, Value::boolean(false));
        if (t.text == "none" || t.text == "None") return literal(t, Value::none());
        auto n = node(ExprKind::Name, t);
        n->name = t.text;
        return n;
      }
      case Tok::String: {
        std::string s;
        while (cur().type == Tok::String) s += t_[p_++].text;
        return literal(t, Value::str(std::move(s)));
      }
      case Tok::Int:
      case Tok::Float: ++p_; return literal(t, t.number);
      case Tok::Op:
        if (t.text == "(") {
          ++p_;
          if (skip_op(")")) {
            auto n = node(ExprKind::TupleLit, t);
            return n;
          }
          ExprPtr e = parse_tuple();
          if (e->kind == ExprKind::TupleLit && is_op(")")) {
            ++p_;
            return e;
          }
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          ++p_;
          auto n = node(ExprKind::ListLit, t);
          while (!skip_op("]")) {
            if (!n->args.empty()) expect_op(",");
            if (skip_op("]")) break;
            attach(*n, parse_expression());
          }
          return n;
        }
        if (t.text == "{") {
          ++p_;
          auto n = node(ExprKind::DictLit, t);
          while (!skip_op("}")) {
            if (!n->args.empty()) expect_op(",");
            if (skip_op("}")) break;
            attach(*n, parse_expression());
            expect_op(":");
            attach(*n, parse_expression());
          }
          return n;
        }
        break;
      default: break;
    }
    fail_here("unexpected " + describe(t));
  }

  ExprPtr literal(const Token& at, Value v) {
    auto n = node(ExprKind::Literal, at);
    n->value = std::move(v);
    return n;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      Token at = cur();
      if (skip_op(".")) {
        if (cur().type == Tok::Name) {
          auto n = node(ExprKind::GetAttr, at);
          n->name = t_[p_++].text;
          attach(*n, std::move(e));
          e = std::move(n);
        } else if (cur().type == Tok::Int) {
          auto n = node(ExprKind::GetItem, at);
          attach(*n, std::move(e));
          attach(*n, literal(cur(), cur().number));
          ++p_;
          e = std::move(n);
        } else {
          fail_here("expected an attribute name after '.'");
        }
      } else if (skip_op("[")) {
        e = parse_subscript(std::move(e), at);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj, const Token& at) {
    // obj[i], obj[a:b:c]; parts left out are null.
    ExprPtr parts[3];
    bool slice = false;
    int k = 0;
    if (!is_op(":")) parts[0] = parse_expression();
    while (skip_op(":")) {
      slice = true;
      if (++k > 2) fail_here("too many ':' in slice");
      if (!is_op(":") && !is_op("]")) parts[k] = parse_expression();
    }
    expect_op("]");
    auto n = node(slice ? ExprKind::Slice : ExprKind::GetItem, at);
    attach(*n, std::move(obj));
    for (int j = 0; j < (slice ? 3 : 1); ++j) attach(*n, std::move(parts[j]));
    return n;
  }

  // Call arguments into n->args (after whatever is already there) and n->kwargs.
  void parse_args(Expr& n) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (skip_op(")")) break;
      if (is_op("*") || is_op("**")) fail_here("*args / **kwargs in calls are not supported");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string key = t_[p_].text;
        p_ += 2;
        ExprPtr v = parse_expression();
        bump(n, *v);
        n.kwargs.emplace_back(key, std::move(v));
      } else {
        if (!n.kwargs.empty()) fail_here("positional argument follows keyword argument");
        attach(n, parse_expression());
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto n = node(ExprKind::Call, cur());
    attach(*n, std::move(callee));
    parse_args(*n);
    return n;
  }

  ExprPtr parse_one_filter(ExprPtr e) {
    auto n = node(ExprKind::Filter, cur());
    n->name = expect_name();
    while (skip_op(".")) n->name += "." + expect_name();
    attach(*n, std::move(e));
    if (is_op("(")) parse_args(*n);
    return n;
  }

  ExprPtr parse_filter_chain(ExprPtr e) {
    while (skip_op("|")) e = parse_one_filter(std::move(e));
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        Token at = cur();
        ++p_;
        auto n = node(ExprKind::Test, at);
        n->negated = skip_name("not");
        n->name = expect_name();
        attach(*n, std::move(e));
        if (is_op("(")) {
          parse_args(*n);
        } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                    cur().type == Tok::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          // One argument without parentheses: `x is divisibleby 3`, `x is sameas none`. As in
          // Jinja2, any other name is taken as that argument (so `x is defined if y` is an error).
          if (is_name("is")) fail_here("you cannot chain multiple tests with 'is'");
          attach(*n, parse_postfix(parse_primary()));
        }
        e = std::move(n);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }
};

}  // namespace

std::unique_ptr<Template> parse_template(const std::string& source, int max_depth) {
  // Newlines become "\n"; a single trailing newline is dropped (keep_trailing_newline=False).
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
  Lexer lexer(std::move(src));
  Parser parser(lexer.run(), max_depth);
  return parser.run();
}

}  // namespace llada2::jinja
