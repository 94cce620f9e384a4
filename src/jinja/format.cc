// Python's string formatting: str.format and printf-style `fmt % args`.
#include <cmath>
#include <cstring>

#include "jinja/string.h"

namespace llada2::jinja {

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

}  // namespace llada2::jinja
