// Python's operators over template values: arithmetic, concatenation, repetition, membership,
// comparison chains and slicing.
#include "jinja/operators.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "jinja/string.h"

namespace llada2::jinja {
namespace {

std::string op_error(const char* op, const Value& a, const Value& b) {
  return std::string("unsupported operand type(s) for ") + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'";
}

template <typename Op>
Value int_op(int64_t x, int64_t y, Op op) {
  int64_t z;
  if (op(x, y, &z)) fail("integer overflow");
  return Value::integer(z);
}

Value repeat(Renderer& r, const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.kind == Kind::String) {
    r.check_size(seq.sv().size() * size_t(n > 0 ? 1 : 0) * size_t(n));
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.sv();
    return Value::str(std::move(out));
  }
  r.check_size(seq.lv().size() * size_t(n));
  List out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.lv().begin(), seq.lv().end());
  return Value::make_list(std::move(out), seq.kind == Kind::Tuple);
}

}  // namespace

Value binop(Renderer& r, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a) + to_str(b);
    r.check_size(s.size());
    return Value::str(std::move(s));
  }
  if (op == "%" && a.kind == Kind::String) {
    std::string out = printf_format(a.sv(), b);
    r.check_size(out.size());
    return Value::str(std::move(out));
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const char* o = op.c_str();
  bool nums = a.is_number() && b.is_number();
  bool flt = nums && (a.kind == Kind::Float || b.kind == Kind::Float);
  int64_t x = nums ? a.as_int() : 0, y = nums ? b.as_int() : 0;
  double fx = nums ? a.as_double() : 0, fy = nums ? b.as_double() : 0;
  if (op == "+") {
    if (nums)
      return flt ? Value::real(fx + fy)
                 : int_op(x, y, [](int64_t p, int64_t q, int64_t* o) { return __builtin_add_overflow(p, q, o); });
    if (a.kind == Kind::String && b.kind == Kind::String) {
      r.check_size(a.sv().size() + b.sv().size());
      return Value::str(a.sv() + b.sv());
    }
    if (a.is_seq() && a.kind == b.kind && !a.lazy && !b.lazy && a.view == View::None && b.view == View::None) {
      List out = a.lv();
      out.insert(out.end(), b.lv().begin(), b.lv().end());
      r.check_size(out.size());
      return Value::make_list(std::move(out), a.kind == Kind::Tuple);
    }
    if (a.kind == Kind::String || b.kind == Kind::String) {
      const Value& other = a.kind == Kind::String ? b : a;
      fail("can only concatenate str (not \"" + type_name(other) + "\") to str");
    }
    fail(op_error(o, a, b));
  }
  if (op == "-") {
    if (nums)
      return flt ? Value::real(fx - fy)
                 : int_op(x, y, [](int64_t p, int64_t q, int64_t* o) { return __builtin_sub_overflow(p, q, o); });
    fail(op_error(o, a, b));
  }
  if (op == "*") {
    if (nums)
      return flt ? Value::real(fx * fy)
                 : int_op(x, y, [](int64_t p, int64_t q, int64_t* o) { return __builtin_mul_overflow(p, q, o); });
    if ((a.kind == Kind::String || (a.is_seq() && !a.lazy)) && (b.kind == Kind::Int || b.kind == Kind::Bool))
      return repeat(r, a, b.as_int());
    if ((b.kind == Kind::String || (b.is_seq() && !b.lazy)) && (a.kind == Kind::Int || a.kind == Kind::Bool))
      return repeat(r, b, a.as_int());
    fail(op_error(o, a, b));
  }
  if (!nums) {
    fail(op_error(op == "**" ? "** or pow()" : o, a, b));
  }
  if (op == "/") {
    if (fy == 0) fail("division by zero");
    return Value::real(fx / fy);
  }
  if (op == "//") {
    if (flt) {
      if (fy == 0) fail("float floor division by zero");
      return Value::real(std::floor(fx / fy));
    }
    if (y == 0) fail("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) fail("integer overflow");
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value::integer(q);
  }
  if (op == "%") {
    if (flt) {
      if (fy == 0) fail("float modulo by zero");
      double m = std::fmod(fx, fy);
      if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
      return Value::real(m);
    }
    if (y == 0) fail("integer division or modulo by zero");
    if (y == -1) return Value::integer(0);
    int64_t m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::integer(m);
  }
  if (op == "**") {
    if (!flt && y >= 0) {
      int64_t result = 1, base = x;
      for (int64_t e = y; e > 0; e >>= 1) {
        if ((e & 1) && __builtin_mul_overflow(result, base, &result)) fail("integer overflow");
        if (e > 1 && __builtin_mul_overflow(base, base, &base)) fail("integer overflow");
      }
      return Value::integer(result);
    }
    if (fx == 0 && fy < 0) fail("0.0 cannot be raised to a negative power");
    double p = std::pow(fx, fy);
    if (std::isnan(p) && !std::isnan(fx) && !std::isnan(fy))
      fail("negative number cannot be raised to a fractional power");
    return Value::real(p);
  }
  fail("unknown operator " + op);
}

namespace {

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::String:
      if (item.kind != Kind::String) fail("'in <string>' requires string as left operand, not " + type_name(item));
      return container.sv().find(item.sv()) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      for (const Value& x : container.lv())
        if (equal(x, item)) return true;
      return false;
    case Kind::Dict:
      if (item.kind == Kind::List || item.kind == Kind::Dict) fail("unhashable type: '" + type_name(item) + "'");
      return container.dv().find(item) != nullptr;
    case Kind::Undefined: return false;
    default: fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

}  // namespace

bool compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equal(a, b);
  if (op == "!=") return !equal(a, b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  int c;
  try {
    c = compare(a, b);
  } catch (TemplateError& e) {
    e.message = "'" + op + "' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'";
    throw;
  }
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

bool is_constant(const Expr& e) {
  switch (e.kind) {
    case ExprKind::Literal: return true;
    case ExprKind::ListLit:
    case ExprKind::TupleLit:
    case ExprKind::DictLit:
    case ExprKind::Neg:
    case ExprKind::Pos:
    case ExprKind::Not:
    case ExprKind::And:
    case ExprKind::Or:
    case ExprKind::Binary:
    case ExprKind::Compare:
      for (const auto& a : e.args)
        if (!a || !is_constant(*a)) return false;
      return true;
    default: return false;
  }
}

// Python slicing of str / list / tuple. A folded constant that cannot be sliced becomes
// Undefined (the optimizer's getitem); at run time the TypeError stands.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step, bool constant) {
  auto idx = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (v.kind != Kind::Int && v.kind != Kind::Bool) fail(std::string("slice ") + what + " must be an integer or None");
    return v.as_int();
  };
  std::optional<int64_t> a = idx(start, "indices"), b = idx(stop, "indices"), s = idx(step, "indices");
  int64_t st = s.value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  std::u32string u;
  int64_t n;
  if (obj.kind == Kind::String) {
    u = to_u32(obj.sv());
    n = int64_t(u.size());
  } else if (obj.is_seq() && !obj.lazy && obj.view == View::None) {
    n = int64_t(obj.lv().size());
  } else if (obj.is_undefined()) {
    fail_undefined(obj);
  } else if (constant) {
    return Value::undefined(std::string("'").append(type_name(obj)).append("' object is not subscriptable"));
  } else {
    fail(std::string("\'").append(type_name(obj)) + "' object is not subscriptable");
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t lo = clamp(a, st > 0 ? 0 : n - 1), hi = clamp(b, st > 0 ? n : -1);
  std::vector<int64_t> picks;
  if (st > 0)
    for (int64_t k = lo; k < hi; k += st) picks.push_back(k);
  else
    for (int64_t k = lo; k > hi; k += st) picks.push_back(k);
  if (obj.kind == Kind::String) {
    std::u32string out;
    for (int64_t k : picks) out.push_back(u[size_t(k)]);
    return Value::str(to_utf8(out));
  }
  List out;
  for (int64_t k : picks) out.push_back(obj.lv()[size_t(k)]);
  return Value::make_list(std::move(out), obj.kind == Kind::Tuple);
}

void unpack(Frame& f, const std::vector<std::string>& names, bool tuple, const Value& v) {
  if (!tuple) {
    f.vars[names[0]] = v;
    return;
  }
  List items = iterate(v);
  if (items.size() != names.size())
    fail(items.size() > names.size() ? "too many values to unpack (expected " + std::to_string(names.size()) + ")"
                                     : "not enough values to unpack (expected " + std::to_string(names.size()) +
                                           ", got " + std::to_string(items.size()) + ")");
  for (size_t k = 0; k < names.size(); ++k) f.vars[names[k]] = items[k];
}

}  // namespace llada2::jinja
