// Argument binding shared by the built-ins (see builtins.h).
#include "jinja/builtins.h"

namespace llada2::jinja {

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

}  // namespace llada2::jinja
