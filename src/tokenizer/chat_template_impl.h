// Internals of the chat-template engine: Python-like values, the template syntax tree,
// and the entry points shared by the parser, the evaluator and the built-ins.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "llada2/chat_template.h"

namespace llada2::jinja {

// Errors carry the template position they were raised at (0 when unknown); the public API
// turns them into InputError with "line L, column C".
struct TemplateError {
  std::string message;
  int line = 0, col = 0;
  bool user_raised = false;  // raise_exception(): the message is the template author's
};
[[noreturn]] void fail(const std::string& message);

struct Value;
struct Renderer;
using List = std::vector<Value>;

struct Dict {
  std::vector<std::pair<Value, Value>> items;  // insertion order, like a Python dict
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value v);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};
using NativeFn = std::function<Value(Renderer&, CallArgs&)>;

// An attribute bag: namespace() objects (mutable through `set ns.x`) and loop objects.
struct Object {
  std::string type;  // "Namespace", "LoopContext"
  Dict attrs;
};

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Object, Callable };
// dict.keys() / .values() / .items() return views: a List that prints as dict_keys([...]) and
// so on, has no indexing and is not JSON.
enum class View : uint8_t { None, Keys, Values, Items };

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::shared_ptr<const std::string> s;      // String; for Undefined, the hint used in errors
  std::shared_ptr<const List> list;          // List, Tuple
  std::shared_ptr<const Dict> dict;          // Dict
  std::shared_ptr<Object> obj;               // Object
  std::shared_ptr<const NativeFn> fn;        // Callable
  std::shared_ptr<const std::string> fname;  // Callable: its name, for errors
  // A List that stands for a Python generator or iterator (what map, select, unique, items and
  // reverse return): always true, no len(), no indexing, not JSON.
  bool lazy = false;
  View view = View::None;

  Value() = default;
  static Value undefined(std::string hint = "") {
    Value v;
    if (!hint.empty()) v.s = std::make_shared<const std::string>(std::move(hint));
    return v;
  }
  static Value none() {
    Value v;
    v.kind = Kind::None;
    return v;
  }
  static Value boolean(bool x) {
    Value v;
    v.kind = Kind::Bool;
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v;
    v.kind = Kind::Int;
    v.i = x;
    return v;
  }
  static Value real(double x) {
    Value v;
    v.kind = Kind::Float;
    v.f = x;
    return v;
  }
  static Value str(std::string x) {
    Value v;
    v.kind = Kind::String;
    v.s = std::make_shared<const std::string>(std::move(x));
    return v;
  }
  static Value make_list(List x, bool tuple = false) {
    Value v;
    v.kind = tuple ? Kind::Tuple : Kind::List;
    v.list = std::make_shared<const List>(std::move(x));
    return v;
  }
  static Value generator(List x) {
    Value v = make_list(std::move(x));
    v.lazy = true;
    return v;
  }
  static Value make_dict(Dict x) {
    Value v;
    v.kind = Kind::Dict;
    v.dict = std::make_shared<const Dict>(std::move(x));
    return v;
  }
  static Value make_object(std::string type, Dict attrs) {
    Value v;
    v.kind = Kind::Object;
    v.obj = std::make_shared<Object>(Object{std::move(type), std::move(attrs)});
    return v;
  }
  static Value callable(std::string name, NativeFn fn) {
    Value v;
    v.kind = Kind::Callable;
    v.fn = std::make_shared<const NativeFn>(std::move(fn));
    v.fname = std::make_shared<const std::string>(std::move(name));
    return v;
  }

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_seq() const { return kind == Kind::List || kind == Kind::Tuple; }
  const std::string& sv() const { return *s; }
  const List& lv() const { return *list; }
  const Dict& dv() const { return *dict; }
  double as_double() const { return kind == Kind::Float ? f : kind == Kind::Int ? double(i) : double(b); }
  int64_t as_int() const { return kind == Kind::Int ? i : int64_t(b); }
};

// Python semantics over values.
bool truthy(const Value& v);
std::string type_name(const Value& v);  // Python's type name: 'str', 'list', 'dict', ...
std::string to_str(const Value& v);     // str(v); Undefined renders as ""
std::string repr(const Value& v);       // repr(v)
std::string float_repr(double d);       // repr(float)
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);  // <0, 0, >0; fails on unorderable types
Value from_json(const nlohmann::ordered_json& j);
// json.dumps(v, ensure_ascii, indent, separators, sort_keys); indent < 0 means None.
std::string to_json(const Value& v, bool ensure_ascii, const std::string* indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys);

// UTF-8 helpers: Python indexes strings by code point.
std::u32string to_u32(std::string_view s);
std::string to_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);
bool py_isspace(char32_t c);
char32_t py_upper(char32_t c);
char32_t py_lower(char32_t c);
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);

// ---- syntax tree ----
struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
  Literal,
  Name,
  ListLit,
  TupleLit,
  DictLit,
  GetAttr,
  GetItem,
  Slice,
  Call,
  Filter,
  Test,
  Neg,
  Pos,
  Not,
  And,
  Or,
  Binary,
  Compare,
  CondExpr
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  int height = 1;             // of the subtree, bounded by the parser
  Value value;                // Literal
  std::string name;           // Name, GetAttr attribute, Filter / Test name, Binary operator
  std::vector<ExprPtr> args;  // operands / elements / positional arguments (first = object for Call/Filter/Test)
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare: one operator per right operand
  bool negated = false;          // Test: `is not`
};

enum class StmtKind {
  Text,
  Output,
  If,
  For,
  Set,
  SetAttr,
  SetBlock,
  Macro,
  CallBlock,
  FilterBlock,
  Break,
  Continue,
  Scope
};

struct Stmt {
  StmtKind kind;
  int line = 0, col = 0;
  std::string text;  // Text; Macro name; SetAttr attribute
  ExprPtr expr;  // Output, Set value, SetAttr object, For iterable, CallBlock call, FilterBlock/SetBlock filter chain
  ExprPtr cond;  // For filter
  std::vector<std::string> targets;  // For / Set names; Macro / CallBlock parameter names
  bool targets_tuple = false;
  std::vector<ExprPtr> defaults;                   // Macro / CallBlock parameter defaults (null = none)
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition, body)
  Body body, else_body;
};

struct Template {
  Body body;
};

// Parses Jinja source with the transformers environment's whitespace rules.
std::unique_ptr<Template> parse_template(const std::string& source, int max_depth);

// ---- evaluation ----
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
  // Namespaces (and cyclers) can be made to contain themselves; their attributes are cleared
  // after the render so that such cycles do not leak.
  std::vector<std::shared_ptr<Object>> namespaces;

  Renderer() = default;
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;
  ~Renderer() {
    for (auto& ns : namespaces) ns->attrs.items.clear();
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

// Built-ins (chat_template_builtins.cc).
Value apply_filter(Renderer& r, const std::string& name, const Value& v, CallArgs& args);
bool apply_test(Renderer& r, const std::string& name, const Value& v, CallArgs& args);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
// A method of a str / dict / list value (e.g. "".startswith); Undefined when there is none.
Value method_of(const Value& obj, const std::string& name);
// Globals: range, namespace, dict, joiner, cycler, raise_exception, strftime_now.
Value global_function(const std::string& name);
List iterate(const Value& v);
std::string printf_format(
    const std::string& fmt,
    const Value& args);  // Python's `fmt % args`  // Python iteration: list items, dict keys, string characters
void render(Renderer& r, const Body& body, std::string& out);

}  // namespace llada2::jinja
