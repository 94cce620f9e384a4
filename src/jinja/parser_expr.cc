// Expressions of the template grammar, by rising precedence: conditional, or, and, not,
// comparisons, + -, ~, * / // %, **, unary, postfix (attributes, items, calls), filters and tests.
#include "jinja/parser.h"

namespace llada2::jinja {

ExprPtr Parser::parse_tuple(bool with_condexpr) {
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

ExprPtr Parser::parse_expression() {
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

ExprPtr Parser::parse_or() {
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

ExprPtr Parser::parse_and() {
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

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    DepthGuard g(*this);
    auto n = node(ExprKind::Not, cur());
    ++p_;
    attach(*n, parse_not());
    return n;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  Token at = cur();
  ExprPtr e = parse_math1();
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                                  cur().text == ">" || cur().text == ">=")) {
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

ExprPtr Parser::binary(const Token& at, const std::string& op, ExprPtr a, ExprPtr b) {
  auto n = node(ExprKind::Binary, at);
  n->name = op;
  attach(*n, std::move(a));
  attach(*n, std::move(b));
  return n;
}

ExprPtr Parser::parse_math1() {
  ExprPtr e = parse_concat();
  while (is_op("+") || is_op("-")) {
    Token at = cur();
    ++p_;
    e = binary(at, at.text, std::move(e), parse_concat());
  }
  return e;
}

ExprPtr Parser::parse_concat() {
  ExprPtr e = parse_math2();
  while (is_op("~")) {
    Token at = cur();
    ++p_;
    e = binary(at, "~", std::move(e), parse_math2());
  }
  return e;
}

ExprPtr Parser::parse_math2() {
  ExprPtr e = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    Token at = cur();
    ++p_;
    e = binary(at, at.text, std::move(e), parse_pow());
  }
  return e;
}

ExprPtr Parser::parse_pow() {
  ExprPtr e = parse_unary(true);
  while (is_op("**")) {
    Token at = cur();
    ++p_;
    e = binary(at, "**", std::move(e), parse_unary(true));
  }
  return e;
}

ExprPtr Parser::parse_unary(bool with_filter) {
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

ExprPtr Parser::parse_primary() {
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

ExprPtr Parser::literal(const Token& at, Value v) {
  auto n = node(ExprKind::Literal, at);
  n->value = std::move(v);
  return n;
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
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

ExprPtr Parser::parse_subscript(ExprPtr obj, const Token& at) {
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
void Parser::parse_args(Expr& n) {
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

ExprPtr Parser::parse_call(ExprPtr callee) {
  auto n = node(ExprKind::Call, cur());
  attach(*n, std::move(callee));
  parse_args(*n);
  return n;
}

ExprPtr Parser::parse_one_filter(ExprPtr e) {
  auto n = node(ExprKind::Filter, cur());
  n->name = expect_name();
  while (skip_op(".")) n->name += "." + expect_name();
  attach(*n, std::move(e));
  if (is_op("(")) parse_args(*n);
  return n;
}

ExprPtr Parser::parse_filter_chain(ExprPtr e) {
  while (skip_op("|")) e = parse_one_filter(std::move(e));
  return e;
}

ExprPtr Parser::parse_filter_expr(ExprPtr e) {
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

}  // namespace llada2::jinja
