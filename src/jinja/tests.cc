// Jinja2 3.1's built-in tests (`x is ...`), one name -> function table.
#include <cmath>
#include <unordered_map>

#include "jinja/builtins.h"
#include "jinja/runtime.h"
#include "jinja/string.h"

namespace llada2::jinja {
namespace {

// A test: either a predicate of the value alone (no arguments allowed) or a function of the
// value and its arguments.
struct TestDef {
  bool (*unary)(const Value& v);
  bool (*with_args)(const std::string& name, const Value& v, CallArgs& a);
};

Value other(const std::string& name, CallArgs& a) { return bind(name, a, {req("other")})[0]; }

bool is_case_test(const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  return is_case(to_u32(to_str(v)), name == "lower");
}

bool parity(const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind == Kind::Float)
    return std::fmod(v.f, 2.0) == (name == "even" ? 0.0 : 1.0) || (name == "odd" && std::fmod(v.f, 2.0) == -1.0);
  if (v.kind != Kind::Int && v.kind != Kind::Bool)
    fail("unsupported operand type(s) for %: '" + type_name(v) + "' and 'int'");
  bool even = v.as_int() % 2 == 0;
  return name == "even" ? even : !even;
}

bool divisibleby(const std::string& name, const Value& v, CallArgs& a) {
  Value d = bind(name, a, {req("num")})[0];
  if (!v.is_number() || !d.is_number())
    fail("unsupported operand type(s) for %: '" + type_name(v) + "' and '" + type_name(d) + "'");
  if (d.as_double() == 0) fail("integer division or modulo by zero");
  if (v.kind == Kind::Float || d.kind == Kind::Float) return std::fmod(v.as_double(), d.as_double()) == 0;
  if (d.as_int() == -1) return true;
  return v.as_int() % d.as_int() == 0;
}

bool eq(const std::string& name, const Value& v, CallArgs& a) { return equal(v, other(name, a)); }
bool ne(const std::string& name, const Value& v, CallArgs& a) { return !equal(v, other(name, a)); }

// Ordering tests: the comparison's sign against `other`.
template <bool (*Pred)(int)>
bool ordered(const std::string& name, const Value& v, CallArgs& a) {
  Value o = other(name, a);
  return Pred(compare(v, o));
}
constexpr bool lt(int c) { return c < 0; }
constexpr bool le(int c) { return c <= 0; }
constexpr bool gt(int c) { return c > 0; }
constexpr bool ge(int c) { return c >= 0; }

bool in(const std::string& name, const Value& v, CallArgs& a) {
  Value seq = bind(name, a, {req("seq")})[0];
  if (seq.kind == Kind::String) {
    if (v.kind != Kind::String) fail("'in <string>' requires string as left operand, not " + type_name(v));
    return seq.sv().find(v.sv()) != std::string::npos;
  }
  if (seq.kind == Kind::Dict) return seq.dv().find(v) != nullptr;
  for (const Value& x : iterate(seq))
    if (equal(x, v)) return true;
  return false;
}

bool sameas(const std::string& name, const Value& v, CallArgs& a) {
  Value o = other(name, a);
  if (v.kind != o.kind) return false;
  switch (v.kind) {
    case Kind::None:
    case Kind::Undefined: return true;
    case Kind::Bool: return v.b == o.b;
    case Kind::Int: return v.i == o.i && v.i >= -5 && v.i <= 256;  // CPython's cached small ints
    case Kind::String: return v.s == o.s;
    case Kind::List:
    case Kind::Tuple: return v.list == o.list;
    case Kind::Dict: return v.dict == o.dict;
    case Kind::Object: return v.obj == o.obj;
    case Kind::Callable: return v.fn == o.fn;
    default: return false;
  }
}

bool names_filter(const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  return v.kind == Kind::String && has_filter(v.sv());
}

bool names_test(const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  return v.kind == Kind::String && has_test(v.sv());
}

const std::unordered_map<std::string, TestDef> kTests = {
    {"defined", {[](const Value& v) { return !v.is_undefined(); }, nullptr}},
    {"undefined", {[](const Value& v) { return v.is_undefined(); }, nullptr}},
    {"none", {[](const Value& v) { return v.is_none(); }, nullptr}},
    {"string", {[](const Value& v) { return v.kind == Kind::String; }, nullptr}},
    {"number", {[](const Value& v) { return v.is_number(); }, nullptr}},
    {"integer", {[](const Value& v) { return v.kind == Kind::Int; }, nullptr}},
    {"float", {[](const Value& v) { return v.kind == Kind::Float; }, nullptr}},
    {"boolean", {[](const Value& v) { return v.kind == Kind::Bool; }, nullptr}},
    {"true", {[](const Value& v) { return v.kind == Kind::Bool && v.b; }, nullptr}},
    {"false", {[](const Value& v) { return v.kind == Kind::Bool && !v.b; }, nullptr}},
    {"mapping", {[](const Value& v) { return v.kind == Kind::Dict; }, nullptr}},
    {"iterable",
     {[](const Value& v) { return v.kind == Kind::String || v.is_seq() || v.kind == Kind::Dict || v.is_undefined(); },
      nullptr}},
    {"sequence",
     {[](const Value& v) {
        return v.kind == Kind::String || (v.is_seq() && !v.lazy && v.view == View::None) || v.kind == Kind::Dict ||
               v.is_undefined();
      },
      nullptr}},
    // Undefined has __call__.
    {"callable", {[](const Value& v) { return v.kind == Kind::Callable || v.is_undefined(); }, nullptr}},
    {"escaped", {[](const Value&) { return false; }, nullptr}},
    {"lower", {nullptr, is_case_test}},
    {"upper", {nullptr, is_case_test}},
    {"even", {nullptr, parity}},
    {"odd", {nullptr, parity}},
    {"divisibleby", {nullptr, divisibleby}},
    {"eq", {nullptr, eq}},
    {"equalto", {nullptr, eq}},
    {"==", {nullptr, eq}},
    {"ne", {nullptr, ne}},
    {"!=", {nullptr, ne}},
    {"lt", {nullptr, ordered<lt>}},
    {"lessthan", {nullptr, ordered<lt>}},
    {"<", {nullptr, ordered<lt>}},
    {"le", {nullptr, ordered<le>}},
    {"<=", {nullptr, ordered<le>}},
    {"gt", {nullptr, ordered<gt>}},
    {"greaterthan", {nullptr, ordered<gt>}},
    {">", {nullptr, ordered<gt>}},
    {"ge", {nullptr, ordered<ge>}},
    {">=", {nullptr, ordered<ge>}},
    {"in", {nullptr, in}},
    {"sameas", {nullptr, sameas}},
    {"filter", {nullptr, names_filter}},
    {"test", {nullptr, names_test}},
};

}  // namespace

bool has_test(const std::string& name) { return kTests.count(name) != 0; }

bool apply_test(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  r.step();
  auto it = kTests.find(name);
  if (it == kTests.end()) fail("no test named '" + name + "'");
  if (!it->second.unary) return it->second.with_args(name, v, a);
  bind(name, a, {});
  return it->second.unary(v);
}

}  // namespace llada2::jinja
