// Built-in filters, tests, methods of str / dict / list, and globals, following Jinja2 3.1
// and Python 3 semantics, with transformers' additions (tojson, raise_exception, strftime_now).
// Like transformers' ImmutableSandboxedEnvironment, methods that mutate a list or dict are refused.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <optional>

#include "tokenizer/chat_template_impl.h"

namespace llada2::jinja {
namespace {

struct Param {
  const char* name;
  Value dflt;  // Undefined = required
  bool required = false;
};

// Binds positional and keyword arguments to the declared parameters, Python style.
std::vector<Value> bind(const std::string& fname, const CallArgs& a, std::initializer_list<Param> params) {
  std::vector<Value> out;
  std::vector<bool> set(params.size(), false);
  for (const Param& p : params) out.push_back(p.dflt);
  if (a.pos.size() > params.size())
    fail(fname + "() takes at most " + std::to_string(params.size()) + " arguments (" + std::to_string(a.pos.size()) +
         " given)");
  for (size_t k = 0; k < a.pos.size(); ++k) out[k] = a.pos[k], set[k] = true;
  for (const auto& [key, v] : a.kw) {
    size_t k = 0;
    for (const Param& p : params) {
      if (key == p.name) break;
      ++k;
    }
    if (k == params.size()) fail(fname + "() got an unexpected keyword argument '" + key + "'");
    if (set[k]) fail(fname + "() got multiple values for argument '" + key + "'");
    out[k] = v, set[k] = true;
  }
  size_t k = 0;
  for (const Param& p : params) {
    if (p.required && !set[k]) fail(fname + "() missing required argument '" + p.name + "'");
    ++k;
  }
  return out;
}

Param req(const char* n) { return Param{n, Value(), true}; }
Param opt(const char* n, Value d) { return Param{n, std::move(d), false}; }

const std::string& need_str(const Value& v, const std::string& what) {
  if (v.kind != Kind::String) fail(what + " must be a string, not " + type_name(v));
  return v.sv();
}

int64_t need_int(const Value& v, const std::string& what) {
  if (v.kind != Kind::Int && v.kind != Kind::Bool) fail(what + " must be an integer, not " + type_name(v));
  return v.as_int();
}

// Python's full case mappings where they differ from the one-to-one ones (SpecialCasing.txt).
std::u32string full_upper(char32_t c) {
  switch (c) {
    case 0xDF: return U"SS";
    case 0x149: return U"\u02BCN";
    case 0x1F0: return U"J\u030C";
    case 0x390: return U"\u0399\u0308\u0301";
    case 0x3B0: return U"\u03A5\u0308\u0301";
    case 0x587: return U"\u0535\u0552";
    case 0xFB00: return U"FF";
    case 0xFB01: return U"FI";
    case 0xFB02: return U"FL";
    case 0xFB03: return U"FFI";
    case 0xFB04: return U"FFL";
    case 0xFB05:
    case 0xFB06: return U"ST";
    default: return std::u32string(1, py_upper(c));
  }
}

std::u32string full_title(char32_t c) {
  switch (c) {
    case 0xDF: return U"Ss";
    case 0x149: return U"\u02BCN";
    case 0xFB00: return U"Ff";
    case 0xFB01: return U"Fi";
    case 0xFB02: return U"Fl";
    case 0xFB03: return U"Ffi";
    case 0xFB04: return U"Ffl";
    case 0xFB05:
    case 0xFB06: return U"St";
    case 0x1C4:
    case 0x1C5:
    case 0x1C6: return U"\u01C5";
    case 0x1C7:
    case 0x1C8:
    case 0x1C9: return U"\u01C8";
    case 0x1CA:
    case 0x1CB:
    case 0x1CC: return U"\u01CB";
    case 0x1F1:
    case 0x1F2:
    case 0x1F3: return U"\u01F2";
    default: return full_upper(c);
  }
}

bool cased(char32_t c) { return py_upper(c) != c || py_lower(c) != c || full_upper(c).size() > 1; }

// Lowercase of u[k], with Greek capital sigma becoming final sigma at the end of a word.
std::u32string full_lower(const std::u32string& u, size_t k) {
  char32_t c = u[k];
  if (c == 0x130) return U"i\u0307";
  if (c == 0x3A3) {
    auto ignorable = [](char32_t x) {
      return x == '\'' || x == '.' || x == ':' || x == '^' || x == '`' || x == 0xA8 || x == 0xAD || x == 0xAF ||
             x == 0xB4 || x == 0xB7 || x == 0xB8 || x == 0x2018 || x == 0x2019 || (x >= 0x2B0 && x <= 0x36F) ||
             (x >= 0x200B && x <= 0x200F) || x == 0xFEFF;
    };
    size_t b = k;
    while (b > 0 && ignorable(u[b - 1])) --b;
    size_t a = k + 1;
    while (a < u.size() && ignorable(u[a])) ++a;
    bool after_cased = b > 0 && cased(u[b - 1]);
    bool before_cased = a < u.size() && cased(u[a]);
    return std::u32string(1, after_cased && !before_cased ? char32_t(0x3C2) : char32_t(0x3C3));
  }
  return std::u32string(1, py_lower(c));
}

// str.islower() / str.isupper(): some cased character, none of the other case.
bool is_case(const std::u32string& u, bool want_lower) {
  bool any = false;
  for (char32_t c : u) {
    if (!cased(c)) continue;
    any = true;
    if (want_lower ? py_lower(c) != c : full_upper(c) != std::u32string(1, c)) return false;
  }
  return any;
}

std::u32string lower_range(const std::u32string& u, size_t from) {
  std::u32string out;
  for (size_t k = from; k < u.size(); ++k) out += full_lower(u, k);
  return out;
}

std::string upper(const std::string& s) {
  std::u32string out;
  for (char32_t c : to_u32(s)) out += full_upper(c);
  return to_utf8(out);
}
std::string lower(const std::string& s) { return to_utf8(lower_range(to_u32(s), 0)); }

// str.capitalize(): the first character in title case, the rest lowercased.
std::string capitalize(const std::string& s) {
  std::u32string u = to_u32(s);
  if (u.empty()) return s;
  return to_utf8(full_title(u[0]) + lower_range(u, 1));
}

// str.title(): a cased character after an uncased one starts a word.
std::string py_title(const std::string& s) {
  std::u32string u = to_u32(s), out;
  bool prev_cased = false;
  for (size_t k = 0; k < u.size(); ++k) {
    char32_t c = u[k];
    out += prev_cased ? full_lower(u, k) : full_title(c);
    prev_cased = cased(c);
  }
  return to_utf8(out);
}

// Jinja's title filter: words begin after runs of whitespace, '-', '(', '{', '[', '<'.
std::string jinja_title(const std::string& s) {
  std::u32string u = to_u32(s), out;
  auto sep = [](char32_t c) { return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  size_t k = 0;
  while (k < u.size()) {
    if (sep(u[k])) {
      out.push_back(u[k++]);
      continue;
    }
    size_t e = k;
    while (e < u.size() && !sep(u[e])) ++e;
    // word[0].upper() + word[1:].lower(), each on its own substring
    out += full_upper(u[k]) + lower_range(u.substr(k + 1, e - k - 1), 0);
    k = e;
  }
  return to_utf8(out);
}

// str.strip / lstrip / rstrip with Python's optional set of characters.
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string u = to_u32(s);
  std::u32string set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = to_u32(need_str(chars, "strip chars"));
  auto drop = [&](char32_t c) { return ws ? py_isspace(c) : set.find(c) != std::u32string::npos; };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && drop(u[b])) ++b;
  if (right)
    while (e > b && drop(u[e - 1])) --e;
  return to_utf8(u.substr(b, e - b));
}

List split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    std::u32string u = to_u32(s);
    std::vector<std::pair<size_t, size_t>> words;
    size_t k = 0;
    while (k < u.size()) {
      while (k < u.size() && py_isspace(u[k])) ++k;
      if (k == u.size()) break;
      size_t b = k;
      while (k < u.size() && !py_isspace(u[k])) ++k;
      words.emplace_back(b, k);
    }
    if (maxsplit >= 0 && int64_t(words.size()) >= maxsplit + 1) {
      // The remainder keeps its whitespace up to the string's end (split) or start (rsplit).
      if (!from_right) {
        size_t b = words[size_t(maxsplit)].first;
        size_t e = u.size();
        words.resize(size_t(maxsplit));
        words.emplace_back(b, e);
      } else {
        size_t cut = words.size() - size_t(maxsplit);
        std::vector<std::pair<size_t, size_t>> w2;
        w2.emplace_back(0, words[cut - 1].second);
        w2.insert(w2.end(), words.begin() + long(cut), words.end());
        words = std::move(w2);
      }
    }
    for (auto [b, e] : words) out.push_back(Value::str(to_utf8(u.substr(b, e - b))));
    return out;
  }
  const std::string& d = need_str(sep, "separator");
  if (d.empty()) fail("empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t pos = 0;
    while (true) {
      size_t f = (maxsplit < 0 || int64_t(parts.size()) < maxsplit) ? s.find(d, pos) : std::string::npos;
      if (f == std::string::npos) {
        parts.push_back(s.substr(pos));
        break;
      }
      parts.push_back(s.substr(pos, f - pos));
      pos = f + d.size();
    }
  } else {
    size_t end = s.size();
    std::vector<std::string> rev;
    while (true) {
      size_t f = (maxsplit < 0 || int64_t(rev.size()) < maxsplit) && end >= d.size() ? s.rfind(d, end - d.size())
                                                                                     : std::string::npos;
      if (f == std::string::npos) {
        rev.push_back(s.substr(0, end));
        break;
      }
      rev.push_back(s.substr(f + d.size(), end - f - d.size()));
      end = f;
    }
    parts.assign(rev.rbegin(), rev.rend());
  }
  for (auto& p : parts) out.push_back(Value::str(std::move(p)));
  return out;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

std::vector<std::u32string> splitlines(const std::u32string& u, bool keepends) {
  std::vector<std::u32string> out;
  size_t b = 0, k = 0;
  while (k < u.size()) {
    if (!is_line_break(u[k])) {
      ++k;
      continue;
    }
    size_t e = k + ((u[k] == '\r' && k + 1 < u.size() && u[k + 1] == '\n') ? 2 : 1);
    out.push_back(u.substr(b, (keepends ? e : k) - b));
    b = k = e;
  }
  if (b < u.size()) out.push_back(u.substr(b));
  return out;
}

std::string replace(Renderer& r, const std::string& s, const std::string& old, const std::string& rep, int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string u = to_u32(s);
    int64_t n = 0;
    for (size_t k = 0; k <= u.size(); ++k) {
      if (count < 0 || n < count) out += rep, ++n;
      if (k < u.size()) append_utf8(out, u[k]);
      r.check_size(out.size());
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += rep;
    r.check_size(out.size());
    pos = f + old.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

int64_t cp_index(const std::string& s, size_t byte_pos) { return int64_t(to_u32(s.substr(0, byte_pos)).size()); }

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// str.format with {} / {0} / {name} fields and {{ }} escapes; format specs are not supported.
std::string py_format(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '{' && k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out.push_back('{');
      ++k;
      continue;
    }
    if (c == '}' && k + 1 < fmt.size() && fmt[k + 1] == '}') {
      out.push_back('}');
      ++k;
      continue;
    }
    if (c == '}') fail("Single '}' encountered in format string");
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    size_t e = fmt.find('}', k);
    if (e == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, e - k - 1);
    if (field.find_first_of(":!") != std::string::npos) fail("format specs and conversions are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_idx >= a.pos.size()) fail("Replacement index " + std::to_string(auto_idx) + " out of range");
      v = &a.pos[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t idx = std::stoul(field);
      if (idx >= a.pos.size()) fail("Replacement index " + field + " out of range");
      v = &a.pos[idx];
    } else {
      for (const auto& [key, x] : a.kw)
        if (key == field) v = &x;
      if (!v) fail("KeyError: '" + field + "'");
    }
    out += to_str(*v);
    k = e;
  }
  return out;
}

}  // namespace

// Python's printf-style `fmt % args`: %s %r %a %d %i %u %f %F %e %E %g %G %x %X %o %c %%, with
// flags, width, precision and %(name)s keys into a dict.
std::string printf_format(const std::string& fmt, const Value& args) {
  List pos;
  const Dict* named = nullptr;
  if (args.kind == Kind::Tuple)
    pos = args.lv();
  else if (args.kind == Kind::Dict)
    named = &args.dv(), pos.push_back(args);
  else
    pos.push_back(args);
  size_t next = 0;
  bool used_named = false;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out.push_back(fmt[k]);
      continue;
    }
    if (++k >= fmt.size()) fail("incomplete format");
    const Value* arg = nullptr;
    if (fmt[k] == '(') {
      size_t e = fmt.find(')', k);
      if (e == std::string::npos) fail("incomplete format key");
      if (!named) fail("format requires a mapping");
      arg = named->find(std::string_view(fmt).substr(k + 1, e - k - 1));
      if (!arg) fail("KeyError: '" + fmt.substr(k + 1, e - k - 1) + "'");
      used_named = true;
      k = e + 1;
    }
    std::string flags;
    while (k < fmt.size() && std::strchr("-+ 0#", fmt[k])) flags.push_back(fmt[k++]);
    std::string width, prec;
    while (k < fmt.size() && fmt[k] >= '0' && fmt[k] <= '9') width.push_back(fmt[k++]);
    bool has_prec = false;
    if (k < fmt.size() && fmt[k] == '.') {
      has_prec = true;
      ++k;
      while (k < fmt.size() && fmt[k] >= '0' && fmt[k] <= '9') prec.push_back(fmt[k++]);
    }
    if (width.size() > 6 || prec.size() > 3) fail("format width or precision too large");
    if (k >= fmt.size()) fail("incomplete format");
    char type = fmt[k];
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (!arg) {
      if (next >= pos.size()) fail("not enough arguments for format string");
      arg = &pos[next++];
    }
    std::string body;
    bool numeric = false;
    switch (type) {
      case 's': body = to_str(*arg); break;
      case 'r':
      case 'a': body = repr(*arg); break;
      case 'c':
        if (arg->kind == Kind::String && to_u32(arg->sv()).size() == 1)
          body = arg->sv();
        else if (arg->kind == Kind::Int && arg->i >= 0 && arg->i <= 0x10FFFF)
          append_utf8(body, char32_t(arg->i));
        else
          fail("%c requires an int or a unicode character");
        break;
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        if (!arg->is_number())
          fail(std::string("%") + type + " format: a real number is required, not " + type_name(*arg));
        double d = arg->as_double();
        if (arg->kind == Kind::Float && (!std::isfinite(d) || std::fabs(d) >= 9.2e18))
          fail("cannot convert float to integer");
        int64_t v = arg->kind == Kind::Float ? int64_t(d) : arg->as_int();
        uint64_t mag = v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v);
        char b[64];
        const char* spec = type == 'x' ? "%llx" : type == 'X' ? "%llX" : type == 'o' ? "%llo" : "%llu";
        std::snprintf(b, sizeof b, spec, (unsigned long long)mag);
        body = b;
        if (flags.find('#') != std::string::npos && (type == 'x' || type == 'X' || type == 'o'))
          body = std::string("0") + (type == 'o' ? 'o' : type) + body;
        if (has_prec && body.size() < std::stoul("0" + prec))
          body = std::string(std::stoul("0" + prec) - body.size(), '0') + body;
        body = (v < 0                                  ? "-"
                : flags.find('+') != std::string::npos ? "+"
                : flags.find(' ') != std::string::npos ? " "
                                                       : "") +
               body;
        numeric = true;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) fail(std::string("must be real number, not ") + type_name(*arg));
        std::string spec = "%";
        for (char f : flags)
          if (f == '+' || f == ' ' || f == '#') spec.push_back(f);
        spec += "." + (has_prec ? (prec.empty() ? "0" : prec) : "6") + type;
        char b[512];
        std::snprintf(b, sizeof b, spec.c_str(), arg->as_double());
        body = b;
        numeric = true;
        break;
      }
      default: fail(std::string("unsupported format character '") + type + "'");
    }
    if ((type == 's' || type == 'r' || type == 'a') && has_prec) {
      std::u32string u = to_u32(body);
      size_t p = std::stoul("0" + prec);
      if (u.size() > p) body = to_utf8(u.substr(0, p));
    }
    size_t w = width.empty() ? 0 : std::stoul(width), len = to_u32(body).size();
    if (len < w) {
      size_t pad = w - len;
      if (flags.find('-') != std::string::npos) {
        body += std::string(pad, ' ');
      } else if (numeric && flags.find('0') != std::string::npos) {
        size_t sign = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
        body.insert(sign, std::string(pad, '0'));
      } else {
        body.insert(0, std::string(pad, ' '));
      }
    }
    out += body;
  }
  if (!used_named && args.kind != Kind::Dict && next < pos.size())
    fail("not all arguments converted during string formatting");
  return out;
}

namespace {

Value method(const Value& self, const char* name, std::function<Value(const Value&, Renderer&, CallArgs&)> fn) {
  Value captured = self;
  return Value::callable(std::string(type_name(self)) + "." + name,
                         [captured, fn = std::move(fn)](Renderer& r, CallArgs& a) { return fn(captured, r, a); });
}

Value string_method(const Value& v, const std::string& name) {
  auto m = [&](auto fn) { return method(v, name.c_str(), fn); };
  if (name == "startswith" || name == "endswith") {
    bool start = name == "startswith";
    return m([start, name](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind(name, a, {req("prefix")});
      List options = p[0].kind == Kind::Tuple ? p[0].lv() : List{p[0]};
      const std::string& s = self.sv();
      for (const Value& o : options) {
        const std::string& x = need_str(o, name + " argument");
        if (x.size() <= s.size() &&
            (start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0))
          return Value::boolean(true);
      }
      return Value::boolean(false);
    });
  }
  if (name == "split" || name == "rsplit")
    return m([name](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind(name, a, {opt("sep", Value::none()), opt("maxsplit", Value::integer(-1))});
      return Value::make_list(split(self.sv(), p[0], need_int(p[1], "maxsplit"), name == "rsplit"));
    });
  if (name == "splitlines")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind("splitlines", a, {opt("keepends", Value::boolean(false))});
      List out;
      for (auto& line : splitlines(to_u32(self.sv()), truthy(p[0]))) out.push_back(Value::str(to_utf8(line)));
      return Value::make_list(std::move(out));
    });
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return m([name](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind(name, a, {opt("chars", Value::none())});
      return Value::str(strip(self.sv(), p[0], name != "rstrip", name != "lstrip"));
    });
  if (name == "replace")
    return m([](const Value& self, Renderer& r, CallArgs& a) {
      auto p = bind("replace", a, {req("old"), req("new"), opt("count", Value::integer(-1))});
      return Value::str(
          replace(r, self.sv(), need_str(p[0], "replace old"), need_str(p[1], "replace new"), need_int(p[2], "count")));
    });
  if (name == "upper")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("upper", a, {});
      return Value::str(upper(self.sv()));
    });
  if (name == "lower")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("lower", a, {});
      return Value::str(lower(self.sv()));
    });
  if (name == "title")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("title", a, {});
      return Value::str(py_title(self.sv()));
    });
  if (name == "capitalize")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("capitalize", a, {});
      return Value::str(capitalize(self.sv()));
    });
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex")
    return m([name](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind(name, a, {req("sub")});
      const std::string& sub = need_str(p[0], name + " argument");
      size_t f = name[0] == 'r' ? self.sv().rfind(sub) : self.sv().find(sub);
      if (f == std::string::npos) {
        if (name.find("index") != std::string::npos) fail("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(cp_index(self.sv(), f));
    });
  if (name == "count")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind("count", a, {req("sub")});
      const std::string& sub = need_str(p[0], "count argument");
      if (sub.empty()) return Value::integer(int64_t(to_u32(self.sv()).size()) + 1);
      int64_t n = 0;
      for (size_t pos = self.sv().find(sub); pos != std::string::npos; pos = self.sv().find(sub, pos + sub.size())) ++n;
      return Value::integer(n);
    });
  if (name == "join")
    return m([](const Value& self, Renderer& r, CallArgs& a) {
      auto p = bind("join", a, {req("iterable")});
      std::string out;
      bool first = true;
      for (const Value& x : iterate(p[0])) {
        if (x.kind != Kind::String) fail("sequence item: expected str instance, " + type_name(x) + " found");
        if (!first) out += self.sv();
        first = false;
        out += x.sv();
        r.check_size(out.size());
      }
      return Value::str(std::move(out));
    });
  if (name == "format")
    return m([](const Value& self, Renderer&, CallArgs& a) { return Value::str(py_format(self.sv(), a)); });
  if (name == "removeprefix" || name == "removesuffix")
    return m([name](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind(name, a, {req("affix")});
      const std::string &s = self.sv(), &x = need_str(p[0], name + " argument");
      if (x.size() <= s.size()) {
        if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value::str(s.substr(x.size()));
        if (name == "removesuffix" && !x.empty() && s.compare(s.size() - x.size(), x.size(), x) == 0)
          return Value::str(s.substr(0, s.size() - x.size()));
      }
      return self;
    });
  static const char* const kPredicates[] = {"isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"};
  for (const char* pred : kPredicates)
    if (name == pred)
      return m([name](const Value& self, Renderer&, CallArgs& a) {
        bind(name, a, {});
        std::u32string u = to_u32(self.sv());
        if (u.empty()) return Value::boolean(false);
        if (name == "islower" || name == "isupper") return Value::boolean(is_case(u, name == "islower"));
        for (char32_t c : u) {
          bool ok = name == "isdigit"   ? py_isdigit(c)
                    : name == "isalpha" ? py_isalpha(c)
                    : name == "isspace" ? py_isspace(c)
                                        : (py_isalpha(c) || py_isdigit(c));
          if (!ok) return Value::boolean(false);
        }
        return Value::boolean(true);
      });
  return Value();
}

Value dict_items(const Value& d) {
  List out;
  for (const auto& [k, v] : d.dv().items) out.push_back(Value::make_list({k, v}, true));
  return Value::make_list(std::move(out));
}

Value view(Value list, View kind) {
  list.view = kind;
  return list;
}

Value dict_method(const Value& v, const std::string& name) {
  auto m = [&](auto fn) { return method(v, name.c_str(), fn); };
  if (name == "get")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind("get", a, {req("key"), opt("default", Value::none())});
      const Value* x = self.dv().find(p[0]);
      return x ? *x : p[1];
    });
  if (name == "items")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("items", a, {});
      return view(dict_items(self), View::Items);
    });
  if (name == "keys")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("keys", a, {});
      List out;
      for (const auto& kv : self.dv().items) out.push_back(kv.first);
      return view(Value::make_list(std::move(out)), View::Keys);
    });
  if (name == "values")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      bind("values", a, {});
      List out;
      for (const auto& kv : self.dv().items) out.push_back(kv.second);
      return view(Value::make_list(std::move(out)), View::Values);
    });
  return Value();
}

Value list_method(const Value& v, const std::string& name) {
  auto m = [&](auto fn) { return method(v, name.c_str(), fn); };
  if (name == "index")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind("index", a, {req("value")});
      for (size_t k = 0; k < self.lv().size(); ++k)
        if (equal(self.lv()[k], p[0])) return Value::integer(int64_t(k));
      fail(repr(p[0]) + " is not in list");
    });
  if (name == "count")
    return m([](const Value& self, Renderer&, CallArgs& a) {
      auto p = bind("count", a, {req("value")});
      int64_t n = 0;
      for (const Value& x : self.lv()) n += equal(x, p[0]);
      return Value::integer(n);
    });
  return Value();
}

// ---- helpers for filters ----
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
      if (k) rv += "\n" + ind;
      rv += to_utf8(lines[k]);
    }
  } else {
    rv = lines.empty() ? "" : to_utf8(lines[0]);
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : ind + to_utf8(lines[k]));
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
Value select_items(Renderer& r, const Value& v, CallArgs& a, bool want, bool by_attr) {
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

}  // namespace

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

Value method_of(const Value& obj, const std::string& name) {
  if (obj.lazy || obj.view != View::None) return Value();
  switch (obj.kind) {
    case Kind::String: return string_method(obj, name);
    case Kind::Dict: {
      static const char* const kMutating[] = {"pop", "popitem", "update", "setdefault", "clear"};
      for (const char* m : kMutating)
        if (name == m) fail("access to attribute '" + name + "' of 'dict' object is unsafe");
      return dict_method(obj, name);
    }
    case Kind::List: {
      static const char* const kMutating[] = {"append", "extend", "insert",  "pop",
                                              "remove", "clear",  "reverse", "sort"};
      for (const char* m : kMutating)
        if (name == m) fail("access to attribute '" + name + "' of 'list' object is unsafe");
      return list_method(obj, name);
    }
    case Kind::Tuple: return list_method(obj, name);
    default: return Value();
  }
}

static const char* const kFilters[] = {
    "abs",        "attr",    "batch",   "capitalize", "center",      "count",    "d",          "default", "dictsort",
    "e",          "escape",  "first",   "float",      "forceescape", "format",   "indent",     "int",     "items",
    "join",       "last",    "length",  "list",       "lower",       "map",      "max",        "min",     "reject",
    "rejectattr", "replace", "reverse", "round",      "safe",        "select",   "selectattr", "slice",   "sort",
    "string",     "sum",     "title",   "tojson",     "trim",        "truncate", "unique",     "upper",   "wordcount"};

bool has_filter(const std::string& name) {
  for (const char* f : kFilters)
    if (name == f) return true;
  return false;
}

Value apply_filter(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  r.step();
  if (name == "length" || name == "count") {
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
  if (name == "tojson") {
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
  if (name == "trim") {
    auto p = bind(name, a, {opt("chars", Value::none())});
    return Value::str(strip(to_str(v), p[0], true, true));
  }
  if (name == "upper") return bind(name, a, {}), Value::str(upper(to_str(v)));
  if (name == "lower") return bind(name, a, {}), Value::str(lower(to_str(v)));
  if (name == "capitalize") return bind(name, a, {}), Value::str(capitalize(to_str(v)));
  if (name == "title") return bind(name, a, {}), Value::str(jinja_title(to_str(v)));
  if (name == "string") return bind(name, a, {}), v.kind == Kind::String ? v : Value::str(to_str(v));
  if (name == "safe") return bind(name, a, {}), v.kind == Kind::String ? v : Value::str(to_str(v));  // Markup(str(v))
  if (name == "e" || name == "escape" || name == "forceescape")
    return bind(name, a, {}), Value::str(html_escape(to_str(v)));
  if (name == "default" || name == "d") {
    auto p = bind(name, a, {opt("default_value", Value::str("")), opt("boolean", Value::boolean(false))});
    if (v.is_undefined() || (truthy(p[1]) && !truthy(v))) return p[0];
    return v;
  }
  if (name == "join") {
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
  if (name == "items") {
    bind(name, a, {});
    if (v.is_undefined()) return Value::generator({});
    if (v.kind != Kind::Dict) fail("Can only get item pairs from a mapping.");
    Value items = dict_items(v);
    items.lazy = true;
    return items;
  }
  if (name == "first") {
    bind(name, a, {});
    List l = iterate(v);
    return l.empty() ? Value::undefined("No first item, sequence was empty.") : l.front();
  }
  if (name == "last") {
    bind(name, a, {});
    if (v.is_undefined()) fail(v.s ? *v.s : "undefined value");
    if (v.lazy) fail("'generator' object is not reversible");
    List l = iterate(v);
    return l.empty() ? Value::undefined("No last item, sequence was empty.") : l.back();
  }
  if (name == "list") return bind(name, a, {}), to_list_value(v);
  if (name == "int") {
    auto p = bind(name, a, {opt("default", Value::integer(0)), opt("base", Value::integer(10))});
    if (v.is_undefined()) fail(v.s ? *v.s : "undefined value");
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
  if (name == "float") {
    auto p = bind(name, a, {opt("default", Value::real(0.0))});
    if (v.is_undefined()) fail(v.s ? *v.s : "undefined value");
    if (v.is_number()) return Value::real(v.as_double());
    if (v.kind == Kind::String)
      if (auto d = parse_float(v.sv())) return Value::real(*d);
    return p[0];
  }
  if (name == "abs") {
    bind(name, a, {});
    if (v.kind == Kind::Float) return Value::real(std::fabs(v.f));
    if (v.kind == Kind::Int || v.kind == Kind::Bool) {
      if (v.as_int() == INT64_MIN) fail("integer overflow");
      return Value::integer(std::llabs(v.as_int()));
    }
    fail("bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (name == "replace") {
    auto p = bind(name, a, {req("old"), req("new"), opt("count", Value::none())});
    return Value::str(replace(r, to_str(v), to_str(p[0]), to_str(p[1]), p[2].is_none() ? -1 : need_int(p[2], "count")));
  }
  if (name == "reverse") {
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
  if (name == "sort" || name == "unique" || name == "min" || name == "max") {
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
  if (name == "dictsort") {
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
  if (name == "map") {
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
  if (name == "select") return select_items(r, v, a, true, false);
  if (name == "reject") return select_items(r, v, a, false, false);
  if (name == "selectattr") return select_items(r, v, a, true, true);
  if (name == "rejectattr") return select_items(r, v, a, false, true);
  if (name == "indent") {
    auto p = bind(
        name, a,
        {opt("width", Value::integer(4)), opt("first", Value::boolean(false)), opt("blank", Value::boolean(false))});
    if (v.is_undefined()) fail(v.s ? *v.s : "undefined value");
    if (v.kind != Kind::String) fail("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
    std::string s = indent(v.sv(), p[0], truthy(p[1]), truthy(p[2]));
    r.check_size(s.size());
    return Value::str(std::move(s));
  }
  if (name == "round") {
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
  if (name == "sum") {
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
  if (name == "wordcount") {
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
  if (name == "batch") {
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
  if (name == "slice") {
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
  if (name == "center") {
    auto p = bind(name, a, {opt("width", Value::integer(80))});
    std::u32string u = to_u32(to_str(v));
    int64_t width = need_int(p[0], "width"), len = int64_t(u.size());
    if (width <= len) return Value::str(to_str(v));
    r.check_size(size_t(width));
    int64_t pad = width - len, left = pad / 2 + (pad & width & 1);  // str.center's split of the padding
    return Value::str(std::string(size_t(left), ' ') + to_str(v) + std::string(size_t(pad - left), ' '));
  }
  if (name == "truncate") {
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
  if (name == "format") {
    if (!a.pos.empty() && !a.kw.empty()) fail("can't handle positional and keyword arguments at the same time");
    Dict kw;
    for (auto& [k, x] : a.kw) kw.set(Value::str(k), x);
    return Value::str(
        printf_format(to_str(v), a.kw.empty() ? Value::make_list(a.pos, true) : Value::make_dict(std::move(kw))));
  }
  if (name == "attr") {
    auto p = bind(name, a, {req("name")});
    const std::string& attr = need_str(p[0], "attribute name");
    if (v.kind == Kind::Object) {
      if (const Value* x = v.obj->attrs.find(attr)) return *x;
    } else if (v.is_undefined()) {
      fail(v.s ? *v.s : "undefined value");
    } else {
      Value m = method_of(v, attr);
      if (!m.is_undefined()) return m;
    }
    return Value::undefined("'" + type_name(v) + " object' has no attribute '" + attr + "'");
  }
  fail("no filter named '" + name + "'");
}

bool has_test(const std::string& name) {
  static const char* const kTests[] = {
      "defined",  "undefined", "none",    "string",      "number",  "integer", "float",    "mapping",
      "iterable", "sequence",  "boolean", "true",        "false",   "even",    "odd",      "divisibleby",
      "eq",       "equalto",   "==",      "ne",          "!=",      "lt",      "lessthan", "<",
      "le",       "<=",        "gt",      "greaterthan", ">",       "ge",      ">=",       "in",
      "sameas",   "callable",  "lower",   "upper",       "escaped", "filter",  "test"};
  for (const char* t : kTests)
    if (name == t) return true;
  return false;
}

bool apply_test(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  r.step();
  auto no_args = [&] { bind(name, a, {}); };
  auto one = [&] { return bind(name, a, {req("other")})[0]; };
  if (name == "defined") return no_args(), !v.is_undefined();
  if (name == "undefined") return no_args(), v.is_undefined();
  if (name == "none") return no_args(), v.is_none();
  if (name == "string") return no_args(), v.kind == Kind::String;
  if (name == "number") return no_args(), v.is_number();
  if (name == "integer") return no_args(), v.kind == Kind::Int;
  if (name == "float") return no_args(), v.kind == Kind::Float;
  if (name == "boolean") return no_args(), v.kind == Kind::Bool;
  if (name == "true") return no_args(), v.kind == Kind::Bool && v.b;
  if (name == "false") return no_args(), v.kind == Kind::Bool && !v.b;
  if (name == "mapping") return no_args(), v.kind == Kind::Dict;
  if (name == "iterable")
    return no_args(), v.kind == Kind::String || v.is_seq() || v.kind == Kind::Dict || v.is_undefined();
  if (name == "sequence")
    return no_args(), v.kind == Kind::String || (v.is_seq() && !v.lazy && v.view == View::None) ||
                          v.kind == Kind::Dict || v.is_undefined();
  if (name == "callable") return no_args(), v.kind == Kind::Callable || v.is_undefined();  // Undefined has __call__
  if (name == "escaped") return no_args(), false;
  if (name == "lower" || name == "upper") {
    no_args();
    return is_case(to_u32(to_str(v)), name == "lower");
  }
  if (name == "even" || name == "odd") {
    no_args();
    if (v.is_undefined()) fail(v.s ? *v.s : "undefined value");
    if (v.kind == Kind::Float)
      return std::fmod(v.f, 2.0) == (name == "even" ? 0.0 : 1.0) || (name == "odd" && std::fmod(v.f, 2.0) == -1.0);
    if (v.kind != Kind::Int && v.kind != Kind::Bool)
      fail("unsupported operand type(s) for %: '" + type_name(v) + "' and 'int'");
    bool even = v.as_int() % 2 == 0;
    return name == "even" ? even : !even;
  }
  if (name == "divisibleby") {
    Value d = bind(name, a, {req("num")})[0];
    if (!v.is_number() || !d.is_number())
      fail("unsupported operand type(s) for %: '" + type_name(v) + "' and '" + type_name(d) + "'");
    if (d.as_double() == 0) fail("integer division or modulo by zero");
    if (v.kind == Kind::Float || d.kind == Kind::Float) return std::fmod(v.as_double(), d.as_double()) == 0;
    if (d.as_int() == -1) return true;
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, one());
  if (name == "ne" || name == "!=") return !equal(v, one());
  auto ordered = [&](auto pred) {
    Value o = one();
    return pred(compare(v, o));
  };
  if (name == "lt" || name == "lessthan" || name == "<") return ordered([](int c) { return c < 0; });
  if (name == "le" || name == "<=") return ordered([](int c) { return c <= 0; });
  if (name == "gt" || name == "greaterthan" || name == ">") return ordered([](int c) { return c > 0; });
  if (name == "ge" || name == ">=") return ordered([](int c) { return c >= 0; });
  if (name == "in") {
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
  if (name == "sameas") {
    Value o = one();
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
  if (name == "filter") return no_args(), v.kind == Kind::String && has_filter(v.sv());
  if (name == "test") return no_args(), v.kind == Kind::String && has_test(v.sv());
  fail("no test named '" + name + "'");
}

Value global_function(const std::string& name) {
  if (name == "range")
    return Value::callable("range", [](Renderer& r, CallArgs& a) {
      if (!a.kw.empty()) fail("range() takes no keyword arguments");
      if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments");
      int64_t start = 0, stop, step = 1;
      if (a.pos.size() == 1) {
        stop = need_int(a.pos[0], "range argument");
      } else {
        start = need_int(a.pos[0], "range argument");
        stop = need_int(a.pos[1], "range argument");
        if (a.pos.size() == 3) step = need_int(a.pos[2], "range argument");
      }
      if (step == 0) fail("range() arg 3 must not be zero");
      // The sandbox caps ranges at 100000 items (jinja2.sandbox.MAX_RANGE).
      long double count = step > 0 ? (stop > start ? ((long double)stop - start + step - 1) / step : 0)
                                   : (start > stop ? ((long double)start - stop - step - 1) / -step : 0);
      if (count > 100000) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      List out;
      for (int64_t k = 0; k < int64_t(count); ++k) out.push_back(Value::integer(start + k * step));
      r.check_size(out.size());
      return Value::make_list(std::move(out));
    });
  if (name == "namespace" || name == "dict")
    return Value::callable(name, [name](Renderer& r, CallArgs& a) {
      Dict d;
      for (const Value& p : a.pos) {
        if (p.kind == Kind::Dict) {
          for (const auto& [k, v] : p.dv().items) d.set(k, v);
        } else if (p.kind == Kind::Object && p.obj->type == "Namespace") {
          for (const auto& [k, v] : p.obj->attrs.items) d.set(k, v);
        } else {
          for (const Value& kv : iterate(p)) {
            List pair = iterate(kv);
            if (pair.size() != 2) fail(name + "() sequence elements must be pairs");
            d.set(pair[0], pair[1]);
          }
        }
      }
      for (auto& [k, v] : a.kw) d.set(Value::str(k), v);
      if (name == "dict") return Value::make_dict(std::move(d));
      Value ns = Value::make_object("Namespace", std::move(d));
      r.namespaces.push_back(ns.obj);
      return ns;
    });
  if (name == "joiner")
    return Value::callable("joiner", [](Renderer&, CallArgs& a) {
      auto p = bind("joiner", a, {opt("sep", Value::str(", "))});
      auto used = std::make_shared<bool>(false);
      Value sep = p[0];
      return Value::callable("joiner", [used, sep](Renderer&, CallArgs& b) {
        bind("joiner", b, {});
        if (!*used) {
          *used = true;
          return Value::str("");
        }
        return sep;
      });
    });
  if (name == "cycler")
    return Value::callable("cycler", [](Renderer& r, CallArgs& a) {
      if (a.pos.empty()) fail("at least one item has to be provided");
      if (!a.kw.empty()) fail("cycler() takes no keyword arguments");
      auto items = std::make_shared<const List>(a.pos);
      auto pos = std::make_shared<size_t>(0);
      Value c = Value::make_object("Cycler", Dict{});
      r.namespaces.push_back(c.obj);
      std::weak_ptr<Object> self = c.obj;
      auto update = [self, items, pos] {
        if (auto o = self.lock()) o->attrs.set(Value::str("current"), (*items)[*pos]);
      };
      update();
      c.obj->attrs.set(Value::str("next"), Value::callable("cycler.next", [items, pos, update](Renderer&, CallArgs& b) {
                         bind("next", b, {});
                         Value v = (*items)[*pos];
                         *pos = (*pos + 1) % items->size();
                         update();
                         return v;
                       }));
      c.obj->attrs.set(Value::str("reset"), Value::callable("cycler.reset", [pos, update](Renderer&, CallArgs& b) {
                         bind("reset", b, {});
                         *pos = 0;
                         update();
                         return Value::none();
                       }));
      return c;
    });
  if (name == "raise_exception")
    return Value::callable("raise_exception", [](Renderer&, CallArgs& a) -> Value {
      auto p = bind("raise_exception", a, {req("message")});
      throw TemplateError{to_str(p[0]), 0, 0, true};
    });
  if (name == "strftime_now")
    return Value::callable("strftime_now", [](Renderer&, CallArgs& a) {
      auto p = bind("strftime_now", a, {req("format")});
      const std::string& fmt = need_str(p[0], "strftime format");
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      if (fmt.empty()) return Value::str("");
      std::string buf(256 + fmt.size() * 8, '\0');
      size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
      buf.resize(n);
      return Value::str(std::move(buf));
    });
  return Value();
}

}  // namespace llada2::jinja
