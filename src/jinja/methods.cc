// Methods of str, dict, list and tuple values, one name -> function table per type. Like
// transformers' ImmutableSandboxedEnvironment, methods that mutate a list or dict are refused.
#include <unordered_map>

#include "jinja/builtins.h"
#include "jinja/runtime.h"
#include "jinja/string.h"

namespace llada2::jinja {
namespace {

// A method body: `name` is the method's name (aliases share a body), `self` the bound value.
using MethodFn = Value (*)(const std::string& name, const Value& self, Renderer& r, CallArgs& a);
using MethodTable = std::unordered_map<std::string, MethodFn>;

Value str_affix_test(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  bool start = name == "startswith";
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
}

Value str_split(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  auto p = bind(name, a, {opt("sep", Value::none()), opt("maxsplit", Value::integer(-1))});
  return Value::make_list(split(self.sv(), p[0], need_int(p[1], "maxsplit"), name == "rsplit"));
}

Value str_splitlines(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  auto p = bind(name, a, {opt("keepends", Value::boolean(false))});
  List out;
  for (auto& line : splitlines(to_u32(self.sv()), truthy(p[0]))) out.push_back(Value::str(to_utf8(line)));
  return Value::make_list(std::move(out));
}

Value str_strip(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  auto p = bind(name, a, {opt("chars", Value::none())});
  return Value::str(strip(self.sv(), p[0], name != "rstrip", name != "lstrip"));
}

Value str_replace(const std::string& name, const Value& self, Renderer& r, CallArgs& a) {
  auto p = bind(name, a, {req("old"), req("new"), opt("count", Value::integer(-1))});
  return Value::str(replace(self.sv(), need_str(p[0], "replace old"), need_str(p[1], "replace new"),
                            need_int(p[2], "count"), r.limits.max_output_bytes));
}

// Methods without arguments that map the string to a new one.
template <std::string (*F)(const std::string&)>
Value str_map(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  bind(name, a, {});
  return Value::str(F(self.sv()));
}

Value str_find(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  auto p = bind(name, a, {req("sub")});
  const std::string& sub = need_str(p[0], name + " argument");
  size_t f = name[0] == 'r' ? self.sv().rfind(sub) : self.sv().find(sub);
  if (f == std::string::npos) {
    if (name.find("index") != std::string::npos) fail("substring not found");
    return Value::integer(-1);
  }
  return Value::integer(cp_index(self.sv(), f));
}

Value str_count(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  auto p = bind(name, a, {req("sub")});
  const std::string& sub = need_str(p[0], "count argument");
  if (sub.empty()) return Value::integer(int64_t(to_u32(self.sv()).size()) + 1);
  int64_t n = 0;
  for (size_t pos = self.sv().find(sub); pos != std::string::npos; pos = self.sv().find(sub, pos + sub.size())) ++n;
  return Value::integer(n);
}

Value str_join(const std::string& name, const Value& self, Renderer& r, CallArgs& a) {
  auto p = bind(name, a, {req("iterable")});
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
}

Value str_format(const std::string&, const Value& self, Renderer&, CallArgs& a) {
  return Value::str(py_format(self.sv(), a));
}

Value str_remove_affix(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
  auto p = bind(name, a, {req("affix")});
  const std::string &s = self.sv(), &x = need_str(p[0], name + " argument");
  if (x.size() <= s.size()) {
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value::str(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::str(s.substr(0, s.size() - x.size()));
  }
  return self;
}

Value str_predicate(const std::string& name, const Value& self, Renderer&, CallArgs& a) {
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
}

const MethodTable kStrMethods = {
    {"startswith", str_affix_test},
    {"endswith", str_affix_test},
    {"split", str_split},
    {"rsplit", str_split},
    {"splitlines", str_splitlines},
    {"strip", str_strip},
    {"lstrip", str_strip},
    {"rstrip", str_strip},
    {"replace", str_replace},
    {"upper", str_map<upper>},
    {"lower", str_map<lower>},
    {"title", str_map<py_title>},
    {"capitalize", str_map<capitalize>},
    {"find", str_find},
    {"rfind", str_find},
    {"index", str_find},
    {"rindex", str_find},
    {"count", str_count},
    {"join", str_join},
    {"format", str_format},
    {"removeprefix", str_remove_affix},
    {"removesuffix", str_remove_affix},
    {"isdigit", str_predicate},
    {"isalpha", str_predicate},
    {"isalnum", str_predicate},
    {"isspace", str_predicate},
    {"islower", str_predicate},
    {"isupper", str_predicate},
};

Value view(Value list, View kind) {
  list.view = kind;
  return list;
}

const MethodTable kDictMethods = {
    {"get",
     [](const std::string& name, const Value& self, Renderer&, CallArgs& a) {
       auto p = bind(name, a, {req("key"), opt("default", Value::none())});
       const Value* x = self.dv().find(p[0]);
       return x ? *x : p[1];
     }},
    {"items",
     [](const std::string& name, const Value& self, Renderer&, CallArgs& a) {
       bind(name, a, {});
       return view(dict_items(self), View::Items);
     }},
    {"keys",
     [](const std::string& name, const Value& self, Renderer&, CallArgs& a) {
       bind(name, a, {});
       List out;
       for (const auto& kv : self.dv().items) out.push_back(kv.first);
       return view(Value::make_list(std::move(out)), View::Keys);
     }},
    {"values",
     [](const std::string& name, const Value& self, Renderer&, CallArgs& a) {
       bind(name, a, {});
       List out;
       for (const auto& kv : self.dv().items) out.push_back(kv.second);
       return view(Value::make_list(std::move(out)), View::Values);
     }},
};

const MethodTable kListMethods = {
    {"index",
     [](const std::string& name, const Value& self, Renderer&, CallArgs& a) {
       auto p = bind(name, a, {req("value")});
       for (size_t k = 0; k < self.lv().size(); ++k)
         if (equal(self.lv()[k], p[0])) return Value::integer(int64_t(k));
       fail(repr(p[0]) + " is not in list");
     }},
    {"count",
     [](const std::string& name, const Value& self, Renderer&, CallArgs& a) {
       auto p = bind(name, a, {req("value")});
       int64_t n = 0;
       for (const Value& x : self.lv()) n += equal(x, p[0]);
       return Value::integer(n);
     }},
};

// The sandbox's refusals, so that a template learns why rather than seeing Undefined.
void refuse_mutation(const Value& obj, const std::string& name) {
  static const char* const kDict[] = {"pop", "popitem", "update", "setdefault", "clear"};
  static const char* const kList[] = {"append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort"};
  auto refuse = [&](const auto& names) {
    for (const char* m : names)
      if (name == m) fail("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe");
  };
  if (obj.kind == Kind::Dict) refuse(kDict);
  if (obj.kind == Kind::List) refuse(kList);
}

}  // namespace

Value dict_items(const Value& d) {
  List out;
  for (const auto& [k, v] : d.dv().items) out.push_back(Value::make_list({k, v}, true));
  return Value::make_list(std::move(out));
}

Value method_of(const Value& obj, const std::string& name) {
  if (obj.lazy || obj.view != View::None) return Value();
  const MethodTable* table = obj.kind == Kind::String                            ? &kStrMethods
                             : obj.kind == Kind::Dict                            ? &kDictMethods
                             : obj.kind == Kind::List || obj.kind == Kind::Tuple ? &kListMethods
                                                                                 : nullptr;
  if (!table) return Value();
  refuse_mutation(obj, name);
  auto it = table->find(name);
  if (it == table->end()) return Value();
  MethodFn fn = it->second;
  return Value::callable(
      type_name(obj) + "." + name, [self = obj, name, fn](Renderer& r, CallArgs& a) { return fn(name, self, r, a); },
      obj.depth);
}

}  // namespace llada2::jinja
