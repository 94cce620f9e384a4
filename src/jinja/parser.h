// The template parser: tokens to a syntax tree, with Jinja2's grammar and precedence. Its
// recursion (nested blocks and expressions) is bounded by max_depth, and so is the height of
// every expression tree, which evaluation and destruction recurse over.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "jinja/ast.h"
#include "jinja/lexer.h"

namespace llada2::jinja {

// Parses template source; throws TemplateError with the position on a syntax error.
std::unique_ptr<Template> parse_template(const std::string& source, int max_depth);

// The recursive-descent parser behind parse_template; statements are parsed in parser.cc,
// expressions in parser_expr.cc.
class Parser {
 public:
  Parser(std::vector<Token> toks, int max_depth) : t_(std::move(toks)), max_depth_(max_depth) {}

  std::unique_ptr<Template> run();

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
  std::string describe(const Token& t) const;
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
  ExprPtr node(ExprKind k, const Token& at);

  // Statements (parser.cc).

  // Parses statements until one of `stops` opens a block tag; returns that keyword (the
  // tag's name token is left current) or "" at the end of the template.
  std::string parse_body(Body& body, std::initializer_list<const char*> stops);
  [[noreturn]] void unknown_tag();
  StmtPtr new_stmt(StmtKind k, const Token& at);

  // Consumes an end keyword (endif, endfor, ...) and its "%}".
  void close_tag() {
    ++p_;
    expect_block_end();
  }

  void expect_end_keyword(const std::string& got, const char* want, const Token& opened);
  StmtPtr parse_statement();
  StmtPtr parse_if();

  // Assignment targets: name or tuple of names ("a, b" or "(a, b)").
  void parse_targets(Stmt& s);
  StmtPtr parse_for();
  StmtPtr parse_set();
  void parse_params(Stmt& s);
  StmtPtr parse_macro();
  StmtPtr parse_call_block();
  StmtPtr parse_filter_block();

  // Expressions (parser_expr.cc), by rising precedence.
  ExprPtr parse_tuple(bool with_condexpr = true);
  ExprPtr parse_expression();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr binary(const Token& at, const std::string& op, ExprPtr a, ExprPtr b);
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr literal(const Token& at, Value v);
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_subscript(ExprPtr obj, const Token& at);

  // Call arguments into n->args (after whatever is already there) and n->kwargs.
  void parse_args(Expr& n);
  ExprPtr parse_call(ExprPtr callee);
  ExprPtr parse_one_filter(ExprPtr e);
  ExprPtr parse_filter_chain(ExprPtr e);
  ExprPtr parse_filter_expr(ExprPtr e);
};

}  // namespace llada2::jinja
