// Python value semantics for the template engine: truthiness, str/repr, equality, ordering,
// JSON in (from the caller) and out (transformers' tojson = json.dumps).
#include "jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja/string.h"

namespace llada2::jinja {

void fail(const std::string& message) { throw TemplateError{message}; }

void fail_undefined(const Value& v) { fail(v.s ? *v.s : std::string("undefined value")); }

void fail_nesting(const std::string& what) {
  fail(what + " nested deeper than " + std::to_string(kMaxNesting) + " levels");
}

uint16_t Value::nesting_of(const Dict& d) {
  int depth = 0;
  for (const auto& [k, v] : d.items) depth = std::max<int>({depth, k.depth, v.depth});
  return checked_depth(depth + 1);
}

void check_size(size_t n, size_t max_bytes) {
  if (n > max_bytes) fail("template output exceeded the size limit");
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equal(k, key)) return &v;
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.kind == Kind::String && k.sv() == key) return &v;
  return nullptr;
}

void Dict::set(const Value& key, Value v) {
  for (auto& [k, old] : items)
    if (equal(k, key)) {
      old = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

// ---- str / repr ----
bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return v.b;
    case Kind::Int: return v.i != 0;
    case Kind::Float: return v.f != 0;
    case Kind::String: return !v.sv().empty();
    case Kind::List:
    case Kind::Tuple: return v.lazy || !v.lv().empty();
    case Kind::Dict: return !v.dv().items.empty();
    case Kind::Object:
    case Kind::Callable: return true;
  }
  return false;
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List:
      if (v.lazy) return "generator";
      if (v.view == View::Keys) return "dict_keys";
      if (v.view == View::Values) return "dict_values";
      if (v.view == View::Items) return "dict_items";
      return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Object: return v.obj->type;
    case Kind::Callable: return "function";
  }
  return "object";
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // Shortest round-trip digits, laid out the way Python's repr(float) does.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp10 = std::atoi(sci.c_str() + epos + 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exp10 + 1;  // value = 0.digits * 10^decpt
  std::string out = neg ? "-" : "";
  if (decpt <= -4 || decpt > 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    int e = decpt - 1;
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    out += eb;
  } else if (decpt <= 0) {
    out += "0." + std::string(size_t(-decpt), '0') + digits;
  } else if (size_t(decpt) >= digits.size()) {
    out += digits + std::string(size_t(decpt) - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, size_t(decpt)) + "." + digits.substr(size_t(decpt));
  }
  return out;
}

// str.isprintable() for the characters that occur in practice.
static bool py_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F)) return false;
  if (c == 0x1680 || c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xDFFF) || (c >= 0xE000 && c <= 0xF8FF))
    return false;
  if (c >= 0xFFF9 && c <= 0xFFFB) return false;
  return c <= 0x10FFFF;
}

static std::string str_repr(const std::string& s) {
  bool has_sq = s.find('\'') != std::string::npos, has_dq = s.find('"') != std::string::npos;
  char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : to_u32(s)) {
    if (c == char32_t(q) || c == '\\') {
      out.push_back('\\');
      out.push_back(char(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!py_printable(c)) {
      char b[16];
      if (c < 0x100)
        std::snprintf(b, sizeof b, "\\x%02x", unsigned(c));
      else if (c < 0x10000)
        std::snprintf(b, sizeof b, "\\u%04x", unsigned(c));
      else
        std::snprintf(b, sizeof b, "\\U%08x", unsigned(c));
      out += b;
    } else {
      append_utf8(out, c);
    }
  }
  out.push_back(q);
  return out;
}

// repr and str recurse through namespaces, which may contain themselves; `level` bounds that.
static std::string str_at(const Value& v, int level);

static std::string repr_at(const Value& v, int level) {
  if (level > kMaxNesting) fail_nesting("value");
  if (v.lazy) return "<generator object>";
  if (v.view != View::None) {
    Value plain = v;
    plain.view = View::None;
    return type_name(v) + "(" + repr_at(plain, level) + ")";
  }
  switch (v.kind) {
    case Kind::String: return str_repr(v.sv());
    case Kind::Undefined: return "Undefined";
    case Kind::List:
    case Kind::Tuple: {
      bool tuple = v.kind == Kind::Tuple;
      std::string out = tuple ? "(" : "[";
      for (size_t k = 0; k < v.lv().size(); ++k) {
        if (k) out += ", ";
        out += repr_at(v.lv()[k], level + 1);
      }
      if (tuple && v.lv().size() == 1) out += ",";
      return out + (tuple ? ")" : "]");
    }
    case Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dv().items) {
        if (!first) out += ", ";
        first = false;
        out += repr_at(k, level + 1) + ": " + repr_at(x, level + 1);
      }
      return out + "}";
    }
    default: return str_at(v, level);
  }
}

std::string repr(const Value& v) { return repr_at(v, 0); }

static std::string str_at(const Value& v, int level) {
  switch (v.kind) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return v.b ? "True" : "False";
    case Kind::Int: return std::to_string(v.i);
    case Kind::Float: return float_repr(v.f);
    case Kind::String: return v.sv();
    case Kind::Object: {
      if (v.obj->type == "Namespace") {
        Value d = Value::make_dict(v.obj->attrs);
        return "<Namespace " + repr_at(d, level + 1) + ">";
      }
      return "<" + v.obj->type + ">";
    }
    case Kind::Callable: return "<function " + *v.fname + ">";
    default: return repr_at(v, level);
  }
}

std::string to_str(const Value& v) { return str_at(v, 0); }

bool equal(const Value& a, const Value& b) {
  if (a.lazy || b.lazy) return a.lazy && b.lazy && a.list == b.list;
  if (a.view != b.view) return false;
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return a.sv() == b.sv();
    case Kind::List:
    case Kind::Tuple: {
      if (a.lv().size() != b.lv().size()) return false;
      for (size_t k = 0; k < a.lv().size(); ++k)
        if (!equal(a.lv()[k], b.lv()[k])) return false;
      return true;
    }
    case Kind::Dict: {
      if (a.dv().items.size() != b.dv().items.size()) return false;
      for (const auto& [k, x] : a.dv().items) {
        const Value* y = b.dv().find(k);
        if (!y || !equal(x, *y)) return false;
      }
      return true;
    }
    case Kind::Object: return a.obj == b.obj;
    case Kind::Callable: return a.fn == b.fn;
    default: return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind == Kind::String && b.kind == Kind::String) {
    int c = a.sv().compare(b.sv());  // UTF-8 byte order = code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_seq() && a.kind == b.kind && !a.lazy && !b.lazy) {
    const List &x = a.lv(), &y = b.lv();
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (equal(x[k], y[k])) continue;
      return compare(x[k], y[k]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

// Checks the depth before descending, so that no JSON, however deep, recurses past the limit.
template <typename Json>
static Value from_json_at(const Json& j, const std::string& what, int level) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u <= uint64_t(INT64_MAX)) return Value::integer(int64_t(u));
      return Value::real(double(u));
    }
    case nlohmann::json::value_t::number_float: return Value::real(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::str(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      if (level > kMaxNesting) fail_nesting(what);
      List l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(from_json_at(x, what, level + 1));
      return Value::make_list(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      if (level > kMaxNesting) fail_nesting(what);
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.items.emplace_back(Value::str(it.key()), from_json_at(it.value(), what, level + 1));
      return Value::make_dict(std::move(d));
    }
    default: return Value::none();
  }
}

Value from_json(const nlohmann::ordered_json& j, const std::string& what) { return from_json_at(j, what, 1); }
Value from_json(const nlohmann::json& j, const std::string& what) { return from_json_at(j, what, 1); }

// json.dumps string escaping (ESCAPE / ESCAPE_ASCII of Python's json module).
static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : to_u32(s)) {
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    char b[16];
    if (c < 0x20 || (ensure_ascii && c > 0x7E && c < 0x10000)) {
      std::snprintf(b, sizeof b, "\\u%04x", unsigned(c));
      out += b;
    } else if (ensure_ascii && c >= 0x10000) {
      char32_t v = c - 0x10000;
      std::snprintf(b, sizeof b, "\\u%04x\\u%04x", unsigned(0xD800 | (v >> 10)), unsigned(0xDC00 | (v & 0x3FF)));
      out += b;
    } else {
      append_utf8(out, c);
    }
  }
  out.push_back('"');
}

static std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return float_repr(d);
}

static std::string json_key(const Value& k) {
  switch (k.kind) {
    case Kind::String: return k.sv();
    case Kind::Bool: return k.b ? "true" : "false";
    case Kind::None: return "null";
    case Kind::Int: return std::to_string(k.i);
    case Kind::Float: return json_float(k.f);
    default: fail("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

static void json_dump(std::string& out, const Value& v, bool ensure_ascii, const std::string* indent,
                      const std::string& item_sep, const std::string& key_sep, bool sort_keys, int level) {
  if (level >= kMaxNesting) fail_nesting("tojson: value");
  auto newline = [&](int lv) {
    out.push_back('\n');
    for (int k = 0; k < lv; ++k) out += *indent;
  };
  switch (v.kind) {
    case Kind::None: out += "null"; return;
    case Kind::Bool: out += v.b ? "true" : "false"; return;
    case Kind::Int: out += std::to_string(v.i); return;
    case Kind::Float: out += json_float(v.f); return;
    case Kind::String: json_string(out, v.sv(), ensure_ascii); return;
    case Kind::List:
    case Kind::Tuple: {
      if (v.lazy || v.view != View::None) fail("Object of type " + type_name(v) + " is not JSON serializable");
      if (v.lv().empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t k = 0; k < v.lv().size(); ++k) {
        if (k) out += item_sep;
        if (indent) newline(level + 1);
        json_dump(out, v.lv()[k], ensure_ascii, indent, item_sep, key_sep, sort_keys, level + 1);
      }
      if (indent) newline(level);
      out.push_back(']');
      return;
    }
    case Kind::Dict: {
      if (v.dv().items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& [k, x] : v.dv().items) items.emplace_back(json_key(k), &x);
      if (sort_keys)
        std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out.push_back('{');
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += item_sep;
        if (indent) newline(level + 1);
        json_string(out, items[k].first, ensure_ascii);
        out += key_sep;
        json_dump(out, *items[k].second, ensure_ascii, indent, item_sep, key_sep, sort_keys, level + 1);
      }
      if (indent) newline(level);
      out.push_back('}');
      return;
    }
    default: fail("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

std::string to_json(const Value& v, bool ensure_ascii, const std::string* indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys) {
  std::string out;
  json_dump(out, v, ensure_ascii, indent, item_sep, key_sep, sort_keys, 0);
  return out;
}

const std::string& need_str(const Value& v, const std::string& what) {
  if (v.kind != Kind::String) fail(what + " must be a string, not " + type_name(v));
  return v.sv();
}

int64_t need_int(const Value& v, const std::string& what) {
  if (v.kind != Kind::Int && v.kind != Kind::Bool) fail(what + " must be an integer, not " + type_name(v));
  return v.as_int();
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::List:
    case Kind::Tuple: return v.lv();
    case Kind::Dict: {
      List out;
      for (const auto& kv : v.dv().items) out.push_back(kv.first);
      return out;
    }
    case Kind::String: {
      List out;
      for (char32_t c : to_u32(v.sv())) {
        std::string s;
        append_utf8(s, c);
        out.push_back(Value::str(std::move(s)));
      }
      return out;
    }
    case Kind::Undefined: return {};
    default: fail("'" + type_name(v) + "' object is not iterable");
  }
}

}  // namespace llada2::jinja
