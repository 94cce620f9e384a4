// Jinja2 3.1's built-in filters with Python 3 semantics, plus transformers' tojson; one
// name -> function table.
#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_map>

#include "jinja/builtins.h"
#include "jinja/runtime.h"
#include "jinja/string.h"

namespace llada2::jinja {
namespace {

// Jinja's attribute getter: "a.b.0" looks up each part as an item (integers as indices).
Value get_path(Renderer& r, const Value& v, const Value& attribute) {
  if (attribute.kind == Kind::Int) return r.get_item(v, attribute);
  const std::string& path = need_str(attribute, "attribute");
  Value cur = v;
  size_t b = 0;
  while (true) {
    size_t e = path.find('.', b);
    std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = digits && part.size() < 18 ? r.get_item(cur, Value::integer(std::stoll(part)))
                                     : r.get_item(cur, Value::str(part));
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.kind == Kind::String) return Value::str(lower(v.sv()));
  return v;
}

std::string indent(const std::string& s, const Value& width, bool first, bool blank) {
  std::string ind = width.kind == Kind::String
                        ? width.sv()
                        : std::string(size_t(std::max<int64_t>(0, need_int(width, "indent width"))), ' ');
  std::vector<std::u32string> lines = splitlines(to_u32(s + "\n"), false);
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv.append("\n").append(ind);
      rv += to_utf8(lines[k]);
    }
  } else {
    rv = lines.empty() ? "" : to_utf8(lines[0]);
    // Appended piece by piece: `"\n" + std::string` makes GCC 12 warn (-Wrestrict) about an overlap
    // that cannot happen.
    for (size_t k = 1; k < lines.size(); ++k) {
      rv += '\n';
      if (!lines[k].empty()) rv.append(ind).append(to_utf8(lines[k]));
    }
  }
  return first ? ind + rv : rv;
}

// Python's round(x, n) for floats: round half to even on the decimal value.
double py_round(double x, int64_t n) {
  if (!std::isfinite(x)) return x;
  if (n > 300) return x;
  if (n < -308) return 0.0 * x;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", int(std::max<int64_t>(n, 0)),
                x);  // correctly rounded, ties to even on the exact binary value
  if (n >= 0) return std::strtod(buf, nullptr);
  double p = std::pow(10.0, double(-n));
  return std::nearbyint(x / p) * p;
}

std::optional<int64_t> parse_int(const std::string& s0, int base) {
  std::string s = strip(s0, Value::none(), true, true);
  std::string t;
  for (char c : s)
    if (c != '_') t.push_back(c);
  if (t.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(t.c_str(), &end, base);
  if (errno || *end != '\0') return std::nullopt;
  return int64_t(v);
}

std::optional<double> parse_float(const std::string& s0) {
  std::string s = strip(s0, Value::none(), true, true);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return d;
}

// select / reject / selectattr / rejectattr share this: a test (or truthiness) per item.
template <bool want, bool by_attr>
Value select_items(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  Value attr;
  size_t k = 0;
  if (by_attr) {
    if (a.pos.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = a.pos[k++];
  }
  std::optional<std::string> test;
  if (k < a.pos.size()) test = need_str(a.pos[k++], "test name");
  CallArgs targs;
  targs.pos.assign(a.pos.begin() + long(k), a.pos.end());
  targs.kw = a.kw;
  List out;
  if (!truthy(v)) return Value::generator({});  // Jinja2 does not iterate a false value
  for (const Value& item : iterate(v)) {
    r.step();
    Value x = by_attr ? get_path(r, item, attr) : item;
    bool ok = test ? apply_test(r, *test, x, targs) : truthy(x);
    if (ok == want) out.push_back(item);
  }
  return Value::generator(std::move(out));
}

Value to_list_value(const Value& v) { return Value::make_list(iterate(v)); }

Value filter_length(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  if (v.lazy) fail("object of type 'generator' has no len()");
  switch (v.kind) {
    case Kind::String: return Value::integer(int64_t(to_u32(v.sv()).size()));
    case Kind::List:
    case Kind::Tuple: return Value::integer(int64_t(v.lv().size()));
    case Kind::Dict: return Value::integer(int64_t(v.dv().items.size()));
    case Kind::Undefined: return Value::integer(0);
    default: fail("object of type '" + type_name(v) + "' has no len()");
  }
}

Value filter_tojson(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  auto p = bind(name, a,
                {opt("ensure_ascii", Value::boolean(false)), opt("indent", Value::none()),
                 opt("separators", Value::none()), opt("sort_keys", Value::boolean(false))});
  std::string ind;
  const std::string* indent_ptr = nullptr;
  if (!p[1].is_none()) {
    ind = p[1].kind == Kind::String ? p[1].sv()
                                    : std::string(size_t(std::max<int64_t>(0, need_int(p[1], "indent"))), ' ');
    indent_ptr = &ind;
  }
  std::string item_sep = indent_ptr ? "," : ", ", key_sep = ": ";
  if (!p[2].is_none()) {
    if (!p[2].is_seq() || p[2].lv().size() != 2) fail("tojson separators must be a pair of strings");
    item_sep = need_str(p[2].lv()[0], "separator");
    key_sep = need_str(p[2].lv()[1], "separator");
  }
  if (v.is_undefined()) fail("Object of type Undefined is not JSON serializable");
  if (v.lazy) fail("Object of type generator is not JSON serializable");
  return Value::str(to_json(v, truthy(p[0]), indent_ptr, item_sep, key_sep, truthy(p[3])));
}

Value filter_trim(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("chars", Value::none())});
  return Value::str(strip(to_str(v), p[0], true, true));
}

// Filters without arguments that map str(v) to a new string.
template <std::string (*F)(const std::string&)>
Value filter_str(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  return bind(name, a, {}), Value::str(F(to_str(v)));
}

Value filter_string(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  return bind(name, a, {}), v.kind == Kind::String ? v : Value::str(to_str(v));
}

Value filter_e(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  return bind(name, a, {}), Value::str(html_escape(to_str(v)));
}

Value filter_default(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("default_value", Value::str("")), opt("boolean", Value::boolean(false))});
  if (v.is_undefined() || (truthy(p[1]) && !truthy(v))) return p[0];
  return v;
}

Value filter_join(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("d", Value::str("")), opt("attribute", Value::none())});
  std::string sep = to_str(p[0]), out;
  bool first = true;
  for (const Value& x : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(p[1].is_none() ? x : get_path(r, x, p[1]));
    r.check_size(out.size());
  }
  return Value::str(std::move(out));
}

Value filter_items(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  if (v.is_undefined()) return Value::generator({});
  if (v.kind != Kind::Dict) fail("Can only get item pairs from a mapping.");
  Value items = dict_items(v);
  items.lazy = true;
  return items;
}

Value filter_first(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  List l = iterate(v);
  return l.empty() ? Value::undefined("No first item, sequence was empty.") : l.front();
}

Value filter_last(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  if (v.is_undefined()) fail_undefined(v);
  if (v.lazy) fail("'generator' object is not reversible");
  List l = iterate(v);
  return l.empty() ? Value::undefined("No last item, sequence was empty.") : l.back();
}

Value filter_list(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  return bind(name, a, {}), to_list_value(v);
}

Value filter_int(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("default", Value::integer(0)), opt("base", Value::integer(10))});
  if (v.is_undefined()) fail_undefined(v);
  switch (v.kind) {
    case Kind::Int: return v;
    case Kind::Bool: return Value::integer(v.as_int());
    case Kind::Float:
      if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return p[0];
      return Value::integer(int64_t(v.f));
    case Kind::String: {
      if (auto i = parse_int(v.sv(), int(need_int(p[1], "base")))) return Value::integer(*i);
      if (auto d = parse_float(v.sv()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18)
        return Value::integer(int64_t(*d));
      return p[0];
    }
    default: return p[0];
  }
}

Value filter_float(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("default", Value::real(0.0))});
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number()) return Value::real(v.as_double());
  if (v.kind == Kind::String)
    if (auto d = parse_float(v.sv())) return Value::real(*d);
  return p[0];
}

Value filter_abs(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  if (v.kind == Kind::Float) return Value::real(std::fabs(v.f));
  if (v.kind == Kind::Int || v.kind == Kind::Bool) {
    if (v.as_int() == INT64_MIN) fail("integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  fail("bad operand type for abs(): '" + type_name(v) + "'");
}

Value filter_replace(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {req("old"), req("new"), opt("count", Value::none())});
  return Value::str(replace(to_str(v), to_str(p[0]), to_str(p[1]), p[2].is_none() ? -1 : need_int(p[2], "count"),
                            r.limits.max_output_bytes));
}

Value filter_reverse(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  if (v.kind == Kind::String) {
    std::u32string u = to_u32(v.sv());
    std::reverse(u.begin(), u.end());
    return Value::str(to_utf8(u));
  }
  List l = iterate(v);
  std::reverse(l.begin(), l.end());
  // reversed(list) is an iterator; a generator has no reversed() and is listed first
  return v.lazy ? Value::make_list(std::move(l)) : Value::generator(std::move(l));
}

Value filter_sort(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  std::vector<Value> p;
  if (name == "sort")
    p = bind(name, a,
             {opt("reverse", Value::boolean(false)), opt("case_sensitive", Value::boolean(false)),
              opt("attribute", Value::none())});
  else
    p = bind(name, a, {opt("case_sensitive", Value::boolean(false)), opt("attribute", Value::none())}),
    p.insert(p.begin(), Value::boolean(false));
  bool cs = truthy(p[1]);
  List items = iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t k = 0; k < items.size(); ++k)
    keyed.emplace_back(sort_key(p[2].is_none() ? items[k] : get_path(r, items[k], p[2]), cs), k);
  if (name == "unique") {
    List out;
    std::vector<Value> seen;
    for (auto& [key, k] : keyed) {
      bool dup = false;
      for (const Value& s : seen) dup = dup || equal(s, key);
      if (!dup) seen.push_back(key), out.push_back(items[k]);
    }
    return Value::generator(std::move(out));
  }
  bool rev = truthy(p[0]);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    int c = compare(x.first, y.first);
    return rev ? c > 0 : c < 0;
  });
  if (name == "min" || name == "max") {
    if (keyed.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    if (name == "min") return items[keyed.front().second];
    // max: the first of the largest, as Python's max() returns.
    size_t best = keyed.back().second;
    for (auto it = keyed.rbegin(); it != keyed.rend() && compare(it->first, keyed.back().first) == 0; ++it)
      best = std::min(best, it->second);
    return items[best];
  }
  List out;
  for (auto& kv : keyed) out.push_back(items[kv.second]);
  return Value::make_list(std::move(out));
}

Value filter_dictsort(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a,
                {opt("case_sensitive", Value::boolean(false)), opt("by", Value::str("key")),
                 opt("reverse", Value::boolean(false))});
  if (v.kind != Kind::Dict) fail("You can only sort by either \"key\" or \"value\" of a dict");
  std::string by = to_str(p[1]);
  if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
  std::vector<std::pair<Value, Value>> items = v.dv().items;
  bool cs = truthy(p[0]), rev = truthy(p[2]);
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    int c = compare(sort_key(by == "key" ? x.first : x.second, cs), sort_key(by == "key" ? y.first : y.second, cs));
    return rev ? c > 0 : c < 0;
  });
  List out;
  for (auto& [k, x] : items) out.push_back(Value::make_list({k, x}, true));
  return Value::make_list(std::move(out));
}

Value filter_map(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  List out;
  if (!truthy(v)) return Value::generator({});  // Jinja2 does not iterate a false value
  bool by_attr = false;
  Value attr, dflt;
  for (auto& [key, x] : a.kw) {
    if (key == "attribute")
      by_attr = true, attr = x;
    else if (key == "default")
      dflt = x;
  }
  if (by_attr) {
    for (const Value& item : iterate(v)) {
      r.step();
      Value x = get_path(r, item, attr);
      out.push_back(x.is_undefined() && !dflt.is_undefined() ? dflt : x);
    }
    return Value::generator(std::move(out));
  }
  if (a.pos.empty()) fail("map requires a filter name or attribute=");
  std::string f = need_str(a.pos[0], "filter name");
  CallArgs fargs;
  fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
  fargs.kw = a.kw;
  for (const Value& item : iterate(v)) {
    CallArgs copy = fargs;
    out.push_back(apply_filter(r, f, item, copy));
  }
  return Value::generator(std::move(out));
}

Value filter_indent(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p =
      bind(name, a,
           {opt("width", Value::integer(4)), opt("first", Value::boolean(false)), opt("blank", Value::boolean(false))});
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind != Kind::String) fail("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
  std::string s = indent(v.sv(), p[0], truthy(p[1]), truthy(p[2]));
  r.check_size(s.size());
  return Value::str(std::move(s));
}

Value filter_round(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("precision", Value::integer(0)), opt("method", Value::str("common"))});
  std::string method = to_str(p[1]);
  if (!v.is_number()) fail("round() needs a number, not " + type_name(v));
  double x = v.as_double();
  int64_t prec = need_int(p[0], "precision");
  if (method == "common") {
    if (v.kind != Kind::Float) {  // Python's round() of an int stays an int
      if (prec >= 0) return Value::integer(v.as_int());
      return Value::integer(int64_t(py_round(x, prec)));
    }
    return Value::real(py_round(x, prec));
  }
  if (method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
  double m = std::pow(10.0, double(prec));
  return Value::real((method == "ceil" ? std::ceil(x * m) : std::floor(x * m)) / m);
}

Value filter_sum(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("attribute", Value::none()), opt("start", Value::integer(0))});
  Value total = p[1];
  for (const Value& item : iterate(v)) {
    Value x = p[0].is_none() ? item : get_path(r, item, p[0]);
    if (!total.is_number() || !x.is_number())
      fail("unsupported operand type(s) for +: '" + type_name(total) + "' and '" + type_name(x) + "'");
    if (total.kind == Kind::Float || x.kind == Kind::Float) {
      total = Value::real(total.as_double() + x.as_double());
    } else {
      int64_t z;
      if (__builtin_add_overflow(total.as_int(), x.as_int(), &z)) fail("integer overflow");
      total = Value::integer(z);
    }
  }
  return total;
}

Value filter_wordcount(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  bind(name, a, {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : to_u32(to_str(v))) {
    // re's \w: str.isalnum() (letters, digits, other numerics) or '_'
    bool w = py_isalpha(c) || py_isdigit(c) || c == '_' || (c >= 0x2160 && c <= 0x2188) || c == 0xB2 || c == 0xB3 ||
             c == 0xB9 || (c >= 0xBC && c <= 0xBE);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value filter_batch(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {req("linecount"), opt("fill_with", Value::none())});
  int64_t n = need_int(p[0], "linecount");
  if (n <= 0) fail("batch size must be positive");
  List out, cur;
  for (const Value& item : iterate(v)) {
    if (int64_t(cur.size()) == n) out.push_back(Value::make_list(std::move(cur))), cur.clear();
    cur.push_back(item);
  }
  if (!cur.empty()) {
    while (!p[1].is_none() && int64_t(cur.size()) < n) cur.push_back(p[1]);
    out.push_back(Value::make_list(std::move(cur)));
  }
  return Value::generator(std::move(out));
}

Value filter_slice(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {req("slices"), opt("fill_with", Value::none())});
  int64_t slices = need_int(p[0], "slices");
  if (slices <= 0) fail("integer division or modulo by zero");
  if (slices > 100000) fail("too many slices");
  List seq = iterate(v), out;
  int64_t len = int64_t(seq.size()), per = len / slices, extra = len % slices, offset = 0;
  for (int64_t k = 0; k < slices; ++k) {
    int64_t start = offset + k * per;
    if (k < extra) ++offset;
    int64_t end = offset + (k + 1) * per;
    List part(seq.begin() + start, seq.begin() + end);
    if (!p[1].is_none() && k >= extra) part.push_back(p[1]);
    out.push_back(Value::make_list(std::move(part)));
  }
  return Value::generator(std::move(out));
}

Value filter_center(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {opt("width", Value::integer(80))});
  std::u32string u = to_u32(to_str(v));
  int64_t width = need_int(p[0], "width"), len = int64_t(u.size());
  if (width <= len) return Value::str(to_str(v));
  r.check_size(size_t(width));
  int64_t pad = width - len, left = pad / 2 + (pad & width & 1);  // str.center's split of the padding
  return Value::str(std::string(size_t(left), ' ') + to_str(v) + std::string(size_t(pad - left), ' '));
}

Value filter_truncate(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a,
                {opt("length", Value::integer(255)), opt("killwords", Value::boolean(false)),
                 opt("end", Value::str("...")), opt("leeway", Value::integer(5))});
  std::u32string u = to_u32(to_str(v)), end = to_u32(to_str(p[2]));
  int64_t length = need_int(p[0], "length"), leeway = p[3].is_none() ? 5 : need_int(p[3], "leeway");
  if (length < int64_t(end.size()))
    fail("expected length >= " + std::to_string(end.size()) + ", got " + std::to_string(length));
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  if (int64_t(u.size()) <= length + leeway) return Value::str(to_utf8(u));
  std::u32string head = u.substr(0, size_t(length) - end.size());
  if (!truthy(p[1])) {
    size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head.resize(sp);
  }
  return Value::str(to_utf8(head + end));
}

Value filter_format(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  if (!a.pos.empty() && !a.kw.empty()) fail("can't handle positional and keyword arguments at the same time");
  Dict kw;
  for (auto& [k, x] : a.kw) kw.set(Value::str(k), x);
  return Value::str(
      printf_format(to_str(v), a.kw.empty() ? Value::make_list(a.pos, true) : Value::make_dict(std::move(kw))));
}

Value filter_attr(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  auto p = bind(name, a, {req("name")});
  const std::string& attr = need_str(p[0], "attribute name");
  if (v.kind == Kind::Object) {
    if (const Value* x = v.obj->attrs.find(attr)) return *x;
  } else if (v.is_undefined()) {
    fail_undefined(v);
  } else {
    Value m = method_of(v, attr);
    if (!m.is_undefined()) return m;
  }
  return Value::undefined(std::string("\'").append(type_name(v)) + " object' has no attribute '" + attr + "'");
}

using FilterFn = Value (*)(Renderer& r, const std::string& name, const Value& v, CallArgs& a);

// The filters, by name; aliases share a function.
const std::unordered_map<std::string, FilterFn> kFilters = {
    {"length", filter_length},
    {"count", filter_length},
    {"tojson", filter_tojson},
    {"trim", filter_trim},
    {"upper", filter_str<upper>},
    {"lower", filter_str<lower>},
    {"capitalize", filter_str<capitalize>},
    {"title", filter_str<jinja_title>},
    {"string", filter_string},
    {"safe", filter_string},  // Markup(str(v)),
    {"e", filter_e},
    {"escape", filter_e},
    {"forceescape", filter_e},
    {"default", filter_default},
    {"d", filter_default},
    {"join", filter_join},
    {"items", filter_items},
    {"first", filter_first},
    {"last", filter_last},
    {"list", filter_list},
    {"int", filter_int},
    {"float", filter_float},
    {"abs", filter_abs},
    {"replace", filter_replace},
    {"reverse", filter_reverse},
    {"sort", filter_sort},
    {"unique", filter_sort},
    {"min", filter_sort},
    {"max", filter_sort},
    {"dictsort", filter_dictsort},
    {"map", filter_map},
    {"select", select_items<true, false>},
    {"reject", select_items<false, false>},
    {"selectattr", select_items<true, true>},
    {"rejectattr", select_items<false, true>},
    {"indent", filter_indent},
    {"round", filter_round},
    {"sum", filter_sum},
    {"wordcount", filter_wordcount},
    {"batch", filter_batch},
    {"slice", filter_slice},
    {"center", filter_center},
    {"truncate", filter_truncate},
    {"format", filter_format},
    {"attr", filter_attr},
};

}  // namespace

bool has_filter(const std::string& name) { return kFilters.count(name) != 0; }

Value apply_filter(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  r.step();
  auto it = kFilters.find(name);
  if (it == kFilters.end()) fail("no filter named '" + name + "'");
  return it->second(r, name, v, a);
}

}  // namespace llada2::jinja
