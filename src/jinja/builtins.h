// Argument binding shared by the built-in filters, tests, methods and globals.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "jinja/value.h"

namespace llada2::jinja {

struct Param {
  const char* name;
  Value dflt;  // Undefined = required
  bool required = false;
};
inline Param req(const char* n) { return Param{n, Value(), true}; }
inline Param opt(const char* n, Value d) { return Param{n, std::move(d), false}; }

// Binds positional and keyword arguments to the declared parameters, Python style.
std::vector<Value> bind(const std::string& fname, const CallArgs& a, std::initializer_list<Param> params);

// dict.items() as a list of (key, value) tuples (methods.cc; the items filter uses it too).
Value dict_items(const Value& d);

}  // namespace llada2::jinja
