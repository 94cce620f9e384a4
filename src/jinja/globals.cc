// Jinja2's global functions (range, namespace, dict, joiner, cycler) and transformers'
// (raise_exception, strftime_now), one name -> function table.
#include <ctime>
#include <unordered_map>

#include "jinja/builtins.h"
#include "jinja/runtime.h"

namespace llada2::jinja {
namespace {

using GlobalFn = Value (*)(Renderer& r, CallArgs& a);

// namespace(...) and dict(...): mappings, pairs and keyword arguments merged in order.
Dict merge_mappings(const std::string& name, CallArgs& a) {
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
  return d;
}

const std::unordered_map<std::string, GlobalFn> kGlobals = {
    {"range",
     [](Renderer& r, CallArgs& a) {
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
     }},
    {"joiner",
     [](Renderer&, CallArgs& a) {
       auto p = bind("joiner", a, {opt("sep", Value::str(", "))});
       auto used = std::make_shared<bool>(false);
       Value sep = p[0];
       return Value::callable(
           "joiner",
           [used, sep](Renderer&, CallArgs& b) {
             bind("joiner", b, {});
             if (!*used) {
               *used = true;
               return Value::str("");
             }
             return sep;
           },
           sep.depth);
     }},
    {"cycler",
     [](Renderer& r, CallArgs& a) {
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
       c.obj->attrs.set(Value::str("next"), Value::callable(
                                                "cycler.next",
                                                [items, pos, update](Renderer&, CallArgs& b) {
                                                  bind("next", b, {});
                                                  Value v = (*items)[*pos];
                                                  *pos = (*pos + 1) % items->size();
                                                  update();
                                                  return v;
                                                },
                                                Value::nesting_of(*items)));
       c.obj->attrs.set(Value::str("reset"), Value::callable(
                                                 "cycler.reset",
                                                 [pos, update](Renderer&, CallArgs& b) {
                                                   bind("reset", b, {});
                                                   *pos = 0;
                                                   update();
                                                   return Value::none();
                                                 },
                                                 Value::nesting_of(*items)));
       return c;
     }},
    {"raise_exception",
     [](Renderer&, CallArgs& a) -> Value {
       auto p = bind("raise_exception", a, {req("message")});
       throw TemplateError{to_str(p[0]), 0, 0, true};
     }},
    {"strftime_now",
     [](Renderer&, CallArgs& a) {
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
     }},
    {"dict", [](Renderer&, CallArgs& a) { return Value::make_dict(merge_mappings("dict", a)); }},
    {"namespace",
     [](Renderer& r, CallArgs& a) {
       Value ns = Value::make_object("Namespace", merge_mappings("namespace", a));
       r.namespaces.push_back(ns.obj);
       return ns;
     }},
};

}  // namespace

Value global_function(const std::string& name) {
  auto it = kGlobals.find(name);
  if (it == kGlobals.end()) return Value();
  return Value::callable(name, it->second);
}

}  // namespace llada2::jinja
