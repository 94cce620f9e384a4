// Statements of the template grammar: text, output, if / for / set / macro / call / filter /
// with / generation blocks.
#include "jinja/parser.h"

namespace llada2::jinja {

std::unique_ptr<Template> Parser::run() {
  auto tpl = std::make_unique<Template>();
  std::string stop = parse_body(tpl->body, {});
  if (!stop.empty()) fail_here("unexpected '" + stop + "'");
  return tpl;
}

std::string Parser::describe(const Token& t) const {
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

ExprPtr Parser::node(ExprKind k, const Token& at) {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->line = at.line;
  e->col = at.col;
  return e;
}

// Parses statements until one of `stops` opens a block tag; returns that keyword (the
// tag's name token is left current) or "" at the end of the template.
std::string Parser::parse_body(Body& body, std::initializer_list<const char*> stops) {
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

void Parser::unknown_tag() {
  const std::string& n = cur().text;
  static const char* const kEnds[] = {"endif", "endfor", "endmacro",      "endcall", "endset", "endfilter",
                                      "else",  "elif",   "endgeneration", "endwith", "endraw"};
  for (const char* e : kEnds)
    if (n == e) fail_here("unexpected '" + n + "'");
  fail_here("unknown tag '" + n + "'");
}

StmtPtr Parser::new_stmt(StmtKind k, const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = k;
  s->line = at.line;
  s->col = at.col;
  return s;
}

void Parser::expect_end_keyword(const std::string& got, const char* want, const Token& opened) {
  if (got != want)
    fail_at(opened.line, opened.col,
            std::string("unclosed block: expected '") + want + "' before " +
                (got.empty() ? "the end of template" : "'" + got + "'"));
}

StmtPtr Parser::parse_statement() {
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

StmtPtr Parser::parse_if() {
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
void Parser::parse_targets(Stmt& s) {
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

StmtPtr Parser::parse_for() {
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

StmtPtr Parser::parse_set() {
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

void Parser::parse_params(Stmt& s) {
  expect_op("(");
  while (!skip_op(")")) {
    if (!s.targets.empty()) expect_op(",");
    if (skip_op(")")) break;
    s.targets.push_back(expect_name());
    s.defaults.push_back(skip_op("=") ? parse_expression() : nullptr);
  }
}

StmtPtr Parser::parse_macro() {
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

StmtPtr Parser::parse_call_block() {
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

StmtPtr Parser::parse_filter_block() {
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

std::unique_ptr<Template> parse_template(const std::string& source, int max_depth) {
  return Parser(tokenize(source), max_depth).run();
}

}  // namespace llada2::jinja
