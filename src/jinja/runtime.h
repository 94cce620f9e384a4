// Evaluation of a parsed template: scopes (frames), the renderer's state and limits, and the
// built-ins (filters, tests, methods, globals) it dispatches to.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "jinja/ast.h"
#include "jinja/value.h"
#include "llada2/chat_template.h"

namespace llada2::jinja {

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
  const Value* lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

struct Renderer {
  ChatTemplate::Limits limits;
  uint64_t steps = 0;
  int depth = 0;
  std::shared_ptr<Frame> frame;
  std::shared_ptr<Frame> root;
  // Namespaces and cyclers can be made to contain themselves, and loop.changed() keeps the last
  // values it was given; the renderer owns all of them and clears them after the render, so that
  // cycles do not leak and no chain of owners runs through them (see kMaxNesting).
  std::vector<std::shared_ptr<Object>> namespaces;
  std::vector<std::shared_ptr<std::optional<Value>>> loop_states;

  Renderer() = default;
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;
  ~Renderer() {
    for (auto& ns : namespaces) ns->attrs.items.clear();
    for (auto& state : loop_states) state->reset();
  }

  void step() {
    if (++steps > limits.max_steps) fail("template exceeded the step limit (" + std::to_string(limits.max_steps) + ")");
  }
  void check_size(size_t n) const {
    if (n > limits.max_output_bytes) fail("template output exceeded the size limit");
  }
  std::string render_body(const Body& body);  // renders into a fresh string (macros, block set, caller)

  Value eval(const Expr& e);
  Value call(const Value& callee, CallArgs& args);
  Value get_attr(const Value& obj, const std::string& attr);
  Value get_item(const Value& obj, const Value& key);
};

// Renders a template body into out.
void render(Renderer& r, const Body& body, std::string& out);

// Built-ins, each kind a table of name -> function (filters.cc, tests.cc, methods.cc, globals.cc).
Value apply_filter(Renderer& r, const std::string& name, const Value& v, CallArgs& args);
bool apply_test(Renderer& r, const std::string& name, const Value& v, CallArgs& args);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
// A method of a str / dict / list value (e.g. "".startswith); Undefined when there is none.
Value method_of(const Value& obj, const std::string& name);
// A global function (range, namespace, dict, joiner, cycler, raise_exception, strftime_now);
// Undefined when there is none.
Value global_function(const std::string& name);

}  // namespace llada2::jinja
