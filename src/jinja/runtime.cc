// Evaluation of templates: statements with Jinja's scoping (a for-loop iteration, a macro call
// and {% with %} open a scope; if does not) and expressions with Python semantics.
#include "jinja/runtime.h"

#include <optional>

#include "jinja/builtins.h"
#include "jinja/operators.h"
#include "jinja/string.h"

namespace llada2::jinja {
namespace {

enum class Flow { Normal, Break, Continue };

struct DepthGuard {
  Renderer& r;
  explicit DepthGuard(Renderer& renderer) : r(renderer) {
    // Expressions, blocks and macro calls all recurse on the C++ stack.
    if (++r.depth > 3 * r.limits.max_depth) {
      --r.depth;
      fail("template recursion too deep");
    }
  }
  ~DepthGuard() { --r.depth; }
};

struct FrameGuard {
  Renderer& r;
  std::shared_ptr<Frame> saved;
  FrameGuard(Renderer& renderer, std::shared_ptr<Frame> f) : r(renderer), saved(std::move(renderer.frame)) {
    r.frame = std::move(f);
  }
  ~FrameGuard() { r.frame = std::move(saved); }
};

std::shared_ptr<Frame> child_frame(const std::shared_ptr<Frame>& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

Flow exec(Renderer& r, const Body& body, std::string& out);

// A macro (or a call block's caller): binds arguments in a scope whose parent is the scope
// the macro was defined in, renders the body, returns the text.
Value invoke(Renderer& r, const Stmt& m, const std::shared_ptr<Frame>& closure, CallArgs& args,
             const std::string& name) {
  DepthGuard g(r);
  auto f = child_frame(closure);
  size_t np = m.targets.size();
  List varargs;
  for (size_t k = 0; k < args.pos.size(); ++k) {
    if (k < np)
      f->vars[m.targets[k]] = args.pos[k];
    else
      varargs.push_back(args.pos[k]);
  }
  Dict kwargs;
  for (auto& [key, v] : args.kw) {
    size_t k = 0;
    while (k < np && m.targets[k] != key) ++k;
    if (k < np) {
      if (k < args.pos.size()) fail("macro '" + name + "' got multiple values for argument '" + key + "'");
      f->vars[key] = v;
    } else if (key == "caller") {
      f->vars["caller"] = v;
    } else {
      kwargs.set(Value::str(key), v);
    }
  }
  f->vars["varargs"] = Value::make_list(std::move(varargs), true);
  f->vars["kwargs"] = Value::make_dict(std::move(kwargs));
  FrameGuard fg(r, f);
  for (size_t k = 0; k < np; ++k) {
    if (f->vars.count(m.targets[k])) continue;
    f->vars[m.targets[k]] =
        m.defaults[k] ? r.eval(*m.defaults[k]) : Value::undefined("parameter '" + m.targets[k] + "' was not provided");
  }
  std::string out;
  exec(r, m.body, out);
  return Value::str(std::move(out));
}

// The macro holds its defining scope weakly: that scope usually holds the macro, and a strong
// reference would be a cycle. A macro called after its scope ended sees the template globals.
Value make_macro(Renderer& r, const Stmt& m, const std::string& name) {
  std::weak_ptr<Frame> closure = r.frame;
  const Stmt* mp = &m;
  return Value::callable(name, [mp, closure, name](Renderer& rr, CallArgs& a) {
    std::shared_ptr<Frame> scope = closure.lock();
    return invoke(rr, *mp, scope ? scope : rr.root, a, name);
  });
}

// Applies a filter chain built on a placeholder literal (block set / filter block) to v.
Value apply_chain(Renderer& r, const Expr& e, Value v) {
  if (e.kind != ExprKind::Filter) return v;
  Value inner = apply_chain(r, *e.args[0], std::move(v));
  CallArgs a;
  for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(r.eval(*e.args[k]));
  for (const auto& [key, x] : e.kwargs) a.kw.emplace_back(key, r.eval(*x));
  try {
    return apply_filter(r, e.name, inner, a);
  } catch (TemplateError& err) {
    if (!err.line) err.line = e.line, err.col = e.col;
    throw;
  }
}

// loop.changed(*values): true when the values differ from those of the previous call.
using ChangedState = std::shared_ptr<std::optional<Value>>;

Value loop_object(const List& items, size_t k, const ChangedState& changed) {
  size_t n = items.size();
  Dict d;
  auto add = [&](const char* key, Value v) { d.items.emplace_back(Value::str(key), std::move(v)); };
  add("index", Value::integer(int64_t(k + 1)));
  add("index0", Value::integer(int64_t(k)));
  add("revindex", Value::integer(int64_t(n - k)));
  add("revindex0", Value::integer(int64_t(n - k - 1)));
  add("first", Value::boolean(k == 0));
  add("last", Value::boolean(k + 1 == n));
  add("length", Value::integer(int64_t(n)));
  add("depth", Value::integer(1));
  add("depth0", Value::integer(0));
  add("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
  add("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("there is no next item"));
  add("cycle", Value::callable("loop.cycle", [k](Renderer&, CallArgs& a) {
        if (a.pos.empty()) fail("no items for cycling given");
        return a.pos[k % a.pos.size()];
      }));
  add("changed", Value::callable("loop.changed", [changed](Renderer&, CallArgs& a) {
        Value now = Value::make_list(a.pos, true);
        if (*changed && equal(**changed, now)) return Value::boolean(false);
        *changed = now;
        return Value::boolean(true);
      }));
  return Value::make_object("LoopContext", std::move(d));
}

Flow exec_for(Renderer& r, const Stmt& s, std::string& out) {
  List items = iterate(r.eval(*s.expr));
  if (s.cond) {
    List kept;
    for (const Value& item : items) {
      r.step();
      auto f = child_frame(r.frame);
      unpack(*f, s.targets, s.targets_tuple, item);
      FrameGuard fg(r, f);
      if (truthy(r.eval(*s.cond))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec(r, s.else_body, out);
    return Flow::Normal;
  }
  auto changed = std::make_shared<std::optional<Value>>();
  r.loop_states.push_back(changed);
  for (size_t k = 0; k < items.size(); ++k) {
    r.step();
    auto f = child_frame(r.frame);
    unpack(*f, s.targets, s.targets_tuple, items[k]);
    f->vars["loop"] = loop_object(items, k, changed);
    FrameGuard fg(r, f);
    Flow fl = exec(r, s.body, out);
    if (fl == Flow::Break) break;
  }
  return Flow::Normal;
}

Flow exec_stmt(Renderer& r, const Stmt& s, std::string& out) {
  switch (s.kind) {
    case StmtKind::Text:
      out += s.text;
      r.check_size(out.size());
      return Flow::Normal;
    case StmtKind::Output:
      out += to_str(r.eval(*s.expr));
      r.check_size(out.size());
      return Flow::Normal;
    case StmtKind::If:
      for (const auto& [cond, body] : s.branches)
        if (truthy(r.eval(*cond))) return exec(r, body, out);
      return exec(r, s.else_body, out);
    case StmtKind::For: return exec_for(r, s, out);
    case StmtKind::Set: unpack(*r.frame, s.targets, s.targets_tuple, r.eval(*s.expr)); return Flow::Normal;
    case StmtKind::SetAttr: {
      Value obj = r.eval(*s.expr);
      if (obj.kind != Kind::Object || obj.obj->type != "Namespace")
        fail("can only assign attributes on namespace objects, not on " + type_name(obj));
      obj.obj->attrs.set(Value::str(s.text), r.eval(*s.cond));
      return Flow::Normal;
    }
    case StmtKind::SetBlock: {
      Value v = Value::str(r.render_body(s.body));
      if (s.expr) v = apply_chain(r, *s.expr, std::move(v));
      r.frame->vars[s.targets[0]] = std::move(v);
      return Flow::Normal;
    }
    case StmtKind::FilterBlock:
      out += to_str(apply_chain(r, *s.expr, Value::str(r.render_body(s.body))));
      r.check_size(out.size());
      return Flow::Normal;
    case StmtKind::Macro: r.frame->vars[s.text] = make_macro(r, s, s.text); return Flow::Normal;
    case StmtKind::CallBlock: {
      const Expr& call = *s.expr;
      Value callee = r.eval(*call.args[0]);
      CallArgs a;
      for (size_t k = 1; k < call.args.size(); ++k) a.pos.push_back(r.eval(*call.args[k]));
      for (const auto& [key, x] : call.kwargs) a.kw.emplace_back(key, r.eval(*x));
      a.kw.emplace_back("caller", make_macro(r, s, "caller"));
      out += to_str(r.call(callee, a));
      r.check_size(out.size());
      return Flow::Normal;
    }
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
    case StmtKind::Scope: {
      auto f = child_frame(r.frame);
      FrameGuard fg(r, f);
      return exec(r, s.body, out);
    }
  }
  return Flow::Normal;
}

Flow exec(Renderer& r, const Body& body, std::string& out) {
  DepthGuard g(r);
  for (const StmtPtr& s : body) {
    r.step();
    Flow fl;
    try {
      fl = exec_stmt(r, *s, out);
    } catch (TemplateError& e) {
      if (!e.line) e.line = s->line, e.col = s->col;
      throw;
    }
    if (fl != Flow::Normal) return fl;
  }
  return Flow::Normal;
}

}  // namespace

void render(Renderer& r, const Body& body, std::string& out) { exec(r, body, out); }

std::string Renderer::render_body(const Body& body) {
  std::string out;
  exec(*this, body, out);
  return out;
}

Value Renderer::call(const Value& callee, CallArgs& args) {
  if (callee.kind == Kind::Callable) return (*callee.fn)(*this, args);
  if (callee.is_undefined()) fail_undefined(callee);
  fail(std::string("'").append(type_name(callee)).append("' object is not callable"));
}

Value Renderer::get_attr(const Value& obj, const std::string& attr) {
  switch (obj.kind) {
    case Kind::Undefined: fail_undefined(obj);
    case Kind::Object: {
      if (const Value* v = obj.obj->attrs.find(attr)) return *v;
      break;
    }
    case Kind::Dict: {
      Value m = method_of(obj, attr);
      if (!m.is_undefined()) return m;
      if (const Value* v = obj.dv().find(attr)) return *v;
      break;
    }
    case Kind::String:
    case Kind::List:
    case Kind::Tuple: {
      Value m = method_of(obj, attr);
      if (!m.is_undefined()) return m;
      break;
    }
    default: break;
  }
  return Value::undefined(
      std::string("'").append(type_name(obj)).append(" object' has no attribute '").append(attr).append("'"));
}

Value Renderer::get_item(const Value& obj, const Value& key) {
  if (obj.lazy || obj.view != View::None)
    return Value::undefined(std::string("'").append(type_name(obj)).append("' object is not subscriptable"));
  switch (obj.kind) {
    case Kind::Undefined: fail_undefined(obj);
    case Kind::Dict:
      if (const Value* v = obj.dv().find(key)) return *v;
      break;
    case Kind::List:
    case Kind::Tuple:
    case Kind::String:
      if (key.kind == Kind::Int || key.kind == Kind::Bool) {
        int64_t k = key.as_int();
        if (obj.kind == Kind::String) {
          std::u32string u = to_u32(obj.sv());
          int64_t n = int64_t(u.size());
          if (k < 0) k += n;
          if (k >= 0 && k < n) return Value::str(to_utf8(u.substr(size_t(k), 1)));
        } else {
          int64_t n = int64_t(obj.lv().size());
          if (k < 0) k += n;
          if (k >= 0 && k < n) return obj.lv()[size_t(k)];
        }
        return Value::undefined(std::string("\'").append(type_name(obj)) + " object' has no element " +
                                std::to_string(key.as_int()));
      }
      break;
    default: break;
  }
  if (key.kind == Kind::String) return get_attr(obj, key.sv());
  return Value::undefined(std::string("\'").append(type_name(obj)) + " object' has no element " + repr(key));
}

Value Renderer::eval(const Expr& e) {
  DepthGuard g(*this);
  step();
  try {
    switch (e.kind) {
      case ExprKind::Literal: return e.value;
      case ExprKind::Name: {
        if (const Value* v = frame->lookup(e.name)) return *v;
        Value g = global_function(e.name);
        if (!g.is_undefined()) return g;
        return Value::undefined("'" + e.name + "' is undefined");
      }
      case ExprKind::ListLit:
      case ExprKind::TupleLit: {
        List l;
        for (const auto& x : e.args) l.push_back(eval(*x));
        return Value::make_list(std::move(l), e.kind == ExprKind::TupleLit);
      }
      case ExprKind::DictLit: {
        Dict d;
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          if (key.is_seq() && key.kind == Kind::List) fail("unhashable type: 'list'");
          if (key.kind == Kind::Dict) fail("unhashable type: 'dict'");
          d.set(key, eval(*e.args[k + 1]));
        }
        return Value::make_dict(std::move(d));
      }
      case ExprKind::GetAttr: return get_attr(eval(*e.args[0]), e.name);
      case ExprKind::GetItem: return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case ExprKind::Slice: {
        Value obj = eval(*e.args[0]);
        auto opt = [&](size_t k) { return e.args[k] ? eval(*e.args[k]) : Value::none(); };
        return slice(obj, opt(1), opt(2), opt(3), is_constant(*e.args[0]));
      }
      case ExprKind::Call: {
        Value callee = eval(*e.args[0]);
        CallArgs a;
        for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
        for (const auto& [key, x] : e.kwargs) a.kw.emplace_back(key, eval(*x));
        return call(callee, a);
      }
      case ExprKind::Filter: {
        Value v = eval(*e.args[0]);
        CallArgs a;
        for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
        for (const auto& [key, x] : e.kwargs) a.kw.emplace_back(key, eval(*x));
        return apply_filter(*this, e.name, v, a);
      }
      case ExprKind::Test: {
        Value v = eval(*e.args[0]);
        CallArgs a;
        for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
        for (const auto& [key, x] : e.kwargs) a.kw.emplace_back(key, eval(*x));
        return Value::boolean(apply_test(*this, e.name, v, a) != e.negated);
      }
      case ExprKind::Neg:
      case ExprKind::Pos: {
        Value v = eval(*e.args[0]);
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number())
          fail(std::string("bad operand type for unary ") + (e.kind == ExprKind::Neg ? "-" : "+") + ": '" +
               type_name(v) + "'");
        if (e.kind == ExprKind::Pos) return v.kind == Kind::Bool ? Value::integer(v.as_int()) : v;
        if (v.kind == Kind::Float) return Value::real(-v.f);
        if (v.as_int() == INT64_MIN) fail("integer overflow");
        return Value::integer(-v.as_int());
      }
      case ExprKind::Not: return Value::boolean(!truthy(eval(*e.args[0])));
      case ExprKind::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case ExprKind::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case ExprKind::Binary: return binop(*this, e.name, eval(*e.args[0]), eval(*e.args[1]));
      case ExprKind::Compare: {
        Value left = eval(*e.args[0]);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          if (!compare_op(e.ops[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case ExprKind::CondExpr:
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the inline if-expression had no else branch");
    }
  } catch (TemplateError& err) {
    if (!err.line) err.line = e.line, err.col = e.col;
    throw;
  }
  return Value();
}

}  // namespace llada2::jinja
